"""``@track_sizes`` on real coffea runs: Iterative, Futures, Dask and SizingDask."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from typing import Any

import awkward as ak
import cloudpickle
import pytest
import uproot
from coffea import processor
from coffea.nanoevents import BaseSchema, NanoAODSchema, NanoEventsFactory

from coffea_sizing import (
    CHUNK_FIELDS,
    SizingDaskExecutor,
    SizingWarning,
    chunk_table,
    split_records,
    track_sizes,
)
from coffea_sizing import decorator as decorator_module
from coffea_sizing.decorator import OUTPUT_KEY, TRACKED_FIELDS
from coffea_sizing.predict import predict_bytesread

from conftest import JetProcessor, check_invariants

#: coffea >= 2025.12 hands process() the input file (NanoEventsFactory.file_handle)
HAS_FILE_HANDLE = hasattr(NanoEventsFactory, "file_handle")
needs_file_handle = pytest.mark.skipif(
    not HAS_FILE_HANDLE, reason="coffea < 2025.12: no file handle, no byte counts"
)
TTBAR_OPEN = 336_624  # 527 (file header and keys) + 336,097 (the Events TTree)

pytestmark = [
    pytest.mark.executor,
    # NanoAODSchema on the ttbar file, in this process (IterativeExecutor)
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists:RuntimeWarning"),
]
if not HAS_FILE_HANDLE:
    pytestmark.append(
        pytest.mark.filterwarnings("ignore:track_sizes.*no handle:UserWarning")
    )

# processors defined here travel by value to loky and Dask worker processes
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: flat branches, so that reading k fields reads exactly k branches in both schemas
FLAT = ("MET_pt", "MET_phi", "MET_sumEt", "PV_npvs", "PV_z")


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees the decorator's once-per-process warnings afresh."""
    monkeypatch.setattr(decorator_module, "_WARNED", set())


def field(schema: type, branch: str) -> Any:
    return tuple(branch.split("_", 1)) if schema is NanoAODSchema else branch


class Reader(processor.ProcessorABC):
    """Sums the given flat branches; remembers what postprocess was given."""

    def __init__(self, branches: tuple[str, ...], schema: type) -> None:
        self.branches = branches
        self.schema = schema
        self.seen: list[str] | None = None

    @track_sizes
    def process(self, events: Any) -> dict[str, Any]:
        """Read the branches."""
        out: dict[str, Any] = {"nevents": len(events)}
        for branch in self.branches:
            out[branch] = float(ak.sum(events[field(self.schema, branch)]))
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        self.seen = sorted(accumulator)
        return accumulator


@track_sizes
class TrackedJets(JetProcessor):
    """JetProcessor, decorated as a class (process and postprocess inherited)."""


def runner(
    executor: Any, schema: type = NanoAODSchema, chunksize: int = 2_000
) -> processor.Runner:
    return processor.Runner(
        executor=executor, savemetrics=True, schema=schema, chunksize=chunksize
    )


def run_iterative(
    path: str, proc: Any, schema: type = NanoAODSchema, chunksize: int = 2_000
) -> tuple[Any, dict[str, Any]]:
    run = runner(processor.IterativeExecutor(status=False), schema, chunksize)
    return run({"data": [path]}, treename="Events", processor_instance=proc)


def check_records(
    records: list[dict[str, Any]], report: dict[str, Any], path: str
) -> None:
    """One record per chunk; open + payload is coffea's bytesread to the byte."""
    assert len(records) == report["chunks"]
    assert len({(r["filename"], r["entrystart"]) for r in records}) == len(records)
    assert sum(r["entries"] for r in records) == report["entries"]
    for r in records:
        assert set(TRACKED_FIELDS) <= set(r)
        assert r["process_walltime"] > 0
        assert r["process_cputime"] >= 0
        assert r["process_mem_peak_bytes"] > 0
        assert r["output_pickled_bytes"] > 0  # one name, as the executor's
        assert set(r["column_bytes"]) == set(r["columns_read"])
    if not HAS_FILE_HANDLE:
        assert {r["bytesread_open"] for r in records} == {None}
        return
    for r in records:
        assert r["bytesread"] == r["bytesread_open"] + r["bytesread_payload"]
        assert sum(r["column_bytes"].values()) == r["bytesread_payload"]
    # the sum is coffea's, and every chunk is what uproot must request for it
    assert sum(r["bytesread"] for r in records) == report["bytesread"]
    for r in records:
        predicted = predict_bytesread(
            path, "Events", r["columns_read"], [(r["entrystart"], r["entrystop"])]
        ).iloc[0]
        assert r["bytesread_open"] == predicted["predicted_open_bytes"]
        assert r["bytesread_payload"] == predicted["predicted_payload_bytes"]
        assert r["column_bytes"] == predicted["branch_bytes"]


