"""One definition per deployment metric (STYLE.md rule 12): static memory, throughput by mode, effective TPOT,
end-to-end latency and device counts. ``evaluate``, ``compare``, ``plan`` (its feasibility checks, its latency
objective and its re-costing), the emitters and the reports all compute these here.

Why in ``cost_models`` (pure functions over the serving results, no I/O): the CP-SAT deployment model sits below
``planner.analysis`` in the import order and needs the deployment mode and the effective TPOT as much as the
reports do; here every layer can import them.

Device counts are always qualified:

* *per replica*: one copy of the model, ``unit x pp`` devices (``ParallelDims.dp == 1``);
* *per pool*: every replica serving one role (the one pool of an aggregated deployment, or its prefill pool,
  or its decode pool);
* *per deployment*: every pool (``deployment_devices``), at most the cluster;
* *per cluster*: ``ClusterSpec.num_devices``.

Modes:

* **aggregated**: one pool runs prefill and decode on the same devices. Its output rate is the cycle rate per
  device (:func:`cost_models.serving.evaluate`: a device's batch is prefilled, then decoded) times the pool's
  devices; a user's tokens also wait while the device prefills other prompts, so the TPOT a user sees is the
  whole cycle over the user's output tokens (``1 / aggregated_user_tok_per_s``).
* **disaggregated**: a prefill pool feeds a decode pool. Its output rate is the decode pool's, or what the
  prefill pool feeds it if that is less (``prefill input tok/s x output / input``); its TPOT is the decode
  step's (per accepted token).

End-to-end latency of one request is ``TTFT + output tokens x effective TPOT``.
"""

from __future__ import annotations

import math
from typing import Protocol

from cost_models.kinds import DeploymentMode, PoolRole
from cost_models.memory import MemoryBreakdown
from cost_models.serving import ServingResult

__all__ = ["DeploymentMode", "Pool", "PoolRole"]


class Pool(Protocol):
    """A costed layout serving one role, over all its replicas."""

    @property
    def result(self) -> ServingResult: ...

    @property
    def pool_devices(self) -> int: ...


# ---- primitives on rates (what the search's candidates carry) -------------------------------------------------

def aggregated_output_tok_per_s(cycle_tok_per_s_per_device: float, pool_devices: int) -> float:
    """Output tokens per second of an aggregated pool: the per-device cycle rate x the pool's devices."""
    return cycle_tok_per_s_per_device * pool_devices


def disaggregated_output_tok_per_s(prefill_input_tok_per_s: float, decode_output_tok_per_s: float, *,
                                   input_tokens: int, output_tokens: int) -> float:
    """Output tokens per second of a prefill pool feeding a decode pool: the decode pool's rate, or what the
    prefill pool's input rate feeds it (``input / output`` prompt tokens per output token), whichever is less."""
    return min(decode_output_tok_per_s, prefill_input_tok_per_s * output_tokens / input_tokens)


def aggregated_tpot_s(aggregated_user_tok_per_s: float) -> float:
    """TPOT a user of an aggregated pool sees: the whole cycle (its prefills included) over the user's output
    tokens, ``1 / user rate`` (infinite when nothing is decoded)."""
    return 1.0 / aggregated_user_tok_per_s if aggregated_user_tok_per_s > 0 else math.inf


def effective_tpot_s(mode: DeploymentMode, decode: ServingResult) -> float:
    """The TPOT a user sees from the pool that decodes: the aggregated cycle's, or the decode step's."""
    if mode is DeploymentMode.AGGREGATED:
        return aggregated_tpot_s(decode.aggregated_user_tok_per_s)
    return decode.decode.latency_s


def end_to_end_s(ttft_s: float, tpot_s: float, output_tokens: int) -> float:
    """One request's latency: ``TTFT + output tokens x effective TPOT``."""
    return ttft_s + output_tokens * tpot_s


# ---- deployment metrics over pools ----------------------------------------------------------------------------

def deployment_devices(mode: DeploymentMode, prefill: Pool, decode: Pool) -> int:
    """Devices of the whole deployment (for aggregated, ``prefill`` and ``decode`` are the same pool)."""
    if mode is DeploymentMode.AGGREGATED:
        return decode.pool_devices
    return prefill.pool_devices + decode.pool_devices


