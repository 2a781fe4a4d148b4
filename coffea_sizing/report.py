"""The branch sweep's self-contained HTML report, from a template shipped with the package.

:func:`render_html` fills ``templates/sweep_report.html.j2`` (which extends
``templates/_base.html.j2``, the page and CSS every coffea-sizing report shares)
with the findings, the figure embedded as a PNG and the tables rendered by pandas'
:class:`~pandas.io.formats.style.Styler` (:func:`coffea_sizing.tables.styled`: units
in the headers, numbers right-aligned, a short column set with the rest behind a
click); :func:`save_report` writes it next to the CSV tables and the PNG. The page
needs no network and no JavaScript. The figure is :mod:`coffea_sizing.plot`.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .findings import plural
from .sweepdata import SweepData, _check_result
from .tables import CHUNK_COLUMNS, MEANINGS, SUMMARY_COLUMNS, label, styled

if TYPE_CHECKING:
    import jinja2
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "MAX_HTML_CHUNK_ROWS",
    "PLAN_TITLE",
    "render_html",
    "render_plan_html",
    "save_advice_report",
    "save_plan_report",
    "save_report",
    "template_environment",
]

#: The per-chunk table of the HTML report shows at most this many rows.
MAX_HTML_CHUNK_ROWS = 500

_RATIO_NOTE = (
    "Ratios table: each size column divided by its value at the dataset's first "
    "branch count (n/a where that value is 0)."
)
_FIGURE_CAPTION = (
    "(a) Total bytes read per branch count (crosses: predicted from basket "
    "metadata). (b) Total task output: the scheduler's nbytes summed over chunks. "
    "(c) Mean output per chunk, compressed as shipped (solid) and pickled "
    "uncompressed (dashed). (d) Each quantity over its value at the first branch "
    "count; the dotted grey line grows in proportion to the branches. (e) Bytes "
    "read split into opening the file and TTree (hatched) and basket payload "
    "(solid); the percentage is the open share. (f) Every chunk, coloured by "
    "branch count, one marker per dataset; Pearson's r per dataset."
)
TITLE = "coffea-sizing branch sweep: bytes read vs task output"


def template_environment() -> jinja2.Environment:
    """The jinja2 environment of the package's report templates (autoescaped).

    Templates live in ``coffea_sizing/templates/``; a new report extends
    ``_base.html.j2`` (blocks ``title`` and ``content``; variables ``title`` and
    ``meta``) to share its page and CSS.

    Examples
    --------
    >>> from coffea_sizing.report import template_environment
    >>> env = template_environment()
    >>> page = env.from_string(
    ...     '{% extends "_base.html.j2" %}{% block content %}<p>{{ x }}</p>'
    ...     '{% endblock %}').render(title="t", meta=[], x="<b>")
    >>> "<p>&lt;b&gt;</p>" in page, page.startswith("<!DOCTYPE html>")
    (True, True)
    """
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("coffea_sizing", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _table(
    frame: pd.DataFrame, short: Sequence[str] | None, *, ratio: bool = False
) -> dict[str, Any]:
    """The table's short HTML and, when it has more columns, the full one."""
    full_html = styled(frame, ratio=ratio).to_html()
    if short is None:
        return {"short": full_html, "full": None, "ncolumns": len(frame.columns)}
    shown = [c for c in short if c in frame.columns]
    if len(shown) == len(frame.columns):
        return {"short": full_html, "full": None, "ncolumns": len(frame.columns)}
    return {
        "short": styled(frame, shown, ratio=ratio).to_html(),
        "full": full_html,
        "ncolumns": len(frame.columns),
    }


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
    from .plot import FIGURE_DPI

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    return buf.getvalue()


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _alt_text(summary: pd.DataFrame) -> str:
    from .findings import format_bytes

    parts = []
    for dataset, s in summary.groupby("dataset", sort=False):
        first, last = s.iloc[0], s.iloc[-1]
        parts.append(
            f"{dataset}: bytes read {format_bytes(first.bytesread_total)} at "
            f"{plural(int(first.branches), 'branch')} and "
            f"{format_bytes(last.bytesread_total)} at {int(last.branches)}; task "
            f"nbytes {format_bytes(first.task_nbytes_total)} and "
            f"{format_bytes(last.task_nbytes_total)}"
        )
    return (
        "Six panels against the number of branches read: total bytes read, total "
        "and mean task output, growth ratios, the open/payload split of bytes read, "
        "and bytes read vs task nbytes per chunk. " + "; ".join(parts) + "."
    )


