"""Round trip: for every shipped scenario, the deployment strings of ``plan --json`` evaluate with ``evaluate``
to the same figures (throughput, TTFT, TPOT, memory per pool), and ``--pick K`` chooses deployment K."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
REL = 1e-9
"""Both commands cost every pool with the same functions and inputs: only float rounding may differ."""


def run(*args: str) -> dict:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_plan_deployments_evaluate_to_the_same_figures(path):
    plan = run("plan", str(path), "--json", "--top", "2")
    chosen = plan["chosen_breakdown"]["deployment"]
    assert chosen["text"] == plan["top"][0]["deployment"]
    for row in plan["top"]:
        ev = run("evaluate", str(path), "--plan", row["deployment"], "--overlap-model", plan["overlap_model"],
                 "--json")["deployment"]
        assert ev["text"] == row["deployment"]                       # the printed value parses back unchanged
        assert ev["mode"] == row["mode"] and ev["devices"] == row["devices_used"]
        for key in ("output_tok_per_s", "ttft_s", "tpot_s"):
            assert ev[key] == pytest.approx(row[key], rel=REL), key
        assert [p["role"] for p in ev["pools"]] == [p["role"] for p in row["pools"]]
        for got, want in zip(ev["pools"], row["pools"], strict=True):
            assert got["replicas"] == want["replicas"] and got["devices"] == want["devices"]
            assert got["memory_used_bytes"] == pytest.approx(want["memory_used_bytes"], rel=REL)


def test_pick_chooses_deployment_k_and_out_of_range_exits_2():
    default = str(ROOT / "scenarios" / "deepseek_v3_h200_16.yaml")
    doc = run("plan", default, "--json", "--top", "3", "--pick", "2")
    assert doc["chosen"] == 1
    assert doc["chosen_breakdown"]["deployment"]["text"] == doc["top"][1]["deployment"]
    assert doc["chosen_breakdown"]["deployment"]["output_tok_per_s"] == pytest.approx(doc["top"][1]["output_tok_per_s"])
    res = CliRunner().invoke(main, ["plan", default, "--top", "3", "--pick", "4"])
    assert res.exit_code == 2 and "--pick: got 4; accepted: 1 .. 3" in res.output
