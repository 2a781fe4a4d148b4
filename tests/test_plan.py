"""Advice.plan(): a campaign planned from a sample, checked against the whole run.

Fileset: 1,000,000 generated events in 8 files and two layouts ("tt": 4 files of
150,000 events in baskets of 10,000; "dy": 4 files of 100,000 in baskets of 4,000).
Tolerances: chunks and bytes read exact; total worker-seconds within a factor of 3
(planned / measured 0.42-1.66 over benchmarks/bench_plan.py's runs at load 0.7, 0.46
in this test once after other tests had run on the session cluster: chunks of 150,000
are 4-15x the sampled ones); the chunk's peak
as increment over the resident memory at its start (``mem_usage_bytes``) within 25%
or 15 MB, whichever is larger, for a processor whose memory grows with the chunk.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import awkward as ak
import cloudpickle
import numpy as np
import pandas as pd
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from coffea_sizing import SizingDaskExecutor, advise, chunk_table, load_records
from coffea_sizing.datasets import make_nanoaod
from coffea_sizing.plan import PlanError, sample_work

from conftest import CHROMIUM, SCIENTIFIC, layout_in_chromium

cloudpickle.register_pickle_by_value(sys.modules[__name__])

TIME_FACTOR = 3.0
#: the sample and the whole run are two runs: on a shared machine the load between
#: them changes the time per chunk (3.5x seen once); this bound catches only a
#: prediction in the wrong units or from the wrong dataset
LOADED_FACTOR = 10.0
MEMORY_TOLERANCE = 0.25
MEMORY_SLACK = 15e6
SAMPLE = (10_000, 40_000)
BRANCHES = [
    "run",
    "luminosityBlock",
    "event",
    "Jet_pt",
    "Jet_eta",
    "Jet_phi",
    "Jet_mass",
]


class Growing(processor.ProcessorABC):
    """Reads Jet pt and holds ``bytes_per_event`` bytes per event while it works
    over them ``passes`` times (time and memory grow with the chunk)."""

    def __init__(self, bytes_per_event: int = 2_000, passes: int = 0) -> None:
        self.bytes_per_event = bytes_per_event
        self.passes = passes

    def process(self, events: Any) -> dict[str, Any]:
        n = len(events)
        held = np.ones(n * self.bytes_per_event // 8)
        pt = ak.flatten(events.Jet.pt)
        total = float(ak.sum(pt))
        for _ in range(self.passes):
            total += float(np.sqrt(held).sum()) * 0.0
        return {"nevents": n, "sumpt": total + float(held[0]) - 1.0}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> dict:
    d = tmp_path_factory.mktemp("campaign")
    layout = {"tt": (4, 150_000, 10_000), "dy": (4, 100_000, 4_000)}
    fileset: dict[str, list[str]] = {}
    for k, (ds, (files, n, basket)) in enumerate(layout.items()):
        fileset[ds] = [
            str(
                make_nanoaod(
                    d / f"{ds}_{i}.root",
                    n,
                    events_per_basket=basket,
                    seed=10 * k + i,
                    source=ttbar_file,
                    branches=BRANCHES,
                )
            )
            for i in range(files)
        ]
    return fileset


def _runner(client: Any, chunksize: int = 100_000) -> processor.Runner:
    return processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False),
        savemetrics=True,
        schema=NanoAODSchema,
        chunksize=chunksize,
    )


@pytest.mark.slow
def test_plan_against_the_whole_run(client: Any, campaign: dict) -> None:
    proc = Growing(1_000, passes=8)
    items = sample_work(campaign, 6, SAMPLE)
    assert len(items) == 12
    _, sample = _runner(client)(items, treename="Events", processor_instance=proc)
    advice = advise(sample)
    plan = advice.plan(campaign, workers=2)
    again = advice.plan(campaign, workers=2)
    assert plan.to_frame().equals(again.to_frame())  # deterministic
    assert str(plan) == str(again)
    planned = plan.to_frame().set_index("dataset")
    _, report = _runner(client, plan.chunksize)(
        campaign, treename="Events", processor_instance=proc
    )
    chunks = chunk_table(report)
    measured = chunks.groupby("dataset").agg(
        chunks=("entries", "size"),
        bytesread=("bytesread", "sum"),
        worker_s=("walltime", "sum"),
        increment=("mem_usage_bytes", "median"),
    )
    for ds, row in measured.iterrows():
        assert planned.loc[ds, "chunks"] == row["chunks"]
        assert planned.loc[ds, "bytesread"] == row["bytesread"]  # to the byte
        assert planned.loc[ds, "bytes_from"] == "metadata"
        ratio = planned.loc[ds, "worker_s"] / row["worker_s"]
        assert 1 / LOADED_FACTOR <= ratio <= LOADED_FACTOR, (ds, ratio)
        predicted = planned.loc[ds, "increment_bytes"]
        tolerance = max(MEMORY_TOLERANCE * row["increment"], MEMORY_SLACK)
        assert abs(predicted - row["increment"]) <= tolerance, (ds, predicted, row)
    # how the datasets' times compare, both measured in the same run: the machine's
    # load, which changes between the sample and the run, cancels
    relative = (planned.loc["tt", "worker_s"] / planned.loc["dy", "worker_s"]) / (
        measured.loc["tt", "worker_s"] / measured.loc["dy", "worker_s"]
    )
    assert 1 / TIME_FACTOR <= relative <= TIME_FACTOR, relative
    assert planned.loc["total", "chunks"] == len(chunks)
    assert planned.loc["total", "bytesread"] == chunks["bytesread"].sum()
    text = str(plan)
    assert f"chunksize {plan.chunksize:,}" in text
    assert "bytes read: to the byte" in text
    assert min(plan.sampled_sizes) == min(SAMPLE)  # the chunks' entries, as run
    largest = max(plan.sampled_sizes)
    if plan.chunksize > 2 * largest:  # says how far beyond the sample it goes
        ratio = plan.chunksize / largest
        assert f"extrapolated: chunks of {plan.chunksize:,} are {ratio:.1f}x" in text
    # what the choice was made from: the cheapest size that keeps 2 chunks per
    # worker (no memory limit given, no time target)
    curve = plan.curve().set_index("chunksize")
    assert curve.loc[plan.chunksize, "worker_s"] == planned.loc["total", "worker_s"]
    assert curve.loc[plan.chunksize, "bytesread"] == chunks["bytesread"].sum()
    spread = curve[curve["chunks"] >= 4]
    assert plan.chunksize == spread["worker_s"].idxmin()
    # the smallest chunks read the most: each chunk pays the open again
    assert curve["bytesread"].idxmax() == curve.index.min()


@pytest.mark.slow
def test_plan_report_shows_planned_and_measured(
    client: Any, campaign: dict, tmp_path: Path
) -> None:
    from coffea_sizing.report import save_plan_report

    proc = Growing(500)
    _, sample = _runner(client)(
        sample_work(campaign, 3, SAMPLE), treename="Events", processor_instance=proc
    )
    plan = advise(sample, worker_memory=4e9).plan(campaign, workers=2)
    written = save_plan_report(plan, tmp_path / "before")
    page = written["html"].read_text()
    assert f"Runner(chunksize={plan.chunksize:,})" in page
    assert "Planned against measured" not in page
    assert 'src="data:image/png;base64,' in page
    assert written["figure"].read_bytes().startswith(b"\x89PNG")
    _, report = _runner(client, plan.chunksize)(
        campaign, treename="Events", processor_instance=proc
    )
    page = save_plan_report(plan, tmp_path / "after", report)["html"].read_text()
    assert "Planned against measured" in page
    assert page.count("<table") == 4  # the plan (short and whole), values, ratios
    assert "built-in method" not in page
    values, ratios = plan.compare_tables(report)
    assert list(ratios["chunks"]) == [1.0, 1.0, 1.0]  # tt, dy, total: exact
    assert (ratios["bytesread"] == 1.0).all()
    assert len(values) == 6  # planned and measured per dataset and in total
    assert not SCIENTIFIC.findall(page.split("data:image/png")[0])
    if CHROMIUM.exists():  # in real headless Chromium: no sideways scrolling
        page_path = tmp_path / "after" / "plan.html"
        for opened in (False, True):
            shown = layout_in_chromium(
                page_path, tmp_path / "chromium", open_details=opened
            )
            assert shown["scrollWidth"] <= 1400, shown
            assert len(shown["tables"]) == (4 if opened else 3), shown


def _paused_or_killed(client: Any) -> bool:
    logs = client.get_worker_logs()
    return any(
        "Pausing worker" in line or "Worker is at" in line
        for lines in logs.values()
        for _, line in lines
    )


@pytest.mark.slow
def test_recommended_worker_memory_holds_and_larger_chunks_do_not(
    campaign: dict,
) -> None:
    from distributed import Client, KilledWorker, LocalCluster

    proc = Growing(4_000)  # 4 kB per event: 100,000 events hold 400 MB
    tt = {"tt": campaign["tt"][:2]}
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            memory_limit="2GB",
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        items = sample_work(tt, 6, SAMPLE)
        _, sample = _runner(client)(items, treename="Events", processor_instance=proc)
    plan = advise(sample).plan(tt, chunksize=30_000, workers=1)
    memory = plan.worker_memory
    assert memory is not None
    larger = 90_000  # chunks of 75,000 in these files: 2.5x, predicted not to fit
    assert plan.memory_needed(larger) > memory
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            memory_limit=int(memory),
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        _, report = _runner(client, 30_000)(
            tt, treename="Events", processor_instance=proc
        )
        assert len(chunk_table(report)) == plan.to_frame()["chunks"].iloc[-1]
        assert not _paused_or_killed(client)
        # the measured peak against the predicted high peak: within 2% (a
        # worker's resident memory creeps up chunk after chunk, ~1 MB each here)
        peak = chunk_table(report)["mem_peak_bytes"].max()
        assert peak <= 1.02 * plan.to_frame()["peak_high_bytes"].iloc[-1]
        killed = ""
        # the first death ends the run: with Dask's retries it would wait for the
        # nanny to bring the worker back, each time; on a loaded machine a nanny
        # once did not, and the run waited for ever on a cluster of no workers
        cluster.scheduler.allowed_failures = 0
        try:
            _, big = _runner(client, larger)(
                tt, treename="Events", processor_instance=proc
            )
        except (KilledWorker, RuntimeError) as err:  # coffea wraps KilledWorker
            killed = str(err)
        if killed:
            assert "KilledWorker" in killed
        else:
            big_peak = chunk_table(big)["mem_peak_bytes"].max()
            assert _paused_or_killed(client) or big_peak > plan.pause * memory


def test_unknown_dataset_and_bad_sample(campaign: dict) -> None:
    records = [
        {
            "dataset": "tt",
            "filename": campaign["tt"][0],
            "treename": "Events",
            "entrystart": s,
            "entrystop": s + n,
            "bytesread": 1,
            "columns": ["Jet_pt", "nJet"],
            "walltime": 0.1 + n * 1e-5,
            "mem_peak_bytes": 2e8 + n * 1e3,
            "mem_usage_bytes": n * 1e3,
        }
        for s, n in ((0, 1_000),)
    ]
    advice = advise(records)
    with pytest.raises(PlanError, match="dataset 'dy' of the fileset was not sampled"):
        advice.plan(campaign)
    plan = advice.plan({"tt": campaign["tt"]})
    assert "unsure: fitted from 1 chunk" in str(plan)
    with pytest.raises(PlanError, match="sample at least 1 chunk"):
        sample_work(campaign, 0)
    with pytest.raises(PlanError, match="chunksize must be at least 1"):
        plan.at(0)
    assert Path(campaign["tt"][0]).is_file()


def test_files_that_differ_get_their_own_fixed_terms(tmp_path: Path) -> None:
    small = make_nanoaod(tmp_path / "small.root", 4_000, branches=BRANCHES)
    big = [make_nanoaod(tmp_path / f"big{i}.root", 4_000, seed=i) for i in (1, 2)]
    from coffea_sizing.predict import open_cost

    opens = [open_cost(p).total for p in (small, big[0], big[1])]
    assert opens[1] > 1.5 * opens[0]  # the full-branch files open at a higher cost
    # sampled: small and big0; the fixed time grows with the open cost
    fixed = {str(small): 0.05, str(big[0]): 0.30}
    records = [
        {
            "dataset": "tt",
            "filename": name,
            "treename": "Events",
            "entrystart": s,
            "entrystop": s + n,
            "bytesread": 1,
            "columns": ["Jet_pt", "nJet"],
            "walltime": t + n * 1e-5,
            "processtime": n * 1e-5,
        }
        for name, t in fixed.items()
        for s, n in ((0, 1_000), (1_000, 3_000))
    ]
    fileset = {"tt": [str(small), *map(str, big)]}
    calls: list[tuple[int, int]] = []
    plan = advise(records).plan(
        fileset,
        chunksize=4_000,
        treename="Events",
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]  # progress as the metadata are read
    per_file = plan.at(4_000)
    # 3 chunks of 4,000 events: 0.05 + 0.30 + about 0.30 (big1 like big0), plus
    # 40 ms of events each and 1 ms of task overhead
    assert per_file["worker_s"].iloc[0] == pytest.approx(0.65 + 0.12 + 0.003, rel=0.02)
    assert [f.open_bytes for f in plan.files] == opens


CLI_PROCESSOR = """
import awkward as ak
from coffea import processor


