"""The branch sweep's figure and its self-contained HTML report.

:func:`sweep_figure` draws what a :class:`~coffea_sizing.compare.SweepResult`
measured, one series per dataset against the number of branches read;
:func:`render_html` turns the result into a single HTML page (findings, the figure
embedded as a PNG, the tables and a glossary) that needs no network and no
JavaScript; :func:`save_report` writes that page next to the CSV tables and the PNG.

Matplotlib is imported only when a figure is drawn, and only through its
object-oriented :class:`~matplotlib.figure.Figure` API: nothing is registered with
``pyplot``, so figures can be drawn from any thread, under any backend, and are
freed like any other object.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .compare import SweepResult

__all__ = [
    "ADVICE_FIGURE_SIZE",
    "FIGURE_DPI",
    "FIGURE_SIZE",
    "MAX_HTML_CHUNK_ROWS",
    "PANEL_TITLES",
    "advice_figure",
    "draw_chunk_bytes",
    "draw_chunk_memory",
    "draw_chunk_walltime",
    "render_html",
    "save_advice_report",
    "save_report",
    "sweep_figure",
]

#: Size of :func:`sweep_figure` in inches; at :data:`FIGURE_DPI` it is 1400 x 900 px.
FIGURE_SIZE: tuple[float, float] = (14.0, 9.0)
#: Resolution of ``sweep.png`` and of the image embedded in the report.
FIGURE_DPI = 100
#: The per-chunk table of the HTML report shows at most this many rows.
MAX_HTML_CHUNK_ROWS = 500

#: The titles of the six panels of :func:`sweep_figure`, in reading order.
PANEL_TITLES: tuple[str, ...] = (
    "(a) Bytes read, all chunks",
    "(b) Task output (scheduler nbytes), all chunks",
    "(c) Task output per chunk (mean)",
    "(d) Growth relative to the first branch count",
    "(e) Bytes read: open (file + TTree metadata) vs payload",
    "(f) Per chunk: bytes read vs task output",
)

_DATASET_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: (ratio column, label, marker, linestyle) of panel (d).
_RATIO_SERIES: tuple[tuple[str, str, str, Any], ...] = (
    ("bytesread_total", "bytes read", "o", "-"),
    ("bytesread_payload_total", "payload bytes read", "s", "--"),
    ("task_nbytes_total", "task nbytes", "^", "-."),
    ("output_pickled_total", "pickled output", "D", ":"),
)
#: Characters per line of a panel title.
_TITLE_WIDTH = 50
#: Datasets whose totals differ by more than this factor get a log y axis.
_LOG_RANGE = 30.0


# ====================================================================== helpers
def _byte_unit(values: Iterable[Any]) -> tuple[float, str]:
    """The decimal unit (divisor, name) that suits the largest finite value."""
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0)
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if top >= size:
            return size, unit
    return 1.0, "B"


def _wants_log(values: Iterable[Any]) -> bool:
    positive = [float(v) for v in values if v is not None and float(v) > 0]
    return bool(positive) and max(positive) / min(positive) > _LOG_RANGE


def _dataset_colors(datasets: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {d: cmap(i % 10) for i, d in enumerate(datasets)}


def _branch_colors(counts: Sequence[int]) -> dict[int, Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    if len(counts) == 1:
        return {counts[0]: cmap(0.35)}
    return {n: cmap(0.9 * i / (len(counts) - 1)) for i, n in enumerate(counts)}


def _numeric(series: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype(float)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 'es' if word.endswith('ch') else 's'}"


def _check_result(result: SweepResult) -> None:
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


def _setup_branch_axis(ax: Axes, counts: Sequence[int]) -> None:
    ax.set_xticks(list(counts))
    ax.set_xlabel("branches read")
    if len(counts) == 1:
        ax.set_xlim(counts[0] - 1, counts[0] + 1)
    ax.grid(True, alpha=0.3)


def _correlation_text(result: SweepResult, corr: pd.DataFrame) -> str:
    """Pearson r per dataset (and pooled), wrapped to fit above a panel."""
    parts = []
    for _, row in corr.iterrows():
        r = float(row["bytesread_vs_task_nbytes"])
        if math.isfinite(r):
            parts.append(f"{row['dataset']} {r:.2f}")
            continue
        rows = (
            result.chunks
            if row["dataset"] == "all"
            else result.chunks[result.chunks["dataset"] == row["dataset"]]
        )
        values = _numeric(rows["bytesread"])
        constant = bool(values.min() == values.max())
        why = "bytes read constant" if constant else "too few chunks"
        parts.append(f"{row['dataset']} n/a ({why})")
    lines = ["Pearson r:"]
    for part in parts:
        if len(lines[-1]) + len(part) + 2 > _TITLE_WIDTH:
            lines[-1] += ","
            lines.append(part)
        else:
            sep = " " if lines[-1].endswith(":") else ", "
            lines[-1] += sep + part
    return "\n".join(lines)


# ====================================================================== figure
def sweep_figure(result: SweepResult) -> Figure:
    """Draw the branch sweep: six panels against the number of branches read.

    One series (colour) per dataset. The panels are

    (a) total bytes read over all chunks (log y when the datasets differ by more
        than a factor 30), with the bytes predicted from basket metadata as crosses;
    (b) total task output, the sum of the scheduler's ``task_nbytes``;
    (c) mean task output per chunk (solid), and the mean uncompressed pickled
        output (dashed);
    (d) bytes read, its payload, task nbytes and the pickled output, each divided
        by its value at the first branch count, with "proportional to the number
        of branches" as a grey reference;
    (e) bytes read split into the cost of opening (file + TTree metadata) and the
        payload (baskets), stacked, with the open share above each bar; the split
        is the decorator's measurement when present, else the prediction from
        metadata;
    (f) every chunk: bytes read vs task nbytes, coloured by branch count, one
        marker per dataset, with the Pearson correlations in the title.

    Parameters
    ----------
    result : SweepResult
        What :func:`~coffea_sizing.compare.branch_sweep` returned.

    Returns
    -------
    matplotlib.figure.Figure
        A 14 x 9 inch figure (1400 x 900 px at 100 dpi) that is not registered
        with ``pyplot``: save it with ``fig.savefig(...)``; it needs no closing.

    Raises
    ------
    ValueError
        When the result holds no chunks.

    Examples
    --------
    >>> from coffea_sizing.compare import branch_sweep
    >>> from coffea_sizing.plot import sweep_figure
    >>> result = branch_sweep(fileset)  # doctest: +SKIP
    >>> fig = sweep_figure(result)
    >>> [ax.get_title(loc="left")[:3] for ax in fig.axes]
    ['(a)', '(b)', '(c)', '(d)', '(e)', '(f)']
    >>> fig.savefig("sweep.png", dpi=100)  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    _check_result(result)
    summary = result.summary
    ratios = result.ratios
    corr = result.correlations
    chunks = result.chunks

    datasets = [str(d) for d in dict.fromkeys(summary["dataset"])]
    counts = sorted(int(n) for n in set(summary["branches"]))
    colors = _dataset_colors(datasets)
    markers = {
        d: _DATASET_MARKERS[i % len(_DATASET_MARKERS)] for i, d in enumerate(datasets)
    }
    per_dataset = {d: summary[summary["dataset"] == d] for d in datasets}

    fig = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    axes = fig.subplots(2, 3)
    ax_a, ax_b, ax_c = axes[0]
    ax_d, ax_e, ax_f = axes[1]
    for ax, title in zip(axes.flat, PANEL_TITLES, strict=True):
        ax.set_title(title, fontsize=11, loc="left")

    # (a) total bytes read -----------------------------------------------------
    size, unit = _byte_unit(summary["bytesread_total"])
    for d in datasets:
        s = per_dataset[d]
        ax_a.plot(
            s["branches"],
            s["bytesread_total"] / size,
            marker=markers[d],
            color=colors[d],
            label=d,
        )
    predicted = summary["predicted_bytesread_total"].astype(float)
    if predicted.notna().any():
        ax_a.plot(
            summary["branches"],
            predicted / size,
            linestyle="none",
            marker="x",
            markersize=9,
            color="black",
            label="predicted from metadata",
        )
    if _wants_log(summary["bytesread_total"]):
        ax_a.set_yscale("log")
    else:
        ax_a.set_ylim(bottom=0)
    ax_a.set_ylabel(f"bytes read, sum over chunks ({unit})")
    _setup_branch_axis(ax_a, counts)
    ax_a.legend(fontsize=9)

    # (b) total task output ----------------------------------------------------
    size, unit = _byte_unit(summary["task_nbytes_total"])
    for d in datasets:
        s = per_dataset[d]
        ax_b.plot(
            s["branches"],
            s["task_nbytes_total"] / size,
            marker=markers[d],
            color=colors[d],
            label=d,
        )
    if _wants_log(summary["task_nbytes_total"]):
        ax_b.set_yscale("log")
    else:
        ax_b.set_ylim(bottom=0)
    ax_b.set_ylabel(f"task nbytes, sum over chunks ({unit})")
    _setup_branch_axis(ax_b, counts)
    ax_b.legend(fontsize=9)

    # (c) mean task output per chunk ---------------------------------------------
    size, unit = _byte_unit(
        list(summary["task_nbytes_mean"]) + list(summary["output_pickled_mean"])
    )
    for d in datasets:
        s = per_dataset[d]
        ax_c.plot(
            s["branches"],
            s["task_nbytes_mean"] / size,
            marker=markers[d],
            color=colors[d],
            label=f"{d}: task nbytes",
        )
        ax_c.plot(
            s["branches"],
            s["output_pickled_mean"] / size,
            marker=markers[d],
            markerfacecolor="none",
            linestyle="--",
            color=colors[d],
            label=f"{d}: pickled (uncompressed)",
        )
    ax_c.set_ylim(bottom=0)
    ax_c.set_ylabel(f"output per chunk, mean ({unit})")
    _setup_branch_axis(ax_c, counts)
    ax_c.legend(fontsize=8)

    # (d) ratios to the first branch count ----------------------------------------
    _draw_ratios(ax_d, ratios, datasets, counts, colors)

    # (e) open vs payload, stacked ---------------------------------------------------
    _draw_split(ax_e, summary, datasets, counts, colors)

    # (f) per-chunk scatter -----------------------------------------------------------
    _draw_scatter(ax_f, result, chunks, corr, datasets, counts, markers)

    events = ", ".join(
        f"{d}: {_plural(int(per_dataset[d]['chunks'].iloc[0]), 'chunk')} of up to "
        f"{int(per_dataset[d]['events'].iloc[0] / max(int(per_dataset[d]['chunks'].iloc[0]), 1)):,}"
        " events"
        for d in datasets
    )
    fig.suptitle(
        f"Branch sweep on tree {result.treename!r}: what reading more branches costs "
        f"in bytes read and in task output\n{events}",
        fontsize=13,
    )
    return fig


