"""Every parallel degree of a deployment in one small, validated object (STYLE.md rule 6).

Vocabulary (see README "Glossary"):

* a *unit* is the group of devices that holds one full copy of one pipeline stage:
  ``unit_devices = attn_tp * attn_dp = moe_ep * moe_tp``;
* ``pp`` pipeline stages and ``dp`` plain replicas multiply units into the world:
  ``world = unit_devices * pp * dp``;
* ``dense_tp`` shards the dense FFN layers (DeepSeek's first three) inside a unit; the rest of the unit
  runs them data-parallel;
* ``redundant_experts`` extra physical expert slots per MoE layer, spread evenly over the ``moe_ep`` ranks.

Validation never mutates; it returns :class:`DimsProblem` values naming the plan field, the bad value and
what would be accepted, so the CLI can print them and exit 2.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, fields

from cost_models.specs import AttentionKind, ModelSpec, memo_hash


class OverlapPolicy(enum.Enum):
    """How communication is hidden behind computation."""

    NONE = "none"
    """Every op runs back to back on one stream."""
    TWO_BATCH = "two_batch"
    """Two micro-batches; one's all-to-all runs while the other computes (DeepSeek, SGLang TBO)."""
    SINGLE_BATCH = "single_batch"
    """One batch; dispatch in flight behind the shared expert, combine streamed behind the down GEMM (SGLang SBO,
    :func:`cost_models.step.compose_single_batch`)."""


@memo_hash
@dataclass(frozen=True, kw_only=True)
class ParallelDims:
    """Parallel degrees of one deployment (one serving pool)."""

    attn_tp: int = 1
    """Tensor-parallel degree of attention (heads split across devices)."""
    attn_dp: int = 1
    """Data-parallel degree of attention inside a unit (each rank owns its own sequences and KV cache)."""
    moe_ep: int = 1
    """Expert-parallel degree of the routed experts (experts split across devices)."""
    moe_tp: int = 1
    """Tensor-parallel degree inside each routed expert (its FFN width split)."""
    dense_tp: int = 1
    """Tensor-parallel degree of dense FFN layers (rest of the unit is data-parallel for them)."""
    pp: int = 1
    """Pipeline stages (layers split across stages)."""
    dp: int = 1
    """Plain data-parallel replicas of the whole model."""
    redundant_experts: int = 0
    """Extra physical expert slots per MoE layer for replicas of hot experts."""
    micro_batches: int = 1
    """Micro-batches a step is split into (2 for two-batch overlap)."""
    overlap: OverlapPolicy = OverlapPolicy.NONE
    """Communication-overlap policy."""

    @property
    def unit_devices(self) -> int:
        return self.attn_tp * self.attn_dp

    @property
    def world_devices(self) -> int:
        return self.unit_devices * self.pp * self.dp

    def physical_expert_slots(self, model: ModelSpec) -> int:
        return (model.moe.num_routed_experts + self.redundant_experts) if model.moe else 0

    def experts_per_device(self, model: ModelSpec) -> int:
        return self.physical_expert_slots(model) // self.moe_ep if model.moe else 0

    def pipeline_stages(self, model: ModelSpec) -> tuple[StageLayers, ...]:
        """The layers each of the ``pp`` stages holds (:func:`pipeline_stages`)."""
        return pipeline_stages(model, self.pp)

    def as_dict(self) -> dict[str, int | str]:
        out: dict[str, int | str] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.value if isinstance(v, enum.Enum) else v
        return out

    def label(self) -> str:
        """Compact plan string, the same grammar ``--plan`` accepts."""
        return ",".join(f"{k}={v}" for k, v in self.as_dict().items())


@dataclass(frozen=True, kw_only=True)
class StageLayers:
    """What one pipeline stage holds: its decoder layers by kind, and the embedding / LM head."""

    dense_layers: int
    """Layers with a dense FFN."""
    moe_layers: int
    """Layers with routed experts."""
    holds_embedding: bool
    """The first stage looks up the input embedding."""
    holds_head: bool
    """The last stage runs the final norm, the LM head and sampling."""

    @property
    def layers(self) -> int:
        return self.dense_layers + self.moe_layers


def stage_layer_counts(num_layers: int, pp: int) -> tuple[int, ...]:
    """Decoder layers per stage, first to last: ``num_layers // pp`` each, the remainder one each on the stages
    before the last, from the second-to-last backwards (vLLM ``vllm/distributed/utils.py::get_pp_indices``: the
    last stage also runs the head). 61 layers: pp 2 -> (31, 30), pp 4 -> (15, 15, 16, 15)."""
    counts = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        counts[-i] += 1
    return tuple(counts)


@functools.lru_cache(maxsize=1024)
def pipeline_stages(model: ModelSpec, pp: int) -> tuple[StageLayers, ...]:
    """Every stage's composition: layers are contiguous and the model's dense layers come first (DeepSeek's
    ``first_k_dense_replace``), so stage 0 holds them. Memory and step time both read this one split, each
    taking the stage that binds it (the fullest, the slowest)."""
    out: list[StageLayers] = []
    start = 0
    counts = stage_layer_counts(model.num_layers, pp)
    for i, n in enumerate(counts):
        dense = max(0, min(model.num_dense_layers, start + n) - start)
        out.append(StageLayers(dense_layers=dense, moe_layers=n - dense, holds_embedding=i == 0,
                               holds_head=i == len(counts) - 1))
        start += n
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class DimsProblem:
    """One reason a plan is not acceptable for a model and cluster."""

    field: str
    value: int | str
    accepted: str

    def message(self) -> str:
        return f"plan.{self.field}: got {self.value}; accepted: {self.accepted}"


