"""Where the benchmark scripts write what they measured: one JSON and its text."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def write_results(out: str | Path, lines: list[str], **payload: Any) -> None:
    """Write ``payload`` as JSON to ``out`` (with a ``meta`` block: date, commit,
    machine, Python, and ``payload.pop("meta", {})``) and ``lines`` to ``out`` with
    the suffix ``.txt``."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        **payload.pop("meta", {}),
    }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, **payload}, indent=1))
    path.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {path} and {path.with_suffix('.txt')}")
