"""The deployment part of evaluate and plan documents: the pools, their rates and the rate match between them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.documents.base import DeploymentMode, Document, NonNegative, PoolRole, Positive, field
from planner.documents.parts import ParallelPlan, parallel_plan

if TYPE_CHECKING:
    from planner.analysis.deployment import DeploymentEvaluation, PoolEvaluation


class DeploymentPoolDoc(Document):
    """One pool of the deployment: replicas of one replica's plan serving one role."""

    role: PoolRole = field("`aggregated`, `prefill` or `decode`.")
    replicas: Positive = field("Replicas of the plan; a count.")
    plan: ParallelPlan = field("Plan of one replica (dp = 1).")
    devices: Positive = field("Devices of the pool: replicas x attn_tp x attn_dp x pp; a count.")
    input_tok_per_s: NonNegative = field("Prompt tokens per second the pool prefills (0 for a decode pool; an "
                                         "aggregated pool: its delivered rate x input / output tokens).")
    output_tok_per_s: NonNegative = field("Output tokens per second the pool decodes (0 for a prefill pool).")
    requests_per_s: NonNegative = field("Requests per second the pool handles: a prefill pool's intake "
                                        "(input_tok_per_s / prompt tokens), a decode or aggregated pool's "
                                        "service (output_tok_per_s / answer tokens).")
    memory_used_bytes: NonNegative = field("Memory used per device in the busier phase the pool runs, bytes.")
    capacity_bytes: NonNegative = field("Device memory capacity, bytes.")


class DeploymentDoc(Document):
    """A whole deployment (planner.analysis.deployment.DeploymentEvaluation): the string that names it, its
    pools, and its figures by the definitions of cost_models.metrics (the ones `plan` ranks by)."""

    text: str = field("The deployment as one value, e.g. `prefill: 1 x attn_dp=8,moe_ep=8; decode: 1 x "
                      "attn_dp=8,moe_ep=8`; `--plan` accepts it back (README 'Deployments').")
    mode: DeploymentMode = field("`aggregated` or `disaggregated`.")
    devices: Positive = field("Devices of every pool; a count.")
    output_tok_per_s: NonNegative = field("Delivered output tokens per second of the whole deployment "
                                          "(disaggregated: the decode pool's rate, or what the prefill pool "
                                          "feeds it if less).")
    output_tok_per_s_per_device: NonNegative = field("output_tok_per_s / devices, tokens per second per device.")
    ttft_s: NonNegative = field("Time to first token: the prefilling pool's prefill latency, seconds.")
    tpot_s: NonNegative = field("Effective time per output token a user sees, seconds (aggregated: the cycle "
                                "over the user's tokens, prefill stalls included; disaggregated: the decode step).")
    prefill_requests_per_s: NonNegative = field("Requests per second the prefilling side takes in.")
    decode_requests_per_s: NonNegative = field("Requests per second the decoding side serves.")
    bottleneck: PoolRole = field("The pool whose request rate sets the deployment's: `prefill` or `decode` "
                                 "(the smaller of the two rates), `aggregated` for one pool.")
    pools: list[DeploymentPoolDoc] = field("The aggregated pool, or the prefill pool then the decode pool.",
                                           min_length=1, max_length=2)
    why: list[str] = field("What binds, in words (planner.analysis.why): the bottleneck pool and the rates, what "
                           "stopped the next-larger decode batch, where the expert imbalance came from.")


def _pool(p: PoolEvaluation, dep: DeploymentEvaluation) -> DeploymentPoolDoc:
    wl = dep.scenario.workload
    role = p.role.value
    if role == "aggregated":
        out = dep.output_tok_per_s
        inp, req = out * wl.input_tokens / wl.output_tokens, out / wl.output_tokens
    elif role == "prefill":
        inp, out = p.result.prefill.throughput_tok_per_s_per_device * p.pool_devices, 0.0
        req = inp / wl.input_tokens
    else:
        inp, out = 0.0, p.result.decode.throughput_tok_per_s_per_device * p.pool_devices
        req = out / wl.output_tokens
    return DeploymentPoolDoc(role=role, replicas=p.pool.replicas, plan=parallel_plan(p.pool.dims),
                             devices=p.pool_devices, input_tok_per_s=inp, output_tok_per_s=out, requests_per_s=req,
                             memory_used_bytes=p.memory_used_bytes,
                             capacity_bytes=p.result.decode.memory.capacity_bytes)


def deployment_document(dep: DeploymentEvaluation) -> DeploymentDoc:
    """The deployment part of a document (:class:`DeploymentDoc`)."""
    intake, service = dep.request_rates_per_s
    out = dep.output_tok_per_s
    return DeploymentDoc(text=dep.text, mode=dep.mode.value, devices=dep.devices, output_tok_per_s=out,
                         output_tok_per_s_per_device=out / dep.devices, ttft_s=dep.ttft_s, tpot_s=dep.tpot_s,
                         prefill_requests_per_s=intake, decode_requests_per_s=service,
                         bottleneck=dep.bottleneck.value, pools=[_pool(p, dep) for p in dep.pools],
                         why=dep.reasons)
