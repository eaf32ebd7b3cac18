"""CP-SAT: the overlap schedule of one layer's ops for K micro-batches, on compute units and links.

Build, solve, extract and validate are separate steps (d-krupke/cpsat-primer).  Input: one micro-batch's ops
of a layer (:class:`cost_models.ops.OpCost`, built at ``tokens / K``), repeated for K micro-batches.

Resources (:func:`resource_of`)
    ``compute`` runs one kernel at a time (the compute stream); ``scale_up`` and ``scale_out`` carry one comm op
    at a time, on the link ``OpCost.bound`` names (a ``latency``-bound op: the tier with more seconds in its
    ``detail``, then more bytes, else ``scale_out``).

Communication kernels on compute units
    A comm kernel that runs on SMs (DeepEP normal kernels, prefill: ``f = 20/132``) holds ``c = round(1000 f)``
    of 1000 compute units for its whole interval.  A compute kernel's SM count is fixed at launch (DeepGEMM
    ``set_num_sms``): a block either takes all 1000 units for ``d``, or ``1000 - c`` units for
    ``ceil(d x 1000 / (1000 - c))`` (linear SM scaling, as ``cost_models.step``).  A boolean per block picks the
    mode; one cumulative (capacity 1000) over both modes' optional intervals and the comm intervals makes the
    model exact up to the 0.1 % quantization of ``f``.  ``f = 0`` (DeepEP low-latency kernels, decode) leaves
    the compute units to compute.

Dependency graph, per micro-batch (:func:`dependencies`)
    A chain in tuple order, except side branches engines run independently: ``moe.shared.*`` (shared expert)
    forks from ``moe.norm`` and runs while dispatch / experts / combine are in flight (DeepSeek-V3 "Inference
    System Overview"); a branch whose fork op is not before it stays in the chain.  The layer output (the
    residual sum) waits for every sink: the combine chain and the shared expert.
    The solver places *blocks* (:func:`blocks`): maximal runs of one chain on one resource, split after a
    fork.  A block's kernels run back to back on one stream; micro-batches alternate between stages, not
    between single kernels (SGLang two-batch overlap yields at stage boundaries).

Periodic layer (the steady state of a step that runs the same layer ~58 times)
    Layer i+1 repeats layer i's schedule ``P`` later.  Micro-batch b of layer i+1 starts once its own sinks of
    layer i are done (``s_src + P >= e_sink``), so one micro-batch's next attention runs while the other's
    combine is in flight.  One layer spans ``H <= W x P`` (``W = window_layers`` layers in flight, default 2);
    then only layer copies ``0..W-1`` can meet on a resource, and the model places them all.  ``W = 1`` is one
    layer in isolation (``P = H``: its makespan).  Objective: minimise ``P``, then ``H`` (one weighted sum).

Bound and early stop
    :mod:`planner.cpsat.schedule_bound` gives a provable lower bound on ``P`` without the solver (work, one
    micro-batch's chain, and the compute time comm kernels on SMs force); a solve ends at the first solution
    whose period meets it (status OPTIMAL for the period; ``H`` is then not minimised further), and every
    solve reports it as its bound.  The model itself is unchanged, so the search, and the period found, are
    the ones the solve run to its work limit finds.

Exact without the solver
    :func:`solve_layer` first runs :mod:`planner.cpsat.schedule_exact`, a search over the same integer model
    that proves its period optimal; CP-SAT (imported only then) runs only where that search stops at its work
    limit, hinted with its best schedule.  Measured on the default scenario's instances (K = 2, 6-8 blocks): the
    prefill layer (comm kernels on SMs) in ~0.05 s, proven, where CP-SAT stopped at its work limit after ~3 s
    with the same period; decode layers in ~3 ms.

Quantization: durations in whole *ticks*, rounded up (:func:`to_ticks`), so an op never outgrows its integer
slot. A tick is a power of ten of nanoseconds, the largest that leaves a micro-batch's ops at least
``TICKS_PER_MICRO_BATCH`` ticks (:func:`tick_ns_for`): 1 us for a prefill micro-batch of tens of ms, 10 ns for
a sub-millisecond decode one. Measured on the SGLang 1K prefill instance: ns ticks took 7.4 s of wall time per
solve and stopped at 33.3-36.5 ms depending on the seed; 1 us ticks take 0.6-1.4 s and reach 33.2 ms with either
seed (the objective's coefficients scale with the horizon in ticks).  Extraction re-costs in floats: exact
durations from the integer starts, and the smallest period that
keeps the solver's order on every resource (:func:`_float_period`).  :func:`check_schedule` re-checks a
schedule without the solver.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from planner.cpsat import budget, schedule_exact
from planner.cpsat.schedule_bound import BlockGraph, PeriodBound, period_bound
from planner.cpsat.schedule_result import _TOL_S, RESOURCES, IntSolution, LayerSchedule, ScheduledOp, _union, fold
from planner.cpsat.stats import SolveStats

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

    from cost_models.ops import OpCost

NS_PER_S = 1_000_000_000
"""Nanoseconds per second (ticks are whole nanoseconds: :data:`TICKS_PER_MICRO_BATCH`)."""
SM_CAPACITY = 1000
"""Compute units, per mille (the resolution of the comm-kernel SM fraction)."""
SIDE_BRANCHES: Mapping[str, str] = {"moe.shared.": "moe.norm"}
"""Op-name prefix of an independent branch -> the op it forks from."""
WORK_UNITS_PER_S = 0.2
"""CP-SAT deterministic-time units allowed per second of ``time_limit_s``: a search stopped by this work limit
returns the same schedule on every machine (a single-worker solve usually spends 0.2-0.3 units per wall
second here, so the work limit, not the wall clock, ends it); the wall-clock limit stays the hard cap.
Measured on DeepSeek-V3 prefill EP32 (DS-prof-P): 0.05 stops at a period 12 % above what 0.2 finds, and
0.2, 1 and 10 all stop at the same period."""
WALL_CAP_FACTOR = 10.0
"""The wall-clock cap is this many times ``time_limit_s``: only a safety net. At 0.2 units per second of limit
the work limit ends a solve after about as many wall seconds as the limit on an idle core, so a cap equal to
the limit let a loaded machine stop solves early and change the schedule (measured: evaluate's bytes
differed between concurrent runs); with 10x headroom the work limit, which is machine-independent, ends it."""


def to_ns(seconds: float) -> int:
    """Seconds -> whole nanoseconds, rounded up (float noise under 1e-6 ns is not rounded up; any positive
    duration takes at least 1 ns, so ops that hold a resource never share it in the solver)."""
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"op seconds must be a finite number >= 0, got {seconds!r}")
    return max(1 if seconds > 0 else 0, math.ceil(seconds * NS_PER_S - 1e-6))


def to_ticks(seconds: float, tick_ns: int) -> int:
    """Seconds -> whole ticks of ``tick_ns``, rounded up (via :func:`to_ns`: float noise is not rounded up)."""
    return -(-to_ns(seconds) // tick_ns)


TICKS_PER_MICRO_BATCH = 10_000
"""At least this many ticks per micro-batch's ops: each op rounds up by less than one tick, so the solver's
durations exceed the true ones by under (ops / 10,000) of a micro-batch (0.2 % for 20 ops); the reported
schedule is re-costed with exact durations anyway (module docstring)."""


def tick_ns_for(micro_batch_s: float) -> int:
    """The largest power-of-ten tick (ns) that leaves ``micro_batch_s`` at least :data:`TICKS_PER_MICRO_BATCH`
    ticks (1 ns for anything under 10 us)."""
    tick = 1
    while micro_batch_s * NS_PER_S / (tick * 10) >= TICKS_PER_MICRO_BATCH:
        tick *= 10
    return tick


def sm_demand(comm_sm_fraction: float) -> int:
    """Fraction of compute units a comm kernel holds -> per-mille units."""
    if not 0.0 <= comm_sm_fraction < 1.0:
        raise ValueError(f"comm_sm_fraction must be in [0, 1), got {comm_sm_fraction!r}")
    return round(comm_sm_fraction * SM_CAPACITY)


def resource_of(op: OpCost) -> str:
    """The resource an op occupies (module docstring)."""
    if op.kind == "compute":
        return "compute"
    if op.kind != "comm":
        raise ValueError(f"op {op.name!r}: kind must be 'compute' or 'comm', got {op.kind!r}")
    if op.bound in ("scale_up", "scale_out"):
        return op.bound
    up, out = float(op.detail.get("scale_up_s", 0.0)), float(op.detail.get("scale_out_s", 0.0))
    if up != out:
        return "scale_up" if up > out else "scale_out"
    return "scale_up" if op.scale_up_bytes > op.scale_out_bytes else "scale_out"


def dependencies(names: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """Predecessors of each op of one micro-batch, as indices into ``names`` (module docstring)."""
    preds: list[tuple[int, ...]] = []
    last_main: int | None = None
    last_branch: dict[str, int] = {}
    for i, name in enumerate(names):
        prefix = next((p for p in SIDE_BRANCHES if name.startswith(p)), None)
        if prefix is not None and SIDE_BRANCHES[prefix] in names[:i]:
            preds.append((last_branch.get(prefix, names.index(SIDE_BRANCHES[prefix])),))
            last_branch[prefix] = i
        else:
            preds.append(() if last_main is None else (last_main,))
            last_main = i
    return tuple(preds)


def blocks(names: Sequence[str], resources: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """Ops grouped into the blocks the solver places: maximal runs of one chain on one resource, split after a
    fork (a block ends where another chain may start)."""
    preds = dependencies(names)
    forks = {p for ps in preds for p in ps if sum(p in q for q in preds) > 1}
    out: list[list[int]] = []
    block_of: dict[int, int] = {}
    for i, ps in enumerate(preds):
        p = ps[0] if len(ps) == 1 else None
        if p is not None and p not in forks and resources[p] == resources[i] and out[block_of[p]][-1] == p:
            block_of[i] = block_of[p]
            out[block_of[i]].append(i)
        else:
            block_of[i] = len(out)
            out.append([i])
    return tuple(tuple(b) for b in out)


@dataclass(frozen=True, kw_only=True)
class Graph:
    """Block-level view of one micro-batch."""

    blocks: tuple[tuple[int, ...], ...]
    resource: tuple[str, ...]
    block_ticks: tuple[int, ...]
    preds: tuple[tuple[int, ...], ...]
    sources: tuple[int, ...]
    sinks: tuple[int, ...]


@functools.lru_cache(maxsize=4096)
def _graph(names: tuple[str, ...], resources: tuple[str, ...], duration_ticks: tuple[int, ...]) -> Graph:
    bl = blocks(names, resources)
    block_of = {i: k for k, ops in enumerate(bl) for i in ops}
    op_preds = dependencies(names)
    preds = tuple(tuple(block_of[p] for p in op_preds[ops[0]]) for ops in bl)
    return Graph(blocks=bl, resource=tuple(resources[ops[0]] for ops in bl),
                 block_ticks=tuple(sum(duration_ticks[i] for i in ops) for ops in bl), preds=preds,
                 sources=tuple(k for k, p in enumerate(preds) if not p),
                 sinks=tuple(k for k in range(len(bl)) if not any(k in p for p in preds)))


@dataclass(frozen=True, kw_only=True)
class ScheduleInstance:
    """The quantized instance (hashable: the cache key of a solve)."""

    names: tuple[str, ...]
    resources: tuple[str, ...]
    """One of :data:`RESOURCES` per op."""
    duration_ticks: tuple[int, ...]
    """Op durations in ticks of ``tick_ns`` nanoseconds."""
    tick_ns: int = 1
    """The integer time unit, nanoseconds (:func:`tick_ns_for`)."""
    micro_batches: int
    comm_demand: int = 0
    """Per-mille compute units a comm kernel holds (0: comm kernels use no SMs)."""
    window_layers: int = 2
    """Layers in flight at once (1: one layer in isolation)."""

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.resources) == len(self.duration_ticks) and self.names):
            raise ValueError("an instance needs at least one op, with one resource and one duration each")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"op names must be unique within a layer: {self.names}")
        if set(self.resources) - set(RESOURCES) or min(self.duration_ticks) < 0:
            raise ValueError(f"resources must be in {RESOURCES} and durations >= 0")
        if self.tick_ns < 1:
            raise ValueError(f"tick_ns must be >= 1, got {self.tick_ns}")
        if self.micro_batches < 1 or self.window_layers < 1 or not 0 <= self.comm_demand < SM_CAPACITY:
            raise ValueError("need micro_batches >= 1, window_layers >= 1, 0 <= comm_demand < SM_CAPACITY")

    @property
    def graph(self) -> Graph:
        return _graph(self.names, self.resources, self.duration_ticks)

    def seconds(self, ticks: int) -> float:
        return ticks * self.tick_ns / NS_PER_S

    def shared_ticks(self, q: int) -> int:
        """Duration of compute block ``q`` launched on the units a comm kernel leaves free."""
        return -(-self.graph.block_ticks[q] * SM_CAPACITY // (SM_CAPACITY - self.comm_demand))

    def sequential_ticks(self) -> int:
        return self.micro_batches * sum(self.duration_ticks)

    def work_ticks(self) -> dict[str, int]:
        """Each resource's work per layer (floor); compute includes the SM area of comm kernels."""
        k = self.micro_batches
        out = {r: k * sum(d for d, q in zip(self.duration_ticks, self.resources, strict=True) if q == r)
               for r in RESOURCES}
        comm = out["scale_up"] + out["scale_out"]
        out["compute"] = (out["compute"] * SM_CAPACITY + comm * self.comm_demand) // SM_CAPACITY
        return out

    def period_lower_bound_ticks(self) -> int:
        """A provable lower bound on the period (:mod:`planner.cpsat.schedule_bound`): work, chain, coverage."""
        return _period_bound(self).ticks


