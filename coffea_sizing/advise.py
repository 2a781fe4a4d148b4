"""Advice from any run: findings, a per-chunk cost model and a chunk size.

Covers :func:`advise`: from the chunk (and merge) records of one run, the
:class:`~coffea_sizing.findings.Finding` s the records show (fixed cost,
amplification, memory near the limit, tiny chunks, stragglers, retries, ...), a
per-dataset cost model of a chunk (bytes read exactly from the files' basket
metadata through :mod:`coffea_sizing.predict` when the files can be opened, else
fitted to the records; peak memory and wall time as a fixed plus a per-event term
fitted to the chunks, with their spread), predictions at any chunk size
(:meth:`Advice.predict`) and the chunk size to use (``Advice.recommendation``).
It makes no cluster calls; it opens the input files' metadata (never a basket) and
says so when a file cannot be opened.

Does not run anything (``coffea-sizing run`` in :mod:`coffea_sizing.cli` does), save
records (:mod:`coffea_sizing.store`) or draw (:func:`coffea_sizing.plot.advice_figure`).
The how-to is ``docs/chunk-size.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from .findings import Finding, format_bytes, format_seconds, plural
from .model import (
    CHUNKS_PER_WORKER,
    HIGH_QUANTILE,
    MIN_CHUNKS,
    MIN_SPREAD,
    DatasetModel,
    FileModel,
    Fit,
)
from .plan import Plan, plan_campaign
from .records import CHUNK_FIELDS, REPORT_MERGES_KEY, chunk_table, merge_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HIGH_QUANTILE",
    "MEMORY_HEADROOM",
    "Advice",
    "AdviceError",
    "DatasetModel",
    "FileModel",
    "Fit",
    "advise",
    "model_table",
]

#: Share of a worker's ``memory_limit`` the predicted high-quantile peak may reach:
#: Dask pauses a worker at 80% of it (``distributed.worker.memory.pause``).
MEMORY_HEADROOM = 0.8
#: A chunk peak above this share of ``memory_limit`` is reported (Dask starts
#: spilling at 60-70%).
MEMORY_WARN = 0.6
#: Chunks shorter than this leave the run dominated by per-task overhead (Dask's
#: best practices: tasks of at least ~100 ms).
TINY_CHUNK_SECONDS = 0.1
#: A fixed cost above this share of bytes read is reported.
FIXED_COST_SHARE = 0.10
#: Amplification (bytes of baskets read / bytes of baskets needed) reported above.
AMPLIFICATION_RATIO = 1.10
#: A chunk this many times slower than the median (and at least
#: :data:`STRAGGLER_MIN_SECONDS` slower) is a straggler.
STRAGGLER_FACTOR = 3.0
STRAGGLER_MIN_SECONDS = 1.0
#: Workers whose busy time differs by more than this factor are reported.
SKEW_FACTOR = 2.0
#: Chunk sizes tried for the recommendation: this 1-2-5 series up to the file sizes.
_SERIES = (1, 2, 5)


class AdviceError(ValueError):
    """Records that cannot be advised on (the message says why and what to do)."""


# ------------------------------------------------------------------ the advice
@dataclass
class Advice:
    """What :func:`advise` found, fitted and recommends.

    Attributes
    ----------
    findings : list of Finding
        What the records show, most severe first.
    model : dict of str to DatasetModel
        Per dataset, the fitted per-chunk cost model.
    recommendation : pandas.DataFrame
        One row per dataset: the ``chunksize`` that minimises the predicted total
        cost while the high-quantile peak memory stays under the worker memory
        (with headroom) and the chunk time under the target; ``decided_by`` (which
        constraint set it); the predicted figures at that size and the measured
        ones (``measured_*``) of the run.
    chunks : pandas.DataFrame
        The chunk records advised on.
    worker_memory : float or None
        Memory limit of a worker used for the recommendation (bytes).
    target_chunk_seconds : float or None
        Longest wanted chunk (seconds).
    workers : int
        Workers that ran chunks (for the parallelism constraint).
    """

    findings: list[Finding]
    model: dict[str, DatasetModel]
    recommendation: pd.DataFrame
    chunks: pd.DataFrame
    worker_memory: float | None = None
    target_chunk_seconds: float | None = None
    workers: int = 1

    def predict(self, chunksize: int | Mapping[str, int]) -> pd.DataFrame:
        """Predicted figures of a run at ``chunksize``, one row per dataset.

        Parameters
        ----------
        chunksize : int or mapping
            coffea's ``chunksize`` (one for all datasets, or ``{dataset: size}``).

        Returns
        -------
        pandas.DataFrame
            ``dataset``, ``chunksize``, ``chunks``, ``entries_per_chunk`` (the
            largest chunk), ``bytesread`` (total), ``bytesread_per_chunk`` (mean),
            ``bytes_exact``, ``open_share`` (share of bytes read that is fixed
            cost), ``mem_peak_bytes`` and ``mem_peak_high`` (median and high
            quantile, largest chunk), ``walltime`` and ``walltime_high`` (the same
            for its wall time) and ``total_walltime`` (sum over the chunks).
        """
        import pandas as pd

        rows = []
        for name, model in self.model.items():
            size = chunksize[name] if isinstance(chunksize, Mapping) else chunksize
            rows.append(_predict_dataset(model, int(size)))
        return pd.DataFrame(rows, columns=list(_PREDICT_COLUMNS))

    def plan(
        self,
        fileset: Any,
        *,
        chunksize: int | None = None,
        workers: int | None = None,
        **options: Any,
    ) -> Plan:
        """What running the whole ``fileset`` will cost, from this run's model.

        Parameters
        ----------
        fileset : mapping, str or path
            Any fileset coffea's ``Runner`` accepts; every dataset must be one
            this run sampled. Only the files' metadata are read.
        chunksize : int, optional
            Plan at this size; default: choose ``Plan.chunksize``.
        workers : int, optional
            Workers of the campaign (default: this run's).
        **options
            ``treename``, ``uproot_options``, ``progress`` of
            :func:`~coffea_sizing.plan.plan_campaign`.

        Returns
        -------
        Plan
            ``str(plan)`` for the terminal, ``plan.to_frame()`` for a table.

        Examples
        --------
        Two chunks sampled from a generated file of 4,000 events, then the plan
        for a fileset of two such files (generated here):

        >>> from coffea_sizing import advise
        >>> from coffea_sizing.datasets import make_nanoaod
        >>> a = str(make_nanoaod("a.root", 4_000, events_per_basket=500))
        >>> b = str(make_nanoaod("b.root", 4_000, events_per_basket=500, seed=1))
        >>> records = [
        ...     {"dataset": "tt", "filename": a, "treename": "Events",
        ...      "entrystart": s, "entrystop": s + n, "bytesread": 1,
        ...      "columns": ["Jet_pt", "nJet"], "walltime": 0.1 + n * 1e-4,
        ...      "mem_peak_bytes": 2e8 + n * 1e4, "mem_usage_bytes": n * 1e4,
        ...      "worker": "w"} for s, n in ((0, 500), (500, 1000), (1500, 2000))
        ... ]
        >>> plan = advise(records).plan({"tt": [a, b]}, treename="Events")
        >>> plan.chunksize, plan.to_frame()["chunks"].tolist()  # tt, total
        (4000, [2, 2])
        >>> print(str(plan).splitlines()[3])  # doctest: +NORMALIZE_WHITESPACE
        worker memory: at least 315 MB = tt's high-quantile chunk peak 252 MB (with
        the worker's creep) / 80% (Dask's pause); idle baseline 200 MB, 10.0 MB per
        1,000 events (chunks of 4,000: +40.0 MB)
        """
        return plan_campaign(
            self.model,
            fileset,
            chunksize=chunksize,
            workers=self.workers if workers is None else workers,
            memory_limit=self.worker_memory,
            target_chunk_seconds=self.target_chunk_seconds,
            sampled_sizes=tuple(sorted({int(e) for e in self.chunks["entries"]})),
            **options,
        )

    def __str__(self) -> str:
        return _text(self)

    def to_html(self, figure_png: bytes | None = None) -> str:
        """A self-contained HTML page: findings first, then the recommendation,
        the model and (when given) the figure."""
        return _html(self, figure_png)


_PREDICT_COLUMNS = (
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
)


# ---------------------------------------------------------------- reading input
#: Chunk fields that ``@track_sizes`` alone (under another executor) measures for
#: ``process()`` only: used in their place, and said so.
_PROCESS_ONLY = {
    "walltime": "process_walltime",
    "mem_peak_bytes": "process_mem_peak_bytes",
    "mem_usage_bytes": "process_mem_usage_bytes",
    "mem_shared": "process_mem_shared",
}


def _load(source: Any) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Chunk table, merge table and context of any supported source."""
    import pandas as pd

    context: dict[str, Any] = {}
    if isinstance(source, str | os.PathLike):
        from .store import CONTEXT_KEY, RecordsFileError, load_records

        try:
            source = load_records(source)
        except (FileNotFoundError, RecordsFileError) as err:
            raise AdviceError(str(err)) from err
        context = dict(source.get(CONTEXT_KEY) or {})
    if isinstance(source, pd.DataFrame):
        chunks = chunk_table(source)
        merges = merge_table([])
    else:
        try:
            chunks = chunk_table(source)
        except (KeyError, TypeError) as err:
            msg = str(err.args[0] if err.args else err).rstrip(".")
            raise AdviceError(
                f"no chunk records to advise on: {msg}; or a chunk_table, or a saved "
                "records file"
            ) from err
        report = source[1] if isinstance(source, tuple) and len(source) == 2 else source
        merges = (
            merge_table(report)
            if isinstance(report, Mapping) and REPORT_MERGES_KEY in report
            else merge_table([])
        )
    # every field present (chunk_table leaves out those only SizingDaskExecutor
    # fills when the records come from @track_sizes under another executor)
    for name in CHUNK_FIELDS:
        if name not in chunks:
            chunks[name] = None
    if chunks["columns"].isna().all() and "columns_read" in chunks:
        chunks["columns"] = chunks["columns_read"]
    if chunks.empty:
        raise AdviceError(
            "the report holds no chunk records (an empty fileset, or a run with "
            "savemetrics=False?); run with savemetrics=True and SizingDaskExecutor "
            "or decorate the processor with @track_sizes"
        )
    missing = [
        name
        for name in ("filename", "entrystart", "entrystop", "bytesread")
        if name not in chunks or chunks[name].isna().all()
    ]
    if missing:
        raise AdviceError(
            f"the chunk records lack {', '.join(missing)}: they are not coffea-sizing "
            "chunk records (see coffea_sizing.CHUNK_FIELDS)"
        )
    chunks = chunks.copy()
    for name, tracked in _PROCESS_ONLY.items():
        # @track_sizes under another executor measures process() alone
        if (name not in chunks or chunks[name].isna().all()) and tracked in chunks:
            chunks[name] = chunks[tracked]
            context["process_only"] = True
    chunks["dataset"] = chunks["dataset"].fillna("(no dataset)").astype(str)
    chunks["treename"] = chunks["treename"].fillna(context.get("treename", "Events"))
    chunks["entries"] = (chunks["entrystop"] - chunks["entrystart"]).astype(int)
    return chunks, merges, context


