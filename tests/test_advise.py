"""advise(): predictions from a run at one chunk size checked against a run at another.

Tolerances (stated here and in docs/chunk-size.md): bytes read to the byte; the
predicted median peak memory within 25% of the measured median (the worker's
resident memory dominates it); the predicted median chunk wall time within a factor
of 5 of the measured median: wall time on a shared 2-core machine (load 4-8) varies
several-fold between two runs of the same chunks (benchmarks/bench_advise.py).
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

import awkward as ak
import cloudpickle
import numpy as np
import pandas as pd
import pytest
from coffea import processor

from coffea_sizing import (
    SizingDaskExecutor,
    SizingWarning,
    advise,
    chunk_table,
    load_records,
    save_records,
    track_sizes,
)
from coffea_sizing.advise import AdviceError
from coffea_sizing.explain import phase_table
from coffea_sizing.findings import format_bytes
from coffea_sizing.model import MODEL_PHASES
from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

from conftest import SCIENTIFIC, JetProcessor, layout_in_chromium, needs_chromium

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SIZE_A = 1_500  # chunks of 1,539: edges cut the 1,000-event baskets
SIZE_B = 4_000  # chunks of 4,000: on basket edges
MEMORY_TOLERANCE = 0.25
TIME_FACTOR = 5.0


def run(client: Any, path: str, chunksize: int, proc: Any = None, **kw: Any) -> Any:
    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False, **kw),
        savemetrics=True,
        schema=SweepSchema,
        chunksize=chunksize,
    )
    _, report = runner(
        {"gen": [path]},
        treename="Events",
        processor_instance=proc or BranchSweepProcessor(3),
    )
    return report


@pytest.fixture(scope="module")
def reports(client: Any, generated_file: str) -> dict[int, Any]:
    run(client, generated_file, SIZE_B)  # warm-up: first chunks import and fill caches
    return {size: run(client, generated_file, size) for size in (SIZE_A, SIZE_B)}


@pytest.mark.parametrize(("first", "second"), [(SIZE_A, SIZE_B), (SIZE_B, SIZE_A)])
def test_prediction_against_a_second_run(
    reports: dict[int, Any], first: int, second: int
) -> None:
    advice = advise(reports[first])
    predicted = advice.predict(second).iloc[0]
    measured = chunk_table(reports[second])
    # bytes: exact, from the basket metadata
    assert bool(predicted["bytes_exact"])
    assert int(predicted["chunks"]) == len(measured)
    assert int(predicted["bytesread"]) == int(measured["bytesread"].sum())
    assert int(predicted["entries_per_chunk"]) == int(measured["entries"].max())
    # memory and time: within the stated tolerances
    mem = float(measured["mem_peak_bytes"].median())
    assert abs(predicted["mem_peak_bytes"] / mem - 1) < MEMORY_TOLERANCE
    wall = float(measured["walltime"].median())
    assert 1 / TIME_FACTOR < predicted["walltime"] / wall < TIME_FACTOR
    assert predicted["mem_peak_high"] >= predicted["mem_peak_bytes"]
    assert predicted["walltime_high"] >= predicted["walltime"]
    # the wall time is the sum of its phases, each fitted on its own
    phases = [predicted[name] for name in MODEL_PHASES]
    assert all(p >= 0 for p in phases)
    assert math.isclose(sum(phases), predicted["walltime"], rel_tol=1e-9)


def test_phases_scale_as_measured_at_the_other_size(reports: dict[int, Any]) -> None:
    """From one chunk size the phases outside process() are fixed and process() is
    per event: the prediction at the other size keeps the first and scales the
    second by the entries, and the run at that size shows every phase measured."""
    advice = advise(reports[SIZE_A])
    model = advice.model["gen"]
    assert set(model.phases) == set(MODEL_PHASES)
    small, large = (advice.predict(s).iloc[0] for s in (SIZE_A, SIZE_B))
    for name in ("loadtime", "opentime", "buildtime", "outputtime"):
        assert small[name] == large[name]
        assert model.phases[name].per_event == 0
    ratio = large["entries_per_chunk"] / small["entries_per_chunk"]
    assert math.isclose(
        large["processtime"] / small["processtime"], ratio, rel_tol=0.05
    )
    measured = chunk_table(reports[SIZE_B])
    for name in MODEL_PHASES[:-1]:
        assert measured[name].notna().all(), name
    # the per-file fixed terms are the file's own opening and building
    assert set(model.file_walltime) == {model.files[0].filename}
    # the text and the page show where a chunk's time goes
    assert "Time per chunk, phase by phase" in str(advice)
    table = phase_table(advice)
    assert len(table) == len(MODEL_PHASES)
    assert "Where a chunk's time goes" in advice.to_html()


def test_records_without_phases_fit_the_wall_time_as_one(
    reports: dict[int, Any],
) -> None:
    """Records saved before the phases existed (or of @track_sizes elsewhere): the
    wall time is fitted as one number, and predict says the phases are unknown."""
    own = ["loadtime", "opentime", "buildtime", "outputtime", "sizing_overhead"]
    table = chunk_table(reports[SIZE_A]).drop(columns=own)
    advice = advise(table)
    assert advice.model["gen"].phases == {}
    assert advice.model["gen"].walltime is not None
    assert "process() time per event" in advice.model["gen"].walltime.method
    predicted = advice.predict(SIZE_B).iloc[0]
    assert all(math.isnan(predicted[name]) for name in MODEL_PHASES)
    assert predicted["walltime"] > 0
    assert "phase by phase" not in str(advice)


def test_findings_follow_the_records(reports: dict[int, Any]) -> None:
    a, b = advise(reports[SIZE_A]), advise(reports[SIZE_B])
    codes_a = {f.code for f in a.findings}
    codes_b = {f.code for f in b.findings}
    # chunks of 1,539 cut baskets of 1,000: amplification; chunks of 4,000 do not
    assert "amplification" in codes_a
    assert "amplification" not in codes_b
    amp = next(f for f in a.findings if f.code == "amplification")
    assert "gen:" in amp.message
    assert "x)" in amp.message
    # the fixed cost is a larger share with more, smaller chunks
    fixed = next(f for f in a.findings if f.code == "fixed-cost")
    assert "13 chunks" in fixed.message
    # nothing went wrong in these runs
    assert not codes_a & {"retries", "skipped", "shared-memory", "memory-near-limit"}


def test_recommendation_and_determinism(reports: dict[int, Any]) -> None:
    a1, a2 = advise(reports[SIZE_A]), advise(reports[SIZE_A])
    assert a1.findings == a2.findings
    pd.testing.assert_frame_equal(a1.recommendation, a2.recommendation)
    row = a1.recommendation.iloc[0]
    # 20,000 events on 2 workers: at least 4 chunks, so at most 5,000 per chunk
    assert row["chunksize"] == 5_000
    assert row["decided_by"].startswith("parallelism")
    assert row["measured_chunks"] == 13
    text = str(a1)
    assert "Findings:" in text
    assert "chunksize 5,000" in text
    # a worker memory below the resident memory: nothing fits, said in one line
    tight = advise(reports[SIZE_A], worker_memory="200MB")
    assert tight.recommendation.iloc[0]["decided_by"].startswith("nothing fits: memory")
    assert any(
        f.code == "memory-near-limit" and f.severity == "critical"
        for f in tight.findings
    )
    # a chunk-time target tighter than any chunk
    quick = advise(reports[SIZE_A], target_chunk_seconds=1e-6)
    assert "chunk time" in quick.recommendation.iloc[0]["decided_by"]


def test_saved_records_round_trip(reports: dict[int, Any], tmp_path: Any) -> None:
    report = reports[SIZE_A]
    path = save_records(report, tmp_path / "a.parquet", context={"chunksize": SIZE_A})
    assert (tmp_path / "a.csv").is_file()
    loaded = load_records(path)
    assert loaded["sizing"] == report["sizing"]
    assert loaded["sizing_merges"] == report["sizing_merges"]
    assert loaded["sizing_run"] == report["sizing_run"]
    ctx = loaded["sizing_context"]
    assert ctx["chunksize"] == SIZE_A
    assert ctx["workers"] == 2
    assert "coffea" in ctx["versions"]
    # the same advice from the file as from the report
    from_file, from_report = advise(path), advise(report)
    assert from_file.findings == from_report.findings
    pd.testing.assert_frame_equal(from_file.recommendation, from_report.recommendation)


def test_altered_records_give_their_findings(reports: dict[int, Any]) -> None:
    records = [dict(r) for r in reports[SIZE_A]["sizing"]]
    records[0]["attempts"] = 2
    records[1]["skipped"] = True
    records[2]["mem_shared"] = True
    records[3]["walltime"] = 50.0
    advice = advise({"sizing": records})
    by_code = {f.code: f for f in advice.findings}
    assert by_code["retries"].severity == "critical"
    assert "skipped" in by_code
    assert "shared-memory" in by_code
    assert "50.0 s" in by_code["stragglers"].message
    # worker-skew: one worker's chunks all made slow
    worker = records[0]["worker"]
    skewed = [
        dict(r, walltime=r["walltime"] * 10) if r["worker"] == worker else r
        for r in reports[SIZE_A]["sizing"]
    ]
    assert "worker-skew" in {f.code for f in advise({"sizing": skewed}).findings}


class ListProcessor(processor.ProcessorABC):
    """Returns every jet pt in a list: the output grows with the events."""

    def process(self, events: Any) -> dict[str, Any]:
        return {"pt": ak.to_list(ak.flatten(events.Jet.pt))}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


def test_output_grows_and_nbytes_estimate(client: Any, generated_file: str) -> None:
    report = run(
        client,
        generated_file,
        2_000,
        ListProcessor(),
        compression=None,
        treereduction=4,
    )
    codes = {f.code for f in advise(report).findings}
    assert "output-grows" in codes
    assert "nbytes-estimate" in codes
    # with histograms-like output (BranchSweepProcessor) neither appears
    assert not {"output-grows", "nbytes-estimate"} & {
        f.code for f in advise(run(client, generated_file, 2_000)).findings
    }


# ------------------------------------------------------------------ bad input
def test_bad_input_is_one_line(
    client: Any,
    generated_file: str,
    reports: dict[int, Any],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coffea_sizing import executor

    monkeypatch.setattr(executor, "_SAVEMETRICS_WARNED", False)  # said once a process
    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False),
        savemetrics=False,
        schema=SweepSchema,
        chunksize=10_000,
    )
    with pytest.warns(SizingWarning, match="savemetrics=True"):
        output = runner(
            {"gen": [generated_file]},
            treename="Events",
            processor_instance=BranchSweepProcessor(1),
        )
    for source, words in [
        (output, "no chunk records to advise on"),  # savemetrics=False
        ({"sizing": []}, "no chunk records"),
        (tmp_path / "none.parquet", "no such records file"),
        ([{"x": 1}], "lack filename"),
    ]:
        with pytest.raises(AdviceError, match=words) as info:
            advise(source)
        assert "\n" not in str(info.value)
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(AdviceError, match="not a Parquet file") as info:
        advise(not_parquet)
    with pytest.raises(AdviceError, match="not a size"):
        advise(reports[SIZE_A], worker_memory="lots")


def test_single_chunk_mixed_sizes_and_unreachable_files(
    reports: dict[int, Any],
) -> None:
    one = advise({"sizing": reports[SIZE_A]["sizing"][:1]})
    assert "few-chunks" in {f.code for f in one.findings}
    assert len(one.predict(SIZE_B)) == 1
    mixed = advise({"sizing": reports[SIZE_A]["sizing"] + reports[SIZE_B]["sizing"]})
    assert mixed.model["gen"].walltime is not None
    memory = mixed.model["gen"].memory
    assert memory.chunks == len(reports[SIZE_A]["sizing"]) + len(
        reports[SIZE_B]["sizing"]
    )
    assert memory.size_spread > 2  # chunks of 1,539 and of 4,000 entries
    # a fit on entries, unless the peaks fell as the entries grew (two workers'
    # resident memory apart on a loaded machine): then peak = start + rise
    assert memory.method in {
        "Theil-Sen fit on entries",
        "fixed: resident memory at chunk start; per event: rise during the chunk",
    }
    moved = [
        dict(r, filename="/no/such/dir/gen.root") for r in reports[SIZE_A]["sizing"]
    ]
    fitted = advise({"sizing": moved})
    codes = {f.code for f in fitted.findings}
    assert "files-unreachable" in codes
    assert "amplification" not in codes
    row = fitted.predict(SIZE_B).iloc[0]
    assert not row["bytes_exact"]
    assert row["chunks"] == len(reports[SIZE_B]["sizing"])
    # without the file the fixed cost is unknown: bytes in proportion to the
    # entries, an upper bound for larger chunks
    measured = sum(r["bytesread"] for r in reports[SIZE_B]["sizing"])
    assert measured <= row["bytesread"] <= 3 * measured


@track_sizes
class TrackedJets(JetProcessor):
    pass


def test_decorator_under_iterative_executor(generated_file: str) -> None:
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        schema=SweepSchema,
        chunksize=5_000,
    )
    output = runner(
        {"gen": [generated_file]}, treename="Events", processor_instance=TrackedJets()
    )
    advice = advise(output)
    assert "process-only" in {f.code for f in advice.findings}
    assert advice.model["gen"].memory is not None  # process()'s own memory
    row = advice.predict(10_000).iloc[0]
    assert row["chunks"] == 2
    assert np.isfinite(row["mem_peak_bytes"])
    assert np.isfinite(advice.recommendation.iloc[0]["chunksize"])
    # the same processor undecorated, and the run without records: one line
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        schema=SweepSchema,
        chunksize=5_000,
    )
    plain = runner(
        {"gen": [generated_file]}, treename="Events", processor_instance=JetProcessor()
    )
    with pytest.raises(AdviceError, match="no chunk records to advise on") as info:
        advise(plain)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- the CLI
USER_PROCESSOR = """
import awkward as ak
import hist
from coffea import processor


