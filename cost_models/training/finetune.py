"""Fine-tuning: frozen parts of the model and LoRA adapters, as the training cost models see them.

* A frozen parameter keeps its bf16 weight and nothing else: no gradient buffer, no fp32 master copy, no optimizer
  moments (it has ``requires_grad=False``, so the optimizer and the DDP / distributed-optimizer buffers never see
  it).  Its weight-gradient GEMM is not run; its input-gradient GEMM still is (kept for every layer: exact whenever
  the lowest trainable part sits in the first layer, as with LoRA on every layer; conservative otherwise).
* LoRA (Hu et al. 2021, arXiv 2106.09685 §4.1): ``W x + B A x`` with ``A`` of ``r x d_in`` and ``B`` of
  ``d_out x r``, so ``r (d_in + d_out)`` trainable parameters per adapted matrix.  One adapter per GEMM as the
  model runs it (Megatron-Core's fused ``linear_qkv`` and gate+up ``linear_fc1``), on the device's shard of the
  matrix (adapters are sharded like their base: exact at tp = ep x etp = 1, an estimate otherwise); per routed
  expert for ``routed_experts``.  Adapters carry weights, gradients and optimizer states under the sharding.
* LoRA's GEMMs: forward ``x A^T`` (``[m, d_in] x [d_in, r]``) then ``(x A^T) B^T`` (``[m, r] x [r, d_out]``);
  backward their input- and weight-gradient GEMMs, all BF16 (adapters stay in the parameter dtype).
* FLOPs and MFU keep Megatron's ``num_floating_point_operations`` (pretrain_gpt counts ``6 N`` per token whatever
  ``requires_grad`` says), so a fine-tuning MFU compares with a pre-training one of the same model but over-counts
  the work done (the skipped weight-gradient GEMMs are a third of the dense FLOPs).
* Saved activations: a Linear input that only a frozen weight's weight-gradient GEMM would read is not stored
  (:func:`saved_activations`); what the input gradient needs stays.
* The DP gradient reduction (and FSDP's per-layer reduce-scatter), the ZeRO-1/2 parameter gather and the optimizer
  step cover the trainable parameters only (:mod:`cost_models.training.step`); FSDP still gathers frozen weights.
"""

from __future__ import annotations

from dataclasses import replace

from cost_models import compute
from cost_models.specs import DeviceSpec, ModelSpec, Precision
from cost_models.training import layer_ops
from cost_models.training.activations import tokens_per_device
from cost_models.training.dims import TrainingDims
from cost_models.training.finetune_spec import LINEAR_PART, Finetune, Part
from cost_models.training.layer_ops import LayerCompute, Linear
from cost_models.training.specs import TrainingWorkload


def lora_elements(ft: Finetune, linears: list[Linear]) -> float:
    """Adapter parameters on the device for one layer: ``batch x r x (k + n)`` per adapted ``[m, k] x [k, n]``."""
    return float(sum(lin.batch * ft.lora_rank * (lin.k + lin.n) for lin in linears if ft.adapts(lin.name)))


def lora_expert_elements(ft: Finetune, linears: list[Linear]) -> float:
    """The part of :func:`lora_elements` on routed experts (sharded over expert-DP, not DP)."""
    return float(sum(lin.batch * ft.lora_rank * (lin.k + lin.n) for lin in linears
                     if ft.adapts(lin.name) and LINEAR_PART[lin.name] is Part.ROUTED_EXPERTS))


def _lora_gemm_s(device: DeviceSpec, lin: Linear, r: int) -> tuple[float, float, float]:
    """(forward, input-gradient, weight-gradient) seconds of one adapter on ``lin``, BF16."""
    def g(m: int, k: int, n: int) -> float:
        return compute.gemm_cost(device, m=max(1, m), k=max(1, k), n=max(1, n), batch=lin.batch,
                                 precision=Precision.BF16).seconds
    m, k, n = lin.m, lin.k, lin.n
    fwd = g(m, k, r) + g(m, r, n)
    dgrad = g(m, n, r) + g(m, r, k)
    wgrad = g(n, m, r) + g(r, m, k)  # dB = dY^T (x A^T), dA = (dY B)^T x
    return fwd, dgrad, wgrad


