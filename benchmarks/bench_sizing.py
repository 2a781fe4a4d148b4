#!/usr/bin/env python
"""What measuring costs: coffea-sizing against plain coffea, side by side, in one run.

Usage::

    python benchmarks/bench_sizing.py            # the issue's sizes (4-7 minutes)
    python benchmarks/bench_sizing.py --quick    # smoke run, well under a minute
    python benchmarks/bench_sizing.py --out results.json --repeats 9

Three parts, one ``LocalCluster(n_workers=2, threads_per_worker=1)`` shared by all:

1. *Overhead*: the wall time of ``Runner(...)`` for four variants on the same
   generated NanoAOD-like file (1,000,000 events, chunksize 100,000, the 10-branch
   :class:`~coffea_sizing.sweep.BranchSweepProcessor`):

   A. ``DaskExecutor`` (plain coffea),
   A2. A again: its ratio to A is the noise floor of the machine,
   B. :class:`~coffea_sizing.SizingDaskExecutor`,
   C. :class:`~coffea_sizing.SizingDaskExecutor` with the processor decorated by
      :func:`~coffea_sizing.track_sizes`,

   after one warm-up run of each, in rotated order for every repeat; A2/A, B/A and
   C/A are paired within a repeat. Every run starts from an empty scheduler. Also
   the instrumentation's own
   time per chunk, timed inside the task.
2. *Scale of the report*: runs of 100 / 1,000 / 10,000 small chunks of a small
   generated file: the time to fetch the records (``collect_seconds``) and to build
   :func:`~coffea_sizing.chunk_table`, the serialized size of a record, and what the
   scheduler plugin holds during the run (polled), at its end, and after it.
3. *Throughput*: events/s and MB/s of part 1's runs, with and without sizing, and
   of the branch sweep (1, 2, 3, 5, 10 branches) on the same file.

Then PASS/FAIL against the targets of the issue (see :data:`TARGETS`). It is not a
test: the exit status is 0 whatever the verdicts, unless ``--strict`` is given.
Generated inputs are cached in ``$COFFEA_SIZING_CACHE`` (or
``~/.cache/coffea-sizing``) and reused. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import logging
import math
import os
import pathlib
import platform
import random
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import awkward as ak
import cloudpickle
import msgpack
from coffea import processor
from coffea.nanoevents import BaseSchema

import coffea_sizing
from coffea_sizing import SizingDaskExecutor, chunk_table, track_sizes
from coffea_sizing.plugin import scheduler_state
from coffea_sizing.records import CLIENT_FIELDS, pack_record
from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

# Workers cannot import this file: ship what it defines by value (as a notebook's).
if __name__ != "__main__" and __name__ in sys.modules:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: The issue's targets.
TARGETS: dict[str, float] = {
    "wall_ratio": 1.03,  # median of the paired ratios B/A and C/A
    "instrumentation_share": 0.005,  # of the median chunk walltime
    "assembly_seconds": 1.0,  # collect_seconds + chunk_table, at 10,000 chunks
    "record_bytes": 1024.0,  # one packed record (wire and scheduler), largest
    "linear_factor": 2.0,  # per-chunk cost at the largest scale / at the smallest
}

#: (label, executor, decorated processor)
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("A", "DaskExecutor", False),
    ("A2", "DaskExecutor again: the noise floor", False),
    ("B", "SizingDaskExecutor", False),
    ("C", "SizingDaskExecutor + @track_sizes", True),
)
#: The variants that run plain coffea (A2 is A again, to show the noise floor).
PLAIN = ("A", "A2")
#: The variants that measure.
SIZED = ("B", "C")
#: What the scheduler must hold after a run.
CLEAN_STATE = {"registered": True, "runs": [], "held": 0}
#: Branches of the scale file (Jet_pt is read; nJet comes with it).
SCALE_BRANCHES = ("run", "luminosityBlock", "event", "Jet_pt")


@dataclass(frozen=True)
class Config:
    quick: bool
    events: int
    events_per_basket: int
    chunksize: int
    num_branches: int
    repeats: int
    scale_chunks: tuple[int, ...]
    scale_events: int
    scale_events_per_basket: int
    workers: int
    poll_interval: float
    cache_dir: str
    sweep_repeats: int


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Overhead, report scale and throughput of coffea-sizing "
        "against plain coffea DaskExecutor (prints a table and PASS/FAIL).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for a smoke run (< 1 min): 20,000 events, 3 repeats, "
        "10/100/500 chunks",
    )
    parser.add_argument(
        "--events", type=int, help="events of the overhead file (default 1,000,000)"
    )
    parser.add_argument(
        "--chunksize", type=int, help="overhead chunksize (default events / 10)"
    )
    parser.add_argument(
        "--repeats", type=int, help="counted rounds (default 21, quick 3)"
    )
    parser.add_argument(
        "--scale-chunks",
        help="comma-separated chunk counts of the scale runs (default 100,1000,10000)",
    )
    parser.add_argument("--out", type=pathlib.Path, help="also write results as JSON")
    parser.add_argument(
        "--cache-dir",
        type=pathlib.Path,
        help="where generated inputs are kept (default $COFFEA_SIZING_CACHE or "
        "~/.cache/coffea-sizing)",
    )
    parser.add_argument("--skip-scale", action="store_true", help="skip part 2 (scale)")
    parser.add_argument(
        "--sweep-repeats",
        type=int,
        help="rounds of the branch sweep's throughput runs (default 5, quick 1)",
    )
    parser.add_argument(
        "--skip-sweep", action="store_true", help="skip the branch sweep's throughput"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target FAILs"
    )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    events = args.events or (20_000 if args.quick else 1_000_000)
    chunksize = args.chunksize or max(1, events // 10)
    if args.skip_scale:
        scale: tuple[int, ...] = ()
    elif args.scale_chunks:
        scale = tuple(int(x) for x in str(args.scale_chunks).split(",") if x.strip())
    else:
        scale = (10, 100, 500) if args.quick else (100, 1_000, 10_000)
    scale_events = max(20_000, 2 * max(scale, default=1))
    return Config(
        quick=bool(args.quick),
        events=events,
        events_per_basket=min(10_000, max(1, chunksize // 10)),
        chunksize=chunksize,
        num_branches=10,
        repeats=args.repeats or (3 if args.quick else 21),
        scale_chunks=scale,
        scale_events=scale_events,
        scale_events_per_basket=100,
        workers=2,
        poll_interval=0.25 if args.quick else 1.0,
        cache_dir=str(args.cache_dir or _default_cache_dir()),
        sweep_repeats=0
        if args.skip_sweep
        else (args.sweep_repeats or (1 if args.quick else 5)),
    )


# ====================================================================== inputs
def _default_cache_dir() -> pathlib.Path:
    """``coffea_sizing.datasets.default_cache_dir()``, without importing that module.

    The workers of a ``LocalCluster`` re-import this script (multiprocessing's
    spawn), so what it imports at the top is preloaded on every worker; the
    datasets module would preload pandas and hide the first chunk's import cost.
    """
    env = os.environ.get("COFFEA_SIZING_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "coffea-sizing"


def cached_nanoaod(
    cache_dir: str,
    n_events: int,
    events_per_basket: int,
    branches: Sequence[str] | None = None,
) -> str:
    """A generated file in ``cache_dir``, written once (atomically) and reused."""
    directory = pathlib.Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tag = "all" if branches is None else f"{len(branches)}br"
    path = directory / f"bench_{n_events}ev_{events_per_basket}perbasket_{tag}.root"
    if not path.exists():
        from coffea_sizing.datasets import make_nanoaod

        t0 = time.perf_counter()
        tmp = path.with_suffix(f".{os.getpid()}.tmp.root")
        make_nanoaod(
            tmp,
            n_events,
            events_per_basket=events_per_basket,
            branches=None if branches is None else list(branches),
            seed=0,
        )
        tmp.replace(path)
        print(f"  generated {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    return str(path)


class JetSumProcessor(processor.ProcessorABC):
    """The scale runs' processor: reads ``Jet_pt`` (and ``nJet``), returns 2 numbers."""

    def process(self, events: Any) -> dict[str, Any]:
        return {"nevents": len(events), "sumpt": float(ak.sum(events.Jet_pt))}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


