"""Expert placement without a solver: the slot map type, its float re-costing, the lower bound, and the
greedy balancers that are common practice (the baselines the CP-SAT placement is compared with).

A placement of one MoE layer puts ``slots`` physical expert slots on ``num_devices`` devices,
``slots // num_devices`` per device: slot ``s`` lives on device ``s // slots_per_device`` and holds one logical
expert. Every logical expert has at least one slot, no device holds two replicas of one expert, and each
replica takes an equal share of its expert's tokens (so a device's load is the sum over its slots of
``tokens[e] / replicas[e]``).

Balancers (the idea follows DeepSeek's published description of EPLB; written here from that description):

* :func:`greedy_global`: replica counts by water-filling over all devices (:func:`water_fill_replicas`),
  then replicas heaviest-first onto the least-loaded device that has a free slot and no replica of that
  expert yet.
* :func:`greedy_hierarchical`: (1) pack the model's routing groups (``num_groups`` blocks of consecutive
  experts) onto nodes, heaviest group first onto the least-loaded node that still has room for a group, so
  every node gets ``num_groups / num_nodes`` groups; (2) within each node, water-fill that node's slots over
  its experts, at most one replica per device of the node; (3) pack the node's replicas heaviest-first as in
  the global variant, within the node. When the groups cannot be split evenly over the nodes (including
  ``num_groups = 1``) it falls back to the global variant, as EPLB does; so it does when a node's slots
  cannot hold its experts at one to ``devices_per_node`` replicas each.

All ties break towards the lower device / node / expert index, so every function here is deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

DeviceExperts = tuple[tuple[int, ...], ...]
"""Per device, the logical experts it holds (one per slot, ascending)."""


@dataclass(frozen=True, kw_only=True)
class LayerPlacement:
    """One MoE layer's slot map: which logical expert each physical slot holds."""

    physical_to_logical: tuple[int, ...]
    """Length ``slots``; slot ``s`` (on device ``s // slots_per_device``) holds this logical expert id."""
    num_experts: int
    """Logical experts of the layer (ids ``0 .. num_experts - 1``)."""
    slots_per_device: int
    """Physical expert slots on every device."""

    def __post_init__(self) -> None:
        if self.slots_per_device < 1 or len(self.physical_to_logical) % self.slots_per_device:
            raise ValueError(f"{len(self.physical_to_logical)} slots do not split into devices of "
                             f"{self.slots_per_device}")
        if any(not 0 <= e < self.num_experts for e in self.physical_to_logical):
            raise ValueError(f"expert ids must be in [0, {self.num_experts})")

    @classmethod
    def from_devices(cls, devices: Sequence[Sequence[int]], num_experts: int) -> LayerPlacement:
        """Build from per-device expert lists (each device's slots are written in ascending expert order)."""
        spd = len(devices[0])
        return cls(physical_to_logical=tuple(e for dev in devices for e in sorted(dev)),
                   num_experts=num_experts, slots_per_device=spd)

    @property
    def num_slots(self) -> int:
        return len(self.physical_to_logical)

    @property
    def num_devices(self) -> int:
        return self.num_slots // self.slots_per_device

    @property
    def devices(self) -> DeviceExperts:
        spd = self.slots_per_device
        return tuple(self.physical_to_logical[d * spd:(d + 1) * spd] for d in range(self.num_devices))

    @property
    def replica_counts(self) -> tuple[int, ...]:
        """Per logical expert, how many slots hold it."""
        counts = [0] * self.num_experts
        for e in self.physical_to_logical:
            counts[e] += 1
        return tuple(counts)

    def logical_to_physical(self, pad_to: int | None = None) -> tuple[tuple[int, ...], ...]:
        """Per logical expert, its slot ids ascending, padded with -1 to ``pad_to`` (default: the most replicas)."""
        slots: list[list[int]] = [[] for _ in range(self.num_experts)]
        for s, e in enumerate(self.physical_to_logical):
            slots[e].append(s)
        width = max(len(s) for s in slots) if pad_to is None else pad_to
        if any(len(s) > width for s in slots):
            raise ValueError(f"pad_to={pad_to} is below the most replicas of an expert")
        return tuple(tuple(s) + (-1,) * (width - len(s)) for s in slots)


def placement_violations(p: LayerPlacement) -> list[str]:
    """What breaks the placement rules (empty when valid); checked without any solver."""
    bad = [f"expert {e} has no slot" for e, r in enumerate(p.replica_counts) if r == 0]
    for d, dev in enumerate(p.devices):
        dup = sorted({e for e in dev if dev.count(e) > 1})
        bad += [f"device {d} holds expert {e} twice" for e in dup]
    return bad


