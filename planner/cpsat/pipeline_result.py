"""A pipeline-parallel training step as an instance and a schedule (solver-free): what
:mod:`planner.cpsat.pipeline` solves, re-costs and returns, and what documents and charts read.

Vocabulary (Qi et al. 2023, "Zero Bubble Pipeline Parallelism", arXiv 2401.10241, section 2)
    Every micro-batch passes through the model's ``S`` chunks (pipeline stages) in order: its route names the
    device that holds each chunk (``route[k]``).  On chunk ``k`` it needs a forward ``F``, an input-gradient
    backward ``B`` (what the previous chunk waits for) and a weight-gradient backward ``W`` (what nobody waits
    for).  A device runs one *slot* at a time on its compute stream.  A slot is one of
    ``(F,)``, ``(B,)``, ``(W,)``; ``(B, W)``: the fused full backward of 1F1B, whose input gradient leaves at the
    end of the slot; ``(F, B)`` or ``(F, B, W)``: DualPipe's overlapped forward-and-backward pair of two
    different micro-batches (DeepSeek-V3 technical report, arXiv 2412.19437, section 3.2.1), lasting
    ``max(F, B [+ W]) + pair_overhead_s``.  Every op of a slot starts and ends with the slot.

Dependencies (:func:`dependencies`)
    ``F[b, k]`` after ``F[b, k-1]``; ``B[b, S-1]`` after ``F[b, S-1]`` (the loss); ``B[b, k]`` after
    ``B[b, k+1]``; each plus ``p2p_s`` where the two chunks sit on different devices, else nothing (the turn of
    a V-shaped route).  ``W[b, k]`` after ``B[b, k]`` unless both share a slot.

Memory
    Micro-batch ``b`` holds ``activation_bytes[k] x (1 - weight_grad_fraction)`` on its chunk-``k`` device from
    the start of ``F[b, k]`` to the end of ``B[b, k]``, and the rest (what ``W`` reads: the layer inputs of the
    weight GEMMs) until the end of ``W[b, k]``.  The sum over micro-batches must stay within
    ``memory_limit_bytes`` on every device.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from planner.cpsat.stats import SolveStats

PASSES = ("F", "B", "W")
"""Forward, input-gradient backward, weight-gradient backward."""
_TOL_S = 1e-12


class Op(NamedTuple):
    """One pass of one micro-batch on one chunk."""

    kind: str
    """One of :data:`PASSES`."""
    mb: int
    step: int
    """The chunk's index along the micro-batch's route."""


Slot = tuple[Op, ...]
"""Ops that run as one unit on one device (module docstring)."""
Order = tuple[tuple[Slot, ...], ...]
"""Per device, its slots in execution order."""


@dataclass(frozen=True, kw_only=True)
class PipelineInstance:
    """One training step's pipeline: routes, pass durations, P2P time, memory."""

    devices: int
    routes: tuple[tuple[int, ...], ...]
    """Per micro-batch, the device of each chunk along its route (all routes have the same length ``S``)."""
    forward_s: tuple[float, ...]
    """Seconds of ``F`` on chunk ``k`` (index along the route), one per step."""
    backward_s: tuple[float, ...]
    """Seconds of ``B`` (input gradient only)."""
    weight_s: tuple[float, ...]
    """Seconds of ``W`` (weight gradient)."""
    p2p_s: float = 0.0
    """Send/receive seconds between two chunks on different devices."""
    pair_overhead_s: float | None = None
    """Extra seconds of an overlapped F-and-B pair over the longer of the two; None: no pairs."""
    pair_window: int | None = None
    """Free solves consider pairs of micro-batches at most this far apart (None: every pair on a device)."""
    activation_bytes: tuple[float, ...] = ()
    """Bytes one micro-batch holds on chunk ``k`` (empty: memory not modelled)."""
    weight_grad_fraction: float = 0.0
    """Share of those bytes held until ``W`` instead of ``B``."""
    memory_limit_bytes: float | None = None
    """Activation bytes each device may hold at once (None: unlimited)."""

    def __post_init__(self) -> None:
        s = len(self.forward_s)
        if self.devices < 1 or not self.routes or s < 1:
            raise ValueError("need devices >= 1, at least one micro-batch and one chunk")
        if any(len(r) != s for r in self.routes) or len(self.backward_s) != s or len(self.weight_s) != s:
            raise ValueError(f"every route and duration tuple needs {s} entries (one per chunk)")
        if any(not 0 <= d < self.devices for r in self.routes for d in r):
            raise ValueError(f"route devices must be in 0..{self.devices - 1}")
        times = (*self.forward_s, *self.backward_s, *self.weight_s, self.p2p_s, self.pair_overhead_s or 0.0)
        if any(not (math.isfinite(t) and t >= 0) for t in times) or min(self.forward_s) <= 0:
            raise ValueError("durations must be finite and >= 0, forward durations > 0")
        if self.activation_bytes and len(self.activation_bytes) != s:
            raise ValueError(f"activation_bytes needs {s} entries")
        if not 0.0 <= self.weight_grad_fraction <= 1.0 or (self.pair_window or 0) < 0:
            raise ValueError("weight_grad_fraction must be in [0, 1] and pair_window >= 0")

    @property
    def micro_batches(self) -> int:
        return len(self.routes)

    @property
    def chunks(self) -> int:
        return len(self.forward_s)

    def device_of(self, op: Op) -> int:
        return self.routes[op.mb][op.step]

    def pass_s(self, op: Op) -> float:
        return {"F": self.forward_s, "B": self.backward_s, "W": self.weight_s}[op.kind][op.step]

    def ops(self) -> list[Op]:
        return [Op(k, b, s) for b in range(self.micro_batches) for s in range(self.chunks) for k in PASSES]

    def work_s(self) -> list[float]:
        """Each device's F + B + W seconds: without pairs, a lower bound on the makespan."""
        out = [0.0] * self.devices
        for op in self.ops():
            out[self.device_of(op)] += self.pass_s(op)
        return out


