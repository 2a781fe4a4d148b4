"""Scheduler and workers as separate processes (``dask scheduler``/``dask worker``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coffea_sizing.plugin import scheduler_state

from conftest import (
    CLEAN_STATE,
    check_invariants,
    dask_worker,
    deploy,
    run,
    scaled,
    stop_processes,
)

pytestmark = [pytest.mark.slow, pytest.mark.executor]


@pytest.fixture(scope="module")
def remote_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from distributed import Client

    address, procs = deploy(tmp_path_factory.mktemp("deploy"), None, [None, None])
    try:
        with Client(address, timeout=scaled(30)) as client:
            client.wait_for_workers(2, timeout=scaled(60))
            yield client
    finally:
        stop_processes(procs)


def test_separate_processes(
    remote_client: Any, ttbar_file: str, generated_file: str
) -> None:
    assert remote_client.scheduler.address.startswith("tcp://127.0.0.1:")
    _, report = run(
        remote_client, {"ttbar": [ttbar_file], "gen": [generated_file]}, chunksize=2_000
    )
    assert report["chunks"] == 11
    check_invariants(report)
    workers = {r["worker"] for r in report["sizing"]}
    assert workers <= set(remote_client.scheduler_info()["workers"])
    _, again = run(remote_client, {"ttbar": [ttbar_file]}, chunksize=50)
    check_invariants(again)
    assert scheduler_state(remote_client) == CLEAN_STATE


# ---------------------------------------------------------------- not installed
@pytest.fixture
def blocked_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import coffea_sizing`` fails, as on a scheduler or
    worker installed without it (coffea and Dask import as usual)."""
    import os

    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'coffea_sizing':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    return {**os.environ, "PYTHONPATH": str(block)}


def test_workers_without_coffea_sizing_are_named_and_live_on(
    tmp_path: Path, blocked_env: dict[str, str], ttbar_file: str
) -> None:
    from distributed import Client

    address, procs = deploy(tmp_path, None, [blocked_env, blocked_env])
    try:
        with Client(address, timeout=scaled(30)) as client:
            client.wait_for_workers(2, timeout=scaled(60))
            t0 = time.monotonic()
            with pytest.raises(
                ModuleNotFoundError,
                match=r"2 workers of 2 cannot import coffea_sizing: tcp://127\.0\.0\.1:"
                r".*Install coffea-sizing==",
            ):
                run(client, {"ttbar": [ttbar_file]}, chunksize=50)
            # named at once, not after the chunks' retries: within seconds on a
            # quiet machine, scaled for a loaded one
            assert time.monotonic() - t0 < scaled(30)
            assert len(client.scheduler_info()["workers"]) == 2  # both alive
            assert scheduler_state(client)["runs"] == []
    finally:
        stop_processes(procs)


def test_a_late_worker_without_coffea_sizing_fails_clearly_and_lives_on(
    tmp_path: Path, blocked_env: dict[str, str], generated_file: str
) -> None:
    import threading

    from distributed import Client

    from conftest import FailAt

    address, procs = deploy(tmp_path, None, [None])
    try:
        with Client(address, timeout=scaled(30)) as client:
            client.wait_for_workers(1, timeout=scaled(60))

            def join_late() -> None:
                while not scheduler_state(client)["runs"]:
                    time.sleep(0.05)
                procs.append(dask_worker(address, tmp_path / "late.log", blocked_env))

            thread = threading.Thread(target=join_late, daemon=True)
            thread.start()
            with pytest.raises(
                ModuleNotFoundError,
                match=r"on worker tcp://127\.0\.0\.1:\d+.*that worker cannot import "
                r"coffea_sizing: install coffea-sizing==",
            ):
                run(
                    client,
                    {"gen": [generated_file]},
                    chunksize=500,
                    proc=FailAt(-1, pause=0.3),
                    retries=0,
                )
            thread.join()
            client.wait_for_workers(2, timeout=scaled(30))
            time.sleep(1)
            assert len(client.scheduler_info()["workers"]) == 2  # the late one lives
    finally:
        stop_processes(procs)


def test_a_scheduler_without_coffea_sizing_is_named(
    tmp_path: Path, blocked_env: dict[str, str], ttbar_file: str
) -> None:
    from distributed import Client

    address, procs = deploy(tmp_path, blocked_env, [None])
    try:
        with Client(address, timeout=scaled(30)) as client:
            client.wait_for_workers(1, timeout=scaled(60))
            with pytest.raises(
                ModuleNotFoundError,
                match=r"the Dask scheduler at tcp://127\.0\.0\.1:\d+ cannot import "
                r"coffea_sizing .*install coffea-sizing==",
            ):
                run(client, {"ttbar": [ttbar_file]}, chunksize=50)
    finally:
        stop_processes(procs)