def adjust_layer(device: DeviceSpec, ft: Finetune, lc: LayerCompute, linears: list[Linear]) -> LayerCompute:
    """``lc`` without the weight-gradient GEMMs of frozen parts, plus LoRA's GEMMs (``lora_<name>`` ops)."""
    fwd, dgrad = dict(lc.forward_s), dict(lc.input_grad_s)
    wgrad = {k: v for k, v in lc.weight_grad_s.items() if k not in LINEAR_PART or ft.trains(LINEAR_PART[k])}
    redo = dict(lc.recompute_s)
    for lin in linears:
        if not ft.adapts(lin.name):
            continue
        f, d, w = _lora_gemm_s(device, lin, ft.lora_rank)
        fwd["lora_" + lin.name], dgrad["lora_" + lin.name], wgrad["lora_" + lin.name] = f, d, w
        if lin.name in redo:
            redo["lora_" + lin.name] = f
    return replace(lc, forward_s=fwd, input_grad_s=dgrad, weight_grad_s=wgrad, recompute_s=redo)


WGRAD_ONLY_TENSORS = {
    "qkv_input": (Part.ATTENTION,), "mla_down_input": (Part.ATTENTION,), "proj_input": (Part.ATTENTION,),
    "fc1_input": (Part.DENSE_FFN,), "mlp_fc2_input": (Part.DENSE_FFN,),
    "router_input": (Part.ROUTER, Part.SHARED_EXPERTS),
    "expert_input": (Part.ROUTED_EXPERTS,), "expert_fc2_input": (Part.ROUTED_EXPERTS,),
    "shared_fc2_input": (Part.SHARED_EXPERTS,),
}
"""Saved tensors of :mod:`cost_models.training.activations` that only weight-gradient GEMMs read (a Linear's
input, ``dW = dY^T X``), with the parts whose weights (or adapters) they serve.  The input gradient
``dX = dY W`` needs the weight, not the input, and the SwiGLU backward reads the gate/up outputs (``fc1_output``,
kept), not the down-projection input.  The normed MoE input (``router_input``) feeds both router and shared
experts."""


def saved_activations(ft: Finetune, per_layer: dict[str, float]) -> dict[str, float]:
    """``per_layer`` without the tensors whose every reader is a frozen weight without an adapter.

    Autograd saves a matmul's input only when its weight needs a gradient; a kernel that saves its input
    unconditionally keeps them (then this is a lower bound).  LoRA's ``x A^T`` (``r`` elements per token and
    adapter) is not counted.
    """
    def needed(name: str) -> bool:
        readers = WGRAD_ONLY_TENSORS.get(name)
        return readers is None or any(ft.trains(p) or (ft.lora_rank > 0 and p in ft.lora_targets) for p in readers)
    return {k: v for k, v in per_layer.items() if needed(k)}


def layer_compute(device: DeviceSpec, model: ModelSpec, dims: TrainingDims, workload: TrainingWorkload, *,
                  moe_layer: bool) -> LayerCompute:
    """:func:`cost_models.training.layer_ops.layer_compute` with :func:`adjust_layer` applied when the workload
    fine-tunes (the one definition the step and the search's lower bound both use)."""
    lc = layer_ops.layer_compute(device, model, dims, workload, moe_layer=moe_layer)
    if workload.finetune is None:
        return lc
    t = int(tokens_per_device(dims, workload))
    lins = layer_ops.attention_linears(model, dims, t) + layer_ops.ffn_linears(model, dims, workload, t,
                                                                               moe_layer=moe_layer)
    return adjust_layer(device, workload.finetune, lc, lins)
