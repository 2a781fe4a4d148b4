"""Measure a run on a Dask cluster that is already running: ``Client("tcp://...")``.

On a batch system (dask-jobqueue) or an analysis facility (coffea-casa) the cluster
exists before your script starts, and your script connects to its scheduler by
address. :class:`~coffea_sizing.SizingDaskExecutor` needs nothing more than that
client, and ``coffea_sizing`` importable where the scheduler and the workers run: its
scheduler plugin is registered over the connection, each chunk's record travels to the
scheduler as a Dask event, and the run's state is cleared from the scheduler at the end.

The script takes the scheduler's address from ``--scheduler`` or from
``DASK_SCHEDULER_ADDRESS`` (Dask's own setting). Given neither, it starts a
``LocalCluster`` of 2 single-threaded workers and connects to it *by address*, exactly
as it would to a remote one; it never closes a cluster it did not start. It then

1. checks that the scheduler and every worker can import ``coffea_sizing`` (and which
   version), the one thing a shared cluster may lack;
2. runs a processor defined in this script (cloudpickle ships it to the workers by
   value) with :class:`~coffea_sizing.SizingDaskExecutor` over the embedded default
   data, and prints the per-chunk table with the worker of every chunk and a
   per-worker summary;
3. shows that nothing of the run is left on the scheduler.

Run it (under a minute on 2 cores)::

    python examples/existing_cluster.py                       # its own LocalCluster
    python examples/existing_cluster.py --scheduler tcp://scheduler:8786
    DASK_SCHEDULER_ADDRESS=tcp://scheduler:8786 python examples/existing_cluster.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import pandas as pd
from coffea import processor
from distributed import Client, LocalCluster

from coffea_sizing import SizingDaskExecutor, chunk_table
from coffea_sizing.datasets import default_fileset
from coffea_sizing.findings import format_bytes
from coffea_sizing.plugin import scheduler_state
from coffea_sizing.sweep import SweepSchema
from coffea_sizing.tables import to_text

CHUNKSIZE = {"ttbar": 100, "generated": 20_000}


class LeptonProcessor(processor.ProcessorABC):
    """Counts electrons and muons above 20 GeV: defined here, shipped by value."""

    def process(self, events):
        electrons = events.Electron[events.Electron.pt > 20]
        muons = events.Muon[events.Muon.pt > 20]
        return {
            "nevents": len(events),
            "electrons": int(ak.sum(ak.num(electrons))),
            "muons": int(ak.sum(ak.num(muons))),
        }

    def postprocess(self, accumulator):
        return accumulator


def where_is_coffea_sizing() -> str:
    """Runs on the scheduler and on every worker."""
    try:
        import coffea_sizing
    except ImportError:
        return "MISSING"
    return coffea_sizing.__version__


@contextlib.contextmanager
def connect(address: str | None) -> Iterator[Client]:
    """A client of the scheduler at ``address``, or of a LocalCluster started here."""
    if address:
        print(f"connecting to the scheduler at {address}")
        with Client(address, timeout=30) as client:
            yield client
        return
    with LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        print(
            "no scheduler given: started a LocalCluster of 2 workers; "
            "connecting to it by address, as to a remote scheduler"
        )
        with Client(address) as client:
            yield client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get("DASK_SCHEDULER_ADDRESS"),
        help="scheduler address, e.g. tcp://host:8786 (default: "
        "$DASK_SCHEDULER_ADDRESS, else a LocalCluster started here)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("existing-cluster"), help="output directory"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    fileset = default_fileset()

    with connect(args.scheduler) as client:
        # 1. can the scheduler and the workers import coffea_sizing? ----------------
        on_scheduler = client.run_on_scheduler(where_is_coffea_sizing)
        on_workers = client.run(where_is_coffea_sizing)
        print(f"scheduler: coffea_sizing {on_scheduler}")
        for i, version in enumerate(on_workers.values()):
            print(f"worker {i}: coffea_sizing {version}")
        if "MISSING" in (on_scheduler, *on_workers.values()):
            print(
                "install coffea-sizing where the scheduler and the workers run",
                file=sys.stderr,
            )
            return 1
        workers = {addr: f"worker {i}" for i, addr in enumerate(on_workers)}

        # 2. a measured run ------------------------------------------------------------
        tables = []
        for dataset, files in fileset.items():
            runner = processor.Runner(
                executor=SizingDaskExecutor(client=client, status=False),
                savemetrics=True,
                schema=SweepSchema,
                chunksize=CHUNKSIZE[dataset],
            )
            out, report = runner(
                {dataset: files},
                treename="Events",
                processor_instance=LeptonProcessor(),
            )
            print(
                f"{dataset}: {out['nevents']:,} events, {out['electrons']:,} "
                f"electrons and {out['muons']:,} muons above 20 GeV; "
                f"{report['chunks']} chunks, bytesread "
                f"{format_bytes(report['bytesread'])}"
            )
            tables.append(chunk_table(report))
        table = pd.concat(tables, ignore_index=True)
        table["worker"] = table["worker"].map(workers).fillna(table["worker"])
        table.to_csv(args.out / "chunks.csv", index=False)

        # units in the headers, one unit per column (kB, MB, ms, s): to_text
        print("\nPer chunk")
        print(
            to_text(
                table,
                [
                    "dataset",
                    "entrystart",
                    "entrystop",
                    "worker",
                    "bytesread",
                    "task_nbytes",
                    "mem_peak_bytes",
                    "walltime",
                ],
            )
        )
        per_worker = (
            table.groupby("worker")
            .agg(
                chunks=("key", "size"),
                events=("entries", "sum"),
                bytesread=("bytesread", "sum"),
                task_nbytes=("task_nbytes", "sum"),
                mem_peak_max=("mem_peak_bytes", "max"),
            )
            .reset_index()
        )
        print("\nPer worker")
        print(to_text(per_worker))

        # 3. nothing left behind on the scheduler --------------------------------
        state = scheduler_state(client)
        print(
            f"\nscheduler plugin registered: {state['registered']}; this client's runs "
            f"still open: {state['runs']}; tasks held: {state['held']}"
        )
        print(
            f"The branch sweep on this cluster: coffea-sizing sweep --scheduler "
            f"{client.scheduler.address}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
