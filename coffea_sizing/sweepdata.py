"""The branch sweep's data: its tables, what they say, and their CSV files.

Covers :class:`SweepData`, what a sweep measured (every chunk record, every merge,
every run) and the tables derived from it (``summary``, ``ratios``,
``correlations``), its findings and :meth:`SweepData.to_csv`; and
``_check_result``, the one check the figure and the report make of what they
are given. It sits below both: they read a sweep from here and never call back up.

Not here: running a sweep (the processor, :func:`~coffea_sizing.sweep.branch_sweep`
and :class:`~coffea_sizing.sweep.SweepResult`, which adds ``plot()`` and
``save()``) is :mod:`coffea_sizing.sweep`; the figure is :mod:`coffea_sizing.plot`,
the HTML report :mod:`coffea_sizing.report`, the tables' units and formats
:mod:`coffea_sizing.tables`; the predictions from file metadata are
:mod:`coffea_sizing.predict`.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .findings import Finding, format_bytes, plural

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SweepData"]


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
class SweepData:
    """What a branch sweep measured, and what it means: its tables and findings.

    The base of :class:`~coffea_sizing.sweep.SweepResult` (what
    :func:`~coffea_sizing.sweep.branch_sweep` returns), and all that the figure
    (:mod:`coffea_sizing.plot`) and the report (:mod:`coffea_sizing.report`) read:
    build one from the three tables to draw or report a sweep without running it.

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
    (one sweep is run in :func:`~coffea_sizing.sweep.branch_sweep`'s examples, which
    show these tables)

    >>> from coffea_sizing.sweep import branch_sweep
    >>> result = branch_sweep(fileset)  # doctest: +SKIP
    >>> result.summary  # one row per (dataset, branch count)  # doctest: +SKIP
    >>> result.to_csv("sizing-report")  # the CSV tables  # doctest: +SKIP
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


def _findings(result: SweepData) -> list[Finding]:
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


def _check_result(result: Any) -> None:
    """Refuse what is no sweep's data, or holds no chunk (the figure and report's check).

    Raises
    ------
    TypeError
        ``result`` has no chunk table.
    ValueError
        The chunk table is empty or lacks a column every panel and table needs.
    """
    chunks = getattr(result, "chunks", None)
    if chunks is None or not hasattr(chunks, "columns"):
        raise TypeError(
            f"expected a SweepResult (from branch_sweep), got {type(result).__name__}"
        )
    if len(chunks) == 0:
        raise ValueError("the sweep result holds no chunks: nothing to plot")
    missing = [
        c
        for c in ("dataset", "branches", "bytesread", "task_nbytes")
        if c not in chunks.columns
    ]
    if missing:
        raise ValueError(f"the chunk table lacks column(s): {', '.join(missing)}")
