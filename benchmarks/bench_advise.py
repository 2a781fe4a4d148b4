#!/usr/bin/env python
"""How well advise() predicts a run at another chunk size: measured, not assumed.

Usage::

    python benchmarks/bench_advise.py             # 3 processors x 2 files x 3 sizes
    python benchmarks/bench_advise.py --quick     # 2 processors x 1 file x 2 sizes
    python benchmarks/bench_advise.py --out benchmarks/results/bench_advise.json

For every processor and file, one run per chunk size with
:class:`~coffea_sizing.SizingDaskExecutor` on one ``LocalCluster(n_workers=2,
threads_per_worker=1)``, after a warm-up run. Then, for every ordered pair of chunk
sizes (A, B), ``advise(run at A).predict(B)`` against the run at B: bytes read (exact
or not), and the relative error of the median peak memory and of the median chunk
wall time. Every processor and file gets a warm-up run first (the first chunks of a
processor on a worker import and fill caches, and take several times longer). It prints every
pair and the median relative error of each, and exits with status 0 whatever the
errors: it is not a test. Inputs are generated into a temporary directory.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import cloudpickle
import hist
from coffea import processor

from coffea_sizing import SizingDaskExecutor, advise, chunk_table
from coffea_sizing.datasets import make_nanoaod
from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

cloudpickle.register_pickle_by_value(sys.modules[__name__])

from _results import write_results


class JetHistograms(processor.ProcessorABC):
    """Jets: pt, eta and phi histograms, and a dijet mass (allocates per event)."""

    def process(self, events: Any) -> dict[str, Any]:
        jets = events.Jet
        h = hist.Hist.new.Reg(50, 0, 300, name="pt").Reg(20, -5, 5, name="eta").Double()
        h.fill(pt=ak.flatten(jets.pt), eta=ak.flatten(jets.eta))
        pairs = ak.combinations(jets.pt, 2)
        mass = hist.Hist.new.Reg(50, 0, 1000, name="m").Double()
        mass.fill(m=ak.flatten(pairs["0"] + pairs["1"]))
        return {"nevents": len(events), "pt_eta": h, "m": mass}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


PROCESSORS = {
    "sweep-1": lambda: BranchSweepProcessor(1),
    "sweep-10": lambda: BranchSweepProcessor(10),
    "jet-histograms": JetHistograms,
}


def _rel(pred: float, meas: float) -> float:
    return abs(pred - meas) / meas if meas else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--sizes", default="3000,7500,20000")
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    procs = dict(PROCESSORS)
    baskets = [1_000, 5_000]
    if args.quick:
        args.events, sizes, baskets = 20_000, [2_000, 5_000], [1_000]
        procs = {k: procs[k] for k in ("sweep-1", "jet-histograms")}
    logging.getLogger("distributed").setLevel(logging.ERROR)
    from distributed import Client, LocalCluster

    t0 = time.time()
    rows = []
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        files = {}
        for per_basket in baskets:
            path = Path(tmp) / f"bench_{args.events}ev_{per_basket}perbasket.root"
            make_nanoaod(path, args.events, events_per_basket=per_basket, seed=3)
            files[f"{per_basket}/basket"] = str(path)

        def run(proc: Any, file: str, size: int) -> Any:
            runner = processor.Runner(
                executor=SizingDaskExecutor(client=client, status=False),
                savemetrics=True,
                schema=SweepSchema,
                chunksize=size,
            )
            _, report = runner(
                {"bench": [file]}, treename="Events", processor_instance=proc
            )
            return report

        first = next(iter(files.values()))
        run(JetHistograms(), first, sizes[-1])  # warm-up: imports on the workers
        say(
            f"{len(procs)} processors x {len(files)} files ({args.events:,} events) x "
            f"chunk sizes {', '.join(f'{s:,}' for s in sizes)}; 2 workers x 1 thread"
        )
        header = (
            f"{'processor':15} {'file':11} {'A':>6} {'B':>6} {'bytes':>6} "
            f"{'mem err':>8} {'wall err':>9} "
            f"{'wall pred':>9} {'wall meas':>9}"
        )
        say(header)
        for (pname, make), (fname, file) in itertools.product(
            procs.items(), files.items()
        ):
            run(make(), file, sizes[-1])  # warm-up of this processor and file
            reports = {s: run(make(), file, s) for s in sizes}
            for a, b in itertools.permutations(sizes, 2):
                advice = advise(reports[a])
                pred = advice.predict(b).iloc[0]
                meas = chunk_table(reports[b])
                row = {
                    "processor": pname,
                    "file": fname,
                    "size_a": a,
                    "size_b": b,
                    "bytes_exact": bool(pred.bytes_exact)
                    and int(pred.bytesread) == int(meas.bytesread.sum()),
                    "mem_pred": float(pred.mem_peak_bytes),
                    "mem_meas": float(meas.mem_peak_bytes.median()),
                    "wall_pred": float(pred.walltime),
                    "wall_meas": float(meas.walltime.median()),
                }
                row["mem_err"] = _rel(row["mem_pred"], row["mem_meas"])
                row["wall_err"] = _rel(row["wall_pred"], row["wall_meas"])
                rows.append(row)
                say(
                    f"{pname:15} {fname:11} {a:>6} {b:>6} "
                    f"{'exact' if row['bytes_exact'] else 'NO':>6} "
                    f"{row['mem_err']:>8.1%} "
                    f"{row['wall_err']:>9.0%} {row['wall_pred']:>8.3f}s "
                    f"{row['wall_meas']:>8.3f}s"
                )
    summary = {
        "pairs": len(rows),
        "bytes_exact": sum(r["bytes_exact"] for r in rows),
        "median_rel_error_mem_peak": statistics.median(r["mem_err"] for r in rows),
        "median_rel_error_walltime": statistics.median(r["wall_err"] for r in rows),
        "seconds": time.time() - t0,
    }
    say("")
    say(
        f"bytes read exact in {summary['bytes_exact']} of {summary['pairs']} pairs; "
        f"median relative error: peak memory "
        f"{summary['median_rel_error_mem_peak']:.1%}, chunk wall time "
        f"{summary['median_rel_error_walltime']:.0%} ({summary['seconds']:.0f} s)"
    )
    if args.out:
        write_results(args.out, lines, summary=summary, pairs=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
