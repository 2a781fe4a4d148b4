"""Plan a campaign before it starts: from a sampled run's model to the whole fileset.

Covers :func:`plan_campaign` (behind :meth:`coffea_sizing.advise.Advice.plan`): for every
dataset of a fileset and in total, the chunks, entries and bytes read (to the byte
from the files' metadata), worker-seconds, wall time on N workers, chunk peak memory
and the size of the reduced output; the one chunk size to give coffea's ``Runner``
(``Plan.chunksize``), per-dataset sizes beside it (``Plan.per_dataset``) and
the smallest worker memory (``Plan.worker_memory``). It opens file metadata only
(never a basket), in parallel, and makes no cluster call. Does not fit the model
(:mod:`coffea_sizing.advise` does; :mod:`coffea_sizing.model` holds it) or run
anything (``coffea-sizing run --sample``). How the intervals are computed:
``docs/chunk-size.md``.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .findings import format_bytes, format_seconds, plural
from .model import (
    CHUNKS_PER_WORKER,
    HIGH_QUANTILE,
    DatasetModel,
    Fit,
    size_series,
    static_chunks,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CREEP_MARGIN",
    "EXTRAPOLATION",
    "OPEN_COST_SPREAD",
    "PAUSE_FRACTION",
    "TASK_OVERHEAD_SECONDS",
    "FilePlan",
    "Plan",
    "PlanError",
    "pause_fraction",
    "plan_campaign",
    "sample_work",
]

#: Dask's default ``distributed.worker.memory.pause`` (share of ``memory_limit``).
PAUSE_FRACTION = 0.8
#: Dask's overhead per task added to a chunk's cost (seconds; about 1 ms).
TASK_OVERHEAD_SECONDS = 0.001
#: Margin on the high-quantile chunk peak for a worker's resident memory creeping
#: up chunk after chunk over a campaign (the allocator keeps some freed pages):
#: measured 0.2-1.5 MB per chunk, 1-2% of a 330 MB peak over ten chunks, on the
#: generated files; the sample's own creep is used when larger.
CREEP_MARGIN = 0.05
#: Files of a dataset whose open costs differ by this factor get their own fixed
#: wall time per chunk.
OPEN_COST_SPREAD = 1.5
#: A chunk size beyond this factor of the largest sampled one is called extrapolated.
EXTRAPOLATION = 2.0
#: Bootstrap resamples of the chunks' ``measured / fitted`` for the total intervals.
_BOOTSTRAP = 1000
#: More files than this: progress lines on stderr while their metadata is read.
_PROGRESS_FILES = 50


class PlanError(ValueError):
    """A fileset that cannot be planned from the model (the message says why)."""


def pause_fraction() -> float:
    """Dask's pause threshold, ``distributed.worker.memory.pause`` (0.8 by default;
    :data:`PAUSE_FRACTION` when the pause is switched off).

    Examples
    --------
    >>> from coffea_sizing.plan import pause_fraction
    >>> pause_fraction()
    0.8
    """
    import dask

    value = dask.config.get("distributed.worker.memory.pause", PAUSE_FRACTION)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return PAUSE_FRACTION
    return float(value)


@dataclass(frozen=True)
class FilePlan:
    """One file of the fileset as the plan sees it.

    Attributes
    ----------
    dataset, filename, treename : str
    num_entries : int
    open_bytes : int or None
        What every chunk of this file reads to open it and its tree (its own fixed
        term); None when the file's metadata could not be read.
    exact : bool
        Bytes of its chunks are predicted to the byte from its basket metadata.
    problem : str
        Why not exact (the file did not open, a column is missing), or ``""``.
    """

    dataset: str
    filename: str
    treename: str
    num_entries: int
    open_bytes: int | None
    exact: bool
    problem: str = ""


def _open_file(
    dataset: str,
    filename: str,
    treename: str,
    model: DatasetModel,
    uproot_options: Mapping[str, Any] | None,
) -> FilePlan:
    from .layout import read_layout
    from .predict import predict_bytesread

    try:
        layout = read_layout(filename, treename, uproot_options)
    except Exception as err:  # any unreadable file: its entries from the model
        known = {f.filename: f for f in model.files}
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        if filename not in known:
            raise PlanError(
                f"{filename} (dataset {dataset!r}): cannot read its metadata to count "
                f"its entries: {problem}"
            ) from err
        return FilePlan(
            dataset,
            filename,
            treename,
            known[filename].num_entries,
            None,
            False,
            problem,
        )
    open_bytes = layout.cost.total
    try:
        predict_bytesread(filename, treename, list(model.columns), [(0, 0)])
    except Exception as err:  # noqa: BLE001 - a column this file lacks
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        return FilePlan(
            dataset, filename, treename, layout.num_entries, open_bytes, False, problem
        )
    return FilePlan(dataset, filename, treename, layout.num_entries, open_bytes, True)


def _open_all(
    fileset: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, DatasetModel],
    uproot_options: Mapping[str, Any] | None,
    progress: bool | Callable[[int, int], None] | None,
) -> list[FilePlan]:
    jobs = [
        (dataset, str(name), str(tree), models[dataset])
        for dataset, entry in fileset.items()
        for name, tree in entry["files"].items()
    ]
    report: Callable[[int, int], None] | None = None
    if callable(progress):
        report = progress
    elif progress or (progress is None and len(jobs) > _PROGRESS_FILES):
        step = max(1, len(jobs) // 10)

        def report(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                sys.stderr.write(
                    f"plan: read the metadata of {done:,}/{total:,} files\n"
                )

    out: list[FilePlan] = []
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(jobs)))) as pool:
        futures = [
            pool.submit(_open_file, d, n, t, m, uproot_options) for d, n, t, m in jobs
        ]
        for i, future in enumerate(futures, 1):  # in fileset order: deterministic
            out.append(future.result())
            if report is not None:
                report(i, len(jobs))
    return out


@dataclass(frozen=True)
class _Chunks:
    """The chunks of one dataset at one chunk size."""

    entries: np.ndarray[Any, Any]  # entries of every chunk
    files: list[FilePlan]  # the file of every chunk
    bytesread: float
    bytes_exact: bool


def _dataset_chunks(
    files: list[FilePlan], model: DatasetModel, chunksize: int
) -> _Chunks:
    from .predict import coffea_chunks, predict_bytesread

    entries: list[int] = []
    owners: list[FilePlan] = []
    total = 0.0
    exact = True
    for f in files:
        if f.exact:
            chunks = coffea_chunks(f.filename, f.treename, chunksize)
            table = predict_bytesread(
                f.filename, f.treename, list(model.columns), chunks
            )
            total += float(table["predicted_bytesread"].sum())
        else:
            chunks = static_chunks(f.num_entries, chunksize)
            exact = False
            fit = model.bytesread
            for a, b in chunks:
                # this file's own fixed term when its metadata opened
                fixed = float(f.open_bytes) if f.open_bytes is not None else fit.fixed
                total += fixed + fit.per_event * (b - a)
        entries.extend(b - a for a, b in chunks)
        owners.extend([f] * len(chunks))
    return _Chunks(np.asarray(entries, dtype=float), owners, total, exact)


def _interval(fit: Fit) -> tuple[float, float]:
    """Low and high factors on a total over many chunks: the 10% and 90% quantiles
    of the median ``measured / fitted`` over bootstrap resamples of the fitted
    chunks (seeded: deterministic); the chunks' own spread when fewer than 3."""
    ratios = np.asarray(fit.ratios, dtype=float)
    if len(ratios) < 3:
        return fit.low_ratio, fit.high_ratio
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(ratios), (_BOOTSTRAP, len(ratios)))
    medians = np.median(ratios[picks], axis=1)
    q = 1 - HIGH_QUANTILE
    return float(np.quantile(medians, q)), float(np.quantile(medians, 1 - q))


