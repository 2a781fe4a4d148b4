"""``coffea-sizing run``: YOUR processor with SizingDaskExecutor, then the advice.

Covers the subcommand's arguments and run: the fileset (FILE arguments and/or
``--fileset``), the cluster (``_run_client``: a LocalCluster with
``--workers``/``--threads-per-worker``/``--memory-limit``, or ``--scheduler``),
the records and the advice written to ``--out``; ``--sample N`` (run N chunks per
dataset, then plan the whole fileset) and ``--calibrate`` (``_plan_and_calibrate``:
run it at the planned chunk size, planned against measured); and what a failed run
still writes (``_failure_lines``). :data:`RUN` is its registration in
:data:`coffea_sizing.cli.SUBCOMMANDS`.

Not here: finding and importing the processor and schema (``_cli_processor``), the
advice and plan from records (``_cli_advise``), the shared errors and logs
(``_cli_common``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._cli_advise import _advise_or_fail, _plan_or_fail, _write_advice
from ._cli_common import (
    CLIError,
    RunFailed,
    Subcommand,
    _captured_logs,
    _client,
    _count,
    _first_line,
    _Log,
    _log_path,
    _positive_int,
    _warnings_line,
)
from ._cli_processor import _load_processor, _load_schema


def _configure_run(parser: argparse.ArgumentParser) -> None:
    _add_input_arguments(parser)
    _add_run_cluster_arguments(parser)
    _add_advice_arguments(parser)
    _add_sample_arguments(parser)


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The processor, the files and how to read them."""
    parser.add_argument(
        "processor",
        metavar="MODULE:ATTR",
        help="your processor: a ProcessorABC class (built without arguments) or "
        "instance, as MODULE:ATTR (importable) or PATH.py[:ATTR]",
    )
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="ROOT files (one dataset per stem)"
    )
    parser.add_argument(
        "--fileset",
        metavar="JSON",
        default=None,
        help="a fileset JSON file in any form coffea's Runner accepts",
    )
    parser.add_argument(
        "--tree",
        "--treename",
        default="Events",
        help="TTree of files the fileset does not name (default Events; --treename "
        "as in coffea's Runner)",
    )
    parser.add_argument(
        "--chunksize",
        type=_positive_int,
        default=100_000,
        help="coffea's chunksize (default 100,000, coffea's default)",
    )
    parser.add_argument(
        "--schema",
        default="QuietNanoAODSchema",
        metavar="NAME",
        help="a schema of coffea.nanoevents (NanoAODSchema, BaseSchema, ...) or "
        "MODULE:ATTR (default QuietNanoAODSchema: NanoAODSchema without its "
        "'Missing cross-reference index' warnings)",
    )


def _add_run_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The LocalCluster started here, or ``--scheduler``; Dask's retries."""
    parser.add_argument(
        "--workers", type=_positive_int, default=2, help="LocalCluster workers"
    )
    parser.add_argument(
        "--threads-per-worker",
        type=_positive_int,
        default=1,
        help="threads per worker (default 1: memory per chunk is measured alone)",
    )
    parser.add_argument(
        "--memory-limit",
        default="auto",
        metavar="SIZE",
        help="memory limit per worker, e.g. 4GB (default: Dask's auto)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="an existing Dask scheduler (tcp://host:port) instead of a LocalCluster",
    )
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to reach the scheduler"
    )
    parser.add_argument(
        "--retries",
        type=_count,
        default=None,
        metavar="N",
        help="times Dask reruns a failed chunk (default: 0 on the LocalCluster "
        "started here, where a failure is a bug that fails again; with --scheduler "
        "DaskExecutor's 3, as a shared cluster loses workers)",
    )


def _add_advice_arguments(parser: argparse.ArgumentParser) -> None:
    """What the advice assumes, and where the records and report go."""
    parser.add_argument(
        "--worker-memory",
        metavar="SIZE",
        default=None,
        help="memory of the workers you will run on, for the advice (default: "
        "this run's memory limit)",
    )
    parser.add_argument(
        "--target-chunk-seconds",
        type=float,
        default=None,
        metavar="S",
        help="longest wanted chunk, for the advice (default: no limit)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="sizing-run",
        help="directory for records.parquet, records.csv, advice.png and "
        "report.html (default ./sizing-run)",
    )


def _add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sample",
        type=_positive_int,
        default=None,
        metavar="N",
        help="run only N chunks per dataset (spread over its files and entries, "
        "at --chunksize and a quarter of it), then print the plan for the whole "
        "fileset",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="with --sample: then run the whole fileset at the planned chunk size "
        "and show planned against measured",
    )


