"""Predict, from a ROOT file's metadata alone, the bytes coffea reads per chunk.

Covers coffea's ``bytesread`` of every chunk of a ``TTree`` or an RNTuple, to the
byte (:func:`predict_bytesread`), its parts (:func:`open_cost`,
:func:`predict_branch_bytes`), the re-reads of baskets that chunk edges cut
(:func:`amplification`) and coffea's own chunking (:func:`coffea_chunks`). No basket
or page is read. Does not hold the per-format rules (:mod:`coffea_sizing.layout`) or
measure anything (:mod:`coffea_sizing.probe`, the decorator). The rule, why it is
exact and its limits are in ``docs/guide/predict.md``.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .layout import (
    COFFEA_DEFAULT_TIMEOUT,
    Layout,
    OpenCost,
    Units,
    UnknownTreeError,
    _branch_units,
    clear_cache,
    read_layout,
    select_units,
)

__all__ = [
    "COFFEA_DEFAULT_TIMEOUT",
    "Amplification",
    "OpenCost",
    "UnknownTreeError",
    "amplification",
    "clear_cache",
    "coffea_chunks",
    "open_cost",
    "predict_branch_bytes",
    "predict_bytesread",
]

#: Suffixes of the column names in coffea's ``metrics["columns"]``
#: (``f"{branch}-{buffer}"``).
_COLUMN_SUFFIXES = frozenset({"data", "offsets", "content", "index", "mask"})

#: Columns of :func:`predict_bytesread`'s table, in order.
_TABLE_COLUMNS = (
    "entrystart",
    "entrystop",
    "predicted_open_bytes",
    "predicted_payload_bytes",
    "predicted_bytesread",
    "baskets",
    "branch_bytes",
)


@dataclass(frozen=True)
class Amplification:
    """How many times the needed baskets (or pages) are read over a set of chunks.

    For an RNTuple, a "basket" is one column's pages in one cluster and a
    "basket read" one page request.

    Attributes
    ----------
    num_chunks : int
        Number of chunks.
    payload_bytes : int
        Basket bytes read, summed over all chunks (a basket overlapping several
        chunks counts once for each).
    unique_basket_bytes : int
        Bytes of the distinct baskets that at least one chunk reads.
    ratio : float
        ``payload_bytes / unique_basket_bytes``: 1.0 when every needed basket
        is read once (chunk edges on basket edges); 1.0 too when no free basket
        is read at all.
    basket_reads : int
        Basket reads (byte ranges requested), summed over all chunks.
    unique_baskets : int
        Distinct baskets read (byte ranges).
    open_bytes_per_chunk : int
        Fixed cost of every chunk (:attr:`~coffea_sizing.layout.OpenCost.total`).
    total_bytesread : int
        ``payload_bytes + num_chunks * open_bytes_per_chunk``: the sum of the
        chunks' ``bytesread``, as coffea's ``Runner`` reports it.
    """

    num_chunks: int
    payload_bytes: int
    unique_basket_bytes: int
    ratio: float
    basket_reads: int
    unique_baskets: int
    open_bytes_per_chunk: int
    total_bytesread: int

    def to_dict(self) -> dict[str, Any]:
        """The attributes as a plain :class:`dict`."""
        return asdict(self)


def _layout(
    filename: str | os.PathLike[str],
    treename: str,
    uproot_options: Mapping[str, Any] | None,
) -> Layout:
    return read_layout(filename, treename, uproot_options)


def _resolve_columns(
    layout: Layout, columns: Iterable[str], with_counters: bool
) -> list[str]:
    """Branch or field names for ``columns``, deduplicated, in order (counters
    first)."""
    items: Iterable[object] = [columns] if isinstance(columns, str) else columns
    known = set(layout.columns)
    names: list[str] = []
    for column in items:
        if not isinstance(column, str):
            msg = (
                f"columns must be {layout.column_word} names (strings), not {column!r}"
            )
            raise TypeError(msg)
        name = column
        if name not in known:
            # coffea's metrics["columns"] spelling: "Jet_pt-data", "nJet-offsets"
            base, dash, suffix = name.rpartition("-")
            if dash and suffix in _COLUMN_SUFFIXES and base in known:
                name = base
            else:
                raise layout.unknown(column)
        counter = layout.counter(name)
        if with_counters and counter is not None and counter in known:
            names.append(counter)
        names.append(name)
    return list(dict.fromkeys(names))


def _as_entry(value: Any, what: str, index: int, chunk: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        msg = f"chunk {index} ({chunk!r}): {what} must be an integer, not {value!r}"
        raise TypeError(msg)
    return int(value)


def _normalize_chunks(
    chunks: Any, layout: Layout
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
    """``(entrystarts, entrystops)`` of valid chunks, as int64 arrays."""
    if isinstance(chunks, pd.DataFrame):
        missing = [c for c in ("entrystart", "entrystop") if c not in chunks.columns]
        if missing:
            msg = (
                f"the chunks table has no column {', '.join(map(repr, missing))}; "
                f"it needs 'entrystart' and 'entrystop'"
            )
            raise ValueError(msg)
        items: Iterable[Any] = zip(
            chunks["entrystart"].tolist(), chunks["entrystop"].tolist(), strict=True
        )
    elif hasattr(chunks, "entrystart") and hasattr(chunks, "entrystop"):
        msg = (
            f"chunks must be an iterable of chunks, not the single chunk "
            f"{chunks!r} (wrap it in a list)"
        )
        raise TypeError(msg)
    elif isinstance(chunks, Iterable):
        items = chunks
    else:
        msg = f"chunks must be an iterable of (entrystart, entrystop), not {chunks!r}"
        raise TypeError(msg)
    starts: list[int] = []
    stops: list[int] = []
    num_entries = layout.num_entries
    for index, chunk in enumerate(items):
        if hasattr(chunk, "entrystart") and hasattr(chunk, "entrystop"):
            raw_start, raw_stop = chunk.entrystart, chunk.entrystop
        else:
            try:
                raw_start, raw_stop = chunk
            except (TypeError, ValueError):
                msg = (
                    f"chunk {index} ({chunk!r}) is not an (entrystart, entrystop) "
                    f"pair nor an object with .entrystart and .entrystop"
                )
                raise TypeError(msg) from None
        start = _as_entry(raw_start, "entrystart", index, chunk)
        stop = _as_entry(raw_stop, "entrystop", index, chunk)
        if not 0 <= start <= stop <= num_entries:
            msg = (
                f"chunk {index} ({chunk!r}): bad entry range [{start}, {stop}); "
                f"need 0 <= entrystart <= entrystop <= {num_entries} (the number "
                f"of entries of {layout.treename!r} in {layout.filename})"
            )
            raise ValueError(msg)
        starts.append(start)
        stops.append(stop)
    return np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64)


def _basket_ranges(
    units: Units,
    starts: np.ndarray[Any, np.dtype[np.int64]],
    stops: np.ndarray[Any, np.dtype[np.int64]],
) -> tuple[np.ndarray[Any, np.dtype[np.intp]], np.ndarray[Any, np.dtype[np.intp]]]:
    """For each chunk, the units ``[lo, hi)`` uproot reads (see
    :func:`coffea_sizing.layout.select_units`)."""
    return select_units(units, starts, stops)


def _predict(
    filename: str | os.PathLike[str],
    treename: str,
    columns: Iterable[str],
    chunks: Any,
    with_counters: bool,
    uproot_options: Mapping[str, Any] | None,
) -> tuple[
    Layout,
    list[str],
    dict[str, Units],
    np.ndarray[Any, np.dtype[np.int64]],
    np.ndarray[Any, np.dtype[np.int64]],
]:
    layout = _layout(filename, treename, uproot_options)
    names = _resolve_columns(layout, columns, with_counters)
    starts, stops = _normalize_chunks(chunks, layout)
    return layout, names, layout.units(names), starts, stops


def open_cost(
    filename: str | os.PathLike[str],
    treename: str = "Events",
    *,
    uproot_options: Mapping[str, Any] | None = None,
) -> OpenCost:
    """The bytes every coffea chunk reads to open the file and the tree.

    Parameters
    ----------
    filename : str or os.PathLike
        ROOT file (local path or any URL uproot opens).
    treename : str, optional
        Name of the ``TTree`` or RNTuple. Default ``"Events"``.
    uproot_options : mapping, optional
        Options coffea passes to ``uproot.open`` (``Runner(...)(...,
        uproot_options=...)``): ``begin_chunk_size`` or ``handler`` change the
        opening cost. ``timeout`` defaults to coffea's 60 s.

    Returns
    -------
    OpenCost
        ``file_open_bytes``, ``tree_bytes`` and their ``total``.

    Raises
    ------
    FileNotFoundError
        If the (local) file does not exist; the message names it.
    UnknownTreeError
        (a :class:`KeyError` and a :class:`ValueError`) if there is no
        ``treename`` in the file; the message names the tree and the file and
        lists close names.
    TypeError
        If ``treename`` is neither a ``TTree`` nor an RNTuple.
    ValueError
        If the file is a Parquet file or not a ROOT file.

    Examples
    --------
    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.predict import open_cost
    >>> cost = open_cost(ttbar_path(), "Events")
    >>> cost.file_open_bytes, cost.tree_bytes, cost.total
    (527, 336097, 336624)
    """
    return _layout(filename, treename, uproot_options).cost


def predict_bytesread(
    filename: str | os.PathLike[str],
    treename: str,
    columns: Iterable[str],
    chunks: Any,
    *,
    with_counters: bool = False,
    uproot_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Predict coffea's ``bytesread`` for each chunk, to the byte.

    Only metadata are read (the file's keys and the ``TTree`` object, once per
    file and tree in the process); no basket is read.

    Parameters
    ----------
    filename : str or os.PathLike
        ROOT file.
    treename : str
        Name of the ``TTree`` or RNTuple (coffea's ``treename``).
    columns : iterable of str
        Branches the processor materialises, e.g. ``["nJet", "Jet_pt"]`` for
        ``events.Jet.pt`` with ``NanoAODSchema``. coffea's ``metrics["columns"]``
        spelling (``"Jet_pt-data"``, ``"nJet-offsets"``) is accepted too.
        Duplicates are counted once (a chunk reads a branch once).
    chunks : iterable or pandas.DataFrame
        ``(entrystart, entrystop)`` pairs, objects with ``.entrystart`` and
        ``.entrystop`` (coffea ``WorkItem`` s), or a table with ``entrystart``
        and ``entrystop`` columns. See :func:`coffea_chunks`.
    with_counters : bool, optional
        Also read the counter of every jagged branch (``nJet`` for
        ``Jet_pt``), as ``NanoAODSchema`` does. Default False: ``columns`` are
        taken as the complete list.
    uproot_options : mapping, optional
        The ``uproot_options`` given to coffea's ``Runner``, if any.

    Returns
    -------
    pandas.DataFrame
        One row per chunk, in order, with columns

        ``entrystart``, ``entrystop`` (int)
            The chunk.
        ``predicted_open_bytes`` (int)
            Fixed cost of every chunk: opening the file and reading the
            ``TTree`` object (:func:`open_cost`).
        ``predicted_payload_bytes`` (int)
            Sum of ``fBasketBytes`` (TKey header included) over the free
            baskets read: for every branch, each basket overlapping
            ``[entrystart, entrystop)`` (for an empty chunk, the basket holding
            ``entrystart``, as uproot does).
        ``predicted_bytesread`` (int)
            ``predicted_open_bytes + predicted_payload_bytes``.
        ``baskets`` (int)
            Number of free baskets read (each one is a separate byte range);
            for an RNTuple, the number of pages read.
        ``branch_bytes`` (dict)
            Payload of each branch (or RNTuple field), ``{branch: bytes}``. For
            an RNTuple, a column two fields share (ROOT's projected ``nJet`` and
            ``Jet_pt``) counts for the first of them in ``columns``.

        ``DataFrame.attrs`` holds ``file``, ``tree``, ``num_entries``,
        ``branches`` (the branches read), ``file_open_bytes`` and
        ``tree_bytes``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist; the message names it.
    UnknownTreeError
        (a :class:`KeyError` and a :class:`ValueError`) if there is no
        ``treename`` in the file; the message names tree and file and lists
        close names.
    UnknownBranchError
        (a :class:`KeyError` and a :class:`ValueError`) if a column is not a
        branch of the tree; the message names it and the file.
    ValueError
        If a chunk is not within ``0 <= entrystart <= entrystop <=
        num_entries``; the message names the chunk.
    TypeError
        If a chunk is not a pair of integers or a ``WorkItem``.

    Notes
    -----
    ``bytesread`` counts the bytes uproot *requested*
    (``source.num_requested_bytes``), not those the operating system or the
    network moved. It is the same for every executor, since coffea opens the file
    again for each chunk; it does not depend on the processor beyond the set of
    branches it materialises.

    Examples
    --------
    In the real NanoAOD test file every basket is embedded in the ``TTree``: a
    chunk costs the opening alone, whatever it reads.

    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.predict import predict_bytesread
    >>> df = predict_bytesread(
    ...     ttbar_path(), "Events", ["nJet", "Jet_pt"], [(0, 100), (100, 200)]
    ... )
    >>> df[["entrystart", "entrystop", "predicted_bytesread", "baskets"]]
       entrystart  entrystop  predicted_bytesread  baskets
    0           0        100               336624        0
    1         100        200               336624        0

    ``LHEPdfWeight`` is the exception: two free baskets for entries 0-76 and
    76-152 (18,166 and 18,003 bytes), then an embedded one.

    >>> df = predict_bytesread(
    ...     ttbar_path(), "Events", ["LHEPdfWeight"], [(0, 100), (150, 200)]
    ... )
    >>> df[["predicted_payload_bytes", "baskets"]]
       predicted_payload_bytes  baskets
    0                    36169        2
    1                    18003        1
    """
    layout, names, units, starts, stops = _predict(
        filename, treename, columns, chunks, with_counters, uproot_options
    )
    num_chunks = len(starts)
    payload = np.zeros(num_chunks, dtype=np.int64)
    baskets = np.zeros(num_chunks, dtype=np.int64)
    per_branch: dict[str, list[int]] = {}
    for name in names:
        branch = units[name]
        lo, hi = select_units(branch, starts, stops)
        nbytes = branch.cum_bytes[hi] - branch.cum_bytes[lo]
        payload += nbytes
        baskets += branch.cum_requests[hi] - branch.cum_requests[lo]
        per_branch[name] = nbytes.tolist()
    open_bytes = layout.cost.total
    df = pd.DataFrame(
        {
            "entrystart": starts,
            "entrystop": stops,
            "predicted_open_bytes": np.full(num_chunks, open_bytes, dtype=np.int64),
            "predicted_payload_bytes": payload,
            "predicted_bytesread": payload + open_bytes,
            "baskets": baskets,
            "branch_bytes": pd.Series(
                [
                    {name: per_branch[name][i] for name in names}
                    for i in range(num_chunks)
                ],
                dtype=object,
            ),
        },
        columns=list(_TABLE_COLUMNS),
    )
    df.attrs.update(
        {
            "file": layout.filename,
            "tree": layout.treename,
            "num_entries": layout.num_entries,
            "branches": names,
            "file_open_bytes": layout.cost.file_open_bytes,
            "tree_bytes": layout.cost.tree_bytes,
        }
    )
    return df


