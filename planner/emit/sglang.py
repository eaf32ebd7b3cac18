"""SGLang (``python3 -m sglang.launch_server``) launch lines.

Mapping: the instance's devices -> ``--tp-size`` (attention TP x DP); attention DP -> ``--dp-size`` with
``--enable-dp-attention``; expert parallelism -> ``--ep-size`` (expert TP = tp / ep), with the DeepEP all-to-all
(``--moe-a2a-backend deepep``, ``--deepep-mode``) when EP covers the instance; dense FFN data-parallel ->
``--moe-dense-tp-size 1``; redundant experts -> ``--ep-num-redundant-experts`` + ``--enable-eplb``; two-batch
overlap -> ``--enable-two-batch-overlap``; multi-node -> ``--dist-init-addr`` / ``--nnodes`` / ``--node-rank``;
disaggregation -> ``--disaggregation-mode prefill|decode`` and an ``sglang_router`` front end (also in front of
several aggregated replicas). Checks SGLang 0.5.5 runs in ``ServerArgs.__post_init__`` that the lines satisfy:
DeepEP sets ``ep_size = tp_size`` (so expert TP > 1 is refused, the cost model priced DeepEP); a decode server
with ``dp_size > 1`` needs ``--prefill-round-robin-balance`` and its prefill servers ``--load-balance-method
round_robin``. DeepEP low-latency dispatches at most ``SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK`` tokens
per rank (default 128, at most 1,024): set to cover the planned decode step.
"""

from __future__ import annotations

import json

from planner.catalog.engines import DEEPEP_LL_MAX_DISPATCH_TOKENS, SGLANG_CUDA_GRAPH_MAX_BS
from planner.emit import common
from planner.emit.spec import place
from planner.emit.types import EmitError, EngineSource, Instance, LaunchCommand, LaunchPlan, LaunchSpec

_DOCS = "sgl-project/sglang@004813e1 docs/advanced_features/server_arguments.md (https://docs.sglang.io/)"
SOURCE = EngineSource(
    engine="sglang", version="0.5.5",
    sources={
        "args": _DOCS,
        "pd": "sgl-project/sglang@08edc506 docs/advanced_features/pd_disaggregation.md",
        "ep": "sgl-project/sglang@020017c4 docs/advanced_features/expert_parallelism.md",
        "sbo": "sgl-project/sglang@0ac832c python/sglang/srt/server_args.py (--enable-single-batch-overlap: needs "
               "--moe-a2a-backend deepep) and python/sglang/srt/batch_overlap/single_batch_overlap.py",
        "v055": "sgl-project/sglang@v0.5.5 python/sglang/srt/server_args.py (_handle_a2a_moe, "
                "_handle_disaggregation, --cuda-graph-max-bs, --load-balance-method, --prefill-round-robin-balance)",
        "deepep": "sgl-project/sglang@v0.5.5 python/sglang/srt/layers/moe/token_dispatcher/deepep.py "
                  "(SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK, default 128, <= 1024)",
        "router": "sgl-project/sglang@v0.5.5 sgl-router/README.md (--worker-urls, --pd-disaggregation)",
        "mtp": "sgl-project/sglang@v0.5.5 python/sglang/srt/server_args.py _handle_speculative_decoding (EAGLE on "
               "DeepseekV3ForCausalLM drafts with the checkpoint's own MTP layers; topk 1 needs draft tokens = "
               "steps + 1) and srt/disaggregation/prefill.py (a prefill server running EAGLE hands the draft state "
               "to the decode server, so both pools run it)",
        "eplb": "sgl-project/sglang@v0.5.5 python/sglang/srt/eplb/expert_location.py "
                "(compute_initial_expert_location_metadata: a .json file with physical_to_logical_map "
                "[num_hidden_layers][experts + ep_num_redundant_experts] -> ExpertLocationMetadata.init_by_mapping)",
    },
    flags={f: "args" for f in (
        "-m", "--model-path", "--tp-size", "--pp-size", "--dp-size", "--enable-dp-attention", "--ep-size",
        "--moe-a2a-backend", "--deepep-mode", "--moe-dense-tp-size", "--ep-num-redundant-experts", "--enable-eplb",
        "--enable-two-batch-overlap", "--context-length", "--mem-fraction-static", "--max-running-requests",
        "--chunked-prefill-size", "--kv-cache-dtype", "--trust-remote-code", "--host", "--port", "--base-gpu-id",
        "--device", "--dist-init-addr", "--nnodes", "--node-rank", "--disaggregation-mode",
        "--disaggregation-transfer-backend", "--disaggregation-bootstrap-port")}
    | {"--pd-disaggregation": "pd", "--prefill": "pd", "--decode": "pd", "--enable-single-batch-overlap": "sbo"}
    | {f: "v055" for f in ("--cuda-graph-max-bs", "--load-balance-method", "--prefill-round-robin-balance")}
    | {"--worker-urls": "router", "--init-expert-location": "eplb"}
    | {f: "mtp" for f in ("--speculative-algorithm", "--speculative-num-steps", "--speculative-eagle-topk",
                          "--speculative-num-draft-tokens")},
    config_keys={"physical_to_logical_map": "eplb"},
    env_vars={"SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK": "deepep"},
)
_LL_DEFAULT_TOKENS = 128
"""DeepEP low-latency's default dispatch cap in SGLang 0.5.5 (deepep.py)."""
_DIST_PORT = 5000
"""The port pd_disaggregation.md uses in ``--dist-init-addr``."""


