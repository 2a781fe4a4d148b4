"""Command-line interface: ``coffea-sizing SUBCOMMAND ...``.

Every subcommand is a :class:`Subcommand`: a function that adds its arguments
to its own :class:`argparse.ArgumentParser` and a function that runs it and
returns the exit code. They are registered in one place, :data:`SUBCOMMANDS`;
to add one (say ``sweep``), write ``_configure_sweep`` and ``_run_sweep`` and
append ``Subcommand("sweep", ...)`` there.

A run function reports bad input by raising :class:`CLIError`: :func:`main`
prints ``coffea-sizing SUBCOMMAND: error: MESSAGE`` on stderr and returns 2,
like argparse does for bad arguments (one line, the nearest flag suggested), without
a traceback. Any other exception of a run is reported the same way in one line
(:func:`run_error_message`: the file, entries and the processor's exception) with
exit code 1, followed by the lines of ``RunFailed`` (what finished and was
written, where the log is); ``--debug`` adds the traceback. While a cluster runs,
the process's file descriptor 2, which the workers it starts inherit, goes to
``workers.log`` (``_captured_logs``): log records and warnings stay off the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

__all__ = [
    "SUBCOMMANDS",
    "CLIError",
    "Subcommand",
    "build_parser",
    "main",
    "run_error_message",
]

PROG = "coffea-sizing"

#: Exit code for bad input (same as argparse's).
EXIT_USAGE = 2
#: Exit code for a run that failed (a task raised, a worker died).
EXIT_FAILURE = 1


class CLIError(Exception):
    """Bad input to a subcommand: reported on stderr, exit code 2."""


class RunFailed(Exception):
    """A run that failed: :func:`main` prints the cause's line, then ``lines``.

    Raised ``from`` the run's exception (its ``__cause__``); exit code 1.
    """

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = list(lines)


#: The file the workers' and nannies' logs and warnings go to, in ``--out``.
WORKER_LOG = "workers.log"
_WARNING_LINE = re.compile(r"^\S.*?:\d+: (?P<category>\w*Warning): (?P<message>.*)$")


@dataclass
class _Log:
    """Where a run's logs went (:func:`_captured_logs`)."""

    path: Path | None
    warnings: list[str] = field(default_factory=list)

    def read_warnings(self) -> list[str]:
        """The warnings written to the log (``file:line: Category: message``)."""
        if self.path is None or not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        self.warnings = [
            f"{m.group('category')}: {m.group('message').strip()}"
            for m in map(_WARNING_LINE.match, text.splitlines())
            if m
        ]
        return self.warnings

    def summary(self) -> str:
        """``the workers' log: PATH`` with the count of warnings in it."""
        if self.path is None:
            return ""
        warned = self.read_warnings()
        text = f"the workers' log: {self.path}"
        if warned:
            first = warned[0].split(": ", 1)[-1]
            text += f" ({_warned(len(warned), first)})"
        return text


def _warned(count: int, first: str) -> str:
    if len(first) > 100:
        first = first[:97] + "..."
    return f"{count} warning{'s' if count != 1 else ''} in it, first: {first}"