def role_memories(role: PoolRole, result: ServingResult) -> tuple[MemoryBreakdown, ...]:
    """The per-device memory of every phase a pool in ``role`` runs (both, for an aggregated pool)."""
    if role is PoolRole.PREFILL:
        return (result.prefill.memory,)
    if role is PoolRole.DECODE:
        return (result.decode.memory,)
    return (result.prefill.memory, result.decode.memory)


def pool_static_bytes(role: PoolRole, result: ServingResult) -> float:
    """Static memory per device of a pool: the most any phase it runs needs of weights + communication buffers
    + runtime reserve (what does not grow with the batch)."""
    return max(m.static_bytes for m in role_memories(role, result))


def pool_used_bytes(role: PoolRole, result: ServingResult) -> float:
    """Memory used per device of a pool: the most any phase it runs needs (static + KV cache + activations)."""
    return max(m.used_bytes for m in role_memories(role, result))


def busiest_phase_memories(mode: DeploymentMode, prefill: Pool, decode: Pool) -> tuple[MemoryBreakdown, ...]:
    """The per-device memory of every phase every pool runs: both phases of an aggregated pool; the prefill
    pool's prefill and the decode pool's decode."""
    if mode is DeploymentMode.AGGREGATED:
        return role_memories(PoolRole.AGGREGATED, decode.result)
    return role_memories(PoolRole.PREFILL, prefill.result) + role_memories(PoolRole.DECODE, decode.result)


def static_bytes_per_device(mode: DeploymentMode, prefill: Pool, decode: Pool) -> float:
    """Memory per device that does not grow with the batch (weights + communication buffers + runtime reserve),
    the most any phase of any pool needs."""
    return max(m.static_bytes for m in busiest_phase_memories(mode, prefill, decode))


def weight_bytes_per_device(mode: DeploymentMode, prefill: Pool, decode: Pool) -> float:
    """Weight bytes on the busiest device of any pool."""
    return max(m.weight_bytes for m in busiest_phase_memories(mode, prefill, decode))


def output_tok_per_s(mode: DeploymentMode, prefill: Pool, decode: Pool, *, input_tokens: int,
                     output_tokens: int) -> float:
    """Output tokens per second of the whole deployment."""
    if mode is DeploymentMode.AGGREGATED:
        return aggregated_output_tok_per_s(decode.result.aggregated_output_tok_per_s_per_device, decode.pool_devices)
    pre = prefill.result.prefill.throughput_tok_per_s_per_device * prefill.pool_devices
    dec = decode.result.decode.throughput_tok_per_s_per_device * decode.pool_devices
    return disaggregated_output_tok_per_s(pre, dec, input_tokens=input_tokens, output_tokens=output_tokens)


def request_rates_per_s(mode: DeploymentMode, prefill: Pool, decode: Pool, *, input_tokens: int,
                        output_tokens: int) -> tuple[float, float]:
    """Requests per second the prefilling side takes in (its input tok/s / prompt tokens) and the decoding side
    serves (its output tok/s / answer tokens); the smaller binds the deployment. An aggregated pool's cycle does
    both at one rate."""
    if mode is DeploymentMode.AGGREGATED:
        rate = output_tok_per_s(mode, prefill, decode, input_tokens=input_tokens,
                                output_tokens=output_tokens) / output_tokens
        return rate, rate
    pre = prefill.result.prefill.throughput_tok_per_s_per_device * prefill.pool_devices
    dec = decode.result.decode.throughput_tok_per_s_per_device * decode.pool_devices
    return pre / input_tokens, dec / output_tokens


def output_tok_per_s_per_device(mode: DeploymentMode, prefill: Pool, decode: Pool, *, input_tokens: int,
                                output_tokens: int) -> float:
    """Output tokens per second per device of the deployment (all its pools' devices)."""
    total = output_tok_per_s(mode, prefill, decode, input_tokens=input_tokens, output_tokens=output_tokens)
    return total / deployment_devices(mode, prefill, decode)


def deployment_end_to_end_s(mode: DeploymentMode, prefill: Pool, decode: Pool, output_tokens: int) -> float:
    """One request's latency through the deployment: the prefill pool's TTFT + output x effective TPOT."""
    return end_to_end_s(prefill.result.prefill.latency_s, effective_tpot_s(mode, decode.result), output_tokens)
