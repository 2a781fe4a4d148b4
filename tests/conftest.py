"""Shared fixtures: the real ttbar file, generated NanoAOD-like files, real clusters."""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import cloudpickle
import hist
import matplotlib as mpl
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from distributed.diagnostics.plugin import SchedulerPlugin

from coffea_sizing import CHUNK_FIELDS, MERGE_FIELDS, SizingDaskExecutor
from coffea_sizing.records import (
    PHASE_FIELDS,
    phase_gap,
    phase_gap_limit,
)
from servers import XRootDServer

mpl.use("Agg")

TTBAR = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / TTBAR

#: How much slower than a quiet 2-core machine the tests may run: every test's
#: pytest-timeout (300 s in pyproject.toml, or a test's own mark) and the waits
#: given to ``scaled`` are multiplied by it. The CI can set it higher on a loaded
#: machine; the default leaves room for another job of the same size.
TIMEOUT_FACTOR = float(os.environ.get("COFFEA_SIZING_TEST_TIMEOUT_FACTOR", "3"))


#: A number written in scientific notation, as a whole token (not the "0e-0" inside
#: a chunk key such as ``coffea-sizing-chunk-86cb4663920e-0``).
SCIENTIFIC = re.compile(r"(?<![\w.-])[+-]?\d+(?:\.\d+)?e[+-]?\d+(?![\w.-])")


def scaled(seconds: float) -> float:
    """A wait (a subprocess, a thread join) scaled by ``TIMEOUT_FACTOR``."""
    return seconds * TIMEOUT_FACTOR


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Scale every test's pytest-timeout by ``TIMEOUT_FACTOR``."""
    base = float(config.getoption("timeout", None) or config.getini("timeout") or 0)
    for item in items:
        mark = item.get_closest_marker("timeout")
        seconds = float(mark.args[0]) if mark and mark.args else base
        if seconds > 0:
            item.add_marker(pytest.mark.timeout(seconds * TIMEOUT_FACTOR), append=False)


def _ensure_ttbar() -> str:
    """Make ``skhep_testdata.data_path`` work offline (copy the shared file)."""
    cache = Path("~/.local/skhepdata").expanduser()
    target = cache / TTBAR
    if not target.exists() and SHARED.exists():
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED, target)
    import skhep_testdata

    return str(skhep_testdata.data_path(TTBAR))


#: Debian's chromium (``apt-get install -y chromium``): the browser of the report tests.
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium: install Debian's chromium package "
    "(apt-get install -y chromium) for the headless browser check",
)

