"""MindIE LLM (Huawei Ascend) launch lines: MindIE takes its settings from ``config.json``, not from flags.

Each line therefore comes with a ``config.json`` *fragment* (only the keys the plan sets) to merge into a copy of
the installed ``conf/config.json``; ``MIES_CONFIG_JSON_PATH`` points the server at that copy. Mapping: the
instance's NPUs -> ``worldSize`` / ``npuDeviceIds``; attention TP / DP -> ``tp`` / ``dp`` (``tp * dp =
worldSize``); experts -> ``moe_tp`` / ``moe_ep`` with ``models.deepseekv2.ep_level: 2`` (all-to-all EP);
memory -> ``npuMemSize: -1`` plus ``NPU_MEMORY_FRACTION``; batch -> ``ScheduleConfig.maxBatchSize``; multi-node
-> ``multiNodesInferEnabled`` with the ``RANK_TABLE_FILE`` / ``MASTER_IP`` / ``MASTER_PORT`` /
``MIES_CONTAINER_IP`` environment of the rank-table guide.
"""

from __future__ import annotations

import json

from planner.emit import common
from planner.emit.spec import place
from planner.emit.types import EmitError, EngineSource, Instance, LaunchCommand, LaunchPlan, LaunchSpec

_DOCS = "Ascend/MindIE-LLM@613aab54 docs/en/user_guide"
SOURCE = EngineSource(
    engine="mindie", version="MindIE LLM 3.1.0",
    sources={
        "params": f"{_DOCS}/user_manual/service_parameter_configuration.md",
        "default": "Ascend/MindIE-LLM@653bca61 src/server/conf/config.json",
        "dp": f"{_DOCS}/feature/data_parallel.md",
        "ep": f"{_DOCS}/feature/expert_parallel.md",
        "moe_tp": "https://www.hiascend.com/doc_center/source/zh/mindie/20RC1/mindiellm/llmdev/mindie_llm0424.html "
                  "(example with \"moe_tp\")",
        "env": f"{_DOCS}/user_manual/environment_variable.md",
        "ranktable": f"{_DOCS}/user_manual/rank_table_file_configuration.md",
        "eplb": f"{_DOCS}/feature/expert_parallelism_load_balancer.md (static load balancing: "
                "models.deepseekv2.eplb.level 1 + expert_map_file in atb-models/atb_llm/conf/config.json; "
                "ep_level 2 only)",
        "elb": "Ascend/msit@893d6128 msit/components/expert_load_balancing/elb/load_balancing.py "
               "(save_matrix_to_json: the deployment table msit elb writes, moe_layer_count + layer_list of "
               "layer_id / device_count / device_list[device_id, device_expert])",
    },
    flags={},
    config_keys={
        "ServerConfig.port": "params", "ServerConfig.managementPort": "params", "ServerConfig.metricsPort": "params",
        "BackendConfig.npuDeviceIds": "params", "BackendConfig.multiNodesInferEnabled": "params",
        "BackendConfig.ModelDeployConfig.maxSeqLen": "params",
        "BackendConfig.ModelDeployConfig.maxInputTokenLen": "params",
        **{f"BackendConfig.ModelDeployConfig.ModelConfig.{k}": "params" for k in (
            "modelName", "modelWeightPath", "worldSize", "npuMemSize", "backendType", "trustRemoteCode")},
        "BackendConfig.ModelDeployConfig.ModelConfig.tp": "dp",
        "BackendConfig.ModelDeployConfig.ModelConfig.dp": "dp",
        "BackendConfig.ModelDeployConfig.ModelConfig.moe_tp": "moe_tp",
        "BackendConfig.ModelDeployConfig.ModelConfig.moe_ep": "ep",
        "BackendConfig.ModelDeployConfig.ModelConfig.models.deepseekv2.ep_level": "ep",
        **{f"BackendConfig.ScheduleConfig.{k}": "params" for k in (
            "maxBatchSize", "maxPrefillTokens", "maxIterTimes")},
        "models.deepseekv2.eplb.level": "eplb", "models.deepseekv2.eplb.expert_map_file": "eplb",
        **{k: "elb" for k in ("moe_layer_count", "layer_list.layer_id", "layer_list.device_count",
                              "layer_list.device_list.device_id", "layer_list.device_list.device_expert")},
    },
    env_vars={"MIES_CONFIG_JSON_PATH": "env", "NPU_MEMORY_FRACTION": "env", "MIES_CONTAINER_IP": "env",
              "RANK_TABLE_FILE": "ranktable", "MASTER_IP": "ranktable", "MASTER_PORT": "ranktable"},
)
_MASTER_PORT = "29500"


def _check(spec: LaunchSpec, inst: Instance) -> None:
    d = inst.dims
    if d.pp > 1:
        raise EmitError("mindie", "plan.pp", d.pp, "1 (MindIE LLM's config.json has no pipeline-parallel setting)")
    if d.moe_ep > 1 and not spec.model.id.startswith("deepseek"):
        raise EmitError("mindie", "plan.moe_ep", d.moe_ep,
                        f"1 for {spec.model.id} (MindIE LLM documents expert parallelism for DeepSeek-V2/V3/R1 "
                        "only; other MoE models run experts tensor-parallel)")
    if d.redundant_experts and not inst.spec.placement:
        raise EmitError("mindie", "plan.redundant_experts", d.redundant_experts,
                        "0, or router counts (workload.expert_load): MindIE places redundant experts only from an "
                        "expert deployment table (expert_map_file), which moeplan writes from the placement")


