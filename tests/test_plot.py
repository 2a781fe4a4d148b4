"""The sweep figure and the HTML report, drawn from a real branch sweep.

The sweep runs :class:`~coffea_sizing.sweep.BranchSweepProcessor` at 1, 2, 3, 5 and
10 branches on the real CMS ttbar file (chunks of 50) and on a generated NanoAOD-like
file of 20,000 events with real baskets (chunks of 2,500), on the session's
LocalCluster. The report is then opened in a real headless Chromium when one is
installed (``apt-get install chromium``).
"""

from __future__ import annotations

import base64
import doctest
import gc
import html
import io
import re
import subprocess
import sys
import threading
import weakref
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from coffea_sizing import plot as plot_module
from coffea_sizing import report as report_module
from coffea_sizing.plot import FIGURE_DPI, PANEL_TITLES, PANELS, sweep_figure
from coffea_sizing.report import MAX_HTML_CHUNK_ROWS, render_html, save_report
from coffea_sizing.sweep import SweepResult
from coffea_sizing.tables import SUMMARY_COLUMNS, column_format

from conftest import SCIENTIFIC, chromium, layout_in_chromium, needs_chromium, scaled

BRANCH_COUNTS = (1, 2, 3, 5, 10)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# tab10 blue and orange: the first two datasets' colours in the figure; the page's
# CSS uses neither, so these pixels in a screenshot come from the rendered image.
TAB_BLUE = np.array([31, 119, 180])
TAB_ORANGE = np.array([255, 127, 14])