# --------------------------------------------------------- IterativeExecutor
@pytest.mark.parametrize("schema", [NanoAODSchema, BaseSchema])
def test_iterative_payload_grows_with_branches(
    generated_file: str, schema: type
) -> None:
    payloads = []
    for k in (1, 2, 5):
        proc = Reader(FLAT[:k], schema)
        # 1,500-entry chunks straddle the 1,000-entry baskets
        out, report = run_iterative(generated_file, proc, schema, chunksize=1_500)
        user, records = split_records(out)
        assert proc.seen is not None
        assert OUTPUT_KEY not in proc.seen  # postprocess saw the user's output
        assert proc.seen == sorted(user)
        assert user["nevents"] == 20_000
        check_records(records, report, generated_file)
        assert all(r["columns_read"] == sorted(FLAT[:k]) for r in records)
        payloads.append([r["bytesread_payload"] for r in records])
    if HAS_FILE_HANDLE:
        for one, two, five in zip(*payloads, strict=True):
            assert 0 < one < two < five


@needs_file_handle
@pytest.mark.parametrize("schema", [NanoAODSchema, BaseSchema])
def test_iterative_one_chunk_is_coffeas_bytesread(
    generated_file: str, schema: type
) -> None:
    proc = Reader(FLAT[:2], schema)
    out, report = run_iterative(generated_file, proc, schema, chunksize=20_000)
    (record,) = split_records(out)[1]
    assert report["chunks"] == 1
    assert record["bytesread_open"] + record["bytesread_payload"] == report["bytesread"]
    assert record["bytesread_payload"] > 0


@pytest.mark.parametrize("schema", [NanoAODSchema, BaseSchema])
def test_ttbar_payload_is_zero(ttbar_file: str, schema: type) -> None:
    proc = Reader(FLAT[:5], schema)
    out, report = run_iterative(ttbar_file, proc, schema, chunksize=50)
    table = chunk_table(out)
    records = table.to_dict("records")
    check_records(records, report, ttbar_file)
    assert len(records) == 4
    # only the columns this executor fills: none that is None on every chunk
    empty = [c for c in table.columns if table[c].isna().all()]
    assert empty == (
        [] if HAS_FILE_HANDLE else ["bytesread", "bytesread_open", "bytesread_payload"]
    )
    assert "task_nbytes" not in table.columns
    assert "worker" not in table.columns
    if HAS_FILE_HANDLE:
        # every basket is embedded in the TTree: opening reads them all
        assert {r["bytesread_open"] for r in records} == {TTBAR_OPEN}
        assert {r["bytesread_payload"] for r in records} == {0}


@needs_file_handle
def test_ttbar_free_baskets_are_payload(ttbar_file: str) -> None:
    # LHEPdfWeight is the one branch with free baskets: 18,166 + 18,003 bytes
    proc = Reader(("LHEPdfWeight",), BaseSchema)
    out, report = run_iterative(ttbar_file, proc, BaseSchema, chunksize=100)
    _, records = split_records(out)
    check_records(records, report, ttbar_file)
    assert [r["bytesread_payload"] for r in records] == [36_169, 18_003]
    assert {r["bytesread_open"] for r in records} == {TTBAR_OPEN}


@needs_file_handle
def test_branch_bytes_request_nothing(generated_file: str) -> None:
    with uproot.open({generated_file: None}) as file:
        log: list[Any] = []
        factory = NanoEventsFactory.from_root(
            file=file,
            treepath="Events",
            schemaclass=NanoAODSchema,
            access_log=log,
            mode="virtual",
            entry_start=1_500,
            entry_stop=3_000,
        )
        events = factory.events()
        source = file.file.source
        opened = source.num_requested_bytes
        ak.sum(events.Jet.pt)
        ak.sum(events.MET.pt)
        read = source.num_requested_bytes
        branches = sorted({a.branch for a in log})
        assert branches == ["Jet_pt", "MET_pt", "nJet"]
        sizes = decorator_module._basket_bytes(factory, branches, 1_500, 3_000)
        assert source.num_requested_bytes == read  # metadata only, no request
        assert sizes is not None
        assert sum(v or 0 for v in sizes.values()) == read - opened
        assert all(v and v > 0 for v in sizes.values())


