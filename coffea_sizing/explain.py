"""The advice in words: the terminal text and the HTML page of an advice.

Covers :func:`advice_text` (what ``str(advice)`` prints), :func:`model_table`
(the fitted terms, one row per dataset and quantity) and :func:`advice_html` (the
page ``Advice.to_html`` returns, from ``templates/advice.html.j2`` and pandas'
Styler). Reads an advice through :class:`AdviceLike`, the attributes it words.
Does not fit (:mod:`coffea_sizing.model`), find (:mod:`coffea_sizing.rules`) or
draw (:func:`coffea_sizing.plot.advice_figure`); the sweep's and the plan's pages
are :mod:`coffea_sizing.report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .findings import Finding, format_bytes, format_seconds, plural
from .model import DatasetModel, measured_size, numeric

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PHASE_WORDS",
    "AdviceLike",
    "advice_html",
    "advice_text",
    "model_table",
    "phase_table",
]


class AdviceLike(Protocol):
    """What the wording reads of an :class:`~coffea_sizing.Advice`."""

    @property
    def findings(self) -> Sequence[Finding]: ...
    @property
    def model(self) -> Mapping[str, DatasetModel]: ...
    @property
    def recommendation(self) -> pd.DataFrame: ...
    @property
    def chunks(self) -> pd.DataFrame: ...
    @property
    def worker_memory(self) -> float | None: ...
    @property
    def workers(self) -> int: ...


def advice_text(advice: AdviceLike) -> str:
    """The advice as terminal text: findings, recommendation, model."""
    lines = [
        f"coffea-sizing advice: {plural(len(advice.chunks), 'chunk')}, "
        f"{plural(len(advice.model), 'dataset')}, {plural(advice.workers, 'worker')}"
        + (
            f" (memory limit {format_bytes(advice.worker_memory)})"
            if advice.worker_memory
            else " (no memory limit known)"
        ),
        "",
        "Findings:" if advice.findings else "Findings: none.",
    ]
    lines += [f"  {f}" for f in advice.findings]
    lines += ["", "Recommendation:"]
    for row in advice.recommendation.to_dict("records"):
        lines.append(
            f"  {row['dataset']}: chunksize {row['chunksize']:,} "
            f"(decided by {row['decided_by']})"
        )
        lines.append(
            f"    predicted: {plural(row['chunks'], 'chunk')}, "
            f"{format_bytes(row['bytesread'])} read"
            f"{'' if row['bytes_exact'] else ' (fitted)'}, peak "
            f"{format_bytes(row['mem_peak_bytes'])} (high "
            f"{format_bytes(row['mem_peak_high'])}), chunk "
            f"{format_seconds(row['walltime'])} (high "
            f"{format_seconds(row['walltime_high'])})"
        )
        lines.append(
            f"    measured at {row['measured_chunksize']:,}: "
            f"{plural(row['measured_chunks'], 'chunk')}, "
            f"{format_bytes(row['measured_bytesread'])} read, peak "
            f"{format_bytes(row['measured_mem_peak_bytes'])}, chunk "
            f"{format_seconds(row['measured_walltime'])} (median)"
        )
    lines += ["", "Model (per chunk of n events):"]
    recommended = advice.recommendation.set_index("dataset")
    for m in advice.model.values():
        if m.bytes_exact:
            # the figure's source: predict() from the basket metadata
            row = recommended.loc[m.dataset]
            opens = sorted({f.open_bytes for f in m.files if f.open_bytes is not None})
            lines.append(
                f"  {m.dataset} bytesread: to the byte from the basket metadata: "
                f"{' to '.join(format_bytes(o) for o in (opens[0], opens[-1])[: len(opens)])}"
                f" to open a file and its tree per chunk, plus the baskets it touches "
                f"({format_bytes(row['bytesread_per_chunk'])} per chunk at "
                f"{int(row['chunksize']):,})"
            )
        fits = (
            (m.memory, m.walltime)
            if m.bytes_exact
            else (m.bytesread, m.memory, m.walltime)
        )
        for fit in fits:
            if fit is None:
                continue
            fmt = format_seconds if fit.quantity == "walltime" else format_bytes
            lines.append(
                f"  {m.dataset} {fit.quantity}: {fmt(fit.fixed)} + "
                f"{fmt(fit.per_event * 1000)} per 1,000 events, high x"
                f"{fit.high_ratio:.2f} ({fit.method})"
                + (f" [{fit.caveat}]" if fit.caveat else "")
            )
            if fit.note:
                lines.append(f"    {fit.note}")
    phases = phase_table(advice)
    if not phases.empty:
        lines += [
            "",
            "Time per chunk, phase by phase (measured median; fitted; predicted):",
        ]
        for r in phases.to_dict("records"):
            lines.append(
                f"  {r['dataset']} {r['phase']}: {format_seconds(r['measured'])} at "
                f"{r['measured_entries']:,} events; {format_seconds(r['fixed'])} + "
                f"{format_seconds(r['per_1000_events'])} per 1,000 events; "
                f"{format_seconds(r['predicted'])} at {r['predicted_entries']:,}"
            )
    return "\n".join(lines)


#: The phases in words (``model.MODEL_PHASES``).
PHASE_WORDS = {
    "loadtime": "loading the processor",
    "opentime": "opening the file",
    "buildtime": "building the events",
    "processtime": "process()",
    "outputtime": "the output",
    "sizing_overhead": "measuring",
    "gap": "in no phase",
}


def phase_table(advice: AdviceLike) -> pd.DataFrame:
    """Where a chunk's time goes: per dataset and phase, the measured median
    (seconds, at the run's chunk size), the fitted terms and the prediction for
    the largest chunk at the recommended size. Empty without phases.

    Columns: ``dataset``, ``phase`` (in words), ``measured``,
    ``measured_entries``, ``fixed``, ``per_1000_events``, ``predicted``,
    ``predicted_entries``.
    """
    import pandas as pd

    rows = []
    recommended = advice.recommendation.set_index("dataset")
    for m in advice.model.values():
        if not m.phases:
            continue
        mine = advice.chunks[advice.chunks["dataset"] == m.dataset]
        walls = numeric(mine, "walltime")
        phases = {name: numeric(mine, name) for name in m.phases if name != "gap"}
        phases["gap"] = walls - sum(phases.values())
        size = int(recommended.loc[m.dataset, "entries_per_chunk"])
        for name, fit in m.phases.items():
            values = phases[name][np.isfinite(phases[name])]
            rows.append(
                {
                    "dataset": m.dataset,
                    "phase": PHASE_WORDS.get(name, name),
                    "measured": float(np.median(values)) if len(values) else np.nan,
                    "measured_entries": measured_size(mine),
                    "fixed": fit.fixed,
                    "per_1000_events": fit.per_event * 1000,
                    "predicted": fit.at(size)[0],
                    "predicted_entries": size,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "phase",
            "measured",
            "measured_entries",
            "fixed",
            "per_1000_events",
            "predicted",
            "predicted_entries",
        ],
    )


def _phase_display(phases: pd.DataFrame) -> pd.DataFrame:
    """The phase table in words and units."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "dataset": r["dataset"],
                "phase": r["phase"],
                "measured (median)": format_seconds(r["measured"]),
                "fixed per chunk": format_seconds(r["fixed"]),
                "per 1,000 events": format_seconds(r["per_1000_events"]),
                "predicted": format_seconds(r["predicted"]),
            }
            for r in phases.to_dict("records")
        ]
    )


