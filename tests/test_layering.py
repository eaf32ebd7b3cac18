"""Imports point one way (STYLE.md): cost_models is pure and imports no YAML, CLI, rendering or solver code,
and nothing under cost_models imports planner."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BANNED = {"yaml", "click", "rich", "ortools", "planner", "pydantic"}


@pytest.mark.parametrize("path", sorted((ROOT / "cost_models").glob("*.py")), ids=lambda p: p.name)
def test_cost_models_import_nothing_impure(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in BANNED, f"{path.name} imports {name}"


def test_yaml_is_read_only_in_scenario_module():
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "planner").rglob("*.py")
             if "import yaml" in p.read_text()]
    assert users == ["planner/scenario.py"]
