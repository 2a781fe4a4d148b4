"""The branch sweep: processor, summary, predictions, findings and the CLI."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import awkward as ak
import pytest
from coffea.nanoevents import NanoEventsFactory

from coffea_sizing.cli import main
from coffea_sizing.datasets import make_nanoaod
from coffea_sizing.filesets import FilesetError
from coffea_sizing.findings import Finding
from coffea_sizing.sweep import (
    SWEEP_BRANCHES,
    BranchSweepProcessor,
    SweepResult,
    SweepSchema,
    branch_sweep,
)


def test_processor_means_do_not_depend_on_chunking(
    client: Any, generated_file: str
) -> None:
    events = NanoEventsFactory.from_root(
        {generated_file: "Events"}, schemaclass=SweepSchema, mode="eager"
    ).events()
    direct = BranchSweepProcessor(10)
    whole = direct.postprocess(direct.process(events))
    res = branch_sweep(
        {"g": [generated_file]}, (10,), chunksize=3_000, client=client
    )  # 7 chunks, means derived from summed sums and counts
    assert res.summary["chunks"].iloc[0] == 7
    jets = events.Jet[events.Jet.pt > 30]
    assert whole["means"]["Jet_pt"] == pytest.approx(float(ak.mean(jets.pt)))
    assert whole["Jet_pt_count"] == int(ak.sum(ak.num(jets)))


def test_processor_rejects_bad_levels() -> None:
    for bad in (0, 11, 2.5, "3"):
        with pytest.raises(ValueError, match="num_branches"):
            BranchSweepProcessor(bad)  # type: ignore[arg-type]
    assert BranchSweepProcessor(10).branches == [f"{c}_{f}" for c, f in SWEEP_BRANCHES]


def test_summary_agrees_with_chunk_records(sweep: SweepResult) -> None:
    summary = sweep.summary
    assert len(summary) == 10
    for _, row in summary.iterrows():
        g = sweep.chunks[
            (sweep.chunks.dataset == row.dataset)
            & (sweep.chunks.branches == row.branches)
        ]
        run = sweep.runs[
            (sweep.runs.dataset == row.dataset) & (sweep.runs.branches == row.branches)
        ].iloc[0]
        assert row.chunks == len(g) == run.report_chunks
        assert row.bytesread_total == g.bytesread.sum() == run.report_bytesread
        assert row.events == g.entries.sum() == run.report_entries
        assert row.task_nbytes_total == g.task_nbytes.sum()
        assert row.output_pickled_total == g.output_pickled_bytes.sum()
        assert (
            row.bytesread_open_total + row.bytesread_payload_total
            == row.bytesread_total
        )
        assert row.open_split_measured
    # every chunk: the decorator's split adds up and the prediction is exact
    c = sweep.chunks
    assert (c.bytesread_open + c.bytesread_payload == c.bytesread).all()
    assert (c.predicted_bytesread == c.bytesread).all()
    assert (c.predicted_open_bytes == c.bytesread_open).all()


def test_two_regimes(sweep: SweepResult) -> None:
    s = sweep.summary.set_index(["dataset", "branches"])
    # ttbar: every basket embedded in the TTree metadata -> flat, all "open"
    ttbar = s.loc["ttbar"]
    assert (ttbar.bytesread_per_chunk == 336_624).all()
    assert (ttbar.bytesread_payload_total == 0).all()
    # generated: payload grows with the branches read
    gen = s.loc["generated"]
    assert gen.bytesread_payload_total.is_monotonic_increasing
    assert (
        gen.bytesread_payload_total.iloc[-1] > 5 * gen.bytesread_payload_total.iloc[0]
    )
    assert (gen.amplification >= 1).all()
    ratios = sweep.ratios
    assert (ratios.groupby("dataset").first().bytesread_total == 1).all()
    corr = sweep.correlations.set_index("dataset")
    assert math.isnan(corr.loc["ttbar", "bytesread_vs_task_nbytes"])
    assert -1 <= corr.loc["generated", "bytesread_vs_task_nbytes"] <= 1
    assert all(isinstance(f, Finding) for f in sweep.findings)
    assert {f.code for f in sweep.findings} >= {"fixed-cost", "scaling", "prediction"}
    text = sweep.findings_text
    assert "embedded" in text
    assert "coffea#1472" in text
    assert "to the byte on" in text
    assert str(len(sweep.chunks)) in text


def test_bad_sweep_input(tmp_path: Path, ttbar_file: str) -> None:
    """Bad input is one FilesetError line, from metadata, before any cluster."""
    with pytest.raises(ValueError, match="branch counts"):
        branch_sweep({"t": [ttbar_file]}, (0, 1))
    with pytest.raises(FilesetError, match=r"no such file: .*missing\.root"):
        branch_sweep({"t": [str(tmp_path / "missing.root")]})
    with pytest.raises(FilesetError, match=r"no tree 'Nope' \(it holds: Events\)"):
        branch_sweep({"t": [ttbar_file]}, treename="Nope")
    text = tmp_path / "notes.root"
    text.write_text("not a ROOT file at all")
    with pytest.raises(FilesetError, match=r"notes\.root: not a ROOT file"):
        branch_sweep({"t": [str(text)]})
    with pytest.raises(FilesetError, match="'files' entry"):
        branch_sweep({"t": {"paths": [ttbar_file]}})


def test_sweep_takes_every_coffea_fileset_form(
    client: Any, ttbar_file: str, tmp_path: Path
) -> None:
    """coffea's forms: {"files": {path: tree}}, per-dataset treename, metadata, JSON."""
    import json

    forms = [
        {"d": {"files": {ttbar_file: "Events"}}},
        {"d": {"files": [ttbar_file], "treename": "Events", "metadata": {"xs": 1.0}}},
    ]
    path = tmp_path / "fileset.json"
    path.write_text(json.dumps({"d": {"files": {ttbar_file: "Events"}}}))
    forms.append(str(path))  # type: ignore[arg-type]
    sizes = set()
    for fileset in forms:
        # treename=None: the fileset itself names the tree
        res = branch_sweep(fileset, (1,), chunksize=200, client=client, treename=None)
        assert list(res.summary.dataset) == ["d"]
        sizes.add(int(res.summary.bytesread_total.iloc[0]))
    assert len(sizes) == 1  # the same file read the same way


