"""Records held column-wise to and from Arrow without a Python object per row: task
keys split into prefix and number, ``column_bytes`` written and read as JSON one set
of names at a time, absent fields, text read as dictionaries; and the fallbacks (value
by value) where those do not apply. Every case must read back equal to the records,
and the fast paths must be the ones taken for records shaped like a real run's."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coffea_sizing import CHUNK_FIELDS, chunk_table
from coffea_sizing.columnar import (
    ChunkRecords,
    _KeyColumn,
    _MapColumn,
)
from coffea_sizing.records import REPORT_KEY, _table
from coffea_sizing.store import load_records, save_records


def _run_like(n: int) -> list[dict[str, Any]]:
    """Records as a run makes them: one key prefix, the same branches read."""
    names = ["Jet_eta", "Jet_phi", "Jet_pt", "nJet"]
    return [
        {
            "dataset": "ttbar",
            "filename": f"/data/file_{i % 3}.root",
            "entrystart": 100 * i,
            "entrystop": 100 * i + 100,
            "key": f"coffea-sizing-chunk-0a1b2c3d4e5f-{i}",
            "worker": f"tcp://10.0.0.{i % 2}:4000",
            "worker_memory_limit": 2**33,
            "attempts": 1,
            "bytesread": 1000 + i,
            "columns": names,
            "columns_read": names[: 1 + i % 4],
            "column_bytes": {name: 10 * i + j for j, name in enumerate(names)},
            "walltime": 0.5 + i / 7,
        }
        for i in range(n)
    ]


def _round_trip(records: list[dict[str, Any]]) -> tuple[ChunkRecords, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_records({REPORT_KEY: records}, Path(tmp) / "r.parquet", csv=False)
        loaded = load_records(path)
    return loaded[REPORT_KEY], loaded


def test_a_run_like_report_takes_the_arrow_paths_both_ways() -> None:
    records = _run_like(50)
    held = ChunkRecords.from_records(records)
    fields, arrays, json_fields, absent = held.to_arrow()
    by_name = dict(zip(fields, arrays, strict=True))
    assert json_fields == ["column_bytes"]
    assert absent is None
    assert by_name["column_bytes"].to_pylist() == [
        json.dumps(r["column_bytes"]) for r in records
    ]
    assert by_name["key"].to_pylist() == [r["key"] for r in records]
    loaded, report = _round_trip(records)
    assert loaded == records
    keys, maps = loaded._columns["key"], loaded._columns["column_bytes"]
    assert isinstance(keys, _KeyColumn)
    assert isinstance(maps, _MapColumn)
    # parsed by pyarrow: nothing kept aside value by value, one key prefix
    assert not keys.odd
    assert not maps.odd
    assert keys.prefixes.uniques == [None, "coffea-sizing-chunk-0a1b2c3d4e5f"]
    assert report["sizing_context"]["worker_memory_limits"] == {
        "tcp://10.0.0.0:4000": 2**33,
        "tcp://10.0.0.1:4000": 2**33,
    }
    assert report["sizing_context"]["datasets"] == ["ttbar"]
    assert report["sizing_context"]["max_entries_per_chunk"] is None
    pd.testing.assert_frame_equal(chunk_table(loaded), chunk_table(records))


@pytest.mark.parametrize(
    "records",
    [
        # absent fields next to None, in every column kind
        [
            {"key": "k-1", "column_bytes": {"a": 1}, "bytesread": 5, "x": "u"},
            {"key": None, "column_bytes": None, "bytesread": None, "x": None},
            {},
            {"column_bytes": {}, "x": "u"},
        ],
        # unicode everywhere: names, prefixes, text
        [
            {"key": "é-chunk-1", "column_bytes": {"Jet_pt": 3, "nJet": 0}},
            {"key": "é-chunk-2", "column_bytes": {"Jet_pt": 4, "nJet": 1}},
            {"key": "根-7", "column_bytes": {"ü": 1, 'a"b': 2, "back\\slash": 3}},
            {"key": "😀", "dataset": "røot", "columns": ["ü", ""]},
        ],
        # empty lists and mappings, one set of names or none
        [
            {"columns": [], "columns_read": [], "column_bytes": {}},
            {"columns": [], "columns_read": ["a"], "column_bytes": {}},
        ],
        [{"column_bytes": None}, {"column_bytes": None}],
        # huge and negative integers, numbers a key cannot carry
        [
            {"key": "k-99999999999999999999", "column_bytes": {"a": -(2**63)}},
            {"key": "k-007", "column_bytes": {"a": 2**63 - 1, "b": -1}},
            {"key": "k-0", "column_bytes": {"a": 2**64}, "bytesread": 2**70},
            {"key": "k-", "column_bytes": {"b": 1, "a": 2}, "bytesread": -(2**63)},
        ],
        # keys that are no text, values of another type in column_bytes
        [{"key": 5, "column_bytes": {"a": None}}, {"key": ["x"], "column_bytes": 3}],
        # mappings with many sets of names, in any order
        [{"column_bytes": {f"b{j}": j for j in range(i % 5)}} for i in range(40)],
    ],
    ids=["absent", "unicode", "empty", "all-none", "huge", "odd-types", "many-sets"],
)
def test_edge_cases_read_back_equal(records: list[dict[str, Any]]) -> None:
    held = ChunkRecords.from_records(records)
    assert held == records
    loaded, _ = _round_trip(records)
    assert list(loaded) == records
    assert [sorted(r) for r in loaded] == [sorted(r) for r in records]
    pd.testing.assert_frame_equal(chunk_table(held), _table(records, CHUNK_FIELDS))


def test_text_that_is_not_json_dumps_output_is_read_value_by_value() -> None:
    """A file written by hand (compact JSON, duplicate names): json.loads' reading."""
    texts = ['{"a":1}', '{"a": 1, "a": 2}', '{"a": 1}', None, '{"a": 01}']
    for text in texts[:3]:
        table = pa.table({"column_bytes": pa.array([text, '{"a": 5}'])})
        back = ChunkRecords.from_arrow(table, ["column_bytes"], ["column_bytes"])
        assert list(back) == [
            {"column_bytes": json.loads(text)},
            {"column_bytes": {"a": 5}},
        ]
    table = pa.table({"column_bytes": pa.array(texts[2:4])})
    back = ChunkRecords.from_arrow(table, ["column_bytes"], ["column_bytes"])
    assert list(back) == [{"column_bytes": {"a": 1}}, {"column_bytes": None}]
    with pytest.raises(json.JSONDecodeError, match="Expecting"):
        ChunkRecords.from_arrow(
            pa.table({"column_bytes": pa.array(texts[4:])}),
            ["column_bytes"],
            ["column_bytes"],
        )


