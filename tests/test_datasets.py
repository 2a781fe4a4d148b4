"""Tests of coffea_sizing.datasets and of the ``generate`` subcommand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import skhep_testdata
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_sizing import datasets
from coffea_sizing.cli import main
from coffea_sizing.datasets import (
    DEFAULT_BRANCHES,
    UnknownBranchError,
    describe_baskets,
    make_nanoaod,
    ttbar_path,
)

N_EVENTS = 2_000
PER_BASKET = 500
COUNTERS = {"nJet", "nElectron", "nMuon"}


class QuietNanoAODSchema(NanoAODSchema):
    """NanoAODSchema warns for every cross-reference missing from the file
    (even for the real ttbar file: LowPtElectron, FatJet_subJetIdx...)."""

    warn_missing_crossrefs = False


@pytest.fixture(scope="module")
def source() -> str:
    return ttbar_path()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, source: str) -> Path:
    """2,000 events of the default branches in baskets of 500."""
    out = tmp_path_factory.mktemp("datasets") / "small.root"
    return make_nanoaod(out, N_EVENTS, events_per_basket=PER_BASKET, seed=7)


def read(path: Path | str, branches: list[str] | None = None) -> dict[str, Any]:
    with uproot.open(path) as file:
        tree = file["Events"]
        return dict(tree.arrays(branches, library="ak", how=dict))


# ------------------------------------------------------------------ ttbar_path


def test_ttbar_path_is_the_real_file(source: str) -> None:
    assert Path(source).name == "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    with uproot.open(source) as file:
        tree = file["Events"]
        assert tree.num_entries == datasets.TTBAR_NUM_EVENTS == 200
        assert len(tree.keys()) == 947


def test_ttbar_path_offline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(filename: str) -> str:
        raise ConnectionError(f"cannot download {filename}")

    monkeypatch.setattr(skhep_testdata, "data_path", offline)
    with pytest.raises(FileNotFoundError, match=r"copy .* into .*skhepdata") as info:
        ttbar_path()
    assert "nanoAOD_2015_CMS_Open_Data_ttbar.root" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_ttbar_path_missing_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        skhep_testdata, "data_path", lambda filename: str(tmp_path / filename)
    )
    with pytest.raises(FileNotFoundError, match="skhepdata"):
        ttbar_path()


# ---------------------------------------------------------------- make_nanoaod


def test_default_branches() -> None:
    assert len(DEFAULT_BRANCHES) == len(set(DEFAULT_BRANCHES)) == 98
    for name in ("run", "luminosityBlock", "event", "MET_pt", "MET_phi", "MET_sumEt"):
        assert name in DEFAULT_BRANCHES
    for collection in ("Jet", "Electron", "Muon"):
        for field in ("pt", "eta", "phi", "mass"):
            assert f"{collection}_{field}" in DEFAULT_BRANCHES
    assert "Electron_charge" in DEFAULT_BRANCHES
    assert "Muon_charge" in DEFAULT_BRANCHES


def test_round_trip_uproot(small: Path, source: str) -> None:
    assert isinstance(small, Path)
    assert small.is_file()
    with uproot.open(small) as file, uproot.open(source) as src_file:
        tree, src = file["Events"], src_file["Events"]
        assert file.keys() == ["Events;1"]
        assert tree.num_entries == N_EVENTS
        keys = tree.keys()
        assert len(keys) == 101
        assert set(keys) == set(DEFAULT_BRANCHES) | COUNTERS
        # a counter comes just before the first branch of its collection
        assert keys.index("nJet") + 1 == keys.index("Jet_pt")
        for name in DEFAULT_BRANCHES:
            # dtypes (float32, int32, uint8, bool, uint32, uint64) are preserved
            assert str(tree[name].interpretation) == str(src[name].interpretation)
        for name in COUNTERS:
            # uproot writes counters as int32, NanoAOD has them as uint32
            assert str(tree[name].interpretation) == "AsDtype('>i4')"
            assert tree[name].title == f"{name}/I"
        assert tree["Jet_pt"].title == "Jet_pt[nJet]/F"
        assert tree["Muon_tightId"].title == "Muon_tightId[nMuon]/O"

    arrays = read(small)
    assert ak.all(ak.num(arrays["Jet_pt"]) == arrays["nJet"])
    assert ak.all(ak.num(arrays["Electron_charge"]) == arrays["nElectron"])
    assert ak.all(ak.num(arrays["Muon_tightId"]) == arrays["nMuon"])


def test_event_numbers_are_unique(small: Path) -> None:
    event = read(small, ["event"])["event"]
    assert ak.to_numpy(event).dtype == np.uint64
    np.testing.assert_array_equal(ak.to_numpy(event), np.arange(1, N_EVENTS + 1))


def test_baskets_and_entry_ranges(small: Path) -> None:
    with uproot.open(small) as file:
        tree = file["Events"]
        for branch in tree.branches:
            name = branch.name
            assert branch.num_baskets == 4, name
            assert branch.embedded_baskets == [], name
            assert branch.entry_offsets == [0, 500, 1000, 1500, 2000], name


@pytest.mark.parametrize(
    ("n_events", "per_basket", "offsets"),
    [
        (1_234, 500, [0, 500, 1000, 1234]),
        (7, 10_000, [0, 7]),
        (5, 1, [0, 1, 2, 3, 4, 5]),
        (1, 1, [0, 1]),
    ],
)
def test_last_basket_holds_the_remainder(
    tmp_path: Path, n_events: int, per_basket: int, offsets: list[int]
) -> None:
    out = make_nanoaod(
        tmp_path / "f.root",
        n_events,
        events_per_basket=per_basket,
        branches=["event", "Jet_pt", "MET_pt"],
    )
    with uproot.open(out) as file:
        tree = file["Events"]
        assert tree.num_entries == n_events
        for name in ("event", "nJet", "Jet_pt", "MET_pt"):
            assert tree[name].entry_offsets == offsets
            assert tree[name].embedded_baskets == []


def test_events_are_resampled_from_the_source(small: Path, source: str) -> None:
    names = ["run", "luminosityBlock", "MET_pt", "Jet_pt", "Electron_pt", "Muon_eta"]
    gen = read(small, names)
    src = read(source, names)

    # every value comes from the source file
    gen_jet_pt = ak.to_numpy(ak.flatten(gen["Jet_pt"]))
    assert np.isin(gen_jet_pt, ak.to_numpy(ak.flatten(src["Jet_pt"]))).all()

    # whole events are copied: find each event's source event by its MET_pt (all
    # different in the source) and compare the other branches to it
    src_met = ak.to_numpy(src["MET_pt"])
    assert len(np.unique(src_met)) == len(src_met)
    order = np.argsort(src_met)
    gen_met = ak.to_numpy(gen["MET_pt"])
    index = order[np.searchsorted(src_met, gen_met, sorter=order)]
    np.testing.assert_array_equal(src_met[index], gen_met)
    for name in names:
        assert ak.all(gen[name] == src[name][index], axis=None), name
    # with replacement, and spread over the whole source file
    assert len(np.unique(index)) > 150
    assert ak.sum(ak.num(gen["Jet_pt"])) > 0


def test_seed_determinism(tmp_path: Path, small: Path) -> None:
    names = ["MET_pt", "Jet_pt", "Muon_charge", "HLT_IsoMu20"]
    same = make_nanoaod(tmp_path / "same.root", N_EVENTS, seed=7, branches=names)
    other = make_nanoaod(tmp_path / "other.root", N_EVENTS, seed=8, branches=names)
    first, second, third = read(small, names), read(same, names), read(other, names)
    for name in names:
        # the content of a branch depends neither on the basket size nor on the
        # other branches...
        assert ak.array_equal(first[name], second[name]), name
    # ...but on the seed
    assert not ak.array_equal(first["MET_pt"], third["MET_pt"])
    with uproot.open(same) as file:
        assert file["Events"]["MET_pt"].num_baskets == 1


def test_branch_subset_and_counters(tmp_path: Path) -> None:
    out = make_nanoaod(
        tmp_path / "subset.root",
        100,
        branches=["event", "Jet_pt", "Jet_eta", "Jet_pt", "LHEPdfWeight", "MET_pt"],
    )
    with uproot.open(out) as file:
        tree = file["Events"]
        # duplicates dropped, counters added before their first jagged branch
        assert tree.keys() == [
            "event",
            "nJet",
            "Jet_pt",
            "Jet_eta",
            "nLHEPdfWeight",
            "LHEPdfWeight",
            "MET_pt",
        ]
        assert tree["LHEPdfWeight"].title == "LHEPdfWeight[nLHEPdfWeight]/F"


def test_counter_alone_is_a_plain_branch(tmp_path: Path) -> None:
    out = make_nanoaod(tmp_path / "counter.root", 50, branches=["nJet", "nMuon"])
    with uproot.open(out) as file:
        tree = file["Events"]
        assert tree.keys() == ["nJet", "nMuon"]
        assert str(tree["nJet"].interpretation) == "AsDtype('>u4')"


def test_compression_choices(tmp_path: Path) -> None:
    sizes = {}
    for compression in ("ZLIB:1", "LZ4:1", "none", None, uproot.LZMA(1)):
        out = make_nanoaod(
            tmp_path / f"c_{compression}.root",
            500,
            branches=["Jet_pt", "MET_pt"],
            compression=compression,
        )
        sizes[str(compression)] = out.stat().st_size
        assert read(out, ["Jet_pt"])["Jet_pt"] is not None
    assert sizes["none"] == sizes["None"]
    assert sizes["ZLIB:1"] < sizes["none"]
    assert sizes["LZ4:1"] < sizes["none"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_events": 0}, ValueError, "n_events must be at least 1, got 0"),
        ({"n_events": -5}, ValueError, "n_events must be at least 1"),
        ({"events_per_basket": 0}, ValueError, "events_per_basket must be at least 1"),
        ({"n_events": 2.5}, TypeError, "n_events must be an integer"),
        ({"events_per_basket": True}, TypeError, "events_per_basket must be an int"),
        ({"branches": []}, ValueError, "at least one branch"),
        ({"branches": "Jet_pt"}, TypeError, "list of branch names"),
        ({"compression": "GZIP:1"}, ValueError, "unknown compression algorithm"),
        ({"compression": "ZLIB:x"}, ValueError, "level must be an integer"),
        ({"compression": "ZLIB:42"}, ValueError, "invalid compression"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"path": tmp_path / "bad.root", "n_events": 10}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        make_nanoaod(**arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "bad.root").exists()


def test_unknown_branch(tmp_path: Path, source: str) -> None:
    out = tmp_path / "bad.root"
    with pytest.raises(UnknownBranchError) as info:
        make_nanoaod(out, 10, branches=["Jet_pt", "Jet_ptt"])
    message = str(info.value)
    assert "'Jet_ptt'" in message
    assert source in message
    assert "did you mean 'Jet_pt'" in message
    # catchable as either
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)
    assert not out.exists()


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_nanoaod(tmp_path / "no" / "such" / "dir.root", 10)
    with pytest.raises(FileNotFoundError, match="source file"):
        make_nanoaod(tmp_path / "out.root", 10, source=tmp_path / "missing.root")


@pytest.mark.parametrize("mode", ["eager", "virtual"])
def test_round_trip_coffea(small: Path, mode: str) -> None:
    events = NanoEventsFactory.from_root(
        {str(small): "Events"}, schemaclass=QuietNanoAODSchema, mode=mode
    ).events()
    assert len(events) == N_EVENTS
    for name in ("Jet", "Electron", "Muon", "MET", "run", "luminosityBlock", "event"):
        assert name in events.fields
    for field in ("pt", "eta", "phi", "mass"):
        assert field in events.Jet.fields
        assert field in events.Electron.fields
        assert field in events.Muon.fields
    assert "charge" in events.Electron.fields
    assert "charge" in events.Muon.fields
    assert {"pt", "phi", "sumEt"} <= set(events.MET.fields)

    raw = read(small, ["nJet", "Jet_pt", "Electron_pt", "MET_pt", "event"])
    assert ak.all(ak.num(events.Jet) == raw["nJet"])
    assert ak.all(events.Jet.pt == raw["Jet_pt"], axis=None)
    assert ak.all(events.Electron.pt == raw["Electron_pt"], axis=None)
    assert ak.all(events.MET.pt == raw["MET_pt"])
    assert ak.all(events.event == raw["event"])
    # four-vectors and cross-references work
    assert ak.all(abs(events.Jet.mass - events.Jet.mass) < 1e-3, axis=None)
    matched = events.Electron.matched_jet
    assert ak.all(ak.num(matched) == ak.num(events.Electron))


# ------------------------------------------------------------ describe_baskets


def test_describe_baskets_real_file(source: str) -> None:
    df = describe_baskets(source)
    assert list(df.columns) == [
        "branch",
        "basket",
        "entry_start",
        "entry_stop",
        "num_entries",
        "embedded",
        "seek",
        "key_bytes",
        "compressed_bytes",
        "uncompressed_bytes",
    ]
    assert df.attrs["tree"] == "Events"
    assert df.attrs["tree_compressed_bytes"] < Path(source).stat().st_size
    assert df["branch"].nunique() == 947
    assert len(df) == 949

    # every branch but one has a single basket, embedded in the TTree metadata
    single = df[df["branch"] != "LHEPdfWeight"]
    assert single["embedded"].all()
    assert (single["basket"] == 0).all()
    assert (single["entry_start"] == 0).all()
    assert (single["entry_stop"] == 200).all()
    assert (single["compressed_bytes"] == 0).all()
    assert (single["seek"] == -1).all()

    # LHEPdfWeight: two free baskets, then an embedded one
    pdf = df[df["branch"] == "LHEPdfWeight"]
    assert pdf["embedded"].tolist() == [False, False, True]
    assert pdf["entry_start"].tolist() == [0, 76, 152]
    assert pdf["entry_stop"].tolist() == [76, 152, 200]
    assert (pdf["seek"].iloc[:2] > 0).all()

    with uproot.open(source) as file:
        tree = file["Events"]
        # the free baskets are all that the branches count as compressed bytes
        totals = df.groupby("branch")["compressed_bytes"].sum()
        for branch in tree.branches:
            assert totals[branch.name] == branch.compressed_bytes, branch.name
        branch = tree["LHEPdfWeight"]
        for i in range(2):
            free = pdf.iloc[i]
            assert free["compressed_bytes"] == branch.basket_compressed_bytes(i)
            assert free["uncompressed_bytes"] == branch.basket_uncompressed_bytes(i)
            assert free["seek"] == branch.member("fBasketSeek")[i]
        arrays = tree.arrays(["event", "Jet_pt", "HLT_IsoMu20"], library="ak")

    # embedded baskets: the size of their content, not uproot's 32000-byte buffer
    def row(name: str) -> dict[str, int]:
        return df[df["branch"] == name].iloc[0].to_dict()

    event, jet_pt, hlt = row("event"), row("Jet_pt"), row("HLT_IsoMu20")
    assert event["uncompressed_bytes"] == event["key_bytes"] + 8 * 200
    assert hlt["uncompressed_bytes"] == hlt["key_bytes"] + 200
    n_jets = int(ak.sum(ak.num(arrays["Jet_pt"])))
    assert jet_pt["uncompressed_bytes"] == jet_pt["key_bytes"] + 4 * n_jets + 4 * 202


def test_describe_baskets_generated_file(small: Path) -> None:
    df = describe_baskets(small)
    assert len(df) == 101 * 4
    assert not df["embedded"].any()
    assert (df["seek"] > 0).all()
    assert (df["compressed_bytes"] > df["key_bytes"]).all()
    assert df["seek"].is_unique
    assert (
        df.groupby("branch")["entry_start"]
        .apply(list)
        .map(lambda starts: starts == [0, 500, 1000, 1500])
        .all()
    )
    assert (df["entry_stop"] - df["entry_start"] == df["num_entries"]).all()
    assert df.attrs["file"] == str(small)

    arrays = read(small, ["Jet_pt", "MET_pt", "Muon_tightId"])
    with uproot.open(small) as file:
        tree = file["Events"]
        totals = df.groupby("branch")["compressed_bytes"].sum()
        for branch in tree.branches:
            name = branch.name
            assert totals[name] == branch.compressed_bytes, name
            assert totals[name] == sum(branch.member("fBasketBytes")), name
        for name in ("Jet_pt", "nJet", "event"):
            rows = df[df["branch"] == name]
            for i in range(4):
                assert rows["uncompressed_bytes"].iloc[i] == tree[
                    name
                ].basket_uncompressed_bytes(i)
        assert (
            df["compressed_bytes"].sum() + df.attrs["tree_compressed_bytes"]
            < small.stat().st_size
        )

    # uncompressed size = key + data (+ entry offsets for jagged branches), the
    # rule used for embedded baskets
    for i in range(4):
        start, stop = 500 * i, 500 * (i + 1)
        jet = df[(df["branch"] == "Jet_pt") & (df["basket"] == i)].iloc[0]
        n_jets = int(ak.sum(ak.num(arrays["Jet_pt"][start:stop])))
        assert jet["uncompressed_bytes"] == jet["key_bytes"] + 4 * n_jets + 4 * 502
        met = df[(df["branch"] == "MET_pt") & (df["basket"] == i)].iloc[0]
        assert met["uncompressed_bytes"] == met["key_bytes"] + 4 * 500
        mu = df[(df["branch"] == "Muon_tightId") & (df["basket"] == i)].iloc[0]
        n_mu = int(ak.sum(ak.num(arrays["Muon_tightId"][start:stop])))
        assert mu["uncompressed_bytes"] == mu["key_bytes"] + n_mu + 4 * 502


def test_describe_baskets_selection_and_errors(small: Path) -> None:
    df = describe_baskets(small, branches=["MET_pt", "Jet_pt", "MET_pt"])
    assert df["branch"].tolist() == ["MET_pt"] * 4 + ["Jet_pt"] * 4
    assert df["basket"].tolist() == [0, 1, 2, 3] * 2
    with pytest.raises(UnknownBranchError, match=r"'Jet_ptt'.*small\.root"):
        describe_baskets(small, branches=["Jet_ptt"])
    with pytest.raises(ValueError, match="no tree 'Nope'"):
        describe_baskets(small, treename="Nope")


# ------------------------------------------------------------------------- CLI


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.root"
    code = main(
        [
            "generate",
            str(out),
            "--events",
            "1200",
            "--events-per-basket",
            "500",
            "--branches",
            "event, Jet_pt,MET_pt",
            "--seed",
            "3",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    assert str(out) in captured.out
    assert "1,200" in captured.out
    assert "4 branches" in captured.out
    assert "MB" in captured.out
    assert "baskets per branch: 3 " in captured.out
    assert " s\n" in captured.out
    with uproot.open(out) as file:
        tree = file["Events"]
        assert tree.num_entries == 1200
        assert tree.keys() == ["event", "nJet", "Jet_pt", "MET_pt"]
        assert tree["MET_pt"].entry_offsets == [0, 500, 1000, 1200]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--branches", "Jet_pt,Bogus_branch"], "'Bogus_branch' is not in"),
        (["--events-per-basket", "0"], "--events-per-basket: expected a positive"),
        (["--compression", "GZIP"], "unknown compression algorithm 'GZIP'"),
        (["--branches", ","], "expected comma-separated branch names"),
    ],
)
def test_cli_generate_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    out = tmp_path / "bad.root"
    code = main(["generate", str(out), "--events", "10", *argv])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not out.exists()


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "SUBCOMMAND" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "x.root")]) == 2
    assert "--events" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "no" / "x.root"), "--events", "5"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "generate" in capsys.readouterr().out
