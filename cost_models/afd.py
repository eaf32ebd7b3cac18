"""Attention-FFN disaggregation (AFD): the decode step of attention instances and FFN instances in a pipeline.

Sources: Step-3 system report (StepFun, arXiv 2507.19427, §3, §5.4, §7.1-7.3; github stepfun-ai/Step3
Step3-Sys-Tech-Report.pdf) and MegaScale-Infer (ByteDance, arXiv 2504.02263, §3-4: "ping-pong pipeline").

What runs where (Step-3 §7.1, Figure 6):

* an *attention instance* holds the attention weights, the KV cache, embedding and LM head, and runs the non-expert
  parts of every layer (norms, attention, router and top-k); inside it attention is local DP (``attention_tp = 1``:
  every device its own sequences) or TP;
* an *FFN instance* holds the experts (dense FFN layers too) and runs only the FFN; the expert-parallel groups of all
  FFN instances together hold every expert once: ``G = ffn_instances x ffn_instance_devices / ffn_tp`` groups of
  ``ffn_tp`` devices, each group ``E / G`` experts, every expert split ``ffn_tp`` ways (TP);
* every layer, each attention device sends its tokens' hidden states (FP8 + block scales, "M2N") to every group that
  holds one of their experts, straight to the device of its own rail; the group all-gathers them over the scale-up
  tier (NVLS, SM-free in Step-3), runs the grouped expert GEMMs and the shared expert, reduce-scatters the BF16
  partial outputs, and each device returns its share ("N2M"); the attention device adds the partial outputs of the
  groups it used ("reduction module").

The pipeline (Step-3 §3.1, §7.1 Figure 7; MegaScale-Infer §4.1). A step's batch is split into ``m`` micro-batches.
Each resource serves every micro-batch once per layer: the attention device (``t_A``), the A->F transfer (occupying
the attention device's NIC send and the FFN devices' NIC receive, ``t_AF``), the FFN devices' scale-up port
(all-gather + reduce-scatter, ``t_NV``), the FFN compute (``t_F``) and the F->A transfer (``t_FA``; the other
direction of the same full-duplex NICs, so it does not compete with A->F: Step-3 §7.1). With the busiest resource
setting the period ``P = max(t_A, t_AF, t_NV, t_F, t_FA)``, a micro-batch comes back for its next layer after the
round trip ``R = t_A + t_AF + t_AG + t_F + t_RS + t_FA`` (latencies included), so one layer of the whole batch takes

    T_layer = max(m x P, R)

and the TPOT is the sum over layers (plus the LM head, run once per step and micro-batch on the attention device).
Step-3's design point checks the formula: 3 stages of 16.6 ms / 61 layers = 272 us each (attention, communication,
FFN), m = 3: R = 3 x 272 us = m x P, T_layer = 816 us, TPOT = 61 x 816 us = 50 ms. Throughput per device is
``batch / TPOT / (attention devices + FFN devices)``.

Every stage's time comes from the existing kernel and communication models (:mod:`cost_models.ops`,
:mod:`cost_models.compute`, :mod:`cost_models.collectives`); nothing here is fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cost_models import comm, compute, memory, params
from cost_models import ops as opmod
from cost_models.ops import OpCost, PhaseShape
from cost_models.parallel import DimsProblem, ParallelDims
from cost_models.specs import ClusterSpec, ModelSpec, Precision, WeightFormat


@dataclass(frozen=True, kw_only=True)
class AfdLayout:
    """Instances, their degrees and the micro-batch count of one AFD deployment."""

    attention_instances: int
    """Attention instances (A in Step-3's "2A2F")."""
    attention_instance_devices: int
    """Devices per attention instance."""
    attention_tp: int = 1
    """Attention TP inside an instance; the instance runs ``devices / attention_tp`` DP ranks (Step-3: 1, local DP)."""
    ffn_instances: int
    """FFN instances (F)."""
    ffn_instance_devices: int
    """Devices per FFN instance."""
    ffn_tp: int
    """TP degree of every expert inside an FFN instance; ``ffn_instance_devices / ffn_tp`` EP groups per instance."""
    micro_batches: int = 3
    """Micro-batches in flight (Step-3: 3, one per pipeline stage)."""

    @property
    def attention_devices(self) -> int:
        return self.attention_instances * self.attention_instance_devices

    @property
    def ffn_devices(self) -> int:
        return self.ffn_instances * self.ffn_instance_devices

    @property
    def devices(self) -> int:
        return self.attention_devices + self.ffn_devices

    @property
    def attention_ranks(self) -> int:
        """Attention DP ranks of all instances (each ``attention_tp`` devices sharing the same sequences)."""
        return self.attention_devices // self.attention_tp

    @property
    def ffn_groups(self) -> int:
        """Expert-parallel groups of ``ffn_tp`` devices over all FFN instances (G)."""
        return self.ffn_devices // self.ffn_tp

    def label(self) -> str:
        return (f"{self.attention_instances}A{self.ffn_instances}F: A {self.attention_instance_devices} dev "
                f"(tp {self.attention_tp}), F {self.ffn_instance_devices} dev (tp {self.ffn_tp}), "
                f"m={self.micro_batches}")


def check_layout(layout: AfdLayout, model: ModelSpec, cluster: ClusterSpec) -> list[DimsProblem]:
    """Every divisibility / size problem of ``layout`` (empty = acceptable)."""
    out: list[DimsProblem] = []
    for name in ("attention_instances", "attention_instance_devices", "attention_tp", "ffn_instances",
                 "ffn_instance_devices", "ffn_tp", "micro_batches"):
        if getattr(layout, name) < 1:
            out.append(DimsProblem(field=f"afd.{name}", value=getattr(layout, name), accepted="an integer >= 1"))
    if out:
        return out
    if layout.devices != cluster.num_devices:
        out.append(DimsProblem(field="afd devices", value=layout.devices,
                               accepted=f"{cluster.num_devices} (the cluster's devices = A x attention devices + "
                                        "F x FFN devices)"))
    if layout.attention_instance_devices % layout.attention_tp or model.attention.num_q_heads % layout.attention_tp:
        out.append(DimsProblem(field="afd.attention_tp", value=layout.attention_tp,
                               accepted="a divisor of the attention instance's devices and of the query heads"))
    if layout.ffn_instance_devices % layout.ffn_tp or layout.ffn_tp > cluster.devices_per_node:
        out.append(DimsProblem(field="afd.ffn_tp", value=layout.ffn_tp,
                               accepted=f"a divisor of ffn_instance_devices within one node "
                                        f"(<= {cluster.devices_per_node})"))
    elif model.moe is None or model.moe.num_routed_experts % layout.ffn_groups:
        out.append(DimsProblem(field="afd.ffn_tp", value=layout.ffn_tp,
                               accepted="EP groups (FFN devices / ffn_tp) that divide the routed experts"))
    elif model.moe.expert_ffn_dim % layout.ffn_tp:
        out.append(DimsProblem(field="afd.ffn_tp", value=layout.ffn_tp, accepted="a divisor of the expert width"))
    return out


def groups_hit_probability(num_experts: int, top_k: int, groups: int) -> float:
    """Probability that a token with ``top_k`` distinct uniformly routed experts uses a given group of
    ``num_experts / groups`` experts: ``1 - C(E - E/G, k) / C(E, k)`` (no group limit)."""
    if groups == 1:
        return 1.0
    local = num_experts // groups
    return 1.0 - math.comb(num_experts - local, top_k) / math.comb(num_experts, top_k)


def token_bytes(hidden: int, precision: Precision) -> float:
    """Bytes of one token's hidden state on the wire: elements plus one FP32 scale per 128 for sub-16-bit."""
    scales = hidden / comm.QUANT_BLOCK_ELEMENTS * comm.SCALE_BYTES if precision.bytes_per_element < 2 else 0.0
    return hidden * precision.bytes_per_element + scales


@dataclass(frozen=True, kw_only=True)
class Transfer:
    """One direction of the per-layer attention <-> FFN exchange of one micro-batch."""

    seconds: float
    """Latency + the slower end's bytes / NIC rate: what the micro-batch waits."""
    busy_s: float
    """How long the busier NIC is occupied (bytes / rate): what limits the period."""
    attention_device_bytes: float
    ffn_device_bytes: float


def transfer(cluster: ClusterSpec, *, attention_device_bytes: float, ffn_device_bytes: float) -> Transfer:
    """Attention device <-> FFN device transfer over the scale-out NICs (RDMA, one message per peer posted at once):
    ``latency_s + max(bytes at either end) / effective NIC rate``."""
    link = cluster.scale_out
    busy = max(attention_device_bytes, ffn_device_bytes) / link.effective_bytes_per_s
    return Transfer(seconds=link.latency_s + busy, busy_s=busy, attention_device_bytes=attention_device_bytes,
                    ffn_device_bytes=ffn_device_bytes)


@dataclass(frozen=True, kw_only=True)
class AfdLayerCost:
    """One layer kind (``dense`` / ``moe``, ``+head`` for the layer carrying the LM head) of one micro-batch."""

    kind: str
    count: int
    attention_ops: tuple[OpCost, ...]
    ffn_ops: tuple[OpCost, ...]
    a_to_f: Transfer
    f_to_a: Transfer
    attention_s: float
    ffn_compute_s: float
    ffn_scale_up_s: float
    period_s: float
    """Busiest resource per micro-batch: max(attention, A->F, FFN scale-up, FFN compute, F->A)."""
    bottleneck: str
    round_trip_s: float
    layer_s: float
    """``max(micro_batches x period, round trip)``: one layer of the whole batch."""


def _sum(ops: tuple[OpCost, ...]) -> float:
    return sum(o.seconds for o in ops)


def attention_stage_ops(model: ModelSpec, cluster: ClusterSpec, layout: AfdLayout, shape: PhaseShape, *, moe: bool,
                        groups_used: float, weight_precision: Precision, kv_precision: Precision,
                        dispatch_precision: Precision) -> tuple[OpCost, ...]:
    """One attention rank's work of one layer: attention, FFN norm, router / top-k (MoE layers), FP8 quantisation
    of the outgoing hidden states and the sum of the ``groups_used`` BF16 partial outputs that come back."""
    dims = ParallelDims(attn_tp=layout.attention_tp)
    t = max(1, math.ceil(shape.rank_tokens))
    h = model.hidden_size
    ops = list(opmod.attention_ops(model, cluster, dims, shape, weight_precision, kv_precision))
    ops.append(opmod._elementwise(cluster, "ffn.norm", 2 * t * h * 2))
    if moe and model.moe is not None:
        ops.append(opmod._kernel("moe.router", compute.gemm_cost(cluster.device, m=t, k=h, n=model.moe.num_routed_experts,
                                                                  precision=Precision.BF16)))
        ops.append(opmod._elementwise(cluster, "moe.topk", t * model.moe.num_routed_experts * 4 * 2))
    ops.append(opmod._elementwise(cluster, "afd.quantize", t * h * (2 + dispatch_precision.bytes_per_element)))
    ops.append(opmod._elementwise(cluster, "afd.combine_partials", t * h * 2 * (groups_used + 1)))
    return tuple(ops)


def ffn_stage_ops(model: ModelSpec, cluster: ClusterSpec, layout: AfdLayout, *, micro_batch_tokens: float, moe: bool,
                  weight_precision: Precision, dispatch_precision: Precision,
                  imbalance: float) -> tuple[OpCost, ...]:
    """One FFN device's work of one layer for one micro-batch of ``micro_batch_tokens`` (all attention ranks):
    TP all-gather of the group's tokens, grouped expert GEMMs + shared expert (MoE) or the dense FFN, TP
    reduce-scatter of the BF16 outputs."""
    h, tp, g = model.hidden_size, layout.ffn_tp, layout.ffn_groups
    fmt = WeightFormat.for_precision(weight_precision)
    if moe and model.moe is not None:
        e, k = model.moe.num_routed_experts, model.moe.top_k
        group_tokens = micro_batch_tokens * groups_hit_probability(e, k, g)
        per_expert = max(1, math.ceil(micro_batch_tokens * k / e * imbalance))
        width = model.moe.expert_ffn_dim // tp
        counts = [per_expert] * (e // g)
        p, wb = opmod.gemm_math(cluster, fmt), fmt.bytes_per_element
        body = [opmod._kernel("moe.experts_up_gate", compute.grouped_gemm_cost(
                    cluster.device, tokens_per_group=counts, k=h, n=2 * width, precision=p, weight_bytes_per_element=wb)),
                opmod._elementwise(cluster, "moe.experts_act", per_expert * len(counts) * 3 * width * 2),
                opmod._kernel("moe.experts_down", compute.grouped_gemm_cost(
                    cluster.device, tokens_per_group=counts, k=width, n=h, precision=p, weight_bytes_per_element=wb))]
        if model.moe.shared_ffn_dim:  # each token's shared expert runs in one of the groups it visits
            body += opmod.gated_ffn_ops(cluster, "moe.shared", tokens=micro_batch_tokens / g, hidden=h,
                                        width=model.moe.shared_ffn_dim / tp, weight_format=fmt)
    else:  # a dense layer's tokens are spread evenly, one group each
        group_tokens = micro_batch_tokens / g
        body = list(opmod.gated_ffn_ops(cluster, "ffn", tokens=group_tokens, hidden=h,
                                        width=model.dense_ffn_dim / tp, weight_format=fmt))
    per_node = opmod.group_devices_per_node(cluster, tp)
    gather = opmod._collective("afd.ffn_all_gather", comm.all_gather(
        cluster, bytes_per_rank=group_tokens / tp * token_bytes(h, dispatch_precision), group_size=tp,
        group_devices_per_node=per_node))
    scatter = opmod._collective("afd.ffn_reduce_scatter", comm.reduce_scatter(
        cluster, bytes=group_tokens * h * 2, group_size=tp, group_devices_per_node=per_node))
    return (gather, *body, scatter)


def _exchange(model: ModelSpec, cluster: ClusterSpec, layout: AfdLayout, *, rank_tokens: float,
              micro_batch_tokens: float, moe: bool, dispatch_precision: Precision) -> tuple[Transfer, Transfer, float]:
    """(A->F, F->A, groups each token visits). An attention device sends each token once per group it uses, to the
    group's device on its rail; an FFN device receives and returns ``1 / ffn_tp`` of its group's tokens."""
    h, g, tp = model.hidden_size, layout.ffn_groups, layout.ffn_tp
    if moe and model.moe is not None:
        hit = groups_hit_probability(model.moe.num_routed_experts, model.moe.top_k, g)
    else:
        hit = 1.0 / g
    per_token_groups = g * hit
    send_tokens = rank_tokens / layout.attention_tp  # attention TP ranks split the sends of their shared tokens
    ffn_tokens = micro_batch_tokens * hit / tp
    a_to_f = transfer(cluster, attention_device_bytes=send_tokens * per_token_groups * token_bytes(h, dispatch_precision),
                      ffn_device_bytes=ffn_tokens * token_bytes(h, dispatch_precision))
    f_to_a = transfer(cluster, attention_device_bytes=send_tokens * per_token_groups * h * 2,
                      ffn_device_bytes=ffn_tokens * h * 2)
    return a_to_f, f_to_a, per_token_groups


def compose_layer(kind: str, count: int, attention_ops: tuple[OpCost, ...], ffn_ops: tuple[OpCost, ...],
                  a_to_f: Transfer, f_to_a: Transfer, micro_batches: int) -> AfdLayerCost:
    """The pipeline of one layer (module docstring): period, round trip, ``max(m x P, R)``."""
    t_a = _sum(attention_ops)
    t_nv = sum(o.seconds for o in ffn_ops if o.kind == "comm")
    t_f = sum(o.seconds for o in ffn_ops if o.kind == "compute")
    busy = {"attention": t_a, "a_to_f": a_to_f.busy_s, "ffn_scale_up": t_nv, "ffn_compute": t_f,
            "f_to_a": f_to_a.busy_s}
    bottleneck = max(busy, key=busy.__getitem__)
    period = busy[bottleneck]
    round_trip = t_a + a_to_f.seconds + t_nv + t_f + f_to_a.seconds
    return AfdLayerCost(kind=kind, count=count, attention_ops=attention_ops, ffn_ops=ffn_ops, a_to_f=a_to_f,
                        f_to_a=f_to_a, attention_s=t_a, ffn_compute_s=t_f, ffn_scale_up_s=t_nv, period_s=period,
                        bottleneck=bottleneck, round_trip_s=round_trip,
                        layer_s=max(micro_batches * period, round_trip))


@dataclass(frozen=True, kw_only=True)
class AfdMemory:
    """Bytes on one attention device and one FFN device."""

    attention_weight_bytes: float
    kv_cache_bytes: float
    ffn_weight_bytes: float
    runtime_reserve_bytes: float
    capacity_bytes: float

    @property
    def attention_device_bytes(self) -> float:
        return self.attention_weight_bytes + self.kv_cache_bytes + self.runtime_reserve_bytes

    @property
    def ffn_device_bytes(self) -> float:
        return self.ffn_weight_bytes + self.runtime_reserve_bytes

    @property
    def fits(self) -> bool:
        return max(self.attention_device_bytes, self.ffn_device_bytes) <= self.capacity_bytes


def afd_memory(model: ModelSpec, cluster: ClusterSpec, layout: AfdLayout, *, sequences_per_rank: float,
               context_tokens: int, weight_precision: Precision, kv_precision: Precision) -> AfdMemory:
    """Attention device: attention weights (heads split by ``attention_tp``), routers and BF16 embedding + head,
    the KV of its rank's sequences; FFN device: ``E / G`` experts split ``ffn_tp`` ways, the shared expert and the
    dense FFNs split ``ffn_tp`` ways (every group keeps a copy)."""
    wb = memory.weight_bytes_per_element(weight_precision)
    bf16 = Precision.BF16.bytes_per_element
    tp = layout.ffn_tp
    att = params.attention_weight_elements(model) * model.num_layers / layout.attention_tp * wb
    att += params.router_weight_elements(model) * model.num_moe_layers * bf16
    att += params.embedding_weight_elements(model) * bf16
    dims = ParallelDims(attn_tp=layout.attention_tp)
    kv = memory.kv_bytes_per_sequence(model, dims, kv_precision, context_tokens) * sequences_per_rank
    ffn = params.dense_ffn_weight_elements(model) / tp * model.num_dense_layers * wb
    if model.moe is not None:
        local = model.moe.num_routed_experts // layout.ffn_groups
        ffn += (local * params.routed_expert_weight_elements(model)
                + params.shared_expert_weight_elements(model)) / tp * model.num_moe_layers * wb
    return AfdMemory(attention_weight_bytes=att, kv_cache_bytes=kv, ffn_weight_bytes=ffn,
                     runtime_reserve_bytes=memory.RUNTIME_RESERVE_BYTES, capacity_bytes=cluster.device.hbm_bytes)


@dataclass(frozen=True, kw_only=True)
class AfdResult:
    """One AFD decode step."""

    layout: AfdLayout
    layers: tuple[AfdLayerCost, ...]
    batch: float
    """Sequences in flight over the whole deployment."""
    sequences_per_rank_per_micro_batch: float
    micro_batch_tokens: float
    """Tokens of one micro-batch over all attention ranks (what every FFN group sees)."""
    tpot_s: float
    throughput_tok_per_s_per_device: float
    memory: AfdMemory

    @property
    def user_tok_per_s(self) -> float:
        return 1.0 / self.tpot_s


def decode(model: ModelSpec, cluster: ClusterSpec, layout: AfdLayout, *, batch: float, context_tokens: int,
           weight_precision: Precision, kv_precision: Precision, dispatch_precision: Precision,
           imbalance: float = 1.0) -> AfdResult:
    """The AFD decode step of ``batch`` sequences attending over ``context_tokens`` (module docstring):
    ``TPOT = sum over layers of max(m x period, round trip)``; throughput = ``batch / TPOT / devices``."""
    m = layout.micro_batches
    rank_seqs = batch / m / layout.attention_ranks
    mb_tokens = batch / m
    shape = PhaseShape(phase="decode", rank_tokens=rank_seqs, sequences_per_rank=rank_seqs,
                       context_tokens=context_tokens)
    head = opmod.head_ops(model, cluster, ParallelDims(attn_tp=layout.attention_tp), shape)

    def layer(kind: str, count: int, with_head: bool) -> AfdLayerCost:
        moe = kind == "moe"
        a_to_f, f_to_a, used = _exchange(model, cluster, layout, rank_tokens=rank_seqs, micro_batch_tokens=mb_tokens,
                                         moe=moe, dispatch_precision=dispatch_precision)
        att = attention_stage_ops(model, cluster, layout, shape, moe=moe, groups_used=used,
                                  weight_precision=weight_precision, kv_precision=kv_precision,
                                  dispatch_precision=dispatch_precision)
        ffn = ffn_stage_ops(model, cluster, layout, micro_batch_tokens=mb_tokens, moe=moe,
                            weight_precision=weight_precision, dispatch_precision=dispatch_precision,
                            imbalance=imbalance)
        return compose_layer(kind + ("+head" if with_head else ""), count, att + head if with_head else att, ffn,
                             a_to_f, f_to_a, m)

    kinds = [(k, n) for k, n in (("dense", model.num_dense_layers), ("moe", model.num_moe_layers)) if n]
    layers: list[AfdLayerCost] = [layer(kinds[0][0], 1, True)]  # embedding + LM head run beside the first layer
    for i, (kind, n) in enumerate(kinds):
        rest = n - 1 if i == 0 else n
        if rest:
            layers.append(layer(kind, rest, False))
    tpot = sum(c.layer_s * c.count for c in layers)
    mem = afd_memory(model, cluster, layout, sequences_per_rank=batch / layout.attention_ranks,
                     context_tokens=context_tokens, weight_precision=weight_precision, kv_precision=kv_precision)
    return AfdResult(layout=layout, layers=tuple(layers), batch=batch, sequences_per_rank_per_micro_batch=rank_seqs,
                     micro_batch_tokens=mb_tokens, tpot_s=tpot,
                     throughput_tok_per_s_per_device=batch / tpot / layout.devices, memory=mem)
