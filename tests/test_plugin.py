"""The scheduler plugin in one process: handlers, streaming, what it holds, clients
that leave. The scheduler object is asserted on directly (``processes=False``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from coffea_sizing.plugin import (
    META_KEY,
    TOPIC,
    SizingSchedulerPlugin,
    _Run,
    _run_of,
    chunk_key,
    merge_key,
)
from coffea_sizing.records import pack_record, unpack_record

from conftest import scaled


@pytest.fixture(scope="module")
def inproc() -> Iterator[tuple[Any, Any]]:
    """A cluster in this process (threads), its client, the plugin registered."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
        yield cluster, client


def _leave_record(value: int) -> int:
    """A task that leaves a packed record in its TaskState, as chunk tasks do."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    worker.state.tasks[key].metadata[META_KEY] = pack_record({"bytesread": value})
    return value


def _fail(value: int) -> int:
    raise ZeroDivisionError(f"bad chunk {value}")


def _until(condition: Any, timeout: float = scaled(30)) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


SECRET = "5ec2e7" * 5 + "00"


def _open(client: Any, run_id: str) -> list[Any]:
    """Open a run; the items the plugin sends to this client for it."""
    got: list[Any] = []
    client._stream_handlers[TOPIC] = lambda item, **_: got.append(item)
    answer = client.sync(
        client.scheduler.coffea_sizing_begin,
        run_id=run_id,
        client=client.id,
        secret=SECRET,
    )
    assert answer["layout"] > 0
    return got


def _end(client: Any, run_id: str) -> Any:
    return client.sync(client.scheduler.coffea_sizing_end, run_id=run_id, secret=SECRET)


def test_records_stream_as_tasks_finish_and_nothing_stays(
    inproc: tuple[Any, Any],
) -> None:
    cluster, client = inproc
    scheduler = cluster.scheduler
    plugin = scheduler.plugins[SizingSchedulerPlugin.name]
    run_id = "a1b2c3d4e5f6"
    got = _open(client, run_id)
    keys = [chunk_key(run_id, i) for i in range(30)]
    futures = client.map(_leave_record, range(30), key=keys)
    client.gather(futures)
    _until(lambda: len(got) == 30)
    items = {item["key"]: item for item in got}
    assert set(items) == set(keys)
    workers = set(scheduler.workers)
    for i, key in enumerate(keys):
        item = items[key]
        assert item["run"] == run_id
        assert item["secret"] == SECRET
        assert unpack_record(item["record"]) == {"bytesread": i}
        assert item["task_nbytes"] > 0
        assert item["worker"] in workers
        assert item["worker_memory_limit"] is None or item["worker_memory_limit"] > 0
        assert item["attempts"] == 1
        assert item["compute_stop"] >= item["compute_start"]
        # the scheduler's TaskState kept nothing of the record
        assert META_KEY not in (scheduler.tasks[key].metadata or {})
    # what the plugin held was the tasks in flight, never the 30 done
    assert plugin.state()["held"] == 0
    info = _end(client, run_id)
    assert info["open_runs"] == 0
    assert info["sent"] == 30
    assert 1 <= info["peak"] <= 6  # 2 threads (and a task queued for each)
    assert plugin.runs == {}
    del futures


def test_an_erred_task_is_sent_with_its_exception(inproc: tuple[Any, Any]) -> None:
    cluster, client = inproc
    run_id = "0123456789ab"
    got = _open(client, run_id)
    future = client.submit(_fail, 7, key=chunk_key(run_id, 0), retries=1)
    with pytest.raises(ZeroDivisionError):
        future.result()
    _until(lambda: bool(got))
    item, *_ = got
    assert item["key"] == chunk_key(run_id, 0)
    assert "bad chunk 7" in item["error"]
    assert item["attempts"] == 2  # the retry counted
    assert item["worker"] in cluster.scheduler.workers
    _end(client, run_id)
    del future


def test_runs_of_a_client_that_leaves_are_dropped(inproc: tuple[Any, Any]) -> None:
    from distributed import Client

    cluster, client = inproc
    plugin = cluster.scheduler.plugins[SizingSchedulerPlugin.name]
    with Client(cluster) as other:
        other.sync(
            other.scheduler.coffea_sizing_begin,
            run_id="aaaaaaaaaaaa",
            client=other.id,
            secret=SECRET,
        )
        client.sync(
            client.scheduler.coffea_sizing_begin,
            run_id="bbbbbbbbbbbb",
            client=client.id,
            secret=SECRET,
        )
        assert {"aaaaaaaaaaaa", "bbbbbbbbbbbb"} <= set(plugin.runs)
    # ``other`` left without ending its run
    _until(lambda: "aaaaaaaaaaaa" not in plugin.runs)
    assert "bbbbbbbbbbbb" in plugin.runs
    _end(client, "bbbbbbbbbbbb")
    assert plugin.runs == {}


def test_a_run_whose_client_is_gone_is_dropped_at_its_first_item(
    inproc: tuple[Any, Any],
) -> None:
    from distributed import Client

    cluster, client = inproc
    plugin = cluster.scheduler.plugins[SizingSchedulerPlugin.name]
    run_id = "cccccccccccc"
    with pytest.raises(ValueError, match="no client 'never-connected'"):
        client.sync(
            client.scheduler.coffea_sizing_begin,
            run_id=run_id,
            client="never-connected",
            secret=SECRET,
        )
    assert run_id not in plugin.runs
    with Client(cluster) as other:
        other.sync(
            other.scheduler.coffea_sizing_begin,
            run_id=run_id,
            client=other.id,
            secret=SECRET,
        )
        gone = other.id
    plugin.runs[run_id] = _Run(run_id, gone, SECRET)  # as if begun as it left
    assert client.submit(_leave_record, 1, key=chunk_key(run_id, 0)).result() == 1
    _until(lambda: run_id not in plugin.runs)


def test_state_shows_only_counts_without_the_secret(inproc: tuple[Any, Any]) -> None:
    cluster, client = inproc
    run_id = "eeeeeeeeeeee"
    _open(client, run_id)
    try:
        blind = client.sync(client.scheduler.coffea_sizing_state)
        assert blind["runs"] == []
        assert blind["open_runs"] == 1
        assert run_id not in repr(blind)
        seen = client.sync(client.scheduler.coffea_sizing_state, secrets=[SECRET])
        assert seen["runs"] == [run_id]
        with pytest.raises(PermissionError, match="another secret"):
            client.sync(
                client.scheduler.coffea_sizing_end, run_id=run_id, secret="1" * 32
            )
        assert run_id in cluster.scheduler.plugins[SizingSchedulerPlugin.name].runs
    finally:
        _end(client, run_id)


def test_handlers_after_the_plugin_is_unregistered() -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
        client.unregister_scheduler_plugin(SizingSchedulerPlugin.name)
        state = client.sync(client.scheduler.coffea_sizing_state)
        assert state["registered"] is False
        with pytest.raises(RuntimeError, match="no longer registered"):
            _end(client, "dddddddddddd")


def test_run_of_parses_only_our_keys() -> None:
    assert _run_of(chunk_key("0a1b2c3d4e5f", 3)) == "0a1b2c3d4e5f"
    assert _run_of(merge_key("0a1b2c3d4e5f", 2, 1)) == "0a1b2c3d4e5f"
    for key in (
        "coffea-sizing-x",
        "coffea-sizing-other-a-b",
        ("coffea-sizing-chunk", 1),
        7,
        "x",
    ):
        assert _run_of(key) is None
