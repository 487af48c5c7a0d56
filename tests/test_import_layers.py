"""The shared layers import each other one way only.

``zwfw.codes``, ``zwfw.formats`` and the service kit are what everything else builds on; an
import cycle through any of them (even one hidden in a function body) makes the import order
matter and the modules impossible to understand one at a time. Checked statically, from the
source: every ``import`` statement counts, wherever it stands, except those only seen by type
checkers (``if TYPE_CHECKING:``). The implicit import of a parent package does not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
GUARDED = ("zwfw.codes", "zwfw.formats", "zwfw.services.kit")


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _statements(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (s for child in node.orelse for s in _statements_in(child))
            continue
        yield from _statements_in(node)


def _statements_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _statements(node)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same tree it imports."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for statement in _statements(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(statement, ast.Import):
                targets.update(a.name for a in statement.names if a.name in modules)
                continue
            base = statement.module or ""
            if statement.level:
                anchor = package.split(".")[: len(package.split(".")) - statement.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in statement.names:
                # ``from pkg import sub`` imports the module pkg.sub when there is one.
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    targets.add(submodule)
                elif base in modules:
                    targets.add(base)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _guarded(module: str) -> bool:
    return any(module == g or module.startswith(g + ".") for g in GUARDED)


def test_no_import_cycle_runs_through_the_shared_layers() -> None:
    graph = import_graph(SOURCE / "zwfw")
    assert graph["zwfw.codes.errors"], "the import graph came out empty"
    offending = [group for group in cycles(graph) if any(_guarded(m) for m in group)]
    assert offending == [], f"import cycles: {offending}"


@pytest.mark.parametrize(
    ("layer", "may_import"),
    [
        ("zwfw.codes", ("zwfw.codes",)),
        ("zwfw.formats", ("zwfw.formats", "zwfw.crypto")),
    ],
)
def test_lower_layers_do_not_import_what_is_built_on_them(
    layer: str, may_import: tuple[str, ...]
) -> None:
    graph = import_graph(SOURCE / "zwfw")
    outside = {
        (module, target)
        for module, targets in graph.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if not any(target == m or target.startswith(m + ".") for m in (*may_import, "zwfw"))
    }
    assert outside == set()


def test_the_check_sees_imports_in_function_bodies_and_of_submodules(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def later():\n    from .. import a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    (package / "d.py").write_text("import pkg.c\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.c"] == set()
    assert graph["pkg.d"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]
