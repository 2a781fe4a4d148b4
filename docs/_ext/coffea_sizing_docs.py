"""Sphinx extension of the coffea-sizing documentation.

Three jobs, all at ``builder-inited`` (before Sphinx looks for source files) or when a
reference is resolved:

Examples
    Every ``examples/*.py`` runs once per build exactly as a user runs it, as
    ``python examples/NAME.py --out DIR`` in a fresh process (Dask spawns its workers
    from that ``__main__``), with ``MPLBACKEND=Agg``. Its standard output, the
    figures it wrote and the files it wrote become ``docs/examples/NAME.rst``, next to
    its source; a failing example fails the build. Every ``examples/*.ipynb`` is
    copied to ``docs/examples/`` and executed by myst-nb like the other executed
    pages. The branch sweep's result is pickled by ``examples/branch_sweep.py``; the
    pages that discuss it load it from ``$COFFEA_SIZING_DOCS_SWEEP`` (set here)
    instead of running the sweep a second time.

    ``COFFEA_SIZING_DOCS_EXAMPLES=reuse`` keeps the outputs of a previous build when
    they exist (for quick edits of the prose); the default, ``run``, runs them.

API reference
    One page per public module, ``docs/api/<module>.rst``, listing every name of the
    module's ``__all__``. Each object is documented (autodoc, numpy-style docstrings)
    once, in the module that defines it; a module that re-exports a name (the
    package's ``coffea_sizing.chunk_table`` is ``coffea_sizing.records.chunk_table``)
    lists it with a link, and references to the re-exported name resolve to the
    definition (``missing-reference`` below), so docstrings may use either spelling.

References to re-exported names
    See above.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGE = "coffea_sizing"
#: Modules in the order of the API reference; modules not listed follow, sorted.
MODULE_ORDER = (
    "coffea_sizing",
    "coffea_sizing.executor",
    "coffea_sizing.decorator",
    "coffea_sizing.records",
    "coffea_sizing.sweep",
    "coffea_sizing.sweepdata",
    "coffea_sizing.predict",
    "coffea_sizing.datasets",
    "coffea_sizing.plot",
    "coffea_sizing.plugin",
    "coffea_sizing.probe",
    "coffea_sizing.cli",
)
#: Seconds an example may take before the build gives up on it.
EXAMPLE_TIMEOUT = 600
#: ``__version__`` has no docstring of its own (it is a string).
VERSION_DOC = "The installed version of coffea-sizing (from the package metadata)."
#: Files an example writes that are offered for download on its page.
DOWNLOADABLE = (".csv", ".html", ".txt")

#: "<module>.<name>" of every re-export -> "<module>.<name>" where it is documented.
ALIASES: dict[str, str] = {}
#: Public name -> every "<module>.<name>" where an object of that name is documented.
DOCUMENTED: dict[str, set[str]] = {}


# =============================================================== examples
def _docstring_of(path: Path) -> tuple[str, str]:
    """(title, body) of a script's module docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or path.stem
    title, _, body = doc.partition("\n")
    return title.strip().rstrip("."), textwrap.dedent(body).strip()


def _rst_literal(text: str) -> str:
    return textwrap.indent(text.rstrip() or "(no output)", "   ")


def _run_example(script: Path, workdir: Path, reuse: bool) -> dict[str, Any]:
    meta_file = workdir / "run.json"
    if reuse and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        meta["reused"] = True
        return meta
    if workdir.exists():
        shutil.rmtree(workdir)
    files = workdir / "files"
    files.mkdir(parents=True)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(script), "--out", "files"]
    logger.info("running examples/%s ...", script.name)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise ExtensionError(
            f"examples/{script.name} did not finish in {EXAMPLE_TIMEOUT} s"
        ) from err
    elapsed = time.perf_counter() - t0
    (workdir / "stdout.txt").write_text(proc.stdout)
    (workdir / "stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        raise ExtensionError(
            f"examples/{script.name} failed with exit code {proc.returncode}:\n"
            + proc.stderr[-4000:]
        )
    if proc.stderr.strip():
        # shown in the build log only: warnings of the libraries, not the example's
        logger.info("examples/%s wrote to stderr:\n%s", script.name, proc.stderr)
    meta = {
        "command": f"python examples/{script.name} --out files",
        "seconds": round(elapsed, 1),
        "python": sys.version.split()[0],
        "reused": False,
    }
    meta_file.write_text(json.dumps(meta))
    logger.info("examples/%s ran in %.1f s", script.name, elapsed)
    return meta