@functools.lru_cache(maxsize=4096)
def _period_bound(inst: ScheduleInstance) -> PeriodBound:
    g = inst.graph
    bg = BlockGraph(resource=g.resource, block_ticks=g.block_ticks, preds=g.preds,
                    shared_ticks=tuple(inst.shared_ticks(q) if r == "compute" else g.block_ticks[q]
                                       for q, r in enumerate(g.resource)))
    return period_bound(bg, inst.micro_batches, inst.comm_demand)


def sequential(inst: ScheduleInstance, stats: SolveStats) -> IntSolution:
    """Every op back to back in tuple order: the no-overlap schedule (period = sum of durations)."""
    g = inst.graph
    per_mb = sum(g.block_ticks)
    starts = tuple(tuple(b * per_mb + sum(g.block_ticks[:q]) for q in range(len(g.blocks)))
                   for b in range(inst.micro_batches))
    return IntSolution(start_ticks=starts, shared=tuple((False,) * len(g.blocks) for _ in starts),
                       period_ticks=inst.sequential_ticks(), stats=stats)


class _Model:
    def __init__(self, inst: ScheduleInstance, *, max_period_ticks: int | None = None,
                 max_span_ticks: int | None = None) -> None:
        from ortools.sat.python import cp_model  # imported only where a solve runs

        self.inst, g = inst, inst.graph
        m = self.m = cp_model.CpModel()
        k, w, c = inst.micro_batches, inst.window_layers, inst.comm_demand
        ub = inst.sequential_ticks()
        self.horizon = horizon = w * ub
        lb = max(inst.work_ticks().values())  # the tighter bound only stops the search (_StopAtBound)
        self.lower_bound_ticks = inst.period_lower_bound_ticks()
        self.period = m.new_int_var(lb, max(lb, ub), "period")
        self.span = m.new_int_var(0, horizon, "span")
        m.add(self.span <= w * self.period)
        if max_period_ticks is not None:
            m.add(self.period <= max_period_ticks)
        if max_span_ticks is not None:
            m.add(self.span <= max_span_ticks)
        self.start: dict[tuple[int, int], cp_model.IntVar] = {}
        self.end: dict[tuple[int, int], cp_model.IntVar] = {}
        self.copies: dict[tuple[int, int, int], tuple[cp_model.IntVar, cp_model.IntVar]] = {}
        self.shared: dict[tuple[int, int], cp_model.IntVar] = {}
        unary: dict[str, list[cp_model.IntervalVar]] = defaultdict(list)
        full_width: list[cp_model.IntervalVar] = []
        cumulative: list[tuple[cp_model.IntervalVar, int]] = []
        for b in range(k):
            for q, (d, r) in enumerate(zip(g.block_ticks, g.resource, strict=True)):
                size: cp_model.LinearExprT = d
                if c and r == "compute" and d:
                    x = self.shared[b, q] = m.new_bool_var(f"shared_{b}_{q}")
                    size = d + (inst.shared_ticks(q) - d) * x
                for j in range(w):  # copy j: the same block in the layer j periods later
                    s = m.new_int_var(0, horizon + j * ub, f"s_{b}_{q}_{j}")
                    e = m.new_int_var(0, horizon + j * ub, f"e_{b}_{q}_{j}")
                    unary[r].append(m.new_interval_var(s, size, e, f"iv_{b}_{q}_{j}"))
                    if j:
                        m.add(s == self.start[b, q] + j * self.period)
                    else:
                        self.start[b, q], self.end[b, q] = s, e
                        m.add(e <= self.span)
                    self.copies[b, q, j] = (s, e)
                    if (b, q) in self.shared:  # the two launch modes, as optional intervals on the units
                        full = m.new_optional_fixed_size_interval_var(s, d, ~x, f"full_{b}_{q}_{j}")
                        part = m.new_optional_fixed_size_interval_var(s, inst.shared_ticks(q), x, f"part_{b}_{q}_{j}")
                        cumulative += [(full, SM_CAPACITY), (part, SM_CAPACITY - c)]
                        full_width.append(full)
                    elif c and r != "compute":
                        cumulative.append((unary[r][-1], c))
        for r, ivs in unary.items():  # redundant for comm kernels on SMs: full-width compute excludes them
            m.add_no_overlap(ivs + full_width if r != "compute" else ivs)
        if cumulative:
            m.add_cumulative([iv for iv, _ in cumulative], [dm for _, dm in cumulative], SM_CAPACITY)
        for b in range(k):
            for q, ps in enumerate(g.preds):
                for p in ps:
                    m.add(self.start[b, q] >= self.end[b, p])
            for src in g.sources:  # next layer's micro-batch b after this layer's micro-batch b
                for snk in g.sinks:
                    m.add(self.start[b, src] + self.period >= self.end[b, snk])
        for b in range(k - 1):  # micro-batches are interchangeable: order them by their first block
            m.add(self.start[b, 0] <= self.start[b + 1, 0])
        m.minimize(self.period * (horizon + 1) + self.span)

    def hint(self, sol: IntSolution) -> None:
        """Hint a complete solution of an instance with the same ops (any window: ``P >= H`` fits all)."""
        g, m, p = self.inst.graph, self.m, sol.period_ticks
        ends = {}
        for (b, q, j), (s, e) in self.copies.items():
            size = self.inst.shared_ticks(q) if sol.shared[b][q] else g.block_ticks[q]
            ends[b, q] = sol.start_ticks[b][q] + size
            m.add_hint(s, sol.start_ticks[b][q] + j * p)
            m.add_hint(e, ends[b, q] + j * p)
        for key, x in self.shared.items():
            m.add_hint(x, sol.shared[key[0]][key[1]])
        m.add_hint(self.period, p)
        m.add_hint(self.span, max(ends.values()))

    def extract(self, s: cp_model.CpSolver, stats: SolveStats) -> IntSolution:
        k, nb = self.inst.micro_batches, len(self.inst.graph.blocks)
        starts = tuple(tuple(s.value(self.start[b, q]) for q in range(nb)) for b in range(k))
        shared = tuple(tuple(bool(s.value(self.shared[b, q])) if (b, q) in self.shared else False
                             for q in range(nb)) for b in range(k))
        return IntSolution(start_ticks=starts, shared=shared, period_ticks=s.value(self.period), stats=stats)


