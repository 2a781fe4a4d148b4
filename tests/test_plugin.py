"""The scheduler plugin in one process (distributed's ``gen_cluster``): handlers,
streaming, what it holds, clients that leave."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from distributed.utils_test import gen_cluster as _gen_cluster

from coffea_sizing.plugin import (
    META_KEY,
    TOPIC,
    SizingSchedulerPlugin,
    _run_of,
    chunk_key,
    merge_key,
)
from coffea_sizing.records import pack_record, unpack_record

# Not marked ``executor``: distributed 2025.3's gen_cluster cannot share a process
# with the session's clusters (another event loop), and this is distributed's API,
# not coffea's, so the newest-coffea session is where these run.


def gen_cluster(**kwargs: Any) -> Any:
    """distributed's ``gen_cluster``, without its leak checks: the session's other
    clusters (conftest) are not this test's leaks."""
    return _gen_cluster(
        clean_kwargs={"processes": False, "threads": False, "instances": False},
        **kwargs,
    )


def _leave_record(value: int) -> int:
    """A task that leaves a packed record in its TaskState, as chunk tasks do."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    worker.state.tasks[key].metadata[META_KEY] = pack_record({"bytesread": value})
    return value


def _fail(value: int) -> int:
    raise ZeroDivisionError(f"bad chunk {value}")


async def _open(c: Any, s: Any, run_id: str) -> list[Any]:
    await c.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
    got: list[Any] = []
    c.subscribe_topic(TOPIC, got.append)
    answer = await c.scheduler.coffea_sizing_begin(run_id=run_id, client=c.id)
    assert answer["layout"] > 0
    return got


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)] * 2)
async def test_records_stream_as_tasks_finish_and_nothing_stays(
    c: Any, s: Any, a: Any, b: Any
) -> None:
    run_id = "a1b2c3d4e5f6"
    got = await _open(c, s, run_id)
    plugin = s.plugins[SizingSchedulerPlugin.name]
    keys = [chunk_key(run_id, i) for i in range(30)]
    futures = c.map(_leave_record, range(30), key=keys)
    await c.gather(futures)
    while len(got) < 30:
        await asyncio.sleep(0.01)
    items = {item["key"]: item for _, item in got}
    assert set(items) == set(keys)
    for i, key in enumerate(keys):
        item = items[key]
        assert item["run"] == run_id
        assert unpack_record(item["record"]) == {"bytesread": i}
        assert item["task_nbytes"] > 0
        assert item["worker"] in (a.address, b.address)
        assert item["worker_memory_limit"] is None or item["worker_memory_limit"] > 0
        assert item["attempts"] == 1
        assert item["compute_stop"] >= item["compute_start"]
        # the scheduler's TaskState kept nothing of the record
        assert META_KEY not in (s.tasks[key].metadata or {})
    # what the plugin held was the tasks in flight, never the 30 done
    assert plugin.state()["held"] == 0
    assert plugin.runs[run_id].peak <= 2 * 2 + 2
    info = await c.scheduler.coffea_sizing_end(run_id=run_id)
    assert info["open_runs"] == 0
    assert info["sent"] == 30
    assert 1 <= info["peak"] <= 6
    assert plugin.runs == {}


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)])
async def test_an_erred_task_is_sent_with_its_exception(c: Any, s: Any, a: Any) -> None:
    run_id = "0123456789ab"
    got = await _open(c, s, run_id)
    future = c.submit(_fail, 7, key=chunk_key(run_id, 0), retries=1)
    with pytest.raises(ZeroDivisionError):
        await future
    while not got:
        await asyncio.sleep(0.01)
    (_, item), *_ = got
    assert item["key"] == chunk_key(run_id, 0)
    assert "bad chunk 7" in item["error"]
    assert item["attempts"] == 2  # the retry counted
    assert item["worker"] == a.address
    await c.scheduler.coffea_sizing_end(run_id=run_id)


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)])
async def test_runs_of_a_client_that_leaves_are_dropped(c: Any, s: Any, a: Any) -> None:
    from distributed import Client

    await c.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
    plugin = s.plugins[SizingSchedulerPlugin.name]
    other = await Client(s.address, asynchronous=True)
    await other.scheduler.coffea_sizing_begin(run_id="aaaaaaaaaaaa", client=other.id)
    await c.scheduler.coffea_sizing_begin(run_id="bbbbbbbbbbbb", client=c.id)
    assert sorted(plugin.runs) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    await other.close()  # leaves without ending its run
    while "aaaaaaaaaaaa" in plugin.runs:
        await asyncio.sleep(0.01)
    assert sorted(plugin.runs) == ["bbbbbbbbbbbb"]
    await c.scheduler.coffea_sizing_end(run_id="bbbbbbbbbbbb")
    assert (await c.scheduler.coffea_sizing_state())["runs"] == ()


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)])
async def test_a_run_whose_client_is_gone_is_dropped_at_its_first_item(
    c: Any, s: Any, a: Any
) -> None:
    await c.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
    plugin = s.plugins[SizingSchedulerPlugin.name]
    run_id = "cccccccccccc"
    await c.scheduler.coffea_sizing_begin(run_id=run_id, client="never-connected")
    await c.submit(_leave_record, 1, key=chunk_key(run_id, 0))
    assert run_id not in plugin.runs


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)])
async def test_handlers_after_the_plugin_is_unregistered(
    c: Any, s: Any, a: Any
) -> None:
    await c.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
    await c.unregister_scheduler_plugin(SizingSchedulerPlugin.name)
    state = await c.scheduler.coffea_sizing_state()
    assert state["registered"] is False
    with pytest.raises(RuntimeError, match="no longer registered"):
        await c.scheduler.coffea_sizing_end(run_id="dddddddddddd")


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
