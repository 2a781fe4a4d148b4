"""The per-chunk cost model of a run: the data, the fitting and the predictions.

Covers what a chunk costs as a function of its entries: a :class:`Fit`
(``fixed + per_event * entries`` with the spread of the chunks around it and how sure
it is), a :class:`FileModel` (one input file as the model sees it) and a
:class:`DatasetModel` (one dataset's fits, the wall time phase by phase);
:func:`dataset_model` fits one from the chunk records, :func:`predict_dataset`
predicts a run at another chunk size (bytes to the byte from the basket metadata
through :mod:`coffea_sizing.predict`), :func:`recommend` chooses the chunk size.
Does not find anything (:mod:`coffea_sizing.rules`), word or draw it
(:mod:`coffea_sizing.explain`, :mod:`coffea_sizing.plot`), plan a whole campaign
(:mod:`coffea_sizing.plan`) or load records (:func:`coffea_sizing.advise` does).
The how-to is ``docs/chunk-size.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from .findings import format_bytes, format_seconds, plural
from .records import PHASE_FIELDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHUNKS_PER_WORKER",
    "FILE_PHASES",
    "HIGH_QUANTILE",
    "MEMORY_HEADROOM",
    "MIN_CHUNKS",
    "MIN_SPREAD",
    "MODEL_PHASES",
    "PREDICT_COLUMNS",
    "REMOTE_PROTOCOLS",
    "REMOTE_TIMEOUT",
    "AdviceError",
    "DatasetModel",
    "FileModel",
    "Fit",
    "candidates",
    "dataset_model",
    "measured_size",
    "numeric",
    "phase_fits",
    "predict_dataset",
    "recommend",
    "size_series",
    "static_chunks",
    "total_wall_fit",
]

#: The quantile of a chunk's peak memory and wall time called "high".
HIGH_QUANTILE = 0.9
#: Keep at least this many chunks per worker, so that every worker has work.
CHUNKS_PER_WORKER = 2

#: A fit from fewer chunks than this is labelled unsure.
MIN_CHUNKS = 3
#: A fit whose largest chunk is less than this many times its smallest is labelled
#: unsure: the per-event term is then not measured but split from one size.
MIN_SPREAD = 1.5


@dataclass(frozen=True)
class Fit:
    """``value(entries) = fixed + per_event * entries``, with its spread.

    Attributes
    ----------
    quantity : str
        What is fitted (``"mem_peak_bytes"``, ``"walltime"``, ``"bytesread"``,
        ``"output_bytes"``).
    fixed, per_event : float
        The terms (bytes or seconds; per event).
    high_ratio : float
        The :data:`HIGH_QUANTILE` (0.9) of ``measured / fitted``
        over the chunks: the high prediction is ``high_ratio`` times the fitted one.
    method : str
        How the terms were found, in words.
    chunks : int
        Chunks fitted.
    note : str
        What the figure is (e.g. a lower bound), or ``""``.
    low_ratio : float
        The low quantile (0.1) of ``measured / fitted`` (1.0 when unknown).
    ratios : tuple of float
        ``measured / fitted`` of every chunk fitted, in record order: the spread
        the intervals of :mod:`coffea_sizing.plan` are drawn from.
    size_spread : float
        Largest over smallest chunk (entries) fitted; 1.0 for one chunk size.

    Examples
    --------
    >>> from coffea_sizing.model import Fit
    >>> fit = Fit("walltime", 0.05, 1e-5, 1.4, "fixed + per event", 10)
    >>> fit.at(10_000)
    (0.15000000000000002, 0.21000000000000002)
    >>> fit.caveat
    ''
    >>> Fit("walltime", 0.05, 1e-5, 1.4, "split", 2, size_spread=1.0).caveat
    'unsure: fitted from 2 chunks of one size'
    """

    quantity: str
    fixed: float
    per_event: float
    high_ratio: float
    method: str
    chunks: int
    note: str = ""
    low_ratio: float = 1.0
    ratios: tuple[float, ...] = field(default=(), repr=False)
    size_spread: float = math.inf

    def at(self, entries: float) -> tuple[float, float]:
        """``(median, high)`` predicted for a chunk of ``entries`` events."""
        median = self.fixed + self.per_event * float(entries)
        return median, median * self.high_ratio

    @property
    def sure(self) -> bool:
        """At least :data:`MIN_CHUNKS` chunks spanning :data:`MIN_SPREAD` in size."""
        return self.chunks >= MIN_CHUNKS and self.size_spread >= MIN_SPREAD

    @property
    def caveat(self) -> str:
        """``""`` for a sure fit, else ``"unsure: ..."`` saying why (for text and
        figure labels)."""
        if self.sure:
            return ""
        why = []
        if self.chunks < MIN_CHUNKS:
            why.append(f"fitted from {self.chunks} chunk{'s' * (self.chunks != 1)}")
        if self.size_spread < MIN_SPREAD:
            if self.size_spread <= 1.0:
                size = "of one size"
            else:
                size = f"spanning only x{self.size_spread:.2f} in size"
            why.append(size if why else f"chunks {size}")
        return "unsure: " + " ".join(why)


@dataclass(frozen=True)
class FileModel:
    """One input file as the model sees it."""

    filename: str
    treename: str
    num_entries: int
    columns: tuple[str, ...]
    open_bytes: int | None
    reachable: bool
    problem: str = ""


@dataclass(frozen=True)
class DatasetModel:
    """The per-chunk cost model of one dataset.

    Attributes
    ----------
    dataset : str
    files : tuple of FileModel
        The files, their entries, the branches read and (when the file could be
        opened) the fixed bytes of every chunk.
    bytes_exact : bool
        True when every file could be opened: bytes read are then predicted to
        the byte from the basket metadata (:mod:`coffea_sizing.predict`).
    bytesread : Fit
        Bytes read per chunk fitted to the records (used when not exact).
    memory : Fit or None
        Peak memory of the worker process during a chunk (None: no memory fields).
    walltime : Fit or None
        Wall time of a chunk task.
    output : Fit or None
        Size of a chunk's output (compressed, else pickled); at a dataset's total
        entries it is the size of the dataset's reduced output.
    increment : Fit or None
        How far a chunk's peak rises over the resident memory at its start
        (``mem_usage_bytes``): the chunk's own memory, without the idle baseline.
    baseline_bytes : float
        The worker's resident memory when a chunk starts (median over the chunks
        of ``mem_peak_bytes - mem_usage_bytes``): the idle baseline; NaN unknown.
    file_walltime : dict of str to float
        Each sampled file's own fixed wall time (seconds): the median of its
        chunks' wall time beyond ``walltime.per_event * entries``.
    baseline_high_bytes : float
        The highest resident memory at a chunk's start in the records: a worker's
        memory creeps up as it runs (the allocator keeps freed pages), and the
        high-quantile peak of :mod:`coffea_sizing.plan` adds that creep.
    phases : dict of str to Fit
        The wall time phase by phase (:data:`MODEL_PHASES`): ``walltime`` is their
        sum. Empty for records without phases (``walltime`` is then fitted as one
        number).
    """

    dataset: str
    files: tuple[FileModel, ...]
    bytes_exact: bool
    bytesread: Fit
    memory: Fit | None
    walltime: Fit | None
    output: Fit | None = None
    increment: Fit | None = None
    baseline_bytes: float = math.nan
    baseline_high_bytes: float = math.nan
    file_walltime: dict[str, float] = field(default_factory=dict)
    phases: dict[str, Fit] = field(default_factory=dict)

    @property
    def num_entries(self) -> int:
        """Entries in all files."""
        return sum(f.num_entries for f in self.files)

    @property
    def columns(self) -> tuple[str, ...]:
        """The branches any chunk read, sorted."""
        return tuple(sorted({c for f in self.files for c in f.columns}))


#: Share of a worker's ``memory_limit`` the predicted high-quantile peak may reach:
#: Dask pauses a worker at 80% of it (``distributed.worker.memory.pause``).
MEMORY_HEADROOM = 0.8
#: Chunk sizes tried for the recommendation: this 1-2-5 series up to the file sizes.
_SERIES = (1, 2, 5)


class AdviceError(ValueError):
    """Records that cannot be advised on (the message says why and what to do)."""


#: The phases of the time model: the records' phases (``records.PHASE_FIELDS``)
#: and ``gap``, what no phase names (``records.phase_gap``).
MODEL_PHASES: tuple[str, ...] = (*PHASE_FIELDS, "gap")
#: The columns of :func:`predict_dataset` (and ``Advice.predict``).
PREDICT_COLUMNS = (
    "dataset",
    "chunksize",
    "chunks",
    "entries_per_chunk",
    "bytesread",
    "bytesread_per_chunk",
    "bytes_exact",
    "open_share",
    "mem_peak_bytes",
    "mem_peak_high",
    "walltime",
    "walltime_high",
    "total_walltime",
    *MODEL_PHASES,
)


def numeric(chunks: pd.DataFrame, name: str) -> np.ndarray[Any, Any]:
    """Column ``name`` of ``chunks`` as floats (NaN where missing or not a number)."""
    import pandas as pd

    if name not in chunks:
        return np.full(len(chunks), np.nan)
    return pd.to_numeric(chunks[name], errors="coerce").to_numpy(dtype=float)


def measured_size(rows: pd.DataFrame) -> int:
    """The chunk size a run used: its largest chunk (entries)."""
    return int(rows["entries"].max()) if len(rows) else 1


def _theil_sen(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Median of pairwise slopes, then the median intercept (deterministic)."""
    if len(x) > 400:  # evenly spaced subsample, in entry order
        order = np.argsort(x, kind="stable")
        pick = order[np.linspace(0, len(x) - 1, 400).astype(int)]
        x, y = x[pick], y[pick]
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    slope = float(np.median((y[j] - y[i])[keep] / dx[keep])) if keep.any() else 0.0
    return float(np.median(y - slope * x)), slope