def _numeric(chunks: pd.DataFrame, name: str) -> np.ndarray[Any, Any]:
    import pandas as pd

    if name not in chunks:
        return np.full(len(chunks), np.nan)
    return pd.to_numeric(chunks[name], errors="coerce").to_numpy(dtype=float)


def _parse_bytes(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        from dask.utils import parse_bytes

        try:
            return float(parse_bytes(value))
        except (ValueError, TypeError) as err:
            raise AdviceError(
                f"worker_memory {value!r} is not a size (e.g. 4GB, 2.5GiB)"
            ) from err
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise AdviceError(
            f"worker_memory must be a size in bytes (a number, or text such as "
            f"'4GB'), got {type(value).__name__} {str(value)[:60]}"
        )
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise AdviceError(f"worker_memory must be positive and finite, got {value!r}")
    return v


# -------------------------------------------------------------------- fitting
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


def _dataset_model(dataset: str, rows: pd.DataFrame) -> DatasetModel:
    files = tuple(_file_models(rows))
    done = rows[~rows["skipped"].fillna(False).astype(bool)]
    if done.empty:
        done = rows
    entries = done["entries"].to_numpy(dtype=float)
    bytesread = _numeric(done, "bytesread")
    open_known = [f.open_bytes for f in files if f.open_bytes is not None]
    opened = _numeric(done, "bytesread_open")
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
    peak = _numeric(done, "mem_peak_bytes")
    usage = _numeric(done, "mem_usage_bytes")
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
    wall = _numeric(done, "walltime")
    process = _numeric(done, "processtime")
    if not np.isfinite(process).any():
        process = _numeric(done, "process_walltime")
    walltime = (
        _fit_split(
            "walltime",
            entries,
            wall,
            process,
            "fixed: time outside process(); per event: process() time per event",
            "",
        )
        if np.isfinite(wall).any()
        else None
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
    out = _numeric(done, "output_compressed_bytes")
    if not np.isfinite(out).any():
        out = _numeric(done, "output_pickled_bytes")
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
        baseline_bytes=float(np.nanmedian(start))
        if np.isfinite(start).any()
        else math.nan,
        baseline_high_bytes=float(np.nanmax(start))
        if np.isfinite(start).any()
        else math.nan,
    )


# ----------------------------------------------------------------- predicting
def _static_chunks(num_entries: int, chunksize: int) -> list[tuple[int, int]]:
    """coffea's static chunking (``FileMeta.chunks``), for files not opened."""
    if num_entries == 0:
        return [(0, 0)]
    n = max(round(num_entries / chunksize), 1)
    size = math.ceil(num_entries / n)
    return [(s, min(num_entries, s + size)) for s in range(0, num_entries, size)]


def _predict_dataset(model: DatasetModel, chunksize: int) -> dict[str, Any]:
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
            chunks = _static_chunks(f.num_entries, chunksize)
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
    }


