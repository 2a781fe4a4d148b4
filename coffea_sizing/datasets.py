"""Input datasets for sizing studies: the real CMS NanoAOD test file and
NanoAOD-like files of any size resampled from it.

The real file, ``nanoAOD_2015_CMS_Open_Data_ttbar.root`` from
`scikit-hep-testdata <https://github.com/scikit-hep/scikit-hep-testdata>`__,
holds 200 events and 947 branches, and almost all of its ``TBaskets`` are
*embedded* in the ``TTree`` metadata (ROOT never flushed them to free-standing
baskets): each branch has a single embedded basket, except ``LHEPdfWeight``
(two free baskets for entries 0-152, then an embedded one). It is therefore
useless for studying how many bytes a chunk reads: opening the tree reads
nearly everything. :func:`make_nanoaod` writes a file with the
same kind of content (events drawn with replacement from the real file, with
their original branch names and dtypes) but any number of events and real,
free-standing, compressed baskets of a chosen size, and :func:`describe_baskets`
lists the baskets of any file exactly.
"""

from __future__ import annotations

import difflib
import math
import os
import pathlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import pandas as pd
import skhep_testdata
import uproot

__all__ = [
    "DEFAULT_BRANCHES",
    "TTBAR_FILENAME",
    "TTBAR_NUM_EVENTS",
    "UnknownBranchError",
    "default_cache_dir",
    "default_fileset",
    "describe_baskets",
    "make_nanoaod",
    "ttbar_path",
]

#: Name of the real CMS NanoAOD file in scikit-hep-testdata.
TTBAR_FILENAME = "nanoAOD_2015_CMS_Open_Data_ttbar.root"

#: Number of events in :data:`TTBAR_FILENAME`.
TTBAR_NUM_EVENTS = 200

#: Branches written by :func:`make_nanoaod` by default. The counters of the
#: jagged collections (``nJet``, ``nElectron``, ``nMuon``) are not listed: they
#: are written automatically, which makes 98 + 3 = 101 branches in the file.
DEFAULT_BRANCHES: tuple[str, ...] = (
    # event identification
    "run",
    "luminosityBlock",
    "event",
    # AK4 jets
    "Jet_pt",
    "Jet_eta",
    "Jet_phi",
    "Jet_mass",
    "Jet_area",
    "Jet_btagDeepB",
    "Jet_btagDeepFlavB",
    "Jet_qgl",
    "Jet_rawFactor",
    "Jet_chEmEF",
    "Jet_chHEF",
    "Jet_neEmEF",
    "Jet_neHEF",
    "Jet_muEF",
    "Jet_jetId",
    "Jet_puId",
    "Jet_hadronFlavour",
    "Jet_partonFlavour",
    "Jet_nConstituents",
    "Jet_electronIdx1",
    "Jet_electronIdx2",
    "Jet_muonIdx1",
    "Jet_muonIdx2",
    # electrons
    "Electron_pt",
    "Electron_eta",
    "Electron_phi",
    "Electron_mass",
    "Electron_charge",
    "Electron_pdgId",
    "Electron_cutBased",
    "Electron_dxy",
    "Electron_dz",
    "Electron_sip3d",
    "Electron_pfRelIso03_all",
    "Electron_miniPFRelIso_all",
    "Electron_mvaFall17V2Iso_WP90",
    "Electron_mvaFall17V2noIso_WP90",
    "Electron_convVeto",
    "Electron_lostHits",
    "Electron_deltaEtaSC",
    "Electron_jetIdx",
    "Electron_tightCharge",
    # muons
    "Muon_pt",
    "Muon_eta",
    "Muon_phi",
    "Muon_mass",
    "Muon_charge",
    "Muon_pdgId",
    "Muon_dxy",
    "Muon_dz",
    "Muon_sip3d",
    "Muon_pfRelIso04_all",
    "Muon_pfRelIso03_all",
    "Muon_miniPFRelIso_all",
    "Muon_tightId",
    "Muon_mediumId",
    "Muon_looseId",
    "Muon_isGlobal",
    "Muon_isTracker",
    "Muon_jetIdx",
    "Muon_nTrackerLayers",
    # missing transverse momentum
    "MET_pt",
    "MET_phi",
    "MET_sumEt",
    "MET_significance",
    "MET_covXX",
    "MET_covXY",
    "MET_covYY",
    "PuppiMET_pt",
    "PuppiMET_phi",
    "PuppiMET_sumEt",
    # primary vertex, pileup, weights
    "PV_npvs",
    "PV_npvsGood",
    "PV_x",
    "PV_y",
    "PV_z",
    "genWeight",
    "Pileup_nTrueInt",
    "Pileup_nPU",
    "fixedGridRhoFastjetAll",
    "fixedGridRhoFastjetCentral",
    # event filters and triggers
    "Flag_goodVertices",
    "Flag_HBHENoiseFilter",
    "Flag_HBHENoiseIsoFilter",
    "Flag_EcalDeadCellTriggerPrimitiveFilter",
    "Flag_eeBadScFilter",
    "Flag_METFilters",
    "HLT_IsoMu20",
    "HLT_IsoMu22",
    "HLT_IsoTkMu22",
    "HLT_IsoMu27",
    "HLT_Ele23_WPLoose_Gsf",
    "HLT_Ele27_WPLoose_Gsf",
    "HLT_Ele27_eta2p1_WPTight_Gsf",
    "HLT_PFJet60",
)