def model_table(advice: AdviceLike) -> pd.DataFrame:
    """The fits of every dataset, one row per dataset and quantity."""
    import pandas as pd

    rows = []
    for m in advice.model.values():
        for fit in (m.bytesread, m.memory, m.walltime):
            if fit is not None:
                rows.append(
                    {
                        "dataset": m.dataset,
                        "exact_bytes": m.bytes_exact,
                        **{
                            k: getattr(fit, k)
                            for k in (
                                "quantity",
                                "fixed",
                                "per_event",
                                "high_ratio",
                                "method",
                                "chunks",
                                "note",
                            )
                        },
                    }
                )
    return pd.DataFrame(rows)


#: The recommendation's columns shown first: what the recommended size predicts, and
#: what the run measured (the rest is one click away).
_PREDICTED_SHORT = (
    "dataset",
    "chunksize",
    "chunks",
    "bytesread",
    "bytesread_per_chunk",
    "open_share",
    "mem_peak_high",
    "walltime_high",
    "total_walltime",
)
_MEASURED_SHORT = (
    "dataset",
    "measured_chunksize",
    "measured_chunks",
    "measured_bytesread",
    "measured_mem_peak_bytes",
    "measured_walltime",
    "measured_total_walltime",
)
_QUANTITY_WORDS = {
    "bytesread": "bytes read",
    "mem_peak_bytes": "peak memory",
    "walltime": "wall time",
}