class Dimuon(processor.ProcessorABC):
    def process(self, events):
        h = hist.Hist.new.Reg(30, 0, 150, name="pt").Double()
        h.fill(pt=ak.flatten(events.Muon.pt))
        return {"nevents": len(events), "pt": h}

    def postprocess(self, accumulator):
        return accumulator


def helper():
    return 1
"""


@pytest.fixture
def user_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = tmp_path / "advise_user_proc.py"
    path.write_text(USER_PROCESSOR)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    sys.modules.pop("advise_user_proc", None)


@pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")
def test_cli_run_and_advise(
    cluster: Any, generated_file: str, user_module: Any, capsys: Any
) -> None:
    from coffea_sizing.cli import main

    address = cluster.scheduler_address
    common = [generated_file, "--chunksize", "5000", "--scheduler", address]
    assert main(["run", str(user_module), *common, "--out", "by-path"]) == 0
    out = capsys.readouterr().out
    assert "Recommendation:" in out
    assert "advise_user_proc" not in out
    for name in ("records.parquet", "records.csv", "advice.png", "report.html"):
        assert (user_module.parent / "by-path" / name).is_file()
    html = (user_module.parent / "by-path" / "report.html").read_text()
    assert html.index("Findings") < html.index("Recommended chunk size")
    assert main(["run", "advise_user_proc:Dimuon", *common, "--out", "by-name"]) == 0
    saved = load_records(user_module.parent / "by-name" / "records.parquet")
    assert len(saved["sizing"]) == 4
    assert saved["sizing_context"]["chunksize"] == 5000
    capsys.readouterr()
    assert main(["advise", "by-name/records.parquet", "--worker-memory", "4GB"]) == 0
    out = capsys.readouterr().out
    assert "memory limit 4.00 GB" in out
    assert "chunksize" in out


def test_cli_bad_input_is_one_line(
    generated_file: str, user_module: Any, capsys: Any, tmp_path: Any
) -> None:
    from coffea_sizing.cli import main

    bad_json = tmp_path / "fileset.json"
    bad_json.write_text('{"gen": {"file": ["a.root"]}}')
    not_root = tmp_path / "x.root"
    not_root.write_text("not ROOT")
    cases = [
        (["run", "no_such_module_xyz:P", generated_file], "does not import"),
        (["run", "advise_user_proc:Nope", generated_file], "no attribute 'Nope'"),
        (["run", "advise_user_proc:helper", generated_file], "not a coffea processor"),
        (["run", "advise_user_proc", generated_file], "MODULE:ATTR"),
        (["run", "missing.py", generated_file], "no such file"),
        (["run", str(user_module), "--fileset", str(bad_json)], "'gen'"),
        (["run", str(user_module), str(not_root)], "x.root"),
        (["run", str(user_module), generated_file, "--schema", "Nope"], "Nope"),
        (
            ["run", str(user_module), generated_file, "--memory-limit", "lots"],
            "not a size",
        ),
        (["advise", str(tmp_path / "none.parquet")], "no such records file"),
        (["advise", str(not_root)], "not a Parquet file"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert words in err, (argv, err)
        assert len(err.splitlines()) == 1, err


def test_saved_records_keep_keys_types_and_nulls(
    reports: dict[int, Any], tmp_path: Any
) -> None:
    real = [dict(r) for r in reports[SIZE_B]["sizing"]]
    real[0]["column_bytes"] = {"Jet_pt": 12, "nJet": None}  # a dict with a null
    real[1]["worker_memory_limit"] = None
    del real[2]["mem_shared"]  # a record without a field the others have
    real[3]["extra"] = [1.5, 2]  # a field only one record has
    path = save_records({"sizing": real}, tmp_path / "r.parquet", csv=False)
    assert not (tmp_path / "r.csv").exists()
    assert load_records(path)["sizing"] == real


def test_figure_and_html_from_records(reports: dict[int, Any]) -> None:
    from coffea_sizing.plot import advice_figure

    advice = advise(reports[SIZE_A])
    fig = advice_figure(advice)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "(a) Bytes read per chunk",
        "(b) Peak memory of the worker process",
        "(c) Wall time per chunk",
    ]
    # every chunk is a point in each panel
    assert all(len(ax.collections[0].get_offsets()) == 13 for ax in fig.axes)
    page = advice.to_html()
    assert page.index("amplification") < page.index("Recommended chunk size")
    assert "(MB)" in page  # units in the table headers


@pytest.mark.slow
@needs_chromium
def test_advice_report_fits_a_1400_px_window(
    reports: dict[int, Any], tmp_path: Any
) -> None:
    """The advice page in real headless Chromium: no sideways scrolling at 1,400 px,
    units instead of scientific notation, headers in words."""
    from coffea_sizing.report import save_advice_report

    table = chunk_table(reports[SIZE_A])
    # a dataset name as long as real ones
    table["dataset"] = "TTToSemiLeptonic_TuneCP5_13TeV-powheg-pythia8_RunIISummer20UL18"
    advice = advise(table)
    page = save_advice_report(advice, tmp_path / "out")["html"]
    shown = layout_in_chromium(page, tmp_path)
    assert shown["innerWidth"] == 1400
    assert shown["scrollWidth"] <= 1400, shown
    assert len(shown["tables"]) == 4  # predicted, measured, model, phases
    assert max(shown["tables"]) <= shown["clientWidth"], shown
    opened = layout_in_chromium(page, tmp_path, open_details=True)
    assert len(opened["tables"]) == 5
    assert opened["scrollWidth"] <= 1400, opened

    text = page.read_text(encoding="utf-8")
    assert not SCIENTIFIC.findall(text.split("data:image/png")[0])
    model = re.search(r'<section id="model">(.*?)</section>', text, re.DOTALL)
    assert model
    # the fixed cost of a chunk in bytes and in seconds, each in its unit
    fixed = advice.model[table["dataset"][0]].bytesread.fixed
    assert f">{format_bytes(fixed)}<" in model.group(1)
    assert re.search(r">\d[\d.,]* (ms|s)<", model.group(1))
    headers = re.findall(r'<th [^>]*class="col_heading[^>]*>([^<]*)</th>', text)
    assert headers
    assert not any("_" in h for h in headers), headers


# ------------------------------------------------------------ phase findings
class Sleeper(BranchSweepProcessor):
    """Reads 3 branches, then sleeps: wall time far above CPU time, no reads."""

    def __init__(self, pause: float) -> None:
        super().__init__(3)
        self.pause = pause

    def process(self, events: Any) -> Any:
        import time

        time.sleep(self.pause)
        return super().process(events)


@pytest.fixture(scope="module")
def sleepy(client: Any, generated_file: str) -> Any:
    return run(client, generated_file, 5_000, Sleeper(1.0))


def test_stragglers_name_the_phase(reports: dict[int, Any]) -> None:
    """The slowest chunk's extra time is named by the phase it went to."""

    def straggler(**extra: float) -> str:
        records = [dict(r) for r in reports[SIZE_A]["sizing"]]
        for name, seconds in extra.items():
            records[3][name] += seconds
        records[3]["walltime"] += 49.0
        found = {f.code: f for f in advise({"sizing": records}).findings}
        return found["stragglers"].message

    assert "spent" in straggler(opentime=49.0)
    assert "opening the file against a median of" in straggler(opentime=49.0)
    assert "building NanoEvents" in straggler(buildtime=49.0)
    processing = straggler(processtime=49.0)
    assert "processing against" in processing
    assert "what process() does" in processing
    blocked = straggler(processtime=49.0, readtime=45.0)
    assert "blocked in reads" in blocked
    assert "none of that chunk's phases" in straggler()
    # records without phases: as before
    old = [
        {k: v for k, v in r.items() if k not in ("opentime", "buildtime", "loadtime")}
        for r in reports[SIZE_A]["sizing"]
    ]
    old[3]["walltime"] = 50.0
    text = {f.code: f for f in advise({"sizing": old}).findings}["stragglers"].message
    assert "look at those files and workers" in text


