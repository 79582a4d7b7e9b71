"""robench's modules form layers without circles: no module imports, at the top or inside a function, one that
imports it back (directly or through others); the package facade (``robench/__init__.py``) is imported by no
module; the command line by none but its entry points; the settings load without torch.

The import graph is read from the source with :mod:`ast`: every ``import`` and ``from ... import`` anywhere in a
module (lazy imports inside functions hide circles as well as any), relative imports resolved, ``from robench.x
import y`` an edge to ``robench.x.y`` when that is a module, and a string naming a robench module an edge too
(the lazy tables of ``robench/__init__.py`` and ``robench/train/__init__.py`` import by name).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "robench"

#: Third-party packages that make an import heavy (seconds, GPU libraries).
HEAVY = {"torch", "torchvision", "timm", "captum", "scipy", "matplotlib"}

#: Modules the command line and the settings build on: they load without torch, at the top and inside functions.
LIGHT = ["robench.errors", "robench.options", "robench.schema", "robench.settings", "robench._version"]

#: What the settings import inside functions, and why: each validation asks the registry that knows the names
#: (the attribution methods register as their modules load; the corruption names need no torch).
SETTINGS_LAZY = {"robench.attribution", "robench.corruptions.names"}


class Graph:
    """Modules of a package (dotted names) and their import edges, with the lines they are on."""

    def __init__(self, package: Path) -> None:
        self.files: dict[str, Path] = {}
        for path in sorted(package.rglob("*.py")):
            parts = list(path.relative_to(package.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            self.files[".".join(parts)] = path
        #: module -> imported module -> line numbers; ``lazy`` only those inside a function.
        self.edges: dict[str, dict[str, list[int]]] = {m: {} for m in self.files}
        self.lazy: dict[str, dict[str, list[int]]] = {m: {} for m in self.files}
        #: module -> third-party top-level names imported at module level.
        self.external: dict[str, set[str]] = {m: set() for m in self.files}
        for module, path in self.files.items():
            self._read(module, path)

    def _module(self, name: str) -> str | None:
        """The module of the package that ``import name`` loads last (``pkg.mod.attr`` -> ``pkg.mod``)."""
        while name and name not in self.files:
            name = name.rpartition(".")[0]
        return name or None

    def _read(self, module: str, path: Path) -> None:
        tree = ast.parse(path.read_text(), filename=str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        top = self.files and next(iter(self.files)).split(".")[0]

        def visit(node: ast.AST, in_function: bool) -> None:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                names = [f"{source}.{a.name}" if f"{source}.{a.name}" in self.files else source for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value \
                    and node.value in self.files:
                names = [node.value]  # imported by name, when used: importlib.import_module(TABLE[key])
            for name in names:
                target = self._module(name)
                if target is None:
                    if not in_function and not isinstance(node, ast.Constant) and name.split(".")[0] != top:
                        self.external[module].add(name.split(".")[0])
                    continue
                if target != module:
                    self.edges[module].setdefault(target, []).append(node.lineno)
                    if in_function or isinstance(node, ast.Constant):
                        self.lazy[module].setdefault(target, []).append(node.lineno)
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for child in ast.iter_child_nodes(node):
                visit(child, inner)

        visit(tree, False)

    def importers(self, target: str) -> dict[str, list[int]]:
        """The modules that import ``target``, with the lines."""
        return {m: out[target] for m, out in self.edges.items() if target in out}

    def closure(self, start: str, *, lazy: bool = True, parents: bool = False) -> set[str]:
        """The modules ``start`` imports, directly or through others (with ``lazy=False`` only at module level;
        with ``parents`` each module's parent packages too, which Python runs first)."""
        seen: set[str] = set()
        todo = [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            targets = set(self.edges[module]) - (set() if lazy else {
                t for t, lines in self.lazy[module].items() if len(lines) == len(self.edges[module][t])})
            if parents:
                targets |= {p for p in (module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1))}
            todo += sorted(targets)
        return seen - {start}


def find_cycle(edges: dict[str, dict[str, list[int]]] | dict[str, set[str]]) -> list[str] | None:
    """A circle of the directed graph ``edges`` as the path a, b, ..., a; None when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def describe(cycle: list[str], graph: Graph) -> str:
    return " -> ".join(f"{a} (line {graph.edges[a][b][0]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph(PACKAGE)


def test_find_cycle_finds_a_circle_and_only_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None
    cycle = find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"x": {"y"}, "y": {"z", "w"}, "w": set(), "z": {"y"}}) == ["y", "z", "y"]


def test_the_graph_sees_lazy_relative_submodule_and_by_name_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('TABLE = {"thing": "pkg.c"}\n')
    (pkg / "a.py").write_text("import numpy\n\ndef f():\n    from . import b\n    import torch\n")
    (pkg / "b.py").write_text("from pkg.sub import d\nfrom .sub.d import VALUE\n")
    (pkg / "c.py").write_text("from pkg import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "d.py").write_text("from ..c import NAME\n")
    g = Graph(pkg)
    assert g.edges == {"pkg": {"pkg.c": [1]}, "pkg.a": {"pkg.b": [4]}, "pkg.b": {"pkg.sub.d": [1, 2]},
                       "pkg.c": {"pkg.a": [1]}, "pkg.sub": {}, "pkg.sub.d": {"pkg.c": [1]}}
    assert g.lazy["pkg.a"] == {"pkg.b": [4]} and g.external["pkg.a"] == {"numpy"}  # torch: inside a function
    assert find_cycle(g.edges) == ["pkg.c", "pkg.a", "pkg.b", "pkg.sub.d", "pkg.c"]
    assert g.lazy["pkg"] == {"pkg.c": [1]}  # by name: imported when used
    assert g.closure("pkg.c", lazy=False) == {"pkg.a"} and g.closure("pkg.c") == {"pkg.a", "pkg.b", "pkg.sub.d"}
    assert g.closure("pkg.sub.d", lazy=False, parents=True) == {"pkg", "pkg.sub", "pkg.c", "pkg.a"}


def test_robench_modules_import_each_other_without_a_circle(graph: Graph) -> None:
    assert len(graph.files) > 50 and "robench.run" in graph.files
    cycle = find_cycle(graph.edges)
    assert cycle is None, f"import circle: {describe(cycle, graph)}"


def test_no_module_imports_the_package_facade(graph: Graph) -> None:
    """``robench/__init__.py`` re-exports the API (it imports robench.api, robench.run, ... by name): a module that
    imported it would sit above the API and below it at once. The version is in robench._version."""
    assert graph.importers("robench") == {}
    assert {"robench.api", "robench.run", "robench.train", "robench.reports.leaderboard"} <= set(graph.edges["robench"])


def test_only_the_entry_points_import_the_command_line(graph: Graph) -> None:
    assert set(graph.importers("robench.cli")) <= {"robench.__main__"}


def test_the_runs_module_lies_below_the_runner_and_the_reports(graph: Graph) -> None:
    """Run, load_run and write_results (robench.run) import neither the runner nor the reports; robench's modules
    import them from robench.run, not through robench.reports.runs (kept for imports written before)."""
    above = {m for m in graph.closure("robench.run") if m == "robench.runner" or m.startswith("robench.reports")}
    assert not above, f"robench.run imports {sorted(above)}"
    assert graph.importers("robench.reports.runs") == {}
    assert "robench.run" in graph.edges["robench.runner"] and "robench.run" in graph.edges["robench.reports.report"]


@pytest.mark.parametrize(("low", "high"), [("robench.settings", "robench.attacks"), ("robench.train", "robench.api"),
                                           ("robench.run", "robench.suites"), ("robench.attacks", "robench.suites")])
def test_a_lower_layer_does_not_reach_a_higher_one(graph: Graph, low: str, high: str) -> None:
    reached = {m for m in graph.closure(low) if m == high or m.startswith(f"{high}.")}
    assert not reached, f"{low} imports {sorted(reached)}, directly or through others"


@pytest.mark.parametrize("module", LIGHT)
def test_the_settings_layer_imports_nothing_heavy(graph: Graph, module: str) -> None:
    """What the command line needs to build its options loads without torch: the module-level imports of these
    modules, of what they import and of the packages around them, are all light; inside functions, the settings
    reach only :data:`SETTINGS_LAZY` (the others nothing of robench but the errors)."""
    loaded = {module} | graph.closure(module, lazy=False, parents=True)
    heavy = {m: sorted(graph.external[m] & HEAVY) for m in loaded if graph.external[m] & HEAVY}
    assert not heavy, f"importing {module} loads {heavy}"
    lazy = set(graph.lazy[module])
    assert lazy == (SETTINGS_LAZY if module == "robench.settings" else set()), f"{module} imports {sorted(lazy)} lazily"


def test_the_settings_layer_loads_without_torch() -> None:
    code = f"import sys, {', '.join(LIGHT)}; print(sorted(HEAVY & set(sys.modules)))".replace(
        "HEAVY", repr(HEAVY))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
