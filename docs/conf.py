"""Sphinx configuration of the coffea-sizing documentation.

Build: ``nox -s docs``, i.e. ``sphinx-build -W --keep-going -n -b html docs
docs/_build/html``: warnings are errors and every cross-reference must resolve.

Every number in these pages comes from this build: the examples run once
(``_ext/coffea_sizing_docs.py``), the pages with code cells and the notebook are
executed by myst-nb, and the branch sweep's result is shared between them.

Intersphinx offline
-------------------
Links to Python, coffea, dask, distributed, pandas, matplotlib and numpy need those
projects' ``objects.inv``. For each project the first of these is used:

1. ``docs/_inventories/<name>.inv``, a copy shipped with (or dropped into) the docs;
2. ``docs/_build/inventories/<name>.inv``, downloaded by an earlier build;
3. a download now, with a 5 s timeout, kept in (2) for the next builds. Set
   ``COFFEA_SIZING_DOCS_OFFLINE=1`` to skip it.

A project whose inventory cannot be had is left out of ``intersphinx_mapping`` (so
intersphinx never tries the network and never warns), and references to its names
are added to ``nitpick_ignore_regex``: they render as plain code, unlinked, and the
build stays warning-free. References to this package's own names are always
checked. The build log says which inventories were used and which were skipped.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
import threading
import time
import urllib.request
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # nothing in this process may open a window

import coffea_sizing

DOCS = Path(__file__).resolve().parent
# distributed's own log lines are not part of what the pages show: on a busy machine a
# cluster closing logs warnings and even errors (a worker slow to stop, a heartbeat
# racing the scheduler's shutdown) that would fail the build (nb_output_stderr below).
# The examples' processes, the kernels and their workers inherit this setting; Python
# warnings still reach stderr and still fail the build.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
sys.path.insert(0, str(DOCS / "_ext"))
# pages that read files of the repository (the benchmark results) find it here: they
# are executed in a temporary directory
os.environ["COFFEA_SIZING_DOCS_ROOT"] = str(DOCS.parent)

# -- project -----------------------------------------------------------------------
project = "coffea-sizing"
author = "coffea-sizing developers"
copyright = "coffea-sizing developers"
release = coffea_sizing.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_nb",
    "sphinx_copybutton",
    "coffea_sizing_docs",
]
exclude_patterns = [
    "_build",
    "_inventories",
    "_ext",
    "examples/_output",
    "README.md",
    "**.ipynb_checkpoints",
    "jupyter_execute",
]
nitpicky = True
#: References in the package's docstrings that cannot resolve (none at present).
nitpick_ignore: list[tuple[str, str]] = []

# -- HTML ----------------------------------------------------------------------------
html_theme = "furo"
html_title = f"coffea-sizing {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False

# -- autodoc + numpydoc ------------------------------------------------------------------
autodoc_typehints = "none"  # the numpy-style docstrings carry the types
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = False  # document our API, not the base classes' hooks
numpydoc_show_class_members = False  # autodoc's :members: lists them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False  # types such as "int or mapping, optional" are prose
numpydoc_attributes_as_param_list = True

# -- myst-nb: executed pages and notebooks --------------------------------------------
# "force": every executed page and notebook runs in every build (CI: a fresh clone).
# With COFFEA_SIZING_DOCS_EXAMPLES=reuse (the examples' outputs of the previous build,
# so the pages' inputs are unchanged) the default is "cache": jupyter-cache re-runs
# only the pages whose code changed. COFFEA_SIZING_DOCS_EXECUTE=off|cache|force wins.
_REUSE = os.environ.get("COFFEA_SIZING_DOCS_EXAMPLES", "run") == "reuse"
nb_execution_mode = os.environ.get(
    "COFFEA_SIZING_DOCS_EXECUTE", "cache" if _REUSE else "force"
)
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_in_temp = True
nb_merge_streams = True
nb_output_stderr = "warn"  # a warning printed by a cell fails the -W build
myst_enable_extensions = ["colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3

# -- intersphinx, offline-safe (see the module docstring) ------------------------------
INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "coffea": "https://coffea-hep.readthedocs.io/en/latest/",
    "dask": "https://docs.dask.org/en/stable/",
    "distributed": "https://distributed.dask.org/en/stable/",
    "pandas": "https://pandas.pydata.org/docs/",
    "matplotlib": "https://matplotlib.org/stable/",
    "numpy": "https://numpy.org/doc/stable/",
}
#: Top-level names each project documents (the prefixes ignored without it).
PROJECT_NAMES = {
    "coffea": ["coffea"],
    "dask": ["dask"],
    "distributed": ["distributed"],
    "pandas": ["pandas", "pd"],
    "matplotlib": ["matplotlib", "mpl"],
    "numpy": ["numpy", "np"],
}
#: Packages without an inventory here: their names are never linked.
UNLINKED = ["awkward", "ak", "uproot", "hist", "skhep_testdata", "cloudpickle", "lz4"]
SHIPPED = DOCS / "_inventories"
CACHE = DOCS / "_build" / "inventories"
OFFLINE = os.environ.get("COFFEA_SIZING_DOCS_OFFLINE", "") not in ("", "0")


def _inventory(name: str, url: str) -> Path | None:
    for path in (SHIPPED / f"{name}.inv", CACHE / f"{name}.inv"):
        if path.is_file() and path.stat().st_size > 0:
            return path
    if OFFLINE:
        return None
    try:
        with urllib.request.urlopen(url + "objects.inv", timeout=5) as response:
            data = response.read()
    except Exception:  # noqa: BLE001 - any failure means: no inventory
        return None
    if not data.startswith(b"# Sphinx inventory version"):
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.inv"
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)  # whole or not at all
    return path


def _find_inventories(deadline: float = 8.0) -> dict[str, Path | None]:
    """All inventories at once, in daemon threads: a network that neither answers nor
    refuses (a DNS lookup that hangs is not bound by urlopen's timeout) costs at most
    ``deadline`` seconds, and the build never waits for it again."""
    found: dict[str, Path | None] = dict.fromkeys(INVENTORIES)

    def fetch(name: str, url: str) -> None:
        found[name] = _inventory(name, url)

    threads = [
        threading.Thread(target=fetch, args=item, daemon=True)
        for item in INVENTORIES.items()
    ]
    for thread in threads:
        thread.start()
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return dict(found)


_found = _find_inventories()

intersphinx_mapping = {
    name: (url, str(_found[name])) for name, url in INVENTORIES.items() if _found[name]
}
missing = [name for name in INVENTORIES if not _found[name]]


def _names_regex(prefixes: list[str]) -> str:
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes))
    return rf"({alternatives})(\..+)?"


nitpick_ignore_regex: list[tuple[str, str]] = [
    (r"py:.*", _names_regex(UNLINKED)),
]
for _name in missing:
    if _name == "python":
        _stdlib = set(sys.stdlib_module_names) | {
            n for n in dir(builtins) if not n.startswith("_")
        }
        nitpick_ignore_regex.append((r"py:.*", _names_regex(sorted(_stdlib))))
    else:
        nitpick_ignore_regex.append((r"py:.*", _names_regex(PROJECT_NAMES[_name])))

print(
    "intersphinx: "
    + (
        f"linking {', '.join(intersphinx_mapping)}"
        if intersphinx_mapping
        else "no inventory"
    )
    + (f"; unavailable (names left unlinked): {', '.join(missing)}" if missing else "")
    + (" [COFFEA_SIZING_DOCS_OFFLINE]" if OFFLINE else "")
)