def render_html(
    result: SweepData,
    *,
    png: bytes | None = None,
    max_chunk_rows: int = MAX_HTML_CHUNK_ROWS,
) -> str:
    """The sweep as one self-contained HTML page.

    The page holds the findings, the figure of
    :func:`~coffea_sizing.plot.sweep_figure` embedded as a base64 PNG, the summary,
    ratios and correlations tables, the first ``max_chunk_rows`` chunk records, a
    glossary of the columns, the generation date and the versions of coffea, dask,
    distributed and uproot. Tables show a short set of columns (units in the
    headers) with every column behind a ``<details>`` click. It loads nothing from
    the network and needs no JavaScript; every text is escaped.

    Parameters
    ----------
    result : SweepData
        What :func:`~coffea_sizing.sweep.branch_sweep` returned, or any
        :class:`~coffea_sizing.sweepdata.SweepData`.
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
    >>> from coffea_sizing.report import render_html
    >>> page = render_html(result)
    >>> page.startswith("<!DOCTYPE html>")
    True
    >>> "data:image/png;base64," in page
    True
    """
    from .plot import sweep_figure

    if max_chunk_rows < 0:
        raise ValueError(f"max_chunk_rows must be >= 0, got {max_chunk_rows}")
    _check_result(result)
    summary = result.summary
    chunks = result.chunks
    if png is None:
        png = _figure_png(sweep_figure(result))
    width, height = _png_size(png)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    datasets = [str(d) for d in dict.fromkeys(summary["dataset"])]
    counts = sorted(int(n) for n in set(summary["branches"]))

    chunk_rows = chunks.head(max_chunk_rows)
    if len(chunks) > max_chunk_rows:
        chunk_note = (
            f"The first {max_chunk_rows:,} of {len(chunks):,} chunks are shown; "
            "chunks.csv holds them all."
        )
    else:
        chunk_note = f"All {plural(len(chunks), 'chunk')}; chunks.csv holds them too."
    names = dict.fromkeys(
        [*summary.columns, *result.correlations.columns, *chunks.columns]
    )
    meta = [
        f"Generated {now}",
        *(f"{name} {version}" for name, version in _versions().items()),
        f"tree {result.treename}",
        f"datasets: {', '.join(datasets)}",
        f"branch counts: {', '.join(map(str, counts))}",
        plural(len(chunks), "chunk"),
    ]
    template = template_environment().get_template("sweep_report.html.j2")
    return template.render(
        title=TITLE,
        meta=meta,
        findings=result.findings,
        image=base64.b64encode(png).decode("ascii"),
        width=width,
        height=height,
        alt=_alt_text(summary),
        caption=_FIGURE_CAPTION,
        summary=_table(summary, SUMMARY_COLUMNS),
        ratios=_table(result.ratios, None, ratio=True),
        correlations=_table(result.correlations, None),
        chunks=_table(chunk_rows, CHUNK_COLUMNS),
        chunk_note=chunk_note,
        ratio_note=_RATIO_NOTE,
        glossary=[(label(n), n, MEANINGS[n]) for n in names if n in MEANINGS],
    )


