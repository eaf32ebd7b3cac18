"""Golden documents (STYLE.md rule 10): `evaluate` and `plan` of the bundled scenario, byte for byte.

A difference means a prediction, a plan or the document's shape changed. If that is on purpose, regenerate
with ``MOEPLAN_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py`` and commit the golden diff with the
change that caused it (bump the schema version in docs/schema/ if a key was removed, renamed or changed
meaning).

The documents store the scenario path as given on the command line, so the commands run from the repository
root with a relative path. Every CP-SAT solve behind them runs on one worker with a fixed seed, so the bytes
repeat as long as each overlap-schedule solve that stops early (status FEASIBLE) is stopped by its
deterministic-work limit (``planner.cpsat.schedule.WORK_UNITS_PER_S``) and not by its wall-clock cap
(``WALL_CAP_FACTOR`` x the limit, a safety net). A diff confined to one phase's step times (``layer_s``, ``exposed_comm_s``,
``ttft_s`` ...) that comes and goes with machine load means a wall-clock cap ended a schedule solve: fix the
limits, not this test.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SCENARIO = "scenarios/deepseek_v3_h200_16.yaml"
CASES = {
    "evaluate_deepseek_v3_h200_16.json": ("evaluate", SCENARIO, "--json"),
    "plan_deepseek_v3_h200_16.json": ("plan", SCENARIO, "--json", "--seed", "0"),
}
UPDATE = os.environ.get("MOEPLAN_UPDATE_GOLDEN") == "1"
REGENERATE = "MOEPLAN_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py"


@pytest.mark.parametrize("name", sorted(CASES))
def test_document_matches_its_golden_file(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = CASES[name]
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    got = res.stdout_bytes
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(got)
    assert path.is_file(), f"{path} is missing; create it with {REGENERATE}"
    want = path.read_bytes()
    if got != want:
        diff = difflib.unified_diff(want.decode().splitlines(), got.decode().splitlines(),
                                    f"tests/golden/{name}", f"moeplan {' '.join(args)}", lineterm="", n=2)
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"`moeplan {' '.join(args)}` no longer matches tests/golden/{name}. If the change is on "
                    f"purpose, regenerate with {REGENERATE} and commit the diff.\n{shown}", pytrace=False)
