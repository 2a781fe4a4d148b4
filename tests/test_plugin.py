"""The scheduler plugin in one process: handlers, streaming, what it holds, clients
that leave. The scheduler object is asserted on directly (``processes=False``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from coffea_sizing.plugin import (
    META_KEY,
    STARTED,
    TOPIC,
    SizingSchedulerPlugin,
    _announce_start,
    _Run,
    _run_of,
    _start_token,
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


def _fail(value: int, token: str = "") -> int:
    _announce_start(token)  # as chunk tasks do first
    raise ZeroDivisionError(f"bad chunk {value}")


def _finish(
    dask_scheduler: Any,
    run_id: str,
    client_id: str,
    keys: list[str],
    error: bool = False,
    others: bool = True,
) -> tuple[int, bool, int]:
    """On the scheduler's loop, as the transition hook does: tasks ``keys`` of run
    ``run_id`` finished (while another task of the run runs, with ``others``); the
    items waiting, whether a timer will send them, the messages sent to the client."""
    plugin = dask_scheduler.plugins[SizingSchedulerPlugin.name]
    run = plugin.runs[run_id]
    if others:
        run.running["another task"] = None
    comm = dask_scheduler.client_comms[client_id]
    before = comm.message_count
    for key in keys:
        plugin._send(run, key, {"error": "boom"} if error else {"record": None})
    return len(run.outbox), run.timer is not None, comm.message_count - before


#: Gates the tasks of this module's in-process clusters wait at.
_GATES: dict[str, threading.Event] = {}


def _hold(gate: str, token: str = "") -> int:
    """A task that says it started (with ``token``) and waits at ``gate``."""
    _announce_start(token)
    _GATES[gate].wait(scaled(120))
    return 1


def _send_on_my_stream(messages: list[dict[str, Any]], barrier: str) -> None:
    """From a task, as a forger would: messages on this worker's stream to the
    scheduler, then an event of topic ``barrier`` after them on the same stream."""
    from distributed import get_worker

    worker = get_worker()
    for message in messages:
        worker.loop.add_callback(worker.batched_send, dict(message))
    worker.log_event(barrier, "after")


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
    token = _start_token(SECRET)
    future = client.submit(_fail, 7, token, key=chunk_key(run_id, 0), retries=1)
    with pytest.raises(ZeroDivisionError):
        future.result()
    _until(lambda: bool(got))
    item, *_ = got
    assert item["key"] == chunk_key(run_id, 0)
    assert "bad chunk 7" in item["error"]
    assert item["attempts"] == 2  # the retry counted (both started)
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


@pytest.fixture
def two_by_two() -> Iterator[tuple[Any, Any]]:
    """Two workers of two threads in this process, the plugin registered."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=False,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
        yield cluster, client


def test_a_start_counts_once_per_assignment_and_only_from_its_worker(
    two_by_two: tuple[Any, Any],
) -> None:
    """Starts forged on a worker's stream (another worker, a wrong or huge token, a
    task not in flight, a repeat) and on a client's stream add nothing; one with the
    run's token naming the worker the task is on counts once: at most what the
    scheduler's assignments allow."""
    cluster, client = two_by_two
    scheduler = cluster.scheduler
    plugin = scheduler.plugins[SizingSchedulerPlugin.name]
    run_id = "f0f0f0f0f0f0"
    token = _start_token(SECRET)
    got = _open(client, run_id)
    a, b = sorted(scheduler.workers)
    said, silent, absent = (chunk_key(run_id, i) for i in range(3))
    go = _GATES[run_id] = threading.Event()
    run = plugin.runs[run_id]
    # one task says it started on a; one on b says nothing (as if only queued)
    held = [
        client.submit(_hold, run_id, token, key=said, workers=[a]),
        client.submit(_hold, run_id, "", key=silent, workers=[b]),
    ]
    _until(lambda: said in run.started and silent in run.running)
    assert run.attempts[said] == 1
    assert run.attempts[silent] == 0  # given to b, not started
    forged: list[dict[str, Any]] = [
        {"op": STARTED, "key": silent, "token": token},  # from a, b's task
        {"op": STARTED, "key": silent, "token": "0" * 32, "worker": b},
        {"op": STARTED, "key": silent, "token": "x" * 1_000_000, "worker": b},
        {"op": STARTED, "key": silent, "token": token, "worker": a},
        {"op": STARTED, "key": said, "token": token, "worker": a},  # a repeat
        {"op": STARTED, "key": absent, "token": token, "worker": b},
        {"op": STARTED, "key": ("x", 1), "token": token},
        {"op": STARTED, "token": token, "extra": "x"},
    ]
    client.submit(
        _send_on_my_stream, forged, "barrier-1", workers=[a], pure=False
    ).result()
    _until(lambda: bool(scheduler.get_events("barrier-1")))
    # a client's stream: even the right token and worker are refused
    client._send_to_scheduler(  # type: ignore[attr-defined]
        {"op": STARTED, "key": silent, "token": token, "worker": b}
    )
    client.log_event("barrier-2", "after")
    _until(lambda: bool(scheduler.get_events("barrier-2")))
    assert set(scheduler.workers) == {a, b}  # no stream was closed
    assert run.attempts[said] == 1
    assert run.attempts[silent] == 0
    for table in (run.attempts, run.running, run.started, run.cut, run.lost):
        assert absent not in table
    # the limit: code that can read the run's token on a worker can make an
    # assignment count as started (as every assignment counted before), once
    client.submit(
        _send_on_my_stream,
        [{"op": STARTED, "key": silent, "token": token, "worker": b}] * 3,
        "barrier-3",
        workers=[a],
        pure=False,
    ).result()
    _until(lambda: bool(scheduler.get_events("barrier-3")))
    assert run.attempts[silent] == 1
    go.set()
    client.gather(held)
    _until(lambda: len(got) == 2)
    assert {item["key"]: item["attempts"] for item in got} == {said: 1, silent: 1}
    assert plugin.state()["held"] == 0
    _end(client, run_id)
    del held


