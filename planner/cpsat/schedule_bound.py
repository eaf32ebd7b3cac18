"""A provable lower bound on the period of a layer's overlap schedule, without the solver.

Input: the block graph of one micro-batch (:class:`planner.cpsat.schedule.Graph`), repeated for K micro-batches,
and the per-mille compute units ``c`` a comm kernel holds.  The bound is the largest of:

Work
    Each resource's work per layer; compute includes the SM area of comm kernels (``c / 1000`` of their time).
Chain
    A micro-batch's next layer starts after its own sinks, so the period is at least the longest path of one
    micro-batch (every block at its full-width duration).
Coverage (only where comm kernels hold compute units, ``c > 0``)
    A full-width compute block excludes every comm kernel, so while a comm block runs the compute stream is
    either running a block launched on the units comm leaves free (*shared*, stretched to ``ceil(d 1000 /
    (1000 - c))``) or idle; a shared block never runs beside two comm kernels at once (``2c + 1000 - c >
    1000``).  Per period, then, ``P >= sum of compute block lengths (full or stretched) + the time a link
    carries comm that no shared block overlaps``.  Which comm blocks a compute block ``u`` can overlap:

    - none of its own micro-batch's blocks that precede or follow it (dependencies; blocks of another layer of
      the same micro-batch never overlap it, since a micro-batch's next layer waits for its sinks);
    - not two comm blocks ``x``, ``y`` of one micro-batch with a compute block ``z`` of that micro-batch
      between them (``x < z < y``) when, also, a compute block precedes ``x`` or follows ``y``: overlapping
      both (in one layer or in consecutive ones) would make ``u`` contain ``z``'s interval, and the compute
      stream runs one kernel at a time.

    The bound minimises over each compute block's mode and maximal set of comm blocks it may overlap; for a
    given choice the most comm that shared blocks can overlap on one link is a bipartite max flow, computed as
    its min cut.  Blocks whose stretch costs least are relaxed (taken as stretched for free and overlapping
    every comm block they may) when the enumeration would exceed :data:`MAX_CHOICES`: a relaxation only
    lowers the bound, so it stays a bound.

All figures are integer ticks of the instance (:mod:`planner.cpsat.schedule`); the stretched durations are the
solver's own (``shared_ticks``), so the bound holds for the integer model the solver solves.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

SM_CAPACITY = 1000
"""Compute units, per mille (as :data:`planner.cpsat.schedule.SM_CAPACITY`)."""
MAX_CHOICES = 4096
"""Most (mode, overlap-set) combinations the coverage bound enumerates; cheaper blocks are relaxed beyond."""


@dataclass(frozen=True, kw_only=True)
class BlockGraph:
    """One micro-batch's blocks, as the solver places them."""

    resource: tuple[str, ...]
    """``compute``, ``scale_up`` or ``scale_out`` per block."""
    block_ticks: tuple[int, ...]
    """Full-width duration per block, ticks."""
    shared_ticks: tuple[int, ...]
    """Duration per block when launched beside a comm kernel (compute blocks; equal to full for comm)."""
    preds: tuple[tuple[int, ...], ...]
    """Predecessor blocks of each block, within the micro-batch."""


@dataclass(frozen=True, kw_only=True)
class PeriodBound:
    """The bound and its parts, in ticks."""

    work_ticks: int
    chain_ticks: int
    coverage_ticks: int

    @property
    def ticks(self) -> int:
        return max(self.work_ticks, self.chain_ticks, self.coverage_ticks)


def descendants(preds: Sequence[Sequence[int]]) -> tuple[frozenset[int], ...]:
    """Blocks reachable from each block (transitively), within a micro-batch."""
    succ: list[set[int]] = [set() for _ in preds]
    for i, ps in enumerate(preds):
        for p in ps:
            succ[p].add(i)
    out: list[frozenset[int]] = [frozenset()] * len(preds)
    for i in reversed(range(len(preds))):  # preds point backwards (blocks are in topological order)
        out[i] = frozenset(succ[i]).union(*(out[j] for j in succ[i]))
    return tuple(out)


def work_bound_ticks(g: BlockGraph, micro_batches: int, comm_demand: int) -> int:
    """Busiest resource's work per layer (compute: plus the SM area of comm kernels, floor)."""
    work = {r: micro_batches * sum(d for d, q in zip(g.block_ticks, g.resource, strict=True) if q == r)
            for r in set(g.resource) | {"compute"}}
    comm = sum(w for r, w in work.items() if r != "compute")
    work["compute"] = (work["compute"] * SM_CAPACITY + comm * comm_demand) // SM_CAPACITY
    return max(work.values())


def chain_bound_ticks(g: BlockGraph) -> int:
    """Longest path of one micro-batch at full-width durations."""
    finish: list[int] = []
    for d, ps in zip(g.block_ticks, g.preds, strict=True):
        finish.append(d + max((finish[p] for p in ps), default=0))
    return max(finish)