_MEASURE = """<script>
window.addEventListener("load", () => {
  if (%(open)s) document.querySelectorAll("details").forEach(d => { d.open = true; });
  const root = document.documentElement;
  const tables = [...document.querySelectorAll("table")]
    .filter(t => t.checkVisibility())  // not those in a closed <details>
    .map(t => Math.ceil(t.getBoundingClientRect().right));
  const out = document.createElement("pre");
  out.id = "coffea-sizing-measured";
  out.textContent = JSON.stringify({scrollWidth: root.scrollWidth,
    clientWidth: root.clientWidth, innerWidth: window.innerWidth, tables: tables});
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium (its own profile); no timeout: pytest-timeout bounds it."""
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def layout_in_chromium(
    page: Path, workdir: Path, *, width: int = 1400, open_details: bool = False
) -> dict[str, Any]:
    """How wide real headless Chromium lays ``page`` out in a ``width`` px window.

    A copy of the page gains a script that, once loaded (optionally after opening
    every ``<details>``), reads ``document.documentElement.scrollWidth``,
    its ``clientWidth`` (the window less its scroll bar), ``window.innerWidth`` and
    the right edge of every visible table; the report itself has no script.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / f"measured-{page.stem}-{int(open_details)}.html"
    script = _MEASURE % {"open": "true" if open_details else "false"}
    copy.write_text(
        page.read_text(encoding="utf-8").replace("</body>", script + "</body>"),
        encoding="utf-8",
    )
    run = chromium(
        f"--window-size={width},1000",
        "--virtual-time-budget=10000",
        "--dump-dom",
        copy.resolve().as_uri(),
        profile=workdir / f"profile-{int(open_details)}",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    match = re.search(r'<pre id="coffea-sizing-measured">(.*?)</pre>', run.stdout)
    assert match, f"the page did not load in Chromium: {run.stderr[-2000:]}"
    return dict(json.loads(match.group(1)))


@pytest.fixture(scope="session")
def ttbar_file() -> str:
    return _ensure_ttbar()


@pytest.fixture(scope="session")
def generated_file(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> str:
    """20,000 resampled events, baskets of 1,000: real baskets, 10 chunks of 2,000."""
    from coffea_sizing.datasets import make_nanoaod

    path = tmp_path_factory.mktemp("gen") / "generated_20k.root"
    make_nanoaod(path, 20_000, events_per_basket=1_000, seed=1, source=ttbar_file)
    return str(path)


@pytest.fixture(scope="session")
def xrootd(ttbar_file: str, generated_file: str) -> Iterator[XRootDServer]:
    """A real ``xrootd`` on 127.0.0.1 serving the ttbar and the generated file; the
    fixture owns the process and stops it at the end of the session."""
    if shutil.which("xrootd") is None:
        pytest.skip(
            "no xrootd executable: install Debian's xrootd-server (apt-get install "
            "xrootd-server, as .ci/run does) to run the XRootD tests"
        )
    with XRootDServer() as server:
        server.add(ttbar_file)
        server.add(generated_file)
        yield server


@pytest.fixture(scope="session")
def cluster() -> Iterator[object]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        host="127.0.0.1",
    ) as cl:
        yield cl


@pytest.fixture(scope="session")
def client(cluster: object) -> Iterator[object]:
    from distributed import Client

    with Client(cluster) as cl:
        yield cl


@pytest.fixture(scope="session")
def sweep(
    client: object,
    ttbar_file: str,
    generated_file: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> object:
    """The branch sweep of the study (1, 2, 3, 5, 10 branches; ttbar in chunks of 50,
    the generated file in chunks of 2,500), run once for the whole session: under
    pytest-xdist the first process to need it runs it, the others read its pickle."""
    from coffea_sizing.sweep import branch_sweep

    def run() -> object:
        return branch_sweep(
            {"ttbar": [ttbar_file], "generated": [generated_file]},
            (1, 2, 3, 5, 10),
            chunksize={"ttbar": 50, "generated": 2_500},
            client=client,
        )

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return run()
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "sweep.pkl"
    with FileLock(f"{shared}.lock"):
        if shared.is_file():
            return pickle.loads(shared.read_bytes())
        result = run()
        shared.write_bytes(pickle.dumps(result))
        return result


# Workers started as separate processes cannot import the tests: ship the test
# processors by value, as a notebook's processors are.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class JetProcessor(processor.ProcessorABC):
    """Reads Jet pt (and eta when ``eta=True``); fills a histogram and counters."""

    def __init__(self, eta: bool = False) -> None:
        self.eta = eta

    def process(self, events: ak.Array) -> dict[str, object]:
        jets = events.Jet
        h = hist.Hist.new.Reg(20, 0, 200, name="pt").Double()
        h.fill(pt=ak.flatten(jets.pt))
        out: dict[str, object] = {
            "nevents": len(events),
            "njets": int(ak.sum(ak.num(jets.pt))),
            "sumpt": float(ak.sum(jets.pt)),
            "jet_pt": h,
        }
        if self.eta:
            out["sumeta"] = float(ak.sum(abs(jets.eta)))
        return out

    def postprocess(self, accumulator: dict[str, object]) -> dict[str, object]:
        return accumulator


class FailAt(JetProcessor):
    """Raises on the chunk starting at ``victim`` (after ``delay`` s), sleeps
    ``pause`` s on the others."""

    def __init__(self, victim: int, delay: float = 0.0, pause: float = 0.0) -> None:
        super().__init__()
        self.victim, self.delay, self.pause = victim, delay, pause

    def process(self, events: Any) -> dict[str, object]:
        if events.metadata["entrystart"] == self.victim:
            time.sleep(self.delay)
            raise ZeroDivisionError(f"analysis bug at entry {self.victim}")
        time.sleep(self.pause)
        return super().process(events)


class MarkAt(JetProcessor):
    """Sleeps ``pause`` s on every chunk; touches ``marker`` (a path) when the chunk
    starting at ``start`` begins: a sign, outside the client, that the run is well
    under way."""

    def __init__(self, start: int, marker: str, pause: float) -> None:
        super().__init__()
        self.start, self.marker, self.pause = start, marker, pause

    def process(self, events: Any) -> dict[str, object]:
        if events.metadata["entrystart"] == self.start:
            Path(self.marker).touch()
        time.sleep(self.pause)
        return super().process(events)


class Hog(JetProcessor):
    """Allocates (and touches) ``nbytes`` on the chunk starting at ``victim``."""

    def __init__(self, victim: int, nbytes: int) -> None:
        super().__init__()
        self.victim, self.nbytes = victim, nbytes

    def process(self, events: Any) -> dict[str, object]:
        if events.metadata["entrystart"] == self.victim:
            import numpy as np

            hog = np.ones(self.nbytes // 8)
            time.sleep(10)  # the nanny kills the worker meanwhile
            return {"hog": float(hog.sum())}
        return super().process(events)


class SlowJet(JetProcessor):
    """Takes ``pause`` s per chunk, so the cluster can change during the run;
    touches ``marker`` (a path) when a chunk starts, if given."""

    def __init__(self, pause: float, marker: str | None = None) -> None:
        super().__init__()
        self.pause, self.marker = pause, marker

    def process(self, events: Any) -> dict[str, object]:
        if self.marker is not None:
            Path(self.marker).touch()
        time.sleep(self.pause)
        return super().process(events)


class SlowBigOutput(JetProcessor):
    """Sleeps ``pause`` s in ``process()`` and returns ``nbytes`` of random bytes
    besides the jets: a phase of known length and an output that takes time to
    count and compress."""

    def __init__(self, pause: float, nbytes: int) -> None:
        super().__init__()
        self.pause, self.nbytes = pause, nbytes

    def process(self, events: Any) -> dict[str, object]:
        time.sleep(self.pause)
        out = super().process(events)
        out["blob"] = os.urandom(self.nbytes)
        return out


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


class Assignments(SchedulerPlugin):
    """Where the scheduler gave each chunk task, and which of those assignments a
    worker's death cut short (the task given back, its worker gone): the
    scheduler's view, to check ``attempts`` against. Register with
    ``client.register_plugin(Assignments())`` on a cluster whose scheduler runs in
    the test's process; read it from ``cluster.scheduler.plugins[Assignments.name]``.
    """

    name = "test-assignments"

    def __init__(self) -> None:
        self.given: dict[str, list[str]] = {}
        self.cut: dict[str, list[str]] = {}
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def transition(
        self,
        key: Any,
        start: str,
        finish: str,
        *args: Any,  # noqa: ARG002 - hooks take whatever the scheduler passes
        **kwargs: Any,  # noqa: ARG002
    ) -> None:
        if not str(key).startswith("coffea-sizing-chunk-"):
            return
        if finish == "processing":
            ws = self.scheduler.tasks[key].processing_on
            self.given.setdefault(key, []).append(ws.address)
        elif start == "processing" and finish in ("released", "waiting"):
            last = self.given[key][-1]
            if last not in self.scheduler.workers:
                self.cut.setdefault(key, []).append(last)


@pytest.fixture
def jet_processor() -> JetProcessor:
    return JetProcessor()


# ------------------------------------------------ running and checking a sized run
#: What the scheduler holds after any run, whatever happened in it.
CLEAN_STATE = {"registered": True, "runs": [], "held": 0}


def run(
    client: Any,
    fileset: dict[str, list[str]],
    *,
    chunksize: int,
    proc: processor.ProcessorABC | None = None,
    executor_cls: type = SizingDaskExecutor,
    savemetrics: bool = True,
    **executor_options: Any,
) -> Any:
    executor_options.setdefault("status", False)
    runner = processor.Runner(
        executor=executor_cls(client=client, **executor_options),
        savemetrics=savemetrics,
        schema=NanoAODSchema,
        chunksize=chunksize,
    )
    return runner(fileset, treename="Events", processor_instance=proc or JetProcessor())


def expected_merges(n_chunks: int, treereduction: int) -> int:
    total, n = 0, n_chunks
    while n > 1:
        n = math.ceil(n / treereduction)
        total += n
    return total


def check_invariants(
    report: dict[str, Any],
    *,
    compressed: bool = True,
    retried: bool = False,
    protocol: str = "file",
) -> None:
    """One record per chunk, bytes and entries add up, every field sane, the phases
    add up (:func:`check_phases`) and the reads are the file source's.

    ``retried``: chunks may have run more than once (workers lost or retired
    mid-run), else each ran exactly once."""
    recs = report["sizing"]
    run_info = report["sizing_run"]
    assert run_info["chunks"] == len(recs)
    assert run_info["merges"] == len(report["sizing_merges"])
    assert run_info["missing"] == 0
    # the wait for late records (collect_timeout, 30 s) and closing the run on the
    # scheduler (a 60 s call): bounded by definition, not by the machine's load
    assert 0 < run_info["collect_seconds"] < 30 + 60 + 1
    assert len(recs) == report["chunks"]
    assert sum(r["bytesread"] for r in recs) == report["bytesread"]
    assert sum(r["entries"] for r in recs) == report["entries"]
    assert len({r["key"] for r in recs}) == len(recs)
    assert len({(r["filename"], r["entrystart"]) for r in recs}) == len(recs)
    for r in recs:
        assert set(CHUNK_FIELDS) <= set(r), set(CHUNK_FIELDS) - set(r)
        assert r["task_nbytes"] is not None
        assert r["task_nbytes"] >= 0
        assert r["attempts"] >= 1 if retried else r["attempts"] == 1
        assert r["entries"] == r["entrystop"] - r["entrystart"]
        assert r["worker"].startswith("tcp://127.0.0.1:")
        assert r["output_pickled_bytes"] > 0
        assert r["walltime"] >= r["processtime"] > 0
        assert r["cputime"] > 0
        assert r["mem_peak_bytes"] > 0
        assert r["mem_usage_bytes"] >= 0
        assert r["mem_shared"] is False  # one thread per worker
        assert r["compute_stop"] >= r["compute_start"]
        # walltime covers the whole task, the measuring included (so the overhead
        # never exceeds it); the task is inside the worker's compute window (1 ms:
        # the worker's time() and the task's perf_counter() are two clocks)
        assert math.isfinite(r["sizing_overhead"])
        assert r["walltime"] <= r["compute_stop"] - r["compute_start"] + 1e-3
        check_phases(r)
        check_reads(r, protocol)
        assert {"Jet_pt", "nJet"} <= set(r["columns"])
        if compressed:
            # the scheduler's nbytes of a chunk task is the compressed payload
            assert r["task_nbytes"] == r["output_compressed_bytes"] > 0
        else:
            assert r["output_compressed_bytes"] is None
    for m in report["sizing_merges"]:
        assert set(MERGE_FIELDS) <= set(m)
        assert m["nbytes"] is not None
        assert m["nbytes"] >= 0
        assert m["inputs"] >= 1
        assert m["attempts"] == 1


# ------------------------------------ `dask scheduler` / `dask worker` processes
def dask_process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def deploy(
    tmp: Path,
    scheduler_env: dict[str, str] | None,
    worker_envs: list[dict[str, str] | None],
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    sched_file = tmp / "scheduler.json"
    args = ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    procs = [
        dask_process(
            [*args, "--scheduler-file", str(sched_file)], tmp / "s.log", scheduler_env
        )
    ]
    deadline = time.monotonic() + scaled(60)
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not sched_file.exists():
        stop_processes(procs)
        raise AssertionError((tmp / "s.log").read_text())
    address = json.loads(sched_file.read_text())["address"]
    for i, env in enumerate(worker_envs):
        procs.append(dask_worker(address, tmp / f"w{i}.log", env))
    return address, procs


def dask_worker(
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
    return dask_process(args, log, env)


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            p.kill()


def check_phases(r: dict[str, Any]) -> None:
    """The phases of a chunk task add up to its walltime (records.phase_gap's rule)."""
    for name in PHASE_FIELDS:
        assert r[name] >= 0, (name, r[name])
    assert r["loadtime"] > 0
    assert r["opentime"] > 0
    assert r["buildtime"] > 0
    assert 0 < r["sizing_overhead"] <= r["walltime"]
    gap = phase_gap(r)
    assert gap is not None
    # processtime is coffea's time.time() difference, the rest perf_counter's
    assert -1e-3 <= gap <= phase_gap_limit(r), (
        {name: r[name] for name in ("walltime", "cputime", *PHASE_FIELDS)},
        gap,
    )


def check_reads(r: dict[str, Any], protocol: str) -> None:
    """What a chunk's reads cost: the opening's two requests and the tree's metadata
    at least; the time blocked in them inside the phases that read."""
    assert r["protocol"] == protocol
    assert r["read_requests"] >= 3
    assert 0 < r["readtime"] <= r["opentime"] + r["buildtime"] + r["processtime"]
