"""Command-line interface: ``coffea-sizing SUBCOMMAND ...``.

Every subcommand is a :class:`Subcommand`: a function that adds its arguments
to its own :class:`argparse.ArgumentParser` and a function that runs it and
returns the exit code. They are registered in one place, :data:`SUBCOMMANDS`;
to add one (say ``merge``), write ``_configure_merge``, ``_run_merge`` and
``MERGE = Subcommand("merge", ...)`` in a module ``_cli_merge.py`` (or in the
module of its family) and append ``MERGE`` there.

Where each subcommand lives, one family per module, each importing only
``_cli_common`` (and the one below it named here):

- ``_cli_generate``: ``generate`` (a NanoAOD-like file);
- ``_cli_sweep``: ``chunks`` and ``sweep`` (the branch sweep's processor);
- ``_cli_run``: ``run`` (your processor; ``--sample``, ``--calibrate``), with
  ``_cli_processor`` (loading it and its schema) and ``_cli_advise`` below it;
- ``_cli_advise``: ``advise`` and ``plan`` (from saved records);
- ``_cli_common``: what they share: :class:`CLIError`, ``RunFailed``, the
  workers' log, the argument types, the cluster, :func:`run_error_message`.

This module holds the parser and :func:`main`. A run function reports bad input by
raising :class:`CLIError`: :func:`main` prints ``coffea-sizing SUBCOMMAND: error:
MESSAGE`` on stderr and returns 2, like argparse does for bad arguments (one line,
the nearest flag suggested), without a traceback. Any other exception of a run is
reported the same way in one line (:func:`run_error_message`: the file, entries and
the processor's exception) with exit code 1, followed by the lines of ``RunFailed``
(what finished and was written, where the log is); ``--debug`` adds the traceback.
While a cluster runs, the process's file descriptor 2, which the workers it starts
inherit, goes to ``workers.log`` (``_captured_logs``): log records and warnings stay
off the terminal.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from ._cli_advise import ADVISE, PLAN
from ._cli_common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    PROG,
    CLIError,
    RunFailed,
    Subcommand,
    run_error_message,
)
from ._cli_generate import GENERATE
from ._cli_run import RUN
from ._cli_sweep import CHUNKS, SWEEP

__all__ = [
    "SUBCOMMANDS",
    "CLIError",
    "Subcommand",
    "build_parser",
    "main",
    "run_error_message",
]

#: All subcommands, in the order shown by ``--help``.
SUBCOMMANDS: list[Subcommand] = [GENERATE, CHUNKS, SWEEP, RUN, ADVISE, PLAN]


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
