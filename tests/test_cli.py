"""The command line as a new user meets it: one-line errors, early checks, tables.

Errors that file metadata can show (missing file, not ROOT, Parquet, wrong tree)
come before any cluster starts; an exception inside a run is one line naming the
file, the entries and the processor's exception, the traceback only with --debug.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
from coffea import processor

from coffea_sizing import cli
from coffea_sizing.cli import Subcommand, main, run_error_message
from coffea_sizing.executor import SizingDaskExecutor
from coffea_sizing.store import load_records
from coffea_sizing.sweep import SweepSchema

# the workers cannot import this module: ship its processor by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FailingProcessor(processor.ProcessorABC):
    """Raises in the chunk that starts at entry 100."""

    def process(self, events: Any) -> dict[str, Any]:
        if events.metadata["entrystart"] == 100:
            raise ValueError("no muons in this chunk")
        return {"n": len(events)}

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.root", "no such file: "),
        (lambda d: _write(d / "notes.root", b"just text, no ROOT"), "not a ROOT file"),
        (lambda d: _write(d / "t.parquet", b"PAR1" + b"\0" * 64), "a Parquet file"),
    ],
)
def test_bad_files_are_one_line_before_a_cluster(
    tmp_path: Path, make: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)
    # a scheduler nobody listens on: were the files checked after connecting, the
    # error would be "cannot reach the Dask scheduler"
    argv = ["chunks", str(path), "--scheduler", "tcp://127.0.0.1:9", "--timeout", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("coffea-sizing chunks: error: ")
    assert message in err
    assert str(path.name) in err
    assert "scheduler" not in err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_wrong_tree_names_the_trees(
    ttbar_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chunks", ttbar_file, "--tree", "Runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no tree 'Runs' (it holds: Events)" in err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["chunks", "--branches", "11"],
            (
                "coffea-sizing chunks: error: argument --branches: expected a branch "
                "count from 1 to 10, got '11'"
            ),
        ),
        (
            ["run", "x.py", "--chunksize", "0"],
            (
                "coffea-sizing run: error: argument --chunksize: expected a positive "
                "integer, got '0'"
            ),
        ),
        (
            ["run", "x.py", "f.root", "--chunk-size", "20"],
            (
                "coffea-sizing run: error: unrecognized arguments: --chunk-size 20 "
                "(did you mean --chunksize?)"
            ),
        ),
        (
            ["sweep", "--treenme", "Events"],
            (
                "coffea-sizing sweep: error: unrecognized arguments: --treenme "
                "(did you mean --treename?)"
            ),
        ),
        (
            ["run", "x.py", "--retries", "-1"],
            (
                "coffea-sizing run: error: argument --retries: expected an integer >= 0, "
                "got '-1'"
            ),
        ),
        (
            ["rnu", "x.py"],
            (
                "coffea-sizing: error: unknown subcommand 'rnu'; one of generate, chunks, "
                "sweep, run, advise, plan (did you mean run?)"
            ),
        ),
        (
            ["run", "x.py", "--frobnicate"],
            (
                "coffea-sizing run: error: unrecognized arguments: --frobnicate "
                "(coffea-sizing run --help lists them)"
            ),
        ),
        (
            ["generate", "x.root"],
            (
                "coffea-sizing generate: error: the following arguments are required: "
                "--events/-n (coffea-sizing generate --help)"
            ),
        ),
    ],
)
def test_bad_arguments_are_one_line(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == line + "\n"
    assert captured.out == ""


def test_treename_is_the_tree_option(
    ttbar_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """coffea's own name for it: checked against the file before any cluster."""
    for sub in ("chunks", "sweep", "run"):
        argv = [sub, ttbar_file, "--treename", "Runs"]
        if sub == "run":
            argv.insert(1, "x.py")
        args = cli.build_parser().parse_args(argv)
        assert args.tree == "Runs"
    assert main(["chunks", ttbar_file, "--treename", "Runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no tree 'Runs' (it holds: Events)" in err


def test_sweep_help_states_the_chunksize_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sweep", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "50 for the 200-event CMS ttbar test file, by name or path" in out


def test_chunks_fileset_json_and_short_table(
    ttbar_file: str,
    tmp_path: Path,
    cluster: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(
        json.dumps({"tt": {"files": {ttbar_file: "Events"}, "metadata": {"xs": 1}}})
    )
    argv = ["chunks", "--fileset", str(fileset), "--scheduler"]
    assert main([*argv, cluster.scheduler_address]) == 0
    out = capsys.readouterr().out.splitlines()
    # the ttbar file by path: chunks of 50 (the help's default), not 10,000
    assert out[0].startswith("tt: 4 chunks, 200 events, bytesread 1.35 MB")
    header = out[1]
    assert "bytesread (kB)" in header
    assert "mem_peak_bytes (MB)" in header
    assert header.index("bytesread (kB)") < header.index("task_nbytes (")
    rows = out[2:6]
    assert len(rows) == 4
    # right-aligned numbers: every row's bytesread ends where its header ends
    end = header.index("bytesread (kB)") + len("bytesread (kB)")
    assert all(row[end - 3 : end] == "337" for row in rows)


def _run_failing(args: argparse.Namespace) -> int:
    runner = processor.Runner(
        executor=SizingDaskExecutor(client=args.client_, status=False),
        savemetrics=True,
        schema=SweepSchema,
        chunksize=50,
    )
    runner(
        {"tt": [args.file]}, treename="Events", processor_instance=FailingProcessor()
    )
    return 0


@pytest.fixture
def failing_subcommand(
    monkeypatch: pytest.MonkeyPatch, client: Any, ttbar_file: str
) -> None:
    """A subcommand whose run raises in a chunk (as `run` will with a user's code)."""

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(client_=client, file=ttbar_file)

    sub = Subcommand("failing", "test", configure, _run_failing)
    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, sub])


@pytest.mark.usefixtures("failing_subcommand")
def test_run_failure_is_one_line(
    ttbar_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["failing"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"coffea-sizing failing: error: the processor failed on {ttbar_file}, "
        "entries 100-150 (dataset 'tt', tree 'Events'): "
        "ValueError: no muons in this chunk"
    )
    assert "--debug" in err
    assert "Traceback" not in err

    assert main(["failing", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("coffea-sizing failing: error: ")


def test_run_error_message_of_other_errors() -> None:
    assert run_error_message(KeyError("Jet_pt")) == "KeyError: 'Jet_pt'"
    assert run_error_message(RuntimeError("a\nb")) == "RuntimeError: a ..."
    assert run_error_message(MemoryError()) == "MemoryError"


# ------------------------------------------- the real command, in its own process
RAISES_LAST_CHUNK = """
from coffea import processor


class RaisesLast(processor.ProcessorABC):
    def process(self, events):
        if events.metadata["entrystart"] == 150:
            raise ValueError("no muons in this chunk")
        return {"n": len(events), "jets": int(events.Jet.pt.layout.content.length)}

    def postprocess(self, accumulator):
        return accumulator
"""

JETS = """
import awkward as ak
from coffea import processor


class Jets(processor.ProcessorABC):
    def process(self, events):
        return {"n": len(events), "pt": float(ak.sum(events.Jet.pt))}

    def postprocess(self, accumulator):
        return accumulator
"""


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``coffea-sizing ARGS`` as a user runs it, in a fresh process.

    No subprocess timeout: pytest-timeout bounds the test (scaled by
    COFFEA_SIZING_TEST_TIMEOUT_FACTOR) and kills the command with it.
    """
    return subprocess.run(
        [sys.executable, "-m", "coffea_sizing.cli", *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_failing_run_is_three_lines_and_keeps_the_finished_chunks(
    tmp_path: Path, ttbar_file: str
) -> None:
    (tmp_path / "raises.py").write_text(RAISES_LAST_CHUNK)
    # one worker: the chunks run in order, the three before the last one finish;
    # the stock NanoAODSchema: its warnings go to the log and are counted
    argv = ["run", "raises.py:RaisesLast", ttbar_file, "--chunksize", "50"]
    argv += ["--workers", "1", "--schema", "NanoAODSchema", "--out", "out"]
    proc = _cli(argv, tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) <= 3, proc.stderr
    assert lines[0] == (
        f"coffea-sizing run: error: the processor failed on {ttbar_file}, entries "
        "150-200 (dataset 'nanoAOD_2015_CMS_Open_Data_ttbar', tree 'Events'): "
        "ValueError: no muons in this chunk"
    )
    out = tmp_path / "out"
    # the note of the Python API: what finished, and where it was written
    assert re.match(
        r"coffea-sizing run: 3 of 4 chunks finished in [\d.]+ s before the run "
        r"failed \(read 1\.01 MB, shipped .*, largest peak .*\); wrote their "
        r"records: out/records\.parquet, report: out/report\.html$",
        lines[1],
    ), lines[1]
    log = out / "workers.log"
    assert lines[2].startswith("coffea-sizing run: the workers' log: out/workers.log (")
    assert "warnings in it, first: Missing cross-reference index" in lines[2]
    assert "Traceback" not in proc.stderr
    assert "WorkItem(" not in proc.stderr

    saved = load_records(out / "records.parquet")
    assert sorted(r["entrystart"] for r in saved["sizing"]) == [0, 50, 100]
    assert all(r["bytesread"] > 0 for r in saved["sizing"])
    assert saved["sizing_context"]["retries"] == 0
    assert len(pd.read_csv(out / "records.csv")) == 3
    assert "Findings" in (out / "report.html").read_text()
    text = log.read_text()
    assert "RuntimeWarning: Missing cross-reference index" in text
    # retries 0 on the CLI's own cluster: the failing chunk ran once
    assert text.count("Compute Failed") == 1
    assert "no muons in this chunk" in text


@pytest.mark.slow
def test_run_on_real_nanoaod_prints_no_warnings(
    tmp_path: Path, ttbar_file: str
) -> None:
    (tmp_path / "jets.py").write_text(JETS)
    argv = ["run", "jets.py:Jets", ttbar_file, "--chunksize", "50", "--out", "out"]
    proc = _cli(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr + proc.stdout
    assert "Worker process still alive" not in proc.stderr + proc.stdout
    log = tmp_path / "out" / "workers.log"
    assert "wrote the workers' log: out/workers.log" in proc.stdout
    assert "Recommendation:" in proc.stdout
    # the quiet schema: coffea's cross-reference warnings are off, not just hidden
    assert "Missing cross-reference" not in log.read_text()
    # what coffea still warns about (Photon_mass replaced) is counted in one line
    warned = [line for line in log.read_text().splitlines() if "Warning: " in line]
    lines = proc.stderr.splitlines()
    if warned:
        first = warned[0].split("Warning: ", 1)[1].strip()
        many = "s" if len(warned) > 1 else ""
        expected = (
            "coffea-sizing run: the workers' log: out/workers.log "
            f"({len(warned)} warning{many} in it, first: {first})"
        )
        assert lines == [expected]
    else:
        assert lines == []
