"""vLLM (``vllm serve``) launch lines.

Mapping: attention TP -> ``--tensor-parallel-size``; attention DP -> ``--data-parallel-size`` (one engine per DP
rank, one instance per replica); expert parallelism -> ``--enable-expert-parallel`` (vLLM then makes EP = TP x DP,
so the plan's moe_ep must be the whole unit); redundant experts -> ``--enable-eplb --eplb-config
'{"num_redundant_experts": N}'``; multi-node -> ``--data-parallel-size-local`` / ``--data-parallel-start-rank`` /
``--data-parallel-address`` / ``--headless`` on the other nodes; disaggregation -> ``--kv-transfer-config``
with the NIXL connector on both pools and vLLM's NIXL proxy (``toy_proxy_server.py``) as the front end.
All-to-all: every expert-parallel role sets ``VLLM_ALL2ALL_BACKEND`` to the DeepEP kernels the cost model priced
(low-latency for decode, high-throughput for prefill; DBO accepts only these two), and ``VLLM_MOE_DP_CHUNK_SIZE``
(default 256 tokens per DP rank per dispatch) when the planned decode step dispatches more.
"""

from __future__ import annotations

import json

from planner.catalog.engines import DEEPEP_LL_MAX_DISPATCH_TOKENS
from planner.emit import common
from planner.emit.spec import place
from planner.emit.types import EmitError, EngineSource, Instance, LaunchCommand, LaunchPlan, LaunchSpec

_ARGS = "vllm-project/vllm@99d7eb5d vllm/engine/arg_utils.py (0.11 line: deprecations scheduled for v0.12.0)"
SOURCE = EngineSource(
    engine="vllm", version="0.11.0",
    sources={
        "args": _ARGS,
        "dp": "vllm-project/vllm@01e4fce0 docs/serving/data_parallel_deployment.md "
              "(https://docs.vllm.ai/en/latest/serving/data_parallel_deployment/)",
        "ep": "vllm-project/vllm@01702569 docs/serving/expert_parallel_deployment.md "
              "(https://docs.vllm.ai/en/v0.12.0/serving/expert_parallel_deployment/)",
        "envs": "vllm-project/vllm@v0.11.0 vllm/envs.py (VLLM_ALL2ALL_BACKEND, VLLM_MOE_DP_CHUNK_SIZE) and "
                "vllm/config/vllm.py (enable_dbo needs deepep_low_latency or deepep_high_throughput)",
        "mtp": "vllm-project/vllm@v0.11.0 vllm/config/speculative.py (method mtp: the draft is the target model's "
               "own MTP layers, deepseek_v3 -> DeepSeekMTPModel; num_speculative_tokens)",
        "proxy": "vllm-project/vllm@030ea52e tests/v1/kv_connector/nixl_integration/toy_proxy_server.py "
                 "(docs/features/nixl_connector_usage.md)",
    },
    flags={f: "args" for f in (
        "--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size", "--data-parallel-size-local",
        "--data-parallel-start-rank", "--data-parallel-address", "--data-parallel-rpc-port",
        "--enable-expert-parallel", "--enable-eplb", "--eplb-config", "--enable-dbo", "--gpu-memory-utilization",
        "--max-num-seqs", "--max-num-batched-tokens", "--enable-chunked-prefill", "--max-model-len",
        "--kv-cache-dtype", "--kv-transfer-config")} | {"--headless": "dp", "--port": "dp"}
    | {"--speculative-config": "mtp"}
    | {f: "proxy" for f in ("--host", "--prefiller-hosts", "--prefiller-ports", "--decoder-hosts",
                            "--decoder-ports")},
    config_keys={"eplb-config.num_redundant_experts": "ep", "speculative-config.method": "mtp",
                 "speculative-config.num_speculative_tokens": "mtp", "kv-transfer-config.kv_connector": "ep",
                 "kv-transfer-config.kv_role": "ep"},
    env_vars={"CUDA_VISIBLE_DEVICES": "dp", "VLLM_ALL2ALL_BACKEND": "envs", "VLLM_MOE_DP_CHUNK_SIZE": "envs"},
)
_PROXY_PORT = 9000
"""Port of the P/D proxy (the instances keep vLLM's default 8000)."""
_DP_CHUNK_DEFAULT = 256
"""``VLLM_MOE_DP_CHUNK_SIZE`` default (vllm/envs.py)."""
_RPC_PORT = "13345"
"""The port the data-parallel guide uses for ``--data-parallel-rpc-port``."""


