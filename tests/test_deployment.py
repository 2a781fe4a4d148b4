"""Scheduler and workers as separate processes (``dask scheduler``/``dask worker``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coffea_sizing.plugin import scheduler_state

from conftest import CLEAN_STATE, check_invariants, run, scaled

pytestmark = [pytest.mark.slow, pytest.mark.executor]


def _start(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


@pytest.fixture(scope="module")
def remote_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from distributed import Client

    address, procs = _deploy(tmp_path_factory.mktemp("deploy"), None, [None, None])
    try:
        with Client(address, timeout=scaled(30)) as client:
            client.wait_for_workers(2, timeout=scaled(60))
            yield client
    finally:
        _stop(procs)


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


def _deploy(
    tmp: Path,
    scheduler_env: dict[str, str] | None,
    worker_envs: list[dict[str, str] | None],
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    sched_file = tmp / "scheduler.json"
    args = ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    procs = [
        _start(
            [*args, "--scheduler-file", str(sched_file)], tmp / "s.log", scheduler_env
        )
    ]
    deadline = time.monotonic() + scaled(60)
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not sched_file.exists():
        _stop(procs)
        raise AssertionError((tmp / "s.log").read_text())
    address = json.loads(sched_file.read_text())["address"]
    for i, env in enumerate(worker_envs):
        procs.append(_worker(address, tmp / f"w{i}.log", env))
    return address, procs


def _worker(
    address: str, log: Path, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    args = [
        "worker",
        address,
        "--nthreads",
        "1",
        "--no-dashboard",
        "--host",
        "127.0.0.1",
    ]
    return _start(args, log, env)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            p.kill()


def test_workers_without_coffea_sizing_are_named_and_live_on(
    tmp_path: Path, blocked_env: dict[str, str], ttbar_file: str
) -> None:
    from distributed import Client

    address, procs = _deploy(tmp_path, None, [blocked_env, blocked_env])
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
        _stop(procs)


def test_a_late_worker_without_coffea_sizing_fails_clearly_and_lives_on(
    tmp_path: Path, blocked_env: dict[str, str], generated_file: str
) -> None:
    import threading

    from distributed import Client

    from conftest import FailAt

    address, procs = _deploy(tmp_path, None, [None])
    try:
        with Client(address, timeout=scaled(30)) as client:
            client.wait_for_workers(1, timeout=scaled(60))

            def join_late() -> None:
                while not scheduler_state(client)["runs"]:
                    time.sleep(0.05)
                procs.append(_worker(address, tmp_path / "late.log", blocked_env))

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
        _stop(procs)


def test_a_scheduler_without_coffea_sizing_is_named(
    tmp_path: Path, blocked_env: dict[str, str], ttbar_file: str
) -> None:
    from distributed import Client

    address, procs = _deploy(tmp_path, blocked_env, [None])
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
        _stop(procs)
