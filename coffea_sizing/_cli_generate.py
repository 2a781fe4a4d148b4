"""``coffea-sizing generate``: write a NanoAOD-like file resampled from the CMS test file.

Covers the subcommand's arguments (``_configure_generate``), its run
(``_run_generate``: :func:`coffea_sizing.datasets.make_nanoaod`, then the file's
size, events and baskets or clusters) and :data:`GENERATE`, its registration in
:data:`coffea_sizing.cli.SUBCOMMANDS`. The files themselves are
:mod:`coffea_sizing.datasets`; what every subcommand shares is ``_cli_common``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from ._cli_common import CLIError, Subcommand, _positive_int


def _branch_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        msg = f"expected comma-separated branch names, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return names


def _format_counts(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low} to {high}"


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


#: ``coffea-sizing generate``, as :data:`coffea_sizing.cli.SUBCOMMANDS` lists it.
GENERATE = Subcommand(
    name="generate",
    help="write a NanoAOD-like file resampled from the CMS ttbar test file",
    description=(
        "Write a NanoAOD-like ROOT file of N events drawn with replacement "
        "from the 200 events of the CMS NanoAOD ttbar test file, in baskets "
        "of --events-per-basket events, readable by coffea's NanoAODSchema."
    ),
    configure=_configure_generate,
    run=_run_generate,
)
