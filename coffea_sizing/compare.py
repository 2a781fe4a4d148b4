"""The branch sweep: processors reading 1, 2, 3, 5, 10 branches, and their analysis.

:class:`BranchSweepProcessor` is the processor of the original study: level *n*
reads the first *n* of :data:`SWEEP_BRANCHES`, cumulatively, fills one histogram
and one sum/count pair per branch, and derives the means in ``postprocess`` (means
of chunks summed over chunks would be wrong).
"""

from __future__ import annotations

import contextlib
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
from coffea.nanoevents import NanoAODSchema

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


class SweepSchema(NanoAODSchema):
    """``NanoAODSchema`` without the warnings the CMS test file raises on every chunk.

    The test file (and files resampled from it) lack some cross-referenced
    collections and carry ``Photon_mass``/``Photon_charge``, which the stock schema
    replaces; it warns about each on every chunk. Sizes are not affected.

    Examples
    --------
    >>> from coffea_sizing.compare import SweepSchema
    >>> SweepSchema.warn_missing_crossrefs
    False
    """

    warn_missing_crossrefs = False

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


def _chunksize_for(chunksize: int | Mapping[str, int] | None, dataset: str) -> int:
    if isinstance(chunksize, Mapping):
        if dataset in chunksize:
            return int(chunksize[dataset])
        if "*" in chunksize:
            return int(chunksize["*"])
        raise KeyError(f"no chunksize for dataset {dataset!r} (give one or a '*')")
    if chunksize is None:
        return 50 if dataset == "ttbar" else 10_000
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


def _check_fileset(fileset: Any, treename: str) -> dict[str, list[str]]:
    import uproot

    if not isinstance(fileset, Mapping) or not fileset:
        raise ValueError("fileset must be a non-empty mapping dataset -> list of files")
    out: dict[str, list[str]] = {}
    need = sorted(
        {f"{c}_{f}" for c, f in SWEEP_BRANCHES} | {"nJet", "nElectron", "nMuon"}
    )
    for dataset, files in fileset.items():
        names = [files] if isinstance(files, str) else list(files)
        if not names:
            raise ValueError(f"dataset {dataset!r} has no files")
        for name in names:
            if "://" not in str(name) and not Path(name).is_file():
                raise FileNotFoundError(f"dataset {dataset!r}: no such file: {name}")
            try:
                with uproot.open(name) as f:
                    if treename not in f:
                        trees = [
                            k.split(";")[0]
                            for k, c in f.classnames().items()
                            if c == "TTree"
                        ]
                        raise KeyError(
                            f"{name}: no tree {treename!r} (trees in the file: "
                            f"{', '.join(trees) or 'none'})"
                        )
                    keys = set(f[treename].keys())
            except (OSError, ValueError) as err:
                raise OSError(f"{name}: cannot be read as a ROOT file ({err})") from err
            missing = [b for b in need if b not in keys]
            if missing:
                raise KeyError(
                    f"{name}: tree {treename!r} lacks the branch(es) the sweep reads: "
                    f"{', '.join(missing)}"
                )
        out[str(dataset)] = [str(n) for n in names]
    return out