def test_a_start_behind_the_news_of_its_workers_death_still_counts(
    two_by_two: tuple[Any, Any],
) -> None:
    """A nanny can tell the scheduler of a death before the dead worker's stream
    is read to its end: a start read after that counts for the assignment the death
    cut short, with the lost worker, once; the task's next start counts too."""
    cluster, client = two_by_two
    scheduler = cluster.scheduler
    plugin = scheduler.plugins[SizingSchedulerPlugin.name]
    run_id = "0e0e0e0e0e0e"
    token = _start_token(SECRET)
    got = _open(client, run_id)
    a = min(scheduler.workers)
    key = chunk_key(run_id, 0)
    go = _GATES[run_id] = threading.Event()
    run = plugin.runs[run_id]
    # no start from it on a: as if its start were still on a's stream
    future = client.submit(
        _hold, run_id, "", key=key, workers=[a], allow_other_workers=True
    )
    _until(lambda: key in run.running)

    async def death(dask_scheduler: Any, address: str) -> None:
        await dask_scheduler.remove_worker(address, stimulus_id="test-death")

    client.run_on_scheduler(death, address=a)
    _until(lambda: key in run.cut)
    assert run.attempts[key] == 0
    assert key not in run.lost

    def late(dask_scheduler: Any, address: str) -> list[int]:
        """Starts as the dead worker's stream would deliver them now."""
        p = dask_scheduler.plugins[SizingSchedulerPlugin.name]
        counts = []
        for claimed in ("tcp://10.0.0.1:1", address, address):  # nobody, then twice
            p.started(key=key, token=token, worker=claimed)
            counts.append(p.runs[run_id].attempts[key])
        return counts

    assert client.run_on_scheduler(late, address=a) == [0, 1, 1]
    assert [w for w, *_ in run.lost[key]] == [a]
    # it went on elsewhere (no worker a any more), said nothing, and finished
    go.set()
    assert future.result() == 1
    _until(lambda: bool(got))
    (item,) = got
    assert item["attempts"] == 2
    assert [w for w, *_ in item["lost_workers"]] == [a]
    assert plugin.state()["held"] == 0
    _end(client, run_id)
    del future


def test_items_wait_to_go_out_together_and_never_stay(
    inproc: tuple[Any, Any],
) -> None:
    """Items of a run with tasks still running wait (at most ``FLUSH_SECONDS``) to
    go out in one write; an error, the run's last task and its end send them at
    once; every item still arrives as its own message."""
    from coffea_sizing.plugin import FLUSH_ITEMS, FLUSH_SECONDS

    cluster, client = inproc
    run_id = "f1a5c0ffee00"
    got = _open(client, run_id)
    plugin = cluster.scheduler.plugins[SizingSchedulerPlugin.name]

    def finish(keys: list[str], error: bool = False) -> Any:
        return client.run_on_scheduler(
            _finish, run_id=run_id, client_id=client.id, keys=keys, error=error
        )

    keys = [chunk_key(run_id, i) for i in range(5)]
    waiting, timed, written = finish(keys)
    assert (waiting, timed, written) == (5, True, 0)
    assert plugin.state()["held"] >= 5  # counted while they wait
    _until(lambda: len(got) == 5, timeout=scaled(30) + FLUSH_SECONDS)
    assert [item["key"] for item in got] == keys
    # an error goes at once, with what waited before it
    waiting, timed, written = finish([chunk_key(run_id, 5)])
    assert waiting == 1
    waiting, timed, written = finish([chunk_key(run_id, 6)], error=True)
    assert (waiting, timed, written) == (0, False, 2)
    # never more than FLUSH_ITEMS wait
    many = [chunk_key(run_id, 100 + i) for i in range(FLUSH_ITEMS + 3)]
    waiting, timed, written = finish(many)
    assert (waiting, written) == (3, FLUSH_ITEMS)
    # the run's end sends what still waits, before it ends
    plugin.runs[run_id].running.clear()
    info = _end(client, run_id)
    assert info["sent"] == 7 + FLUSH_ITEMS + 3
    _until(lambda: len(got) == 7 + FLUSH_ITEMS + 3)
    assert plugin.state()["held"] == 0
    # with none of its tasks left running, an item goes at once
    got = _open(client, run_id)
    plugin.runs[run_id].running.clear()
    assert client.run_on_scheduler(
        _finish,
        run_id=run_id,
        client_id=client.id,
        keys=[chunk_key(run_id, 0)],
        others=False,
    ) == (0, False, 1)
    _until(lambda: len(got) == 1)
    _end(client, run_id)
