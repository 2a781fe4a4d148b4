"""Findings and the units they are written in.

Covers the :class:`Finding` type that the sweep (:mod:`coffea_sizing.sweepdata`) and
the advice both return, and the one formatter of bytes, seconds and counts that
every message, table and figure uses. Does not decide what to find (that is the
caller's) or draw anything (:mod:`coffea_sizing.plot`). Imports nothing else from
the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Finding", "format_bytes", "format_seconds", "plural"]

Severity = Literal["info", "warning", "critical"]
_SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One thing the records show, in plain words with the numbers.

    Parameters
    ----------
    code : str
        A stable, short identifier (``"fixed-cost"``, ``"amplification"``, ...) that
        scripts and tests can match on.
    severity : {"info", "warning", "critical"}
        ``"critical"``: the run is at risk (memory near the limit, retries);
        ``"warning"``: a change would save much; ``"info"``: worth knowing.
    message : str
        One or two sentences: what was seen (dataset, file, how much) and what to
        change.

    Examples
    --------
    >>> from coffea_sizing.findings import Finding
    >>> f = Finding("fixed-cost", "warning", "ttbar: 98% of bytes read is metadata.")
    >>> str(f)
    '[warning] fixed-cost: ttbar: 98% of bytes read is metadata.'
    >>> Finding("x", "loud", "m")
    Traceback (most recent call last):
    ...
    ValueError: Finding severity must be one of ('info', 'warning', 'critical'), got 'loud'
    """

    code: str
    severity: Severity
    message: str

    def __post_init__(self) -> None:
        if self.severity not in _SEVERITIES:
            raise ValueError(
                f"Finding severity must be one of {_SEVERITIES}, got {self.severity!r}"
            )

    def __str__(self) -> str:
        return f"[{self.severity}] {self.code}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        """``{"code", "severity", "message"}``, for JSON and tables."""
        return {"code": self.code, "severity": self.severity, "message": self.message}


def format_bytes(n: Any, *, digits: int = 3) -> str:
    """``n`` bytes in decimal units (B, kB, MB, GB, TB), ``"n/a"`` when unknown.

    Examples
    --------
    >>> from coffea_sizing.findings import format_bytes
    >>> format_bytes(336624), format_bytes(211124224), format_bytes(527)
    ('337 kB', '211 MB', '527 B')
    >>> format_bytes(None), format_bytes(float("nan")), format_bytes(1.5e12)
    ('n/a', 'n/a', '1.50 TB')
    """
    if n is None:
        return "n/a"
    try:
        v = float(n)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(v):
        return "n/a"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= size:
            return f"{_significant(v / size, digits)} {unit}"
    return f"{v:.0f} B"


def format_seconds(s: Any, *, digits: int = 3) -> str:
    """``s`` seconds as us, ms, s, min or h, ``"n/a"`` when unknown.

    Examples
    --------
    >>> from coffea_sizing.findings import format_seconds
    >>> format_seconds(0.000412), format_seconds(0.0653), format_seconds(2.5)
    ('412 us', '65.3 ms', '2.50 s')
    >>> format_seconds(754), format_seconds(7300), format_seconds(None)
    ('12.6 min', '2.03 h', 'n/a')
    """
    if s is None:
        return "n/a"
    try:
        v = float(s)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(v):
        return "n/a"
    a = abs(v)
    if a >= 3600:
        return f"{_significant(v / 3600, digits)} h"
    if a >= 600:
        return f"{_significant(v / 60, digits)} min"
    if a >= 1 or a == 0:
        return f"{_significant(v, digits)} s"
    if a >= 1e-3:
        return f"{_significant(v * 1e3, digits)} ms"
    return f"{_significant(v * 1e6, digits)} us"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 chunk"``, ``"2 chunks"``, ``"1,200 branches"``.

    Examples
    --------
    >>> from coffea_sizing.findings import plural
    >>> plural(1, "chunk"), plural(12000, "chunk"), plural(3, "branch")
    ('1 chunk', '12,000 chunks', '3 branches')
    """
    if n == 1:
        return f"1 {word}"
    if words is None:
        words = word + ("es" if word.endswith(("ch", "sh", "s", "x")) else "s")
    return f"{n:,} {words}"


def _significant(v: float, digits: int) -> str:
    """``v`` with ``digits`` significant digits, no exponent, trailing zeros kept."""
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"
