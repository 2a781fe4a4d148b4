"""Command-line interface: ``coffea-sizing SUBCOMMAND ...``.

Every subcommand is a :class:`Subcommand`: a function that adds its arguments
to its own :class:`argparse.ArgumentParser` and a function that runs it and
returns the exit code. They are registered in one place, :data:`SUBCOMMANDS`;
to add one (say ``sweep``), write ``_configure_sweep`` and ``_run_sweep`` and
append ``Subcommand("sweep", ...)`` there.

A run function reports bad input by raising :class:`CLIError`: :func:`main`
prints ``coffea-sizing SUBCOMMAND: error: MESSAGE`` on stderr and returns 2,
like argparse does for bad arguments, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["SUBCOMMANDS", "CLIError", "Subcommand", "build_parser", "main"]

PROG = "coffea-sizing"

#: Exit code for bad input (same as argparse's).
EXIT_USAGE = 2


class CLIError(Exception):
    """Bad input to a subcommand: reported on stderr, exit code 2."""


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
        help="events per basket (default: %(default)s)",
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
        )
    except (ValueError, OSError) as err:  # bad input: no traceback
        raise CLIError(str(err)) from err
    elapsed = time.perf_counter() - start

    size = path.stat().st_size
    with uproot.open(path) as file:
        tree = file["Events"]
        names = tree.keys()
        baskets = [tree[name].num_baskets for name in names]
    print(f"wrote {path.resolve()}")
    print(f"  events:             {args.events:,} ({len(names)} branches)")
    print(f"  size:               {size / 1e6:.2f} MB ({size:,} bytes)")
    print(
        f"  baskets per branch: {_format_counts(baskets)} "
        f"({args.events_per_basket:,} events per basket)"
    )
    print(f"  time:               {elapsed:.2f} s")
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
]


def build_parser() -> argparse.ArgumentParser:
    """The ``coffea-sizing`` parser with every subcommand of :data:`SUBCOMMANDS`.

    Returns
    -------
    argparse.ArgumentParser
        Parsing sets ``command`` (the subcommand name) and ``run`` (its run
        function).
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Per-chunk sizes for coffea processors on Dask.",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="SUBCOMMAND", required=True
    )
    for sub in SUBCOMMANDS:
        sub_parser = subparsers.add_parser(
            sub.name, help=sub.help, description=sub.description or sub.help
        )
        sub.configure(sub_parser)
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
        Exit code: 0 on success, 2 for bad input (message on stderr).

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
    try:
        return int(args.run(args))
    except CLIError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
