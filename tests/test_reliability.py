"""Faults lose no records: dead workers, failing chunks, concurrent chunks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coffea import processor

from coffea_sizing import chunk_table
from coffea_sizing.plugin import scheduler_state

from conftest import (
    CLEAN_STATE,
    DieOnce,
    JetProcessor,
    check_invariants,
    run,
    scaled,
)

pytestmark = [pytest.mark.executor, pytest.mark.slow]


class FailOn(JetProcessor):
    def __init__(self, victim: int) -> None:
        super().__init__()
        self.victim = victim

    def process(self, events: Any) -> dict[str, object]:
        if events.metadata["entrystart"] == self.victim:
            raise ZeroDivisionError(f"analysis bug at entry {self.victim}")
        return super().process(events)


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_worker_killed_mid_chunk(
    own_cluster: Any, generated_file: str, tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    out, report = run(
        own_cluster,
        {"gen": [generated_file]},
        chunksize=2_000,
        proc=DieOnce(str(marker), victim=6_000),
    )
    assert marker.exists(), "the worker was never killed"
    recs = report["sizing"]
    assert len(recs) == report["chunks"] == 10
    assert sum(r["bytesread"] for r in recs) == report["bytesread"]
    assert sum(r["entries"] for r in recs) == report["entries"] == 20_000
    attempts = {r["entrystart"]: r["attempts"] for r in recs}
    # started twice (the worker died in it), every other chunk once
    assert attempts.pop(6_000) == 2
    assert set(attempts.values()) == {1}, attempts
    assert out["nevents"] == 20_000
    assert scheduler_state(own_cluster)["runs"] == []


def test_failing_chunk_then_clean_run(client: Any, ttbar_file: str) -> None:
    with pytest.raises(Exception, match=r"entrystart=100, entrystop=150") as info:
        run(client, {"ttbar": [ttbar_file]}, chunksize=50, proc=FailOn(100), retries=0)
    chain = []
    err: BaseException | None = info.value
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    assert "analysis bug at entry 100" in " ".join(map(str, chain))
    assert scheduler_state(client) == CLEAN_STATE
    _, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    check_invariants(report)
    assert len(report["sizing"]) == 4


def test_two_threads_per_worker_marks_shared_memory(generated_file: str) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        _, report = run(client, {"gen": [generated_file]}, chunksize=1_000)
    recs = report["sizing"]
    assert len(recs) == report["chunks"] == 20
    assert sum(r["bytesread"] for r in recs) == report["bytesread"]
    for r in recs:
        assert r["task_nbytes"] == r["output_compressed_bytes"]
    # two threads, 20 chunks: some ran side by side and say so
    assert any(r["mem_shared"] for r in recs)


def test_savemetrics_dataframes_and_plain_executor_unchanged(
    client: Any, ttbar_file: str
) -> None:
    """A plain DaskExecutor run on the same client is untouched by the plugin."""
    out, report = run(
        client,
        {"ttbar": [ttbar_file]},
        chunksize=50,
        executor_cls=processor.DaskExecutor,
    )
    assert "sizing" not in report
    assert out["nevents"] == 200
    assert scheduler_state(client)["runs"] == []


# ---------------------------------------------------------------- bad input


def _runner_call(
    client: Any,
    fileset: dict[str, list[str]],
    *,
    treename: str = "Events",
    skipbadfiles: Any = False,
    chunksize: int = 2_000,
) -> Any:
    """A Runner with ``skipbadfiles``; no Dask retries (bad files stay bad)."""
    from coffea.nanoevents import NanoAODSchema

    from coffea_sizing import SizingDaskExecutor

    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False, retries=0),
        savemetrics=True,
        schema=NanoAODSchema,
        chunksize=chunksize,
        skipbadfiles=skipbadfiles,
    )
    return runner(fileset, treename=treename, processor_instance=JetProcessor())


def _messages(err: BaseException | None) -> str:
    chain = []
    while err is not None:
        chain.append(f"{type(err).__name__}: {err}")
        err = err.__cause__ or err.__context__
    return "\n".join(chain)


@pytest.fixture(scope="module")
def bad_files(generated_file: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A truncated copy (header and tree metadata intact, late baskets gone) and
    a file of random bytes."""
    import shutil

    folder = tmp_path_factory.mktemp("bad")
    truncated = folder / "truncated_60pct.root"
    shutil.copyfile(generated_file, truncated)
    size = truncated.stat().st_size
    with truncated.open("r+b") as f:
        f.truncate(int(size * 0.6))
    garbage = folder / "random_bytes.root"
    garbage.write_bytes(os.urandom(100_000))
    return {"truncated": str(truncated), "random": str(garbage)}


def _clean(client: Any, *, events: bool = True) -> None:
    """No run left on the scheduler, nothing held for one.

    Records are never kept on the scheduler: chunks of a failed run that still
    finish afterwards find no run and leave nothing, so ``events`` changes nothing.
    """
    state = scheduler_state(client)
    assert state["runs"] == []
    assert state["held"] == 0


