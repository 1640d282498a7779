"""The code's layout: shared code in rooms by job, no import cycles, stages independent of each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "tools", "bench")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports at run time (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for n in ast.walk(child)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module(p) for p in files}
    graph = {_module(p): _imports(p, modules) for p in files}
    for name in list(graph):  # importing a module runs its package's __init__ first
        graph[name] |= {parent for dep in graph[name] for parent in _parents(dep) if parent in graph}
    return graph


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, if any (depth-first search)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1 and dep != node and not node.startswith(dep + "."):
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    assert len(graph) > 40
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_a_cycle_is_found_where_there_is_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_stages_import_no_stage_tool_or_bench_and_bench_no_stage() -> None:
    graph = _graph()
    stage_modules = {m for m in graph if m.count(".") == 1 and m.startswith("stages.")} - {"stages.common"}
    assert {"stages.train", "stages.finetune", "stages.explain"} <= stage_modules
    for name, deps in graph.items():
        if name.startswith("stages."):
            assert not {d for d in deps if d.startswith(("tools", "bench"))}, name
            assert not deps & (stage_modules - {name}), name
        if name.startswith("bench"):
            assert not deps & stage_modules, name


def test_shared_code_lives_in_rooms_each_with_its_purpose() -> None:
    common = ROOT / "stages" / "common"
    loose = sorted(p.name for p in common.glob("*.py") if p.name not in ("__init__.py", "cli.py", "errors.py"))
    assert not loose, f"stages/common/ holds only rooms (packages), cli.py and errors.py: {loose}"
    rooms = [p for p in common.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert len(rooms) >= 6
    for room in rooms:
        init = room / "__init__.py"
        assert init.is_file(), room
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 15, f"{init}: a one-paragraph docstring saying what the room is for"