def _fragment(spec: LaunchSpec, inst: Instance) -> dict[str, object]:
    d, role = inst.dims, inst.spec
    model: dict[str, object] = {
        "modelName": spec.model.id, "modelWeightPath": common.ref(common.MODEL_PATH_VAR),
        "worldSize": d.unit_devices, "npuMemSize": -1, "backendType": "atb", "trustRemoteCode": False,
        "tp": d.attn_tp, "dp": d.attn_dp if d.attn_dp > 1 else -1}
    if spec.model.moe:
        model["moe_tp"] = d.moe_tp
        if d.moe_ep > 1:  # the docs give no "off" value for moe_ep: left out when experts are not split
            model["moe_ep"] = d.moe_ep
            model["models"] = {"deepseekv2": {"ep_level": 2}}
    chunk = common.prefill_tokens_per_rank(role) * d.attn_dp
    base = 1025 + 3 * inst.slot
    return {
        "ServerConfig": {"port": base, "managementPort": base + 1, "metricsPort": base + 2},
        "BackendConfig": {
            "npuDeviceIds": [list(inst.local_devices)], "multiNodesInferEnabled": inst.num_nodes > 1,
            "ModelDeployConfig": {"maxSeqLen": spec.context_tokens, "maxInputTokenLen": spec.input_tokens,
                                  "ModelConfig": [model]},
            "ScheduleConfig": {"maxBatchSize": common.seqs_per_rank(role) * d.attn_dp,
                               "maxPrefillTokens": max(chunk, spec.input_tokens),
                               "maxIterTimes": spec.output_tokens}}}


def expert_map(spec: LaunchSpec, inst: Instance) -> dict[str, str]:
    """The static load balancer's files of an all-to-all EP instance with an expert placement: the deployment
    table (msit elb's format: per MoE layer, each EP rank's experts) and the atb-models config fragment that
    points ``models.deepseekv2.eplb`` at it (level 1, static); empty without a placement."""
    rows = common.placement_rows("mindie", spec, inst.spec)
    ep = inst.dims.moe_ep
    if not rows or ep == 1:
        return {}
    per = len(rows[0]) // ep
    table = {"moe_layer_count": len(rows), "layer_list": [
        {"layer_id": i, "device_count": ep,
         "device_list": [{"device_id": j, "device_expert": list(r[j * per:(j + 1) * per])} for j in range(ep)]}
        for i, r in enumerate(rows)]}
    name = f"mindie_{inst.role}_expert_map.json"
    atb = {"models": {"deepseekv2": {"eplb": {"level": 1, "expert_map_file": f"{common.ref('PWD')}/{name}"}}}}
    return {name: json.dumps(table, separators=(",", ":")) + "\n",
            f"atb_models_{inst.role}_{inst.replica}.json": json.dumps(atb, indent=2) + "\n"}


def _commands(spec: LaunchSpec, inst: Instance) -> list[LaunchCommand]:
    name = f"mindie_{inst.role}_{inst.replica}.json"
    text = json.dumps(_fragment(spec, inst), indent=2) + "\n"
    env = {"MIES_CONFIG_JSON_PATH": f"{common.ref('PWD')}/{name}",
           "NPU_MEMORY_FRACTION": f"{common.engine_fraction(inst.spec.memory):.2f}",
           "MIES_CONTAINER_IP": common.ref(common.LOCAL_ADDR_VAR)}
    if inst.num_nodes > 1:
        env |= {"RANK_TABLE_FILE": common.ref(f"{inst.role.upper()}_{inst.replica}_RANK_TABLE"),
                "MASTER_IP": common.ref(inst.head_var), "MASTER_PORT": _MASTER_PORT}
    note = ("config.json fragment: merge it into a copy of the installed conf/config.json at this path "
            "(keys not listed keep their defaults)",)
    balancer = expert_map(spec, inst)
    if balancer:
        note += ("atb_models_*.json fragment: merge it into {ATB}/atb-models/atb_llm/conf/config.json (the static "
                 "load balancer reads the expert deployment table it names)",)
    return [LaunchCommand(role=inst.role, replica=inst.replica, node_rank=rank, node=node,
                          argv=("mindie_llm_server",), env=env, files={name: text} | balancer, notes=note)
            for rank, node in enumerate(inst.nodes)]


def emit(spec: LaunchSpec) -> LaunchPlan:
    common.require_vendor("mindie", spec, ("huawei",), "an Ascend NPU (MindIE runs on Atlas 800I A2/A3 servers)")
    if spec.disaggregated:
        raise EmitError("mindie", "deployment.mode", "disaggregated",
                        "aggregated (MindIE deploys prefill/decode pools through MindIE Motor's Kubernetes "
                        "scripts, which this emitter does not generate)")
    instances = place(spec, "mindie")
    for inst in instances:
        _check(spec, inst)
    notes = list(common.not_expressed(spec, "mindie", two_batch_ok=False, dense_tp_ok=False, mtp_ok=False))
    notes += [f"{r.role}: the expert placement is not loaded (MindIE's static load balancer runs with the all-to-all "
              "EP, ep_level 2, only)" for r in spec.roles if r.placement and r.dims.moe_ep == 1]
    notes.append("MindIE is configured by config.json, not command-line flags: each line writes the fragment "
                 "the plan sets and starts mindie_llm_server on it")
    if any(r.role != "prefill" and r.dims.attn_dp > 1 for r in spec.roles):
        notes.append("maxBatchSize / maxPrefillTokens are written instance-wide (per-rank values x dp)")
    if spec.kv_precision.label != "bf16":
        notes.append(f"kv_precision={spec.kv_precision.label} is set by the quantized weights in MindIE, not by "
                     "config.json")
    return LaunchPlan(engine="mindie", version=SOURCE.version, sources=SOURCE.cited(),
                      commands=tuple(c for inst in instances for c in _commands(spec, inst)), notes=tuple(notes))
