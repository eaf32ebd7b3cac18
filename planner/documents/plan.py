"""The ``plan`` document (schema ``moeplan.plan/2``): top-K deployments, Pareto front, rejections, chosen plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from cost_models import kinds, metrics
from planner.cpsat.deployment_instance import Deployment
from planner.documents.afd import AfdDocument, AfdLayoutDoc, afd_document, afd_layout_doc
from planner.documents.base import (
    Count,
    DeploymentMode,
    Document,
    Engine,
    NonNegative,
    Number,
    Objective,
    OverlapModel,
    PoolRole,
    Positive,
    RejectionKey,
    SolverStatus,
    field,
    optional,
    schema_id,
)
from planner.documents.evaluate import EvaluateDocument, deployment_evaluation_document
from planner.documents.launch import LaunchBlock
from planner.documents.limits import SolveLimits
from planner.documents.parts import ErrorBand, ParallelPlan, error_band, parallel_plan

if TYPE_CHECKING:
    from planner.analysis.afd import AfdEvaluation
    from planner.analysis.deployment import DeploymentEvaluation
    from planner.analysis.error_bands import DeploymentBands
    from planner.search.plan import PlanResult
    from planner.search.validate import Recost

PLAN_SCHEMA = "moeplan.plan/2"


class PlanScenario(Document):
    """The scenario the plan was searched for."""

    name: str = field("The scenario's `name:`.")
    path: str = field("The scenario file's path exactly as given on the command line (relative paths stay "
                      "relative); the bundled default scenario's path when none was given.")
    model: str = field("Model id.")
    device: str = field("Device catalog id.")
    devices: Positive = field("Devices in the cluster; a count.")
    input_tokens: Positive = field("Prompt length, tokens.")
    output_tokens: Positive = field("Answer length, tokens.")
    ttft_slo_s: NonNegative | None = field("TTFT target, seconds (null: none).")
    tpot_slo_s: NonNegative | None = field("TPOT target, seconds (null: none).")


class PlanPool(Document):
    """One pool of a deployment: replicas of one costed layout serving one role."""

    role: PoolRole = field("`aggregated` (prefill and decode on the same devices), `prefill` or `decode`.")
    plan: ParallelPlan | None = optional("Layout of one replica (dp = 1); absent for an AFD decode pool (see afd).")
    afd: AfdLayoutDoc | None = optional("An attention-FFN disaggregated decode pool's unit (attention and FFN "
                                        "instances, degrees, micro-batches); present only in mode `afd`.")
    devices_per_replica: Positive = field("Devices of one replica (unit x pp); a count.")
    replicas: Positive = field("Replicas of the layout; a count.")
    devices: Positive = field("devices_per_replica x replicas; a count.")
    prefill_tok_per_s_per_device: NonNegative = field("Input tokens per second per device when the layout serves "
                                                      "prefill.")
    decode_tok_per_s_per_device: NonNegative = field("Output tokens per second per device when the layout serves "
                                                     "decode.")
    ttft_s: NonNegative = field("Time to first token of the layout, seconds.")
    tpot_s: NonNegative = field("Time per output token of the layout at its decode batch, seconds.")
    decode_batch_per_device: NonNegative = field("Sequences per device the layout decodes per step (a count; fractional under "
                                                 "attention TP).")
    memory_used_bytes: NonNegative = field("Memory used per device in the busier phase the pool runs (a prefill "
                                           "pool only prefills, a decode pool only decodes), bytes.")
    static_bytes: NonNegative = field("Weights, buffers and runtime reserve per device, bytes.")


class PlanDeployment(Document):
    """One deployment the solver found, re-costed in floats (planner.search.validate.Recost)."""

    mode: DeploymentMode = field("`aggregated` (one pool serves both phases), `disaggregated` (separate prefill "
                                 "and decode pools) or `afd` (a prefill pool and an attention-FFN disaggregated "
                                 "decode pool).")
    deployment: str | None = optional("The deployment as one value (README 'Deployments'), e.g. `prefill: 1 x "
                                      "attn_dp=8,moe_ep=8; decode: 1 x attn_dp=8,moe_ep=8`: `evaluate --plan` "
                                      "accepts it back and, with this document's overlap_model, gives the same "
                                      "figures. Absent for an `afd` deployment (no deployment string for AFD yet).")
    pools: list[PlanPool] = field("One aggregated pool, or the prefill pool then the decode pool.", min_length=1,
                                  max_length=2)
    devices_used: Count = field("Devices the deployment occupies (at most the cluster's); a count.")
    output_tok_per_s: NonNegative = field("Delivered output tokens per second of the whole deployment "
                                          "(disaggregated: the decode rate, or what the prefill pool feeds it if "
                                          "less).")
    output_band: ErrorBand | None = optional("Error band of output_tok_per_s (and of its per-device and per-user "
                                             "rates): the aggregated regime, or the decode pool's decode regime.")
    output_tok_per_s_per_device: NonNegative = field("output_tok_per_s / devices_used, tokens per second per device.")
    user_tok_per_s: NonNegative = field("Output tokens per second one user sees: 1 / tpot_s (0 when tpot_s is 0).")
    ttft_s: NonNegative = field("Time to first token, seconds.")
    ttft_band: ErrorBand | None = optional("Error band of ttft_s (the prefilling pool's prefill regime).")
    tpot_s: NonNegative = field("Time per output token, seconds.")
    tpot_band: ErrorBand | None = optional("Error band of tpot_s (the decode pool's decode regime).")
    prefill_input_tok_per_s: NonNegative = field("Input tokens per second the prefill side can process.")
    decode_output_tok_per_s: NonNegative = field("Output tokens per second the decode side can produce.")
    solver_objective_units: Count = field("The delivered output rate as the solver scored it, in integer units of "
                                          "0.01 tok/s (planner.cpsat.quantize).")
    engines: list[Engine] = field("Serving engines whose capability tables (planner/catalog/engines.py) admit "
                                      "every pool of this deployment; with `plan --engine E`: [E].")


class PlanSolve(Document):
    """One CP-SAT deployment solve: the best, then each next best with the earlier (mode, layouts) combinations
    forbidden. A solve that found nothing ends the list (fewer deployments than --top). No wall time: the
    document stays byte-stable."""

    status: SolverStatus = field("CP-SAT status of this solve.")
    objective: Number = field(
        "Objective value in the model's integer units (planner.cpsat.deployment; Z = output rate in 0.01 tok/s): "
        "throughput: Z x (devices + 1) - devices_used (maximised); latency: TPOT in microseconds x (Zmax + 1) - Z; "
        "devices: devices_used x (Zmax + 1) - Z (minimised). 0 when no solution.")
    bound: Number = field("Best bound CP-SAT proved on the objective, same units.")
    gap: NonNegative = field("|bound - objective| / max(1, |objective|), a fraction (0 when proven optimal).")


class ParetoPoint(Document):
    """One decode layout on the Pareto front of throughput per device vs tokens per second per user."""

    plan: ParallelPlan | None = optional("The layout (one replica); absent for an AFD unit (see afd).")
    afd: AfdLayoutDoc | None = optional("The AFD unit, for a point of mode `afd`.")
    decode_tok_per_s_per_device: NonNegative = field("Output tokens per second per device.")
    user_tok_per_s: NonNegative = field("Output tokens per second per user (1 / tpot_s).")
    tpot_s: NonNegative = field("Time per output token, seconds.")


class PlanDocument(Document):
    """Output of `moeplan plan SCENARIO --json`: the top deployments CP-SAT found (pool split, replicas, delivered
    rates), the solver stats, the rejected-layout counts, the Pareto front and the chosen deployment's evaluate
    breakdown. Units are SI. Versioning: adding an optional key keeps the version; removing, renaming or changing
    the meaning of a key bumps it."""

    schema_id: Literal["moeplan.plan/2"] = schema_id(PLAN_SCHEMA)
    scenario: PlanScenario = field("The scenario planned.")
    objective: Objective = field("What the search optimised: `throughput` (output tok/s, then fewest devices), "
                                 "`latency` (TPOT, then throughput) or `devices` (fewest devices meeting "
                                 "workload.request_rate).")
    overlap_model: OverlapModel = field(
        "How two-batch overlap was costed: `closed-form` (max(compute, communication) plus the compute-unit share "
        "of communication, every layout) or `schedule` (the CP-SAT layer schedule for the prefill of every "
        "shortlisted two-batch layout, the closed form elsewhere).")
    top: list[PlanDeployment] = field("The best deployments, best first (at most --top).", min_length=1)
    solver: list[PlanSolve] = field("One entry per CP-SAT solve, in order.")
    quantization_ranking_preserved: bool = field("True when the float re-costing ranks the deployments as the "
                                                 "integer solver did.")
    rejected: dict[RejectionKey, Count] = field("Layouts rejected before the solve, counted by the constraint that "
                                                "rejected them (only constraints that rejected any appear; keys "
                                                "sorted).")
    layouts_considered: Count = field("Layouts enumerated and costed; a count.")
    pareto: list[ParetoPoint] = field("Pareto front of the decode-capable layouts.")
    chosen: Count = field("Index into `top` of the chosen deployment: the one exported, emitted and broken down "
                          "(0, the best, unless `--pick K` chose K - 1).")
    chosen_breakdown: EvaluateDocument | None = optional(
        "The evaluate document of the chosen deployment: its decode (or aggregated) pool, with the whole deployment "
        "(`deployment`) and a disaggregated deployment's prefill pool (`prefill_pool`); absent when the chosen "
        "decode pool is AFD (then chosen_afd).")
    chosen_afd: AfdDocument | None = optional(
        "The AFD evaluate document of the chosen deployment's AFD decode unit (mode `afd`), one replica at its "
        "searched batch; its memory holds KV for whole sequences (input + output tokens), as the search sized it.")
    modes: list[DeploymentMode] | None = optional("The deployment modes searched (plan --modes or the scenario's modes:; present when not the default, aggregated and disaggregated).")
    afd_layouts_considered: Count | None = optional("AFD units enumerated and costed (also in layouts_considered); "
                                                    "present when `afd` was searched.")
    why: list[str] | None = optional("Why the top deployments rank as they do, in words: the ranking key and which "
                                     "deployments tie on it (planner.analysis.why).")
    launch: LaunchBlock | None = optional("Present with `--emit ENGINE`, for the chosen deployment.")
    solve_limits: SolveLimits | None = optional("Present with `--time-limit`: which solves the limit stopped and "
                                                "whether the ranking may not be optimal.")


def _unit(c: Any) -> dict[str, Any]:
    """The ``plan`` (a search layout) or ``afd`` (an AFD unit) key of a pool or Pareto point."""
    from cost_models.afd import AfdLayout
    return {"afd": afd_layout_doc(c.dims)} if isinstance(c.dims, AfdLayout) else {"plan": parallel_plan(c.dims)}


def _pool(c: Any, replicas: int, role: str) -> PlanPool:
    """``c``: a costed layout (planner.search.layouts.Candidate or planner.search.afd.AfdCandidate)."""
    unit = _unit(c)
    return PlanPool(role=role, **unit, devices_per_replica=c.devices_per_replica,
                    replicas=replicas, devices=c.devices_per_replica * replicas, prefill_tok_per_s_per_device=c.prefill_tok_per_s_per_device,
                    decode_tok_per_s_per_device=c.decode_tok_per_s_per_device, ttft_s=c.ttft_s, tpot_s=c.tpot_s,
                    decode_batch_per_device=c.decode_batch_per_device,
                    memory_used_bytes=(c.memory_used_bytes if "afd" in unit else
                                       metrics.pool_used_bytes(kinds.PoolRole(role), c.result)),
                    static_bytes=c.static_bytes(kinds.PoolRole(role)))


def _deployment(d: Deployment, r: Recost, b: DeploymentBands | None, text: str | None,
                engines: list[str]) -> PlanDeployment:
    pools = ([_pool(d.decode, d.decode_replicas, "aggregated")] if d.mode == "aggregated" else
             [_pool(d.prefill, d.prefill_replicas, "prefill"), _pool(d.decode, d.decode_replicas, "decode")])
    return PlanDeployment(
        mode=d.mode, deployment=text, pools=pools, devices_used=r.devices_used, output_tok_per_s=r.output_tok_per_s,
        output_tok_per_s_per_device=r.output_tok_per_s_per_device,
        user_tok_per_s=1 / r.tpot_s if r.tpot_s else 0.0, ttft_s=r.ttft_s, tpot_s=r.tpot_s,
        prefill_input_tok_per_s=r.prefill_input_tok_per_s, decode_output_tok_per_s=r.decode_output_tok_per_s,
        solver_objective_units=d.output_tok_per_s_units, output_band=error_band(b and b.throughput),
        ttft_band=error_band(b and b.ttft), tpot_band=error_band(b and b.tpot), engines=engines)


REPORT_SCHEDULE_TIME_LIMIT_S = 0.1
"""Limit of the chosen plan's schedule solve in plan reports (an illustration: plan's figures use the closed
form; on the default scenario 0.1, 0.25, 0.5 and 1 s give the same schedule)."""


def plan_document(res: PlanResult, chosen: DeploymentEvaluation | AfdEvaluation, launch: LaunchBlock | None = None,
                  bands: list[DeploymentBands] | None = None, limits: SolveLimits | None = None, *, picked: int = 0,
                  texts: list[str | None] | None = None, why: list[str] | None = None) -> PlanDocument:
    """``chosen``: deployment ``picked`` of ``res.deployments`` with its pools' solver results
    (:func:`planner.analysis.deployment.with_pool_solver_results` at :data:`REPORT_SCHEDULE_TIME_LIMIT_S`), or its
    AFD decode unit (an :class:`planner.analysis.afd.AfdEvaluation`);
    ``launch``: the ``--emit`` block of the chosen deployment; ``bands``: each top deployment's error bands
    (:func:`planner.analysis.error_bands.deployment_bands`) and ``texts`` each one's deployment string, in
    ``res.deployments`` order; ``limits``: the ``--time-limit`` block (:func:`planner.documents.limits.solve_limits`);
    ``why``: the ranking in words (:func:`planner.analysis.why.tie_reasons`)."""
    sc = res.scenario
    scenario = PlanScenario(name=sc.name, path=sc.path, model=sc.model.id, device=sc.cluster.device.id,
                            devices=sc.cluster.num_devices, input_tokens=sc.workload.input_tokens,
                            output_tokens=sc.workload.output_tokens, ttft_slo_s=sc.workload.ttft_slo_s,
                            tpot_slo_s=sc.workload.tpot_slo_s)
    return PlanDocument(
        schema_id=PLAN_SCHEMA, scenario=scenario, objective=res.objective, overlap_model=res.overlap_model,
        top=[_deployment(d, r, b, t, e) for d, r, b, t, e in zip(res.deployments, res.recosts,
                                                                 bands or [None] * len(res.deployments),
                                                                 texts or [None] * len(res.deployments),
                                                                 res.engines, strict=True)],
        solver=[PlanSolve(status=s.status, objective=s.objective, bound=s.bound, gap=s.gap) for s in res.stats],
        quantization_ranking_preserved=res.ranking_preserved, rejected=dict(sorted(res.rejected.items())),
        layouts_considered=res.layouts_considered,
        pareto=[ParetoPoint(**_unit(c), decode_tok_per_s_per_device=c.decode_tok_per_s_per_device,
                            user_tok_per_s=c.user_tok_per_s, tpot_s=c.tpot_s) for c in res.pareto],
        chosen=picked, launch=launch, solve_limits=limits, why=why, **_chosen(chosen), **_searched(res))


def _chosen(chosen: DeploymentEvaluation | AfdEvaluation) -> dict[str, Any]:
    if hasattr(chosen, "layout"):  # an AfdEvaluation
        return {"chosen_afd": afd_document(chosen)}
    return {"chosen_breakdown": deployment_evaluation_document(chosen)}


def _searched(res: PlanResult) -> dict[str, Any]:
    """``modes`` when not the default (aggregated and disaggregated), ``afd_layouts_considered`` when AFD units were enumerated."""
    out: dict[str, Any] = {} if res.modes == kinds.DEFAULT_PLAN_MODES else {"modes": list(res.modes)}
    if res.afd_layouts_considered:
        out["afd_layouts_considered"] = res.afd_layouts_considered
    return out