def _fixed_times(
    model: DatasetModel, wall: Fit, files: list[FilePlan]
) -> dict[str, float]:
    """Each file's fixed wall time per chunk.

    When the files' open costs differ (largest over smallest at least
    :data:`OPEN_COST_SPREAD`), a sampled file keeps its own fixed term and another
    file gets the line through the sampled files' (open bytes, fixed term), or
    their nearest; otherwise every file gets the dataset's fixed term.
    """
    opens = [f.open_bytes for f in files if f.open_bytes is not None]
    own = model.file_walltime
    if not own or not opens or max(opens) < OPEN_COST_SPREAD * max(min(opens), 1):
        return {f.filename: wall.fixed for f in files}
    known = {f.filename: f.open_bytes for f in files if f.open_bytes is not None}
    known.update(
        {m.filename: m.open_bytes for m in model.files if m.open_bytes is not None}
    )
    points = sorted((known[n], t) for n, t in own.items() if n in known)
    x = np.asarray([p[0] for p in points], dtype=float)
    y = np.asarray([p[1] for p in points], dtype=float)
    slope = 0.0
    if len(np.unique(x)) >= 2:
        slope = max(float(np.polyfit(x, y, 1)[0]), 0.0)
    out = {}
    for f in files:
        if f.filename in own:
            out[f.filename] = own[f.filename]
        elif f.open_bytes is None or not len(x):
            out[f.filename] = wall.fixed
        else:
            i = int(np.argmin(np.abs(x - f.open_bytes)))
            out[f.filename] = max(y[i] + slope * (f.open_bytes - x[i]), 0.0)
    return out