def _check(spec: LaunchSpec, inst: Instance) -> None:
    d, model = inst.dims, spec.model
    unit = d.unit_devices
    if d.attn_dp > 1 and model.moe is None:
        raise EmitError("sglang", "plan.attn_dp", d.attn_dp,
                        "1 for a dense model (--enable-dp-attention is for MoE models: DeepSeek, Qwen MoE)")
    if model.moe and model.num_dense_layers and d.dense_tp not in (1, unit):
        raise EmitError("sglang", "plan.dense_tp", d.dense_tp,
                        f"1 (--moe-dense-tp-size 1) or {unit} (the instance's --tp-size)")
    common.refuse_pp_with_dp_or_ep("sglang", SOURCE.version, inst.spec)
    common.refuse_redundant_without_ep("sglang", inst.spec)
    if model.moe and d.moe_ep > 1 and d.moe_ep != unit:
        raise EmitError("sglang", "plan.moe_tp", d.moe_tp,
                        f"1 (SGLang 0.5.5's DeepEP all-to-all, which the plan was costed with, sets ep_size = tp_size "
                        f"= {unit}; plan with --engine sglang)")
    if _deepep_ll(spec, inst) and common.decode_tokens_per_rank(spec, inst.spec) > int(
            DEEPEP_LL_MAX_DISPATCH_TOKENS.value):
        raise EmitError("sglang", "decode batch per DP rank", common.decode_tokens_per_rank(spec, inst.spec),
                        f"at most {int(DEEPEP_LL_MAX_DISPATCH_TOKENS.value)} tokens per DeepEP low-latency dispatch "
                        "(plan with --engine sglang)")
    if spec.kv_precision.label not in ("bf16", "fp8"):
        raise EmitError("sglang", "model.kv_precision", spec.kv_precision.label, "bf16 or fp8")


def _deepep_ll(spec: LaunchSpec, inst: Instance) -> bool:
    """The role dispatches decode steps with DeepEP low-latency (decode, or ``auto`` in an aggregated pool)."""
    d = inst.dims
    return bool(spec.model.moe) and d.moe_ep > 1 and d.moe_ep == d.unit_devices and inst.role != "prefill"


def _env(spec: LaunchSpec, inst: Instance) -> dict[str, str]:
    tokens = common.decode_tokens_per_rank(spec, inst.spec)
    if _deepep_ll(spec, inst) and tokens > _LL_DEFAULT_TOKENS:
        return {"SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK": str(tokens)}
    return {}


def mtp_emitted(spec: LaunchSpec) -> bool:
    """The plan uses MTP and SGLang 0.5.5 drafts with the checkpoint's own MTP layers (DeepSeek-V3/R1 here)."""
    return bool(spec.mtp_tokens and spec.model.num_mtp_layers and spec.model.id.startswith("deepseek"))


def _mtp_args(spec: LaunchSpec) -> list[str]:
    """EAGLE over the MTP layers, one draft chain (topk 1): steps = the plan's speculative tokens."""
    if not mtp_emitted(spec):
        return []
    k = spec.mtp_tokens
    return ["--speculative-algorithm", "EAGLE", "--speculative-num-steps", str(k), "--speculative-eagle-topk", "1",
            "--speculative-num-draft-tokens", str(k + 1)]


