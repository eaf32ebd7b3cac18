"""CP-SAT expert placement: replica counts and replica-to-device assignment for each MoE layer.

Output per layer (:class:`planner.cpsat.placement_greedy.LayerPlacement`) is the slot map that serving engines'
expert-load balancers load (DeepSeek EPLB's ``phy2log`` / ``log2phy`` / ``logcnt``, as used by vLLM and SGLang):
``physical_to_logical`` (slot -> expert), ``logical_to_physical`` (expert -> its slots, padded with -1) and
``replica_counts`` (expert -> replicas). Slot ``s`` lives on device ``s // slots_per_device``.

Assignment model (build / solve / extract: :class:`AssignInstance`, :class:`_AssignModel`,
:func:`solve_assignment`); replicas of experts ``j`` go on devices ``d``:

* ``x[j,d]`` bool: a replica of j on d. Being a bool it allows at most one replica of an expert per device.
* slots: ``sum_j x[j,d] == slots_per_device`` on every device.
* replica counts: ``min_replicas[j] <= sum_d x[j,d] <= max_replicas[j]``. A fixed count has a fixed replica
  load ``w_j``. A free count picks ``z[j,k]`` (exactly one k) and loads device d with ``c[j,d] >= w_j(k) *
  (x[j,d] + z[j,k] - 1)``, ``w_j(k) = tokens_j / k``, plus ``sum_d c[j,d] >= sum_k k w_j(k) z[j,k]`` for the
  LP; so replica counts are re-optimised jointly with the assignment.
* max load: every device load ``<= M``; ``M <= max_device_units`` when a target is given; ``M >= floor_units``
  (a floor the caller knows it cannot beat, so the solve can stop there). Objective: minimise M.

Node model (:class:`NodeInstance`, :func:`solve_nodes`), the lexicographic second step: with every device's
contents fixed, choose which devices share a node to minimise the (routing group, node) pairs that hold a
replica (the scale-out traffic proxy). Permuting whole devices leaves every load, so the max load, unchanged.

Quantization (the only place tokens become integers): one unit is ``1 / UNITS_PER_MEAN_DEVICE`` of the layer's
mean device load, so a device of ``s`` slots carries at most ``s / 2`` units of rounding (4.5e-5 of the mean
for 9 slots). Every change the search keeps is re-costed in floats and kept only if no worse there.

Search (:func:`place_layer`). The whole layer as one assignment model (256 experts x 32-64 devices, 8-16k
Booleans) does not improve a greedy hint within a second on one worker (measured), so the same model is
solved on neighbourhoods (large-neighbourhood search): start from the best greedy placement, free the
most-loaded device and one partner (the least-loaded partners in turn, fixed counts), and after a run of
failed pairs four devices with replica counts free; every sub-solve is hinted with the current placement,
so it never returns worse. Stop within ``gap_limit`` of the lower bound, after ``max_failures`` sub-solves in
a row without progress, once the sub-solves have used ``work_limit_units`` of CP-SAT deterministic time, or at the
wall-clock limit; then the node model. Every sub-solve has a deterministic limit, ``num_workers=1`` and a seed,
so the result depends only on the inputs and the seed unless the wall-clock limit is what stopped it
(``LayerResult.stopped_by == "time_limit"``, which the benchmark counts).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ortools.sat.python import cp_model

from planner.cpsat import budget
from planner.cpsat import placement_greedy as greedy
from planner.cpsat.placement_greedy import LayerPlacement, PlacementScore
from planner.cpsat.placement_result import LayerResult, PlacementResult
from planner.cpsat.stats import SolveStats
from planner.inputs.loads import ExpertLoads

UNITS_PER_MEAN_DEVICE = 100_000
"""Integer load units per mean device load of the layer (the quantization resolution)."""

Assignment = tuple[tuple[int, ...], ...]
"""Per device of an instance, the instance-expert indices it holds."""


def to_units(tokens: float, tokens_per_unit: float) -> int:
    """Tokens -> integer load units (round half to even)."""
    return round(tokens / tokens_per_unit)


@dataclass(frozen=True, kw_only=True)
class AssignInstance:
    """Replicas of some experts onto some devices whose slots are all free (typed instance, no solver objects)."""

    expert_tokens: tuple[float, ...]
    """Per expert, the tokens its replicas on these devices carry together."""
    min_replicas: tuple[int, ...]
    """Per expert, the fewest replicas on these devices (>= 1)."""
    max_replicas: tuple[int, ...]
    """Per expert, the most replicas (equal to ``min_replicas`` for a fixed count)."""
    num_devices: int
    slots_per_device: int
    tokens_per_unit: float
    """Quantization: tokens per integer load unit."""
    max_device_units: int | None = None
    """Target: no device above this many units (None: none)."""
    floor_units: int = 0
    """A largest load below this counts as this (``M >= floor``), so the solve may stop once it gets there."""

    def replica_units(self, j: int, k: int) -> int:
        """Load units of one replica of expert j when it has k replicas here."""
        return to_units(self.expert_tokens[j] / k, self.tokens_per_unit)


class _AssignModel:
    """Build step of an :class:`AssignInstance`."""

    def __init__(self, inst: AssignInstance) -> None:
        self.inst = inst
        m = self.m = cp_model.CpModel()
        n_j, n_d = len(inst.expert_tokens), inst.num_devices
        self.x = [[m.new_bool_var(f"x{j}_{d}") for d in range(n_d)] for j in range(n_j)]
        for d in range(n_d):
            m.add(sum(self.x[j][d] for j in range(n_j)) == inst.slots_per_device)
        terms: list[list[cp_model.LinearExprT]] = [[] for _ in range(n_d)]
        self.z: dict[tuple[int, int], cp_model.IntVar] = {}
        self.c: dict[tuple[int, int], cp_model.IntVar] = {}
        ub = 0
        for j in range(n_j):
            lo, hi = inst.min_replicas[j], inst.max_replicas[j]
            count = sum(self.x[j])
            m.add_linear_constraint(count, lo, hi)
            if inst.expert_tokens[j] == 0:
                continue
            ub += inst.replica_units(j, lo)
            if lo == hi:
                for d in range(n_d):
                    terms[d].append(inst.replica_units(j, lo) * self.x[j][d])
                continue
            ks = range(lo, hi + 1)
            for k in ks:
                self.z[j, k] = m.new_bool_var(f"z{j}_{k}")
            m.add_exactly_one(self.z[j, k] for k in ks)
            m.add(sum(k * self.z[j, k] for k in ks) == count)
            for d in range(n_d):
                c = self.c[j, d] = m.new_int_var(0, inst.replica_units(j, lo), f"c{j}_{d}")
                for k in ks:
                    m.add(c >= inst.replica_units(j, k) * (self.x[j][d] + self.z[j, k] - 1))
                terms[d].append(c)
            m.add(sum(self.c[j, d] for d in range(n_d))
                  >= sum(k * inst.replica_units(j, k) * self.z[j, k] for k in ks))
        self.max_load = m.new_int_var(0, max(ub, inst.floor_units), "max_load")
        for d in range(n_d):
            m.add(sum(terms[d]) <= self.max_load)
        if inst.max_device_units is not None:
            m.add(self.max_load <= inst.max_device_units)
        if inst.floor_units > 0:
            m.add(self.max_load >= inst.floor_units)
        m.minimize(self.max_load)

    def hint(self, devices: Assignment) -> None:
        inst = self.inst
        counts = [0] * len(inst.expert_tokens)
        for dev in devices:
            for j in dev:
                counts[j] += 1
        loads = [0] * inst.num_devices
        for d, dev in enumerate(devices):
            for j in range(len(inst.expert_tokens)):
                self.m.add_hint(self.x[j][d], j in dev)
            loads[d] = sum(inst.replica_units(j, counts[j]) for j in dev if inst.expert_tokens[j])
        for (j, k), z in self.z.items():
            self.m.add_hint(z, counts[j] == k)
        for (j, d), c in self.c.items():
            self.m.add_hint(c, inst.replica_units(j, counts[j]) if j in devices[d] else 0)
        self.m.add_hint(self.max_load, max(max(loads), inst.floor_units))

    def extract(self, solver: cp_model.CpSolver) -> Assignment:
        n_j = len(self.inst.expert_tokens)
        return tuple(tuple(j for j in range(n_j) if solver.boolean_value(self.x[j][d]))
                     for d in range(self.inst.num_devices))


def _solve(m: cp_model.CpModel, *, time_limit_s: float, seed: int, num_workers: int,
           deterministic_limit: float | None, stop_gap: float) -> tuple[cp_model.CpSolver, SolveStats, bool]:
    """One solve with a wall and a deterministic limit, a seed and a gap stop; the solver (for extract and its
    ``deterministic_time``), the stats and whether a solution was found."""
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.001, time_limit_s)
    if deterministic_limit is not None:
        solver.parameters.max_deterministic_time = deterministic_limit
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = num_workers
    solver.parameters.absolute_gap_limit = stop_gap
    t0 = time.perf_counter()
    status = solver.solve(m)
    wall = time.perf_counter() - t0
    budget.refuse_invalid(solver.status_name(status), "expert placement", m, "the router counts (--expert-load)")
    ok = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    obj, bound = (solver.objective_value, solver.best_objective_bound) if ok else (0.0, 0.0)
    gap = (obj - bound) / max(1.0, abs(bound))
    return solver, SolveStats(status=solver.status_name(status), objective=obj, bound=bound, gap=gap, wall_s=wall), ok


def solve_assignment(inst: AssignInstance, hint: Assignment | None, *, time_limit_s: float, seed: int,
                     num_workers: int = 1, deterministic_limit: float | None = None, stop_gap: float = 0.0,
                     ) -> tuple[Assignment | None, SolveStats]:
    """Build, hint, solve, extract; objective and bound in load units. Stops once the objective is within
    ``stop_gap`` units of the proven bound. None (with the status) when no solution was found."""
    found, stats, _ = _assign(inst, hint, time_limit_s=time_limit_s, seed=seed, num_workers=num_workers,
                              deterministic_limit=deterministic_limit, stop_gap=stop_gap)
    return found, stats


def _assign(inst: AssignInstance, hint: Assignment | None, *, time_limit_s: float, seed: int, num_workers: int,
            deterministic_limit: float | None, stop_gap: float) -> tuple[Assignment | None, SolveStats, float]:
    """:func:`solve_assignment` plus the CP-SAT deterministic seconds it used (the search's effort budget)."""
    model = _AssignModel(inst)
    if hint is not None:
        model.hint(hint)
    solver, stats, ok = _solve(model.m, time_limit_s=time_limit_s, seed=seed, num_workers=num_workers,
                               deterministic_limit=deterministic_limit, stop_gap=stop_gap)
    return (model.extract(solver) if ok else None), stats, solver.deterministic_time


@dataclass(frozen=True, kw_only=True)
class NodeInstance:
    """Which devices share a node, with every device's contents fixed."""

    device_groups: tuple[frozenset[int], ...]
    """Per device, the groups (see :func:`planner.cpsat.placement_greedy.routing_groups`) it holds a replica of."""
    devices_per_node: int


def solve_nodes(inst: NodeInstance, *, time_limit_s: float, seed: int, num_workers: int = 1,
                deterministic_limit: float | None = None) -> tuple[tuple[int, ...], SolveStats]:
    """Device order, node-major (node n gets positions ``n * devices_per_node ...``), with the fewest
    (group, node) pairs found; hinted with the current order, so never worse than it."""
    order, stats, _ = _nodes(inst, time_limit_s=time_limit_s, seed=seed, num_workers=num_workers,
                             deterministic_limit=deterministic_limit)
    return order, stats


def _nodes(inst: NodeInstance, *, time_limit_s: float, seed: int, num_workers: int,
           deterministic_limit: float | None) -> tuple[tuple[int, ...], SolveStats, float]:
    n_d, dpn = len(inst.device_groups), inst.devices_per_node
    n_n = n_d // dpn
    m = cp_model.CpModel()
    a = [[m.new_bool_var(f"a{d}_{n}") for n in range(n_n)] for d in range(n_d)]
    for d in range(n_d):
        m.add_exactly_one(a[d])
    for n in range(n_n):
        m.add(sum(a[d][n] for d in range(n_d)) == dpn)
    m.add(a[0][0] == 1)  # nodes are interchangeable: device 0 opens node 0
    y = {}
    for g in sorted(set().union(*inst.device_groups)):
        for n in range(n_n):
            y[g, n] = m.new_bool_var(f"y{g}_{n}")
            for d in range(n_d):
                if g in inst.device_groups[d]:
                    m.add_implication(a[d][n], y[g, n])
            m.add_hint(y[g, n], any(g in inst.device_groups[d] for d in range(n * dpn, (n + 1) * dpn)))
    for d in range(n_d):
        for n in range(n_n):
            m.add_hint(a[d][n], d // dpn == n)
    m.minimize(sum(y.values()))
    solver, stats, ok = _solve(m, time_limit_s=time_limit_s, seed=seed, num_workers=num_workers,
                               deterministic_limit=deterministic_limit, stop_gap=0.0)
    if not ok:
        return tuple(range(n_d)), stats, solver.deterministic_time
    order = [d for n in range(n_n) for d in range(n_d) if solver.boolean_value(a[d][n])]
    return tuple(order), stats, solver.deterministic_time


LAYER_WALL_CAP_S = 1.0
"""``place``'s wall-clock cap per layer (a safety net: the 0.1-unit work limit ends a layer first)."""


def place_all(loads: ExpertLoads, *, num_devices: int, devices_per_node: int, slots: int,
              time_limit_s: float = 1.5, seed: int = 0, num_groups: int = 1, topk_groups: int = 1,
              num_workers: int = 1, work_limit_units: float = 0.1,
              progress: Callable[[int, int], None] | None = None) -> PlacementResult:
    """:func:`place_layer` on every layer of ``loads``; ``time_limit_s`` (a wall cap) and ``work_limit_units`` are
    per layer. Under a command's ``--time-limit`` (:mod:`planner.cpsat.budget`) each layer gets at most an equal
    share of what is left, so all layers together stay within it. ``progress(done, total)`` after each layer."""
    t0 = time.perf_counter()
    spend = budget.current()
    out = []
    for i, row in enumerate(loads.tokens):
        allotted = spend.allot(time_limit_s, parts=len(loads.tokens) - i)
        r = place_layer(row, layer=i, num_devices=num_devices, devices_per_node=devices_per_node, slots=slots,
                        time_limit_s=allotted, seed=seed, num_groups=num_groups, topk_groups=topk_groups,
                        num_workers=num_workers, work_limit_units=work_limit_units)
        spend.charge(r.stats.wall_s)
        if r.stopped_by in ("effort", "time_limit"):
            spend.stopped.append(budget.SolveRecord(solve=f"placement layer {i}", status=r.stats.status,
                                                    stopped_by="work_limit" if r.stopped_by == "effort" else "wall_limit"))
        out.append(r)
        if progress is not None:
            progress(i + 1, len(loads.tokens))
    layers = tuple(out)
    return PlacementResult(layers=layers, num_devices=num_devices, devices_per_node=devices_per_node, slots=slots,
                           num_groups=num_groups, topk_groups=topk_groups, time_limit_s=time_limit_s,
                           work_limit_units=work_limit_units, seed=seed, source=loads.source, wall_s=time.perf_counter() - t0)


def place_layer(expert_tokens: tuple[float, ...] | list[float], *, num_devices: int, devices_per_node: int,
                slots: int, time_limit_s: float = 1.5, seed: int = 0, num_groups: int = 1, topk_groups: int = 1,
                num_workers: int = 1, layer: int = 0, work_limit_units: float = 0.1, gap_limit: float = 1e-3,
                max_failures: int = 20,
                node_time_limit_s: float = 0.2, node_work_limit_units: float = 0.05) -> LayerResult:
    """Place one layer (see the module docstring); ``expert_tokens`` is its row of the load matrix.

    ``time_limit_s``: wall-clock cap for the layer (a safety net: stopping there makes the result depend on
    machine speed). ``work_limit_units``: CP-SAT deterministic time for the balance search, the budget that normally
    ends it, so that a seed gives the same placement on any machine.

    ``num_workers``: CP-SAT workers per solve; 1 is reproducible, 2 is allowed but not.
    ``gap_limit``: stop balancing once the max load is within this fraction of the lower bound (and strictly
    below the hierarchical baseline, when that is above the bound).
    ``node_time_limit_s``: wall seconds reserved out of ``time_limit_s`` for the node solve, whose CP-SAT
    deterministic limit is ``node_work_limit_units`` (0.05 took 0.1-0.2 s on 64 devices, measured).
    """
    t0 = time.perf_counter()
    tokens = tuple(float(t) for t in expert_tokens)
    n_exp = len(tokens)
    if num_devices < 1 or devices_per_node < 1 or num_devices % devices_per_node:
        raise ValueError(f"{num_devices} devices do not split into nodes of {devices_per_node}")
    group_of = greedy.routing_groups(n_exp, num_groups)

    def score(p: LayerPlacement) -> PlacementScore:
        return greedy.score_placement(p, tokens, devices_per_node=devices_per_node, num_groups=num_groups,
                                      topk_groups=topk_groups)

    hier = score(greedy.greedy_hierarchical(tokens, num_devices=num_devices, devices_per_node=devices_per_node,
                                            slots=slots, num_groups=num_groups))
    glob = score(greedy.greedy_global(tokens, num_devices=num_devices, slots=slots))
    start = min([glob, hier, *(score(p) for p in _split_fit_starts(tokens, num_devices, slots))],
                key=lambda s: s.max_device_tokens)
    bound = greedy.lower_bound_tokens(tokens, num_devices, slots)
    nodes = num_devices // devices_per_node
    node_s = min(node_time_limit_s, time_limit_s / 2) if nodes > 1 else 0.0
    search = _LayerSearch(tokens, start.placement, bound_tokens=bound, seed=seed, num_workers=num_workers,
                          deadline=t0 + time_limit_s - node_s)
    # within gap_limit of the bound is done, but never stop on a tie with the baseline when it is above the bound
    goal = max(min(bound * (1 + gap_limit), hier.max_device_tokens * (1 - 1e-9)), bound + search.tolerance_tokens)
    stopped_by = search.balance(max_failures, goal, work_limit_units)
    best = score(LayerPlacement.from_devices(search.devices, n_exp))
    left = t0 + time_limit_s - time.perf_counter()
    if nodes > 1 and left <= 0:
        stopped_by = "time_limit"  # no time left for the node solve
    elif nodes > 1:
        device_groups = tuple(frozenset(group_of[e] for e in dev) for dev in best.placement.devices)
        order, node_stats, node_work = _nodes(NodeInstance(device_groups=device_groups,
                                                           devices_per_node=devices_per_node),
                                              time_limit_s=left, seed=seed, num_workers=num_workers,
                                              deterministic_limit=node_work_limit_units)
        grouped = score(LayerPlacement.from_devices([best.placement.devices[d] for d in order], n_exp))
        best = grouped if grouped.group_node_pairs < best.group_node_pairs else best
        search.solves += 1
        search.work_units += node_work
        stopped_by = "time_limit" if node_stats.wall_s >= 0.99 * left else stopped_by
    if best.max_device_tokens > start.max_device_tokens * (1 + 1e-9):  # cannot happen: every move is re-costed
        raise AssertionError("search returned a placement worse than its greedy start")
    if violations := greedy.placement_violations(best.placement):
        raise AssertionError(f"search broke the placement rules: {violations[:3]}")
    at_bound = best.max_device_tokens <= bound + search.tolerance_tokens
    stats = SolveStats(status="OPTIMAL" if at_bound else "FEASIBLE", objective=best.max_device_tokens, bound=bound,
                       gap=(best.max_device_tokens - bound) / bound if bound else 0.0,
                       wall_s=time.perf_counter() - t0)
    return LayerResult(layer=layer, cpsat=best, greedy_hierarchical=hier, greedy_global=glob,
                       lower_bound_tokens=bound, stats=stats, solves=search.solves, work_units=search.work_units,
                       stopped_by=stopped_by)


def _split_fit_starts(tokens: tuple[float, ...], num_devices: int, slots: int) -> list[LayerPlacement]:
    """:func:`planner.cpsat.placement_greedy.split_fit_placement` keeping back all, 1/2, 1/4 and 1/8 of the spare
    slots (which one packs best varies by layer; measured on the DeepSeek-V3 matrix)."""
    spare = slots - len(tokens)
    found = (greedy.split_fit_placement(tokens, num_devices=num_devices, slots=slots, reserve=k)
             for k in sorted({spare, spare // 2, spare // 4, spare // 8} - {0}))
    return [p for p in found if p is not None]


class _LayerSearch:
    """Large-neighbourhood search over one layer's placement; each move is one hinted CP-SAT sub-solve."""

    PAIR_PARTNERS = 8
    """Pair moves tried around one most-loaded device before wider moves."""
    WIDE_DEVICES = 4
    """Devices in a wide move (more when the contained expert has more replicas)."""
    COUNT_WINDOW = 2
    """In a wide move, a contained expert's replica count may move this far from its current count."""
    SUB_DETERMINISTIC_S = 0.1
    """CP-SAT deterministic-time limit of one sub-solve (up to about 0.3 s of wall time here, measured)."""

    def __init__(self, tokens: tuple[float, ...], start: LayerPlacement, *, bound_tokens: float, seed: int,
                 num_workers: int, deadline: float) -> None:
        self.tokens = tokens
        self.devices = [list(dev) for dev in start.devices]
        self.r = list(start.replica_counts)
        self.spd = start.slots_per_device
        mean = sum(tokens) / len(self.devices)
        self.tokens_per_unit = mean / UNITS_PER_MEAN_DEVICE if mean > 0 else 1.0
        self.tolerance_tokens = self.spd * self.tokens_per_unit
        """Rounding a device can carry (half a unit per slot, twice over): closer to the bound is optimal."""
        self.bound = bound_tokens
        self.loads = [self._load(d) for d in range(len(self.devices))]
        self.rng = random.Random(seed)
        self.seed, self.num_workers, self.deadline = seed, num_workers, deadline
        self.solves = 0
        self.work_units = 0.0
        """CP-SAT deterministic time spent so far."""

    def _load(self, d: int) -> float:
        return sum(self.tokens[e] / self.r[e] for e in self.devices[d])

    def _left_s(self) -> float:
        return self.deadline - time.perf_counter()

    def balance(self, max_failures: int, goal_tokens: float, work_limit_units: float) -> str:
        """Move until the max load is at most ``goal_tokens``; returns why it stopped (see
        :attr:`SolveStats.stopped_by`). Progress: the max load, or the number of devices at it, drops."""
        failures, it = 0, 0
        while True:
            top = max(self.loads)
            if top <= self.bound + self.tolerance_tokens:
                return "bound"
            if top <= goal_tokens:
                return "gap_limit"
            if failures >= max_failures:
                return "no_progress"
            if self.work_units >= work_limit_units:
                return "effort"
            if self._left_s() <= 0:
                return "time_limit"
            top_n = sum(1 for v in self.loads if v >= top - 1e-9)
            chosen, flexible = self._neighbourhood(failures)
            self._move(chosen, it, flexible)
            after = max(self.loads)
            after_n = sum(1 for v in self.loads if v >= after - 1e-9)
            failures = 0 if after < top - 1e-9 or after_n < top_n else failures + 1
            it += 1

    def _neighbourhood(self, failures: int) -> tuple[list[int], bool]:
        """A most-loaded device and partners, and whether replica counts may change.

        First pairs with the least-loaded partners in turn (two devices, fixed counts: fast and exact); after
        ``PAIR_PARTNERS`` pairs fail, ``WIDE_DEVICES`` devices with counts free, alternating random lighter
        partners and the devices of the hot device's heaviest multi-replica expert (so its count can change).
        """
        n_dev = len(self.devices)
        top = max(self.loads)
        hot = self.rng.choice([d for d in range(n_dev) if self.loads[d] >= top - 1e-9])
        rest = sorted((d for d in range(n_dev) if d != hot), key=lambda d: (self.loads[d], d))
        pairs = min(self.PAIR_PARTNERS, len(rest))
        if failures < pairs:
            return sorted([hot, rest[failures]]), False
        k = min(self.WIDE_DEVICES, n_dev) - 1
        chosen: list[int] = []
        if (failures - pairs) % 2:
            multi = [e for e in self.devices[hot] if 1 < self.r[e] <= 2 * (k + 1)]
            if multi:
                e = max(multi, key=lambda e: (self.tokens[e] / self.r[e], -e))
                chosen = [d for d in range(n_dev) if d != hot and e in self.devices[d]]
        if not chosen:
            chosen = self.rng.sample(rest[:max(k, len(rest) // 2)], k)
        chosen += [d for d in rest if d not in chosen][:max(0, k - len(chosen))]
        return sorted([hot, *chosen]), True

    def _move(self, chosen: list[int], it: int, flexible: bool) -> None:
        """Free the chosen devices and re-place their replicas with CP-SAT; experts whose replicas all sit
        inside may change their count when ``flexible``; the rest keep their count and replica load."""
        experts = sorted({e for d in chosen for e in self.devices[d]})
        c_in = {e: sum(1 for d in chosen if e in self.devices[d]) for e in experts}
        toks, lo, hi = [], [], []
        for e in experts:
            contained = flexible and c_in[e] == self.r[e]
            if contained:
                toks.append(self.tokens[e])
                window = len(chosen) if self.tokens[e] == 0 else self.COUNT_WINDOW
                lo.append(max(1, self.r[e] - window))
                hi.append(min(len(chosen), self.r[e] + window))
            else:
                toks.append(self.tokens[e] / self.r[e] * c_in[e]), lo.append(c_in[e]), hi.append(c_in[e])
        index = {e: j for j, e in enumerate(experts)}
        hint = tuple(tuple(index[e] for e in self.devices[d]) for d in chosen)
        inst = AssignInstance(expert_tokens=tuple(toks), min_replicas=tuple(lo), max_replicas=tuple(hi),
                              num_devices=len(chosen), slots_per_device=self.spd,
                              tokens_per_unit=self.tokens_per_unit,
                              floor_units=int(self.bound / self.tokens_per_unit))
        # the wall-clock limit is only the layer's safety net: the deterministic limit is what normally ends it
        found, _, work = _assign(inst, hint, time_limit_s=self._left_s(),
                                    seed=self.seed + it, num_workers=self.num_workers,
                                    deterministic_limit=self.SUB_DETERMINISTIC_S, stop_gap=self.spd)
        self.solves += 1
        self.work_units += work
        if found is not None:
            self._apply(chosen, experts, found)

    def _apply(self, chosen: list[int], experts: list[int], found: Assignment) -> None:
        """Keep the sub-solution if, re-costed in floats, its largest load is no worse than before."""
        old_devices = {d: self.devices[d] for d in chosen}
        old_r, old_loads = list(self.r), list(self.loads)
        old_max = max(self.loads[d] for d in chosen)
        for d, dev in zip(chosen, found, strict=True):
            self.devices[d] = [experts[j] for j in dev]
        for e in experts:
            if sum(1 for d in chosen if e in old_devices[d]) == old_r[e]:  # contained: its count may change
                self.r[e] = sum(1 for d in chosen if e in self.devices[d])
        for d in chosen:
            self.loads[d] = self._load(d)
        if max(self.loads[d] for d in chosen) > old_max * (1 + 1e-12):
            for d, dev in old_devices.items():
                self.devices[d] = dev
            self.r, self.loads = old_r, old_loads
