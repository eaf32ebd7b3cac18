"""Numbers every emitter derives the same way from a role: batch per rank, chunk per rank, memory fractions.

Conventions: a *rank* is one attention group (``attn_tp`` devices sharing sequences); the cost model's per-device
batch and chunk are multiplied by ``attn_tp`` to get it. Fractions are rounded up to 0.01 so the engine never
gets less memory than the plan needs, and capped at 0.99.
"""

from __future__ import annotations

import math

from cost_models.memory import MemoryBreakdown
from cost_models.parallel import OverlapPolicy
from planner.emit.types import EmitError, Instance, LaunchSpec, RoleSpec

MODEL_PATH_VAR = "MODEL_PATH"
LOCAL_ADDR_VAR = "LOCAL_ADDR"


def ref(var: str) -> str:
    """A shell reference to an environment variable the user sets (listed in the output header)."""
    return "${" + var + "}"


def model_ref(spec: LaunchSpec) -> str:
    """The Hugging Face repo id when the catalog knows it, else ``${MODEL_PATH}``."""
    return spec.hf_repo or ref(MODEL_PATH_VAR)


def _ceil(x: float) -> int:
    return max(1, math.ceil(x - 1e-9))


def seqs_per_rank(role: RoleSpec) -> int:
    """Decode sequences one attention rank holds (at least 1)."""
    return _ceil(role.decode_batch_per_device * role.dims.attn_tp)


def prefill_tokens_per_rank(role: RoleSpec) -> int:
    """Prompt tokens one attention rank prefills per step (the chunk)."""
    return _ceil(role.prefill_tokens_per_device * role.dims.attn_tp)


def decode_tokens_per_rank(spec: LaunchSpec, role: RoleSpec) -> int:
    """Tokens one attention rank computes per decode step (sequences x (1 + MTP tokens))."""
    return seqs_per_rank(role) * (1 + spec.mtp_tokens)


def fraction(x: float) -> float:
    """Round a memory fraction up to 0.01, within [0.01, 0.99]."""
    return min(0.99, max(0.01, math.ceil(x * 100 - 1e-6) / 100))


def engine_fraction(m: MemoryBreakdown) -> float:
    """What the engine may allocate (weights, KV, activations, EP buffers: everything the plan puts on a device
    except the engine's own reserve, ``runtime_reserve_bytes``) over capacity: vLLM's
    ``--gpu-memory-utilization``, MindIE's ``NPU_MEMORY_FRACTION``. Rounded up to 0.01, so it can exceed the plan
    by under 1 % of the device, never the reserve."""
    return fraction((m.used_bytes - m.runtime_reserve_bytes) / m.capacity_bytes)


def engine_pool_fraction(m: MemoryBreakdown) -> float:
    """What an engine allocates up front (SGLang's ``--mem-fraction-static``: weights and the KV pool) over
    capacity: the plan's static memory (``MemoryBreakdown.static_bytes``, the one definition) less the runtime
    reserve, which the engine keeps outside the fraction, plus the KV cache. Activations stay outside too."""
    return fraction((m.static_bytes - m.runtime_reserve_bytes + m.kv_cache_bytes) / m.capacity_bytes)


def kv_free_fraction(m: MemoryBreakdown) -> float:
    """KV cache over the memory left once weights, activations and buffers are allocated (TensorRT-LLM's
    ``free_gpu_memory_fraction``): the engine's reserve stays outside the fraction."""
    rest = m.capacity_bytes - (m.used_bytes - m.kv_cache_bytes - m.runtime_reserve_bytes)
    return fraction(m.kv_cache_bytes / rest) if rest > 0 else 0.01


def two_batch(role: RoleSpec) -> bool:
    return role.dims.overlap is OverlapPolicy.TWO_BATCH


def single_batch(role: RoleSpec) -> bool:
    return role.dims.overlap is OverlapPolicy.SINGLE_BATCH


def require_vendor(engine: str, spec: LaunchSpec, vendors: tuple[str, ...], why: str) -> None:
    if spec.device.vendor not in vendors:
        raise EmitError(engine, "cluster.device", spec.device.id, why)


def refuse_pp_with_dp_or_ep(engine: str, version: str, role: RoleSpec) -> None:
    d = role.dims
    if d.pp > 1 and (d.attn_dp > 1 or d.moe_ep > 1):
        raise EmitError(engine, "plan.pp", d.pp,
                        f"1 when attn_dp > 1 or moe_ep > 1 ({engine} {version} documents pipeline parallelism "
                        "only for tensor-parallel instances)")


def refuse_redundant_without_ep(engine: str, role: RoleSpec) -> None:
    d = role.dims
    if d.redundant_experts and d.moe_ep == 1:
        raise EmitError(engine, "plan.redundant_experts", d.redundant_experts,
                        f"0 when moe_ep = 1 ({engine} places redundant experts only under expert parallelism)")


def not_expressed(spec: LaunchSpec, engine: str, *, two_batch_ok: bool, dense_tp_ok: bool,
                  mtp_ok: bool, single_batch_ok: bool = False) -> tuple[str, ...]:
    """Comment lines for plan parts the engine has no setting for (the plan's numbers assume them)."""
    out: list[str] = []
    for r in spec.roles:
        d = r.dims
        if two_batch(r) and not two_batch_ok:
            out.append(f"{r.role}: micro_batches=2 two-batch overlap has no {engine} setting here; the predicted "
                       "step time assumes it")
        if single_batch(r) and not single_batch_ok:
            out.append(f"{r.role}: overlap=single_batch (single-batch overlap) has no {engine} setting here; the "
                       "predicted step time assumes it")
        if spec.model.num_dense_layers and spec.model.moe and not dense_tp_ok:
            out.append(f"{r.role}: dense_tp={d.dense_tp} is not a {engine} setting; the engine picks the "
                       "dense-FFN sharding itself")
    if spec.mtp_tokens and not mtp_ok:
        out.append(f"MTP ({spec.mtp_tokens} speculative tokens) is not emitted for {engine}; add the engine's "
                   "speculative-decoding options for your release")
    return tuple(dict.fromkeys(out))


def local_devices_env(var: str, inst: Instance, devices_per_node: int) -> dict[str, str]:
    """Visible-device variable for an instance on a slice of a node (empty when it has the whole node)."""
    if inst.devices_per_node >= devices_per_node:
        return {}
    return {var: ",".join(str(i) for i in inst.local_devices)}


def moe_layer_ids(spec: LaunchSpec) -> range:
    """Model layer indices of the MoE layers (the dense layers come first: DeepSeek's first_k_dense_replace)."""
    return range(spec.model.num_dense_layers, spec.model.num_layers)


def placement_rows(engine: str, spec: LaunchSpec, role: RoleSpec) -> tuple[tuple[int, ...], ...]:
    """The role's expert placement, one slot map per MoE layer, each over experts + redundant slots; EmitError when
    the router counts do not cover every MoE layer of the model (they were measured on another model)."""
    moe = spec.model.moe
    if not role.placement or moe is None:
        return ()
    slots = moe.num_routed_experts + role.dims.redundant_experts
    if len(role.placement) != spec.model.num_moe_layers or any(len(r) != slots for r in role.placement):
        raise EmitError(engine, "workload.expert_load", f"{len(role.placement)} layers x "
                        f"{len(role.placement[0])} slots", f"router counts of all {spec.model.num_moe_layers} MoE "
                        f"layers, placed on {slots} slots (experts + redundant_experts)")
    return role.placement