class JetSum(processor.ProcessorABC):
    def process(self, events):
        return {"n": len(events), "sumpt": float(ak.sum(events.Jet.pt))}

    def postprocess(self, accumulator):
        return accumulator
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_cli_sample_plan_calibrate(
    cluster: Any,
    campaign: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from coffea_sizing.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "jetsum.py").write_text(CLI_PROCESSOR)
    small = {ds: files[:2] for ds, files in campaign.items()}
    (tmp_path / "full.json").write_text(json.dumps(small))
    common = ["--fileset", "full.json", "--scheduler", cluster.scheduler_address]
    argv = ["run", "jetsum.py", *common, "--chunksize", "40000", "--sample", "4"]
    assert main([*argv, "--calibrate", "--out", "cal"]) == 0
    out = capsys.readouterr().out
    assert "coffea-sizing plan: 2 datasets, 4 files, 500,000 entries" in out
    assert "planned / measured:" in out
    assert "Planned against measured" in (tmp_path / "cal" / "plan.html").read_text()
    assert (tmp_path / "cal" / "plan.png").stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "cal" / "calibration.csv")
    assert (table["ratio_chunks"] == 1.0).all()
    assert (table["ratio_bytesread"] == 1.0).all()
    saved = load_records(tmp_path / "cal" / "records.parquet")
    assert len(saved["sizing"]) == 8  # the sample: 4 chunks per dataset
    assert main(["plan", "cal/records.parquet", "--fileset", "full.json"]) == 0
    again = capsys.readouterr().out
    assert again.startswith("coffea-sizing plan: 2 datasets, 4 files, 500,000 entries")
    assert main(["plan", "cal/records.parquet", "--fileset", "nope.json"]) == 2
    assert "cannot read the fileset nope.json" in capsys.readouterr().err
