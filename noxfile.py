#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2024.3.2"]
# ///
"""Task runner: ``nox`` runs lint, the tests on the newest coffea, the executor tests
on the oldest supported coffea (2025.11.0), and the docs build."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|venv"  # uv when installed (fast), else venv

ROOT = Path(__file__).parent
TTBAR = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
OLDEST_COFFEA = "2025.11.0"


def _offline_testdata(session: nox.Session) -> None:
    """Put the shared ttbar file where scikit-hep-testdata looks for it offline."""
    cache = Path("~/.local/skhepdata").expanduser()
    shared = ROOT.parent / "shared" / "data" / TTBAR
    if not (cache / TTBAR).exists() and shared.exists():
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared, cache / TTBAR)
        session.log(f"copied {shared} to {cache}")


@nox.session(default=True)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    session.install("-e.", "ruff", "mypy", "pandas-stubs")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


#: pytest-xdist: two processes, each test module on one of them (so a module's
#: cluster and sweep fixtures are built once); the slowest tests are listed.
PARALLEL = ("-n", "2", "--dist", "loadfile", "--durations", "15")


@nox.session(default=True)
def tests(session: nox.Session) -> None:
    """The whole suite on the newest coffea (the slow tests included)."""
    _offline_testdata(session)
    session.install("-e.[test]")
    session.run("pytest", *PARALLEL, *session.posargs)


@nox.session(default=True)
def tests_oldest_coffea(session: nox.Session) -> None:
    """The executor tests on the oldest supported coffea."""
    _offline_testdata(session)
    session.install("-e.[test]", f"coffea=={OLDEST_COFFEA}")
    # the slow multi-process tests run once, in ``tests``
    session.run("pytest", *PARALLEL, "-m", "executor and not slow", *session.posargs)


@nox.session(default=True)
def docs(session: nox.Session) -> None:
    """The documentation, with every example and executed page run during the build.

    Warnings are errors and every reference must resolve; offline, the intersphinx
    inventories that cannot be had are skipped (see docs/conf.py). The site is in
    docs/_build/html.
    """
    _offline_testdata(session)
    session.install("-e.[docs]")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-n",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


if __name__ == "__main__":
    nox.main()