def _candidates(model: DatasetModel, measured_size: int) -> list[int]:
    largest = max((f.num_entries for f in model.files), default=1) or 1
    out = {measured_size, largest}
    decade = 1
    while decade <= largest:
        for m in _SERIES:
            if 100 <= m * decade <= largest:
                out.add(m * decade)
        decade *= 10
    return sorted(s for s in out if s >= 1)


def _recommend(
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
    rows = [_predict_dataset(model, s) for s in _candidates(model, measured_size)]
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


# -------------------------------------------------------------------- findings
def _findings(
    chunks: pd.DataFrame,
    merges: pd.DataFrame,
    model: dict[str, DatasetModel],
    worker_memory: float | None,
) -> list[Finding]:
    out: list[Finding] = []
    for dataset, m in model.items():
        rows = chunks[chunks["dataset"] == dataset]
        out.extend(_fixed_cost(dataset, m, rows))
        out.extend(_amplification(dataset, m, rows))
        if not m.bytes_exact:
            bad = [f for f in m.files if not f.reachable]
            out.append(
                Finding(
                    "files-unreachable",
                    "info",
                    f"{dataset}: {plural(len(bad), 'file')} could not be opened "
                    f"({Path(bad[0].filename).name}: {bad[0].problem}); bytes are "
                    f"predicted from a fit to the records ({m.bytesread.method}), "
                    "not to the byte, and amplification is not known.",
                )
            )
    out.extend(_memory(chunks, worker_memory))
    out.extend(_timing(chunks))
    for dataset in sorted(chunks["dataset"].dropna().unique()):
        out.extend(_phases(str(dataset), chunks[chunks["dataset"] == dataset]))
    out.extend(_bookkeeping(chunks))
    out.extend(_outputs(chunks, merges))
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.severity])


def _measured_size(rows: pd.DataFrame) -> int:
    return int(rows["entries"].max()) if len(rows) else 1


