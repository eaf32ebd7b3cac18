"""The periodic layer schedule of :mod:`planner.cpsat.schedule`, solved exactly without the solver.

Same integer model as the CP-SAT one (ticks, launch modes, ``H <= W x P``, micro-batch 0 starts first).  Its
compute-unit cumulative becomes exclusions: a full-width compute block excludes every comm block; a shared one
fits beside one comm kernel (``1000 - c + c``) but not beside one on each link (``1000 + c``), a constraint of
three blocks; comm kernels on both links at once exclude each other only where ``2c > 1000``.

Method
    Decision ("is there a schedule of period ``P``?") by depth-first search, each node a simple temporal
    network kept closed (longest paths between block starts: Floyd-Warshall once, then one O(n^2) update per
    added edge), failed on a positive cycle.  Two blocks that may not overlap satisfy
    ``(s_v - s_u) mod P in [d_u, P - d_v]`` (every layer copy against every copy); with starts in ``[0, W P)``
    that is one of ``2 W`` alternatives ``s_v - s_u in [d_u + m P, (m + 1) P - d_v]``: the search branches on
    the pair with the fewest left.  Where every pair is placed and three block copies still meet beyond the
    units, it branches on which two of them run one after the other (three intervals of a line that pairwise
    overlap share an instant, so no schedule is lost).  Launch modes (``c > 0``) are enumerated outside the
    search, a choice skipped when its coverage bound (:class:`planner.cpsat.schedule_modes.Modes`) exceeds ``P``.
Monotone in P
    Written as a position ``p_v = s_v mod P`` and a layer offset ``L_v = s_v div P``, every constraint reads
    ``p_y - p_x >= w - k P`` with ``k >= 0`` (a successor's offset is never below its predecessor's; a sink ends
    less than ``P`` after its micro-batch's source starts), and growing the circle never makes more blocks meet
    at an instant, so a schedule of period ``P`` stays one at ``P + 1``.  Hence: try periods upward from the
    provable bound (:data:`GALLOP`; each failure raises the bound), shrink the first schedule found to the
    least period its positions, offsets and orders allow (:func:`_least_period`), and look one tick below.
Proof
    A period is reported OPTIMAL only when the search one tick below (or the bound) finished without a
    schedule.  The search counts its work; past ``node_limit`` it stops, reports its best schedule as FEASIBLE
    with the bound it proved, and the caller solves with CP-SAT from there.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from planner.cpsat import schedule_bound as sb
from planner.cpsat.schedule_modes import Modes, OutOfWork
from planner.cpsat.schedule_result import IntSolution
from planner.cpsat.stats import SolveStats

if TYPE_CHECKING:
    from planner.cpsat.schedule import ScheduleInstance

SM_CAPACITY = sb.SM_CAPACITY
NEG = -(1 << 60)
"""'No path' in the longest-path matrix (far below any sum of durations)."""
NODE_LIMIT = 60_000
"""Work one exact solve may do before it gives up: nodes of the launch-mode walk count 1, nodes of the schedule
search :data:`SEARCH_NODE_WORK` (a deterministic work limit, not a time; about 0.5 s of one core here)."""
SEARCH_NODE_WORK = 8
"""A schedule-search node costs about this many launch-mode nodes (measured: ~0.2 ms against ~25 us)."""


GALLOP = (0, 1, 4, 16, 64, 256, 1024)
"""Periods tried first, as ``bound x (1 + step / 1024)``: a schedule at the bound proves it at once, and a
near-optimal first schedule leaves little to shrink."""


def applies(inst: ScheduleInstance) -> bool:
    """True where block 0 is a micro-batch's only source (as :func:`planner.cpsat.schedule.dependencies`
    builds every layer): the search takes micro-batch 0's first block as the time origin."""
    return inst.graph.sources == (0,)


