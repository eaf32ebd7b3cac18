"""A deployment through every command that takes --plan: evaluate (both pools, the rate match, why), compare,
schedule (the pool by phase, the plan's micro-batches, the decode batch printed) and place (scenario and plan
named in the document)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "scenarios" / "deepseek_v3_h200_16.yaml")
PREFILL = "attn_tp=2,attn_dp=4,moe_ep=8,micro_batches=2"
DECODE = "attn_dp=8,moe_ep=8"
DISAGG = f"prefill: 1 x {PREFILL}; decode: 1 x {DECODE}"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def evaluated() -> dict:
    res = run("evaluate", DEFAULT, "--plan", DISAGG, "--overlap-model", "closed-form", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_evaluate_json_has_both_pools_and_the_rate_match(evaluated):
    dep, wl = evaluated["deployment"], evaluated["scenario"]
    pre, dec = dep["pools"]
    assert (pre["role"], dec["role"]) == ("prefill", "decode")
    assert evaluated["prefill_pool"]["plan"]["attn_tp"] == 2 and evaluated["plan"]["attn_tp"] == 1
    # intake = prefill input tok/s / prompt tokens; service = decode output tok/s / answer tokens
    assert dep["prefill_requests_per_s"] == pytest.approx(pre["input_tok_per_s"] / wl["input_tokens"])
    assert dep["decode_requests_per_s"] == pytest.approx(dec["output_tok_per_s"] / wl["output_tokens"])
    binds = "prefill" if dep["prefill_requests_per_s"] < dep["decode_requests_per_s"] else "decode"
    assert dep["bottleneck"] == binds
    # delivered = the smaller of the decode rate and what the prefill pool feeds it
    assert dep["output_tok_per_s"] == pytest.approx(min(dec["output_tok_per_s"], pre["input_tok_per_s"]
                                                        * wl["output_tokens"] / wl["input_tokens"]))
    assert dep["ttft_s"] == evaluated["prefill_pool"]["prefill"]["ttft_s"]   # the prefill pool's TTFT
    assert dep["tpot_s"] == evaluated["decode"]["tpot_s"]                    # the decode pool's step
    # a prefill pool only prefills: its memory is its prefill phase's
    assert pre["memory_used_bytes"] == evaluated["prefill_pool"]["prefill"]["memory_bytes"]["used_bytes"]
    assert any(f"The {binds} pool binds" in w for w in dep["why"])
    assert any("Expert imbalance assumed 1.00" in w and "moeplan place" in w for w in dep["why"])


def test_evaluate_terminal_shows_both_pools_and_why():
    res = run("evaluate", DEFAULT, "--plan", DISAGG, "--overlap-model", "closed-form")
    assert res.exit_code == 0, res.output
    assert f"prefill pool: 1 x {PREFILL}" in res.output and f"decode pool: 1 x {DECODE}" in res.output
    assert "Pools (disaggregated; bottleneck:" in res.output and "requests/s" in res.output
    assert "Decode batch" in res.output and "stopped it" in res.output


def test_a_pool_that_does_not_fit_exits_1_naming_the_pool():
    res = run("evaluate", DEFAULT, "--plan", "prefill: 1 x attn_dp=2,moe_ep=2; decode: 1 x attn_dp=8,moe_ep=8")
    assert res.exit_code == 1 and "the prefill pool's prefill phase needs" in res.output


def test_compare_takes_deployments_on_both_sides():
    res = run("compare", DEFAULT, "--baseline", "2 x attn_dp=8,moe_ep=8", "--candidate", DISAGG, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["baseline"]["mode"] == "aggregated" and doc["baseline"]["devices"] == 16
    assert [p["role"] for p in doc["candidate"]["pools"]] == ["prefill", "decode"]
    assert doc["candidate"]["prefill_evaluate"]["plan"]["attn_tp"] == 2


def test_schedule_uses_the_plans_micro_batches_and_prints_the_decode_batch(evaluated):
    res = run("schedule", DEFAULT, "--plan", DISAGG, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["micro_batches"] == 1 and doc["plan"]["attn_dp"] == 8           # the decode pool, 1 micro-batch
    assert doc["decode_batch_per_device"] == evaluated["decode"]["sequences_per_device"]
    pre = json.loads(run("schedule", DEFAULT, "--plan", DISAGG, "--phase", "prefill", "--json").output)
    assert pre["micro_batches"] == 2 and pre["plan"]["attn_tp"] == 2             # the prefill pool's two batches
    text = run("schedule", DEFAULT, "--plan", DISAGG).output
    assert f"decode batch: {doc['decode_batch_per_device']:,.1f} sequences per device" in text


def test_place_names_scenario_and_plan(tmp_path):
    loads = tmp_path / "l.csv"
    assert run("loads", "synth", "--layers", "2", "--out", str(loads)).exit_code == 0
    res = run("place", DEFAULT, "--plan", DISAGG, "--expert-load", str(loads), "--time-limit", "0.05", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["scenario"] == "DeepSeek-V3 on 16 x H200" and doc["plan"] == DECODE
    assert doc["config"]["num_devices"] == 8


def test_why_names_memory_as_the_decode_batch_limit_with_its_arithmetic():
    path = str(ROOT / "scenarios" / "ascend_910b_deepseek_v3_16cards.yaml")
    dep = "1 x attn_tp=8,attn_dp=2,moe_ep=16,dense_tp=8,overlap=single_batch"
    doc = json.loads(run("evaluate", path, "--plan", dep, "--overlap-model", "closed-form", "--json").output)
    d = doc["decode"]
    assert d["batch_limit"] == "memory"
    # per device: KV / (sequences per device x attn_tp 8) is what one more sequence on an attention rank adds;
    # it must exceed what is free, else the batch search would have taken it
    per_rank_seq = d["memory_bytes"]["kv_cache_bytes"] / (d["sequences_per_device"] * 8)
    assert per_rank_seq > d["memory_bytes"]["free_bytes"] >= 0
    line = next(w for w in doc["deployment"]["why"] if w.startswith("Decode batch"))
    assert "memory stopped it" in line and f"{per_rank_seq / 2**30:,.3f} GiB" in line


def test_why_of_an_aggregated_pool_says_the_effective_tpot_misses_the_slo():
    doc = json.loads(run("evaluate", DEFAULT, "--overlap-model", "closed-form", "--json").output)
    dep = doc["deployment"]
    assert dep["mode"] == "aggregated" and dep["tpot_s"] > doc["slo"]["tpot_s"]
    assert any("effective TPOT of" in w for w in dep["why"])