def _fixed_cost(dataset: str, m: DatasetModel, rows: pd.DataFrame) -> list[Finding]:
    opens = [f.open_bytes for f in m.files if f.open_bytes is not None]
    if opens:
        per_chunk = {f.filename: f.open_bytes for f in m.files}
        fixed = float(sum(per_chunk.get(fn) or 0 for fn in rows["filename"]))
    elif "open cost" in m.bytesread.method:
        fixed = m.bytesread.fixed * len(rows)
    else:
        return []
    total = float(np.nansum(_numeric(rows, "bytesread")))
    if not total or fixed / total < FIXED_COST_SHARE:
        return []
    share = fixed / total
    size = _measured_size(rows)
    under = None
    for s in _candidates(m, size):
        if s > size and _predict_dataset(m, s)["open_share"] < FIXED_COST_SHARE:
            under = s
            break
    if under is not None:
        fix = f"it falls under {FIXED_COST_SHARE:.0%} at chunksize {under:,}"
    else:
        fix = (
            f"it stays above {FIXED_COST_SHARE:.0%} even at one chunk per file: the "
            "files are small next to their metadata (merge small files)"
        )
    per_chunk_bytes = fixed / max(len(rows), 1)
    return [
        Finding(
            "fixed-cost",
            "warning" if share >= 0.5 else "info",
            f"{dataset}: {share:.0%} of the {format_bytes(total)} read is the fixed "
            f"cost of opening the file and its TTree metadata "
            f"({format_bytes(per_chunk_bytes)} per chunk, "
            f"{plural(len(rows), 'chunk')} of up to {size:,} entries); {fix}.",
        )
    ]


def _amplification(dataset: str, m: DatasetModel, rows: pd.DataFrame) -> list[Finding]:
    if not m.bytes_exact:
        return []
    from .predict import amplification

    payload = unique = 0
    for f in m.files:
        sub = rows[rows["filename"] == f.filename]
        chunks = list(zip(sub["entrystart"], sub["entrystop"], strict=True))
        amp = amplification(f.filename, f.treename, list(f.columns), chunks)
        payload += amp.payload_bytes
        unique += amp.unique_basket_bytes
    if not unique or payload / unique < AMPLIFICATION_RATIO:
        return []
    ratio = payload / unique
    return [
        Finding(
            "amplification",
            "warning" if ratio >= 1.5 else "info",
            f"{dataset}: baskets cut by chunk edges are read by several chunks: "
            f"{format_bytes(payload)} of baskets read for {format_bytes(unique)} "
            f"needed once ({ratio:.2f}x); chunks larger than the baskets, or "
            "align_clusters=True, read each basket once.",
        )
    ]


def _memory(chunks: pd.DataFrame, worker_memory: float | None) -> list[Finding]:
    out = []
    peak = _numeric(chunks, "mem_peak_bytes")
    if not np.isfinite(peak).any():
        out.append(
            Finding(
                "no-memory",
                "info",
                "The records carry no memory figures (an executor other than "
                "SizingDaskExecutor without @track_sizes' probe?); the chunk size is "
                "not checked against memory.",
            )
        )
        return out
    limits = _numeric(chunks, "worker_memory_limit")
    if worker_memory is not None:
        limits = np.full(len(chunks), worker_memory)
    frac = peak / limits
    if np.isfinite(frac).any() and np.nanmax(frac) >= MEMORY_WARN:
        i = int(np.nanargmax(frac))
        row = chunks.iloc[i]
        out.append(
            Finding(
                "memory-near-limit",
                "critical" if frac[i] >= MEMORY_HEADROOM else "warning",
                f"{row['dataset']}: chunk {Path(str(row['filename'])).name} "
                f"[{int(row['entrystart']):,}, {int(row['entrystop']):,}) peaked at "
                f"{format_bytes(peak[i])}, {frac[i]:.0%} of the worker's "
                f"{format_bytes(limits[i])} memory_limit (Dask spills at 60-70%, "
                "pauses at 80%, kills at 95%); use smaller chunks or more memory.",
            )
        )
    shared = (
        chunks["mem_shared"].fillna(False).astype(bool)
        if "mem_shared" in chunks
        else None
    )
    if shared is not None and shared.any():
        out.append(
            Finding(
                "shared-memory",
                "info",
                f"{plural(int(shared.sum()), 'chunk')} of {len(chunks):,} ran while "
                "another chunk ran in the same worker process (several threads per "
                "worker): their memory figures are the process's, not per chunk. Run "
                "with one thread per worker to measure a chunk's memory.",
            )
        )
    return out


#: The phases of a chunk task as findings name them (``records.PHASE_FIELDS``
#: without the measuring, and the time blocked in reads across them).
_PHASE_NAMES = {
    "loadtime": "loading the processor",
    "opentime": "opening the file",
    "buildtime": "building NanoEvents",
    "processtime": "processing",
    "outputtime": "compressing the output",
}
#: A chunk blocked in reads for more than this share of its wall time is
#: latency-bound when its requests are small (below LATENCY_REQUEST_BYTES).
LATENCY_SHARE = 0.5
LATENCY_REQUEST_BYTES = 4_000_000
#: Wall time above CPU time by this factor, with little time blocked in reads.
CPU_STARVED_RATIO = 2.0
#: Findings about phases need chunks at least this long (median wall time).
PHASE_MIN_SECONDS = 0.05


def _slow_phase(chunks: pd.DataFrame, worst: int, ok: np.ndarray[Any, Any]) -> str:
    """Which phase made chunk ``worst`` slow: the one above its median by the most."""
    excess: dict[str, float] = {}
    for name in (*_PHASE_NAMES, "readtime"):
        values = _numeric(chunks, name)
        if not np.isfinite(values[worst]) or not np.isfinite(values[ok]).any():
            continue
        excess[name] = float(values[worst] - np.nanmedian(values[ok]))
    phases = {k: v for k, v in excess.items() if k != "readtime"}
    if "opentime" not in phases:
        return ""  # records without phases (before coffea-sizing had them)
    wall = _numeric(chunks, "walltime")
    extra = float(wall[worst] - np.median(wall[ok]))
    name = max(phases, key=lambda k: phases[k])
    if phases[name] < 0.5 * extra:
        return (
            f"none of that chunk's phases explains its extra {format_seconds(extra)} "
            "(the records do not add up: look at that worker)"
        )
    value = _numeric(chunks, name)[worst]
    text = (
        f"that chunk spent {format_seconds(value)} {_PHASE_NAMES[name]} against a "
        f"median of {format_seconds(value - phases[name])}"
    )
    read = excess.get("readtime", 0.0)
    if name != "outputtime" and read >= 0.5 * phases[name]:
        text += (
            f", {format_seconds(read)} more than the median blocked in reads: "
            "look at that file's storage and the network to it"
        )
    elif name == "processtime":
        text += ": look at what process() does with those events, and that worker"
    else:
        text += ": look at that file and that worker"
    return text


