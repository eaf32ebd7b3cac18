"""One MoE layer's forward of one micro-batch overlapped with its backward of another, phase by phase.

Megatron-Core's all-to-all overlap (``--overlap-moe-expert-parallel-comm``, the combined 1F1B schedule) runs a layer
pair in four phases, each an all-to-all on the communication stream beside compute on the compute stream
(NVIDIA/Megatron-LM ``schedule_layer_1f1b``, megatron/core/models/common/model_chunk_schedule_plan.py; the same
pairing as DeepSeek-V3's overlapped chunk, arXiv 2412.19437 Fig. 4):

1. the backward combine (its gradient travels like a dispatch) beside the forward attention and the previous
   layer's attention weight gradients;
2. the forward dispatch beside the backward MLP (input gradients, and the recompute of its dropped tensors);
3. the backward dispatch (travels like a combine) beside the MLP weight gradients and the forward MLP;
4. the forward combine beside the backward attention (input gradients and recompute).

Data dependencies close every phase (the forward MLP needs the dispatched tokens, the backward MLP the combine's
gradient, ...), so a phase lasts ``max(C + f M, M)``: its compute ``C`` stretched by the share ``f`` of compute
units the all-to-all kernels hold while they run, or its all-to-all ``M`` if that is longer.  Summed over the four
phases this is never shorter than the aggregate ``max(sum C + f sum M, sum M)``: an all-to-all longer than the
compute it sits beside cannot borrow slack from another phase.

Ops split into attention and MLP sub-blocks by name; the norm, residual-add and dropout passes, one per sub-block,
split evenly between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cost_models.training.comm import EpPhases
from cost_models.training.layer_ops import LayerCompute

ATTENTION_OPS = frozenset({"mla_down", "q_up", "kv_up", "qkv", "attn_out", "core_attention", "rope"})
"""Ops of the attention sub-block (the rest of a layer belongs to the MLP / MoE sub-block)."""
SPLIT_OPS = frozenset({"norms", "residual_adds", "dropout"})
"""Passes that occur once in each sub-block: half counted with attention, half with the MLP."""


@dataclass(frozen=True, kw_only=True)
class SubBlockTimes:
    """Compute seconds of one layer's two sub-blocks for one micro-batch."""

    attn_forward_s: float
    mlp_forward_s: float
    attn_dgrad_s: float
    """Input gradients plus the recompute of the attention's dropped tensors."""
    mlp_dgrad_s: float
    attn_wgrad_s: float
    mlp_wgrad_s: float


def _split(ops: Mapping[str, float]) -> tuple[float, float]:
    """(attention, MLP) seconds of a per-op map."""
    attn = mlp = 0.0
    for name, s in ops.items():
        if name in SPLIT_OPS:
            attn += s / 2
            mlp += s / 2
        elif name in ATTENTION_OPS:
            attn += s
        else:
            mlp += s
    return attn, mlp


def sub_blocks(lc: LayerCompute) -> SubBlockTimes:
    """Split a layer's kernel times into its attention and MLP sub-blocks."""
    af, mf = _split(lc.forward_s)
    ad, md = _split(lc.input_grad_s)
    ar, mr = _split(lc.recompute_s)
    aw, mw = _split(lc.weight_grad_s)
    return SubBlockTimes(attn_forward_s=af, mlp_forward_s=mf, attn_dgrad_s=ad + ar, mlp_dgrad_s=md + mr,
                         attn_wgrad_s=aw, mlp_wgrad_s=mw)


def paired_layer_s(t: SubBlockTimes, ep: EpPhases, *, sm_fraction: float, redo_forward_a2a: bool = False
                   ) -> float:
    """Seconds of one layer's forward (one micro-batch) and backward (another) run as the four phases above.

    ``redo_forward_a2a``: full recompute reruns the forward dispatch and combine inside the backward; they join
    the backward's all-to-alls of phases 1 and 4 (where the backward's attention side sits).
    """
    redo_d = ep.dispatch_forward_s if redo_forward_a2a else 0.0
    redo_c = ep.combine_forward_s if redo_forward_a2a else 0.0
    phases = (
        (t.attn_forward_s + t.attn_wgrad_s, ep.combine_backward_s + redo_d),
        (t.mlp_dgrad_s, ep.dispatch_forward_s),
        (t.mlp_wgrad_s + t.mlp_forward_s, ep.dispatch_backward_s + redo_c),
        (t.attn_dgrad_s, ep.combine_forward_s),
    )
    return sum(max(c + sm_fraction * m, m) for c, m in phases)
