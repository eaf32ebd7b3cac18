"""Attention-FFN disaggregation: the pipeline arithmetic by hand, the traffic, memory, layout checks, the scenario
section and the evaluate view. The STEP3 rows themselves are in tests/test_anchors.py."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models import afd, params
from cost_models.ops import OpCost
from cost_models.specs import ClusterSpec, Precision
from planner.catalog.devices import get_device
from planner.catalog.models import get_model
from planner.cli import main
from planner.inputs.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
STEP3_2A2F = ROOT / "scenarios" / "validation" / "step3_2a2f_h800_decode.yaml"
STEP3 = get_model("step3")
H800 = get_device("h800")
LAYOUT_2A2F = afd.AfdLayout(attention_instances=2, attention_instance_devices=8, ffn_instances=2,
                            ffn_instance_devices=8, ffn_tp=8, micro_batches=3)


def _cluster(nodes: int, device=H800) -> ClusterSpec:
    return ClusterSpec(device=device, num_nodes=nodes, devices_per_node=8, scale_up=device.scale_up,
                       scale_out=device.scale_out)


def _op(kind: str, seconds: float) -> OpCost:
    return OpCost(name=f"{kind}.x", kind=kind, seconds=seconds)


def _transfer(seconds: float, busy: float) -> afd.Transfer:
    return afd.Transfer(seconds=seconds, busy_s=busy, attention_device_bytes=0.0, ffn_device_bytes=0.0)


def test_step3_design_point_gives_a_50_ms_tpot():
    # Step-3 §3.1: 3 stages of 16.6 ms over 61 layers = 272 us each; attention 272 us, FFN 272 us, and the two
    # transfer directions 136 us each (272 us of communication per micro-batch, each direction's NIC busy 136 us).
    # P = max(272, 136, 0, 272, 136) = 272 us; R = 272 + 136 + 0 + 272 + 136 = 816 us; m = 3: 3 x 272 = 816 us.
    layer = afd.compose_layer("moe", 61, (_op("compute", 272e-6),), (_op("compute", 272e-6),),
                              _transfer(136e-6, 136e-6), _transfer(136e-6, 136e-6), micro_batches=3)
    assert layer.period_s == pytest.approx(272e-6) and layer.round_trip_s == pytest.approx(816e-6)
    assert layer.layer_s == pytest.approx(816e-6)
    # TPOT 61 x 816 us = 49.8 ms; 6,144 sequences on 32 GPUs: 6144 / 0.049776 / 32 = 3,857 tokens/s/GPU
    tpot = layer.layer_s * layer.count
    assert tpot == pytest.approx(0.049776)
    assert 6144 / tpot / 32 == pytest.approx(3857.3, rel=1e-4)


def test_round_trip_sets_the_layer_when_micro_batches_are_too_few():
    # m = 2: 2 x P = 2 x 272 = 544 us < R = 816 us, so each micro-batch waits for its own round trip: 816 us
    layer = afd.compose_layer("moe", 1, (_op("compute", 272e-6),), (_op("compute", 272e-6),),
                              _transfer(136e-6, 136e-6), _transfer(136e-6, 136e-6), micro_batches=2)
    assert layer.layer_s == pytest.approx(816e-6)


def test_busiest_resource_sets_the_period_and_ffn_collectives_count_apart_from_compute():
    # FFN scale-up 100 + 150 = 250 us (comm ops) vs FFN compute 200 us: period 250 us (ffn_scale_up);
    # R = 100 + 20 + 250 + 200 + 30 = 600 us; m = 3: max(750, 600) = 750 us
    ffn = (_op("comm", 100e-6), _op("compute", 200e-6), _op("comm", 150e-6))
    layer = afd.compose_layer("moe", 1, (_op("compute", 100e-6),), ffn, _transfer(20e-6, 15e-6),
                              _transfer(30e-6, 25e-6), micro_batches=3)
    assert (layer.bottleneck, layer.period_s) == ("ffn_scale_up", pytest.approx(250e-6))
    assert layer.round_trip_s == pytest.approx(600e-6) and layer.layer_s == pytest.approx(750e-6)


def test_groups_hit_probability_by_hand():
    # 48 experts in 2 groups of 24, top-3: 1 - C(24,3)/C(48,3) = 1 - 2024/17296 = 0.882979
    assert afd.groups_hit_probability(48, 3, 2) == pytest.approx(1 - 2024 / 17296)
    assert afd.groups_hit_probability(48, 3, 1) == 1.0
    # 48 groups of one expert: 1 - C(47,3)/C(48,3) = 3/48
    assert afd.groups_hit_probability(48, 3, 48) == pytest.approx(3 / 48)


def test_token_bytes_carry_fp8_block_scales():
    # 7168 FP8 elements + 7168/128 = 56 FP32 scales = 7168 + 224 = 7392 B; BF16: 14,336 B, no scales
    assert afd.token_bytes(7168, Precision.FP8) == 7392
    assert afd.token_bytes(7168, Precision.BF16) == 14336


def test_transfer_is_latency_plus_the_slower_end_at_the_nic_rate():
    c = _cluster(4)
    rate = c.scale_out.effective_bytes_per_s  # 50 GB/s x 0.88 = 44 GB/s
    t = afd.transfer(c, attention_device_bytes=2e6, ffn_device_bytes=1e6)
    assert t.busy_s == pytest.approx(2e6 / rate)
    assert t.seconds == pytest.approx(c.scale_out.latency_s + 2e6 / rate)


def test_step3_2a2f_traffic_and_batch_by_hand():
    r = afd.decode(STEP3, _cluster(4), LAYOUT_2A2F, batch=6144, context_tokens=4096, weight_precision=Precision.FP8,
                   kv_precision=Precision.FP8, dispatch_precision=Precision.FP8)
    # 6144 / 3 micro-batches / 16 attention ranks = 128 sequences per rank and micro-batch; 2048 tokens per micro-batch
    assert r.sequences_per_rank_per_micro_batch == 128 and r.micro_batch_tokens == 2048
    moe = next(c for c in r.layers if c.kind == "moe")
    hit = 1 - 2024 / 17296
    # A->F from one attention device: 128 tokens x 2 groups x 0.883 x 7392 B = 1,670,977 B;
    # into one FFN device: 2048 x 0.883 / 8 x 7392 B = 1,670,977 B (the same: 16 senders, 8 receivers per group)
    assert moe.a_to_f.attention_device_bytes == pytest.approx(128 * 2 * hit * 7392)
    assert moe.a_to_f.ffn_device_bytes == pytest.approx(2048 * hit / 8 * 7392)
    # F->A: the same tokens in BF16, 14,336 B each
    assert moe.f_to_a.ffn_device_bytes == pytest.approx(2048 * hit / 8 * 14336)
    # TPOT is the sum over layers; throughput = batch / TPOT / 32
    assert r.tpot_s == pytest.approx(sum(c.layer_s * c.count for c in r.layers))
    assert sum(c.count for c in r.layers) == 61
    assert r.throughput_tok_per_s_per_device == pytest.approx(6144 / r.tpot_s / 32)


def test_step3_2a2f_memory_by_hand():
    r = afd.decode(STEP3, _cluster(4), LAYOUT_2A2F, batch=6144, context_tokens=4096, weight_precision=Precision.FP8,
                   kv_precision=Precision.FP8, dispatch_precision=Precision.FP8)
    # KV: 6144 / 16 ranks = 384 sequences x 4096 tokens x 61 layers x 512 B = 49,123,688,448 B (45.75 GiB)
    assert r.memory.kv_cache_bytes == 384 * 4096 * 61 * 512
    # FFN device: 24 experts + 1 shared, each 3 x 7168 x 5120, split 8 ways, 56 layers; dense 3 x 7168 x 18432 / 8,
    # 5 layers; FP8 with one FP32 scale per 128 x 128 block
    wb = 1 + 4 / 16384
    expected = (25 * 3 * 7168 * 5120 / 8 * 56 + 3 * 7168 * 18432 / 8 * 5) * wb
    assert r.memory.ffn_weight_bytes == pytest.approx(expected)
    # attention device: 61 x 169.35M attention (FP8) + BF16 routers and embedding + head
    att = (params.attention_weight_elements(STEP3) * 61 * wb + 7168 * 48 * 56 * 2
           + params.embedding_weight_elements(STEP3) * 2)
    assert r.memory.attention_weight_bytes == pytest.approx(att)
    assert r.memory.fits


def test_layout_problems_name_the_field():
    assert afd.check_layout(LAYOUT_2A2F, STEP3, _cluster(4)) == []
    wrong_count = afd.check_layout(LAYOUT_2A2F, STEP3, _cluster(5))
    assert [p.field for p in wrong_count] == ["afd devices"]
    # ffn_tp 16 spans two nodes
    bad_tp = dataclasses.replace(LAYOUT_2A2F, ffn_tp=16)
    assert [p.field for p in afd.check_layout(bad_tp, STEP3, _cluster(4))] == ["afd.ffn_tp"]
    # five EP groups of one device do not divide the 48 experts
    five = afd.AfdLayout(attention_instances=3, attention_instance_devices=8, ffn_instances=1,
                         ffn_instance_devices=5, ffn_tp=1)
    assert [p.field for p in afd.check_layout(five, STEP3, ClusterSpec(
        device=H800, num_nodes=29, devices_per_node=1, scale_up=H800.scale_up, scale_out=H800.scale_out))] \
        == ["afd.ffn_tp"]


@settings(max_examples=15, deadline=None)
@given(st.floats(min_value=1.0, max_value=8.0))
def test_more_nic_bandwidth_is_never_slower(factor):
    c = _cluster(4)
    faster = dataclasses.replace(c, scale_out=dataclasses.replace(c.scale_out,
                                                                  bytes_per_s=c.scale_out.bytes_per_s * factor))
    kw = dict(batch=3072, context_tokens=4096, weight_precision=Precision.FP8, kv_precision=Precision.FP8,
              dispatch_precision=Precision.FP8)
    assert afd.decode(STEP3, faster, LAYOUT_2A2F, **kw).tpot_s <= afd.decode(STEP3, c, LAYOUT_2A2F, **kw).tpot_s


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_scenario_afd_section_parses_and_rejects(tmp_path):
    sc = load_scenario(STEP3_2A2F)
    assert sc.afd == LAYOUT_2A2F and sc.workload.concurrency == 6144 and sc.plan is None
    text = STEP3_2A2F.read_text()
    with pytest.raises(ScenarioError) as e:
        load_scenario(_write(tmp_path, text.replace("  micro_batches: 3", "  micro_batch: 3")))
    assert e.value.path == "afd.micro_batch"
    with pytest.raises(ScenarioError) as e:
        load_scenario(_write(tmp_path, text.replace("  concurrency: 6144\n", "")))
    assert e.value.path == "workload.concurrency"
    with pytest.raises(ScenarioError) as e:
        load_scenario(_write(tmp_path, text + "plan: attn_dp=32,moe_ep=32\n"))
    assert e.value.path == "plan"


def test_evaluate_json_puts_the_figures_at_the_afd_paths():
    res = CliRunner().invoke(main, ["evaluate", str(STEP3_2A2F), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["schema"] == "moeplan.afd/1"
    a = doc["afd"]
    assert a["throughput_tok_per_s_per_device"] == pytest.approx(6144 / a["tpot_s"] / 32)
    assert a["layout"]["label"].startswith("2A2F") and doc["slo"]["tpot_s"] == pytest.approx(0.05)
    assert math.isclose(sum(x["layer_s"] * x["count"] for x in a["layers"]), a["tpot_s"])


def test_evaluate_terminal_view_and_refusals(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", str(STEP3_2A2F)])
    assert res.exit_code == 0 and "Pipeline per layer" in res.output and "2A2F" in res.output
    res = CliRunner().invoke(main, ["evaluate", str(STEP3_2A2F), "--plan", "attn_dp=32,moe_ep=32"])
    assert res.exit_code == 2
    tight = _write(tmp_path, STEP3_2A2F.read_text().replace("concurrency: 6144", "concurrency: 12288"))
    res = CliRunner().invoke(main, ["evaluate", str(tight)])
    assert res.exit_code == 1 and "memory" in res.output
