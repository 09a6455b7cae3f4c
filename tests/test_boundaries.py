"""Package boundaries, checked on the source: the core never imports demo content, imports have no cycles,
and listing commands or targets imports no framework."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgekit"
HEAVY = ("torch", "tensorflow", "transformers", "executorch", "onnx2tf", "ai_edge_litert")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules `path` imports anywhere (function bodies too), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for sub in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return found


def test_the_core_never_imports_demo_content():
    offenders = [p for p in PACKAGE.rglob("*.py") if any(m.split(".")[0] == "edgekit_demo" for m in _imports(p))]
    assert offenders == []


def _module_graph() -> dict[str, set[str]]:
    """Module -> the edgekit modules it imports (edges to the root package, which every submodule imports
    implicitly, are left out)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _imports(path) if m in files and m not in (name, "edgekit")} for name, path in files.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_imports_have_no_cycles():
    """Between edgekit's modules, counting imports inside functions."""
    graph = _module_graph()
    assert sum(len(v) for v in graph.values()) > 100  # the graph was really read
    assert _cycles(graph) == []


def test_packages_have_no_cycles():
    """Between edgekit's top-level packages and modules (edgekit.backends, edgekit.catalog, edgekit.artifact...):
    the backends build on the catalog, runners and artifacts, and edgekit.dispatch sits above them all."""
    top = {name: ".".join(name.split(".")[:2]) for name in _module_graph()}
    graph: dict[str, set[str]] = {}
    for name, imported in _module_graph().items():
        graph.setdefault(top[name], set()).update(top[m] for m in imported if top[m] != top[name])
    assert "edgekit.backends" in graph["edgekit.dispatch"]  # the graph was really read
    assert not any("edgekit.backends" in graph[p] for p in ("edgekit.catalog", "edgekit.runners", "edgekit.artifact"))
    assert _cycles(graph) == []


def test_the_worker_skips_the_same_location_lines_as_edgekit():
    """The benchmark worker runs without edgekit on devices, so it keeps its own copy of this pattern."""
    from edgekit.bench import worker
    from edgekit.errors import WHERE

    assert worker.WHERE.pattern == WHERE.pattern


def test_listing_commands_and_targets_imports_no_framework():
    code = (
        "import sys; from edgekit.cli import main\n"
        "for argv in (['--help'], ['targets'], ['datasets']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert "demo" in result.stdout  # the demo package's command, plugged in through its entry point
    assert "builtin:tweets:SPLIT" in result.stdout  # its datasets, registered with the data reader


def test_no_function_is_longer_than_100_lines():
    """A longer one is split into steps with names that say what they do."""
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 100
    ]
    assert long == []
