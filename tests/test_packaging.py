"""Packaging: a wheel built from the sources plans the bundled default scenario with no source checkout.

The wheel test needs no network: the wheel is built with ``--no-build-isolation`` (setuptools from the test
extras), installed with ``--no-deps --no-index`` into a fresh virtual environment, and that environment reaches
the dependencies (click, ortools, numpy, ...) through one ``.pth`` line naming this interpreter's site-packages.
A ``.pth`` line only appends a directory to ``sys.path``; the ``.pth`` files inside it (among them the editable
install of this checkout) are not processed, so ``planner`` can only come from the installed wheel, which the
test checks. Measured on the 2-core development machine: about 18 s (wheel 5 s, install 3 s, plan 10 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from planner.cli.plan import DEFAULT_SCENARIO

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("planner", "cost_models")
SOURCES = ("pyproject.toml", "README.md", *PACKAGES)
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _data_files() -> set[str]:
    """Every non-Python file under the packages of this checkout, as wheel member names."""
    out = set()
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*"):
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts:
                out.add(p.relative_to(ROOT).as_posix())
    return out


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{args}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
    return res


def test_default_scenario_is_package_data_and_the_repository_copy_is_the_same_file() -> None:
    path = Path(str(DEFAULT_SCENARIO))
    assert path.is_file()
    assert path.parent == ROOT / "planner" / "scenarios_bundled"
    # scenarios/deepseek_v3_h200_16.yaml (README, golden files, tests) is a link to it: one copy, no drift
    assert (ROOT / "scenarios" / "deepseek_v3_h200_16.yaml").samefile(path)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (the build writes build/ and *.egg-info beside its input)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=IGNORE)
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    (whl,) = (tmp / "dist").glob("moeplan-*.whl")
    return whl


def test_wheel_holds_every_data_file_and_only_the_two_packages(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _data_files() - names
    assert not missing, f"package data missing from the wheel (pyproject [tool.setuptools.package-data]): {missing}"
    assert "planner/scenarios_bundled/deepseek_v3_h200_16.yaml" in names
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(PACKAGES)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = {line.split(":", 1)[1].split(">")[0].split("<")[0].strip() for line in meta.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert {"click", "ortools", "pyyaml", "rich", "pydantic", "numpy"} <= requires


def test_installed_wheel_plans_the_bundled_scenario_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    venv_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          cwd=tmp_path).stdout.strip())
    (venv_site / "_moeplan_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    where = _run([str(python), "-c", "import planner, cost_models; print(planner.__file__); "
                  "print(cost_models.__file__)"], cwd=elsewhere, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv_site) for p in where), where
    res = _run([str(venv / "bin" / "moeplan"), "plan"], cwd=elsewhere, env=env)
    assert res.stdout.startswith("DeepSeek-V3 on 16 x H200: ")
    assert "Top 5 deployments" in res.stdout and "Chosen (" in res.stdout and "decode layout attn_tp=" in res.stdout
