#!/usr/bin/env python
"""Where coffea-sizing's time goes inside the chunk tasks: py-spy on the workers.

Usage::

    python benchmarks/profile_workers.py [--variant C] [--seconds 25] [--rate 500]
                                         [--events 20000] [--chunksize 2000]

Starts a ``LocalCluster`` of 2 workers, runs variant B (``SizingDaskExecutor``) or C
(B + ``@track_sizes``) of the 10-branch processor over and over, and meanwhile records
each worker with ``py-spy record --format raw`` (py-spy must be installed:
``pip install py-spy``; it needs permission to trace the workers, e.g. root or
``ptrace_scope`` 0). Then it prints, for every function of ``coffea_sizing`` seen in
a chunk task's stack, the share of the task samples spent in it (callees included),
next to the records' own ``sizing_overhead`` and decorator time.

py-spy stops the worker briefly to take each sample, and samples that land inside a
system call weigh as much as any other: use the shares to rank the costs, and the
records' timings (``perf_counter`` in the task) for their size. This is how the
hotspots in ``hotspots.py`` were found.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bench_sizing import _default_cache_dir, cached_nanoaod

TASK_FRAME = "_SizingTask.__call__"


def aggregate(paths: Sequence[pathlib.Path]) -> tuple[int, int, collections.Counter]:
    """Samples in all, samples in chunk tasks, and inclusive samples per function of
    ``coffea_sizing`` (each function counted once per stack)."""
    total = in_task = 0
    per_function: collections.Counter[str] = collections.Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            if not any(TASK_FRAME in f for f in frames):
                continue
            in_task += n
            seen = set()
            for frame in frames:
                if "coffea_sizing" in frame:
                    name = re.sub(r":\d+\)", ")", frame)
                    if name not in seen:
                        seen.add(name)
                        per_function[name] += n
    return total, in_task, per_function


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["B", "C"], default="C")
    parser.add_argument("--seconds", type=float, default=25.0, help="recording time")
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--chunksize", type=int, default=2_000)
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(
        pathlib.Path(sys.executable).parent / "py-spy"
    )
    if not pathlib.Path(py_spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2

    from coffea import processor
    from distributed import Client, LocalCluster

    from coffea_sizing import SizingDaskExecutor, track_sizes
    from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

    path = cached_nanoaod(
        str(_default_cache_dir()), args.events, max(1, args.chunksize // 10)
    )
    cls = (
        track_sizes(BranchSweepProcessor)
        if args.variant == "C"
        else BranchSweepProcessor
    )
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="coffea-sizing-profile-"))
    records: list[dict[str, Any]] = []
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        runner = processor.Runner(
            executor=SizingDaskExecutor(client=client, status=False),
            savemetrics=True,
            schema=SweepSchema,
            chunksize=args.chunksize,
        )

        def one() -> None:
            _, report = runner(
                {"generated": [path]}, treename="Events", processor_instance=cls(10)
            )
            records.extend(report["sizing"])

        one()  # warm-up: imports, file caches
        records.clear()
        pids = list(client.run(os.getpid).values())
        spies = [
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(int(args.seconds)),
                    "--pid",
                    str(pid),
                    "--output",
                    str(tmp / f"worker-{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in pids
        ]
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds + 1:
            one()
        for spy in spies:
            spy.wait(timeout=60)
    outputs = sorted(tmp.glob("worker-*.txt"))
    if not outputs:
        print(
            "py-spy wrote nothing (permission to trace the workers?)", file=sys.stderr
        )
        return 1
    total, in_task, per_function = aggregate(outputs)
    print(
        f"variant {args.variant}: {len(records)} chunks of {args.chunksize:,} events "
        f"while recording; {total:,} samples, {in_task:,} in chunk tasks"
    )
    overhead = statistics.median(r["sizing_overhead"] for r in records)
    print(f"records: sizing_overhead median {overhead * 1e3:.3f} ms", end="")
    if args.variant == "C":
        decorator = statistics.median(
            r["processtime"] - r["process_walltime"] for r in records
        )
        print(f", decorator (processtime - process_walltime) {decorator * 1e3:.3f} ms")
    else:
        print()
    print(f"{'samples':>9} {'of task':>8}  function (callees included)")
    for name, n in per_function.most_common(args.top):
        print(f"{n:>9,} {100 * n / max(in_task, 1):>7.2f}%  {name}")
    print(f"raw profiles: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
