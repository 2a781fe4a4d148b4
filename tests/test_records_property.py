"""Property tests: ``chunk_table``/``merge_table`` on any list of records, and the
packed form records cross the wire in.

Records hold plain ints, floats, ``None``, text, lists of text; the tables must keep
every record, every field and every value, with the contract fields first and in
order, for whatever subset of fields a record has. A packed record must unpack to
the record that was packed, whatever its fields and values.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from coffea_sizing import CHUNK_FIELDS, MERGE_FIELDS, chunk_table, merge_table
from coffea_sizing.records import (
    _LAYOUT,
    IDENTITY_FIELDS,
    OUTPUT_KEY,
    REPORT_KEY,
    REPORT_MERGES_KEY,
    WIRE_FIELDS,
    WIRE_VERSION,
    WireFormatError,
    pack_record,
    unpack_record,
)

# No .hypothesis directory in the repository (or in CI): no example database, and
# hypothesis' own caches (constants, unicode tables) go to the temp directory.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "coffea-sizing-hypothesis"))
settings.register_profile(
    "coffea-sizing",
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile("coffea-sizing")

KNOWN = frozenset(CHUNK_FIELDS) | frozenset(MERGE_FIELDS)
RESERVED = KNOWN | {REPORT_KEY, REPORT_MERGES_KEY, OUTPUT_KEY}

# Integers stay within float64's exact range: pandas turns an integer column with
# a missing value into float64 (a chunk's bytesread next to a skipped chunk's None).
ints = st.integers(min_value=-(2**53), max_value=2**53)
texts = st.text(max_size=12)  # any unicode, incl. surrogate-free astral planes
file_names = st.builds(
    lambda stem, ext: f"/data/{stem}.{ext}",
    st.text(min_size=1, max_size=10),
    st.sampled_from(["root", "ROOT", "röot", "根"]),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    file_names,
    st.lists(texts, max_size=4),
)
extra_names = texts.filter(lambda name: name not in RESERVED)


def records_of(fields: tuple[str, ...]) -> st.SearchStrategy[list[dict[str, Any]]]:
    record = st.dictionaries(
        st.one_of(st.sampled_from(fields), extra_names), values, max_size=8
    )
    return st.lists(record, max_size=8)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _same(cell: Any, value: Any) -> bool:
    if isinstance(value, list):
        return list(cell) == value
    if _missing(value):
        # NaN and None both come out missing (None in object columns, NaN in
        # float columns), never as a number or text
        return _missing(cell)
    if isinstance(value, bool):
        return bool(cell) is value and not isinstance(cell, str)
    if isinstance(cell, str) != isinstance(value, str):
        return False
    return bool(cell == value)


def _check_table(
    df: pd.DataFrame, records: list[dict[str, Any]], fields: tuple[str, ...]
) -> None:
    assert len(df) == len(records)
    assert list(df.columns[: len(fields)]) == list(fields)
    extra: list[str] = []
    for rec in records:
        extra.extend(k for k in rec if k not in fields and k not in extra)
    assert list(df.columns[len(fields) :]) == extra
    for i, rec in enumerate(records):
        row = df.iloc[i]
        for name in df.columns:
            if name in rec:
                assert _same(row[name], rec[name]), (name, row[name], rec[name])
            else:
                assert _missing(row[name]), (name, row[name])


@settings(PROFILE)
@given(records_of(CHUNK_FIELDS))
def test_chunk_table_keeps_every_record_field_and_value(
    records: list[dict[str, Any]],
) -> None:
    _check_table(chunk_table(records), records, CHUNK_FIELDS)
    # the same records inside a Runner report, and in an (output, report) pair
    report = {"chunks": len(records), REPORT_KEY: records}
    _check_table(chunk_table(report), records, CHUNK_FIELDS)
    _check_table(chunk_table(({"nevents": 1}, report)), records, CHUNK_FIELDS)
    # and in a @track_sizes output
    _check_table(chunk_table({OUTPUT_KEY: records}), records, CHUNK_FIELDS)


@settings(PROFILE)
@given(records_of((*CHUNK_FIELDS, "key", "column_bytes")), st.data())
def test_records_held_column_wise_read_back_equal(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Whatever the values (NaN, ints in float fields, 2**53, text in int fields,
    absent fields), records held column-wise read back equal, key for key and type
    for type; their table is the one built from the dicts; saved and loaded they
    are equal again."""
    from coffea_sizing.columnar import ChunkRecords
    from coffea_sizing.records import _table
    from coffea_sizing.store import load_records, save_records

    for rec in records:  # real keys and column_bytes some of the time
        if data.draw(st.booleans()):
            rec["key"] = f"coffea-sizing-chunk-0a1b-{data.draw(st.integers(0, 10**7))}"
        if data.draw(st.booleans()):
            rec["column_bytes"] = data.draw(
                st.dictionaries(texts, st.integers(0, 2**40), max_size=3)
            )
    held = ChunkRecords.from_records(records)

    def typed(recs: Any) -> list[list[tuple[str, type, str]]]:
        return [
            sorted((k, type(v).__name__, repr(v)) for k, v in r.items()) for r in recs
        ]

    assert typed(held) == typed(records)
    assert len(held) == len(records)
    if records:
        assert typed([held[-1]]) == typed(records[-1:])
        assert typed(held[1:]) == typed(records[1:])
    report = {REPORT_KEY: held}
    pd.testing.assert_frame_equal(
        chunk_table(report), chunk_table(records), check_dtype=True
    )
    _check_table(chunk_table(held), records, CHUNK_FIELDS)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_records(report, Path(tmp) / "r.parquet", csv=False)
        loaded = load_records(path)[REPORT_KEY]
    assert isinstance(loaded, ChunkRecords)

    def nan_free(recs: Any) -> list[dict[str, Any]]:
        return [
            {k: "NaN" if _missing(v) and v is not None else v for k, v in r.items()}
            for r in recs
        ]

    # Parquet types a column (as before: 0 and 0.0 alike)
    assert nan_free(loaded) == nan_free(records)
    assert _table(list(loaded), CHUNK_FIELDS).shape == chunk_table(loaded).shape


