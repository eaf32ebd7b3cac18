"""What each serving engine version can run: one capability table per engine, every entry read from that engine's
source or documentation at a pinned commit (``sources``), plus the memory the engine keeps outside its pools.

``moeplan plan --engine E`` restricts the layout search to :func:`layout_refusal` = None and costs every layout with
:func:`reserve_bytes` as the runtime reserve (planner/search/engines.py). The launch-line emitters (planner/emit/)
realise exactly these layouts; tests/test_engine_parsers.py runs the real SGLang / vLLM parsers on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cost_models.memory import RUNTIME_RESERVE_BYTES
from cost_models.parallel import OverlapPolicy, ParallelDims
from cost_models.specs import ModelSpec
from planner.catalog.sourced import MIB, datasheet

_SGL = "sgl-project/sglang@v0.5.5 python/sglang/srt/server_args.py"
_VLLM = "vllm-project/vllm@v0.11.0"
_TRT = "NVIDIA/TensorRT-LLM@4c05a748"
_MINDIE = "Ascend/MindIE-LLM@613aab54 docs/en/user_guide"

DEEPEP_LL_MAX_DISPATCH_TOKENS = datasheet(
    1024,
    "sgl-project/sglang@v0.5.5 python/sglang/srt/layers/moe/token_dispatcher/deepep.py: "
    "num_max_dispatch_tokens_per_rank <= 1024 (DeepEP internode low-latency FINISHED_SUM_TAG=1024)")
"""Most tokens one rank may dispatch per DeepEP low-latency step (both engines' DeepEP paths)."""

PLANNING_RESERVE_FRACTION = datasheet(
    0.10,
    f"{_VLLM} vllm/config/cache.py gpu_memory_utilization default 0.9; {_TRT} tensorrt_llm/llmapi/llm_args.py "
    "KvCacheConfig.free_gpu_memory_fraction default 0.9: both engines' defaults leave 10 % of the device outside "
    "their pools")
"""Share of device memory kept outside weights, KV, activations and EP buffers without ``--engine`` and for
engines that reserve by a fraction (the conservative default: the larger of the engines' own defaults)."""


@dataclass(frozen=True, kw_only=True)
class EngineCapability:
    """One engine version: the layouts it launches and where each rule was read."""

    engine: str
    """``sglang``, ``vllm``, ``trtllm`` or ``mindie`` (the ``--emit`` names)."""
    version: str
    vendors: tuple[str, ...]
    """Device vendors the engine runs on."""
    overlaps: frozenset[OverlapPolicy]
    """Overlap modes it has (SGLang TBO / SBO, vLLM DBO = two-batch)."""
    ep_covers_unit: bool
    """Expert parallelism spans the whole instance (expert TP = 1): vLLM (EP = TP x DP), SGLang DeepEP
    (``ep_size`` forced to ``tp_size``)."""
    attn_tp_with_dp: bool
    """Attention TP inside attention-DP groups (False: TensorRT-LLM's attention DP is over the whole instance)."""
    dense_tp_rule: str
    """``any``, ``attn_tp`` (dense FFN sharded like attention) or ``1_or_unit``."""
    multi_node_needs_dp: bool
    """An instance spanning nodes must do so by attention DP (vLLM without Ray)."""
    redundant_experts: bool
    disaggregation: bool
    mtp: bool
    """Emits multi-token prediction (otherwise the engine-aware search costs without it)."""
    pipeline: bool = True
    """Has pipeline parallelism (for tensor-parallel instances)."""
    ep_model_prefixes: tuple[str, ...] = ()
    """Model id prefixes expert parallelism is documented for (empty: any MoE model)."""
    overlap_needs_dp: bool = False
    """Overlap runs only with attention DP (vLLM's DBO splits the DP ranks' batches)."""
    dp_attention_moe_only: bool = False
    """Attention DP only for MoE models (SGLang's ``--enable-dp-attention``)."""
    redundant_weight_precisions: tuple[str, ...] = ()
    """Weight precisions redundant experts are supported for (empty: any)."""
    kv_precisions: tuple[str, ...] = ()
    """KV-cache precisions it stores (empty: whatever the checkpoint sets)."""
    deepep_dispatch_cap: bool = False
    """Decode tokens per rank are bounded by the DeepEP low-latency dispatch cap."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """Rule -> file at a commit where it was read."""


SGLANG = EngineCapability(
    engine="sglang", version="0.5.5", vendors=("nvidia", "amd", "huawei"),
    overlaps=frozenset(OverlapPolicy), ep_covers_unit=True, attn_tp_with_dp=True, dense_tp_rule="1_or_unit",
    multi_node_needs_dp=False, redundant_experts=True, disaggregation=True, mtp=True, deepep_dispatch_cap=True,
    dp_attention_moe_only=True, kv_precisions=("bf16", "fp8"),
    sources={
        "ep_covers_unit": f"{_SGL} _handle_a2a_moe: moe_a2a_backend=deepep sets ep_size = tp_size (the cost model "
                          "prices the DeepEP all-to-all, so expert TP > 1 is not an SGLang DeepEP layout)",
        "overlaps": f"{_SGL} enable_two_batch_overlap / enable_single_batch_overlap (need --moe-a2a-backend deepep)",
        "dense_tp_rule": f"{_SGL} --moe-dense-tp-size (1 or tp_size)",
        "pp": f"{_SGL} _handle_pipeline_parallelism; docs/advanced_features/server_arguments.md (pp for TP only)",
        "reserve": f"{_SGL} _handle_gpu_memory_settings (reserved_mem heuristic)",
        "disaggregation": f"{_SGL} _handle_disaggregation (decode dp > 1 needs --prefill-round-robin-balance)",
        "mtp": f"{_SGL} _handle_speculative_decoding (EAGLE over DeepSeek's MTP layers)",
    })
VLLM = EngineCapability(
    engine="vllm", version="0.11.0", vendors=("nvidia", "amd"),
    overlaps=frozenset({OverlapPolicy.NONE, OverlapPolicy.TWO_BATCH}), ep_covers_unit=True, attn_tp_with_dp=True,
    dense_tp_rule="attn_tp", multi_node_needs_dp=True, redundant_experts=True, disaggregation=True, mtp=True,
    deepep_dispatch_cap=True, overlap_needs_dp=True, kv_precisions=("bf16", "fp8"),
    sources={
        "ep_covers_unit": f"{_VLLM} vllm/config/parallel.py: --enable-expert-parallel makes EP = TP x DP",
        "overlaps": f"{_VLLM} vllm/config/parallel.py enable_dbo (dual-batch overlap; needs a DeepEP all2all "
                    "backend, vllm/config/vllm.py)",
        "dense_tp_rule": f"{_VLLM} vllm/model_executor/models/deepseek_v2.py (dense MLP over the TP group)",
        "multi_node": f"{_VLLM} docs/serving/data_parallel_deployment.md (--data-parallel-size-local, --headless)",
        "reserve": f"{_VLLM} vllm/config/cache.py gpu_memory_utilization",
        "mtp": f"{_VLLM} vllm/config/speculative.py (--speculative-config method mtp)",
    })
TRTLLM = EngineCapability(
    engine="trtllm", version="1.0", vendors=("nvidia",), overlaps=frozenset({OverlapPolicy.NONE}),
    ep_covers_unit=False, attn_tp_with_dp=False, dense_tp_rule="any", multi_node_needs_dp=False,
    redundant_experts=True, disaggregation=True, mtp=True, kv_precisions=("bf16", "fp8"),
    redundant_weight_precisions=("fp4",),
    sources={
        "redundant_experts": "NVIDIA/TensorRT-LLM@0d2a7856 docs/source/deployment-guide/quick-start-recipe-for-"
                             "deepseek-r1-on-trtllm.md (WIDEEP load balancer for NVFP4 checkpoints only)",
        "attn_dp": f"{_TRT} tensorrt_llm/llmapi/llm_args.py enable_attention_dp (attention DP over all ranks)",
        "overlaps": f"{_TRT} tensorrt_llm/llmapi/llm_args.py (no two-batch / single-batch overlap option)",
        "reserve": f"{_TRT} tensorrt_llm/llmapi/llm_args.py KvCacheConfig.free_gpu_memory_fraction",
    })
MINDIE = EngineCapability(
    engine="mindie", version="3.1.0", vendors=("huawei",), overlaps=frozenset({OverlapPolicy.NONE}),
    ep_covers_unit=False, attn_tp_with_dp=True, dense_tp_rule="any", multi_node_needs_dp=False,
    redundant_experts=False, disaggregation=False, mtp=False, ep_model_prefixes=("deepseek",), pipeline=False,
    sources={
        "ep": f"{_MINDIE}/feature/expert_parallel.md (DeepSeek-V2/V3/R1)",
        "pp": f"{_MINDIE}/user_manual/service_parameter_configuration.md (no pipeline-parallel key)",
        "disaggregation": "MindIE Motor Kubernetes scripts (not generated by moeplan)",
        "reserve": f"{_MINDIE}/user_manual/environment_variable.md NPU_MEMORY_FRACTION",
    })

ENGINES: dict[str, EngineCapability] = {c.engine: c for c in (SGLANG, VLLM, TRTLLM, MINDIE)}
"""Engine name -> the one version moeplan targets (``--engine-version`` must name it)."""


def workload_refusal(cap: EngineCapability, kv_precision: str) -> str | None:
    """Why ``cap`` cannot serve the scenario whatever the layout (None: it can)."""
    if cap.kv_precisions and kv_precision not in cap.kv_precisions:
        return (f"workload.kv_precision={kv_precision} is not a {cap.engine} KV-cache dtype (accepted: "
                f"{', '.join(cap.kv_precisions)})")
    return None


def layout_refusal(cap: EngineCapability, model: ModelSpec, dims: ParallelDims, devices_per_node: int,
                   vendor: str, weight_precision: str = "bf16") -> str | None:
    """Why ``cap`` cannot launch one replica of ``dims`` (None: it can)."""
    if vendor not in cap.vendors:
        return f"{cap.engine} runs on {'/'.join(cap.vendors)} devices, not {vendor}"
    ep = model.moe is not None and dims.moe_ep > 1
    if dims.pp > 1 and not cap.pipeline:
        return f"{cap.engine} has no pipeline-parallel setting"
    if dims.pp > 1 and (dims.attn_dp > 1 or ep):
        return "pipeline parallelism only for tensor-parallel instances (no attention DP / EP)"
    if dims.overlap not in cap.overlaps:
        return f"overlap={dims.overlap.value} is not a {cap.engine} mode"
    if dims.overlap is not OverlapPolicy.NONE and not (ep and dims.moe_tp == 1):
        return "overlap needs the DeepEP all-to-all (EP over the whole instance)"
    if dims.overlap is not OverlapPolicy.NONE and cap.overlap_needs_dp and dims.attn_dp == 1:
        return "overlap needs attention DP"
    if ep and cap.ep_covers_unit and dims.moe_tp > 1:
        return "expert parallelism covers the whole instance (expert TP must be 1)"
    if ep and cap.ep_model_prefixes and not model.id.startswith(cap.ep_model_prefixes):
        return f"expert parallelism is documented only for {', '.join(cap.ep_model_prefixes)} models"
    if dims.redundant_experts and not (cap.redundant_experts and ep):
        return "redundant experts need expert parallelism and the engine's EPLB"
    if dims.redundant_experts and cap.redundant_weight_precisions and \
            weight_precision not in cap.redundant_weight_precisions:
        return (f"redundant experts (EP not dividing the experts) only for {', '.join(cap.redundant_weight_precisions)} "
                "weights")
    if dims.attn_dp > 1 and dims.attn_tp > 1 and not cap.attn_tp_with_dp:
        return "attention DP covers the whole instance (attention TP must be 1 under DP)"
    if model.moe is None and dims.attn_dp > 1 and cap.dp_attention_moe_only:
        return "DP attention is for MoE models"
    if model.num_dense_layers and model.moe is not None:
        if cap.dense_tp_rule == "attn_tp" and dims.dense_tp != dims.attn_tp:
            return "dense FFN layers are sharded over the attention TP group"
        if cap.dense_tp_rule == "1_or_unit" and dims.dense_tp not in (1, dims.unit_devices):
            return "dense FFN TP is 1 or the whole instance"
    if cap.multi_node_needs_dp and dims.unit_devices * dims.pp > devices_per_node and (
            dims.attn_dp == 1 or devices_per_node % dims.attn_tp):
        return "an instance spans nodes only by attention DP (no Ray cluster)"
    return None


def reserve_bytes(cap: EngineCapability | None, dims: ParallelDims, capacity_bytes: float,
                  cuda_graph_max_bs: int) -> float:
    """Memory the engine keeps outside weights, KV cache, activations and EP buffers on one device.

    SGLang 0.5.5 (``_handle_gpu_memory_settings``, MiB): 512 of attention metadata + 2 per CUDA-graph batch
    slot + 1,024 x tp x pp / 8 "for large parallel size" + under DP attention 3 x bs x dp of padding (and
    1.5 x bs x dp more when bs > 300). Left out: its prefill-activation term (1.5 x chunk), which is the cost
    model's activation memory, and the DP padding when experts run on DeepEP (EP over the whole instance, the
    only EP layout SGLang launches): that padding sizes the all-gathered MoE input of DP attention, which the
    DeepEP dispatch does not build (a judgement; at dp 144 the term alone would be 54 GiB). Never below the cost
    model's own :data:`cost_models.memory.RUNTIME_RESERVE_BYTES` (CUDA context, workspaces, NCCL buffers, which the
    formula does not list). Examples: tp 8, dp 8 on DeepEP, bs 128 -> 512 + 256 + 1,024 = 1,792 MiB -> 3 GiB;
    tp 32, dp 32 on DeepEP -> 512 + 256 + 4,096 = 4,864 MiB; tp 8 with DP attention, no EP -> 1,792 + 3,072.
    vLLM, TensorRT-LLM, MindIE and no engine: the 10 % their defaults leave (:data:`PLANNING_RESERVE_FRACTION`).
    """
    if cap is not None and cap.engine == "sglang":
        tp, bs = dims.unit_devices, cuda_graph_max_bs
        mib = 512 + 2 * bs + 1024 * tp * dims.pp / 8
        if dims.attn_dp > 1 and not (dims.moe_ep > 1 and dims.moe_tp == 1):
            mib += 3 * bs * dims.attn_dp + (1.5 * bs * dims.attn_dp if bs > 300 else 0.0)
        return max(RUNTIME_RESERVE_BYTES, mib * MIB)
    return PLANNING_RESERVE_FRACTION.value * capacity_bytes


SGLANG_CUDA_GRAPH_MAX_BS = 128
"""``--cuda-graph-max-bs`` the SGLang emitter sets for decode (per DP rank; larger batches run without graphs)
and the batch the SGLang reserve is sized for. 128 = DeepEP low-latency's default dispatch cap
(``SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK``)."""
