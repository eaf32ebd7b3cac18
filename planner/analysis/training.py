"""What one training layout costs: memory per pipeline rank, step time by op and by resource, the pipeline
schedule, tokens/s, MFU and TFLOP/s/GPU (Megatron's counting) -- the one place ``evaluate``, ``plan`` and
``compare`` get these numbers from (STYLE.md rule 12).

The pipeline part of the step comes from one of two methods, and the result says which:

* ``cpsat``: the plan's named schedule (1F1B, interleaved 1F1B, ZB-H1, DualPipe, DualPipeV) as a fixed order of
  the CP-SAT interval model (:mod:`planner.cpsat.pipeline`) over every rank's own chunk times (first and last
  ranks are lighter or heavier than the busiest one).  It pays when the instance is small (at most
  :data:`CPSAT_MAX_OPS` passes) and the stages differ; 1F1B's and interleaved 1F1B's closed forms are its special
  case for equal stages (tests/test_pipeline_schedule.py).
* ``closed_form``: :func:`cost_models.training.pipeline.pipeline_s` on the busiest rank's chunk times (large
  instances, one stage, or the 1F1B all-to-all overlap, whose paired steady state has no fixed order here).

The Gantt chart shows the solved schedule, or for a closed-form step the named order's earliest-start schedule
when it has at most :data:`GANTT_MAX_OPS` passes (re-costed in floats, no solve).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from cost_models.specs import Precision
from cost_models.training.dims import A2AOverlap, Schedule, TrainingDims, check_training_dims
from cost_models.training.flops import megatron_flops, narayanan_flops, six_n_flops
from cost_models.training.memory import TrainingMemory, memory_per_rank
from cost_models.training.specs import TrainingWorkload
from cost_models.training.step import TrainingStep, chunk_times, rank_times, training_step
from planner.cpsat.pipeline_result import Order, PipelineInstance, PipelineSchedule
from planner.cpsat.stats import SolveStats

CPSAT_MAX_OPS = 600
"""Largest pipeline (micro-batches x chunks x 3 passes) evaluate solves with CP-SAT."""
GANTT_MAX_OPS = 4_000
"""Largest pipeline whose named order is laid out (earliest starts) for the Gantt chart."""
SOLVE_TIME_LIMIT_S = 5.0
FLOP_COUNTERS = {"megatron": megatron_flops, "narayanan": narayanan_flops, "six_n": six_n_flops}
"""How published TFLOP/s figures count FLOPs (cost_models.training.flops)."""


@dataclass(frozen=True, kw_only=True)
class PipelineView:
    """How the pipeline part of the step was obtained, and the schedule to draw (None when too large)."""

    method: str
    """``cpsat`` or ``closed_form`` (module docstring)."""
    pipeline_s: float
    closed_form_s: float
    """The closed form of the same schedule on the busiest rank (for comparison)."""
    schedule: PipelineSchedule | None
    schedule_micro_batches: int
    """Micro-batches of the drawn schedule (the step's, or fewer for a large step; 0 when none is drawn)."""
    note: str


@dataclass(frozen=True, kw_only=True)
class TrainingEvaluation:
    """One layout of one training scenario, costed."""

    scenario: object
    """The :class:`planner.inputs.training.TrainingScenario`."""
    dims: TrainingDims
    workload: TrainingWorkload
    """The scenario's workload with this layout's recompute policy."""
    step: TrainingStep
    memory: tuple[TrainingMemory, ...]
    pipeline: PipelineView

    @property
    def devices(self) -> int:
        return self.dims.world_devices

    @property
    def step_s(self) -> float:
        return self.pipeline.pipeline_s + self.step.dp_exposed_s + self.step.optimizer_s

    @property
    def tokens_per_s_per_device(self) -> float:
        return self.workload.global_batch_tokens / (self.step_s * self.devices)

    @property
    def tokens_per_s(self) -> float:
        return self.workload.global_batch_tokens / self.step_s

    def flops(self, counting: str = "megatron") -> float:
        """FLOPs of one step as ``counting`` counts them (megatron, narayanan, six_n; cost_models.training.flops)."""
        return FLOP_COUNTERS[counting](self.scenario.model, seq_tokens=self.workload.seq_tokens,  # type: ignore[attr-defined]
                  batch_sequences=self.workload.global_batch_sequences)

    def tflop_per_s_per_device(self, counting: str = "megatron") -> float:
        return self.flops(counting) / (self.step_s * self.devices) / 1e12

    @property
    def mfu(self) -> float:
        """Megatron-counted FLOPs over the dense BF16 peak (the published tables' MFU)."""
        peak = self.scenario.cluster.device.peak_for(Precision.BF16)  # type: ignore[attr-defined]
        return self.flops() / (self.step_s * self.devices * peak)

    @property
    def peak_memory(self) -> TrainingMemory:
        return max(self.memory, key=lambda m: m.used_bytes)

    @property
    def fits(self) -> bool:
        return all(m.fits for m in self.memory)

    def time_to_tokens_s(self, tokens: int) -> float:
        return tokens / self.tokens_per_s


def dims_problems(sc: object, dims: TrainingDims, workload: TrainingWorkload) -> list:
    """Divisibility and product problems of ``dims`` on the scenario (empty = expressible)."""
    return check_training_dims(dims, sc.model, sc.cluster.num_devices,  # type: ignore[attr-defined]
                               seq_tokens=workload.seq_tokens, global_batch_sequences=workload.global_batch_sequences)


def pipeline_ops(dims: TrainingDims, micro_batches: int) -> int:
    chunks = dims.stages * (dims.vpp if dims.schedule is Schedule.INTERLEAVED else 1)
    return micro_batches * chunks * 3


def _order(dims: TrainingDims, m: int) -> Order | None:
    from planner.cpsat import pipeline_families as pf
    s, p = dims.schedule, dims.pp
    if dims.a2a_overlap is A2AOverlap.FB_PAIRS and s not in (Schedule.DUALPIPE, Schedule.DUALPIPE_V):
        return None
    try:
        if s is Schedule.ONE_F_ONE_B:
            return pf.order_1f1b(p, m)
        if s is Schedule.INTERLEAVED:
            return pf.order_interleaved(p, dims.vpp, m)
        if s is Schedule.ZERO_BUBBLE:
            return pf.order_zb_h1(p, m)
        if s is Schedule.DUALPIPE:
            return pf.order_dualpipe(p, m)
        return pf.order_dualpipev(p, m)
    except ValueError:  # the family's own preconditions (micro-batch counts): no fixed order
        return None


def pipeline_instance(sc: object, dims: TrainingDims, workload: TrainingWorkload, m: int) -> PipelineInstance:
    """The step's pipeline with every rank's own chunk times (F with its exposed communication; B = input
    gradient and recompute; W = weight gradient)."""
    from planner.cpsat import pipeline_families as pf
    cluster, model = sc.cluster, sc.model  # type: ignore[attr-defined]
    per_rank = [chunk_times(dims, rank_times(cluster, model, dims, workload, r)) for r in range(dims.pp)]
    split = dims.vpp if dims.schedule is Schedule.INTERLEAVED else 1
    if dims.schedule is Schedule.DUALPIPE:
        routes = pf.dualpipe_routes(dims.pp, m)
    elif dims.schedule is Schedule.DUALPIPE_V:
        routes = pf.v_routes(dims.pp, m)
    else:
        routes = pf.straight_routes(dims.pp, m, split)
    # chunk k along the first route sits on device routes[0][k]; every route visits the chunks of one device
    # with that device's times, so the per-step tuples follow the first route's devices
    dev = routes[0]
    f = tuple(per_rank[d].forward_s / split for d in dev)
    w = tuple(per_rank[d].weight_grad_s / split for d in dev)
    b = tuple(max(0.0, per_rank[d].backward_s / split - wk) for d, wk in zip(dev, w, strict=True))
    paired = dims.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V)
    overhead = None
    if paired:
        t = per_rank[max(range(dims.pp), key=lambda r: per_rank[r].overlapped_fb_s)]
        overhead = max(0.0, t.overlapped_fb_s - max(t.forward_s, t.backward_s))
    return PipelineInstance(devices=dims.pp, routes=routes, forward_s=f, backward_s=b, weight_s=w,
                            pair_overhead_s=overhead)


