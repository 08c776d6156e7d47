"""The house's structure: every module imports, no module imports itself back, engines are asked.

The import graph is built from the source (every ``import`` statement, also those inside
functions, except ``if TYPE_CHECKING:`` blocks, which never run), so a cycle hidden behind a
lazy import is still a cycle.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kvplan"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST, package: str) -> set[str]:
    """kvplan modules named by the import statements of ``tree`` (TYPE_CHECKING blocks left out)."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            submodules = {f"{base}.{a.name}" for a in node.names} & MODULES.keys()  # `from kvplan import units`
            found.update(submodules)
            if len(submodules) < len(node.names):  # a name defined in ``base`` itself
                found.add(base)
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in found if m in MODULES}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imports(ast.parse(path.read_text(encoding="utf-8")), package) - {name}
    graph["kvplan.engines"] |= _registry_edges()
    return graph


def _registry_edges() -> set[str]:
    """The engine modules kvplan.engines imports by name when an engine is first asked for (its ``_MODULES``
    table, read from the source): edges of the graph like any import statement."""
    tree = ast.parse(MODULES["kvplan.engines"].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "_MODULES":
            return {v.value for v in node.value.values}
    raise AssertionError("kvplan/engines/__init__.py has no _MODULES table")


def test_the_engine_registry_names_real_modules():
    assert _registry_edges() == {m for m in MODULES if m.startswith("kvplan.engines.") and m != "kvplan.engines.base"}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_lazy_imports_are_edges_and_type_checking_imports_are_not():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from kvplan.capacity import Setup\n"
        "def f():\n    from kvplan.memory import cache_plan\n"
        "from kvplan import units\n"
    )
    assert _imports(tree, "kvplan") == {"kvplan.memory", "kvplan.units"}


def test_every_module_imports_in_a_fresh_interpreter():
    names = [m for m in sorted(MODULES) if m != "kvplan.__main__"]  # __main__ runs the CLI
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    done = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


# The project's before-stop hook runs the same grep (shared/hooks/before-stop).
ENGINE_BRANCH = re.compile(r"engine\.name *==|name *== *['\"](vllm|sglang|trtllm|llamacpp)['\"]")


def test_no_code_outside_the_engines_branches_on_an_engine_name():
    engines = PACKAGE / "engines"
    hits = [
        f"{path.relative_to(PACKAGE.parent)}:{i}: {line.strip()}"
        for path in MODULES.values()
        if engines not in path.parents
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ENGINE_BRANCH.search(line)
    ]
    assert not hits, "ask the engine instead:\n" + "\n".join(hits)


def test_the_engine_grep_catches_a_branch():
    assert ENGINE_BRANCH.search('if engine.name == "vllm":')
    assert ENGINE_BRANCH.search("if profile.name=='llamacpp':")
    assert not ENGINE_BRANCH.search("get_engine(name)")
