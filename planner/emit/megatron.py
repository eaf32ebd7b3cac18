"""Megatron-LM / Megatron-Core (``torchrun ... pretrain_gpt.py``) launch lines for a training layout.

Pure functions over (training model spec, training workload, degrees, cluster): one ``torchrun`` line per node
rank, the rendezvous read from ``${MASTER_ADDR}``, data and tokenizer from ``${DATA_PATH}`` / ``${TOKENIZER_PATH}``.

Mapping: ``tp`` -> ``--tensor-model-parallel-size`` (+ ``--sequence-parallel``); ``pp`` / ``vpp`` ->
``--pipeline-model-parallel-size`` / ``--num-virtual-stages-per-pipeline-rank``, or, when the layers do not split
evenly or MTP layers ride on the last stage, ``--pipeline-model-parallel-layout`` spelling out
:func:`cost_models.training.dims.chunk_layers` chunk by chunk; ``cp`` -> ``--context-parallel-size`` +
``--cp-comm-type p2p|a2a``; ``ep`` / ``etp`` -> ``--expert-model-parallel-size`` / ``--expert-tensor-parallel-size``;
EP on NVIDIA -> the flex dispatcher with DeepEP, or ``alltoall`` when the plan's dispatcher is (the kernels the
cost model times either way); ZeRO-1 ->
``--use-distributed-optimizer``, ZeRO-2 / ZeRO-3 -> Megatron-FSDP's ``optim_grads`` / ``optim_grads_params``;
the F&B all-to-all pairing -> ``--overlap-moe-expert-parallel-comm``; the FP8 recipes -> ``--fp8-format`` /
``--fp8-recipe``, the Linear classes kept in BF16 -> ``--te-precision-config-file`` and its file; BF16 Adam
moments -> the precision-aware optimizer.  Every flag is in Megatron-LM's argument
definitions at the pinned commit (tests/data/train_args/megatron_lm_dd546099.json, copied from its
``megatron/training/arguments.py``); what Megatron has no setting for raises :class:`EmitError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_models.specs import AttentionKind, ClusterSpec, ModelSpec
from cost_models.training.dims import (
    A2AOverlap,
    ContextParallel,
    Dispatcher,
    OptimizerSharding,
    Schedule,
    TrainingDims,
    chunk_layers,
)
from cost_models.training.specs import Optimizer, PrecisionRecipe, RecomputeModule, TrainingOpClass, TrainingWorkload
from planner.emit.types import EmitError, EngineSource, LaunchCommand, LaunchPlan

MASTER_ADDR_VAR, DATA_PATH_VAR, TOKENIZER_PATH_VAR = "MASTER_ADDR", "DATA_PATH", "TOKENIZER_PATH"
MASTER_PORT = 6000
"""The rendezvous port Megatron-LM's examples use (examples/gpt3/train_gpt3_175b_distributed.sh)."""

_ARGS = "NVIDIA/Megatron-LM@dd546099fa37cf52e9bdc2f4fe707c60b26eff31 megatron/training/arguments.py"
SOURCE = EngineSource(
    engine="megatron", version="Megatron-LM @dd546099 (Megatron-Core 0.16 development, 2025-12-10)",
    sources={
        "args": _ARGS,
        "config": "NVIDIA/Megatron-LM@dd546099 megatron/core/transformer/transformer_config.py (cross-argument "
                  "checks: DeepEP needs the flex dispatcher; the 1F1B all-to-all overlap needs EP > 1, no full "
                  "recompute and virtual stages when pp > 1)",
        "layout": "NVIDIA/Megatron-LM@dd546099 megatron/core/transformer/pipeline_parallel_layer_layout.py "
                  "(E embedding, t decoder layer, m MTP layer, L loss; '|' between stages in model order)",
        "torchrun": "pytorch/pytorch docs/source/elastic/run.rst (torchrun --nproc-per-node --nnodes --node-rank "
                    "--master-addr --master-port)",
    },
    flags={},
    env_vars={"CUDA_DEVICE_MAX_CONNECTIONS": "args"},
)