def predict_branch_bytes(
    filename: str | os.PathLike[str],
    treename: str,
    columns: Iterable[str],
    chunks: Any,
    *,
    with_counters: bool = False,
    uproot_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Predicted payload of each branch in each chunk.

    Parameters are those of :func:`predict_bytesread`.

    Returns
    -------
    pandas.DataFrame
        One row per chunk, indexed by ``(entrystart, entrystop)``, one int64
        column per branch read: the bytes of its free baskets that the chunk
        reads (TKey headers included). The rows sum to
        ``predicted_payload_bytes``.

    Examples
    --------
    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.predict import predict_branch_bytes
    >>> table = predict_branch_bytes(
    ...     ttbar_path(), "Events", ["Jet_pt", "LHEPdfWeight"], [(0, 80), (80, 200)]
    ... )
    >>> table.reset_index()
       entrystart  entrystop  Jet_pt  LHEPdfWeight
    0           0         80       0         36169
    1          80        200       0         18003
    """
    _, names, units, starts, stops = _predict(
        filename, treename, columns, chunks, with_counters, uproot_options
    )
    data: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
    for name in names:
        branch = units[name]
        lo, hi = select_units(branch, starts, stops)
        data[name] = branch.cum_bytes[hi] - branch.cum_bytes[lo]
    index = pd.MultiIndex.from_arrays(
        [starts, stops], names=["entrystart", "entrystop"]
    )
    return pd.DataFrame(data, index=index, columns=names, dtype=np.int64)


def amplification(
    filename: str | os.PathLike[str],
    treename: str,
    columns: Iterable[str],
    chunks: Any,
    *,
    with_counters: bool = False,
    uproot_options: Mapping[str, Any] | None = None,
) -> Amplification:
    """How much more basket data a set of chunks reads than it needs.

    A basket that straddles a chunk edge is read, whole, by every chunk it
    overlaps; the ratio of the bytes read (summed over chunks) to the bytes of the
    distinct baskets needed measures that waste. Parameters are those of
    :func:`predict_bytesread`.

    Returns
    -------
    Amplification
        ``payload_bytes``, ``unique_basket_bytes``, their ``ratio``, basket
        counts, ``open_bytes_per_chunk`` and ``total_bytesread`` (use
        ``.to_dict()`` for a :class:`dict`).

    Examples
    --------
    The test file has no free basket but those of ``LHEPdfWeight``: entries
    0-76 (18,166 bytes) and 76-152 (18,003 bytes). With chunks of 50 entries,
    the first is read by two chunks and the second by three.

    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.predict import amplification
    >>> chunks = [(0, 50), (50, 100), (100, 150), (150, 200)]
    >>> amp = amplification(ttbar_path(), "Events", ["LHEPdfWeight"], chunks)
    >>> amp.payload_bytes, amp.unique_basket_bytes, round(amp.ratio, 3)
    (90341, 36169, 2.498)
    >>> amp.basket_reads, amp.unique_baskets, amp.open_bytes_per_chunk
    (5, 2, 336624)
    """
    layout, names, units, starts, stops = _predict(
        filename, treename, columns, chunks, with_counters, uproot_options
    )
    payload = 0
    reads = 0
    unique_bytes = 0
    unique_baskets = 0
    for name in names:
        branch = units[name]
        lo, hi = select_units(branch, starts, stops)
        payload += int((branch.cum_bytes[hi] - branch.cum_bytes[lo]).sum())
        reads += int((branch.cum_requests[hi] - branch.cum_requests[lo]).sum())
        # baskets covered by at least one [lo, hi)
        coverage = np.zeros(len(branch.nbytes) + 1, dtype=np.int64)
        np.add.at(coverage, lo, 1)
        np.add.at(coverage, hi, -1)
        used = np.cumsum(coverage[:-1]) > 0
        unique_bytes += int(branch.nbytes[used].sum())
        unique_baskets += int(branch.requests[used].sum())
    ratio = payload / unique_bytes if unique_bytes else 1.0
    open_bytes = layout.cost.total
    return Amplification(
        num_chunks=len(starts),
        payload_bytes=payload,
        unique_basket_bytes=unique_bytes,
        ratio=ratio,
        basket_reads=reads,
        unique_baskets=unique_baskets,
        open_bytes_per_chunk=open_bytes,
        total_bytesread=payload + len(starts) * open_bytes,
    )


def coffea_chunks(
    filename: str | os.PathLike[str],
    treename: str,
    chunksize: int,
    *,
    align_clusters: bool = False,
    uproot_options: Mapping[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """The chunks coffea's ``Runner`` makes of one file (static chunk size).

    Same rule as ``coffea.processor.executor.FileMeta.chunks``: with ``n =
    max(round(num_entries / chunksize), 1)`` chunks of ``ceil(num_entries / n)``
    entries (the last one shorter), or, with ``align_clusters=True``, chunks
    made of whole clusters (the tree's common basket boundaries, or the
    RNTuple's clusters), each at least ``chunksize`` entries long but the last.
    Executors that change the chunk size on the fly (dynamic chunking) are not
    replicated.

    Parameters
    ----------
    filename : str or os.PathLike
        ROOT file.
    treename : str
        Name of the ``TTree`` or RNTuple.
    chunksize : int
        coffea's ``Runner(chunksize=...)``, at least 1.
    align_clusters : bool, optional
        coffea's ``Runner(align_clusters=...)``.
    uproot_options : mapping, optional
        Options for ``uproot.open``.

    Returns
    -------
    list of (int, int)
        ``(entrystart, entrystop)`` of every chunk; ``[(0, 0)]`` for an empty
        tree, as coffea does.

    Examples
    --------
    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.predict import coffea_chunks
    >>> coffea_chunks(ttbar_path(), "Events", 70)
    [(0, 67), (67, 134), (134, 200)]
    """
    if isinstance(chunksize, bool) or not isinstance(chunksize, (int, np.integer)):
        msg = f"chunksize must be an integer, not {chunksize!r}"
        raise TypeError(msg)
    if chunksize < 1:
        msg = f"chunksize must be at least 1, got {chunksize}"
        raise ValueError(msg)
    layout = _layout(filename, treename, uproot_options)
    num_entries = layout.num_entries
    if align_clusters:
        clusters = layout.clusters
        edges = [0]
        for c in clusters:
            if c >= edges[-1] + chunksize:
                edges.append(c)
        if clusters[-1] != edges[-1]:
            edges.append(clusters[-1])
        if edges == [0]:
            return [(0, 0)]
        return list(itertools.pairwise(edges))
    if num_entries == 0:
        return [(0, 0)]
    n = max(round(num_entries / chunksize), 1)
    size = math.ceil(num_entries / n)
    return [(s, min(num_entries, s + size)) for s in range(0, num_entries, size)]


#: The per-branch layout under its former name (``benchmarks/hotspots.py`` times
#: the decorator's former rule with it).
_branch_layout = _branch_units
