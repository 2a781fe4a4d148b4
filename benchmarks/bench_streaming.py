#!/usr/bin/env python
"""What streaming records costs the scheduler, and what a run holds there.

Usage::

    python benchmarks/bench_streaming.py                 # 10,000 tasks/chunks, 5 rounds
    python benchmarks/bench_streaming.py --quick         # a smoke run, about a minute
    python benchmarks/bench_streaming.py --tasks 20000 --chunks 10000 --rounds 7

Part 1, *scheduler CPU per task*: a ``dask scheduler`` process and two ``dask worker``
processes (one thread each); the scheduler's own CPU time (user + system, from
``/proc``) over a stream of tiny tasks, three variants in rotated order per round:

A. plain tasks, no coffea-sizing plugin on the scheduler;
B. coffea-sizing's path: the plugin registered, a run opened, each task leaving a
   packed record (about 200 B) in its ``TaskState.metadata``; the plugin joins it
   with ``nbytes`` on ``processing -> memory`` and sends it to the client at once;
C. the previous design, for comparison: each task sends its record with
   ``Worker.log_event`` (one more message per task), no plugin.

Part 2, *a coffea run of tiny chunks*: ``Runner`` with ``DaskExecutor`` (A) and with
``SizingDaskExecutor`` and a ``@track_sizes`` processor (C) on a generated file cut
into ``--chunks`` chunks, paired per round: the wall ratio C/A and the peak number
of entries the plugin held for the run (``report["sizing_run"]
["scheduler_peak_records"]``: tasks in flight; records are never held).

Prints medians with min-max and writes the figures as JSON (``--out``). It is not
a test: the machine is shared and noisy; read the ratios, not single times.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from ``/proc/<pid>/stat``."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _start(args: list[str], log: pathlib.Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args], stdout=out, stderr=subprocess.STDOUT
        )


def _payload(i: int) -> bytes:
    return bytes(700) + i.to_bytes(4, "little")  # like a chunk's compressed output


def _with_record(i: int) -> bytes:
    from distributed import get_worker

    from coffea_sizing.plugin import META_KEY
    from coffea_sizing.records import pack_record

    worker = get_worker()
    record = {
        "entries": 100,
        "skipped": False,
        "bytesread": 336_624 + i,
        "columns": ["Jet_pt", "nJet"],
        "processtime": 0.01,
        "walltime": 0.012,
        "cputime": 0.011,
        "output_pickled_bytes": 801,
        "output_compressed_bytes": 704,
        "mem_peak_bytes": 211_124_224,
        "mem_usage_bytes": 1_000_000,
        "mem_shared": False,
        "sizing_overhead": 0.0002,
    }
    worker.state.tasks[worker.get_current_task()].metadata[META_KEY] = pack_record(
        record
    )
    return _payload(i)


def _log_event(i: int) -> bytes:
    from distributed import get_worker

    from coffea_sizing.records import pack_record

    worker = get_worker()
    packed = pack_record({"bytesread": 336_624 + i, "walltime": 0.012})
    worker.log_event(
        "coffea-sizing-old", {"key": worker.get_current_task(), "r": packed}
    )
    return _payload(i)


def _drop_old_topic(dask_scheduler: Any) -> None:
    dask_scheduler._broker._topics.pop("coffea-sizing-old", None)


def bench_scheduler_cpu(n_tasks: int, rounds: int) -> dict[str, Any]:
    import uuid

    from distributed import Client

    from coffea_sizing.executor import _dispatcher
    from coffea_sizing.plugin import SizingSchedulerPlugin, chunk_key

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    sched_file = tmp / "scheduler.json"
    procs = [
        _start(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            tmp / "scheduler.log",
        )
    ]
    try:
        while not sched_file.exists():
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            _start(
                [
                    "worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                tmp / "workers.log",
            )
        )
        with Client(address) as client:
            client.wait_for_workers(2)
            sched_pid = procs[0].pid
            name = SizingSchedulerPlugin.name
            per_task: dict[str, list[float]] = {"A": [], "B": [], "C": []}
            received: list[int] = []

            def run(variant: str) -> float:
                plugins = client.run_on_scheduler(
                    lambda dask_scheduler: list(dask_scheduler.plugins)
                )
                if variant == "B" and name not in plugins:
                    client.register_plugin(SizingSchedulerPlugin(), name=name)
                if variant != "B" and name in plugins:
                    client.unregister_scheduler_plugin(name)
                run_id = uuid.uuid4().hex[:12]
                if variant == "B":
                    dispatcher = _dispatcher(client)
                    got: list[Any] = []

                    secret = uuid.uuid4().hex

                    class Sink:
                        chunks: dict[str, Any] = {}  # noqa: RUF012

                        def __init__(self, secret: str) -> None:
                            self.secret = secret

                        def add(self, item: Any) -> None:
                            got.append(item)

                    dispatcher.runs[run_id] = Sink(secret)  # type: ignore[assignment]
                    client.sync(
                        client.scheduler.coffea_sizing_begin,
                        run_id=run_id,
                        client=client.id,
                        secret=secret,
                    )
                    keys = [chunk_key(run_id, i) for i in range(n_tasks)]
                    func: Any = _with_record
                else:
                    keys = [f"plain-{run_id}-{i}" for i in range(n_tasks)]
                    func = _payload if variant == "A" else _log_event
                cpu0 = _cpu_seconds(sched_pid)
                futures = client.map(func, range(n_tasks), key=keys)
                client.gather(futures)
                del futures
                while client.run_on_scheduler(
                    lambda dask_scheduler: len(dask_scheduler.tasks)
                ):
                    time.sleep(0.05)
                cpu = _cpu_seconds(sched_pid) - cpu0
                if variant == "B":
                    info = client.sync(
                        client.scheduler.coffea_sizing_end,
                        run_id=run_id,
                        secret=secret,
                    )
                    dispatcher.runs.pop(run_id, None)
                    received.append(len(got))
                    assert info["open_runs"] == 0
                if variant == "C":
                    client.run_on_scheduler(_drop_old_topic)
                return cpu / n_tasks

            for variant in "ABC":  # warm-up
                run(variant)
            ratios: dict[str, list[float]] = {"B/A": [], "C/A": []}
            for r in range(rounds):
                order = "ABC"[r % 3 :] + "ABC"[: r % 3]
                got_round = {v: run(v) for v in order}
                for v, value in got_round.items():
                    per_task[v].append(value)
                ratios["B/A"].append(got_round["B"] / got_round["A"])
                ratios["C/A"].append(got_round["C"] / got_round["A"])
            return {
                "tasks": n_tasks,
                "rounds": rounds,
                "us_per_task": {v: [x * 1e6 for x in xs] for v, xs in per_task.items()},
                "ratios": ratios,
                "records_received_per_run": received,
            }
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def bench_tiny_chunks(n_chunks: int, rounds: int) -> dict[str, Any]:
    from coffea import processor
    from distributed import Client, LocalCluster

    from coffea_sizing import SizingDaskExecutor, track_sizes
    from coffea_sizing.datasets import make_nanoaod
    from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

    events_per_chunk = 10
    cache = pathlib.Path(
        os.environ.get(
            "COFFEA_SIZING_CACHE", pathlib.Path.home() / ".cache/coffea-sizing"
        )
    )
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"bench_streaming_{n_chunks * events_per_chunk}ev.root"
    if not path.exists():
        make_nanoaod(path, n_chunks * events_per_chunk, events_per_basket=1_000, seed=3)
    fileset = {"tiny": [str(path)]}
    walls: dict[str, list[float]] = {"A": [], "C": []}
    ratios: list[float] = []
    peaks: list[int] = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):

        def once(variant: str) -> float:
            if variant == "A":
                executor: Any = processor.DaskExecutor(client=client, status=False)
                proc: Any = BranchSweepProcessor(1)
            else:
                executor = SizingDaskExecutor(client=client, status=False)
                proc = track_sizes(BranchSweepProcessor)(1)
            runner = processor.Runner(
                executor=executor,
                savemetrics=True,
                schema=SweepSchema,
                chunksize=events_per_chunk,
            )
            t0 = time.perf_counter()
            _, report = runner(fileset, treename="Events", processor_instance=proc)
            wall = time.perf_counter() - t0
            assert report["chunks"] == n_chunks, report["chunks"]
            if variant == "C":
                peaks.append(report["sizing_run"]["scheduler_peak_records"])
                assert len(report["sizing"]) == n_chunks
                assert report["sizing_run"]["missing"] == 0
            while client.run_on_scheduler(
                lambda dask_scheduler: len(dask_scheduler.tasks)
            ):
                time.sleep(0.05)
            return wall

        once("A")
        once("C")
        for r in range(rounds):
            order = "AC" if r % 2 == 0 else "CA"
            got = {v: once(v) for v in order}
            walls["A"].append(got["A"])
            walls["C"].append(got["C"])
            ratios.append(got["C"] / got["A"])
    return {
        "chunks": n_chunks,
        "rounds": rounds,
        "wall_seconds": walls,
        "ratio_C_over_A": ratios,
        "scheduler_peak_records": peaks,
        "worker_threads": 2,
    }


def _tiny_file(n_chunks: int, events_per_chunk: int) -> pathlib.Path:
    from coffea_sizing.datasets import make_nanoaod

    cache = pathlib.Path(
        os.environ.get(
            "COFFEA_SIZING_CACHE", pathlib.Path.home() / ".cache/coffea-sizing"
        )
    )
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"bench_streaming_{n_chunks * events_per_chunk}ev.root"
    if not path.exists():
        make_nanoaod(path, n_chunks * events_per_chunk, events_per_basket=1_000, seed=3)
    return path


def bench_runner_scheduler(
    n_chunks: int,
    rounds: int,
    profile_dir: pathlib.Path | None,
    variants: str = "AS",
) -> dict[str, Any]:
    """Scheduler CPU per chunk through ``Runner``: a ``dask scheduler`` process, two
    ``dask worker`` processes (1 thread each); ``DaskExecutor`` (A) vs
    ``SizingDaskExecutor`` with a ``@track_sizes`` processor (S), rotated per round.
    Variant N, when asked for, is S with the tasks' start announcements switched off
    (what they cost the scheduler). With ``profile_dir``, the scheduler runs the
    ``scheduler_profile.py`` preload and each counted run's scheduler-side cProfile
    stats are written there."""
    from coffea import processor
    from distributed import Client

    import coffea_sizing.executor as sizing_executor
    from coffea_sizing import SizingDaskExecutor, track_sizes
    from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

    events_per_chunk = 10
    fileset = {"tiny": [str(_tiny_file(n_chunks, events_per_chunk))]}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-runner-"))
    sched_file = tmp / "scheduler.json"
    preload = ["--preload", str(HERE / "scheduler_profile.py")] if profile_dir else []
    procs = [
        _start(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
                *preload,
            ],
            tmp / "scheduler.log",
        )
    ]
    try:
        while not sched_file.exists():
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            _start(
                [
                    "worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                tmp / "workers.log",
            )
        )
        with Client(address) as client:
            client.wait_for_workers(2)
            sched_pid = procs[0].pid
            cpu: dict[str, list[float]] = {v: [] for v in variants}
            walls: dict[str, list[float]] = {v: [] for v in variants}
            ratios: list[float] = []
            paired: dict[str, list[float]] = {v: [] for v in variants if v != "A"}
            profiles: list[str] = []

            def once(variant: str, tag: str = "") -> tuple[float, float]:
                if variant == "A":
                    executor: Any = processor.DaskExecutor(client=client, status=False)
                    proc: Any = BranchSweepProcessor(1)
                else:
                    executor = SizingDaskExecutor(client=client, status=False)
                    proc = track_sizes(BranchSweepProcessor)(1)
                runner = processor.Runner(
                    executor=executor,
                    savemetrics=True,
                    schema=SweepSchema,
                    chunksize=events_per_chunk,
                )
                if profile_dir and tag:
                    client.sync(client.scheduler.bench_profile, action="start")
                token = sizing_executor._start_token
                if variant == "N":  # no start announcements
                    sizing_executor._start_token = lambda _secret: ""  # type: ignore[assignment]
                try:
                    cpu0 = _cpu_seconds(sched_pid)
                    t0 = time.perf_counter()
                    _, report = runner(
                        fileset, treename="Events", processor_instance=proc
                    )
                    wall = time.perf_counter() - t0
                finally:
                    sizing_executor._start_token = token  # type: ignore[assignment]
                while client.run_on_scheduler(
                    lambda dask_scheduler: len(dask_scheduler.tasks)
                ):
                    time.sleep(0.05)
                used = _cpu_seconds(sched_pid) - cpu0
                if profile_dir and tag:
                    path = profile_dir / f"scheduler-{variant}-{tag}.prof"
                    client.sync(
                        client.scheduler.bench_profile, action="stop", path=str(path)
                    )
                    profiles.append(str(path))
                assert report["chunks"] == n_chunks, report["chunks"]
                if variant != "A":
                    assert len(report["sizing"]) == n_chunks
                return used, wall

            for v in variants:  # warm-up
                once(v)
            for r in range(rounds):
                # rotated: each variant first, middle and last in turn
                k = r % len(variants)
                order = variants[k:] + variants[:k]
                got = {v: once(v, tag=str(r)) for v in order}
                for v, (used, wall) in got.items():
                    cpu[v].append(used)
                    walls[v].append(wall)
                    if v != "A":
                        paired[v].append(used / got["A"][0])
                ratios.append(got["S"][0] / got["A"][0])
            return {
                "chunks": n_chunks,
                "rounds": rounds,
                "scheduler_cpu_seconds": cpu,
                "wall_seconds": walls,
                "cpu_ratio_S_over_A": ratios,
                "cpu_ratio_over_A": paired,
                "profiles": profiles,
            }
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _profile_summary(paths: list[str], top: int = 25) -> str:
    """The scheduler's cumulative time per function, S runs minus A runs."""
    import pstats

    per: dict[str, dict[str, float]] = {"A": {}, "S": {}, "N": {}}
    counts = {"A": 0, "S": 0, "N": 0}
    for path in paths:
        variant = pathlib.Path(path).name.split("-")[1]
        counts[variant] += 1
        stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
        for (file, line, fn), (_, _, tt, ct, _) in stats.items():
            name = f"{pathlib.Path(file).name}:{line}({fn})"
            own, cum = per[variant].get(name + " own", 0.0), per[variant].get(name, 0.0)
            per[variant][name] = cum + ct
            per[variant][name + " own"] = own + tt
    lines = []
    for kind in ("own", "cum"):
        diff = {}
        for name in set(per["A"]) | set(per["S"]):
            if name.endswith(" own") != (kind == "own"):
                continue
            a = per["A"].get(name, 0.0) / max(counts["A"], 1)
            s = per["S"].get(name, 0.0) / max(counts["S"], 1)
            diff[name] = (s - a, s, a)
        lines.append(
            f"  scheduler seconds per run, S minus A, by {kind} time (top {top}):"
        )
        for name, (d, s, a) in sorted(diff.items(), key=lambda kv: -kv[1][0])[:top]:
            lines.append(
                f"    {d:+8.3f}  (S {s:7.3f}, A {a:7.3f})  {name.removesuffix(' own')}"
            )
    return "\n".join(lines)


