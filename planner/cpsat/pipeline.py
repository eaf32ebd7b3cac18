"""CP-SAT: the pipeline schedule of one training step, as an interval model (after the zero-bubble paper's ILP,
Qi et al. 2023, arXiv 2401.10241, section 3.2: F, B, W passes per stage and micro-batch, precedences across
stages, one pass at a time per stage, a memory limit per stage; the makespan as objective).

Build, solve, extract and validate are separate steps (d-krupke/cpsat-primer); the vocabulary, the
dependencies and the memory rule are in :mod:`planner.cpsat.pipeline_result`.

Decisions
    Every candidate slot (:func:`candidate_slots`) is an optional interval on its device with a presence
    literal; every op lies in exactly one present slot and takes that slot's start and end.  A free solve offers
    every op alone plus, where the instance allows pairs, every overlapped pair ``(F_x, B_y)`` and
    ``(F_x, B_y, W_y)`` of micro-batches at most ``pair_window`` apart on the same device.  (A fused ``(B, W)``
    is never better than ``B`` then ``W``, so a free solve does not offer it.)  A solve *constrained to a
    family* gets exactly the slots of a given order, all present, chained in that order on every device: its
    makespan is the order's earliest-start makespan.
Constraints
    Precedence with the P2P lag (waived for W after B in one slot); ``add_no_overlap`` per device (one slot at
    a time on the compute stream); ``add_cumulative`` per device over the in-flight activations (from F's start
    to B's end, and to W's end for the share W needs) against the memory limit.
Objective
    The makespan (every op ends by it).

Resolution: time in whole ticks, a power of ten of nanoseconds chosen so the shortest F, B or W lasts at least
:data:`TICKS_PER_PASS` ticks (:func:`tick_ns_for`); durations and lags round up, so the integer schedule is
feasible in floats.  Memory in units of 1/:data:`UNITS_PER_DEMAND` of the smallest activation share, demands
rounded up and the limit down (conservative by under 0.1 % of one share per micro-batch held).  Extraction keeps
the solver's order on every device and re-costs it in floats with exact durations
(:func:`planner.cpsat.pipeline_result.schedule_of`).  Every solve has a time limit, a seed, one worker and a
hint (:func:`planner.cpsat.pipeline_families.order_list_1f1b`, the 1F1B rule as a list schedule).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from dataclasses import dataclass

from ortools.sat.python import cp_model

from planner.cpsat import budget
from planner.cpsat.pipeline_families import order_list_1f1b
from planner.cpsat.pipeline_result import (
    Op,
    Order,
    PipelineInstance,
    PipelineSchedule,
    Slot,
    check_schedule,
    dependencies,
    earliest_starts,
    lower_bound_s,
    schedule_of,
    slot_seconds,
)
from planner.cpsat.schedule import to_ticks
from planner.cpsat.stats import SolveStats

TICKS_PER_PASS = 1000
"""The shortest positive F, B or W lasts at least this many ticks (rounding up adds < 0.1 % to it)."""
UNITS_PER_DEMAND = 1000
"""The smallest positive activation share is this many memory units."""
WORK_UNITS_PER_S = 0.2
"""Deterministic-time units per second of ``time_limit_s`` (as :mod:`planner.cpsat.schedule`): the work limit,
not the wall clock, ends a solve, so the same input and seed give the same schedule on a loaded machine."""
WALL_CAP_FACTOR = 10.0
"""The wall-clock cap is this many times ``time_limit_s`` (a safety net behind the work limit)."""


def tick_ns_for(inst: PipelineInstance) -> int:
    """The largest power-of-ten tick (ns) that leaves the shortest positive pass :data:`TICKS_PER_PASS` ticks."""
    shortest = min(t for t in (*inst.forward_s, *inst.backward_s, *inst.weight_s) if t > 0)
    tick = 1
    while shortest * 1e9 / (tick * 10) >= TICKS_PER_PASS:
        tick *= 10
    return tick


def candidate_slots(inst: PipelineInstance) -> list[Slot]:
    """The slots a free solve chooses from (module docstring)."""
    out: list[Slot] = [(op,) for op in inst.ops()]
    if inst.pair_overhead_s is None:
        return out
    by_dev: dict[int, list[Op]] = defaultdict(list)
    for op in inst.ops():
        by_dev[inst.device_of(op)].append(op)
    for ops in by_dev.values():
        for x in (o for o in ops if o.kind == "F"):
            for y in (o for o in ops if o.kind == "B" and o.mb != x.mb and _near(inst, x, o)):
                out += [(x, y), (x, y, y._replace(kind="W"))]
    return out


def _near(inst: PipelineInstance, x: Op, y: Op) -> bool:
    return inst.pair_window is None or abs(x.mb - y.mb) <= inst.pair_window


def as_candidates(order: Order, candidates: set[Slot]) -> Order:
    """An order rewritten with candidate slots only: a slot that is not one runs as its ops one after another
    (feasible whenever the order is: a pair or a fused backward never starts an op earlier than alone)."""
    return tuple(tuple(s for sl in dev for s in ([sl] if sl in candidates else [(o,) for o in sl])) for dev in order)


@dataclass(frozen=True, kw_only=True)
class PipelineModel:
    """A built model with the variables extraction reads."""

    inst: PipelineInstance
    tick_ns: int
    model: cp_model.CpModel
    slots: tuple[Slot, ...]
    present: tuple[cp_model.IntVar, ...]
    slot_start: tuple[cp_model.IntVar, ...]
    slot_end: tuple[cp_model.IntVar, ...]
    op_start: dict[Op, cp_model.IntVar]
    op_end: dict[Op, cp_model.IntVar]
    makespan: cp_model.IntVar
    fixed: bool
    """Constrained to one order (every slot present)."""

    def ticks(self, seconds: float) -> int:
        return to_ticks(seconds, self.tick_ns)

    def seconds(self, ticks: float) -> float:
        return ticks * self.tick_ns / 1e9


def _memory_units(inst: PipelineInstance) -> tuple[dict[int, tuple[int, int]], int] | None:
    """Per chunk its (B-share, W-share) demand in units, and the limit in units; None when not modelled."""
    if inst.memory_limit_bytes is None or not inst.activation_bytes:
        return None
    f = inst.weight_grad_fraction
    shares = {k: (a * (1 - f), a * f) for k, a in enumerate(inst.activation_bytes)}
    smallest = min((x for pair in shares.values() for x in pair if x > 0), default=1.0)
    unit = smallest / UNITS_PER_DEMAND
    demand = {k: tuple(math.ceil(x / unit - 1e-9) for x in pair) for k, pair in shares.items()}
    return demand, math.floor(inst.memory_limit_bytes / unit + 1e-9)  # type: ignore[return-value]


def build(inst: PipelineInstance, *, order: Order | None = None) -> PipelineModel:
    """The model (module docstring); ``order`` constrains it to one schedule family."""
    tick = tick_ns_for(inst)
    m = cp_model.CpModel()
    slots = [sl for dev in order for sl in dev] if order is not None else candidate_slots(inst)
    dur = [to_ticks(slot_seconds(inst, sl), tick) for sl in slots]
    lags = sum(to_ticks(g, tick) for _, _, g in dependencies(inst))
    horizon = sum(to_ticks(slot_seconds(inst, (op,)), tick) for op in inst.ops()) + lags
    horizon += len(inst.ops()) * to_ticks(inst.pair_overhead_s or 0.0, tick) + max(dur)
    present, starts, ends = [], [], []
    covering: dict[Op, list[int]] = defaultdict(list)
    per_dev: dict[int, list[cp_model.IntervalVar]] = defaultdict(list)
    for i, (sl, d) in enumerate(zip(slots, dur, strict=True)):
        lit = m.new_constant(1) if order is not None else m.new_bool_var(f"x{i}")
        s = m.new_int_var(0, horizon, f"s{i}")
        e = m.new_int_var(0, horizon, f"e{i}")
        per_dev[inst.device_of(sl[0])].append(m.new_optional_interval_var(s, d, e, lit, f"iv{i}"))
        present.append(lit)
        starts.append(s)
        ends.append(e)
        for op in sl:
            covering[op].append(i)
    op_start = {op: m.new_int_var(0, horizon, f"{op}.s") for op in inst.ops()}
    op_end = {op: m.new_int_var(0, horizon, f"{op}.e") for op in inst.ops()}
    for op, idx in covering.items():
        m.add_exactly_one(present[i] for i in idx)
        for i in idx:
            m.add(op_start[op] == starts[i]).only_enforce_if(present[i])
            m.add(op_end[op] == ends[i]).only_enforce_if(present[i])
    for u, v, g in dependencies(inst):
        joint = [present[i] for i in covering[u] if i in covering[v]]
        if joint and order is not None:
            continue  # u and v share a slot of the fixed order
        m.add(op_start[v] >= op_end[u] + to_ticks(g, tick)).only_enforce_if([~lit for lit in joint])
    for ivs in per_dev.values():
        m.add_no_overlap(ivs)
    if order is not None:
        pos = {sl: i for i, sl in enumerate(slots)}
        for dev in order:
            for a, b in zip(dev, dev[1:], strict=False):
                m.add(starts[pos[b]] >= ends[pos[a]])
    _add_memory(m, inst, op_start, op_end, horizon)
    makespan = m.new_int_var(0, horizon, "makespan")
    m.add_max_equality(makespan, list(op_end.values()))
    m.add(makespan >= math.floor(max(lower_bound_s(inst)) * 1e9 / tick))  # redundant: the bound the solver proves
    m.minimize(makespan)
    return PipelineModel(inst=inst, tick_ns=tick, model=m, slots=tuple(slots), present=tuple(present),
                         slot_start=tuple(starts), slot_end=tuple(ends), op_start=op_start, op_end=op_end,
                         makespan=makespan, fixed=order is not None)


def _add_memory(m: cp_model.CpModel, inst: PipelineInstance, op_start: dict[Op, cp_model.IntVar],
                op_end: dict[Op, cp_model.IntVar], horizon: int) -> None:
    """One cumulative per device: each micro-batch's activations of each chunk, F start to B end (and W end)."""
    units = _memory_units(inst)
    if units is None:
        return
    demand, cap = units
    ivs: dict[int, list[tuple[cp_model.IntervalVar, int]]] = defaultdict(list)
    for op in (o for o in inst.ops() if o.kind == "F"):
        for share, until in zip(demand[op.step], ("B", "W"), strict=True):
            if share == 0:
                continue
            end = op_end[op._replace(kind=until)]
            size = m.new_int_var(0, horizon, f"{op}.{until}.held")
            ivs[inst.device_of(op)].append((m.new_interval_var(op_start[op], size, end, f"{op}.{until}.mem"), share))
    for items in ivs.values():
        m.add_cumulative([iv for iv, _ in items], [d for _, d in items], cap)


