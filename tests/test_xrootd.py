"""The same files read through a real ``xrootd`` on 127.0.0.1 (``root://``): every
invariant that holds on local files holds there."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import cloudpickle
import pytest
from coffea import processor

from coffea_sizing import advise, chunk_table, track_sizes
from coffea_sizing.predict import predict_bytesread
from servers import LatencyRelay, XRootDServer, free_port

from conftest import JetProcessor, check_invariants, run

TTBAR = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
GENERATED = "generated_20k.root"


@track_sizes
class TrackedJets(JetProcessor):
    """JetProcessor with ``@track_sizes``: open and payload bytes of every chunk."""


class SixColumns(processor.ProcessorABC):
    """Sums six branches: six column requests per chunk."""

    BRANCHES = ("Jet_pt", "Jet_eta", "Jet_phi", "Muon_pt", "Electron_pt", "MET_pt")

    def process(self, events: Any) -> dict[str, float]:
        out = {"nevents": float(len(events))}
        for name in self.BRANCHES:
            collection, field = name.split("_", 1)
            out[name] = float(ak.sum(events[collection][field]))
        return out

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A cluster of this module's own: its workers load the XRootD client (threads,
    buffers), which the memory figures of other modules' tests must not see."""
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


@pytest.fixture(scope="module")
def remote_and_local(
    client: Any, xrootd: XRootDServer, generated_file: str, ttbar_file: str
) -> dict[str, Any]:
    """The generated file (real baskets) and ttbar, each run over ``root://`` and
    from the local disk, with @track_sizes."""
    out: dict[str, Any] = {}
    for name, local, chunksize in (
        ("gen", generated_file, 2_500),
        ("ttbar", ttbar_file, 50),
    ):
        remote = xrootd.url(GENERATED if name == "gen" else TTBAR)
        for where, path in (("remote", remote), ("local", local)):
            out[name, where] = run(
                client, {name: [path]}, chunksize=chunksize, proc=TrackedJets()
            )
    return out


@pytest.mark.parametrize("name", ["gen", "ttbar"])
def test_records_over_xrootd(remote_and_local: dict[str, Any], name: str) -> None:
    """One record per chunk, bytes add up to coffea's, the phases to walltime;
    the same bytes as from the local disk; open + payload == bytesread."""
    out, report = remote_and_local[name, "remote"]
    local_out, local_report = remote_and_local[name, "local"]
    check_invariants(report, protocol="root")
    check_invariants(local_report, protocol="file")
    assert out["nevents"] == local_out["nevents"]
    assert out["sumpt"] == local_out["sumpt"]
    remote_records = sorted(report["sizing"], key=lambda r: r["entrystart"])
    local_records = sorted(local_report["sizing"], key=lambda r: r["entrystart"])
    for r, lr in zip(remote_records, local_records, strict=True):
        assert r["filename"].startswith("root://127.0.0.1:")
        assert r["bytesread"] == lr["bytesread"]
        assert r["bytesread_open"] + r["bytesread_payload"] == r["bytesread"]
        assert r["read_requests"] >= 3


def test_predict_bytesread_exact_over_xrootd(
    remote_and_local: dict[str, Any], xrootd: XRootDServer
) -> None:
    """predict_bytesread opens the remote file's metadata (no basket) and predicts
    every chunk to the byte."""
    _, report = remote_and_local["gen", "remote"]
    df = chunk_table(report).sort_values("entrystart")
    columns = sorted(set().union(*df["columns"]))
    predicted = predict_bytesread(
        xrootd.url(GENERATED),
        "Events",
        columns,
        list(zip(df["entrystart"], df["entrystop"], strict=True)),
    )
    assert predicted["predicted_bytesread"].tolist() == df["bytesread"].tolist()