def _phases(dataset: str, rows: pd.DataFrame) -> list[Finding]:
    """latency-bound, open-dominated and cpu-starved: from the phases of the chunks
    (records of SizingDaskExecutor since the phases exist; none otherwise)."""
    done = (
        rows[~rows["skipped"].fillna(False).astype(bool)] if "skipped" in rows else rows
    )
    wall = _numeric(done, "walltime")
    ok = np.isfinite(wall) & (wall > 0)
    if not ok.any():
        return []
    med_wall = float(np.median(wall[ok]))
    if med_wall < PHASE_MIN_SECONDS:
        return []
    out: list[Finding] = []

    def med(name: str) -> float:
        values = _numeric(done, name)[ok]
        good = np.isfinite(values)
        return float(np.median(values[good])) if good.any() else math.nan

    read, requests = med("readtime"), med("read_requests")
    bytesread = med("bytesread")
    read_share = read / med_wall if math.isfinite(read) else math.nan
    if (
        math.isfinite(read_share)
        and read_share > LATENCY_SHARE
        and math.isfinite(requests)
        and requests >= 3
        and bytesread / requests < LATENCY_REQUEST_BYTES
    ):
        per_request = read / max(1.0, requests - 2)
        out.append(
            Finding(
                "latency-bound",
                "warning",
                f"{dataset}: chunks spent a median {read_share:.0%} of their "
                f"{format_seconds(med_wall)} blocked in reads: {requests:.0f} "
                f"requests of {format_bytes(bytesread / requests)} on average, "
                f"{format_seconds(per_request)} each. Round trips cost more than the "
                "bytes: larger chunks (fewer requests per event), coffea's preload "
                "of the columns read (one request for all), or fewer branches.",
            )
        )
    opening = med("opentime") + med("buildtime")
    process = med("processtime")
    if math.isfinite(opening) and math.isfinite(process) and opening > process:
        out.append(
            Finding(
                "open-dominated",
                "warning" if opening > 2 * process else "info",
                f"{dataset}: opening the file and building NanoEvents took a median "
                f"{format_seconds(opening)} per chunk ({opening / med_wall:.0%} of "
                f"its wall time), processing {format_seconds(process)}: every chunk "
                "pays for it again. Fewer, larger chunks, or fewer branches in the "
                "file's schema.",
            )
        )
    cpu = med("cputime")
    if (
        math.isfinite(cpu)
        and cpu > 0
        and med_wall > CPU_STARVED_RATIO * cpu
        and not (math.isfinite(read_share) and read_share > 0.25)
    ):
        out.append(
            Finding(
                "cpu-starved",
                "warning",
                f"{dataset}: chunks took a median {format_seconds(med_wall)} of wall "
                f"time for {format_seconds(cpu)} of CPU time "
                f"({med_wall / cpu:.1f}x), and were not blocked in reads "
                f"({'unknown' if not math.isfinite(read_share) else f'{read_share:.0%}'}"
                " of the time): an oversubscribed node (more busy threads than "
                "cores), or a processor waiting on something else (locks, sleeps, "
                "services).",
            )
        )
    return out


def _timing(chunks: pd.DataFrame) -> list[Finding]:
    out: list[Finding] = []
    wall = _numeric(chunks, "walltime")
    ok = np.isfinite(wall)
    if not ok.any():
        return out
    median = float(np.median(wall[ok]))
    if median < TINY_CHUNK_SECONDS and ok.sum() > 1:
        out.append(
            Finding(
                "tiny-chunks",
                "warning",
                f"The median chunk takes {format_seconds(median)}: per-task "
                "overhead (scheduling, opening the file, building the events) "
                f"weighs as much as the work; aim for chunks of at least "
                f"{format_seconds(TINY_CHUNK_SECONDS)} (larger chunksize).",
            )
        )
    slow = (
        ok
        & (wall > STRAGGLER_FACTOR * median)
        & (wall - median > STRAGGLER_MIN_SECONDS)
    )
    if slow.any() and ok.sum() >= 3:
        rows = chunks[slow]
        files = sorted({Path(str(f)).name for f in rows["filename"]})
        worst = int(np.nanargmax(np.where(slow, wall, -np.inf)))
        out.append(
            Finding(
                "stragglers",
                "warning",
                f"{plural(int(slow.sum()), 'chunk')} took over {STRAGGLER_FACTOR:g}x "
                f"the median {format_seconds(median)} (slowest "
                f"{format_seconds(wall[worst])}, {chunks.iloc[worst]['dataset']} "
                f"{Path(str(chunks.iloc[worst]['filename'])).name} "
                f"[{int(chunks.iloc[worst]['entrystart']):,}, "
                f"{int(chunks.iloc[worst]['entrystop']):,})), in "
                f"{', '.join(files[:5])}: "
                f"{_slow_phase(chunks, worst, ok) or 'look at those files and workers'}.",
            )
        )
    if "worker" in chunks and chunks["worker"].notna().any():
        busy = (
            chunks.assign(_wall=wall)
            .dropna(subset=["worker"])
            .groupby("worker")["_wall"]
            .sum()
        )
        if len(busy) >= 2 and len(chunks) >= 2 * len(busy) and busy.min() > 0:
            skew = float(busy.max() / busy.min())
            if skew >= SKEW_FACTOR:
                out.append(
                    Finding(
                        "worker-skew",
                        "info",
                        f"Workers were unevenly busy: {busy.idxmax()} spent "
                        f"{format_seconds(busy.max())} in chunks, {busy.idxmin()} "
                        f"{format_seconds(busy.min())} ({skew:.1f}x); a slow or "
                        "shared machine, or too few chunks to balance.",
                    )
                )
    return out


