"""``coffea-sizing advise`` and ``plan``: advice and a plan from saved records.

Covers the two subcommands that read records without running anything: ``advise``
prints the findings and the chunk size (:func:`coffea_sizing.advise`), ``plan``
predicts the whole fileset from a sampled run (:meth:`coffea_sizing.Advice.plan`);
and the helpers ``run`` shares with them (``_advise_or_fail``, ``_write_advice``,
``_plan_or_fail``: a library error becomes a one-line
:class:`~coffea_sizing.cli.CLIError`). :data:`ADVISE` and :data:`PLAN` are their
registrations in :data:`coffea_sizing.cli.SUBCOMMANDS`.

Not here: the advice and the plan themselves (:mod:`coffea_sizing.advise`,
:mod:`coffea_sizing.plan`), the run that records (``_cli_run``).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._cli_common import CLIError, Subcommand, _positive_int


def _advise_or_fail(source: Any, args: argparse.Namespace) -> Any:
    from .advise import AdviceError, advise

    try:
        return advise(
            source,
            worker_memory=args.worker_memory,
            target_chunk_seconds=args.target_chunk_seconds,
        )
    except AdviceError as err:
        raise CLIError(str(err)) from err


def _write_advice(advice: Any, out: str) -> None:
    from .report import save_advice_report

    for name, path in save_advice_report(advice, out).items():
        print(f"wrote {name}: {path}")


def _plan_or_fail(advice: Any, fileset: Any, args: argparse.Namespace) -> Any:
    from .plan import PlanError

    try:
        return advice.plan(
            fileset,
            chunksize=getattr(args, "plan_chunksize", None),
            workers=args.workers,
            treename=args.tree,
        )
    except PlanError as err:
        raise CLIError(str(err)) from err


def _configure_advise(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "records",
        metavar="RECORDS",
        help="records saved by `coffea-sizing run` or coffea_sizing.save_records "
        "(a .parquet file)",
    )
    parser.add_argument(
        "--worker-memory",
        metavar="SIZE",
        default=None,
        help="memory limit of a worker, e.g. 4GB (default: the run's)",
    )
    parser.add_argument(
        "--target-chunk-seconds",
        type=float,
        default=None,
        metavar="S",
        help="longest wanted chunk (default: no limit)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="also write advice.png and report.html here",
    )


def _run_advise(args: argparse.Namespace) -> int:
    advice = _advise_or_fail(args.records, args)
    print(advice)
    if args.out:
        print()
        _write_advice(advice, args.out)
    return 0


def _configure_plan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "records",
        metavar="RECORDS",
        help="records of a sampled run (`coffea-sizing run --sample N` or "
        "save_records)",
    )
    parser.add_argument(
        "--fileset",
        metavar="JSON",
        required=True,
        help="the whole fileset (any form coffea's Runner accepts); only its files' "
        "metadata are read",
    )
    parser.add_argument(
        "--tree",
        "--treename",
        default="Events",
        help="TTree of files the fileset does not name (default Events; --treename "
        "as in coffea's Runner)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="workers of the campaign (default: the sampled run's)",
    )
    parser.add_argument(
        "--chunksize",
        dest="plan_chunksize",
        type=_positive_int,
        default=None,
        help="plan at this chunk size (default: choose one)",
    )
    parser.add_argument(
        "--worker-memory",
        metavar="SIZE",
        default=None,
        help="memory limit of the campaign's workers, e.g. 4GB (default: the run's)",
    )
    parser.add_argument(
        "--target-chunk-seconds",
        type=float,
        default=None,
        metavar="S",
        help="longest wanted chunk (default: no limit)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="also write plan.csv, plan.html and plan.png here",
    )


def _run_plan(args: argparse.Namespace) -> int:
    import pathlib

    advice = _advise_or_fail(args.records, args)
    plan = _plan_or_fail(advice, args.fileset, args)
    print(plan)
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plan.to_frame().to_csv(out / "plan.csv", index=False)
        from .report import save_plan_report

        written = save_plan_report(plan, out)
        print(
            f"\nwrote plan: {out / 'plan.csv'}, {written['html']} "
            f"(figure {written['figure']})"
        )
    return 0


#: ``coffea-sizing advise``, as :data:`coffea_sizing.cli.SUBCOMMANDS` lists it.
ADVISE = Subcommand(
    name="advise",
    help="findings and a chunk size from saved records, without rerunning",
    description=(
        "Read records saved by `coffea-sizing run` (or save_records) and "
        "print the findings, the model and the recommended chunk size."
    ),
    configure=_configure_advise,
    run=_run_advise,
)

#: ``coffea-sizing plan``, as :data:`coffea_sizing.cli.SUBCOMMANDS` lists it.
PLAN = Subcommand(
    name="plan",
    help="plan the whole fileset from a sampled run's records",
    description=(
        "Read the records of a sampled run and predict, for every dataset of "
        "--fileset and in total, the chunks, bytes read (to the byte from the "
        "files' metadata), worker-seconds, wall time, chunk peak memory and "
        "output; the one chunk size to pass to Runner and the worker memory."
    ),
    configure=_configure_plan,
    run=_run_plan,
)
