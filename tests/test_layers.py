"""The package's layers hold: no module imports a layer above its own, and no import circle exists.

Every import counts: at module level, inside functions (deferred for a fast start) and under
``TYPE_CHECKING``. The layers, bottom to top, are those of ``rollout/__init__.py``'s docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rollout"

FOUNDATION = ("rollout", "rollout.errors", "rollout.files", "rollout.logs", "rollout.faults", "rollout.templating")
LAYERS = {  # package prefix -> rank; a module may import ranks <= its own
    "rollout.core": 1,
    "rollout.plan": 2,
    "rollout.store": 3,
    "rollout.backends": 4,
    "rollout.awslocal": 4.5,
    "rollout.drive": 5,
    "rollout.reports": 6,
    "rollout.cli": 7,
    "rollout.__main__": 7,
}
# The emulation is a harness beside the layers: only these may import it.
AWSLOCAL_IMPORTERS = ("rollout.cli", "rollout.awslocal")


def module_files() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def owner(name: str) -> str:
    """The module that ``name`` (a module, or a name inside one) refers to."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name == "rollout" or name.startswith("rollout."):
                target = owner(name)
                if target not in (module, "rollout"):
                    found.add(target)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def rank(module: str) -> float:
    if module in FOUNDATION:
        return 0
    for prefix, value in sorted(LAYERS.items(), key=lambda kv: -len(kv[0])):
        if module == prefix or module.startswith(prefix + "."):
            return value
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS and to rollout/__init__.py")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if rank(target) > rank(module):
                wrong.append(f"{module} (layer {rank(module)}) imports {target} (layer {rank(target)})")
            if target.startswith("rollout.awslocal") and not module.startswith(AWSLOCAL_IMPORTERS):
                wrong.append(f"{module} imports the local AWS emulation {target}; only the demo may choose it")
    return wrong


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        rank(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert layer_violations(GRAPH) == []


def test_there_is_no_import_circle() -> None:
    assert cycles(GRAPH) == []


def test_the_check_finds_an_upward_import_and_a_circle() -> None:
    graph = {m: set(t) for m, t in GRAPH.items()}
    graph["rollout.core.model"].add("rollout.cli.main")
    graph["rollout.backends.factory"].add("rollout.awslocal.devices")
    graph["rollout.store.api"].add("rollout.store.sqlite")
    wrong = layer_violations(graph)
    assert "rollout.core.model (layer 1) imports rollout.cli.main (layer 7)" in wrong
    assert any("rollout.backends.factory imports the local AWS emulation" in w for w in wrong)
    assert ["rollout.store.api", "rollout.store.sqlite"] in cycles(graph) or any(
        {"rollout.store.api", "rollout.store.sqlite"} <= set(c) for c in cycles(graph))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if MODULES[m].name == "__init__.py"))
def test_every_package_says_what_it_may_import(module: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text(encoding="utf-8"))) or ""
    assert doc, f"{module} has no docstring"
    if module.count(".") == 1 and module != "rollout.awslocal":
        assert "import" in doc, f"{module}'s docstring does not say what the layer may import"


def test_modules_stay_under_400_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}, "split these where a second responsibility hides: " + repr(long)
