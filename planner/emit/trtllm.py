"""TensorRT-LLM (``trtllm-serve``, PyTorch backend) launch lines plus their ``--extra_llm_api_options`` YAML.

Mapping: the instance's devices -> ``--tp_size`` (``--pp_size`` for pipeline stages); attention DP over the whole
instance -> ``enable_attention_dp: true`` (TensorRT-LLM has no attention TP inside DP groups); experts ->
``--ep_size`` (expert TP = tp / ep); redundant experts -> ``moe_config.load_balancer.num_slots`` (experts +
redundant, WIDEEP backend); multi-node -> one ``srun ... trtllm-llmapi-launch trtllm-serve`` over the nodes;
disaggregation -> ``cache_transceiver_config`` on context / generation servers and ``trtllm-serve
disaggregated -c`` as the front end.
"""

from __future__ import annotations

import json

from planner.emit import common
from planner.emit.spec import place
from planner.emit.types import EmitError, EngineSource, Instance, LaunchCommand, LaunchPlan, LaunchSpec

SOURCE = EngineSource(
    engine="trtllm", version="1.0",
    sources={
        "serve": "NVIDIA/TensorRT-LLM@4c05a748 tensorrt_llm/commands/serve.py",
        "recipe": "NVIDIA/TensorRT-LLM@0d2a7856 docs/source/deployment-guide/quick-start-recipe-for-deepseek-r1-"
                  "on-trtllm.md (container release:1.0.0rc6)",
        "multinode": "NVIDIA/TensorRT-LLM@0434755f docs/source/commands/trtllm-serve/trtllm-serve.rst "
                     "(Multi-node Serving with Slurm)",
        "disagg": "NVIDIA/TensorRT-LLM@0434b982 docs/source/features/disagg-serving.md",
        "eplb": "tensorrt_llm/_torch/model_config.py MoeLoadBalancerConfig (num_slots, initial_global_assignments: "
                "MoE layer index -> [num_slots] logical experts, slots rank-major; fork lfr-0531/TensorRT-LLM@0866388a "
                "of the 1.0/1.1 line)",
    },
    flags={f: "serve" for f in (
        "--host", "--port", "--backend", "--tp_size", "--pp_size", "--ep_size", "--max_batch_size",
        "--max_num_tokens", "--max_seq_len", "--kv_cache_free_gpu_memory_fraction", "--trust_remote_code",
        "--extra_llm_api_options")}
    | {"-N": "multinode", "--ntasks": "multinode", "--ntasks-per-node": "multinode", "--mpi": "multinode",
       "-c": "disagg"},
    config_keys={
        "enable_attention_dp": "recipe", "kv_cache_config.dtype": "recipe", "moe_config.backend": "recipe",
        "moe_config.load_balancer.num_slots": "recipe",
        "moe_config.load_balancer.initial_global_assignments": "eplb", "speculative_config.decoding_type": "recipe",
        "speculative_config.num_nextn_predict_layers": "recipe", "enable_chunked_prefill": "serve",
        "disable_overlap_scheduler": "disagg", "cache_transceiver_config.backend": "disagg",
        "cache_transceiver_config.max_tokens_in_buffer": "disagg", "hostname": "disagg", "port": "disagg",
        "backend": "disagg", "context_servers.num_instances": "disagg", "context_servers.urls": "disagg",
        "generation_servers.num_instances": "disagg", "generation_servers.urls": "disagg"},
    env_vars={"CUDA_VISIBLE_DEVICES": "disagg"},
)


def _check(spec: LaunchSpec, inst: Instance) -> None:
    d = inst.dims
    if d.attn_dp > 1 and d.attn_tp > 1:
        raise EmitError("trtllm", "plan.attn_tp", d.attn_tp,
                        "1 (attention data-parallel over the whole instance: enable_attention_dp) or attn_dp=1 "
                        "(attention tensor-parallel over the instance)")
    common.refuse_pp_with_dp_or_ep("trtllm", SOURCE.version, inst.spec)
    common.refuse_redundant_without_ep("trtllm", inst.spec)
    if d.redundant_experts and spec.weight_precision.label != "fp4":
        raise EmitError("trtllm", "plan.redundant_experts", d.redundant_experts,
                        f"0 for {spec.weight_precision.label} weights (the DeepSeek recipe's support matrix lists "
                        "the WIDEEP load balancer for NVFP4 checkpoints only, 'WIDEEP without EPLB' for FP8)")
    if spec.kv_precision.label not in ("bf16", "fp8"):
        raise EmitError("trtllm", "model.kv_precision", spec.kv_precision.label, "bf16 or fp8")


def _yaml(obj: object, indent: int = 0) -> list[str]:
    """A tiny YAML writer for nested dicts of scalars, integer lists (flow style) and string lists (JSON scalars
    are valid YAML; integer keys stay integers)."""
    pad = "  " * indent
    lines: list[str] = []
    assert isinstance(obj, dict)
    for k, v in obj.items():
        if isinstance(v, dict):
            lines.append(f"{pad}{k}:")
            lines += _yaml(v, indent + 1)
        elif isinstance(v, list) and all(isinstance(x, int) for x in v):
            lines.append(f"{pad}{k}: {json.dumps(v)}")  # a flow sequence (a slot map has hundreds of ids)
        elif isinstance(v, list):
            lines.append(f"{pad}{k}:")
            lines += [f"{pad}  - {json.dumps(x)}" for x in v]
        else:
            lines.append(f"{pad}{k}: {json.dumps(v)}")
    return lines


