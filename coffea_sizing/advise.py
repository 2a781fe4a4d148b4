"""Advice from any run: findings, a per-chunk cost model and a chunk size.

Covers :func:`advise`, the one entry point: it loads the chunk (and merge) records
of one run from any source, fits each dataset's cost model
(:mod:`coffea_sizing.model`: bytes read exactly from the files' basket metadata
when they can be opened, else fitted; peak memory and the wall time phase by
phase as a fixed plus a per-event term), chooses the chunk size, runs the finding
rules (:mod:`coffea_sizing.rules`) and returns an :class:`Advice`, which predicts a
run at any chunk size (:meth:`Advice.predict`), plans a campaign
(:meth:`Advice.plan`, :mod:`coffea_sizing.plan`) and words itself
(:mod:`coffea_sizing.explain`). It makes no cluster calls; it opens the input files'
metadata (never a basket) and says so when a file cannot be opened.

Does not run anything (``coffea-sizing run`` in :mod:`coffea_sizing.cli` does), save
records (:mod:`coffea_sizing.store`) or draw (:func:`coffea_sizing.plot.advice_figure`).
The how-to is ``docs/chunk-size.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .explain import advice_html, advice_text, model_table
from .findings import Finding
from .model import (
    CHUNKS_PER_WORKER,
    HIGH_QUANTILE,
    MEMORY_HEADROOM,
    MODEL_PHASES,
    PREDICT_COLUMNS,
    AdviceError,
    DatasetModel,
    FileModel,
    Fit,
    dataset_model,
    measured_size,
    numeric,
    predict_dataset,
    recommend,
)
from .plan import Plan, plan_campaign
from .records import CHUNK_FIELDS, REPORT_MERGES_KEY, chunk_table, merge_table
from .rules import Evidence, find

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
            for its wall time), ``total_walltime`` (sum over the chunks) and that
            chunk's wall time phase by phase (seconds; NaN for records without
            phases): ``loadtime``, ``opentime``, ``buildtime``, ``processtime``,
            ``outputtime``, ``sizing_overhead`` and ``gap`` (what no phase names),
            which add up to ``walltime``.
        """
        import pandas as pd

        rows = []
        for name, model in self.model.items():
            size = chunksize[name] if isinstance(chunksize, Mapping) else chunksize
            rows.append(predict_dataset(model, int(size)))
        return pd.DataFrame(rows, columns=list(PREDICT_COLUMNS))

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
        return advice_text(self)

    def to_html(self, figure_png: bytes | None = None) -> str:
        """A self-contained HTML page: findings first, then the recommendation,
        the model and (when given) the figure."""
        return advice_html(self, figure_png)


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
        limits = numeric(chunks, "worker_memory_limit")
        limits = limits[np.isfinite(limits) & (limits > 0)]
        memory = float(limits.min()) if len(limits) else None
    if target_chunk_seconds is not None and not target_chunk_seconds > 0:
        raise AdviceError(
            f"target_chunk_seconds must be positive, got {target_chunk_seconds!r}"
        )
    workers = int(chunks["worker"].dropna().nunique()) if "worker" in chunks else 0
    workers = max(workers, int(context.get("workers") or 0), 1)
    model = {
        str(ds): dataset_model(str(ds), rows)
        for ds, rows in chunks.groupby("dataset", sort=True)
    }
    rec_rows = []
    total_entries = sum(m.num_entries for m in model.values())
    for ds, m in model.items():
        rows = chunks[chunks["dataset"] == ds]
        size = measured_size(rows)
        share = m.num_entries / max(total_entries, 1)
        min_chunks = max(1, math.ceil(CHUNKS_PER_WORKER * workers * share))
        best, why = recommend(
            m, size, memory, target_chunk_seconds, min_chunks, workers
        )
        measured = {
            "measured_chunksize": size,
            "measured_chunks": len(rows),
            "measured_bytesread": float(np.nansum(numeric(rows, "bytesread"))),
            "measured_mem_peak_bytes": float(np.nanmax(numeric(rows, "mem_peak_bytes")))
            if np.isfinite(numeric(rows, "mem_peak_bytes")).any()
            else math.nan,
            "measured_walltime": float(np.nanmedian(numeric(rows, "walltime")))
            if np.isfinite(numeric(rows, "walltime")).any()
            else math.nan,
            "measured_total_walltime": float(np.nansum(numeric(rows, "walltime"))),
        }
        # the phases of the prediction are Advice.predict's and the phase table's
        shown = {k: v for k, v in best.items() if k not in MODEL_PHASES}
        rec_rows.append({**shown, "decided_by": why, **measured})
    recommendation = pd.DataFrame(rec_rows)
    findings = find(
        Evidence(
            chunks,
            merges,
            model,
            worker_memory=memory,
            process_only=bool(context.get("process_only")),
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