def _trusts_remote_code(spec: LaunchSpec) -> bool:
    return spec.model.id.startswith(("deepseek", "kimi"))


def _port(inst: Instance) -> int:
    return 30000 + inst.slot


def _base(spec: LaunchSpec, inst: Instance) -> list[str]:
    d, role = inst.dims, inst.spec
    unit = d.unit_devices
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", common.model_ref(spec), "--tp-size", str(unit)]
    if spec.device.vendor == "huawei":
        argv += ["--device", "npu"]
    if d.pp > 1:
        argv += ["--pp-size", str(d.pp)]
    if d.attn_dp > 1:
        argv += ["--dp-size", str(d.attn_dp), "--enable-dp-attention"]
    deepep = False
    if spec.model.moe and d.moe_ep > 1:
        argv += ["--ep-size", str(d.moe_ep)]
        if d.moe_ep == unit:
            deepep = True
            mode = {"prefill": "normal", "decode": "low_latency"}.get(role.role, "auto")
            argv += ["--moe-a2a-backend", "deepep", "--deepep-mode", mode]
        if d.redundant_experts:
            argv += ["--ep-num-redundant-experts", str(d.redundant_experts), "--enable-eplb"]
    if spec.model.moe and spec.model.num_dense_layers and d.dense_tp == 1 and unit > 1:
        argv += ["--moe-dense-tp-size", "1"]
    if deepep and common.two_batch(role):
        argv.append("--enable-two-batch-overlap")
    if deepep and common.single_batch(role):
        argv.append("--enable-single-batch-overlap")
    argv += ["--context-length", str(spec.context_tokens),
             "--mem-fraction-static", f"{common.engine_pool_fraction(role.memory):.2f}"]
    if spec.kv_precision.label == "fp8":
        argv += ["--kv-cache-dtype", "fp8_e4m3"]
    argv += _mtp_args(spec)
    if role.role != "prefill":
        # instance-wide: SGLang divides it by --dp-size under DP attention
        argv += ["--max-running-requests", str(common.seqs_per_rank(role) * d.attn_dp),
                 "--cuda-graph-max-bs", str(min(SGLANG_CUDA_GRAPH_MAX_BS, common.seqs_per_rank(role)))]
    if role.role != "decode":
        # instance-wide: SGLang divides --chunked-prefill-size by --dp-size under DP attention
        argv += ["--chunked-prefill-size", str(common.prefill_tokens_per_rank(role) * d.attn_dp)]
    if spec.disaggregated:
        argv += ["--disaggregation-mode", role.role]
        if d.attn_dp > 1 or any(r.role == "decode" and r.dims.attn_dp > 1 for r in spec.roles):
            # a decode server with dp > 1 asserts its prefill servers balance round-robin (server_args.py)
            argv += ["--load-balance-method", "round_robin"]
            if role.role == "decode" and d.attn_dp > 1:
                argv.append("--prefill-round-robin-balance")
        if spec.device.vendor == "huawei":
            argv += ["--disaggregation-transfer-backend", "ascend"]
        if role.role == "prefill" and inst.slot:
            argv += ["--disaggregation-bootstrap-port", str(8998 + inst.slot)]
    if _trusts_remote_code(spec):
        argv.append("--trust-remote-code")
    argv += ["--host", "0.0.0.0", "--port", str(_port(inst))]
    if inst.local_devices[0]:
        argv += ["--base-gpu-id", str(inst.local_devices[0])]
    return argv


def expert_location(spec: LaunchSpec, inst: Instance) -> dict[str, str]:
    """The ``--init-expert-location`` file of a DeepEP role with an expert placement (name -> JSON): one row per
    model layer, the placement's slot map on MoE layers and SGLang's trivial map (slot % experts, as its
    ``init_trivial``) on the dense ones; empty when there is no placement."""
    rows = common.placement_rows("sglang", spec, inst.spec)
    if not rows or not _deepep(spec, inst):
        return {}
    moe = spec.model.moe
    assert moe is not None
    slots = len(rows[0])
    trivial = [s % moe.num_routed_experts for s in range(slots)]
    by_layer = dict(zip(common.moe_layer_ids(spec), rows, strict=True))
    table = [list(by_layer.get(i, trivial)) for i in range(spec.model.num_layers)]
    return {f"sglang_{inst.role}_expert_location.json": json.dumps({"physical_to_logical_map": table},
                                                                    separators=(",", ":")) + "\n"}