def drawn_micro_batches(dims: TrainingDims, m: int) -> int:
    """Micro-batches of the schedule drawn for a large step: the most, up to ``m``, whose pipeline has at most
    :data:`GANTT_MAX_OPS` passes and that the schedule family accepts (interleaved: a multiple of ``pp``;
    DualPipe: even; DualPipe(V): at least ``2 pp``); 0 when there is none."""
    k = min(m, GANTT_MAX_OPS // pipeline_ops(dims, 1))
    if dims.schedule is Schedule.INTERLEAVED:
        k -= k % dims.pp
    if dims.schedule is Schedule.DUALPIPE:
        k -= k % 2
    least = 2 * dims.pp if dims.schedule in (Schedule.DUALPIPE, Schedule.DUALPIPE_V) else 1
    return k if k >= least else 0


def _pipeline(sc: object, dims: TrainingDims, workload: TrainingWorkload, step: TrainingStep, *, solve: bool,
              seed: int) -> PipelineView:
    from planner.cpsat.pipeline import solve_pipeline
    from planner.cpsat.pipeline_result import schedule_of
    m = step.micro_batches
    ops = pipeline_ops(dims, m)
    shown = m if ops <= GANTT_MAX_OPS else drawn_micro_batches(dims, m)
    order = _order(dims, shown) if dims.pp > 1 and shown else None
    closed_s = step.pipeline_s
    if order is None:
        why = ("one pipeline stage" if dims.pp == 1 else "the 1F1B all-to-all overlap pairs chunks in steady state "
               "only (no fixed order)" if dims.a2a_overlap is A2AOverlap.FB_PAIRS else
               f"{ops:,} passes, no smaller step of this schedule to draw")
        return PipelineView(method="closed_form", pipeline_s=closed_s, closed_form_s=closed_s, schedule=None,
                            schedule_micro_batches=0, note=f"closed form: {why}")
    inst = pipeline_instance(sc, dims, workload, shown)
    if solve and shown == m and ops <= CPSAT_MAX_OPS:
        out = solve_pipeline(inst, order=order, time_limit_s=SOLVE_TIME_LIMIT_S, seed=seed)
        if out.schedule is not None:
            st = out.stats
            return PipelineView(method="cpsat", pipeline_s=out.schedule.makespan_s, closed_form_s=closed_s,
                                schedule=out.schedule, schedule_micro_batches=m,
                                note=f"CP-SAT, the {dims.schedule.value} order over every rank's chunk times: "
                                     f"{st.status}, gap {st.gap:.2%}")
    none = SolveStats(status="NOT_SOLVED", objective=0.0, bound=0.0, gap=0.0, wall_s=0.0)
    sch = schedule_of(inst, order, none)
    drawn = ("the chart lays out the order without solving" if shown == m else
             f"the chart lays out the same order for {shown} of the {m} micro-batches (its shape, not this step)")
    return PipelineView(method="closed_form", pipeline_s=closed_s, closed_form_s=closed_s, schedule=sch,
                        schedule_micro_batches=shown,
                        note=f"closed form ({ops:,} passes > CP-SAT limit {CPSAT_MAX_OPS:,}); {drawn}")


@functools.lru_cache(maxsize=256)
def contiguous_imbalance(loads: object, ep: int) -> float:
    """Mean over MoE layers of max / mean routed tokens per EP rank when rank ``r`` holds experts
    ``r E/ep .. (r+1) E/ep - 1`` (Megatron-Core's static expert-to-rank map: training does not re-place experts).
    E.g. one layer ``[4, 0, 0, 0]`` on EP2: ranks get 4 and 0, mean 2, imbalance 2."""
    vals = []
    for row in loads.tokens:  # type: ignore[attr-defined]
        per = len(row) // ep
        ranks = [sum(row[r * per:(r + 1) * per]) for r in range(ep)]
        mean = sum(ranks) / ep
        vals.append(max(ranks) / mean if mean > 0 else 1.0)
    return sum(vals) / len(vals)


def with_routing(sc: object, dims: TrainingDims, workload: TrainingWorkload) -> TrainingWorkload:
    """``workload`` with the imbalance measured from the scenario's router counts at ``dims.ep`` (if any)."""
    loads = getattr(sc, "expert_loads", None)
    if loads is None:
        return workload
    return replace(workload, expert_imbalance=max(1.0, contiguous_imbalance(loads, dims.ep)))


def evaluate_training(sc: object, dims: TrainingDims | None = None, workload: TrainingWorkload | None = None, *,
                      solve: bool = True, seed: int = 0) -> TrainingEvaluation:
    """Cost ``dims`` (default: the scenario's plan) on the scenario; ``solve`` False skips CP-SAT (the search)."""
    dims = dims or sc.plan  # type: ignore[attr-defined]
    if dims is None:
        raise ValueError("no training plan to evaluate")
    wl = with_routing(sc, dims, workload or sc.workload)  # type: ignore[attr-defined]
    step = training_step(sc.cluster, sc.model, dims, wl)  # type: ignore[attr-defined]
    view = _pipeline(sc, dims, wl, step, solve=solve, seed=seed)
    return TrainingEvaluation(scenario=sc, dims=dims, workload=wl, step=step, memory=stage_memory(sc, dims, wl),
                              pipeline=view)


def stage_memory(sc: object, dims: TrainingDims, workload: TrainingWorkload) -> tuple[TrainingMemory, ...]:
    """Memory of one device of every pipeline rank."""
    return tuple(memory_per_rank(sc.model, dims, workload,  # type: ignore[attr-defined]
                                 capacity_bytes=sc.cluster.device.hbm_bytes))  # type: ignore[attr-defined]


def costed_closed_form(sc: object, dims: TrainingDims, workload: TrainingWorkload,
                       memory: tuple[TrainingMemory, ...]) -> TrainingEvaluation:
    """The search's evaluation: the closed-form pipeline, no schedule (``evaluate`` re-costs the chosen one)."""
    step = training_step(sc.cluster, sc.model, dims, workload)  # type: ignore[attr-defined]
    view = PipelineView(method="closed_form", pipeline_s=step.pipeline_s, closed_form_s=step.pipeline_s,
                        schedule=None, schedule_micro_batches=step.micro_batches, note="closed form (search)")
    return TrainingEvaluation(scenario=sc, dims=dims, workload=workload, step=step, memory=memory, pipeline=view)


def with_layout(ev: TrainingEvaluation, **changes: object) -> TrainingEvaluation:
    """``ev`` re-costed with some degrees changed (``a2a_overlap=...``)."""
    return evaluate_training(ev.scenario, replace(ev.dims, **changes), ev.workload)