@dataclass(frozen=True, kw_only=True)
class _Net:
    """The blocks of all micro-batches as network nodes ``b * nb + q``, with one choice of launch modes."""

    inst: ScheduleInstance
    dur: tuple[int, ...]
    shared: tuple[bool, ...]

    @property
    def nb(self) -> int:
        return len(self.inst.graph.blocks)

    def fixed_edges(self, period: int) -> list[tuple[int, int, int]]:
        """(x, y, w): ``s_y - s_x >= w`` for precedence, next layer, the window and the symmetry breaking."""
        inst, g, nb, w = self.inst, self.inst.graph, self.nb, self.inst.window_layers
        out = [(0, v, 0) for v in range(1, len(self.dur))]  # micro-batch 0's first block starts first, at 0
        out += [(v, 0, d - w * period) for v, d in enumerate(self.dur)]  # every end within H <= W P
        for b in range(inst.micro_batches):
            out += [(b * nb + p, b * nb + q, self.dur[b * nb + p]) for q, ps in enumerate(g.preds) for p in ps]
            out += [(b * nb + t, b * nb + s, self.dur[b * nb + t] - period) for s in g.sources for t in g.sinks]
            if b:
                out.append(((b - 1) * nb, b * nb, 0))
        return out

    def triple(self, starts: Sequence[int], period: int) -> tuple[tuple[int, int], ...] | None:
        """Three block copies (node, layer) that run at one instant and need more than the compute units: a
        shared compute block beside comm kernels on both links (``1000 - c + 2c``); None if there are none.
        Layers ``0..W`` hold every instant's blocks (starts lie in ``[0, W P)``, durations at most ``P``)."""
        inst, c = self.inst, self.inst.comm_demand
        if not c or 2 * c > SM_CAPACITY:
            return None  # no compute units held, or both links at once is already a pair that may not overlap
        res = [r for _ in range(inst.micro_batches) for r in inst.graph.resource]
        ivs: dict[str, list[tuple[int, int, int, int]]] = {"compute": [], "scale_up": [], "scale_out": []}
        for v, (s, d) in enumerate(zip(starts, self.dur, strict=True)):
            if d and (res[v] != "compute" or self.shared[v]):
                ivs[res[v]] += [(s + j * period, s + j * period + d, v, j) for j in range(inst.window_layers + 1)]
        for a in ivs["compute"]:
            for x in ivs["scale_up"]:
                if x[0] < a[1] and a[0] < x[1]:
                    for y in ivs["scale_out"]:
                        if max(a[0], x[0], y[0]) < min(a[1], x[1], y[1]):
                            return (a[2], a[3]), (x[2], x[3]), (y[2], y[3])
        return None

    def pairs(self) -> list[tuple[int, int]]:
        """Blocks that may not overlap: one resource, or a full-width compute block and a comm block."""
        res = [r for _ in range(self.inst.micro_batches) for r in self.inst.graph.resource]
        c = self.inst.comm_demand
        out = []
        for u, v in itertools.combinations(range(len(self.dur)), 2):
            if not (self.dur[u] and self.dur[v]):
                continue
            full = (res[u] == "compute" and not self.shared[u]) or (res[v] == "compute" and not self.shared[v])
            both_comm = "compute" not in (res[u], res[v])
            if res[u] == res[v] or (c and full and not both_comm) or (both_comm and 2 * c > SM_CAPACITY):
                out.append((u, v))
        return out


def _closure(n: int, edges: Sequence[tuple[int, int, int]]) -> list[list[int]] | None:
    """Longest paths (Floyd-Warshall); None on a positive cycle (no schedule)."""
    d = [[0 if i == j else NEG for j in range(n)] for i in range(n)]
    for x, y, w in edges:
        d[x][y] = max(d[x][y], w)
    for k in range(n):
        dk = d[k]
        for i, row in enumerate(d):
            a = row[k]
            if a > NEG // 2:
                d[i] = [x if x >= y + a else y + a for x, y in zip(row, dk, strict=True)]
    return None if any(d[i][i] > 0 for i in range(n)) else d


def _add(d: list[list[int]], x: int, y: int, w: int) -> bool:
    """Add ``s_y - s_x >= w`` to the closed matrix ``d`` in place; False if that makes a positive cycle."""
    if d[x][y] >= w:
        return True
    if w + d[y][x] > 0:
        return False
    dy = d[y]  # row y itself cannot grow: d[y][x] + w <= 0
    for i, row in enumerate(d):
        a = row[x] + w
        if a > row[y]:  # otherwise d[i][j] >= d[i][y] + d[y][j] >= a + d[y][j] already (d is closed)
            d[i] = [p if p >= q + a else q + a for p, q in zip(row, dy, strict=True)]
    return True