@dataclass(frozen=True, kw_only=True)
class Flavour:
    """What differs between Megatron-LM and MindSpeed-LLM on the same argument set."""

    engine: str
    version: str
    sources: tuple[str, ...]
    dispatcher: str
    """``--moe-token-dispatcher-type`` under expert parallelism."""
    env: tuple[tuple[str, str], ...]


def model_args(model: ModelSpec, workload: TrainingWorkload, *, mla_flag: str = "--multi-latent-attention"
               ) -> list[str]:
    """Architecture: layers, widths, heads (GQA / MLA), norm and MLP kind, embeddings."""
    att = model.attention
    # an all-MoE model has no dense FFN; Megatron still wants a positive width (unused): the expert width
    ffn = model.dense_ffn_dim if model.num_dense_layers or model.moe is None else model.moe.expert_ffn_dim
    a = ["--num-layers", str(model.num_layers), "--hidden-size", str(model.hidden_size),
         "--ffn-hidden-size", str(ffn), "--num-attention-heads", str(att.num_q_heads),
         "--seq-length", str(workload.seq_tokens),
         "--max-position-embeddings", str(max(workload.seq_tokens, model.max_context_tokens))]
    if att.kind is AttentionKind.MLA:
        a += [mla_flag, "--kv-lora-rank", str(att.kv_lora_rank), "--v-head-dim", str(att.v_head_dim)]
        if att.q_lora_rank:
            a += ["--q-lora-rank", str(att.q_lora_rank)]
    else:
        a += ["--kv-channels", str(att.qk_head_dim)]
        if att.num_kv_heads < att.num_q_heads:
            a += ["--group-query-attention", "--num-query-groups", str(att.num_kv_heads)]
    if model.ffn_gated:  # the gated (SwiGLU) models of the catalog are RMSNorm + RoPE + no bias
        a += ["--swiglu", "--normalization", "RMSNorm", "--position-embedding-type", "rope", "--disable-bias-linear"]
    if not model.tie_embeddings:
        a.append("--untie-embeddings-and-output-weights")
    return a


def mla_dims_args(model: ModelSpec, nope_flag: str, rope_flag: str) -> list[str]:
    att = model.attention
    if att.kind is not AttentionKind.MLA:
        return []
    rope = att.qk_rope_head_dim
    return [nope_flag, str(att.qk_head_dim - rope), rope_flag, str(rope)]


def moe_args(model: ModelSpec, workload: TrainingWorkload, dims: TrainingDims, dispatcher: str) -> list[str]:
    """Experts, router, the dense-then-MoE layer pattern, capacity, grouped GEMM and the token dispatcher."""
    moe = model.moe
    if moe is None:
        return []
    a = ["--num-experts", str(moe.num_routed_experts), "--moe-router-topk", str(moe.top_k),
         "--moe-ffn-hidden-size", str(moe.expert_ffn_dim), "--moe-grouped-gemm"]
    if moe.num_shared_experts:
        a += ["--moe-shared-expert-intermediate-size", str(moe.num_shared_experts * moe.shared_ffn_dim)]
    if model.num_dense_layers:
        dense = model.num_dense_layers
        a += ["--moe-layer-freq", f"([0]*{dense}+[1]*{model.num_layers - dense})"]
    if moe.num_groups > 1:
        a += ["--moe-router-num-groups", str(moe.num_groups), "--moe-router-group-topk", str(moe.topk_groups)]
    if workload.capacity_factor is not None:
        a += ["--moe-expert-capacity-factor", f"{workload.capacity_factor:g}"]
    a += ["--moe-token-dispatcher-type", dispatcher if dims.ep > 1 else "alltoall"]
    if dims.ep > 1 and dispatcher == "flex":
        a += ["--moe-flex-dispatcher-backend", "deepep"]
    return a


