"""Training scenarios (``workload: {kind: training}``): the YAML sections and their typed specs.

A training scenario names a model (catalog id, Hugging Face config, or the inline ``shape`` of a dense GPT as the
Megatron papers describe them), a cluster (as serving scenarios do), a ``workload`` (sequence length, global batch,
precision recipe, optimizer, routing, optional token budget and deadline) and optionally a ``plan`` (the training
degrees, parsed into :class:`cost_models.training.dims.TrainingDims`).  Every problem is a
:class:`~planner.inputs.errors.ScenarioError` naming the key path, the value and what is accepted (exit 2).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from cost_models.specs import AttentionKind, AttentionSpec, ClusterSpec, ModelSpec, Precision
from cost_models.training.dims import (
    A2AOverlap,
    ContextParallel,
    Dispatcher,
    OptimizerSharding,
    Schedule,
    TrainingDims,
)
from cost_models.training.finetune_spec import LORA_TARGETS, Finetune, Part
from cost_models.training.specs import (
    Optimizer,
    PrecisionRecipe,
    Recompute,
    RecomputeModule,
    TrainingOpClass,
    TrainingWorkload,
)
from planner.inputs import limits as lim
from planner.inputs import reader
from planner.inputs.errors import ScenarioError
from planner.inputs.scenario import (
    ClusterSection,
    ModelSection,
    _is_training,
    _pydantic_error,
    _Strict,
    cluster_of,
    effective_sources,
    model_of,
    read_expert_loads,
)

RECOMPUTE_MODULES = {m.value: m for m in RecomputeModule}
RECOMPUTE_POLICIES = ("none", "full", "op_sac")
"""The whole-layer recompute values of ``plan.recompute`` (the alternative is a list of RECOMPUTE_MODULES)."""
FLOP_COUNTINGS = ("megatron", "narayanan", "six_n")
"""How a published TFLOP/s figure counts FLOPs (cost_models.training.flops): Megatron's
``num_floating_point_operations``, Narayanan et al. 2021 eq. 3, or 6 x parameters plus causal attention."""


class DenseShape(_Strict):
    """A dense GPT of the Megatron papers: MHA, plain (non-gated) GeLU MLP, untied head."""

    hidden_size: int = Field(ge=64, le=1_000_000)
    num_heads: int = Field(ge=1, le=65_536)
    num_layers: int = Field(ge=1, le=10_000)
    vocab_size: int = Field(default=51_200, ge=1_024, le=10_000_000)
    ffn_dim: int | None = Field(default=None, ge=1, le=10_000_000)
    """MLP width; default 4 x hidden_size."""
    gated: bool = False


class TrainingModelSection(_Strict):
    catalog: str | None = None
    """Bundled model id (``moeplan catalog models``)."""
    hf_config: str | None = None
    """Path to a Hugging Face config.json, relative to the scenario file."""
    shape: DenseShape | None = None
    """An inline dense GPT shape (the Megatron papers' models have no published config.json)."""
    name: str | None = Field(default=None, max_length=lim.MAX_NAME_CHARS)
    """Display name of an inline shape."""


class OptimizerSection(_Strict):
    name: Literal["adam", "muon"] = "adam"
    """Adam(W) with fp32 master weights and fp32 gradient accumulation; or Muon (one momentum buffer)."""
    moments: Literal["fp32", "bf16"] = "fp32"
    """Precision of Adam's two moments (DeepSeek-V3 keeps them in BF16, arXiv 2412.19437 §3.3.4)."""
    grads: Literal["fp32", "fp16"] = "fp32"
    """Gradient accumulation and all-reduce precision (fp16: Megatron-LM ``--fp16`` without
    ``--accumulate-allreduce-grads-in-fp32``, the 2021-era runs)."""


class RoutingSection(_Strict):
    dropless: bool = True
    capacity_factor: float | None = Field(default=None, gt=0, le=lim.MAX_EXPERT_IMBALANCE)
    """Expert capacity as a multiple of the mean load (tokens beyond it are dropped); only with dropless false."""
    expert_imbalance: float = Field(default=1.0, ge=1.0, le=lim.MAX_EXPERT_IMBALANCE)
    """Max / mean routed tokens per EP rank (1.0 = force-balanced routing)."""
    expert_load: str | None = None
    """Router-count file (CSV or JSON, rows = MoE layers, columns = experts), relative to the scenario file: the
    imbalance is then measured per EP degree (planner.analysis.training.contiguous_imbalance)."""


MAX_LORA_RANK = 65_536
"""Largest accepted LoRA rank (hidden sizes of today's models are below it)."""
PartName = Literal["embedding", "head", "attention", "dense_ffn", "router", "routed_experts", "shared_experts"]
LoraTargetName = Literal["attention", "dense_ffn", "routed_experts", "shared_experts"]


class LoraSection(_Strict):
    rank: int = Field(ge=1, le=MAX_LORA_RANK)
    """Rank r of every adapter: r (d_in + d_out) parameters per adapted GEMM (Hu et al. 2021)."""
    targets: list[LoraTargetName] = Field(min_length=1, max_length=len(LORA_TARGETS))
    """Parts whose GEMMs carry adapters; each must also be listed in finetune.frozen."""


class FinetuneSection(_Strict):
    frozen: Literal["all"] | list[PartName] = Field(default=[], max_length=len(Part))
    """Parts whose parameters do not train (weights only, no gradients or optimizer states); ``all`` = every
    part (with a lora section: only the adapters train)."""
    lora: LoraSection | None = None


RecipeName = Literal["bf16", "fp8_tensorwise", "fp8_blockwise", "mxfp8"]
ClassPrecisionName = Literal["bf16", "fp8"]


class TrainingPrecisionSection(_Strict):
    """Precision per op class: the recipe, and per class of Linear GEMMs ``fp8`` (the recipe's FP8) or ``bf16``
    (kept in BF16); a class not named runs the recipe. The router, embedding and head are BF16 under every recipe."""

    recipe: RecipeName
    attention_projections: ClassPrecisionName | None = None
    dense_ffn: ClassPrecisionName | None = None
    routed_experts: ClassPrecisionName | None = None
    shared_experts: ClassPrecisionName | None = None
    attention: ClassPrecisionName = "bf16"
    """Core attention math: fp8 = Transformer Engine's fused FP8 attention (needs an FP8 recipe, flash attention)."""


class TrainingWorkloadSection(_Strict):
    kind: Literal["training"]
    seq_tokens: int = Field(ge=1, le=lim.MAX_TOKENS)
    """Tokens per sequence."""
    global_batch_sequences: int | None = Field(default=None, ge=1, le=lim.MAX_TRAIN_BATCH_SEQUENCES)
    global_batch_tokens: int | None = Field(default=None, ge=1, le=lim.MAX_TRAIN_BATCH_TOKENS)
    """Alternative to global_batch_sequences: must be a multiple of seq_tokens."""
    precision: TrainingPrecisionSection = TrainingPrecisionSection(recipe="bf16")
    """A recipe for every Linear GEMM (a name), or a mapping with the recipe and a precision per op class."""

    @field_validator("precision", mode="before")
    @classmethod
    def _recipe_alone(cls, value: Any) -> Any:
        """A recipe name is the mapping with that recipe and no class named."""
        names = typing.get_args(RecipeName)
        if isinstance(value, dict) or value in names:
            return {"recipe": value} if isinstance(value, str) else value
        raise ValueError(f"one of {', '.join(names)}, or a mapping of recipe: and a precision per op class "
                         f"({', '.join(c.value for c in TrainingOpClass)}, attention)")
    optimizer: OptimizerSection = OptimizerSection()
    routing: RoutingSection = RoutingSection()
    flash_attention: bool = True
    dropout: bool = False
    loss_chunks: int = Field(default=1, ge=1, le=lim.MAX_MICRO_BATCHES)
    """Chunks the LM head and cross-entropy run in along the tokens (a chunked loss); 1 = all logits at once."""
    loss_fp32_upcast: bool = False
    """PyTorch cross-entropy on an fp32 copy of the logits (torchtitan); false = Megatron's fused one."""
    fp32_params: bool = False
    """Under FSDP (zero3) the fp32 parameter shards are the optimizer's master, cast to bf16 at the all-gather
    (PyTorch FSDP2 mixed precision, torchtitan); false = a bf16 shard beside an fp32 master (Megatron)."""
    token_budget: int | None = Field(default=None, ge=1, le=lim.MAX_TOKEN_BUDGET)
    """Tokens to train on (for ``plan --objective time`` and ``--objective devices``)."""
    deadline: str | None = None
    """Wall-clock time to reach the token budget, e.g. '30 days', '12 h' (for ``plan --objective devices``)."""
    finetune: FinetuneSection | None = None
    """Fine-tuning: frozen parts and LoRA adapters (cost_models.training.finetune); absent = full training."""


class TrainingPlanSection(_Strict):
    """The degrees of one training layout (cost_models.training.dims.TrainingDims), unnamed ones default."""

    tp: int = Field(default=1, ge=1, le=lim.MAX_DEGREE)
    sequence_parallel: bool = True
    cp: int = Field(default=1, ge=1, le=lim.MAX_DEGREE)
    cp_kind: Literal["ring", "ulysses"] = "ring"
    pp: int = Field(default=1, ge=1, le=lim.MAX_DEGREE)
    vpp: int = Field(default=1, ge=1, le=lim.MAX_DEGREE)
    schedule: Literal["1f1b", "interleaved_1f1b", "zb1p", "dualpipe", "dualpipev"] | None = None
    """Default: interleaved_1f1b when vpp > 1, else 1f1b."""
    dp: int | None = Field(default=None, ge=1, le=lim.MAX_DEGREE)
    """Default: the devices left over, devices / (tp x cp x pp)."""
    ep: int = Field(default=1, ge=1, le=lim.MAX_DEGREE)
    etp: int = Field(default=1, ge=1, le=lim.MAX_DEGREE)
    edp: int | None = Field(default=None, ge=1, le=lim.MAX_DEGREE)
    """Optional check: must equal tp x cp x dp / (ep x etp)."""
    sharding: Literal["none", "zero1", "zero2", "zero3"] = "zero1"
    micro_batch: int = Field(default=1, ge=1, le=lim.MAX_MICRO_BATCHES)
    """Sequences per micro-batch per data-parallel rank."""
    recompute: Literal["none", "full", "op_sac"] | list[str] = "none"
    """none, full, or a list of modules: core_attn, layernorm, moe_act, mla_up_proj."""
    a2a_overlap: bool = False
    """Overlap EP all-to-all with another micro-batch's compute (Megatron-Core 1F1B a2a overlap; DualPipe always)."""
    dispatcher: Literal["deepep", "alltoall"] = "deepep"
    """EP token dispatcher: DeepEP normal kernels, or the all-to-all dispatcher (NCCL / HCCL all-to-all of every
    token copy; MindSpeed-LLM's alltoall_seq)."""
    overlap_grad_reduce: bool = True
    tp_comm_overlap: bool = True
    """Backward TP collectives beside the column-parallel GEMMs (Megatron); false: exposed (torchtitan)."""
    pp_comm_overlap: bool = True
    """Interleaved 1F1B's P2P beside compute (Megatron-Core since 2023); false: exposed (older Megatron-LM)."""


class TrainingExpect(_Strict):
    """A measured figure of a published run (validation scenarios)."""

    metric: Literal["tokens_per_s_per_device", "step_s", "tflop_per_s_per_device", "peak_memory_gib"]
    value: float = Field(gt=0)
    tolerance: float = Field(gt=0, lt=1)
    source: str
    flop_counting: Literal["megatron", "narayanan", "six_n"] = "megatron"
    """How the source counts FLOPs (only for tflop_per_s_per_device)."""
    known_gap: str | None = None
    """Why the row is outside its tolerance today (the mechanism that is missing); None = asserted."""


class TrainingScenarioFile(_Strict):
    name: str = Field(max_length=lim.MAX_NAME_CHARS)
    description: str = ""
    model: TrainingModelSection
    cluster: ClusterSection
    workload: TrainingWorkloadSection
    plan: TrainingPlanSection | None = None
    expect: list[TrainingExpect] = []


@dataclass(frozen=True, kw_only=True)
class TrainingScenario:
    """A parsed training scenario: typed specs ready for cost_models.training."""

    name: str
    description: str
    path: str
    model: ModelSpec
    cluster: ClusterSpec
    workload: TrainingWorkload
    """The workload with the plan's recompute policy (the cost models keep recompute in the workload)."""
    plan: TrainingDims | None
    token_budget: int | None
    deadline_s: float | None
    expect: tuple[TrainingExpect, ...]
    device_sources: dict[str, Any]
    expert_loads: Any = None
    """:class:`planner.inputs.loads.ExpertLoads` of ``workload.routing.expert_load``, or None."""


_DURATION = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0}