def _example_page(script: Path, workdir: Path, meta: dict[str, Any], rel: str) -> str:
    """The rst page of one example (``rel``: path from the page to the repository)."""
    title, body = _docstring_of(script)
    name = script.stem
    out_rel = workdir.relative_to(workdir.parent.parent)  # _output/NAME
    stdout = (workdir / "stdout.txt").read_text()
    files = sorted(p for p in (workdir / "files").rglob("*") if p.is_file())
    lines = [
        f".. _example-{name}:",
        "",
        title,
        "=" * len(title),
        "",
        body,
        "",
        f":download:`Download {script.name} <{rel}/examples/{script.name}>`",
        "",
        "Output of this build",
        "--------------------",
        "",
        (
            f"``{meta['command']}`` ran in {meta['seconds']} s (Python "
            f"{meta['python']}) while this documentation was built; everything below "
            "is what it printed and wrote."
        ),
        "",
    ]
    for png in (p for p in files if p.suffix == ".png"):
        rel_png = png.relative_to(workdir.parent.parent)
        lines += [
            f".. figure:: {rel_png.as_posix()}",
            f"   :alt: {png.name}, written by examples/{script.name}",
            "   :width: 100%",
            "",
            f"   ``{png.name}``, written by the run.",
            "",
        ]
    lines += [".. code-block:: text", "", _rst_literal(stdout), ""]
    downloads = [p for p in files if p.suffix in DOWNLOADABLE]
    if downloads:
        links = ", ".join(
            f":download:`{p.name} <{out_rel.as_posix()}/{p.relative_to(workdir).as_posix()}>`"
            for p in downloads
        )
        lines += [f"Files written: {links}.", ""]
    lines += [
        "Source",
        "------",
        "",
        f".. literalinclude:: {rel}/examples/{script.name}",
        "   :language: python",
        "",
    ]
    return "\n".join(lines)


def run_examples(app: Sphinx) -> None:
    srcdir = Path(app.srcdir)
    root = srcdir.parent
    examples = root / "examples"
    target = srcdir / "examples"
    output = target / "_output"
    reuse = os.environ.get("COFFEA_SIZING_DOCS_EXAMPLES", "run") == "reuse"
    app.env.coffea_sizing_examples_ran = False  # type: ignore[attr-defined]
    for script in sorted(examples.glob("*.py")):
        workdir = output / script.stem
        meta = _run_example(script, workdir, reuse)
        if not meta["reused"]:
            app.env.coffea_sizing_examples_ran = True  # type: ignore[attr-defined]
        page = _example_page(script, workdir, meta, rel="../..")
        _write_if_changed(target / f"{script.stem}.rst", page)
    for notebook in sorted(examples.glob("*.ipynb")):
        _write_if_changed(target / notebook.name, notebook.read_text())
    sweep = output / "branch_sweep" / "files" / "sweep-result.pkl"
    if sweep.exists():
        os.environ["COFFEA_SIZING_DOCS_SWEEP"] = str(sweep)


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def outdated_with_examples(
    app: Sphinx,
    env: Any,
    added: set[str],
    changed: set[str],
    removed: set[str],  # noqa: ARG001 - the event's signature
) -> list[str]:
    """Executed pages read the examples' results: re-read them when those changed."""
    if not getattr(env, "coffea_sizing_examples_ran", False):
        return []
    srcdir = Path(app.srcdir)
    stale = []
    for docname in env.found_docs:
        for suffix in (".md", ".ipynb"):
            path = srcdir / f"{docname}{suffix}"
            if path.exists() and (
                suffix == ".ipynb" or "{code-cell}" in path.read_text()
            ):
                stale.append(docname)
    return [d for d in stale if d not in added and d not in changed]


