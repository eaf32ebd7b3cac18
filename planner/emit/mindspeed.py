"""MindSpeed-LLM (``torchrun ... pretrain_gpt.py`` on Ascend NPUs) launch lines for a training layout.

MindSpeed-LLM runs Megatron-LM core_v0.12.1 patched by MindSpeed, so the argument set is Megatron's of that release
plus MindSpeed's and MindSpeed-LLM's own (tests/data/train_args/mindspeed_llm_d55190f7.json, copied from the three
repositories at the pinned commits).  The degrees map as in :mod:`planner.emit.megatron`; what differs on Ascend:

* expert parallelism: ``alltoall_seq`` with ``--moe-permutation-async-comm`` (the dispatcher of the published
  Qwen3-30B-A3B script); the paired F&B all-to-all (``A2AOverlap.FB_PAIRS``) and DualPipeV -> ``--moe-fb-overlap``
  (which needs the ``alltoall`` dispatcher, etp 1, ep > 1), DualPipeV -> ``--schedules-method dualpipev``;
* context parallelism: ``--context-parallel-algo megatron_cp_algo`` (ring) or ``ulysses_cp_algo``;
* virtual stages: ``--num-layers-per-virtual-pipeline-stage``; MLA: ``--multi-head-latent-attention``;
* fused kernels the cost model's kernel times assume: flash attention, RMSNorm, SwiGLU, RoPE;
* BF16 only (the 910B has no FP8 GEMM), ZeRO-1 as the distributed optimizer (no ZeRO-2 / ZeRO-3 here);
* the environment of the published script (HCCL timeouts, one device queue, expandable segments);
* LoRA fine-tuning (``workload.finetune`` with every part frozen and adapters on some GEMMs): ``posttrain_gpt.py
  --finetune --stage sft --is-instruction-dataset --lora-r R --lora-target-modules ...`` as MindSpeed-LLM's
  examples/mcore/qwen3_moe/tune_qwen3_30b_a3b_4K_lora_ptd.sh (the flags are in the pinned argument data; the
  accepted modules ``linear_qkv linear_proj linear_fc1 linear_fc2`` are those of MindSpeed-LLM's
  docs/pytorch/develop/lora_finetune_migration_development.md).  Its PEFT wrapper freezes everything but the
  adapters, so a partly frozen model, adapters on grouped-GEMM routed experts (``weight1`` / ``weight2``, no
  ``linear_fc1`` module) or on MLA's projections are refused.  ``--lora-alpha`` stays at its default (32).
"""

from __future__ import annotations

from cost_models.specs import AttentionKind, ClusterSpec, ModelSpec
from cost_models.training.dims import A2AOverlap, ContextParallel, Schedule, TrainingDims, chunk_layers
from cost_models.training.finetune_spec import Finetune, Part
from cost_models.training.specs import TrainingWorkload
from planner.emit import megatron as meg
from planner.emit.types import EmitError, EngineSource, LaunchPlan

_SCRIPT = ("Ascend/MindSpeed-LLM@d55190f772e07485598f0374bf7bdfd60f2cf8a5 "
           "examples/mcore/qwen3_moe/pretrain_qwen3_30b_a3b_4K_ptd.sh")