def _makespan(seconds: np.ndarray[Any, Any], workers: int) -> float:
    """Wall time of the chunks on ``workers`` workers, longest first to the least
    busy (how Dask spreads independent tasks, near enough)."""
    if len(seconds) == 0:
        return 0.0
    load = [0.0] * max(1, workers)
    for s in sorted(seconds.tolist(), reverse=True):
        heapq.heappush(load, heapq.heappop(load) + s)
    return max(load)


def _row(
    dataset: str,
    model: DatasetModel,
    files: list[FilePlan],
    chunksize: int,
    workers: int,
) -> dict[str, Any]:
    c = _dataset_chunks(files, model, chunksize)
    n = len(c.entries)
    largest = float(c.entries.max()) if n else 0.0
    row: dict[str, Any] = {
        "dataset": dataset,
        "files": len(files),
        "entries": int(c.entries.sum()),
        "chunksize": chunksize,
        "chunks": n,
        "entries_per_chunk": int(largest),
        "bytesread": c.bytesread,
        "bytes_from": "metadata" if c.bytes_exact else "fitted",
    }
    wall = model.walltime
    if wall is not None:
        fixed = _fixed_times(model, wall, files)
        per_chunk = (
            np.asarray([fixed[f.filename] for f in c.files], dtype=float)
            + wall.per_event * c.entries
            + TASK_OVERHEAD_SECONDS
        )
        low, high = _interval(wall)
        total = float(per_chunk.sum())
        row.update(
            worker_s=total,
            worker_s_low=total * low,
            worker_s_high=total * high,
            wall_s=_makespan(per_chunk, workers),
            chunk_s_high=wall.at(largest)[1],
        )
    else:
        row.update(
            worker_s=math.nan,
            worker_s_low=math.nan,
            worker_s_high=math.nan,
            wall_s=math.nan,
            chunk_s_high=math.nan,
        )
    mem = model.memory
    if mem is not None:
        median, high = mem.at(largest)
        creep = model.baseline_high_bytes - model.baseline_bytes
        high += max(creep if math.isfinite(creep) else 0.0, CREEP_MARGIN * median)
        inc = model.increment
        row.update(
            peak_bytes=median,
            peak_high_bytes=high,
            baseline_bytes=model.baseline_bytes,
            increment_bytes=inc.at(largest)[0] if inc is not None else math.nan,
        )
    else:
        row.update(
            peak_bytes=math.nan,
            peak_high_bytes=math.nan,
            baseline_bytes=math.nan,
            increment_bytes=math.nan,
        )
    out = model.output
    row["output_bytes"] = out.at(row["entries"])[0] if out is not None else math.nan
    return row


#: The figures :meth:`Plan.compare` sets side by side.
_COMPARED = ("chunks", "bytesread", "worker_s", "peak_bytes", "increment_bytes")

#: Columns of :meth:`Plan.to_frame`, in order.
PLAN_COLUMNS = (
    "dataset",
    "files",
    "entries",
    "chunksize",
    "chunks",
    "entries_per_chunk",
    "bytesread",
    "bytes_from",
    "worker_s",
    "worker_s_low",
    "worker_s_high",
    "wall_s",
    "chunk_s_high",
    "peak_bytes",
    "peak_high_bytes",
    "baseline_bytes",
    "increment_bytes",
    "output_bytes",
)


