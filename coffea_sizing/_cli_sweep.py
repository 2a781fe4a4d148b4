"""``coffea-sizing chunks`` and ``sweep``: the branch sweep's processor on a cluster.

Covers the two subcommands that run
:class:`~coffea_sizing.sweep.BranchSweepProcessor` over FILE arguments or
``--fileset`` (default: the real ttbar test file and a generated one): ``chunks``
prints one row per chunk of one branch count, ``sweep`` runs
:func:`~coffea_sizing.sweep.branch_sweep` and writes its tables, figure and report.
Their shared arguments (files, fileset, tree, chunk size, cluster) are
``_add_cluster_arguments`` and ``_fileset``. :data:`CHUNKS` and :data:`SWEEP` are
their registrations in :data:`coffea_sizing.cli.SUBCOMMANDS`.

Not here: the sweep itself (:mod:`coffea_sizing.sweep`), running a user's own
processor (``_cli_run``), the shared errors and logs (``_cli_common``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._cli_common import (
    CLIError,
    Subcommand,
    _client,
    _log_path,
    _logged_run,
    _positive_int,
    _warnings_line,
)


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="ROOT files, one dataset per file name (default: the real ttbar test "
        "file and a generated file with real baskets)",
    )
    parser.add_argument(
        "--fileset",
        metavar="FILESET.json",
        default=None,
        help="a coffea fileset as JSON, in any form coffea's Runner accepts "
        '({"ds": ["a.root"]}, {"ds": {"files": {"a.root": "Events"}, '
        '"metadata": {...}}}, ...); instead of FILE arguments',
    )
    parser.add_argument(
        "--tree",
        "--treename",
        default="Events",
        help="TTree of files whose tree the fileset does not name (default Events)",
    )
    parser.add_argument(
        "--chunksize",
        type=_positive_int,
        default=None,
        help="entries per chunk (default: 50 for the 200-event CMS ttbar test file, "
        "by name or path; 10,000 otherwise)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=2,
        help="workers of the LocalCluster started when --scheduler is not given",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="address of an existing Dask scheduler (tcp://host:port) to use "
        "instead of starting a LocalCluster",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the scheduler (default 20)",
    )


def _fileset(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The run's fileset in one form, every file checked before a cluster starts."""
    from .filesets import FilesetError, check_files, normalize_fileset

    if args.fileset and args.files:
        raise CLIError("give FILE arguments or --fileset, not both")
    if args.fileset and not str(args.fileset).lower().endswith(".json"):
        raise CLIError(f"--fileset takes a JSON file (*.json), got {args.fileset!r}")
    try:
        if args.fileset:
            fileset = normalize_fileset(args.fileset, args.tree)
        elif args.files:
            fileset = normalize_fileset(list(args.files), args.tree)
        else:
            from .datasets import default_fileset

            fileset = normalize_fileset(default_fileset(), args.tree)
        check_files(fileset)
    except FilesetError as err:
        raise CLIError(str(err)) from err
    return fileset


def _configure_chunks(parser: argparse.ArgumentParser) -> None:
    _add_cluster_arguments(parser)
    parser.add_argument(
        "--branches",
        type=_branch_count,
        default=1,
        metavar="N",
        help="how many branches the BranchSweepProcessor reads, 1 to 10 (default 1)",
    )
    parser.add_argument(
        "--all-columns",
        action="store_true",
        help="print every column of the chunk table, not the short set",
    )
    parser.add_argument(
        "--csv", metavar="PATH", default=None, help="write the full chunk table here"
    )