@settings(PROFILE)
@given(records_of(MERGE_FIELDS))
def test_merge_table_keeps_every_record_field_and_value(
    records: list[dict[str, Any]],
) -> None:
    _check_table(merge_table(records), records, MERGE_FIELDS)
    _check_table(merge_table({REPORT_MERGES_KEY: records}), records, MERGE_FIELDS)


@pytest.mark.parametrize(
    "report",
    [None, [], (), {REPORT_KEY: None}, {REPORT_KEY: []}, {"chunks": 0, REPORT_KEY: []}],
    ids=["none", "list", "tuple", "sizing-none", "sizing-empty", "report-empty"],
)
def test_empty_reports_give_empty_tables_with_the_contract_columns(
    report: Any,
) -> None:
    df = chunk_table(report)
    assert len(df) == 0
    assert list(df.columns) == list(CHUNK_FIELDS)
    merges = report if not isinstance(report, Mapping) else {REPORT_MERGES_KEY: None}
    mdf = merge_table(merges)
    assert len(mdf) == 0
    assert list(mdf.columns) == list(MERGE_FIELDS)


@settings(PROFILE)
@given(st.dictionaries(extra_names, values, min_size=0, max_size=6))
def test_mapping_without_records_raises_a_helpful_key_error(
    mapping: dict[str, Any],
) -> None:
    with pytest.raises(KeyError) as info:
        chunk_table(mapping)
    message = info.value.args[0]
    assert message.startswith("no 'sizing' records in this mapping")
    assert "savemetrics=True" in message
    assert "SizingDaskExecutor" in message
    with pytest.raises(KeyError) as info:
        merge_table(mapping)
    assert info.value.args[0].startswith("no 'sizing_merges' records")


@settings(PROFILE)
@given(
    records_of(CHUNK_FIELDS),
    st.one_of(ints, texts, st.none(), st.lists(texts, max_size=2), st.floats()),
    st.data(),
)
def test_non_mapping_items_raise_type_error_naming_the_item(
    records: list[dict[str, Any]], bad: Any, data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(records)))
    items: list[Any] = [*records[:at], bad, *records[at:]]
    with pytest.raises(TypeError, match=rf"record {at} is a {type(bad).__name__}"):
        chunk_table(items)
    with pytest.raises(TypeError, match="expected a mapping"):
        merge_table(items)


@pytest.mark.parametrize("bad", ["report.json", b"bytes", 42, 4.2, object()])
def test_scalars_and_strings_raise_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="expected a report or a list of records"):
        chunk_table(bad)


def test_a_table_can_be_turned_into_a_table_again() -> None:
    records = [{"filename": "/data/ü.root", "entrystart": 0, "bytesread": 10}]
    df = chunk_table(records)
    again = chunk_table(df)
    assert again.equals(df)


# ------------------------------------------------------------------ wire format
WIRE_NAMES = st.sampled_from(WIRE_FIELDS + IDENTITY_FIELDS + CHUNK_FIELDS)
branch_names = st.lists(
    st.text(min_size=1, max_size=14), min_size=0, max_size=12, unique=True
)