class _Search:
    """Depth-first search for a schedule of one period, one launch-mode choice (module docstring)."""

    def __init__(self, net: _Net, period: int, nodes: list[int]) -> None:
        self.net, self.period, self.nodes = net, period, nodes  # nodes: [visited, limit]
        self.w = net.inst.window_layers
        self.layers = range(-self.w, self.w)

    def options(self, d: list[list[int]], u: int, v: int) -> list[tuple[int, int]] | None:
        """The alternatives (``s_v - s_u >= a``, ``s_u - s_v >= b``) still open; None when one already holds."""
        du, dv, p = self.net.dur[u], self.net.dur[v], self.period
        duv, dvu = d[u][v], d[v][u]
        out = []
        for m in self.layers:
            a, b = du + m * p, dv - (m + 1) * p
            if duv >= a and dvu >= b:
                return None
            if a + dvu <= 0 and b + duv <= 0:
                out.append((a, b))
        return out

    def run(self, d: list[list[int]], pairs: list[tuple[int, int]]) -> list[list[int]] | None:
        self.nodes[0] += SEARCH_NODE_WORK
        if self.nodes[0] > self.nodes[1]:
            raise OutOfWork
        while True:
            open_pairs, pick, pick_opts, forced = [], None, None, False
            for u, v in pairs:
                opts = self.options(d, u, v)
                if opts is None:
                    continue
                if not opts:
                    return None
                if len(opts) == 1:
                    if not (_add(d, u, v, opts[0][0]) and _add(d, v, u, opts[0][1])):
                        return None
                    forced = True
                    continue
                open_pairs.append((u, v))
                if pick_opts is None or len(opts) < len(pick_opts):
                    pick, pick_opts = (u, v), opts
            pairs = open_pairs
            if not forced:
                break
        if pick is None:
            return self.leaf(d)
        u, v = pick
        su, sv = d[0][u], d[0][v]  # earliest starts: try first the alternative that moves them least
        pick_opts.sort(key=lambda ab: max(0, su + ab[0] - sv) + max(0, sv + ab[1] - su))
        for a, b in pick_opts:
            e = [row[:] for row in d]
            if _add(e, u, v, a) and _add(e, v, u, b):
                found = self.run(e, pairs)
                if found is not None:
                    return found
        return None

    def leaf(self, d: list[list[int]]) -> list[list[int]] | None:
        """Every pair placed: the earliest schedule, unless three block copies meet (:meth:`_Net.triple`);
        then one of their three pairs of copies runs one before the other (on a line, three intervals that
        pairwise overlap share an instant, so this branching misses no schedule)."""
        three = self.net.triple(d[0], self.period)
        if three is None:
            return d
        for (u, i), (v, j) in itertools.combinations(three, 2):
            for (x, a), (y, b) in (((u, i), (v, j)), ((v, j), (u, i))):
                e = [row[:] for row in d]
                if _add(e, x, y, self.net.dur[x] + (a - b) * self.period):
                    found = self.run(e, [])
                    if found is not None:
                        return found
        return None


def _net(inst: ScheduleInstance, shared: tuple[bool, ...]) -> _Net:
    g, nb = inst.graph, len(inst.graph.blocks)
    dur = tuple(inst.shared_ticks(v % nb) if shared[v] else g.block_ticks[v % nb]
                for v in range(inst.micro_batches * nb))
    return _Net(inst=inst, dur=dur, shared=shared)


def _decide(inst: ScheduleInstance, period: int, modes: Modes, nodes: list[int]) -> tuple[_Net, list[int]] | None:
    """A schedule of period ``period`` (its network and block starts), or None when there is none."""
    for shared in modes.choices(period):
        net = _net(inst, shared)
        if max(net.dur) > period:
            continue
        d = _closure(len(net.dur), net.fixed_edges(period))
        if d is None:
            continue
        found = _Search(net, period, nodes).run(d, net.pairs())
        if found is not None:
            return net, found[0]
    return None


