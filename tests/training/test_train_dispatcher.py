"""The all-to-all token dispatcher: its all-to-all by hand, its extra permutes, and where the plan key lands."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _train_rows import cluster

from cost_models import comm, compute
from cost_models.specs import ClusterSpec, LinkSpec
from cost_models.training import comm as tcomm
from cost_models.training import layer_ops
from cost_models.training.dims import Dispatcher, Schedule, TrainingDims
from cost_models.training.specs import TrainingWorkload
from planner.catalog.models import get_model
from planner.inputs.training import parse_training_plan

QWEN = get_model("qwen3-235b-a22b")
"""128 routed experts, top-8, hidden 4096, expert FFN 1536."""


def _two_tier(devices_per_node: int, nodes: int) -> ClusterSpec:
    d = cluster("h100_sxm", 8).device
    up = LinkSpec(bytes_per_s=100e9, latency_s=2e-6, achievable_fraction=0.5)
    out = LinkSpec(bytes_per_s=50e9, latency_s=5e-6, achievable_fraction=0.8)
    return ClusterSpec(device=d, num_nodes=nodes, devices_per_node=devices_per_node, scale_up=up, scale_out=out)


def test_alltoall_sends_every_copy_over_the_tier_of_its_destination():
    # 1,000 tokens x top-8 x 1,000 bytes = 8 MB of copies per device, EP 32 = 8 per node x 4 nodes:
    # 1/32 stays, 7/32 = 1.75 MB cross NVLink at 100e9 x min(0.5, 0.70) = 50 GB/s -> 35 us,
    # 24/32 = 6 MB cross the NIC at 50e9 x 0.8 = 40 GB/s -> 150 us; latency 2 + 5 us; time 157 us
    c = _two_tier(8, 4)
    t = tcomm.alltoall_ep_seconds(c, tokens_per_device=1000, token_bytes=1000, top_k=8, ep_size=32,
                                  ep_devices_per_node=8)
    assert t == pytest.approx(7e-6 + 150e-6)
    # the busiest rank moves 1.2 x the mean: 7 + 1.2 x 150 us
    hot = tcomm.alltoall_ep_seconds(c, tokens_per_device=1000, token_bytes=1000, top_k=8, ep_size=32,
                                    ep_devices_per_node=8, imbalance=1.2)
    assert hot == pytest.approx(7e-6 + 180e-6)
    # inside one node (EP 8): 7/8 of 8 MB = 7 MB over NVLink at 50 GB/s = 140 us + 2 us, no NIC latency
    assert tcomm.alltoall_ep_seconds(c, tokens_per_device=1000, token_bytes=1000, top_k=8, ep_size=8,
                                     ep_devices_per_node=8) == pytest.approx(142e-6)
    assert tcomm.alltoall_ep_seconds(c, tokens_per_device=1000, token_bytes=1000, top_k=8, ep_size=1,
                                     ep_devices_per_node=1) == 0.0


@pytest.mark.parametrize("ep", [8, 16, 32, 64])
def test_alltoall_is_never_faster_than_deepep_which_dedups_per_node(ep):
    # the same BF16 tokens: DeepEP sends a token once per destination node (and once per device inside it),
    # the all-to-all once per selected expert
    c = cluster("h100_sxm", 256)
    kw = dict(tokens_per_device=2048, hidden_size=4096, top_k=8, ep_size=ep, ep_devices_per_node=8,
              num_experts=128)
    deepep = comm.ep_dispatch(c, bytes_per_element=2.0, **kw).seconds
    a2a = tcomm.alltoall_ep_seconds(c, tokens_per_device=2048, token_bytes=4096 * 2.0, top_k=8, ep_size=ep,
                                    ep_devices_per_node=8)
    assert a2a >= deepep


def test_ep_phases_follow_the_dispatcher():
    c = cluster("h100_sxm", 256)
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=2048)
    deepep = TrainingDims(tp=2, pp=8, vpp=4, dp=16, ep=32, schedule=Schedule.INTERLEAVED)
    a2a = replace(deepep, dispatcher=Dispatcher.ALLTOALL)
    e = tcomm.ep_phase_seconds(c, QWEN, a2a, w)
    # 4,096 tokens / tp 2 = 2,048 per device, BF16 hidden 4,096 both ways, all four phases alike
    one = tcomm.alltoall_ep_seconds(c, tokens_per_device=2048, token_bytes=4096 * 2, top_k=8, ep_size=32,
                                    ep_devices_per_node=8)
    assert (e.dispatch_forward_s, e.combine_forward_s, e.combine_backward_s, e.dispatch_backward_s) == (
        one, one, one, one)
    assert sum(tcomm.ep_seconds(c, QWEN, a2a, w)) > sum(tcomm.ep_seconds(c, QWEN, deepep, w))


def test_alltoall_dispatcher_permutes_twice_more_with_several_local_experts():
    # copies per device: 2,048 tokens x top-8 = 16,384; each pass reads and writes BF16 hidden 4,096: 16 KiB
    # per copy; DeepEP 2 passes (permute, unpermute), the all-to-all dispatcher 4 (+ sort and unsort by local
    # expert) when a device holds 128 / 32 = 4 experts
    c = cluster("h100_sxm", 256)
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=2048)
    deepep = TrainingDims(tp=2, pp=8, vpp=4, dp=16, ep=32, schedule=Schedule.INTERLEAVED)
    a2a = replace(deepep, dispatcher=Dispatcher.ALLTOALL)
    assert layer_ops.permute_passes(QWEN, deepep) == 2
    assert layer_ops.permute_passes(QWEN, a2a) == 4
    # one expert per device (EP 128): nothing to sort
    assert layer_ops.permute_passes(QWEN, replace(a2a, ep=128, dp=64, tp=2, pp=2, vpp=1,
                                                  schedule=Schedule.ONE_F_ONE_B)) == 2
    lc = layer_ops.layer_compute(c.device, QWEN, a2a, w, moe_layer=True)
    expected = compute.memory_bound_cost(c.device, bytes=16384 * 4 * 4 * 4096).seconds
    assert lc.forward_s["moe_permute"] == pytest.approx(expected)


def test_plan_key_dispatcher_parses_and_rejects():
    dims, _ = parse_training_plan("tp=2,pp=8,vpp=4,ep=32,dispatcher=alltoall", 256)
    assert dims.dispatcher is Dispatcher.ALLTOALL
    assert parse_training_plan("tp=2,pp=8,ep=32", 256)[0].dispatcher is Dispatcher.DEEPEP
    from planner.inputs.errors import ScenarioError
    with pytest.raises(ScenarioError) as e:
        parse_training_plan("tp=2,ep=32,dispatcher=nccl", 256)
    assert "dispatcher" in str(e.value)


def test_megatron_lines_name_the_dispatcher_the_cost_model_timed():
    from _train_rows import ROWS_BY_ID

    from planner.emit import megatron
    fp8 = ROWS_BY_ID["TR-Q235-H100-FP8"]  # Megatron-Bridge's alltoall dispatcher (scenario description)
    argv = megatron.emit(fp8.model, fp8.workload, fp8.dims, fp8.cluster).commands[0].argv
    i = argv.index("--moe-token-dispatcher-type")
    assert argv[i + 1] == "alltoall" and "--moe-flex-dispatcher-backend" not in argv
    deepep = replace(fp8.dims, dispatcher=Dispatcher.DEEPEP)
    argv = megatron.emit(fp8.model, fp8.workload, deepep, fp8.cluster).commands[0].argv
    assert argv[argv.index("--moe-token-dispatcher-type") + 1] == "flex"
    assert argv[argv.index("--moe-flex-dispatcher-backend") + 1] == "deepep"


def test_combined_step_exposes_its_two_pipeline_hand_offs_beyond_one_attention_wgrad():
    # Qwen3-235B TP2 PP8 VPP4 on H100: one hand-off = 2,048 tokens x 4,096 x 2 bytes = 16,777,216 bytes across
    # nodes (stage neighbours are 32 ranks apart) at 50e9 x 0.88 = 44 GB/s = 381.3 us + 8 us latency = 389.3 us;
    # the combined step sends forward then backward (778.6 us) and hides only the first layer's attention wgrad
    from cost_models.training import finetune, pairing
    from cost_models.training.dims import A2AOverlap
    from cost_models.training.step import combined_step_p2p_exposed_s, rank_times
    c = cluster("h100_sxm", 256)
    w = TrainingWorkload(seq_tokens=4096, global_batch_sequences=2048)
    plain = TrainingDims(tp=2, pp=8, vpp=4, dp=16, ep=32, schedule=Schedule.INTERLEAVED)
    pair = replace(plain, a2a_overlap=A2AOverlap.FB_PAIRS)
    assert tcomm.pp_send_seconds(c, QWEN, pair, w) == pytest.approx(16_777_216 / 44e9 + 8e-6)
    tail = pairing.sub_blocks(finetune.layer_compute(c.device, QWEN, pair, w, moe_layer=True)).attn_wgrad_s
    exposed = combined_step_p2p_exposed_s(c, QWEN, pair, w)
    assert exposed == pytest.approx(2 * (16_777_216 / 44e9 + 8e-6) - tail)
    assert 0 < exposed < 2 * tcomm.pp_send_seconds(c, QWEN, pair, w)
    # one per chunk step: a pass through the rank's 4 chunks carries 4 of them
    assert rank_times(c, QWEN, pair, w, 7).p2p_paired_exposed_s == pytest.approx(4 * exposed)
    # without the overlap the interleaved schedule overlaps its hand-offs (--overlap-p2p-comm): none exposed
    assert combined_step_p2p_exposed_s(c, QWEN, plain, w) == 0.0
