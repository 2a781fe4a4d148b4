"""The per-chunk cost model of a run: what :func:`~coffea_sizing.advise` fits and
:mod:`coffea_sizing.plan` extrapolates.

Covers the data only: a :class:`Fit` (``fixed + per_event * entries`` with the
spread of the chunks around it and how sure it is), a :class:`FileModel` (one input
file as the model sees it) and a :class:`DatasetModel` (one dataset's fits). Does
not fit (:mod:`coffea_sizing.advise` does, from the records), predict a campaign
(:mod:`coffea_sizing.plan`) or read files. Imports nothing else from the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "CHUNKS_PER_WORKER",
    "HIGH_QUANTILE",
    "MIN_CHUNKS",
    "MIN_SPREAD",
    "DatasetModel",
    "FileModel",
    "Fit",
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

    @property
    def num_entries(self) -> int:
        """Entries in all files."""
        return sum(f.num_entries for f in self.files)

    @property
    def columns(self) -> tuple[str, ...]:
        """The branches any chunk read, sorted."""
        return tuple(sorted({c for f in self.files for c in f.columns}))