def parse_duration(key: str, text: Any) -> float:
    """'30 days', '12 h', '90 min', '3600 s' -> seconds (1 s .. 100 years)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|min|h|d|day|days)\s*", text) if isinstance(text, str) else None
    value = float(m.group(1)) * _DURATION[m.group(2)] if m else -1.0
    if not 1.0 <= value <= lim.MAX_DEADLINE_S:
        raise ScenarioError(key, text, "a duration such as '30 days', '12 h', '90 min' (1 s .. 100 years)")
    return value


def _shape_model(shape: DenseShape, name: str | None) -> ModelSpec:
    if shape.hidden_size % shape.num_heads:
        raise ScenarioError("model.shape.num_heads", shape.num_heads, f"a divisor of hidden_size {shape.hidden_size}")
    d = shape.hidden_size // shape.num_heads
    label = name or f"GPT h{shape.hidden_size} l{shape.num_layers}"
    return ModelSpec(id=label, name=label, hidden_size=shape.hidden_size, num_layers=shape.num_layers,
                     num_dense_layers=shape.num_layers, dense_ffn_dim=shape.ffn_dim or 4 * shape.hidden_size,
                     vocab_size=shape.vocab_size, ffn_gated=shape.gated,
                     attention=AttentionSpec(kind=AttentionKind.MHA, num_q_heads=shape.num_heads,
                                             num_kv_heads=shape.num_heads, qk_head_dim=d, v_head_dim=d),
                     moe=None, native_precision=Precision.BF16, max_context_tokens=lim.MAX_TOKENS)


def _model(sec: TrainingModelSection, base: Path) -> ModelSpec:
    given = [k for k in ("catalog", "hf_config", "shape") if getattr(sec, k) is not None]
    if len(given) != 1:
        raise ScenarioError("model", given, "exactly one of model.catalog, model.hf_config or model.shape")
    if sec.shape is not None:
        return _shape_model(sec.shape, sec.name)
    return model_of(ModelSection(catalog=sec.catalog, hf_config=sec.hf_config), base)


def _optimizer(sec: OptimizerSection) -> Optimizer:
    if sec.name == "muon":
        if sec.moments != "fp32":
            raise ScenarioError("workload.optimizer.moments", sec.moments, "fp32 with muon (one fp32 momentum)")
        return Optimizer.MUON
    if sec.grads == "fp16":
        if sec.moments != "fp32":
            raise ScenarioError("workload.optimizer.grads", sec.grads, "fp32 with bf16 moments (fp16 gradients are "
                                "modelled with fp32 moments only)")
        return Optimizer.ADAM_FP16_GRADS
    return Optimizer.ADAM if sec.moments == "fp32" else Optimizer.ADAM_BF16_MOMENTS


def recompute_of(value: str | list[str], key: str = "plan.recompute") -> Recompute:
    """'none' | 'full' | 'op_sac' (torchtitan's per-op selective checkpointing) | a list of module names ->
    Recompute."""
    if value == "none":
        return Recompute.none()
    if value == "full":
        return Recompute.full_layers()
    if value == "op_sac":
        return Recompute.op_selective()
    if isinstance(value, str) or not value:
        raise ScenarioError(key, value, ", ".join(RECOMPUTE_POLICIES) + ", or a non-empty list of: "
                            + ", ".join(RECOMPUTE_MODULES))
    bad = [v for v in value if v not in RECOMPUTE_MODULES]
    if bad:
        raise ScenarioError(key, bad[0], ", ".join(RECOMPUTE_POLICIES) + ", or a list of: " + ", ".join(RECOMPUTE_MODULES))
    return Recompute(modules=frozenset(RECOMPUTE_MODULES[v] for v in value))


def recompute_label(r: Recompute) -> str | list[str]:
    """Inverse of :func:`recompute_of`."""
    if r.full:
        return "full"
    if r.op_sac:
        return "op_sac"
    return sorted(m.value for m in r.modules) if r.modules else "none"


def _finetune(sec: FinetuneSection | None) -> Finetune | None:
    """The typed fine-tuning spec; a LoRA target must be frozen, and something must train."""
    if sec is None:
        return None
    frozen = frozenset(Part) if sec.frozen == "all" else frozenset(Part(v) for v in sec.frozen)
    lora = sec.lora
    if lora is not None:
        loose = sorted(set(lora.targets) - {p.value for p in frozen})
        if loose:
            raise ScenarioError("workload.finetune.lora.targets", loose,
                                "parts also listed in workload.finetune.frozen (an adapter trains beside a frozen "
                                "base matrix)")
    if frozen == frozenset(Part) and lora is None:
        raise ScenarioError("workload.finetune.frozen", sec.frozen,
                            "fewer parts, or a workload.finetune.lora section (nothing would train)")
    if not frozen and lora is None:
        raise ScenarioError("workload.finetune", {}, "at least one frozen part or a lora section")
    return Finetune(frozen=frozen, lora_rank=lora.rank if lora else 0,
                    lora_targets=frozenset(Part(v) for v in lora.targets) if lora else frozenset())


def _precision(sec: TrainingWorkloadSection) -> tuple[PrecisionRecipe, frozenset[TrainingOpClass], bool]:
    """The recipe, the Linear classes kept in BF16 under it and whether core attention runs in FP8."""
    p = sec.precision
    recipe = PrecisionRecipe.from_label(p.recipe)
    fp8_recipes = ", ".join(r.label for r in PrecisionRecipe if r is not PrecisionRecipe.BF16)
    if recipe is PrecisionRecipe.BF16:
        for name in [c.value for c in TrainingOpClass] + ["attention"]:
            if getattr(p, name) == "fp8":
                raise ScenarioError(f"workload.precision.{name}", "fp8",
                                    f"bf16 under recipe bf16 (an FP8 class needs workload.precision.recipe "
                                    f"{fp8_recipes})")
        return recipe, frozenset(), False
    if p.attention == "fp8" and not sec.flash_attention:
        raise ScenarioError("workload.precision.attention", "fp8",
                            "bf16 with flash_attention: false (FP8 attention is a fused kernel)")
    bf16 = frozenset(c for c in TrainingOpClass if getattr(p, c.value) == "bf16")
    return recipe, bf16, p.attention == "fp8"


def _workload(sec: TrainingWorkloadSection) -> TrainingWorkload:
    if (sec.global_batch_sequences is None) == (sec.global_batch_tokens is None):
        raise ScenarioError("workload.global_batch_sequences", sec.global_batch_sequences,
                            "exactly one of workload.global_batch_sequences or workload.global_batch_tokens")
    if sec.global_batch_tokens is not None and sec.global_batch_tokens % sec.seq_tokens:
        raise ScenarioError("workload.global_batch_tokens", sec.global_batch_tokens,
                            f"a multiple of workload.seq_tokens = {sec.seq_tokens}")
    gbs = sec.global_batch_sequences or (sec.global_batch_tokens or 0) // sec.seq_tokens
    if gbs > lim.MAX_TRAIN_BATCH_SEQUENCES:
        raise ScenarioError("workload.global_batch_tokens", sec.global_batch_tokens,
                            f"at most {lim.MAX_TRAIN_BATCH_SEQUENCES:,} sequences of workload.seq_tokens")
    r = sec.routing
    if r.dropless and r.capacity_factor is not None:
        raise ScenarioError("workload.routing.capacity_factor", r.capacity_factor,
                            "no capacity_factor with dropless: true (set dropless: false to drop tokens)")
    if not r.dropless and r.capacity_factor is None:
        raise ScenarioError("workload.routing.capacity_factor", None, "a capacity factor > 0 with dropless: false")
    recipe, bf16_classes, fp8_attention = _precision(sec)
    return TrainingWorkload(seq_tokens=sec.seq_tokens, global_batch_sequences=gbs, recipe=recipe,
                            bf16_classes=bf16_classes, fp8_attention=fp8_attention, optimizer=_optimizer(sec.optimizer),
                            expert_imbalance=r.expert_imbalance, capacity_factor=r.capacity_factor,
                            flash_attention=sec.flash_attention, dropout=sec.dropout, loss_chunks=sec.loss_chunks,
                            loss_fp32_upcast=sec.loss_fp32_upcast, fp32_params=sec.fp32_params,
                            finetune=_finetune(sec.finetune))


def dims_of(sec: TrainingPlanSection, devices: int, *, key: str = "plan") -> tuple[TrainingDims, Recompute]:
    """The degrees of a plan section (dp defaults to the devices left over) and its recompute policy."""
    rest = sec.tp * sec.cp * sec.pp
    if sec.dp is None and devices % rest:
        raise ScenarioError(f"{key}.tp*cp*pp", rest, f"a divisor of the {devices} devices (or give {key}.dp)")
    dp = sec.dp or devices // rest
    schedule = Schedule(sec.schedule) if sec.schedule else (Schedule.INTERLEAVED if sec.vpp > 1
                                                            else Schedule.ONE_F_ONE_B)
    dims = TrainingDims(tp=sec.tp, sequence_parallel=sec.sequence_parallel, cp=sec.cp,
                        cp_kind=ContextParallel(sec.cp_kind), pp=sec.pp, vpp=sec.vpp, schedule=schedule, dp=dp,
                        ep=sec.ep, etp=sec.etp, sharding=OptimizerSharding(sec.sharding),
                        micro_batch_sequences=sec.micro_batch,
                        a2a_overlap=A2AOverlap.FB_PAIRS if sec.a2a_overlap else A2AOverlap.NONE,
                        dispatcher=Dispatcher(sec.dispatcher), overlap_grad_reduce=sec.overlap_grad_reduce,
                        tp_comm_overlap=sec.tp_comm_overlap, pp_comm_overlap=sec.pp_comm_overlap)
    if sec.edp is not None and sec.edp * sec.ep * sec.etp != dims.stage_group_devices:
        raise ScenarioError(f"{key}.edp", sec.edp, f"tp x cp x dp / (ep x etp) = {dims.edp}")
    return dims, recompute_of(sec.recompute, f"{key}.recompute")


def plan_section(dims: TrainingDims, recompute: Recompute) -> dict[str, Any]:
    """The plan block of ``dims`` (inverse of :func:`dims_of`), every degree named."""
    return dict(tp=dims.tp, sequence_parallel=dims.sequence_parallel, cp=dims.cp, cp_kind=dims.cp_kind.value,
                pp=dims.pp, vpp=dims.vpp, schedule=dims.schedule.value, dp=dims.dp, ep=dims.ep, etp=dims.etp,
                edp=dims.edp, sharding=dims.sharding.value, micro_batch=dims.micro_batch_sequences,
                recompute=recompute_label(recompute), a2a_overlap=dims.a2a_overlap is A2AOverlap.FB_PAIRS,
                dispatcher=dims.dispatcher.value, overlap_grad_reduce=dims.overlap_grad_reduce,
                tp_comm_overlap=dims.tp_comm_overlap, pp_comm_overlap=dims.pp_comm_overlap)


def parse_training_plan(text: str, devices: int, *, key: str = "--plan") -> tuple[TrainingDims, Recompute]:
    """'tp=2,pp=8,vpp=4,ep=32,recompute=layernorm+moe_act' -> degrees (the plan section's keys; lists with +)."""
    if not isinstance(text, str) or not text.strip() or len(text) > lim.MAX_TEXT_CHARS:
        raise ScenarioError(key, text, "comma-separated name=value pairs, e.g. 'tp=2,pp=8,ep=32'")
    raw: dict[str, Any] = {}
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, sep, value = (x.strip() for x in item.partition("="))
        if not sep or name in raw:
            raise ScenarioError(f"{key}.{name}", value, "each name=value pair once, e.g. 'tp=2,pp=8'")
        raw[name] = value.split("+") if name == "recompute" and value not in RECOMPUTE_POLICIES else value
    try:
        sec = TrainingPlanSection.model_validate(raw, strict=False)
    except ValidationError as e:
        err = _pydantic_error(e)
        raise ScenarioError(f"{key}.{err.path}", err.value, err.accepted) from None
    return dims_of(sec, devices, key=key)


def training_scenario(raw: dict[str, Any], path: Path) -> TrainingScenario:
    """The typed scenario of a parsed training YAML mapping (ScenarioError on any problem)."""
    try:
        sf = TrainingScenarioFile.model_validate(raw)
    except ValidationError as e:
        raise _pydantic_error(e, TrainingScenarioFile) from None
    model = _model(sf.model, path.parent)
    cluster, dev, dpn = cluster_of(sf.cluster)
    workload = _workload(sf.workload)
    plan = None
    if sf.plan is not None:
        plan, recompute = dims_of(sf.plan, cluster.num_devices)
        workload = replace(workload, recompute=recompute)
    deadline = parse_duration("workload.deadline", sf.workload.deadline) if sf.workload.deadline else None
    r = sf.workload.routing
    loads = None
    if r.expert_load is not None:
        key = "workload.routing.expert_load"
        if model.moe is None or r.expert_imbalance != 1.0:
            raise ScenarioError(key, r.expert_load, "a router-count file for a MoE model, without expert_imbalance")
        loads = read_expert_loads(r.expert_load, model, base=path.parent, key=key)
    return TrainingScenario(expert_loads=loads, name=sf.name, description=sf.description, path=str(path), model=model, cluster=cluster,
                            workload=workload, plan=plan, token_budget=sf.workload.token_budget, deadline_s=deadline,
                            expect=tuple(sf.expect), device_sources=effective_sources(sf.cluster, dev, dpn))


def load_training(path: str | Path) -> Any:
    """Read and check a training scenario (:class:`planner.inputs.training.TrainingScenario`)."""
    p = Path(path)
    try:
        raw = reader.load_yaml(reader.read_text(p))
    except reader.InputFileError as e:
        raise ScenarioError("<file>", str(path), e.accepted) from None
    if not isinstance(raw, dict) or not _is_training(raw):
        raise ScenarioError("workload.kind", raw.get("workload") if isinstance(raw, dict) else raw,
                            "training (a mapping with name, model, cluster, workload: {kind: training, ...})")
    return training_scenario(raw, p)
