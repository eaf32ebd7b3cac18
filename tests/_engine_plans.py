"""``plan SCENARIO --emit E --json`` of every shipped serving scenario, run once per engine per test session
(shared by tests/test_emit_headroom.py and tests/test_engine_parsers.py: the searches are the slow part, about
4 s each). ``--emit E`` implies ``--engine E`` (tests/test_emit_headroom.py checks both give the same output)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from click.testing import CliRunner

from planner.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted((ROOT / "scenarios" / "validation").glob("*.yaml"))
SERVING_ENGINES = ("sglang", "vllm", "trtllm", "mindie")


def plan_json(path: Path, *args: str) -> tuple[int, dict | None, str]:
    """(exit code, the --json document when it exited 0, stderr when it did not)."""
    res = CliRunner().invoke(main, ["plan", str(path), *args, "--json"])
    doc = json.loads(res.stdout) if res.exit_code == 0 else None
    return res.exit_code, doc, res.stderr if res.exit_code else ""


@functools.cache
def emitted_plans(engine: str) -> dict[str, tuple[int, dict | None, str]]:
    """Scenario stem -> ``plan_json(path, "--emit", engine)`` for every shipped scenario."""
    return {p.stem: plan_json(p, "--emit", engine) for p in SCENARIOS}
