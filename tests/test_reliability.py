"""Faults lose no records: dead workers, failing chunks, concurrent chunks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coffea import processor

from coffea_sizing.plugin import scheduler_state

from conftest import JetProcessor
from test_executor import check_invariants, run

pytestmark = [pytest.mark.executor, pytest.mark.slow]


class DieOnce(JetProcessor):
    """Kills its worker process the first time it sees ``entrystart == victim``."""

    def __init__(self, marker: str, victim: int) -> None:
        super().__init__()
        self.marker = marker
        self.victim = victim

    def process(self, events: Any) -> dict[str, object]:
        start = events.metadata["entrystart"]
        if start == self.victim and not Path(self.marker).exists():
            Path(self.marker).write_text("died once\n")
            os._exit(13)  # the worker process dies mid-chunk, no cleanup
        return super().process(events)


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
    assert attempts[6_000] >= 2
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
    assert scheduler_state(client) == {
        "registered": True,
        "runs": [],
        "topic_events": 0,
    }
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
