#!/usr/bin/env python
"""How well advise() predicts a chunk's wall time at another chunk size, phase by
phase against today's one-number fit: measured, not assumed.

Usage::

    python benchmarks/bench_phases.py                 # 3 processors x 3 sources x 3 repeats
    python benchmarks/bench_phases.py --quick         # 1 processor x 2 sources x 1 repeat
    python benchmarks/bench_phases.py --processors kB # only the memory-heavy two
    python benchmarks/bench_phases.py --out benchmarks/results/bench_phases.json

For every processor, the chunk size A at which its chunks take about
``--target-seconds`` (0.9 s of wall time on a calibration run; a run's own chunks of
A take less, their fixed part being spread over more events: the script prints their
median) and B = 2 A; one generated file of 4 B events, read from the local disk,
through a real ``xrootd`` on 127.0.0.1 (``tests/servers.py``) and through that
server behind a relay that delays every response by 5 ms. For every processor,
source and repeat, a run at A and a run at B with
:class:`~coffea_sizing.SizingDaskExecutor` on one ``LocalCluster(n_workers=2,
threads_per_worker=1)``; then ``advise(run at A).predict(B)`` against the median
chunk wall time of the run at B, and B -> A the same way. Each prediction twice: the
phase model (``Advice.predict``: each phase fitted on its own and summed) and the
model before the phases existed (:func:`coffea_sizing.model.total_wall_fit`: the
wall time as one number, fixed + ``process()`` per event) on the same records. It
prints every pair, the median and worst relative errors of both, the run-to-run
spread of the measured medians (the machine's noise floor), and per processor the
workers' user and system CPU per chunk (``getrusage`` in the worker processes around
each run) at B over at A: a processor whose system time grows faster than its events
spends its time in the kernel faulting fresh memory in
(``benchmarks/fresh_memory.py`` times that alone). Not a test: it exits with status
0 whatever the errors.
Needs Debian's ``xrootd-server`` for the root:// sources (skipped without it).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import cloudpickle
from _results import write_results
from bench_plan import BRANCHES, Dijets, Growing
from coffea import processor

from coffea_sizing import SizingDaskExecutor, advise, chunk_table
from coffea_sizing.datasets import make_nanoaod
from coffea_sizing.model import total_wall_fit
from coffea_sizing.schemas import QuietNanoAODSchema

cloudpickle.register_pickle_by_value(sys.modules[__name__])

PROCESSORS = {
    "dijet masses x4": lambda: Dijets(4),
    "1 kB/event x8 passes": lambda: Growing(1_000, 8),
    "4 kB/event x2 passes": lambda: Growing(4_000, 2),
}


def _rel(pred: float, meas: float) -> float:
    return (pred - meas) / meas if meas else float("nan")


def _run(client: Any, url: str, chunksize: int, proc: Any) -> Any:
    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False),
        savemetrics=True,
        schema=QuietNanoAODSchema,
        chunksize=chunksize,
    )
    _, report = runner({"bench": [url]}, treename="Events", processor_instance=proc)
    return report


def _worker_cpu() -> tuple[float, float, int]:
    """This worker process's user and system CPU seconds and minor page faults."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt


def _cpu_of(
    client: Any, url: str, chunksize: int, proc: Any
) -> tuple[Any, dict[str, float]]:
    """:func:`_run`'s report and the workers' user and system CPU seconds and minor
    page faults during the run (summed over the workers)."""
    before = client.run(_worker_cpu)
    result = _run(client, url, chunksize, proc)
    after = client.run(_worker_cpu)
    delta = [
        sum(after[w][i] - before[w][i] for w in after if w in before) for i in range(3)
    ]
    return result, {"user": delta[0], "sys": delta[1], "faults": delta[2]}


def _per_event_seconds(report: Any) -> float:
    table = chunk_table(report)
    entries = table["entrystop"] - table["entrystart"]
    return float((table["processtime"] / entries).median())


