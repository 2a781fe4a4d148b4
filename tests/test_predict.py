"""``predict``: coffea's per-chunk ``bytesread`` from metadata, checked to the byte
against real coffea runs on generated files (baskets of 1,000 and 3,000 events, so
that chunk edges cut baskets) and on the real ttbar file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from coffea.processor.executor import WorkItem

import coffea_sizing.predict as predict_module
from coffea_sizing.datasets import UnknownBranchError, make_nanoaod
from coffea_sizing.layout import basket_bytes
from coffea_sizing.predict import (
    Amplification,
    UnknownTreeError,
    amplification,
    coffea_chunks,
    open_cost,
    predict_branch_bytes,
    predict_bytesread,
)
from coffea_sizing.sweep import SWEEP_BRANCHES

N_EVENTS = 20_000
BASKET_SIZES = (1_000, 3_000)
CHUNK_SIZES = (1_000, 2_500, 7_000)

#: Fields read, in order; the first 1, 2, 3, 5 and 10 are the nested branch sets.
FIELDS: tuple[tuple[str, str], ...] = SWEEP_BRANCHES
STEPS = (1, 2, 3, 5, 10)

#: NanoAODSchema on the real ttbar file: "Branch Photon_mass already exists but its
#: values will be replaced with 0.0".
QUIET_TTBAR = pytest.mark.filterwarnings(
    "ignore:Branch .* already exists:RuntimeWarning"
)


class QuietNanoAODSchema(NanoAODSchema):
    """NanoAODSchema without the warnings for cross-references missing from the
    generated files (warnings are errors in this suite)."""

    warn_missing_crossrefs = False


class FieldProcessor:
    """Materialises ``fields`` of the events; returns the number of events."""

    def __init__(self, fields: Sequence[tuple[str, str]]) -> None:
        self.fields = list(fields)

    def __call__(self, events: Any) -> dict[str, int]:
        for collection, field in self.fields:
            ak.materialize(events[collection][field])
        return {"entries": len(events)}


def branches_of(fields: Sequence[tuple[str, str]]) -> list[str]:
    """Branches NanoAODSchema materialises for ``fields`` (counters included)."""
    names: list[str] = []
    for collection, field in fields:
        if collection != "MET":  # MET is a record of scalars, not a collection
            names.append(f"n{collection}")
        names.append(f"{collection}_{field}")
    return list(dict.fromkeys(names))


def measure(
    path: str,
    start: int,
    stop: int,
    fields: Sequence[tuple[str, str]],
    steps: Sequence[int],
) -> list[tuple[int, set[str]]]:
    """``bytesread`` and materialised branches after reading the first ``n``
    fields, for each ``n`` in ``steps``: the open, factory and read steps of
    coffea's ``Runner._work_function``, replicated call for call."""
    out: list[tuple[int, set[str]]] = []
    with uproot.open({path: None}, timeout=60) as file:
        materialized: list[Any] = []
        events = NanoEventsFactory.from_root(
            file=file,
            treepath="Events",
            schemaclass=QuietNanoAODSchema,
            metadata={"dataset": "ds", "filename": path, "treename": "Events"},
            access_log=materialized,
            mode="virtual",
            entry_start=start,
            entry_stop=stop,
            iteritems_options={},
            preload=None,
            buffer_cache=None,
        ).events()
        done = 0
        for n in steps:
            FieldProcessor(fields[done:n])(events)
            done = n
            branches = {access.branch for access in materialized}
            out.append((int(file.file.source.num_requested_bytes), branches))
    return out


def run_coffea(
    path: str,
    chunks: Sequence[tuple[int, int]],
    fields: Sequence[tuple[str, str]],
    **uproot_options: Any,
) -> list[dict[str, Any]]:
    """coffea's own metrics, one ``Runner`` call per chunk (it only reports sums)."""
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        savemetrics=True,
        schema=QuietNanoAODSchema,
    )
    metrics = []
    for start, stop in chunks:
        item = WorkItem("ds", path, "Events", start, stop, b"")
        out, chunk_metrics = runner(
            [item], FieldProcessor(fields), uproot_options=uproot_options
        )
        assert out == {"entries": stop - start}
        metrics.append(chunk_metrics)
    return metrics


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> dict[int, str]:
    """The same 20,000 events in baskets of 1,000 and of 3,000 (last: 2,000)."""
    tmp = tmp_path_factory.mktemp("predict")
    return {
        size: str(
            make_nanoaod(
                tmp / f"baskets_{size}.root",
                N_EVENTS,
                events_per_basket=size,
                seed=1,
                source=ttbar_file,
            )
        )
        for size in BASKET_SIZES
    }