def _bookkeeping(chunks: pd.DataFrame) -> list[Finding]:
    out = []
    attempts = _numeric(chunks, "attempts")
    retried = np.isfinite(attempts) & (attempts > 1)
    if retried.any():
        rows = chunks[retried]
        row = rows.iloc[0]
        out.append(
            Finding(
                "retries",
                "critical",
                f"{plural(int(retried.sum()), 'chunk')} needed more than one attempt "
                f"(up to {int(np.nanmax(attempts))}), e.g. {row['dataset']} "
                f"{Path(str(row['filename'])).name} [{int(row['entrystart']):,}, "
                f"{int(row['entrystop']):,}): a worker died or the task failed; look "
                "at its memory and the worker logs.",
            )
        )
    if "skipped" in chunks:
        skipped = chunks["skipped"].fillna(False).astype(bool)
        if skipped.any():
            files = sorted({Path(str(f)).name for f in chunks.loc[skipped, "filename"]})
            out.append(
                Finding(
                    "skipped",
                    "critical",
                    f"{plural(int(skipped.sum()), 'chunk')} skipped (coffea's "
                    f"skipbadfiles), in {', '.join(files[:5])}: their events are "
                    "missing from the output.",
                )
            )
    counts = chunks.groupby("dataset").size()
    single = sorted(str(d) for d, n in counts.items() if n == 1)
    if single:
        out.append(
            Finding(
                "few-chunks",
                "info",
                f"{', '.join(single)}: one chunk only, so the memory and time models "
                "have no spread to fit (their fixed and per-event terms are split "
                "from that chunk's process() time and memory rise, and a worker's "
                "first chunk also pays its imports); advise a run of several chunks "
                "per dataset for a reliable high quantile.",
            )
        )
    return out


def _outputs(chunks: pd.DataFrame, merges: pd.DataFrame) -> list[Finding]:
    out = []
    task = _numeric(chunks, "task_nbytes")
    compressed = _numeric(chunks, "output_compressed_bytes")
    pickled = _numeric(chunks, "output_pickled_bytes")
    if not merges.empty and np.isfinite(task).any():
        levels = merges.assign(_n=_numeric(merges, "nbytes")).groupby("level")["_n"]
        top = levels.median().dropna()
        base = float(np.nanmedian(task))
        if len(top) and base > 0 and float(top.iloc[-1]) > 2 * base:
            out.append(
                Finding(
                    "output-grows",
                    "warning",
                    f"The output grows with the reduction level: chunks send "
                    f"{format_bytes(base)}, level-{int(top.index[-1])} merges "
                    f"{format_bytes(top.iloc[-1])} ({top.iloc[-1] / base:.1f}x): the "
                    "output scales with the events (lists, not histograms), so the "
                    "final reductions will need that memory times split_every.",
                )
            )
    no_compression = ~np.isfinite(compressed) & np.isfinite(pickled) & np.isfinite(task)
    if no_compression.any():
        ratio = float(np.median(task[no_compression] / pickled[no_compression]))
        if not 0.5 <= ratio <= 2:
            out.append(
                Finding(
                    "nbytes-estimate",
                    "info",
                    "compression=None: the scheduler's nbytes of a chunk output is "
                    f"dask.sizeof's estimate, {ratio:.1f}x the pickled size (median): "
                    "Dask's memory and transfer decisions use that estimate; "
                    "compression (the default) makes nbytes exact.",
                )
            )
    return out