def slot_kind(slot: Slot) -> str:
    """``"F"``, ``"B"``, ``"W"``, ``"BW"`` (fused backward), ``"FB"`` / ``"FBW"`` (overlapped pair); raises on a
    slot that is none of these."""
    kinds = "".join(o.kind for o in slot)
    same = len({(o.mb, o.step) for o in slot}) == 1
    ok = {"F": True, "B": True, "W": True, "BW": same,
          "FB": not same, "FBW": len(slot) == 3 and slot[0].mb != slot[1].mb and slot[1][1:] == slot[2][1:]}
    if not ok.get(kinds, False):
        raise ValueError(f"not a slot: {slot}")
    return kinds


def slot_seconds(inst: PipelineInstance, slot: Slot) -> float:
    """A slot's duration: the sum of its passes, or for a pair ``max(F, backward) + pair_overhead_s``."""
    kind = slot_kind(slot)
    if kind.startswith("FB"):
        if inst.pair_overhead_s is None:
            raise ValueError("this instance has no overlapped pairs (pair_overhead_s is None)")
        return max(inst.pass_s(slot[0]), sum(inst.pass_s(o) for o in slot[1:])) + inst.pair_overhead_s
    return sum(inst.pass_s(o) for o in slot)


def dependencies(inst: PipelineInstance) -> list[tuple[Op, Op, float]]:
    """(predecessor, successor, lag seconds) for every micro-batch (module docstring); W after its B is listed
    with lag 0 and is waived when both share a slot."""
    out: list[tuple[Op, Op, float]] = []
    s_last = inst.chunks - 1
    for b, route in enumerate(inst.routes):
        for k in range(inst.chunks):
            if k > 0:
                lag = inst.p2p_s if route[k] != route[k - 1] else 0.0
                out.append((Op("F", b, k - 1), Op("F", b, k), lag))
                out.append((Op("B", b, k), Op("B", b, k - 1), lag))
            out.append((Op("B", b, k), Op("W", b, k), 0.0))
        out.append((Op("F", b, s_last), Op("B", b, s_last), 0.0))
    return out


