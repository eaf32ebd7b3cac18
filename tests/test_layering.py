"""Imports point one way (STYLE.md, README "Layout"):

cost_models <- planner.catalog <- planner.inputs <- planner.cpsat <- planner.analysis <- planner.search
<- planner.documents <- planner.render / planner.emit <- planner.cli

A module may import its own package and the packages to its left, never to its right; imports under
``if TYPE_CHECKING:`` are for annotations only and are not counted. cost_models is pure (no YAML, CLI, rendering,
solver or planner imports), YAML is read in one module, and documents and renderers never reach a solver:
they import only the solver-free result modules of planner.cpsat, so drawing a result cannot start a solve.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BANNED = {"yaml", "click", "rich", "ortools", "planner", "pydantic"}
RANK = {"planner.catalog": 1, "planner.inputs": 2, "planner.cpsat": 3, "planner.analysis": 4, "planner.search": 5,
        "planner.documents": 6, "planner.render": 7, "planner.emit": 7, "planner.cli": 8}
SOLVER_FREE_CPSAT = {"planner.cpsat.schedule_result", "planner.cpsat.placement_result", "planner.cpsat.stats",
                     "planner.cpsat.placement_greedy", "planner.cpsat.deployment_instance", "planner.cpsat.quantize",
                     "planner.cpsat.pipeline_result", "planner.cpsat.pipeline_families", "planner.cpsat.budget",
                     "planner.cpsat.schedule_bound", "planner.cpsat.schedule_exact",
                     "planner.cpsat.schedule_modes"}
"""The planner.cpsat modules that import no solver: results, instances and the greedy baselines."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _package(module: str) -> str | None:
    return next((p for p in RANK if module == p or module.startswith(p + ".")), None)


def _runtime_imports(path: Path) -> list[str]:
    """Every imported module name, except inside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    names = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


PLANNER = sorted((ROOT / "planner").rglob("*.py"))


@pytest.mark.parametrize("path", sorted((ROOT / "cost_models").glob("*.py")), ids=lambda p: p.name)
def test_cost_models_import_nothing_impure(path):
    for name in _runtime_imports(path):
        assert name.split(".")[0] not in BANNED, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", PLANNER, ids=lambda p: _module_name(p))
def test_imports_point_one_way(path):
    me = _module_name(path)
    mine = _package(me)
    if mine is None:
        return  # planner/__init__.py
    for name in _runtime_imports(path):
        other = _package(name)
        if other is None or other == mine:
            continue
        assert RANK[other] < RANK[mine], f"{me} (rank {RANK[mine]}) imports {name} (rank {RANK[other]})"


@pytest.mark.parametrize("path", [p for p in PLANNER if _package(_module_name(p)) in ("planner.documents",
                                                                                      "planner.render")],
                         ids=lambda p: _module_name(p))
def test_documents_and_renderers_never_reach_a_solver(path):
    for name in _runtime_imports(path):
        if name.startswith("planner.cpsat."):
            module = ".".join(name.split(".")[:3])
            assert module in SOLVER_FREE_CPSAT, f"{_module_name(path)} imports {name}"
        assert not name.startswith(("planner.analysis", "planner.search", "ortools")), \
            f"{_module_name(path)} imports {name}"


def test_solver_free_cpsat_modules_import_no_solver():
    for module in sorted(SOLVER_FREE_CPSAT):
        path = ROOT / (module.replace(".", "/") + ".py")
        for name in _runtime_imports(path):
            assert not name.startswith("ortools"), f"{module} imports {name}"
            if name.startswith("planner.cpsat."):
                assert ".".join(name.split(".")[:3]) in SOLVER_FREE_CPSAT, f"{module} imports {name}"


def _modules_loaded_by(commands: list[list[str]], prefixes: tuple[str, ...]) -> str:
    """The modules starting with one of ``prefixes`` that a fresh interpreter has loaded after running each
    ``moeplan`` command (each must exit 0), as the printed sorted list."""
    code = ("import sys\nfrom click.testing import CliRunner\nfrom planner.cli import main\n"
            f"for args in {commands!r}:\n"
            "    r = CliRunner().invoke(main, args)\n"
            "    assert r.exit_code == 0, (args, r.output)\n"
            f"print(sorted(m for m in sys.modules if (m + '.').startswith({prefixes!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return out.stdout.strip()


def test_help_catalog_and_cost_do_not_import_the_solver():
    loaded = _modules_loaded_by([["--help"], ["plan", "--help"], ["catalog", "devices", "--json"], ["catalog", "models"],
                                 ["cost", "gemm", "--device", "h200_sxm", "--m", "64", "--k", "7168", "--n", "4096"]],
                                ("ortools.", "numpy.", "pandas."))
    assert loaded == "[]", loaded[:500]


def test_evaluate_of_the_default_scenario_does_not_import_the_solver():
    # every overlap schedule behind it (prefill with comm kernels on SMs, the decode batch probes, the decode
    # schedules the document shows) is solved to a proven optimum by planner/cpsat/schedule_exact.py; the
    # serving/training kind check reads the file without the training reader (planner.inputs.training)
    loaded = _modules_loaded_by([["evaluate", "scenarios/deepseek_v3_h200_16.yaml", "--json"]],
                                ("ortools.", "planner.inputs.training.", "cost_models.training."))
    assert loaded == "[]", loaded[:500]


def test_plan_json_of_a_scenario_without_router_counts_does_not_import_numpy_or_the_solver():
    # numpy serves only synthetic router counts (planner.inputs.loads.synth_loads) and placement; its import
    # (with its BLAS threads) cost plan --json about 0.3 s of CPU on the 2-core machine; the default scenario's
    # deployment split is exact enumeration and its decode schedules are proved by schedule_exact
    loaded = _modules_loaded_by([["plan", "scenarios/deepseek_v3_h200_16.yaml", "--json"]],
                                ("ortools.", "numpy.", "pandas."))
    assert loaded == "[]", loaded[:500]


def test_yaml_is_read_only_in_scenario_module():
    # reader.py holds the bounded loader (no aliases, no duplicate keys, depth cap); scenario.py the dumper
    users = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "planner").rglob("*.py")
                   if "import yaml" in p.read_text())
    assert users == ["planner/inputs/reader.py", "planner/inputs/scenario.py"]
