"""Advice for your own run: findings, a chunk size and a worker memory.

``Dimuon`` below stands for your analysis: an ordinary coffea processor. It is run
once with :class:`~coffea_sizing.SizingDaskExecutor` and ``savemetrics=True`` on the
embedded default data (the real CMS NanoAOD file and the generated 100,000-event file),
at a deliberately small chunk size, and :func:`~coffea_sizing.advise` reads the
report:

1. the findings: what the records show, with the numbers and what to change;
2. the recommendation: per dataset, the chunk size to use, what decided it, and the
   predicted figures next to the measured ones;
3. the records saved with :func:`~coffea_sizing.save_records` (Parquet, with the run's
   context) and advised on again from the file, here for workers of 1 GB: what
   ``coffea-sizing advise RECORDS --worker-memory 1GB`` prints.

The figure (every chunk, the model and the recommended size) and the HTML report
(findings first) are written into ``--out``. Run it (well under a minute on 2 cores)::

    python examples/advise_my_run.py --out advice

The same from the command line, for a processor in a file of yours::

    coffea-sizing run my_analysis.py:Dimuon data/*.root --chunksize 5000 --out advice
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import hist
from coffea import processor
from distributed import Client, LocalCluster

from coffea_sizing import SizingDaskExecutor, advise, save_records
from coffea_sizing.datasets import default_fileset
from coffea_sizing.report import save_advice_report
from coffea_sizing.sweep import SweepSchema

#: Deliberately small chunks: 4 of the 200-event file, 20 of the generated file.
CHUNKSIZE = 5_000


class Dimuon(processor.ProcessorABC):
    """Muon pt and the dimuon mass (leading pair), as histograms."""

    def process(self, events):
        muons = events.Muon
        pt = hist.Hist.new.Reg(40, 0, 200, name="pt").Double()
        pt.fill(ak.flatten(muons.pt))
        two = muons[ak.num(muons) >= 2]
        mass = hist.Hist.new.Reg(60, 0, 150, name="m").Double()
        mass.fill((two[:, 0] + two[:, 1]).mass)
        return {"nevents": len(events), "pt": pt, "mass": mass}

    def postprocess(self, accumulator):
        return accumulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="advice", help="where to write the files")
    args = parser.parse_args()
    out = Path(args.out)
    fileset = default_fileset()
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            memory_limit="2GB",
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        runner = processor.Runner(
            executor=SizingDaskExecutor(client=client, status=False),
            savemetrics=True,
            schema=SweepSchema,
            chunksize=CHUNKSIZE,
        )
        _, report = runner(fileset, treename="Events", processor_instance=Dimuon())

    advice = advise(report)
    print(advice)
    print()
    paths = save_advice_report(advice, out)
    records = save_records(
        report, out / "records.parquet", context={"chunksize": CHUNKSIZE}
    )
    print(
        f"wrote {records}, {records.with_suffix('.csv')}, {', '.join(map(str, paths.values()))}"
    )
    print()
    print("From the saved records, for workers of 1 GB:")
    small = advise(records, worker_memory="1GB")
    print(
        small.recommendation[["dataset", "chunksize", "decided_by"]].to_string(
            index=False
        )
    )


if __name__ == "__main__":
    main()
