"""A failed run keeps what it measured; the measuring never costs the analysis.

Real coffea, real files, real clusters: a processor that raises after other chunks
finished, a chunk over its worker's memory limit (KilledWorker), Ctrl-C in the
client, the plugin unregistered mid-run, an interrupt while a run opens, records
with forged identity or wrong types, coffea's ``use_result_type``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from typing import Any

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from coffea_sizing import SizingDaskExecutor, SizingWarning, chunk_table
from coffea_sizing.plugin import scheduler_state

from conftest import (
    CLEAN_STATE,
    FailAt,
    Hog,
    MarkAt,
    check_invariants,
    run,
    scaled,
)

pytestmark = pytest.mark.executor

try:
    from coffea.processor._dask import RichProgressBar  # noqa: F401

    _RICH_PROGRESS = True
except ImportError:  # older coffea
    _RICH_PROGRESS = False


def _wait_idle(client: Any, timeout: float = 30) -> None:
    def busy(dask_scheduler: Any) -> int:
        return len(dask_scheduler.queued) + sum(
            len(ws.processing) for ws in dask_scheduler.workers.values()
        )

    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(busy) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_failing_chunk_keeps_the_records_of_those_that_finished(
    client: Any, generated_file: str
) -> None:
    with pytest.raises(Exception, match="entrystart=8000") as info:
        run(
            client,
            {"gen": [generated_file]},
            chunksize=2_000,
            proc=FailAt(8_000, delay=1.0),
            retries=0,
        )
    err = info.value
    assert isinstance(err.__cause__, ZeroDivisionError)  # coffea's own wrapping
    table = chunk_table(err.sizing)  # type: ignore[attr-defined]
    done = table[table["error"].isna()]
    assert len(done) >= 2, "chunks finished before the failure"
    assert (done["bytesread"] > 0).all()
    assert (done["task_nbytes"] == done["output_compressed_bytes"]).all()
    assert done["filename"].eq(generated_file).all()
    failed = table[table["error"].notna()]
    assert list(failed["entrystart"]) == [8_000]
    assert "analysis bug at entry 8000" in failed["error"].iloc[0]
    assert failed["attempts"].iloc[0] == 1
    run_info = err.sizing["sizing_run"]  # type: ignore[attr-defined]
    assert run_info["failed"] == 1
    (note,) = [n for n in err.__notes__ if n.startswith("coffea-sizing:")]
    assert f"{len(done)} of 10 chunks finished" in note
    assert "entries 8000-10000" in note
    assert "predicted input" in note
    assert "error: ZeroDivisionError('analysis bug at entry 8000')" in note
    _wait_idle(client)
    assert scheduler_state(client) == CLEAN_STATE


@pytest.mark.skipif(
    "use_result_type" not in processor.Runner.__dataclass_fields__,
    reason="coffea before 2026.5 has no use_result_type",
)
def test_use_result_type_err_carries_the_records(
    client: Any, generated_file: str
) -> None:
    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False, retries=0),
        savemetrics=True,
        schema=NanoAODSchema,
        chunksize=2_000,
        use_result_type=True,
        skipbadfiles=(ZeroDivisionError,),
    )
    result = runner(
        {"gen": [generated_file]},
        treename="Events",
        processor_instance=FailAt(18_000, delay=1.0),
    )
    assert result.is_err()
    sizing = result.exception.sizing
    table = chunk_table(sizing)
    assert (table["error"].notna()).sum() == 1
    assert len(table) >= 2
    _wait_idle(client)
    assert scheduler_state(client) == CLEAN_STATE


def test_keyboard_interrupt_keeps_the_records(
    client: Any, generated_file: str, tmp_path: Any
) -> None:
    done = threading.Event()
    marker = tmp_path / "under-way"
    seen: list[str] = []

    def interrupt() -> None:
        # Ctrl-C once the run is well under way: the 9th chunk has started on a
        # worker (so chunks have finished) and, if they show in time, two chunks
        # have reported to the client
        from coffea_sizing.executor import _DISPATCHERS

        def reported() -> int:
            runs = _DISPATCHERS.get(client)
            if runs is None:
                return 0
            # a copy: the client's event loop adds and drops runs meanwhile
            return max((len(c.chunks) for c in list(runs.runs.values())), default=0)

        deadline = time.monotonic() + scaled(120)
        while not (done.is_set() or marker.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # not long: 11 chunks of a second each are left, and a Ctrl-C after the
        # run's end is not this test's (test_ctrl_c_while_the_run_closes_stops_it)
        deadline = time.monotonic() + 3
        while not done.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # a dict changed under us
                if reported() >= 2:
                    break
            time.sleep(0.02)
        if not done.is_set():
            seen.append("interrupted")
            os.kill(os.getpid(), signal.SIGINT)

    # Ctrl-C as a user's process sees it: Python's own handler. In the full suite
    # (an xdist worker that ran other modules first) the interrupt was sent and no
    # KeyboardInterrupt came, five times on loaded machines; whatever handler was
    # installed then is named in the failure.
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            run(
                client,
                {"gen": [generated_file]},
                chunksize=1_000,
                proc=MarkAt(8_000, str(marker), pause=1.0),
            )
    finally:
        done.set()
        signal.signal(signal.SIGINT, before)
    assert "interrupted" in seen, ("the run ended before the interrupt", before)
    table = chunk_table(info.value.sizing)  # type: ignore[attr-defined]
    assert 2 <= len(table) < 20
    assert (table["bytesread"] > 0).all()
    assert any("finished" in n for n in info.value.__notes__)
    _wait_idle(client)
    assert scheduler_state(client) == CLEAN_STATE


@pytest.mark.parametrize("moment", ["waiting for the last records", "closing"])
def test_ctrl_c_while_the_run_closes_stops_it(
    client: Any, generated_file: str, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """A Ctrl-C that lands as the run closes (all chunks done) stops it too, with
    the records: it was once taken for a failure to close the run, and the run
    returned as if nothing had been pressed."""
    import coffea_sizing.executor as ex

    if moment == "closing":
        on_loop = ex._on_loop

        def end_then_interrupt(
            dask_client: Any, handler: str, *a: Any, **k: Any
        ) -> Any:
            answer = on_loop(dask_client, handler, *a, **k)
            if handler == "coffea_sizing_end":  # the scheduler closed the run
                raise KeyboardInterrupt
            return answer

        monkeypatch.setattr(ex, "_on_loop", end_then_interrupt)
    else:
        wait = ex._wait_for_records

        def interrupt_unless_failed(*args: Any, **kwargs: Any) -> None:
            wait(*args, **kwargs)
            if not args[-1]:  # ``failed``: the run had succeeded
                raise KeyboardInterrupt

        monkeypatch.setattr(ex, "_wait_for_records", interrupt_unless_failed)
    with pytest.raises(KeyboardInterrupt) as info:
        run(client, {"gen": [generated_file]}, chunksize=5_000)
    monkeypatch.undo()
    table = chunk_table(info.value.sizing)  # type: ignore[attr-defined]
    assert len(table) == 4
    assert any("4 of 4 chunks finished" in n for n in info.value.__notes__)
    _wait_idle(client)
    assert scheduler_state(client) == CLEAN_STATE  # the run was closed all the same


@pytest.mark.slow
def test_a_chunk_over_the_memory_limit_names_worker_and_memory(
    generated_file: str,
) -> None:
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set(
            {
                "distributed.scheduler.allowed-failures": 0,
                # one task per thread: the chunk that dies is the only one blamed
                "distributed.scheduler.worker-saturation": 1.0,
            }
        ),
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            memory_limit="700MB",
            dashboard_address=":0",
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        with pytest.raises(RuntimeError, match="KilledWorker") as info:
            run(
                client,
                {"gen": [generated_file]},
                chunksize=2_000,
                proc=Hog(6_000, 1_500_000_000),
            )
        err = info.value
        table = chunk_table(err.sizing)  # type: ignore[attr-defined]
        assert (table["error"].isna() & (table["bytesread"] > 0)).sum() >= 1
        (note,) = [n for n in err.__notes__ if n.startswith("coffea-sizing:")]
        assert "entries 6000-8000" in note
        assert "on worker tcp://127.0.0.1:" in note
        assert "700 MB memory_limit" in note
        assert "predicted input" in note
        failed = table[table["error"].notna()]
        assert list(failed["entrystart"]) == [6_000]
        assert failed["worker_memory_limit"].iloc[0] == 700_000_000
        _wait_idle(client)
        assert scheduler_state(client)["runs"] == []


def test_plugin_unregistered_mid_run_keeps_the_output(
    cluster: Any, generated_file: str
) -> None:
    from distributed import Client

    with Client(cluster) as own, Client(cluster) as other:
        _, first = run(own, {"gen": [generated_file]}, chunksize=10_000)
        expected = first["entries"]

        def unregister() -> None:
            time.sleep(1.0)
            other.unregister_scheduler_plugin("coffea-sizing")

        thread = threading.Thread(target=unregister)
        thread.start()
        try:
            with pytest.warns(SizingWarning, match="did not arrive"):
                out, report = run(
                    own,
                    {"gen": [generated_file]},
                    chunksize=1_000,
                    proc=FailAt(-1, pause=0.2),
                    collect_timeout=1,
                )
        finally:
            thread.join()
        assert out["nevents"] == expected == 20_000
        assert report["entries"] == 20_000
        assert len(report["sizing"]) == 20
        # collect_timeout is honoured: the client waited 1 s for the records
        assert report["sizing_run"]["collect_seconds"] >= 1
        # the next run registers the plugin again and is whole
        _, again = run(own, {"gen": [generated_file]}, chunksize=2_000)
        check_invariants(again)


def test_an_interrupt_while_the_run_opens_leaves_no_run(
    client: Any, ttbar_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coffea_sizing import executor

    real = executor._on_loop

    def interrupted(dask_client: Any, handler: str, timeout: float, **kw: Any) -> Any:
        answer = real(dask_client, handler, timeout, **kw)
        if handler == "coffea_sizing_begin":
            raise KeyboardInterrupt  # after the scheduler opened the run
        return answer

    monkeypatch.setattr(executor, "_on_loop", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    monkeypatch.undo()
    assert scheduler_state(client) == CLEAN_STATE


def _forge(on: bool) -> bool:
    """On a worker: make every record claim another file and a string bytesread."""
    from coffea_sizing import executor

    real = getattr(executor, "_real_pack_record", executor.pack_record)
    executor._real_pack_record = real  # type: ignore[attr-defined]

    def forged(record: Any) -> bytes:
        return real({**record, "filename": "forged.root", "bytesread": "lots"})

    executor.pack_record = forged if on else real  # type: ignore[assignment]
    return on


def test_forged_identity_and_wrong_types_do_not_stick(
    client: Any, ttbar_file: str
) -> None:
    client.run(_forge, True)
    try:
        with pytest.warns(SizingWarning, match=r"4 of 4 .*wrong type.*bytesread"):
            out, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    finally:
        client.run(_forge, False)
    assert out["nevents"] == 200
    for r in report["sizing"]:
        assert r["filename"] == ttbar_file  # identity is the client's
        assert r["bytesread"] is None  # a string is no byte count
        assert r["walltime"] > 0  # the rest of the record stands
    assert chunk_table(report)["walltime"].sum() > 0


def test_retries_none_runs_as_with_dask_executor(client: Any, ttbar_file: str) -> None:
    out, report = run(client, {"ttbar": [ttbar_file]}, chunksize=100, retries=None)
    assert out["nevents"] == 200
    check_invariants(report)


def test_savemetrics_false_warns_once_per_process(
    client: Any, ttbar_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coffea_sizing import executor

    monkeypatch.setattr(executor, "_SAVEMETRICS_WARNED", False)
    with pytest.warns(SizingWarning, match="once per process"):
        run(client, {"ttbar": [ttbar_file]}, chunksize=100, savemetrics=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run(client, {"ttbar": [ttbar_file]}, chunksize=100, savemetrics=False)
    assert out["nevents"] == 200


@pytest.mark.skipif(
    not hasattr(
        __import__("coffea.processor._dask").processor._dask, "RichProgressBar"
    ),
    reason="this coffea has no rich progress bar",
)
def test_progress_bar_shows_running_sizes(
    client: Any, ttbar_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from coffea.util import coffea_console

    coffea_console.file = None  # type: ignore[assignment]  # follow pytest's stdout
    _, report = run(client, {"ttbar": [ttbar_file]}, chunksize=50, status=True)
    check_invariants(report)
    shown = capsys.readouterr().out
    total = sum(r["bytesread"] for r in report["sizing"])
    assert "read 1.35 MB" in shown, shown[-500:]
    assert total == 1_346_496