def earliest_starts(inst: PipelineInstance, order: Order, duration: Callable[[Slot], float],
                    lag: Callable[[float], float] = float) -> dict[Slot, float]:
    """Start of every slot when each starts as soon as its device's previous slot and its ops' predecessors
    allow (the longest path through the order and the dependencies).  Raises ValueError when the order covers
    an op twice or not at all, or contradicts the dependencies (a cycle)."""
    slot_of = {op: sl for dev in order for sl in dev for op in sl}
    if sum(len(sl) for dev in order for sl in dev) != len(slot_of) or set(slot_of) != set(inst.ops()):
        raise ValueError("the order must cover every op of every micro-batch exactly once")
    preds: dict[Slot, list[tuple[Slot, float]]] = defaultdict(list)
    for dev in order:
        preds.update({dev[i]: [(dev[i - 1], 0.0)] for i in range(1, len(dev))})
    for u, v, lag_s in dependencies(inst):
        if slot_of[u] != slot_of[v]:
            preds[slot_of[v]].append((slot_of[u], lag(lag_s)))
    succs: dict[Slot, list[Slot]] = defaultdict(list)
    indeg = {sl: 0 for dev in order for sl in dev}
    for v, ps in preds.items():
        for u, _ in ps:
            succs[u].append(v)
            indeg[v] += 1
    ready = [sl for sl, d in indeg.items() if d == 0]
    start: dict[Slot, float] = {}
    while ready:
        sl = ready.pop()
        start[sl] = max((start[u] + duration(u) + g for u, g in preds[sl]), default=0)
        for v in succs[sl]:
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    if len(start) != len(indeg):
        raise ValueError("the order contradicts the dependencies (a cycle between devices)")
    return start


@dataclass(frozen=True, kw_only=True)
class ScheduledSlot:
    """One slot as scheduled."""

    device: int
    ops: Slot
    start_s: float
    end_s: float

    @property
    def kind(self) -> str:
        return slot_kind(self.ops)


@dataclass(frozen=True, kw_only=True)
class PipelineSchedule:
    """A step's pipeline schedule, re-costed in floats from the solver's order."""

    makespan_s: float
    """First start to last end: the pipeline part of the step time."""
    lower_bound_s: float
    """:func:`lower_bound_s`, the largest over devices."""
    bubble_s: tuple[float, ...]
    """Per device, makespan minus the seconds its compute stream is busy."""
    peak_activation_bytes: tuple[float, ...]
    slots: tuple[ScheduledSlot, ...]
    stats: SolveStats
    """Of the solve (objective and bound in seconds, at the model's resolution)."""

    def order(self, devices: int) -> Order:
        by_dev: dict[int, list[ScheduledSlot]] = defaultdict(list)
        for s in self.slots:
            by_dev[s.device].append(s)
        return tuple(tuple(s.ops for s in sorted(by_dev[d], key=lambda s: (s.start_s, s.end_s)))
                     for d in range(devices))


def memory_profile(inst: PipelineInstance, slots: Sequence[ScheduledSlot]) -> tuple[float, ...]:
    """Peak activation bytes per device (module docstring); a release at time t frees before an allocation
    at t."""
    at = {op: s for s in slots for op in s.ops}
    events: dict[int, list[tuple[float, float]]] = defaultdict(list)
    f = inst.weight_grad_fraction
    for op in at if inst.activation_bytes else ():
        if op.kind != "F":
            continue
        a, dev = inst.activation_bytes[op.step], inst.device_of(op)
        t0 = at[op].start_s
        events[dev] += [(t0, a), (at[op._replace(kind="B")].end_s, -a * (1 - f)),
                        (at[op._replace(kind="W")].end_s, -a * f)]
    peaks = []
    for d in range(inst.devices):
        load, peak = 0.0, 0.0
        for _, du in sorted(events[d], key=lambda e: (e[0], e[1])):
            load += du
            peak = max(peak, load)
        peaks.append(peak)
    return tuple(peaks)