def _spread(
    entries: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    fixed: float,
    per_event: float,
) -> dict[str, Any]:
    """The spread of the chunks around the fit: ``high_ratio``, ``low_ratio``
    (quantiles of ``measured / fitted``), the ratios and the size spread."""
    positive = entries[entries > 0]
    size_spread = float(positive.max() / positive.min()) if len(positive) else 1.0
    fitted = fixed + per_event * entries
    ok = fitted > 0
    if not ok.any():
        return {"high_ratio": 1.0, "size_spread": size_spread}
    ratio = y[ok] / fitted[ok]
    return {
        "high_ratio": max(1.0, float(np.quantile(ratio, HIGH_QUANTILE))),
        "low_ratio": min(1.0, float(np.quantile(ratio, 1 - HIGH_QUANTILE))),
        "ratios": tuple(float(r) for r in ratio),
        "size_spread": size_spread,
    }


def _spread_enough(entries: np.ndarray[Any, Any]) -> bool:
    """At least 3 chunks of at least 2 sizes spanning :data:`MIN_SPREAD`."""
    distinct = np.unique(entries[entries > 0])
    return (
        len(entries) >= MIN_CHUNKS
        and len(distinct) >= 2
        and distinct[-1] >= MIN_SPREAD * distinct[0]
    )


