#!/usr/bin/env python
"""Why the memory-heavy processors of bench_phases take more than twice the time for
twice the events: the kernel's (and the host's) cost of touching fresh memory, timed
apart from the arithmetic.

Usage::

    python benchmarks/fresh_memory.py
    python benchmarks/fresh_memory.py --out benchmarks/results/fresh_memory.json

The work of ``bench_plan.Growing(bytes_per_event, passes)`` (hold ``bytes_per_event``
per event in one numpy array, then ``passes`` times ``np.sqrt(held).sum()``, each pass a
fresh temporary as large as the held array) on chunks of A and 2 A events, in one
process with no Dask and no file, each chunk timed with ``getrusage`` (user and system
CPU, minor page faults) and ``/proc/self/schedstat`` (seconds runnable but waiting
for a CPU: the other jobs on the machine), with the host's transparent huge page
counters (``/proc/vmstat``). Variants, each in a fresh process:

- ``default``: as the benchmark runs (numpy asks for huge pages on arrays of 4 MB
  and more; glibc returns such arrays to the kernel when freed, so every pass
  faults its temporary in again);
- ``pause``: the same chunk after the process slept ``--pause`` seconds, against
  the same chunk right after another (same process, same sizes);
- ``4 kB pages``: ``NUMPY_MADVISE_HUGEPAGE=0``;
- ``memory kept``: glibc keeps freed memory (``MALLOC_MMAP_THRESHOLD_`` and
  ``MALLOC_TRIM_THRESHOLD_`` large), so only the first chunk faults.

It prints one line per chunk and, per variant, the ratio 2 A / A of the wall time,
of the user time and of the system time. Not a test: the figures depend on the
machine (a virtual machine whose host takes back freed memory behaves differently
from bare metal); the header says what the machine is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _results import write_results

#: what one chunk does, run in a child process (numpy imported after the env is set)
CHILD = r"""
import json, resource, sys, time
import numpy as np

bytes_per_event, passes, sizes, pauses = json.loads(sys.argv[1])


def sample():
    r = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/schedstat") as f:
        waited = int(f.read().split()[1]) / 1e9
    return {"user": r.ru_utime, "sys": r.ru_stime, "faults": r.ru_minflt,
            "waited": waited, "wall": time.perf_counter()}


for n, pause in zip(sizes, pauses):
    time.sleep(pause)
    before = sample()
    held = np.ones(n * bytes_per_event // 8)
    total = 0.0
    for _ in range(passes):
        total += float(np.sqrt(held).sum()) * 0.0
    del held
    after = sample()
    row = {k: after[k] - before[k] for k in before}
    row.update(events=n, pause=pause)
    print(json.dumps(row), flush=True)
"""

KEEP = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def _machine() -> dict[str, str]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return "?"

    cpuinfo = read("/proc/cpuinfo")
    cmdline = read("/proc/cmdline")
    reporting = [w for w in cmdline.split() if w.startswith("page_reporting")]
    return {
        "virtual": "yes" if " hypervisor" in cpuinfo else "no",
        "thp_enabled": read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_defrag": read("/sys/kernel/mm/transparent_hugepage/defrag"),
        "free_page_reporting": " ".join(reporting)
        or (
            "virtio_balloon"
            if Path("/sys/bus/virtio/drivers/virtio_balloon").exists()
            else "none seen"
        ),
    }


def _thp_faults() -> int:
    for line in Path("/proc/vmstat").read_text().splitlines():
        if line.startswith("thp_fault_alloc "):
            return int(line.split()[1])
    return 0


def _child(spec: list[Any], env: dict[str, str]) -> list[dict[str, Any]]:
    thp = _thp_faults()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for row in rows:
        row["thp_faults_run"] = _thp_faults() - thp
    return rows


def _ratio(top: list[dict[str, Any]], bottom: list[dict[str, Any]], key: str) -> float:
    """Median of ``key`` over ``top`` / over ``bottom``; NaN below 0.05 s (a ratio
    of clock ticks)."""
    below = statistics.median(r[key] for r in bottom)
    return statistics.median(r[key] for r in top) / below if below >= 0.05 else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes-per-event", type=int, default=4_000)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--events", type=int, default=249_000, help="A")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    a, b = args.events, 2 * args.events
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    machine = _machine()
    say(
        f"{args.bytes_per_event:,} B/event x {args.passes} passes; A = {a:,}, "
        f"B = {b:,} events; {args.repeats} repeats; load "
        f"{os.getloadavg()[0]:.1f}; "
        + ", ".join(f"{k} {v}" for k, v in machine.items())
    )
    say(
        f"{'variant':12} {'events':>8} {'pause':>5} {'wall':>7} {'user':>6} "
        f"{'sys':>6} {'waited':>6} {'faults':>9}"
    )
    common = [args.bytes_per_event, args.passes]
    variants = {
        "default": ({}, [a, b] * args.repeats, [0.0] * 2 * args.repeats),
        "pause": ({}, [a, a] * args.repeats, [0.0, args.pause] * args.repeats),
        "4 kB pages": (
            {"NUMPY_MADVISE_HUGEPAGE": "0"},
            [a, b] * args.repeats,
            [0.0] * 2 * args.repeats,
        ),
        "memory kept": (KEEP, [b, a, b] * args.repeats, [0.0] * 3 * args.repeats),
    }
    rows: list[dict[str, Any]] = []
    for name, (env, sizes, pauses) in variants.items():
        mine = _child([*common, sizes, pauses], env)
        if name == "memory kept":  # the first chunk of each process faults: drop it
            mine = mine[1:]
        for row in mine:
            row["variant"] = name
            say(
                f"{name:12} {row['events']:>8,} {row['pause']:>5g} {row['wall']:>6.2f}s "
                f"{row['user']:>5.2f}s {row['sys']:>5.2f}s {row['waited']:>5.2f}s "
                f"{row['faults']:>9,}"
            )
        rows.extend(mine)
    say()
    summary: dict[str, Any] = {}
    for name in variants:
        mine = [r for r in rows if r["variant"] == name]
        if name == "pause":
            hot = [r for r in mine if r["pause"] == 0]
            cold = [r for r in mine if r["pause"] > 0]
            ratio = {k: _ratio(cold, hot, k) for k in ("wall", "user", "sys")}
            what = f"after {args.pause:g} s asleep / right after another chunk"
        else:
            at_a = [r for r in mine if r["events"] == a]
            at_b = [r for r in mine if r["events"] == b]
            ratio = {k: _ratio(at_b, at_a, k) for k in ("wall", "user", "sys")}
            what = "2 A / A"
        summary[name] = {k: v if math.isfinite(v) else None for k, v in ratio.items()}
        say(
            f"{name:12} {what}: "
            + ", ".join(
                f"{word} x{ratio[key]:.2f}"
                if math.isfinite(ratio[key])
                else f"{word} -"
                for key, word in (("wall", "wall"), ("user", "user"), ("sys", "system"))
            )
        )
    if args.out:
        write_results(args.out, lines, meta=machine, summary=summary, chunks=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