def _fd_of(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def _captured_logs(path: Path | None, *, append: bool = False) -> Iterator[_Log]:
    """Send file descriptor 2 to ``path`` while a cluster runs; not ``sys.stderr``.

    Processes started meanwhile (the LocalCluster's workers, and the workers their
    nannies restart) inherit the file as their stderr: their log records, the
    tracebacks of failed tasks and their warnings land there, as do this process's
    own log records (the scheduler's, the nannies'). What the command itself prints
    on ``sys.stderr`` (progress, the error line) still reaches the terminal.
    ``path=None`` (``--debug``) changes nothing. The file is emptied first unless
    ``append``.
    """
    if path is None:
        yield _Log(None)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    saved = os.dup(2)
    terminal: TextIO | None = None
    previous = sys.stderr
    try:
        with path.open("ab" if append else "wb") as log:
            os.dup2(log.fileno(), 2)
        if _fd_of(sys.stderr) == 2:
            terminal = os.fdopen(
                os.dup(saved),
                "w",
                buffering=1,
                encoding=getattr(previous, "encoding", None) or "utf-8",
                errors="backslashreplace",
            )
            sys.stderr = terminal
        yield _Log(path)
    finally:
        for stream in (sys.stdout, sys.stderr, previous, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()  # type: ignore[union-attr]
        if terminal is not None:
            sys.stderr = previous
            terminal.close()
        os.dup2(saved, 2)
        os.close(saved)


@dataclass(frozen=True)
class Subcommand:
    """One ``coffea-sizing`` subcommand.

    Parameters
    ----------
    name : str
        Name on the command line.
    help : str
        One-line summary (shown by ``coffea-sizing --help``).
    configure : callable
        Adds the subcommand's arguments to its parser.
    run : callable
        Runs it with the parsed arguments and returns the exit code; raises
        :class:`CLIError` for bad input.
    description : str, optional
        Longer text for ``coffea-sizing NAME --help``; defaults to ``help``.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""


@contextlib.contextmanager
def _logged_run(path: Path | None) -> Iterator[_Log]:
    """:func:`_captured_logs`, and a failure inside raised as :class:`RunFailed`.

    The failure's extra line names the log (bad input, :class:`CLIError`, passes
    through as it is).
    """
    failure: Exception | None = None
    with _captured_logs(path) as log:
        try:
            yield log
        except (CLIError, RunFailed):
            raise
        except Exception as err:  # noqa: BLE001 - reported by main(), one line
            failure = err
    if failure is not None:
        lines = (
            [f"{log.summary()}; --debug shows the traceback and the logs here"]
            if log.path is not None
            else []
        )
        raise RunFailed(lines) from failure


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that suggest the nearest flag or subcommand.

    ``prog: error: message`` without the usage block; an unknown flag (``--chunk-size``)
    or subcommand gets ``did you mean ...?`` from the flags of its own subcommand.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and self._subcommand:
            # here, not in the top-level parser, which does not know these flags
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    @property
    def _subcommand(self) -> bool:
        return self.prog != PROG

    def _flags(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings if s != "-h"]

    def _suggest(self, word: str) -> str | None:
        word = word.split("=", 1)[0]
        if word.startswith("-"):
            candidates = self._flags()
        else:
            candidates = [sub.name for sub in SUBCOMMANDS]

        def key(name: str) -> str:
            return name.lstrip("-").replace("-", "").replace("_", "").lower()

        same = [c for c in candidates if key(c) == key(word) and c != word]
        close = same or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
        return close[0] if close else None

    def error(self, message: str) -> NoReturn:
        hint = ""
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        choice = re.match(r"argument SUBCOMMAND: invalid choice: '([^']*)'", message)
        word = unknown.group(1) if unknown else choice.group(1) if choice else None
        if word is not None:
            near = self._suggest(word)
            if near:
                hint = f" (did you mean {near}?)"
            elif unknown:
                hint = f" ({self.prog} --help lists them)"
            if choice:
                names = ", ".join(sub.name for sub in SUBCOMMANDS)
                message = f"unknown subcommand {word!r}; one of {names}"
        elif message.startswith("the following arguments are required"):
            hint = f" ({self.prog} --help)"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{hint}\n")


# ---------------------------------------------------------------- helpers


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"expected an integer >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _branch_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        msg = f"expected comma-separated branch names, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return names


def _format_counts(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low} to {high}"


# --------------------------------------------------------------- generate


def _configure_generate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", metavar="OUT.root", help="file to write")
    parser.add_argument(
        "--events",
        "-n",
        type=_positive_int,
        required=True,
        metavar="N",
        help="number of events to write",
    )
    parser.add_argument(
        "--events-per-basket",
        type=_positive_int,
        default=10_000,
        metavar="N",
        help=(
            "events per basket (with --format rntuple: per cluster, and per page, "
            "as uproot writes one page per column and cluster; default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--format",
        choices=("ttree", "rntuple"),
        default="ttree",
        type=str.lower,
        help="write a TTree or an RNTuple named Events (default: %(default)s)",
    )
    parser.add_argument(
        "--branches",
        type=_branch_list,
        default=None,
        metavar="A,B,C",
        help=(
            "comma-separated branches of the source file to write (counters "
            "such as nJet are added automatically; default: 98 branches of "
            "event IDs, Jet, Electron, Muon, MET, PV, flags and triggers)"
        ),
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (default: %(default)s)"
    )
    parser.add_argument(
        "--compression",
        default="ZLIB:1",
        metavar="ALG:LEVEL",
        help="ZLIB:1, LZ4:4, LZMA:9, ZSTD:5 or none (default: %(default)s)",
    )
    parser.add_argument(
        "--source",
        default=None,
        metavar="FILE.root",
        help="NanoAOD file to resample (default: the scikit-hep-testdata ttbar file)",
    )


def _run_generate(args: argparse.Namespace) -> int:
    # imported here to keep `coffea-sizing --help` fast
    import uproot

    from .datasets import make_nanoaod

    start = time.perf_counter()
    try:
        path = make_nanoaod(
            args.output,
            args.events,
            events_per_basket=args.events_per_basket,
            branches=args.branches,
            seed=args.seed,
            source=args.source,
            compression=args.compression,
            format=args.format,
        )
    except (ValueError, OSError) as err:  # bad input: no traceback
        raise CLIError(str(err)) from err
    elapsed = time.perf_counter() - start

    size = path.stat().st_size
    with uproot.open(path) as file:
        tree = file["Events"]
        names = tree.keys(recursive=False)
        if args.format == "rntuple":
            units = [len(tree.cluster_summaries)]
        else:
            units = [tree[name].num_baskets for name in names]
    column = "fields" if args.format == "rntuple" else "branches"
    print(f"wrote {path.resolve()}")
    print(f"  events:             {args.events:,} ({len(names)} {column})")
    print(f"  size:               {size / 1e6:.2f} MB ({size:,} bytes)")
    if args.format == "rntuple":
        print(
            f"  clusters:           {_format_counts(units)} "
            f"({args.events_per_basket:,} events per cluster, one page per column)"
        )
    else:
        print(
            f"  baskets per branch: {_format_counts(units)} "
            f"({args.events_per_basket:,} events per basket)"
        )
    print(f"  time:               {elapsed:.2f} s")
    return 0


# ------------------------------------------------------------ cluster + files
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


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout=args.timeout)
        except (OSError, TimeoutError) as err:
            raise CLIError(
                f"cannot reach the Dask scheduler at {args.scheduler} within "
                f"{args.timeout:g} s ({err})"
            ) from err
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            dashboard_address=":0",
            host="127.0.0.1",
            # warnings and errors go to the workers' log (_captured_logs); the
            # task's exception reaches the terminal once, by main()
            silence_logs=logging.WARNING,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


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


# ------------------------------------------------------------ registration

#: All subcommands, in the order shown by ``--help``.
SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        name="generate",
        help="write a NanoAOD-like file resampled from the CMS ttbar test file",
        description=(
            "Write a NanoAOD-like ROOT file of N events drawn with replacement "
            "from the 200 events of the CMS NanoAOD ttbar test file, in baskets "
            "of --events-per-basket events, readable by coffea's NanoAODSchema."
        ),
        configure=_configure_generate,
        run=_run_generate,
    ),
    Subcommand(
        name="chunks",
        help="run a processor with SizingDaskExecutor and print the per-chunk table",
        description=(
            "Run the BranchSweepProcessor (reading --branches branches) over FILES "
            "(default: the real ttbar test file and a generated file with real "
            "baskets) with SizingDaskExecutor, and print one row per chunk."
        ),
        configure=_configure_chunks,
        run=_run_chunks,
    ),
    Subcommand(
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
    ),
]


# ------------------------------------------------- run and advise (one run)
def _configure_run(parser: argparse.ArgumentParser) -> None:
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
    _add_sample_arguments(parser)


def _user_module(spec: str) -> tuple[Any, str | None]:
    """The module ``spec`` names (``MODULE[:ATTR]`` or ``PATH.py[:ATTR]``)."""
    import importlib
    import importlib.util
    import pathlib

    target, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if target.endswith(".py") or pathlib.Path(target).suffix == ".py":
        path = pathlib.Path(target)
        if not path.is_file():
            raise CLIError(f"{spec}: no such file: {target}")
        name = f"_coffea_sizing_user_{path.stem}"
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise CLIError(f"{spec}: {target} cannot be imported as a Python file")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:
            sys.modules.pop(name, None)
            raise CLIError(
                f"{spec}: importing {target} failed: {_import_error(err)}"
            ) from err
        return module, attr or None
    if not target or not attr:
        raise CLIError(
            f"{spec}: give the processor as MODULE:ATTR (e.g. mypkg.analysis:"
            "MyProcessor) or PATH.py[:ATTR]"
        )
    if "" not in sys.path and str(pathlib.Path.cwd()) not in sys.path:
        sys.path.insert(0, str(pathlib.Path.cwd()))
    try:
        module = importlib.import_module(target)
    except (Exception, SystemExit) as err:
        raise CLIError(
            f"{spec}: module {target!r} does not import: {_import_error(err)}"
        ) from err
    return module, attr


def _import_error(err: BaseException) -> str:
    """One line for an exception raised while importing the user's module."""
    if isinstance(err, SystemExit):
        return (
            f"it calls sys.exit({err.code!r}) at import (move the script part "
            'under `if __name__ == "__main__":`)'
        )
    return f"{type(err).__name__}: {err}"


def _load_processor(spec: str) -> Any:
    """The processor instance ``spec`` names; its module travels by value."""
    import cloudpickle
    from coffea.processor import ProcessorABC

    module, attr = _user_module(spec)
    if attr is None:
        found = [
            name
            for name, obj in vars(module).items()
            if getattr(obj, "__module__", None) == module.__name__
            and (
                (isinstance(obj, type) and issubclass(obj, ProcessorABC))
                or isinstance(obj, ProcessorABC)
            )
        ]
        if len(found) != 1:
            raise CLIError(
                f"{spec}: name the processor as {spec}:ATTR ("
                + (f"it defines {', '.join(found)}" if found else "it defines none")
                + ")"
            )
        attr = found[0]
    try:
        obj = getattr(module, attr)
    except AttributeError as err:
        raise CLIError(
            f"{spec}: {module.__name__.removeprefix('_coffea_sizing_user_')!r} has "
            f"no attribute {attr!r}"
        ) from err
    if isinstance(obj, type) and issubclass(obj, ProcessorABC):
        try:
            obj = obj()
        except Exception as err:
            raise CLIError(
                f"{spec}: {attr}() failed ({type(err).__name__}: {err}); give an "
                "instance instead (processor = MyProcessor(...) in the module)"
            ) from err
    if not isinstance(obj, ProcessorABC):
        kind = "class" if isinstance(obj, type) else type(obj).__name__
        raise CLIError(
            f"{spec}: {attr} is a {kind}, not a coffea processor (a subclass or an "
            "instance of coffea.processor.ProcessorABC)"
        )
    # workers may not import the user's module: ship its code with the processor
    cloudpickle.register_pickle_by_value(module)
    return obj


def _load_schema(name: str) -> Any:
    import importlib

    from coffea import nanoevents

    if ":" in name:
        target, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(target), attr)
        except (ImportError, AttributeError) as err:
            raise CLIError(f"--schema {name}: {err}") from err
        except (Exception, SystemExit) as err:
            raise CLIError(f"--schema {name}: {_import_error(err)}") from err
    if name == "QuietNanoAODSchema":
        from .schemas import QuietNanoAODSchema

        return QuietNanoAODSchema
    schema = getattr(nanoevents, name, None)
    if not isinstance(schema, type):
        known = sorted(n for n in dir(nanoevents) if n.endswith("Schema"))
        raise CLIError(
            f"--schema {name}: not a schema of coffea.nanoevents (one of: "
            f"{', '.join(known)}; QuietNanoAODSchema; or MODULE:ATTR)"
        )
    return schema


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


