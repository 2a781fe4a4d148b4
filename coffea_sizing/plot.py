"""The branch sweep's figure: one function per panel, each drawing on a given axis.

:func:`sweep_figure` draws what a sweep measured
(:class:`~coffea_sizing.sweepdata.SweepData`, which the
:class:`~coffea_sizing.sweep.SweepResult` of a run is) in six panels, one series per
dataset against the number of branches read; each panel is its own function
(``draw_bytes_read(result, ax)``, ...; see :data:`PANELS`) that draws on the
:class:`~matplotlib.axes.Axes` it is given, so a panel can go into any figure. The
sweep's tables come from :mod:`coffea_sizing.sweepdata`, below this module: nothing
here calls back into the sweep. The HTML report is :mod:`coffea_sizing.report`; the
tables' units are :mod:`coffea_sizing.tables`.

Matplotlib is imported only when a figure is drawn, and only through its
object-oriented :class:`~matplotlib.figure.Figure` API: nothing is registered with
``pyplot``, so figures can be drawn from any thread, under any backend, and are
freed like any other object. Ticks point inwards on all four sides, as HEP plots do;
mplhep's styles are not applied: they are global ``rcParams`` (a figure drawn in one
thread would change one drawn in another) sized for single-panel publication plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .findings import format_bytes, plural
from .sweepdata import SweepData, _check_result
from .tables import byte_unit

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ADVICE_FIGURE_SIZE",
    "FIGURE_DPI",
    "FIGURE_SIZE",
    "PANELS",
    "PANEL_TITLES",
    "advice_figure",
    "draw_bytes_read",
    "draw_chunk_bytes",
    "draw_chunk_memory",
    "draw_chunk_scatter",
    "draw_chunk_walltime",
    "draw_growth",
    "draw_open_payload",
    "draw_output_per_chunk",
    "draw_plan_bytes",
    "draw_plan_memory",
    "draw_plan_worker_time",
    "draw_task_output",
    "plan_figure",
    "sweep_figure",
]

#: Size of :func:`sweep_figure` in inches; at :data:`FIGURE_DPI` it is 1400 x 900 px.
FIGURE_SIZE: tuple[float, float] = (14.0, 9.0)
#: Resolution of ``sweep.png`` and of the image embedded in the report.
FIGURE_DPI = 100

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
def _wants_log(values: Iterable[Any]) -> bool:
    positive = [float(v) for v in values if v is not None and float(v) > 0]
    return bool(positive) and max(positive) / min(positive) > _LOG_RANGE


def _numeric(series: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").astype(float)


class _Style:
    """Colours and markers of the datasets and branch counts, the same in every panel."""

    def __init__(self, result: SweepData) -> None:
        from matplotlib import colormaps

        summary = result.summary
        self.datasets = [str(d) for d in dict.fromkeys(summary["dataset"])]
        self.counts = sorted(int(n) for n in set(summary["branches"]))
        tab10 = colormaps["tab10"]
        self.colors = {d: tab10(i % 10) for i, d in enumerate(self.datasets)}
        self.markers = {
            d: _DATASET_MARKERS[i % len(_DATASET_MARKERS)]
            for i, d in enumerate(self.datasets)
        }
        viridis = colormaps["viridis"]
        n = len(self.counts)
        self.branch_colors = {
            c: viridis(0.35 if n == 1 else 0.9 * i / (n - 1))
            for i, c in enumerate(self.counts)
        }
        # series drawn later are thinner, so a line exactly under another shows
        self.widths = {d: max(1.0, 3.2 - 0.9 * i) for i, d in enumerate(self.datasets)}
        self.sizes = {d: max(4.0, 9.0 - 2.0 * i) for i, d in enumerate(self.datasets)}


def _setup_axis(ax: Axes, counts: Sequence[int], title: str) -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xticks(list(counts))
    ax.set_xlabel("branches read")
    if len(counts) == 1:
        ax.set_xlim(counts[0] - 1, counts[0] + 1)
    ax.grid(True, alpha=0.3)
    _hep_ticks(ax)


def _hep_ticks(ax: Axes) -> None:
    ax.tick_params(which="both", direction="in", top=True, right=True)
    ax.minorticks_on()
    ax.tick_params(axis="x", which="minor", bottom=False, top=False)


def _dataset_lines(
    ax: Axes,
    result: SweepData,
    column: str,
    size: float,
    style: _Style,
    **kwargs: Any,
) -> None:
    summary = result.summary
    for d in style.datasets:
        s = summary[summary["dataset"] == d]
        ax.plot(
            s["branches"],
            s[column] / size,
            marker=style.markers[d],
            color=style.colors[d],
            linewidth=style.widths[d],
            markersize=style.sizes[d],
            label=d,
            **kwargs,
        )


def _correlation_text(result: SweepData) -> str:
    """Pearson r per dataset (never pooled), wrapped to fit above a panel."""
    parts = []
    for _, row in result.correlations.iterrows():
        r = float(row["bytesread_vs_task_nbytes"])
        if math.isfinite(r):
            parts.append(f"{row['dataset']} {r:.2f}")
            continue
        rows = result.chunks[result.chunks["dataset"] == row["dataset"]]
        values = _numeric(rows["bytesread"])
        constant = bool(values.min() == values.max())
        why = "bytes read constant" if constant else "too few chunks"
        parts.append(f"{row['dataset']} n/a ({why})")
    lines = ["Pearson r per dataset:"]
    for part in parts:
        if len(lines[-1]) + len(part) + 2 > _TITLE_WIDTH:
            if not lines[-1].endswith(":"):
                lines[-1] += ","
            lines.append(part)
        else:
            sep = " " if lines[-1].endswith(":") else ", "
            lines[-1] += sep + part
    return "\n".join(lines)


# ====================================================================== panels
def draw_bytes_read(result: SweepData, ax: Axes) -> None:
    """(a) Total bytes read per branch count; crosses: predicted from metadata.

    Log y when the datasets differ by more than a factor 30.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from coffea_sizing.plot import draw_bytes_read
    >>> ax = Figure().subplots()
    >>> draw_bytes_read(result, ax)
    >>> ax.get_title(loc="left")
    '(a) Bytes read, all chunks'
    """
    style = _Style(result)
    summary = result.summary
    size, unit = byte_unit(summary["bytesread_total"])
    _dataset_lines(ax, result, "bytesread_total", size, style)
    predicted = summary["predicted_bytesread_total"].astype(float)
    if predicted.notna().any():
        ax.plot(
            summary["branches"],
            predicted / size,
            linestyle="none",
            marker="x",
            markersize=9,
            color="black",
            label="predicted from metadata",
            zorder=5,
        )
    if _wants_log(summary["bytesread_total"]):
        ax.set_yscale("log")
        ax.margins(y=0.35)
    else:
        top = float(summary["bytesread_total"].max()) / size
        ax.set_ylim(0, top * 1.45 if top > 0 else 1)
    ax.set_ylabel(f"bytes read, sum over chunks ({unit})")
    _setup_axis(ax, style.counts, PANEL_TITLES[0])
    # above the data: the y range leaves the top free for it
    ax.legend(fontsize=8, loc="upper left", ncol=2)


def draw_task_output(result: SweepData, ax: Axes) -> None:
    """(b) Total task output: the scheduler's ``task_nbytes`` summed over chunks.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from coffea_sizing.plot import draw_task_output
    >>> ax = Figure().subplots()
    >>> draw_task_output(result, ax)
    >>> ax.get_ylabel().startswith("task nbytes")
    True
    """
    style = _Style(result)
    summary = result.summary
    size, unit = byte_unit(summary["task_nbytes_total"])
    _dataset_lines(ax, result, "task_nbytes_total", size, style)
    if _wants_log(summary["task_nbytes_total"]):
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_ylabel(f"task nbytes, sum over chunks ({unit})")
    _setup_axis(ax, style.counts, PANEL_TITLES[1])
    ax.legend(fontsize=8, loc="best")


def draw_output_per_chunk(result: SweepData, ax: Axes) -> None:
    """(c) Mean task output per chunk (solid) and mean pickled output (dashed).

    A series drawn later is thinner and has smaller markers, so a series exactly
    under another (two datasets with the same output) stays visible.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from coffea_sizing.plot import draw_output_per_chunk
    >>> ax = Figure().subplots()
    >>> draw_output_per_chunk(result, ax)
    >>> len(ax.lines) == 2 * result.summary["dataset"].nunique()
    True
    """
    style = _Style(result)
    summary = result.summary
    size, unit = byte_unit(
        list(summary["task_nbytes_mean"]) + list(summary["output_pickled_mean"])
    )
    for d in style.datasets:
        s = summary[summary["dataset"] == d]
        common: dict[str, Any] = {
            "marker": style.markers[d],
            "color": style.colors[d],
            "linewidth": style.widths[d],
            "markersize": style.sizes[d],
        }
        ax.plot(
            s["branches"],
            s["task_nbytes_mean"] / size,
            label=f"{d}: task nbytes",
            **common,
        )
        ax.plot(
            s["branches"],
            s["output_pickled_mean"] / size,
            markerfacecolor="none",
            linestyle="--",
            label=f"{d}: pickled (uncompressed)",
            **common,
        )
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"output per chunk, mean ({unit})")
    _setup_axis(ax, style.counts, PANEL_TITLES[2])
    ax.legend(fontsize=8, loc="best")


def draw_growth(result: SweepData, ax: Axes) -> None:
    """(d) Each quantity over its value at the first branch count.

    Bytes read, its payload, task nbytes and the pickled output; the grey dotted
    line grows in proportion to the branches read.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from coffea_sizing.plot import draw_growth
    >>> ax = Figure().subplots()
    >>> draw_growth(result, ax)
    >>> ax.get_ylabel()[:7]
    'value /'
    """
    from matplotlib.lines import Line2D

    style = _Style(result)
    ratios = result.ratios
    counts = style.counts
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
    for d in style.datasets:
        r = ratios[ratios["dataset"] == d]
        for col, label, marker, linestyle in _RATIO_SERIES:
            values = r[col].astype(float)
            if not values.notna().any():
                notes.append(
                    f"{d}: {label} is 0 at {plural(first, 'branch')}: no ratio"
                )
                continue
            ax.plot(
                r["branches"],
                values,
                marker=marker,
                linestyle=linestyle,
                color=style.colors[d],
                linewidth=style.widths[d] * 0.6,
                markersize=5,
            )
    ax.set_ylabel(f"value / value at {plural(first, 'branch')}")
    ax.set_ylim(bottom=0)
    _setup_axis(ax, counts, PANEL_TITLES[3])
    metric_handles = [
        Line2D([], [], color="0.3", marker=m, linestyle=s, label=label)
        for _, label, m, s in _RATIO_SERIES
    ]
    dataset_handles = [
        Line2D([], [], color=style.colors[d], linewidth=3, label=d)
        for d in style.datasets
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


def draw_open_payload(result: SweepData, ax: Axes) -> None:
    """(e) Bytes read split into opening (hatched) and payload (solid), stacked.

    The open share is written above each bar; the split is the decorator's
    measurement when present, else the prediction from metadata.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from coffea_sizing.plot import draw_open_payload
    >>> ax = Figure().subplots()
    >>> draw_open_payload(result, ax)
    >>> len(ax.patches) == 2 * len(result.summary)
    True
    """
    from matplotlib.patches import Patch

    style = _Style(result)
    summary = result.summary
    counts = style.counts
    size, unit = byte_unit(summary["bytesread_total"])
    width = 0.8 / len(style.datasets)
    measured = bool(summary["open_split_measured"].all())
    top = float(summary["bytesread_total"].max()) / size
    for i, d in enumerate(style.datasets):
        s = summary[summary["dataset"] == d].set_index("branches")
        x = [counts.index(int(n)) - 0.4 + width * (i + 0.5) for n in s.index]
        opened = s["bytesread_open_total"].astype(float) / size
        payload = s["bytesread_payload_total"].astype(float) / size
        color = style.colors[d]
        ax.bar(
            x,
            opened,
            width=width * 0.92,
            color=color,
            alpha=0.35,
            hatch="//",
            edgecolor=color,
            linewidth=0.8,
        )
        ax.bar(
            x,
            payload,
            width=width * 0.92,
            bottom=opened,
            color=color,
            edgecolor=color,
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
    ax.set_title(PANEL_TITLES[4], fontsize=11, loc="left")
    ax.set_xticks(range(len(counts)), [str(n) for n in counts])
    ax.set_xlabel("branches read")
    ax.set_ylabel(f"bytes read, sum over chunks ({unit})")
    ax.set_ylim(0, top * 1.32 if top > 0 else 1)
    ax.grid(True, axis="y", alpha=0.3)
    ax.tick_params(which="both", direction="in", top=True, right=True)
    how = "measured" if measured else "predicted from metadata"
    handles = [
        Patch(facecolor="0.85", edgecolor="0.3", hatch="//", label=f"open ({how})"),
        Patch(facecolor="0.3", label="payload (baskets)"),
        *[Patch(facecolor=style.colors[d], label=d) for d in style.datasets],
    ]
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="upper left",
        ncol=2,
        title="% above a bar: open share",
        title_fontsize=8,
    )


def draw_chunk_scatter(result: SweepData, ax: Axes) -> None:
    """(f) Every chunk: bytes read vs task nbytes, coloured by branch count.

    One marker per dataset; the title gives Pearson's r of each dataset (never
    pooled over datasets: their files are unrelated).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from coffea_sizing.plot import draw_chunk_scatter
    >>> ax = Figure().subplots()
    >>> draw_chunk_scatter(result, ax)
    >>> "Pearson r per dataset" in ax.get_title(loc="left")
    True
    """
    from matplotlib.lines import Line2D

    style = _Style(result)
    chunks = result.chunks
    bytesread = _numeric(chunks["bytesread"])
    nbytes = _numeric(chunks["task_nbytes"])
    xsize, xunit = byte_unit(bytesread)
    ysize, yunit = byte_unit(nbytes)
    for d in style.datasets:
        for n in style.counts:
            mask = (chunks["dataset"] == d) & (chunks["branches"] == n)
            if not mask.any():
                continue
            ax.scatter(
                bytesread[mask] / xsize,
                nbytes[mask] / ysize,
                color=style.branch_colors[n],
                marker=style.markers[d],
                s=34,
                alpha=0.85,
                edgecolors="white",
                linewidths=0.5,
            )
    ax.set_xlabel(f"bytes read per chunk ({xunit})")
    ax.set_ylabel(f"task nbytes per chunk ({yunit})")
    ax.grid(True, alpha=0.3)
    _hep_ticks(ax)
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            color=style.branch_colors[n],
            label=plural(n, "branch"),
        )
        for n in style.counts
    ]
    handles += [
        Line2D([], [], linestyle="none", marker=style.markers[d], color="0.4", label=d)
        for d in style.datasets
    ]
    ax.margins(x=0.08, y=0.12)
    ax.legend(handles=handles, fontsize=8, loc="best", ncol=2)
    ax.set_title(
        f"{PANEL_TITLES[5]}\n{_correlation_text(result)}", fontsize=11, loc="left"
    )


#: The panel functions of :func:`sweep_figure`, in the order of :data:`PANEL_TITLES`.
PANELS: tuple[Callable[[SweepData, Axes], None], ...] = (
    draw_bytes_read,
    draw_task_output,
    draw_output_per_chunk,
    draw_growth,
    draw_open_payload,
    draw_chunk_scatter,
)


# ====================================================================== figure
def sweep_figure(result: SweepData) -> Figure:
    """Draw the branch sweep: six panels against the number of branches read.

    One series (colour) per dataset; the panels are the functions of
    :data:`PANELS`:

    (a) total bytes read over all chunks, with the bytes predicted from basket
        metadata as crosses (:func:`draw_bytes_read`);
    (b) total task output, the sum of the scheduler's ``task_nbytes``
        (:func:`draw_task_output`);
    (c) mean task output per chunk (solid), and the mean uncompressed pickled
        output (dashed) (:func:`draw_output_per_chunk`);
    (d) bytes read, its payload, task nbytes and the pickled output, each divided
        by its value at the first branch count (:func:`draw_growth`);
    (e) bytes read split into the cost of opening and the payload, stacked
        (:func:`draw_open_payload`);
    (f) every chunk: bytes read vs task nbytes, with Pearson's r per dataset
        (:func:`draw_chunk_scatter`).

    Parameters
    ----------
    result : SweepData
        What :func:`~coffea_sizing.sweep.branch_sweep` returned, or any
        :class:`~coffea_sizing.sweepdata.SweepData`.

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
    >>> from coffea_sizing.plot import sweep_figure
    >>> fig = sweep_figure(result)
    >>> [ax.get_title(loc="left")[:3] for ax in fig.axes]
    ['(a)', '(b)', '(c)', '(d)', '(e)', '(f)']
    >>> fig.savefig("sweep.png", dpi=100)  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    _check_result(result)
    summary = result.summary
    fig = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    axes = fig.subplots(2, 3)
    for ax, panel in zip(axes.flat, PANELS, strict=True):
        panel(result, ax)

    parts = []
    for d, s in summary.groupby("dataset", sort=False):
        n = int(s["chunks"].iloc[0])
        per = int(s["events"].iloc[0] / max(n, 1))
        parts.append(f"{d}: {plural(n, 'chunk')} of up to {per:,} events")
    fig.suptitle(
        f"Branch sweep on tree {result.treename!r}: what reading more branches costs "
        f"in bytes read and in task output\n{', '.join(parts)}",
        fontsize=13,
    )
    return fig