def _deepep(spec: LaunchSpec, inst: Instance) -> bool:
    d = inst.dims
    return bool(spec.model.moe) and d.moe_ep > 1 and d.moe_ep == d.unit_devices


def _commands(spec: LaunchSpec, inst: Instance) -> list[LaunchCommand]:
    files = expert_location(spec, inst)
    base = _base(spec, inst) + [a for name in files for a in ("--init-expert-location", name)]
    env = _env(spec, inst)
    if inst.num_nodes == 1:
        return [LaunchCommand(role=inst.role, replica=inst.replica, node_rank=0, node=inst.nodes[0],
                              argv=tuple(base), env=env, files=files)]
    return [LaunchCommand(role=inst.role, replica=inst.replica, node_rank=rank, node=node, env=env, files=files,
                          argv=tuple(base + ["--dist-init-addr", f"{common.ref(inst.head_var)}:{_DIST_PORT}",
                                             "--nnodes", str(inst.num_nodes), "--node-rank", str(rank)]))
            for rank, node in enumerate(inst.nodes)]


def _replica_router(instances: tuple[Instance, ...]) -> LaunchCommand:
    """sglang-router in front of several aggregated replicas (cache-aware load balancing by default)."""
    argv = ["python3", "-m", "sglang_router.launch_router", "--worker-urls",
            *(f"http://{common.ref(i.head_var)}:{_port(i)}" for i in instances), "--host", "0.0.0.0", "--port", "8000"]
    return LaunchCommand(role="router", replica=0, node_rank=0, node=instances[0].nodes[0], argv=tuple(argv))


def _router(instances: tuple[Instance, ...]) -> LaunchCommand:
    argv = ["python3", "-m", "sglang_router.launch_router", "--pd-disaggregation"]
    for inst in instances:
        argv += [f"--{inst.role}", f"http://{common.ref(inst.head_var)}:{_port(inst)}"]
    argv += ["--host", "0.0.0.0", "--port", "8000"]
    first = next(i for i in instances if i.role == "prefill")
    shared = [i for i in instances if i.role == "prefill" and i.slot]
    notes = (f"prefill instances sharing a node use bootstrap ports {sorted(8998 + i.slot for i in shared)}; give "
             "them to the router as your sglang-router release documents",) if shared else ()
    return LaunchCommand(role="router", replica=0, node_rank=0, node=first.nodes[0], argv=tuple(argv), notes=notes)


def _placement_notes(spec: LaunchSpec) -> tuple[str, ...]:
    return tuple(f"{r.role}: the expert placement is not loaded (SGLang loads one only on the DeepEP path, EP over "
                 "the whole instance)" for r in spec.roles
                 if r.placement and not (r.dims.moe_ep > 1 and r.dims.moe_ep == r.dims.unit_devices))


def emit(spec: LaunchSpec) -> LaunchPlan:
    common.require_vendor("sglang", spec, ("nvidia", "amd", "huawei"), "an NVIDIA or AMD GPU or an Ascend NPU")
    instances = place(spec, "sglang")
    for inst in instances:
        _check(spec, inst)
    deepep_roles = {r.role for r in spec.roles if r.dims.moe_ep > 1 and r.dims.moe_ep == r.dims.unit_devices}
    notes = _placement_notes(spec) + common.not_expressed(spec, "sglang", two_batch_ok=all(
        r.role in deepep_roles for r in spec.roles if common.two_batch(r)), dense_tp_ok=True, mtp_ok=mtp_emitted(spec),
        single_batch_ok=all(r.role in deepep_roles for r in spec.roles if common.single_batch(r)))
    commands = [c for inst in instances for c in _commands(spec, inst)]
    if spec.disaggregated:
        commands.append(_router(instances))
    elif len(instances) > 1:
        commands.append(_replica_router(instances))
    return LaunchPlan(engine="sglang", version=SOURCE.version, sources=SOURCE.cited(), commands=tuple(commands),
                      notes=notes)
