"""The finding rules of the advice: one small function per thing a run can show.

Covers :data:`RULES`, the one list every rule is registered in (by the :func:`rule`
decorator, in the order their findings are listed within a severity), the
:class:`Evidence` a rule reads (the chunk and merge tables, the fitted model, the
worker memory) and :func:`find`, which runs them all. A new finding is one function
here and one test. Does not fit the model (:mod:`coffea_sizing.model`) or word the
advice as a whole (:mod:`coffea_sizing.explain`); the thresholds are the constants
below, each with the source of its value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .findings import Finding, format_bytes, format_seconds, plural
from .model import (
    MEMORY_HEADROOM,
    DatasetModel,
    candidates,
    measured_size,
    numeric,
    predict_dataset,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AMPLIFICATION_RATIO",
    "FIXED_COST_SHARE",
    "MEMORY_WARN",
    "RULES",
    "SKEW_FACTOR",
    "STRAGGLER_FACTOR",
    "STRAGGLER_MIN_SECONDS",
    "TINY_CHUNK_SECONDS",
    "Evidence",
    "find",
    "rule",
]

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
#: A chunk blocked in reads for more than this share of its wall time is
#: latency-bound when its requests are small (below LATENCY_REQUEST_BYTES).
LATENCY_SHARE = 0.5
LATENCY_REQUEST_BYTES = 4_000_000
#: Wall time above CPU time by this factor, with little time blocked in reads.
CPU_STARVED_RATIO = 2.0
#: Findings about phases need chunks at least this long (median wall time).
PHASE_MIN_SECONDS = 0.05

#: The phases of a chunk task as findings name them (``records.PHASE_FIELDS``
#: without the measuring).
PHASE_NAMES = {
    "loadtime": "loading the processor",
    "opentime": "opening the file",
    "buildtime": "building NanoEvents",
    "processtime": "processing",
    "outputtime": "compressing the output",
}


@dataclass(frozen=True)
class Evidence:
    """What every rule reads.

    Attributes
    ----------
    chunks : pandas.DataFrame
        The chunk records (one row per chunk, ``entries`` added).
    merges : pandas.DataFrame
        The merge records (may be empty).
    model : mapping of str to DatasetModel
        The fitted model of each dataset.
    worker_memory : float or None
        A worker's memory limit (bytes), when known.
    process_only : bool
        The records come from ``@track_sizes`` under another executor.
    """

    chunks: pd.DataFrame
    merges: pd.DataFrame
    model: Mapping[str, DatasetModel]
    worker_memory: float | None = None
    process_only: bool = False

    @functools.cached_property
    def phase_medians(self) -> list[_Medians]:
        """The median phases of each dataset's chunks, computed once for the rules
        that read them."""
        return list(_phase_medians(self))

    def datasets(self) -> Iterator[tuple[str, DatasetModel, pd.DataFrame]]:
        """``(name, model, its chunk rows)`` of every dataset, in name order."""
        for name, m in sorted(self.model.items()):
            yield name, m, self.chunks[self.chunks["dataset"] == name]


Rule = Callable[[Evidence], list[Finding]]
#: Every rule, in the order :func:`find` runs them.
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    """Register ``fn`` in :data:`RULES` (a decorator)."""
    RULES.append(fn)
    return fn


def find(evidence: Evidence) -> list[Finding]:
    """Every rule's findings, the most severe first (rule order within a severity).

    Examples
    --------
    A run of one chunk: the only thing to say is that it is one.

    >>> import pandas as pd
    >>> from coffea_sizing.rules import Evidence, find
    >>> chunks = pd.DataFrame({"dataset": ["tt"], "filename": ["a.root"],
    ...                        "entrystart": [0], "entrystop": [10], "entries": [10]})
    >>> [f.code for f in find(Evidence(chunks, pd.DataFrame(), {}))]
    ['no-memory', 'few-chunks']
    """
    out = [finding for fn in RULES for finding in fn(evidence)]
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.severity])


def _done(rows: pd.DataFrame) -> pd.DataFrame:
    """The chunks that ran (not skipped by coffea's skipbadfiles)."""
    if "skipped" not in rows:
        return rows
    return rows[~rows["skipped"].fillna(False).astype(bool)]


# ------------------------------------------------------------------ bytes read
@rule
def fixed_cost(ev: Evidence) -> list[Finding]:
    """``fixed-cost``: opening the file and its TTree metadata is a large share of
    the bytes read."""
    out = []
    for dataset, m, rows in ev.datasets():
        opens = [f.open_bytes for f in m.files if f.open_bytes is not None]
        if opens:
            per_chunk = {f.filename: f.open_bytes for f in m.files}
            fixed = float(sum(per_chunk.get(fn) or 0 for fn in rows["filename"]))
        elif "open cost" in m.bytesread.method:
            fixed = m.bytesread.fixed * len(rows)
        else:
            continue
        total = float(np.nansum(numeric(rows, "bytesread")))
        if not total or fixed / total < FIXED_COST_SHARE:
            continue
        share = fixed / total
        size = measured_size(rows)
        under = None
        for s in candidates(m, size):
            if s > size and predict_dataset(m, s)["open_share"] < FIXED_COST_SHARE:
                under = s
                break
        if under is not None:
            fix = f"it falls under {FIXED_COST_SHARE:.0%} at chunksize {under:,}"
        else:
            fix = (
                f"it stays above {FIXED_COST_SHARE:.0%} even at one chunk per file: "
                "the files are small next to their metadata (merge small files)"
            )
        per_chunk_bytes = fixed / max(len(rows), 1)
        out.append(
            Finding(
                "fixed-cost",
                "warning" if share >= 0.5 else "info",
                f"{dataset}: {share:.0%} of the {format_bytes(total)} read is the "
                f"fixed cost of opening the file and its TTree metadata "
                f"({format_bytes(per_chunk_bytes)} per chunk, "
                f"{plural(len(rows), 'chunk')} of up to {size:,} entries); {fix}.",
            )
        )
    return out


@rule
def amplification(ev: Evidence) -> list[Finding]:
    """``amplification``: baskets cut by chunk edges are read more than once."""
    from .predict import amplification as basket_amplification

    out = []
    for dataset, m, rows in ev.datasets():
        if not m.bytes_exact:
            continue
        payload = unique = 0
        for f in m.files:
            sub = rows[rows["filename"] == f.filename]
            chunks = list(zip(sub["entrystart"], sub["entrystop"], strict=True))
            amp = basket_amplification(f.filename, f.treename, list(f.columns), chunks)
            payload += amp.payload_bytes
            unique += amp.unique_basket_bytes
        if not unique or payload / unique < AMPLIFICATION_RATIO:
            continue
        ratio = payload / unique
        out.append(
            Finding(
                "amplification",
                "warning" if ratio >= 1.5 else "info",
                f"{dataset}: baskets cut by chunk edges are read by several chunks: "
                f"{format_bytes(payload)} of baskets read for {format_bytes(unique)} "
                f"needed once ({ratio:.2f}x); chunks larger than the baskets, or "
                "align_clusters=True, read each basket once.",
            )
        )
    return out


@rule
def files_unreachable(ev: Evidence) -> list[Finding]:
    """``files-unreachable``: a file could not be opened, so bytes are fitted."""
    out = []
    for dataset, m, _ in ev.datasets():
        bad = [f for f in m.files if not f.reachable]
        if m.bytes_exact or not bad:
            continue
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
    return out


# ---------------------------------------------------------------------- memory
@rule
def no_memory(ev: Evidence) -> list[Finding]:
    """``no-memory``: the records carry no memory figures."""
    if np.isfinite(numeric(ev.chunks, "mem_peak_bytes")).any():
        return []
    return [
        Finding(
            "no-memory",
            "info",
            "The records carry no memory figures (an executor other than "
            "SizingDaskExecutor without @track_sizes' probe?); the chunk size is "
            "not checked against memory.",
        )
    ]


@rule
def memory_near_limit(ev: Evidence) -> list[Finding]:
    """``memory-near-limit``: a chunk's peak came near the worker's memory limit."""
    chunks = ev.chunks
    peak = numeric(chunks, "mem_peak_bytes")
    limits = numeric(chunks, "worker_memory_limit")
    if ev.worker_memory is not None:
        limits = np.full(len(chunks), ev.worker_memory)
    frac = peak / limits
    if not (np.isfinite(frac).any() and np.nanmax(frac) >= MEMORY_WARN):
        return []
    i = int(np.nanargmax(frac))
    row = chunks.iloc[i]
    return [
        Finding(
            "memory-near-limit",
            "critical" if frac[i] >= MEMORY_HEADROOM else "warning",
            f"{row['dataset']}: chunk {Path(str(row['filename'])).name} "
            f"[{int(row['entrystart']):,}, {int(row['entrystop']):,}) peaked at "
            f"{format_bytes(peak[i])}, {frac[i]:.0%} of the worker's "
            f"{format_bytes(limits[i])} memory_limit (Dask spills at 60-70%, "
            "pauses at 80%, kills at 95%); use smaller chunks or more memory.",
        )
    ]


@rule
def shared_memory(ev: Evidence) -> list[Finding]:
    """``shared-memory``: chunks shared a worker process, their memory mixes."""
    chunks = ev.chunks
    if (
        "mem_shared" not in chunks
        or not np.isfinite(numeric(chunks, "mem_peak_bytes")).any()
    ):
        return []
    shared = chunks["mem_shared"].fillna(False).astype(bool)
    if not shared.any():
        return []
    return [
        Finding(
            "shared-memory",
            "info",
            f"{plural(int(shared.sum()), 'chunk')} of {len(chunks):,} ran while "
            "another chunk ran in the same worker process (several threads per "
            "worker): their memory figures are the process's, not per chunk. Run "
            "with one thread per worker to measure a chunk's memory.",
        )
    ]


# ------------------------------------------------------------------------ time
@rule
def tiny_chunks(ev: Evidence) -> list[Finding]:
    """``tiny-chunks``: the median chunk is shorter than per-task overhead allows."""
    wall = numeric(ev.chunks, "walltime")
    ok = np.isfinite(wall)
    if ok.sum() < 2:
        return []
    median = float(np.median(wall[ok]))
    if median >= TINY_CHUNK_SECONDS:
        return []
    return [
        Finding(
            "tiny-chunks",
            "warning",
            f"The median chunk takes {format_seconds(median)}: per-task "
            "overhead (scheduling, opening the file, building the events) "
            f"weighs as much as the work; aim for chunks of at least "
            f"{format_seconds(TINY_CHUNK_SECONDS)} (larger chunksize).",
        )
    ]


@rule
def stragglers(ev: Evidence) -> list[Finding]:
    """``stragglers``: chunks far slower than the median, with the phase to blame."""
    chunks = ev.chunks
    wall = numeric(chunks, "walltime")
    ok = np.isfinite(wall)
    if ok.sum() < 3:
        return []
    median = float(np.median(wall[ok]))
    slow = (
        ok
        & (wall > STRAGGLER_FACTOR * median)
        & (wall - median > STRAGGLER_MIN_SECONDS)
    )
    if not slow.any():
        return []
    files = sorted({Path(str(f)).name for f in chunks[slow]["filename"]})
    worst = int(np.nanargmax(np.where(slow, wall, -np.inf)))
    row = chunks.iloc[worst]
    return [
        Finding(
            "stragglers",
            "warning",
            f"{plural(int(slow.sum()), 'chunk')} took over {STRAGGLER_FACTOR:g}x "
            f"the median {format_seconds(median)} (slowest "
            f"{format_seconds(wall[worst])}, {row['dataset']} "
            f"{Path(str(row['filename'])).name} "
            f"[{int(row['entrystart']):,}, {int(row['entrystop']):,})), in "
            f"{', '.join(files[:5])}: "
            f"{_slow_phase(chunks, worst, ok) or 'look at those files and workers'}.",
        )
    ]


def _slow_phase(chunks: pd.DataFrame, worst: int, ok: np.ndarray[Any, Any]) -> str:
    """Which phase made chunk ``worst`` slow: the one above its median by the most."""
    excess: dict[str, float] = {}
    for name in (*PHASE_NAMES, "readtime"):
        values = numeric(chunks, name)
        if not np.isfinite(values[worst]) or not np.isfinite(values[ok]).any():
            continue
        excess[name] = float(values[worst] - np.nanmedian(values[ok]))
    phases = {k: v for k, v in excess.items() if k != "readtime"}
    if "opentime" not in phases:
        return ""  # records without phases (before coffea-sizing had them)
    wall = numeric(chunks, "walltime")
    extra = float(wall[worst] - np.median(wall[ok]))
    name = max(phases, key=lambda k: phases[k])
    if phases[name] < 0.5 * extra:
        return (
            f"none of that chunk's phases explains its extra {format_seconds(extra)} "
            "(the records do not add up: look at that worker)"
        )
    value = numeric(chunks, name)[worst]
    text = (
        f"that chunk spent {format_seconds(value)} {PHASE_NAMES[name]} against a "
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


@rule
def worker_skew(ev: Evidence) -> list[Finding]:
    """``worker-skew``: workers spent very different times in chunks."""
    chunks = ev.chunks
    if "worker" not in chunks or not chunks["worker"].notna().any():
        return []
    wall = numeric(chunks, "walltime")
    busy = (
        chunks.assign(_wall=wall)
        .dropna(subset=["worker"])
        .groupby("worker")["_wall"]
        .sum()
    )
    if not (len(busy) >= 2 and len(chunks) >= 2 * len(busy) and busy.min() > 0):
        return []
    skew = float(busy.max() / busy.min())
    if skew < SKEW_FACTOR:
        return []
    return [
        Finding(
            "worker-skew",
            "info",
            f"Workers were unevenly busy: {busy.idxmax()} spent "
            f"{format_seconds(busy.max())} in chunks, {busy.idxmin()} "
            f"{format_seconds(busy.min())} ({skew:.1f}x); a slow or "
            "shared machine, or too few chunks to balance.",
        )
    ]


@dataclass(frozen=True)
class _Medians:
    """The median phases of one dataset's chunks (NaN where unknown)."""

    dataset: str
    wall: float
    values: dict[str, float]

    def __getitem__(self, name: str) -> float:
        return self.values.get(name, math.nan)


def _phase_medians(ev: Evidence) -> Iterator[_Medians]:
    """Per dataset with chunks long enough to tell (records of SizingDaskExecutor
    since the phases exist), the medians of the phase fields."""
    for dataset in sorted(ev.chunks["dataset"].dropna().unique()):
        done = _done(ev.chunks[ev.chunks["dataset"] == dataset])
        wall = numeric(done, "walltime")
        ok = np.isfinite(wall) & (wall > 0)
        if not ok.any() or float(np.median(wall[ok])) < PHASE_MIN_SECONDS:
            continue
        values = {}
        for name in (*PHASE_NAMES, "readtime", "read_requests", "bytesread", "cputime"):
            v = numeric(done, name)[ok]
            good = np.isfinite(v)
            values[name] = float(np.median(v[good])) if good.any() else math.nan
        yield _Medians(str(dataset), float(np.median(wall[ok])), values)


def _read_share(m: _Medians) -> float:
    return m["readtime"] / m.wall if math.isfinite(m["readtime"]) else math.nan


@rule
def latency_bound(ev: Evidence) -> list[Finding]:
    """``latency-bound``: chunks spent most of their time blocked in many small
    reads."""
    out = []
    for m in ev.phase_medians:
        share, requests, nbytes = _read_share(m), m["read_requests"], m["bytesread"]
        if not (
            math.isfinite(share)
            and share > LATENCY_SHARE
            and math.isfinite(requests)
            and requests >= 3
            and nbytes / requests < LATENCY_REQUEST_BYTES
        ):
            continue
        per_request = m["readtime"] / max(1.0, requests - 2)
        out.append(
            Finding(
                "latency-bound",
                "warning",
                f"{m.dataset}: chunks spent a median {share:.0%} of their "
                f"{format_seconds(m.wall)} blocked in reads: {requests:.0f} "
                f"requests of {format_bytes(nbytes / requests)} on average, "
                f"{format_seconds(per_request)} each. Round trips cost more than the "
                "bytes: larger chunks (fewer requests per event), coffea's preload "
                "of the columns read (one request for all), or fewer branches.",
            )
        )
    return out


@rule
def open_dominated(ev: Evidence) -> list[Finding]:
    """``open-dominated``: opening and building cost more than processing."""
    out = []
    for m in ev.phase_medians:
        opening, process = m["opentime"] + m["buildtime"], m["processtime"]
        if not (
            math.isfinite(opening) and math.isfinite(process) and opening > process
        ):
            continue
        out.append(
            Finding(
                "open-dominated",
                "warning" if opening > 2 * process else "info",
                f"{m.dataset}: opening the file and building NanoEvents took a "
                f"median {format_seconds(opening)} per chunk ({opening / m.wall:.0%} "
                f"of its wall time), processing {format_seconds(process)}: every "
                "chunk pays for it again. Fewer, larger chunks, or fewer branches in "
                "the file's schema.",
            )
        )
    return out


@rule
def cpu_starved(ev: Evidence) -> list[Finding]:
    """``cpu-starved``: wall time far above CPU time, not blocked in reads."""
    out = []
    for m in ev.phase_medians:
        cpu, share = m["cputime"], _read_share(m)
        if not (
            math.isfinite(cpu)
            and cpu > 0
            and m.wall > CPU_STARVED_RATIO * cpu
            and not (math.isfinite(share) and share > 0.25)
        ):
            continue
        out.append(
            Finding(
                "cpu-starved",
                "warning",
                f"{m.dataset}: chunks took a median {format_seconds(m.wall)} of wall "
                f"time for {format_seconds(cpu)} of CPU time "
                f"({m.wall / cpu:.1f}x), and were not blocked in reads "
                f"({'unknown' if not math.isfinite(share) else f'{share:.0%}'}"
                " of the time): an oversubscribed node (more busy threads than "
                "cores), or a processor waiting on something else (locks, sleeps, "
                "services).",
            )
        )
    return out


# ----------------------------------------------------------------- bookkeeping
@rule
def retries(ev: Evidence) -> list[Finding]:
    """``retries``: chunks that needed more than one attempt."""
    chunks = ev.chunks
    attempts = numeric(chunks, "attempts")
    retried = np.isfinite(attempts) & (attempts > 1)
    if not retried.any():
        return []
    row = chunks[retried].iloc[0]
    return [
        Finding(
            "retries",
            "critical",
            f"{plural(int(retried.sum()), 'chunk')} needed more than one attempt "
            f"(up to {int(np.nanmax(attempts))}), e.g. {row['dataset']} "
            f"{Path(str(row['filename'])).name} [{int(row['entrystart']):,}, "
            f"{int(row['entrystop']):,}): a worker died or the task failed; look "
            "at its memory and the worker logs.",
        )
    ]


@rule
def skipped(ev: Evidence) -> list[Finding]:
    """``skipped``: coffea's skipbadfiles swallowed chunks."""
    chunks = ev.chunks
    if "skipped" not in chunks:
        return []
    mask = chunks["skipped"].fillna(False).astype(bool)
    if not mask.any():
        return []
    files = sorted({Path(str(f)).name for f in chunks.loc[mask, "filename"]})
    return [
        Finding(
            "skipped",
            "critical",
            f"{plural(int(mask.sum()), 'chunk')} skipped (coffea's "
            f"skipbadfiles), in {', '.join(files[:5])}: their events are "
            "missing from the output.",
        )
    ]


@rule
def few_chunks(ev: Evidence) -> list[Finding]:
    """``few-chunks``: a dataset of one chunk, whose models have no spread."""
    counts = ev.chunks.groupby("dataset").size()
    single = sorted(str(d) for d, n in counts.items() if n == 1)
    if not single:
        return []
    return [
        Finding(
            "few-chunks",
            "info",
            f"{', '.join(single)}: one chunk only, so the memory and time models "
            "have no spread to fit (their fixed and per-event terms are split "
            "from that chunk's process() time and memory rise, and a worker's "
            "first chunk also pays its imports); advise a run of several chunks "
            "per dataset for a reliable high quantile.",
        )
    ]


# --------------------------------------------------------------------- outputs
@rule
def output_grows(ev: Evidence) -> list[Finding]:
    """``output-grows``: the output grows with the reduction level."""
    task = numeric(ev.chunks, "task_nbytes")
    if ev.merges.empty or not np.isfinite(task).any():
        return []
    levels = ev.merges.assign(_n=numeric(ev.merges, "nbytes")).groupby("level")["_n"]
    top = levels.median().dropna()
    base = float(np.nanmedian(task))
    if not (len(top) and base > 0 and float(top.iloc[-1]) > 2 * base):
        return []
    return [
        Finding(
            "output-grows",
            "warning",
            f"The output grows with the reduction level: chunks send "
            f"{format_bytes(base)}, level-{int(top.index[-1])} merges "
            f"{format_bytes(top.iloc[-1])} ({top.iloc[-1] / base:.1f}x): the "
            "output scales with the events (lists, not histograms), so the "
            "final reductions will need that memory times split_every.",
        )
    ]


@rule
def nbytes_estimate(ev: Evidence) -> list[Finding]:
    """``nbytes-estimate``: without compression the scheduler's nbytes is a guess."""
    task = numeric(ev.chunks, "task_nbytes")
    compressed = numeric(ev.chunks, "output_compressed_bytes")
    pickled = numeric(ev.chunks, "output_pickled_bytes")
    no_compression = ~np.isfinite(compressed) & np.isfinite(pickled) & np.isfinite(task)
    if not no_compression.any():
        return []
    ratio = float(np.median(task[no_compression] / pickled[no_compression]))
    if 0.5 <= ratio <= 2:
        return []
    return [
        Finding(
            "nbytes-estimate",
            "info",
            "compression=None: the scheduler's nbytes of a chunk output is "
            f"dask.sizeof's estimate, {ratio:.1f}x the pickled size (median): "
            "Dask's memory and transfer decisions use that estimate; "
            "compression (the default) makes nbytes exact.",
        )
    ]


@rule
def process_only(ev: Evidence) -> list[Finding]:
    """``process-only``: records of ``@track_sizes`` under another executor."""
    if not ev.process_only:
        return []
    return [
        Finding(
            "process-only",
            "info",
            "These records come from @track_sizes under an executor other than "
            "SizingDaskExecutor: memory and time are those of process() alone "
            "(opening the file and building the events are not included), and no "
            "worker memory limit is known.",
        )
    ]