def _run_fileset(args: argparse.Namespace) -> dict[str, Any]:
    from .filesets import FilesetError, check_files, normalize_fileset

    if not args.files and not args.fileset:
        raise CLIError("give ROOT files or --fileset fileset.json")
    fileset: dict[str, Any] = {}
    try:
        if args.fileset:
            fileset.update(normalize_fileset(args.fileset, args.tree))
        if args.files:
            fileset.update(normalize_fileset(list(args.files), args.tree))
        check_files(fileset)
    except FilesetError as err:
        raise CLIError(str(err)) from err
    return fileset


@contextlib.contextmanager
def _run_client(args: argparse.Namespace) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if args.scheduler:
        with _client(args) as client:
            yield client
        return
    if args.memory_limit not in ("auto", "0", None):
        from dask.utils import parse_bytes

        try:
            parse_bytes(args.memory_limit)
        except (ValueError, TypeError) as err:
            raise CLIError(
                f"--memory-limit {args.memory_limit!r} is not a size (e.g. 4GB, 2GiB)"
            ) from err
    try:
        cluster = LocalCluster(
            n_workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            memory_limit=args.memory_limit,
            dashboard_address=":0",
            host="127.0.0.1",
        )
    except (ValueError, TypeError) as err:
        raise CLIError(f"cannot start a LocalCluster: {err}") from err
    with cluster, Client(cluster) as client:
        yield client


def _retries(args: argparse.Namespace) -> int:
    """``--retries``, default 0 on a cluster started here, DaskExecutor's otherwise."""
    if args.retries is not None:
        return int(args.retries)
    if not args.scheduler:
        return 0  # a deterministic bug fails once, not four times
    from .executor import SizingDaskExecutor

    default: Any = SizingDaskExecutor.__dataclass_fields__["retries"].default
    return int(default)


def _run_context(args: argparse.Namespace, threads: int | None) -> dict[str, Any]:
    return {
        "chunksize": args.chunksize,
        "processor": args.processor,
        "schema": args.schema,
        "treename": args.tree,
        "threads": threads,
        "threads_per_worker": args.threads_per_worker,
        "retries": _retries(args),
    }


def _sizing_of(error: BaseException) -> tuple[Any, str | None]:
    """The records SizingDaskExecutor attached to a failed run, and its note."""
    seen: set[int] = set()
    err: BaseException | None = error
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        sizing = getattr(err, "sizing", None)
        if sizing is not None:
            notes = [
                str(n)
                for n in getattr(err, "__notes__", ())
                if str(n).startswith("coffea-sizing:")
            ]
            return sizing, (notes[0] if notes else None)
        err = err.__cause__ or err.__context__
    return None, None


def _failure_lines(
    error: BaseException,
    args: argparse.Namespace,
    records_path: Path,
    context: dict[str, Any],
    log: _Log,
    *,
    report: bool = True,
) -> list[str]:
    """What a failed run wrote (records of finished chunks, report) and its log."""
    from .records import REPORT_KEY
    from .store import save_records

    lines = []
    sizing, note = _sizing_of(error)
    finished = [
        r for r in (sizing or {}).get(REPORT_KEY) or () if r.get("error") is None
    ]
    if note:
        # "coffea-sizing: 2 of 4 chunks finished in 3.1 s before the run failed
        # (read ..., largest peak ...); their records are in exc.sizing ..."
        text = note.removeprefix("coffea-sizing:").strip()
        text = text.split("; their records are in", 1)[0].split(". Failing", 1)[0]
    else:
        text = "no chunk finished before the run failed"
    if finished:
        saved = save_records(
            {**sizing, REPORT_KEY: finished}, records_path, context=context
        )
        text += f"; wrote their records: {saved}"
        if report:
            try:
                from .report import save_advice_report

                advice = _advise_or_fail({REPORT_KEY: finished}, args)
                text += f", report: {save_advice_report(advice, args.out)['html']}"
            except CLIError as err:
                text += f" (no report: {_first_line(str(err))})"
    lines.append(text)
    if log.path is not None:
        lines.append(f"{log.summary()}; --debug shows the traceback and the logs here")
    return lines