def layout(model: ModelSpec, dims: TrainingDims) -> str | None:
    """``--pipeline-model-parallel-layout`` for the cost model's chunking, or None when plain flags say it."""
    counts = chunk_layers(model, dims)
    if len(set(counts)) == 1 and not model.num_mtp_layers:
        return None
    stages = ["t" * n for n in counts]
    stages[0] = "E" + stages[0]
    stages[-1] += "m" * model.num_mtp_layers + "L"
    return "|".join(stages)


def parallel_args(engine: str, model: ModelSpec, dims: TrainingDims, *, vpp_flag: str) -> list[str]:
    """Degrees: TP (+SP), PP with virtual stages or an explicit layout, CP, EP, expert TP."""
    if dims.schedule not in (Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED):
        raise EmitError(engine, "plan.schedule", dims.schedule.value,
                        "1f1b or interleaved_1f1b (no DualPipe / zero-bubble schedule in its arguments)")
    a = ["--tensor-model-parallel-size", str(dims.tp), "--pipeline-model-parallel-size", str(dims.pp)]
    if dims.sp_active:
        a.append("--sequence-parallel")
    lay = layout(model, dims) if dims.pp > 1 else None
    if lay is not None:
        a += ["--pipeline-model-parallel-layout", lay]
    elif dims.schedule is Schedule.INTERLEAVED and dims.vpp > 1:
        a += [vpp_flag, str(dims.vpp)]
    if dims.schedule is Schedule.INTERLEAVED and not dims.pp_comm_overlap:
        a.append("--no-overlap-p2p-communication")
    if dims.cp > 1:
        a += ["--context-parallel-size", str(dims.cp)]
    if model.moe is not None:
        a += ["--expert-model-parallel-size", str(dims.ep), "--expert-tensor-parallel-size", str(dims.etp)]
    return a


def cp_args(dims: TrainingDims) -> list[str]:
    if dims.cp == 1:
        return []
    return ["--cp-comm-type", "p2p" if dims.cp_kind is ContextParallel.RING else "a2a"]


_MODULES = {RecomputeModule.CORE_ATTENTION: "core_attn", RecomputeModule.NORM: "layernorm",
            RecomputeModule.ACTIVATION: "moe_act", RecomputeModule.MLA_UP_PROJ: "mla_up_proj"}


def recompute_args(engine: str, model: ModelSpec, workload: TrainingWorkload) -> list[str]:
    """Full (uniform, one layer per checkpoint: only each layer's input kept) or selective modules."""
    r = workload.recompute
    if r.full:
        return ["--recompute-granularity", "full", "--recompute-method", "uniform", "--recompute-num-layers", "1"]
    if r.op_sac:
        raise EmitError(engine, "workload.recompute", "op_sac", "none, full or recompute modules (op_sac is torchtitan's "
                        "per-op checkpointing; Megatron-LM and MindSpeed have no such policy)")
    if not r.modules:
        return []
    if RecomputeModule.ACTIVATION in r.modules and model.moe is None:
        raise EmitError(engine, "workload.recompute", "activation",
                        "moe_act only for MoE models (a dense model's 'mlp' module recomputes the whole MLP)")
    if RecomputeModule.MLA_UP_PROJ in r.modules and model.attention.kind is not AttentionKind.MLA:
        raise EmitError(engine, "workload.recompute", "mla_up_proj", "only for multi-latent attention models")
    names = sorted(_MODULES[m] for m in r.modules)
    return ["--recompute-granularity", "selective", "--recompute-modules", *names]


