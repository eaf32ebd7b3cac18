"""`moeplan plan`: search every layout, let CP-SAT split the cluster into pools, re-cost and rank the result."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cost_models.ops import OpCost
from cost_models.parallel import OverlapPolicy, ParallelDims
from cost_models.specs import ServingWorkload
from cost_models.step import closed_form_overlap_s
from planner.catalog.engines import EngineCapability, workload_refusal
from planner.cpsat import budget
from planner.cpsat.deployment_instance import Deployment, DeploymentInstance
from planner.cpsat.stats import SolveStats
from planner.inputs.scenario import Scenario
from planner.search import afd as afd_search
from planner.search import engines as eng
from planner.search import helper, validate
from planner.search.deployment_exact import rank, solve_deployments
from planner.search.layouts import (
    Candidate,
    SearchSpace,
    cost_layout,
    layout_workload,
    pareto_front,
    search_space,
    two_batch_family,
)


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    scenario: Scenario
    objective: str
    overlap_model: str
    """``closed-form`` or ``schedule`` (:data:`OVERLAP_MODELS`)."""
    deployments: list[Deployment]
    recosts: list[validate.Recost]
    stats: list[SolveStats]
    rejected: Counter[str]
    layouts_considered: int
    candidates: list[Candidate]
    pareto: list[Candidate]
    ranking_preserved: bool
    instance: DeploymentInstance
    modes: tuple[str, ...] = afd_search.DEFAULT_MODES
    """The deployment modes searched (:data:`planner.search.afd.MODES`; default :data:`~planner.search.afd.DEFAULT_MODES`)."""
    afd_layouts_considered: int = 0
    """AFD units enumerated and costed (also counted in ``layouts_considered``)."""
    engine: EngineCapability | None = None
    """The engine the search was restricted to (``plan --engine``), or None."""
    engines: list[list[str]] = dataclasses.field(default_factory=list)
    """Per deployment (in ``deployments`` order): the engines whose capability tables admit every pool."""


class NoFeasiblePlan(Exception):
    """Valid input, but no layout meets the constraints; carries what failed and what would fix it."""

    def __init__(self, constraint: str, detail: str, fixes: list[str]) -> None:
        self.constraint, self.detail, self.fixes = constraint, detail, fixes
        super().__init__(f"{constraint}: {detail}")


OVERLAP_MODELS = ("closed-form", "schedule")
"""How ``plan`` costs two-batch overlap: the closed form for every layout, or (slower) the closed form for the
search and the CP-SAT layer schedule for the prefill of every shortlisted two-batch layout before the
deployment solve (:func:`schedule_prefill_overlap`)."""


def schedule_prefill_overlap(micro_batch_ops: tuple[OpCost, ...], micro_batches: int,
                             comm_sm_fraction: float) -> float:
    """Overlap model: the CP-SAT schedule where communication kernels occupy compute units (prefill's normal
    all-to-all), the closed form ``max(compute, communication)`` where they occupy none (decode's low-latency
    kernels). The two agree within 0.1 % on decode (measured on the shortlists of the 16 x H200 and 96 x H800
    scenarios) and differ by 7-11 % on prefill, and decode's batch search would need a schedule per batch
    size tried."""
    if comm_sm_fraction == 0.0:
        return closed_form_overlap_s(micro_batch_ops, micro_batches, comm_sm_fraction)
    from planner.cpsat.schedule import overlapped_layer_time
    return overlapped_layer_time(micro_batch_ops, micro_batches, comm_sm_fraction)


def run_plan(sc: Scenario, *, objective: str = "throughput", top_k: int = 5, seed: int = 0,
             progress: Callable[[int, int], None] | None = None, overlap_model: str = "closed-form",
             engine: EngineCapability | None = None, modes: tuple[str, ...] = afd_search.DEFAULT_MODES) -> PlanResult:
    """Search, shortlist, (optionally) re-cost the shortlist's overlap with the schedule, solve, re-cost.
    ``engine``: only layouts that engine launches, each costed with the engine's memory reserve (without one:
    the workload's own reserve, planner/search/engines.py); ``modes``: the deployment modes searched (AFD units
    join the shortlist as decode pools; no engine in planner/catalog/engines.py launches AFD, so ``engine``
    leaves it out)."""
    imbalance_of = None
    if sc.expert_loads is not None:
        from planner.analysis.imbalance import layout_imbalance_greedy
        imbalance_of = lambda d: layout_imbalance_greedy(sc.model, d, sc.expert_loads,  # noqa: E731
                                                         sc.cluster.devices_per_node)
    refusals: Counter[str] = Counter()
    refusal = None
    if engine is not None:
        why = workload_refusal(engine, sc.workload.kv_precision.label)
        if why is not None:
            raise NoFeasiblePlan(eng.ENGINE_REJECTION, f"{engine.engine} {engine.version} cannot serve this "
                                 f"workload: {why}", ["another kv_precision", "another --engine"])
        refuse = eng.refusal_of(engine, sc.model, sc.cluster, sc.workload)

        def refusal(d: ParallelDims) -> str | None:
            why = refuse(d)
            if why is not None:
                refusals[why] += 1
            return why

    def engine_wl(d: ParallelDims, w: ServingWorkload) -> ServingWorkload:
        return eng.engine_workload(engine, sc.cluster, w, d)
    space = search_space(sc.model, sc.cluster, sc.workload, progress=progress, imbalance_of=imbalance_of,
                         refusal=refusal, workload_of=engine_wl, use_helper=True)
    if engine is not None:
        space = _within_dispatch_cap(engine, space, sc.workload)
        if not space.candidates:
            raise _engine_infeasible(engine, refusals)
    wl = sc.workload
    required = None
    if objective == "devices":
        if wl.request_rate_per_s is None:
            raise ValueError("workload.request_rate")
        required = wl.request_rate_per_s * wl.output_tokens
    shortlist = prune_dominated(space.candidates, top_k)
    if overlap_model == "schedule":
        # decode is costed as before (closed form at f = 0), so its batch is the hint: two probes, not a search
        def scheduled(c: Candidate) -> Candidate:
            return cost_layout(sc.model, sc.cluster, c.dims, layout_workload(wl, c.dims, imbalance_of, engine_wl),
                               schedule_prefill_overlap,
                               decode_hint_rank=round(c.decode_batch_per_device * c.dims.attn_tp))
        two_batch = [c for c in shortlist if c.dims.overlap is OverlapPolicy.TWO_BATCH]
        if budget.current().wall_s is None:
            # every layer schedule is a deterministic single-worker solve, so half of them can run in the helper
            # process (a family in one process: a schedule two of its layouts share is solved once)
            recosted = helper.split_map(scheduled, two_batch, key=lambda c: two_batch_family(c.dims))
        else:  # a --time-limit is one wall budget (and one record of stopped solves) for all solves
            recosted = [scheduled(c) for c in two_batch]
        by_id = {id(c): r for c, r in zip(two_batch, recosted, strict=True)}
        shortlist = [by_id.get(id(c), c) for c in shortlist]
    elif overlap_model != "closed-form":
        raise ValueError(f"overlap_model: got {overlap_model!r}; accepted: {OVERLAP_MODELS}")
    afd = (afd_search.search_afd(sc.model, sc.cluster, wl) if "afd" in modes and engine is None else afd_search.AfdSpace([], Counter(), 0))
    if "disaggregated" not in modes:  # the search's layouts still prefill for AFD decode pools
        shortlist = [dataclasses.replace(c, decode_ok=False) for c in shortlist]
    inst = DeploymentInstance(candidates=(*shortlist, *prune_dominated(afd.candidates, top_k)),
                              cluster_devices=sc.cluster.num_devices,
                              input_tokens=wl.input_tokens, output_tokens=wl.output_tokens, objective=objective,
                              required_output_tok_per_s=required, allow_aggregated="aggregated" in modes,
                              allow_disaggregated=("disaggregated" in modes or "afd" in modes)
                              and (engine is None or engine.disaggregation))
    found, stats = solve_deployments(inst, k=top_k, seed=seed)
    found = rank(inst, found)  # sorted and re-costed even when a solve stopped early: the first is the best listed
    if not found and stats and stats[-1].status == "UNKNOWN":  # stopped by a limit, not proven infeasible
        raise NoFeasiblePlan("time_limit", f"the deployment solve found no deployment of {len(shortlist)} "
                             "shortlisted layouts before its time limit (status UNKNOWN)",
                             ["a larger --time-limit, or none (each solve then stops at its deterministic work "
                              "limit)"])
    if not found:
        if engine is not None and not any(c.prefill_ok or c.decode_ok for c in space.candidates):
            raise _engine_infeasible(engine, refusals, _explain_infeasible(sc, space.candidates, space.rejected,
                                                                          objective, required))
        if modes == ("afd",):
            raise NoFeasiblePlan(*afd_search.infeasible_reason(afd, wl, sc.cluster))
        raise _explain_infeasible(sc, space.candidates, space.rejected, objective, required)
    found = [afd_search.as_afd(d) for d in found]
    recosts = [validate.recost(d, inst) for d in found]
    return PlanResult(scenario=sc, objective=objective, overlap_model=overlap_model, deployments=found,
                      recosts=recosts, stats=stats, rejected=space.rejected + afd.rejected,
                      layouts_considered=space.layouts_considered + afd.layouts_considered,
                      candidates=space.candidates, pareto=pareto_front([*(space.candidates if modes != ("afd",) else ()),
                                                                             *afd.candidates]),
                      ranking_preserved=validate.ranking_preserved(found, inst), instance=inst, modes=modes,
                      afd_layouts_considered=afd.layouts_considered, engine=engine,
                      engines=[[] if d.mode == "afd" else _engines_of(sc, d) if engine is None else [engine.engine]
                               for d in found])


def _engines_of(sc: Scenario, d: Deployment) -> list[str]:
    pools = [d.decode.dims] + ([d.prefill.dims] if d.prefill is not None else [])
    return eng.engines_for(sc.model, sc.cluster, sc.workload, pools, d.prefill is not None)


def _within_dispatch_cap(engine: EngineCapability, space: SearchSpace, wl: ServingWorkload) -> SearchSpace:
    """Decode / aggregated roles whose planned tokens per DP rank exceed DeepEP low-latency's dispatch cap are
    dropped (a layout that then serves no role counts under ``engine``)."""
    mtp = wl.mtp_tokens if engine.mtp else 0
    kept: list[Candidate] = []
    rejected = Counter(space.rejected)
    for c in space.candidates:
        if eng.over_dispatch_cap(engine, c.dims, c.decode_batch_per_device, mtp):
            c = dataclasses.replace(c, decode_ok=False, aggregated_ok=False, decode_tok_per_s_per_device=0.0,
                                    aggregated_tok_per_s_per_device=0.0)
            if not c.prefill_ok:
                rejected[eng.ENGINE_REJECTION] += 1
                continue
        kept.append(c)
    return SearchSpace(candidates=kept, rejected=rejected, layouts_considered=space.layouts_considered)


def _engine_infeasible(engine: EngineCapability, refusals: Counter[str],
                       inner: NoFeasiblePlan | None = None) -> NoFeasiblePlan:
    """No layout the engine launches fits: the engine's reasons, most frequent first, then the binding constraint
    among the layouts it can launch."""
    why = "; ".join(f"{n} x {r}" for r, n in refusals.most_common(4))
    detail = f"no layout {engine.engine} {engine.version} can launch fits"
    if why:
        detail += f" (refused layouts: {why})"
    if inner is not None:
        detail += f"; among the layouts it can launch, {inner.constraint}: {inner.detail}"
    fixes = (inner.fixes if inner is not None else []) + ["another --engine (plan without --engine lists which "
                                                          "engines can run each deployment)"]
    return NoFeasiblePlan(eng.ENGINE_REJECTION, detail, fixes)


def prune_dominated(cands: list[Candidate], k: int) -> list[Candidate]:
    """Keep, per role and device count, the K layouts with the highest rate and the K with the lowest TPOT.

    Exact for the top-K objective values: a deployment's value only grows with its layouts' per-device rates
    at a fixed device count, so a layout outside the K best of its (role, devices) group is matched or beaten by
    K others in every combination it could join (tests/test_plan.py checks against the unpruned space)."""
    keep: dict[int, Candidate] = {}
    # the TPOT each role is ranked by in the latency objective (aggregated: the effective TPOT users see)
    roles = (("prefill_ok", "prefill_tok_per_s_per_device", "tpot_s"),
             ("decode_ok", "decode_tok_per_s_per_device", "tpot_s"),
             ("aggregated_ok", "aggregated_tok_per_s_per_device", "aggregated_tpot_s"))
    for ok, rate, tpot in roles:
        groups: dict[int, list[Candidate]] = {}
        for c in cands:
            if getattr(c, ok):
                groups.setdefault(c.devices_per_replica, []).append(c)
        for group in groups.values():
            for c in sorted(group, key=lambda c: -getattr(c, rate))[:k]:
                keep[id(c)] = c
            for c in sorted(group, key=lambda c: getattr(c, tpot))[:k]:
                keep[id(c)] = c
    return [c for c in cands if id(c) in keep]


def _explain_infeasible(sc: Scenario, cands: list[Candidate], rejected: Counter[str], objective: str,
                        required: float | None) -> NoFeasiblePlan:
    """Name the binding constraint and the smallest change that would lift it."""
    wl, cl = sc.workload, sc.cluster
    fits = [c for c in cands if c.result.decode.memory.free_bytes >= 0 and c.decode_batch_per_device > 0]
    if not fits:
        best = min(cands, key=lambda c: c.result.decode.memory.static_bytes + c.result.decode.memory.kv_cache_bytes,
                   default=None)
        if best is None:
            return NoFeasiblePlan("divisibility", "no parallel layout divides the model over "
                                  f"{cl.num_devices} devices", ["use a device count that divides the experts/heads"])
        m = best.result.decode.memory
        need = m.static_bytes + m.activation_bytes
        per_dev_short = need - m.capacity_bytes
        total_weights = m.weight_bytes * best.devices_per_replica
        more = max(cl.num_devices + 1, int(-(-total_weights // max(1.0, m.capacity_bytes - m.runtime_reserve_bytes
                                                                    - m.activation_bytes - m.comm_buffer_bytes))))
        fixes = [f"more devices: about {more} {cl.device.id} (weights need {total_weights / 2**30:,.0f} GiB in all)"]
        if wl.weight_precision.bytes_per_element > 1:
            fixes.append("lower weight precision: fp8 or int8 halves the weight bytes")
        if m.static_bytes < m.capacity_bytes:  # the weights fit: what overflows depends on the context
            fixes.append(f"shorter context than {wl.input_tokens + wl.output_tokens} tokens, or fewer sequences")
        detail = (f"even the leanest layout ({best.dims.label()}) needs {need / 2**30:.1f} GiB per device before any "
                  f"KV cache, {max(0.0, per_dev_short) / 2**30:.1f} GiB over the {m.capacity_bytes / 2**30:.0f} GiB "
                  "capacity" if per_dev_short > 0 else
                  f"no layout leaves room for one sequence's KV cache ({best.dims.label()})")
        return NoFeasiblePlan("memory", detail, fixes)
    if wl.ttft_slo_s is not None and not any(c.prefill_ok for c in fits):
        best = min(fits, key=lambda c: c.ttft_s)
        return NoFeasiblePlan("ttft", f"the fastest prefill layout ({best.dims.label()}) gives TTFT "
                              f"{best.ttft_s * 1e3:.0f} ms > SLO {wl.ttft_slo_s * 1e3:.0f} ms",
                              [f"loosen the TTFT SLO to >= {best.ttft_s * 1.05 * 1e3:.0f} ms",
                               "shorter prompts or smaller prefill chunks", "more devices per prefill instance"])
    if wl.tpot_slo_s is not None and not any(c.decode_ok for c in fits):
        best = min(fits, key=lambda c: c.tpot_s)
        return NoFeasiblePlan("tpot", f"the fastest decode layout ({best.dims.label()}) at one sequence per rank gives "
                              f"TPOT {best.tpot_s * 1e3:.1f} ms > SLO {wl.tpot_slo_s * 1e3:.1f} ms",
                              [f"loosen the TPOT SLO to >= {best.tpot_s * 1.05 * 1e3:.1f} ms",
                               "a faster device or lower weight precision", "shorter context"])
    if objective == "devices" and required is not None:
        return NoFeasiblePlan("request_rate", f"the whole cluster cannot deliver {required:,.0f} output tok/s",
                              ["more devices", "a lower workload.request_rate"])
    n = cl.num_devices
    smallest = min(c.devices_per_replica for c in fits)
    agg = [c for c in fits if c.prefill_ok and c.aggregated_user_tok_per_s > 0]
    parts = []
    fixes = []
    if agg:
        best = min(agg, key=lambda c: c.aggregated_tpot_s)
        parts.append(f"aggregated: the best layout ({best.dims.label()}) gives an effective TPOT of "
                     f"{best.aggregated_tpot_s * 1e3:.1f} ms once prompt phases stall decoding"
                     + (f" > SLO {wl.tpot_slo_s * 1e3:.0f} ms" if wl.tpot_slo_s else ""))
        fixes.append(f"loosen the TPOT SLO to >= {best.aggregated_tpot_s * 1.05e3:.0f} ms for aggregated serving")
    if 2 * smallest > n:
        parts.append(f"disaggregated: the smallest layout that fits holds {smallest} devices, so two pools need "
                     f"{2 * smallest} > {n}")
        fixes.append(f"at least {2 * smallest} devices for separate prefill and decode pools")
    return NoFeasiblePlan("pools", "; ".join(parts) or "no prefill/decode split of the cluster meets every "
                          "constraint", fixes or ["more devices", "looser SLOs"])
