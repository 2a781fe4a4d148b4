"""Tables a person can read: units in the headers, right-aligned numbers.

Covers how every column of the chunk records, the sweep's summary, ratios and
correlations is shown: :func:`column_format` maps a field name to its header (with
the unit, chosen once per column: B, kB, MB, GB; us, ms, s) and a formatter of its
values; :func:`to_text` renders a table for the terminal, :func:`styled` as a pandas
:class:`~pandas.io.formats.style.Styler` for the HTML report and the docs. The short
default column sets (:data:`SUMMARY_COLUMNS`, :data:`CHUNK_COLUMNS`) and the meaning
of each field (:data:`MEANINGS`) live here too. Does not compute the tables
(:mod:`coffea_sizing.records`, :mod:`coffea_sizing.sweepdata`) and draws nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .findings import format_bytes
from .records import FIELD_DOCS

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

__all__ = [
    "CHUNK_COLUMNS",
    "MEANINGS",
    "SUMMARY_COLUMNS",
    "ColumnFormat",
    "byte_unit",
    "column_format",
    "label",
    "styled",
    "to_text",
]

#: The summary columns shown first (the rest are one click away in the report).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "dataset",
    "branches",
    "chunks",
    "events",
    "bytesread_per_chunk",
    "open_share",
    "amplification",
    "task_nbytes_mean",
    "output_pickled_mean",
    "mem_peak_max",
    "events_per_s",
)
#: The chunk columns shown first.
CHUNK_COLUMNS: tuple[str, ...] = (
    "dataset",
    "branches",
    "filename",
    "entrystart",
    "entrystop",
    "bytesread",
    "task_nbytes",
    "output_pickled_bytes",
    "mem_peak_bytes",
    "walltime",
)

_BYTE_UNITS = (("GB", 1e9), ("MB", 1e6), ("kB", 1e3))
_TIME_FIELDS = frozenset(
    {
        "processtime",
        "walltime",
        "cputime",
        "loadtime",
        "opentime",
        "buildtime",
        "outputtime",
        "readtime",
        "sizing_overhead",
        "process_walltime",
        "process_cputime",
        "run_walltime",
        "chunk_walltime_total",
        "collect_seconds",
    }
)
_TIMESTAMP_FIELDS = frozenset({"compute_start", "compute_stop"})
_TEXT_FIELDS = frozenset(
    {
        "dataset",
        "filename",
        "treename",
        "key",
        "worker",
        "code",
        "severity",
        "bytes_from",
        "decided_by",
        "quantity",
        "method",
        "note",
        "protocol",
    }
)
_FLAG_FIELDS = frozenset(
    {"skipped", "mem_shared", "process_mem_shared", "bytes_exact", "exact_bytes"}
)
_CORRELATION_FIELDS = frozenset(
    {
        "bytesread_vs_task_nbytes",
        "bytesread_vs_pickled",
        "levels_bytesread_vs_task_nbytes",
    }
)


_BYTE_PREFIXES = (
    "bytesread",
    "task_nbytes",
    "predicted_",
    "output_pickled",
    "output_compressed",
)


def byte_unit(values: Iterable[Any]) -> tuple[float, str]:
    """The decimal unit ``(divisor, name)`` that suits the largest finite value.

    Examples
    --------
    >>> from coffea_sizing.tables import byte_unit
    >>> byte_unit([336624, 1_200_000]), byte_unit([527]), byte_unit([])
    ((1000000.0, 'MB'), (1.0, 'B'), (1.0, 'B'))
    """
    top = max(_finite(values), default=0.0)
    return next(((s, u) for u, s in _BYTE_UNITS if top >= s), (1.0, "B"))


def _is_bytes(name: str) -> bool:
    return (
        name.endswith(("_bytes", "_bytes_total"))
        or name.startswith(_BYTE_PREFIXES)
        or "bytesread" in name
        or name in {"nbytes", "mem_peak_max", "mem_peak_high", "worker_memory_limit"}
    ) and not name.startswith("prediction_")


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(abs(f))
    return out


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _decimals(top: float) -> int:
    """Decimals that give the column's largest value 3 significant digits."""
    if top >= 100 or top == 0:
        return 0
    return 1 if top >= 10 else 2


@dataclass(frozen=True)
class ColumnFormat:
    """How one column is shown: its header (with unit), alignment and formatter.

    ``header`` names the field as the CSV files do (``bytesread_per_chunk (kB)``,
    for the terminal); ``label`` in words that wrap (``bytes read per chunk (kB)``,
    for the HTML tables).
    """

    header: str
    numeric: bool
    format: Callable[[Any], str]
    label: str = ""