def _draw_ratios(
    ax: Axes,
    ratios: pd.DataFrame,
    datasets: Sequence[str],
    counts: Sequence[int],
    colors: Mapping[str, Any],
) -> None:
    from matplotlib.lines import Line2D

    first = counts[0]
    ax.plot(
        counts,
        [n / first for n in counts],
        color="0.6",
        linestyle=(0, (1, 2)),
        linewidth=1.5,
        label="proportional to branches",
    )
    ax.axhline(1.0, color="0.8", linewidth=1)
    notes = []
    for d in datasets:
        r = ratios[ratios["dataset"] == d]
        for col, _label, marker, style in _RATIO_SERIES:
            values = r[col].astype(float)
            if not values.notna().any():
                notes.append(
                    f"{d}: {_label} is 0 at {_plural(first, 'branch')}: no ratio"
                )
                continue
            ax.plot(
                r["branches"],
                values,
                marker=marker,
                linestyle=style,
                color=colors[d],
                markersize=5,
            )
    ax.set_ylabel(f"value / value at {first} branch{'' if first == 1 else 'es'}")
    ax.set_ylim(bottom=0)
    _setup_branch_axis(ax, counts)
    metric_handles = [
        Line2D([], [], color="0.3", marker=m, linestyle=s, label=label)
        for _, label, m, s in _RATIO_SERIES
    ]
    dataset_handles = [
        Line2D([], [], color=colors[d], linewidth=3, label=d) for d in datasets
    ]
    reference = Line2D([], [], color="0.6", linestyle=(0, (1, 2)), label="∝ branches")
    ax.legend(
        handles=[*metric_handles, *dataset_handles, reference],
        fontsize=8,
        loc="upper left",
        ncol=2,
    )
    if notes:
        ax.text(
            0.98,
            0.03,
            "\n".join(notes),
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7.5,
            color="0.3",
        )


