"""The package's import structure: no cycles, and a pure kernel.

Walks ``src/perdure`` with `ast` (nothing is imported) and builds the graph
of direct imports between its modules. An edge is an ``import`` or ``from
... import`` naming another module of the package; ``from pkg import name``
points at ``pkg.name`` when that is a module, else at ``pkg``. A parent
package's ``__init__`` running first is not an edge: every module would
then depend on ``perdure/__init__``, which imports them all.

Two graphs:

* *runtime*: module-level imports, not those under ``if TYPE_CHECKING:``
  nor those inside functions (run later, when every module is loaded).
  These are the imports that can fail with a half-initialised module, so
  the whole package must have no cycle here.
* *full*: every import, type-only and deferred ones included. The kernel
  (``perdure._core``) is cut by dependency (``_history`` <- ``_tasks`` <-
  ``_runner`` <- ``_driver``), so it has no cycle even here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import perdure

ROOT = Path(perdure.__file__).parent
PACKAGE = "perdure"
CORE = "perdure._core"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, runtime_only: bool) -> Iterator[ast.stmt]:
    """Import statements; with *runtime_only*, those run at import time."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            elif runtime_only and (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                or (isinstance(child, ast.If) and _is_type_checking(child))
            ):
                continue
            else:
                stack.append(child)


def _targets(module: str, node: ast.stmt) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        is_package = MODULES[module].name == "__init__.py"
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        yield submodule if submodule in MODULES else source


def import_graph(runtime_only: bool) -> dict[str, set[str]]:
    """Module -> the package's modules it imports directly."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = {
            target
            for node in _imports(tree, runtime_only)
            for target in _targets(module, node)
            if target in MODULES and target != module
        }
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _within(graph: dict[str, set[str]], prefix: str) -> dict[str, set[str]]:
    inside = {m for m in graph if m == prefix or m.startswith(prefix + ".")}
    return {m: graph[m] & inside for m in inside}


def test_the_graph_sees_known_edges() -> None:
    graph = import_graph(runtime_only=True)
    assert f"{CORE}._history" in graph[f"{CORE}._driver"]
    assert f"{PACKAGE}._errors" in graph[f"{CORE}._history"]
    assert f"{CORE}._driver" in graph[f"{PACKAGE}._turn"]


def test_no_import_cycle_at_runtime() -> None:
    assert find_cycles(import_graph(runtime_only=True)) == []


def test_core_has_no_import_cycle_even_type_only() -> None:
    assert find_cycles(_within(import_graph(runtime_only=False), CORE)) == []


def test_core_imports_only_errors_and_codec_outside_itself() -> None:
    """DESIGN §3: the kernel is pure; it imports no I/O-doing module."""
    allowed = {f"{PACKAGE}._errors", f"{PACKAGE}._codec"}
    graph = import_graph(runtime_only=False)
    outside = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith(CORE)
        for target in targets
        if not target.startswith(CORE) and target not in allowed
    }
    assert outside == set()


def test_core_layers_run_one_way() -> None:
    """history <- tasks <- runner <- driver: no module imports a later one."""
    layers = ["_history", "_tasks", "_runaway", "_runner", "_driver"]
    graph = import_graph(runtime_only=False)
    for low, name in enumerate(layers):
        for later in layers[low + 1 :]:
            assert f"{CORE}.{later}" not in graph[f"{CORE}.{name}"], (name, later)