def _fit_split(
    quantity: str,
    entries: np.ndarray[Any, Any],
    total: np.ndarray[Any, Any],
    variable: np.ndarray[Any, Any],
    split_method: str,
    note: str,
) -> Fit | None:
    """``total = fixed + per_event * entries``: from a spread of chunk sizes by a
    Theil-Sen fit, else with ``variable`` (the part that grows with the events)
    per event and the rest fixed."""
    ok = np.isfinite(entries) & np.isfinite(total)
    if not ok.any():
        return None
    e, y = entries[ok], total[ok]
    if _spread_enough(e):
        fixed, per_event = _theil_sen(e, y)
        if per_event >= 0 and fixed >= 0:
            return Fit(
                quantity,
                fixed,
                per_event,
                method="Theil-Sen fit on entries",
                chunks=int(ok.sum()),
                note=note,
                **_spread(e, y, fixed, per_event),
            )
    v = variable[ok]
    good = np.isfinite(v) & (e > 0)
    if good.any():
        per_event = float(np.median(np.clip(v[good], 0, None) / e[good]))
        fixed = float(np.median(y[good] - per_event * e[good]))
        method = split_method
    else:
        per_event, fixed = 0.0, float(np.median(y))
        method = "median (no per-event term: one chunk size, no split)"
    fixed = max(fixed, 0.0)
    return Fit(
        quantity,
        fixed,
        per_event,
        method=method,
        chunks=int(ok.sum()),
        note=note,
        **_spread(e, y, fixed, per_event),
    )


#: Seconds advise waits on a remote file's server per request (uproot's ``timeout``;
#: XRootD's own default is 60 s, and its client tries 3 times). A host that lets a
#: request expire is not asked for its other files.
REMOTE_TIMEOUT = 10


