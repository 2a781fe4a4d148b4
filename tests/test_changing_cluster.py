"""A cluster that changes under a run: workers killed for memory and restarted by
their nanny, workers restarted during the pre-flight check, an adaptive cluster
scaling up and down, two threads starting runs on a new client, a scheduler
killed mid-run.

Real coffea, real files, real ``LocalCluster`` s with nannies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from coffea_sizing.plugin import scheduler_state

from conftest import (
    Assignments,
    DieOnce,
    Hog,
    SlowJet,
    check_invariants,
    run,
    scaled,
)

pytestmark = pytest.mark.executor


@pytest.fixture
def nanny_cluster() -> Iterator[tuple[Any, Any]]:
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
        yield cluster, client


@pytest.mark.slow
def test_a_run_right_after_a_killed_worker_completes(generated_file: str) -> None:
    """The nanny is still restarting the worker killed for memory when the next
    run starts: the pre-flight must not read that as a missing install.

    Two workers: the follow-up run always has one alive. On a loaded machine Dask
    itself may hand a chunk to the worker it is still restarting and lose it (a
    fresh worker killed while slow to start, seen once in a fresh-clone CI beside
    another); so the hog's run fails at its first death and the follow-up run gets
    Dask's default retries. With one worker those retries could wait for ever.
    """
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="700MB",
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        for _ in range(2):
            client.wait_for_workers(2, timeout=scaled(120))
            cluster.scheduler.allowed_failures = 0  # the hog's chunk fails at once
            with pytest.raises(RuntimeError, match="KilledWorker"):
                run(
                    client,
                    {"gen": [generated_file]},
                    chunksize=2_000,
                    proc=Hog(6_000, 1_500_000_000),
                )
            # at once: one worker is gone or restarting
            cluster.scheduler.allowed_failures = 3
            out, report = run(client, {"gen": [generated_file]}, chunksize=2_000)
            assert out["nevents"] == 20_000
            assert len(report["sizing"]) == report["chunks"] == 10
            check_invariants(report, retried=True)
        assert scheduler_state(client)["runs"] == []


@pytest.mark.slow
def test_workers_restarted_during_the_preflight(
    nanny_cluster: tuple[Any, Any], ttbar_file: str
) -> None:
    """A worker killed just before a run (its nanny restarts it while the run's
    pre-flight asks the workers): the run goes on and is whole."""
    _, client = nanny_cluster
    run(client, {"ttbar": [ttbar_file]}, chunksize=100)  # every worker checked once
    kills = trials = 0
    # on a loaded machine a nanny takes long to bring its worker back: run until
    # two runs started right after a kill (a run without a kill checks nothing new)
    while kills < 2 and trials < 8:
        trials += 1
        # a worker killed twice in a few seconds can make distributed close its
        # nanny: kill only while another worker is alive, so the run can go on
        with contextlib.suppress(Exception):
            client.wait_for_workers(2, timeout=scaled(60))
        pids = client.run(os.getpid)
        if len(pids) >= 2:
            victim = sorted(pids)[kills % len(pids)]
            os.kill(pids[victim], signal.SIGKILL)
            kills += 1
        out, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50)
        assert out["nevents"] == 200
        assert len(report["sizing"]) == report["chunks"] == 4
        check_invariants(report, retried=True)
    assert kills >= 2, (
        f"only {kills} kills in {trials} runs: the workers never came back"
    )


@pytest.mark.slow
def test_adaptive_cluster_scaling_during_a_long_run(generated_file: str) -> None:
    """200 chunks while an adaptive cluster scales 1 -> 3 -> 1 -> 3 workers (and
    back down at the end): every record arrives and the bytes add up."""
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
        scheduler = cluster.scheduler
        cluster.adapt(minimum=1, maximum=3, interval="200ms", wait_count=2)
        counts: list[int] = []
        result: dict[str, Any] = {}
        errors: list[BaseException] = []

        def work() -> None:
            try:
                result["run"] = run(
                    client,
                    {"gen": [generated_file]},
                    chunksize=100,
                    proc=SlowJet(0.1),
                )
            except BaseException as err:
                errors.append(err)

        def wait_for(n: int, timeout: float = 120) -> bool:
            deadline = time.monotonic() + timeout
            while thread.is_alive() and time.monotonic() < deadline:
                counts.append(len(scheduler.workers))
                if counts[-1] == n:
                    return True
                time.sleep(0.1)
            return False

        thread = threading.Thread(target=work)
        thread.start()
        scaled = [wait_for(3)]
        time.sleep(2)
        cluster.adapt(minimum=1, maximum=1, interval="200ms", wait_count=2)
        scaled.append(wait_for(1))
        time.sleep(1)
        cluster.adapt(minimum=1, maximum=3, interval="200ms", wait_count=2)
        scaled.append(wait_for(3))
        while thread.is_alive():
            counts.append(len(scheduler.workers))
            time.sleep(0.1)
        thread.join()
        assert not errors, errors
        assert scheduler_state(client)["runs"] == []
        seen = set(client.ncores())
    assert scaled == [True, True, True], (scaled, counts)
    out, report = result["run"]
    assert out["nevents"] == 20_000
    recs = report["sizing"]
    assert len(recs) == report["chunks"] == 200
    check_invariants(report, retried=True)
    assert sorted(r["entrystart"] for r in recs) == list(range(0, 20_000, 100))
    workers = {r["worker"] for r in recs}
    assert len(workers) >= 3, workers  # the first worker and later ones
    print(
        f"workers over time {counts[0]}..{max(counts)}..{min(counts[1:])}; "
        f"{len(workers)} workers ran chunks; attempts "
        f"{sorted({r['attempts'] for r in recs})}; {len(seen)} at the end"
    )


# ------------------------------------------------------------ the client side
def _subscribed(client: Any) -> Any:
    """The handler the client calls for coffea-sizing items."""
    from coffea_sizing.plugin import TOPIC

    return client._stream_handlers.get(TOPIC)


def test_two_threads_starting_runs_on_a_new_client_share_one_dispatcher(
    cluster: Any,
) -> None:
    from distributed import Client

    from coffea_sizing.executor import _dispatcher

    for _ in range(60):
        with Client(cluster) as fresh:
            got: list[Any] = []
            barrier = threading.Barrier(2)

            def start(
                client: Any = fresh,
                got: list[Any] = got,
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait(timeout=scaled(30))
                got.append(_dispatcher(client))

            threads = [threading.Thread(target=start) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=scaled(60))
            assert len(got) == 2
            assert got[0] is got[1]
            assert _subscribed(fresh) is got[0]


@pytest.mark.slow
def test_two_threads_running_on_a_new_client_both_get_all_records(
    cluster: Any, ttbar_file: str, generated_file: str
) -> None:
    from distributed import Client

    for _ in range(5):
        with Client(cluster) as fresh:
            results: list[Any] = []
            errors: list[BaseException] = []
            barrier = threading.Barrier(2)

            def work(
                fileset: dict[str, list[str]],
                chunksize: int,
                client: Any = fresh,
                results: list[Any] = results,
                errors: list[BaseException] = errors,
                barrier: threading.Barrier = barrier,
            ) -> None:
                try:
                    barrier.wait(timeout=scaled(30))
                    results.append(run(client, fileset, chunksize=chunksize))
                except BaseException as err:
                    errors.append(err)

            threads = [
                threading.Thread(target=work, args=({"ttbar": [ttbar_file]}, 50)),
                threading.Thread(target=work, args=({"gen": [generated_file]}, 5_000)),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not errors, errors
            assert len(results) == 2
            for _, report in results:
                check_invariants(report)
            # and a later run on the client is whole too
            _, again = run(fresh, {"ttbar": [ttbar_file]}, chunksize=100)
            check_invariants(again)


@pytest.mark.slow
def test_scheduler_killed_mid_run_fails_as_fast_as_dask_executor(
    tmp_path: Any, generated_file: str
) -> None:
    """The exception reaches the user about as soon as with coffea's DaskExecutor:
    closing the run does not wait for a scheduler that is gone."""
    from coffea.processor import DaskExecutor
    from distributed import Client

    from coffea_sizing import SizingDaskExecutor

    from conftest import deploy, stop_processes

    delays: dict[str, float] = {}
    for name, executor_cls in (("plain", DaskExecutor), ("sized", SizingDaskExecutor)):
        (tmp_path / name).mkdir()
        address, procs = deploy(tmp_path / name, None, [None])
        client = Client(address, timeout=scaled(30))
        killed: dict[str, float] = {}
        try:
            client.wait_for_workers(1, timeout=scaled(60))

            marker = tmp_path / name / "started"

            def kill(
                procs: list[Any] = procs,
                killed: dict[str, float] = killed,
                marker: Any = marker,
            ) -> None:
                deadline = time.monotonic() + scaled(120)
                while not marker.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(1.0)  # chunks are running
                procs[0].kill()  # the scheduler
                killed["t"] = time.monotonic()

            thread = threading.Thread(target=kill)
            thread.start()
            with pytest.raises(Exception):  # noqa: B017, PT011 - whatever Dask raises
                run(
                    client,
                    {"gen": [generated_file]},
                    chunksize=500,
                    proc=SlowJet(0.5, str(marker)),
                    executor_cls=executor_cls,
                )
            delays[name] = time.monotonic() - killed["t"]
            thread.join()
        finally:
            with contextlib.suppress(Exception):  # the scheduler is gone
                client.close(timeout=10)
            stop_processes(procs)
    print(f"seconds from the kill to the exception: {delays}")
    # generous: the old close waited out a 30 s connect timeout
    assert delays["sized"] < delays["plain"] + 10, delays


@pytest.mark.slow
def test_a_chunk_only_queued_on_a_worker_that_died_is_not_counted_as_started(
    generated_file: str, tmp_path: Any
) -> None:
    """Workers of one thread: the scheduler gives each the chunk it runs and the
    next one, which waits in its queue. A worker dies in a chunk. The chunk it died
    in was started twice, the one that only waited behind it once (counting the
    scheduler's assignments gave it 2), every other chunk once. Two workers, so the
    run does not wait on the nanny's restart; no work stealing, so the test's view
    of where each chunk waited stays exact."""
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.scheduler.work-stealing": False}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(Assignments(), name=Assignments.name)
        marker = tmp_path / "died"
        out, report = run(
            client,
            {"gen": [generated_file]},
            chunksize=2_000,
            proc=DieOnce(str(marker), victim=4_000),
        )
        seen = cluster.scheduler.plugins[Assignments.name]
        given, cut = dict(seen.given), dict(seen.cut)
    assert marker.exists(), "the worker was never killed"
    assert out["nevents"] == 20_000
    check_invariants(report, retried=True)
    by_key = {r["key"]: r for r in report["sizing"]}
    (victim,) = [k for k, r in by_key.items() if r["entrystart"] == 4_000]
    queued = set(cut) - {victim}
    # the death cut short the victim's run and at least one chunk's wait
    assert victim in cut, (cut, given)
    assert queued, (cut, given)
    for key in queued:
        assert len(given[key]) == 2, given  # given to two workers, started once
    attempts = {k: r["attempts"] for k, r in by_key.items()}
    assert attempts.pop(victim) == 2
    assert set(attempts.values()) == {1}, (attempts, cut)
