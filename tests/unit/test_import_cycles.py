"""No import cycle among gateway and admin UI modules, counting imports made inside
functions.

A function-level import hides a cycle from the interpreter at start-up, not from a
reader: two modules that need each other are one module in two files. The walk reads
every module's source with ``ast``, so it sees what a fresh interpreter would only hit
when the function runs. Imports under ``if TYPE_CHECKING:`` are left out: they name a
type for the checker and never run.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

import pytest

import admin_ui
import gateway

PACKAGE_ROOTS = tuple(Path(p.__file__).resolve().parent for p in (gateway, admin_ui))
PACKAGES = {root.name for root in PACKAGE_ROOTS}
NOT_IMPORTABLE = {"gateway.store.migrations.env"}  # Alembic runs it inside its own context


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p, root): p for root in PACKAGE_ROOTS for p in sorted(root.rglob("*.py"))}


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
            if target and target != name and target not in PACKAGES:
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


@functools.cache
def _graph() -> dict[str, frozenset[str]]:
    """Parsed once per run: two tests read it."""
    modules = _modules()
    known = set(modules)
    return {name: frozenset(_imports(name, path, known)) for name, path in modules.items()}


def _cycles(graph: Mapping[str, AbstractSet[str]]) -> list[list[str]]:
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


def _libraries() -> list[str]:
    """Every module outside the project that some project module imports."""
    found: set[str] = set()
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
    return sorted(name for name in found if name.split(".")[0] not in PACKAGES)


ALONE = r"""
import importlib, os, sys
libraries, names = sys.argv[1].split(","), sys.argv[2:]
for library in libraries:
    try:
        importlib.import_module(library)
    except Exception:  # optional (uvloop) or platform-specific: the module's own import tells
        pass
# A scout child imports every project module and names the library modules that pulled
# in (submodules loaded on first use); the parent loads those too, so each child below
# pays only for project modules. No project module is ever loaded in the parent.
projects = {name.split(".")[0] for name in names} - {name.split(".")[0] for name in libraries}
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read)
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:
            pass
    found = [m for m in list(sys.modules) if m.split(".")[0] not in projects]
    with os.fdopen(write, "w") as out:
        out.write("\n".join(found))
    os._exit(0)
os.close(write)
with os.fdopen(read) as scouted:
    pulled_in = scouted.read().split("\n")
os.waitpid(pid, 0)
for library in pulled_in:
    try:
        importlib.import_module(library)
    except BaseException:
        pass
assert not projects & {m.split(".")[0] for m in sys.modules}, "a library loaded a project module"
bad = []
for name in names:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child holding the libraries, and no project module yet
        os.close(read)
        try:
            importlib.import_module(name)
        except BaseException as error:
            os.write(write, f"{name}: {type(error).__name__}: {error}".encode()[:4000])
            os._exit(1)
        os._exit(0)
    os.close(write)
    message = os.read(read, 4096).decode(errors="replace")
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if status:
        bad.append(message or f"{name}: exit status {status}")
print("\n".join(bad))
"""


@pytest.mark.timeout(300)
def test_every_project_module_imports_alone() -> None:
    """Each module imports first of all project modules, in a process of its own.

    One interpreter imports the third-party libraries the project uses (and the library
    submodules a scout child saw the project pull in), then forks a child per module:
    the child starts with no project module loaded, exactly as a fresh interpreter
    would, without paying every library's import again (one interpreter per module
    took minutes).
    """
    names = sorted(name for name in _modules() if name not in NOT_IMPORTABLE)
    done = subprocess.run(
        [sys.executable, "-c", ALONE, ",".join(_libraries()), *names],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == ""


def test_the_fork_check_sees_a_module_that_does_not_import_alone(tmp_path: Path) -> None:
    """The check itself can fail: a module whose import raises is reported by name."""
    (tmp_path / "broken_module.py").write_text("import gateway.no_such_module\n")
    done = subprocess.run(
        [sys.executable, "-c", ALONE, "json", "json", "broken_module"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{tmp_path}:{PACKAGE_ROOTS[0].parent}", "PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip().startswith("broken_module: ModuleNotFoundError")