def _least_period(net: _Net, starts: Sequence[int], period: int, lo: int) -> tuple[int, list[int]]:
    """The least period in ``[lo, period]`` that keeps the positions' circular orders and layer offsets of a
    schedule of ``period`` (module docstring: monotone), with its earliest starts."""
    layer = [s // period for s in starts]
    pos = [s % period for s in starts]
    pairs = net.pairs()
    if net.inst.comm_demand and 2 * net.inst.comm_demand <= SM_CAPACITY:  # three blocks may not meet: keep
        fixed = set(pairs)  # the order of every pair the schedule keeps apart, so that none comes to overlap
        pairs += [(u, v) for u, v in itertools.combinations(range(len(starts)), 2) if (u, v) not in fixed
                  and net.dur[u] and net.dur[v] and _apart(pos[u], net.dur[u], pos[v], net.dur[v], period)]

    def solve(q: int) -> list[int] | None:
        n = len(starts)
        edges = [(0, v, 0) for v in range(1, n)] + [(v, 0, 1 - q) for v in range(n)]  # 0 <= p_v < q
        # s_y - s_x >= w, rewritten on positions (s_v = p_v + L_v q): p_y - p_x >= w + (L_x - L_y) q
        edges += [(x, y, wt + (layer[x] - layer[y]) * q) for x, y, wt in net.fixed_edges(q)]
        for u, v in pairs:
            a, b = (u, v) if pos[u] < pos[v] else (v, u)
            edges += [(a, b, net.dur[a]), (b, a, net.dur[b] - q)]
        d = None if max(net.dur) > q else _closure(n, edges)
        return None if d is None else [d[0][v] + layer[v] * q for v in range(n)]

    best, hi = list(starts), period
    while lo < hi:
        mid = (lo + hi) // 2
        got = solve(mid)
        if got is None or net.triple(got, mid) is not None:  # (three blocks may still meet: not shrunk)
            lo = mid + 1
        else:
            hi, best = mid, got
    return hi, best


def _apart(p: int, d: int, q: int, e: int, period: int) -> bool:
    """Arcs ``[p, p + d)`` and ``[q, q + e)`` of a circle of ``period`` are disjoint."""
    return (q - p) % period >= d and (p - q) % period >= e


def solve_exact(inst: ScheduleInstance, *, node_limit: int = NODE_LIMIT) -> IntSolution | None:
    """The optimal period and a schedule meeting it (status OPTIMAL).  When the search runs out of work first:
    the best schedule found (status FEASIBLE, bound: the largest period proven to have no schedule, plus one),
    or None if it found none; None too where :func:`applies` does not hold.  Then solve with CP-SAT."""
    if not applies(inst):
        return None
    t0, nodes = time.perf_counter(), [0, node_limit]
    lo, top = inst.period_lower_bound_ticks(), inst.sequential_ticks()
    best: tuple[_Net, int, list[int]] | None = None
    if top == 0:  # no op takes time: everything at 0
        net = _net(inst, (False,) * (inst.micro_batches * len(inst.graph.blocks)))
        return _solution(inst, (net, 0, [0] * len(net.dur)), 0, 0.0)
    try:
        modes = Modes(inst, nodes)
        got, period = None, top
        for step in GALLOP:  # upward from the bound: each period without a schedule raises the bound
            period = min(top, lo + -(-lo * step // GALLOP[-1]))
            got = _decide(inst, period, modes, nodes)
            if got is not None or period == top:
                break
            lo = period + 1
        if got is None and period < top:
            period = top
            got = _decide(inst, period, modes, nodes)  # the no-overlap period always has a schedule
        while got is not None:  # shrink to the least period of its orders, then look one tick below
            period, starts = _least_period(got[0], got[1], period, lo)
            best = (got[0], period, starts)
            got = _decide(inst, period - 1, modes, nodes) if period > lo else None
            period -= got is not None
        lo = best[1] if best is not None else lo
    except OutOfWork:
        pass
    return None if best is None else _solution(inst, best, lo, time.perf_counter() - t0)


def _solution(inst: ScheduleInstance, best: tuple[_Net, int, list[int]], bound: int, wall_s: float) -> IntSolution:
    net, period, starts = best
    k, nb = inst.micro_batches, net.nb
    stats = SolveStats(status="OPTIMAL" if period <= bound else "FEASIBLE", objective=inst.seconds(period),
                       bound=inst.seconds(bound), gap=(period - bound) / max(1, period), wall_s=wall_s)
    return IntSolution(start_ticks=tuple(tuple(starts[b * nb + q] for q in range(nb)) for b in range(k)),
                       shared=tuple(tuple(net.shared[b * nb + q] for q in range(nb)) for b in range(k)),
                       period_ticks=period, stats=stats)
