"""The branch sweep: processors reading 1, 2, 3, 5, 10 branches, and their analysis.

:class:`BranchSweepProcessor` is the processor of the original study: level *n*
reads the first *n* of :data:`SWEEP_BRANCHES`, cumulatively, fills one histogram
and one sum/count pair per branch, and derives the means in ``postprocess`` (means
of chunks summed over chunks would be wrong).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from .findings import Finding, format_bytes, format_seconds, plural
from .schemas import QuietNanoAODSchema

if TYPE_CHECKING:
    import pandas as pd

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
    >>> from coffea_sizing.compare import SweepSchema
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
    >>> from coffea_sizing.compare import BranchSweepProcessor, SweepSchema
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
    from .datasets import TTBAR_FILENAME

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

    from .filesets import FilesetError, check_files, normalize_fileset

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
    >>> from coffea_sizing.compare import branch_sweep
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
    from coffea import processor as coffea_processor

    from .decorator import track_sizes
    from .executor import SizingDaskExecutor
    from .records import chunk_table, merge_table

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
                runner = coffea_processor.Runner(
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
    from .predict import predict_bytesread

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


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def _corr(x: pd.Series, y: pd.Series) -> float:
    x = x.astype(float)
    y = y.astype(float)
    ok = x.notna() & y.notna()
    if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


@dataclass
class SweepResult:
    """What :func:`branch_sweep` measured, and what it means.

    Attributes
    ----------
    chunks : pandas.DataFrame
        Every chunk record of every run (see :data:`coffea_sizing.CHUNK_FIELDS`),
        with ``branches`` (the level), the decorator's ``bytesread_open`` /
        ``bytesread_payload`` and the ``predicted_*`` bytes from metadata.
    merges : pandas.DataFrame
        Every tree-reduction task record.
    runs : pandas.DataFrame
        One row per ``Runner`` call: dataset, branches, chunksize, wall time and
        coffea's own totals.
    treename : str
        The tree read.

    Examples
    --------
    (one sweep is run in :func:`branch_sweep`'s examples, which show these tables)

    >>> from coffea_sizing.compare import branch_sweep
    >>> result = branch_sweep(fileset)  # doctest: +SKIP
    >>> result.summary  # one row per (dataset, branch count)  # doctest: +SKIP
    >>> result.save("sizing-report")  # CSV tables, sweep.png, report.html  # doctest: +SKIP
    """

    chunks: pd.DataFrame
    merges: pd.DataFrame
    runs: pd.DataFrame
    treename: str = "Events"

    # ------------------------------------------------------------ tables
    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        """One row per (dataset, branch count); sums over the chunks of that run."""
        import pandas as pd

        rows = []
        by_level: Any = self.chunks.groupby(["dataset", "branches"], sort=False)
        for (dataset, n), g in by_level:
            run = self.runs[(self.runs.dataset == dataset) & (self.runs.branches == n)]
            wall = float(run["run_walltime"].iloc[0]) if len(run) else float("nan")
            nchunks = len(g)
            events = int(g["entries"].sum())
            br = int(g["bytesread"].sum())
            has_split = "bytesread_open" in g and g["bytesread_open"].notna().all()
            opened = (
                int(g["bytesread_open"].sum())
                if has_split
                else int(g["predicted_open_bytes"].sum())
            )
            amp = self._amplification(g)
            rows.append(
                {
                    "dataset": dataset,
                    "branches": int(n),
                    "columns": len(set().union(*map(set, g["columns"]))),
                    "chunks": nchunks,
                    "events": events,
                    "bytesread_total": br,
                    "bytesread_per_chunk": br / nchunks,
                    "bytesread_open_total": opened,
                    "bytesread_payload_total": br - opened,
                    "open_share": _ratio(opened, br),
                    "open_split_measured": bool(has_split),
                    "predicted_bytesread_total": float(g["predicted_bytesread"].sum()),
                    "prediction_exact_chunks": int(
                        (g["predicted_bytesread"] == g["bytesread"]).sum()
                    ),
                    "amplification": amp,
                    "task_nbytes_total": int(g["task_nbytes"].sum()),
                    "task_nbytes_mean": float(g["task_nbytes"].mean()),
                    "output_pickled_total": int(g["output_pickled_bytes"].sum()),
                    "output_pickled_mean": float(g["output_pickled_bytes"].mean()),
                    "output_compressed_total": (
                        float(g["output_compressed_bytes"].sum())
                        if g["output_compressed_bytes"].notna().all()
                        else float("nan")
                    ),
                    "output_compressed_mean": float(
                        pd.to_numeric(g["output_compressed_bytes"]).mean()
                    ),
                    "chunk_walltime_total": float(g["walltime"].sum()),
                    "run_walltime": wall,
                    "events_per_s": _ratio(events, wall),
                    "mem_peak_max": float(g["mem_peak_bytes"].max()),
                }
            )
        return pd.DataFrame(rows)

    def _amplification(self, g: pd.DataFrame) -> float:
        from .predict import amplification

        payload = unique = 0
        by_file: Any = g.groupby(["filename", "treename"])
        for (filename, treename), fg in by_file:
            columns = sorted(set().union(*map(set, fg["columns"])))
            amp = amplification(
                filename, treename, columns, fg[["entrystart", "entrystop"]]
            )
            payload += amp.payload_bytes
            unique += amp.unique_basket_bytes
        return _ratio(payload, unique) if unique else 1.0

    @functools.cached_property
    def ratios(self) -> pd.DataFrame:
        """The summary's size columns divided by the first branch count's, per dataset."""
        summary = self.summary
        cols = [
            "bytesread_total",
            "bytesread_payload_total",
            "task_nbytes_total",
            "task_nbytes_mean",
            "output_pickled_total",
            "output_compressed_total",
            "run_walltime",
        ]
        out = summary[["dataset", "branches"]].copy()
        for col in cols:
            first = summary.groupby("dataset")[col].transform("first")
            out[col] = summary[col] / first.where(first != 0)
        return out

    @functools.cached_property
    def correlations(self) -> pd.DataFrame:
        """Pearson correlations over chunks, per dataset.

        ``bytesread_vs_task_nbytes`` and ``bytesread_vs_pickled`` use every chunk of
        every branch count; ``*_levels`` use the per-level totals. NaN where
        bytesread does not vary (the ttbar file). Never pooled over datasets: their
        files are unrelated, and a pooled r would mostly measure their difference.
        """
        import pandas as pd

        rows = []
        summary = self.summary
        for dataset, g in self.chunks.groupby("dataset", sort=False):
            s = summary[summary.dataset == dataset]
            rows.append(
                {
                    "dataset": dataset,
                    "chunks": len(g),
                    "bytesread_vs_task_nbytes": _corr(g["bytesread"], g["task_nbytes"]),
                    "bytesread_vs_pickled": _corr(
                        g["bytesread"], g["output_pickled_bytes"]
                    ),
                    "levels_bytesread_vs_task_nbytes": _corr(
                        s["bytesread_total"], s["task_nbytes_total"]
                    ),
                }
            )
        return pd.DataFrame(rows)

    @property
    def findings(self) -> list[Finding]:
        """What the numbers say: one :class:`~coffea_sizing.findings.Finding` each."""
        return _findings(self)

    @property
    def findings_text(self) -> str:
        """The findings' messages as paragraphs separated by a blank line."""
        return "\n\n".join(f.message for f in self.findings)

    # ------------------------------------------------------------ output
    def plot(self) -> Any:
        """The study's figure (see :func:`coffea_sizing.plot.sweep_figure`)."""
        from .plot import sweep_figure

        return sweep_figure(self)

    def to_csv(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the tables as CSV files into ``directory`` (created if needed).

        ``chunks.csv`` (every chunk record; list-valued cells such as ``columns``
        joined with ``;``), ``summary.csv``, ``ratios.csv``, ``correlations.csv``,
        ``merges.csv`` and ``runs.csv``. Values are raw: bytes in bytes, times in
        seconds.

        Returns
        -------
        dict
            ``{"chunks", "summary", "ratios", "correlations", "merges", "runs"}``
            -> path written.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        frames = {
            "chunks": self.chunks,
            "summary": self.summary,
            "ratios": self.ratios,
            "correlations": self.correlations,
            "merges": self.merges,
            "runs": self.runs,
        }
        paths = {}
        for name, frame in frames.items():
            paths[name] = out / f"{name}.csv"
            _csv_frame(frame).to_csv(paths[name], index=False)
        return paths

    def save(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the CSV tables (:meth:`to_csv`), ``sweep.png`` and ``report.html``.

        Returns
        -------
        dict
            Name -> path of each file written.
        """
        from .report import save_report

        return save_report(self, directory)


def _csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with list-valued cells joined by ``;`` (CSV holds no lists)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype != object:
            continue
        values = out[col]
        if values.map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
            out[col] = values.map(
                lambda v: (
                    ";".join(map(str, v))
                    if isinstance(v, list | tuple | np.ndarray)
                    else v
                )
            )
    return out


def _findings(result: SweepResult) -> list[Finding]:
    summary = result.summary
    ratios = result.ratios
    corr = result.correlations.set_index("dataset")
    out: list[Finding] = []
    for dataset, s in summary.groupby("dataset", sort=False):
        first, last = s.iloc[0], s.iloc[-1]
        r = ratios[ratios.dataset == dataset].iloc[-1]
        lo, hi = int(first.branches), int(last.branches)
        levels = len(s)
        span = (
            f"at {plural(lo, 'branch')}"
            if levels == 1
            else f"at every branch count ({lo} to {hi})"
        )
        nchunks = int(first.chunks)
        head = (
            f"{dataset}: {plural(nchunks, 'chunk')} of up to "
            f"{int(first.events / max(nchunks, 1)):,} events. "
        )
        if first.bytesread_payload_total == 0 and last.bytesread_payload_total == 0:
            growth = (
                f" Task nbytes grew x{r.task_nbytes_total:.2f} from {lo} to {hi} "
                "branches: it follows the output, not the input."
                if levels > 1
                else ""
            )
            out.append(
                Finding(
                    "fixed-cost",
                    "info",
                    head + f"bytesread is {format_bytes(first.bytesread_per_chunk)} "
                    f"per chunk {span}: it is all the fixed cost of opening the file "
                    "and reading the TTree metadata, and the baskets of the branches "
                    "read are embedded in that metadata, so reading more branches "
                    "reads nothing more (coffea#1472)." + growth,
                )
            )
            continue
        open_per_chunk = format_bytes(first.bytesread_open_total / max(nchunks, 1))
        if levels > 1:
            text = (
                head + f"From {lo} to {hi} branches bytesread grew "
                f"x{r.bytesread_total:.2f} ({format_bytes(first.bytesread_total)} to "
                f"{format_bytes(last.bytesread_total)}), its payload (baskets) "
                f"x{r.bytesread_payload_total:.2f}, while task nbytes grew "
                f"x{r.task_nbytes_total:.2f} and the pickled output "
                f"x{r.output_pickled_total:.2f}. The fixed per-chunk cost (file open "
                f"+ TTree metadata) is {open_per_chunk} per chunk: "
                f"{first.open_share:.0%} of bytesread at {plural(lo, 'branch')}, "
                f"{last.open_share:.0%} at {hi}."
            )
        else:
            text = (
                head + f"At {plural(lo, 'branch')} bytesread is "
                f"{format_bytes(first.bytesread_total)}; the fixed per-chunk cost "
                f"(file open + TTree metadata) is {open_per_chunk} per chunk, "
                f"{first.open_share:.0%} of it."
            )
        c = corr.loc[dataset]
        if not (
            math.isnan(c.bytesread_vs_task_nbytes) or math.isnan(c.bytesread_vs_pickled)
        ):
            text += (
                f" Over its {plural(int(c.chunks), 'chunk')} ({nchunks} per branch "
                f"count x {plural(levels, 'branch count')}), corr(bytesread, task "
                f"nbytes) = {c.bytesread_vs_task_nbytes:.2f} and corr(bytesread, "
                f"pickled output) = {c.bytesread_vs_pickled:.2f}."
            )
        # most of what is read is the fixed cost: larger chunks would read less
        out.append(
            Finding("scaling", "warning" if first.open_share > 0.5 else "info", text)
        )
        amp = float(last.amplification)
        if nchunks > 1 and math.isfinite(amp) and amp > 1.005:
            out.append(
                Finding(
                    "amplification",
                    "warning" if amp > 1.5 else "info",
                    f"{dataset}: chunk edges cut baskets, so neighbouring chunks read "
                    f"the same basket: each needed basket was read x{amp:.2f} on "
                    f"average at {plural(hi, 'branch')}. Chunk edges on basket "
                    "boundaries avoid it.",
                )
            )
    exact = int(summary["prediction_exact_chunks"].sum())
    total = int(summary["chunks"].sum())
    ratio = (summary.bytesread_total / summary.task_nbytes_total).agg(["min", "max"])
    times = (
        f"{ratio['min']:.0f}"
        if round(ratio["min"]) == round(ratio["max"])
        else f"{ratio['min']:.0f} to {ratio['max']:.0f}"
    )
    out.append(
        Finding(
            "task-nbytes",
            "info",
            "What task nbytes measures: the scheduler's size of each chunk task's "
            "result, which with coffea's default compression is the lz4-compressed "
            "pickle of the processor's output plus coffea's metrics, i.e. the output "
            f"shipped, not the bytes read. Here bytesread was {times} times task "
            "nbytes; nbytes rises with the branches only because this processor "
            "fills one histogram per branch. It is no proxy for input size: use "
            "bytesread (or the prediction from basket metadata) for that.",
        )
    )
    out.append(
        Finding(
            "prediction",
            "info" if exact == total else "warning",
            "bytesread predicted from the files' basket metadata matched the "
            f"measured value to the byte on {exact} of {plural(total, 'chunk')}.",
        )
    )
    return out