def test_truncated_file_error_names_the_file(
    own_cluster: Any, bad_files: dict[str, str]
) -> None:
    with pytest.raises(Exception, match=r"Failed processing file") as info:
        _runner_call(own_cluster, {"bad": [bad_files["truncated"]]})
    text = _messages(info.value)
    assert f"filename='{bad_files['truncated']}'" in str(info.value)
    assert "received 0 bytes" in text
    _clean(own_cluster, events=False)


def test_random_bytes_file_error_names_the_file(
    own_cluster: Any, bad_files: dict[str, str]
) -> None:
    # fails while coffea opens the file for metadata, before any chunk exists
    with pytest.raises(ValueError, match=r"not a ROOT file") as info:
        _runner_call(own_cluster, {"bad": [bad_files["random"]]})
    assert bad_files["random"] in str(info.value)
    _clean(own_cluster, events=False)


def test_wrong_tree_name_error_names_the_file(
    own_cluster: Any, generated_file: str
) -> None:
    with pytest.raises(Exception, match=r"NoSuchTree") as info:
        _runner_call(own_cluster, {"gen": [generated_file]}, treename="NoSuchTree")
    text = _messages(info.value)
    assert generated_file in str(info.value)
    assert "Available keys: 'Events;1'" in text
    _clean(own_cluster, events=False)


@pytest.mark.filterwarnings("ignore:Skipping bad file:UserWarning")
def test_skipbadfiles_reports_skipped_chunks(
    own_cluster: Any, generated_file: str, bad_files: dict[str, str]
) -> None:
    """Good file + truncated file: preprocessing succeeds, late chunks fail to
    read their baskets and coffea skips them; every chunk still has a record."""
    truncated = bad_files["truncated"]
    out, report = _runner_call(
        own_cluster,
        {"good": [generated_file], "bad": [truncated]},
        skipbadfiles=True,
    )
    recs = report["sizing"]
    assert report["sizing_run"]["missing"] == 0  # records lost: 0
    assert len(recs) == report["chunks"] == 20
    assert len({r["key"] for r in recs}) == 20
    assert len({(r["filename"], r["entrystart"]) for r in recs}) == 20
    skipped = [r for r in recs if r["skipped"]]
    done = [r for r in recs if not r["skipped"]]
    assert skipped, "no chunk of the truncated file failed"
    assert {r["filename"] for r in skipped} == {truncated}
    assert {r["dataset"] for r in skipped} == {"bad"}
    # what the truncation cut off: the tail of the file, read last
    first_bad = min(r["entrystart"] for r in skipped)
    assert {r["entrystart"] for r in skipped} == set(range(first_bad, 20_000, 2_000))
    assert 0 < first_bad < 20_000
    for r in skipped:
        assert r["entries"] is None
        assert r["bytesread"] is None
        assert r["output_pickled_bytes"] is None
        assert r["attempts"] == 1
        assert r["worker"].startswith("tcp://127.0.0.1:")
        assert r["task_nbytes"] is not None
    # the sums over the chunks that ran are coffea's totals
    assert sum(r["bytesread"] for r in done) == report["bytesread"]
    assert sum(r["entries"] for r in done) == report["entries"] == out["nevents"]
    assert out["nevents"] == 20_000 + first_bad
    df = chunk_table(report)
    assert int(df["skipped"].sum()) == len(skipped)
    assert sorted(df.loc[df["skipped"], "entrystart"]) == sorted(
        r["entrystart"] for r in skipped
    )
    _clean(own_cluster)


def test_skipbadfiles_does_not_swallow_a_non_root_file(
    own_cluster: Any, generated_file: str, bad_files: dict[str, str]
) -> None:
    """coffea's ``skipbadfiles=True`` skips OSError only; uproot's 'not a ROOT
    file' is a ValueError and still stops the run, naming the file."""
    with pytest.raises(ValueError, match="not a ROOT file") as info:
        _runner_call(
            own_cluster,
            {"good": [generated_file], "bad": [bad_files["random"]]},
            skipbadfiles=True,
        )
    assert bad_files["random"] in str(info.value)
    _clean(own_cluster, events=False)


@pytest.mark.filterwarnings("ignore:Skipping bad file:UserWarning")
def test_skipbadfiles_drops_unopenable_file_in_preprocessing(
    own_cluster: Any, generated_file: str, bad_files: dict[str, str]
) -> None:
    out, report = _runner_call(
        own_cluster,
        {"good": [generated_file], "bad": [bad_files["random"]]},
        skipbadfiles=(OSError, ValueError),
    )
    check_invariants(report)
    recs = report["sizing"]
    assert len(recs) == report["chunks"] == 10
    assert {r["dataset"] for r in recs} == {"good"}
    assert not any(r["skipped"] for r in recs)
    assert out["nevents"] == 20_000
    _clean(own_cluster)


# ------------------------------------------------- two clients, one scheduler


