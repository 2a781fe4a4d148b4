"""RNTuple and Parquet inputs: coffea's per-chunk ``bytesread`` predicted to the byte
on RNTuples written by uproot and by ROOT, the decorator's fields and the executor's
records on RNTuple, Parquet runs without bytes, and clear errors.

The ROOT-written files are in ``tests/data`` (see ``make_root_rntuples.py`` there);
set ``COFFEA_SIZING_RNTUPLE_FILES`` to a ``:``-separated list of more NanoAOD RNTuple
files (an ``Events`` RNTuple) to check the prediction on them too."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import cloudpickle
import numpy as np
import pytest
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import WorkItem

from coffea_sizing import SizingDaskExecutor, SizingWarning, chunk_table, track_sizes
from coffea_sizing.cli import main as cli_main
from coffea_sizing.datasets import UnknownBranchError, make_nanoaod
from coffea_sizing.layout import column_bytes, read_layout
from coffea_sizing.predict import (
    amplification,
    coffea_chunks,
    open_cost,
    predict_branch_bytes,
    predict_bytesread,
)

# processors defined here travel by value to the Dask worker processes
cloudpickle.register_pickle_by_value(sys.modules[__name__])

DATA = Path(__file__).resolve().parent / "data"
ROOT_FILES = {
    "root-ttbar": DATA / "root_ttbar_rntuple.root",
    "root-nanoaod": DATA / "root_nanoaod_rntuple.root",
}
EXTRA_FILES = [
    p for p in os.environ.get("COFFEA_SIZING_RNTUPLE_FILES", "").split(":") if p
]

#: branches of the generated files: enough for NanoAODSchema's Jet and MET
BRANCHES = [
    "run",
    "luminosityBlock",
    "event",
    "Jet_pt",
    "Jet_eta",
    "Jet_phi",
    "Jet_mass",
    "MET_pt",
    "MET_phi",
]
N_EVENTS = 3_000
CLUSTER = 1_000

#: More fields than this (the real ttbar file has 1,313 once converted by ROOT):
#: uproot takes seconds to list them, and coffea lists them for every chunk.
BIG_SCHEMA = 500

pytestmark = [
    # NanoAODSchema on the ttbar file: Photon_mass and Photon_charge are replaced
    pytest.mark.filterwarnings("ignore:Branch .* already exists:RuntimeWarning"),
    # ROOT's importer leaves collection fields coffea cannot type
    pytest.mark.filterwarnings("ignore:Skipping .*:UserWarning"),
]


class QuietNanoAODSchema(NanoAODSchema):
    """NanoAODSchema without the warnings for cross-references the files lack."""

    warn_missing_crossrefs = False


class Reader(processor.ProcessorABC):
    """Materialises ``(collection, field)`` pairs; returns the number of events."""

    def __init__(self, fields: Sequence[tuple[str, str]]) -> None:
        self.fields = list(fields)

    def process(self, events: Any) -> dict[str, int]:
        for collection, name in self.fields:
            ak.materialize(events[collection][name])
        return {"entries": len(events)}

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator


@track_sizes
class TrackedReader(Reader):
    """Reader, decorated."""


JETS_MET = (("Jet", "pt"), ("Jet", "eta"), ("MET", "pt"))


def run_chunks(
    path: str | Path, chunks: Sequence[tuple[int, int]], proc: Any
) -> list[dict[str, Any]]:
    """coffea's own metrics, one ``Runner`` call per chunk (it only reports sums)."""
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        savemetrics=True,
        schema=QuietNanoAODSchema,
    )
    metrics = []
    for start, stop in chunks:
        item = WorkItem("ds", str(path), "Events", start, stop, b"")
        out, chunk_metrics = runner([item], proc)
        assert out["entries"] == stop - start
        metrics.append(chunk_metrics)
    return metrics