def _incompatible_pairs(g: BlockGraph, desc: Sequence[frozenset[int]]) -> set[tuple[int, int]]:
    """Comm blocks (x, y) of one micro-batch that no single compute block may overlap both of."""
    comp = {i for i, r in enumerate(g.resource) if r == "compute" and g.block_ticks[i] > 0}
    comm = [i for i, r in enumerate(g.resource) if r != "compute" and g.block_ticks[i] > 0]
    out = set()
    for x, y in itertools.permutations(comm, 2):
        between = any(z in desc[x] and y in desc[z] for z in comp)
        outside = any(x in desc[z] for z in comp) or bool(desc[y] & comp)
        if between and outside:
            out |= {(x, y), (y, x)}
    return out


def _overlap_sets(g: BlockGraph, micro_batches: int) -> dict[tuple[int, int], list[frozenset[tuple[int, int]]]]:
    """Per compute block (micro-batch, block): the maximal sets of comm blocks it may overlap."""
    desc = descendants(g.preds)
    bad = _incompatible_pairs(g, desc)
    comm = [(b, i) for b in range(micro_batches) for i, r in enumerate(g.resource)
            if r != "compute" and g.block_ticks[i] > 0]
    out = {}
    for b in range(micro_batches):
        for u, r in enumerate(g.resource):
            if r != "compute" or g.block_ticks[u] == 0:
                continue
            ok = [x for x in comm if x[0] != b or not (x[1] in desc[u] or u in desc[x[1]])]
            sets = [frozenset(s) for n in range(len(ok), 0, -1) for s in itertools.combinations(ok, n)
                    if all(p[0] != q[0] or (p[1], q[1]) not in bad for p, q in itertools.combinations(s, 2))]
            out[b, u] = [s for s in sets if not any(s < t for t in sets)]
    return out


def _max_cover(link_comm: dict[tuple[int, int], int], shared: Sequence[tuple[int, frozenset[tuple[int, int]]]]) -> int:
    """Most comm time on one link that shared blocks (capacity, overlap set) can overlap: the min cut of the
    bipartite flow, min over comm subsets Y of (comm outside Y) + (capacity of blocks that reach Y)."""
    keys = list(link_comm)
    best = sum(link_comm.values())
    for n in range(1, len(keys) + 1):
        for ys in itertools.combinations(keys, n):
            y = set(ys)
            cut = sum(v for k, v in link_comm.items() if k not in y) + sum(cap for cap, s in shared if s & y)
            best = min(best, cut)
    return best


def coverage_bound_ticks(g: BlockGraph, micro_batches: int, comm_demand: int) -> int:
    """The coverage bound (module docstring); 0 where comm kernels hold no compute units."""
    if not comm_demand:
        return 0
    sets = _overlap_sets(g, micro_batches)
    units = sorted(sets, key=lambda u: (g.block_ticks[u[1]] - g.shared_ticks[u[1]], u))  # costliest stretch first
    chosen, relaxed, n = [], [], 1
    for u in units:
        if sets[u] and n * (1 + len(sets[u])) <= MAX_CHOICES:
            chosen.append(u)
            n *= 1 + len(sets[u])
        else:
            relaxed.append(u)
    links = sorted({r for r in g.resource if r != "compute"})
    comm_by_link = {ln: {(b, i): g.block_ticks[i] for b in range(micro_batches)
                         for i, r in enumerate(g.resource) if r == ln and g.block_ticks[i] > 0} for ln in links}
    base = micro_batches * sum(d for d, r in zip(g.block_ticks, g.resource, strict=True) if r == "compute")
    free = [(g.shared_ticks[u[1]], frozenset().union(*sets[u])) for u in relaxed if sets[u]]
    best = None
    for choice in itertools.product(*([None, *sets[u]] for u in chosen)):
        shared = [(g.shared_ticks[u[1]], s) for u, s in zip(chosen, choice, strict=True) if s is not None]
        cost = base + sum(g.shared_ticks[u[1]] - g.block_ticks[u[1]] for u, s in zip(chosen, choice, strict=True)
                          if s is not None)
        if best is not None and cost >= best:
            continue
        idle = max((sum(c.values()) - _max_cover(c, shared + free) for c in comm_by_link.values()), default=0)
        best = cost + idle if best is None else min(best, cost + idle)
    return best or 0


def period_bound(g: BlockGraph, micro_batches: int, comm_demand: int) -> PeriodBound:
    """The largest of the work, chain and coverage bounds (module docstring), in ticks."""
    return PeriodBound(work_ticks=work_bound_ticks(g, micro_batches, comm_demand), chain_ticks=chain_bound_ticks(g),
                       coverage_ticks=coverage_bound_ticks(g, micro_batches, comm_demand))
