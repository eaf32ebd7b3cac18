"""The phase-by-phase overlap of a forward and a backward MoE layer (cost_models/training/pairing.py), by hand."""

from __future__ import annotations

import pytest

from cost_models.training.comm import EpPhases
from cost_models.training.layer_ops import LayerCompute
from cost_models.training.pairing import SubBlockTimes, paired_layer_s, sub_blocks

MS = 1e-3
T = SubBlockTimes(attn_forward_s=1 * MS, mlp_forward_s=2 * MS, attn_dgrad_s=3 * MS, mlp_dgrad_s=4 * MS,
                  attn_wgrad_s=0.5 * MS, mlp_wgrad_s=1 * MS)
EP = EpPhases(dispatch_forward_s=2 * MS, combine_forward_s=5 * MS, combine_backward_s=1 * MS,
              dispatch_backward_s=2 * MS)


def test_each_phase_lasts_its_compute_stretched_or_its_all_to_all():
    # f = 0.25
    # 1: backward combine 1 beside forward attention 1 + attention wgrad 0.5: max(1.5 + 0.25, 1)  = 1.75
    # 2: forward dispatch 2 beside MLP dgrad 4:                               max(4 + 0.5, 2)    = 4.5
    # 3: backward dispatch 2 beside MLP wgrad 1 + forward MLP 2:              max(3 + 0.5, 2)    = 3.5
    # 4: forward combine 5 beside attention dgrad 3:                          max(3 + 1.25, 5)   = 5
    # sum 14.75 ms; the aggregate max(11.5 + 0.25 * 10, 10) = 14 would let phase 4's combine borrow phase 2's slack
    assert paired_layer_s(T, EP, sm_fraction=0.25) == pytest.approx(14.75 * MS)


def test_no_all_to_all_leaves_the_compute():
    none = EpPhases(dispatch_forward_s=0.0, combine_forward_s=0.0, combine_backward_s=0.0, dispatch_backward_s=0.0)
    # 1 + 2 + 3 + 4 + 0.5 + 1 = 11.5 ms
    assert paired_layer_s(T, none, sm_fraction=0.25) == pytest.approx(11.5 * MS)


def test_full_recompute_reruns_the_forward_all_to_alls_in_the_backward():
    # phase 1 carries 1 + 2 (redone dispatch) = 3 beside 1.5: max(1.5 + 0.75, 3) = 3
    # phase 3 carries 2 + 5 (redone combine) = 7 beside 3:    max(3 + 1.75, 7)   = 7
    # 3 + 4.5 + 7 + 5 = 19.5 ms
    assert paired_layer_s(T, EP, sm_fraction=0.25, redo_forward_a2a=True) == pytest.approx(19.5 * MS)


def test_sub_blocks_split_ops_by_name_and_share_the_norms():
    lc = LayerCompute(forward_s={"qkv": 1.0, "norms": 2.0, "expert_up": 3.0},
                      input_grad_s={"core_attention": 4.0, "moe_permute": 1.0},
                      weight_grad_s={"attn_out": 0.5, "expert_down": 0.25},
                      recompute_s={"norms": 2.0}, flops=0.0)
    t = sub_blocks(lc)
    # attention: qkv 1 + half the norms 1 = 2; MLP: expert_up 3 + half the norms 1 = 4
    assert (t.attn_forward_s, t.mlp_forward_s) == (2.0, 4.0)
    # dgrad: attention 4 + recomputed norms / 2 = 5; MLP 1 + 1 = 2
    assert (t.attn_dgrad_s, t.mlp_dgrad_s) == (5.0, 2.0)
    assert (t.attn_wgrad_s, t.mlp_wgrad_s) == (0.5, 0.25)
