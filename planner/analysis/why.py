"""Why, in words: what binds a deployment (which pool, which constraint stopped the next-larger decode batch,
where the expert imbalance came from) and why the top deployments of a plan tie and what breaks the tie.

Sentences only from figures the evaluation already holds; the plan view, the evaluate view and the reports
print them (through the documents), so every output says the same thing."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from cost_models.kinds import DeploymentMode
from cost_models.serving import DecodeBatchLimit
from planner.analysis.deployment import DeploymentEvaluation
from planner.inputs.deployment_text import plan_text

if TYPE_CHECKING:
    from planner.search.validate import Recost

_GIB = 2**30


def deployment_reasons(dep: DeploymentEvaluation) -> list[str]:
    """The bottleneck pool, the decode batch's limit and the expert imbalance's origin, one sentence each."""
    out = [bottleneck_reason(dep), batch_reason(dep)]
    imbalance = imbalance_reason(dep)
    return out + ([imbalance] if imbalance else [])


def bottleneck_reason(dep: DeploymentEvaluation) -> str:
    """Which pool's request rate sets the deployment's."""
    intake, service = dep.request_rates_per_s
    if dep.mode is DeploymentMode.AGGREGATED:
        return (f"One pool prefills and decodes on the same devices: its cycle serves {intake:,.2f} requests/s "
                "(prefill and decode share every device, so neither phase is a separate bottleneck).")
    if intake < service:
        return (f"The prefill pool binds: it takes in {intake:,.2f} requests/s, the decode pool could serve "
                f"{service:,.2f} ({1 - intake / service:.0%} of the decode pool's capacity idles); more prefill "
                "devices would raise throughput.")
    return (f"The decode pool binds: the prefill pool takes in {intake:,.2f} requests/s, the decode pool serves "
            f"{service:,.2f} ({1 - service / intake:.0%} of the prefill pool's capacity idles); more decode devices "
            "would raise throughput.")


def batch_reason(dep: DeploymentEvaluation) -> str:
    """What stopped the next-larger decode batch of the pool that decodes."""
    r = dep.decode.result
    d = r.decode
    seqs = d.sequences_per_device
    head = f"Decode batch {seqs:,.1f} sequences per device"
    if r.decode_batch_limit is DecodeBatchLimit.WORKLOAD:
        return f"{head}: given by the scenario (workload batch / concurrency), not searched."
    if r.decode_batch_limit is DecodeBatchLimit.TPOT_SLO:
        slo = dep.scenario.workload.tpot_slo_s or 0.0
        stall = ""
        if dep.mode is DeploymentMode.AGGREGATED and dep.tpot_s > slo:
            stall = (f" The decode step meets the SLO, but a user of this aggregated pool sees an effective TPOT of "
                     f"{dep.tpot_s * 1e3:,.1f} ms: the pool also prefills other prompts between its decode steps.")
        return (f"{head}: the TPOT SLO stopped it (TPOT {d.latency_s * 1e3:,.1f} ms at this batch, SLO "
                f"{slo * 1e3:,.1f} ms; the next-larger batch per attention rank exceeds it), not memory "
                f"({max(0.0, d.memory.free_bytes) / _GIB:,.1f} GiB per device still free).{stall}")
    m = d.memory
    rank_seqs = seqs * dep.decode.dims.attn_tp  # the batch is chosen per attention rank
    per_seq = m.kv_cache_bytes / rank_seqs if rank_seqs > 0 else 0.0
    return (f"{head}: memory stopped it (one more sequence per attention rank adds {per_seq / _GIB:,.3f} GiB of KV "
            f"cache at full context per device, more than the {max(0.0, m.free_bytes) / _GIB:,.3f} GiB left of "
            f"{m.capacity_bytes / _GIB:,.1f} GiB); the TPOT SLO would allow more.")


def imbalance_reason(dep: DeploymentEvaluation) -> str | None:
    """Where the routed experts' max / mean load came from, and how to measure it when it was assumed."""
    sc = dep.decode.evaluation.scenario
    if sc.model.moe is None:
        return None
    imb = sc.workload.expert_imbalance
    if sc.expert_loads is not None:
        return (f"Expert imbalance {imb:.3f} (max / mean tokens per EP device): measured by placing the router "
                "counts of workload.expert_load on the decode pool's EP devices (evaluate: CP-SAT; plan's search: "
                "the greedy balancer).")
    plan = plan_text(dep.decode.dims)
    how = (f"measure it with `moeplan loads synth --out loads.csv` (or router counts logged by the engine) and "
           f"`moeplan place {shlex.quote(sc.path)} --plan {shlex.quote(plan)} --expert-load loads.csv`, then set "
           "workload.expert_load")
    if imb == 1.0:
        return (f"Expert imbalance assumed 1.00 (the default: perfect balance over the EP devices, the most "
                f"optimistic case; real routing is skewed): {how}.")
    return f"Expert imbalance {imb:.3f}, assumed (workload.expert_imbalance); {how}."