#: Field names in words, for the HTML tables' headers (others: ``_`` as spaces).
_LABELS: dict[str, str] = {
    "filename": "file",
    "entrystart": "first entry",
    "entrystop": "entry stop",
    "bytesread": "bytes read",
    "bytesread_per_chunk": "bytes read per chunk",
    "bytesread_total": "bytes read, total",
    "bytesread_open_total": "opening bytes, total",
    "bytesread_payload_total": "basket bytes, total",
    "predicted_bytesread_total": "predicted bytes read, total",
    "prediction_exact_chunks": "chunks predicted to the byte",
    "open_split_measured": "open split measured",
    "task_nbytes": "task nbytes",
    "task_nbytes_total": "task nbytes, total",
    "task_nbytes_mean": "task nbytes, mean",
    "output_pickled_bytes": "pickled output",
    "output_compressed_bytes": "compressed output",
    "output_pickled_total": "pickled output, total",
    "output_pickled_mean": "pickled output, mean",
    "output_compressed_total": "compressed output, total",
    "output_compressed_mean": "compressed output, mean",
    "mem_peak_bytes": "peak memory",
    "mem_peak_max": "peak memory, largest",
    "mem_usage_bytes": "memory rise",
    "walltime": "wall time",
    "cputime": "CPU time",
    "processtime": "process time",
    "chunk_walltime_total": "chunk wall time, total",
    "run_walltime": "run wall time",
    "chunksize": "chunk size",
    "entries_per_chunk": "entries per chunk",
    "bytes_exact": "bytes to the byte",
    "mem_peak_high": "peak memory, high",
    "walltime_high": "wall time, high",
    "total_walltime": "wall time, all chunks",
    "decided_by": "decided by",
    # the plan (Plan.to_frame, Plan.compare_tables)
    "bytes_from": "bytes from",
    "worker_s": "worker time",
    "worker_s_low": "worker time, low",
    "worker_s_high": "worker time, high",
    "wall_s": "wall time on the workers",
    "chunk_s_high": "chunk time, high",
    "peak_bytes": "chunk peak",
    "peak_high_bytes": "chunk peak, high",
    "baseline_bytes": "idle worker",
    "increment_bytes": "chunk's rise",
    "output_bytes": "reduced output",
    "bytesread_vs_task_nbytes": "bytes read vs task nbytes",
    "bytesread_vs_pickled": "bytes read vs pickled output",
    "levels_bytesread_vs_task_nbytes": "per level: bytes read vs task nbytes",
}


def label(name: str) -> str:
    """``name`` in words for a table header.

    Examples
    --------
    >>> from coffea_sizing.tables import label
    >>> label("bytesread_per_chunk"), label("measured_walltime")
    ('bytes read per chunk', 'measured wall time')
    """
    if name.startswith("measured_"):
        return "measured " + label(name.removeprefix("measured_"))
    return _LABELS.get(name) or name.replace("_", " ")


def column_format(
    name: str, values: Iterable[Any] = (), *, ratio: bool = False
) -> ColumnFormat:
    """The header (with its unit) and the formatter of column ``name``.

    Bytes get one decimal unit for the whole column (B, kB, MB or GB, chosen by its
    largest value), seconds ms or s, shares a percent, amplification and ratios a
    factor, counts thousands separators; missing values show as ``n/a``.

    Parameters
    ----------
    name : str
        A field of the chunk records, the summary, the ratios or the correlations.
    values : iterable, optional
        The column's values, to choose the unit.
    ratio : bool
        The column holds ratios to the first branch count (the ratios table).

    Returns
    -------
    ColumnFormat

    Examples
    --------
    >>> from coffea_sizing.tables import column_format
    >>> f = column_format("mem_peak_bytes", [211_124_224, 98_000_000])
    >>> f.header, f.format(211_124_224), f.numeric, f.label
    ('mem_peak_bytes (MB)', '211', True, 'peak memory (MB)')
    >>> f = column_format("walltime", [0.0653, 0.012])
    >>> f.header, f.format(0.0653), f.format(0.012)
    ('walltime (ms)', '65.3', '12.0')
    >>> column_format("open_share").format(0.9981), column_format("events").format(20000)
    ('99.8%', '20,000')
    >>> column_format("bytesread", [336624]).format(None)
    'n/a'
    """
    fmt = _column_format(name, values, ratio=ratio)
    words = (
        fmt.header.replace(name, label(name), 1) if name in fmt.header else fmt.header
    )
    return ColumnFormat(fmt.header, fmt.numeric, fmt.format, words)


