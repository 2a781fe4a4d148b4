"""SizingDaskExecutor on real coffea, real ROOT files and a real LocalCluster."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest
from coffea import processor

from coffea_sizing import (
    CHUNK_FIELDS,
    SizingDaskExecutor,
    SizingWarning,
    chunk_table,
    merge_table,
)
from coffea_sizing.plugin import scheduler_state

from conftest import (
    CLEAN_STATE,
    JetProcessor,
    SlowBigOutput,
    check_invariants,
    expected_merges,
    run,
)

pytestmark = pytest.mark.executor


def test_real_file_invariants(client: Any, ttbar_file: str) -> None:
    out, report = run(client, {"ttbar": [ttbar_file]}, chunksize=20, treereduction=3)
    assert report["chunks"] == 10
    check_invariants(report)
    assert len(report["sizing_merges"]) == expected_merges(10, 3)
    # every chunk re-opens the file and reads the Events header: 527 + 336,097 B,
    # and the ttbar file's baskets are all embedded in that header
    assert {r["bytesread"] for r in report["sizing"]} == {336_624}
    assert out["nevents"] == 200
    df = chunk_table(report)
    assert len(df) == 10
    assert list(df.columns[: len(CHUNK_FIELDS)]) == list(CHUNK_FIELDS)
    assert len(merge_table(report)) == len(report["sizing_merges"])


@pytest.mark.parametrize("compression", [1, None])
def test_phases_are_timed_where_they_happen(
    client: Any, ttbar_file: str, compression: int | None
) -> None:
    """Each phase is timed around its own work: a 0.3 s sleep in ``process()`` is
    in ``processtime`` and nowhere else, compressing 4 MB of output is in
    ``outputtime``, counting it in ``sizing_overhead``; the phases add up to
    ``walltime`` (check_invariants) and the measuring never exceeds it."""
    proc = SlowBigOutput(pause=0.3, nbytes=4_000_000)
    _, report = run(
        client,
        {"ttbar": [ttbar_file]},
        chunksize=100,
        proc=proc,
        compression=compression,
    )
    check_invariants(report, compressed=compression is not None)
    for r in report["sizing"]:
        assert r["processtime"] >= 0.3
        assert r["opentime"] < r["walltime"] - 0.3
        assert r["buildtime"] < r["walltime"] - 0.3
        # the tree's metadata was read once, by the timed lookup: bytes unchanged
        assert r["bytesread"] == 336_624
        assert r["output_pickled_bytes"] > 4_000_000
        if compression is None:
            assert r["outputtime"] == 0.0
        else:
            assert r["outputtime"] > 0.0
            assert r["output_compressed_bytes"] > 4_000_000  # random: no gain


def test_generated_file_invariants(client: Any, generated_file: str) -> None:
    out, report = run(client, {"gen": [generated_file]}, chunksize=1_500)
    assert report["chunks"] >= 10
    check_invariants(report)
    assert len(report["sizing_merges"]) == expected_merges(report["chunks"], 20)
    assert out["nevents"] == 20_000
    # real baskets: bytes beyond the header differ between chunks
    assert len({r["bytesread"] for r in report["sizing"]}) > 1
    # ... and take requests of their own beyond the opening and the tree's metadata
    assert all(r["read_requests"] > 3 for r in report["sizing"])


def test_reads_of_a_chunk_are_those_of_its_file_source(
    client: Any, generated_file: str
) -> None:
    """``read_requests`` is the file source's count: a chunk that reads more
    columns makes more requests, of the same file."""
    one, two = (
        run(client, {"gen": [generated_file]}, chunksize=5_000, proc=proc)[1]
        for proc in (JetProcessor(), JetProcessor(eta=True))
    )
    check_invariants(one)
    check_invariants(two)
    for r1, r2 in zip(one["sizing"], two["sizing"], strict=True):
        assert r2["read_requests"] > r1["read_requests"]
        assert r2["bytesread"] > r1["bytesread"]


def test_output_identical_to_dask_executor(client: Any, generated_file: str) -> None:
    fileset = {"gen": [generated_file]}
    proc = JetProcessor(eta=True)
    out_plain, report_plain = run(
        client, fileset, chunksize=2_000, proc=proc, executor_cls=processor.DaskExecutor
    )
    out_sized, report_sized = run(client, fileset, chunksize=2_000, proc=proc)
    assert out_sized.keys() == out_plain.keys()
    for name, value in out_plain.items():
        assert out_sized[name] == value, name
    for name in ("bytesread", "entries", "chunks"):
        assert report_sized[name] == report_plain[name]
    assert sorted(report_sized["columns"]) == sorted(report_plain["columns"])


def test_nothing_left_on_scheduler_and_runs_do_not_mix(
    client: Any, ttbar_file: str
) -> None:
    fileset = {"ttbar": [ttbar_file]}
    _, first = run(client, fileset, chunksize=50)
    _, second = run(client, fileset, chunksize=100)
    assert len(first["sizing"]) == 4
    assert len(second["sizing"]) == 2
    assert not {r["key"] for r in first["sizing"]} & {
        r["key"] for r in second["sizing"]
    }
    state = scheduler_state(client)
    assert state == CLEAN_STATE


def test_two_executors_on_one_client_concurrently(
    client: Any, ttbar_file: str, generated_file: str
) -> None:
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def go(name: str, fileset: dict[str, list[str]], chunksize: int) -> None:
        try:
            results[name] = run(client, fileset, chunksize=chunksize)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [
        threading.Thread(target=go, args=("a", {"ttbar": [ttbar_file]}, 25)),
        threading.Thread(target=go, args=("b", {"gen": [generated_file]}, 2_000)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    (_, rep_a), (_, rep_b) = results["a"], results["b"]
    check_invariants(rep_a)
    check_invariants(rep_b)
    assert {r["dataset"] for r in rep_a["sizing"]} == {"ttbar"}
    assert {r["dataset"] for r in rep_b["sizing"]} == {"gen"}
    assert len(rep_a["sizing"]) == 8
    assert len(rep_b["sizing"]) == 10
    assert scheduler_state(client)["runs"] == []


@pytest.mark.parametrize(
    "options",
    [
        {"compression": None},
        {"compression": 1, "treereduction": 2},
        {"status": True},
        {"retries": 0, "priority": 10},
        {"worker_affinity": True},
    ],
    ids=["no-compression", "treereduction-2", "status", "retries-priority", "affinity"],
)
def test_dask_executor_options(
    client: Any, generated_file: str, options: dict[str, Any]
) -> None:
    out, report = run(client, {"gen": [generated_file]}, chunksize=2_000, **options)
    check_invariants(report, compressed=options.get("compression", 1) is not None)
    assert out["nevents"] == 20_000
    tree = options.get("treereduction", 20)
    assert len(report["sizing_merges"]) == expected_merges(report["chunks"], tree)


def test_savemetrics_false_warns_once_and_behaves(
    client: Any, ttbar_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coffea_sizing import executor

    monkeypatch.setattr(executor, "_SAVEMETRICS_WARNED", False)  # said once a process
    with pytest.warns(SizingWarning, match="savemetrics=True") as caught:
        out = run(client, {"ttbar": [ttbar_file]}, chunksize=50, savemetrics=False)
    assert len([w for w in caught if issubclass(w.category, SizingWarning)]) == 1
    assert out["nevents"] == 200


def test_missing_file_names_it(client: Any, tmp_path: Any) -> None:
    missing = str(tmp_path / "no_such_file.root")
    with pytest.raises(Exception, match=r"no_such_file\.root"):
        run(client, {"x": [missing]}, chunksize=100)
    assert scheduler_state(client)["runs"] == []


class Unpicklable(processor.ProcessorABC):
    def process(self, events: Any) -> dict[str, Any]:
        return {"n": len(events), "lock": threading.Lock()}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


@pytest.mark.parametrize("compression", [1, None])
def test_unpicklable_output_names_the_chunk(
    client: Any, ttbar_file: str, compression: int | None
) -> None:
    with pytest.raises(
        TypeError, match=r"entries \d+-\d+, dataset 'ttbar'\).*cannot be pickled"
    ):
        run(
            client,
            {"ttbar": [ttbar_file]},
            chunksize=100,
            proc=Unpicklable(),
            compression=compression,
        )
    assert scheduler_state(client)["runs"] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client": "tcp://127.0.0.1:8786"}, "client must be a distributed.Client"),
        ({"treereduction": 1}, "treereduction must be an integer >= 2"),
        ({"compression": "lz4"}, "compression must be None or an lz4 level"),
        ({"retries": -1}, "retries must be None or an integer >= 0"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SizingDaskExecutor(**options)


def test_unknown_option_is_named() -> None:
    with pytest.raises(TypeError, match="workers"):
        SizingDaskExecutor(workers=4)  # type: ignore[call-arg]


def test_runner_copy_keeps_every_field(client: Any) -> None:
    ex = SizingDaskExecutor(client=client, collect_timeout=3.5, treereduction=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copied = ex.copy(unit="chunk")
    assert copied.collect_timeout == 3.5
    assert copied.treereduction == 7
    assert copied.client is client


def _set_wire_version(version: int) -> int:
    """On a worker: pretend to be a coffea-sizing of another wire format."""
    from coffea_sizing import records

    previous = records.WIRE_VERSION
    records.WIRE_VERSION = version
    return previous


def test_workers_of_another_wire_format_are_named(client: Any, ttbar_file: str) -> None:
    """Workers running another coffea-sizing (another wire format): the run
    completes, the user is told which chunks and why, and the rows keep the
    chunk's identity and what the scheduler saw."""
    previous = client.run(_set_wire_version, 99)
    try:
        with pytest.warns(
            SizingWarning, match=r"4 of 4 chunk records could not be sent or read"
        ):
            out, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    finally:
        client.run(_set_wire_version, next(iter(previous.values())))
    assert out["nevents"] == 200
    recs = report["sizing"]
    assert [(r["entrystart"], r["entrystop"]) for r in recs] == [
        (0, 50),
        (50, 100),
        (100, 150),
        (150, 200),
    ]
    for r in recs:
        assert r["filename"] == ttbar_file
        assert r["dataset"] == "ttbar"
        assert r["task_nbytes"] > 0
        assert r["attempts"] == 1
        assert r["bytesread"] is None  # the worker's part could not be read
    assert scheduler_state(client) == CLEAN_STATE
    # and the next run, on agreeing workers, is whole again
    _, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    check_invariants(report)