def _remote_host(filename: str) -> str:
    """``host:port`` of a remote file (``root://``, ``https://`` ...), else ``""``."""
    parts = urlsplit(filename)
    return parts.netloc if len(parts.scheme) > 1 and parts.scheme != "file" else ""


def _read_options(filename: str) -> dict[str, Any] | None:
    """uproot options for reading ``filename``'s metadata: a timeout when remote."""
    return {"timeout": REMOTE_TIMEOUT} if _remote_host(filename) else None


def _file_models(chunks: pd.DataFrame) -> list[FileModel]:
    from .predict import coffea_chunks, open_cost

    out = []
    #: remote hosts that did not answer in time: their other files are not tried
    silent: dict[str, str] = {}
    for (filename, treename), rows in chunks.groupby(
        ["filename", "treename"], sort=True
    ):
        columns: set[str] = set()
        for cols in rows["columns"]:
            if isinstance(cols, list | tuple | np.ndarray):
                columns.update(str(c) for c in cols)
        num_entries = int(rows["entrystop"].max())
        open_bytes: int | None = None
        problem = ""
        host = _remote_host(str(filename))
        try:
            if host in silent:
                raise OSError(f"{host} did not answer for {silent[host]}")
            options = _read_options(str(filename))
            open_bytes = open_cost(
                str(filename), str(treename), uproot_options=options
            ).total
            # one chunk as large as any file: its end is the file's entries
            whole = coffea_chunks(
                str(filename), str(treename), 2**62, uproot_options=options
            )
            num_entries = int(whole[-1][1])
        except Exception as err:  # noqa: BLE001 - any unreadable file: fall back
            problem = str(err).splitlines()[0] if str(err) else type(err).__name__
            if host and "expired" in problem.lower():
                silent.setdefault(host, Path(str(filename)).name)
        if not problem:
            _check_unchanged(
                str(filename),
                str(treename),
                columns,
                int(rows["entrystop"].max()),
                num_entries,
            )
        out.append(
            FileModel(
                str(filename),
                str(treename),
                num_entries,
                tuple(sorted(columns)),
                open_bytes,
                not problem,
                problem,
            )
        )
    return out


def _check_unchanged(
    filename: str, treename: str, columns: set[str], recorded: int, num_entries: int
) -> None:
    """Refuse, in one line, records of a file that changed since they were made
    (fewer entries than the records read, a branch they read gone)."""
    again = (
        "it changed since the records were made; advise on records of the file as "
        "it is now (run again), or point them at the file they came from"
    )
    if recorded > num_entries:
        raise AdviceError(
            f"{filename}: the records read entries up to {recorded:,} of tree "
            f"{treename!r}, the file now has {num_entries:,}: {again}"
        )
    if not columns:
        return
    from .datasets import UnknownBranchError
    from .predict import predict_bytesread

    try:
        predict_bytesread(
            filename,
            treename,
            sorted(columns),
            [(0, 0)],
            uproot_options=_read_options(filename),
        )
    except UnknownBranchError as err:
        first = str(err).strip("'\"").splitlines()[0]
        raise AdviceError(f"{filename}: {first}; {again}") from None