def test_findings_words_for_one_chunk(client: Any, generated_file: str) -> None:
    """One chunk, one branch count: no "1 chunks", "branch(es)", "x1.00"."""
    res = branch_sweep({"g": [generated_file]}, (2,), chunksize=20_000, client=client)
    text = res.findings_text
    assert "g: 1 chunk of up to 20,000 events" in text
    assert "1 chunks" not in text
    assert "(es)" not in text
    assert "amplification" not in {f.code for f in res.findings}
    assert "x1.00" not in text


@pytest.fixture(scope="module")
def no_muons(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> str:
    path = tmp_path_factory.mktemp("nomu") / "no_muons.root"
    branches = ["run", "luminosityBlock", "event", "Jet_pt", "Jet_eta", "Electron_pt"]
    make_nanoaod(path, 500, events_per_basket=250, branches=branches, source=ttbar_file)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "/no/such/file.root"], "no such file: /no/such/file.root"),
        (["sweep", "--branches", "1,12"], "branch counts from 1 to 10"),
        (["sweep", "--branches", "2,2"], "repeat"),
        (["chunks", "--branches", "11"], "expected a branch count from 1 to 10"),
        (["chunks", "--fileset", "/no/such.json"], "cannot read the fileset"),
    ],
)
def test_cli_sweep_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_sweep_missing_branch_and_tree(
    no_muons: str, ttbar_file: str, capsys: pytest.CaptureFixture[str], cluster: Any
) -> None:
    address = cluster.scheduler_address
    assert main(["sweep", no_muons, "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert "no_muons.root" in err
    assert "Muon_pt" in err
    assert main(["sweep", ttbar_file, "--tree", "Nope", "--scheduler", address]) == 2
    assert "no tree 'Nope'" in capsys.readouterr().err


def test_cli_sweep_unreachable_scheduler(
    ttbar_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", ttbar_file, "--scheduler", "tcp://127.0.0.1:9", "--timeout", "2"]
    assert main(argv) == 2
    assert (
        "cannot reach the Dask scheduler at tcp://127.0.0.1:9"
        in capsys.readouterr().err
    )


def test_cli_sweep_writes_report(
    ttbar_file: str,
    generated_file: str,
    tmp_path: Path,
    cluster: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "report"
    argv = [
        "sweep",
        ttbar_file,
        generated_file,
        "--branches",
        "1,3",
        "--chunksize",
        "5000",
        "--scheduler",
        cluster.scheduler_address,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "[4/4]" in captured.err  # progress, one line per run
    assert "bytesread" in captured.out
    for name in ("chunks.csv", "summary.csv", "sweep.png", "report.html"):
        assert (out / name).stat().st_size > 0
