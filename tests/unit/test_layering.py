"""The layers import downward only, and no project modules import each other in a cycle.

Read from the source (ast), function-level imports included, so an import hidden inside a function
counts too. Layers, bottom up: the contract (models/features.py); model code (models/), custom
components (components/) and clients (serving/); the pipeline (pipeline/). benchmarks/, research/,
testkit/ and tests/ sit beside the product and the product never imports them.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = ("models", "components", "serving", "pipeline", "infra", "benchmarks", "research", "testkit", "tests")
PRODUCT = ("models", "components", "serving", "pipeline")
CONTRACT = "models.features"

# importer's package -> project packages it must never import.
FORBIDDEN = {
    "models": {"components", "pipeline"},
    "components": {"pipeline"},
    "serving": {"components", "pipeline"},
    "pipeline": set(),
    "benchmarks": {"research", "tests"},
    "testkit": {"research", "tests"},
}
for _product in PRODUCT:
    FORBIDDEN[_product] |= {"benchmarks", "research", "testkit", "tests"}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_imports(source: str, name: str, is_package: bool) -> set[str]:
    """Project modules `source` imports, anywhere in it (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            # `from pkg import mod` imports the module pkg.mod when there is one.
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] in PROJECT}


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    files = [p for top in PROJECT for p in (root / top).rglob("*.py") if "node_modules" not in p.parts]
    modules = {module_name(p, root): p for p in files}
    graph = {}
    for name, path in modules.items():
        imported = project_imports(path.read_text(), name, path.name == "__init__.py")
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for importer, imported in sorted(graph.items()):
        layer = importer.split(".")[0]
        for target in sorted(imported):
            if importer == CONTRACT:
                found.append(f"{importer} imports {target}: the contract imports nothing of the project")
            elif target.split(".")[0] in FORBIDDEN.get(layer, set()):
                found.append(f"{importer} imports {target}: {layer}/ must not import {target.split('.')[0]}/")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
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
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_no_layer_imports_upward(graph):
    assert CONTRACT in graph and graph[CONTRACT] == set()
    assert violations(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_no_sys_path_edits():
    """Modules are found through the environment (infra/env/run.sh), not by patching sys.path."""
    edits = [str(p.relative_to(REPO)) for top in PROJECT for p in (REPO / top).rglob("*.py")
             if "node_modules" not in p.parts and "sys.path.insert" in p.read_text()
             and p != Path(__file__).resolve()]
    assert edits == []


def test_the_checks_catch_what_they_forbid(tmp_path):
    """An upward import, the contract importing the project, a cycle and a hidden function-level import
    are all found."""
    files = {
        "models/__init__.py": "",
        "models/features.py": "from models.trainer import run\n",
        "models/trainer/__init__.py": "",
        "models/trainer/run.py": "def f():\n    from pipeline.config import load\n",
        "components/__init__.py": "",
        "components/a.py": "from . import b\n",
        "components/b.py": "import components.a\n",
        "pipeline/__init__.py": "",
        "pipeline/config.py": "from research import probe\n",
        "research/__init__.py": "",
        "research/probe.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(tmp_path)
    found = violations(graph)
    assert any(v.startswith("models.features imports models.trainer.run") for v in found)
    assert any(v.startswith("models.trainer.run imports pipeline.config") for v in found)
    assert any(v.startswith("pipeline.config imports research.probe") for v in found)
    assert cycles(graph) == [["components.a", "components.b"]]


def test_web_client_reads_the_contracts_output_names():
    """web/src/inference.js names the browser model's outputs as models/features.py does."""
    from models import features

    source = (REPO / "web" / "src" / "inference.js").read_text()
    assert f"PROBABILITIES = '{features.PROBABILITIES}'" in source
    assert f"ATYPICALITY = '{features.ATYPICALITY}'" in source