@pytest.fixture(scope="module")
def report(sweep: SweepResult, tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("report") / "nested" / "out"
    return save_report(sweep, directory)


class _Page(HTMLParser):
    """Collects what the tests look for in the report: title, images, tables."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.images: list[dict[str, str | None]] = []
        self.tables: list[list[list[str]]] = []
        self.scripts = 0
        self.links: list[str] = []
        self._in: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "script":
            self.scripts += 1
        elif tag in {"link", "iframe"} or (tag == "a" and dict(attrs).get("href")):
            self.links.append(str(dict(attrs).get("href") or dict(attrs).get("src")))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        while self._in and self._in.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "title":
            self.title += data
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _embedded_png(page: str) -> bytes:
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match, "no embedded PNG"
    return base64.b64decode(match.group(1), validate=True)


def _distinct_colours(image: np.ndarray) -> int:
    """Number of distinct RGB colours of an image read by ``imread``."""
    rgb = (image[..., :3] * 255).round().astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return len(np.unique(packed))


def _axes_with_data(fig: Any) -> list[Any]:
    return [
        ax
        for ax in fig.axes
        if any(len(line.get_xdata()) for line in ax.lines)
        or ax.patches
        or any(len(c.get_offsets()) for c in ax.collections)
    ]


# ============================================================== no cluster needed
def test_import_loads_no_matplotlib() -> None:
    code = (
        "import sys, coffea_sizing.plot, coffea_sizing.sweep, "
        "coffea_sizing.report; "
        "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_empty_result_is_refused() -> None:
    empty = SweepResult(
        chunks=pd.DataFrame(), merges=pd.DataFrame(), runs=pd.DataFrame()
    )
    with pytest.raises(ValueError, match="no chunks"):
        sweep_figure(empty)
    with pytest.raises(ValueError, match="no chunks"):
        render_html(empty)
    with pytest.raises(TypeError, match="SweepResult"):
        sweep_figure(pd.DataFrame())  # type: ignore[arg-type]


# ============================================================== the figure
@pytest.mark.slow
def test_figure_panels(sweep: SweepResult) -> None:
    fig = sweep_figure(sweep)
    assert tuple(fig.get_size_inches() * FIGURE_DPI) == (1400, 900)
    assert len(fig.axes) == 6
    assert len(_axes_with_data(fig)) == 6
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    for title, expected in zip(titles, PANEL_TITLES, strict=True):
        assert title.startswith(expected)
    assert "Branch sweep" in fig.get_suptitle()
    ax_a, ax_b, ax_c, ax_d, ax_e, ax_f = fig.axes
    for ax in fig.axes:
        assert ax.get_legend() is not None
        assert ax.get_xlabel()
        assert ax.get_ylabel()
    assert "(MB)" in ax_a.get_ylabel()  # units on the axes
    assert "(kB)" in ax_b.get_ylabel()
    # one series per dataset, x = the branch counts
    summary = sweep.summary
    series = [line for line in ax_a.lines if line.get_label() in {"ttbar", "generated"}]
    assert len(series) == 2
    for line in series:
        assert list(line.get_xdata()) == list(BRANCH_COUNTS)
        s = summary[summary.dataset == line.get_label()]
        np.testing.assert_allclose(line.get_ydata(), s.bytesread_total / 1e6)
    # (b) total task output, (c) mean per chunk
    for line in ax_b.lines:
        s = summary[summary.dataset == line.get_label()]
        np.testing.assert_allclose(line.get_ydata(), s.task_nbytes_total / 1e3)
    means = {line.get_label(): line.get_ydata() for line in ax_c.lines}
    np.testing.assert_allclose(
        means["generated: task nbytes"],
        summary[summary.dataset == "generated"].task_nbytes_mean / 1e3,
    )
    # (d) the ratios start at 1; ttbar's payload is 0, so it has no payload ratio
    ratio_lines = [line for line in ax_d.lines if len(line.get_xdata()) > 2]
    assert len(ratio_lines) == 1 + 4 + 3  # reference + generated 4 + ttbar 3
    for line in ratio_lines[1:]:
        assert line.get_ydata()[0] == pytest.approx(1.0)
    assert any("ttbar" in t.get_text() for t in ax_d.texts)
    # (e) two stacked bars (open, payload) per dataset and branch count
    assert len(ax_e.patches) == 2 * 2 * len(BRANCH_COUNTS)
    heights = sorted(p.get_height() for p in ax_e.patches)
    assert heights[-1] > 0
    # (f) every chunk, with the correlation in the title
    points = sum(len(c.get_offsets()) for c in ax_f.collections)
    assert points == len(sweep.chunks) == 5 * (4 + 8)
    corr = sweep.correlations.set_index("dataset")
    r = float(corr.loc["generated", "bytesread_vs_task_nbytes"])
    assert f"generated {r:.2f}" in ax_f.get_title(loc="left")
    assert "ttbar n/a (bytes read constant)" in ax_f.get_title(loc="left")


@pytest.mark.slow
def test_figure_uses_no_pyplot_and_is_freed(sweep: SweepResult) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = sweep_figure(sweep)
    fig.savefig(io.BytesIO(), format="png")
    assert plt.get_fignums() == before
    ref = weakref.ref(fig)
    del fig
    gc.collect()
    assert ref() is None


@pytest.mark.slow
def test_figure_from_threads(sweep: SweepResult) -> None:
    """Figures drawn concurrently from threads are the figure drawn alone."""
    buf = io.BytesIO()
    sweep_figure(sweep).savefig(buf, format="png", dpi=FIGURE_DPI)
    expected = buf.getvalue()
    results: list[bytes] = []
    errors: list[BaseException] = []

    def draw() -> None:
        try:
            out = io.BytesIO()
            sweep_figure(sweep).savefig(out, format="png", dpi=FIGURE_DPI)
            results.append(out.getvalue())
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=draw) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=scaled(120))
    assert not errors
    assert len(results) == 3
    assert all(r == expected for r in results)


@pytest.mark.slow
def test_figure_of_one_dataset_and_one_level(sweep: SweepResult) -> None:
    """A sweep of a single branch count still draws every panel."""
    keep = (sweep.chunks.dataset == "generated") & (sweep.chunks.branches == 3)
    runs = sweep.runs[(sweep.runs.dataset == "generated") & (sweep.runs.branches == 3)]
    one = SweepResult(
        chunks=sweep.chunks[keep].reset_index(drop=True),
        merges=sweep.merges[
            (sweep.merges.dataset == "generated") & (sweep.merges.branches == 3)
        ],
        runs=runs.reset_index(drop=True),
    )
    fig = sweep_figure(one)
    assert len(_axes_with_data(fig)) == 6
    assert [int(t) for t in fig.axes[0].get_xticks()] == [3]
    tables = _parse(render_html(one)).tables
    assert [row[:2] for row in tables[0][1:]] == [["generated", "3"]]
    assert len(tables[-1]) == 1 + 8


# ============================================================== the report files
@pytest.mark.slow
def test_save_report_writes_everything(sweep: SweepResult, report: Any) -> None:
    expected = {
        "chunks": "chunks.csv",
        "summary": "summary.csv",
        "ratios": "ratios.csv",
        "correlations": "correlations.csv",
        "merges": "merges.csv",
        "runs": "runs.csv",
        "figure": "sweep.png",
        "html": "report.html",
    }
    assert {k: p.name for k, p in report.items()} == expected
    for path in report.values():
        assert path.is_file()
        assert path.stat().st_size > 0
        assert path.parent == report["html"].parent


@pytest.mark.slow
def test_csv_files_agree_with_the_result(sweep: SweepResult, report: Any) -> None:
    summary = sweep.summary
    chunks = pd.read_csv(report["chunks"])
    assert len(chunks) == len(sweep.chunks) == int(summary.chunks.sum())
    assert int(chunks.bytesread.sum()) == int(summary.bytesread_total.sum())
    assert int(chunks.task_nbytes.sum()) == int(summary.task_nbytes_total.sum())
    assert list(chunks.columns) == list(sweep.chunks.columns)
    assert list(chunks["columns"]) == [";".join(c) for c in sweep.chunks["columns"]]
    by_level = chunks.groupby(["dataset", "branches"], sort=False).bytesread.sum()
    for row in summary.itertuples():
        assert by_level[(row.dataset, row.branches)] == row.bytesread_total

    saved = pd.read_csv(report["summary"])
    assert len(saved) == len(summary) == 2 * len(BRANCH_COUNTS)
    assert list(saved.columns) == list(summary.columns)
    assert list(saved.bytesread_total) == list(summary.bytesread_total)
    assert list(saved.task_nbytes_total) == list(summary.task_nbytes_total)

    ratios = pd.read_csv(report["ratios"])
    pd.testing.assert_frame_equal(
        ratios, sweep.ratios.reset_index(drop=True), check_dtype=False
    )
    correlations = pd.read_csv(report["correlations"])
    # per dataset only: a correlation pooled over unrelated files means nothing
    assert list(correlations.dataset) == ["ttbar", "generated"]
    merges = pd.read_csv(report["merges"])
    assert len(merges) == len(sweep.merges) > 0
    runs = pd.read_csv(report["runs"])
    assert len(runs) == len(sweep.runs) == 2 * len(BRANCH_COUNTS)


@pytest.mark.slow
def test_png_file_is_the_figure(sweep: SweepResult, report: Any) -> None:
    png = report["figure"].read_bytes()
    assert png.startswith(PNG_MAGIC)
    image = mpimg.imread(report["figure"])
    width, height = sweep_figure(sweep).get_size_inches() * FIGURE_DPI
    assert image.shape[:2] == (int(height), int(width))
    # a real drawing: many colours, not a blank canvas
    assert _distinct_colours(image) > 500


@pytest.mark.slow
def test_html_report(sweep: SweepResult, report: Any) -> None:
    page = report["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    parsed = _parse(page)
    assert parsed.title == "coffea-sizing branch sweep: bytes read vs task output"
    assert parsed.scripts == 0
    assert parsed.links == []  # self-contained
    assert "http://" not in page
    assert "https://" not in page
    # the findings, one paragraph each, escaped, with their severity
    findings = sweep.findings
    assert len(findings) >= 3
    text = html.unescape(page)
    for finding in findings:
        assert f'data-code="{finding.code}"><span class="severity">' in page
        assert finding.message in text
    # the figure: the same PNG as sweep.png, of the figure's size
    assert len(parsed.images) == 1
    img = parsed.images[0]
    assert str(img["src"]).startswith("data:image/png;base64,")
    assert img["alt"]
    assert "ttbar" in str(img["alt"])
    png = _embedded_png(page)
    assert png == report["figure"].read_bytes()
    decoded = mpimg.imread(io.BytesIO(png), format="png")
    assert decoded.shape[:2] == (900, 1400)
    assert (img["width"], img["height"]) == ("1400", "900")
    # the tables: summary (short, then all columns behind a click), ratios,
    # correlations, chunks (short, then all columns)
    summary_short, summary, ratios, correlations, chunks_short, chunks = parsed.tables
    assert page.count("<details>") == 2
    assert len(summary) == len(summary_short) == 1 + len(sweep.summary)
    headers = [column_format(c, sweep.summary[c]).label for c in sweep.summary.columns]
    assert summary[0] == headers
    assert summary_short[0] == [
        column_format(c, sweep.summary[c]).label for c in SUMMARY_COLUMNS
    ]
    assert len(summary_short[0]) <= 12  # fits 1400 px
    # headers in words that wrap, not clipped field names
    for table in parsed.tables:
        assert not any("_" in h for h in table[0]), table[0]
    assert "bytes read per chunk (kB)" in summary_short[0]
    # units in the headers, numbers formatted in that unit
    first = dict(zip(summary[0], summary[1], strict=True))
    assert first["dataset"] == "ttbar"
    assert first["bytes read, total (MB)"] == (
        f"{sweep.summary.bytesread_total[0] / 1e6:,.2f}"
    )
    assert first["open share (%)"] == "100.0%"
    assert any(h.endswith("(kB)") for h in summary[0])
    # no scientific notation anywhere: bytes and seconds in units
    cells = [c for table in parsed.tables for row in table[1:] for c in row]
    assert not [c for c in cells if SCIENTIFIC.search(c)]
    assert len(ratios) == 1 + len(sweep.ratios)
    assert "n/a" in {row[3] for row in ratios[1:]}  # ttbar's payload ratio
    assert len(correlations) == 1 + 2
    assert len(chunks) == len(chunks_short) == 1 + len(sweep.chunks)
    assert "wall time (ms)" in chunks_short[0] or "wall time (s)" in chunks_short[0]
    assert f"All {len(sweep.chunks)} chunks" in page
    # numbers are right-aligned, text left-aligned
    assert 'class="data row0 col0 text"' in page
    assert re.search(r'class="data row0 col\d+ num"', page)
    # glossary, date, versions
    assert "What each column means" in page
    assert "<dt>task nbytes, total <code>task_nbytes_total</code></dt>" in page
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)
    import coffea
    import dask

    assert f"coffea {coffea.__version__}" in page
    assert f"dask {dask.__version__}" in page


@pytest.mark.slow
def test_html_truncates_the_chunk_table(sweep: SweepResult, report: Any) -> None:
    png = report["figure"].read_bytes()
    page = render_html(sweep, png=png, max_chunk_rows=7)
    tables = _parse(page).tables
    assert len(tables[-1]) == len(tables[-2]) == 1 + 7
    n = len(sweep.chunks)
    assert f"The first 7 of {n} chunks are shown" in page
    assert MAX_HTML_CHUNK_ROWS == 500
    with pytest.raises(ValueError, match="max_chunk_rows"):
        render_html(sweep, png=png, max_chunk_rows=-1)


@pytest.mark.slow
def test_html_escapes_text(sweep: SweepResult, report: Any) -> None:
    """Dataset names reach the page as text, never as markup."""
    hostile = "<b>x</b>&"
    renamed = SweepResult(
        chunks=sweep.chunks.replace({"dataset": {"ttbar": hostile}}),
        merges=sweep.merges,
        runs=sweep.runs.replace({"dataset": {"ttbar": hostile}}),
        treename=sweep.treename,
    )
    page = render_html(renamed, png=report["figure"].read_bytes())
    assert hostile not in page
    assert "&lt;b&gt;x&lt;/b&gt;&amp;" in page
    parsed = _parse(page)
    assert hostile in {row[0] for row in parsed.tables[0][1:]}


@pytest.mark.slow
def test_docstring_examples(sweep: SweepResult) -> None:
    for module, least in ((plot_module, 20), (report_module, 6)):
        result = doctest.testmod(
            module,
            extraglobs={"result": sweep},
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        )
        assert result.attempted >= least
        assert result.failed == 0


@pytest.mark.slow
def test_panels_draw_on_a_given_axis(sweep: SweepResult) -> None:
    """Each panel function draws on the axis it is given, in any figure."""
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, len(PANELS))
    for ax, panel, title in zip(axes, PANELS, PANEL_TITLES, strict=True):
        panel(sweep, ax)
        assert ax.get_title(loc="left").startswith(title)
        assert ax.get_xlabel() == "branches read" or "per chunk" in ax.get_xlabel()
    assert len(_axes_with_data(fig)) == len(PANELS)


@pytest.mark.slow
def test_sweep_result_methods(sweep: SweepResult, tmp_path: Path) -> None:
    fig = sweep.plot()
    assert len(fig.axes) == 6
    paths = sweep.save(tmp_path / "via-save")
    assert paths["html"].read_text(encoding="utf-8").count("<table ") == 6


# ============================================================== a real browser
@pytest.mark.slow
@needs_chromium
def test_report_renders_in_chromium(report: Any, tmp_path: Path) -> None:
    url = report["html"].resolve().as_uri()
    # the DOM as the browser built it
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _parse(dom.stdout)
    assert parsed.title == "coffea-sizing branch sweep: bytes read vs task output"
    assert len(parsed.images) == 1
    assert parsed.images[0]["id"] == "sweep-figure"
    assert str(parsed.images[0]["src"]).startswith("data:image/png;base64,")
    assert len(parsed.tables) == 6

    # what the browser painted
    shot = tmp_path / "shot.png"
    run = chromium(
        f"--screenshot={shot}",
        "--window-size=1400,2000",
        url,
        profile=tmp_path / "profile-shot",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.is_file()
    image = mpimg.imread(shot)
    assert image.shape[:2] == (2000, 1400)
    rgb = (image[..., :3] * 255).round().astype(int)
    # the page is not blank ...
    non_white = (rgb < 245).any(axis=-1).mean()
    assert non_white > 0.05
    assert _distinct_colours(image) > 500
    # ... and the figure was decoded and painted: its dataset colours are on screen
    for colour in (TAB_BLUE, TAB_ORANGE):
        close = (np.abs(rgb - colour).max(axis=-1) <= 12).sum()
        assert close > 2_000, f"colour {colour} painted on only {close} pixels"
    # in the region where the figure sits, below the findings
    rows = np.nonzero((np.abs(rgb - TAB_ORANGE).max(axis=-1) <= 12).any(axis=1))[0]
    assert rows.min() > 300
    assert rows.max() - rows.min() > 500


@pytest.mark.slow
@needs_chromium
def test_report_fits_a_1400_px_window(report: Any, tmp_path: Path) -> None:
    """No sideways scrolling at 1,400 px: short tables, the rest behind a click."""
    shown = layout_in_chromium(report["html"], tmp_path)
    assert shown["innerWidth"] == 1400
    assert shown["scrollWidth"] <= 1400, shown
    assert len(shown["tables"]) == 4  # summary, ratios, correlations, chunks
    assert max(shown["tables"]) <= shown["clientWidth"], shown
    # opened, the full tables scroll in their own box, not the page
    opened = layout_in_chromium(report["html"], tmp_path, open_details=True)
    assert len(opened["tables"]) == 6
    assert opened["scrollWidth"] <= 1400, opened