# ======================================================================= runs
def run_once(
    client: Any,
    label: str,
    fileset: dict[str, list[str]],
    chunksize: int,
    make_processor: Callable[[bool], Any],
    schema: Any,
) -> dict[str, Any]:
    """One ``Runner`` call of variant ``label``: wall time, coffea's report."""
    _, _, decorated = next(v for v in VARIANTS if v[0] == label)
    if label in PLAIN:
        executor: Any = processor.DaskExecutor(client=client, status=False)
    else:
        executor = SizingDaskExecutor(client=client, status=False)
    runner = processor.Runner(
        executor=executor, savemetrics=True, schema=schema, chunksize=chunksize
    )
    proc = make_processor(decorated)
    calls: list[dict[str, Any]] = []
    wait_until_forgotten(client)
    gc.collect()
    cpu0 = sum(client.run(process_cpu).values()) + time.process_time()
    with spy_collect(calls):
        t0 = time.perf_counter()
        _, report = runner(fileset, treename="Events", processor_instance=proc)
        wall = time.perf_counter() - t0
    cpu = sum(client.run(process_cpu).values()) + time.process_time() - cpu0
    return {
        "variant": label,
        "wall": wall,
        "cpu": cpu,
        "collect_calls": calls,
        "returned_at": time.time(),
        "entries": int(report["entries"]),
        "bytesread": int(report["bytesread"]),
        "chunks": int(report["chunks"]),
        "report": report,
    }


def _scheduler_task_count(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def wait_until_forgotten(client: Any, timeout: float = 10.0) -> None:
    """Wait until the scheduler holds no task of an earlier run.

    Right after a run the scheduler still holds its tasks for a moment (the final
    reductions in memory). ``DaskExecutor`` names its tasks by their content, so
    the same run started at once would find its final result already computed
    (A again right after A ran in 0.92 of A's time); coffea-sizing's per-run keys
    never match. Every run starts from an empty scheduler instead.
    """
    deadline = time.monotonic() + timeout
    while (
        client.run_on_scheduler(_scheduler_task_count) and time.monotonic() < deadline
    ):
        time.sleep(0.05)


def process_cpu() -> float:
    """CPU seconds (user + system, all threads) of this process, on a worker."""
    return time.process_time()


@contextlib.contextmanager
def spy_collect(calls: list[dict[str, Any]]) -> Iterator[None]:
    """Note every end of a run by the executor: seconds, records still missing.

    Records stream to the client as chunks finish; what is left after the last
    result is closing the run (and waiting for stragglers, normally none). Wraps
    the executor's method, in this process only.
    """
    from coffea_sizing.executor import SizingDaskExecutor

    real = SizingDaskExecutor._end

    def _end(self: Any, client: Any, run_id: str, dispatcher: Any, **kw: Any) -> Any:
        collector = dispatcher.runs.get(run_id)
        missing = collector.missing() if collector is not None else None
        t0 = time.perf_counter()
        info = real(self, client, run_id, dispatcher, **kw)
        calls.append({"seconds": time.perf_counter() - t0, "missing": missing})
        return info

    SizingDaskExecutor._end = _end  # type: ignore[method-assign]
    try:
        yield
    finally:
        SizingDaskExecutor._end = real  # type: ignore[method-assign]


def round_trips(client: Any, repeats: int = 20) -> float:
    """Median seconds of the executor's own calls to the scheduler for one run.

    Registering the plugin (a no-op once registered), asking the workers which
    coffea-sizing they have, opening and closing the run, on an idle cluster: the
    per-run cost outside the chunks.
    """
    import uuid

    from coffea_sizing.executor import _check_workers, _on_loop
    from coffea_sizing.plugin import _ensure_plugin

    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _ensure_plugin(client)
        _check_workers(client)
        run_id = uuid.uuid4().hex[:12]
        secret = uuid.uuid4().hex
        _on_loop(
            client,
            "coffea_sizing_begin",
            60,
            run_id=run_id,
            client=client.id,
            secret=secret,
        )
        _on_loop(client, "coffea_sizing_end", 60, run_id=run_id, secret=secret)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def bootstrap_median_interval(
    values: Sequence[float], resamples: int = 4000, seed: int = 0
) -> list[float]:
    """95 % bootstrap interval of the median of ``values``."""
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return [medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]]