def _divisors(n: int) -> list[int]:
    """The divisors of ``n`` (>= 1) in ascending order, by trial division up to sqrt(n): each divisor d <= sqrt(n)
    pairs with n // d, so 10**9 + 257 slots take 31,623 trials, not 10**9 (issue 12: a linear loop ran > 60 s)."""
    small: list[int] = []
    large: list[int] = []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def check_dims(dims: ParallelDims, model: ModelSpec, num_devices: int) -> list[DimsProblem]:
    """Return every divisibility / product problem of ``dims`` (empty list = acceptable)."""
    problems: list[DimsProblem] = []
    for f in fields(dims):
        v = getattr(dims, f.name)
        if isinstance(v, int) and f.name != "redundant_experts" and v < 1:
            problems.append(DimsProblem(field=f.name, value=v, accepted="an integer >= 1"))
    if dims.redundant_experts < 0:
        problems.append(DimsProblem(field="redundant_experts", value=dims.redundant_experts, accepted="an integer >= 0"))
    if problems:
        return problems
    unit = dims.unit_devices
    if dims.world_devices != num_devices:
        problems.append(DimsProblem(
            field="attn_tp*attn_dp*pp*dp", value=dims.world_devices,
            accepted=f"{num_devices} (the cluster's device count); with pp={dims.pp}, dp={dims.dp} the unit must be "
                     f"{num_devices // (dims.pp * dims.dp) if num_devices % (dims.pp * dims.dp) == 0 else 'impossible'} devices"))
    att = model.attention
    if att.num_q_heads % dims.attn_tp:
        problems.append(DimsProblem(field="attn_tp", value=dims.attn_tp,
                                    accepted=f"a divisor of the {att.num_q_heads} query heads: {_divisors(att.num_q_heads)}"))
    elif att.kind is not AttentionKind.MLA:
        kv = att.num_kv_heads
        if kv % dims.attn_tp and dims.attn_tp % kv:
            problems.append(DimsProblem(field="attn_tp", value=dims.attn_tp,
                                        accepted=f"a divisor or multiple of the {kv} KV heads"))
    if model.moe is not None:
        if dims.moe_ep * dims.moe_tp != unit:
            problems.append(DimsProblem(
                field="moe_ep*moe_tp", value=dims.moe_ep * dims.moe_tp,
                accepted=f"{unit} (= attn_tp*attn_dp, the devices of one unit)"))
        slots = dims.physical_expert_slots(model)
        if slots % dims.moe_ep:
            ok = [d for d in _divisors(slots) if d <= num_devices]
            problems.append(DimsProblem(
                field="moe_ep", value=dims.moe_ep,
                accepted=f"a divisor of the {model.moe.num_routed_experts} experts + {dims.redundant_experts} redundant "
                         f"= {slots} slots: {ok}; or change redundant_experts so the slots divide by moe_ep"))
        if model.moe.expert_ffn_dim % dims.moe_tp:
            problems.append(DimsProblem(field="moe_tp", value=dims.moe_tp,
                                        accepted=f"a divisor of the expert FFN width {model.moe.expert_ffn_dim}"))
    elif dims.moe_ep != 1:
        problems.append(DimsProblem(field="moe_ep", value=dims.moe_ep, accepted="1 (the model is dense)"))
    elif dims.redundant_experts:
        problems.append(DimsProblem(field="redundant_experts", value=dims.redundant_experts,
                                    accepted="0 (the model is dense)"))
    if model.num_dense_layers:
        if unit % dims.dense_tp:
            problems.append(DimsProblem(field="dense_tp", value=dims.dense_tp,
                                        accepted=f"a divisor of the unit size {unit}: {_divisors(unit)}"))
        elif model.dense_ffn_dim % dims.dense_tp:
            problems.append(DimsProblem(field="dense_tp", value=dims.dense_tp,
                                        accepted=f"a divisor of the dense FFN width {model.dense_ffn_dim}"))
    if dims.pp > model.num_layers:
        problems.append(DimsProblem(field="pp", value=dims.pp, accepted=f"at most {model.num_layers} (the layer count)"))
    if dims.micro_batches not in (1, 2):
        problems.append(DimsProblem(field="micro_batches", value=dims.micro_batches, accepted="1 or 2"))
    if dims.overlap is OverlapPolicy.TWO_BATCH and dims.micro_batches != 2:
        problems.append(DimsProblem(field="overlap", value=dims.overlap.value,
                                    accepted="two_batch only with micro_batches=2 (or overlap=none)"))
    if dims.overlap is OverlapPolicy.SINGLE_BATCH and dims.micro_batches != 1:
        problems.append(DimsProblem(field="overlap", value=dims.overlap.value,
                                    accepted="single_batch only with micro_batches=1 (it splits no batch)"))
    return problems
