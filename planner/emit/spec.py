"""Build a :class:`LaunchSpec` from an evaluated plan or a planned deployment, and lay its instances on nodes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from cost_models.parallel import ParallelDims
from cost_models.serving import ServingResult
from planner.emit.types import EmitError, Instance, LaunchSpec, RoleSpec

if TYPE_CHECKING:
    from planner.cpsat.deployment import Deployment
    from planner.cpsat.placement_result import PlacementResult
    from planner.inputs.scenario import Scenario

HF_REPOS = {
    "deepseek-v3": "deepseek-ai/DeepSeek-V3",
    "deepseek-r1": "deepseek-ai/DeepSeek-R1",
    "kimi-k2": "moonshotai/Kimi-K2-Instruct",
    "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-v0.1",
    "mixtral-8x22b": "mistralai/Mixtral-8x22B-v0.1",
    "gpt-oss-120b": "openai/gpt-oss-120b",
    "gpt-oss-20b": "openai/gpt-oss-20b",
    "llama-3.1-70b": "meta-llama/Meta-Llama-3.1-70B",
    "llama-3.1-405b": "meta-llama/Meta-Llama-3.1-405B",
}
"""Catalog id -> Hugging Face repo id. Source: the ``<org>--<model>_config.json`` file names of the
ai-dynamo/aiconfigurator model_configs mirror the catalog's config.json files come from
(planner/catalog/hf_configs/SOURCES.md). DeepSeek-V2-Lite is reconstructed, not mirrored, so it has no entry
and its launch lines read ``${MODEL_PATH}``."""


def _memory_of(result: ServingResult, role: str):  # noqa: ANN202
    if role == "prefill":
        return result.prefill.memory
    if role == "decode":
        return result.decode.memory
    return max(result.prefill.memory, result.decode.memory, key=lambda m: m.used_bytes)


PlacementOf = Callable[[ParallelDims], "PlacementResult | None"]
"""A replica layout -> the expert placement ``place`` computes for it from the scenario's router counts
(``workload.expert_load``), or None (no counts, or EP 1)."""


def slot_maps(result: PlacementResult | None) -> tuple[tuple[int, ...], ...]:
    """Per layer, the CP-SAT placement's slot -> logical expert map (empty for None)."""
    if result is None:
        return ()
    return tuple(layer.cpsat.placement.physical_to_logical for layer in result.layers)


def _role(role: str, dims: ParallelDims, replicas: int, result: ServingResult,
          placement_of: PlacementOf | None = None) -> RoleSpec:
    one = dataclasses.replace(dims, dp=1)
    return RoleSpec(role=role, dims=one, replicas=replicas,
                    decode_batch_per_device=0.0 if role == "prefill" else result.decode_batch_per_device,
                    prefill_tokens_per_device=result.prefill.tokens_per_device_per_step,
                    memory=_memory_of(result, role),
                    placement=slot_maps(placement_of(one)) if placement_of else ())


def _spec(sc: Scenario, roles: tuple[RoleSpec, ...]) -> LaunchSpec:
    wl = sc.workload
    return LaunchSpec(model=sc.model, hf_repo=HF_REPOS.get(sc.model.id), device=sc.cluster.device,
                      devices_per_node=sc.cluster.devices_per_node, num_devices=sc.cluster.num_devices,
                      input_tokens=wl.input_tokens, output_tokens=wl.output_tokens, weight_precision=wl.weight_precision,
                      kv_precision=wl.kv_precision,
                      mtp_tokens=wl.mtp_tokens, roles=roles)


def spec_from_evaluation(sc: Scenario, dims: ParallelDims, result: ServingResult,
                         placement_of: PlacementOf | None = None) -> LaunchSpec:
    """``moeplan evaluate``: one aggregated pool of ``dims.dp`` replicas."""
    return _spec(sc, (_role("aggregated", dims, dims.dp, result, placement_of),))


def spec_from_deployment(sc: Scenario, d: Deployment, placement_of: PlacementOf | None = None) -> LaunchSpec:
    """``moeplan plan`` / ``evaluate``: the deployment's pools (prefill first, then decode); ``placement_of``:
    the expert placement of each pool's layout, converted by each emitter to what its engine loads."""
    if d.mode == "aggregated":
        return _spec(sc, (_role("aggregated", d.decode.dims, d.decode_replicas, d.decode.result, placement_of),))
    assert d.prefill is not None
    return _spec(sc, (_role("prefill", d.prefill.dims, d.prefill_replicas, d.prefill.result, placement_of),
                      _role("decode", d.decode.dims, d.decode_replicas, d.decode.result, placement_of)))


def place(spec: LaunchSpec, engine: str) -> tuple[Instance, ...]:
    """Lay every replica on consecutive devices, larger replicas first so none straddles a node boundary.

    A replica of at least a node takes whole nodes; a smaller one takes a slice of one node (its device ids
    go to the engine as visible devices). Returned in role order (prefill, decode), replica order."""
    dpn = spec.devices_per_node
    order = sorted(((r, k) for r in spec.roles for k in range(r.replicas)),
                   key=lambda rk: -rk[0].replica_devices)
    placed: dict[tuple[str, int], Instance] = {}
    per_node: dict[int, int] = {}
    offset = 0
    for role, k in order:
        size = role.replica_devices
        if size > dpn and size % dpn:
            raise EmitError(engine, "plan.attn_tp*attn_dp*pp", size,
                            f"a replica size that divides or is a multiple of devices_per_node={dpn}")
        if (offset % dpn) + min(size, dpn) > dpn:
            offset = -(-offset // dpn) * dpn  # next node boundary
        first = offset // dpn
        nodes = tuple(range(first, first + max(1, size // dpn)))
        local = tuple(range(offset % dpn, offset % dpn + min(size, dpn)))
        placed[(role.role, k)] = Instance(spec=role, replica=k, nodes=nodes, local_devices=local,
                                          slot=per_node.get(first, 0))
        per_node[first] = per_node.get(first, 0) + 1
        offset += size
    if offset > spec.num_devices:
        raise EmitError(engine, "plan.replicas", sum(r.replicas for r in spec.roles),
                        f"replicas that fit {spec.num_devices} devices in whole-node slices "
                        f"({dpn} per node); this layout needs {offset}")
    return tuple(placed[(r.role, k)] for r in spec.roles for k in range(r.replicas))
