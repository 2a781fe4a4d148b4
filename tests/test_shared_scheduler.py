"""Several users' clients on one scheduler: a second client (another process) or a
task cannot list, end, take over or forge into another client's run, and what the
plugin holds stays bounded.

The victim runs through coffea's ``Runner`` on the session's ``LocalCluster``; the
attacker is a separate Python process with its own ``Client``, or a task.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coffea_sizing.plugin import (
    MAX_RUNS_PER_CLIENT,
    TOPIC,
    SizingSchedulerPlugin,
    chunk_key,
)

from conftest import SlowJet, check_invariants, run, scaled

pytestmark = pytest.mark.executor

#: The attacks, from another process: each prints what the scheduler answered.
ATTACKER = r"""
import json, secrets, sys
from distributed import Client

address, run_id, out = sys.argv[1:4]
answers = {}
with Client(address, timeout=30) as c:
    def call(name, handler, **kw):
        try:
            answers[name] = {"answer": c.sync(getattr(c.scheduler, handler), **kw)}
        except Exception as err:
            answers[name] = {"refused": f"{type(err).__name__}: {err}"}
    mine = secrets.token_hex(16)
    call("list", "coffea_sizing_state")
    call("list_with_a_guess", "coffea_sizing_state", secrets=[mine])
    call("end", "coffea_sizing_end", run_id=run_id, secret=mine)
    call("reopen", "coffea_sizing_begin", run_id=run_id, client=c.id, secret=mine)
    victim = [k for k in c.run_on_scheduler(
        lambda dask_scheduler: [
            cid for cid in dask_scheduler.clients if cid != "fire-and-forget"
        ]) if k != c.id]
    for i, cid in enumerate(victim):
        call(f"reopen_as_{i}", "coffea_sizing_begin", run_id=run_id, client=cid,
             secret=mine)
    call("open_for_nobody", "coffea_sizing_begin", run_id=secrets.token_hex(6),
         client="Client-made-up", secret=mine)
    forged = {"run": run_id, "secret": mine, "key": f"coffea-sizing-chunk-{run_id}-0",
              "bytesread": 10**12, "worker": "evil-worker", "attempts": "forged"}
    c.log_event("coffea-sizing-records", forged)
    def from_task(item):
        from distributed import get_worker
        get_worker().log_event("coffea-sizing-records", item)
        return 1
    c.submit(from_task, forged, pure=False).result()
    answers["forged"] = "sent"
