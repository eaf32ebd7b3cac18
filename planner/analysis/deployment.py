"""Evaluate a whole deployment: every pool costed as ``evaluate`` costs a plan, and the deployment's figures
(throughput, TTFT, effective TPOT, memory per pool, the request-rate match between the pools) from
:mod:`cost_models.metrics`, the one definition ``plan`` ranks by."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cost_models import metrics
from cost_models.kinds import DeploymentMode, PoolRole
from cost_models.memory import MemoryBreakdown
from cost_models.parallel import ParallelDims
from cost_models.serving import ServingResult
from planner.analysis import evaluate as single
from planner.analysis.evaluate import Evaluation
from planner.cpsat.deployment_instance import Deployment
from planner.inputs.deployment_text import DeploymentPlan, PoolPlan, deployment_text
from planner.inputs.scenario import Scenario


@dataclass(frozen=True, kw_only=True)
class PoolEvaluation:
    """One pool, costed (a :class:`cost_models.metrics.Pool`)."""

    pool: PoolPlan
    evaluation: Evaluation
    """The pool's plan (``dp`` = its replicas) on the scenario."""

    @property
    def role(self) -> PoolRole:
        return self.pool.role

    @property
    def result(self) -> ServingResult:
        return self.evaluation.result

    @property
    def dims(self) -> ParallelDims:
        """The plan of one replica (``dp == 1``)."""
        return self.pool.dims

    @property
    def pool_devices(self) -> int:
        return self.pool.devices

    @property
    def memory_used_bytes(self) -> float:
        """Per device, the busier phase the pool runs (:func:`cost_models.metrics.pool_used_bytes`)."""
        return metrics.pool_used_bytes(self.role, self.result)

    def over_capacity(self) -> tuple[str, MemoryBreakdown] | None:
        """The first phase this pool runs that does not fit its devices, or None."""
        phases = {PoolRole.PREFILL: ("prefill",), PoolRole.DECODE: ("decode",),
                  PoolRole.AGGREGATED: ("prefill", "decode")}[self.role]
        for ph in phases:
            m = getattr(self.result, ph).memory
            if m.free_bytes < 0:
                return ph, m
        return None


@dataclass(frozen=True, kw_only=True)
class DeploymentEvaluation:
    """A deployment of one scenario: its pools, costed, and the deployment's figures."""

    scenario: Scenario
    plan: DeploymentPlan
    pools: tuple[PoolEvaluation, ...]
    """In the plan's order: the aggregated pool, or the prefill pool then the decode pool."""

    @property
    def mode(self) -> DeploymentMode:
        return self.plan.mode

    @property
    def text(self) -> str:
        """The one-line deployment string (:func:`planner.inputs.deployment_text.deployment_text`)."""
        return deployment_text(self.plan)

    @property
    def prefill(self) -> PoolEvaluation:
        return self.pools[0]

    @property
    def decode(self) -> PoolEvaluation:
        return self.pools[-1]

    @property
    def devices(self) -> int:
        return metrics.deployment_devices(self.mode, self.prefill, self.decode)

    @property
    def output_tok_per_s(self) -> float:
        wl = self.scenario.workload
        return metrics.output_tok_per_s(self.mode, self.prefill, self.decode, input_tokens=wl.input_tokens,
                                        output_tokens=wl.output_tokens)

    @property
    def ttft_s(self) -> float:
        """The prefilling pool's time to first token."""
        return self.prefill.result.prefill.latency_s

    @property
    def tpot_s(self) -> float:
        """The effective TPOT a user sees (:func:`cost_models.metrics.effective_tpot_s`)."""
        return metrics.effective_tpot_s(self.mode, self.decode.result)

    @property
    def request_rates_per_s(self) -> tuple[float, float]:
        """(requests/s the prefilling pool takes in, requests/s the decoding pool serves)."""
        wl = self.scenario.workload
        return metrics.request_rates_per_s(self.mode, self.prefill, self.decode, input_tokens=wl.input_tokens,
                                           output_tokens=wl.output_tokens)

    @property
    def reasons(self) -> list[str]:
        """What binds, in words (:func:`planner.analysis.why.deployment_reasons`)."""
        from planner.analysis.why import deployment_reasons
        return deployment_reasons(self)

    @property
    def bottleneck(self) -> PoolRole:
        """The pool whose request rate sets the deployment's: the aggregated pool, or the slower of the two."""
        if self.mode is DeploymentMode.AGGREGATED:
            return PoolRole.AGGREGATED
        intake, service = self.request_rates_per_s
        return PoolRole.PREFILL if intake < service else PoolRole.DECODE


