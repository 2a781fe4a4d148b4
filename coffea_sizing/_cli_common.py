"""What every ``coffea-sizing`` subcommand shares: errors, exit codes, logs, a cluster.

Covers :class:`Subcommand` (what a subcommand module defines), :class:`CLIError`
(bad input: one line, exit code 2) and ``RunFailed`` (a failed run: its cause's
line, then what was written and where the log is; exit code 1),
:func:`run_error_message` (the one line for a run's exception), the workers' log
(``_captured_logs``: file descriptor 2 goes to ``workers.log`` while a cluster
runs, so the workers it starts inherit it), the argument types every subcommand
uses and ``_client`` (a LocalCluster, or ``--scheduler``).

Not here: the parser and :func:`~coffea_sizing.cli.main` (:mod:`coffea_sizing.cli`,
which reports these errors), and the subcommands themselves (``_cli_generate``,
``_cli_sweep``, ``_cli_run``, ``_cli_advise``; the processor and schema of ``run``
in ``_cli_processor``). Imports nothing else of the package: like every
subcommand module, it imports what a run needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

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


def _log_path(args: argparse.Namespace, out: Path) -> Path | None:
    return None if getattr(args, "debug", False) else out / WORKER_LOG


def _warnings_line(log: _Log, command: str) -> None:
    """One line on stderr counting the warnings the workers logged, if any."""
    if log.path is not None and log.read_warnings():
        print(f"{PROG} {command}: {log.summary()}", file=sys.stderr)


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