def _ratio_summary(ratios: dict[str, list[float]]) -> dict[str, Any]:
    return {
        k: {
            "min": min(v),
            "median": statistics.median(v),
            "max": max(v),
            "median_95_interval": bootstrap_median_interval(v),
            "all": v,
        }
        for k, v in ratios.items()
    }


def _records(run: dict[str, Any]) -> list[dict[str, Any]]:
    return list(run["report"].get("sizing") or [])


def _median(values: Iterator[Any] | Sequence[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    return statistics.median(kept) if kept else None


def _minmax(values: Sequence[float]) -> list[float]:
    return [min(values), max(values)] if values else []


def wire_part(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a report record the worker packed (``pack_record``)."""
    return {k: v for k, v in record.items() if k not in CLIENT_FIELDS}


def record_sizes(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Serialized size of the records.

    ``wire``: the packed record (``coffea_sizing.records.pack_record``) a worker
    sends in its task's metadata and the scheduler passes on to the client.
    ``report``: one record of ``report["sizing"]`` as msgpack (what the client
    holds, with the field names and the chunk's identity), and as JSON.
    """
    wire = [len(pack_record(wire_part(rec))) for rec in records]
    report = [len(msgpack.dumps(rec)) for rec in records]
    as_json = [len(json.dumps(rec)) for rec in records]
    return {
        "records": len(records),
        "wire_median": _median(wire),
        "wire_max": max(wire, default=None),
        "report_msgpack_median": _median(report),
        "report_msgpack_max": max(report, default=None),
        "json_median": _median(as_json),
        "json_max": max(as_json, default=None),
    }


def check_state(client: Any) -> dict[str, Any]:
    """``scheduler_state`` and whether it is the clean state."""
    state = scheduler_state(client)
    return {"clean": state == CLEAN_STATE, **state}


# ============================================================ part 1: overhead
def _decorator_seconds(rec: dict[str, Any]) -> float | None:
    """What ``@track_sizes`` adds to ``process()``: coffea's processtime minus the
    time of the undecorated body the decorator measured."""
    if rec.get("processtime") is None or rec.get("process_walltime") is None:
        return None
    return float(rec["processtime"]) - float(rec["process_walltime"])


def bench_overhead(client: Any, cfg: Config) -> dict[str, Any]:
    """Part 1 (overhead, instrumentation time) and part 3 (throughput)."""
    path = cached_nanoaod(cfg.cache_dir, cfg.events, cfg.events_per_basket)
    fileset = {"generated": [path]}
    labels = [v[0] for v in VARIANTS]

    def make(decorated: bool) -> Any:
        cls = track_sizes(BranchSweepProcessor) if decorated else BranchSweepProcessor
        return cls(cfg.num_branches)

    def one(label: str) -> dict[str, Any]:
        return run_once(client, label, fileset, cfg.chunksize, make, SweepSchema)

    print(
        f"1. overhead: {cfg.events:,} events, chunksize {cfg.chunksize:,}; "
        "warm-up A, B, C",
        flush=True,
    )
    warmup = {label: one(label) for label in labels}
    runs: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for r in range(cfg.repeats):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]
        line = []
        for position, label in enumerate(order):
            res = one(label)
            res.update(repeat=r, position=position)
            if label not in PLAIN:
                states.append(check_state(client))
            runs.append(res)
            line.append(f"{label} {res['wall']:.2f} s")
        print(f"   repeat {r + 1}/{cfg.repeats} ({''.join(order)}): " + ", ".join(line))

    walls = {lab: [x["wall"] for x in runs if x["variant"] == lab] for lab in labels}
    cpus = {lab: [x["cpu"] for x in runs if x["variant"] == lab] for lab in labels}
    paired = {(x["repeat"], x["variant"]): x for x in runs}

    def paired_ratios(what: str) -> dict[str, list[float]]:
        return {
            f"{lab}/A": [
                paired[r, lab][what] / paired[r, "A"][what] for r in range(cfg.repeats)
            ]
            for lab in labels[1:]
        }

    ratios = paired_ratios("wall")
    cpu_ratios = paired_ratios("cpu")

    # ---- the instrumentation's own time per chunk, timed inside the task
    instrumentation: dict[str, Any] = {}
    for lab in SIZED:
        recs = [rec for x in runs if x["variant"] == lab for rec in _records(x)]
        chunk_wall = _median(rec["walltime"] for rec in recs)
        measuring = _median(rec["sizing_overhead"] for rec in recs)
        decorator = (
            _median(_decorator_seconds(rec) for rec in recs) if lab == "C" else None
        )
        total = (measuring or 0.0) + (decorator or 0.0)
        cold = _records(warmup[lab])
        cold_decorator = [d for d in map(_decorator_seconds, cold) if d is not None]
        instrumentation[lab] = {
            "chunks": len(recs),
            "chunk_walltime_median": chunk_wall,
            "processtime_median": _median(rec["processtime"] for rec in recs),
            "chunk_cputime_median": _median(rec["cputime"] for rec in recs),
            "sizing_overhead_median": measuring,
            "sizing_overhead_max": max(rec["sizing_overhead"] for rec in recs),
            "decorator_median": decorator,
            "decorator_max": (
                max(d for d in map(_decorator_seconds, recs) if d is not None)
                if lab == "C"
                else None
            ),
            "total_per_chunk": total,
            "share_of_chunk": total / chunk_wall if chunk_wall else None,
            "warmup_sizing_overhead_max": max(rec["sizing_overhead"] for rec in cold),
            "warmup_decorator_max": max(cold_decorator, default=None),
            "record_sizes": record_sizes(recs),
            "runs_with_collect_retries": sum(
                len(x["collect_calls"]) > 1 for x in runs if x["variant"] == lab
            ),
        }

    # ---- the wall ratio the in-task figures predict: the chunks each worker runs
    # one after the other, plus the executor's round trips to the scheduler
    trips = round_trips(client)
    wall_a = statistics.median(walls["A"])
    per_worker = math.ceil(runs[0]["chunks"] / cfg.workers)
    for lab in SIZED:
        inst = instrumentation[lab]
        inst["round_trips_per_run"] = trips
        inst["estimated_wall_ratio"] = (
            1 + (trips + per_worker * inst["total_per_chunk"]) / wall_a
        )

    # ---- part 3: throughput of the same runs
    throughput: dict[str, Any] = {}
    for lab in labels:
        mine = [x for x in runs if x["variant"] == lab]
        out_bytes = [
            sum(rec.get("output_compressed_bytes") or 0 for rec in _records(x))
            for x in mine
        ]
        throughput[lab] = {
            "events_per_s": _median(x["entries"] / x["wall"] for x in mine),
            "input_mb_per_s": _median(x["bytesread"] / x["wall"] / 1e6 for x in mine),
            "output_compressed_mb_per_s": (
                None
                if lab in PLAIN
                else _median(
                    b / x["wall"] / 1e6 for b, x in zip(out_bytes, mine, strict=True)
                )
            ),
            "bytesread_per_run": mine[0]["bytesread"],
            "output_compressed_bytes_per_run": None if lab in PLAIN else out_bytes[0],
        }

    return {
        "file": path,
        "events": cfg.events,
        "chunksize": cfg.chunksize,
        "chunks_per_run": runs[0]["chunks"],
        "wall": {
            lab: {"median": _median(v), "minmax": _minmax(v), "all": v}
            for lab, v in walls.items()
        },
        "cpu": {
            lab: {"median": _median(v), "minmax": _minmax(v), "all": v}
            for lab, v in cpus.items()
        },
        "ratios": _ratio_summary(ratios),
        "cpu_ratios": _ratio_summary(cpu_ratios),
        "runs": [
            {k: v for k, v in x.items() if k not in {"report", "returned_at"}}
            for x in runs
        ],
        "instrumentation": instrumentation,
        "throughput": throughput,
        "states_after": states,
    }


# ================================================ part 3b: the sweep's throughput
def bench_sweep_throughput(client: Any, cfg: Config) -> dict[str, Any]:
    """Events/s and MB/s of the branch sweep (1, 2, 3, 5, 10 branches) on the
    overhead file, A, B and C in rotated order, ``sweep_repeats`` rounds.

    A ships the same lz4 payloads as B and C (the outputs are identical and
    compressed by the same coffea code), but records nothing: its output MB/s uses
    the ``output_compressed_bytes`` measured by B on the same chunks.
    """
    from coffea_sizing.sweep import SWEEP_BRANCHES

    path = cached_nanoaod(cfg.cache_dir, cfg.events, cfg.events_per_basket)
    fileset = {"generated": [path]}
    labels = ["A", *SIZED]
    counts = [n for n in (1, 2, 3, 5, 10) if n <= len(SWEEP_BRANCHES)]
    print(
        f"3. sweep throughput: {len(counts)} branch counts x {cfg.sweep_repeats} "
        "rounds of A, B, C",
        flush=True,
    )
    rows = []
    for n in counts:

        def make(decorated: bool, n: int = n) -> Any:
            cls = (
                track_sizes(BranchSweepProcessor) if decorated else BranchSweepProcessor
            )
            return cls(n)

        runs: list[dict[str, Any]] = []
        for r in range(cfg.sweep_repeats):
            order = labels[r % len(labels) :] + labels[: r % len(labels)]
            for label in order:
                res = run_once(client, label, fileset, cfg.chunksize, make, SweepSchema)
                res["out_bytes"] = sum(
                    rec.get("output_compressed_bytes") or 0 for rec in _records(res)
                )
                res.pop("report")
                res["round"] = r
                runs.append(res)
        shipped = _median(x["out_bytes"] for x in runs if x["variant"] == "B")
        row: dict[str, Any] = {"branches": n}
        for lab in labels:
            mine = [x for x in runs if x["variant"] == lab]
            row[lab] = {
                "wall_median": _median(x["wall"] for x in mine),
                "events_per_s": _median(x["entries"] / x["wall"] for x in mine),
                "input_mb_per_s": _median(
                    x["bytesread"] / x["wall"] / 1e6 for x in mine
                ),
                "output_compressed_mb_per_s": _median(
                    (shipped if lab == "A" else x["out_bytes"]) / x["wall"] / 1e6
                    for x in mine
                ),
                "bytesread_per_run": mine[0]["bytesread"],
            }
        row["output_compressed_bytes_per_run"] = shipped
        wall = {(x["round"], x["variant"]): x["wall"] for x in runs}
        for lab in SIZED:  # paired within a round, as in part 1
            paired = [wall[r, lab] / wall[r, "A"] for r in range(cfg.sweep_repeats)]
            row[f"{lab}/A"] = {
                "median": _median(paired),
                "minmax": _minmax(paired),
                "all": paired,
            }
        rows.append(row)
        print(
            f"   {n:>2} branches: events/s "
            + ", ".join(f"{lab} {row[lab]['events_per_s']:,.0f}" for lab in labels),
            flush=True,
        )
    return {
        "file": path,
        "chunksize": cfg.chunksize,
        "repeats": cfg.sweep_repeats,
        "rows": rows,
    }


# ============================================================== part 2: scale
_SIZE_CACHE = "_coffea_sizing_bench_sizes"


def _deep_size(obj: Any, seen: set[int]) -> int:
    """``sys.getsizeof`` of ``obj`` and everything in it (dicts, lists, tuples),
    skipping objects in ``seen`` (already counted) and adding the others to it."""
    stack = [obj]
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset | collections.deque):
            stack.extend(o)
    return total


def plugin_footprint(dask_scheduler: Any, drop_cache: bool = False) -> dict[str, Any]:
    """What the coffea-sizing plugin holds on the scheduler now, in bytes.

    Runs on the scheduler (``client.run_on_scheduler``). The deep size of each entry
    of each run (records, scheduler fields, attempts, merges, errors) is computed
    once and cached on the scheduler object under a key of the benchmark's own, so
    a poll costs little even with 10,000 records held; entries are not changed
    once filed. Objects shared between records (the field names, which msgpack
    interns, ``None``, ``True``, small integers) are counted once. The topic's
    event log in the scheduler's broker holds the same record objects as the
    plugin: only its own tuples and timestamps are counted.

    Also counts the tasks whose results the workers hold (``memory`` state) and
    their ``nbytes``: results kept until a run ends weigh on the workers.
    """
    from coffea_sizing.plugin import TOPIC, SizingSchedulerPlugin

    t0 = time.perf_counter()
    if drop_cache:
        with contextlib.suppress(AttributeError):
            delattr(dask_scheduler, _SIZE_CACHE)
    cache: dict[Any, Any] = getattr(dask_scheduler, _SIZE_CACHE, {})
    sizes: dict[tuple[str, str, str], int] = cache.setdefault("sizes", {})
    seen: set[int] = cache.setdefault("seen", set())
    plugin = dask_scheduler.plugins.get(SizingSchedulerPlugin.name)
    runs: dict[str, Any] = getattr(plugin, "runs", {})
    total = sys.getsizeof(runs)
    records = 0
    live: set[tuple[str, str, str]] = set()
    for run_id, run in runs.items():
        total += sys.getsizeof(run_id) + sys.getsizeof(run) + sys.getsizeof(vars(run))
        for name in ("attempts", "running", "started", "cut", "lost"):
            table = getattr(run, name)
            total += sys.getsizeof(table)
            for key, value in list(table.items()):
                entry = (run_id, name, key)
                live.add(entry)
                size = sizes.get(entry)
                if size is None:
                    size = sizes[entry] = _deep_size(key, seen) + _deep_size(
                        value, seen
                    )
                total += size
        records += 0  # records are streamed, never held
    for entry in [e for e in sizes if e not in live]:
        del sizes[entry]
    if not drop_cache:
        setattr(dask_scheduler, _SIZE_CACHE, cache)
    topics = getattr(getattr(dask_scheduler, "_broker", None), "_topics", {})
    events = topics[TOPIC].events if TOPIC in topics else ()
    log_bytes = (
        sys.getsizeof(events)
        + sum(sys.getsizeof(ev) + sys.getsizeof(ev[0]) for ev in events)
        if events
        else 0
    )
    held = [ts for ts in dask_scheduler.tasks.values() if ts.state == "memory"]
    return {
        "time": time.time(),
        "runs": len(runs),
        "records": records,
        "plugin_bytes": total,
        "topic_events": len(events),
        "topic_log_bytes": log_bytes,
        "tasks_in_memory": len(held),
        "task_memory_bytes": sum(ts.get_nbytes() for ts in held),
        "poll_seconds": time.perf_counter() - t0,
    }


class FootprintPoller:
    """Polls :func:`plugin_footprint` from a background thread during a run."""

    def __init__(self, client: Any, interval: float) -> None:
        self.client = client
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.client.run_on_scheduler(plugin_footprint))
            except Exception as err:  # noqa: BLE001 - a missed sample is not fatal
                self.errors.append(repr(err))
            self._stop.wait(self.interval)

    def __enter__(self) -> FootprintPoller:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def footprint_at_end_run(sink: list[dict[str, Any]]) -> Iterator[None]:
    """Measure the plugin's footprint just before the executor closes the run.

    Wraps the executor's method, in this process only, for the ``with`` block.
    """
    from coffea_sizing.executor import SizingDaskExecutor

    real = SizingDaskExecutor._end

    def _end(self: Any, client: Any, run_id: str, dispatcher: Any, **kw: Any) -> Any:
        try:
            sink.append(client.run_on_scheduler(plugin_footprint))
        except Exception as err:  # noqa: BLE001 - never break the run
            sink.append({"error": repr(err)})
        return real(self, client, run_id, dispatcher, **kw)

    SizingDaskExecutor._end = _end  # type: ignore[method-assign]
    try:
        yield
    finally:
        SizingDaskExecutor._end = real  # type: ignore[method-assign]