def evaluate_deployment(sc: Scenario, plan: DeploymentPlan, *, overlap_model: str = "schedule",
                        measure_imbalance: bool = True) -> DeploymentEvaluation:
    """Cost every pool of ``plan`` on ``sc`` (:func:`planner.analysis.evaluate.evaluate_scenario`, looked up on
    its module so there is one place to hook or replace it)."""
    pools = tuple(PoolEvaluation(pool=p, evaluation=single.evaluate_scenario(sc, p.pool_dims, overlap_model=overlap_model,
                                                                      measure_imbalance=measure_imbalance))
                  for p in plan.pools)
    return DeploymentEvaluation(scenario=sc, plan=plan, pools=pools)


def with_bands(dep: DeploymentEvaluation) -> DeploymentEvaluation:
    """Every pool with its figures' error bands (:func:`planner.analysis.error_bands.serving_bands`)."""
    from planner.analysis.error_bands import serving_bands
    pools = tuple(dataclasses.replace(p, evaluation=dataclasses.replace(
        p.evaluation, bands=serving_bands(p.evaluation.scenario, p.evaluation.dims))) for p in dep.pools)
    return dataclasses.replace(dep, pools=pools)


def with_pool_solver_results(dep: DeploymentEvaluation, *,
                             schedule_time_limit_s: float | None = None) -> DeploymentEvaluation:
    """Every pool with its solver results (:func:`planner.analysis.evaluate.with_solver_results`)."""
    pools = tuple(dataclasses.replace(p, evaluation=single.with_solver_results(
        p.evaluation, schedule_time_limit_s=schedule_time_limit_s)) for p in dep.pools)
    return dataclasses.replace(dep, pools=pools)


def as_solution(dep: DeploymentEvaluation) -> Deployment:
    """``dep`` in the shape of a search solution (what ``--emit`` builds launch lines from); its objective units
    are 0: it was evaluated, not solved."""
    pre = dep.prefill if dep.mode is DeploymentMode.DISAGGREGATED else None
    return Deployment(mode=dep.mode, prefill=pre, prefill_replicas=pre.pool.replicas if pre else 0,  # type: ignore[arg-type]
                      decode=dep.decode, decode_replicas=dep.decode.pool.replicas,  # type: ignore[arg-type]
                      devices_used=dep.devices, output_tok_per_s_units=0)


def plan_of(d: Deployment) -> DeploymentPlan:
    """A search solution's pools as a :class:`~planner.inputs.deployment_text.DeploymentPlan`."""
    if d.mode is DeploymentMode.AGGREGATED:
        return DeploymentPlan(pools=(PoolPlan(role=PoolRole.AGGREGATED, replicas=d.decode_replicas,
                                              dims=d.decode.dims),))  # type: ignore[attr-defined]
    assert d.prefill is not None
    return DeploymentPlan(pools=(PoolPlan(role=PoolRole.PREFILL, replicas=d.prefill_replicas,
                                          dims=d.prefill.dims),  # type: ignore[attr-defined]
                                 PoolPlan(role=PoolRole.DECODE, replicas=d.decode_replicas,
                                          dims=d.decode.dims)))  # type: ignore[attr-defined]


def _searched(sc: Scenario, dims: ParallelDims) -> Scenario:
    """``sc`` with the expert imbalance the search costed ``dims`` at: given router counts, the greedy
    placement's (:func:`planner.search.plan.run_plan`)."""
    if sc.expert_loads is None or sc.model.moe is None:
        return sc
    from planner.analysis.imbalance import layout_imbalance_greedy
    imb = layout_imbalance_greedy(sc.model, dims, sc.expert_loads, sc.cluster.devices_per_node)
    return dataclasses.replace(sc, workload=dataclasses.replace(sc.workload, expert_imbalance=imb))


def from_solution(sc: Scenario, d: Deployment) -> DeploymentEvaluation:
    """A search solution as a deployment evaluation, from the figures the search costed (no new costing); each
    pool's evaluation is of one replica (``dp == 1``), as the plan document lists its pools."""
    plan = plan_of(d)
    layouts = (d.decode,) if d.mode is DeploymentMode.AGGREGATED else (d.prefill, d.decode)
    pools = tuple(PoolEvaluation(pool=p, evaluation=Evaluation(scenario=_searched(sc, p.dims), dims=p.dims,
                                                               result=c.result))  # type: ignore[union-attr]
                  for p, c in zip(plan.pools, layouts, strict=True))
    return DeploymentEvaluation(scenario=sc, plan=plan, pools=pools)