def _draw_split(
    ax: Axes,
    summary: pd.DataFrame,
    datasets: Sequence[str],
    counts: Sequence[int],
    colors: Mapping[str, Any],
) -> None:
    from matplotlib.patches import Patch

    size, unit = _byte_unit(summary["bytesread_total"])
    width = 0.8 / len(datasets)
    measured = bool(summary["open_split_measured"].all())
    top = float(summary["bytesread_total"].max()) / size
    for i, d in enumerate(datasets):
        s = summary[summary["dataset"] == d].set_index("branches")
        x = [counts.index(int(n)) - 0.4 + width * (i + 0.5) for n in s.index]
        opened = s["bytesread_open_total"].astype(float) / size
        payload = s["bytesread_payload_total"].astype(float) / size
        ax.bar(
            x,
            opened,
            width=width * 0.92,
            color=colors[d],
            alpha=0.35,
            hatch="//",
            edgecolor=colors[d],
            linewidth=0.8,
        )
        ax.bar(
            x,
            payload,
            width=width * 0.92,
            bottom=opened,
            color=colors[d],
            edgecolor=colors[d],
            linewidth=0.8,
        )
        for xi, share, total in zip(x, s["open_share"], opened + payload, strict=True):
            if math.isfinite(float(share)):
                ax.text(
                    xi,
                    total + top * 0.01,
                    f"{float(share):.0%}",
                    ha="center",
                    va="bottom",
                    fontsize=7.5,
                )
    ax.set_xticks(range(len(counts)), [str(n) for n in counts])
    ax.set_xlabel("branches read")
    ax.set_ylabel(f"bytes read, sum over chunks ({unit})")
    ax.set_ylim(0, top * 1.32 if top > 0 else 1)
    ax.grid(True, axis="y", alpha=0.3)
    how = "measured" if measured else "predicted from metadata"
    handles = [
        Patch(facecolor="0.85", edgecolor="0.3", hatch="//", label=f"open ({how})"),
        Patch(facecolor="0.3", label="payload (baskets)"),
        *[Patch(facecolor=colors[d], label=d) for d in datasets],
    ]
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="upper left",
        ncol=2,
        title="% above a bar: open share",
        title_fontsize=8,
    )