@pytest.mark.parametrize("chunksize", CHUNK_SIZES)
@pytest.mark.parametrize("basket_size", BASKET_SIZES)
def test_exact_for_nested_branch_sets(
    files: dict[int, str], basket_size: int, chunksize: int
) -> None:
    """1, 2, 3, 5 and 10 fields, every chunk: prediction == measurement."""
    path = files[basket_size]
    chunks = coffea_chunks(path, "Events", chunksize)
    measured = [measure(path, s, e, FIELDS, STEPS) for s, e in chunks]
    for step, n in enumerate(STEPS):
        expected_branches = branches_of(FIELDS[:n])
        for chunk_measure in measured:
            assert chunk_measure[step][1] == set(expected_branches)
        predicted = predict_bytesread(path, "Events", expected_branches, chunks)
        assert predicted["predicted_bytesread"].tolist() == [
            m[step][0] for m in measured
        ], f"{n} fields"
        # the same from the fields' own branches, counters added
        own = [f"{c}_{f}" for c, f in FIELDS[:n]]
        again = predict_bytesread(path, "Events", own, chunks, with_counters=True)
        pd.testing.assert_frame_equal(again, predicted)


@pytest.mark.parametrize("basket_size", BASKET_SIZES)
def test_exact_against_coffea_runner(files: dict[int, str], basket_size: int) -> None:
    """Real ``Runner`` calls, one chunk each, chunks of 2,500 (edges cut baskets)."""
    path = files[basket_size]
    chunks = coffea_chunks(path, "Events", 2_500)
    metrics = run_coffea(path, chunks, FIELDS)
    # coffea's column names are accepted as they are
    columns = sorted(set().union(*(m["columns"] for m in metrics)))
    assert {c.rpartition("-")[0] for c in columns} == set(branches_of(FIELDS))
    predicted = predict_bytesread(path, "Events", columns, chunks)
    assert predicted["predicted_bytesread"].tolist() == [
        m["bytesread"] for m in metrics
    ]
    # a whole run reports the sum over its chunks
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        savemetrics=True,
        schema=QuietNanoAODSchema,
        chunksize=2_500,
    )
    _, total = runner({"ds": [path]}, FieldProcessor(FIELDS), treename="Events")
    assert total["chunks"] == len(chunks)
    assert total["bytesread"] == predicted["predicted_bytesread"].sum()


def test_coffea_chunks_match_runner(files: dict[int, str]) -> None:
    for basket_size, path in files.items():
        for chunksize, align in [
            (1_000, False),
            (2_500, False),
            (7_000, False),
            (5_000, True),
            (2_500, True),
        ]:
            runner = processor.Runner(
                executor=processor.IterativeExecutor(status=False),
                chunksize=chunksize,
                align_clusters=align,
                metadata_cache={},
            )
            items = runner.preprocess({"ds": [path]}, treename="Events")
            expected = [(i.entrystart, i.entrystop) for i in items]
            got = coffea_chunks(path, "Events", chunksize, align_clusters=align)
            assert got == expected, (basket_size, chunksize, align)


def test_open_cost_formula(files: dict[int, str]) -> None:
    """File open = 403-byte header + directory keys (fNbytesKeys + 8); TTree =
    fNbytes - fKeylen of its key; a basket costs fBasketBytes, TKey included."""
    for path in files.values():
        cost = open_cost(path, "Events")
        with uproot.open(path) as file:
            directory = file.file.root_directory
            key = file.key("Events")
            assert cost.file_open_bytes == 403 + directory.fNbytesKeys + 8
            assert cost.tree_bytes == key.fNbytes - key.fKeylen
            branch = file["Events"]["Jet_pt"]
            basket_bytes = branch.member("fBasketBytes")[: branch.num_baskets]
            first_key = branch.basket_key(0)
            assert basket_bytes[0] == first_key.fNbytes
            assert first_key.fKeylen > 0
        df = predict_bytesread(path, "Events", ["Jet_pt"], [(0, 1)])
        assert df["predicted_payload_bytes"].tolist() == [basket_bytes[0]]
        assert df["predicted_open_bytes"].tolist() == [cost.total]