_COMPRESSION_ALGORITHMS = {
    "ZLIB": uproot.ZLIB,
    "LZMA": uproot.LZMA,
    "LZ4": uproot.LZ4,
    "ZSTD": uproot.ZSTD,
}

#: File formats :func:`make_nanoaod` writes.
_FORMATS = ("ttree", "rntuple")

# Extra TBasket slots reserved in every TBranch beyond the number of baskets
# that will be written. uproot grows the basket arrays (by ``resize_factor``,
# default 10) and rewrites the whole TTree metadata when it runs out of slots.
_BASKET_CAPACITY_MARGIN = 2


class UnknownBranchError(KeyError, ValueError):
    """A branch name that does not exist in a file's tree.

    It is both a :class:`KeyError` and a :class:`ValueError`, and its message
    names the branch and the file.
    """

    def __str__(self) -> str:
        # KeyError would show the repr of the message (in quotes)
        return str(self.args[0]) if self.args else ""


def ttbar_path() -> str:
    """Path to the real CMS NanoAOD test file.

    The file is ``nanoAOD_2015_CMS_Open_Data_ttbar.root`` (200 ttbar events,
    947 branches, nearly every basket embedded in the ``TTree`` metadata),
    found with :func:`skhep_testdata.data_path`, which looks in
    ``~/.local/skhepdata/`` and otherwise tries to download it.

    Returns
    -------
    str
        Absolute path of the local copy of the file.

    Raises
    ------
    FileNotFoundError
        If the file is neither in the local cache nor downloadable (for
        example, offline). The message says where to copy the file.

    Examples
    --------
    >>> import uproot
    >>> from coffea_sizing.datasets import ttbar_path
    >>> uproot.open(ttbar_path())["Events"].num_entries
    200
    """
    cache = pathlib.Path.home() / ".local" / "skhepdata"
    how_to_fix = (
        f"copy {TTBAR_FILENAME} into {cache}/ (scikit-hep-testdata's cache "
        f"directory), or run 'python -m skhep_testdata {TTBAR_FILENAME}' on a "
        f"machine with internet access"
    )
    try:
        path = skhep_testdata.data_path(TTBAR_FILENAME)
    except Exception as err:
        msg = f"cannot find the CMS NanoAOD test file {TTBAR_FILENAME} ({err!r}): "
        raise FileNotFoundError(msg + how_to_fix) from err
    if not pathlib.Path(path).is_file():
        msg = f"the CMS NanoAOD test file is missing at {path}: "
        raise FileNotFoundError(msg + how_to_fix)
    return str(path)


@dataclass
class _Collection:
    """Jagged branches sharing one counter, resampled together."""

    counter: str
    offsets: np.ndarray[Any, Any]  # int64, len = source events + 1
    contents: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)


@dataclass
class _Plan:
    """What :func:`make_nanoaod` writes, in order, with the source data."""

    branch_types: dict[str, Any]
    scalars: dict[str, np.ndarray[Any, Any]]
    collections: list[_Collection]
    counter_of: dict[str, str]
    num_source_events: int


