"""Bad input met late is one line and loses nothing: records saved to a ``.csv``
path, records files with damaged metadata, records of a file that changed since,
``advise`` with a worker memory that is no size, a processor module that calls
``sys.exit`` at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from coffea_sizing import advise, load_records, save_records
from coffea_sizing.advise import AdviceError
from coffea_sizing.store import RecordsFileError

from conftest import run

pytestmark = pytest.mark.executor


@pytest.fixture(scope="module")
def report(client: Any, generated_file: str) -> Any:
    _, rep = run(client, {"gen": [generated_file]}, chunksize=5_000)
    return rep


def test_save_records_to_a_csv_path_is_refused_before_writing(
    report: Any, tmp_path: Path
) -> None:
    target = tmp_path / "x.csv"
    with pytest.raises(ValueError, match=r"x\.csv: save_records writes a Parquet") as e:
        save_records(report, target)
    assert "\n" not in str(e.value)
    assert "x.parquet" in str(e.value)
    assert not target.exists()
    # the path it suggests keeps everything
    path = save_records(report, tmp_path / "x.parquet")
    assert load_records(path)["sizing"] == report["sizing"]
    assert (tmp_path / "x.csv").is_file()


def _with_meta(source: Path, target: Path, raw: bytes) -> Path:
    table = pq.read_table(source)
    meta = dict(table.schema.metadata or {})
    (key,) = [k for k in meta if b"coffea" in k]
    meta[key] = raw
    pq.write_table(table.replace_schema_metadata(meta), target)
    return target


def test_damaged_metadata_is_one_line(report: Any, tmp_path: Path) -> None:
    good = save_records(report, tmp_path / "good.parquet", csv=False)
    meta = json.loads(
        next(
            v
            for k, v in (pq.read_table(good).schema.metadata or {}).items()
            if b"coffea" in k
        )
    )
    cases = {
        "not JSON": (b"{not json", "not JSON"),
        "a list": (b"[1, 2]", "records format"),
        "no fields": (
            json.dumps({k: v for k, v in meta.items() if k != "fields"}).encode(),
            "does not match its columns",
        ),
        "a field with no column": (
            json.dumps({**meta, "fields": [*meta["fields"], "nope"]}).encode(),
            "does not match its columns",
        ),
        "merges not a list": (
            json.dumps({**meta, "merges": 3}).encode(),
            "does not match its columns",
        ),
    }
    for i, (name, (raw, words)) in enumerate(cases.items()):
        bad = _with_meta(good, tmp_path / f"bad{i}.parquet", raw)
        with pytest.raises(RecordsFileError, match=words) as e:
            load_records(bad)
        assert "\n" not in str(e.value), name
        assert f"bad{i}.parquet" in str(e.value), name
        with pytest.raises(AdviceError, match=words):
            advise(bad)


def test_records_of_a_changed_file_are_one_line(
    report: Any, tmp_path: Path, ttbar_file: str
) -> None:
    from coffea_sizing.datasets import make_nanoaod

    smaller = tmp_path / "smaller.root"
    make_nanoaod(smaller, 1_000, events_per_basket=500, seed=2, source=ttbar_file)
    fewer = [dict(r, filename=str(smaller)) for r in report["sizing"]]
    with pytest.raises(
        AdviceError, match=r"entries up to 20,000 .* now has 1,000"
    ) as e:
        advise({"sizing": fewer})
    assert "\n" not in str(e.value)
    assert "smaller.root" in str(e.value)
    gone = [dict(r, columns=[*r["columns"], "Jet_gone"]) for r in report["sizing"]]
    with pytest.raises(AdviceError, match=r"Jet_gone.*changed since") as e:
        advise({"sizing": gone})
    assert "\n" not in str(e.value)
    # the unchanged records still advise
    assert len(advise(report).recommendation) == 1


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([1], "must be a size in bytes .* got list"),
        (True, "must be a size in bytes .* got bool"),
        (float("inf"), "positive and finite"),
        (-5, "positive"),
        ("lots", "not a size"),
    ],
)
def test_worker_memory_that_is_no_size(report: Any, value: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words) as e:
        advise(report, worker_memory=value)
    assert isinstance(e.value, AdviceError)
    assert "\n" not in str(e.value)


def test_a_processor_module_calling_sys_exit_at_import(
    tmp_path: Path, generated_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from coffea_sizing.cli import main

    module = tmp_path / "exits.py"
    module.write_text("import sys\nsys.exit(0)\n")
    assert main(["run", f"{module}:P", generated_file]) == 2
    err = capsys.readouterr().err.strip()
    assert "calls sys.exit(0) at import" in err
    assert len(err.splitlines()) == 1