def test_records_travel_packed(client: Any, generated_file: str) -> None:
    """A chunk's record reaches the scheduler packed (no field names, no identity),
    inside the task-finished message, and the scheduler does not keep it."""
    from coffea_sizing.plugin import META_KEY, SizingSchedulerPlugin
    from coffea_sizing.records import pack_record, unpack_record

    def spy(dask_scheduler: Any) -> None:
        plugin = dask_scheduler.plugins[SizingSchedulerPlugin.name]
        original = plugin.transition
        seen: list[Any] = []

        def transition(key: Any, start: str, finish: str, *a: Any, **kw: Any) -> None:
            if finish == "memory" and str(key).startswith("coffea-sizing-chunk"):
                seen.append(kw["metadata"][META_KEY])
            original(key, start, finish, *a, **kw)
            if finish == "memory" and str(key).startswith("coffea-sizing-chunk"):
                ts = dask_scheduler.tasks[key]
                seen.append(META_KEY in (ts.metadata or {}))

        dask_scheduler._coffea_sizing_test_seen = seen
        plugin.transition = transition

    def take(dask_scheduler: Any) -> list[Any]:
        plugin = dask_scheduler.plugins[SizingSchedulerPlugin.name]
        del plugin.transition  # back to the class's hook
        return dask_scheduler.__dict__.pop("_coffea_sizing_test_seen")

    run(client, {"g": [generated_file]}, chunksize=5_000)  # registers the plugin
    client.run_on_scheduler(spy)
    try:
        _, report = run(client, {"g": [generated_file]}, chunksize=5_000)
    finally:
        seen = client.run_on_scheduler(take)
    check_invariants(report)
    packed_records, kept = seen[0::2], seen[1::2]
    assert len(packed_records) == len(report["sizing"]) == 4
    assert kept == [False] * 4  # the scheduler's TaskState does not keep it
    for packed in packed_records:
        assert isinstance(packed, bytes)
        assert b"walltime" not in packed
        assert generated_file.encode() not in packed
        worker_part = unpack_record(packed)
        assert len(pack_record(worker_part)) == len(packed)
    by_overhead = {r["sizing_overhead"]: r for r in report["sizing"]}
    for packed in packed_records:
        worker_part = unpack_record(packed)
        full = by_overhead[worker_part["sizing_overhead"]]
        assert {k: full[k] for k in worker_part} == worker_part