def _retries(args: argparse.Namespace) -> int:
    """``--retries``, default 0 on a cluster started here, DaskExecutor's otherwise."""
    if args.retries is not None:
        return int(args.retries)
    if not args.scheduler:
        return 0  # a deterministic bug fails once, not four times
    from .executor import SizingDaskExecutor

    default: Any = SizingDaskExecutor.__dataclass_fields__["retries"].default
    return int(default)


def _log_path(args: argparse.Namespace, out: Path) -> Path | None:
    return None if getattr(args, "debug", False) else out / WORKER_LOG


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


def _warnings_line(log: _Log, command: str) -> None:
    """One line on stderr counting the warnings the workers logged, if any."""
    if log.path is not None and log.read_warnings():
        print(f"{PROG} {command}: {log.summary()}", file=sys.stderr)


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


SUBCOMMANDS.extend(
    [
        Subcommand(
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
        ),
        Subcommand(
            name="advise",
            help="findings and a chunk size from saved records, without rerunning",
            description=(
                "Read records saved by `coffea-sizing run` (or save_records) and "
                "print the findings, the model and the recommended chunk size."
            ),
            configure=_configure_advise,
            run=_run_advise,
        ),
    ]
)


# ------------------------------------------- plan: a sample to the whole fileset
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
    import pathlib

    from coffea import processor

    from .executor import SizingDaskExecutor
    from .report import save_plan_report
    from .store import save_records

    plan = _plan_or_fail(advice, fileset, args)
    print()
    print(plan)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan.to_frame().to_csv(out / "plan.csv", index=False)
    written = save_plan_report(plan, out)
    print(
        f"wrote plan: {out / 'plan.csv'}, {written['html']} (figure {written['figure']})"
    )
    if not args.calibrate:
        return
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