def add_hint(pm: PipelineModel, order: Order) -> None:
    """Hint the order's earliest-start schedule (in ticks) on every variable."""
    order = as_candidates(order, set(pm.slots))
    start = earliest_starts(pm.inst, order, lambda sl: pm.ticks(slot_seconds(pm.inst, sl)), pm.ticks)
    m = pm.model
    for i, sl in enumerate(pm.slots):
        on = sl in start
        if not pm.fixed:
            m.add_hint(pm.present[i], on)
        if on:
            m.add_hint(pm.slot_start[i], int(start[sl]))
            m.add_hint(pm.slot_end[i], int(start[sl]) + pm.ticks(slot_seconds(pm.inst, sl)))
            for op in sl:
                m.add_hint(pm.op_start[op], int(start[sl]))
                m.add_hint(pm.op_end[op], int(start[sl]) + pm.ticks(slot_seconds(pm.inst, sl)))
    m.add_hint(pm.makespan, int(max(start[sl] + pm.ticks(slot_seconds(pm.inst, sl)) for sl in start)))


@dataclass(frozen=True, kw_only=True)
class PipelineOutcome:
    """A solve's statistics and the schedule re-costed in floats (None when neither the solver nor the hint
    gave one)."""

    stats: SolveStats
    schedule: PipelineSchedule | None
    source: str
    """``solver``; ``hint`` when the solver stopped (limit or infeasible model) without beating the hint;
    ``none``."""


