"""The branch sweep: does the scheduler's ``TaskState.nbytes`` track ``bytesread``?

The original study ran one coffea processor at five levels, reading 1, 2, 3, 5 and 10
branches (Jet pt/eta/phi/mass, Electron pt/eta, Muon pt/eta, MET pt/phi, cumulatively),
and asked whether the input coffea reports (``bytesread``) and the size the Dask
scheduler records for each chunk's result (``TaskState.nbytes``) grow together. This
script does the same study with the library:
:class:`~coffea_sizing.sweep.BranchSweepProcessor` is that processor,
:func:`~coffea_sizing.sweep.branch_sweep` runs it with
:class:`~coffea_sizing.SizingDaskExecutor` (and :func:`~coffea_sizing.track_sizes`, which
splits ``bytesread`` into opening the file and reading baskets), and the
:class:`~coffea_sizing.sweep.SweepResult` holds the summary, the ratios, the
correlations, the figure and the findings.

The input is the embedded default data
(:func:`~coffea_sizing.datasets.default_fileset`): the real 200-event CMS ttbar file,
in chunks of 50 events, and a 100,000-event file resampled from it with real baskets of
10,000 events, in chunks of 10,000.

Run it (under a minute on 2 cores; the first run also writes the generated file)::

    python examples/branch_sweep.py --out branch-sweep

It prints the tables and the findings and writes, into ``--out``, the CSV tables, the
figure ``sweep.png``, the self-contained ``report.html`` and ``sweep-result.pkl`` (the
whole :class:`~coffea_sizing.sweep.SweepResult`, for ``pandas.read_pickle``).
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import pandas as pd
from distributed import Client, LocalCluster

from coffea_sizing.datasets import default_fileset
from coffea_sizing.sweep import (
    DEFAULT_BRANCH_COUNTS,
    BranchSweepProcessor,
    SweepResult,
    branch_sweep,
)
from coffea_sizing.tables import to_text

#: Entries per chunk: the original study's 50 on the 200-event file, one chunk per
#: basket (10,000 events) on the generated file.
CHUNKSIZE = {"ttbar": 50, "generated": 10_000}

#: The summary columns printed (the rest are in summary.csv).
SUMMARY_COLUMNS = [
    "dataset",
    "branches",
    "chunks",
    "events",
    "bytesread_per_chunk",
    "bytesread_payload_total",
    "open_share",
    "task_nbytes_mean",
    "output_pickled_mean",
    "output_compressed_mean",
    "prediction_exact_chunks",
]


def print_table(title: str, frame: pd.DataFrame, *, ratio: bool = False) -> None:
    print(f"\n{title}")
    print("-" * len(title))
    print(to_text(frame, ratio=ratio))  # units in the headers, numbers right-aligned


def run(out: Path, scheduler: str | None = None) -> SweepResult:
    fileset = default_fileset()

    print("Processor levels (cumulative):")
    for n in DEFAULT_BRANCH_COUNTS:
        print(f"  {n:2d}: {', '.join(BranchSweepProcessor(n).branches)}")
    for dataset, files in fileset.items():
        print(f"{dataset}: {', '.join(Path(f).name for f in files)}")

    t0 = time.perf_counter()
    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0"
        )
        client = Client(cluster)
    try:
        result = branch_sweep(
            fileset,
            DEFAULT_BRANCH_COUNTS,
            chunksize=CHUNKSIZE,
            client=client,
            progress=print,
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(f"sweep: {len(result.chunks)} chunks in {time.perf_counter() - t0:.1f} s")

    print_table(
        "Summary, one row per dataset and branch count", result.summary[SUMMARY_COLUMNS]
    )
    print_table("Ratios to the first branch count", result.ratios, ratio=True)
    print_table("Correlations over chunks, per dataset", result.correlations)
    print("\nFindings")
    print("--------")
    for finding in result.findings:
        print(f"[{finding.severity}] {finding.message}\n")

    out.mkdir(parents=True, exist_ok=True)
    paths = result.save(out)  # CSV tables, sweep.png, report.html
    with (out / "sweep-result.pkl").open("wb") as f:
        pickle.dump(result, f)
    paths["result"] = out / "sweep-result.pkl"
    print()
    for name, path in paths.items():
        print(f"wrote {name}: {path.name}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("branch-sweep"), help="output directory"
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="use this Dask scheduler instead of a LocalCluster of 2 workers",
    )
    args = parser.parse_args(argv)
    run(args.out, args.scheduler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