# ------------------------------------------------------------------ advise()
def advise(
    source: Any,
    *,
    worker_memory: float | str | None = None,
    target_chunk_seconds: float | None = None,
) -> Advice:
    """Findings, a per-chunk cost model and a chunk size, from a run's records.

    Parameters
    ----------
    source : mapping, tuple, DataFrame, str or os.PathLike
        A ``Runner`` report (``savemetrics=True`` with
        :class:`~coffea_sizing.SizingDaskExecutor`), the ``(output, report)``
        pair, the output of a :func:`~coffea_sizing.track_sizes` processor under
        any executor, a :func:`~coffea_sizing.chunk_table`, or the path of records
        saved by :func:`~coffea_sizing.save_records`.
    worker_memory : int, float or str, optional
        A worker's memory limit (bytes, or ``"4GB"``). Default: the smallest
        ``worker_memory_limit`` in the records; the predicted high-quantile peak
        must stay under :data:`MEMORY_HEADROOM` of it.
    target_chunk_seconds : float, optional
        Longest wanted chunk wall time (high quantile). Default: no limit.

    Returns
    -------
    Advice

    Raises
    ------
    AdviceError
        (a :class:`ValueError`) with one line when there is nothing to advise on:
        no records, records that are not chunk records, a bad ``worker_memory``,
        records of a file that changed since they were made (fewer entries, a
        branch they read gone).

    Notes
    -----
    Deterministic for given records, and no cluster call. The input files'
    metadata are read (never a basket) for exact bytes; a file that cannot be
    opened is named in a ``files-unreachable`` finding and its bytes are fitted.

    Examples
    --------
    Four chunks of 50 events of the real NanoAOD test file (records as a run with
    :class:`~coffea_sizing.SizingDaskExecutor` gives them, shortened):

    >>> from coffea_sizing import advise
    >>> from coffea_sizing.datasets import ttbar_path
    >>> records = [
    ...     {"dataset": "ttbar", "filename": ttbar_path(), "treename": "Events",
    ...      "entrystart": s, "entrystop": s + 50, "bytesread": 336624,
    ...      "columns": ["Jet_pt", "nJet"], "walltime": 0.25, "processtime": 0.05,
    ...      "mem_peak_bytes": 250_000_000, "mem_usage_bytes": 1_000_000,
    ...      "worker_memory_limit": 2_000_000_000, "worker": f"w{s // 100}"}
    ...     for s in range(0, 200, 50)
    ... ]
    >>> advice = advise(records)
    >>> [f.code for f in advice.findings]
    ['fixed-cost']
    >>> print(advice.findings[0].message)  # doctest: +NORMALIZE_WHITESPACE
    ttbar: 100% of the 1.35 MB read is the fixed cost of opening the file and its
    TTree metadata (337 kB per chunk, 4 chunks of up to 50 entries); it stays above
    10% even at one chunk per file: the files are small next to their metadata
    (merge small files).
    >>> advice.predict(100)[["dataset", "chunks", "bytesread"]]
      dataset  chunks  bytesread
    0   ttbar       2   673248.0
    >>> int(advice.recommendation.loc[0, "chunksize"])
    50
    """
    import pandas as pd

    chunks, merges, context = _load(source)
    memory = _parse_bytes(worker_memory)
    if memory is None:
        limits = _numeric(chunks, "worker_memory_limit")
        limits = limits[np.isfinite(limits) & (limits > 0)]
        memory = float(limits.min()) if len(limits) else None
    if target_chunk_seconds is not None and not target_chunk_seconds > 0:
        raise AdviceError(
            f"target_chunk_seconds must be positive, got {target_chunk_seconds!r}"
        )
    workers = int(chunks["worker"].dropna().nunique()) if "worker" in chunks else 0
    workers = max(workers, int(context.get("workers") or 0), 1)
    model = {
        str(ds): _dataset_model(str(ds), rows)
        for ds, rows in chunks.groupby("dataset", sort=True)
    }
    rec_rows = []
    total_entries = sum(m.num_entries for m in model.values())
    for ds, m in model.items():
        rows = chunks[chunks["dataset"] == ds]
        size = _measured_size(rows)
        share = m.num_entries / max(total_entries, 1)
        min_chunks = max(1, math.ceil(CHUNKS_PER_WORKER * workers * share))
        best, why = _recommend(
            m, size, memory, target_chunk_seconds, min_chunks, workers
        )
        measured = {
            "measured_chunksize": size,
            "measured_chunks": len(rows),
            "measured_bytesread": float(np.nansum(_numeric(rows, "bytesread"))),
            "measured_mem_peak_bytes": float(
                np.nanmax(_numeric(rows, "mem_peak_bytes"))
            )
            if np.isfinite(_numeric(rows, "mem_peak_bytes")).any()
            else math.nan,
            "measured_walltime": float(np.nanmedian(_numeric(rows, "walltime")))
            if np.isfinite(_numeric(rows, "walltime")).any()
            else math.nan,
            "measured_total_walltime": float(np.nansum(_numeric(rows, "walltime"))),
        }
        rec_rows.append({**best, "decided_by": why, **measured})
    recommendation = pd.DataFrame(rec_rows)
    findings = _findings(chunks, merges, model, memory)
    if context.get("process_only"):
        findings.append(
            Finding(
                "process-only",
                "info",
                "These records come from @track_sizes under an executor other than "
                "SizingDaskExecutor: memory and time are those of process() alone "
                "(opening the file and building the events are not included), and no "
                "worker memory limit is known.",
            )
        )
    return Advice(
        findings=findings,
        model=model,
        recommendation=recommendation,
        chunks=chunks,
        worker_memory=memory,
        target_chunk_seconds=target_chunk_seconds,
        workers=workers,
    )


