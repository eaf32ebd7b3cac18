"""The busiest EP device's routed load per step (cost_models/expert_load.py): hand-derived values, the moe_ops
wiring, and the per-layer combination on the shipped DeepSeek-V3 router counts."""

from __future__ import annotations

import pytest

from cost_models import ops as opmod
from cost_models.expert_load import busiest_device_load_factor, mean_layer_load_factor
from cost_models.parallel import ParallelDims
from cost_models.specs import Precision
from planner.catalog.models import get_model

V3 = get_model("deepseek-v3")


def test_routing_noise_at_sgl_gb200_decode_batch():
    # 1,408 tokens x top-8 = 11,264 copies per device, EP48, 256 experts:
    # var = 11,264 x 47/48 x 248/255 = 10,726.57, sd = 103.569; z_48 = Phi^-1(47.625 / 48.25) = 2.22761
    # factor = 1 + 2.22761 x 103.569 / 11,264 = 1.020482
    f = busiest_device_load_factor(tokens_per_device=1408, top_k=8, ep_size=48, num_experts=256, imbalance=1.0)
    assert f == pytest.approx(1.020482, abs=1e-6)


def test_placement_imbalance_above_the_noise_wins_and_no_ep_is_one():
    # a placement 1.2 x the mean beats the 2 % noise; without EP every token stays home
    assert busiest_device_load_factor(tokens_per_device=1408, top_k=8, ep_size=48, num_experts=256,
                                      imbalance=1.2) == 1.2
    assert busiest_device_load_factor(tokens_per_device=10, top_k=8, ep_size=1, num_experts=256,
                                      imbalance=1.0) == 1.0


def test_mean_of_layer_maxima():
    # layers at 1.0, 1.0, 1.2 with noise 1.020482: (1.020482 + 1.020482 + 1.2) / 3 = 1.080321,
    # above max(mean 1.0667, noise) = 1.0667
    f = mean_layer_load_factor(layer_imbalances=(1.0, 1.0, 1.2), tokens_per_device=1408, top_k=8, ep_size=48,
                               num_experts=256)
    assert f == pytest.approx((2 * 1.020482 + 1.2) / 3, abs=1e-6)
    with pytest.raises(ValueError):
        mean_layer_load_factor(layer_imbalances=(), tokens_per_device=1, top_k=8, ep_size=48, num_experts=256)


def test_moe_ops_cost_the_expert_gemms_on_the_busiest_device():
    from _clusters import h800_cluster

    cluster = h800_cluster(num_nodes=2)
    shape = opmod.PhaseShape(phase="decode", rank_tokens=128, sequences_per_rank=128, context_tokens=2048)
    dims = ParallelDims(attn_dp=16, moe_ep=16)
    ops = {o.name: o for o in opmod.moe_ops(V3, cluster, dims, shape, weight_precision=Precision.FP8,
                                            dispatch_precision=Precision.FP8, imbalance=1.0)}
    # 128 x 8 = 1,024 copies, EP16: var = 1,024 x 15/16 x 248/255 = 933.65, sd 30.556, z_16 1.76883
    # factor 1 + 1.76883 x 30.556 / 1,024 = 1.052782 -> 1,078.05 copies over 16 local experts:
    # ceil(67.38) = 68 rows each, 1,088 rows; the activation pass after up_gate reads and writes them:
    # 1,088 x 3 x 2,048 x 2 bytes
    assert ops["moe.experts_act"].hbm_bytes == 1088 * 3 * 2048 * 2