def dataset_model(dataset: str, rows: pd.DataFrame) -> DatasetModel:
    files = tuple(_file_models(rows))
    done = rows[~rows["skipped"].fillna(False).astype(bool)]
    if done.empty:
        done = rows
    entries = done["entries"].to_numpy(dtype=float)
    bytesread = numeric(done, "bytesread")
    open_known = [f.open_bytes for f in files if f.open_bytes is not None]
    opened = numeric(done, "bytesread_open")
    if open_known:
        open_per_chunk = np.full(len(done), float(np.median(open_known)))
    elif np.isfinite(opened).any():
        open_per_chunk = np.where(np.isfinite(opened), opened, np.nanmedian(opened))
    else:
        open_per_chunk = np.full(len(done), np.nan)
    has_open = np.isfinite(open_per_chunk).all()
    bytes_fit = _fit_split(
        "bytesread",
        entries,
        bytesread,
        bytesread - open_per_chunk if has_open else bytesread,
        "fixed: open cost; per event: basket bytes per event"
        if has_open
        else "per event only: the fixed cost is unknown, an upper bound for larger chunks",
        "",
    ) or Fit("bytesread", 0.0, 0.0, 1.0, "no bytesread", 0, size_spread=1.0)
    shared = bool(
        done.get("mem_shared", False) is not False
        and done["mem_shared"].fillna(False).astype(bool).any()
    )
    mem_note = (
        "mixed: chunks shared a worker process (several threads), so the peak is "
        "the process's, not one chunk's, and the rise mixes chunks"
        if shared
        else "the worker process's peak (one chunk at a time); the per-event term "
        "from a single chunk size is a lower bound (mem_usage_bytes does not see "
        "memory the allocator re-used), so is the peak predicted for larger chunks"
    )
    peak = numeric(done, "mem_peak_bytes")
    usage = numeric(done, "mem_usage_bytes")
    memory = (
        _fit_split(
            "mem_peak_bytes",
            entries,
            peak,
            usage,
            "fixed: resident memory at chunk start; per event: rise during the chunk",
            mem_note,
        )
        if np.isfinite(peak).any()
        else None
    )
    phases = phase_fits(done)
    walltime: Fit | None
    if phases:
        walltime, file_walltime = _sum_of_phases(phases, done)
    else:
        walltime, file_walltime = total_wall_fit(done)
    out = numeric(done, "output_compressed_bytes")
    if not np.isfinite(out).any():
        out = numeric(done, "output_pickled_bytes")
    output = (
        _fit_split(
            "output_bytes",
            entries,
            out,
            np.zeros_like(out),
            "fixed: median output (one chunk size: no per-event term)",
            "",
        )
        if np.isfinite(out).any()
        else None
    )
    start = peak - usage
    increment = (
        _fit_split(
            "mem_usage_bytes",
            entries,
            usage,
            usage,
            "per event: rise during the chunk over its start",
            "",
        )
        if np.isfinite(usage).any()
        else None
    )
    return DatasetModel(
        dataset,
        files,
        all(f.reachable for f in files),
        bytes_fit,
        memory,
        walltime,
        output=output,
        increment=increment,
        file_walltime=file_walltime,
        phases=phases,
        baseline_bytes=float(np.nanmedian(start))
        if np.isfinite(start).any()
        else math.nan,
        baseline_high_bytes=float(np.nanmax(start))
        if np.isfinite(start).any()
        else math.nan,
    )


def total_wall_fit(done: pd.DataFrame) -> tuple[Fit | None, dict[str, float]]:
    """The wall time of a chunk fitted as one number: ``fixed + per_event * n``
    (Theil-Sen over a spread of sizes, else ``process()`` per event and the rest
    fixed), and each file's fixed term.

    The model of records without phases (``@track_sizes`` under another executor,
    records saved before the phases existed), and the model the phase model is
    measured against (``benchmarks/bench_phases.py``).
    """
    entries = done["entries"].to_numpy(dtype=float)
    wall = numeric(done, "walltime")
    process = numeric(done, "processtime")
    if not np.isfinite(process).any():
        process = numeric(done, "process_walltime")
    if not np.isfinite(wall).any():
        return None, {}
    walltime = _fit_split(
        "walltime",
        entries,
        wall,
        process,
        "fixed: time outside process(); per event: process() time per event",
        "",
    )
    file_walltime: dict[str, float] = {}
    if walltime is not None:
        # each file's own fixed term: the median of its chunks' time beyond the
        # per-event part (files whose metadata differ open at different costs)
        rest = wall - walltime.per_event * entries
        names = done["filename"].astype(str).to_numpy()
        for name in sorted(set(names)):
            mine = rest[(names == name) & np.isfinite(rest)]
            if len(mine):
                file_walltime[name] = max(float(np.median(mine)), 0.0)
    return walltime, file_walltime


#: Phases whose fixed term is each file's own (its metadata: branches, baskets).
FILE_PHASES: tuple[str, ...] = ("opentime", "buildtime")
#: Protocols whose reads cost a round trip each (a request per column and chunk,
#: whatever the chunk's size): their time blocked in reads is a fixed term.
REMOTE_PROTOCOLS = frozenset({"root", "http", "https", "s3", "gs", "xrootd"})