def test_matches_uproot_basket_selection(files: dict[int, str]) -> None:
    """All chunks between interesting entries, empty ones included, against
    uproot's own choice of byte ranges."""
    path = files[3_000]
    edges = [0, 1, 2_999, 3_000, 3_001, 5_999, 6_000, 17_999, 18_000, 19_999, N_EVENTS]
    chunks = [(a, b) for a in edges for b in edges if a <= b]
    names = ["nJet", "Jet_pt", "MET_pt"]
    predicted = predict_bytesread(path, "Events", names, chunks)
    with uproot.open(path) as file:
        tree = file["Events"]
        for row in predicted.itertuples():
            payload = 0
            count = 0
            for name in names:
                for _, byte_range in tree[name].entries_to_ranges_or_baskets(
                    row.entrystart, row.entrystop
                ):
                    payload += byte_range[1] - byte_range[0]
                    count += 1
            assert (row.predicted_payload_bytes, row.baskets) == (payload, count)


@pytest.mark.parametrize("basket_size", BASKET_SIZES)
def test_worker_side_basket_rule_agrees_with_the_prediction(
    files: dict[int, str], ttbar_file: str, basket_size: int
) -> None:
    """``layout.basket_bytes`` (one chunk, in the decorator) and the vectorised rule
    of ``predict_branch_bytes`` give the same bytes for every range, empty ranges
    and ranges past the last entry included, on free and on embedded baskets."""
    edges = [0, 1, 999, 1_000, 1_001, 2_999, 3_000, 3_001, 17_999, 19_999, N_EVENTS]
    chunks = [(a, b) for a in edges for b in edges if a <= b]
    names = ["nJet", "Jet_pt", "MET_pt", "Muon_eta"]
    for path, ranges in ((files[basket_size], chunks), (ttbar_file, [(0, 200)])):
        table = predict_branch_bytes(path, "Events", names, ranges).reset_index()
        with uproot.open(path) as file:
            tree = file["Events"]
            for row in table.itertuples(index=False):
                for name in names:
                    worker_side = basket_bytes(
                        tree[name], row.entrystart, row.entrystop
                    )
                    assert worker_side == getattr(row, name), (path, row, name)


def test_empty_chunks_read_the_basket_holding_their_entry(
    files: dict[int, str],
) -> None:
    """uproot reads, for [k, k), the basket that holds entry k (none at the end)."""
    path = files[1_000]
    chunks = [(5, 5), (1_000, 1_000), (N_EVENTS, N_EVENTS)]
    metrics = run_coffea(path, chunks, FIELDS[:1])
    predicted = predict_bytesread(path, "Events", ["nJet", "Jet_pt"], chunks)
    assert predicted["predicted_bytesread"].tolist() == [
        m["bytesread"] for m in metrics
    ]
    assert predicted["baskets"].tolist() == [2, 2, 0]


@QUIET_TTBAR
def test_ttbar_file_has_no_payload(ttbar_file: str) -> None:
    """Every basket is embedded in the TTree: 527 + 336,097 bytes per chunk."""
    [metrics] = run_coffea(ttbar_file, [(0, 200)], FIELDS[:1])
    predicted = predict_bytesread(ttbar_file, "Events", metrics["columns"], [(0, 200)])
    assert metrics["bytesread"] == 336_624
    assert predicted["predicted_bytesread"].tolist() == [336_624]
    assert predicted["predicted_payload_bytes"].tolist() == [0]
    assert predicted["baskets"].tolist() == [0]
    cost = open_cost(ttbar_file, "Events")
    assert (cost.file_open_bytes, cost.tree_bytes) == (527, 336_097)


@QUIET_TTBAR
def test_ttbar_free_and_embedded_baskets(ttbar_file: str) -> None:
    """LHEPdfWeight: two free baskets (entries 0-76, 76-152), then an embedded one."""
    chunks = [(0, 100), (60, 90), (150, 200), (152, 200)]
    for (start, stop), expected_baskets in zip(chunks, [2, 2, 1, 0], strict=True):
        [(measured, branches)] = measure_ttbar_lhe(ttbar_file, start, stop)
        predicted = predict_bytesread(ttbar_file, "Events", branches, [(start, stop)])
        assert predicted["predicted_bytesread"].tolist() == [measured]
        assert predicted["baskets"].tolist() == [expected_baskets]


def measure_ttbar_lhe(path: str, start: int, stop: int) -> list[tuple[int, set[str]]]:
    """As :func:`measure`, reading ``events.LHEPdfWeight``."""
    with uproot.open({path: None}, timeout=60) as file:
        materialized: list[Any] = []
        events = NanoEventsFactory.from_root(
            file=file,
            treepath="Events",
            schemaclass=QuietNanoAODSchema,
            metadata={"dataset": "ds"},
            access_log=materialized,
            mode="virtual",
            entry_start=start,
            entry_stop=stop,
            iteritems_options={},
            preload=None,
            buffer_cache=None,
        ).events()
        ak.materialize(events.LHEPdfWeight)
        branches = {access.branch for access in materialized}
        return [(int(file.file.source.num_requested_bytes), branches)]