def _draw_scatter(
    ax: Axes,
    result: SweepResult,
    chunks: pd.DataFrame,
    corr: pd.DataFrame,
    datasets: Sequence[str],
    counts: Sequence[int],
    markers: Mapping[str, str],
) -> None:
    from matplotlib.lines import Line2D

    bytesread = _numeric(chunks["bytesread"])
    nbytes = _numeric(chunks["task_nbytes"])
    xsize, xunit = _byte_unit(bytesread)
    ysize, yunit = _byte_unit(nbytes)
    branch_colors = _branch_colors(counts)
    for d in datasets:
        for n in counts:
            mask = (chunks["dataset"] == d) & (chunks["branches"] == n)
            if not mask.any():
                continue
            ax.scatter(
                bytesread[mask] / xsize,
                nbytes[mask] / ysize,
                color=branch_colors[n],
                marker=markers[d],
                s=34,
                alpha=0.85,
                edgecolors="white",
                linewidths=0.5,
            )
    ax.set_xlabel(f"bytes read per chunk ({xunit})")
    ax.set_ylabel(f"task nbytes per chunk ({yunit})")
    ax.grid(True, alpha=0.3)
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            color=branch_colors[n],
            label=_plural(n, "branch"),
        )
        for n in counts
    ]
    handles += [
        Line2D([], [], linestyle="none", marker=markers[d], color="0.4", label=d)
        for d in datasets
    ]
    ax.margins(x=0.08, y=0.12)
    ax.legend(handles=handles, fontsize=8, loc="best", ncol=2)
    ax.set_title(
        f"{PANEL_TITLES[5]}\n{_correlation_text(result, corr)}",
        fontsize=11,
        loc="left",
    )


# ====================================================================== HTML
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
       sans-serif; margin: 1.5em auto; max-width: 1450px; padding: 0 1em;
       color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
