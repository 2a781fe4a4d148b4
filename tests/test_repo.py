"""The repository keeps its promises: README commands and CI agree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", text, re.DOTALL)
    assert block, "README has no Quick start bash block"
    return [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_readme_has_two_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert "coffea-sizing" in commands[0]
    assert "nox" in commands[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _readme_commands()[1]
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci_lines[-1] == test_command


def test_readme_field_table_is_the_one_in_records() -> None:
    """The README's table of chunk fields is made from ``FIELD_DOCS`` (one place)."""
    from coffea_sizing.records import CHUNK_FIELDS, FIELD_DOCS, fields_markdown

    text = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- fields: [^\n]*-->\n(.*?)\n<!-- fields: end -->", text, re.DOTALL
    )
    assert block, "README has no generated field table"
    assert block.group(1) == fields_markdown(CHUNK_FIELDS), (
        "README's field table is stale: paste fields_markdown(CHUNK_FIELDS) in"
    )
    assert all(FIELD_DOCS.get(name) for name in CHUNK_FIELDS)