def test_uproot_options_change_the_open_cost(files: dict[int, str]) -> None:
    path = files[1_000]
    chunks = [(0, 2_500), (2_500, 5_000)]
    metrics = run_coffea(path, chunks, FIELDS[:2], begin_chunk_size=2_048)
    options = {"begin_chunk_size": 2_048}
    predicted = predict_bytesread(
        path, "Events", metrics[0]["columns"], chunks, uproot_options=options
    )
    assert predicted["predicted_bytesread"].tolist() == [
        m["bytesread"] for m in metrics
    ]
    # the directory keys are now inside the first request
    assert open_cost(path, "Events", uproot_options=options).file_open_bytes == 2_048
    assert open_cost(path, "Events").file_open_bytes != 2_048


def test_chunk_formats_and_branch_table(files: dict[int, str]) -> None:
    path = files[3_000]
    pairs = coffea_chunks(path, "Events", 7_000)
    names = branches_of(FIELDS)
    by_pairs = predict_bytesread(path, "Events", names, pairs)
    items = [WorkItem("ds", path, "Events", s, e, b"") for s, e in pairs]
    table = pd.DataFrame(pairs, columns=["entrystart", "entrystop"])
    for chunks in (items, table, iter(pairs), np.array(pairs)):
        pd.testing.assert_frame_equal(
            predict_bytesread(path, "Events", names, chunks), by_pairs
        )
    assert list(by_pairs.columns) == [
        "entrystart",
        "entrystop",
        "predicted_open_bytes",
        "predicted_payload_bytes",
        "predicted_bytesread",
        "baskets",
        "branch_bytes",
    ]
    assert by_pairs.attrs["branches"] == names
    assert by_pairs.attrs["num_entries"] == N_EVENTS
    per_branch = predict_branch_bytes(path, "Events", names, pairs)
    assert list(per_branch.columns) == names
    assert (
        per_branch.sum(axis=1).tolist() == by_pairs["predicted_payload_bytes"].tolist()
    )
    assert [dict(row) for _, row in per_branch.iterrows()] == by_pairs[
        "branch_bytes"
    ].tolist()
    # duplicates and coffea's spelling count once
    doubled = predict_bytesread(path, "Events", [*names, "Jet_pt-data"], pairs)
    pd.testing.assert_frame_equal(doubled, by_pairs)
    empty = predict_bytesread(path, "Events", names, [])
    assert empty.empty
    assert list(empty.columns) == list(by_pairs.columns)


def test_amplification_when_chunks_cut_baskets(files: dict[int, str]) -> None:
    path = files[1_000]
    chunks = coffea_chunks(path, "Events", 2_500)  # 8 chunks of 2,500
    amp = amplification(path, "Events", ["Jet_pt"], chunks)
    with uproot.open(path) as file:
        branch = file["Events"]["Jet_pt"]
        all_bytes = int(branch.member("fBasketBytes")[: branch.num_baskets].sum())
    assert isinstance(amp, Amplification)
    assert amp.num_chunks == 8
    assert (amp.basket_reads, amp.unique_baskets) == (24, 20)
    assert amp.unique_basket_bytes == all_bytes
    assert amp.ratio > 1.15
    predicted = predict_bytesread(path, "Events", ["Jet_pt"], chunks)
    assert amp.payload_bytes == predicted["predicted_payload_bytes"].sum()
    assert amp.total_bytesread == predicted["predicted_bytesread"].sum()
    assert amp.open_bytes_per_chunk == open_cost(path, "Events").total
    assert amp.to_dict()["ratio"] == amp.ratio
    # a single chunk in the middle of a basket: one basket, read once
    one = amplification(path, "Events", ["Jet_pt"], [(10, 20)])
    assert (one.basket_reads, one.unique_baskets, one.ratio) == (1, 1, 1.0)


def test_amplification_is_one_when_chunks_align(files: dict[int, str]) -> None:
    names = branches_of(FIELDS)
    aligned = amplification(
        files[1_000], "Events", names, coffea_chunks(files[1_000], "Events", 2_000)
    )
    assert aligned.ratio == 1.0
    assert aligned.payload_bytes == aligned.unique_basket_bytes > 0
    clusters = coffea_chunks(files[3_000], "Events", 5_000, align_clusters=True)
    assert clusters == [(0, 6_000), (6_000, 12_000), (12_000, 18_000), (18_000, 20_000)]
    assert amplification(files[3_000], "Events", names, clusters).ratio == 1.0
    cut = amplification(
        files[3_000], "Events", names, coffea_chunks(files[3_000], "Events", 5_000)
    )
    assert cut.ratio > 1.0


