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


def test_imports_have_no_cycles():
    """Between edgekit's modules, counting imports inside functions (edges to the root package, which every
    submodule imports implicitly, are left out)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {m for m in _imports(path) if m in files and m not in (name, "edgekit")} for name, path in files.items()
    }
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
    assert sum(len(v) for v in graph.values()) > 100  # the graph was really read
    assert cycles == []


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
