"""Serving paths the other tests leave out: the aggregated cycle, MTP, ``length_mix``, pp > 1 composition,
``compare`` with a router-count file, and ``plan --objective latency`` where aggregated layouts compete.

Hand-derived where the arithmetic is short, otherwise relations between outputs that a wrong composition breaks.
Everything here costs overlap in closed form (no CP-SAT) except the compare and plan tests.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cost_models import serving
from cost_models.parallel import ParallelDims, stage_layer_counts
from planner.cli import main
from planner.inputs.scenario import ScenarioError, load_scenario
from planner.search.plan import run_plan
from planner.search.validate import recost

ROOT = Path(__file__).resolve().parents[1]
TRT_AGG = ROOT / "scenarios" / "validation" / "trt_h200_aggregated.yaml"  # DeepSeek-R1, 8 x H200, ADP8 EP8
QWEN = ROOT / "scenarios" / "qwen3_235b_h200_8.yaml"  # 94 MoE layers, no dense layer
DEFAULT = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"
ROUTING_COUNTS = ROOT / "planner" / "catalog" / "expert_loads" / "deepseek_v3_routing_counts.csv"


def _evaluate(sc, dims=None, **workload):  # noqa: ANN001, ANN202
    wl = dataclasses.replace(sc.workload, **workload)
    return serving.evaluate(sc.model, sc.cluster, dims or sc.plan, wl)


# --- aggregated cycle ---------------------------------------------------------------------------------------

def test_aggregated_cycle_is_prefill_of_the_batch_times_the_stall_plus_the_decode_steps() -> None:
    sc = load_scenario(TRT_AGG)
    r = _evaluate(sc)
    b, inp, out = 128, 1024, 2048  # decode_batch_per_device, input, output of the scenario
    assert r.decode.sequences_per_device == b
    # one cycle per device: prefill 128 prompts of 1,024 tokens at the prefill rate, waiting through all
    # attn_dp = 8 ranks' prefills (EP ties the ranks together), then 2,048 decode steps of the batch
    prefill_s = b * inp / r.prefill.throughput_tok_per_s_per_device
    cycle_s = 8 * prefill_s + out * r.decode.step.step_s
    assert r.aggregated_output_tok_per_s_per_device == pytest.approx(b * out / cycle_s, rel=1e-12)
    assert r.aggregated_user_tok_per_s == pytest.approx(out / cycle_s, rel=1e-12)
    # the device delivers the batch's tokens: per-device rate = batch x per-user rate
    assert r.aggregated_output_tok_per_s_per_device == pytest.approx(b * r.aggregated_user_tok_per_s, rel=1e-12)
    # prefill time is taken out of decoding: below the decode-only rate of the same batch
    assert r.aggregated_output_tok_per_s_per_device < r.decode.throughput_tok_per_s_per_device


def test_aligned_prefill_waits_for_one_prefill_not_attn_dp() -> None:
    sc = load_scenario(TRT_AGG)
    stalled, aligned = _evaluate(sc), _evaluate(sc, aligned_prefill=True)
    assert serving.aggregated_prefill_stall(sc.plan, sc.workload) == 8.0  # attn_dp
    assert serving.aggregated_prefill_stall(sc.plan, dataclasses.replace(sc.workload, aligned_prefill=True)) == 1.0
    # without EP the ranks never meet, so nothing stalls
    assert serving.aggregated_prefill_stall(ParallelDims(attn_dp=8, moe_tp=8), sc.workload) == 1.0
    prefill_s = 128 * 1024 / stalled.prefill.throughput_tok_per_s_per_device
    decode_s = 2048 * stalled.decode.step.step_s
    # the cycle shrinks from 8 x prefill + decode to prefill + decode; the phases themselves are unchanged
    assert aligned.decode.step.step_s == stalled.decode.step.step_s
    ratio = aligned.aggregated_output_tok_per_s_per_device / stalled.aggregated_output_tok_per_s_per_device
    assert ratio == pytest.approx((8 * prefill_s + decode_s) / (prefill_s + decode_s), rel=1e-12)


# --- multi-token prediction ---------------------------------------------------------------------------------

def test_mtp_scenario_key_reaches_the_workload(tmp_path) -> None:
    p = tmp_path / "mtp.yaml"
    p.write_text(TRT_AGG.read_text().replace("\nworkload:\n", "\nworkload:\n  mtp: {tokens: 1, acceptance: 0.7}\n"))
    wl = load_scenario(p).workload
    assert (wl.mtp_tokens, wl.mtp_acceptance) == (1, 0.7)


def test_mtp_decodes_two_query_tokens_and_credits_the_accepted_ones() -> None:
    sc = load_scenario(TRT_AGG)
    plain, mtp = _evaluate(sc), _evaluate(sc, mtp_tokens=1, mtp_acceptance=0.7)
    d = mtp.decode
    # each of the 128 sequences pushes 1 + 1 query tokens per step; 1 + 1 x 0.7 = 1.7 tokens are kept
    assert d.tokens_per_device_per_step == 256
    assert d.throughput_tok_per_s_per_device == pytest.approx(128 * 1.7 / d.step.step_s, rel=1e-12)
    assert d.latency_s == pytest.approx(d.step.latency_s / 1.7, rel=1e-12)
    # the verify step is longer than a plain step but, memory-bound, far from 1.7x: MTP pays off at batch 128
    assert plain.decode.step.step_s < d.step.step_s < 1.7 * plain.decode.step.step_s
    assert d.throughput_tok_per_s_per_device > plain.decode.throughput_tok_per_s_per_device
    # aggregated: 2,048 output tokens take 2,048 / 1.7 steps
    prefill_s = 128 * 1024 / mtp.prefill.throughput_tok_per_s_per_device
    cycle_s = 8 * prefill_s + 2048 / 1.7 * d.step.step_s
    assert mtp.aggregated_output_tok_per_s_per_device == pytest.approx(128 * 2048 / cycle_s, rel=1e-12)


# --- length_mix ---------------------------------------------------------------------------------------------

def _with_workload(tmp_path: Path, base: Path, old: str, new: str) -> Path:
    text = base.read_text()
    assert old in text
    p = tmp_path / "s.yaml"
    p.write_text(text.replace(old, new))
    return p


def test_length_mix_costs_the_share_weighted_mean_lengths(tmp_path) -> None:
    mix = ("  length_mix:\n    - {input: 1000, output: 200, share: 3}\n"
           "    - {input: 5000, output: 1000, share: 1}\n")
    p = _with_workload(tmp_path, QWEN, "  input_tokens: 2000\n  output_tokens: 500\n", mix)
    sc = load_scenario(p)
    # input (3 x 1000 + 1 x 5000) / 4 = 2000; output (3 x 200 + 1 x 1000) / 4 = 400
    assert (sc.workload.input_tokens, sc.workload.output_tokens) == (2000, 400)
    fixed = load_scenario(_with_workload(tmp_path, QWEN, "  output_tokens: 500\n", "  output_tokens: 400\n"))
    assert sc.workload == fixed.workload  # the mix is exactly the mean workload, nothing else changes


def test_empty_length_mix_is_bad_input(tmp_path) -> None:
    p = _with_workload(tmp_path, QWEN, "  input_tokens: 2000\n  output_tokens: 500\n", "  length_mix: []\n")
    with pytest.raises(ScenarioError, match="length_mix"):
        load_scenario(p)


# --- pipeline parallelism -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [ParallelDims(attn_tp=4, moe_ep=4, pp=2), ParallelDims(attn_tp=2, moe_ep=2, pp=4)])
def test_pp_step_is_the_slowest_stage_and_latency_all_stages(dims: ParallelDims) -> None:
    sc = load_scenario(QWEN)
    r = _evaluate(sc, dims, decode_batch_per_device=16.0)
    counts = stage_layer_counts(94, dims.pp)  # pp 2: (47, 47); pp 4: (23, 24, 24, 23), the last with the head
    for phase in (r.prefill, r.decode):
        step = phase.step
        moe_s = next(layer.layer_s for layer in step.layers if layer.kind == "moe")
        head_s = next(layer.layer_s for layer in phase.step.layers if layer.kind == "head") \
            if any(layer.kind == "head" for layer in step.layers) else None
        # the step is the slowest stage: the last one (its layers + the head) or a fuller one without the head
        last_s = counts[-1] * moe_s + (head_s or 0.0)
        fullest_s = max(counts[:-1]) * moe_s
        expected = [("moe", counts[-1]), ("head", 1)] if head_s is not None and last_s >= fullest_s \
            else [("moe", max(counts[:-1]))]
        assert [(layer.kind, layer.count) for layer in step.layers] == expected
        stage_s = sum(layer.total_s for layer in step.layers)
        handoff_s = step.step_s - stage_s
        assert handoff_s > 0
        # a token crosses every stage (all 94 MoE layers, the head once) and pp - 1 hand-offs
        if head_s is not None:
            assert step.latency_s == pytest.approx(94 * moe_s + head_s + (dims.pp - 1) * handoff_s, rel=1e-12)
        else:
            assert step.latency_s > 94 * moe_s + (dims.pp - 1) * handoff_s
        # throughput is counted over all pp stages' devices
        assert phase.throughput_tok_per_s_per_device == pytest.approx(
            phase.tokens_per_device_per_step / step.step_s / dims.pp, rel=1e-12)
    assert r.decode.latency_s == r.decode.step.latency_s


def test_pp2_handoff_is_one_nvlink_send_of_the_rank_activations() -> None:
    sc = load_scenario(QWEN)
    dims = ParallelDims(attn_tp=4, moe_ep=4, pp=2)
    step = _evaluate(sc, dims, decode_batch_per_device=16.0).decode.step
    # 16 sequences x attn_tp 4 = 64 tokens per rank x 4096 hidden x 2 B = 524,288 B inside the node (unit 4 < 8):
    # NVLink 4 at 450 GB/s x 370/450 achievable = 370 GB/s -> 1.417 us, plus the 0.83 us step latency = 2.247 us
    handoff_s = step.step_s - sum(layer.total_s for layer in step.layers)
    assert handoff_s == pytest.approx(0.83e-6 + 524_288 / 370e9, rel=1e-9)


def test_pp2_halves_the_per_device_experts_and_kv_of_the_same_unit() -> None:
    sc = load_scenario(QWEN)
    one = _evaluate(sc, ParallelDims(attn_tp=4, moe_ep=4, dp=2), decode_batch_per_device=16.0)
    two = _evaluate(sc, ParallelDims(attn_tp=4, moe_ep=4, pp=2), decode_batch_per_device=16.0)
    # same 4-device unit: 47 of 94 layers per stage
    assert two.decode.memory.routed_expert_weight_bytes == one.decode.memory.routed_expert_weight_bytes / 2
    assert two.decode.memory.kv_cache_bytes == one.decode.memory.kv_cache_bytes / 2
    # at the same batch, pp 2 only adds the hand-off: per-device decode throughput a little below dp 2's
    assert 0.98 < two.decode.throughput_tok_per_s_per_device / one.decode.throughput_tok_per_s_per_device < 1.0


# --- compare with a router-count file -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def hot_layers_scenario(tmp_path_factory) -> Path:
    """The default scenario with the router counts of four hot MoE layers (45, 46, 47, 53) of the shipped file."""
    lines = ROUTING_COUNTS.read_text().splitlines(keepends=True)
    assert lines[0].startswith("#") and len(lines) == 1 + 58
    tmp = tmp_path_factory.mktemp("loads")
    loads = tmp / "hot_layers.csv"
    loads.write_text(lines[0] + "".join(lines[1 + i] for i in (45, 46, 47, 53)))
    text = DEFAULT.read_text()
    assert text.count("\nworkload:\n") == 1
    path = tmp / "with_loads.yaml"
    path.write_text(text.replace("\nworkload:\n", f"\nworkload:\n  expert_load: {loads}\n"))
    return path


def _json(*args: str) -> dict:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_compare_with_a_load_file_uses_the_measured_imbalance(hot_layers_scenario: Path) -> None:
    base, cand = "attn_dp=16,moe_ep=16", "attn_dp=16,moe_ep=16,redundant_experts=16"
    doc = _json("compare", str(hot_layers_scenario), "--baseline", base, "--candidate", cand, "--json")
    m = {row["name"]: row for row in doc["metrics"]}
    place = {s: doc[s]["evaluate"]["placement"] for s in ("baseline", "candidate")}
    assert place["baseline"]["slots"] == 256 and place["candidate"]["slots"] == 272
    # layer 47 sends all 20,267 tokens to the same 8 experts: without spare slots 8 of 16 devices carry them
    assert place["baseline"]["mean_imbalance"] > 1.5
    # 16 spare slots replicate the hot experts: lower imbalance, so faster MoE and more decode throughput
    assert place["candidate"]["mean_imbalance"] < place["baseline"]["mean_imbalance"]
    assert m["decode throughput per decode device"]["ratio"] > 1
    # without the file both sides assume a balanced router (expert_imbalance 1): the file made the baseline slower
    plain = _json("compare", str(DEFAULT), "--baseline", base, "--candidate", cand, "--json")
    plain_m = {row["name"]: row for row in plain["metrics"]}
    assert m["decode throughput per decode device"]["baseline"] < plain_m["decode throughput per decode device"][
        "baseline"]
    # and compare's side agrees with evaluate of the same plan on the same scenario
    ev = _json("evaluate", str(hot_layers_scenario), "--plan", base, "--json")
    assert ev["placement"]["mean_imbalance"] == place["baseline"]["mean_imbalance"]
    assert ev["decode"]["throughput_tok_per_s_per_device"] == pytest.approx(
        m["decode throughput per decode device"]["baseline"], rel=1e-12)


# --- plan --objective latency with aggregated layouts -------------------------------------------------------

MIXTRAL = ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml"  # 8 x A100: aggregated and 4 + 4 disaggregated compete


@pytest.fixture(scope="module")
def latency_plan():  # noqa: ANN201
    return run_plan(load_scenario(MIXTRAL), objective="latency", top_k=3)


def test_latency_objective_decodes_on_the_fastest_layout_within_the_slo(latency_plan) -> None:
    res = latency_plan
    inst = res.instance
    assert res.stats[0].status in ("OPTIMAL", "EXACT_ENUMERATION")
    assert any(c.aggregated_ok for c in inst.candidates) and any(c.decode_ok for c in inst.candidates)
    serving_layouts = [c for c in inst.candidates if c.aggregated_ok or (c.decode_ok and c.devices_per_replica < inst.cluster_devices)]
    best = res.deployments[0]
    assert best.decode.tpot_s == pytest.approx(min(c.tpot_s for c in serving_layouts), abs=1e-6)
    # every deployment it returns meets the TPOT SLO (30 ms) by the TPOT its users see
    assert all(recost(d, inst).tpot_s <= 0.030 for d in res.deployments)
    # and none sees a longer TPOT than the throughput objective's choice
    thr = run_plan(load_scenario(MIXTRAL), objective="throughput", top_k=1)
    assert recost(best, inst).tpot_s < recost(thr.deployments[0], thr.instance).tpot_s


def test_latency_objective_minimises_the_tpot_users_see(latency_plan) -> None:
    res = latency_plan
    inst = res.instance
    effective = [1 / c.aggregated_user_tok_per_s for c in inst.candidates if c.aggregated_ok]
    effective += [c.tpot_s for c in inst.candidates if c.decode_ok and c.devices_per_replica < inst.cluster_devices]
    assert recost(res.deployments[0], inst).tpot_s == pytest.approx(min(effective), abs=1e-6)
