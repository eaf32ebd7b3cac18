"""`moeplan compare`: two deployments' metrics side by side with ratios, sides from any scenario file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.analysis import compare as cmp
from planner.analysis.compare import parse_side
from planner.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "scenarios" / "deepseek_v3_h200_16.yaml")
ASCEND_16 = str(ROOT / "scenarios" / "ascend_910b_deepseek_v3_16cards.yaml")
ASCEND_64 = str(ROOT / "scenarios" / "ascend_910b_deepseek_v3_64cards.yaml")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(("spec", "want"), [
    ("attn_dp=16,moe_ep=16", (None, "attn_dp=16,moe_ep=16")),
    ("other.yaml", ("other.yaml", None)),
    ("dir/other.yml:attn_tp=8,attn_dp=8,moe_ep=64", ("dir/other.yml", "attn_tp=8,attn_dp=8,moe_ep=64")),
    ("x.yaml:", ("x.yaml", None)),
])
def test_parse_side(spec, want):
    assert parse_side(spec) == want


@pytest.fixture(scope="module")
def ascend_doc():
    r = run("compare", ASCEND_16, "--baseline", ASCEND_16, "--candidate", ASCEND_64, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_cross_node_ep_compare_document(ascend_doc):
    doc = ascend_doc
    assert doc["schema"] == "moeplan.compare/2"
    assert doc["baseline"]["devices"] == 16 and doc["candidate"]["devices"] == 64
    m = {row["name"]: row for row in doc["metrics"]}
    for row in doc["metrics"]:  # the ratio is exactly candidate / baseline
        if row["baseline"]:
            assert row["ratio"] == pytest.approx(row["candidate"] / row["baseline"], rel=1e-12)
    assert m[cmp.DEVICES]["ratio"] == 4.0
    # 4x the cards spread the routed experts 4x thinner: weights per card fall (attention/dense stay TP8)
    w = m["weights per device"]
    assert w["ratio"] < 0.5 and w["improved"] is True
    # EP64 gives every card's experts the tokens of all 64 ranks: density must rise
    assert m[cmp.DECODE_DENSITY]["ratio"] > 2
    # both sides carry their full evaluate documents, each costed on its own cluster
    assert doc["baseline"]["evaluate"]["scenario"]["devices"] == 16
    assert doc["candidate"]["evaluate"]["plan"]["moe_ep"] == 64


def test_end_to_end_latency_is_ttft_plus_output_times_effective_tpot(ascend_doc):
    m = {row["name"]: row for row in ascend_doc["metrics"]}
    out = ascend_doc["candidate"]["evaluate"]["scenario"]["output_tokens"]
    for side in ("baseline", "candidate"):
        assert m[cmp.E2E][side] == pytest.approx(m[cmp.TTFT][side] + out * m[cmp.TPOT][side])
        # both sides are aggregated: a user's TPOT is the whole cycle over its tokens, not the decode step's
        agg = ascend_doc[side]["evaluate"]["aggregated"]
        assert m[cmp.TPOT][side] == pytest.approx(1 / agg["user_tok_per_s"], rel=1e-12)
        assert m[cmp.TPOT][side] > m[cmp.DECODE_TPOT][side] == ascend_doc[side]["evaluate"]["decode"]["tpot_s"]


def test_plan_strings_on_one_scenario_and_table():
    r = run("compare", DEFAULT, "--baseline", "attn_tp=8,attn_dp=2,moe_ep=16,redundant_experts=16",
            "--candidate", "attn_dp=16,moe_ep=16,redundant_experts=16,micro_batches=2,overlap=two_batch")
    assert r.exit_code == 0, r.output
    assert "all-to-all time per decode step" in r.output and "ratio" in r.output


def test_candidate_defaults_to_plans_best_deployment():
    r = run("compare", DEFAULT, "--baseline", "attn_tp=8,attn_dp=2,moe_ep=16,redundant_experts=16", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    cand = doc["candidate"]
    assert cand["label"].startswith("candidate: plan's best")
    assert sum(p["devices"] for p in cand["pools"]) == cand["devices"] <= 16
    for p in cand["pools"]:  # every pool's plan covers its devices (DP replicas folded in)
        plan = p["plan"]
        assert plan["attn_tp"] * plan["attn_dp"] * plan["pp"] * plan["dp"] == p["devices"]
    m = {row["name"]: row for row in doc["metrics"]}
    assert m[cmp.THROUGHPUT_PER_DEVICE]["candidate"] == pytest.approx(
        cand["output_tok_per_s"] / cand["devices"])
    if cand["mode"] == "disaggregated":  # the prefill pool's figures come from its own evaluation
        assert m[cmp.TTFT]["candidate"] == cand["prefill_evaluate"]["prefill"]["ttft_s"]
        assert m[cmp.TPOT]["candidate"] == cand["evaluate"]["decode"]["tpot_s"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--baseline", "attn_dp=7"], "plan.attn_tp*attn_dp*pp*dp: got 7"),
    (["--baseline", "missing.yaml"], "missing.yaml"),
    (["--baseline", "attn_dp=16,moe_ep=16", "--candidate", "bogus=3"], "bogus"),
])
def test_bad_sides_exit_2(args, needle):
    r = run("compare", DEFAULT, *args)
    assert r.exit_code == 2, r.output
    assert needle in r.output


def test_verbose_shows_both_sides_breakdowns():
    r = run("compare", ASCEND_16, "--baseline", ASCEND_16, "--candidate", ASCEND_64, "-v")
    assert r.exit_code == 0, r.output
    assert r.output.count("Per-device memory") == 2 and "Compare (ratio" in r.output
