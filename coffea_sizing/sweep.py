"""Running the branch sweep: the processor reading 1, 2, 3, 5, 10 branches, and the runs.

Covers :class:`BranchSweepProcessor`, the processor of the original study: level *n*
reads the first *n* of :data:`SWEEP_BRANCHES`, cumulatively, fills one histogram
and one sum/count pair per branch, and derives the means in ``postprocess`` (means
of chunks summed over chunks would be wrong); :class:`SweepSchema`, the schema it
reads the CMS test file with; :func:`branch_sweep`, which runs it at each branch
count with :class:`~coffea_sizing.SizingDaskExecutor` and
:func:`~coffea_sizing.track_sizes`; and :class:`SweepResult`, what it returns.

Not here: the sweep's tables, findings and CSV files are
:class:`~coffea_sizing.sweepdata.SweepData` (the base of :class:`SweepResult`, in
:mod:`coffea_sizing.sweepdata`, below the figure and the report);
``SweepResult.plot()`` and ``SweepResult.save()`` only hand it down to
:mod:`coffea_sizing.plot` and :mod:`coffea_sizing.report`. The CLI's ``sweep``
and ``chunks`` subcommands are in ``coffea_sizing._cli_sweep``.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from .datasets import TTBAR_FILENAME
from .decorator import track_sizes
from .executor import SizingDaskExecutor
from .filesets import FilesetError, check_files, normalize_fileset
from .findings import format_bytes, format_seconds, plural
from .plot import sweep_figure
from .predict import predict_bytesread
from .records import chunk_table, merge_table
from .report import save_report
from .schemas import QuietNanoAODSchema
from .sweepdata import SweepData

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_BRANCH_COUNTS",
    "SWEEP_BRANCHES",
    "BranchSweepProcessor",
    "SweepResult",
    "SweepSchema",
    "branch_sweep",
]


class SweepSchema(QuietNanoAODSchema):
    """``NanoAODSchema`` without the warnings the CMS test file raises on every chunk.

    :class:`~coffea_sizing.schemas.QuietNanoAODSchema`, and quiet about the Photon
    branches too. The test file (and files resampled from it) lack some cross-referenced
    collections and carry ``Photon_mass``/``Photon_charge``, which the stock schema
    replaces; it warns about each on every chunk. Sizes are not affected.

    Examples
    --------
    >>> from coffea_sizing.sweep import SweepSchema
    >>> SweepSchema.warn_missing_crossrefs
    False
    """

    def _build_collections(self, field_names: Any, input_contents: Any) -> Any:
        # The test file also carries Photon_mass/Photon_charge, which the schema
        # replaces with zeros and warns about on every chunk; the sweep reads
        # neither.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", "Branch Photon_.* already exists", RuntimeWarning
            )
            return super()._build_collections(field_names, input_contents)


#: (collection, field, selection) read in this order; selections: jets pt > 30 GeV,
#: electrons and muons pt > 20 GeV, MET none.
SWEEP_BRANCHES: tuple[tuple[str, str], ...] = (
    ("Jet", "pt"),
    ("Jet", "eta"),
    ("Jet", "phi"),
    ("Jet", "mass"),
    ("Electron", "pt"),
    ("Electron", "eta"),
    ("Muon", "pt"),
    ("Muon", "eta"),
    ("MET", "pt"),
    ("MET", "phi"),
)
_PT_CUT = {"Jet": 30.0, "Electron": 20.0, "Muon": 20.0}
_AXES = {
    "pt": (50, 0.0, 500.0),
    "eta": (50, -5.0, 5.0),
    "phi": (50, -np.pi, np.pi),
    "mass": (50, 0.0, 100.0),
}


class BranchSweepProcessor(processor.ProcessorABC):
    """Read the first ``num_branches`` of :data:`SWEEP_BRANCHES`, cumulatively.

    For each branch the output holds a histogram ``"<Coll>_<field>"`` (50 bins),
    and the sum and count of the selected values; ``postprocess`` adds
    ``"means"``. Jets need pt > 30 GeV, electrons and muons pt > 20 GeV.

    Parameters
    ----------
    num_branches : int
        1 to 10.

    Examples
    --------
    >>> from coffea.nanoevents import NanoEventsFactory, NanoAODSchema
    >>> from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema
    >>> from coffea_sizing.datasets import ttbar_path
    >>> events = NanoEventsFactory.from_root({ttbar_path(): "Events"},
    ...     schemaclass=SweepSchema, mode="eager").events()
    >>> proc = BranchSweepProcessor(2)
    >>> out = proc.postprocess(proc.process(events))
    >>> sorted(out["means"])
    ['Jet_eta', 'Jet_pt']
    >>> out["nevents"]
    200
    """

    def __init__(self, num_branches: int) -> None:
        value: Any = num_branches
        if not isinstance(value, int | np.integer) or not (
            1 <= num_branches <= len(SWEEP_BRANCHES)
        ):
            raise ValueError(
                f"num_branches must be an integer from 1 to {len(SWEEP_BRANCHES)}, "
                f"got {num_branches!r}"
            )
        self.num_branches = int(num_branches)

    @property
    def branches(self) -> list[str]:
        """The NanoAOD branch names this level reads (``Jet_pt``, ...)."""
        return [f"{c}_{f}" for c, f in SWEEP_BRANCHES[: self.num_branches]]

    def process(self, events: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"nevents": len(events)}
        selected: dict[str, Any] = {}
        for coll, fld in SWEEP_BRANCHES[: self.num_branches]:
            name = f"{coll}_{fld}"
            if coll not in selected:
                objs = events[coll]
                if coll in _PT_CUT:
                    objs = objs[objs.pt > _PT_CUT[coll]]
                selected[coll] = objs
            values = selected[coll][fld]
            flat = ak.to_numpy(ak.flatten(values, axis=None))
            bins, lo, hi = _AXES.get(fld, (50, 0.0, 500.0))
            h = hist.Hist.new.Reg(bins, lo, hi, name=fld).Double()
            h.fill(flat)
            out[name] = h
            out[f"{name}_sum"] = float(np.sum(flat, dtype=np.float64))
            out[f"{name}_count"] = int(flat.size)
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        means = {}
        for coll, fld in SWEEP_BRANCHES[: self.num_branches]:
            name = f"{coll}_{fld}"
            count = accumulator.get(f"{name}_count", 0)
            means[name] = accumulator[f"{name}_sum"] / count if count else float("nan")
        accumulator["means"] = means
        return accumulator


# ====================================================================== the sweep
#: Branch counts of the original study.
DEFAULT_BRANCH_COUNTS: tuple[int, ...] = (1, 2, 3, 5, 10)


def _default_chunksize(files: Sequence[str]) -> int:
    """50 for the CMS ttbar test file (200 events: 4 chunks), 10,000 otherwise."""
    if files and all(Path(str(f)).name == TTBAR_FILENAME for f in files):
        return 50
    return 10_000


def _chunksize_for(
    chunksize: int | Mapping[str, int] | None,
    dataset: str,
    files: Sequence[str] = (),
) -> int:
    if isinstance(chunksize, Mapping):
        if dataset in chunksize:
            return int(chunksize[dataset])
        if "*" in chunksize:
            return int(chunksize["*"])
        raise KeyError(f"no chunksize for dataset {dataset!r} (give one or a '*')")
    if chunksize is None:
        return 50 if dataset == "ttbar" else _default_chunksize(files)
    return int(chunksize)


def _check_branch_counts(branch_counts: Sequence[int]) -> tuple[int, ...]:
    counts: tuple[Any, ...] = tuple(branch_counts)
    if not counts:
        raise ValueError("branch_counts is empty")
    for n in counts:
        if not isinstance(n, int | np.integer) or not 1 <= n <= len(SWEEP_BRANCHES):
            raise ValueError(
                f"branch counts must be integers from 1 to {len(SWEEP_BRANCHES)}, "
                f"got {n!r}"
            )
    if len(set(counts)) != len(counts):
        raise ValueError(f"branch counts repeat: {counts}")
    return tuple(sorted(int(n) for n in counts))


def _check_fileset(fileset: Any, treename: str | None) -> dict[str, dict[str, Any]]:
    """``fileset`` in one form, each file checked, the sweep's branches present."""
    import uproot

    files = normalize_fileset(fileset, treename)
    check_files(files)
    need = sorted(
        {f"{c}_{f}" for c, f in SWEEP_BRANCHES} | {"nJet", "nElectron", "nMuon"}
    )
    for entry in files.values():
        for name, tree in entry["files"].items():
            if "://" in name and not name.startswith("file://"):
                continue
            with uproot.open(name.removeprefix("file://")) as f:
                keys = set(f[tree].keys())
            missing = [b for b in need if b not in keys]
            if missing:
                raise FilesetError(
                    f"{name}: tree {tree!r} lacks the "
                    f"{plural(len(missing), 'branch')} the sweep reads: "
                    f"{', '.join(missing)}"
                )
    return files