def test_advise_opens_remote_metadata(
    client: Any, remote_and_local: dict[str, Any]
) -> None:
    """advise on a run over root:// opens the files' metadata, as on local files:
    bytes predicted exactly at another chunk size, no files-unreachable finding."""
    _, report = remote_and_local["gen", "remote"]
    advice = advise(report)
    assert "files-unreachable" not in {f.code for f in advice.findings}
    model = advice.model["gen"]
    assert model.bytes_exact
    assert all(f.reachable and f.open_bytes for f in model.files)
    # a remote file's reads cost a round trip per column and chunk: process()'s
    # time blocked in them is a fixed term, the rest per event
    assert "reads of remote files fixed" in model.phases["processtime"].method
    predicted = advice.predict(5_000).iloc[0]
    assert bool(predicted["bytes_exact"])
    # the prediction at 5,000 is what a run at 5,000 reads, to the byte
    _, measured = run(client, {"gen": [model.files[0].filename]}, chunksize=5_000)
    check_invariants(measured, protocol="root")
    assert int(predicted["bytesread"]) == measured["bytesread"]


def test_latency_shows_in_readtime(client: Any, xrootd: XRootDServer) -> None:
    """Through a relay that delays every response by 50 ms, every request the
    chunk waits for after the open costs at least 50 ms of ``readtime``, and the
    open itself (several round trips) at least 50 ms of ``opentime``; the bytes
    and the requests are those of the direct connection."""
    delay = 0.05
    proc = SixColumns()
    url = xrootd.url(GENERATED)
    _, direct = run(client, {"gen": [url]}, chunksize=5_000, proc=proc)
    with LatencyRelay(xrootd.port, delay) as relay:
        url = f"root://127.0.0.1:{relay.port}//{GENERATED}"
        _, slow = run(client, {"gen": [url]}, chunksize=5_000, proc=proc)
        # advise opens the files' metadata: through the relay while it is there
        found = {f.code: f for f in advise(slow).findings}
    check_invariants(slow, protocol="root")
    for r, d in zip(slow["sizing"], direct["sizing"], strict=True):
        assert r["bytesread"] == d["bytesread"]
        assert r["read_requests"] == d["read_requests"]
        # the opening's two requests are in opentime, not readtime
        assert r["readtime"] >= (r["read_requests"] - 2) * delay * 0.99
        assert r["opentime"] >= delay
    # most of each chunk blocked in reads of 17 kB: latency-bound, said with numbers
    assert "latency-bound" in found, [str(f) for f in found.values()]
    assert "requests of" in found["latency-bound"].message
    assert "preload" in found["latency-bound"].message
    assert "latency-bound" not in {f.code for f in advise(direct).findings}


def test_the_server_is_the_tests_own(xrootd: XRootDServer, ttbar_file: str) -> None:
    """A server started by the tests serves on 127.0.0.1 from its own directory,
    and stopping it ends its process, frees its port and removes its files."""
    import socket

    import uproot

    assert xrootd.process is not None
    assert xrootd.process.poll() is None
    with XRootDServer() as server:
        url = server.add(ttbar_file, "copy.root")
        with uproot.open({url: None}) as f:
            assert f["Events"].num_entries == 200
        process, port, root = server.process, server.port, server.root
        assert process is not None
        assert port != xrootd.port
    assert process.poll() is not None
    assert not root.exists()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), 2),
    ):
        pass


def test_advise_on_a_silent_server_gives_up_once(
    remote_and_local: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records of remote files whose server is gone: advise waits out the timeout
    once per host, names the files it could not open, and fits the bytes."""
    monkeypatch.setattr(sys.modules["coffea_sizing.model"], "REMOTE_TIMEOUT", 1)
    _, report = remote_and_local["gen", "remote"]
    gone = f"root://127.0.0.1:{free_port()}"
    records = [
        dict(r, filename=f"{gone}//{'a' if i % 2 else 'b'}.root")
        for i, r in enumerate(report["sizing"])
    ]
    advice = advise({"sizing": records})
    found = {f.code: f for f in advice.findings}
    assert "files-unreachable" in found
    files = {Path(f.filename).name: f for f in advice.model["gen"].files}
    assert not files["a.root"].reachable
    assert "expired" in files["a.root"].problem.lower()
    assert files["b.root"].problem.startswith("127.0.0.1:")
    assert "did not answer for a.root" in files["b.root"].problem
