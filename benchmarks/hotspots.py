#!/usr/bin/env python
"""The costs behind the targets ``bench_sizing.py`` misses, and the proposed fixes.

Usage::

    python benchmarks/hotspots.py [--quick] [--repeats N] [--out hotspots.json]

Each section times the code as it is in the package against a proposed
replacement, side by side, and checks that both give the same answer. The
package is not modified: the proposed code lives here and is swapped in on the
workers (``client.run``) only for the runs that measure it.

1. ``@track_sizes``' ``column_bytes`` (``decorator._basket_bytes``) builds a full
   ``predict._BranchLayout`` (five arrays, cumulative sums and
   ``TBranch.count_branch``, which parses the leaf every time) for every branch of
   every chunk, to use two of its numbers. The proposal reads ``fBasketEntry`` and
   ``fBasketBytes`` of the free baskets and sums the slice.
2. The same, end to end: variant C of ``bench_sizing.py`` with the decorator as it
   is and with the proposal swapped in, alternating, on one cluster.
3. The first decorated chunk on every worker imports ``coffea_sizing.predict``
   (for ``_basket_bytes``), which imports ``coffea_sizing.datasets`` and pandas:
   timed in a fresh interpreter that has what a worker has.
4. Report assembly at 10,000 records: the scheduler-to-client transfer (one msgpack
   map per record, field names repeated, against one list per field), and
   ``chunk_table`` in a process with as many objects tracked by the garbage
   collector as the benchmark's client + scheduler process.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import pathlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bench_sizing import (
    _default_cache_dir,
    _jsonable,
    cached_nanoaod,
)

#: The branches BranchSweepProcessor(10) materialises, as column_bytes lists them.
SWEEP_COLUMNS = (
    "Electron_eta",
    "Electron_pt",
    "Jet_eta",
    "Jet_mass",
    "Jet_phi",
    "Jet_pt",
    "MET_phi",
    "MET_pt",
    "Muon_eta",
    "Muon_pt",
    "nElectron",
    "nJet",
    "nMuon",
)


# ================================================= the proposed column_bytes
def free_basket_bytes(branch: Any, start: int, stop: int) -> int:
    """Bytes of the free baskets of ``branch`` that uproot reads for [start, stop).

    Free basket ``i`` holds entries ``[fBasketEntry[i], fBasketEntry[i + 1])`` and
    weighs ``fBasketBytes[i]``; uproot reads basket ``i`` when
    ``start < its stop and (its start < stop or start == stop == its start)``
    (``predict._basket_ranges``). Embedded baskets (after the free ones) weigh 0.
    """
    num_free = int(branch.num_baskets) - len(branch.embedded_baskets)
    if num_free <= 0:
        return 0
    entry = branch.member("fBasketEntry")
    lo = int(np.searchsorted(entry[1 : num_free + 1], start, side="right"))
    hi = int(
        np.searchsorted(
            entry[:num_free], stop, side="right" if start == stop else "left"
        )
    )
    return int(np.sum(branch.member("fBasketBytes")[lo : max(hi, lo)], dtype=np.int64))


def proposed_basket_bytes(
    factory: Any, branches: list[str], start: int, stop: int
) -> dict[str, int | None] | None:
    """Drop-in for ``coffea_sizing.decorator._basket_bytes`` (same signature)."""
    from coffea_sizing.decorator import _tree_of

    tree = _tree_of(factory)
    if tree is None:
        return None
    preloaded = getattr(getattr(factory, "_mapping", None), "preloaded_arrays", None)
    result: dict[str, int | None] = {}
    for name in branches:
        if preloaded and name in preloaded:
            result[name] = 0
            continue
        try:
            result[name] = free_basket_bytes(tree[name], start, stop)
        except Exception:  # noqa: BLE001 - as the original: not a TBranch
            result[name] = None
    return result


def current_basket_bytes_of_tree(
    tree: Any, branches: Sequence[str], start: int, stop: int
) -> dict[str, int]:
    """What ``decorator._basket_bytes`` computes, given the tree (package code)."""
    from coffea_sizing.predict import _basket_ranges, _branch_layout

    starts = np.asarray([start], dtype=np.int64)
    stops = np.asarray([stop], dtype=np.int64)
    out = {}
    for name in branches:
        layout = _branch_layout(tree[name])
        lo, hi = _basket_ranges(layout, starts, stops)
        out[name] = int(layout.cum_bytes[hi[0]] - layout.cum_bytes[lo[0]])
    return out


def _timeit(fn: Callable[[], Any], number: int) -> float:
    samples = []
    for _ in range(number):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def section_basket_bytes(path: str, events: int, chunksize: int) -> dict[str, Any]:
    import uproot

    from coffea_sizing.datasets import ttbar_path

    tree = uproot.open(path)["Events"]
    edges = [*range(0, events, chunksize), events]
    ranges = list(itertools.pairwise(edges))
    odd = [(5, 17), (events - 1, events), (0, events), (300, 300), (events, events)]
    for start, stop in ranges + odd:
        current = current_basket_bytes_of_tree(tree, SWEEP_COLUMNS, start, stop)
        proposed = {n: free_basket_bytes(tree[n], start, stop) for n in SWEEP_COLUMNS}
        assert current == proposed, (start, stop, current, proposed)
    ttbar = uproot.open(ttbar_path())["Events"]  # embedded baskets only: all 0
    names = ["Jet_pt", "nJet", "MET_pt"]
    for start, stop in [(0, 100), (100, 200), (0, 200)]:
        current = current_basket_bytes_of_tree(ttbar, names, start, stop)
        assert current == {n: free_basket_bytes(ttbar[n], start, stop) for n in names}
    start, stop = ranges[len(ranges) // 2]
    now = _timeit(
        lambda: current_basket_bytes_of_tree(tree, SWEEP_COLUMNS, start, stop), 300
    )
    new = _timeit(
        lambda: {n: free_basket_bytes(tree[n], start, stop) for n in SWEEP_COLUMNS}, 300
    )
    count_branch = _timeit(lambda: tree["Jet_pt"].count_branch, 1000)
    return {
        "branches": len(SWEEP_COLUMNS),
        "checked_ranges": len(ranges) + len(odd) + 3,
        "current_seconds_per_chunk": now,
        "proposed_seconds_per_chunk": new,
        "speedup": now / new,
        "count_branch_seconds_per_call": count_branch,
    }


# ====================================================== end to end, on a cluster
def install_proposed() -> bool:
    """On a worker: swap ``decorator._basket_bytes`` for the proposal."""
    from coffea_sizing import decorator

    if not hasattr(decorator, "_bench_original_basket_bytes"):
        decorator._bench_original_basket_bytes = decorator._basket_bytes  # type: ignore[attr-defined]
    decorator._basket_bytes = proposed_basket_bytes
    return True


def restore_current() -> bool:
    from coffea_sizing import decorator

    original = getattr(decorator, "_bench_original_basket_bytes", None)
    if original is not None:
        decorator._basket_bytes = original
    return True


def section_end_to_end(
    path: str, chunksize: int, repeats: int, workers: int = 2
) -> dict[str, Any]:
    import logging

    from coffea import processor
    from distributed import Client, LocalCluster

    from coffea_sizing import SizingDaskExecutor, track_sizes
    from coffea_sizing.compare import BranchSweepProcessor, SweepSchema

    def run(client: Any) -> list[dict[str, Any]]:
        runner = processor.Runner(
            executor=SizingDaskExecutor(client=client, status=False),
            savemetrics=True,
            schema=SweepSchema,
            chunksize=chunksize,
        )
        gc.collect()
        _, report = runner(
            {"generated": [path]},
            treename="Events",
            processor_instance=track_sizes(BranchSweepProcessor)(10),
        )
        return list(report["sizing"])

    samples: dict[str, list[dict[str, Any]]] = {"current": [], "proposed": []}
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        run(client)  # warm-up: imports (predict, pandas) on the workers
        for r in range(repeats):
            order = ("current", "proposed") if r % 2 == 0 else ("proposed", "current")
            for name in order:
                client.run(install_proposed if name == "proposed" else restore_current)
                recs = run(client)
                columns_ok = all(rec.get("column_bytes") for rec in recs)
                assert columns_ok, "column_bytes missing"
                samples[name].extend(recs)
            print(f"   repeat {r + 1}/{repeats}", flush=True)
        client.run(restore_current)
    same = sorted(
        json.dumps(r["column_bytes"], sort_keys=True) for r in samples["current"]
    ) == sorted(
        json.dumps(r["column_bytes"], sort_keys=True) for r in samples["proposed"]
    )
    out: dict[str, Any] = {"same_column_bytes": same}
    for name, recs in samples.items():
        dec = [r["processtime"] - r["process_walltime"] for r in recs]
        wall = statistics.median(r["walltime"] for r in recs)
        out[name] = {
            "chunks": len(recs),
            "decorator_median": statistics.median(dec),
            "chunk_walltime_median": wall,
            "decorator_share": statistics.median(dec) / wall,
        }
    return out


# ================================================ first chunk on a fresh worker
_IMPORT_PROBE = """
import json, sys, time
import coffea.processor, coffea.nanoevents, distributed, hist
import coffea_sizing, coffea_sizing.compare
had_pandas = "pandas" in sys.modules
t0 = time.perf_counter()
import coffea_sizing.predict
print(json.dumps({"seconds": time.perf_counter() - t0, "pandas_before": had_pandas,
                  "pandas_after": "pandas" in sys.modules}))
