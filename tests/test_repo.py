"""The repository keeps its promises: README commands and CI agree, imports go down."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

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


# ============================================================== the import graph
PACKAGE = "coffea_sizing"


#: Functions that run elsewhere, not in the module that defines them: their imports
#: are no arrows of the package. ``(module, function's qualified name)``, each with
#: its reason; a listed function that no longer imports anything fails the check.
SHIPPED = {
    # sent to the workers by value (cloudpickle) to ask *their* install its version
    (f"{PACKAGE}.executor", "_worker_check_function.coffea_sizing_check"),
}


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement of a module with the function it is in ("" at top)."""
    out: list[tuple[ast.Import | ast.ImportFrom, str]] = []

    def walk(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.append((child, ".".join(scope)))
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = (*scope, child.name)
            walk(child, inner)

    walk(tree, ())
    return out


def _import_graph(
    package_dir: Path,
    package: str = PACKAGE,
    shipped: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, dict[str, list[int]]]:
    """``{module: {imported module: [line, ...]}}`` over the package's own modules.

    Every ``import`` statement counts, wherever it is: at the top, inside a function
    (a lazy import), under ``if TYPE_CHECKING:``; only those of a ``shipped``
    function are left out. An import of a name from a module is an arrow to that
    module; ``from . import x`` is an arrow to ``x`` when ``x`` is a module, to the
    package's ``__init__`` otherwise.
    """
    files = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    modules = set(files)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, list[int]]] = {}
    shipped_seen: set[tuple[str, str]] = set()
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        arrows: dict[str, list[int]] = {}
        for node, scope in _imports(ast.parse(path.read_text(), str(path))):
            if (name, scope) in shipped:
                shipped_seen.add((name, scope))
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                subs = [f"{source}.{a.name}" for a in node.names]
                targets = [s if s in modules else source for s in subs]
            for target in targets:
                if target.split(".")[0] != package:
                    continue
                found = known(target)
                if found and found != name:
                    arrows.setdefault(found, []).append(node.lineno)
        graph[name] = arrows
    stale = set(shipped) - shipped_seen
    assert not stale, f"SHIPPED lists functions that import nothing: {sorted(stale)}"
    return graph


def _cycles(graph: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(graph: dict[str, dict[str, list[int]]], component: list[str]) -> str:
    inside = set(component)
    return "; ".join(
        f"{a} -> {b} (line {', '.join(map(str, lines))})"
        for a in component
        for b, lines in sorted(graph[a].items())
        if b in inside
    )


def _below(graph: dict[str, dict[str, list[int]]], module: str) -> set[str]:
    """Every module ``module`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_import_cycle() -> None:
    """Imports go only downward: no cycle, lazy and type-checking imports included."""
    graph = _import_graph(ROOT / PACKAGE, shipped=SHIPPED)
    assert {f"{PACKAGE}.records", f"{PACKAGE}.cli"} <= set(graph)
    cycles = [_describe(graph, c) for c in _cycles(graph)]
    assert not cycles, "import cycles: " + " | ".join(cycles)


def test_the_sweep_data_is_below_the_figure_and_report() -> None:
    """A sweep passed to the figure or report goes down the floors, never back up."""
    graph = _import_graph(ROOT / PACKAGE, shipped=SHIPPED)
    p = PACKAGE
    above = {f"{p}.sweep", f"{p}.plot", f"{p}.report"}
    assert not _below(graph, f"{p}.sweepdata") & above
    for module in (f"{p}.plot", f"{p}.report"):
        assert f"{p}.sweepdata" in _below(graph, module)
        assert f"{p}.sweep" not in _below(graph, module)
    assert {f"{p}.executor", f"{p}.decorator", f"{p}.plot", f"{p}.report"} <= _below(
        graph, f"{p}.sweep"
    )


def test_cycle_check_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The check itself: a cycle closed by a function-level import is found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import B\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.c import C\nB = 1\n"
    )
    (pkg / "c.py").write_text("def f():\n    from . import a\n    return a\n")
    (pkg / "d.py").write_text("from pkg import c\nimport pkg.b\n")
    graph = _import_graph(pkg, "pkg")
    assert graph["pkg.d"] == {"pkg.c": [1], "pkg.b": [2]}
    assert _cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert "pkg.c -> pkg.a (line 2)" in _describe(graph, _cycles(graph)[0])
    shipped = {("pkg.c", "f")}
    assert _cycles(_import_graph(pkg, "pkg", shipped)) == []
    (pkg / "c.py").write_text("C = 1\n")
    assert _cycles(_import_graph(pkg, "pkg")) == []
    with pytest.raises(AssertionError, match="SHIPPED"):
        _import_graph(pkg, "pkg", shipped)