def _column_format(name: str, values: Iterable[Any], *, ratio: bool) -> ColumnFormat:
    values = list(values)
    top = max(_finite(values), default=0.0)

    def wrap(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        def fmt(v: Any) -> str:
            if isinstance(v, list | tuple) or (
                hasattr(v, "shape") and getattr(v, "ndim", 0) > 0
            ):
                return "; ".join(map(str, v))
            if isinstance(v, dict):
                return "; ".join(f"{k}: {format_bytes(b)}" for k, b in v.items())
            return "n/a" if _missing(v) else fn(v)

        return fmt

    if ratio and name not in {"dataset", "branches"}:
        return ColumnFormat(f"{name} (ratio)", True, wrap(lambda v: f"x{float(v):.2f}"))
    if name in _TEXT_FIELDS:
        if name == "filename":
            return ColumnFormat(
                name, False, wrap(lambda v: Path(str(v)).name or str(v))
            )
        return ColumnFormat(name, False, wrap(str))
    if name in _FLAG_FIELDS or name == "open_split_measured":
        return ColumnFormat(name, False, wrap(lambda v: "yes" if v else "no"))
    if name in {"columns", "columns_read", "column_bytes"}:
        return ColumnFormat(name, False, wrap(str))
    if name == "open_share":
        return ColumnFormat(f"{name} (%)", True, wrap(lambda v: f"{float(v):.1%}"))
    if name == "amplification":
        return ColumnFormat(name, True, wrap(lambda v: f"x{float(v):.2f}"))
    if name in _CORRELATION_FIELDS:
        return ColumnFormat(f"{name} (r)", True, wrap(lambda v: f"{float(v):.2f}"))
    if name == "events_per_s":
        return ColumnFormat("events/s", True, wrap(lambda v: f"{float(v):,.0f}"))
    if name in _TIMESTAMP_FIELDS:
        return ColumnFormat(f"{name} (UTC)", True, wrap(lambda v: _timestamp(float(v))))
    if name in _TIME_FIELDS or name.endswith(("_s", "_seconds")) or "walltime" in name:
        size, unit = (1.0, "s") if top >= 1 else (1e-3, "ms")
        d = _decimals(top / size)
        return ColumnFormat(
            f"{name} ({unit})", True, wrap(lambda v: f"{float(v) / size:,.{d}f}")
        )
    if _is_bytes(name):
        size, unit = byte_unit([top])
        d = 0 if unit == "B" else _decimals(top / size)
        return ColumnFormat(
            f"{name} ({unit})", True, wrap(lambda v: f"{float(v) / size:,.{d}f}")
        )
    return ColumnFormat(name, True, wrap(_number))


def _number(v: Any) -> str:
    f = float(v)
    if f.is_integer() and abs(f) < 1e15:
        return f"{int(f):,}"
    return f"{f:,.4g}" if abs(f) < 1000 else f"{f:,.0f}"


def _timestamp(v: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(v, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _formats(
    frame: pd.DataFrame, columns: Sequence[str] | None, ratio: bool
) -> tuple[list[str], dict[str, ColumnFormat]]:
    shown = [c for c in (columns or frame.columns) if c in frame.columns]
    return shown, {
        c: column_format(str(c), frame[c].tolist(), ratio=ratio) for c in shown
    }


def to_text(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    ratio: bool = False,
) -> str:
    """``frame`` as a plain-text table: units in the headers, numbers right-aligned.

    Parameters
    ----------
    frame : pandas.DataFrame
        A chunk table, the summary, the ratios or the correlations.
    columns : sequence of str, optional
        The columns to show, in order (default: all; names absent are skipped).
    ratio : bool
        ``frame`` is the ratios table.

    Returns
    -------
    str

    Examples
    --------
    >>> import pandas as pd
    >>> from coffea_sizing.tables import to_text
    >>> df = pd.DataFrame({"dataset": ["ttbar", "dy"], "bytesread": [336624, 1.2e6],
    ...                    "walltime": [0.065, 0.31]})
    >>> print(to_text(df))
    dataset  bytesread (MB)  walltime (ms)
    ttbar              0.34             65
    dy                 1.20            310
    """
    shown, formats = _formats(frame, columns, ratio)
    cells = [[formats[c].format(v) for v in frame[c].tolist()] for c in shown]
    headers = [formats[c].header for c in shown]
    widths = [
        max([len(h), *map(len, col)]) for h, col in zip(headers, cells, strict=True)
    ]
    lines = []
    for row in [headers, *zip(*cells, strict=True)] if cells else [headers]:
        parts = []
        for c, w, text in zip(shown, widths, row, strict=True):
            parts.append(text.rjust(w) if formats[c].numeric else text.ljust(w))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def styled(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    ratio: bool = False,
    caption: str | None = None,
) -> Styler:
    """``frame`` as a :class:`~pandas.io.formats.style.Styler`, formatted like :func:`to_text`.

    No index column; headers in words (:func:`label`) with units; numeric cells get the class ``num`` (the
    report's and the docs' CSS right-align them), text cells ``text``. Render with
    ``.to_html()``, or show it in a notebook.

    Parameters
    ----------
    frame : pandas.DataFrame
        A chunk table, the summary, the ratios or the correlations.
    columns : sequence of str, optional
        The columns to show, in order (default: all).
    ratio : bool
        ``frame`` is the ratios table.
    caption : str, optional
        The table's caption.

    Returns
    -------
    pandas.io.formats.style.Styler

    Examples
    --------
    >>> import pandas as pd
    >>> from coffea_sizing.tables import styled
    >>> html = styled(pd.DataFrame({"bytesread": [336624]})).to_html()
    >>> "bytes read (kB)" in html, ">337<" in html, 'class="data row0 col0 num"' in html
    (True, True, True)
    """
    import pandas as pd

    shown, formats = _formats(frame, columns, ratio)
    data = frame[shown].reset_index(drop=True)
    classes = pd.DataFrame(
        {c: ["num" if formats[c].numeric else "text"] * len(data) for c in shown},
        index=data.index,
    )
    styler = (
        data.style.format({c: formats[c].format for c in shown}, escape="html")
        .hide(axis="index")
        .relabel_index([formats[c].label for c in shown], axis="columns")
        .set_td_classes(classes)
        .set_table_attributes('class="sizing"')
        .set_table_styles(
            [  # a text column's header sits over its text, on the left
                {"selector": f"th.col{i}", "props": "text-align: left;"}
                for i, c in enumerate(shown)
                if not formats[c].numeric
            ]
        )
    )
    if caption:
        styler = styler.set_caption(caption)
    return styler


#: What each column means (the report's glossary and the terminal's legend): the
#: columns of the summary tables here, the record fields from
#: :data:`coffea_sizing.records.FIELD_DOCS` (written once, next to the field lists).
MEANINGS: dict[str, str] = {
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
    "open_share": "Share of the bytes read that is the fixed cost of opening the "
    "file and reading the TTree metadata (bytesread_open_total / bytesread_total). "
    "Near 100%: larger chunks (or fewer files) would read far less.",
    "open_split_measured": "True if the open/payload split was measured by the "
    "decorator, False if it was predicted from the file's metadata.",
    "predicted_bytesread_total": "Bytes read predicted from the file's basket "
    "metadata alone, summed over chunks.",
    "prediction_exact_chunks": "Chunks whose predicted bytes read equal the "
    "measured value to the byte.",
    "amplification": "How many times each needed basket was read, on average: basket "
    "bytes read over distinct basket bytes needed. Above x1.00 when chunk edges cut "
    "baskets, so neighbouring chunks read the same basket.",
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
    "chunk_walltime_total": "Sum of the chunk tasks' wall time.",
    "run_walltime": "Wall time of the whole Runner call (ratios: relative to the "
    "first branch count).",
    "events_per_s": "events / run_walltime.",
    "mem_peak_max": "Largest peak resident memory of a worker process during a chunk.",
    "bytesread_vs_task_nbytes": "Pearson correlation over the dataset's chunks of "
    "bytesread and task_nbytes; n/a when either is constant or there are fewer "
    "than 3 chunks. Not computed across datasets (unrelated files).",
    "bytesread_vs_pickled": "Pearson correlation over chunks of bytesread and the "
    "pickled output size.",
    "levels_bytesread_vs_task_nbytes": "Pearson correlation over branch counts of "
    "the per-level totals.",
    "predicted_bytesread": "Chunk's bytes read predicted from basket metadata.",
    "predicted_open_bytes": "Chunk's predicted cost of opening.",
    "predicted_payload_bytes": "Chunk's predicted basket bytes.",
}
for _name, _text in FIELD_DOCS.items():
    if _name not in MEANINGS:  # a record field: its one meaning, as a sentence
        _plain = _text.replace("`", "")
        MEANINGS[_name] = _plain[:1].upper() + _plain[1:] + "."