"""


def section_first_chunk(repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "import_predict_seconds_median": statistics.median(r["seconds"] for r in runs),
        "import_predict_seconds_all": [r["seconds"] for r in runs],
        "pandas_loaded_before": runs[0]["pandas_before"],
        "pandas_loaded_after": runs[0]["pandas_after"],
    }


# ===================================================== report assembly, 10,000
def _synthetic_records(n: int) -> list[dict[str, Any]]:
    """Records shaped like the scale run's (variant C, one branch read)."""
    base = {
        "dataset": "scale",
        "filename": "/root/.cache/coffea-sizing/bench_20000ev_100perbasket_4br.root",
        "treename": "Events",
        "entrystart": 0,
        "entrystop": 2,
        "entries": 2,
        "skipped": False,
        "bytesread": 23743,
        "columns": ["Jet_pt"],
        "processtime": 0.0199,
        "output_pickled_bytes": 45,
        "output_compressed_bytes": 399,
        "key": "coffea-sizing-chunk-f49da4070d1b-0",
        "worker": "tcp://127.0.0.1:37759",
        "walltime": 0.0593,
        "cputime": 0.0163,
        "mem_peak_bytes": 277626880,
        "mem_usage_bytes": 57344,
        "mem_shared": False,
        "bytesread_open": 22777,
        "bytesread_payload": 966,
        "columns_read": ["Jet_pt"],
        "column_bytes": {"Jet_pt": 966},
        "process_walltime": 0.0084,
        "process_cputime": 0.0031,
        "process_mem_peak_bytes": 277635072,
        "process_mem_usage_bytes": 0,
        "process_mem_shared": False,
        "sizing_overhead": 7.3e-05,
        "task_nbytes": 399,
        "compute_start": 1795648619.44,
        "compute_stop": 1795648619.50,
        "attempts": 1,
    }
    out = []
    for i in range(n):
        rec = dict(base)
        rec.update(
            entrystart=2 * i,
            entrystop=2 * i + 2,
            key=f"coffea-sizing-chunk-f49da4070d1b-{i}",
            walltime=0.05 + i * 1e-7,
            compute_start=1795648619.44 + i,
            compute_stop=1795648619.50 + i,
            columns=["Jet_pt"],
            columns_read=["Jet_pt"],
            column_bytes={"Jet_pt": 966 + i % 7},
        )
        out.append(rec)
    return out