def solve(pm: PipelineModel, *, time_limit_s: float, seed: int) -> tuple[cp_model.CpSolver, SolveStats]:
    """Solve on one worker with a seed, a work limit and a wall-clock cap (module docstring)."""
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = time_limit_s * WORK_UNITS_PER_S
    spend = budget.current()  # the command's --time-limit: the wall cap, or what the budget has left
    allotted = spend.allot(time_limit_s * WALL_CAP_FACTOR)
    solver.parameters.max_time_in_seconds = allotted
    t0 = time.perf_counter()
    status = solver.solve(pm.model)
    wall = time.perf_counter() - t0
    budget.refuse_invalid(solver.status_name(status), "pipeline schedule", pm.model,
                          "the stages' op durations and the micro-batch count")
    spend.finish("pipeline schedule", status=solver.status_name(status), wall_s=wall, allotted_s=allotted,
                 work_units=solver.deterministic_time, work_limit_units=time_limit_s * WORK_UNITS_PER_S)
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    obj = solver.objective_value if found else math.nan
    bound = solver.best_objective_bound if found else math.nan
    stats = SolveStats(status=solver.status_name(status), objective=pm.seconds(obj), bound=pm.seconds(bound),
                       gap=(obj - bound) / max(1.0, obj) if found else math.nan, wall_s=wall)
    return solver, stats