def device_tokens(p: LayerPlacement, expert_tokens: Sequence[float]) -> tuple[float, ...]:
    """Float re-costing: per device, the sum over its slots of ``tokens[e] / replicas[e]``."""
    r = p.replica_counts
    return tuple(sum(expert_tokens[e] / r[e] for e in dev) for dev in p.devices)


def routing_groups(num_experts: int, num_groups: int) -> tuple[int, ...]:
    """Group id of each expert for the scale-out metric: the model's routing groups (``num_groups`` blocks of
    consecutive experts, DeepSeek-V3: 8 of 32), or, for an ungrouped model (``num_groups = 1``), each expert
    on its own, so the metric counts the nodes each expert's replicas span."""
    if num_groups < 1 or num_experts % num_groups:
        raise ValueError(f"{num_experts} experts do not split into {num_groups} groups")
    size = num_experts // num_groups
    return tuple(e // size if num_groups > 1 else e for e in range(num_experts))


@dataclass(frozen=True, kw_only=True)
class PlacementScore:
    """One placement of one layer re-costed in floats."""

    placement: LayerPlacement
    max_device_tokens: float
    mean_device_tokens: float
    group_node_pairs: int
    """(group, node) pairs with a replica on that node (see :func:`routing_groups`): the scale-out proxy;
    the fewest possible is one node per group."""
    token_node_reach: int | None
    """Most nodes one token can reach when it uses at most ``topk_groups`` routing groups: the sum of the
    largest ``topk_groups`` group spans, at most the node count. None for an ungrouped model."""

    @property
    def imbalance(self) -> float:
        """max / mean device load (1.0 is perfect)."""
        return self.max_device_tokens / self.mean_device_tokens if self.mean_device_tokens else 1.0


def score_placement(p: LayerPlacement, expert_tokens: Sequence[float], *, devices_per_node: int,
                    num_groups: int = 1, topk_groups: int = 1) -> PlacementScore:
    """Loads, group-node pairs and token reach of a placement (no solver)."""
    group_of = routing_groups(p.num_experts, num_groups)
    pairs = {(group_of[e], d // devices_per_node) for d, dev in enumerate(p.devices) for e in dev}
    reach = None
    if num_groups > 1:
        span = [0] * num_groups
        for g, _ in pairs:
            span[g] += 1
        reach = min(p.num_devices // devices_per_node, sum(sorted(span, reverse=True)[:topk_groups]))
    loads = device_tokens(p, expert_tokens)
    return PlacementScore(placement=p, max_device_tokens=max(loads), mean_device_tokens=sum(loads) / len(loads),
                          group_node_pairs=len(pairs), token_node_reach=reach)


def water_fill_replicas(expert_tokens: Sequence[float], slots: int, max_replicas: int) -> tuple[int, ...]:
    """Replica counts that minimise the largest per-replica load ``tokens[e] / r[e]``.

    Start from one replica each and give every further slot to the expert whose per-replica load is largest
    (ties: lower id), never above ``max_replicas``. This greedy is exact for the min-max objective: the
    expert it picks must get another replica in any solution whose largest per-replica load is below the
    current one.
    """
    n = len(expert_tokens)
    if not n <= slots <= n * max_replicas:
        raise ValueError(f"{slots} slots cannot hold {n} experts at 1..{max_replicas} replicas each")
    r = [1] * n
    heap = [(-float(t), e) for e, t in enumerate(expert_tokens)]
    heapq.heapify(heap)
    for _ in range(slots - n):
        while True:
            _, e = heapq.heappop(heap)
            if r[e] < max_replicas:
                break
        r[e] += 1
        if r[e] < max_replicas:
            heapq.heappush(heap, (-expert_tokens[e] / r[e], e))
    return tuple(r)


def lower_bound_tokens(expert_tokens: Sequence[float], num_devices: int, slots: int) -> float:
    """No placement's largest device load is below this: the larger of the mean device load and the smallest
    achievable largest per-replica load (water-filling with at most one replica per device)."""
    r = water_fill_replicas(expert_tokens, slots, num_devices)
    per_replica = max(t / k for t, k in zip(expert_tokens, r, strict=True))
    return max(sum(expert_tokens) / num_devices, per_replica)


def split_to_fit(expert_tokens: Sequence[float], base_replicas: Sequence[int], num_devices: int,
                 slots_per_device: int, target_tokens: float) -> LayerPlacement | None:
    """Heaviest-first packing that splits an expert further whenever its replicas would overflow the target.

    Start from ``base_replicas`` raised to ``ceil(tokens / target)``; the spare slots (``slots - sum``) are a
    budget. Take experts heaviest-per-replica first and put each replica on the least-loaded eligible device
    (free slot, no replica of that expert; ties: lower index). If that device would exceed ``target_tokens``,
    take the expert's replicas back, give it one more replica from the budget and queue it again at its new,
    smaller per-replica load. Slots still free at the end take extra replicas of the lightest experts
    (which only lowers loads). Returns None when the budget runs out.
    """
    n_dev, n_exp = num_devices, len(expert_tokens)
    r = [max(b, _ceil_div(t, target_tokens)) for t, b in zip(expert_tokens, base_replicas, strict=True)]
    spare = n_dev * slots_per_device - sum(r)
    if spare < 0 or max(r) > n_dev:
        return None
    devices: list[list[int]] = [[] for _ in range(n_dev)]
    free = [(0.0, d) for d in range(n_dev)]  # heap of (load, device) with a free slot
    queue = [(-expert_tokens[e] / r[e], -r[e], e) for e in range(n_exp)]
    heapq.heapify(queue)
    while queue:
        neg_w, _, e = heapq.heappop(queue)
        w = -neg_w
        placed: list[tuple[float, int]] = []
        skipped: list[tuple[float, int]] = []
        while len(placed) < r[e] and free:
            load, d = heapq.heappop(free)
            if e in devices[d]:
                skipped.append((load, d))
            elif load + w > target_tokens:
                skipped.append((load, d))
                break
            else:
                placed.append((load, d))
                devices[d].append(e)
        if len(placed) == r[e]:
            for load, d in placed:
                if len(devices[d]) < slots_per_device:
                    heapq.heappush(free, (load + w, d))
            for item in skipped:
                heapq.heappush(free, item)
            continue
        for item in placed:
            devices[item[1]].pop()
        for item in placed + skipped:
            heapq.heappush(free, item)
        if spare == 0 or r[e] == n_dev:
            return None
        r[e] += 1
        spare -= 1
        heapq.heappush(queue, (-expert_tokens[e] / r[e], -r[e], e))
    lightest = sorted(range(n_exp), key=lambda e: (expert_tokens[e], e))
    for d in range(n_dev):
        while len(devices[d]) < slots_per_device:
            e = next((e for e in lightest if e not in devices[d] and r[e] < n_dev), None)
            if e is None:
                return None
            devices[d].append(e)
            r[e] += 1
            lightest.remove(e)
            lightest.append(e)  # round robin over the light experts
    return LayerPlacement.from_devices(devices, n_exp)


def split_fit_placement(expert_tokens: Sequence[float], *, num_devices: int, slots: int, reserve: int,
                        bisect_steps: int = 5) -> LayerPlacement | None:
    """:func:`split_to_fit` from water-filled counts that keep ``reserve`` slots back, at the lowest target
    found: a ladder of targets just above the lower bound, then ``bisect_steps`` bisections.

    Water-filling every spare slot (``reserve = 0``) splits heavy experts into replicas that may not pack
    evenly (eight experts of 5 replicas on 32 devices put two on eight devices); keeping slots back lets
    the packing split exactly the experts that overflow. Callers try a few reserves and keep the best.
    """
    n_exp = len(expert_tokens)
    spd = _slots_per_device(slots, num_devices, n_exp)
    base = water_fill_replicas(expert_tokens, slots - reserve, num_devices)
    bound = lower_bound_tokens(expert_tokens, num_devices, slots)
    if bound == 0:
        return split_to_fit(expert_tokens, base, num_devices, spd, 0.0)
    best, lo, hi = None, bound, bound
    for excess in (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0):
        hi = bound * (1 + excess)
        best = split_to_fit(expert_tokens, base, num_devices, spd, hi)
        if best is not None:
            break
        lo = hi
    if best is None:
        return None
    for _ in range(bisect_steps if hi > lo else 0):
        mid = (lo + hi) / 2
        found = split_to_fit(expert_tokens, base, num_devices, spd, mid)
        if found is None:
            lo = mid
        else:
            best, hi = found, mid
    return best


def _ceil_div(tokens: float, cap: float) -> int:
    """ceil(tokens / cap), at least 1, with a relative tolerance (20267 / 5066.75 is 4, not 5)."""
    if cap <= 0:
        return 1
    q = tokens / cap
    return max(1, int(q) if q - int(q) <= 1e-9 * max(1.0, q) else int(q) + 1)


def pack_heaviest_first(expert_tokens: Sequence[float], replicas: Sequence[int], num_devices: int,
                        slots_per_device: int) -> list[list[int]]:
    """Replicas heaviest-first (ties: more replicas, then lower id) onto the least-loaded device (ties: lower
    index) that has a free slot and no replica of that expert; returns per-device expert lists."""
    if sum(replicas) != num_devices * slots_per_device:
        raise ValueError(f"{sum(replicas)} replicas for {num_devices} x {slots_per_device} slots")
    if max(replicas) > num_devices:
        raise ValueError(f"an expert has {max(replicas)} replicas but there are only {num_devices} devices")
    items = sorted(((expert_tokens[e] / r, r, e) for e, r in enumerate(replicas) for _ in range(r)),
                   key=lambda t: (-t[0], -t[1], t[2]))
    load = [0.0] * num_devices
    devices: list[list[int]] = [[] for _ in range(num_devices)]
    for w, _, e in items:
        best = -1
        for d in range(num_devices):
            if len(devices[d]) < slots_per_device and e not in devices[d] and (best < 0 or load[d] < load[best]):
                best = d
        if best < 0:
            best = _make_room(devices, e, slots_per_device, load, expert_tokens, replicas)
        devices[best].append(e)
        load[best] += w
    return devices


def _make_room(devices: list[list[int]], e: int, spd: int, load: list[float], tokens: Sequence[float],
               replicas: Sequence[int]) -> int:
    """Every device with a free slot already holds ``e``: move some expert f from a device b without ``e`` to
    the free device a (f not on a), freeing a slot on b for ``e``. Returns b."""
    free = [d for d in range(len(devices)) if len(devices[d]) < spd]
    for a in free:
        for b in sorted(range(len(devices)), key=lambda d: load[d]):
            if e in devices[b]:
                continue
            for f in devices[b]:
                if f not in devices[a]:
                    devices[b].remove(f)
                    devices[a].append(f)
                    w = tokens[f] / replicas[f]
                    load[b] -= w
                    load[a] += w
                    return b
    raise ValueError(f"no device can take another replica of expert {e}")


def greedy_global(expert_tokens: Sequence[float], *, num_devices: int, slots: int) -> LayerPlacement:
    """Water-fill replicas over all devices, then pack heaviest-first (see module docstring)."""
    spd = _slots_per_device(slots, num_devices, len(expert_tokens))
    r = water_fill_replicas(expert_tokens, slots, num_devices)
    devices = pack_heaviest_first(expert_tokens, r, num_devices, spd)
    return LayerPlacement.from_devices(devices, len(expert_tokens))


def greedy_hierarchical(expert_tokens: Sequence[float], *, num_devices: int, devices_per_node: int, slots: int,
                        num_groups: int) -> LayerPlacement:
    """Groups onto nodes, replicate within each node, pack within each node (see module docstring)."""
    n_exp = len(expert_tokens)
    spd = _slots_per_device(slots, num_devices, n_exp)
    if num_devices % devices_per_node:
        raise ValueError(f"{num_devices} devices do not split into nodes of {devices_per_node}")
    nodes = num_devices // devices_per_node
    if num_groups < 1 or n_exp % num_groups:
        raise ValueError(f"{n_exp} experts do not split into {num_groups} groups")
    per_node = n_exp // nodes
    if nodes == 1 or num_groups % nodes or not per_node <= devices_per_node * spd <= per_node * devices_per_node:
        return greedy_global(expert_tokens, num_devices=num_devices, slots=slots)
    group_size = n_exp // num_groups
    group_tokens = [sum(expert_tokens[g * group_size:(g + 1) * group_size]) for g in range(num_groups)]
    groups_per_node = num_groups // nodes
    node_groups: list[list[int]] = [[] for _ in range(nodes)]
    node_load = [0.0] * nodes
    for g in sorted(range(num_groups), key=lambda g: (-group_tokens[g], g)):
        n = min((n for n in range(nodes) if len(node_groups[n]) < groups_per_node), key=lambda n: node_load[n])
        node_groups[n].append(g)
        node_load[n] += group_tokens[g]
    devices: list[list[int]] = []
    for n in range(nodes):
        experts = [e for g in sorted(node_groups[n]) for e in range(g * group_size, (g + 1) * group_size)]
        local = [expert_tokens[e] for e in experts]
        r = water_fill_replicas(local, devices_per_node * spd, devices_per_node)
        for dev in pack_heaviest_first(local, r, devices_per_node, spd):
            devices.append([experts[i] for i in dev])
    return LayerPlacement.from_devices(devices, n_exp)


def _slots_per_device(slots: int, num_devices: int, num_experts: int) -> int:
    if num_devices < 1 or slots % num_devices:
        raise ValueError(f"{slots} slots do not split evenly over {num_devices} devices")
    if not num_experts <= slots <= num_experts * num_devices:
        raise ValueError(f"{slots} slots must be between {num_experts} experts and experts x devices")
    return slots // num_devices