def bench_scale(client: Any, cfg: Config) -> dict[str, Any]:
    """Part 2: report assembly, record size and scheduler memory at 100 to 10,000."""
    path = cached_nanoaod(
        cfg.cache_dir,
        cfg.scale_events,
        cfg.scale_events_per_basket,
        branches=SCALE_BRANCHES,
    )
    fileset = {"scale": [path]}

    def make(decorated: bool) -> Any:
        return (track_sizes(JetSumProcessor) if decorated else JetSumProcessor)()

    print(
        f"2. scale: {cfg.scale_events:,}-event file ({', '.join(SCALE_BRANCHES)}), "
        f"chunks {', '.join(f'{n:,}' for n in cfg.scale_chunks)}; variant C "
        "(largest records), A for the wall time",
        flush=True,
    )
    # warm-up: coffea's preprocessing of the file (cached afterwards) and imports
    run_once(client, "A", fileset, cfg.scale_events, make, BaseSchema)
    client.run_on_scheduler(plugin_footprint, drop_cache=True)
    rows = []
    for n in cfg.scale_chunks:
        chunksize = max(1, round(cfg.scale_events / n))
        with FootprintPoller(client, cfg.poll_interval) as plain_poller:
            plain = run_once(client, "A", fileset, chunksize, make, BaseSchema)
        at_end: list[dict[str, Any]] = []
        with (
            FootprintPoller(client, cfg.poll_interval) as poller,
            footprint_at_end_run(at_end),
        ):
            sized = run_once(client, "C", fileset, chunksize, make, BaseSchema)
        report = sized["report"]
        t0 = time.perf_counter()
        table = chunk_table(report)
        table_s = time.perf_counter() - t0
        chunks = int(report["chunks"])
        collect_s = float(report["sizing_run"]["collect_seconds"])
        merges = list(report.get("sizing_merges") or [])
        stops = [
            r["compute_stop"] for r in [*_records(sized), *merges] if r["compute_stop"]
        ]
        after = client.run_on_scheduler(plugin_footprint, drop_cache=True)
        state = check_state(client)
        during = [s for s in poller.samples if s["runs"]]
        peak = at_end[-1] if at_end and "plugin_bytes" in at_end[-1] else None
        peak_bytes = max(
            [s["plugin_bytes"] for s in during]
            + ([peak["plugin_bytes"]] if peak else []),
            default=0,
        )
        row = {
            "chunks": chunks,
            "chunksize": chunksize,
            "table_rows": len(table),
            "merges": len(merges),
            "missing": report["sizing_run"]["missing"],
            "wall_plain": plain["wall"],
            "wall_sizing": sized["wall"],
            "collect_seconds": collect_s,
            "collect_calls": sized["collect_calls"],
            "chunk_table_seconds": table_s,
            "assembly_seconds": collect_s + table_s,
            "after_last_task_seconds": (
                sized["returned_at"] - max(stops) if stops else None
            ),
            "record_sizes": record_sizes(_records(sized)),
            "plugin_peak_bytes": peak_bytes,
            "plugin_at_end": peak,
            "plugin_polls": len(during),
            "plugin_poll_seconds_max": max(
                (s["poll_seconds"] for s in during), default=None
            ),
            "plugin_samples": [
                {k: s[k] for k in ("time", "records", "plugin_bytes", "topic_events")}
                for s in during
            ],
            "poll_errors": poller.errors + plain_poller.errors,
            "tasks_in_memory_peak": {
                "A": max(
                    (x["tasks_in_memory"] for x in plain_poller.samples), default=0
                ),
                "C": max(
                    [x["tasks_in_memory"] for x in poller.samples]
                    + ([peak["tasks_in_memory"]] if peak else [])
                ),
            },
            "task_memory_bytes_peak": {
                "A": max(
                    (x["task_memory_bytes"] for x in plain_poller.samples), default=0
                ),
                "C": max(
                    [x["task_memory_bytes"] for x in poller.samples]
                    + ([peak["task_memory_bytes"]] if peak else [])
                ),
            },
            "after": after,
            "state_after": state,
        }
        row["per_chunk"] = {
            "collect_seconds": collect_s / chunks,
            "chunk_table_seconds": table_s / chunks,
            "assembly_seconds": (collect_s + table_s) / chunks,
            "plugin_bytes": peak_bytes / chunks,
            "wall_sizing": sized["wall"] / chunks,
            "wall_plain": plain["wall"] / chunks,
        }
        rows.append(row)
        print(
            f"   {chunks:>6,} chunks: wall A {plain['wall']:.1f} s, C {sized['wall']:.1f} s;"
            f" collect {collect_s:.3f} s, chunk_table {table_s:.3f} s; plugin peak "
            f"{peak_bytes / 1e6:.2f} MB; after: {state}",
            flush=True,
        )
    linear: dict[str, Any] = {}
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        for name in ("collect_seconds", "chunk_table_seconds", "plugin_bytes"):
            a, b = first["per_chunk"][name], last["per_chunk"][name]
            linear[name] = b / a if a else None
    return {"file": path, "events": cfg.scale_events, "rows": rows, "growth": linear}


