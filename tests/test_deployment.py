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

from test_executor import CLEAN_STATE, check_invariants, run

pytestmark = [pytest.mark.slow, pytest.mark.executor]


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args], stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="module")
def remote_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from distributed import Client

    tmp = tmp_path_factory.mktemp("deploy")
    sched_file = tmp / "scheduler.json"
    procs = [
        _start(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            tmp / "scheduler.log",
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), (tmp / "scheduler.log").read_text()
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            _start(
                [
                    "worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                tmp / "workers.log",
            )
        )
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            yield client
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                p.kill()


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