def branch_sweep(
    fileset: Any,
    branch_counts: Sequence[int] = DEFAULT_BRANCH_COUNTS,
    *,
    chunksize: int | Mapping[str, int] | None = None,
    client: Any = None,
    treename: str | None = "Events",
    schema: Any = None,
    compression: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run :class:`BranchSweepProcessor` at each branch count and measure every chunk.

    Each (dataset, branch count) is one ``Runner`` call with
    :class:`~coffea_sizing.SizingDaskExecutor`; the processor is decorated with
    :func:`~coffea_sizing.track_sizes`, so each chunk record also splits
    ``bytesread`` into the cost of opening (file + TTree metadata) and the payload
    (baskets). Every chunk also gets the bytes predicted from the file's metadata
    (:func:`coffea_sizing.predict.predict_bytesread`).

    Parameters
    ----------
    fileset : mapping, str or path
        A coffea fileset in any form coffea's ``Runner`` accepts: ``{dataset:
        [files]}``, ``{dataset: {"files": [files] or {file: tree}, "treename": ...,
        "metadata": ...}}``, or a JSON file holding one (see
        :func:`coffea_sizing.filesets.normalize_fileset`). The trees need the
        branches of :data:`SWEEP_BRANCHES`. Every file is checked from its metadata
        before a cluster starts.
    branch_counts : sequence of int
        Levels to run, each 1 to 10 (default 1, 2, 3, 5, 10).
    chunksize : int or mapping, optional
        Entries per chunk, or ``{dataset: chunksize}``; default 50 for a dataset
        named ``"ttbar"`` (the 200-event test file) and 10,000 otherwise.
    client : distributed.Client, optional
        Default: a ``LocalCluster`` of 2 single-threaded workers for the sweep.
    treename : str or None
        The tree of files whose tree the fileset does not name (default
        ``"Events"``).
    schema : coffea schema class, optional
        Default :class:`SweepSchema` (NanoAODSchema without cross-reference warnings).
    compression : int or None
        The executor's lz4 level (coffea's default 1).
    progress : callable, optional
        Called with one line of text after each run.

    Returns
    -------
    SweepResult

    Raises
    ------
    coffea_sizing.filesets.FilesetError
        Before any run, naming the file: missing, not ROOT, no such tree, or a tree
        without the sweep's branches.

    Examples
    --------
    >>> from coffea_sizing.sweep import branch_sweep
    >>> from coffea_sizing.datasets import ttbar_path
    >>> result = branch_sweep({"ttbar": [ttbar_path()]}, (1, 3), chunksize=100)
    >>> result.summary[["dataset", "branches", "chunks", "bytesread_per_chunk"]]
      dataset  branches  chunks  bytesread_per_chunk
    0   ttbar         1       2             336624.0
    1   ttbar         3       2             336624.0
    >>> result.ratios[["dataset", "branches", "bytesread_total"]]
      dataset  branches  bytesread_total
    0   ttbar         1              1.0
    1   ttbar         3              1.0
    >>> [f.code for f in result.findings]
    ['fixed-cost', 'task-nbytes', 'prediction']
    """
    import pandas as pd

    counts = _check_branch_counts(branch_counts)
    files = _check_fileset(fileset, treename)
    chunk_frames: list[pd.DataFrame] = []
    merge_frames: list[pd.DataFrame] = []
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        if client is None:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    dashboard_address=":0",
                    host="127.0.0.1",
                )
            )
            client = stack.enter_context(Client(cluster))
        total = len(files) * len(counts)
        done = 0
        for dataset, entry in files.items():
            size = _chunksize_for(chunksize, dataset, list(entry["files"]))
            for n in counts:
                proc = track_sizes(BranchSweepProcessor)(n)
                runner = processor.Runner(
                    executor=SizingDaskExecutor(
                        client=client, status=False, compression=compression
                    ),
                    savemetrics=True,
                    schema=schema or SweepSchema,
                    chunksize=size,
                )
                t0 = time.perf_counter()
                # the trees are named per file: Runner's treename must be None
                _, report = runner(
                    {dataset: entry}, treename=None, processor_instance=proc
                )
                wall = time.perf_counter() - t0
                table = chunk_table(report)
                table.insert(0, "branches", n)
                chunk_frames.append(table)
                merges = merge_table(report)
                merges.insert(0, "branches", n)
                merges.insert(0, "dataset", dataset)
                merge_frames.append(merges)
                runs.append(
                    {
                        "dataset": dataset,
                        "branches": n,
                        "chunksize": size,
                        "run_walltime": wall,
                        "report_bytesread": report["bytesread"],
                        "report_entries": report["entries"],
                        "report_chunks": report["chunks"],
                    }
                )
                done += 1
                if progress is not None:
                    progress(
                        f"[{done}/{total}] {dataset}, {plural(n, 'branch')}: "
                        f"{plural(report['chunks'], 'chunk')}, "
                        f"{report['entries']:,} events, bytesread "
                        f"{format_bytes(report['bytesread'])}, {format_seconds(wall)}"
                    )
    chunks = pd.concat(chunk_frames, ignore_index=True)
    _add_predictions(chunks)
    trees = sorted({t for e in files.values() for t in e["files"].values()})
    return SweepResult(
        chunks=chunks,
        merges=pd.concat(merge_frames, ignore_index=True),
        runs=pd.DataFrame(runs),
        treename=", ".join(trees),
    )


def _add_predictions(chunks: pd.DataFrame) -> None:
    """Predicted bytes per chunk from the file's metadata, next to the measured."""
    pred = np.full(len(chunks), np.nan)
    pred_open = np.full(len(chunks), np.nan)
    pred_payload = np.full(len(chunks), np.nan)
    keys = chunks.apply(
        lambda r: (r["filename"], r["treename"], tuple(r["columns"] or ())), axis=1
    )
    groups: dict[Any, Any] = chunks.groupby(keys).groups
    for key, idx in groups.items():
        filename, treename, columns = key
        rows = chunks.loc[idx]
        table = predict_bytesread(
            filename, treename, list(columns), rows[["entrystart", "entrystop"]]
        )
        positions = chunks.index.get_indexer(idx)
        pred[positions] = table["predicted_bytesread"].to_numpy()
        pred_open[positions] = table["predicted_open_bytes"].to_numpy()
        pred_payload[positions] = table["predicted_payload_bytes"].to_numpy()
    chunks["predicted_bytesread"] = pred
    chunks["predicted_open_bytes"] = pred_open
    chunks["predicted_payload_bytes"] = pred_payload


class SweepResult(SweepData):
    """What :func:`branch_sweep` measured and what it means, with its figure and report.

    The tables, findings and CSV files are those of
    :class:`~coffea_sizing.sweepdata.SweepData` (``chunks``, ``merges``, ``runs``,
    ``treename``; ``summary``, ``ratios``, ``correlations``, ``findings``,
    ``to_csv``); this adds :meth:`plot` and :meth:`save`.

    Examples
    --------
    (one sweep is run in :func:`branch_sweep`'s examples, which show these tables)

    >>> from coffea_sizing.sweep import branch_sweep
    >>> result = branch_sweep(fileset)  # doctest: +SKIP
    >>> result.summary  # one row per (dataset, branch count)  # doctest: +SKIP
    >>> result.save("sizing-report")  # CSV tables, sweep.png, report.html  # doctest: +SKIP
    """

    def plot(self) -> Figure:
        """The study's figure (see :func:`coffea_sizing.plot.sweep_figure`)."""
        return sweep_figure(self)

    def save(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the CSV tables, ``sweep.png`` and ``report.html``.

        See :func:`coffea_sizing.report.save_report`.

        Returns
        -------
        dict
            Name -> path of each file written.
        """
        return save_report(self, directory)