def section_assembly(n: int, repeats: int) -> dict[str, Any]:
    import msgpack

    from coffea_sizing import chunk_table

    records = _synthetic_records(n)
    # as many tracked objects as the benchmark's client + scheduler process holds
    ballast = [{"a": [i], "b": (i,)} for i in range(100_000)]
    rows = msgpack.packb(records)
    names = list(dict.fromkeys(k for rec in records for k in rec))
    cols = msgpack.packb({k: [rec.get(k) for rec in records] for k in names})

    def unpack_rows() -> Any:
        got = list(msgpack.unpackb(rows, use_list=False))
        for rec in got:  # as SizingDaskExecutor._attach does
            for k, v in rec.items():
                if isinstance(v, tuple):
                    rec[k] = list(v)
        return got

    def unpack_columns() -> Any:
        got = msgpack.unpackb(cols)
        keys = list(got)
        return [
            dict(zip(keys, row, strict=True)) for row in zip(*got.values(), strict=True)
        ]

    assert unpack_columns() == unpack_rows()

    def stats(fn: Callable[[], Any]) -> dict[str, float]:
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return {"median": statistics.median(samples), "max": max(samples)}

    result = {
        "records": n,
        "transfer_bytes_rows": len(rows),
        "transfer_bytes_columns": len(cols),
        "unpack_rows": stats(unpack_rows),
        "unpack_columns": stats(unpack_columns),
        "chunk_table": stats(lambda: chunk_table(records)),
        "tracked_objects": len(gc.get_objects()),
    }
    del ballast
    return result