def _summary(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"


def _part1(args: argparse.Namespace, results: dict[str, Any]) -> None:
    cpu = bench_scheduler_cpu(args.tasks, args.rounds)
    results["scheduler_cpu"] = cpu
    print(
        f"\nPart 1: scheduler CPU per task, {args.tasks:,} tiny tasks, {args.rounds} rounds"
    )
    for v, label in (
        ("A", "plain tasks, no plugin"),
        ("B", "coffea-sizing (record in task metadata, streamed)"),
        ("C", "previous design (log_event per task)"),
    ):
        print(f"  {v} {label:52s} {_summary(cpu['us_per_task'][v], '{:.0f}')} us")
    for name, values in cpu["ratios"].items():
        print(f"  ratio {name}: {_summary(values)}")
    print(f"  records the client received per B run: {cpu['records_received_per_run']}")


def _part3(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if args.runner_profile:
        args.runner_profile.mkdir(parents=True, exist_ok=True)
    rounds = max(2, args.rounds)
    variants = args.runner_variants
    got = bench_runner_scheduler(
        args.runner_chunks, rounds, args.runner_profile, variants
    )
    results["runner_scheduler"] = got
    n = got["chunks"]
    print(
        f"\nPart 3: Runner through a separate `dask scheduler` process, {n:,} tiny "
        f"chunks (10 events), 2 workers x 1 thread, {rounds} rounds rotated "
        f"({variants})"
    )
    labels = {
        "A": "DaskExecutor",
        "S": "SizingDaskExecutor+decorator",
        "N": "S, no start announcements",
    }
    for v in variants:
        label = labels[v]
        per_chunk = [c / n * 1e6 for c in got["scheduler_cpu_seconds"][v]]
        print(
            f"  {v} {label:30s} scheduler CPU "
            f"{_summary(got['scheduler_cpu_seconds'][v], '{:.2f}')} s, "
            f"{_summary(per_chunk, '{:.0f}')} us/chunk; wall "
            f"{_summary(got['wall_seconds'][v], '{:.1f}')} s"
        )
    for v, paired in got["cpu_ratio_over_A"].items():
        print(f"  scheduler CPU ratio {v}/A (paired): {_summary(paired)}")
    if got["profiles"]:
        print("  (profiled: cProfile in the scheduler adds its own overhead)")
        print(_profile_summary(got["profiles"]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-chunks", action="store_true", help="skip part 2")
    parser.add_argument("--skip-tasks", action="store_true", help="skip part 1")
    parser.add_argument(
        "--runner-chunks",
        type=int,
        default=2_000,
        help="part 3: chunks of the Runner runs on a separate scheduler (0: skip)",
    )
    parser.add_argument(
        "--runner-variants",
        default="AS",
        choices=["AS", "ASN"],
        help="part 3: N adds S without the tasks' start announcements",
    )
    parser.add_argument(
        "--runner-profile",
        type=pathlib.Path,
        help="part 3: write the scheduler's cProfile stats of each run here",
    )
    parser.add_argument(
        "--out", type=pathlib.Path, default=HERE / "results" / "bench_streaming.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.chunks, args.rounds = 2_000, 500, 2
    load = os.getloadavg()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_at_start": load,
        "cpus": os.cpu_count(),
    }
    print(f"load average at start: {load[0]:.1f} on {os.cpu_count()} CPUs")
    if not args.skip_tasks:
        _part1(args, results)
    if args.runner_chunks:
        _part3(args, results)
    if not args.skip_chunks:
        tiny = bench_tiny_chunks(args.chunks, max(1, args.rounds // 2 + 1))
        results["tiny_chunks"] = tiny
        print(
            f"\nPart 2: Runner on {args.chunks:,} tiny chunks (10 events), 2 workers x 1 thread"
        )
        print(
            f"  A DaskExecutor wall            {_summary(tiny['wall_seconds']['A'], '{:.1f}')} s"
        )
        print(
            f"  C SizingDaskExecutor+decorator {_summary(tiny['wall_seconds']['C'], '{:.1f}')} s"
        )
        print(f"  ratio C/A (paired)             {_summary(tiny['ratio_C_over_A'])}")
        print(
            f"  plugin's peak entries per run  {tiny['scheduler_peak_records']} (records held: 0)"
        )
    results["load_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(
        f"\nload average at end: {results['load_at_end'][0]:.1f}; figures in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