def _phase_matrix(done: pd.DataFrame) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    """The chunks with every phase measured, and each phase's seconds on them."""
    values = {name: numeric(done, name) for name in PHASE_FIELDS}
    wall = numeric(done, "walltime")
    values["gap"] = wall - sum(values[name] for name in PHASE_FIELDS)
    ok = np.isfinite(wall) & (done["entries"].to_numpy(dtype=float) > 0)
    for v in values.values():
        ok &= np.isfinite(v)
    return ok, values


def phase_fits(done: pd.DataFrame) -> dict[str, Fit]:
    """Each phase of a chunk task fitted as ``fixed + per_event * entries``.

    Over a spread of chunk sizes (:data:`MIN_SPREAD`), a Theil-Sen fit per phase.
    From chunks of one size, the phases outside ``process()`` are fixed (opening
    the file, building the events, loading the processor, the output of histograms
    cost the same whatever the events), and ``process()`` is per event, except
    its time blocked in reads of a remote file (:data:`REMOTE_PROTOCOLS`), which
    is a round trip per column and chunk: fixed. Empty when the records have no
    phases (then :func:`total_wall_fit` is the model).

    Examples
    --------
    Three chunks of 1,000 and 3,000 events whose phases grow as written:

    >>> import pandas as pd
    >>> from coffea_sizing.model import phase_fits
    >>> n = pd.Series([1000, 3000, 2000])
    >>> rows = pd.DataFrame({"entries": n, "filename": "a.root",
    ...     "loadtime": 0.001, "opentime": 0.02, "buildtime": 0.01,
    ...     "processtime": 0.05 + 1e-4 * n, "outputtime": 0.003,
    ...     "sizing_overhead": 0.0005, "walltime": 0.0845 + 1e-4 * n + 0.002})
    >>> fits = phase_fits(rows)
    >>> round(fits["processtime"].fixed, 4), round(fits["processtime"].per_event, 6)
    (0.05, 0.0001)
    >>> round(sum(f.fixed for f in fits.values()), 4)
    0.0865
    """
    ok, values = _phase_matrix(done)
    if not ok.any():
        return {}
    entries = done["entries"].to_numpy(dtype=float)[ok]
    read = numeric(done, "readtime")[ok]
    protocol = (
        done["protocol"].astype(str).to_numpy()[ok]
        if "protocol" in done
        else np.full(int(ok.sum()), "file")
    )
    remote = np.isin(protocol, list(REMOTE_PROTOCOLS))
    spread = _spread_enough(entries)
    fits: dict[str, Fit] = {}
    for name in MODEL_PHASES:
        y = np.clip(values[name][ok], 0, None)
        fixed = per_event = math.nan
        method = ""
        if spread:
            fixed, per_event = _theil_sen(entries, y)
            method = "Theil-Sen fit on entries"
        if not (per_event >= 0 and fixed >= 0):
            if name == "processtime":
                # reads of a remote file: a round trip per column, whatever the size
                blocked = np.where(remote & np.isfinite(read), np.clip(read, 0, y), 0.0)
                per_event = float(np.median((y - blocked) / entries))
                fixed = float(np.median(y - per_event * entries))
                method = "per event: process() time per event" + (
                    ", but its reads of remote files fixed" if remote.any() else ""
                )
            else:
                per_event, fixed = 0.0, float(np.median(y))
                method = "fixed: the median (the same whatever the events)"
        fixed = max(fixed, 0.0)
        fits[name] = Fit(
            name,
            fixed,
            per_event,
            method=method,
            chunks=int(ok.sum()),
            **_spread(entries, y, fixed, per_event),
        )
    return fits