def _options(spec: LaunchSpec, inst: Instance) -> dict[str, object]:
    d, role = inst.dims, inst.spec
    opts: dict[str, object] = {"enable_attention_dp": d.attn_dp > 1}
    if spec.kv_precision.label == "fp8":
        opts["kv_cache_config"] = {"dtype": "fp8"}
    if d.redundant_experts and spec.model.moe:
        slots = spec.model.moe.num_routed_experts + d.redundant_experts
        balancer: dict[str, object] = {"num_slots": slots}
        rows = common.placement_rows("trtllm", spec, role)
        if rows:  # the placement as the WIDEEP balancer's start (it then rebalances online)
            balancer["initial_global_assignments"] = {i: list(r) for i, r in
                                                      zip(common.moe_layer_ids(spec), rows, strict=True)}
        opts["moe_config"] = {"backend": "WIDEEP", "load_balancer": balancer}
    if role.role != "decode" and common.prefill_tokens_per_rank(role) < spec.input_tokens:
        opts["enable_chunked_prefill"] = True
    if spec.mtp_tokens and spec.model.num_mtp_layers:
        opts["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": spec.mtp_tokens}
    if spec.disaggregated:
        if role.role == "prefill":
            opts["disable_overlap_scheduler"] = True
        opts["cache_transceiver_config"] = {"backend": "DEFAULT", "max_tokens_in_buffer": spec.input_tokens}
    return opts


def _port(spec: LaunchSpec, inst: Instance) -> int:
    return (8001 if spec.disaggregated else 8000) + inst.slot


def _serve(spec: LaunchSpec, inst: Instance, options_file: str) -> list[str]:
    d, role = inst.dims, inst.spec
    seqs = common.seqs_per_rank(role)
    tokens = common.decode_tokens_per_rank(spec, role)
    if role.role != "decode":
        tokens = max(tokens, common.prefill_tokens_per_rank(role)) if role.role == "aggregated" \
            else common.prefill_tokens_per_rank(role)
    argv = ["trtllm-serve", common.model_ref(spec), "--host", "0.0.0.0", "--port", str(_port(spec, inst)),
            "--backend", "pytorch", "--tp_size", str(d.unit_devices)]
    if d.pp > 1:
        argv += ["--pp_size", str(d.pp)]
    if spec.model.moe:
        argv += ["--ep_size", str(d.moe_ep)]
    if role.role != "prefill":
        # per rank: with attention DP every rank batches its own sequences
        argv += ["--max_batch_size", str(seqs)]
    argv += ["--max_num_tokens", str(tokens), "--max_seq_len", str(spec.context_tokens),
             "--kv_cache_free_gpu_memory_fraction", f"{common.kv_free_fraction(role.memory):.2f}"]
    if spec.model.id.startswith(("deepseek", "kimi")):
        argv.append("--trust_remote_code")
    return argv + ["--extra_llm_api_options", options_file]


def _command(spec: LaunchSpec, inst: Instance) -> LaunchCommand:
    name = f"trtllm_{inst.role}.yaml"
    argv = _serve(spec, inst, name)
    notes: tuple[str, ...] = ()
    if inst.num_nodes > 1:
        devices = inst.num_nodes * inst.devices_per_node
        argv = ["srun", "-N", str(inst.num_nodes), "--ntasks", str(devices),
                f"--ntasks-per-node={inst.devices_per_node}", "--mpi=pmix", "trtllm-llmapi-launch"] + argv
        notes = (f"one srun inside a Slurm allocation of cluster nodes {list(inst.nodes)} launches every rank; "
                 "add your container options",)
    env = common.local_devices_env("CUDA_VISIBLE_DEVICES", inst, spec.devices_per_node)
    return LaunchCommand(role=inst.role, replica=inst.replica, node_rank=0, node=inst.nodes[0], argv=tuple(argv),
                         env=env, files={name: "\n".join(_yaml(_options(spec, inst))) + "\n"}, notes=notes)


def _router(spec: LaunchSpec, instances: tuple[Instance, ...]) -> LaunchCommand:
    def urls(role: str) -> list[str]:
        return [f"{common.ref(i.head_var)}:{_port(spec, i)}" for i in instances if i.role == role]

    cfg = {"hostname": "0.0.0.0", "port": 8000, "backend": "pytorch",
           "context_servers": {"num_instances": len(urls("prefill")), "urls": urls("prefill")},
           "generation_servers": {"num_instances": len(urls("decode")), "urls": urls("decode")}}
    first = next(i for i in instances if i.role == "prefill")
    return LaunchCommand(role="router", replica=0, node_rank=0, node=first.nodes[0],
                         argv=("trtllm-serve", "disaggregated", "-c", "disagg_config.yaml"),
                         files={"disagg_config.yaml": "\n".join(_yaml(cfg)) + "\n"})


def emit(spec: LaunchSpec) -> LaunchPlan:
    common.require_vendor("trtllm", spec, ("nvidia",), "an NVIDIA GPU (TensorRT-LLM is NVIDIA-only)")
    instances = place(spec, "trtllm")
    for inst in instances:
        _check(spec, inst)
    notes = common.not_expressed(spec, "trtllm", two_batch_ok=False, dense_tp_ok=False,
                                 mtp_ok=bool(spec.model.num_mtp_layers))
    notes += tuple(f"{r.role}: the expert placement is not loaded (TensorRT-LLM takes one only as the WIDEEP load "
                   "balancer's initial_global_assignments, which needs redundant experts on NVFP4 weights)"
                   for r in spec.roles if r.placement and not r.dims.redundant_experts)
    commands = [_command(spec, inst) for inst in instances]
    if spec.disaggregated:
        commands.append(_router(spec, instances))
    return LaunchPlan(engine="trtllm", version=SOURCE.version, sources=SOURCE.cited(), commands=tuple(commands),
                      notes=notes)
