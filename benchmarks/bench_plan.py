#!/usr/bin/env python
"""How well Advice.plan() predicts a whole campaign from a sample: measured, not assumed.

Usage::

    python benchmarks/bench_plan.py            # 4 processors x 2 layouts, 8 files of 100,000 events
    python benchmarks/bench_plan.py --quick    # 2 processors x 1 layout, 4 files of 25,000 events
    python benchmarks/bench_plan.py --out benchmarks/results/bench_plan.json

Part 1: for every processor and file layout, a fileset of generated files; 6 chunks
per dataset sampled (``sample_work``, at a tenth and a quarter of a file), planned,
then the whole fileset run at ``Plan.chunksize`` ``--repeats`` times on one
``LocalCluster(n_workers=2, threads_per_worker=1)`` (after a warm-up run of the
processor). It prints chunks and bytes (planned == measured?), the total
worker-seconds planned against the median of the repeats (with their range: the
noise floor of the machine), and the chunk's peak as increment over the resident
memory at its start (``mem_usage_bytes``, median over the largest chunks; the whole
RSS would hide the error under the ~250 MB idle worker), then the median and worst
relative errors. The processors do real work per event (jets, all jet pairs'
masses, memory held and worked over), so a chunk takes a good part of a second.

Part 2: the bytes ``plan`` requests on a 20-file fileset, counted by an uproot
source handler over every file it opens, against the open + tree metadata cost of
each file (``OpenCost.total``). The goal is under 2x.

Not a test: it exits with status 0 whatever the errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import cloudpickle
import numpy as np
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from coffea_sizing import SizingDaskExecutor, advise
from coffea_sizing.datasets import make_nanoaod
from coffea_sizing.layout import clear_cache
from coffea_sizing.plan import sample_work
from coffea_sizing.predict import open_cost

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BRANCHES = [
    "run",
    "luminosityBlock",
    "event",
    "Jet_pt",
    "Jet_eta",
    "Jet_phi",
    "Jet_mass",
]


class Growing(processor.ProcessorABC):
    """Reads Jet pt, holds ``bytes_per_event`` per event and works over it."""

    def __init__(self, bytes_per_event: int, passes: int) -> None:
        self.bytes_per_event, self.passes = bytes_per_event, passes

    def process(self, events: Any) -> dict[str, Any]:
        held = np.ones(len(events) * self.bytes_per_event // 8)
        total = float(ak.sum(ak.flatten(events.Jet.pt)))
        for _ in range(self.passes):
            total += float(np.sqrt(held).sum()) * 0.0
        return {"n": len(events), "sumpt": total}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


class Dijets(processor.ProcessorABC):
    """Every pair of jets' invariant mass, at ``passes`` jet pt thresholds, into a
    histogram: combinatorial work per event, little memory."""

    def __init__(self, passes: int) -> None:
        self.passes = passes

    def process(self, events: Any) -> dict[str, Any]:
        counts = np.zeros(100)
        for i in range(self.passes):
            jets = events.Jet[events.Jet.pt > 5.0 * i]
            pairs = ak.combinations(jets, 2, fields=["a", "b"])
            mass = ak.flatten((pairs.a + pairs.b).mass)
            counts += np.histogram(ak.to_numpy(mass), bins=100, range=(0, 500))[0]
        return {"n": len(events), "mjj": counts}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


PROCESSORS = {
    "light (jets only)": Growing(0, 0),
    "dijet masses x4": Dijets(4),
    "1 kB/event x8 passes": Growing(1_000, 8),
    "4 kB/event x2 passes": Growing(4_000, 2),
}
LAYOUTS = {"baskets 10,000": 10_000, "baskets 2,000": 2_000}


def _fileset(directory: Path, events: int, basket: int, files: int = 4) -> dict:
    paths = []
    for i in range(files):
        path = directory / f"f{basket}_{events}_{i}.root"
        if not path.exists():
            make_nanoaod(
                path, events, events_per_basket=basket, seed=i, branches=BRANCHES
            )
        paths.append(str(path))
    return {"ds": paths}


def _runner(client: Any, chunksize: int) -> processor.Runner:
    return processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False),
        savemetrics=True,
        schema=NanoAODSchema,
        chunksize=chunksize,
    )


def part1(
    client: Any, directory: Path, quick: bool, repeats: int
) -> list[dict[str, Any]]:
    events, files = (25_000, 4) if quick else (100_000, 8)
    procs = dict(list(PROCESSORS.items())[1:3]) if quick else PROCESSORS
    layouts = dict(list(LAYOUTS.items())[:1]) if quick else LAYOUTS
    rows = []
    for lname, basket in layouts.items():
        fileset = _fileset(directory, events, basket, files)
        for pname, proc in procs.items():
            warm = sample_work(fileset, 2, (events // 10,))
            _runner(client, events)(warm, treename="Events", processor_instance=proc)
            items = sample_work(fileset, 6, (events // 10, events // 4))
            _, sample = _runner(client, events)(
                items, treename="Events", processor_instance=proc
            )
            plan = advise(sample).plan(fileset, workers=2)
            tables = []
            for _ in range(repeats):
                _, report = _runner(client, plan.chunksize)(
                    fileset, treename="Events", processor_instance=proc
                )
                tables.append(plan.compare(report).set_index("dataset").loc["ds"])
            measured = [float(t["measured_worker_s"]) for t in tables]
            increments = [float(t["measured_increment_bytes"]) for t in tables]
            table = tables[0]
            interval = plan.to_frame().set_index("dataset").loc["ds"]
            row = {
                "processor": pname,
                "layout": lname,
                "chunksize": plan.chunksize,
                "chunks": int(table["measured_chunks"]),
                "chunks_exact": all(t["ratio_chunks"] == 1.0 for t in tables),
                "bytes_exact": all(t["ratio_bytesread"] == 1.0 for t in tables),
                "worker_s_planned": float(table["planned_worker_s"]),
                "worker_s_low": float(interval["worker_s_low"]),
                "worker_s_high": float(interval["worker_s_high"]),
                "worker_s_measured": statistics.median(measured),
                "worker_s_measured_min": min(measured),
                "worker_s_measured_max": max(measured),
                "increment_planned": float(table["planned_increment_bytes"]),
                "increment_measured": statistics.median(increments),
            }
            row["worker_s_error"] = (
                row["worker_s_planned"] / row["worker_s_measured"] - 1
            )
            row["increment_error"] = (
                row["increment_planned"] / row["increment_measured"] - 1
            )
            row["in_interval"] = (
                row["worker_s_low"] <= row["worker_s_measured"] <= row["worker_s_high"]
            )
            rows.append(row)
            print(
                f"  {pname:22s} {lname:15s} {row['chunks']:3d} chunks of "
                f"{plan.chunksize:>7,}: chunks "
                f"{'exact' if row['chunks_exact'] else 'OFF'}, bytes "
                f"{'exact' if row['bytes_exact'] else 'OFF'}; worker-s planned "
                f"{row['worker_s_planned']:.2f} ({row['worker_s_low']:.2f}-"
                f"{row['worker_s_high']:.2f}) vs measured "
                f"{row['worker_s_measured']:.2f} ({min(measured):.2f}-"
                f"{max(measured):.2f} over {repeats}) ({row['worker_s_error']:+.0%}); "
                f"increment {row['increment_planned'] / 1e6:.1f} vs "
                f"{row['increment_measured'] / 1e6:.1f} MB "
                f"({row['increment_error']:+.0%})",
                flush=True,
            )
    return rows


class _Counting(uproot.source.file.MemmapSource):
    """A local-file source that remembers itself, to count what was requested."""

    opened: ClassVar[list[Any]] = []
    lock = threading.Lock()

    def __init__(self, file_path: str, **options: Any) -> None:
        super().__init__(file_path, **options)
        with self.lock:
            self.opened.append(self)


def part2(directory: Path, quick: bool) -> dict[str, Any]:
    files = [
        _fileset(directory, 2_000 if quick else 20_000, 1_000, files=20)["ds"][i]
        for i in range(20)
    ]
    fileset = {"ds": files}
    # the model matters not here, only which files plan reads: two chunk records
    advice = advise(
        [
            {
                "dataset": "ds",
                "filename": files[0],
                "treename": "Events",
                "entrystart": start,
                "entrystop": start + 1_000,
                "bytesread": 1,
                "columns": ["Jet_pt", "nJet"],
                "walltime": 0.1,
                "mem_peak_bytes": 2e8,
                "mem_usage_bytes": 1e6,
            }
            for start in (0, 1_000)
        ]
    )
    clear_cache()
    _Counting.opened.clear()
    start = time.perf_counter()
    advice.plan(fileset, uproot_options={"handler": _Counting})
    seconds = time.perf_counter() - start
    requested = sum(int(s.num_requested_bytes) for s in _Counting.opened)
    metadata = sum(open_cost(f).total for f in files)
    result = {
        "files": len(files),
        "sources_opened": len(_Counting.opened),
        "requested_bytes": requested,
        "open_plus_tree_bytes": metadata,
        "ratio": requested / metadata,
        "seconds": seconds,
    }
    print(
        f"  20 files: plan requested {requested:,} B over {len(_Counting.opened)} "
        f"opens; open + tree metadata {metadata:,} B; ratio {result['ratio']:.3f} "
        f"(goal < 2); {seconds:.2f} s"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each whole campaign"
    )
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore", message="Missing cross-reference index")
    # the same for the workers (processes started with this environment)
    os.environ["PYTHONWARNINGS"] = "ignore::RuntimeWarning"
    from distributed import Client, LocalCluster

    load = os.getloadavg()
    print(
        f"bench_plan on {platform.node()}: load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        print("part 2: bytes plan requests")
        bytes_result = part2(directory, args.quick)
        print("part 1: planned against the whole run")
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                dashboard_address=":0",
                host="127.0.0.1",
                silence_logs=40,
            ) as cluster,
            Client(cluster) as client,
        ):
            rows = part1(client, directory, args.quick, args.repeats)
    for key in ("worker_s_error", "increment_error"):
        errors = [abs(r[key]) for r in rows]
        print(
            f"{key}: median {statistics.median(errors):.0%}, worst {max(errors):.0%} "
            f"over {len(errors)} processor x layout runs"
        )
    inside = sum(r["in_interval"] for r in rows)
    print(f"measured worker-s inside the planned interval in {inside}/{len(rows)}")
    print(
        f"chunks exact in {sum(r['chunks_exact'] for r in rows)}/{len(rows)}, bytes "
        f"exact in {sum(r['bytes_exact'] for r in rows)}/{len(rows)}"
    )
    load = os.getloadavg()
    print(f"load at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.out:
        Path(args.out).write_text(
            json.dumps({"runs": rows, "bytes": bytes_result}, indent=1, default=float)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