def optimizer_args(engine: str, workload: TrainingWorkload, dims: TrainingDims, *, fsdp: bool = True
                   ) -> list[str]:
    """Adam; BF16 moments through the precision-aware optimizer; the DP sharding and its overlap."""
    if workload.optimizer is Optimizer.MUON:
        raise EmitError(engine, "workload.optimizer", "muon", "adam, adam_bf16_moments (--optimizer adam|sgd)")
    a = ["--optimizer", "adam"]
    if workload.optimizer is Optimizer.ADAM_BF16_MOMENTS:
        if engine != "megatron":
            raise EmitError(engine, "workload.optimizer", "adam_bf16_moments",
                            "adam (--exp-avg-dtype accepts fp32, fp16, fp8 here)")
        a += ["--use-precision-aware-optimizer", "--exp-avg-dtype", "bf16", "--exp-avg-sq-dtype", "bf16"]
    s = dims.sharding
    if s is OptimizerSharding.ZERO1:
        a.append("--use-distributed-optimizer")
    elif s in (OptimizerSharding.ZERO2, OptimizerSharding.ZERO3):
        if not fsdp:
            raise EmitError(engine, "plan.sharding", s.value, "none or zero1 (--use-distributed-optimizer)")
        strategy = "optim_grads" if s is OptimizerSharding.ZERO2 else "optim_grads_params"
        a += ["--use-megatron-fsdp", "--data-parallel-sharding-strategy", strategy, "--ckpt-format", "fsdp_dtensor"]
    if dims.overlap_grad_reduce and s is not OptimizerSharding.NONE:
        a += ["--overlap-grad-reduce", "--overlap-param-gather"]
    elif dims.overlap_grad_reduce:
        a.append("--overlap-grad-reduce")
    return a


TE_PRECISION_FILE = "te_precision.yaml"
"""The per-module precision file ``--te-precision-config-file`` reads (written beside the launch lines)."""
TE_MODULE_GLOBS: dict[TrainingOpClass, tuple[str, ...]] = {
    TrainingOpClass.ATTENTION_PROJECTIONS: ("*.self_attention.linear_*",),
    TrainingOpClass.DENSE_FFN: ("*.mlp.linear_fc*",),
    TrainingOpClass.ROUTED_EXPERTS: ("*.mlp.experts.linear_fc*",),
    TrainingOpClass.SHARED_EXPERTS: ("*.mlp.shared_experts.linear_fc*",),
}
"""Megatron-Core module paths of each Linear class, as fnmatch globs (the GlobMatcher of
megatron/core/quantization/quant_config.py): attention's ``linear_qkv`` / ``linear_proj`` and MLA's
``linear_q_proj``, ``linear_q_down_proj``, ``linear_q_up_proj``, ``linear_kv_down_proj``, ``linear_kv_up_proj``
(transformer/attention.py, multi_latent_attention.py), a dense layer's ``mlp.linear_fc1/2`` (mlp.py), the grouped
experts' ``mlp.experts.linear_fc1/2`` (moe/experts.py ``TEGroupedMLP``) and ``mlp.shared_experts``
(moe/moe_layer.py); ``*.mlp.linear_fc*`` does not reach ``mlp.experts.*`` or ``mlp.shared_experts.*``."""


def precision_args(engine: str, workload: TrainingWorkload, cluster: ClusterSpec) -> list[str]:
    """BF16 parameters; FP8 GEMMs by recipe (MXFP8 needs Blackwell, the others Hopper or later); the Linear classes
    kept in BF16 through Megatron-Core's per-module precision file (:func:`te_precision_file`)."""
    rec = workload.recipe
    a = ["--bf16"]
    if rec is PrecisionRecipe.BF16:
        return a
    if cluster.device.vendor != "nvidia":
        raise EmitError(engine, "workload.precision", rec.label, f"bf16 on {cluster.device.id} (no FP8 recipe)")
    if workload.fp8_attention:
        raise EmitError(engine, "workload.precision.attention", "fp8",
                        "bf16 (Megatron-LM's arguments.py lists fp8_dot_product_attention among the TransformerConfig "
                        "fields that have no command-line argument)")
    recipe = {PrecisionRecipe.FP8_TENSORWISE: ("hybrid", "tensorwise"),
              PrecisionRecipe.FP8_BLOCKWISE: ("e4m3", "blockwise"), PrecisionRecipe.MXFP8: ("e4m3", "mxfp8")}[rec]
    a += ["--fp8-format", recipe[0], "--fp8-recipe", recipe[1]]
    if workload.bf16_classes:
        if engine != "megatron":
            cls = sorted(c.value for c in workload.bf16_classes)[0]
            raise EmitError(engine, f"workload.precision.{cls}", "bf16", "fp8 (a per-class precision is emitted for "
                            "Megatron-LM only, through --te-precision-config-file)")
        a += ["--te-precision-config-file", TE_PRECISION_FILE]
    return a