def _stop_at_bound(period: cp_model.IntVar, bound_ticks: int) -> cp_model.CpSolverSolutionCallback:
    """A callback that ends the search at the first solution whose period meets the provable bound: its period
    is optimal.  The search up to there is the one without the callback (single worker), so the period found
    is never worse than the solve run to its work limit."""
    from ortools.sat.python import cp_model

    class StopAtBound(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            if self.value(period) <= bound_ticks:
                self.stop_search()

    return StopAtBound()


def solve_instance(inst: ScheduleInstance, *, time_limit_s: float = 5.0, seed: int = 0, workers: int = 1,
                   hint: IntSolution | None = None, max_period_ticks: int | None = None,
                   max_span_ticks: int | None = None) -> IntSolution | None:
    """Build, hint (``hint``, else the no-overlap schedule) and solve one instance.  ``max_*`` bound the period
    and span (for the tests); None when the solver finds no solution in time or proves there is none.  Status
    OPTIMAL also when the period meets the provable bound (:func:`_stop_at_bound`)."""
    from ortools.sat.python import cp_model

    model = _Model(inst, max_period_ticks=max_period_ticks, max_span_ticks=max_span_ticks)
    model.hint(hint or sequential(inst, SolveStats(status="HINT", objective=0.0, bound=0.0, gap=0.0, wall_s=0.0)))
    solver = cp_model.CpSolver()
    spend = budget.current()  # the command's --time-limit: the wall cap, or what the budget has left
    allotted = spend.allot(time_limit_s * WALL_CAP_FACTOR)
    solver.parameters.max_time_in_seconds = allotted
    solver.parameters.max_deterministic_time = time_limit_s * WORK_UNITS_PER_S
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = workers  # 1: same instance + seed -> same schedule, when solved to the end
    # restarts find good launch modes (comm kernels on SMs) far sooner than the default single-worker search
    solver.parameters.search_branching = cp_model.PORTFOLIO_WITH_QUICK_RESTART_SEARCH
    t0 = time.perf_counter()
    status = solver.solve(model.m, _stop_at_bound(model.period, model.lower_bound_ticks))
    wall = time.perf_counter() - t0
    budget.refuse_invalid(solver.status_name(status), "layer schedule", model.m, "the ops' durations")
    spend.finish(f"layer schedule ({inst.micro_batches} micro-batches, {len(inst.names)} ops)",
                 status=solver.status_name(status), wall_s=wall, allotted_s=allotted,
                 work_units=solver.deterministic_time, work_limit_units=time_limit_s * WORK_UNITS_PER_S)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    obj = solver.value(model.period)
    bound = max(model.lower_bound_ticks, int(solver.best_objective_bound // (model.horizon + 1)))
    name = "OPTIMAL" if obj <= bound else solver.status_name(status)  # the period meets a provable bound
    stats = SolveStats(status=name, objective=inst.seconds(obj), bound=inst.seconds(bound),
                       gap=(obj - bound) / max(1, obj), wall_s=wall)
    return model.extract(solver, stats)


SEEDS_PER_SOLVE = 3
"""Periodic solves per layer where comm kernels hold compute units: seeds ``seed .. seed+2`` in turn, each
hinted with the best schedule so far. One single-worker search can stall on such instances (measured on the
SGLang prefill anchors: 33.2-35.9 ms per layer over seeds 0-3 at 1K input, 35.8-40.0 ms at 4K); chained over
three seeds, every starting seed tried reached 33.23 and 35.81 ms. Decode instances (no SM share) are solved
once: their schedule equals the closed form to 0.1 %."""


def solve_layer(inst: ScheduleInstance, *, time_limit_s: float, seed: int) -> IntSolution:
    """The periodic solve, hinted with the (quick) one-layer-in-isolation solve, which is feasible for any
    window, and repeated over :data:`SEEDS_PER_SOLVE` seeds where comm kernels hold compute units.  Never worse
    than the hint or the no-overlap schedule, returned (status UNKNOWN, bound: the busiest resource) when no
    periodic solve finds one at least as good in time.  First :mod:`planner.cpsat.schedule_exact` solves it
    without the solver; only where that search stops before its proof does CP-SAT run (hinted with the better
    of its schedule and the one-layer solve)."""
    exact = schedule_exact.solve_exact(inst)
    if exact is not None and exact.stats.status == "OPTIMAL":
        return exact
    t0 = time.perf_counter()
    hint = None
    if inst.window_layers > 1:
        alone = dataclasses.replace(inst, window_layers=1)
        hint = solve_instance(alone, time_limit_s=time_limit_s / 4, seed=seed)
    if exact is not None and (hint is None or exact.period_ticks < hint.period_ticks):
        hint = exact  # the exact search's best schedule, where it stopped before its proof
    best = None
    for k in range(SEEDS_PER_SOLVE if inst.comm_demand else 1):
        sol = solve_instance(inst, time_limit_s=time_limit_s * (0.75 if hint else 1.0), seed=seed + k,
                             hint=best or hint)
        if sol is not None and (best is None or sol.period_ticks < best.period_ticks):
            best = sol
        if best is not None and best.stats.status == "OPTIMAL":
            break
    if best is not None and (hint is None or best.period_ticks <= hint.period_ticks):
        return best
    best = hint or sequential(inst, SolveStats(status="", objective=0.0, bound=0.0, gap=0.0, wall_s=0.0))
    lb = inst.period_lower_bound_ticks()
    stats = SolveStats(status="UNKNOWN", objective=inst.seconds(best.period_ticks), bound=inst.seconds(lb),
                       gap=(best.period_ticks - lb) / max(1, best.period_ticks), wall_s=time.perf_counter() - t0)
    return dataclasses.replace(best, stats=stats)


def _float_period(inst: ScheduleInstance, sol: IntSolution, ivs: Sequence[ScheduledOp]) -> float:
    """Smallest period that keeps the float schedule valid with the solver's order on every resource: blocks
    disjoint in the integer solution stay disjoint (Helly: no new overlap, so no new capacity excess)."""
    g, w, p_int = inst.graph, inst.window_layers, sol.period_ticks
    at = {(o.micro_batch, o.name): o for o in ivs}
    first = {(b, q): at[b, inst.names[ops[0]]] for b in range(inst.micro_batches) for q, ops in enumerate(g.blocks)}
    last = {(b, q): at[b, inst.names[g.blocks[q][-1]]] for b, q in first}
    lo = (max(o.end_s for o in ivs) - min(o.start_s for o in ivs)) / w  # the window: H <= W P
    for b in range(inst.micro_batches):
        lo = max(lo, *(last[b, t].end_s - first[b, s].start_s for s in g.sources for t in g.sinks))
    ints = {(b, q): (s, s + (inst.shared_ticks(q) if sol.shared[b][q] else g.block_ticks[q]))
            for b, starts in enumerate(sol.start_ticks) for q, s in enumerate(starts)}
    for u, (su, eu) in ints.items():
        for v, (sv, ev) in ints.items():
            if eu == su or ev == sv or not (g.resource[u[1]] == g.resource[v[1]] or inst.comm_demand):
                continue  # no common resource (with comm kernels on SMs, all share the compute units)
            for j in range(1, w):
                if eu <= sv + j * p_int:  # u (layer 0) before v (layer j): keep it so
                    lo = max(lo, (last[u].end_s - first[v].start_s) / j)
    return max(lo, 0.0)


def _extract(inst: ScheduleInstance, ops: Sequence[OpCost], sol: IntSolution,
             start_s: Sequence[Sequence[float]] | None = None) -> LayerSchedule:
    """Float schedule from a solution: block starts ``start_s`` (default: the integer starts), exact durations."""
    g, c = inst.graph, inst.comm_demand
    stretch = SM_CAPACITY / (SM_CAPACITY - c)
    starts_s = start_s or [[inst.seconds(s) for s in mb] for mb in sol.start_ticks]
    ivs = []
    for b, (starts, shared) in enumerate(zip(starts_s, sol.shared, strict=True)):
        for block, t, sh in zip(g.blocks, starts, shared, strict=True):
            for i in block:  # back to back, each kernel stretched when its block shares the units
                end = t + ops[i].seconds * (stretch if sh else 1.0)
                ivs.append(ScheduledOp(micro_batch=b, name=ops[i].name, kind=ops[i].kind,
                                       resource=inst.resources[i], start_s=t, end_s=end, sm_shared=sh))
                t = end
    ivs.sort(key=lambda o: (o.micro_batch, inst.names.index(o.name)))
    period = _float_period(inst, sol, ivs)
    work = {r: inst.micro_batches * sum((op.seconds for op, q in zip(ops, inst.resources, strict=True) if q == r),
                                        0.0) for r in RESOURCES}
    work["compute"] += c / SM_CAPACITY * (work["scale_up"] + work["scale_out"])  # SM area of comm kernels
    busiest = max(RESOURCES, key=lambda r: work[r])
    comm = _union([p for o in ivs if o.kind == "comm" for p in fold(o.start_s, o.end_s, period)])
    comp = _union([p for o in ivs if o.kind == "compute" for p in fold(o.start_s, o.end_s, period)])
    exposed = sum(y - x for x, y in comm) - sum(max(0.0, min(y, v) - max(x, u)) for x, y in comm for u, v in comp)
    return LayerSchedule(
        makespan_s=period, layer_latency_s=max(o.end_s for o in ivs) - min(o.start_s for o in ivs),
        no_overlap_s=inst.micro_batches * sum(op.seconds for op in ops), busiest_resource=busiest,
        busiest_resource_s=work[busiest], work_s=work,
        busy_s={r: sum((o.end_s - o.start_s for o in ivs if o.resource == r), 0.0) for r in RESOURCES},
        exposed_comm_s=max(0.0, exposed), intervals=tuple(ivs),
        dependencies=tuple((inst.names[p], inst.names[i]) for i, ps in enumerate(dependencies(inst.names))
                           for p in ps),
        micro_batches=inst.micro_batches, comm_sm_fraction=c / SM_CAPACITY, window_layers=inst.window_layers,
        stats=sol.stats)


def check_schedule(sch: LayerSchedule) -> list[str]:
    """Violations found without the solver, on the period-folded timeline: precedence, next-layer precedence,
    one op at a time per link and on the compute stream, compute-unit capacity."""
    errs: list[str] = []
    p, f = sch.makespan_s, sch.comm_sm_fraction
    at = {(o.micro_batch, o.name): o for o in sch.intervals}
    names = [o.name for o in sch.intervals if o.micro_batch == 0]
    sources = [x for x in names if all(v != x for _, v in sch.dependencies)]
    sinks = [x for x in names if all(u != x for u, _ in sch.dependencies)]
    for b in range(sch.micro_batches):
        errs += [f"mb{b}: {v} starts before {u} ends" for u, v in sch.dependencies
                 if at[b, u].end_s > at[b, v].start_s + _TOL_S]
        errs += [f"mb{b}: next layer's {s} starts before {t} ends" for s in sources for t in sinks
                 if at[b, s].start_s + p < at[b, t].end_s - _TOL_S]
    for r in RESOURCES:
        pieces = sorted(x for o in sch.intervals if o.resource == r for x in fold(o.start_s, o.end_s, p))
        errs += [f"{r}: two ops at once at {a:.9f} s" for (_, e), (a, _) in zip(pieces, pieces[1:], strict=False)
                 if a < e - _TOL_S]
    events: list[tuple[float, float]] = []
    for o in sch.intervals if f > 0 else ():
        use = f if o.kind == "comm" else (1 - f if o.sm_shared else 1.0)
        events += [ev for a, e in fold(o.start_s, o.end_s, p) for ev in ((a + _TOL_S, use), (e - _TOL_S, -use))]
    load = 0.0
    for t, du in sorted(events):
        load += du
        if load > 1 + 1e-9:
            errs.append(f"compute units over capacity at {t:.9f} s ({load:.3f})")
            break
    return errs


def instance_of(ops: Sequence[OpCost], *, micro_batches: int, comm_sm_fraction: float,
                window_layers: int = 2) -> ScheduleInstance:
    tick = tick_ns_for(sum(o.seconds for o in ops))
    return ScheduleInstance(names=tuple(o.name for o in ops), resources=tuple(resource_of(o) for o in ops),
                            duration_ticks=tuple(to_ticks(o.seconds, tick) for o in ops), tick_ns=tick,
                            micro_batches=micro_batches,
                            comm_demand=sm_demand(comm_sm_fraction), window_layers=window_layers)


_solve_cached = functools.lru_cache(maxsize=4096)(solve_layer)


def schedule_layer(ops: tuple[OpCost, ...], *, micro_batches: int, comm_sm_fraction: float,
                   time_limit_s: float = 5.0, seed: int = 0, window_layers: int = 2) -> LayerSchedule:
    """Schedule one micro-batch's ``ops`` for ``micro_batches`` micro-batches (module docstring).  The integer
    solution is cached on the quantized instance (names, resources, ns durations, K, SM share, window) with
    the limit and seed, so each distinct op-duration set is solved once; the float re-costing uses this call's
    exact seconds."""
    inst = instance_of(ops, micro_batches=micro_batches, comm_sm_fraction=comm_sm_fraction,
                       window_layers=window_layers)
    sol = _solve_cached(inst, time_limit_s=time_limit_s, seed=seed)
    sch = _extract(inst, ops, sol)
    if sch.makespan_s > sch.no_overlap_s:  # within the ns rounding of back to back: use it, in exact floats
        seq, t, starts = sequential(inst, sol.stats), 0.0, []
        for _ in range(micro_batches):
            starts.append([])
            for block in inst.graph.blocks:
                starts[-1].append(t)
                t += sum(ops[i].seconds for i in block)
        sch = _extract(inst, ops, seq, starts)
    return sch


HOOK_TIME_LIMIT_S = 1.0
"""Limit of the schedules behind ``evaluate``'s step times (and the reports that show them)."""


def overlapped_layer_time(micro_batch_ops: tuple[OpCost, ...], micro_batches: int, comm_sm_fraction: float,
                          *, time_limit_s: float = HOOK_TIME_LIMIT_S) -> float:
    """Steady-state seconds per layer: what ``cost_models.step`` calls instead of its closed form."""
    return schedule_layer(micro_batch_ops, micro_batches=micro_batches, comm_sm_fraction=comm_sm_fraction,
                          time_limit_s=time_limit_s).makespan_s


OverlapModel = Callable[[tuple["OpCost", ...], int, float], float]
"""The hook's type: ``(one micro-batch's ops, micro-batches, comm SM fraction) -> seconds per layer``."""