Path = __import__("pathlib").Path
Path(out).write_text(json.dumps(answers, default=repr))
"""


def _victim_run(
    client: Any, generated_file: str, marker: Path
) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["run"] = run(
                client,
                {"gen": [generated_file]},
                chunksize=1_000,
                # 10 chunks a worker: the run outlasts the attacker's start
                proc=SlowJet(scaled(0.7), str(marker)),
            )
        except BaseException as err:  # reported in the main thread
            box["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + scaled(120)
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return thread, box


def test_a_second_client_process_cannot_list_end_reopen_or_forge(
    cluster: Any, generated_file: str, tmp_path: Path
) -> None:
    from distributed import Client

    plugin_of = cluster.scheduler.plugins.get
    with Client(cluster) as victim:
        thread, box = _victim_run(victim, generated_file, tmp_path / "started")
        (run_id,) = [
            r
            for r, v in plugin_of(SizingSchedulerPlugin.name).runs.items()
            if v.client == victim.id
        ]
        out = tmp_path / "answers.json"
        attacker = subprocess.run(
            [
                sys.executable,
                "-c",
                ATTACKER,
                cluster.scheduler_address,
                run_id,
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=scaled(120),
            check=False,
        )
        assert attacker.returncode == 0, attacker.stderr[-3000:]
        # the run was still going on when the attacks were over
        assert thread.is_alive()
        thread.join(timeout=180)
        assert "error" not in box, box.get("error")
    answers = json.loads(out.read_text())
    print(json.dumps(answers, indent=1))
    # listing shows counts, never run ids
    assert run_id not in json.dumps(answers["list"])
    assert answers["list"]["answer"]["runs"] == []
    assert answers["list"]["answer"]["open_runs"] >= 1
    assert answers["list_with_a_guess"]["answer"]["runs"] == []
    # ending and re-opening are refused
    assert "PermissionError" in answers["end"]["refused"]
    assert "already open" in answers["reopen"]["refused"]
    reopen_as = [v for k, v in answers.items() if k.startswith("reopen_as_")]
    assert reopen_as  # the victim's client id was there to claim
    assert all("already open" in v["refused"] for v in reopen_as)
    assert "no client" in answers["open_for_nobody"]["refused"]
    # and the victim's report is whole, nothing forged in it
    out_, report = box["run"]
    assert out_["nevents"] == 20_000
    assert len(report["sizing"]) == 20
    check_invariants(report)
    assert max(r["bytesread"] for r in report["sizing"]) < 10**9
    assert "evil-worker" not in {r["worker"] for r in report["sizing"]}
    assert report["sizing_run"]["records_sent"] == 20 + report["sizing_run"]["merges"]


def _forge_metadata(item: dict[str, Any]) -> int:
    """A task (under another run's key) that leaves a forged record, and one that
    publishes a forged item on the records topic."""
    from distributed import get_worker

    from coffea_sizing.plugin import META_KEY
    from coffea_sizing.records import pack_record

    worker = get_worker()
    key = worker.get_current_task()
    worker.state.tasks[key].metadata[META_KEY] = pack_record({"bytesread": 10**12})
    worker.log_event(TOPIC, item)
    return 1


def test_forged_items_from_a_task_do_not_reach_the_run(
    client: Any, generated_file: str, tmp_path: Path
) -> None:
    """A task under a key of the victim's run beyond its chunks, leaving a forged
    record, and a task publishing an item with a guessed secret: the victim's
    report is intact."""
    from distributed import Client

    thread, box = _victim_run(client, generated_file, tmp_path / "started")
    state = client.run_on_scheduler(
        lambda dask_scheduler: list(dask_scheduler.plugins["coffea-sizing"].runs)
    )
    assert state
    with Client(client.scheduler.address) as other:
        for run_id in state:
            forged = {
                "run": run_id,
                "secret": "0" * 32,
                "key": chunk_key(run_id, 0),
                "task_nbytes": "lots",
                "worker": "evil-worker",
            }
            other.log_event(TOPIC, forged)
            assert (
                other.submit(
                    _forge_metadata, forged, key=chunk_key(run_id, 9_999)
                ).result()
                == 1
            )
    thread.join(timeout=180)
    assert "error" not in box, box.get("error")
    _, report = box["run"]
    check_invariants(report)
    assert "evil-worker" not in {r["worker"] for r in report["sizing"]}
    assert max(r["bytesread"] for r in report["sizing"]) < 10**9


def test_open_runs_are_bounded(cluster: Any) -> None:
    """Run ids and secrets of one form; at most MAX_RUNS_PER_CLIENT per client,
    with a clear error; none for clients the scheduler does not know."""
    import secrets

    from distributed import Client

    with Client(cluster) as c:
        c.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
        plugin = cluster.scheduler.plugins[SizingSchedulerPlugin.name]
        before = len(plugin.runs)

        def begin(**kw: Any) -> Any:
            return c.sync(c.scheduler.coffea_sizing_begin, **kw)

        key = secrets.token_hex(16)
        for run_id, secret in (
            ("x" * 100_000_000, key),  # 100 MB
            ("ABCDEF012345", key),
            ("0123456789a", key),
            (["0123456789ab"], key),
            ("0123456789ab", "short"),
            ("0123456789ab", key.upper()),
            ("0123456789ab", None),
        ):
            with pytest.raises(ValueError, match=r"run id is 12|secret is 32"):
                begin(run_id=run_id, client=c.id, secret=secret)
        with pytest.raises(ValueError, match="no client"):
            begin(run_id=secrets.token_hex(6), client="Client-nobody", secret=key)
        opened: list[str] = []
        refused: ValueError | None = None
        for _ in range(200_000):
            run_id = secrets.token_hex(6)
            try:
                begin(run_id=run_id, client=c.id, secret=key)
            except ValueError as err:
                refused = err
                break
            opened.append(run_id)
        assert refused is not None
        assert f"already has {MAX_RUNS_PER_CLIENT} runs open" in str(refused)
        assert len(opened) == MAX_RUNS_PER_CLIENT
        assert len(plugin.runs) == before + MAX_RUNS_PER_CLIENT
        state = c.sync(c.scheduler.coffea_sizing_state, secrets=[key])
        assert sorted(opened) == list(state["runs"])
    # the client left: its runs are dropped
    deadline = time.monotonic() + scaled(30)
    while len(plugin.runs) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(plugin.runs) == before


def test_the_client_type_checks_every_field_it_keeps() -> None:
    """Items carry worker-made values (nbytes, timings, the record): fields of the
    wrong type are set to None and named; items without the run's secret or for
    another run are dropped."""
    from coffea.processor.executor import WorkItem

    from coffea_sizing.executor import _Collector, _Dispatcher

    run_id = "0a1b2c3d4e5f"
    keys = [chunk_key(run_id, i) for i in range(2)]
    items = [WorkItem("d", "/f.root", "Events", i, i + 1, b"") for i in range(2)]
    collector = _Collector(run_id, keys, items, secret="ab" * 16)
    dispatcher = _Dispatcher()
    dispatcher.runs[run_id] = collector
    forged = {
        "run": run_id,
        "key": keys[0],
        "task_nbytes": "lots",
        "worker": ["evil"],
        "worker_memory_limit": -1,
        "compute_start": float("nan"),
        "compute_stop": 1.0,
        "attempts": "forged",
        "lost_workers": [("w", "big", None)],
        "record": None,
    }
    dispatcher(item={**forged, "secret": "cd" * 16})  # a wrong secret
    dispatcher(item={**forged, "secret": "ab" * 16, "run": "ffffffffffff"})
    dispatcher(item="not a dict")
    assert collector.chunks == {}
    dispatcher(item={**forged, "secret": "ab" * 16})
    record = collector.record(keys[0])
    for name in ("task_nbytes", "worker", "worker_memory_limit", "attempts"):
        assert record[name] is None, name
    assert record["compute_stop"] == 1.0
    assert record["filename"] == "/f.root"
    (problem,) = collector.mistyped
    for name in ("task_nbytes", "worker", "compute_start", "attempts", "lost_workers"):
        assert name in problem
