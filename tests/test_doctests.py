"""Every Examples section in the package runs, in a scratch directory."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import coffea_sizing

MODULES = sorted(
    m.name
    for m in pkgutil.iter_modules(coffea_sizing.__path__, prefix="coffea_sizing.")
    # plot's and report's examples draw a sweep result; tests/test_plot.py runs
    # them with one
    if not m.name.endswith(("_version", ".plot", ".report"))
)


@pytest.mark.parametrize("name", MODULES)
def test_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(
        module,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