def _predictions(report_a: Any, size_b: int) -> tuple[float, float, int]:
    """(phase model, one-number model, largest chunk) predicted at ``size_b``."""
    advice = advise(report_a)
    row = advice.predict(size_b).iloc[0]
    largest = int(row["entries_per_chunk"])
    chunks = advice.chunks[~advice.chunks["skipped"].fillna(False).astype(bool)]
    old, _ = total_wall_fit(chunks)
    assert old is not None
    return float(row["walltime"]), old.at(largest)[0], largest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-seconds", type=float, default=0.9)
    parser.add_argument("--ratio", type=int, default=2, help="B = ratio x A")
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--processors",
        default="",
        help="only the processors whose names contain one of these comma-separated words",
    )
    parser.add_argument("--out", default=None, help="also write JSON here")
    args = parser.parse_args(argv)
    procs = dict(PROCESSORS)
    if args.processors:
        words = [w.strip() for w in args.processors.split(",") if w.strip()]
        procs = {k: v for k, v in procs.items() if any(w in k for w in words)}
    if args.quick:
        procs = dict(list(procs.items())[:1])
        args.repeats = 1
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    from distributed import Client, LocalCluster

    t0 = time.time()
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    noise: list[dict[str, Any]] = []
    cpu: list[dict[str, Any]] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    have_xrootd = shutil.which("xrootd") is not None
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                dashboard_address=":0",
                host="127.0.0.1",
            )
        )
        client = stack.enter_context(Client(cluster))
        server = None
        if have_xrootd:
            from servers import LatencyRelay, XRootDServer

            server = stack.enter_context(XRootDServer())
        else:
            say("(no xrootd binary: local disk only)")
        calibration = tmp / "calibration.root"
        make_nanoaod(calibration, 20_000, events_per_basket=5_000, branches=BRANCHES)
        say(
            f"{len(procs)} processors; A: chunks of ~{args.target_seconds:g} s, "
            f"B = {args.ratio} x A; a file of 4 x B events per "
            f"processor; {args.repeats} repeats; 2 workers x 1 thread; "
            f"{time.strftime('%Y-%m-%d %H:%M')} UTC, load {os.getloadavg()[0]:.1f}"
        )
        header = (
            f"{'processor':22} {'source':16} {'A':>7} {'B':>7} {'rep':>3} "
            f"{'dir':>4} {'measured':>9} {'phases':>9} {'err':>6} "
            f"{'one-number':>10} {'err':>6}"
        )
        say(header)
        for pname, make in procs.items():
            _run(client, str(calibration), 5_000, make())  # warm-up: imports
            per_event = _per_event_seconds(
                _run(client, str(calibration), 10_000, make())
            )
            size_a = max(1_000, int(round(args.target_seconds / per_event, -3)))
            size_b = args.ratio * size_a
            events = 4 * size_b  # at B: two chunks per worker
            path = tmp / f"{pname.split()[0]}_{events}.root"
            make_nanoaod(path, events, events_per_basket=5_000, branches=BRANCHES)
            sources = {"local disk": str(path)}
            relay = None
            if server is not None:
                sources["root://"] = server.add(path)
                relay = stack.enter_context(
                    LatencyRelay(server.port, args.delay_ms / 1e3)
                )
                sources[f"root:// +{args.delay_ms:g} ms"] = (
                    f"root://127.0.0.1:{relay.port}//{path.name}"
                )
            if args.quick:
                sources = dict(list(sources.items())[:2])
            for sname, url in sources.items():
                measured: dict[int, list[float]] = {size_a: [], size_b: []}
                for rep in range(args.repeats):
                    reports = {}
                    for s in (size_a, size_b):
                        reports[s], used = _cpu_of(client, url, s, make())
                        table = chunk_table(reports[s])
                        measured[s].append(float(table["walltime"].median()))
                        cpu.append(
                            {
                                "processor": pname,
                                "source": sname,
                                "size": s,
                                "repeat": rep,
                                "chunks": len(table),
                                "chunk_cputime": float(table["cputime"].median()),
                                "chunk_walltime": measured[s][-1],
                                **used,
                            }
                        )
                    for src, dst in ((size_a, size_b), (size_b, size_a)):
                        new, old, largest = _predictions(reports[src], dst)
                        meas = float(chunk_table(reports[dst])["walltime"].median())
                        row = {
                            "processor": pname,
                            "source": sname,
                            "size_a": size_a,
                            "size_b": size_b,
                            "repeat": rep,
                            "from": src,
                            "to": dst,
                            "largest": largest,
                            "measured": meas,
                            "phases": new,
                            "one_number": old,
                            "phases_err": _rel(new, meas),
                            "one_number_err": _rel(old, meas),
                        }
                        rows.append(row)
                        say(
                            f"{pname:22} {sname:16} {size_a:>7,} {size_b:>7,} "
                            f"{rep:>3} {'A>B' if src == size_a else 'B>A':>4} "
                            f"{meas:>8.3f}s {new:>8.3f}s {row['phases_err']:>+6.0%} "
                            f"{old:>9.3f}s {row['one_number_err']:>+6.0%}"
                        )
                for s, values in measured.items():
                    noise.append(
                        {
                            "processor": pname,
                            "source": sname,
                            "size": s,
                            "medians": values,
                            "spread": (max(values) - min(values))
                            / statistics.median(values),
                        }
                    )

    say()
    say(
        "the workers' CPU per chunk, at B over at A (median over sources and "
        "repeats): the kernel's share is the system time"
    )
    for pname in dict.fromkeys(c["processor"] for c in cpu):

        def per_chunk(key: str, size: int, pname: str = pname) -> float:
            """Median over runs of ``key``: run totals divided by the chunks,
            ``chunk_*`` (the records' medians) as they are."""
            return statistics.median(
                c[key] if key.startswith("chunk_") else c[key] / c["chunks"]
                for c in cpu
                if c["processor"] == pname and c["size"] == size
            )

        sizes = sorted({c["size"] for c in cpu if c["processor"] == pname})
        a, b = sizes[0], sizes[-1]
        growth = {
            key: per_chunk(key, b) / per_chunk(key, a)
            for key in ("chunk_walltime", "chunk_cputime", "user", "sys")
        }
        say(
            f"  {pname:22} at A user {per_chunk('user', a):.2f} s + system "
            f"{per_chunk('sys', a):.2f} s; B/A: chunk wall "
            f"x{growth['chunk_walltime']:.2f}, chunk cputime "
            f"x{growth['chunk_cputime']:.2f}, user x{growth['user']:.2f}, system "
            f"x{growth['sys']:.2f}"
        )
    shortest = min(n["medians"][0] for n in noise) if noise else math.nan
    say(f"shortest median chunk of any run: {shortest:.2f} s")

    def stats(key: str) -> tuple[float, float]:
        errors = [abs(r[key]) for r in rows]
        return statistics.median(errors), max(errors)

    new_med, new_worst = stats("phases_err")
    old_med, old_worst = stats("one_number_err")
    spread = [n["spread"] for n in noise]
    summary = {
        "pairs": len(rows),
        "phases_median_abs_error": new_med,
        "phases_worst_abs_error": new_worst,
        "one_number_median_abs_error": old_med,
        "one_number_worst_abs_error": old_worst,
        "noise_median_spread": statistics.median(spread),
        "noise_worst_spread": max(spread),
        "load_end": os.getloadavg()[0],
        "seconds": time.time() - t0,
    }
    say()
    say(
        f"{len(rows)} predictions of the median chunk wall time: phase model "
        f"median error {new_med:.0%} (worst {new_worst:.0%}); one-number model "
        f"median {old_med:.0%} (worst {old_worst:.0%})"
    )
    say(
        f"noise floor: the repeats' medians of one run spread "
        f"{summary['noise_median_spread']:.0%} (median), "
        f"{summary['noise_worst_spread']:.0%} (worst), max-min over median; "
        f"load at the end {summary['load_end']:.1f}; {summary['seconds']:.0f} s"
    )
    for sname in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == sname]
        say(
            f"  {sname:16} phases "
            f"{statistics.median(abs(r['phases_err']) for r in mine):.0%}, "
            f"one-number {statistics.median(abs(r['one_number_err']) for r in mine):.0%}"
        )
    if args.out:
        write_results(
            args.out, lines, summary=summary, pairs=rows, noise=noise, cpu=cpu
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
