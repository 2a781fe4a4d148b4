#!/usr/bin/env python
"""The costs behind the targets ``bench_sizing.py`` missed, before and after the fixes.

Usage::

    python benchmarks/hotspots.py [--quick] [--repeats N] [--out hotspots.json]

Session 1's benchmark missed two targets (the decorator's time per chunk and the
size of a record); a profile (py-spy on the workers, cProfile in process) found the
costs below, and they were fixed in the package. Each section times the code as it
was ("before", kept here) against the package as it is ("after"), side by side in
one run, and checks that both give the same answer.

1. ``@track_sizes``' ``column_bytes``: before, ``decorator._basket_bytes`` built a
   full ``predict._BranchLayout`` (five arrays, cumulative sums and
   ``TBranch.count_branch``, which parses the leaf every time) for every branch of
   every chunk, to use two of its numbers; after, ``layout.basket_bytes`` reads
   ``fBasketEntry`` and ``fBasketBytes`` of the free baskets and sums the slice.
2. The same, end to end: variant C of ``bench_sizing.py`` with the decorator as it is
   and with the old ``_basket_bytes`` swapped in on the workers, alternating.
3. The first decorated chunk on a fresh worker: before, it imported
   ``coffea_sizing.predict`` (and with it ``coffea_sizing.datasets`` and pandas);
   after, the decorator imports neither. Timed in fresh interpreters.
4. Records on the wire and report assembly at 10,000 records: before, every record
   was a msgpack map with its field names and the chunk's identity; after, the
   packed form (``records.pack_record``), unpacked and completed on the client.
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


# ======================================== column_bytes: before (kept) and after
def previous_basket_bytes_of_tree(
    tree: Any, branches: Sequence[str], start: int, stop: int
) -> dict[str, int]:
    """What ``decorator._basket_bytes`` computed before, given the tree."""
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
    from coffea_sizing.layout import basket_bytes

    tree = uproot.open(path)["Events"]
    edges = [*range(0, events, chunksize), events]
    ranges = list(itertools.pairwise(edges))
    odd = [(5, 17), (events - 1, events), (0, events), (300, 300), (events, events)]
    for start, stop in ranges + odd:
        before = previous_basket_bytes_of_tree(tree, SWEEP_COLUMNS, start, stop)
        after = {n: basket_bytes(tree[n], start, stop) for n in SWEEP_COLUMNS}
        assert before == after, (start, stop, before, after)
    ttbar = uproot.open(ttbar_path())["Events"]  # embedded baskets only: all 0
    names = ["Jet_pt", "nJet", "MET_pt"]
    for start, stop in [(0, 100), (100, 200), (0, 200)]:
        before = previous_basket_bytes_of_tree(ttbar, names, start, stop)
        assert before == {n: basket_bytes(ttbar[n], start, stop) for n in names}
    start, stop = ranges[len(ranges) // 2]
    old = _timeit(
        lambda: previous_basket_bytes_of_tree(tree, SWEEP_COLUMNS, start, stop), 300
    )
    new = _timeit(
        lambda: {n: basket_bytes(tree[n], start, stop) for n in SWEEP_COLUMNS}, 300
    )
    count_branch = _timeit(lambda: tree["Jet_pt"].count_branch, 1000)
    return {
        "branches": len(SWEEP_COLUMNS),
        "checked_ranges": len(ranges) + len(odd) + 3,
        "before_seconds_per_chunk": old,
        "after_seconds_per_chunk": new,
        "speedup": old / new,
        "count_branch_seconds_per_call": count_branch,
    }


# ====================================================== end to end, on a cluster
def previous_basket_bytes(
    factory: Any, branches: list[str], start: int, stop: int
) -> dict[str, int | None] | None:
    """``decorator._basket_bytes`` as it was (same signature, the old rule)."""
    from coffea_sizing.decorator import _tree_of
    from coffea_sizing.predict import _basket_ranges, _branch_layout

    tree = _tree_of(factory)
    if tree is None:
        return None
    preloaded = getattr(getattr(factory, "_mapping", None), "preloaded_arrays", None)
    starts = np.asarray([start], dtype=np.int64)
    stops = np.asarray([stop], dtype=np.int64)
    result: dict[str, int | None] = {}
    for name in branches:
        if preloaded and name in preloaded:
            result[name] = 0
            continue
        try:
            layout = _branch_layout(tree[name])
        except Exception:  # noqa: BLE001 - as it was: not a TBranch
            result[name] = None
            continue
        lo, hi = _basket_ranges(layout, starts, stops)
        result[name] = int(layout.cum_bytes[hi[0]] - layout.cum_bytes[lo[0]])
    return result


def install_previous() -> bool:
    """On a worker: swap the old ``_basket_bytes`` in."""
    from coffea_sizing import decorator

    if not hasattr(decorator, "_bench_original_basket_bytes"):
        decorator._bench_original_basket_bytes = decorator._basket_bytes  # type: ignore[attr-defined]
    decorator._basket_bytes = previous_basket_bytes
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
    from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

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

    samples: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(install_previous)
        run(client)  # warm-up: imports (predict, pandas) on the workers
        client.run(restore_current)
        for r in range(repeats):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                client.run(install_previous if name == "before" else restore_current)
                recs = run(client)
                columns_ok = all(rec.get("column_bytes") for rec in recs)
                assert columns_ok, "column_bytes missing"
                samples[name].extend(recs)
            print(f"   repeat {r + 1}/{repeats}", flush=True)
        client.run(restore_current)
    same = sorted(
        json.dumps(r["column_bytes"], sort_keys=True) for r in samples["before"]
    ) == sorted(json.dumps(r["column_bytes"], sort_keys=True) for r in samples["after"])
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
pandas_before = "pandas" in sys.modules
t0 = time.perf_counter()
import coffea_sizing  # what unpickling a decorated processor imports on a worker
t1 = time.perf_counter()
after = {"seconds": t1 - t0, "predict": "coffea_sizing.predict" in sys.modules,
         "pandas": "pandas" in sys.modules}
import coffea_sizing.predict  # what the first decorated chunk imported before
print(json.dumps({"pandas_before": pandas_before, "after": after,
                  "predict_seconds": time.perf_counter() - t1}))
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
        "before_import_predict_seconds_median": statistics.median(
            r["predict_seconds"] for r in runs
        ),
        "after_import_package_seconds_median": statistics.median(
            r["after"]["seconds"] for r in runs
        ),
        "after_predict_imported": any(r["after"]["predict"] for r in runs),
        "pandas_loaded_by_coffea": runs[0]["pandas_before"],
        "pandas_loaded_after_import": runs[0]["after"]["pandas"],
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
    """Transfer and assembly of ``n`` records, before and after the packed form.

    Before: ``collect_run`` returned the full records (msgpack maps with the field
    names and the identity) and the client turned tuples back into lists. After:
    it returns one small map per chunk holding the packed record, and the client
    unpacks each one and adds the identity from the chunk's ``WorkItem``
    (``executor._Collector``, which now does it as each record arrives).
    ``chunk_table`` is the same afterwards.
    """
    import msgpack
    from coffea.processor.executor import WorkItem

    from coffea_sizing import chunk_table
    from coffea_sizing.executor import _Collector
    from coffea_sizing.records import CLIENT_FIELDS, pack_record

    records = _synthetic_records(n)
    items = [
        WorkItem(
            rec["dataset"],
            rec["filename"],
            rec["treename"],
            rec["entrystart"],
            rec["entrystop"],
            "0123456789abcdef",
        )
        for rec in records
    ]
    scheduler = ("key", "task_nbytes", "worker", "compute_start", "compute_stop")
    client_side = set(CLIENT_FIELDS)
    joined = [
        {
            **{k: rec[k] for k in scheduler},
            "attempts": rec["attempts"],
            "record": pack_record(
                {k: v for k, v in rec.items() if k not in client_side}
            ),
        }
        for rec in records
    ]
    # as many tracked objects as the benchmark's client + scheduler process holds
    ballast = [{"a": [i], "b": (i,)} for i in range(100_000)]
    before_wire = msgpack.packb(records)
    after_wire = msgpack.packb(joined)

    def before() -> Any:
        got = list(msgpack.unpackb(before_wire, use_list=False))
        for rec in got:  # as SizingDaskExecutor._attach did
            for k, v in rec.items():
                if isinstance(v, tuple):
                    rec[k] = list(v)
        return got

    def after() -> Any:
        got = msgpack.unpackb(after_wire)
        keys = [j["key"] for j in got]
        collector = _Collector("0" * 12, keys, items)
        for j in got:
            collector.add(j)
        return collector.records()

    old, new = before(), after()
    assert len(old) == len(new) == n
    for a, b in zip(old, new, strict=True):
        assert {k: b[k] for k in a} == a, (a, b)

    def stats(fn: Callable[[], Any]) -> dict[str, float]:
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return {"median": statistics.median(samples), "max": max(samples)}

    result = {
        "records": n,
        "before_transfer_bytes": len(before_wire),
        "after_transfer_bytes": len(after_wire),
        "before_record_bytes": statistics.median(
            len(msgpack.packb(r)) for r in records
        ),
        "after_record_bytes": statistics.median(len(j["record"]) for j in joined),
        "before_unpack": stats(before),
        "after_unpack_and_assemble": stats(after),
        "chunk_table": stats(lambda: chunk_table(new)),
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

    print("1. column_bytes per chunk: the old per-branch layout against basket_bytes")
    res["basket_bytes"] = b = section_basket_bytes(path, events, chunksize)
    print(
        f"   {b['branches']} branches, identical on {b['checked_ranges']} ranges: "
        f"before {b['before_seconds_per_chunk'] * 1e3:.3f} ms, after "
        f"{b['after_seconds_per_chunk'] * 1e3:.3f} ms per chunk "
        f"({b['speedup']:.1f}x); TBranch.count_branch alone "
        f"{b['count_branch_seconds_per_call'] * 1e6:.0f} us per branch"
    )
    print(f"2. end to end, variant C, {repeats} alternating rounds")
    res["end_to_end"] = e = section_end_to_end(path, chunksize, repeats)
    for name in ("before", "after"):
        x = e[name]
        print(
            f"   {name:<7} decorator {x['decorator_median'] * 1e3:.3f} ms per chunk = "
            f"{x['decorator_share'] * 100:.3f} % of the chunk walltime "
            f"({x['chunk_walltime_median'] * 1e3:.0f} ms, {x['chunks']} chunks)"
        )
    print(f"   same column_bytes: {e['same_column_bytes']}")
    print("3. first decorated chunk on a fresh worker")
    res["first_chunk"] = f = section_first_chunk(3 if args.quick else 5)
    print(
        f"   before: import coffea_sizing.predict "
        f"{f['before_import_predict_seconds_median'] * 1e3:.0f} ms (median); after: "
        f"import coffea_sizing {f['after_import_package_seconds_median'] * 1e3:.0f} "
        f"ms, predict imported: {f['after_predict_imported']}; pandas already loaded "
        f"by coffea: {f['pandas_loaded_by_coffea']}"
    )
    n = 2_000 if args.quick else 10_000
    print(f"4. records on the wire and report assembly, {n:,} records")
    res["assembly"] = a = section_assembly(n, repeats + 2)
    print(
        f"   one record: before {a['before_record_bytes']:.0f} B, after "
        f"{a['after_record_bytes']:.0f} B packed; collect_run transfer "
        f"{a['before_transfer_bytes'] / 1e6:.2f} MB before, "
        f"{a['after_transfer_bytes'] / 1e6:.2f} MB after"
    )
    print(
        f"   client: unpack {a['before_unpack']['median'] * 1e3:.0f} ms before, "
        f"unpack and assemble {a['after_unpack_and_assemble']['median'] * 1e3:.0f} "
        f"ms after; chunk_table {a['chunk_table']['median'] * 1e3:.0f} ms (max "
        f"{a['chunk_table']['max'] * 1e3:.0f} ms) with "
        f"{a['tracked_objects']:,} objects tracked by the GC"
    )
    if args.out:
        args.out.write_text(json.dumps(_jsonable(res), indent=1) + "\n")
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