def te_precision_file(workload: TrainingWorkload) -> dict[str, str]:
    """``{TE_PRECISION_FILE: yaml}`` that keeps the workload's BF16 classes in BF16 under the FP8 recipe (empty when
    none is): one ``bf16`` config (``TEQuantizationParams`` with an empty training recipe: no quantization) and an
    enabled glob matcher per module path of each class, in the format of
    megatron/core/extensions/TransformerEngineMixedPrecision.md."""
    if workload.recipe is PrecisionRecipe.BF16 or not workload.bf16_classes:
        return {}
    lines = ["configs:", "  bf16:", '    transformer_engine_config_type: "TEQuantizationParams"',
             "    training_recipe: {}", "matchers:"]
    for c in TrainingOpClass:
        if c not in workload.bf16_classes:
            continue
        for i, pattern in enumerate(TE_MODULE_GLOBS[c]):
            lines += [f"  {c.value}_bf16_{i}:", '    config: "bf16"', '    type: "glob"', f'    pattern: "{pattern}"',
                      "    enabled: true"]
    return {TE_PRECISION_FILE: "\n".join(lines) + "\n"}


def overlap_args(engine: str, flag: str, model: ModelSpec, workload: TrainingWorkload, dims: TrainingDims
                 ) -> list[str]:
    """The F&B pairing of two micro-batches' all-to-alls (1F1B all-to-all overlap)."""
    if dims.a2a_overlap is not A2AOverlap.FB_PAIRS:
        return []
    if model.moe is None or dims.ep == 1:
        raise EmitError(engine, "plan.a2a_overlap", dims.a2a_overlap.value, "none unless ep > 1")
    if workload.recompute.full:
        raise EmitError(engine, "plan.a2a_overlap", dims.a2a_overlap.value, "none with full recompute")
    if dims.pp > 1 and dims.schedule is not Schedule.INTERLEAVED:
        raise EmitError(engine, "plan.a2a_overlap", dims.a2a_overlap.value,
                        "none unless the schedule is interleaved_1f1b when pp > 1")
    if model.num_mtp_layers > 1:
        raise EmitError(engine, "plan.a2a_overlap", dims.a2a_overlap.value, "none with more than 1 MTP layer")
    return [flag]


def batch_args(workload: TrainingWorkload, dims: TrainingDims) -> list[str]:
    return ["--micro-batch-size", str(dims.micro_batch_sequences),
            "--global-batch-size", str(workload.global_batch_sequences)]


def torchrun(cluster: ClusterSpec, rank: int) -> list[str]:
    return ["torchrun", "--nproc-per-node", str(cluster.devices_per_node), "--nnodes", str(cluster.num_nodes),
            "--node-rank", str(rank), "--master-addr", "${" + MASTER_ADDR_VAR + "}",
            "--master-port", str(MASTER_PORT)]


def check_world(engine: str, dims: TrainingDims, cluster: ClusterSpec) -> None:
    if dims.world_devices != cluster.num_devices:
        raise EmitError(engine, "plan", f"tp*cp*dp*pp={dims.world_devices}",
                        f"{cluster.num_devices} (the cluster's devices)")


