"""Step composition: hand-checked structure and the Hypothesis property that more bandwidth never makes a
prefill or decode step slower."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.ops import PhaseShape
from cost_models.parallel import OverlapPolicy, ParallelDims
from cost_models.specs import ClusterSpec, Precision
from cost_models.step import step_cost
from planner.catalog.devices import get_device
from planner.catalog.models import get_model

V3 = get_model("deepseek-v3")
H800 = get_device("h800")


def cluster(hbm: float = 1.0, up: float = 1.0, out: float = 1.0, nodes: int = 4) -> ClusterSpec:
    dev = dataclasses.replace(
        H800, hbm_bytes_per_s=H800.hbm_bytes_per_s * hbm,
        scale_up=dataclasses.replace(H800.scale_up, bytes_per_s=H800.scale_up.bytes_per_s * up),
        scale_out=dataclasses.replace(H800.scale_out, bytes_per_s=H800.scale_out.bytes_per_s * out))
    return ClusterSpec(device=dev, num_nodes=nodes, devices_per_node=8, scale_up=dev.scale_up,
                       scale_out=dev.scale_out)


PLANS = [
    ParallelDims(attn_dp=32, moe_ep=32),
    ParallelDims(attn_dp=32, moe_ep=32, micro_batches=2, overlap=OverlapPolicy.TWO_BATCH),
    ParallelDims(attn_tp=8, attn_dp=4, moe_ep=32, dense_tp=8),
]
SHAPES = [PhaseShape(phase="decode", rank_tokens=64, sequences_per_rank=64, context_tokens=4096),
          PhaseShape(phase="prefill", rank_tokens=8192, sequences_per_rank=2, context_tokens=4096)]


def _step(c: ClusterSpec, dims: ParallelDims, shape: PhaseShape) -> float:
    return step_cost(V3, c, dims, shape, weight_precision=Precision.FP8, kv_precision=Precision.BF16,
                     dispatch_precision=Precision.FP8).step_s


@settings(max_examples=30, deadline=None)
@given(plan=st.sampled_from(PLANS), shape=st.sampled_from(SHAPES),
       hbm=st.floats(1.0, 3.0), up=st.floats(1.0, 3.0), out=st.floats(1.0, 3.0))
def test_more_bandwidth_never_makes_a_step_slower(plan, shape, hbm, up, out):
    if plan.attn_tp > 1 and shape.phase == "decode":
        shape = dataclasses.replace(shape, rank_tokens=shape.rank_tokens * plan.attn_tp)
    base = _step(cluster(), plan, shape)
    assert _step(cluster(hbm=hbm, up=up, out=out), plan, shape) <= base * (1 + 1e-9)


def test_step_is_sum_of_layers_and_counts_every_layer():
    s = step_cost(V3, cluster(), PLANS[0], SHAPES[0], weight_precision=Precision.FP8, kv_precision=Precision.BF16,
                  dispatch_precision=Precision.FP8)
    counts = {layer.kind: layer.count for layer in s.layers}
    assert counts == {"dense": 3, "moe": 58, "head": 1}  # DeepSeek-V3: first_k_dense_replace 3 of 61 layers
    assert s.step_s == sum(layer.total_s for layer in s.layers)


def test_overlap_hides_communication_but_costs_compute():
    none = step_cost(V3, cluster(), PLANS[0], SHAPES[1], weight_precision=Precision.FP8,
                     kv_precision=Precision.BF16, dispatch_precision=Precision.FP8)
    tbo = step_cost(V3, cluster(), PLANS[1], SHAPES[1], weight_precision=Precision.FP8,
                    kv_precision=Precision.BF16, dispatch_precision=Precision.FP8)
    moe_none = next(x for x in none.layers if x.kind == "moe")
    moe_tbo = next(x for x in tbo.layers if x.kind == "moe")
    assert moe_tbo.layer_s < moe_none.layer_s               # overlap pays off in prefill here
    assert moe_tbo.overlapped_comm_s > 0 and moe_none.overlapped_comm_s == 0
    assert moe_tbo.overlap_overhead_s > 0                   # half-size GEMMs, SM share, stream switches