# ============================================================ one run's advice
#: Size of :func:`advice_figure` in inches (1500 x 480 px at :data:`FIGURE_DPI`).
ADVICE_FIGURE_SIZE: tuple[float, float] = (15.0, 4.8)


def _dataset_colors(datasets: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    tab10 = colormaps["tab10"]
    return {d: tab10(i % 10) for i, d in enumerate(datasets)}


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
        (1.0, "s") if seconds else byte_unit([] if values is None else values.dropna())
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
        model = advice.model[dataset]
        fit = {
            "mem_peak_bytes": model.memory,
            "walltime": model.walltime,
            "bytesread": None if model.bytes_exact else model.bytesread,
        }.get(measured)
        caveat = getattr(fit, "caveat", "")
        ax.plot(
            curve["entries_per_chunk"],
            curve[median] / scale,
            color=color,
            alpha=0.5 if caveat else 1.0,  # a pale line: the fit is unsure
            label=f"{dataset}: model" + (f" ({caveat})" if caveat else ""),
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


def draw_chunk_bytes(advice: Any, ax: Axes) -> None:
    """Bytes read by every chunk against its entries, the model's bytes per chunk
    (exact from basket metadata when the files were opened) and the recommended
    chunk size."""
    _draw_advice_panel(
        ax, advice, "bytesread", "bytesread_per_chunk", None, "bytes read", False
    )
    ax.set_title("(a) Bytes read per chunk")


def draw_chunk_memory(advice: Any, ax: Axes) -> None:
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


def draw_chunk_walltime(advice: Any, ax: Axes) -> None:
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
    draw_chunk_bytes(advice, axes[0])
    if (
        "mem_peak_bytes" in advice.chunks
        and advice.chunks["mem_peak_bytes"].notna().any()
    ):
        draw_chunk_memory(advice, axes[1])
    else:
        axes[1].set_axis_off()
        axes[1].text(0.5, 0.5, "no memory figures in the records", ha="center")
    draw_chunk_walltime(advice, axes[2])
    axes[2].legend(fontsize="small", loc="best")
    return fig


# --------------------------------------------------------------------- the plan
def _plan_measured(plan: Any, measured: Any) -> dict[str, float] | None:
    """The calibration run's totals, as :meth:`Plan.compare` gives them."""
    if measured is None:
        return None
    total = plan.compare(measured).set_index("dataset").loc["total"]
    return {
        key: float(total[f"measured_{key}"])
        for key in ("bytesread", "worker_s", "peak_bytes")
    }


def _draw_plan_panel(
    ax: Axes,
    plan: Any,
    curve: pd.DataFrame,
    column: str,
    measured: float | None,
    ylabel: str,
    seconds: bool,
) -> float:
    values = curve[column].tolist() + ([] if measured is None else [measured])
    scale, unit = (1.0, "s") if seconds else byte_unit(values)
    ax.plot(curve["chunksize"], curve[column] / scale, color="C0", label="planned")
    ax.axvline(
        plan.chunksize,
        color="k",
        linestyle=":",
        label=f"Plan.chunksize ({plan.chunksize:,})",
    )
    if measured is not None:
        ax.scatter(
            [plan.chunksize],
            [measured / scale],
            color="C3",
            marker="x",
            s=60,
            zorder=3,
            label="measured (calibration run)",
        )
    if plan.sampled_sizes:
        ax.axvspan(
            min(plan.sampled_sizes),
            max(plan.sampled_sizes),
            color="0.85",
            alpha=0.6,
            label="sampled chunk sizes",
        )
    ax.set_xscale("log")
    if _wants_log(v for v in values if v and v > 0):
        ax.set_yscale("log")
    ax.set_xlabel("chunksize (entries per chunk)")
    ax.set_ylabel(f"{ylabel} ({unit})")
    ax.grid(alpha=0.3)
    _hep_ticks(ax)
    return scale


def draw_plan_bytes(plan: Any, ax: Axes, measured: Any = None) -> None:
    """Bytes the whole campaign reads at each chunk size (every chunk pays the
    file's open and tree metadata again), ``Plan.chunksize`` and, given the
    calibration run's records, what it read."""
    got = _plan_measured(plan, measured)
    _draw_plan_panel(
        ax,
        plan,
        plan.curve(),
        "bytesread",
        None if got is None else got["bytesread"],
        "bytes read, whole campaign",
        False,
    )
    ax.set_title("(a) Bytes read")


def draw_plan_worker_time(plan: Any, ax: Axes, measured: Any = None) -> None:
    """Worker-seconds of the whole campaign at each chunk size with its interval
    (shaded), ``Plan.chunksize`` and, given the calibration run's records, what it
    took."""
    curve = plan.curve()
    got = _plan_measured(plan, measured)
    _draw_plan_panel(
        ax,
        plan,
        curve,
        "worker_s",
        None if got is None else got["worker_s"],
        "worker time, whole campaign",
        True,
    )
    ax.fill_between(
        curve["chunksize"],
        curve["worker_s_low"],
        curve["worker_s_high"],
        color="C0",
        alpha=0.2,
        label="interval",
    )
    ax.set_title("(b) Worker time")


def draw_plan_memory(plan: Any, ax: Axes, measured: Any = None) -> None:
    """The chunk's peak memory at each chunk size (median, and the high quantile
    dashed), Dask's pause threshold of ``memory_limit`` when the plan was made for
    one, ``Plan.chunksize`` and, given the calibration run's records, the measured
    median peak of its largest chunks."""
    curve = plan.curve()
    got = _plan_measured(plan, measured)
    limit = plan.memory_limit
    scale = _draw_plan_panel(
        ax,
        plan,
        curve,
        "peak_bytes",
        None if got is None else got["peak_bytes"],
        "chunk peak memory",
        False,
    )
    ax.plot(
        curve["chunksize"],
        curve["peak_high_bytes"] / scale,
        color="C0",
        linestyle="--",
        label="planned, high quantile",
    )
    if limit:
        pause = limit * plan.pause
        label = f"pause at {plan.pause:.0%} of memory_limit"
        if pause <= 3 * float(curve["peak_high_bytes"].max()):
            ax.axhline(pause / scale, color="C1", label=label)
        else:  # far above every peak: said, not drawn (it would flatten the lines)
            ax.plot([], [], " ", label=f"{label}: {format_bytes(pause)}, off scale")
    ax.set_title("(c) Peak memory of a chunk")
    ax.legend(fontsize="small", loc="best")


def plan_figure(plan: Any, measured: Any = None) -> Figure:
    """A campaign's plan against the chunk size, in three panels.

    Bytes read, worker time (with its interval) and chunk peak memory of the whole
    campaign at every chunk size the plan chose among, the chosen ``chunksize``
    (dotted) and, given the records of the campaign run at it, the measured totals
    (crosses).

    Parameters
    ----------
    plan : Plan
        What :meth:`~coffea_sizing.advise.Advice.plan` returned.
    measured : report or DataFrame, optional
        The ``Runner`` report (or :func:`~coffea_sizing.chunk_table`) of the
        campaign run at ``plan.chunksize``.

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with ``pyplot``; save it with ``fig.savefig(...)``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=ADVICE_FIGURE_SIZE, layout="constrained")
    axes = fig.subplots(1, 3)
    draw_plan_bytes(plan, axes[0], measured)
    draw_plan_worker_time(plan, axes[1], measured)
    if math.isfinite(float(plan.to_frame()["peak_bytes"].iloc[-1])):
        draw_plan_memory(plan, axes[2], measured)
    else:
        axes[2].set_axis_off()
        axes[2].text(0.5, 0.5, "no memory figures in the records", ha="center")
    axes[0].legend(fontsize="small", loc="best")
    return fig
