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
    assert "Top 5 deployments" in res.stdout and "Chosen (#1, " in res.stdout and "same figures: moeplan evaluate" in res.stdout


# --- citations point inside the repository or to the original public source ---------------------------------

OUTSIDE = ("specs.md", "published_deployments", "published_training", "/work/shared", "shared/reference",
           "shared/calibration")


def test_no_citation_points_at_a_file_outside_the_repository() -> None:
    here = Path(__file__).resolve()
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for top in (*PACKAGES, "scenarios", "tests", "benchmarks", "docs"):
        files += [p for p in (ROOT / top).rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".json")
                  and "__pycache__" not in p.parts and p != here]
    hits = [f"{p.relative_to(ROOT)}: {needle}" for p in files for needle in OUTSIDE
            if needle in p.read_text(encoding="utf-8")]
    assert not hits


def test_every_source_id_a_catalog_entry_cites_is_in_the_sources_file() -> None:
    import re

    from planner.catalog.devices import device_ids, device_sources
    from planner.catalog.models import model_ids, model_sources

    sources = (ROOT / "planner" / "catalog" / "SOURCES.md").read_text(encoding="utf-8")
    defined = set(re.findall(r"^\| ([A-Za-z0-9-]+) \|", sources, flags=re.MULTILINE))
    assert {"a", "g", "x", "x2", "bb", "C1", "M1", "DS-D"} <= defined
    cited: set[str] = set()
    texts = [s.source for i in device_ids() for s in device_sources(i).values()]
    texts += [s.source for i in model_ids() for s in model_sources(i).values()]
    for text in texts:
        if "SOURCES.md" not in text:
            continue
        after = text.split("SOURCES.md", 1)[1]
        # ids appear as "(a,g)", "(k: ...)", "(n,s,m)" or "C1, M1" right after the file name
        for group in re.findall(r"\(([a-z0-9]{1,2}(?:,[a-z0-9]{1,2})*)[:)]", after):
            cited.update(group.split(","))
        cited.update(re.findall(r"\b([CM][0-9]{1,2})\b", after))
    assert cited and cited <= defined, sorted(cited - defined)