def _native(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return dtype.newbyteorder("=")


def _dedupe(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _check_branches(
    names: Iterable[str], available: Sequence[str], treename: str, file_path: str
) -> None:
    """Raise :class:`UnknownBranchError` for the first name not in ``available``."""
    known = set(available)
    for name in names:
        if name not in known:
            msg = f"branch {name!r} is not in the {treename!r} tree of {file_path}"
            close = difflib.get_close_matches(name, list(available), n=3)
            if close:
                msg += f" (did you mean {', '.join(map(repr, close))}?)"
            raise UnknownBranchError(msg)


def _plan(source_tree: Any, source_path: str, branches: Sequence[str]) -> _Plan:
    """Validate ``branches`` against the source tree and read their data."""
    if isinstance(branches, str):
        msg = f"branches must be a list of branch names, not the string {branches!r}"
        raise TypeError(msg)
    names = _dedupe(branches)
    if not names:
        msg = "branches must name at least one branch"
        raise ValueError(msg)
    _check_branches(names, source_tree.keys(), "Events", source_path)

    # counters of the requested jagged branches
    counter_of: dict[str, str] = {}
    for name in names:
        count_branch = source_tree[name].count_branch
        if count_branch is not None:
            counter_of[name] = count_branch.name
    generated_counters = set(counter_of.values())

    branch_types: dict[str, Any] = {}
    scalars: dict[str, np.ndarray[Any, Any]] = {}
    by_counter: dict[str, _Collection] = {}
    num_source_events = int(source_tree.num_entries)
    for name in names:
        if name in generated_counters:
            # written by uproot from the jagged branches' lengths, placed just
            # before the first of them
            continue
        branch = source_tree[name]
        interpretation = branch.interpretation
        if name in counter_of:
            if not isinstance(interpretation, uproot.interpretation.jagged.AsJagged):
                msg = f"cannot resample branch {name!r} ({interpretation!r})"
                raise ValueError(msg)
            dtype = _native(interpretation.content.to_dtype)
            array = branch.array(library="ak")
            counter = counter_of[name]
            if counter not in by_counter:
                counts = np.asarray(ak.num(array, axis=1), dtype=np.int64)
                offsets = np.zeros(len(counts) + 1, dtype=np.int64)
                np.cumsum(counts, out=offsets[1:])
                by_counter[counter] = _Collection(counter, offsets)
            collection = by_counter[counter]
            content = np.asarray(ak.flatten(array, axis=1)).astype(dtype, copy=False)
            if len(content) != collection.offsets[-1]:
                msg = f"branch {name!r} does not match its counter {counter!r}"
                raise ValueError(msg)
            collection.contents[name] = content
            branch_types[name] = f"var * {dtype.name}"
        else:
            if not isinstance(interpretation, uproot.interpretation.numerical.AsDtype):
                msg = f"cannot resample branch {name!r} ({interpretation!r})"
                raise ValueError(msg)
            dtype = _native(interpretation.to_dtype)
            if dtype.shape != ():
                msg = f"cannot resample fixed-size array branch {name!r} ({dtype})"
                raise ValueError(msg)
            scalars[name] = np.asarray(branch.array(library="np")).astype(
                dtype, copy=False
            )
            branch_types[name] = dtype
    if "event" in branch_types:
        branch_types["event"] = np.dtype(np.uint64)
    return _Plan(
        branch_types=branch_types,
        scalars=scalars,
        collections=list(by_counter.values()),
        counter_of=counter_of,
        num_source_events=num_source_events,
    )


def _parse_compression(compression: Any) -> Any:
    """``"ZLIB:1"``, ``"LZ4:4"``, ``"none"``, ``None`` or an uproot object."""
    if compression is None or isinstance(compression, uproot.compression.Compression):
        return compression
    if not isinstance(compression, str):
        msg = f"compression must be a string like 'ZLIB:1', not {compression!r}"
        raise TypeError(msg)
    text = compression.strip()
    if text.lower() in {"none", "no", "0", ""}:
        return None
    algorithm, _, level_text = text.partition(":")
    algorithm_class = _COMPRESSION_ALGORITHMS.get(algorithm.strip().upper())
    if algorithm_class is None:
        msg = (
            f"unknown compression algorithm {algorithm!r} in {compression!r}; "
            f"use one of {', '.join(_COMPRESSION_ALGORITHMS)} (e.g. 'ZLIB:1') "
            f"or 'none'"
        )
        raise ValueError(msg)
    try:
        level = int(level_text) if level_text.strip() else 1
    except ValueError:
        msg = f"compression level must be an integer in {compression!r}"
        raise ValueError(msg) from None
    try:
        return algorithm_class(level)
    except ValueError as err:
        msg = f"invalid compression {compression!r}: {err}"
        raise ValueError(msg) from err


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        msg = f"{name} must be an integer, not {value!r}"
        raise TypeError(msg)
    if value < 1:
        msg = f"{name} must be at least 1, got {value}"
        raise ValueError(msg)
    return int(value)


def make_nanoaod(
    path: str | os.PathLike[str],
    n_events: int,
    *,
    events_per_basket: int = 10_000,
    branches: Sequence[str] | None = None,
    seed: int = 0,
    source: str | os.PathLike[str] | None = None,
    compression: str | Any | None = "ZLIB:1",
    format: str = "ttree",
) -> pathlib.Path:
    """Write a NanoAOD-like file by resampling the events of a real one.

    Events are drawn uniformly with replacement from the ``Events`` tree of
    ``source`` (by default the 200-event CMS NanoAOD file of
    :func:`ttbar_path`), keeping the original branch names and dtypes (float32,
    int32, uint32, uint8, bool, ...), and written with uproot to a new
    ``Events`` tree with one basket per branch for every ``events_per_basket``
    events (the last basket holds the remainder). Jagged branches such as
    ``Jet_pt`` are written together with their counter (``nJet``), so that
    coffea's ``NanoAODSchema`` reads the file back into ``Jet``, ``Electron``,
    ``Muon``, ... collections. The ``event`` branch, if written, is replaced
    by ``1..n_events`` (uint64) so that event numbers are unique.

    With ``format="rntuple"`` the same events go to an ``Events`` RNTuple
    instead: one field per branch (a jagged branch is a ``var *`` field) and
    the counters (``nJet``) as int32 fields before their collection, as in the
    ``TTree``, so that ``NanoAODSchema`` reads both alike. uproot writes one
    cluster per ``events_per_basket`` events and one page per column and
    cluster, so that number sets both the cluster and the page size.

    The file content depends only on ``n_events``, ``branches``, ``seed`` and
    ``source``; ``events_per_basket``, ``compression`` and ``format`` change
    only how it is laid out on disk.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; overwritten if it exists. Its directory must exist.
    n_events : int
        Number of events to write, at least 1.
    events_per_basket : int, optional
        Number of events per basket, at least 1. Default 10,000. Every
        branch has its baskets at the same entries, so these are also the
        tree's ``common_entry_offsets`` (uproot writes no ``TTree`` cluster
        ranges: ``fAutoFlush`` is left at its default).
    branches : sequence of str, optional
        Names of branches of the source tree to write. The counter of a jagged
        branch (``nJet`` for ``Jet_pt``) is added automatically. Default:
        :data:`DEFAULT_BRANCHES` (98 branches + 3 counters = 101 branches).
    seed : int, optional
        Seed of :func:`numpy.random.default_rng` drawing the source events.
    source : str or os.PathLike, optional
        NanoAOD file to resample (its ``Events`` tree). Default:
        :func:`ttbar_path`.
    compression : str or uproot.compression.Compression or None, optional
        ``"ZLIB:1"`` (default, as in the source file), ``"LZ4:4"``,
        ``"LZMA:9"``, ``"ZSTD:5"``, ``"none"``/``None``, or an uproot
        compression object.
    format : {"ttree", "rntuple"}, optional
        Write a ``TTree`` (default) or an RNTuple (case does not matter).

    Returns
    -------
    pathlib.Path
        The path of the written file.

    Raises
    ------
    ValueError
        If ``n_events`` or ``events_per_basket`` is below 1, ``branches`` is
        empty or ``compression`` is not understood.
    UnknownBranchError
        (a :class:`KeyError` and a :class:`ValueError`) if a requested branch
        is not in the source file; the message names the branch and the file.
    FileNotFoundError
        If the source file cannot be found.

    Notes
    -----
    uproot always writes counters of jagged branches as int32 (``nJet/I``),
    while NanoAOD has them as uint32; all other branches keep their dtype.
    The data are generated and written one basket at a time, so memory use is
    bounded by ``events_per_basket``. Writing 200,000 events of the default
    branches in baskets of 10,000 takes a few seconds and gives a file of
    about 80 MB.

    Examples
    --------
    >>> import uproot
    >>> from coffea_sizing.datasets import make_nanoaod
    >>> out = make_nanoaod("small.root", 2_000, events_per_basket=500)
    >>> tree = uproot.open(out)["Events"]
    >>> tree.num_entries, tree["Jet_pt"].num_baskets
    (2000, 4)
    >>> out = make_nanoaod("jets.root", 100, branches=["event", "Jet_pt", "Jet_eta"])
    >>> uproot.open(out)["Events"].keys()
    ['event', 'nJet', 'Jet_pt', 'Jet_eta']
    >>> out = make_nanoaod("small_rntuple.root", 2_000, events_per_basket=500,
    ...                    branches=["event", "Jet_pt"], format="rntuple")
    >>> ntuple = uproot.open(out)["Events"]
    >>> ntuple.keys(), len(ntuple.cluster_summaries)
    (['event', 'nJet', 'Jet_pt'], 4)
    """
    n_events = _check_positive_int(n_events, "n_events")
    events_per_basket = _check_positive_int(events_per_basket, "events_per_basket")
    uproot_compression = _parse_compression(compression)
    given: object = format  # callers without type checking
    kind = given.strip().lower() if isinstance(given, str) else None
    if kind not in _FORMATS:
        msg = f"format must be 'ttree' or 'rntuple', not {given!r}"
        raise ValueError(msg)
    names = list(DEFAULT_BRANCHES) if branches is None else branches
    source_path = ttbar_path() if source is None else os.fspath(source)
    if "://" not in source_path and not pathlib.Path(source_path).is_file():
        msg = f"source file {source_path} does not exist"
        raise FileNotFoundError(msg)
    out = pathlib.Path(path)
    if not out.parent.is_dir():
        msg = f"cannot write {out}: directory {out.parent} does not exist"
        raise FileNotFoundError(msg)

    with uproot.open(source_path) as source_file:
        try:
            source_tree = source_file["Events"]
        except KeyError as err:
            msg = f"there is no 'Events' tree in {source_path}"
            raise ValueError(msg) from err
        plan = _plan(source_tree, source_path, names)

    # all event indices up front (8 bytes per event), so that the content does
    # not depend on events_per_basket
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, plan.num_source_events, size=n_events, dtype=np.int64)
    num_baskets = math.ceil(n_events / events_per_basket)

    try:
        if kind == "rntuple":
            _write_rntuple(out, plan, indices, events_per_basket, uproot_compression)
            return out
        with uproot.recreate(out, compression=uproot_compression) as out_file:
            tree = out_file.mktree(
                "Events",
                plan.branch_types,
                counter_name=lambda name: plan.counter_of.get(name, "n" + name),
                initial_basket_capacity=num_baskets + _BASKET_CAPACITY_MARGIN,
            )
            for start in range(0, n_events, events_per_basket):
                stop = min(start + events_per_basket, n_events)
                tree.extend(_basket_data(plan, indices[start:stop], start))
    except BaseException:
        out.unlink(missing_ok=True)  # no truncated file left behind
        raise
    return out


def _write_rntuple(
    out: pathlib.Path,
    plan: _Plan,
    indices: np.ndarray[Any, Any],
    events_per_cluster: int,
    compression: Any,
) -> None:
    """Write the events of ``plan`` as an ``Events`` RNTuple, one cluster per
    ``events_per_cluster`` events, the counters as int32 fields."""
    members = {name for c in plan.collections for name in c.contents}
    types: dict[str, Any] = {}
    for name, branch_type in plan.branch_types.items():
        counter = plan.counter_of.get(name)
        if name in members and counter is not None and counter not in types:
            types[counter] = np.dtype(np.int32)
        types[name] = branch_type
    with uproot.recreate(out, compression=compression) as out_file:
        ntuple = out_file.mkrntuple("Events", types)
        for start in range(0, len(indices), events_per_cluster):
            stop = min(start + events_per_cluster, len(indices))
            data = _basket_data(plan, indices[start:stop], start)
            for collection in plan.collections:
                if collection.counter in types:
                    first = next(iter(collection.contents))
                    data[collection.counter] = np.asarray(
                        ak.num(data[first], axis=1), dtype=np.int32
                    )
            ntuple.extend({name: data[name] for name in types})


def _basket_data(
    plan: _Plan, index: np.ndarray[Any, Any], first_entry: int
) -> dict[str, Any]:
    """Arrays of one basket: source events ``index``, entries from ``first_entry``."""
    data: dict[str, Any] = {}
    for name, values in plan.scalars.items():
        data[name] = values[index]
    if "event" in plan.branch_types:
        data["event"] = np.arange(
            first_entry + 1, first_entry + len(index) + 1, dtype=np.uint64
        )
    for collection in plan.collections:
        source_offsets = collection.offsets
        starts = source_offsets[index]
        counts = source_offsets[index + 1] - starts
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        # position in the source content of every item of the new basket
        take = np.repeat(starts - offsets[:-1], counts) + np.arange(
            offsets[-1], dtype=np.int64
        )
        ak_offsets = ak.index.Index64(offsets)
        for name, content in collection.contents.items():
            data[name] = ak.Array(
                ak.contents.ListOffsetArray(
                    ak_offsets, ak.contents.NumpyArray(content[take])
                )
            )
    return data


def describe_baskets(
    path: str | os.PathLike[str],
    treename: str = "Events",
    branches: Sequence[str] | None = None,
) -> pd.DataFrame:
    """List every basket of every branch of a tree, with its exact size.

    Only metadata are read: the ``TTree`` and, for each free-standing basket,
    its ``TKey`` (a few tens of bytes); no basket is decompressed.

    Parameters
    ----------
    path : str or os.PathLike
        ROOT file.
    treename : str, optional
        Name of the ``TTree``. Default ``"Events"``.
    branches : sequence of str, optional
        Branches to describe, in this order. Default: all branches of the
        tree, in file order.

    Returns
    -------
    pandas.DataFrame
        One row per (branch, basket) with columns

        ``branch`` (str)
            Branch name.
        ``basket`` (int)
            Basket index in the branch, from 0.
        ``entry_start``, ``entry_stop`` (int)
            Entries (events) in the basket: ``[entry_start, entry_stop)``.
        ``num_entries`` (int)
            ``entry_stop - entry_start``.
        ``embedded`` (bool)
            True if the basket is stored inside the ``TTree`` metadata (as in
            the real NanoAOD test file) instead of as its own object in the
            file.
        ``seek`` (int)
            File offset of a free basket (``fBasketSeek``); -1 if embedded.
        ``key_bytes`` (int)
            Size of the basket's ``TKey`` header (``fKeylen``), which is
            included in both byte counts below.
        ``compressed_bytes`` (int)
            Bytes read from the file to get this basket, ``TKey`` header
            included (``fBasketBytes``, as
            ``TBranch.basket_compressed_bytes``). 0 for an embedded basket:
            its bytes are part of the ``TTree`` metadata, which is read (and
            decompressed) as a whole when the tree is opened.
        ``uncompressed_bytes`` (int)
            Size of the basket once decompressed, ``TKey`` header included
            (``fKeylen + fObjlen``, as ``TBranch.basket_uncompressed_bytes``).
            For an embedded basket, ROOT's ``fObjlen`` is the capacity of its
            in-memory buffer (uproot reports 32000 for every basket of the
            test file), so the actual size is given instead: ``fKeylen`` +
            data bytes + entry offsets (``4 * (num_entries + 2)`` bytes, for
            jagged branches), which is what ``fKeylen + fObjlen`` is for a free
            basket.

        ``DataFrame.attrs`` holds ``file``, ``tree``, ``tree_compressed_bytes``
        and ``tree_uncompressed_bytes`` (size of the ``TTree`` metadata object,
        read whenever the tree is opened; it contains all embedded baskets).

    Raises
    ------
    UnknownBranchError
        (a :class:`KeyError` and a :class:`ValueError`) if a branch is not in
        the tree; the message names the branch and the file.
    ValueError
        If there is no object named ``treename`` in the file.
    TypeError
        If ``treename`` is not a ``TTree``.

    Examples
    --------
    >>> from coffea_sizing.datasets import describe_baskets, ttbar_path
    >>> df = describe_baskets(ttbar_path(), branches=["Jet_pt", "MET_pt"])
    >>> df[["branch", "basket", "entry_start", "entry_stop", "embedded"]]
       branch  basket  entry_start  entry_stop  embedded
    0  Jet_pt       0            0         200      True
    1  MET_pt       0            0         200      True
    """
    columns = [
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
    rows: list[tuple[Any, ...]] = []
    file_path = os.fspath(path)
    with uproot.open(file_path) as file:
        try:
            tree = file[treename]
            key = file.key(treename)
        except KeyError as err:
            msg = f"there is no tree {treename!r} in {file_path}"
            raise ValueError(msg) from err
        if not isinstance(tree, uproot.behaviors.TBranch.HasBranches):
            msg = f"{treename!r} in {file_path} is not a TTree"
            raise TypeError(msg)
        names = list(tree.keys()) if branches is None else _dedupe(branches)
        _check_branches(names, tree.keys(), treename, file_path)
        for name in names:
            rows.extend(_describe_branch(tree[name], name))
        attrs = {
            "file": file_path,
            "tree": treename,
            "tree_compressed_bytes": int(key.fNbytes),
            "tree_uncompressed_bytes": int(key.fKeylen + key.fObjlen),
        }
    df = pd.DataFrame.from_records(rows, columns=columns)
    int_columns = [c for c in columns if c not in {"branch", "embedded"}]
    df = df.astype(dict.fromkeys(int_columns, "int64") | {"embedded": bool})
    df.attrs.update(attrs)
    return df


def _describe_branch(branch: Any, name: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    num_free = branch.num_baskets - len(branch.embedded_baskets)
    seeks = branch.member("fBasketSeek")
    for i in range(branch.num_baskets):
        start, stop = (int(x) for x in branch.basket_entry_start_stop(i))
        if i < num_free:
            basket_key = branch.basket_key(i)
            key_bytes = int(basket_key.fKeylen)
            seek = int(seeks[i])
            compressed = int(branch.basket_compressed_bytes(i))
            # = branch.basket_uncompressed_bytes(i), without reading the key again
            uncompressed = key_bytes + int(basket_key.data_uncompressed_bytes)
            embedded = False
        else:
            basket = branch.basket(i)
            key_bytes = int(basket.member("fKeylen"))
            seek = -1
            compressed = 0
            offsets_bytes = 0 if basket.byte_offsets is None else 4 * (stop - start + 2)
            uncompressed = key_bytes + int(basket.border) + offsets_bytes
            embedded = True
        rows.append(
            (
                name,
                i,
                start,
                stop,
                stop - start,
                embedded,
                seek,
                key_bytes,
                compressed,
                uncompressed,
            )
        )
    return rows


#: Size of the generated file in :func:`default_fileset`.
DEFAULT_GENERATED_EVENTS = 100_000
#: Events per basket of the generated file in :func:`default_fileset`.
DEFAULT_GENERATED_BASKET = 10_000


def default_cache_dir() -> pathlib.Path:
    """Where generated default inputs are kept (``$COFFEA_SIZING_CACHE`` or
    ``~/.cache/coffea-sizing``).

    Examples
    --------
    >>> import os
    >>> from coffea_sizing.datasets import default_cache_dir
    >>> os.environ["COFFEA_SIZING_CACHE"] = "/tmp/sizing-cache"
    >>> str(default_cache_dir())
    '/tmp/sizing-cache'
    >>> del os.environ["COFFEA_SIZING_CACHE"]
    """
    env = os.environ.get("COFFEA_SIZING_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "coffea-sizing"


def default_fileset(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    n_events: int = DEFAULT_GENERATED_EVENTS,
    events_per_basket: int = DEFAULT_GENERATED_BASKET,
) -> dict[str, list[str]]:
    """The embedded default data: the real ttbar file and a generated file.

    The real file (200 events) has its baskets inside the TTree metadata, so it
    shows the fixed per-chunk cost only; the generated file (resampled from it by
    :func:`make_nanoaod`, written once into ``cache_dir`` and reused) has real
    baskets, so bytes read grow with the branches read.

    Parameters
    ----------
    cache_dir : path, optional
        Directory for the generated file; default :func:`default_cache_dir`.
    n_events, events_per_basket : int
        Size and basket size of the generated file.

    Returns
    -------
    dict
        ``{"ttbar": [real file], "generated": [generated file]}``, a coffea fileset.

    Examples
    --------
    >>> import tempfile
    >>> from coffea_sizing.datasets import default_fileset
    >>> fs = default_fileset(tempfile.mkdtemp(), n_events=2_000, events_per_basket=500)
    >>> sorted(fs)
    ['generated', 'ttbar']
    """
    directory = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"nanoaod_{n_events}ev_{events_per_basket}perbasket.root"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp.root")
        make_nanoaod(tmp, n_events, events_per_basket=events_per_basket, seed=0)
        tmp.replace(path)
    return {"ttbar": [ttbar_path()], "generated": [str(path)]}