# ------------------------------------------------------------------ rendering
def _text(advice: Advice) -> str:
    lines = [
        f"coffea-sizing advice: {plural(len(advice.chunks), 'chunk')}, "
        f"{plural(len(advice.model), 'dataset')}, {plural(advice.workers, 'worker')}"
        + (
            f" (memory limit {format_bytes(advice.worker_memory)})"
            if advice.worker_memory
            else " (no memory limit known)"
        ),
        "",
        "Findings:" if advice.findings else "Findings: none.",
    ]
    lines += [f"  {f}" for f in advice.findings]
    lines += ["", "Recommendation:"]
    for row in advice.recommendation.to_dict("records"):
        lines.append(
            f"  {row['dataset']}: chunksize {row['chunksize']:,} "
            f"(decided by {row['decided_by']})"
        )
        lines.append(
            f"    predicted: {plural(row['chunks'], 'chunk')}, "
            f"{format_bytes(row['bytesread'])} read"
            f"{'' if row['bytes_exact'] else ' (fitted)'}, peak "
            f"{format_bytes(row['mem_peak_bytes'])} (high "
            f"{format_bytes(row['mem_peak_high'])}), chunk "
            f"{format_seconds(row['walltime'])} (high "
            f"{format_seconds(row['walltime_high'])})"
        )
        lines.append(
            f"    measured at {row['measured_chunksize']:,}: "
            f"{plural(row['measured_chunks'], 'chunk')}, "
            f"{format_bytes(row['measured_bytesread'])} read, peak "
            f"{format_bytes(row['measured_mem_peak_bytes'])}, chunk "
            f"{format_seconds(row['measured_walltime'])} (median)"
        )
    lines += ["", "Model (per chunk of n events):"]
    recommended = advice.recommendation.set_index("dataset")
    for m in advice.model.values():
        if m.bytes_exact:
            # the figure's source: predict() from the basket metadata
            row = recommended.loc[m.dataset]
            opens = sorted({f.open_bytes for f in m.files if f.open_bytes is not None})
            lines.append(
                f"  {m.dataset} bytesread: to the byte from the basket metadata: "
                f"{' to '.join(format_bytes(o) for o in (opens[0], opens[-1])[: len(opens)])}"
                f" to open a file and its tree per chunk, plus the baskets it touches "
                f"({format_bytes(row['bytesread_per_chunk'])} per chunk at "
                f"{int(row['chunksize']):,})"
            )
        fits = (
            (m.memory, m.walltime)
            if m.bytes_exact
            else (m.bytesread, m.memory, m.walltime)
        )
        for fit in fits:
            if fit is None:
                continue
            fmt = format_seconds if fit.quantity == "walltime" else format_bytes
            lines.append(
                f"  {m.dataset} {fit.quantity}: {fmt(fit.fixed)} + "
                f"{fmt(fit.per_event * 1000)} per 1,000 events, high x"
                f"{fit.high_ratio:.2f} ({fit.method})"
                + (f" [{fit.caveat}]" if fit.caveat else "")
            )
            if fit.note:
                lines.append(f"    {fit.note}")
    return "\n".join(lines)


def model_table(advice: Advice) -> pd.DataFrame:
    """The fits of every dataset, one row per dataset and quantity."""
    import pandas as pd

    rows = []
    for m in advice.model.values():
        for fit in (m.bytesread, m.memory, m.walltime):
            if fit is not None:
                rows.append(
                    {
                        "dataset": m.dataset,
                        "exact_bytes": m.bytes_exact,
                        **{
                            k: getattr(fit, k)
                            for k in (
                                "quantity",
                                "fixed",
                                "per_event",
                                "high_ratio",
                                "method",
                                "chunks",
                                "note",
                            )
                        },
                    }
                )
    return pd.DataFrame(rows)


#: The recommendation's columns shown first: what the recommended size predicts, and
#: what the run measured (the rest is one click away).
_PREDICTED_SHORT = (
    "dataset",
    "chunksize",
    "chunks",
    "bytesread",
    "bytesread_per_chunk",
    "open_share",
    "mem_peak_high",
    "walltime_high",
    "total_walltime",
)
_MEASURED_SHORT = (
    "dataset",
    "measured_chunksize",
    "measured_chunks",
    "measured_bytesread",
    "measured_mem_peak_bytes",
    "measured_walltime",
    "measured_total_walltime",
)
_QUANTITY_WORDS = {
    "bytesread": "bytes read",
    "mem_peak_bytes": "peak memory",
    "walltime": "wall time",
}


def _model_display(model: pd.DataFrame) -> pd.DataFrame:
    """The model table in words and units, one unit per row (bytes or seconds)."""
    import pandas as pd

    rows = []
    for r in model.to_dict("records"):
        fmt = format_seconds if r["quantity"] == "walltime" else format_bytes
        rows.append(
            {
                "dataset": r["dataset"],
                "quantity": _QUANTITY_WORDS.get(r["quantity"], r["quantity"]),
                "fixed per chunk": fmt(r["fixed"]),
                "per 1,000 events": fmt(r["per_event"] * 1000),
                "high quantile": f"x{float(r['high_ratio']):.2f}",
                "chunks fitted": f"{int(r['chunks']):,}",
            }
        )
    return pd.DataFrame(rows)


def _plain_table(frame: pd.DataFrame) -> str:
    """Pre-formatted text cells as a report table (numbers right-aligned)."""
    import pandas as pd

    numeric = [c for c in frame.columns if c not in {"dataset", "quantity"}]
    classes = pd.DataFrame(
        {c: ["num" if c in numeric else "text"] * len(frame) for c in frame.columns},
        index=frame.index,
    )
    return (
        frame.style.format(escape="html")
        .hide(axis="index")
        .set_td_classes(classes)
        .set_table_attributes('class="sizing"')
        .set_table_styles(
            [
                {"selector": f"th.col{i}", "props": "text-align: left;"}
                for i, c in enumerate(frame.columns)
                if c not in numeric
            ]
        )
        .to_html()
    )


def _html(advice: Advice, figure_png: bytes | None) -> str:
    import base64

    import jinja2

    from .tables import styled

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("coffea_sizing", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    rec = advice.recommendation
    model = model_table(advice)
    summary = _text(advice).splitlines()[0]
    return env.get_template("advice.html.j2").render(
        title="coffea-sizing advice",
        meta=[summary.removeprefix("coffea-sizing advice: ")],
        findings=[f.to_dict() for f in advice.findings],
        predicted=styled(rec, _PREDICTED_SHORT).to_html(),
        measured=styled(rec, _MEASURED_SHORT).to_html(),
        full=styled(rec, [c for c in rec.columns if c != "decided_by"]).to_html(),
        ncolumns=len(rec.columns) - 1,
        decided=list(zip(rec["dataset"], rec["decided_by"], strict=True)),
        model=_plain_table(_model_display(model)),
        methods=[
            (
                r["dataset"],
                _QUANTITY_WORDS.get(r["quantity"], r["quantity"]),
                r["method"],
                r["note"],
            )
            for r in model.to_dict("records")
        ],
        figure=base64.b64encode(figure_png).decode() if figure_png else None,
    )