# ------------------------------------------------------------ FuturesExecutor
def test_futures_executor(generated_file: str) -> None:
    proc = Reader(FLAT[:2], NanoAODSchema)
    run = runner(processor.FuturesExecutor(workers=2, status=False))
    out, report = run(
        {"gen": [generated_file]}, treename="Events", processor_instance=proc
    )
    user, records = split_records(out)
    assert proc.seen is not None
    assert OUTPUT_KEY not in proc.seen
    assert user["nevents"] == 20_000
    assert report["chunks"] == 10
    check_records(records, report, generated_file)
    assert sorted(r["entrystart"] for r in records) == list(range(0, 20_000, 2_000))
    if HAS_FILE_HANDLE:  # one chunk: the record against coffea's own figure
        run = runner(
            processor.FuturesExecutor(workers=2, status=False), chunksize=20_000
        )
        out, report = run(
            {"gen": [generated_file]}, treename="Events", processor_instance=proc
        )
        (record,) = split_records(out)[1]
        assert report["chunks"] == 1
        assert record["bytesread"] == report["bytesread"]


# -------------------------------------------------------------- Dask executors
def test_sizing_dask_executor_one_row_per_chunk(
    client: Any, generated_file: str
) -> None:
    def go(proc: Any) -> tuple[Any, dict[str, Any]]:
        run = runner(SizingDaskExecutor(client=client, status=False))
        return run(
            {"gen": [generated_file]}, treename="Events", processor_instance=proc
        )

    out_plain, _ = go(JetProcessor(eta=True))
    out, report = go(TrackedJets(eta=True))
    # the output is untouched: the fields went into the executor's records
    assert out == out_plain
    assert OUTPUT_KEY not in out
    check_invariants(report)
    records = report["sizing"]
    assert len(records) == report["chunks"] == 10
    for r in records:
        assert set(TRACKED_FIELDS) <= set(r)
        assert r["output_pickled_bytes"] > 0  # the executor pickled it
        # (Dask's event channel, msgpack, hands lists back as tuples)
        assert list(r["columns_read"]) == list(r["columns"])
        assert list(r["columns_read"]) == ["Jet_eta", "Jet_pt", "nJet"]
        assert r["process_walltime"] <= r["walltime"]
        if HAS_FILE_HANDLE:
            assert r["bytesread_open"] + r["bytesread_payload"] == r["bytesread"]
            assert sum(r["column_bytes"].values()) == r["bytesread_payload"] > 0
        else:
            assert r["bytesread_open"] is None
    df = chunk_table(report)
    assert len(df) == 10
    assert list(df.columns[: len(CHUNK_FIELDS)]) == list(CHUNK_FIELDS)


def test_sizing_dask_executor_ttbar_base_schema(client: Any, ttbar_file: str) -> None:
    proc = Reader(FLAT[:5], BaseSchema)
    run = runner(SizingDaskExecutor(client=client, status=False), BaseSchema, 50)
    out, report = run(
        {"ttbar": [ttbar_file]}, treename="Events", processor_instance=proc
    )
    assert OUTPUT_KEY not in out
    assert out["nevents"] == 200
    assert len(report["sizing"]) == 4
    for r in report["sizing"]:
        assert list(r["columns_read"]) == sorted(FLAT)
        if HAS_FILE_HANDLE:
            assert (r["bytesread_open"], r["bytesread_payload"]) == (TTBAR_OPEN, 0)
            assert r["bytesread"] == TTBAR_OPEN


def test_dask_executor_records_travel_in_output(client: Any, ttbar_file: str) -> None:
    proc = TrackedJets()
    run = runner(processor.DaskExecutor(client=client, status=False), chunksize=25)
    out, report = run(
        {"ttbar": [ttbar_file]}, treename="Events", processor_instance=proc
    )
    user, records = split_records(out)
    assert report["chunks"] == 8
    assert user["nevents"] == 200
    assert len(records) == 8
    assert sorted(r["entrystart"] for r in records) == list(range(0, 200, 25))
    if HAS_FILE_HANDLE:
        assert sum(r["bytesread"] for r in records) == report["bytesread"]
        assert {r["bytesread_payload"] for r in records} == {0}