def test_cpu_starved_appears_when_wall_is_not_cpu_nor_reads(sleepy: Any) -> None:
    """A chunk that sleeps a second: far more wall than CPU time, no reads."""
    codes = {f.code: f for f in advise(sleepy).findings}
    assert "cpu-starved" in codes
    assert "oversubscribed" in codes["cpu-starved"].message
    # processing (1 s of sleep) is more than opening and building
    assert "open-dominated" not in codes
    assert "latency-bound" not in codes


def test_cpu_starved_not_without_the_gap_or_with_reads(sleepy: Any) -> None:
    busy = [dict(r, cputime=0.9 * r["walltime"]) for r in sleepy["sizing"]]
    assert "cpu-starved" not in {f.code for f in advise({"sizing": busy}).findings}
    # blocked in reads (with few, large requests): the reads explain the wall time
    reading = [
        dict(r, readtime=0.6 * r["walltime"], read_requests=3, bytesread=3 * 10**7)
        for r in sleepy["sizing"]
    ]
    codes = {f.code for f in advise({"sizing": reading}).findings}
    assert "cpu-starved" not in codes
    assert "latency-bound" not in codes  # 10 MB requests are not small


def test_open_dominated_on_a_file_of_many_branches(
    client: Any, ttbar_file: str
) -> None:
    """ttbar (1,000+ branches, 200 events): opening and building cost more than
    processing a chunk of 50 events."""
    report = run(client, ttbar_file, 50)
    found = {f.code: f for f in advise(report).findings}
    assert "open-dominated" in found
    assert "Fewer, larger chunks" in found["open-dominated"].message