def _run_run(args: argparse.Namespace) -> int:
    from coffea import processor

    from .executor import SizingDaskExecutor
    from .store import save_records

    proc = _load_processor(args.processor)
    schema = _load_schema(args.schema)
    fileset = _run_fileset(args)
    work = _sampled(args, fileset)
    out = Path(args.out)
    failure: BaseException | None = None
    nthreads = None
    with _captured_logs(_log_path(args, out)) as log, _run_client(args) as client:
        runner = processor.Runner(
            executor=SizingDaskExecutor(
                client=client, status=False, retries=_retries(args)
            ),
            savemetrics=True,
            schema=schema,
            chunksize=args.chunksize,
        )
        try:
            _, report = runner(work, treename=args.tree, processor_instance=proc)
        except Exception as err:  # noqa: BLE001 - reported by main(), one line
            failure = err
        with contextlib.suppress(Exception):
            nthreads = sum(client.nthreads().values())
    context = _run_context(args, nthreads)
    if failure is not None:
        lines = _failure_lines(failure, args, out / "records.parquet", context, log)
        raise RunFailed(lines) from failure
    records = save_records(report, out / "records.parquet", context=context)
    advice = _advise_or_fail(report, args)
    print(advice)
    print()
    print(f"wrote records: {records} (and {records.with_suffix('.csv')})")
    _write_advice(advice, args.out)
    if log.path is not None:
        print(f"wrote the workers' log: {log.path}")
    _warnings_line(log, args.command)
    if args.sample:
        _plan_and_calibrate(args, advice, fileset, proc, schema)
    return 0


def _sampled(args: argparse.Namespace, fileset: dict[str, Any]) -> Any:
    """The fileset, or with ``--sample N`` the N chunks per dataset to run."""
    if not getattr(args, "sample", None):
        if getattr(args, "calibrate", False):
            raise CLIError("--calibrate needs --sample N")
        return fileset
    from .plan import PlanError, sample_work

    sizes = (max(1, args.chunksize // 4), args.chunksize)
    try:
        return sample_work(fileset, args.sample, sizes, treename=args.tree)
    except PlanError as err:
        raise CLIError(str(err)) from err


def _comparison_text(plan: Any, report: Any) -> str:
    """Planned and measured, then planned / measured, as terminal tables."""
    from .tables import to_text

    values, ratios = plan.compare_tables(report)
    return f"{to_text(values)}\n\nplanned / measured:\n{to_text(ratios, ratio=True)}"


def _plan_and_calibrate(
    args: argparse.Namespace,
    advice: Any,
    fileset: dict[str, Any],
    proc: Any,
    schema: Any,
) -> None:
    """``--sample``: the plan for the whole fileset; ``--calibrate``: then run it."""
    from .report import save_plan_report

    plan = _plan_or_fail(advice, fileset, args)
    print()
    print(plan)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan.to_frame().to_csv(out / "plan.csv", index=False)
    written = save_plan_report(plan, out)
    print(
        f"wrote plan: {out / 'plan.csv'}, {written['html']} (figure {written['figure']})"
    )
    if args.calibrate:
        _calibrate(args, plan, fileset, proc, schema)


def _calibrate(
    args: argparse.Namespace,
    plan: Any,
    fileset: dict[str, Any],
    proc: Any,
    schema: Any,
) -> None:
    """Run the whole fileset at the planned chunk size: planned against measured."""
    from coffea import processor

    from .executor import SizingDaskExecutor
    from .report import save_plan_report
    from .store import save_records

    out = Path(args.out)
    print(f"\ncalibrating: the whole fileset at chunksize {plan.chunksize:,} ...")
    failure: BaseException | None = None
    with (
        _captured_logs(_log_path(args, out), append=True) as log,
        _run_client(args) as client,
    ):
        runner = processor.Runner(
            executor=SizingDaskExecutor(
                client=client, status=False, retries=_retries(args)
            ),
            savemetrics=True,
            schema=schema,
            chunksize=plan.chunksize,
        )
        try:
            _, report = runner(fileset, treename=args.tree, processor_instance=proc)
        except Exception as err:  # noqa: BLE001 - reported by main(), one line
            failure = err
    if failure is not None:
        lines = _failure_lines(
            failure,
            args,
            out / "calibration.parquet",
            {"chunksize": plan.chunksize},
            log,
            report=False,
        )
        lines[0] = f"the calibration run failed; {lines[0]}"
        raise RunFailed(lines) from failure
    _warnings_line(log, args.command)
    save_records(
        report, out / "calibration.parquet", context={"chunksize": plan.chunksize}
    )
    plan.compare(report).to_csv(out / "calibration.csv", index=False)
    written = save_plan_report(plan, out, report)
    print()
    print(_comparison_text(plan, report))
    print(
        f"wrote calibration: {out / 'calibration.csv'} (records: calibration.parquet; "
        f"planned against measured in {written['html']})"
    )


#: ``coffea-sizing run``, as :data:`coffea_sizing.cli.SUBCOMMANDS` lists it.
RUN = Subcommand(
    name="run",
    help="run YOUR processor with SizingDaskExecutor and advise on it",
    description=(
        "Run your own processor (MODULE:ATTR or PATH.py[:ATTR]) over FILES "
        "or --fileset with SizingDaskExecutor and savemetrics=True; print "
        "the findings and the recommended chunk size; write the records "
        "(Parquet and CSV), a figure and report.html to --out."
    ),
    configure=_configure_run,
    run=_run_run,
)