def commands(flavour: Flavour, cluster: ClusterSpec, script_args: list[str], *, script: str = "pretrain_gpt.py",
             files: dict[str, str] | None = None) -> LaunchPlan:
    """One ``torchrun`` line per node rank running ``script``, the same arguments (and config ``files``, written
    on every node) on every node."""
    env = dict(flavour.env)
    cmds = tuple(LaunchCommand(role="train", replica=0, node_rank=r, node=r,
                               argv=tuple(torchrun(cluster, r) + [script, *script_args]), env=env,
                               files=dict(files or {}))
                 for r in range(cluster.num_nodes))
    notes = ("add the learning-rate schedule, --train-iters (or --train-samples) and checkpoint paths of your run",
             "model details the plan does not carry (RoPE base, QK norm, vocabulary padding, initialisation) are "
             "not emitted: take them from your checkpoint's recipe")
    return LaunchPlan(engine=flavour.engine, version=flavour.version, sources=flavour.sources, commands=cmds,
                      notes=notes)


def _env(dims: TrainingDims) -> tuple[tuple[str, str], ...]:
    """``CUDA_DEVICE_MAX_CONNECTIONS=1`` where Megatron asserts it (TP or CP without FSDP, before Blackwell: a
    single hardware queue keeps the TP/CP collectives ahead of the GEMMs they overlap); Megatron-FSDP asserts the
    opposite, and the 1F1B all-to-all overlap wants more queues (arguments.py ``validate_args``)."""
    fsdp = dims.sharding in (OptimizerSharding.ZERO2, OptimizerSharding.ZERO3)
    if (dims.tp > 1 or dims.cp > 1) and not fsdp and dims.a2a_overlap is A2AOverlap.NONE:
        return (("CUDA_DEVICE_MAX_CONNECTIONS", "1"),)
    return ()


def emit(model: ModelSpec, workload: TrainingWorkload, dims: TrainingDims, cluster: ClusterSpec) -> LaunchPlan:
    """Megatron-LM launch lines of one training layout; raises :class:`EmitError` for what it cannot express."""
    if cluster.device.vendor != "nvidia":
        raise EmitError("megatron", "cluster.device", cluster.device.id, "an NVIDIA GPU (--emit mindspeed on Ascend)")
    check_world("megatron", dims, cluster)
    if workload.finetune is not None:
        raise EmitError("megatron", "workload.finetune", "frozen parts / LoRA",
                        "full training only: Megatron-LM's pretrain_gpt.py has no LoRA adapters or parameter "
                        "freezing (use NeMo's PEFT on Megatron-Core, or --emit mindspeed on Ascend: MindSpeed-LLM's "
                        "posttrain_gpt.py --lora-r / --lora-alpha / --lora-target-modules)")
    dispatcher = "alltoall" if dims.dispatcher is Dispatcher.ALLTOALL else "flex"
    flavour = Flavour(engine="megatron", version=SOURCE.version, sources=SOURCE.cited(), dispatcher=dispatcher,
                      env=_env(dims))
    args = (model_args(model, workload) + mla_dims_args(model, "--qk-head-dim", "--qk-pos-emb-head-dim")
            + (["--mtp-num-layers", str(model.num_mtp_layers)] if model.num_mtp_layers else [])
            + moe_args(model, workload, dims, flavour.dispatcher)
            + parallel_args("megatron", model, dims, vpp_flag="--num-virtual-stages-per-pipeline-rank")
            + cp_args(dims) + batch_args(workload, dims) + recompute_args("megatron", model, workload)
            + optimizer_args("megatron", workload, dims) + precision_args("megatron", workload, cluster)
            + overlap_args("megatron", "--overlap-moe-expert-parallel-comm", model, workload, dims)
            + ["--transformer-impl", "transformer_engine",
               "--data-path", "${" + DATA_PATH_VAR + "}", "--tokenizer-type", "HuggingFaceTokenizer",
               "--tokenizer-model", "${" + TOKENIZER_PATH_VAR + "}"])
    return commands(flavour, cluster, args, files=te_precision_file(workload))