SOURCE = EngineSource(
    engine="mindspeed", version="MindSpeed-LLM @d55190f7 (MindSpeed master @028de58, Megatron-LM core_v0.12.1)",
    sources={
        "megatron": "NVIDIA/Megatron-LM@e823cf6e95f537d093689613a1c2486301e46201 (core_v0.12.1) "
                    "megatron/training/arguments.py",
        "mindspeed": "Ascend/MindSpeed@028de58ca629d035185b00ff7d1eb7eff4f7fd48 mindspeed/features_manager/** "
                     "(moe/fb_overlap.py, pipeline_parallel/dualpipev_feature.py, moe/tp_extend_ep.py)",
        "mindspeed_llm": "Ascend/MindSpeed-LLM@d55190f772e07485598f0374bf7bdfd60f2cf8a5 "
                         "mindspeed_llm/features_manager/** (context_parallel, transformer_block, common/rotary.py)",
        "script": _SCRIPT,
        "lora_script": "Ascend/MindSpeed-LLM examples/mcore/qwen3_moe/tune_qwen3_30b_a3b_4K_lora_ptd.sh (as copied "
                       "in Tr1gg3r-11/WebUi@b8fbdf1885439fd4e0c2004d187b45ba56c32967)",
        "install": "Ascend/MindSpeed-LLM@d55190f7 docs/en/pytorch/training/install_guide.md (MindSpeed master, "
                   "Megatron-LM core_v0.12.1)",
    },
    flags={},
    env_vars={"HCCL_CONNECT_TIMEOUT": "script", "HCCL_EXEC_TIMEOUT": "script",
              "CUDA_DEVICE_MAX_CONNECTIONS": "script", "PYTORCH_NPU_ALLOC_CONF": "script"},
)
_ENV = (("HCCL_CONNECT_TIMEOUT", "3600"), ("HCCL_EXEC_TIMEOUT", "3600"), ("CUDA_DEVICE_MAX_CONNECTIONS", "1"),
        ("PYTORCH_NPU_ALLOC_CONF", "expandable_segments:True"))


def _fb_overlap(dims: TrainingDims) -> bool:
    return dims.a2a_overlap is A2AOverlap.FB_PAIRS or dims.schedule is Schedule.DUALPIPE_V


def _schedule_args(model: ModelSpec, dims: TrainingDims) -> list[str]:
    """PP, virtual stages (layers per virtual stage) or an explicit layout, DualPipeV."""
    s = dims.schedule
    if s not in (Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED, Schedule.DUALPIPE_V):
        raise EmitError("mindspeed", "plan.schedule", s.value,
                        "1f1b, interleaved_1f1b or dualpipev (--schedules-method accepts dualpipev)")
    a = ["--tensor-model-parallel-size", str(dims.tp), "--pipeline-model-parallel-size", str(dims.pp)]
    if dims.sp_active:
        a.append("--sequence-parallel")
    if s is Schedule.DUALPIPE_V:
        if dims.overlap_grad_reduce:
            raise EmitError("mindspeed", "plan.overlap_grad_reduce", "true",
                            "false with dualpipev (MindSpeed's dualpipev_feature.py rejects --overlap-grad-reduce)")
        return a + ["--schedules-method", "dualpipev"]
    lay = meg.layout(model, dims) if dims.pp > 1 else None
    if lay is not None:
        a += ["--pipeline-model-parallel-layout", lay]
    elif s is Schedule.INTERLEAVED and dims.vpp > 1:
        a += ["--num-layers-per-virtual-pipeline-stage", str(chunk_layers(model, dims)[0])]
    return a


def _moe_args(model: ModelSpec, workload: TrainingWorkload, dims: TrainingDims) -> list[str]:
    if model.moe is None:
        return []
    fb = _fb_overlap(dims)
    if fb and (dims.ep == 1 or dims.etp != 1):
        raise EmitError("mindspeed", "plan.a2a_overlap", "fb_pairs",
                        "none unless ep > 1 and etp = 1 (--moe-fb-overlap, MindSpeed fb_overlap.py)")
    a = meg.moe_args(model, workload, dims, "alltoall" if fb else "alltoall_seq")
    a += ["--expert-model-parallel-size", str(dims.ep), "--expert-tensor-parallel-size", str(dims.etp)]
    if dims.ep > 1 and not fb:
        a.append("--moe-permutation-async-comm")
    if fb:
        a.append("--moe-fb-overlap")
    return a


def _cp_args(dims: TrainingDims) -> list[str]:
    if dims.cp == 1:
        return []
    algo = "megatron_cp_algo" if dims.cp_kind is ContextParallel.RING else "ulysses_cp_algo"
    return ["--context-parallel-size", str(dims.cp), "--context-parallel-algo", algo]