def test_imported_class_decorated_at_run_time(client: Any, ttbar_file: str) -> None:
    # an importable class travels to the workers by reference: the decorated
    # subclass must travel by value, or the workers would run the plain class
    from coffea.processor.test_items import NanoTestProcessor

    proc = track_sizes(NanoTestProcessor)(mode="virtual")
    assert type(proc).__name__ == "NanoTestProcessor"
    assert not hasattr(NanoTestProcessor.process, "__wrapped__")
    run = runner(
        processor.DaskExecutor(client=client, status=False), BaseSchema, chunksize=100
    )
    out, report = run(
        {"ZJets": [ttbar_file]}, treename="Events", processor_instance=proc
    )
    user, records = split_records(out)
    assert len(records) == report["chunks"] == 2
    assert set(user) == {"mass", "pt", "cutflow"}
    assert list(records[0]["columns_read"]) == [
        "Muon_eta",
        "Muon_mass",
        "Muon_phi",
        "Muon_pt",
    ]
    if HAS_FILE_HANDLE:
        assert sum(r["bytesread"] for r in records) == report["bytesread"]


# ------------------------------------------------------------ the decoration
class Plain(processor.ProcessorABC):
    """Decorated in a test (as a class)."""

    def process(self, events: Any) -> dict[str, Any]:
        """Count the events."""
        return {"n": len(events)}

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to do."""
        return accumulator


def count(self: Any, events: Any) -> dict[str, Any]:
    """Count the events."""
    return {"n": len(events)}


class Twice(processor.ProcessorABC):
    @track_sizes
    @track_sizes
    def process(self, events: Any) -> dict[str, Any]:
        return {"n": len(events)}

    def postprocess(self, accumulator: Any) -> Any:
        assert OUTPUT_KEY not in accumulator
        return accumulator


@track_sizes
@track_sizes
class MethodAndClassTwice(processor.ProcessorABC):
    @track_sizes
    def process(self, events: Any) -> dict[str, Any]:
        return {"n": len(events)}

    def postprocess(self, accumulator: Any) -> None:
        assert OUTPUT_KEY not in accumulator
        accumulator["post"] = True  # in place, returning None


@track_sizes
class Child(MethodAndClassTwice):
    @track_sizes
    def process(self, events: Any) -> dict[str, Any]:
        out = super().process(events)  # tracked too: measured once
        out["child"] = 1
        return out


@pytest.mark.parametrize("cls", [Twice, MethodAndClassTwice, Child])
def test_decorated_twice_measures_once(ttbar_file: str, cls: type) -> None:
    out, report = run_iterative(ttbar_file, cls(), BaseSchema, chunksize=100)
    user, records = split_records(out)
    assert len(records) == report["chunks"] == 2
    assert user["n"] == 200
    if cls is not Twice:
        assert user["post"] is True  # postprocess changed it in place
    # one wrapper around the user's function, not two
    assert not hasattr(cls.process.__wrapped__, "__wrapped__")
    assert not hasattr(cls.postprocess.__wrapped__, "__wrapped__")


def test_names_docstrings_and_pickling(ttbar_file: str) -> None:
    tracked = track_sizes(Plain)
    assert issubclass(tracked, Plain)
    assert not hasattr(Plain.process, "__wrapped__")  # Plain itself is unchanged
    assert track_sizes(tracked) is tracked
    assert tracked.__name__ == "Plain"
    assert tracked.__qualname__ == "Plain"
    assert tracked.__module__ == __name__
    assert tracked.__doc__ == "Decorated in a test (as a class)."
    assert tracked.process.__name__ == "process"
    assert tracked.process.__qualname__ == "Plain.process"
    assert tracked.process.__doc__ == "Count the events."
    assert tracked.postprocess.__doc__ == "Nothing to do."
    assert Reader.process.__doc__ == "Read the branches."
    assert Reader.process.__qualname__ == "Reader.process"
    descriptor = track_sizes(count)
    assert descriptor.__name__ == "count"
    assert descriptor.__doc__ == "Count the events."
    assert track_sizes(descriptor) is descriptor
    # the processors and the bare descriptor survive cloudpickle and still work
    for proc in (Reader(FLAT[:1], BaseSchema), tracked()):
        clone = cloudpickle.loads(cloudpickle.dumps(proc))
        out, report = run_iterative(ttbar_file, clone, BaseSchema, chunksize=200)
        assert len(split_records(out)[1]) == report["chunks"] == 1
    clone = cloudpickle.loads(cloudpickle.dumps(descriptor))
    assert clone.__doc__ == "Count the events."


@track_sizes
def count_events(events: Any) -> dict[str, Any]:
    """A processor that is a plain function."""
    return {"n": len(events)}


def test_plain_function_processor(ttbar_file: str) -> None:
    assert count_events.__doc__ == "A processor that is a plain function."
    out, report = run_iterative(ttbar_file, count_events, BaseSchema, chunksize=100)
    user, records = split_records(out)
    assert user == {"n": 200}
    assert [r["entrystart"] for r in records] == [0, 100]
    if HAS_FILE_HANDLE:
        assert sum(r["bytesread"] for r in records) == report["bytesread"]


def test_class_without_process_and_instances_are_refused() -> None:
    with pytest.raises(TypeError, match="no process method"):
        track_sizes(type("Empty", (), {}))
    with pytest.raises(TypeError, match="decorate its class"):
        track_sizes(JetProcessor())


class Raises(processor.ProcessorABC):
    @track_sizes
    def process(self, events: Any) -> dict[str, Any]:
        raise ZeroDivisionError(f"no events in {len(events)}")

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


class RaisesPlain(processor.ProcessorABC):
    def process(self, events: Any) -> dict[str, Any]:
        raise ZeroDivisionError(f"no events in {len(events)}")

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__


def test_raising_processor_raises_the_same(ttbar_file: str) -> None:
    caught = []
    for proc in (RaisesPlain(), Raises()):
        with pytest.raises(Exception) as info:  # noqa: PT011 - coffea wraps it
            run_iterative(ttbar_file, proc, BaseSchema, chunksize=100)
        caught.append([(type(e), str(e)) for e in _chain(info.value)])
    # the same chain (coffea's retries and wrappers), around the same error
    assert caught[0] == caught[1]
    assert (ZeroDivisionError, "no events in 100") in caught[1]


class CountOnly(processor.ProcessorABC):
    @track_sizes
    def process(self, events: Any) -> int:
        return len(events)

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


def test_non_mapping_output_warns_once(ttbar_file: str) -> None:
    with pytest.warns(SizingWarning, match="not a mapping") as caught:
        out, report = run_iterative(ttbar_file, CountOnly(), BaseSchema, chunksize=50)
    assert out == 200
    assert report["chunks"] == 4
    sizing = [w for w in caught if "not a mapping" in str(w.message)]
    assert len(sizing) == 1, [str(w.message) for w in caught]


class PostprocessReplaces(processor.ProcessorABC):
    @track_sizes
    def process(self, events: Any) -> dict[str, Any]:
        return {"n": len(events)}

    def postprocess(self, accumulator: Any) -> Any:
        return {"total": accumulator["n"], "keys": sorted(accumulator)}


def test_postprocess_result_carries_records(ttbar_file: str) -> None:
    out, _ = run_iterative(ttbar_file, PostprocessReplaces(), BaseSchema, 100)
    user, records = split_records(out)
    assert user == {"total": 200, "keys": ["n"]}
    assert len(records) == 2


@pytest.mark.skipif(HAS_FILE_HANDLE, reason="coffea >= 2025.12 has the file handle")
def test_old_coffea_warns_once_and_records_the_rest(generated_file: str) -> None:
    proc = Reader(FLAT[:2], NanoAODSchema)
    with pytest.warns(SizingWarning, match="no handle") as caught:
        out, report = run_iterative(generated_file, proc)
    assert len([w for w in caught if issubclass(w.category, SizingWarning)]) == 1
    _, records = split_records(out)
    check_records(records, report, generated_file)
    for r in records:
        assert r["bytesread_open"] is r["bytesread_payload"] is r["bytesread"] is None
        assert r["columns_read"] == ["MET_phi", "MET_pt"]
        assert sum(r["column_bytes"].values()) > 0  # from the metadata alone


@needs_file_handle
def test_no_warning_on_new_coffea(ttbar_file: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SizingWarning)
        run_iterative(ttbar_file, Reader(FLAT[:1], BaseSchema), BaseSchema, 100)


# ------------------------------------------------------------- the helpers
def test_split_records_and_chunk_table_on_outputs() -> None:
    recs = [{"entrystart": 0, "bytesread": 5}, {"entrystart": 5, "bytesread": 7}]
    out = {"n": 3, OUTPUT_KEY: recs}
    user, records = split_records(out)
    assert user == {"n": 3}
    assert records == recs
    assert OUTPUT_KEY in out  # not modified
    assert split_records(7) == (7, [])
    assert split_records({"n": 1}) == ({"n": 1}, [])
    assert chunk_table(out)["bytesread"].tolist() == [5, 7]
    report = {"bytesread": 12, "chunks": 2}
    assert chunk_table((out, report))["bytesread"].tolist() == [5, 7]
    assert len(chunk_table(({"n": 1}, {"sizing": recs[:1]}))) == 1
    with pytest.raises(KeyError, match="track_sizes"):
        chunk_table({"n": 3})