def test_amplification_without_free_baskets(ttbar_file: str) -> None:
    amp = amplification(
        ttbar_file, "Events", ["nJet", "Jet_pt"], [(0, 100), (100, 200)]
    )
    assert (amp.payload_bytes, amp.unique_basket_bytes, amp.ratio) == (0, 0, 1.0)
    assert amp.total_bytesread == 2 * 336_624


def test_cache_notices_a_rewritten_file(tmp_path: Path, ttbar_file: str) -> None:
    path = tmp_path / "rewritten.root"
    make_nanoaod(
        path, 500, events_per_basket=100, branches=["Jet_pt"], source=ttbar_file
    )
    before = predict_bytesread(path, "Events", ["Jet_pt"], [(0, 500)])
    make_nanoaod(
        path, 500, events_per_basket=250, branches=["Jet_pt"], source=ttbar_file
    )
    after = predict_bytesread(path, "Events", ["Jet_pt"], [(0, 500)])
    assert before["baskets"].tolist() == [5]
    assert after["baskets"].tolist() == [2]
    predict_module.clear_cache()
    again = predict_bytesread(path, "Events", ["Jet_pt"], [(0, 500)])
    pd.testing.assert_frame_equal(again, after)


def test_errors(tmp_path: Path, files: dict[int, str]) -> None:
    path = files[1_000]
    missing = tmp_path / "nowhere.root"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.root does not exist"):
        predict_bytesread(missing, "Events", ["Jet_pt"], [(0, 1)])
    with pytest.raises(FileNotFoundError, match="is a directory"):
        open_cost(tmp_path, "Events")

    with pytest.raises(UnknownTreeError) as tree_error:
        predict_bytesread(path, "Evnts", ["Jet_pt"], [(0, 1)])
    assert isinstance(tree_error.value, KeyError)
    assert isinstance(tree_error.value, ValueError)
    message = str(tree_error.value)
    assert "'Evnts'" in message
    assert path in message
    assert "did you mean 'Events'" in message

    histogram = tmp_path / "histogram.root"
    with uproot.recreate(histogram) as out:
        out["h"] = np.histogram([1.0, 2.0], bins=2)
        out["ntuple"] = {"x": np.arange(3, dtype=np.int32)}  # an RNTuple
        out.mktree("Events", {"x": np.int32}).extend({"x": np.arange(3)})
    with pytest.raises(
        TypeError,
        match=r"'h' in .*histogram\.root is a .*neither a TTree nor an RNTuple",
    ):
        open_cost(histogram, "h")
    assert open_cost(histogram, "ntuple").total > 0  # RNTuples are read too
    with pytest.raises(KeyError, match=r"trees in the file: 'ntuple', 'Events'"):
        open_cost(histogram, "tree")

    with pytest.raises(UnknownBranchError) as branch_error:
        predict_bytesread(path, "Events", ["nJet", "Jet_ptt"], [(0, 1)])
    assert "'Jet_ptt'" in str(branch_error.value)
    assert path in str(branch_error.value)
    assert "did you mean 'Jet_pt'" in str(branch_error.value)
    with pytest.raises(TypeError, match="branch names"):
        predict_bytesread(path, "Events", [3], [(0, 1)])  # type: ignore[list-item]

    for chunks, pattern in [
        ([(0, 10), (-1, 5)], r"chunk 1 \(\(-1, 5\)\): bad entry range \[-1, 5\)"),
        ([(10, 5)], r"chunk 0 \(\(10, 5\)\)"),
        ([(0, N_EVENTS + 1)], rf"\[0, {N_EVENTS + 1}\).*<= {N_EVENTS}"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            predict_bytesread(path, "Events", ["Jet_pt"], chunks)
    for chunks, pattern in [
        ([(0.0, 10)], r"chunk 0 .*entrystart must be an integer"),
        ([(0, 10, 20)], r"chunk 0 \(\(0, 10, 20\)\) is not an \(entrystart"),
        ((0, 10), r"chunk 0 \(0\) is not"),
        (WorkItem("ds", path, "Events", 0, 10, b""), "single chunk"),
        (5, "iterable"),
    ]:
        with pytest.raises(TypeError, match=pattern):
            amplification(path, "Events", ["Jet_pt"], chunks)
    with pytest.raises(ValueError, match="'entrystop'"):
        predict_bytesread(path, "Events", ["Jet_pt"], pd.DataFrame({"entrystart": [0]}))
    with pytest.raises(ValueError, match="chunksize must be at least 1"):
        coffea_chunks(path, "Events", 0)
