"""The command line as a new user meets it: one-line errors, early checks, tables.

Errors that file metadata can show (missing file, not ROOT, Parquet, wrong tree)
come before any cluster starts; an exception inside a run is one line naming the
file, the entries and the processor's exception, the traceback only with --debug.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from coffea import processor

from coffea_sizing import cli
from coffea_sizing.cli import Subcommand, main, run_error_message
from coffea_sizing.compare import SweepSchema
from coffea_sizing.executor import SizingDaskExecutor

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
    start = time.perf_counter()
    # no --scheduler: a LocalCluster would be started if the check came later
    assert main(["chunks", str(path)]) == 2
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("coffea-sizing chunks: error: ")
    assert message in err
    assert str(path.name) in err
    assert elapsed < 5, f"took {elapsed:.1f} s: a cluster was started?"


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


def test_bad_branch_count_has_a_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chunks", "--branches", "11"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: coffea-sizing chunks")
    assert "expected a branch count from 1 to 10, got '11'" in err
    assert "num_branches" not in err


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