def tie_reasons(recosts: list[Recost], objective: str, *, input_tokens: int, output_tokens: int,
                rel_tol: float = 1e-6) -> list[str]:
    """Why deployments at the top of the list tie on the ranked figure, and what orders them."""
    if not recosts:
        return []
    key = {"throughput": "delivered output tok/s (in 0.01 tok/s units), then the fewest devices",
           "latency": "effective TPOT (in microseconds), then the highest delivered output tok/s",
           "devices": "the fewest devices that deliver workload.request_rate, then the highest output tok/s"}[objective]
    ignored = "TTFT and TPOT do" if objective != "latency" else "TTFT does"
    out = [f"Ranking key ({objective} objective): {key}; {ignored} not enter it, and deployments equal on the key "
           "keep the search's order."]
    fig = (lambda r: r.tpot_s) if objective == "latency" else (lambda r: r.output_tok_per_s)
    best = fig(recosts[0])
    tied = [i for i, r in enumerate(recosts) if abs(fig(r) - best) <= rel_tol * max(abs(best), 1e-12)]
    if len(tied) < 2:
        return out
    names = ", ".join(f"#{i + 1}" for i in tied)
    what = (f"TPOT {best * 1e3:,.2f} ms" if objective == "latency" else f"{best:,.0f} output tok/s")
    low_tpot = min(tied, key=lambda i: recosts[i].tpot_s)
    low_ttft = min(tied, key=lambda i: recosts[i].ttft_s)
    sides = {_binding(recosts[i], input_tokens, output_tokens) for i in tied}
    if objective == "latency":
        why = ("the pool that decodes runs at the same step time in each, so the TPOT is the same; the next key, "
               "delivered output tok/s, orders them")
    elif len(sides) == 1 and "aggregated" not in sides:
        why = (f"each is bound by its {sides.pop()} pool at the same rate, so the other pool's layout (which has "
               "spare capacity) does not change the figure")
    else:
        why = "their figures agree within the key's resolution"
    out.append(f"{names} tie at {what}: {why}. Among them #{low_tpot + 1} has the lowest TPOT "
               f"({recosts[low_tpot].tpot_s * 1e3:,.1f} ms) and #{low_ttft + 1} the lowest TTFT "
               f"({recosts[low_ttft].ttft_s * 1e3:,.0f} ms); `plan --pick K` exports and emits deployment K.")
    return out


def _binding(r: Recost, input_tokens: int, output_tokens: int) -> str:
    """``prefill`` or ``decode``: the side that sets a disaggregated deployment's rate (``aggregated`` when the
    two rates are the one cycle's)."""
    feed = r.prefill_input_tok_per_s * output_tokens / input_tokens
    if abs(feed - r.decode_output_tok_per_s) <= 1e-9 * max(feed, 1.0):
        return "aggregated"
    return "prefill" if feed < r.decode_output_tok_per_s else "decode"
