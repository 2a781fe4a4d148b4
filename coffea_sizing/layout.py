"""Which bytes coffea's reads touch in a ROOT file: one interface for TTree and RNTuple.

One question, answered once per format: reading the columns ``C`` of a tree for the
entries ``[a, b)``, which byte ranges does uproot request, and what does opening the
file and the tree cost (every coffea chunk opens its file afresh)?

``TTree``
    A branch is a list of baskets. uproot reads basket ``i`` (entries ``[s_i, e_i)``)
    for ``[a, b)`` if ``a < e_i and (s_i < b or a == b == s_i)``, whole, as one
    request of ``fBasketBytes[i]`` (its key header included). Embedded baskets came
    with the ``TTree`` object and cost nothing more.
``RNTuple``
    A field is a set of columns (offsets and data; a record field, all its
    subfields'), each stored as pages inside clusters. uproot reads, for
    ``[a, b)``, *every page of every column of the field in the clusters
    ``lo .. hi - 1``* with ``lo`` the cluster holding ``a`` and ``hi`` the number
    of clusters whose first entry is ``<= b``: a chunk ending exactly on a
    cluster edge also reads the whole next cluster (uproot 5.7's
    ``searchsorted(..., side="right")`` for the stop). Each page is one request of
    its locator's size (the page checksum is not read). A column shared by two
    fields (a collection's offsets, ROOT's projected ``nJet``) is read once per
    chunk: uproot keeps it in the file's array cache (100 MB by default: a chunk
    whose shared columns do not fit would read them again, which is not
    modelled). A suppressed column is replaced, cluster by cluster, by the
    field's active representation.

Opening costs what uproot requests to get the tree ready, as coffea does it
(measured on the file, not computed): the file header and the root directory's
keys, then the ``TTree`` object, or the RNTuple anchor, header, footer and every
page list. :class:`Layout` holds all that for one file and tree;
:func:`read_layout` makes it (cached); :meth:`Layout.units` gives, per column, the
read units and their bytes; :func:`select_units` applies the rule to many chunks.
:func:`column_bytes` answers for one chunk from a tree already in memory (the
decorator's per-column bytes), without reading anything.

Not here: the tables, amplification and chunking built on this
(:mod:`coffea_sizing.predict`), Parquet (coffea counts no bytes for it; see the
RNTuple and Parquet page of the docs). Import-light: numpy at import, uproot when a
file is read (the decorator imports this module on the workers).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import pathlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "COFFEA_DEFAULT_TIMEOUT",
    "Layout",
    "OpenCost",
    "Units",
    "UnknownTreeError",
    "basket_bytes",
    "clear_cache",
    "column_bytes",
    "read_layout",
    "select_units",
]

#: coffea's default ``Runner.xrootdtimeout``, passed to ``uproot.open`` as
#: ``timeout`` (it has no effect on local files).
COFFEA_DEFAULT_TIMEOUT = 60

#: Most (file, tree) layouts kept in the in-process cache.
_CACHE_SIZE = 64

#: The first bytes of a Parquet file.
_PARQUET_MAGIC = b"PAR1"

_Int64Array = np.ndarray[Any, np.dtype[np.int64]]
_IntpArray = np.ndarray[Any, np.dtype[np.intp]]


class UnknownTreeError(KeyError, ValueError):
    """A tree name that is not in a file.

    It is both a :class:`KeyError` and a :class:`ValueError`; its message names
    the tree and the file, and lists the close names and the trees in the file.
    """

    def __str__(self) -> str:
        # KeyError would show the repr of the message (in quotes)
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class OpenCost:
    """The fixed bytes every chunk reads before any basket or page.

    Attributes
    ----------
    file_open_bytes : int
        Opening the file: its header (uproot's first request, 403 bytes by
        default) and the root directory's list of keys (``fNbytesKeys + 8``).
    tree_bytes : int
        Getting the tree ready: for a ``TTree``, its object (``fNbytes -
        fKeylen`` of its key, with the embedded baskets) and whatever uproot needs
        to type its branches (nothing more for NanoAOD); for an RNTuple, its
        anchor, header, footer and page lists.
    """

    file_open_bytes: int
    tree_bytes: int

    @property
    def total(self) -> int:
        """``file_open_bytes + tree_bytes``: ``bytesread`` of a chunk reading no
        basket or page."""
        return self.file_open_bytes + self.tree_bytes


@dataclass(frozen=True)
class Units:
    """The read units of one column: baskets of a branch, clusters of a field.

    Attributes
    ----------
    starts, stops : numpy.ndarray
        First entry of each unit and one past its last.
    nbytes : numpy.ndarray
        Bytes uproot requests to read the unit: ``fBasketBytes`` of a free
        basket (0 if embedded); the sizes of the column's pages in the cluster.
    requests : numpy.ndarray
        Byte ranges requested for the unit: 1 per free basket (0 if embedded);
        the number of pages in the cluster.
    rule : str
        ``"basket"`` (``TTree``) or ``"cluster"`` (RNTuple): which units a chunk
        reads (see the module notes and :func:`select_units`).
    counter : str or None
        The counter of a jagged branch or field (``nJet`` for ``Jet_pt``).
    """

    starts: _Int64Array
    stops: _Int64Array
    nbytes: _Int64Array
    requests: _Int64Array
    rule: str
    counter: str | None = None
    cum_bytes: _Int64Array = field(init=False, repr=False)
    cum_requests: _Int64Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, values in (
            ("cum_bytes", self.nbytes),
            ("cum_requests", self.requests),
        ):
            cum = np.zeros(len(values) + 1, dtype=np.int64)
            np.cumsum(values, out=cum[1:])
            object.__setattr__(self, name, cum)


def select_units(
    units: Units, starts: _Int64Array, stops: _Int64Array
) -> tuple[_IntpArray, _IntpArray]:
    """For each chunk ``[starts[j], stops[j])``, the units ``[lo, hi)`` uproot reads.

    ``"basket"``: basket ``i`` for ``[a, b)`` if ``a < stops[i] and (starts[i] <
    b or a == b == starts[i])`` (uproot's ``TBranch.entries_to_ranges_or_baskets``).
    ``"cluster"``: clusters ``searchsorted(starts, a, "right") - 1`` to
    ``searchsorted(starts, b, "right")`` (uproot's ``HasFields.arrays``), so a chunk
    ending on a cluster edge reads the next cluster too. With non-decreasing unit
    boundaries both are contiguous ranges.

    Examples
    --------
    >>> import numpy as np
    >>> from coffea_sizing.layout import Units, select_units
    >>> edges = np.array([0, 100, 200, 300])
    >>> one = np.ones(3, dtype=np.int64)
    >>> chunks = np.array([0, 100, 150]), np.array([100, 150, 300])
    >>> lo, hi = select_units(Units(edges[:-1], edges[1:], one, one, "basket"), *chunks)
    >>> lo.tolist(), hi.tolist()
    ([0, 1, 1], [1, 2, 3])
    >>> lo, hi = select_units(Units(edges[:-1], edges[1:], one, one, "cluster"), *chunks)
    >>> lo.tolist(), hi.tolist()  # [0, 100) reads the cluster starting at 100 too
    ([0, 1, 1], [2, 2, 3])
    """
    if units.rule == "cluster":
        lo = np.maximum(np.searchsorted(units.starts, starts, side="right") - 1, 0)
        hi = np.searchsorted(units.starts, stops, side="right")
        return lo, np.maximum(hi, lo)
    return _basket_span(units.starts, units.stops, starts, stops)


def _basket_span(unit_starts: Any, unit_stops: Any, starts: Any, stops: Any) -> Any:
    """The ``"basket"`` rule, for arrays of chunks or for one chunk (scalars)."""
    lo = np.searchsorted(unit_stops, starts, side="right")
    hi_nonempty = np.searchsorted(unit_starts, stops, side="left")
    hi_empty = np.searchsorted(unit_starts, stops, side="right")
    hi = np.where(starts == stops, hi_empty, hi_nonempty)
    return lo, np.maximum(hi, lo)


@dataclass(frozen=True)
class Layout:
    """What reading one tree of one file costs, chunk by chunk.

    Attributes
    ----------
    filename, treename : str
        The file and the tree (``TTree`` or RNTuple).
    kind : str
        ``"TTree"`` or ``"RNTuple"``.
    num_entries : int
        Entries of the tree.
    cost : OpenCost
        What every chunk reads to open the file and the tree.
    clusters : list of int
        Entry boundaries coffea aligns chunks on (``align_clusters=True``): the
        ``TTree``'s common basket boundaries, or the RNTuple's cluster starts
        and ``num_entries``.
    columns : list of str
        The branches or fields, in the file's order (the names coffea's access
        log and ``metrics["columns"]`` use).
    """

    filename: str
    treename: str
    kind: str
    num_entries: int
    cost: OpenCost
    clusters: list[int]
    columns: list[str]
    _branches: dict[str, Units] = field(default_factory=dict, repr=False)
    _counters: dict[str, str] = field(default_factory=dict, repr=False)
    _field_columns: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _page_bytes: _Int64Array | None = field(default=None, repr=False)
    _page_counts: _Int64Array | None = field(default=None, repr=False)

    @property
    def column_word(self) -> str:
        """``"branch"`` for a ``TTree``, ``"field"`` for an RNTuple (in messages)."""
        return "field" if self.kind == "RNTuple" else "branch"

    def counter(self, name: str) -> str | None:
        """The counter of a jagged branch or field, or None."""
        return self._counters.get(name)

    def units(self, names: Iterable[str]) -> dict[str, Units]:
        """The read units of each of ``names`` (known columns), in order.

        For an RNTuple, a column already read by an earlier name is left out of
        the later ones (uproot's array cache reads it once per chunk), so the
        bytes of the names add up to what the chunk reads.
        """
        if self.kind != "RNTuple":
            return {name: self._branches[name] for name in names}
        assert self._page_bytes is not None
        assert self._page_counts is not None
        edges = np.asarray(self.clusters, dtype=np.int64)
        seen: set[int] = set()
        result: dict[str, Units] = {}
        for name in names:
            cols = [c for c in self._field_columns[name] if c not in seen]
            seen.update(cols)
            result[name] = Units(
                starts=edges[:-1],
                stops=edges[1:],
                nbytes=self._page_bytes[:, cols].sum(axis=1, dtype=np.int64),
                requests=self._page_counts[:, cols].sum(axis=1, dtype=np.int64),
                rule="cluster",
                counter=self._counters.get(name),
            )
        return result

    def unknown(self, name: str) -> KeyError:
        """The error for a column that is not in the tree (close names listed): a
        :class:`~coffea_sizing.datasets.UnknownBranchError`."""
        from .datasets import UnknownBranchError  # numpy-only import time kept

        what = "RNTuple" if self.kind == "RNTuple" else "tree"
        msg = (
            f"{self.column_word} {name!r} is not in the {self.treename!r} {what} "
            f"of {self.filename}"
        )
        close = difflib.get_close_matches(name, self.columns, n=3)
        if close:
            msg += f" (did you mean {', '.join(map(repr, close))}?)"
        return UnknownBranchError(msg)


# --------------------------------------------------------------------- TTree
def basket_bytes(branch: Any, start: int, stop: int) -> int:
    """Compressed bytes uproot reads for ``branch`` to get entries ``[start, stop)``.

    The ``"basket"`` rule of :func:`select_units` for one chunk, from the
    ``TBranch`` metadata already in memory (nothing is read from the file):
    free basket ``i`` weighs ``fBasketBytes[i]`` (its key header included),
    embedded baskets weigh 0.

    Parameters
    ----------
    branch : uproot.TBranch
        The branch, from the tree the chunk was read from.
    start, stop : int
        The chunk's entry range.

    Returns
    -------
    int

    Examples
    --------
    >>> import uproot
    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.layout import basket_bytes
    >>> tree = uproot.open(ttbar_path())["Events"]
    >>> basket_bytes(tree["Jet_pt"], 0, 200)  # embedded in the TTree metadata
    0
    >>> basket_bytes(tree["LHEPdfWeight"], 0, 100)  # two free baskets: 0-76, 76-152
    36169
    """
    num_free = int(branch.num_baskets) - len(branch.embedded_baskets)
    if num_free <= 0:
        return 0
    entry = np.asarray(branch.member("fBasketEntry"))
    lo, hi = _basket_span(entry[:num_free], entry[1 : num_free + 1], start, stop)
    if hi <= lo:
        return 0
    return int(np.sum(branch.member("fBasketBytes")[int(lo) : int(hi)], dtype=np.int64))


def _branch_units(branch: Any) -> Units:
    num_baskets = int(branch.num_baskets)
    num_free = num_baskets - len(branch.embedded_baskets)
    offsets = np.asarray(branch.entry_offsets, dtype=np.int64)
    nbytes = np.zeros(num_baskets, dtype=np.int64)
    nbytes[:num_free] = np.asarray(
        branch.member("fBasketBytes")[:num_free], dtype=np.int64
    )
    free = np.zeros(num_baskets, dtype=np.int64)
    free[:num_free] = 1
    count_branch = branch.count_branch
    return Units(
        starts=offsets[:-1],
        stops=offsets[1:],
        nbytes=nbytes,
        requests=free,
        rule="basket",
        counter=None if count_branch is None else str(count_branch.name),
    )


# ------------------------------------------------------------------- RNTuple
def _form_columns(form: Any, found: list[int]) -> None:
    """Column indices of an awkward form from uproot's ``to_akform``, in the order
    uproot's ``HasFields.arrays`` reads them (its ``_recursive_find``)."""
    key = getattr(form, "form_key", None)
    if isinstance(key, str) and "column" in key:
        index = int(key.split("-")[1])
        if index not in found:
            found.append(index)
    for content in getattr(form, "contents", None) or ():
        _form_columns(content, found)
    content = getattr(form, "content", None)
    if content is not None and hasattr(content, "form_key"):
        _form_columns(content, found)


def _field_columns(rfield: Any) -> tuple[int, ...]:
    """The columns uproot reads for ``rfield.array(...)``."""
    form, _ = rfield.to_akform()
    found: list[int] = []
    _form_columns(form, found)
    return tuple(found)


def _active_column(ntuple: Any, linklist: Any, col: int) -> int:
    """``col``, or the field's representation not suppressed in this cluster."""
    if col < len(linklist) and linklist[col].suppressed:
        related = ntuple._column_records_dict[ntuple.column_records[col].field_id]
        return int(next(cr.idx for cr in related if not linklist[cr.idx].suppressed))
    return col


def _page_matrix(
    ntuple: Any, clusters: range, columns: Iterable[int]
) -> tuple[dict[int, _Int64Array], dict[int, _Int64Array]]:
    """Bytes and number of pages of each column in each of ``clusters``."""
    cols = list(columns)
    nbytes = {c: np.zeros(len(clusters), dtype=np.int64) for c in cols}
    counts = {c: np.zeros(len(clusters), dtype=np.int64) for c in cols}
    page_link_list = ntuple.page_link_list
    for row, cluster in enumerate(clusters):
        linklist = page_link_list[cluster]
        for c in cols:
            active = _active_column(ntuple, linklist, c)
            pages = linklist[active].pages if active < len(linklist) else []
            nbytes[c][row] = sum(int(p.locator.num_bytes) for p in pages)
            counts[c][row] = len(pages)
    return nbytes, counts


def _is_rntuple(obj: Any) -> bool:
    import uproot

    return isinstance(obj, uproot.behaviors.RNTuple.HasFields) and hasattr(
        obj, "cluster_summaries"
    )


def _rntuple_counters(fields: Mapping[str, Any]) -> dict[str, str]:
    """NanoAOD counters: ``nJet`` for ``Jet_pt`` when both are fields and
    ``Jet_pt`` is a list."""
    counters: dict[str, str] = {}
    for name, rfield in fields.items():
        prefix, sep, _ = name.rpartition(".")[2].partition("_")
        candidate = f"n{prefix}"
        if sep and candidate in fields and candidate != name:
            try:
                form, _ = rfield.to_akform()
                content = form.contents[0] if form.contents else None
            except Exception:  # noqa: BLE001 - an odd field has no counter
                content = None
            if content is not None and type(content).__name__.startswith("ListOffset"):
                counters[name] = candidate
    return counters


def _rntuple_cluster_edges(ntuple: Any) -> list[int]:
    starts = [int(c.num_first_entry) for c in ntuple.cluster_summaries]
    return [*starts, int(ntuple.num_entries)] if starts else [0]


# --------------------------------------------------------------- reading
_cache: dict[tuple[Any, ...], Layout] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the metadata of every file read so far in this process.

    The cache is keyed by file path, tree name, ``uproot_options`` and, for local
    files, size, modification time and inode, so a rewritten file is read again
    anyway; this only frees memory.
    """
    with _cache_lock:
        _cache.clear()


def _local_path(filename: str) -> str | None:
    """The local path of ``filename``, or None for a remote URL."""
    if filename.startswith("file://"):
        return filename[len("file://") :]
    if "://" in filename:
        return None
    return filename


def _options_key(options: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), repr(v)) for k, v in options.items()))


def _tree_not_found(file: Any, treename: str, filename: str) -> UnknownTreeError:
    msg = f"there is no tree {treename!r} in {filename}"
    try:
        classnames = file.classnames(recursive=True, cycle=False)
    except Exception:  # noqa: BLE001 (a broken subdirectory must not hide the error)
        classnames = {}
    names = list(classnames)
    trees = [
        n for n, c in classnames.items() if c in {"TTree", "TNtuple", "ROOT::RNTuple"}
    ]
    close = difflib.get_close_matches(treename, names, n=3)
    if close:
        msg += f" (did you mean {', '.join(map(repr, close))}?)"
    if trees:
        shown = ", ".join(map(repr, trees[:10])) + (", ..." if len(trees) > 10 else "")
        msg += f"; trees in the file: {shown}"
    else:
        msg += "; the file has no TTree and no RNTuple"
    return UnknownTreeError(msg)


def _check_root_file(name: str, local: str | None) -> None:
    """A clear error for a Parquet (or any non-ROOT) file given as a ROOT file."""
    if local is None:
        return
    with open(local, "rb") as stream:
        magic = stream.read(4)
    if magic == _PARQUET_MAGIC:
        msg = (
            f"{name} is a Parquet file, not a ROOT file: coffea reads it with "
            f"Runner(format='parquet'), which reports no bytesread, so there is "
            f"nothing to predict (see the RNTuple and Parquet page of the docs)"
        )
        raise ValueError(msg)
    if magic != b"root":
        msg = (
            f"{name} is not a ROOT file (it starts with {magic!r}, not b'root'); "
            f"give a ROOT file with a TTree or an RNTuple"
        )
        raise ValueError(msg)


def _read(filename: str, treename: str, options: dict[str, Any]) -> Layout:
    """Open the file as coffea does and read the tree's metadata."""
    import uproot

    timeout = options.pop("timeout", COFFEA_DEFAULT_TIMEOUT)
    # the same call as coffea's Runner._work_function (a dict: no "file:tree"
    # parsing of the name)
    with uproot.open({filename: None}, timeout=timeout, **options) as file:
        source = file.file.source
        file_open_bytes = int(source.num_requested_bytes)
        try:
            tree = file[treename]
        except KeyError:  # uproot.KeyInFileError
            raise _tree_not_found(file, treename, filename) from None
        if _is_rntuple(tree):
            # coffea's NanoEventsFactory types every field (header, footer) and
            # uproot reads every page list before the first chunk's read
            fields = dict(tree.iteritems())
            columns = {name: _field_columns(f) for name, f in fields.items()}
            edges = _rntuple_cluster_edges(tree)
            _ = tree.page_link_list
            tree_bytes = int(source.num_requested_bytes) - file_open_bytes
            used = sorted({c for cols in columns.values() for c in cols})
            nbytes, counts = _page_matrix(tree, range(len(edges) - 1), used)
            width = max(used, default=-1) + 1
            page_bytes = np.zeros((len(edges) - 1, width), dtype=np.int64)
            page_counts = np.zeros((len(edges) - 1, width), dtype=np.int64)
            for c in used:
                page_bytes[:, c] = nbytes[c]
                page_counts[:, c] = counts[c]
            return Layout(
                filename=filename,
                treename=treename,
                kind="RNTuple",
                num_entries=int(tree.num_entries),
                cost=OpenCost(file_open_bytes=file_open_bytes, tree_bytes=tree_bytes),
                clusters=edges,
                columns=list(fields),
                _counters=_rntuple_counters(fields),
                _field_columns=columns,
                _page_bytes=page_bytes,
                _page_counts=page_counts,
            )
        if not isinstance(tree, uproot.behaviors.TTree.TTree):
            msg = (
                f"{treename!r} in {filename} is a {type(tree).__name__}, neither a "
                f"TTree nor an RNTuple"
            )
            raise TypeError(msg)
        # NanoEventsFactory.from_root types every branch (tree.typenames(), then
        # each branch's interpretation): for some classes that reads the
        # streamers, which coffea then counts too. Nothing is read for NanoAOD.
        with contextlib.suppress(Exception):
            tree.typenames()
        tree_bytes = int(source.num_requested_bytes) - file_open_bytes
        branches = {name: _branch_units(branch) for name, branch in tree.iteritems()}
        return Layout(
            filename=filename,
            treename=treename,
            kind="TTree",
            num_entries=int(tree.num_entries),
            cost=OpenCost(file_open_bytes=file_open_bytes, tree_bytes=tree_bytes),
            clusters=[int(x) for x in tree.common_entry_offsets()],
            columns=list(branches),
            _branches=branches,
            _counters={n: u.counter for n, u in branches.items() if u.counter},
        )


def read_layout(
    filename: str | os.PathLike[str],
    treename: str,
    uproot_options: Mapping[str, Any] | None = None,
) -> Layout:
    """The :class:`Layout` of a tree, read once per process (cached).

    Parameters
    ----------
    filename : str or os.PathLike
        ROOT file (local path or any URL uproot opens).
    treename : str
        Name of the ``TTree`` or RNTuple.
    uproot_options : mapping, optional
        Options coffea passes to ``uproot.open``; ``timeout`` defaults to
        coffea's 60 s.

    Returns
    -------
    Layout

    Raises
    ------
    FileNotFoundError
        If the (local) file does not exist.
    ValueError
        If the file is a Parquet file or not a ROOT file.
    UnknownTreeError
        If there is no ``treename`` in the file.
    TypeError
        If ``treename`` is neither a ``TTree`` nor an RNTuple.

    Examples
    --------
    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.layout import read_layout
    >>> layout = read_layout(ttbar_path(), "Events")
    >>> layout.kind, layout.num_entries, layout.cost.total
    ('TTree', 200, 336624)
    """
    name = os.fspath(filename)
    given: object = treename  # callers without type checking
    if not isinstance(given, str):
        msg = f"treename must be a string, not {given!r}"
        raise TypeError(msg)
    options = dict(uproot_options or {})
    local = _local_path(name)
    signature: tuple[int, ...] = ()
    if local is not None:
        path = pathlib.Path(local)
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            msg = f"ROOT file {name} {what}"
            raise FileNotFoundError(msg)
        stat = path.stat()
        signature = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    key = (name, treename, signature, _options_key(options))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    _check_root_file(name, local)
    layout = _read(name, treename, options)
    with _cache_lock:
        while len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = layout
    return layout


# ------------------------------------------------------- one chunk, in memory
def column_bytes(
    tree: Any, names: Iterable[str], start: int, stop: int
) -> dict[str, int | None]:
    """Bytes uproot reads for each of ``names`` to get entries ``[start, stop)``.

    From the metadata of a tree already in memory (the one coffea opened for the
    chunk): nothing is read from the file. A ``TTree``'s branches follow
    :func:`basket_bytes`; an RNTuple's fields the cluster rule, each column
    counted once (for the first name that reads it). A name that is not a
    column of the tree gets None.

    Parameters
    ----------
    tree : uproot.TTree or uproot RNTuple
        The tree, as uproot opened it.
    names : iterable of str
        Branch or field names, in the order they were read.
    start, stop : int
        The chunk's entry range.

    Returns
    -------
    dict
        ``{name: bytes or None}``.

    Examples
    --------
    >>> import uproot
    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.layout import column_bytes
    >>> tree = uproot.open(ttbar_path())["Events"]
    >>> column_bytes(tree, ["LHEPdfWeight", "Jet_pt", "nope"], 0, 100)
    {'LHEPdfWeight': 36169, 'Jet_pt': 0, 'nope': None}
    """
    result: dict[str, int | None] = {}
    if not _is_rntuple(tree):
        for name in names:
            try:
                result[name] = basket_bytes(tree[name], start, stop)
            except Exception:  # noqa: BLE001 - not a TBranch (odd name)
                result[name] = None
        return result
    edges = np.asarray(_rntuple_cluster_edges(tree), dtype=np.int64)
    one = Units(edges[:-1], edges[1:], edges[:-1], edges[:-1], "cluster")
    lo, hi = select_units(one, np.array([start]), np.array([stop]))
    clusters = range(int(lo[0]), int(hi[0]))
    seen: set[int] = set()
    for name in names:
        try:
            cols = [c for c in _field_columns(tree[name]) if c not in seen]
        except Exception:  # noqa: BLE001 - not a field of this RNTuple
            result[name] = None
            continue
        seen.update(cols)
        nbytes, _ = _page_matrix(tree, clusters, cols)
        result[name] = int(sum(int(v.sum()) for v in nbytes.values()))
    return result
