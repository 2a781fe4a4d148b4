"""The examples run as a user runs them, each in a fresh process, and print what they
promise; the documentation lists every one of them."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
TTBAR_OPEN_BYTES = 336_624  # 527 B to open the file + 336,097 B for the Events tree


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> Path:
    """The default data's generated file, written once for all the examples."""
    from coffea_sizing.datasets import default_fileset

    path = tmp_path_factory.mktemp("coffea-sizing-cache")
    default_fileset(path)
    return path


@pytest.fixture
def run_example(cache_dir: Path, tmp_path: Path) -> Any:
    def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=dict(
                os.environ,
                COFFEA_SIZING_CACHE=str(cache_dir),
                MPLBACKEND="Agg",
                PYTHONUNBUFFERED="1",
                **env,
            ),
            capture_output=True,
            text=True,
            check=False,
            # no timeout here: pytest-timeout bounds the test (scaled by
            # COFFEA_SIZING_TEST_TIMEOUT_FACTOR, see conftest.py) and kills this
        )
        # stderr is not checked: a cluster closing on a busy machine may log there
        assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
        return proc

    return run


# ---------------------------------------------------------------- cheap checks
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_a_documented_program(script: Path) -> None:
    text = script.read_text()
    assert text.startswith('"""'), "the docstring is the example's page"
    assert 'if __name__ == "__main__":' in text, "Dask spawns processes"
    assert "--out" in text, "the docs build passes --out"


def test_every_example_is_in_the_docs() -> None:
    index = (ROOT / "docs" / "examples" / "index.md").read_text()
    for path in [*SCRIPTS, *NOTEBOOKS]:
        assert re.search(rf"^{path.stem}$", index, re.MULTILINE), path.name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            assert not cell["outputs"], "the docs build executes the notebook"
            assert not cell["execution_count"]


# ---------------------------------------------------------------- real runs
@pytest.mark.slow
def test_branch_sweep(run_example: Any, tmp_path: Path) -> None:
    proc = run_example([str(EXAMPLES / "branch_sweep.py"), "--out", "out"])
    text = proc.stdout
    assert " 1: Jet_pt\n" in text
    assert "10: Jet_pt, Jet_eta, Jet_phi, Jet_mass, Electron_pt, Electron_eta, " in text
    for heading in ("Summary", "Ratios", "Correlations", "Findings"):
        assert heading in text
    assert "matched the measured value to the byte on 70 of 70 chunks" in text
    out = tmp_path / "out"
    for name in ("chunks.csv", "summary.csv", "ratios.csv", "sweep.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    with (out / "sweep-result.pkl").open("rb") as f:
        result = pickle.load(f)
    summary = result.summary.set_index(["dataset", "branches"])
    assert list(summary.loc["ttbar"].index) == [1, 2, 3, 5, 10]
    # flat on the 200-event file, growing with the branches on the generated one
    assert (summary.loc["ttbar", "bytesread_per_chunk"] == TTBAR_OPEN_BYTES).all()
    assert summary.loc["generated", "bytesread_total"].is_monotonic_increasing
    assert summary.loc["generated", "bytesread_payload_total"].min() > 0
    chunks = result.chunks
    assert (chunks.task_nbytes == chunks.output_compressed_bytes).all()
    assert (chunks.predicted_bytesread == chunks.bytesread).all()


@pytest.mark.slow
def test_advise_my_run(run_example: Any, tmp_path: Path) -> None:
    proc = run_example([str(EXAMPLES / "advise_my_run.py"), "--out", "out"])
    text = proc.stdout
    assert "[warning] fixed-cost: generated: " in text
    assert "[warning] amplification: generated: " in text
    assert "ttbar: chunksize 200 (decided by the file size" in text
    assert "From the saved records, for workers of 1 GB:" in text
    for name in ("records.parquet", "records.csv", "advice.png", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    table = pd.read_csv(tmp_path / "out" / "records.csv")
    assert len(table) == 1 + 20  # the 200-event file whole, 20 chunks of 5,000


@pytest.mark.slow
def test_decorate_existing_processor(run_example: Any, tmp_path: Path) -> None:
    proc = run_example(
        [str(EXAMPLES / "decorate_existing_processor.py"), "--out", "out"]
    )
    text = proc.stdout
    assert "the original is untouched: True" in text
    assert text.count("IterativeExecutor, ") == 2
    assert re.findall(r"DaskExecutor, \w+: .* equal: (\w+)", text) == ["True", "True"]
    assert text.count("records left in the output: False") == 2
    for name in ("iterative", "dask", "sizing"):
        table = pd.read_csv(tmp_path / "out" / f"{name}.csv")
        ttbar = table[table.dataset == "ttbar"]
        generated = table[table.dataset == "generated"]
        assert len(ttbar) == 2
        assert len(generated) == 4
        assert (ttbar.bytesread_open == TTBAR_OPEN_BYTES).all()
        assert (ttbar.bytesread_payload == 0).all()
        assert (generated.bytesread_payload > 0).all()
    sizing = pd.read_csv(tmp_path / "out" / "sizing.csv")
    assert (sizing.bytesread == sizing.bytesread_open + sizing.bytesread_payload).all()
    assert sizing.task_nbytes.notna().all()


def _check_cluster_run(text: str, out: Path) -> None:
    assert "scheduler: coffea_sizing " in text
    assert "MISSING" not in text
    assert "runs still open: []" in text
    # human units, not raw bytes
    assert "ttbar: 200 events" in text
    assert "2 chunks, bytesread 673 kB" in text
    assert "bytesread (kB)" in text
    assert "336624" not in text
    assert "336,624" not in text
    table = pd.read_csv(out / "chunks.csv")
    assert len(table) == 2 + 5  # ttbar in chunks of 100, generated in chunks of 20,000
    assert table.worker.str.startswith("worker ").all()
    assert int(table.entries.sum()) == 200 + 100_000


@pytest.mark.slow
def test_existing_cluster_starts_its_own(run_example: Any, tmp_path: Path) -> None:
    env = {"DASK_SCHEDULER_ADDRESS": ""}
    proc = run_example([str(EXAMPLES / "existing_cluster.py"), "--out", "out"], **env)
    assert "started a LocalCluster of 2 workers" in proc.stdout
    _check_cluster_run(proc.stdout, tmp_path / "out")


@pytest.mark.slow
def test_existing_cluster_by_address(
    run_example: Any, tmp_path: Path, cluster: Any, client: Any
) -> None:
    address = cluster.scheduler_address
    proc = run_example(
        [str(EXAMPLES / "existing_cluster.py"), "--out", "out"],
        DASK_SCHEDULER_ADDRESS=address,
    )
    assert f"connecting to the scheduler at {address}" in proc.stdout
    assert "started a LocalCluster" not in proc.stdout
    _check_cluster_run(proc.stdout, tmp_path / "out")
    # the example closed its client, not the cluster it was given
    assert client.submit(sum, [1, 2]).result() == 3


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(run_example: Any, notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n\n".join(
        "".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"
    )
    assert "%" not in "".join(line[:1] for line in code.splitlines()), "no magics"
    # the code cells as one program given with -c: like a notebook's, its __main__ has
    # no file for Dask's spawned workers to re-run
    proc = run_example(["-c", code])
    if notebook.stem == "per_chunk_records":
        assert "generated: 100,000 events in 8 chunks" in proc.stdout
        assert "ttbar: 200 events in 2 chunks" in proc.stdout
        assert "prediction exact on 10 of 10 chunks" in proc.stdout