def test_table_list_cells_are_lists_equal_to_the_records() -> None:
    records = _run_like(6)
    df = chunk_table(ChunkRecords.from_records(records))
    assert df["columns"].tolist() == [r["columns"] for r in records]
    assert all(type(v) is list for v in df["columns_read"])
    assert df["column_bytes"].tolist() == [r["column_bytes"] for r in records]
    # a dict per row: changing one changes no other
    df.loc[0, "column_bytes"]["Jet_pt"] = -1
    assert df.loc[1, "column_bytes"] == records[1]["column_bytes"]


keys = st.one_of(
    st.none(),
    st.text(max_size=6),
    st.builds(
        lambda p, n: f"{p}-{n}",
        st.sampled_from(["run", "run-a", "é", ""]),
        st.integers(0, 2**70),
    ),
)
names = st.text(max_size=5)
maps = st.one_of(
    st.none(),
    st.dictionaries(names, st.integers(-(2**64), 2**64), max_size=4),
)


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.lists(
        st.fixed_dictionaries({}, optional={"key": keys, "column_bytes": maps}),
        max_size=12,
    ),
    st.booleans(),
)
def test_keys_and_column_bytes_round_trip(
    records: list[dict[str, Any]], one_prefix: bool
) -> None:
    if one_prefix:  # the common case: the fast paths
        for i, rec in enumerate(records):
            rec["key"] = f"coffea-sizing-chunk-ab-{i}"
    loaded, _ = _round_trip(records)
    assert list(loaded) == records
