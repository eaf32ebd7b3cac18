"""Issue 12 regression tests, the one writer and the abort path: --out / --export refuse links, device nodes,
existing files without --force and missing folders (exit 2, nothing half-written), and stdout to /dev/full
exits 2 with one line and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.inputs import files

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = str(ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml")
SYNTH = ["loads", "synth", "--experts", "8", "--layers", "2", "--top-k", "2"]


def run(*args: str):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    return res


def test_out_refuses_to_replace_an_existing_file_without_force(tmp_path):
    out = tmp_path / "l.csv"
    assert run(*SYNTH, "--out", out).exit_code == 0
    out.write_text("mine")
    res = run(*SYNTH, "--out", out)
    assert res.exit_code == 2 and "--out" in res.output and "--force" in res.output
    assert out.read_text() == "mine"
    assert run(*SYNTH, "--out", out, "--force").exit_code == 0
    assert out.read_text().startswith("# synth_loads(")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.csv"]  # no temporary file left


def test_out_into_a_missing_folder_is_exit_2(tmp_path):
    res = run(*SYNTH, "--out", tmp_path / "nodir" / "x.csv")
    assert res.exit_code == 2 and "--out" in res.output and "does not exist" in res.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--out", "--export"])
def test_a_symlink_target_is_refused_and_kept(tmp_path, option):
    real = tmp_path / "real.json"
    real.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    args = [*SYNTH, "--out", link] if option == "--out" else ["evaluate", SCENARIO, "--export", link]
    res = run(*args, "--force")
    assert res.exit_code == 2 and option in res.output and "symbolic link" in res.output
    assert link.is_symlink() and real.read_text() == "keep"


def test_a_device_node_is_refused_even_with_force():
    res = run(*SYNTH, "--out", "/dev/null", "--force")
    assert res.exit_code == 2 and "not a regular file" in res.output
    assert Path("/dev/null").is_char_device()


def test_export_refuses_an_existing_file_before_any_work(tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old")
    res = run("evaluate", SCENARIO, "--export", out)
    assert res.exit_code == 2 and "--export" in res.output and "exists" in res.output and out.read_text() == "old"
    assert run("evaluate", SCENARIO, "--export", out, "--force").exit_code == 0
    assert '"schema"' in out.read_text()


def test_a_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "t.csv"
    target.write_text("old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(files.FileWriteError, match="No space left on device"):
        files.write_text_atomic(target, "new" * 1000, force=True)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["catalog", "devices"], ["loads", "synth", "--layers", "2"],
                                  ["evaluate", SCENARIO, "--json"]])
def test_stdout_to_dev_full_is_one_line_exit_2(args):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", "from planner.cli import main; main()", *args], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "cannot write" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


def test_an_escaped_arithmetic_error_is_exit_2_without_traceback(monkeypatch):
    import planner.analysis.evaluate as ev

    def boom(*a, **k):
        raise OverflowError("math range error")
    monkeypatch.setattr(ev, "evaluate_scenario", boom)
    res = run("evaluate", SCENARIO)
    assert res.exit_code == 2 and "OverflowError" in res.output and "out of the range" in res.output


def test_an_escaped_bug_is_exit_1_internal_error_without_traceback(monkeypatch):
    import planner.analysis.evaluate as ev

    def boom(*a, **k):
        raise KeyError("missing")
    monkeypatch.setattr(ev, "evaluate_scenario", boom)
    res = run("evaluate", SCENARIO)
    assert res.exit_code == 1 and "internal error (KeyError" in res.output
