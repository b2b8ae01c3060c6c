"""The package's import graph has no cycles, counting imports inside functions too (ARCHITECTURE.md
draws it): every module can be read after the ones it imports. And the folders import only downwards:
``data/`` none of training, inference or the CLI; ``training/`` not the CLI."""

import ast
from pathlib import Path

from helpers import REPO_ROOT

# source folder -> package name (setup.py's package_dir)
SOURCES = {
    "namemodels": "namemodels",
    "kernels": "namemodels.kernels",
    "export": "namemodels.export",
    "bench": "namemodels.bench",
}

# folder -> the parts it must not import, at the top of a file or inside a function (ARCHITECTURE.md)
BELOW = {
    "namemodels.data": ("namemodels.training", "namemodels.inference", "namemodels.commands", "namemodels.cli"),
    "namemodels.training": ("namemodels.commands", "namemodels.cli"),
}


def _modules() -> dict:
    """Dotted name -> (path, is a package)."""
    out = {}
    for folder, package in SOURCES.items():
        for path in (REPO_ROOT / folder).rglob("*.py"):
            rel = path.relative_to(REPO_ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if folder == "namemodels" and parts and parts[0] in ("kernels", "export", "bench"):
                continue  # not mapped in by setup.py
            out[name] = (path, path.name == "__init__.py")
    return out


def _imports(name: str, path: Path, is_package: bool, modules: dict) -> set:
    base = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base.split(".")
                root = root[: len(root) - (node.level - 1)]
                target = ".".join(root + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import namemodels.x.y` names its module; strip attributes
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _within(name: str, part: str) -> bool:
    return name == part or name.startswith(part + ".")


def _upward(graph: dict, below: dict) -> list:
    """``importer -> imported`` for every import a folder of ``below`` must not make."""
    return sorted(
        f"{a} -> {b}"
        for a, imported in graph.items()
        for folder, banned in below.items()
        if _within(a, folder)
        for b in imported
        if any(_within(b, part) for part in banned)
    )


def _graph() -> dict:
    modules = _modules()
    return {name: _imports(name, path, pkg, modules) for name, (path, pkg) in modules.items()}


def test_the_import_graph_has_no_cycles():
    graph = _graph()
    assert len(graph) > 40 and graph["namemodels.training.train"], graph.get("namemodels.training.train")
    assert _cycles(graph) == []


def test_the_folders_import_only_downwards():
    graph = _graph()
    assert {"namemodels.data.loader", "namemodels.training.train"} <= graph.keys()
    assert graph["namemodels.training.train"] & {"namemodels.data.loader", "namemodels.data.records"}
    assert _upward(graph, BELOW) == []


def test_the_upward_finder_finds_an_upward_import():
    graph = {"p.data.a": {"p.training.b"}, "p.training.b": {"p.data.a"}, "p.datax": {"p.training.b"}}
    assert _upward(graph, {"p.data": ("p.training",)}) == ["p.data.a -> p.training.b"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