def save_report(
    result: SweepData, directory: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write the sweep's tables, figure and HTML report into ``directory``.

    Files written (the directory is created if needed; existing files of these
    names are replaced): the CSV tables of
    :meth:`~coffea_sizing.sweepdata.SweepData.to_csv` (``chunks.csv``,
    ``summary.csv``, ``ratios.csv``, ``correlations.csv``, ``merges.csv``,
    ``runs.csv``), ``sweep.png`` (:func:`~coffea_sizing.plot.sweep_figure` at 100
    dpi, 1400 x 900 px) and ``report.html`` (:func:`render_html`, with the same
    PNG embedded).

    Parameters
    ----------
    result : SweepData
        What :func:`~coffea_sizing.sweep.branch_sweep` returned, or any
        :class:`~coffea_sizing.sweepdata.SweepData`.
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
    >>> from coffea_sizing.report import save_report
    >>> paths = save_report(result, tempfile.mkdtemp())
    >>> sorted(p.name for p in paths.values())  # doctest: +NORMALIZE_WHITESPACE
    ['chunks.csv', 'correlations.csv', 'merges.csv', 'ratios.csv', 'report.html',
     'runs.csv', 'summary.csv', 'sweep.png']
    """
    from .plot import sweep_figure

    _check_result(result)
    paths = result.to_csv(directory)
    out = Path(directory)
    paths["figure"] = out / "sweep.png"
    paths["html"] = out / "report.html"
    png = _figure_png(sweep_figure(result))
    paths["figure"].write_bytes(png)
    paths["html"].write_text(render_html(result, png=png), encoding="utf-8")
    return paths


def save_advice_report(
    advice: Any, directory: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write ``advice.png`` and ``report.html`` (findings first) to ``directory``.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"figure": ..., "html": ...}``.
    """
    from .plot import advice_figure

    png = _figure_png(advice_figure(advice))
    return _write_pair(
        directory, ("advice.png", png), ("report.html", advice.to_html(png))
    )


def _write_pair(
    directory: str | os.PathLike[str], figure: tuple[str, bytes], page: tuple[str, str]
) -> dict[str, Path]:
    """Write a report's figure (name, PNG) and page (name, HTML) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / figure[0]).write_bytes(figure[1])
    (out / page[0]).write_text(page[1], encoding="utf-8")
    return {"figure": out / figure[0], "html": out / page[0]}


PLAN_TITLE = "coffea-sizing plan: the whole campaign before it runs"
_PLAN_CAPTION = (
    "(a) Bytes the whole campaign reads at each chunk size: every chunk pays its "
    "file's open and tree metadata again. (b) Worker time of the whole campaign, "
    "with its interval (shaded). (c) A chunk's peak memory (solid: median; dashed: "
    "high quantile) and Dask's pause threshold of the workers' memory_limit when "
    "the plan was made for one. Grey band: the sampled chunk sizes (time and memory "
    "beyond them are extrapolated). Dotted: Plan.chunksize; crosses: the calibration "
    "run at it, when there is one."
)


def render_plan_html(plan: Any, png: bytes, measured: Any = None) -> str:
    """The plan's self-contained HTML page (``templates/plan.html.j2``).

    Parameters
    ----------
    plan : Plan
        What :meth:`~coffea_sizing.advise.Advice.plan` returned.
    png : bytes
        The figure (:func:`coffea_sizing.plot.plan_figure`) as a PNG.
    measured : report or DataFrame, optional
        The records of the campaign run at ``plan.chunksize``: the page then shows
        planned against measured.

    Returns
    -------
    str
    """
    from .findings import format_bytes
    from .plan import _SHOWN, _parts

    parts = _parts(plan)
    comparison = None
    if measured is not None:
        values, ratios = plan.compare_tables(measured)
        comparison = {
            "figures": styled(values).to_html(),
            "ratios": styled(ratios, ratio=True).to_html(),
        }
    total = parts["frame"].iloc[-1]
    width, height = _png_size(png)
    alt = (
        f"Bytes read, worker time and chunk peak memory of the whole campaign "
        f"against the chunk size; at the chosen {plan.chunksize:,}: "
        f"{format_bytes(float(total['bytesread']))} read"
    )
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        template_environment()
        .get_template("plan.html.j2")
        .render(
            title=PLAN_TITLE,
            meta=[
                f"Generated {now}",
                *(f"{name} {version}" for name, version in _versions().items()),
                parts["header"].removeprefix("coffea-sizing plan: "),
            ],
            chunksize=f"{plan.chunksize:,}",
            decided_by=parts["decided_by"],
            memory_line=parts["memory"],
            per_dataset=parts["per_dataset"],
            table=_table(parts["frame"], _SHOWN),
            notes=parts["notes"],
            comparison=comparison,
            image=base64.b64encode(png).decode("ascii"),
            width=width,
            height=height,
            alt=alt,
            caption=_PLAN_CAPTION,
        )
    )


def save_plan_report(
    plan: Any, directory: str | os.PathLike[str], measured: Any = None
) -> dict[str, Path]:
    """Write ``plan.png`` and ``plan.html`` to ``directory``.

    Parameters
    ----------
    plan : Plan
        What :meth:`~coffea_sizing.advise.Advice.plan` returned.
    directory : path
        Created when missing.
    measured : report or DataFrame, optional
        The records of the campaign run at ``plan.chunksize`` (planned against
        measured in the page and crosses in the figure).

    Returns
    -------
    dict of str to pathlib.Path
        ``{"figure": ..., "html": ...}``.
    """
    from .plot import plan_figure

    png = _figure_png(plan_figure(plan, measured))
    html = render_plan_html(plan, png, measured)
    return _write_pair(directory, ("plan.png", png), ("plan.html", html))
