"""The import graph of ddfast: no cycles, and no lower layer imports a higher one.

Every module is parsed with ``ast``, so imports inside functions and under ``if TYPE_CHECKING:``
are edges too: a lazy import hides a cycle from Python at import time, not from the design.
Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit parent-package
imports are not edges (otherwise every module would close a cycle with the package that re-exports
it). An explicit ``from ddfast.codec import X`` is an edge to ``ddfast.codec``'s ``__init__``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Package name -> source folder (setup.py installs kernels/ as ddfast.kernels).
SOURCES = {"ddfast": ROOT / "ddfast", "ddfast.kernels": ROOT / "kernels"}
# Compiled extension modules (setup.py's Extension names): leaves without Python source.
NATIVE = ("ddfast._cpu",)

# The layers of the README (Development), lowest first: data -> codec -> distill -> coding -> eval,
# with ops/kernels/csrc (and the small helpers errors, fileio, device) under everything, and the
# pipeline and the interfaces (the package's re-exports, the adapters for other DD code, the CLI)
# on top. A module may import its own layer and the layers below it. An entry covers the module and
# everything under it, except the root package "ddfast", which covers only its __init__: a new
# top-level module must be placed here.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("helpers", ("ddfast.errors", "ddfast.fileio", "ddfast.device")),
    ("native", ("ddfast._cpu", "ddfast.kernels")),
    ("ops", ("ddfast.ops", "ddfast.rans")),
    ("data", ("ddfast.data", "ddfast.labels")),
    ("codec", ("ddfast.codec",)),
    ("distill", ("ddfast.distill",)),
    ("coding", ("ddfast.coding",)),
    ("eval", ("ddfast.eval",)),
    ("pipeline", ("ddfast.pipeline",)),
    ("report", ("ddfast.report",)),
    ("interface", ("ddfast", "ddfast.__main__", "ddfast.cli", "ddfast.integrations")),
)
# Helpers shared by the CLI commands; no command module imports another one.
CLI_SHARED = "ddfast.cli._common"


def find_modules(sources: dict[str, Path], native: tuple[str, ...] = ()) -> dict[str, Path | None]:
    """Dotted module name -> source file (None for a native module) of every module under ``sources``."""
    modules: dict[str, Path | None] = {name: None for name in native}
    for package, folder in sources.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _known(name: str, modules: dict[str, Path | None]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (None when outside them)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path | None]) -> list[str]:
    """The modules of ``modules`` that one import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        return [t for t in (_known(alias.name, modules) for alias in node.names) if t]
    base = node.module or ""
    if node.level:  # relative: level 1 is the module's own package
        source = modules[module]
        package = module.split(".") if source is not None and source.name == "__init__.py" else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    found = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        target = submodule if submodule in modules else _known(base, modules)
        if target:
            found.append(target)
    return found


def import_graph(modules: dict[str, Path | None]) -> dict[str, set[str]]:
    """Module -> the modules it imports anywhere in its source (functions, TYPE_CHECKING blocks included)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        if path is not None:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    edges.update(_targets(module, node, modules))
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> ... -> a) through every strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module (sorted) of a strongly connected component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected component


def layer_of(module: str, layers=LAYERS) -> int | None:
    """Position in ``layers`` of the longest entry that covers ``module`` (None: not placed)."""
    best, best_length = None, -1
    for position, (_, entries) in enumerate(layers):
        for entry in entries:
            covers = module == entry or ("." in entry and module.startswith(entry + "."))
            if covers and len(entry) > best_length:
                best, best_length = position, len(entry)
    return best


def layer_violations(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """Every import of a higher layer by a lower one, as 'a (layer) -> b (layer)'."""
    found = []
    for module in sorted(graph):
        for target in sorted(graph[module]):
            low, high = layer_of(module, layers), layer_of(target, layers)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({layers[low][0]}) -> {target} ({layers[high][0]})")
    return found


# -- the checks on ddfast ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ddfast_graph() -> dict[str, set[str]]:
    return import_graph(find_modules(SOURCES, NATIVE))


def test_ddfast_has_no_import_cycle(ddfast_graph):
    cycles = find_cycles(ddfast_graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_every_module_has_a_layer(ddfast_graph):
    unplaced = [module for module in ddfast_graph if layer_of(module) is None]
    assert not unplaced, f"modules missing from LAYERS (place them in the layer table): {unplaced}"


def test_no_lower_layer_imports_a_higher_one(ddfast_graph):
    violations = layer_violations(ddfast_graph)
    assert not violations, "layer rule broken:\n" + "\n".join(violations)


def test_cli_commands_share_helpers_only_through_common(ddfast_graph):
    graph = ddfast_graph
    commands = [m for m in graph if m.startswith("ddfast.cli.") and m != CLI_SHARED]
    assert "ddfast.cli.eval" in commands and "ddfast.cli.experts" in commands
    wrong = [f"{m} -> {t}" for m in sorted(commands) for t in sorted(graph[m])
             if (t == "ddfast.cli" or t.startswith("ddfast.cli.")) and t != CLI_SHARED]
    assert not wrong, f"CLI commands importing other CLI modules (move the helper to {CLI_SHARED}): {wrong}"


def test_warm_up_does_not_import_the_synthetic_set(ddfast_graph):
    graph = ddfast_graph
    assert "ddfast.codec.warmup" in graph["ddfast.codec.synthetic_set"]
    assert "ddfast.codec.synthetic_set" not in graph["ddfast.codec.warmup"]


# -- the checker itself finds what it should ---------------------------------------------------------

def _write_package(root: Path, files: dict[str, str]) -> dict[str, Path | None]:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return find_modules({"pkg": root / "pkg"}, native=("pkg._native",))


def test_graph_sees_lazy_type_checking_and_relative_imports(tmp_path):
    modules = _write_package(tmp_path, {
        "__init__.py": "from pkg.sub import helper\n",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "def f():\n    from pkg import a\n    from pkg import _native\n",
        "sub/__init__.py": "from . import helper\n",
        "sub/helper.py": "import os\nfrom .. import a\nfrom ..b import f\nimport pkg.sub\n",
    })
    graph = import_graph(modules)
    assert graph == {
        "pkg": {"pkg.sub.helper"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.a", "pkg._native"},
        "pkg._native": set(),
        "pkg.sub": {"pkg.sub.helper"},
        "pkg.sub.helper": {"pkg.a", "pkg.b", "pkg.sub"},
    }
    assert sorted(find_cycles(graph)) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.sub", "pkg.sub.helper", "pkg.sub"]]


def test_layer_rule_reports_upward_imports():
    layers = (("low", ("pkg.low",)), ("high", ("pkg", "pkg.high")))
    graph = {"pkg": {"pkg.low"}, "pkg.low": {"pkg.high.x"}, "pkg.low.y": {"pkg.low"}, "pkg.high.x": {"pkg.low.y"},
             "pkg.other": set()}
    assert layer_violations(graph, layers) == ["pkg.low (low) -> pkg.high.x (high)"]
    assert layer_of("pkg.other", layers) is None  # the root entry covers only the package itself