# ======================================================================= main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--repeats", type=int, help="end-to-end rounds (default 5)")
    parser.add_argument("--out", type=pathlib.Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    events = 20_000 if args.quick else 1_000_000
    chunksize = events // 10
    repeats = args.repeats or (2 if args.quick else 5)
    path = cached_nanoaod(
        str(_default_cache_dir()), events, min(10_000, chunksize // 10)
    )
    res: dict[str, Any] = {"events": events, "chunksize": chunksize}

    print("1. column_bytes per chunk: decorator._basket_bytes against the proposal")
    res["basket_bytes"] = b = section_basket_bytes(path, events, chunksize)
    print(
        f"   {b['branches']} branches, identical on {b['checked_ranges']} ranges: "
        f"current {b['current_seconds_per_chunk'] * 1e3:.3f} ms, proposed "
        f"{b['proposed_seconds_per_chunk'] * 1e3:.3f} ms per chunk "
        f"({b['speedup']:.1f}x); TBranch.count_branch alone "
        f"{b['count_branch_seconds_per_call'] * 1e6:.0f} us per branch"
    )
    print(f"2. end to end, variant C, {repeats} alternating rounds")
    res["end_to_end"] = e = section_end_to_end(path, chunksize, repeats)
    for name in ("current", "proposed"):
        x = e[name]
        print(
            f"   {name:<9} decorator {x['decorator_median'] * 1e3:.3f} ms per chunk = "
            f"{x['decorator_share'] * 100:.3f} % of the chunk walltime "
            f"({x['chunk_walltime_median'] * 1e3:.0f} ms, {x['chunks']} chunks)"
        )
    print(f"   same column_bytes: {e['same_column_bytes']}")
    print("3. first decorated chunk on a fresh worker: import coffea_sizing.predict")
    res["first_chunk"] = f = section_first_chunk(3 if args.quick else 5)
    print(
        f"   {f['import_predict_seconds_median'] * 1e3:.0f} ms (median); pandas "
        f"loaded before: {f['pandas_loaded_before']}, after: {f['pandas_loaded_after']}"
    )
    n = 2_000 if args.quick else 10_000
    print(f"4. report assembly, {n:,} records, {repeats + 2} repeats")
    res["assembly"] = a = section_assembly(n, repeats + 2)
    print(
        f"   transfer {a['transfer_bytes_rows'] / 1e6:.2f} MB as records, "
        f"{a['transfer_bytes_columns'] / 1e6:.2f} MB as columns; unpack "
        f"{a['unpack_rows']['median'] * 1e3:.0f} ms against "
        f"{a['unpack_columns']['median'] * 1e3:.0f} ms (rebuilding the records)"
    )
    print(
        f"   chunk_table {a['chunk_table']['median'] * 1e3:.0f} ms (max "
        f"{a['chunk_table']['max'] * 1e3:.0f} ms) with "
        f"{a['tracked_objects']:,} objects tracked by the GC"
    )
    if args.out:
        args.out.write_text(json.dumps(_jsonable(res), indent=1) + "\n")
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