def schedule_of(inst: PipelineInstance, order: Order, stats: SolveStats) -> PipelineSchedule:
    """Re-cost an order in floats (exact durations, earliest starts)."""
    start = earliest_starts(inst, order, lambda sl: slot_seconds(inst, sl))
    slots = tuple(ScheduledSlot(device=d, ops=sl, start_s=start[sl], end_s=start[sl] + slot_seconds(inst, sl))
                  for d, dev in enumerate(order) for sl in dev)
    span = max(s.end_s for s in slots) - min(s.start_s for s in slots)
    busy = [sum(s.end_s - s.start_s for s in slots if s.device == d) for d in range(inst.devices)]
    return PipelineSchedule(makespan_s=span, lower_bound_s=max(lower_bound_s(inst)), slots=slots,
                            bubble_s=tuple(span - b for b in busy), stats=stats,
                            peak_activation_bytes=memory_profile(inst, slots))


def lower_bound_s(inst: PipelineInstance) -> list[float]:
    """Per device: the earliest any of its ops can start (the longest dependency chain before it, devices
    ignored) plus its work, less what pairs could save at most (every F of the device hidden inside a
    backward, saving ``min(F, B + W) - overhead`` each where positive).  The makespan is at least the largest."""
    out = inst.work_s()
    if inst.pair_overhead_s is not None:
        for op in inst.ops():
            if op.kind == "F":
                k = op.step
                save = min(inst.forward_s[k], inst.backward_s[k] + inst.weight_s[k]) - inst.pair_overhead_s
                out[inst.device_of(op)] -= max(0.0, save)
    head: dict[Op, float] = {}
    preds: dict[Op, list[tuple[Op, float]]] = defaultdict(list)
    for u, v, lag in dependencies(inst):
        preds[v].append((u, lag))
    for b in range(inst.micro_batches):  # F forward along the route, then B back, then each W
        chain = [Op("F", b, k) for k in range(inst.chunks)] + [Op("B", b, k) for k in reversed(range(inst.chunks))]
        for op in chain + [Op("W", b, k) for k in range(inst.chunks)]:
            head[op] = max((head[u] + inst.pass_s(u) + lag for u, lag in preds[op]), default=0.0)
    first = [math.inf] * inst.devices
    for op, t in head.items():
        first[inst.device_of(op)] = min(first[inst.device_of(op)], t)
    return [w + (f if math.isfinite(f) else 0.0) for w, f in zip(out, first, strict=True)]


def check_schedule(inst: PipelineInstance, sch: PipelineSchedule) -> list[str]:
    """Violations found without the solver: coverage, slot shapes and durations, devices, dependencies with
    their P2P lag, one slot at a time per device, the memory limit."""
    errs: list[str] = []
    at: Mapping[Op, ScheduledSlot] = {op: s for s in sch.slots for op in s.ops}
    if sum(len(s.ops) for s in sch.slots) != len(at) or set(at) != set(inst.ops()):
        return ["the slots must cover every op exactly once"]
    for s in sch.slots:
        try:
            need = slot_seconds(inst, s.ops)
        except ValueError as e:
            errs.append(str(e))
            continue
        if s.end_s - s.start_s < need - _TOL_S:
            errs.append(f"{s.ops}: lasts {s.end_s - s.start_s:.9f} s < {need:.9f} s")
        errs += [f"{op} runs on device {s.device}, its chunk is on {inst.device_of(op)}" for op in s.ops
                 if inst.device_of(op) != s.device]
    for u, v, lag in dependencies(inst):
        if at[u] is not at[v] and at[v].start_s < at[u].end_s + lag - _TOL_S:
            errs.append(f"{v} starts before {u} ends (+ {lag} s)")
    for d in range(inst.devices):
        mine = sorted((s for s in sch.slots if s.device == d), key=lambda s: (s.start_s, s.end_s))
        errs += [f"device {d}: {a.ops} and {b.ops} overlap" for a, b in zip(mine, mine[1:], strict=False)
                 if b.start_s < a.end_s - _TOL_S]
    if inst.memory_limit_bytes is not None:
        peaks = memory_profile(inst, sch.slots)
        errs += [f"device {d}: {p:.6g} activation bytes > limit {inst.memory_limit_bytes:.6g}"
                 for d, p in enumerate(peaks) if p > inst.memory_limit_bytes * (1 + 1e-9)]
    return errs