def _branch_count(text: str) -> int:
    from .sweep import SWEEP_BRANCHES

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= len(SWEEP_BRANCHES):
        msg = f"expected a branch count from 1 to {len(SWEEP_BRANCHES)}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _run_chunks(args: argparse.Namespace) -> int:
    import pandas as pd
    from coffea import processor

    from .executor import SizingDaskExecutor
    from .filesets import FilesetError
    from .findings import format_bytes, plural
    from .records import chunk_table
    from .sweep import (
        BranchSweepProcessor,
        SweepSchema,
        _check_fileset,
        _chunksize_for,
    )
    from .tables import CHUNK_COLUMNS, to_text

    proc = BranchSweepProcessor(args.branches)
    try:
        fileset = _check_fileset(_fileset(args), args.tree)
    except FilesetError as err:
        raise CLIError(str(err)) from err
    tables = []
    log_path = None
    if not getattr(args, "debug", False):
        import tempfile

        log_path = (
            Path(tempfile.gettempdir()) / f"coffea-sizing-chunks-{os.getpid()}.log"
        )
    with _logged_run(log_path) as log, _client(args) as client:
        for dataset, entry in fileset.items():
            chunksize = _chunksize_for(args.chunksize, dataset, list(entry["files"]))
            runner = processor.Runner(
                executor=SizingDaskExecutor(client=client, status=False),
                savemetrics=True,
                schema=SweepSchema,
                chunksize=chunksize,
            )
            _, report = runner({dataset: entry}, treename=None, processor_instance=proc)
            table = chunk_table(report)
            tables.append(table)
            print(
                f"{dataset}: {plural(report['chunks'], 'chunk')}, "
                f"{report['entries']:,} events, bytesread "
                f"{format_bytes(report['bytesread'])} ({report['bytesread']:,} B)"
            )
    if log.path is not None:
        if log.read_warnings():
            _warnings_line(log, args.command)
        else:
            log.path.unlink(missing_ok=True)
    df = pd.concat(tables, ignore_index=True)
    columns = (
        None if args.all_columns else [c for c in CHUNK_COLUMNS if c != "branches"]
    )
    print(to_text(df, columns))
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def _count_list(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= c <= 10 for c in counts):
        msg = f"expected comma-separated branch counts from 1 to 10, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    if len(set(counts)) != len(counts):
        msg = f"branch counts repeat: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return counts


def _configure_sweep(parser: argparse.ArgumentParser) -> None:
    _add_cluster_arguments(parser)
    parser.add_argument(
        "--branches",
        type=_count_list,
        default=[1, 2, 3, 5, 10],
        metavar="N,N,...",
        help="branch counts to run (default 1,2,3,5,10)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="sizing-report",
        help="directory for the CSV files, the figure and report.html "
        "(default ./sizing-report)",
    )


def _run_sweep(args: argparse.Namespace) -> int:
    from .filesets import FilesetError
    from .sweep import _check_fileset, branch_sweep
    from .tables import MEANINGS, SUMMARY_COLUMNS, to_text

    try:
        fileset = _check_fileset(_fileset(args), args.tree)
    except FilesetError as err:
        raise CLIError(str(err)) from err

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with (
        _logged_run(_log_path(args, Path(args.out))) as log,
        _client(args) as client,
    ):
        result = branch_sweep(
            fileset,
            args.branches,
            chunksize=args.chunksize,
            client=client,
            treename=args.tree,
            progress=progress,
        )
    print(to_text(result.summary, SUMMARY_COLUMNS))
    for name in ("open_share", "amplification"):
        print(f"  {name}: {MEANINGS[name]}")
    print()
    for finding in result.findings:
        print(f"[{finding.severity}] {finding.message}")
        print()
    paths = result.save(args.out)
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    if log.path is not None:
        print(f"wrote the workers' log: {log.path}")
    _warnings_line(log, args.command)
    return 0


#: ``coffea-sizing chunks``, as :data:`coffea_sizing.cli.SUBCOMMANDS` lists it.
CHUNKS = Subcommand(
    name="chunks",
    help="run a processor with SizingDaskExecutor and print the per-chunk table",
    description=(
        "Run the BranchSweepProcessor (reading --branches branches) over FILES "
        "(default: the real ttbar test file and a generated file with real "
        "baskets) with SizingDaskExecutor, and print one row per chunk."
    ),
    configure=_configure_chunks,
    run=_run_chunks,
)

#: ``coffea-sizing sweep``, as :data:`coffea_sizing.cli.SUBCOMMANDS` lists it.
SWEEP = Subcommand(
    name="sweep",
    help="the branch sweep: how bytesread, task nbytes and output scale "
    "with the branches read",
    description=(
        "Run the BranchSweepProcessor at each branch count over FILES (default: "
        "the real ttbar test file and a generated file with real baskets) with "
        "SizingDaskExecutor; print the summary and the findings and write CSV "
        "files, a figure and a self-contained HTML report to --out."
    ),
    configure=_configure_sweep,
    run=_run_sweep,
)