def extract(pm: PipelineModel, solver: cp_model.CpSolver, stats: SolveStats) -> PipelineSchedule:
    """The solver's order on every device, re-costed in floats with exact durations."""
    chosen: dict[int, list[tuple[int, int, Slot]]] = defaultdict(list)
    for i, sl in enumerate(pm.slots):
        if solver.boolean_value(pm.present[i]):
            chosen[pm.inst.device_of(sl[0])].append((solver.value(pm.slot_start[i]), solver.value(pm.slot_end[i]), sl))
    order = tuple(tuple(sl for *_, sl in sorted(chosen[d])) for d in range(pm.inst.devices))
    return schedule_of(pm.inst, order, stats)


def solve_pipeline(inst: PipelineInstance, *, order: Order | None = None, hint: Order | None = None,
                   time_limit_s: float = 5.0, seed: int = 0) -> PipelineOutcome:
    """Build, hint, solve, extract.  ``order`` constrains the solve to that family; the hint is ``hint``, else
    ``order``, else the 1F1B list schedule (none when that rule deadlocks under the memory limit).  Never worse
    than a hint that passes :func:`check_schedule`: the hint is returned (``source="hint"``, the solver's own
    status kept) when the solver stops without beating it."""
    pm = build(inst, order=order)
    first = hint or order or order_list_1f1b(inst)
    try:
        alt = schedule_of(inst, first, SolveStats(status="", objective=0, bound=0, gap=0, wall_s=0)) if first else None
    except ValueError:  # an order that covers the ops wrongly or contradicts the dependencies: no hint
        first = alt = None
    if first is not None:
        add_hint(pm, first)
    solver, stats = solve(pm, time_limit_s=time_limit_s, seed=seed)
    found = stats.status in ("OPTIMAL", "FEASIBLE")
    sch = extract(pm, solver, stats) if found else None
    if alt is not None and (sch is None or stats.status != "OPTIMAL"):
        if not check_schedule(inst, alt) and (sch is None or alt.makespan_s < sch.makespan_s):
            return PipelineOutcome(stats=stats, schedule=dataclasses.replace(alt, stats=stats), source="hint")
    return PipelineOutcome(stats=stats, schedule=sch, source="solver" if sch is not None else "none")