@pytest.fixture(scope="module")
def uproot_rntuple(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> str:
    """3,000 resampled events in clusters of 1,000, written by uproot."""
    path = tmp_path_factory.mktemp("rntuple") / "uproot_rntuple.root"
    make_nanoaod(
        path,
        N_EVENTS,
        events_per_basket=CLUSTER,
        branches=BRANCHES,
        source=ttbar_file,
        format="rntuple",
    )
    return str(path)


@pytest.fixture(scope="module")
def ttree_twin(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> str:
    """The same events as :func:`uproot_rntuple`, as a TTree."""
    path = tmp_path_factory.mktemp("rntuple") / "ttree.root"
    make_nanoaod(
        path, N_EVENTS, events_per_basket=CLUSTER, branches=BRANCHES, source=ttbar_file
    )
    return str(path)


def rntuple_files() -> list[Any]:
    params: list[Any] = [pytest.param("uproot", id="uproot")]
    # the real file's 1,313 fields take uproot seconds to list, once per chunk
    params += [
        pytest.param(
            name, id=name, marks=[pytest.mark.slow] if name == "root-ttbar" else []
        )
        for name in ROOT_FILES
    ]
    params += [pytest.param(p, id=f"extra-{Path(p).name}") for p in EXTRA_FILES]
    return params


@pytest.fixture(params=rntuple_files())
def any_rntuple(request: pytest.FixtureRequest, uproot_rntuple: str) -> str:
    name = request.param
    if name == "uproot":
        return uproot_rntuple
    return str(ROOT_FILES.get(name, name))


# ---------------------------------------------------------------- prediction
def test_predicted_equals_coffea_on_every_chunk(any_rntuple: str) -> None:
    """Every chunk of three chunkings (one on the cluster edges, one cutting
    clusters, one cluster-aligned): predicted == coffea's bytesread; the sums and
    the amplification agree with the measurement."""
    layout = read_layout(any_rntuple, "Events")
    assert layout.kind == "RNTuple"
    n = layout.num_entries
    if len(layout.columns) > BIG_SCHEMA:  # seconds per chunk: two chunks only
        chunkings = [coffea_chunks(any_rntuple, "Events", max(n // 2, 1))]
    else:
        sizes = sorted({max(n // 3, 1), max(n // 7, 1)})
        chunkings = [coffea_chunks(any_rntuple, "Events", s) for s in sizes]
        chunkings.append(
            coffea_chunks(any_rntuple, "Events", max(n // 4, 1), align_clusters=True)
        )
    if layout.clusters[1:-1]:  # a chunk ending exactly on the first cluster edge
        chunkings.append([(0, layout.clusters[1]), (layout.clusters[1], n)])
    for chunks in chunkings:
        metrics = run_chunks(any_rntuple, chunks, Reader(JETS_MET))
        measured = [m["bytesread"] for m in metrics]
        columns = sorted(set().union(*(m["columns"] for m in metrics)))
        table = predict_bytesread(any_rntuple, "Events", columns, chunks)
        assert table["predicted_bytesread"].tolist() == measured, chunks
        assert (table["predicted_payload_bytes"] > 0).all()
        amp = amplification(any_rntuple, "Events", columns, chunks)
        assert amp.total_bytesread == sum(measured)
        assert amp.open_bytes_per_chunk == open_cost(any_rntuple, "Events").total


def test_chunk_on_a_cluster_edge_reads_the_next_cluster(uproot_rntuple: str) -> None:
    """uproot 5.7 reads cluster ``k + 1`` for a chunk ending at its first entry:
    measured, a chunk ``[0, 1000)`` costs what ``[0, 1001)`` costs and more than
    ``[0, 999)``; the prediction says so too, and says why (two clusters)."""
    chunks = [(0, CLUSTER - 1), (0, CLUSTER), (0, CLUSTER + 1)]
    measured = [
        m["bytesread"] for m in run_chunks(uproot_rntuple, chunks, Reader(JETS_MET))
    ]
    assert measured[0] < measured[1] == measured[2]
    columns = ["nJet", "Jet_pt", "Jet_eta", "MET_pt"]
    table = predict_bytesread(uproot_rntuple, "Events", columns, chunks)
    assert table["predicted_bytesread"].tolist() == measured
    # one page per column and cluster, 6 columns: nJet, MET_pt, and the offsets
    # and data of Jet_pt and Jet_eta
    assert table["baskets"].tolist() == [6, 12, 12]


def test_same_events_ttree_and_rntuple(uproot_rntuple: str, ttree_twin: str) -> None:
    """The twins hold the same events; chunks inside a cluster read the same
    clusters/baskets in both, and each prediction holds for its own format."""
    columns = ["nJet", "Jet_pt", "MET_pt"]
    a = uproot.open(uproot_rntuple)["Events"].arrays(columns)
    b = uproot.open(ttree_twin)["Events"].arrays(columns)
    for name in columns:
        assert ak.all(a[name] == b[name])
    chunks = coffea_chunks(ttree_twin, "Events", 700)
    assert chunks == coffea_chunks(uproot_rntuple, "Events", 700)
    for path in (ttree_twin, uproot_rntuple):
        metrics = run_chunks(path, chunks, Reader(JETS_MET))
        read = sorted(set().union(*(m["columns"] for m in metrics)))
        table = predict_bytesread(path, "Events", read, chunks)
        assert table["predicted_bytesread"].tolist() == [
            m["bytesread"] for m in metrics
        ]
    per_field = predict_branch_bytes(uproot_rntuple, "Events", columns, chunks)
    assert (per_field > 0).all().all()
    assert list(per_field.columns) == columns


def test_shared_columns_are_read_once(uproot_rntuple: str) -> None:
    """ROOT's projected ``nJet`` and ``Jet_pt`` share the collection's offsets:
    predicted per field, the shared column counts for the first one only, and
    the sum is what one coffea chunk reads."""
    path = str(ROOT_FILES["root-nanoaod"])
    both = predict_branch_bytes(path, "Events", ["nJet", "Jet_pt"], [(0, 100)])
    alone = predict_branch_bytes(path, "Events", ["Jet_pt"], [(0, 100)])
    assert both["nJet"].iloc[0] > 0
    assert both["Jet_pt"].iloc[0] < alone["Jet_pt"].iloc[0]
    measured = run_chunks(path, [(0, 100)], Reader([("Jet", "pt")]))[0]
    assert measured["bytesread"] == open_cost(path, "Events").total + int(
        both.to_numpy().sum()
    )


# ----------------------------------------------------------- decorator, executor
@pytest.mark.parametrize("name", ["uproot", "root-nanoaod"])
def test_decorator_on_rntuple(name: str, uproot_rntuple: str) -> None:
    """Open + payload is coffea's bytesread; the open part is the predicted open
    cost and the per-field bytes are the predicted ones (and add up to the
    payload)."""
    any_rntuple = uproot_rntuple if name == "uproot" else str(ROOT_FILES[name])
    num_entries = read_layout(any_rntuple, "Events").num_entries
    chunks = coffea_chunks(any_rntuple, "Events", max(num_entries // 3, 1))
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        savemetrics=True,
        schema=QuietNanoAODSchema,
    )
    items = [WorkItem("ds", any_rntuple, "Events", a, b, b"") for a, b in chunks]
    out, report = runner(items, TrackedReader(JETS_MET))
    records = chunk_table(out).sort_values("entrystart")
    assert len(records) == len(chunks)
    assert int(records["bytesread"].sum()) == report["bytesread"]
    cost = open_cost(any_rntuple, "Events")
    for record in records.to_dict("records"):
        assert record["bytesread_open"] == cost.total
        assert record["bytesread_payload"] == sum(record["column_bytes"].values()) > 0
        predicted = predict_branch_bytes(
            any_rntuple,
            "Events",
            record["columns_read"],
            [(record["entrystart"], record["entrystop"])],
        )
        assert predicted.iloc[0].to_dict() == record["column_bytes"]


def test_sizing_dask_executor_records_rntuple(client: Any, uproot_rntuple: str) -> None:
    """A real LocalCluster run: every record's bytesread is the prediction."""
    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False),
        savemetrics=True,
        schema=QuietNanoAODSchema,
        chunksize=1_100,
    )
    out, report = runner(
        {"ds": [uproot_rntuple]},
        treename="Events",
        processor_instance=TrackedReader(JETS_MET),
    )
    assert out == {"entries": N_EVENTS}
    records = sorted(report["sizing"], key=lambda r: r["entrystart"])
    chunks = [(r["entrystart"], r["entrystop"]) for r in records]
    assert chunks == coffea_chunks(uproot_rntuple, "Events", 1_100)
    columns = sorted(set().union(*(r["columns_read"] for r in records)))
    table = predict_bytesread(uproot_rntuple, "Events", columns, chunks)
    assert [r["bytesread"] for r in records] == table["predicted_bytesread"].tolist()
    assert sum(r["bytesread"] for r in records) == report["bytesread"]
    for r, payload in zip(records, table["predicted_payload_bytes"], strict=True):
        assert r["bytesread_payload"] == payload


def test_column_bytes_reads_nothing(uproot_rntuple: str) -> None:
    """The decorator's per-field bytes come from the metadata in memory."""
    with uproot.open(uproot_rntuple) as file:
        ntuple = file["Events"]
        _ = ntuple.page_link_list
        before = file.file.source.num_requested_bytes
        sizes = column_bytes(ntuple, ["nJet", "Jet_pt", "nope"], 0, 1_500)
        assert file.file.source.num_requested_bytes == before
    expected = predict_branch_bytes(
        uproot_rntuple, "Events", ["nJet", "Jet_pt"], [(0, 1_500)]
    )
    assert sizes == {**expected.iloc[0].to_dict(), "nope": None}


# ------------------------------------------------------------------- Parquet
@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory: pytest.TempPathFactory, ttree_twin: str) -> str:
    path = tmp_path_factory.mktemp("parquet") / "events.parquet"
    ak.to_parquet(
        uproot.open(ttree_twin)["Events"].arrays(), path, row_group_size=1_000
    )
    return str(path)


def test_parquet_records_without_bytes(client: Any, parquet_file: str) -> None:
    """coffea's Parquet path reports no bytesread: the records say None, every
    other field is there, and the decorator says why once."""
    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False),
        savemetrics=True,
        schema=QuietNanoAODSchema,
        chunksize=1_500,
        format="parquet",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SizingWarning)  # raised on the workers
        out, report = runner(
            {"ds": [parquet_file]},
            treename="Events",
            processor_instance=TrackedReader(JETS_MET),
        )
    assert out == {"entries": N_EVENTS}
    assert "bytesread" not in report
    records = report["sizing"]
    assert len(records) == 2
    for r in records:
        assert r["bytesread"] is None
        assert r["bytesread_open"] is None
        assert r["bytesread_payload"] is None
        assert r["output_pickled_bytes"] > 0
        assert r["task_nbytes"] > 0


def test_errors(tmp_path: Path, uproot_rntuple: str, parquet_file: str) -> None:
    with pytest.raises(UnknownBranchError) as unknown:
        predict_bytesread(uproot_rntuple, "Events", ["Jet_ptt"], [(0, 1)])
    message = str(unknown.value)
    assert "field 'Jet_ptt' is not in the 'Events' RNTuple" in message
    assert uproot_rntuple in message
    assert "did you mean 'Jet_pt'" in message
    with pytest.raises(
        ValueError, match=r"events\.parquet is a Parquet file, not a ROOT"
    ):
        open_cost(parquet_file, "Events")
    text = tmp_path / "notes.root"
    text.write_text("not a ROOT file\n")
    with pytest.raises(ValueError, match=r"notes\.root is not a ROOT file"):
        predict_bytesread(text, "Events", ["nJet"], [(0, 1)])
    histogram = tmp_path / "histogram.root"
    with uproot.recreate(histogram) as out:
        out["h"] = np.histogram([1.0, 2.0], bins=2)
    with pytest.raises(
        TypeError, match=r"'h' in .* is a .*neither a TTree nor an RNTuple"
    ):
        open_cost(histogram, "h")
    with pytest.raises(KeyError, match="the file has no TTree and no RNTuple"):
        open_cost(histogram, "Events")


# ------------------------------------------------------------------ datasets
def test_make_nanoaod_rntuple_layout(uproot_rntuple: str) -> None:
    ntuple = uproot.open(uproot_rntuple)["Events"]
    assert ntuple.num_entries == N_EVENTS
    assert [c.num_entries for c in ntuple.cluster_summaries] == [CLUSTER] * 3
    assert ntuple.keys()[:5] == ["run", "luminosityBlock", "event", "nJet", "Jet_pt"]
    with pytest.raises(ValueError, match="format must be 'ttree' or 'rntuple'"):
        make_nanoaod(Path(uproot_rntuple).with_name("x.root"), 10, format="parquet")


def test_cli_generate_rntuple(tmp_path: Path, ttbar_file: str, capsys: Any) -> None:
    out = tmp_path / "cli.root"
    code = cli_main(
        [
            "generate",
            str(out),
            "-n",
            "500",
            "--events-per-basket",
            "200",
            "--format",
            "rntuple",
            "--branches",
            "event,Jet_pt",
            "--source",
            ttbar_file,
        ]
    )
    assert code == 0
    assert "clusters:           3 (200 events per cluster" in capsys.readouterr().out
    assert read_layout(out, "Events").clusters == [0, 200, 400, 500]


# --------------------------------------------------------------------- sweep
def test_branch_sweep_on_rntuple(client: Any, tmp_path: Path, ttbar_file: str) -> None:
    """The sweep runs on an RNTuple as on a TTree: every chunk predicted to the
    byte, the open/payload split measured, the payload growing with the fields."""
    from coffea_sizing.sweep import branch_sweep

    path = tmp_path / "sweep_rntuple.root"
    make_nanoaod(
        path, 2_000, events_per_basket=500, source=ttbar_file, format="rntuple"
    )
    result = branch_sweep({"rnt": [str(path)]}, (1, 10), chunksize=1_000, client=client)
    summary = result.summary.set_index("branches")
    assert (summary["prediction_exact_chunks"] == summary["chunks"]).all()
    assert summary["open_split_measured"].all()
    assert (
        summary["bytesread_open_total"] == 2 * open_cost(path, "Events").total
    ).all()
    assert (
        summary.loc[10, "bytesread_payload_total"]
        > summary.loc[1, "bytesread_payload_total"]
    )
    # chunks of 1,000 in clusters of 500 end on cluster edges: the first chunk
    # reads a third cluster, the last cannot
    assert summary.loc[10, "amplification"] == pytest.approx(5 / 4, rel=0.05)


def test_coffea_chunks_align_clusters_as_coffea() -> None:
    """``align_clusters=True`` on a ROOT-written RNTuple with uneven clusters:
    the chunks coffea makes are the ones predicted."""
    path = str(ROOT_FILES["root-nanoaod"])
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        schema=QuietNanoAODSchema,
        chunksize=1_200,
        align_clusters=True,
    )
    out = runner(
        {"ds": [path]}, treename="Events", processor_instance=TrackedReader([])
    )
    made = sorted(
        zip(chunk_table(out)["entrystart"], chunk_table(out)["entrystop"], strict=True)
    )
    assert made == coffea_chunks(path, "Events", 1_200, align_clusters=True)
    assert len(made) > 1