def _break_packing(broken: bool) -> bool:
    """On a worker: make packing fail for every full chunk record (or undo it)."""
    from coffea_sizing import executor

    real = getattr(executor, "_real_pack_record", executor.pack_record)
    executor._real_pack_record = real  # type: ignore[attr-defined]

    def failing(record: Any) -> bytes:
        if executor.SIZING_ERROR not in record:
            raise TypeError("chunk record fields ['injected'] are not plain values")
        return real(record)

    executor.pack_record = failing if broken else real  # type: ignore[assignment]
    return broken


def test_a_record_that_cannot_be_packed_does_not_fail_the_run(
    client: Any, ttbar_file: str
) -> None:
    """The measuring must never cost the analysis: the run completes, its output is
    whole, and the user is told which chunk's record was lost and why."""
    client.run(_break_packing, True)
    try:
        with pytest.warns(SizingWarning, match=r"4 of 4 .*could not pack.*'injected'"):
            out, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    finally:
        client.run(_break_packing, False)
    assert out["nevents"] == 200
    assert report["chunks"] == 4
    for r in report["sizing"]:
        assert r["filename"] == ttbar_file
        assert r["task_nbytes"] > 0
        assert r["bytesread"] is None
        assert "sizing_error" not in r
    assert scheduler_state(client) == CLEAN_STATE
    _, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    check_invariants(report)
