"""Launch-mode choices of a layer schedule (:mod:`planner.cpsat.schedule_exact`), each with its coverage bound."""

from __future__ import annotations

from collections.abc import Iterator
from operator import add
from typing import TYPE_CHECKING

from planner.cpsat import schedule_bound as sb

if TYPE_CHECKING:
    from planner.cpsat.schedule import ScheduleInstance


class OutOfWork(Exception):
    """The search visited its node limit."""


class Modes:
    """Launch-mode choices, enumerated with their coverage bound (:mod:`planner.cpsat.schedule_bound`): while
    a comm block runs, the compute stream runs a shared block or idles, and a shared block overlaps the comm
    blocks of one of its overlap sets only, so a choice of modes and sets costs at least its compute time plus
    the comm time on the link its shared blocks cannot cover (a max flow, as the min cut over comm subsets Y,
    on bit masks).  The search over (block: full width, or shared with one overlap set) skips every branch
    whose bound, with the blocks not yet chosen counted as free and covering their whole sets, exceeds the
    period."""

    def __init__(self, inst: ScheduleInstance, nodes: list[int]) -> None:
        g, k, nb = inst.graph, inst.micro_batches, len(inst.graph.blocks)
        self.n, self.nb, self.nodes = k * nb, nb, nodes
        links = sorted({r for r, d in zip(g.resource, g.block_ticks, strict=True) if r != "compute" and d})
        comm = {ln: [(b, q) for b in range(k) for q in range(nb) if g.resource[q] == ln and g.block_ticks[q]]
                for ln in links}
        self.outside: list[int] = []
        """Per link, comm time outside each subset Y (a bit mask over its comm blocks), one segment a link."""
        self.segments: list[tuple[int, int, int]] = []
        """(first index, end index, comm total) of each link's segment of :attr:`outside`."""
        for ln in links:
            durs = [g.block_ticks[q] for _, q in comm[ln]]
            first = len(self.outside)
            self.outside += [sum(d for i, d in enumerate(durs) if not y >> i & 1) for y in range(1 << len(durs))]
            self.segments.append((first, len(self.outside), sum(durs)))
        self.base = k * sum(d for d, r in zip(g.block_ticks, g.resource, strict=True) if r == "compute")
        self.blocks: list[tuple[int, int, list[list[int]]]] = []
        """(node, extra ticks when shared, the cut increments of each overlap set) per compute block."""
        if inst.comm_demand:
            stretch = tuple(inst.shared_ticks(q) if r == "compute" else g.block_ticks[q]
                            for q, r in enumerate(g.resource))
            bg = sb.BlockGraph(resource=g.resource, block_ticks=g.block_ticks, preds=g.preds, shared_ticks=stretch)
            bit = {x: (ln, i) for ln in links for i, x in enumerate(comm[ln])}
            for (b, q), sets in sorted(sb._overlap_sets(bg, k).items(), key=lambda x: -stretch[x[0][1]]):
                if not sets:  # it can overlap no comm block: sharing only lengthens it, so it runs full width
                    continue
                incs = []
                for st in sets:
                    masks = {ln: sum(1 << bit[x][1] for x in st if bit[x][0] == ln) for ln in links}
                    incs.append([stretch[q] if y & masks[ln] else 0 for ln in links
                                 for y in range(1 << len(comm[ln]))])
                self.blocks.append((b * nb + q, stretch[q] - g.block_ticks[q], incs))
        unions = [[max(col) for col in zip(*incs, strict=True)] for _, _, incs in self.blocks]
        self.rest = [[0] * len(self.outside)]
        for u in reversed(unions):
            self.rest.insert(0, [a + b for a, b in zip(u, self.rest[0], strict=True)])
        """Per suffix of blocks: their cut increments with every block covering the union of its sets."""
        self._bound: dict[tuple[bool, ...], int] = {}

    def idle(self, cut: list[int]) -> int:
        """Compute time a link's comm forces idle, given the min-cut terms ``cut``: the busiest link's comm
        minus its max flow."""
        if len(self.segments) == 1:  # one link (the common case): no slices
            return self.segments[0][2] - min(cut)
        return max(total - min(cut[a:e]) for a, e, total in self.segments)

    def idle_sum(self, cut: list[int], more: list[int]) -> int:
        """:meth:`idle` of ``cut + more`` (element-wise)."""
        return self.idle(list(map(add, cut, more)))

    def choices(self, period: int) -> Iterator[tuple[bool, ...]]:
        """Each launch-mode choice whose bound is at most ``period``: a walk over modes in which a shared block
        covers the union of its sets (a relaxation), then the choice's own bound (:meth:`bound`)."""
        if not self.blocks:
            yield (False,) * self.n
            return
        shared = [False] * self.n
        unions = [[max(col) for col in zip(*incs, strict=True)] for _, _, incs in self.blocks]

        def walk(i: int, extra: int, cut: list[int]) -> Iterator[tuple[bool, ...]]:
            self._count()
            if self.base + extra + self.idle_sum(cut, self.rest[i]) > period:
                return
            if i == len(self.blocks):
                if self.bound(tuple(shared)) <= period:
                    yield tuple(shared)
                return
            v, dx, _ = self.blocks[i]
            yield from walk(i + 1, extra, cut)
            shared[v] = True
            yield from walk(i + 1, extra + dx, list(map(add, cut, unions[i])))
            shared[v] = False

        yield from walk(0, 0, self.outside)

    def bound(self, shared: tuple[bool, ...]) -> int:
        """The bound of one choice of modes: the least, over one overlap set per shared block, of its compute
        time plus the idle time its comm forces (a search that drops a branch that cannot do better)."""
        if shared in self._bound:
            return self._bound[shared]
        picked = [(i, dx, incs) for i, (v, dx, incs) in enumerate(self.blocks) if shared[v]]
        extra = sum(dx for _, dx, _ in picked)
        rest = [[0] * len(self.outside)]  # per suffix of the picked blocks: their union increments
        for _, _, incs in reversed(picked):
            rest.insert(0, [a + max(col) for a, col in zip(rest[0], zip(*incs, strict=True), strict=True)])
        best = [self.idle(self.outside)]

        def walk(j: int, cut: list[int]) -> None:
            self._count()
            if self.idle_sum(cut, rest[j]) >= best[0]:
                return
            if j == len(picked):
                best[0] = self.idle(cut)
                return
            for inc in picked[j][2]:
                walk(j + 1, list(map(add, cut, inc)))

        walk(0, self.outside)
        self._bound[shared] = self.base + extra + best[0]
        return self._bound[shared]

    def _count(self) -> None:
        self.nodes[0] += 1
        if self.nodes[0] > self.nodes[1]:
            raise OutOfWork