def test_two_clients_on_one_scheduler_do_not_mix_records(
    cluster: Any, ttbar_file: str, generated_file: str
) -> None:
    import threading

    from distributed import Client

    jobs = {
        "ttbar": ({"ttbar": [ttbar_file]}, 20, 10),
        "gen": ({"gen": [generated_file]}, 1_000, 20),
    }
    results: dict[str, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def work(name: str, client: Any) -> None:
        fileset, chunksize, _ = jobs[name]
        try:
            barrier.wait(timeout=scaled(30))
            results[name] = run(client, fileset, chunksize=chunksize)
        except BaseException as err:  # reported in the main thread
            errors.append(err)

    with (
        Client(cluster.scheduler_address) as first,
        Client(cluster.scheduler_address) as second,
    ):
        threads = [
            threading.Thread(target=work, args=(name, client))
            for name, client in zip(jobs, (first, second), strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=scaled(120))
        assert not errors, errors
        for client in (first, second):
            _clean(client)

    run_ids = {name: results[name][1]["sizing_run"]["run_id"] for name in jobs}
    assert len(set(run_ids.values())) == 2
    keys = {}
    for name, (_, _, n_chunks) in jobs.items():
        _, report = results[name]
        check_invariants(report)
        recs = report["sizing"]
        assert len(recs) == report["chunks"] == n_chunks
        assert {r["dataset"] for r in recs} == {name}
        assert all(run_ids[name] in r["key"] for r in recs)
        assert all(run_ids[name] in m["key"] for m in report["sizing_merges"])
        keys[name] = {r["key"] for r in recs}
    assert not keys["ttbar"] & keys["gen"]
    assert results["ttbar"][0]["nevents"] == 200
    assert results["gen"][0]["nevents"] == 20_000


# ------------------------------------------------------- a worker joins late


class SlowJet(JetProcessor):
    """Takes a little while per chunk, so a late worker can join mid-run."""

    def process(self, events: Any) -> dict[str, object]:
        import time

        time.sleep(0.1)
        return super().process(events)


def test_worker_joining_mid_run(generated_file: str) -> None:
    import threading
    import time

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        first = set(client.scheduler_info()["workers"])
        result: dict[str, Any] = {}
        errors: list[BaseException] = []

        def work() -> None:
            try:
                result["run"] = run(
                    client, {"gen": [generated_file]}, chunksize=500, proc=SlowJet()
                )
            except BaseException as err:
                errors.append(err)

        thread = threading.Thread(target=work)
        thread.start()
        # wait until chunks are running, then add a worker
        deadline = time.monotonic() + scaled(60)
        while time.monotonic() < deadline and not any(
            "coffea-sizing-chunk" in str(k)
            for keys in client.processing().values()
            for k in keys
        ):
            time.sleep(0.05)
        cluster.scale(2)
        client.wait_for_workers(2, timeout=scaled(60))
        known = set(client.scheduler_info()["workers"])
        thread.join(timeout=scaled(120))
        assert not errors, errors
        _clean(client)

    late = known - first
    assert len(late) == 1
    out, report = result["run"]
    recs = report["sizing"]
    assert len(recs) == report["chunks"] == 40
    assert report["sizing_run"]["missing"] == 0
    assert sorted(r["entrystart"] for r in recs) == list(range(0, 20_000, 500))
    assert sum(r["bytesread"] for r in recs) == report["bytesread"]
    assert sum(r["entries"] for r in recs) == report["entries"] == 20_000
    assert out["nevents"] == 20_000
    workers = {r["worker"] for r in recs}
    assert workers <= known
    assert first <= workers  # the first worker certainly ran chunks
    for r in recs:
        assert r["attempts"] >= 1
        assert r["task_nbytes"] == r["output_compressed_bytes"] > 0
    print(
        f"late worker ran {sum(r['worker'] in late for r in recs)} of 40 chunks; "
        f"attempts {sorted({r['attempts'] for r in recs})}"
    )


def _busy(client: Any) -> int:
    def count(dask_scheduler: Any) -> int:
        return len(dask_scheduler.queued) + sum(
            len(ws.processing) for ws in dask_scheduler.workers.values()
        )

    return int(client.run_on_scheduler(count))


def test_failed_run_leaves_no_stragglers(own_cluster: Any, generated_file: str) -> None:
    import time

    try:
        with pytest.raises(Exception, match="analysis bug at entry 500") as info:
            run(
                own_cluster,
                {"gen": [generated_file]},
                chunksize=500,
                proc=FailOn(500),
                retries=0,
            )
        assert info.value is not None  # keep the traceback, as a notebook does
        deadline = time.monotonic() + scaled(30)
        while _busy(own_cluster) and time.monotonic() < deadline:
            time.sleep(0.1)
        state = scheduler_state(own_cluster)
        assert state["runs"] == []
        assert state["held"] == 0, f"{state['held']} tasks still held after the run"
    finally:
        # a clean run drops the stale event log again
        run(own_cluster, {"gen": [generated_file]}, chunksize=10_000)
        _clean(own_cluster)