def branch_sweep(
    fileset: Mapping[str, Any],
    branch_counts: Sequence[int] = DEFAULT_BRANCH_COUNTS,
    *,
    chunksize: int | Mapping[str, int] | None = None,
    client: Any = None,
    treename: str = "Events",
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
    fileset : mapping
        ``{dataset: [files]}`` (coffea's fileset). The trees need the branches of
        :data:`SWEEP_BRANCHES`.
    branch_counts : sequence of int
        Levels to run, each 1 to 10 (default 1, 2, 3, 5, 10).
    chunksize : int or mapping, optional
        Entries per chunk, or ``{dataset: chunksize}``; default 50 for a dataset
        named ``"ttbar"`` (the 200-event test file) and 10,000 otherwise.
    client : distributed.Client, optional
        Default: a ``LocalCluster`` of 2 single-threaded workers for the sweep.
    treename : str
        Default ``"Events"``.
    schema : coffea schema class, optional
        Default :class:`SweepSchema` (NanoAODSchema without cross-reference warnings).
    compression : int or None
        The executor's lz4 level (coffea's default 1).
    progress : callable, optional
        Called with one line of text after each run.

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> from coffea_sizing.compare import branch_sweep
    >>> from coffea_sizing.datasets import ttbar_path
    >>> result = branch_sweep({"ttbar": [ttbar_path()]}, (1, 2), chunksize=100)
    >>> result.summary[["dataset", "branches", "chunks", "bytesread_per_chunk"]]
      dataset  branches  chunks  bytesread_per_chunk
    0   ttbar         1       2             336624.0
    1   ttbar         2       2             336624.0
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
        for dataset, names in files.items():
            size = _chunksize_for(chunksize, dataset)
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
                _, report = runner(
                    {dataset: names}, treename=treename, processor_instance=proc
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
                        f"[{done}/{total}] {dataset}, {n} branch"
                        f"{'es' if n > 1 else ''}: {report['chunks']} chunks, "
                        f"{report['entries']:,} events, bytesread "
                        f"{report['bytesread']:,} B, {wall:.1f} s"
                    )
    chunks = pd.concat(chunk_frames, ignore_index=True)
    _add_predictions(chunks, treename)
    return SweepResult(
        chunks=chunks,
        merges=pd.concat(merge_frames, ignore_index=True),
        runs=pd.DataFrame(runs),
        treename=treename,
    )


def _add_predictions(chunks: pd.DataFrame, treename: str) -> None:
    """Predicted bytes per chunk from the file's metadata, next to the measured."""
    from .predict import predict_bytesread

    pred = np.full(len(chunks), np.nan)
    pred_open = np.full(len(chunks), np.nan)
    pred_payload = np.full(len(chunks), np.nan)
    keys = chunks.apply(lambda r: (r["filename"], tuple(r["columns"] or ())), axis=1)
    groups: dict[Any, Any] = chunks.groupby(keys).groups
    for key, idx in groups.items():
        filename, columns = key
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
    >>> from coffea_sizing.compare import branch_sweep
    >>> from coffea_sizing.datasets import ttbar_path
    >>> result = branch_sweep({"ttbar": [ttbar_path()]}, (1, 3), chunksize=100)
    >>> result.ratios[["dataset", "branches", "bytesread_total"]]
      dataset  branches  bytesread_total
    0   ttbar         1              1.0
    1   ttbar         3              1.0
    """

    chunks: pd.DataFrame
    merges: pd.DataFrame
    runs: pd.DataFrame
    treename: str = "Events"

    # ------------------------------------------------------------ tables
    @property
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
        by_file: Any = g.groupby(["filename"])
        for (filename,), fg in by_file:
            columns = sorted(set().union(*map(set, fg["columns"])))
            amp = amplification(
                filename, self.treename, columns, fg[["entrystart", "entrystop"]]
            )
            payload += amp.payload_bytes
            unique += amp.unique_basket_bytes
        return _ratio(payload, unique) if unique else 1.0

    @property
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

    @property
    def correlations(self) -> pd.DataFrame:
        """Pearson correlations over chunks, per dataset and over all chunks.

        ``bytesread_vs_task_nbytes`` and ``bytesread_vs_pickled`` use every chunk of
        every branch count; ``*_levels`` use the per-level totals. NaN where
        bytesread does not vary (the ttbar file).
        """
        import pandas as pd

        rows = []
        summary = self.summary
        groups = [(d, g) for d, g in self.chunks.groupby("dataset", sort=False)]
        if len(groups) > 1:
            groups.append(("all", self.chunks))
        for dataset, g in groups:
            s = summary if dataset == "all" else summary[summary.dataset == dataset]
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
    def findings(self) -> str:
        """What the numbers say, in plain language."""
        return _findings(self)

    # ------------------------------------------------------------ output
    def plot(self) -> Any:
        """The study's figure (see :func:`coffea_sizing.plot.sweep_figure`)."""
        from .plot import sweep_figure

        return sweep_figure(self)

    def save(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``chunks.csv``, ``summary.csv``, ``sweep.png`` and ``report.html``.

        Returns
        -------
        dict
            Name -> path of each file written.
        """
        from .plot import save_report

        return save_report(self, directory)


def _fmt_bytes(n: float) -> str:
    if math.isnan(n):
        return "n/a"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def _findings(result: SweepResult) -> str:
    summary = result.summary
    ratios = result.ratios
    corr = result.correlations.set_index("dataset")
    lines: list[str] = []
    for dataset, s in summary.groupby("dataset", sort=False):
        first, last = s.iloc[0], s.iloc[-1]
        r = ratios[ratios.dataset == dataset].iloc[-1]
        lo, hi = int(first.branches), int(last.branches)
        head = (
            f"{dataset}: {int(first.chunks)} chunks of up to "
            f"{int(first.events / max(first.chunks, 1)):,} events. "
        )
        if first.bytesread_payload_total == 0 and last.bytesread_payload_total == 0:
            lines.append(
                head
                + f"bytesread is {_fmt_bytes(first.bytesread_per_chunk)} per chunk at "
                f"every branch count ({lo} to {hi}): it is all the fixed cost of "
                "opening the file and reading the TTree metadata, and the baskets "
                "of the branches read are embedded in that metadata, so reading more "
                "branches reads nothing more (coffea#1472). Task nbytes grew "
                f"x{r.task_nbytes_total:.2f} over the same range: it follows the "
                "output, not the input."
            )
            continue
        c = corr.loc[dataset]
        lines.append(
            head
            + f"from {lo} to {hi} branches bytesread grew x{r.bytesread_total:.2f} "
            f"({_fmt_bytes(first.bytesread_total)} to "
            f"{_fmt_bytes(last.bytesread_total)}), its payload (baskets) "
            f"x{r.bytesread_payload_total:.2f}, while task nbytes grew "
            f"x{r.task_nbytes_total:.2f} and the pickled output "
            f"x{r.output_pickled_total:.2f}. The fixed per-chunk cost (file open + "
            f"TTree metadata) is {_fmt_bytes(first.bytesread_open_total / first.chunks)}"
            f" per chunk: {first.open_share:.0%} of bytesread at {lo} branch(es), "
            f"{last.open_share:.0%} at {hi}. Over {int(c.chunks)} chunks, "
            f"corr(bytesread, task nbytes) = {c.bytesread_vs_task_nbytes:.2f} and "
            f"corr(bytesread, pickled output) = {c.bytesread_vs_pickled:.2f}. "
            f"Chunk edges that cut baskets made each needed basket be read "
            f"x{last.amplification:.2f} on average at {hi} branches."
        )
    exact = int(summary["prediction_exact_chunks"].sum())
    nchunks = int(summary["chunks"].sum())
    ratio = (summary.bytesread_total / summary.task_nbytes_total).agg(["min", "max"])
    lines.append(
        "What task nbytes measures: the scheduler's size of each chunk task's "
        "result, which with coffea's default compression is the lz4-compressed "
        "pickle of the processor's output plus coffea's metrics, i.e. the output "
        "shipped, not the bytes read. Here bytesread was "
        f"{ratio['min']:.0f} to {ratio['max']:.0f} times task nbytes; nbytes rises "
        "with the branches only because this processor fills one histogram per "
        "branch. It is no proxy for input size: use bytesread (or the "
        "prediction from basket metadata) for that."
    )
    lines.append(
        f"bytesread predicted from the files' basket metadata matched the measured "
        f"value to the byte on {exact} of {nchunks} chunks."
    )
    return "\n\n".join(lines)