def _check(spec: LaunchSpec, inst: Instance) -> None:
    d, model = inst.dims, spec.model
    if model.moe and d.moe_ep > 1 and d.moe_tp > 1:
        raise EmitError("vllm", "plan.moe_tp", d.moe_tp,
                        "1 (--enable-expert-parallel makes EP = tensor x data parallel size, the whole unit), "
                        "or moe_ep=1 (experts tensor-parallel over the unit)")
    if model.num_dense_layers and d.dense_tp != d.attn_tp:
        raise EmitError("vllm", "plan.dense_tp", d.dense_tp,
                        f"{d.attn_tp} (= attn_tp: vLLM shards dense FFN layers over --tensor-parallel-size)")
    common.refuse_pp_with_dp_or_ep("vllm", SOURCE.version, inst.spec)
    common.refuse_redundant_without_ep("vllm", inst.spec)
    if inst.num_nodes > 1 and (d.attn_dp == 1 or spec.devices_per_node % d.attn_tp):
        field, value = ("plan.pp", d.pp) if d.pp > 1 else ("plan.attn_tp", d.attn_tp)
        raise EmitError("vllm", field, value,
                        "a layout whose cross-node dimension is attention data parallelism with attn_tp dividing "
                        f"devices_per_node={spec.devices_per_node} (vLLM runs larger tensor/pipeline groups on a "
                        "Ray cluster, which this emitter does not set up)")
    if spec.kv_precision.label not in ("bf16", "fp8"):
        raise EmitError("vllm", "model.kv_precision", spec.kv_precision.label, "bf16 or fp8")
    cap = int(DEEPEP_LL_MAX_DISPATCH_TOKENS.value)
    if model.moe and d.moe_ep > 1 and inst.role != "prefill" and common.decode_tokens_per_rank(spec, inst.spec) > cap:
        raise EmitError("vllm", "decode batch per DP rank", common.decode_tokens_per_rank(spec, inst.spec),
                        f"at most {cap} tokens per DeepEP low-latency dispatch (plan with --engine vllm)")