def _sum_of_phases(
    phases: dict[str, Fit], done: pd.DataFrame
) -> tuple[Fit, dict[str, float]]:
    """The wall time as the sum of the phases' fits, and each file's fixed term
    (its own opening and building, the dataset's other phases)."""
    ok, values = _phase_matrix(done)
    entries = done["entries"].to_numpy(dtype=float)
    names = done["filename"].astype(str).to_numpy()
    shared = sum(f.fixed for n, f in phases.items() if n not in FILE_PHASES)
    file_walltime: dict[str, float] = {}
    for name in sorted(set(names[ok])):
        mine = ok & (names == name)
        own = 0.0
        for phase in FILE_PHASES:
            fit = phases[phase]
            own += max(
                float(np.median(values[phase][mine] - fit.per_event * entries[mine])),
                0.0,
            )
        file_walltime[name] = shared + own
    fixed = sum(f.fixed for f in phases.values())
    per_event = sum(f.per_event for f in phases.values())
    wall = numeric(done, "walltime")
    e, y = entries[ok], wall[ok]
    fitted_own = (
        np.asarray([file_walltime[n] for n in names[ok]], dtype=float) + per_event * e
    )
    ratio = y / np.where(fitted_own > 0, fitted_own, np.nan)
    spread = _spread(e, y, fixed, per_event)
    good = np.isfinite(ratio)
    if good.any():  # the spread around each chunk's own file's line
        spread.update(
            high_ratio=max(1.0, float(np.quantile(ratio[good], HIGH_QUANTILE))),
            low_ratio=min(1.0, float(np.quantile(ratio[good], 1 - HIGH_QUANTILE))),
            ratios=tuple(float(r) for r in ratio[good]),
        )
    fit = Fit(
        "walltime",
        fixed,
        per_event,
        method="the sum of its phases' fits, each below",
        chunks=int(ok.sum()),
        **spread,
    )
    return fit, file_walltime


# ----------------------------------------------------------------- predicting
def static_chunks(num_entries: int, chunksize: int) -> list[tuple[int, int]]:
    """coffea's static chunking (``FileMeta.chunks``), for files not opened.

    Examples
    --------
    >>> from coffea_sizing.model import static_chunks
    >>> static_chunks(10, 4)  # round(10 / 4) = 2 chunks
    [(0, 5), (5, 10)]
    """
    if num_entries == 0:
        return [(0, 0)]
    n = max(round(num_entries / chunksize), 1)
    size = math.ceil(num_entries / n)
    return [(s, min(num_entries, s + size)) for s in range(0, num_entries, size)]


def predict_dataset(model: DatasetModel, chunksize: int) -> dict[str, Any]:
    """One dataset's run predicted at ``chunksize``: a row of
    :data:`PREDICT_COLUMNS` (see ``Advice.predict``)."""
    if chunksize < 1:
        raise AdviceError(f"chunksize must be at least 1, got {chunksize}")
    from .predict import coffea_chunks, predict_bytesread

    total_bytes = 0.0
    open_bytes = 0.0
    sizes: list[int] = []
    for f in model.files:
        if model.bytes_exact:
            options = _read_options(f.filename)
            chunks = coffea_chunks(
                f.filename, f.treename, chunksize, uproot_options=options
            )
            table = predict_bytesread(
                f.filename,
                f.treename,
                list(f.columns),
                chunks,
                uproot_options=options,
            )
            total_bytes += float(table["predicted_bytesread"].sum())
            open_bytes += float(table["predicted_open_bytes"].sum())
        else:
            chunks = static_chunks(f.num_entries, chunksize)
            fit = model.bytesread
            total_bytes += sum(fit.at(b - a)[0] for a, b in chunks)
            if "open cost" in fit.method:
                open_bytes += fit.fixed * len(chunks)
            else:
                open_bytes = math.nan
        sizes.extend(b - a for a, b in chunks)
    largest = max(sizes) if sizes else 0
    mem = model.memory.at(largest) if model.memory else (math.nan, math.nan)
    wall = model.walltime.at(largest) if model.walltime else (math.nan, math.nan)
    total_wall = (
        sum(model.walltime.at(s)[0] for s in sizes) if model.walltime else math.nan
    )
    return {
        "dataset": model.dataset,
        "chunksize": chunksize,
        "chunks": len(sizes),
        "entries_per_chunk": largest,
        "bytesread": total_bytes,
        "bytesread_per_chunk": total_bytes / len(sizes) if sizes else math.nan,
        "bytes_exact": model.bytes_exact,
        "open_share": open_bytes / total_bytes if total_bytes else math.nan,
        "mem_peak_bytes": mem[0],
        "mem_peak_high": mem[1],
        "walltime": wall[0],
        "walltime_high": wall[1],
        "total_walltime": total_wall,
        # the median chunk's wall time phase by phase (NaN without phases)
        **{
            name: model.phases[name].at(largest)[0]
            if name in model.phases
            else math.nan
            for name in MODEL_PHASES
        },
    }


def size_series(largest: int) -> set[int]:
    """The chunk sizes tried: 1-2-5 times a power of ten, from 100 to ``largest``.

    Examples
    --------
    >>> from coffea_sizing.model import size_series
    >>> sorted(size_series(1_200))
    [100, 200, 500, 1000]
    """
    out = set()
    decade = 1
    while decade <= largest:
        for m in _SERIES:
            if 100 <= m * decade <= largest:
                out.add(m * decade)
        decade *= 10
    return out


