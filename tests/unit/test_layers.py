"""Imports flow one way: config/errors -> models -> memory -> tools/agents -> graphs -> app/cli."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "hivegraph"
RANK = {
    "config": 0, "errors": 0, "registry": 0, "postgres": 0,
    "models": 1,
    "memory": 2,
    "tools": 3, "agents": 3, "integrations": 3,
    "graphs": 4,
    "app": 5, "teamspec": 5, "server": 5, "cli": 6, "cli_run": 6, "cli_memory": 6,
}  # fmt: skip


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hivegraph."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hivegraph."))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    here = layer("hivegraph." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    assert here in RANK, f"{path}: unknown layer {here!r}; add it to RANK"
    upward = [m for m in imports(path) if RANK[layer(m)] > RANK[here]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({here}) imports a higher layer: {upward}"


def test_memory_never_imports_chat_models() -> None:
    for path in (PACKAGE / "memory").rglob("*.py"):
        assert "hivegraph.models.base" not in imports(path), path
