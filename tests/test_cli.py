"""The command line: results on stdout, errors naming key path / value / accepted values, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return str(p)


BASE = """
name: t
model: {catalog: deepseek-v3, weight_precision: fp8}
cluster: {device: h200_sxm, nodes: 2, devices_per_node: 8}
workload:
  input_tokens: 4000
  output_tokens: 1000
"""


def test_evaluate_default_scenario_json_has_schema_and_breakdowns():
    res = run("evaluate", str(DEFAULT), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["schema"] == "moeplan.evaluate/2"
    assert doc["plan"]["moe_ep"] == 16
    for phase in ("prefill", "decode"):
        ph = doc[phase]
        assert ph["throughput_tok_per_s_per_device"] > 0
        assert ph["memory_bytes"]["used_bytes"] <= ph["memory_bytes"]["capacity_bytes"]
        names = {o["name"] for layer in ph["step"]["layers"] for o in layer["ops"]}
        assert {"attn.core", "moe.dispatch", "moe.experts_up_gate", "moe.combine"} <= names
        assert {"comm_exposed", "comm_overlapped"} <= set(ph["step"]["by_resource_s"])
    assert doc["decode"]["expert_tokens_per_local_expert"] > 0


def test_evaluate_human_output_is_compact_and_verbose_adds_breakdowns():
    res = run("evaluate", str(DEFAULT))
    assert res.exit_code == 0, res.output
    assert "TPOT" in res.output and "Summary" in res.output and "Per-device memory" not in res.output
    assert "-v:" in res.output
    res = run("evaluate", str(DEFAULT), "-v")
    assert res.exit_code == 0, res.output
    for title in ("Per-device memory", "routed expert weight", "Step time by resource", "Per-layer time",
                  "Decode step by op"):
        assert title in res.output


def test_unknown_device_suggests_closest(tmp_path):
    res = run("evaluate", write(tmp_path, BASE.replace("h200_sxm", "h200")), "--plan", "attn_dp=16,moe_ep=16")
    assert res.exit_code == 2
    assert "cluster.device" in res.output and "h200_sxm" in res.output
    assert "Traceback" not in res.output


def test_unknown_model_suggests_closest(tmp_path):
    res = run("evaluate", write(tmp_path, BASE.replace("deepseek-v3", "deepseek-v4")), "--plan", "attn_dp=16,moe_ep=16")
    assert res.exit_code == 2
    assert "model.catalog" in res.output and "deepseek-v3" in res.output


def test_bad_unit_names_key_path(tmp_path):
    text = BASE + "  slo: {tpot: 50 millis}\n"
    res = run("evaluate", write(tmp_path, text), "--plan", "attn_dp=16,moe_ep=16")
    assert res.exit_code == 2
    assert "workload.slo.tpot" in res.output and "50 millis" in res.output and "ms" in res.output


def test_misspelt_key_names_its_path(tmp_path):
    res = run("evaluate", write(tmp_path, BASE.replace("nodes: 2", "nodez: 2")), "--plan", "attn_dp=16,moe_ep=16")
    assert res.exit_code == 2
    assert "cluster.nodez" in res.output


@pytest.mark.parametrize(("plan", "field"), [
    ("attn_dp=8,moe_ep=8", "attn_tp*attn_dp*pp*dp"),
    ("attn_dp=16,moe_ep=16,redundant_experts=8", "moe_ep"),
    ("attn_tp=3,attn_dp=5,moe_ep=15", "attn_tp"),
    ("atn_dp=16", "--plan.atn_dp"),
])
def test_impossible_plans_exit_2_naming_the_field(plan, field):
    res = run("evaluate", str(DEFAULT), "--plan", plan)
    assert res.exit_code == 2, res.output
    assert field in res.output


def test_plan_that_does_not_fit_exits_1_with_shortfall(tmp_path):
    # DeepSeek-V3 FP8 is ~671 GB of weights: 84 GB per device over 8 H100 80GB cannot fit
    text = BASE.replace("nodes: 2", "nodes: 1").replace("h200_sxm", "h100_sxm")
    res = run("evaluate", write(tmp_path, text), "--plan", "attn_dp=8,moe_ep=8")
    assert res.exit_code == 1, res.output
    assert "memory" in res.output and "short by" in res.output


def test_cost_gemm_json():
    res = run("cost", "gemm", "--device", "h200_sxm", "--m", "4096", "--k", "7168", "--n", "4096", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["flops"] == 2 * 4096 * 7168 * 4096
    assert doc["bound"] == "compute" and doc["seconds"] > 0


def test_cost_attention_json():
    res = run("cost", "attention", "--device", "h100_sxm", "--phase", "decode", "--batch", "32", "--q-heads", "32",
              "--kv-heads", "8", "--head-dim", "128", "--context", "4096", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["bound"] in ("memory", "overhead") and doc["bytes"] > 0


def test_cost_unknown_device():
    res = run("cost", "gemm", "--device", "h100", "--m", "1", "--k", "1", "--n", "1")
    assert res.exit_code == 2 and "h100_sxm" in res.output


@pytest.mark.parametrize("what", ["devices", "models"])
def test_catalog_json_lists_sources(what):
    res = run("catalog", what, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert len(doc["items"]) >= 10
    assert all(item["sources"] for item in doc["items"])


def test_schedule_command_shows_hidden_all_to_all():
    res = run("schedule", str(ROOT / "scenarios" / "validation" / "ds_d_h800_decode_ep144.yaml"), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    moe = doc["layers"]["moe"]
    assert doc["schema"] == "moeplan.schedule/1"
    # the overlapped layer is shorter than running its ops back to back, and no shorter than its busiest resource
    assert moe["makespan_s"] < moe["no_overlap_s"]
    assert moe["makespan_s"] >= moe["busiest_resource_s"] * (1 - 1e-9)


REAL_LOADS = ROOT / "planner" / "catalog" / "expert_loads" / "deepseek_v3_routing_counts.csv"


def test_loads_synth_round_trips_through_place(tmp_path):
    out = tmp_path / "loads.csv"
    res = run("loads", "synth", "--experts", "256", "--layers", "3", "--top-k", "8", "--skew", "1.5", "--seed", "3",
              "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("#")
    res = run("place", str(ROOT / "scenarios" / "validation" / "ds_prof_p_h800_prefill_ep32.yaml"),
              "--expert-load", str(out), "--redundant", "32", "--time-limit", "0.3", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    layer = doc["layers"][0]
    assert len(layer["physical_to_logical"]) == 288 and sum(layer["replica_counts"]) == 288
    summary = doc["summary"]["methods"]
    assert summary["cpsat"]["mean_imbalance"] <= summary["greedy_global"]["mean_imbalance"] + 1e-9


def test_place_rejects_a_load_file_for_another_model(tmp_path):
    out = tmp_path / "loads.csv"
    assert run("loads", "synth", "--experts", "64", "--layers", "2", "--out", str(out)).exit_code == 0
    res = run("place", str(ROOT / "scenarios" / "validation" / "ds_prof_p_h800_prefill_ep32.yaml"),
              "--expert-load", str(out))
    assert res.exit_code == 2
    assert "--expert-load" in res.output and "64 experts" in res.output


def test_evaluate_uses_measured_imbalance_from_a_load_file(tmp_path):
    text = (ROOT / "scenarios" / "validation" / "ds_prof_p_h800_prefill_ep32.yaml").read_text()
    text = text.replace("plan: attn_tp=1,attn_dp=32,moe_ep=32,moe_tp=1,micro_batches=2",
                        "plan: attn_tp=1,attn_dp=32,moe_ep=32,moe_tp=1,micro_batches=2,redundant_experts=32")
    text = text.replace("  prefill_tokens_per_device: 16384\n",
                        f"  prefill_tokens_per_device: 16384\n  expert_load: {REAL_LOADS}\n")
    p = tmp_path / "s.yaml"
    p.write_text(text)
    res = run("evaluate", str(p), "--json", "--overlap-model", "closed-form")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    # the CP-SAT placement of the real DeepSeek-V3 counts on 288 slots / 32 devices is within 1 % of perfect
    assert 1.0 <= doc["scenario"]["expert_imbalance"] <= 1.01


def test_evaluate_document_lists_device_sources_with_scenario_overrides(tmp_path):
    text = BASE.replace("cluster: {device: h200_sxm, nodes: 2, devices_per_node: 8}",
                        "cluster: {device: h200_sxm, nodes: 2, devices_per_node: 8, "
                        "scale_out: {bandwidth: 200 Gb/s}}")
    assert text != BASE
    r = run("evaluate", write(tmp_path, text), "--plan", "attn_dp=16,moe_ep=16", "--json")
    assert r.exit_code == 0, r.output
    src = json.loads(r.output)["device"]["sources"]
    over = src["scale_out.bytes_per_s"]
    assert over["value"] == 25e9 and over["source"] == "scenario file: cluster.scale_out.bandwidth"
    assert "catalog 5e+10" in over["note"]
    assert src["hbm_bytes_per_s"]["confidence"] == "datasheet"  # untouched numbers keep the catalog's source
    doc = json.loads(r.output)
    assert set(doc["schedule"]["layers"]) == {"moe", "dense"} and doc["schedule"]["micro_batches"] == 1
