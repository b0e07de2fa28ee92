"""The package map's rules (docs/architecture.md): what each package may import, read from the
source (every import statement, including those inside functions)."""
import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

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
        for line, module in _imports(path):
            top = module.split(".", 1)[0]
            if top in forbidden or top in third_party:
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
])
def test_the_rules_catch_a_forbidden_import(tmp_path, monkeypatch, source, rule):
    """The checker itself: a planted forbidden import is reported."""
    path = tmp_path / source
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"def f():\n    {rule}\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "_modules", lambda: iter([path]))
    assert len(list(_violations())) == 1
