"""Re-cost solver output in floats, without the solver, and check the quantization did not change the ranking.

Also the brute-force reference the tests compare CP-SAT against: for small instances every (mode, layouts,
replica counts) combination is enumerated with the same float cost model.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_models import metrics
from cost_models.kinds import DeploymentMode
from planner.cpsat.deployment_instance import Deployment, DeploymentInstance
from planner.cpsat.quantize import max_rounding_error_tok_per_s
from planner.search.layouts import Candidate


@dataclass(frozen=True, kw_only=True)
class Recost:
    """A deployment's delivered figures in floats."""

    output_tok_per_s: float
    output_tok_per_s_per_device: float
    prefill_input_tok_per_s: float
    decode_output_tok_per_s: float
    devices_used: int
    tpot_s: float
    """Effective TPOT (:func:`cost_models.metrics.effective_tpot_s`)."""
    ttft_s: float


def recost(d: Deployment, inst: DeploymentInstance) -> Recost:
    """A deployment's figures in floats, by the definitions of :mod:`cost_models.metrics`: output rate by mode,
    the effective TPOT a user sees."""
    dec = d.decode
    if d.mode is DeploymentMode.AGGREGATED:
        out = metrics.aggregated_output_tok_per_s(dec.aggregated_tok_per_s_per_device,
                                                  d.decode_replicas * dec.devices_per_replica)
        pre = out * inst.input_tokens / inst.output_tokens
        dec_rate = out
        ttft, tpot = dec.ttft_s, dec.aggregated_tpot_s
    else:
        assert d.prefill is not None
        pre = d.prefill_replicas * d.prefill.devices_per_replica * d.prefill.prefill_tok_per_s_per_device
        dec_rate = d.decode_replicas * dec.devices_per_replica * dec.decode_tok_per_s_per_device
        out = metrics.disaggregated_output_tok_per_s(pre, dec_rate, input_tokens=inst.input_tokens,
                                                     output_tokens=inst.output_tokens)
        ttft, tpot = d.prefill.ttft_s, dec.tpot_s
    used = d.devices_used
    return Recost(output_tok_per_s=out, output_tok_per_s_per_device=out / used if used else 0.0, prefill_input_tok_per_s=pre,
                  decode_output_tok_per_s=dec_rate, devices_used=used, tpot_s=tpot, ttft_s=ttft)


def ranking_preserved(found: list[Deployment], inst: DeploymentInstance) -> bool:
    """True when the float totals of the solver's top-K are in the same order as its integer objectives,
    up to the quantization's worst-case rounding (throughput objective)."""
    tol = max_rounding_error_tok_per_s(inst.cluster_devices) * 2
    totals = [recost(d, inst).output_tok_per_s for d in found]
    return all(a + tol >= b for a, b in zip(totals, totals[1:], strict=False))


def brute_force_best(inst: DeploymentInstance) -> tuple[float, list[tuple[str, Candidate | None, Candidate, int, int]]]:
    """Enumerate every mode, layout pair and replica split; return the best float output rate and the
    deployments that reach it (throughput objective)."""
    n = inst.cluster_devices
    best = 0.0
    arg: list[tuple[str, Candidate | None, Candidate, int, int]] = []
    cands = inst.candidates

    def consider(val: float, item: tuple[str, Candidate | None, Candidate, int, int]) -> None:
        nonlocal best, arg
        if val > best * (1 + 1e-9):
            best, arg = val, [item]
        elif val >= best * (1 - 1e-9) and val > 0:
            arg.append(item)

    if inst.allow_aggregated:
        for c in cands:
            if c.aggregated_ok and c.devices_per_replica <= n:
                r = n // c.devices_per_replica
                consider(r * c.devices_per_replica * c.aggregated_tok_per_s_per_device, ("aggregated", None, c, 0, r))
    if inst.allow_disaggregated:
        pres = [c for c in cands if c.prefill_ok and c.devices_per_replica < n]
        decs = [c for c in cands if c.decode_ok and c.devices_per_replica < n]
        for p in pres:
            for x in range(1, n // p.devices_per_replica + 1):
                left = n - x * p.devices_per_replica
                feed = x * p.devices_per_replica * p.prefill_tok_per_s_per_device * inst.output_tokens / inst.input_tokens
                for d in decs:
                    y = left // d.devices_per_replica
                    if y >= 1:
                        consider(min(y * d.devices_per_replica * d.decode_tok_per_s_per_device, feed), ("disaggregated", p, d, x, y))
    return best, arg


def brute_force_top_k(inst: DeploymentInstance, k: int) -> list[float]:
    """Best float output rate of each distinct (mode, layouts) combination, best first, K of them
    (throughput objective): the reference the CP-SAT top K is checked against."""
    n = inst.cluster_devices
    values: list[float] = []
    if inst.allow_aggregated:
        for c in inst.candidates:
            if c.aggregated_ok and c.devices_per_replica <= n:
                values.append((n // c.devices_per_replica) * c.devices_per_replica * c.aggregated_tok_per_s_per_device)
    if inst.allow_disaggregated:
        pres = [c for c in inst.candidates if c.prefill_ok and c.devices_per_replica < n]
        decs = [c for c in inst.candidates if c.decode_ok and c.devices_per_replica < n]
        for p in pres:
            for d in decs:
                best = 0.0
                for x in range(1, n // p.devices_per_replica + 1):
                    y = (n - x * p.devices_per_replica) // d.devices_per_replica
                    if y < 1:
                        break
                    feed = x * p.devices_per_replica * p.prefill_tok_per_s_per_device * inst.output_tokens / inst.input_tokens
                    best = max(best, min(y * d.devices_per_replica * d.decode_tok_per_s_per_device, feed))
                if best > 0:
                    values.append(best)
    return sorted(values, reverse=True)[:k]