def candidates(model: DatasetModel, measured_size: int) -> list[int]:
    """The sizes the recommendation weighs: the series, the run's and a whole file."""
    largest = max((f.num_entries for f in model.files), default=1) or 1
    out = {measured_size, largest, *size_series(largest)}
    return sorted(s for s in out if s >= 1)


def recommend(
    model: DatasetModel,
    measured_size: int,
    worker_memory: float | None,
    target_seconds: float | None,
    min_chunks: int,
    workers: int,
) -> tuple[dict[str, Any], str]:
    """The chunk size to use and what decided it.

    Memory and chunk time are hard limits; parallelism (``min_chunks``, this
    dataset's share of :data:`CHUNKS_PER_WORKER` chunks per worker) is kept when
    some size allows it.
    """
    rows = [predict_dataset(model, s) for s in candidates(model, measured_size)]
    memory_cap = worker_memory * MEMORY_HEADROOM if worker_memory else None

    def limit(row: dict[str, Any], where: str) -> str:
        """Why ``row`` breaks a hard limit (``where``: "at the next size" ...)."""
        size = f"{where} ({row['chunksize']:,})"
        if memory_cap is not None and row["mem_peak_high"] > memory_cap:
            return (
                f"memory: the high-quantile peak {size} would be "
                f"{format_bytes(row['mem_peak_high'])}, over {MEMORY_HEADROOM:.0%} of "
                f"the worker's {format_bytes(worker_memory)}"
            )
        if target_seconds is not None and row["walltime_high"] > target_seconds:
            return (
                f"chunk time: a chunk {size} would take "
                f"{format_seconds(row['walltime_high'])} (high quantile), over the "
                f"target {format_seconds(target_seconds)}"
            )
        return ""

    def spread(row: dict[str, Any]) -> str:
        if row["chunks"] >= min_chunks:
            return ""
        return (
            f"parallelism: at the next size ({row['chunksize']:,}) only "
            f"{plural(row['chunks'], 'chunk')} of this dataset for "
            f"{plural(workers, 'worker')} (keep at least {CHUNKS_PER_WORKER} chunks "
            "per worker)"
        )

    def cost(row: dict[str, Any]) -> float:
        # worker-seconds: the chunks' predicted wall time plus Dask's overhead per
        # task (about 1 ms); without a time model, bytes read stand in for the cost
        if math.isfinite(row["total_walltime"]):
            return float(row["total_walltime"]) + 0.001 * row["chunks"]
        return float(row["bytesread"])

    fitting = [r for r in rows if not limit(r, "")]
    if not fitting:
        return rows[0], "nothing fits: " + limit(
            rows[0], "even at the smallest size"
        ) + _memory_way_out(model, rows[0], memory_cap)
    spread_out = [r for r in fitting if not spread(r)] or fitting
    best = min(spread_out, key=lambda r: (round(cost(r), 9), -r["chunksize"]))
    larger = [r for r in rows if r["chunksize"] > best["chunksize"]]
    if not larger:
        return best, "the file size: one chunk per file"
    for r in larger:
        if cost(r) < cost(best):
            why = limit(r, "at the next size") or spread(r)
            if why:
                return best, why
    return best, "total cost: larger chunks cost more (baskets or time per event)"


def _memory_way_out(
    model: DatasetModel, row: dict[str, Any], memory_cap: float | None
) -> str:
    """``"; use 330 MB workers ... or chunks of at most N"`` when memory is what
    does not fit."""
    fit = model.memory
    if memory_cap is None or fit is None or not row["mem_peak_high"] > memory_cap:
        return ""
    text = (
        f"; use {format_bytes(row['mem_peak_high'] / MEMORY_HEADROOM)} workers for "
        f"chunks of {row['chunksize']:,}"
    )
    if math.isfinite(model.baseline_bytes):
        text += f" (the idle worker holds {format_bytes(model.baseline_bytes)})"
    if fit.per_event > 0:
        largest = math.floor((memory_cap / fit.high_ratio - fit.fixed) / fit.per_event)
        if largest >= 1:
            text += f", or chunks of at most {largest:,} entries"
    return text