# =========================================================== API reference
def _public_modules() -> list[str]:
    package = importlib.import_module(PACKAGE)
    found = [PACKAGE] + [
        m.name
        for m in pkgutil.iter_modules(package.__path__, prefix=PACKAGE + ".")
        if not m.name.rsplit(".", 1)[-1].startswith("_")
    ]
    ordered = [m for m in MODULE_ORDER if m in found]
    return ordered + sorted(set(found) - set(ordered))


def _assigned_names(module: Any) -> set[str]:
    """Names assigned at the top level of a module's source."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        targets: list[Any] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name):
                names.add(t.id)
    return names


def _defining_module(name: str, obj: Any, modules: dict[str, Any], here: str) -> str:
    """Where ``obj`` (exported as ``here.name``) is defined, among ``modules``."""
    if inspect.isclass(obj) or inspect.isroutine(obj):
        owner = getattr(obj, "__module__", here)
        return owner if owner in modules else here
    if name in _assigned_names(modules[here]):
        return here
    for modname, module in modules.items():
        if getattr(module, name, None) is obj and name in _assigned_names(module):
            return modname
    return here


def _summary(text: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not text:
        return ""
    para = inspect.cleandoc(text).split("\n\n", 1)[0]
    return " ".join(line.strip() for line in para.splitlines())


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, Warning):
            return "warning"
        if issubclass(obj, BaseException):
            return "exception"
        return "class"
    if inspect.isroutine(obj):
        return "function"
    return "data"


def _data_entry(name: str, obj: Any, comment: list[str]) -> list[str]:
    value = repr(obj)
    if len(value) > 600:
        value = value[:597] + "..."
    lines = [
        f".. py:data:: {name}",
        f"   :type: {type(obj).__name__}",
        f"   :value: {value}",
        "",
    ]
    body = comment or ["(no description)"]
    lines += ["   " + line if line else "" for line in body]
    return [*lines, ""]


def _module_page(modname: str, modules: dict[str, Any]) -> str:
    module = modules[modname]
    names = list(getattr(module, "__all__", []))
    attr_docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    rows = []
    local: list[tuple[str, Any]] = []
    reexports: list[str] = []
    for name in names:
        obj = getattr(module, name)
        owner = _defining_module(name, obj, modules, modname)
        documented_there = owner != modname and name in getattr(
            modules[owner], "__all__", ()
        )
        full = f"{owner}.{name}" if documented_there else f"{modname}.{name}"
        if documented_there:
            ALIASES[f"{modname}.{name}"] = full
            reexports.append(f":py:obj:`{name} <{full}>`")
        else:
            local.append((name, obj))
        DOCUMENTED.setdefault(name, set()).add(full)
        if name == "__version__":
            summary = VERSION_DOC
        elif _kind(obj) == "data":
            comment = ModuleAnalyzer.for_module(owner).find_attr_docs().get(("", name))
            summary = _summary("\n".join(comment or []))
        else:
            summary = _summary(inspect.getdoc(obj))
        where = f" (from :py:mod:`{owner}`)" if documented_there else ""
        rows.append((f":py:obj:`{name} <{full}>`", _kind(obj), summary + where))

    title = f"``{modname}``"
    lines = [
        f".. _api-{modname}:",
        "",
        title,
        "=" * len(title),
        "",
        f".. automodule:: {modname}",
        "",
        f".. currentmodule:: {modname}",
        "",
    ]
    if rows:
        lines += [
            ".. list-table:: Public names (``__all__``)",
            "   :header-rows: 1",
            "   :widths: 25 10 65",
            "   :class: api-summary",
            "",
            "   * - name",
            "     - kind",
            "     - summary",
        ]
        for cell_name, kind, summary in rows:
            lines += [f"   * - {cell_name}", f"     - {kind}", f"     - {summary}"]
        lines.append("")
    if reexports:
        lines += [
            "Re-exported here, documented where they are defined: "
            + ", ".join(reexports)
            + ".",
            "",
        ]
    order = {"class": 0, "exception": 1, "warning": 1, "function": 2, "data": 3}
    for name, obj in sorted(local, key=lambda item: order[_kind(item[1])]):
        kind = _kind(obj)
        if kind == "class":
            lines += [
                f".. autoclass:: {name}",
                "   :members:",
                "   :show-inheritance:",
                "",
            ]
        elif kind in ("exception", "warning"):
            lines += [f".. autoexception:: {name}", "   :show-inheritance:", ""]
        elif kind == "function":
            lines += [f".. autofunction:: {name}", ""]
        elif name == "__version__":
            lines += _data_entry(name, obj, [VERSION_DOC])
        else:
            lines += _data_entry(name, obj, attr_docs.get(("", name), []))
    return "\n".join(lines)


def write_api_pages(app: Sphinx) -> None:
    target = Path(app.srcdir) / "api"
    modules = {m: importlib.import_module(m) for m in _public_modules()}
    ALIASES.clear()
    DOCUMENTED.clear()
    pages = []
    for modname in modules:
        _write_if_changed(target / f"{modname}.rst", _module_page(modname, modules))
        pages.append(modname)
    for stale in target.glob(f"{PACKAGE}*.rst"):
        if stale.stem not in pages:
            stale.unlink()


def resolve_reexport(
    app: Sphinx, env: Any, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve a reference to a re-exported name to where the object is documented.

    Also resolves an unqualified name that is not in the current module (a docstring
    of ``plugin`` naming ``SizingDaskExecutor``) when exactly one public object of the
    package has that name, as Sphinx does for ``.name`` references.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if "." in target and not target.startswith(PACKAGE + "."):
        if app.config.intersphinx_mapping:
            return _public_path(app, env, node, contnode)
        return None
    candidates = [target]
    if node.get("py:module"):
        candidates.append(f"{node['py:module']}.{target}")
    domain = env.get_domain("py")
    for name in candidates:
        canonical = ALIASES.get(name)
        if canonical is None and "." not in name:
            unique = {ALIASES.get(full, full) for full in DOCUMENTED.get(name, ())}
            canonical = unique.pop() if len(unique) == 1 else None
        if canonical is None:
            continue
        for role in (node["reftype"], "obj"):
            found = domain.resolve_xref(
                env, node["refdoc"], app.builder, role, canonical, node, contnode
            )
            if found is not None:
                return found
    return None


def _public_path(
    app: Sphinx, env: Any, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Find ``pkg.module.Name`` in another project's inventory as ``pkg.Name``.

    autodoc names a base class by where it is defined
    (``coffea.processor.executor.DaskExecutor``); projects document such names where
    they are exported (``coffea.processor.DaskExecutor``). Tried only after intersphinx
    itself found nothing.
    """
    from sphinx.ext.intersphinx import missing_reference

    parts = node["reftarget"].split(".")
    for keep in range(len(parts) - 2, 0, -1):
        alias = node.deepcopy()
        alias["reftarget"] = ".".join([*parts[:keep], parts[-1]])
        found = missing_reference(app, env, alias, contnode)
        if found is not None:
            return found
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", write_api_pages)
    app.connect("builder-inited", run_examples)
    app.connect("env-get-outdated", outdated_with_examples)
    app.connect("missing-reference", resolve_reexport)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