# ============================================================ verdicts, table
def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return {
        "ratio": f"{value:.3f}",
        "share": f"{value * 100:.3f} %",
        "s": f"{value:.3f} s",
        "B": f"{value:.0f} B",
        "x": f"{value:.2f}x",
        "count": f"{value:.0f}",
    }[unit]


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS/FAIL of each target."""
    verdicts: list[dict[str, Any]] = []

    def add(
        name: str,
        value: float | None,
        limit: float,
        unit: str,
        interval: Sequence[float] | None = None,
    ) -> None:
        verdict = {
            "target": name,
            "value": value,
            "limit": limit,
            "unit": unit,
            "pass": value is not None and value <= limit,
        }
        if interval is not None:
            # a median from noisy runs: say whether this run can tell at all
            lo, hi = interval
            verdict["interval"] = [lo, hi]
            verdict["conclusive"] = not lo <= limit <= hi
        verdicts.append(verdict)

    over = results.get("overhead")
    scale = results.get("scale")
    rows = scale["rows"] if scale else []
    if over:
        floor = over["ratios"].get("A2/A")
        note = (
            ""
            if floor is None
            else f" (noise floor: A again / A = {floor['median']:.3f}, 95 % interval "
            f"{floor['median_95_interval'][0]:.3f}-{floor['median_95_interval'][1]:.3f})"
        )
        for key, ratio in over["ratios"].items():
            if key.split("/")[0] in PLAIN:
                continue
            add(
                f"median wall ratio {key}{note}",
                ratio["median"],
                TARGETS["wall_ratio"],
                "ratio",
                ratio["median_95_interval"],
            )
        for lab, inst in over["instrumentation"].items():
            add(
                f"wall ratio {lab}/A predicted by the in-task time and round trips",
                inst["estimated_wall_ratio"],
                TARGETS["wall_ratio"],
                "ratio",
            )
        for lab, inst in over["instrumentation"].items():
            add(
                f"instrumentation per chunk / chunk walltime, {lab}",
                inst["share_of_chunk"],
                TARGETS["instrumentation_share"],
                "share",
            )
    if scale and rows:
        last = rows[-1]
        add(
            f"report assembly for {last['chunks']:,} chunks (collect + chunk_table)",
            last["assembly_seconds"],
            TARGETS["assembly_seconds"],
            "s",
        )
        for name, factor in scale["growth"].items():
            add(
                f"linear growth of {name} per chunk ({last['chunks']:,} vs "
                f"{rows[0]['chunks']:,} chunks)",
                factor,
                TARGETS["linear_factor"],
                "x",
            )
    if over:
        for lab, inst in over["instrumentation"].items():
            add(
                f"record size on the wire and on the scheduler (packed, max), {lab}, "
                f"{results['config']['num_branches']} branches",
                inst["record_sizes"]["wire_max"],
                TARGETS["record_bytes"],
                "B",
            )
    if rows:
        add(
            "record size on the wire and on the scheduler (packed, max), C, scale "
            f"run of {rows[-1]['chunks']:,}",
            rows[-1]["record_sizes"]["wire_max"],
            TARGETS["record_bytes"],
            "B",
        )
    clean = [s["clean"] for s in over["states_after"]] if over else []
    for row in rows:
        clean.append(row["state_after"]["clean"])
        clean.append(row["after"]["records"] == 0 and row["after"]["runs"] == 0)
    if clean:
        add(
            f"runs leaving state on the scheduler ({len(clean)} checks)",
            sum(not c for c in clean),
            0,
            "count",
        )
    return verdicts


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.3f} %"


def format_report(results: dict[str, Any]) -> str:
    cfg = results["config"]
    env = results["environment"]
    out: list[str] = []
    w = out.append
    w("")
    w("coffea-sizing benchmark" + (" (--quick)" if cfg["quick"] else ""))
    w(
        f"  {env['cpus']} CPUs, load average {env['load_start']} at start, "
        f"{env['load_end']} at end; python {env['python']}, coffea {env['coffea']}, "
        f"dask {env['dask']}, distributed {env['distributed']}, uproot {env['uproot']}"
    )
    if env.get("commit") or env.get("date"):
        out.append(
            f"  coffea-sizing {env.get('coffea_sizing', '?')} at commit "
            f"{env.get('commit') or '?'}, {env.get('date') or '?'}"
        )
    w(
        f"  LocalCluster({cfg['workers']} workers x 1 thread), shared by all runs; "
        "medians everywhere"
    )
    over = results.get("overhead")
    if over:
        w("")
        w(
            f"1. Overhead: {over['events']:,} events, chunksize {over['chunksize']:,} "
            f"({over['chunks_per_run']} chunks), BranchSweepProcessor(10), "
            f"{len(over['ratios']['B/A']['all'])} rotated rounds of "
            f"{'/'.join(over['wall'])} after a warm-up"
        )
        w(
            f"   {'variant':<40}{'wall: median':>13}{'min-max':>14}"
            f"{'CPU: median':>14}{'min-max':>14}"
        )
        for lab, name, _ in VARIANTS:
            if lab not in over["wall"]:
                continue
            wall, cpu = over["wall"][lab], over["cpu"][lab]
            w(
                f"   {lab} {name:<38}{wall['median']:>11.2f} s"
                f"{wall['minmax'][0]:>8.2f}-{wall['minmax'][1]:<5.2f}"
                f"{cpu['median']:>12.2f} s{cpu['minmax'][0]:>8.2f}-{cpu['minmax'][1]:<5.2f}"
            )
        w(
            f"   {'paired ratio to A (CPU: workers + client/scheduler process)':<60}"
            f"{'min':>7}{'median':>8}{'max':>8}   95 % interval of the median"
        )
        for kind, key in (("wall", "ratios"), ("CPU", "cpu_ratios")):
            for pair, r in over[key].items():
                lo, hi = r["median_95_interval"]
                w(
                    f"   {kind + ' ' + pair:<60}{r['min']:>7.3f}{r['median']:>8.3f}"
                    f"{r['max']:>8.3f}   {lo:.3f}-{hi:.3f}"
                )
        inst = over["instrumentation"]
        w(
            "   the wall ratio the in-task time predicts (per-worker chunks x total "
            f"below + {inst['B']['round_trips_per_run'] * 1e3:.1f} ms of round trips "
            "to the scheduler per run): "
            + ", ".join(
                f"{k}/A {v['estimated_wall_ratio']:.4f}" for k, v in inst.items()
            )
        )
        w("")
        w(
            "   Instrumentation per chunk, timed inside the task          B             C"
        )
        rows: list[tuple[str, str, Callable[[Any], str]]] = [
            ("chunk walltime (record 'walltime')", "chunk_walltime_median", _ms),
            ("chunk CPU of the task thread ('cputime')", "chunk_cputime_median", _ms),
            (
                "executor measuring ('sizing_overhead', probe incl.)",
                "sizing_overhead_median",
                _ms,
            ),
            ("decorator (processtime - process_walltime)", "decorator_median", _ms),
            ("total", "total_per_chunk", _ms),
            ("share of chunk walltime", "share_of_chunk", _pct),
            (
                "first chunks, fresh workers: measuring max",
                "warmup_sizing_overhead_max",
                _ms,
            ),
            ("first chunks, fresh workers: decorator max", "warmup_decorator_max", _ms),
            (
                "runs whose records were fetched twice or more",
                "runs_with_collect_retries",
                str,
            ),
        ]
        for text, key, fmt in rows:
            w(f"   {text:<52}{fmt(inst['B'][key]):>14}{fmt(inst['C'][key]):>14}")
        for text, key in (
            ("record on the wire, packed (median)", "wire_median"),
            ("record in the report, msgpack (median)", "report_msgpack_median"),
        ):
            w(
                f"   {text:<52}{inst['B']['record_sizes'][key]:>12.0f} B"
                f"{inst['C']['record_sizes'][key]:>12.0f} B"
            )
    scale = results.get("scale")
    if scale and scale["rows"]:
        w("")
        w(
            f"2. Scale of the report: {scale['events']:,}-event file, small chunks, "
            "variant C; assembly = collect_seconds + chunk_table(); calls = "
            "collect_run calls (more than 1: records were missing at first); held = "
            "peak number of task results held in worker memory"
        )
        w(
            f"   {'chunks':>7}{'wall A':>9}{'wall C':>9}{'collect':>10}{'table':>9}"
            f"{'calls':>6}{'assembly':>10}{'per chunk':>11}{'wire':>6}{'report':>8}"
            f"{'plugin peak':>13}{'per chunk':>11}{'after':>8}{'held A':>8}{'held C':>8}"
        )
        for row in scale["rows"]:
            rs = row["record_sizes"]
            w(
                f"   {row['chunks']:>7,}{row['wall_plain']:>8.1f}s{row['wall_sizing']:>8.1f}s"
                f"{row['collect_seconds']:>9.3f}s{row['chunk_table_seconds']:>8.3f}s"
                f"{len(row['collect_calls']):>6}{row['assembly_seconds']:>9.3f}s"
                f"{row['per_chunk']['assembly_seconds'] * 1e6:>8.1f} us"
                f"{rs['wire_median']:>6.0f}{rs['report_msgpack_median']:>8.0f}"
                f"{row['plugin_peak_bytes'] / 1e6:>10.2f} MB"
                f"{row['per_chunk']['plugin_bytes']:>9.0f} B"
                f"{'clean' if row['state_after']['clean'] else 'LEFT':>8}"
                f"{row['tasks_in_memory_peak']['A']:>8,}"
                f"{row['tasks_in_memory_peak']['C']:>8,}"
            )
        if scale["growth"]:
            w(
                "   per-chunk cost at the largest / at the smallest scale: "
                + ", ".join(
                    f"{k} {v:.2f}x" for k, v in scale["growth"].items() if v is not None
                )
            )
    if over:
        w("")
        w("3. Throughput (part 1's runs)")
        w(f"   {'variant':<40}{'events/s':>12}{'input MB/s':>12}{'output MB/s':>13}")
        for lab, name, _ in VARIANTS:
            if lab not in over["throughput"]:
                continue
            tp = over["throughput"][lab]
            outp = tp["output_compressed_mb_per_s"]
            w(
                f"   {lab} {name:<38}{tp['events_per_s']:>12,.0f}"
                f"{tp['input_mb_per_s']:>12.1f}"
                f"{'-' if outp is None else f'{outp:.4f}':>13}"
            )
        w(
            "   input = coffea's bytesread (compressed bytes read from the file); "
            "output = sum of output_compressed_bytes"
        )
    sweep = results.get("sweep_throughput")
    if sweep and sweep["rows"]:
        w("")
        w(
            f"   The branch sweep on the same file (chunksize {sweep['chunksize']:,}), "
            f"medians of {sweep.get('repeats', cfg.get('sweep_repeats', '?'))} rounds (few: for orientation, the "
            "ratios of part 1 are the measurement); A ships the payloads B measured"
        )
        w(
            f"   {'branches':>8}  {'events/s A':>11}{'B':>11}{'C':>11}"
            f"  {'wall C/A: median':>16}{'min-max':>12}  {'input MB/s A':>13}{'C':>7}"
            f"  {'output MB/s A':>14}{'C':>8}"
        )
        for row in sweep["rows"]:
            ev = [row[lab]["events_per_s"] for lab in ("A", "B", "C")]
            ca = row.get("C/A") or {"median": ev[0] / ev[2], "minmax": [0.0, 0.0]}
            lo, hi = ca["minmax"] or [0.0, 0.0]
            w(
                f"   {row['branches']:>8}  {ev[0]:>11,.0f}{ev[1]:>11,.0f}{ev[2]:>11,.0f}"
                f"  {ca['median']:>16.3f}{lo:>7.2f}-{hi:<4.2f}"
                f"  {row['A']['input_mb_per_s']:>13.1f}{row['C']['input_mb_per_s']:>7.1f}"
                f"  {row['A']['output_compressed_mb_per_s']:>14.4f}"
                f"{row['C']['output_compressed_mb_per_s']:>8.4f}"
            )
    w("")
    w("Targets")
    for v in results["verdicts"]:
        w(
            f"  {'PASS' if v['pass'] else 'FAIL'}  {v['target']}: "
            f"{_fmt(v['value'], v['unit'])} (<= {_fmt(v['limit'], v['unit'])})"
            + (
                ""
                if "interval" not in v
                else f", 95 % interval {v['interval'][0]:.3f}-{v['interval'][1]:.3f}"
                + ("" if v["conclusive"] else ": holds the limit, this run cannot tell")
            )
        )
    return "\n".join(out)


def environment() -> dict[str, Any]:
    import coffea
    import dask
    import distributed
    import uproot

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "coffea": coffea.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "uproot": uproot.__version__,
        "awkward": ak.__version__,
        "coffea_sizing": coffea_sizing.__version__,
        "commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": _load(),
    }


def _git_commit() -> str | None:
    """The commit of the checkout the benchmark runs from (``+`` if modified)."""
    import subprocess

    root = pathlib.Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not POSIX
        return "?"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    from distributed import Client, LocalCluster

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    results: dict[str, Any] = {"config": asdict(cfg), "environment": environment()}
    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=cfg.workers,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        results["overhead"] = bench_overhead(client, cfg)
        if cfg.sweep_repeats:
            results["sweep_throughput"] = bench_sweep_throughput(client, cfg)
        if cfg.scale_chunks:
            results["scale"] = bench_scale(client, cfg)
    results["environment"]["load_end"] = _load()
    results["seconds"] = time.perf_counter() - t0
    results["targets"] = TARGETS
    results["verdicts"] = evaluate(results)
    print(format_report(results))
    print(f"\n({results['seconds']:.0f} s in all)")
    if args.out:
        args.out.write_text(json.dumps(_jsonable(results), indent=1) + "\n")
        print(f"results written to {args.out}")
    failed = [v for v in results["verdicts"] if not v["pass"]]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