@st.composite
def worker_records(draw: st.DrawFn) -> dict[str, Any]:
    """Records as a worker packs them: any subset of fields, any plain values,
    with ``columns``/``columns_read``/``column_bytes`` shaped as the decorator and
    the executor make them (equal or not, aligned or not)."""
    record = draw(
        st.dictionaries(st.one_of(WIRE_NAMES, extra_names), values, max_size=12)
    )
    columns = draw(branch_names)
    if draw(st.booleans()):
        record["columns"] = columns
    if draw(st.booleans()):
        read = columns if draw(st.booleans()) else draw(branch_names)
        record["columns_read"] = read
        if draw(st.booleans()):
            names = read if draw(st.booleans()) else draw(branch_names)
            record["column_bytes"] = {
                name: draw(st.one_of(st.none(), ints)) for name in names
            }
    return record


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_equal, a, b))
    return type(a) is type(b) and a == b


@settings(PROFILE)
@given(worker_records())
def test_packed_records_unpack_to_the_same_record(record: dict[str, Any]) -> None:
    packed = pack_record(record)
    back = unpack_record(packed)
    assert set(back) == set(record)
    for name, value in record.items():
        assert _equal(back[name], value), (name, back[name], value)


def test_packing_drops_what_the_client_knows() -> None:
    columns = [f"Branch{i:02d}_pt" for i in range(13)]
    record = {
        "entries": 100_000,
        "skipped": False,
        "bytesread": 2_851_336,
        "columns": columns,
        "columns_read": list(columns),
        "column_bytes": {name: 400_000 + i for i, name in enumerate(columns)},
        "walltime": 0.579,
    }
    packed = pack_record(record)
    # every branch name once, for columns; none of the field names
    for name in columns:
        assert packed.count(name.encode()) == 1
    assert b"walltime" not in packed
    assert len(packed) < len(msgpack.packb(record)) / 2


@pytest.mark.parametrize(
    ("packed", "match"),
    [
        (
            msgpack.packb([WIRE_VERSION + 1, _LAYOUT, 0, [], {}]),
            rf"wire format {WIRE_VERSION + 1}; .* reads format {WIRE_VERSION}",
        ),
        (
            msgpack.packb([WIRE_VERSION, _LAYOUT ^ 1, 0, [], {}]),
            "packed with other fields .* another version",
        ),
        (b"\xc1", "not a packed chunk record"),
        (msgpack.packb([WIRE_VERSION, _LAYOUT, 1, [1, 2], {}]), "malformed"),
        (msgpack.packb([WIRE_VERSION, _LAYOUT, "1", [1], {}]), "malformed"),
        (msgpack.packb({"bytesread": 1}), "wire format None"),
        ({"bytesread": 1}, "got dict .* another version of coffea-sizing"),
    ],
)
def test_unreadable_packed_records_raise_wire_format_error(
    packed: Any, match: str
) -> None:
    with pytest.raises(WireFormatError, match=match):
        unpack_record(packed)


def test_unpackable_values_name_the_field() -> None:
    with pytest.raises(TypeError, match=r"\['weird'\]"):
        pack_record({"bytesread": 1, "weird": object()})


def test_the_field_list_check_is_64_bits_and_sees_a_swap() -> None:
    """Two field lists that differ (here: walltime and cputime swapped) never share
    a layout: the check is a 64-bit hash, not the 16 bits that once collided."""
    import hashlib

    from coffea_sizing.records import WIRE_FIELDS, WIRE_LAYOUT

    def layout(fields: Any) -> int:
        digest = hashlib.blake2b(",".join(fields).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    assert layout(WIRE_FIELDS) == WIRE_LAYOUT
    assert 0 <= WIRE_LAYOUT < 2**64
    swapped = list(WIRE_FIELDS)
    i, j = swapped.index("walltime"), swapped.index("cputime")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert layout(swapped) != WIRE_LAYOUT
    packed = msgpack.packb([WIRE_VERSION, layout(swapped), 0, [], {}])
    with pytest.raises(WireFormatError, match="packed with other fields"):
        unpack_record(packed)
    # 200,000 lists one rename away: no collision (16 bits collided in 164,536)
    seen = {WIRE_LAYOUT}
    for k in range(200_000):
        fields = [*WIRE_FIELDS[:-1], f"{WIRE_FIELDS[-1]}{k}"]
        value = layout(fields)
        assert value not in seen
        seen.add(value)
