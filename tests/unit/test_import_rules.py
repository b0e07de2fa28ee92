"""The package map's rules (docs/architecture.md): what each package may import, and no import
cycle between our modules, read from the source (every import statement, including those inside
functions: a function-level import is still a dependency, and a cycle through one is a cycle)."""
import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "pipelines", "ops", "release", "core", "components", "serving")

# package -> top-level packages of ours it must never import (and no package but cli imports cli)
FORBIDDEN: Dict[str, Set[str]] = {
    "serving": {"pipelines", "ops", "release", "core", "components"},
    "components": {"pipelines", "ops", "release", "core"},
    "core": {"pipelines", "ops", "release"},
    "release": {"pipelines", "ops"},
    "ops": {"pipelines"},
}
# sub-packages that must not import third-party orchestration
FORBIDDEN_THIRD_PARTY = {"components/models": {"tfx", "ml_metadata", "apache_beam"}}
# serving's layers (docs/architecture.md): api -> dataplane -> runtime -> codec, never back up
FORBIDDEN_LAYERS = {
    "serving/codec": ("serving.runtime", "serving.dataplane", "serving.api", "serving.server"),
    "serving/runtime": ("serving.dataplane", "serving.api", "serving.server"),
    "serving/dataplane.py": ("serving.api", "serving.server"),
}


def _modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _violations() -> Iterator[str]:
    for path in _modules():
        relative = path.relative_to(REPO).as_posix()
        package = relative.split("/", 1)[0]
        forbidden = FORBIDDEN.get(package, set())
        third_party = next((names for prefix, names in FORBIDDEN_THIRD_PARTY.items()
                            if relative.startswith(prefix + "/")), set())
        layers = next((names for prefix, names in FORBIDDEN_LAYERS.items() if relative.startswith(prefix)), ())
        for line, module in _imports(path):
            top = module.split(".", 1)[0]
            if top in forbidden or top in third_party or any(module.startswith(layer) for layer in layers):
                yield f"{relative}:{line} imports {module}"
            elif top == "cli" and package != "cli":
                yield f"{relative}:{line} imports {module} (only the entry point imports cli)"


def test_no_package_imports_one_it_must_not():
    assert list(_violations()) == []


@pytest.mark.parametrize("source, rule", [
    ("serving/x.py", "from pipelines.configure import build_config"),
    ("components/x.py", "import release.promotion"),
    ("components/models/x.py", "from tfx.components import Trainer"),
    ("pipelines/x.py", "from cli.main import main"),
    ("serving/codec/x.py", "from serving.runtime.servable import Servable"),
    ("serving/runtime/x.py", "from serving.api import rest_app"),
])
def test_the_rules_catch_a_forbidden_import(tmp_path, monkeypatch, source, rule):
    """The checker itself: a planted forbidden import is reported."""
    path = tmp_path / source
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"def f():\n    {rule}\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "_modules", lambda: iter([path]))
    assert len(list(_violations())) == 1


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path) -> Iterator[str]:
    """Every dotted name an import statement may resolve to (a module, or a name in one)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _graph() -> Dict[str, Set[str]]:
    """module -> the modules of ours it imports (the longest known prefix of each import)."""
    paths = {_module_name(path): path for path in _modules()}
    graph = {}
    for name, path in paths.items():
        edges = set()
        for target in _targets(path):
            parts = target.split(".")
            known = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in paths), None)
            if known and known != name:
                edges.add(known)
        graph[name] = edges
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def test_no_import_cycle_between_our_modules():
    assert _cycles(_graph()) == []


def test_nothing_imports_the_entry_point_module():
    importers = sorted(name for name, edges in _graph().items() if "cli.main" in edges)
    assert importers == []


def test_the_cycle_check_catches_a_cycle_through_a_function_level_import(tmp_path, monkeypatch):
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "__init__.py").write_text("")
    (tmp_path / "cli" / "a.py").write_text("from cli.b import run\n")
    (tmp_path / "cli" / "b.py").write_text("def run():\n    from cli import a\n")
    (tmp_path / "cli" / "c.py").write_text("from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "_modules", lambda: iter(sorted((tmp_path / "cli").glob("*.py"))))
    assert _cycles(_graph()) == [["cli.a", "cli.b"]]