SUBCOMMANDS.append(
    Subcommand(
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
)


_WORK_ITEM = re.compile(
    r"(?P<what>Failed processing file|Failed creating nanoevents|Failed to open file)"
    r": WorkItem\((?P<item>.*?)\)\. The error was: (?P<error>.*?)\.?$",
    re.DOTALL,
)
_WHAT = {
    "Failed processing file": "the processor failed on",
    "Failed creating nanoevents": "building the events failed on",
    "Failed to open file": "cannot open",
}
_ITEM_FIELD = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\d+)")
_REPR = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*)\((?P<q>['\"])(?P<msg>.*)(?P=q),?\)$", re.DOTALL
)


def run_error_message(error: BaseException) -> str:
    """One line for an exception raised by a run: the chunk and the real error.

    coffea wraps a chunk's exception as ``Failed processing file: WorkItem(...).
    The error was: ValueError('...')``; this names the file, the entries, the
    dataset and tree, and the exception of the processor instead. Other exceptions
    give ``Type: message``, first line only.

    Parameters
    ----------
    error : BaseException
        What the run (``Runner``, ``branch_sweep``, ...) raised; its causes are
        searched too.

    Returns
    -------
    str

    Examples
    --------
    >>> from coffea_sizing.cli import run_error_message
    >>> err = Exception("Failed processing file: WorkItem(dataset='dy', "
    ...     "filename='/data/dy.root', treename='Events', entrystart=0, "
    ...     "entrystop=5000, fileuuid=b'x', usermeta={}). The error was: "
    ...     "ValueError('no muons').")
    >>> run_error_message(err)
    "the processor failed on /data/dy.root, entries 0-5,000 (dataset 'dy', tree 'Events'): ValueError: no muons"
    >>> run_error_message(KeyError("Jet_pt"))
    "KeyError: 'Jet_pt'"
    """
    seen: set[int] = set()
    err: BaseException | None = error
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        match = _WORK_ITEM.search(str(err))
        if match:
            fields = {
                k: v.strip("'") for k, v in _ITEM_FIELD.findall(match.group("item"))
            }
            where = fields.get("filename", "?")
            if "entrystart" in fields and "entrystop" in fields:
                where += (
                    f", entries {int(fields['entrystart']):,}-"
                    f"{int(fields['entrystop']):,}"
                )
            inner = match.group("error").strip()
            rep = _REPR.match(inner)
            if rep:
                inner = f"{rep.group('type')}: {rep.group('msg')}"
            return (
                f"{_WHAT[match.group('what')]} {where} (dataset "
                f"{fields.get('dataset', '?')!r}, tree {fields.get('treename', '?')!r})"
                f": {_first_line(inner)}"
            )
        err = err.__cause__ or err.__context__
    text = str(error) if not isinstance(error, KeyError) else repr(error.args[0])
    text = _first_line(text) if error.args else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] + (" ..." if len(lines) > 1 else "")


def build_parser() -> argparse.ArgumentParser:
    """The ``coffea-sizing`` parser with every subcommand of :data:`SUBCOMMANDS`.

    Returns
    -------
    argparse.ArgumentParser
        Parsing sets ``command`` (the subcommand name) and ``run`` (its run
        function).
    """
    parser = _Parser(
        prog=PROG,
        description="Per-chunk sizes for coffea processors on Dask.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback and the workers' logs",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="SUBCOMMAND", required=True
    )
    for sub in SUBCOMMANDS:
        sub_parser = subparsers.add_parser(
            sub.name, help=sub.help, description=sub.description or sub.help
        )
        sub.configure(sub_parser)
        sub_parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on an error, show the full traceback and the workers' logs",
        )
        sub_parser.set_defaults(run=sub.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coffea-sizing`` with ``argv`` (default: ``sys.argv[1:]``).

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments without the program name.

    Returns
    -------
    int
        Exit code: 0 on success, 2 for bad input, 1 for a run that failed (one
        line on stderr; ``--debug`` adds the traceback).

    Examples
    --------
    >>> from coffea_sizing.cli import main
    >>> main(["generate", "out.root", "--events", "1000"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or bad arguments (2)
        code = exit_.code
        return code if isinstance(code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    try:
        return int(args.run(args))
    except CLIError as err:
        if debug:
            traceback.print_exc()
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except RunFailed as failed:
        cause = failed.__cause__ or failed
        if debug:
            traceback.print_exception(cause)
        print(
            f"{PROG} {args.command}: error: {run_error_message(cause)}",
            file=sys.stderr,
        )
        for line in failed.lines:
            print(f"{PROG} {args.command}: {line}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:  # noqa: BLE001 - any run failure: one line, exit 1
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (--debug for the traceback)"
        print(
            f"{PROG} {args.command}: error: {run_error_message(err)}{hint}",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