def _base(spec: LaunchSpec, inst: Instance) -> list[str]:
    d, role = inst.dims, inst.spec
    argv = ["vllm", "serve", common.model_ref(spec), "--tensor-parallel-size", str(d.attn_tp)]
    if d.pp > 1:
        argv += ["--pipeline-parallel-size", str(d.pp)]
    if d.attn_dp > 1:
        argv += ["--data-parallel-size", str(d.attn_dp)]
    if spec.model.moe and d.moe_ep > 1:
        argv.append("--enable-expert-parallel")
        if d.redundant_experts:
            argv += ["--enable-eplb", "--eplb-config",
                     json.dumps({"num_redundant_experts": d.redundant_experts}, separators=(",", ":"))]
        if common.two_batch(role) and d.attn_dp > 1:
            argv.append("--enable-dbo")
    argv += ["--max-model-len", str(spec.context_tokens),
             "--gpu-memory-utilization", f"{common.engine_fraction(role.memory):.2f}"]
    if spec.kv_precision.label == "fp8":
        argv += ["--kv-cache-dtype", "fp8"]
    if mtp_emitted(spec) and role.role != "prefill":  # the prefill pool computes one token per request
        argv += ["--speculative-config", json.dumps({"method": "mtp", "num_speculative_tokens": spec.mtp_tokens},
                                                    separators=(",", ":"))]
    batched = common.decode_tokens_per_rank(spec, role)
    if role.role != "prefill":
        argv += ["--max-num-seqs", str(common.seqs_per_rank(role))]
    if role.role != "decode":
        chunk = common.prefill_tokens_per_rank(role)
        batched = max(batched, chunk) if role.role == "aggregated" else chunk
        if chunk < spec.input_tokens:
            argv.append("--enable-chunked-prefill")
    argv += ["--max-num-batched-tokens", str(batched)]
    if spec.disaggregated:
        argv += ["--kv-transfer-config",
                 json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"}, separators=(",", ":"))]
    if inst.slot:
        argv += ["--port", str(8000 + inst.slot)]
    return argv


def mtp_emitted(spec: LaunchSpec) -> bool:
    """The plan uses MTP and the checkpoint has MTP layers vLLM 0.11.0 drafts with (method ``mtp``)."""
    return bool(spec.mtp_tokens and spec.model.num_mtp_layers)


def _all2all_env(spec: LaunchSpec, inst: Instance) -> dict[str, str]:
    """The DeepEP back end of an expert-parallel role and, when its decode step dispatches more tokens per DP
    rank than vLLM's default chunk, the chunk that keeps it one dispatch (as costed)."""
    d, role = inst.dims, inst.spec
    if not (spec.model.moe and d.moe_ep > 1):
        return {}
    if role.role == "prefill":
        return {"VLLM_ALL2ALL_BACKEND": "deepep_high_throughput"}
    env = {"VLLM_ALL2ALL_BACKEND": "deepep_low_latency"}
    tokens = common.decode_tokens_per_rank(spec, role)
    if role.role == "aggregated" and common.prefill_tokens_per_rank(role) > tokens:
        return {"VLLM_ALL2ALL_BACKEND": "deepep_high_throughput"}
    if tokens > _DP_CHUNK_DEFAULT:
        env["VLLM_MOE_DP_CHUNK_SIZE"] = str(tokens)
    return env


def _commands(spec: LaunchSpec, inst: Instance) -> list[LaunchCommand]:
    base = _base(spec, inst)
    env = common.local_devices_env("CUDA_VISIBLE_DEVICES", inst, spec.devices_per_node) | _all2all_env(spec, inst)
    if inst.num_nodes == 1:
        return [LaunchCommand(role=inst.role, replica=inst.replica, node_rank=0, node=inst.nodes[0],
                              argv=tuple(base), env=env)]
    local = spec.devices_per_node // inst.dims.attn_tp
    out = []
    for rank, node in enumerate(inst.nodes):
        argv = base + ["--data-parallel-size-local", str(local), "--data-parallel-address",
                       common.ref(inst.head_var), "--data-parallel-rpc-port", _RPC_PORT]
        if rank:
            argv += ["--data-parallel-start-rank", str(rank * local), "--headless"]
        out.append(LaunchCommand(role=inst.role, replica=inst.replica, node_rank=rank, node=node, argv=tuple(argv),
                                 env=env))
    return out


def emit(spec: LaunchSpec) -> LaunchPlan:
    common.require_vendor("vllm", spec, ("nvidia", "amd"),
                          "an NVIDIA or AMD GPU (vLLM on Ascend NPUs is the separate vllm-ascend plugin, "
                          "not targeted here)")
    instances = place(spec, "vllm")
    for inst in instances:
        _check(spec, inst)
    notes = [f"{r.role}: the expert placement is not loaded: vLLM 0.11.0 takes no initial placement (its EPLB "
             "config has window_size, step_interval, num_redundant_experts, log_balancedness; vllm/config/parallel.py"
             "), --enable-eplb rebalances from the expert loads it records" for r in spec.roles if r.placement]
    notes += list(common.not_expressed(spec, "vllm", two_batch_ok=all(
        r.dims.attn_dp > 1 and r.dims.moe_ep > 1 for r in spec.roles if common.two_batch(r)),
        dense_tp_ok=True, mtp_ok=mtp_emitted(spec)))
    commands = [c for inst in instances for c in _commands(spec, inst)]
    if spec.disaggregated:
        commands.append(_proxy(instances))
    elif sum(r.replicas for r in spec.roles) > 1:
        notes.append("several aggregated instances: put an HTTP load balancer in front of them (vLLM balances "
                     "only the data-parallel ranks inside one instance)")
    return LaunchPlan(engine="vllm", version=SOURCE.version, sources=SOURCE.cited(), commands=tuple(commands),
                      notes=tuple(notes))


def _proxy(instances: tuple[Instance, ...]) -> LaunchCommand:
    """vLLM's NIXL P/D proxy: each request goes to a prefill instance, then streams from a decode instance."""
    def hosts_ports(role: str) -> tuple[list[str], list[str]]:
        chosen = [i for i in instances if i.role == role]
        return [common.ref(i.head_var) for i in chosen], [str(8000 + i.slot) for i in chosen]

    pre_h, pre_p = hosts_ports("prefill")
    dec_h, dec_p = hosts_ports("decode")
    argv = ("python3", "toy_proxy_server.py", "--host", "0.0.0.0", "--port", str(_PROXY_PORT),
            "--prefiller-hosts", *pre_h, "--prefiller-ports", *pre_p, "--decoder-hosts", *dec_h,
            "--decoder-ports", *dec_p)
    first = next(i for i in instances if i.role == "prefill")
    note = ("the proxy script is vLLM's tests/v1/kv_connector/nixl_integration/toy_proxy_server.py (not in the "
            "wheel: copy it from the vLLM repository of your release)",)
    return LaunchCommand(role="router", replica=0, node_rank=0, node=first.nodes[0], argv=argv, notes=note)
