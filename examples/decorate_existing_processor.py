"""Decorate a processor you already have, and run it with any executor.

``JetsProcessor`` below stands for an analysis you already run: it is an ordinary
coffea processor and knows nothing about sizing. :func:`~coffea_sizing.track_sizes`
decorates it *at run time* (``track_sizes(JetsProcessor)`` returns a subclass with
the same name; the original class is not modified), and the decorated processor is
run three ways on the embedded default data:

1. coffea's ``IterativeExecutor``: no cluster at all. The chunk records travel in the
   output under the reserved key ``"@coffea_sizing"``;
   :func:`~coffea_sizing.chunk_table` and :func:`~coffea_sizing.split_records` take
   them out, and ``postprocess`` never sees them.
2. coffea's own ``DaskExecutor`` on a ``LocalCluster``: the same records, and
   ``bytesread_open + bytesread_payload`` adds up to coffea's ``report["bytesread"]``
   to the byte.
3. :class:`~coffea_sizing.SizingDaskExecutor`: the decorator's fields join each chunk's
   record in ``report["sizing"]`` (next to ``task_nbytes``, the pickled and compressed
   output and the worker's memory), and the output carries no records.

Run it (under a minute on 2 cores)::

    python examples/decorate_existing_processor.py --out decorated

It prints one table per executor and writes them as CSV files into ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import awkward as ak
import hist
import pandas as pd
from coffea import processor
from distributed import Client, LocalCluster

from coffea_sizing import SizingDaskExecutor, chunk_table, split_records, track_sizes
from coffea_sizing.datasets import default_fileset
from coffea_sizing.sweep import SweepSchema

#: Entries per chunk: 2 chunks of the 200-event ttbar file, 4 of the generated file
#: (100,000 events in baskets of 10,000: chunks of 25,000 cut a basket in two).
CHUNKSIZE = {"ttbar": 100, "generated": 25_000}

#: The columns shown of each table (the CSV files have them all).
SHOWN = [
    "dataset",
    "entrystart",
    "entrystop",
    "bytesread_open",
    "bytesread_payload",
    "columns_read",
    "process_walltime",
    "process_mem_usage_bytes",
]


class JetsProcessor(processor.ProcessorABC):
    """An existing analysis: events with at least two central jets, and their HT."""

    def process(self, events):
        jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]
        selected = jets[ak.num(jets) >= 2]
        ht = ak.sum(selected.pt, axis=1)
        h = hist.Hist.new.Reg(40, 0, 1000, name="ht", label="HT [GeV]").Double()
        h.fill(ht=ht)
        return {"nevents": len(events), "nselected": len(selected), "ht": h}

    def postprocess(self, accumulator):
        # runs on your output only: the records are put back afterwards
        assert "@coffea_sizing" not in accumulator
        accumulator["efficiency"] = accumulator["nselected"] / accumulator["nevents"]
        return accumulator


def runner_for(executor, dataset: str, savemetrics: bool = False) -> processor.Runner:
    return processor.Runner(
        executor=executor,
        schema=SweepSchema,  # NanoAODSchema without the test file's warnings
        chunksize=CHUNKSIZE[dataset],
        savemetrics=savemetrics,
    )


def show(title: str, table: pd.DataFrame, out: Path, name: str) -> None:
    print(f"\n{title}")
    print("-" * len(title))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        shown = table[SHOWN].copy()
        shown["process_walltime"] = shown["process_walltime"].round(3)
        print(shown.to_string(index=False))
    table.to_csv(out / f"{name}.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("decorated"), help="output directory"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    fileset = default_fileset()
    # run-time decoration: a subclass with the same name, shipped to workers by value
    Tracked = track_sizes(JetsProcessor)
    print(
        f"track_sizes(JetsProcessor) is {Tracked.__qualname__}, a subclass: "
        f"{issubclass(Tracked, JetsProcessor)}; the original is untouched: "
        f"{JetsProcessor.process is not Tracked.process}"
    )

    # 1. IterativeExecutor: records travel in the output -------------------------
    tables = []
    for dataset, files in fileset.items():
        runner = runner_for(processor.IterativeExecutor(status=False), dataset)
        with contextlib.redirect_stdout(io.StringIO()):  # coffea's progress output
            out = runner(
                {dataset: files}, treename="Events", processor_instance=Tracked()
            )
        user_output, records = split_records(out)
        print(
            f"IterativeExecutor, {dataset}: {len(records)} chunk records; your "
            f"output keys: {sorted(user_output)}; "
            f"selection efficiency {user_output['efficiency']:.3f}"
        )
        tables.append(chunk_table(out))
    show(
        "1. IterativeExecutor (records in the output)",
        pd.concat(tables),
        args.out,
        "iterative",
    )

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        # 2. coffea's DaskExecutor: the split adds up to coffea's bytesread ----------
        tables = []
        for dataset, files in fileset.items():
            runner = runner_for(
                processor.DaskExecutor(client=client, status=False), dataset, True
            )
            out, report = runner(
                {dataset: files}, treename="Events", processor_instance=Tracked()
            )
            table = chunk_table(out)
            measured = int((table["bytesread_open"] + table["bytesread_payload"]).sum())
            print(
                f"DaskExecutor, {dataset}: open + payload = {measured:,} B; coffea's "
                f"report['bytesread'] = {report['bytesread']:,} B; equal: "
                f"{measured == report['bytesread']}"
            )
            tables.append(table)
        show(
            "2. DaskExecutor (records in the output)",
            pd.concat(tables),
            args.out,
            "dask",
        )

        # 3. SizingDaskExecutor: the fields join report["sizing"] --------------------
        tables = []
        for dataset, files in fileset.items():
            runner = runner_for(
                SizingDaskExecutor(client=client, status=False), dataset, True
            )
            out, report = runner(
                {dataset: files}, treename="Events", processor_instance=Tracked()
            )
            table = chunk_table(report)
            print(
                f"SizingDaskExecutor, {dataset}: {len(table)} records in "
                f"report['sizing']; records left in the output: "
                f"{'@coffea_sizing' in out}"
            )
            tables.append(table)
        table = pd.concat(tables)
        show(
            "3. SizingDaskExecutor (records in report['sizing'])",
            table,
            args.out,
            "sizing",
        )
        print("\nThe same chunks, as the executor sees them:")
        with pd.option_context("display.width", 200):
            print(
                table[
                    [
                        "dataset",
                        "entrystart",
                        "bytesread",
                        "task_nbytes",
                        "output_pickled_bytes",
                        "mem_peak_bytes",
                    ]
                ].to_string(index=False)
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