p.meta { color: #555; font-size: 0.9em; margin-top: 0; }
p.note { color: #555; font-size: 0.9em; }
section.findings p { max-width: 75em; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
div.table { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 12px;
        font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 2px 6px; }
th { background: #f0f3f7; position: sticky; top: 0; text-align: center;
     vertical-align: bottom; }
td.num { text-align: right; white-space: nowrap; }
td.text { text-align: left; white-space: nowrap; }
td.list { text-align: left; min-width: 36em; font-size: 11px; }
tr:nth-child(even) td { background: #fafafa; }
dl.glossary dt { font-family: ui-monospace, monospace; font-weight: bold;
                 margin-top: 0.4em; }
dl.glossary dd { margin-left: 1.5em; }
"""

#: Meaning of the columns shown in the report's tables.
_GLOSSARY: dict[str, str] = {
    "dataset": "Dataset name (key of the fileset); 'all' pools every dataset.",
    "branches": "Branch count of the run: the processor read the first N of the "
    "sweep's branches (Jet_pt, Jet_eta, ...), cumulatively.",
    "columns": "Summary: number of distinct ROOT branches read (the sweep's "
    "branches plus counters such as nJet). Chunks: their names.",
    "chunks": "Number of chunks (tasks that each processed one entry range).",
    "events": "Number of events processed.",
    "bytesread_total": "Bytes coffea reports as read from the files, summed over "
    "chunks (uproot's bytes read: TTree metadata plus baskets).",
    "bytesread_per_chunk": "bytesread_total / chunks.",
    "bytesread_open_total": "Part of the bytes read spent opening: the file header, "
    "streamers and the TTree metadata (including any baskets embedded in it). "
    "Measured when the processor was decorated with track_sizes, otherwise "
    "predicted from the file's metadata.",
    "bytesread_payload_total": "The remainder: free-standing baskets of the "
    "branches read.",
    "open_share": "bytesread_open_total / bytesread_total.",
    "open_split_measured": "True if the open/payload split was measured by the "
    "decorator, False if it was predicted from the file's metadata.",
    "predicted_bytesread_total": "Bytes read predicted from the file's basket "
    "metadata alone, summed over chunks.",
    "prediction_exact_chunks": "Chunks whose predicted bytes read equal the "
    "measured value to the byte.",
    "amplification": "Basket bytes read over distinct basket bytes needed: above 1 "
    "when chunk edges cut baskets, so neighbouring chunks read the same basket.",
    "task_nbytes_total": "Sum over chunks of the scheduler's TaskState.nbytes of "
    "each chunk task's result: the size of the output shipped (lz4-compressed "
    "pickle with coffea's default), not of the input.",
    "task_nbytes_mean": "task_nbytes_total / chunks.",
    "output_pickled_total": "Sum of the uncompressed pickled size of each chunk's "
    "output.",
    "output_pickled_mean": "output_pickled_total / chunks.",
    "output_compressed_total": "Sum of the compressed size of each chunk's output "
    "(what coffea ships); n/a when compression is off.",
    "output_compressed_mean": "output_compressed_total / chunks.",
    "chunk_walltime_total": "Sum of the chunk tasks' wall time, in seconds.",
    "run_walltime": "Wall time of the whole Runner call, in seconds (ratios: "
    "relative to the first branch count).",
    "events_per_s": "events / run_walltime.",
    "mem_peak_max": "Largest peak resident memory of a worker process during a "
    "chunk, in bytes.",
    "bytesread_vs_task_nbytes": "Pearson correlation over chunks of bytesread and "
    "task_nbytes; n/a when either is constant or there are fewer than 3 chunks.",
    "bytesread_vs_pickled": "Pearson correlation over chunks of bytesread and the "
    "pickled output size.",
    "levels_bytesread_vs_task_nbytes": "Pearson correlation over branch counts of "
    "the per-level totals.",
    "filename": "File the chunk read (base name here; full path in chunks.csv).",
    "entrystart": "First entry of the chunk.",
    "entrystop": "One past the last entry of the chunk.",
    "entries": "Number of entries (events) in the chunk.",
    "bytesread": "Bytes read by the chunk.",
    "bytesread_open": "Chunk's bytes read while opening the file and the TTree.",
    "bytesread_payload": "Chunk's bytes read from baskets.",
    "predicted_bytesread": "Chunk's bytes read predicted from basket metadata.",
    "predicted_open_bytes": "Chunk's predicted cost of opening.",
    "predicted_payload_bytes": "Chunk's predicted basket bytes.",
    "output_pickled_bytes": "Pickled size of the chunk's output, in bytes.",
    "output_compressed_bytes": "Compressed size of the chunk's output, in bytes.",
    "task_nbytes": "The scheduler's nbytes of the chunk task's result, in bytes.",
    "mem_peak_bytes": "Peak resident memory of the worker process while "
    "processing the chunk, in bytes.",
    "walltime": "Wall time of the chunk task, in seconds.",
    "worker": "Dask worker that ran the chunk.",
    "attempts": "How many times the chunk was run (more than 1 after a retry).",
}

#: Ratio columns that mean something else than in the summary.
_RATIO_GLOSSARY = (
    "Ratios table: each size column divided by its value at the dataset's first "
    "branch count (n/a where that value is 0)."
)

#: Chunk columns shown in the HTML table (all of them are in chunks.csv).
_CHUNK_COLUMNS: tuple[str, ...] = (
    "dataset",
    "branches",
    "filename",
    "entrystart",
    "entrystop",
    "entries",
    "bytesread",
    "bytesread_open",
    "bytesread_payload",
    "predicted_bytesread",
    "task_nbytes",
    "output_pickled_bytes",
    "output_compressed_bytes",
    "mem_peak_bytes",
    "walltime",
    "attempts",
    "worker",
    "columns",
)


def _format_cell(name: str, value: Any) -> tuple[str, str]:
    """(css class, escaped text) of one table cell."""
    import numpy as np
    import pandas as pd

    if isinstance(value, list | tuple | np.ndarray):
        return "list", html.escape("; ".join(map(str, value)))
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "num", "n/a"
    if isinstance(value, bool | np.bool_):
        return "text", "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return "num", f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if name == "open_share":
            return "num", f"{v:.1%}"
        if v.is_integer() and abs(v) < 1e15:
            return "num", f"{int(v):,}"
        if abs(v) >= 1000:
            return "num", f"{v:,.0f}"
        return "num", f"{v:.4g}"
    text = str(value)
    if name == "filename":
        text = Path(text).name or text
    return "text", html.escape(text)


def _html_table(frame: pd.DataFrame, caption: str | None = None) -> str:
    head = "".join(
        f'<th scope="col">{html.escape(str(c)).replace("_", "_<wbr>")}</th>'
        for c in frame.columns
    )
    body = []
    for row in frame.itertuples(index=False, name=None):
        cells = []
        for name, value in zip(frame.columns, row, strict=True):
            cls, text = _format_cell(str(name), value)
            cells.append(f'<td class="{cls}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (
        f'<div class="table"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("coffea", "dask", "distributed", "uproot", "coffea-sizing"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    return buf.getvalue()


def _alt_text(summary: pd.DataFrame) -> str:
    parts = []
    for dataset, s in summary.groupby("dataset", sort=False):
        first, last = s.iloc[0], s.iloc[-1]
        parts.append(
            f"{dataset}: bytes read {int(first.bytesread_total):,} B at "
            f"{int(first.branches)} branch(es) and {int(last.bytesread_total):,} B at "
            f"{int(last.branches)}; task nbytes {int(first.task_nbytes_total):,} B "
            f"and {int(last.task_nbytes_total):,} B"
        )
    return (
        "Six panels against the number of branches read: total bytes read, total "
        "and mean task output, growth ratios, the open/payload split of bytes read, "
        "and bytes read vs task nbytes per chunk. " + "; ".join(parts) + "."
    )


def render_html(
    result: SweepResult,
    *,
    png: bytes | None = None,
    max_chunk_rows: int = MAX_HTML_CHUNK_ROWS,
) -> str:
    """The sweep as one self-contained HTML page.

    The page holds the findings, the figure of :func:`sweep_figure` embedded as a
    base64 PNG, the summary, ratios and correlations tables, the first
    ``max_chunk_rows`` chunk records, a glossary of the columns, the generation
    date and the versions of coffea, dask, distributed and uproot. It loads
    nothing from the network and needs no JavaScript; every text is escaped.

    Parameters
    ----------
    result : SweepResult
        What :func:`~coffea_sizing.compare.branch_sweep` returned.
    png : bytes, optional
        The figure as PNG bytes, if already rendered (:func:`save_report` passes
        the bytes of ``sweep.png``); default: draw it.
    max_chunk_rows : int
        Rows of the per-chunk table (default 500); a note says when rows are left
        out. ``chunks.csv`` holds them all.

    Returns
    -------
    str
        The HTML document.

    Examples
    --------
    >>> from coffea_sizing.plot import render_html
    >>> page = render_html(result)
    >>> page.startswith("<!DOCTYPE html>")
    True
    >>> "data:image/png;base64," in page
    True
    """
    if max_chunk_rows < 0:
        raise ValueError(f"max_chunk_rows must be >= 0, got {max_chunk_rows}")
    _check_result(result)
    summary = result.summary
    ratios = result.ratios
    correlations = result.correlations
    findings = result.findings
    chunks = result.chunks
    if png is None:
        png = _figure_png(sweep_figure(result))
    width, height = _png_size(png)
    versions = _versions()
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    datasets = [str(d) for d in dict.fromkeys(summary["dataset"])]
    counts = sorted(int(n) for n in set(summary["branches"]))

    shown = [c for c in _CHUNK_COLUMNS if c in chunks.columns]
    chunk_rows = chunks[shown].head(max_chunk_rows)
    if len(chunks) > max_chunk_rows:
        chunk_note = (
            f"The first {max_chunk_rows:,} of {len(chunks):,} chunks are shown; "
            "chunks.csv holds them all, with every column."
        )
    else:
        chunk_note = (
            f"All {len(chunks):,} chunks; chunks.csv also holds the columns not "
            "shown here (key, timings, memory details, predictions)."
        )

    glossary_names = list(
        dict.fromkeys([*summary.columns, *correlations.columns, *shown])
    )
    glossary = "".join(
        f"<dt>{html.escape(n)}</dt><dd>{html.escape(_GLOSSARY[n])}</dd>"
        for n in glossary_names
        if n in _GLOSSARY
    )
    esc = html.escape
    paragraphs = "".join(
        f"<p>{esc(p.strip())}</p>" for p in findings.split("\n\n") if p.strip()
    )
    meta = " · ".join(
        [
            f"Generated {now}",
            *(f"{name} {version}" for name, version in versions.items()),
            f"tree {result.treename}",
            f"datasets: {', '.join(datasets)}",
            f"branch counts: {', '.join(map(str, counts))}",
            f"{len(chunks):,} chunks",
        ]
    )
    image = base64.b64encode(png).decode("ascii")
    title = "coffea-sizing branch sweep: bytes read vs task output"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p class="meta">{esc(meta)}</p>

<section class="findings" id="findings">
<h2>Findings</h2>
{paragraphs}
</section>

<section id="figure">
<h2>Figure</h2>
<figure>
<img id="sweep-figure" src="data:image/png;base64,{image}" width="{width}"
 height="{height}" alt="{esc(_alt_text(summary))}">
<figcaption>{esc(_FIGURE_CAPTION)}</figcaption>
</figure>
</section>

<section id="summary">
<h2>Summary: one row per dataset and branch count</h2>
{_html_table(summary)}
</section>

<section id="ratios">
<h2>Scaling ratios</h2>
<p class="note">{esc(_RATIO_GLOSSARY)}</p>
{_html_table(ratios)}
</section>

<section id="correlations">
<h2>Correlations</h2>
{_html_table(correlations)}
</section>

<section id="chunks">
<h2>Chunks</h2>
<p class="note">{esc(chunk_note)}</p>
{_html_table(chunk_rows)}
</section>

<section id="glossary">
<h2>What each column means</h2>
<dl class="glossary">{glossary}</dl>
<p class="note">{esc(_RATIO_GLOSSARY)} Sizes are in bytes, times in seconds.</p>
</section>
</body>
</html>
"""


_FIGURE_CAPTION = (
    "(a) Total bytes read per branch count (crosses: predicted from basket "
    "metadata). (b) Total task output: the scheduler's nbytes summed over chunks. "
    "(c) Mean output per chunk, compressed as shipped (solid) and pickled "
    "uncompressed (dashed). (d) Each quantity over its value at the first branch "
    "count; the dotted grey line grows in proportion to the branches. (e) Bytes "
    "read split into opening the file and TTree (hatched) and basket payload "
    "(solid); the percentage is the open share. (f) Every chunk, coloured by "
    "branch count, one marker per dataset."
)


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with list-valued cells joined by ``;`` (CSV holds no lists)."""
    import numpy as np

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


def save_report(
    result: SweepResult, directory: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write the sweep's tables, figure and HTML report into ``directory``.

    Files written (the directory is created if needed; existing files of these
    names are replaced):

    ``chunks.csv``
        Every chunk record; list-valued cells (``columns``) joined with ``;``.
    ``summary.csv``, ``ratios.csv``, ``correlations.csv``
        :attr:`~coffea_sizing.compare.SweepResult.summary`, ``.ratios`` and
        ``.correlations``.
    ``merges.csv``, ``runs.csv``
        The tree-reduction task records and the per-run table.
    ``sweep.png``
        :func:`sweep_figure` at 100 dpi (1400 x 900 px).
    ``report.html``
        :func:`render_html`, with the same PNG embedded.

    Parameters
    ----------
    result : SweepResult
        What :func:`~coffea_sizing.compare.branch_sweep` returned.
    directory : str or path-like
        Output directory.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"chunks", "summary", "ratios", "correlations", "merges", "runs",
        "figure", "html"}`` -> path written.

    Examples
    --------
    >>> import tempfile
    >>> from coffea_sizing.plot import save_report
    >>> paths = save_report(result, tempfile.mkdtemp())
    >>> sorted(p.name for p in paths.values())  # doctest: +NORMALIZE_WHITESPACE
    ['chunks.csv', 'correlations.csv', 'merges.csv', 'ratios.csv', 'report.html',
     'runs.csv', 'summary.csv', 'sweep.png']
    """
    _check_result(result)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "chunks": out / "chunks.csv",
        "summary": out / "summary.csv",
        "ratios": out / "ratios.csv",
        "correlations": out / "correlations.csv",
        "merges": out / "merges.csv",
        "runs": out / "runs.csv",
        "figure": out / "sweep.png",
        "html": out / "report.html",
    }
    _csv_frame(result.chunks).to_csv(paths["chunks"], index=False)
    result.summary.to_csv(paths["summary"], index=False)
    result.ratios.to_csv(paths["ratios"], index=False)
    result.correlations.to_csv(paths["correlations"], index=False)
    _csv_frame(result.merges).to_csv(paths["merges"], index=False)
    _csv_frame(result.runs).to_csv(paths["runs"], index=False)
    png = _figure_png(sweep_figure(result))
    paths["figure"].write_bytes(png)
    paths["html"].write_text(render_html(result, png=png), encoding="utf-8")
    return paths


# ============================================================ one run's advice
#: Size of :func:`advice_figure` in inches (1500 x 480 px at :data:`FIGURE_DPI`).
ADVICE_FIGURE_SIZE: tuple[float, float] = (15.0, 4.8)


def _advice_curve(advice: Any) -> pd.DataFrame:
    """The model's predictions over a range of chunk sizes, for the model lines."""
    import numpy as np
    import pandas as pd

    top = max([m.num_entries for m in advice.model.values()] + [2])
    low = max(1, int(advice.chunks["entries"].min()) // 4)
    sizes = sorted({int(s) for s in np.geomspace(low, max(top, low + 1), 24)})
    return pd.concat([advice.predict(s) for s in sizes], ignore_index=True)


def _draw_advice_panel(
    ax: Axes,
    advice: Any,
    measured: str,
    median: str,
    high: str | None,
    ylabel: str,
    seconds: bool,
) -> None:
    colors = _dataset_colors(list(advice.model))
    curves = _advice_curve(advice)
    values = _numeric(advice.chunks[measured]) if measured in advice.chunks else None
    scale, unit = (
        (1.0, "s") if seconds else _byte_unit([] if values is None else values.dropna())
    )
    for dataset in advice.model:
        color = colors[dataset]
        rows = advice.chunks[advice.chunks["dataset"] == dataset]
        if values is not None:
            ax.scatter(
                rows["entries"],
                values[rows.index] / scale,
                color=color,
                s=14,
                alpha=0.7,
                label=f"{dataset}: chunks",
            )
        curve = curves[curves["dataset"] == dataset]
        ax.plot(
            curve["entries_per_chunk"],
            curve[median] / scale,
            color=color,
            label=f"{dataset}: model",
        )
        if high is not None:
            ax.plot(
                curve["entries_per_chunk"],
                curve[high] / scale,
                color=color,
                linestyle="--",
                label=f"{dataset}: high quantile",
            )
        rec = advice.recommendation.set_index("dataset").loc[dataset]
        ax.axvline(
            float(rec["entries_per_chunk"]),
            color=color,
            linestyle=":",
            label=f"{dataset}: recommended ({int(rec['chunksize']):,})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("entries per chunk")
    ax.set_ylabel(f"{ylabel} ({unit})")
    ax.grid(alpha=0.3)


def draw_chunk_bytes(ax: Axes, advice: Any) -> None:
    """Bytes read by every chunk against its entries, the model's bytes per chunk
    (exact from basket metadata when the files were opened) and the recommended
    chunk size."""
    _draw_advice_panel(
        ax, advice, "bytesread", "bytesread_per_chunk", None, "bytes read", False
    )
    ax.set_title("(a) Bytes read per chunk")


def draw_chunk_memory(ax: Axes, advice: Any) -> None:
    """Peak memory of every chunk against its entries, the fitted model (median
    and high quantile) and the recommended chunk size."""
    _draw_advice_panel(
        ax,
        advice,
        "mem_peak_bytes",
        "mem_peak_bytes",
        "mem_peak_high",
        "peak memory",
        False,
    )
    ax.set_title("(b) Peak memory of the worker process")


def draw_chunk_walltime(ax: Axes, advice: Any) -> None:
    """Wall time of every chunk against its entries, the fitted model (median and
    high quantile) and the recommended chunk size."""
    _draw_advice_panel(
        ax, advice, "walltime", "walltime", "walltime_high", "wall time", True
    )
    ax.set_title("(c) Wall time per chunk")


def advice_figure(advice: Any) -> Figure:
    """One run's chunks against their entries, with the model and the advice.

    Three panels: bytes read, peak memory and wall time of every chunk (points),
    the model's prediction at each chunk size (lines; dashed: the high quantile)
    and the recommended chunk size (dotted).

    Parameters
    ----------
    advice : Advice
        What :func:`~coffea_sizing.advise` returned.

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with ``pyplot``; save it with ``fig.savefig(...)``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=ADVICE_FIGURE_SIZE, layout="constrained")
    axes = fig.subplots(1, 3)
    draw_chunk_bytes(axes[0], advice)
    if (
        "mem_peak_bytes" in advice.chunks
        and advice.chunks["mem_peak_bytes"].notna().any()
    ):
        draw_chunk_memory(axes[1], advice)
    else:
        axes[1].set_axis_off()
        axes[1].text(0.5, 0.5, "no memory figures in the records", ha="center")
    draw_chunk_walltime(axes[2], advice)
    axes[2].legend(fontsize="small", loc="best")
    return fig


def save_advice_report(
    advice: Any, directory: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write ``advice.png`` and ``report.html`` (findings first) to ``directory``.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"figure": ..., "html": ...}``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    png = _figure_png(advice_figure(advice))
    figure = out / "advice.png"
    figure.write_bytes(png)
    page = out / "report.html"
    page.write_text(advice.to_html(png), encoding="utf-8")
    return {"figure": figure, "html": page}