def _lora_modules(model: ModelSpec, ft: Finetune) -> list[str]:
    """``--lora-target-modules`` of the adapted parts; what MindSpeed-LLM cannot adapt raises EmitError."""
    if set(ft.frozen) != set(Part) or not ft.lora_rank:
        raise EmitError("mindspeed", "workload.finetune.frozen", sorted(p.value for p in ft.frozen),
                        "every part frozen plus a lora section (MindSpeed-LLM's LoRA trains the adapters only)")
    if Part.ROUTED_EXPERTS in ft.lora_targets:
        raise EmitError("mindspeed", "workload.finetune.lora.targets", "routed_experts",
                        "attention, dense_ffn, shared_experts (grouped-GEMM experts have no linear_fc1 module)")
    out: list[str] = []
    if Part.ATTENTION in ft.lora_targets:
        if model.attention.kind is AttentionKind.MLA:
            raise EmitError("mindspeed", "workload.finetune.lora.targets", "attention",
                            "dense_ffn or shared_experts on an MLA model (linear_qkv is a GQA / MHA module)")
        out += ["linear_qkv", "linear_proj"]
    ffn_parts = {Part.DENSE_FFN} if model.moe is None or model.num_dense_layers else set()
    if model.moe is not None and model.moe.shared_ffn_dim:
        ffn_parts.add(Part.SHARED_EXPERTS)
    wanted = ft.lora_targets & {Part.DENSE_FFN, Part.SHARED_EXPERTS}
    if wanted and wanted != ffn_parts:
        raise EmitError("mindspeed", "workload.finetune.lora.targets", sorted(p.value for p in wanted),
                        f"all of {sorted(p.value for p in ffn_parts)} or none (both are linear_fc1 / linear_fc2)")
    if wanted:
        out += ["linear_fc1", "linear_fc2"]
    return out


def _finetune_args(model: ModelSpec, workload: TrainingWorkload) -> list[str]:
    if workload.finetune is None:
        return []
    return (["--finetune", "--stage", "sft", "--is-instruction-dataset", "--lora-r", str(workload.finetune.lora_rank),
             "--lora-target-modules"] + _lora_modules(model, workload.finetune))


def _fused_args(model: ModelSpec) -> list[str]:
    a = ["--use-mcore-models", "--use-flash-attn"]
    if model.ffn_gated:
        a += ["--use-fused-rmsnorm", "--use-fused-swiglu", "--use-fused-rotary-pos-emb"]
    return a


def emit(model: ModelSpec, workload: TrainingWorkload, dims: TrainingDims, cluster: ClusterSpec) -> LaunchPlan:
    """MindSpeed-LLM launch lines of one training layout; raises :class:`EmitError` for what it cannot express."""
    if cluster.device.vendor != "huawei":
        raise EmitError("mindspeed", "cluster.device", cluster.device.id, "an Ascend NPU (--emit megatron on GPUs)")
    meg.check_world("mindspeed", dims, cluster)
    if dims.a2a_overlap is A2AOverlap.FB_PAIRS and workload.recompute.full:
        raise EmitError("mindspeed", "plan.a2a_overlap", "fb_pairs", "none with full recompute")
    flavour = meg.Flavour(engine="mindspeed", version=SOURCE.version, sources=SOURCE.cited(),
                          dispatcher="alltoall_seq", env=_ENV)
    args = (_finetune_args(model, workload) + meg.model_args(model, workload, mla_flag="--multi-head-latent-attention")
            + meg.mla_dims_args(model, "--qk-nope-head-dim", "--qk-rope-head-dim")
            + (["--mtp-num-layers", str(model.num_mtp_layers)] if model.num_mtp_layers else [])
            + _moe_args(model, workload, dims) + _schedule_args(model, dims) + _cp_args(dims)
            + meg.batch_args(workload, dims) + meg.recompute_args("mindspeed", model, workload)
            + meg.optimizer_args("mindspeed", workload, dims, fsdp=False)
            + meg.precision_args("mindspeed", workload, cluster) + _fused_args(model)
            + ["--data-path", "${" + meg.DATA_PATH_VAR + "}", "--tokenizer-type", "PretrainedFromHF",
               "--tokenizer-name-or-path", "${" + meg.TOKENIZER_PATH_VAR + "}"])
    if workload.finetune is None:
        return meg.commands(flavour, cluster, args)
    return meg.commands(flavour, cluster, args, script="posttrain_gpt.py")