@dataclass
class Plan:
    """What a campaign over a whole fileset will cost, before it runs.

    Attributes
    ----------
    chunksize : int
        The one ``Runner(chunksize=...)`` that minimises the campaign's predicted
        worker-seconds while the high-quantile chunk peak stays under the pause
        threshold of ``memory_limit`` (when one is given) and the high-quantile chunk
        time under the target (when given), keeping :data:`CHUNKS_PER_WORKER`
        chunks per worker when some size allows.
    per_dataset : dict of str to int
        The same choice made for each dataset alone (to run them separately).
    cost_single_s, cost_per_dataset_s : float
        Predicted worker-seconds of the campaign at ``chunksize`` and with
        ``per_dataset`` sizes.
    worker_memory : float or None
        The smallest ``memory_limit`` (bytes) at which the high-quantile chunk peak
        at ``chunksize`` stays under ``pause`` of it (None: no memory
        figures in the records).
    decided_by : str
        What set ``chunksize``, in words (with the way out when nothing fits).
    memory_limit : float or None
        The workers' memory limit the plan was made for.
    pause : float
        Dask's pause threshold used (share of ``memory_limit``).
    workers : int
        Workers the wall time is predicted for.
    files : list of FilePlan
        Every file, with its entries and fixed bytes.
    sampled_sizes : tuple of int
        The chunk sizes (entries) of the sampled run's chunks: time and memory
        beyond the largest are extrapolated, and the plan says by how much.
    """

    chunksize: int
    per_dataset: dict[str, int]
    cost_single_s: float
    cost_per_dataset_s: float
    worker_memory: float | None
    decided_by: str
    memory_limit: float | None
    pause: float
    workers: int
    files: list[FilePlan]
    target_chunk_seconds: float | None = None
    sampled_sizes: tuple[int, ...] = ()
    _models: dict[str, DatasetModel] = field(default_factory=dict, repr=False)

    def at(self, chunksize: int | Mapping[str, int]) -> pd.DataFrame:
        """The campaign's predicted figures at ``chunksize`` (one for all
        datasets, or ``{dataset: size}``): one row per dataset and a ``"total"``
        row; the columns of ``PLAN_COLUMNS`` (``*_bytes`` in bytes, ``*_s`` in
        seconds; ``worker_s_low``/``_high`` the interval of the total)."""
        import pandas as pd

        rows = []
        for dataset, model in self._models.items():
            size = chunksize[dataset] if isinstance(chunksize, Mapping) else chunksize
            if isinstance(size, bool) or int(size) < 1:
                raise PlanError(f"chunksize must be at least 1, got {size!r}")
            files = [f for f in self.files if f.dataset == dataset]
            rows.append(_row(dataset, model, files, int(size), self.workers))
        frame = pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
        return pd.concat([frame, _total(frame, self.workers)], ignore_index=True)

    def memory_needed(self, chunksize: int | Mapping[str, int]) -> float:
        """The smallest ``memory_limit`` (bytes) for ``chunksize``: the largest
        high-quantile chunk peak over the datasets, over ``pause``."""
        frame = self.at(chunksize)
        return float(frame["peak_high_bytes"].iloc[:-1].max()) / self.pause

    def compare(self, measured: Any) -> pd.DataFrame:
        """Planned against measured, one row per dataset and a total row.

        Parameters
        ----------
        measured : mapping, tuple or DataFrame
            The ``Runner`` report (or a :func:`~coffea_sizing.chunk_table`) of the
            campaign run at ``chunksize``.

        Returns
        -------
        pandas.DataFrame
            ``dataset`` and, for ``chunks``, ``bytesread``, ``worker_s`` (sum of
            the chunks' wall time), ``peak_bytes`` (largest chunk's peak: planned
            median, measured median of the largest chunks) and ``increment_bytes``
            (peak over the resident memory at the chunk's start),
            ``planned_*``, ``measured_*`` and ``ratio_*`` (planned / measured).
        """
        import pandas as pd

        from .records import chunk_table

        chunks = (
            measured if isinstance(measured, pd.DataFrame) else chunk_table(measured)
        )
        chunks = chunks.assign(
            entries=chunks["entrystop"] - chunks["entrystart"],
            dataset=chunks["dataset"].astype(str),
        )
        planned = self.at(self.chunksize).set_index("dataset")
        rows = []
        for name in [*self._models, "total"]:
            mine = chunks if name == "total" else chunks[chunks["dataset"] == name]
            largest = mine[mine["entries"] == mine["entries"].max()]

            def median(col: str, rows: pd.DataFrame = largest) -> float:
                if col not in rows:
                    return math.nan
                return float(pd.to_numeric(rows[col], errors="coerce").median())

            got = {  # the keys of _COMPARED
                "chunks": float(len(mine)),
                "bytesread": float(pd.to_numeric(mine["bytesread"]).sum()),
                "worker_s": float(pd.to_numeric(mine["walltime"]).sum()),
                "peak_bytes": median("mem_peak_bytes"),
                "increment_bytes": median("mem_usage_bytes"),
            }
            row: dict[str, Any] = {"dataset": name}
            for key, value in got.items():
                want = float(planned.loc[name, key])
                row[f"planned_{key}"] = want
                row[f"measured_{key}"] = value
                row[f"ratio_{key}"] = want / value if value else math.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def compare_tables(self, measured: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:meth:`compare` as two tables to show: planned and measured figures one
        row each (``dataset`` reads ``"tt: planned"``), and their ratios.

        Field names as columns, so :func:`coffea_sizing.tables.to_text` and
        :func:`~coffea_sizing.tables.styled` give them units (``ratio=True`` for
        the second).
        """
        import pandas as pd

        table = self.compare(measured)
        values, ratios = [], []
        for row in table.to_dict("records"):
            for kind in ("planned", "measured"):
                values.append(
                    {"dataset": f"{row['dataset']}: {kind}"}
                    | {q: row[f"{kind}_{q}"] for q in _COMPARED}
                )
            ratios.append(
                {"dataset": row["dataset"]} | {q: row[f"ratio_{q}"] for q in _COMPARED}
            )
        return pd.DataFrame(values), pd.DataFrame(ratios)

    def to_frame(self) -> pd.DataFrame:
        """:meth:`at` ``chunksize``: one row per dataset and a total row."""
        return self.at(self.chunksize)

    def curve(self, sizes: Sequence[int] | None = None) -> pd.DataFrame:
        """The whole campaign at each chunk size: what the choice was made from.

        Parameters
        ----------
        sizes : sequence of int, optional
            Chunk sizes (default: the sizes the plan chose among, with
            ``chunksize``).

        Returns
        -------
        pandas.DataFrame
            One row per size, the ``"total"`` row of :meth:`at`: ``chunksize``,
            ``chunks``, ``worker_s`` (``_low``/``_high``), ``wall_s``,
            ``peak_high_bytes`` (the largest over the datasets) and the others of
            ``PLAN_COLUMNS``; ``memory_needed_bytes`` is :meth:`memory_needed`.
        """
        import pandas as pd

        if sizes is None:
            sizes = _candidates(self.files, {self.chunksize})
        rows = []
        for size in sorted({int(s) for s in sizes}):
            total = self.at(size).iloc[-1].copy()
            total["chunksize"] = size
            rows.append(total)
        frame = pd.DataFrame(rows).reset_index(drop=True)
        frame["memory_needed_bytes"] = frame["peak_high_bytes"] / self.pause
        return frame

    def __str__(self) -> str:
        return _text(self)


def _total(frame: pd.DataFrame, workers: int) -> pd.DataFrame:
    import pandas as pd

    def worst(name: str) -> float:
        values = frame[name].dropna()
        return float(values.max()) if len(values) else math.nan

    sizes = frame["chunksize"].unique()
    total = {
        "dataset": "total",
        "files": int(frame["files"].sum()),
        "entries": int(frame["entries"].sum()),
        "chunksize": int(sizes[0]) if len(sizes) == 1 else None,
        "chunks": int(frame["chunks"].sum()),
        "entries_per_chunk": int(frame["entries_per_chunk"].max()),
        "bytesread": float(frame["bytesread"].sum()),
        "bytes_from": "metadata"
        if (frame["bytes_from"] == "metadata").all()
        else "fitted in part",
        "worker_s": float(frame["worker_s"].sum(min_count=1)),
        "worker_s_low": float(frame["worker_s_low"].sum(min_count=1)),
        "worker_s_high": float(frame["worker_s_high"].sum(min_count=1)),
        # all datasets' chunks share the workers; a lower bound is the longest
        # dataset alone, an upper bound their sum
        "wall_s": max(
            float(frame["worker_s"].sum(min_count=1)) / max(workers, 1),
            worst("wall_s"),
        ),
        "chunk_s_high": worst("chunk_s_high"),
        "peak_bytes": worst("peak_bytes"),
        "peak_high_bytes": worst("peak_high_bytes"),
        "baseline_bytes": worst("baseline_bytes"),
        "increment_bytes": worst("increment_bytes"),
        "output_bytes": float(frame["output_bytes"].sum(min_count=1)),
    }
    return pd.DataFrame([total], columns=list(PLAN_COLUMNS))


# ----------------------------------------------------------------- choosing
def _candidates(files: list[FilePlan], extra: set[int]) -> list[int]:
    largest = max((f.num_entries for f in files), default=1) or 1
    out = {largest, *(s for s in extra if 1 <= s <= largest)}
    out.update(f.num_entries for f in files if f.num_entries > 0)
    out.update(size_series(largest))
    return sorted(out)


def _choose(
    rows: list[dict[str, Any]],
    memory_cap: float | None,
    target: float | None,
    min_chunks: int,
    pause: float,
    memory_limit: float | None,
    workers: int,
) -> tuple[dict[str, Any], str]:
    """The best of ``rows`` (one per candidate size: ``chunksize``, ``chunks``,
    ``cost``, ``peak_high``, ``chunk_s_high``) and why."""

    def over_memory(r: dict[str, Any]) -> bool:
        return memory_cap is not None and r["peak_high"] > memory_cap

    def over_time(r: dict[str, Any]) -> bool:
        return target is not None and r["chunk_s_high"] > target

    def cost(r: dict[str, Any]) -> tuple[float, int]:
        c = r["cost"]
        return (round(c, 9) if math.isfinite(c) else math.inf, -r["chunksize"])

    timely = [r for r in rows if not over_time(r)] or rows[:1]
    fitting = [r for r in timely if not over_memory(r)]
    note = ""
    if not fitting:
        # nothing fits: the best size in time, and the memory each way out needs
        smallest = timely[0]
        fitting = timely
        assert memory_limit is not None
        note = (
            f"nothing fits in {format_bytes(memory_limit)} workers (Dask pauses at "
            f"{pause:.0%}, {format_bytes(memory_limit * pause)}; the idle worker "
            f"holds {format_bytes(smallest['baseline'])}): use "
            f"{format_bytes(smallest['peak_high'] / pause)} workers with chunks of "
            f"{smallest['chunksize']:,}"
        )
    spread = [r for r in fitting if r["chunks"] >= min_chunks] or fitting
    best = min(spread, key=cost)
    if note:
        if best["chunksize"] != timely[0]["chunksize"]:
            note += (
                f", or {format_bytes(best['peak_high'] / pause)} workers with chunks "
                f"of {best['chunksize']:,} (the cheapest size)"
            )
        return best, note
    larger = [r for r in rows if r["chunksize"] > best["chunksize"]]
    if not larger:
        return best, "the file size: one chunk per file"
    nxt = larger[0]
    if over_time(nxt):
        return best, (
            f"chunk time: chunks of {nxt['chunksize']:,} would take "
            f"{format_seconds(nxt['chunk_s_high'])} (high quantile), over the target "
            f"{format_seconds(target)}"
        )
    if over_memory(nxt):
        assert memory_limit is not None
        return best, (
            f"memory: chunks of {nxt['chunksize']:,} would peak at "
            f"{format_bytes(nxt['peak_high'])} (high quantile), over {pause:.0%} of "
            f"{format_bytes(memory_limit)}; {format_bytes(nxt['peak_high'] / pause)} "
            "workers would take them"
        )
    if nxt["chunks"] < min_chunks:
        return best, (
            f"parallelism: chunks of {nxt['chunksize']:,} make only "
            f"{plural(nxt['chunks'], 'chunk')} for {plural(workers, 'worker')} (keep "
            f"at least {CHUNKS_PER_WORKER} per worker)"
        )
    return best, "total cost: larger chunks cost more worker-seconds"


def _summaries(
    models: Mapping[str, DatasetModel],
    files: list[FilePlan],
    sizes: list[int],
    datasets: list[str],
    workers: int,
) -> list[dict[str, Any]]:
    out = []
    for size in sizes:
        rows = [
            _row(d, models[d], [f for f in files if f.dataset == d], size, workers)
            for d in datasets
        ]

        def worst(name: str, rows: list[dict[str, Any]] = rows) -> float:
            values = [r[name] for r in rows if math.isfinite(r[name])]
            return max(values) if values else math.nan

        cost = sum(r["worker_s"] for r in rows)
        if not math.isfinite(cost):  # no time model: bytes stand in for the cost
            cost = sum(r["bytesread"] for r in rows)
        out.append(
            {
                "chunksize": size,
                "chunks": sum(r["chunks"] for r in rows),
                "cost": cost,
                "peak_high": worst("peak_high_bytes"),
                "chunk_s_high": worst("chunk_s_high"),
                "baseline": worst("baseline_bytes"),
            }
        )
    return out


def plan_campaign(
    models: Mapping[str, DatasetModel],
    fileset: Any,
    *,
    chunksize: int | None = None,
    workers: int = 1,
    memory_limit: float | None = None,
    target_chunk_seconds: float | None = None,
    sampled_sizes: tuple[int, ...] = (),
    treename: str | None = "Events",
    uproot_options: Mapping[str, Any] | None = None,
    progress: bool | Callable[[int, int], None] | None = None,
) -> Plan:
    """Plan the whole ``fileset`` from a sampled run's per-chunk models.

    Parameters
    ----------
    models : mapping of str to DatasetModel
        ``Advice.model``: every dataset of ``fileset`` needs one.
    fileset : mapping, str or path
        Any fileset coffea's ``Runner`` accepts (or a JSON file of one).
    chunksize : int, optional
        Plan at this chunk size instead of choosing one (``Plan.chunksize``).
    workers : int
        Workers the wall time is predicted for.
    memory_limit : float, optional
        The workers' ``memory_limit`` (bytes) the chunk size must fit.
    target_chunk_seconds : float, optional
        Longest wanted chunk (high quantile).
    sampled_sizes : tuple of int
        Chunk sizes of the sampled run (tried as candidates too).
    treename : str, optional
        Tree of files whose tree the fileset does not name.
    uproot_options : mapping, optional
        coffea's ``uproot_options``.
    progress : bool or callable, optional
        Progress while the files' metadata are read: a ``f(done, total)``, True
        (lines on stderr) or False; default: lines when there are more than 50
        files.

    Returns
    -------
    Plan

    Raises
    ------
    PlanError
        Naming the dataset or file: a dataset the model does not know, a file whose
        entries cannot be read.

    Examples
    --------
    See :meth:`coffea_sizing.advise.Advice.plan`.
    """
    from .filesets import FilesetError, normalize_fileset

    try:
        normal = normalize_fileset(fileset, treename)
    except FilesetError as err:
        raise PlanError(str(err)) from err
    unknown = [d for d in normal if d not in models]
    if unknown:
        raise PlanError(
            f"dataset {unknown[0]!r} of the fileset was not sampled (the model knows "
            f"{', '.join(map(repr, models)) or 'no dataset'}); sample it first"
        )
    if workers < 1:
        raise PlanError(f"workers must be at least 1, got {workers!r}")
    files = _open_all(normal, models, uproot_options, progress)
    datasets = list(normal)
    used = {d: models[d] for d in datasets}
    pause = pause_fraction()
    cap = memory_limit * pause if memory_limit else None

    def choose(names: list[str]) -> tuple[dict[str, Any], str]:
        chosen = [f for f in files if f.dataset in names]
        sizes = _candidates(chosen, set(sampled_sizes))
        rows = _summaries(used, chosen, sizes, names, workers)
        min_chunks = CHUNKS_PER_WORKER * workers
        return _choose(
            rows, cap, target_chunk_seconds, min_chunks, pause, memory_limit, workers
        )

    best, why = choose(datasets)
    per_dataset = {}
    per_cost = 0.0
    for d in datasets:
        r, _ = choose([d])  # run alone: it has every worker to itself
        per_dataset[d] = int(r["chunksize"])
        per_cost += r["cost"]
    size = int(best["chunksize"]) if chunksize is None else int(chunksize)
    if chunksize is not None:
        if isinstance(chunksize, bool) or chunksize < 1:
            raise PlanError(f"chunksize must be at least 1, got {chunksize!r}")
        why = "given"
    plan = Plan(
        chunksize=size,
        per_dataset=per_dataset,
        cost_single_s=math.nan,
        cost_per_dataset_s=per_cost,
        worker_memory=None,
        decided_by=why,
        memory_limit=memory_limit,
        pause=pause,
        workers=workers,
        files=files,
        target_chunk_seconds=target_chunk_seconds,
        sampled_sizes=tuple(sorted(set(sampled_sizes))),
        _models=used,
    )
    frame = plan.to_frame()
    plan.cost_single_s = float(frame["worker_s"].iloc[-1])
    peak = frame["peak_high_bytes"].iloc[:-1].dropna()
    plan.worker_memory = float(peak.max()) / pause if len(peak) else None
    return plan


# ------------------------------------------------------------------ sampling
def sample_work(
    fileset: Any,
    per_dataset: int,
    chunksizes: tuple[int, ...] = (10_000, 25_000),
    *,
    treename: str | None = "Events",
    uproot_options: Mapping[str, Any] | None = None,
) -> list[Any]:
    """``per_dataset`` chunks of every dataset, spread over its files and entries.

    The chunks are coffea's own (:func:`~coffea_sizing.predict.coffea_chunks` of
    each file), alternately at each of ``chunksizes`` (two sizes give the fit a
    spread), taken round-robin over the files and evenly over each file's entry
    range. Give the list to ``Runner.run`` (or ``Runner.__call__``) in place of
    the fileset.

    Parameters
    ----------
    fileset : mapping, str or path
        Any fileset coffea's ``Runner`` accepts.
    per_dataset : int
        Chunks per dataset (at least 1).
    chunksizes : tuple of int
        Chunk sizes to alternate.

    Returns
    -------
    list of coffea.processor.WorkItem
        In dataset order; deterministic.

    Examples
    --------
    >>> from coffea_sizing.datasets import make_nanoaod
    >>> from coffea_sizing.plan import sample_work
    >>> a = str(make_nanoaod("a.root", 4_000, events_per_basket=500))
    >>> b = str(make_nanoaod("b.root", 6_000, events_per_basket=500))
    >>> items = sample_work({"tt": [a, b]}, 4, (500, 1_000))
    >>> [(i.filename[-6:], i.entrystart, i.entrystop) for i in items]
    [('a.root', 0, 500), ('b.root', 0, 1000), ('a.root', 3500, 4000), ('b.root', 5000, 6000)]
    """
    from coffea.processor.executor import WorkItem

    from .filesets import FilesetError, normalize_fileset
    from .predict import coffea_chunks

    if per_dataset < 1:
        raise PlanError(f"sample at least 1 chunk per dataset, got {per_dataset!r}")
    try:
        normal = normalize_fileset(fileset, treename)
    except FilesetError as err:
        raise PlanError(str(err)) from err
    items: list[Any] = []
    for dataset, entry in normal.items():
        files = list(entry["files"].items())
        metadata = entry.get("metadata")
        # which chunks of which file at which size: round-robin over the files
        wanted: dict[tuple[int, int], int] = {}
        for k in range(per_dataset):
            key = (k % len(files), chunksizes[k % len(chunksizes)])
            wanted[key] = wanted.get(key, 0) + 1
        picks: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for (i, size), count in wanted.items():
            name, tree = files[i]
            chunks = coffea_chunks(name, tree, size, uproot_options=uproot_options)
            where = np.linspace(0, len(chunks) - 1, min(count, len(chunks)))
            picks[(i, size)] = [chunks[j] for j in sorted({round(w) for w in where})]
        seen: dict[tuple[int, int], int] = {}
        for k in range(per_dataset):
            key = (k % len(files), chunksizes[k % len(chunksizes)])
            j = seen.get(key, 0)
            seen[key] = j + 1
            if j >= len(picks[key]):
                continue  # the file has fewer chunks of that size than asked
            start, stop = picks[key][j]
            name, tree = files[key[0]]
            items.append(
                WorkItem(dataset, name, tree, start, stop, b"", usermeta=metadata)
            )
    return items


# ------------------------------------------------------------------ rendering
_SHOWN = (
    "dataset",
    "files",
    "entries",
    "chunks",
    "bytesread",
    "worker_s",
    "wall_s",
    "peak_bytes",
    "peak_high_bytes",
    "output_bytes",
)


def _parts(plan: Plan) -> dict[str, Any]:
    """The plan in words: ``header``, ``decided_by``, ``per_dataset`` (or ""),
    ``memory`` and ``notes`` (how sure each figure is); the terminal text and the
    HTML report are both made of them."""
    frame = plan.to_frame()
    total = frame.iloc[-1]
    per_dataset = ""
    if len(plan.per_dataset) > 1:
        sizes = ", ".join(f"{d} {s:,}" for d, s in plan.per_dataset.items())
        per_dataset = (
            f"per dataset (each run alone): {sizes}: "
            f"{format_seconds(plan.cost_per_dataset_s)} of "
            f"worker time against {format_seconds(plan.cost_single_s)} at one size"
        )
    notes = [
        (
            f"worker time {format_seconds(total['worker_s'])} (interval "
            f"{format_seconds(total['worker_s_low'])} - "
            f"{format_seconds(total['worker_s_high'])}: the 10-90% range of the median "
            "measured/fitted ratio of the sampled chunks, bootstrapped); peaks: median "
            f"and {HIGH_QUANTILE:.0%} quantile of the largest chunk"
        )
    ]
    if plan.sampled_sizes and plan.chunksize > EXTRAPOLATION * max(plan.sampled_sizes):
        largest = max(plan.sampled_sizes)
        notes.append(
            f"extrapolated: chunks of {plan.chunksize:,} are "
            f"{plan.chunksize / largest:.1f}x the largest sampled ({largest:,}); time "
            "and memory are the fits carried beyond what was measured (their interval "
            "does not cover that): sample at a larger size, or check with --calibrate"
        )
    fitted = [f for f in plan.files if not f.exact]
    if fitted:
        notes.append(
            f"bytes read: fitted for {plural(len(fitted), 'file')} "
            f"({Path(fitted[0].filename).name}: {fitted[0].problem}), to the byte "
            "from the basket metadata for the others"
        )
    else:
        notes.append("bytes read: to the byte, from the files' basket metadata")
    for dataset, model in plan._models.items():
        for fit in (model.walltime, model.memory):
            if fit is not None and fit.caveat:
                notes.append(f"{dataset} {fit.quantity}: {fit.caveat}")
    return {
        "header": (
            f"coffea-sizing plan: {plural(len(plan._models), 'dataset')}, "
            f"{plural(len(plan.files), 'file')}, {int(total['entries']):,} entries, "
            f"{plural(plan.workers, 'worker')}"
        ),
        "decided_by": plan.decided_by,
        "per_dataset": per_dataset,
        "memory": _memory_line(plan, frame),
        "frame": frame,
        "notes": notes,
    }


def _text(plan: Plan) -> str:
    from .tables import to_text

    parts = _parts(plan)
    lines = [
        parts["header"],
        "",
        f"chunksize {plan.chunksize:,} (decided by {parts['decided_by']})",
    ]
    if parts["per_dataset"]:
        lines.append(f"  {parts['per_dataset']}")
    lines.append(parts["memory"])
    lines += ["", to_text(parts["frame"], list(_SHOWN))]
    lines += [f"  {line}" for line in parts["notes"]]
    return "\n".join(lines)


def _memory_line(plan: Plan, frame: pd.DataFrame) -> str:
    if plan.worker_memory is None:
        return "worker memory: unknown (no memory figures in the records)"
    rows = frame.iloc[:-1].dropna(subset=["peak_high_bytes"])
    row = rows.loc[rows["peak_high_bytes"].idxmax()]
    model = plan._models[str(row["dataset"])]
    assert model.memory is not None
    per_1000 = model.memory.per_event * 1000
    return (
        f"worker memory: at least {format_bytes(plan.worker_memory)} = "
        f"{row['dataset']}'s high-quantile chunk peak "
        f"{format_bytes(row['peak_high_bytes'])} (with the worker's creep) / "
        f"{plan.pause:.0%} (Dask's pause); "
        f"idle baseline {format_bytes(row['baseline_bytes'])}, "
        f"{format_bytes(per_1000)} per 1,000 events (chunks of "
        f"{int(row['entries_per_chunk']):,}: +{format_bytes(row['increment_bytes'])})"
    )