def _model_display(model: pd.DataFrame) -> pd.DataFrame:
    """The model table in words and units, one unit per row (bytes or seconds)."""
    import pandas as pd

    rows = []
    for r in model.to_dict("records"):
        fmt = format_seconds if r["quantity"] == "walltime" else format_bytes
        rows.append(
            {
                "dataset": r["dataset"],
                "quantity": _QUANTITY_WORDS.get(r["quantity"], r["quantity"]),
                "fixed per chunk": fmt(r["fixed"]),
                "per 1,000 events": fmt(r["per_event"] * 1000),
                "high quantile": f"x{float(r['high_ratio']):.2f}",
                "chunks fitted": f"{int(r['chunks']):,}",
            }
        )
    return pd.DataFrame(rows)


def _plain_table(frame: pd.DataFrame) -> str:
    """Pre-formatted text cells as a report table (numbers right-aligned)."""
    import pandas as pd

    numeric = [c for c in frame.columns if c not in {"dataset", "quantity", "phase"}]
    classes = pd.DataFrame(
        {c: ["num" if c in numeric else "text"] * len(frame) for c in frame.columns},
        index=frame.index,
    )
    return (
        frame.style.format(escape="html")
        .hide(axis="index")
        .set_td_classes(classes)
        .set_table_attributes('class="sizing"')
        .set_table_styles(
            [
                {"selector": f"th.col{i}", "props": "text-align: left;"}
                for i, c in enumerate(frame.columns)
                if c not in numeric
            ]
        )
        .to_html()
    )


def advice_html(advice: AdviceLike, figure_png: bytes | None = None) -> str:
    """A self-contained HTML page of the advice (``templates/advice.html.j2``)."""
    import base64

    import jinja2

    from .tables import styled

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("coffea_sizing", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    rec = advice.recommendation
    model = model_table(advice)
    phases = phase_table(advice)
    summary = advice_text(advice).splitlines()[0]
    return env.get_template("advice.html.j2").render(
        title="coffea-sizing advice",
        meta=[summary.removeprefix("coffea-sizing advice: ")],
        findings=[f.to_dict() for f in advice.findings],
        predicted=styled(rec, _PREDICTED_SHORT).to_html(),
        measured=styled(rec, _MEASURED_SHORT).to_html(),
        full=styled(rec, [c for c in rec.columns if c != "decided_by"]).to_html(),
        ncolumns=len(rec.columns) - 1,
        decided=list(zip(rec["dataset"], rec["decided_by"], strict=True)),
        model=_plain_table(_model_display(model)),
        phases=_plain_table(_phase_display(phases)) if not phases.empty else None,
        phase_sizes=sorted(
            {
                (
                    str(r["dataset"]),
                    int(r["measured_entries"]),
                    int(r["predicted_entries"]),
                )
                for r in phases.to_dict("records")
            }
        ),
        methods=[
            (
                r["dataset"],
                _QUANTITY_WORDS.get(r["quantity"], r["quantity"]),
                r["method"],
                r["note"],
            )
            for r in model.to_dict("records")
        ],
        figure=base64.b64encode(figure_png).decode() if figure_png else None,
    )
