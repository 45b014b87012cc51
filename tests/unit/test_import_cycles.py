"""No import cycle among gateway modules, counting imports made inside functions.

A function-level import hides a cycle from the interpreter at start-up, not from a
reader: two modules that need each other are one module in two files. The walk reads
every module's source with ``ast``, so it sees what a fresh interpreter would only hit
when the function runs. Imports under ``if TYPE_CHECKING:`` are left out: they name a
type for the checker and never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gateway

PACKAGE_ROOT = Path(gateway.__file__).resolve().parent
NOT_IMPORTABLE = {"gateway.store.migrations.env"}  # Alembic runs it inside its own context


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Gateway modules ``name`` imports anywhere in its source (top level or in a body)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            # ``from gateway.store import users`` imports the module gateway.store.users.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "gateway":
                found.add(target)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    nodes: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for field in ast.iter_child_nodes(node):
            if isinstance(field, ast.If) and ast.unparse(field.test).endswith("TYPE_CHECKING"):
                stack.extend(field.orelse)
            else:
                stack.append(field)
    return nodes


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_among_gateway_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_walk_sees_function_level_imports() -> None:
    """The walk itself can fail: a cycle made only of function-level imports is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    cli_imports = _graph()["gateway.cli"]
    assert "gateway.runtime" in cli_imports  # imported inside `serve` only


@pytest.mark.timeout(300)
def test_every_gateway_module_imports_alone() -> None:
    """Each module imports in a fresh interpreter, first of all gateway modules."""
    names = sorted(name for name in _modules() if name not in NOT_IMPORTABLE)
    # Four interpreters at a time: each pays the whole import, one after another takes
    # minutes on a busy machine.
    script = (
        "import subprocess, sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "def alone(name):\n"
        "    code = f'import importlib; importlib.import_module({name!r})'\n"
        "    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)\n"
        "    if done.returncode:\n"
        "        return name + ': ' + done.stderr.strip().splitlines()[-1]\n"
        "    return ''\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    bad = [line for line in pool.map(alone, sys.argv[1:]) if line]\n"
        "print('\\n'.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
