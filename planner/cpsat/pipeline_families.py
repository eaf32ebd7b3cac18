"""Published pipeline schedules as fixed orders of :mod:`planner.cpsat.pipeline_result` slots, with the closed
forms of their makespans (solver-free).

Uniform chunks: every chunk of the model takes ``f``, ``b``, ``w`` seconds (F, input-gradient B,
weight-gradient W).  Bubble formulas below use the DualPipe README's convention where noted, ``B_full = b + w``.

- 1F1B (Narayanan et al. 2021, PipeDream-Flush as in Megatron-LM ``forward_backward_pipelining_without_
  interleaving``): device ``s`` runs ``p - s - 1`` warm-up forwards, then forward / full-backward pairs, then
  the remaining full backwards.  Makespan ``(m + p - 1)(f + b + w)``.
- Interleaved 1F1B (Narayanan et al. 2021, SC'21, section 2.2; Megatron-LM
  ``forward_backward_pipelining_with_interleaving``): ``v`` chunks per device, chunk ``c`` of device ``s`` is
  stage ``c p + s``; micro-batches in groups of ``p``; warm-up ``2(p - s - 1) + (v - 1) p``.  With per-device
  seconds ``F = v f`` and ``B = v (b + w)``: makespan ``m (F + B) + (p - 1)(F + B) / v`` (needs ``m % p == 0``).
- ZB-H1 (Qi et al. 2023, arXiv 2401.10241, section 3.1; the ``zb-h1-quick-start`` branch of
  sail-sg/zero-bubble-pipeline-parallelism@c5d5074, "delay W by rank"): 1F1B's order with B and W split and
  device ``s`` running each W ``s`` backwards late.  Bubble ``(p - 1)(f + b - w)``, the DualPipe README's ZB1P
  ``(PP - 1)(F + B_full - 2W)``.
- DualPipe and DualPipeV (deepseek-ai/DualPipe@3da1bbe, ``dualpipe/dualpipe.py`` and ``dualpipev.py``, the
  eight steps of ``step()``, transcribed): DualPipe feeds half of the micro-batches from each end of ``p``
  devices (each holds two chunks, one per direction); DualPipeV feeds all from device 0 down a V over
  ``p / 2`` devices.  An ``F&B`` slot is ``max(f, b + w) + overhead``.  README bubble:
  ``(PP / 2 - 1)(F&B + B_full - 3W)``, ``PP`` the number of stages (chunks).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

from planner.cpsat.pipeline_result import Op, Order, PipelineInstance, Slot, dependencies


def straight_routes(p: int, m: int, v: int = 1) -> tuple[tuple[int, ...], ...]:
    """Every micro-batch through chunks ``0 .. p v - 1``, chunk ``k`` on device ``k mod p``."""
    return tuple(tuple(k % p for k in range(p * v)) for _ in range(m))


def v_routes(d: int, m: int) -> tuple[tuple[int, ...], ...]:
    """Down devices ``0 .. d-1`` and back up (2 d chunks, a V)."""
    return tuple(tuple(list(range(d)) + list(range(d - 1, -1, -1))) for _ in range(m))


def dualpipe_routes(p: int, m: int) -> tuple[tuple[int, ...], ...]:
    """The first ``m / 2`` micro-batches enter at device 0, the rest at device ``p - 1``."""
    return tuple(tuple(range(p)) if b < m // 2 else tuple(range(p - 1, -1, -1)) for b in range(m))


def uniform(routes: tuple[tuple[int, ...], ...], f: float, b: float, w: float, **kw: object) -> PipelineInstance:
    """An instance whose chunks all take ``f``, ``b``, ``w`` seconds."""
    s = len(routes[0])
    devices = 1 + max(d for r in routes for d in r)
    return PipelineInstance(devices=devices, routes=routes, forward_s=(f,) * s, backward_s=(b,) * s,
                            weight_s=(w,) * s, **kw)  # type: ignore[arg-type]


def _f(b: int, k: int) -> Slot:
    return (Op("F", b, k),)


def _bw(b: int, k: int) -> Slot:
    return (Op("B", b, k), Op("W", b, k))


def order_1f1b(p: int, m: int) -> Order:
    out = []
    for s in range(p):
        warm = min(p - s - 1, m)
        seq = [_f(b, s) for b in range(warm)]
        for i in range(m - warm):
            seq += [_f(warm + i, s), _bw(i, s)]
        seq += [_bw(b, s) for b in range(m - warm, m)]
        out.append(tuple(seq))
    return tuple(out)


def order_interleaved(p: int, v: int, m: int) -> Order:
    if m % p:
        raise ValueError(f"interleaved 1F1B needs micro-batches ({m}) divisible by devices ({p})")
    total = m * v

    def mb(j: int) -> int:
        return (j // (p * v)) * p + j % p

    out = []
    for s in range(p):
        fwd = [_f(mb(j), ((j // p) % v) * p + s) for j in range(total)]
        bwd = [_bw(mb(j), (v - 1 - (j // p) % v) * p + s) for j in range(total)]
        warm = min(2 * (p - s - 1) + (v - 1) * p, total)
        seq = fwd[:warm]
        for i in range(total - warm):
            seq += [fwd[warm + i], bwd[i]]
        out.append(tuple(seq + bwd[total - warm:]))
    return tuple(out)


def order_zb_h1(p: int, m: int) -> Order:
    out = []
    for s in range(p):
        warm = min(p - s - 1, m)
        seq: list[Slot] = [_f(b, s) for b in range(warm)]
        late: deque[int] = deque()
        for i in range(m - warm):
            seq += [_f(warm + i, s), (Op("B", i, s),)]
            late.append(i)
            if len(late) > s:
                seq.append((Op("W", late.popleft(), s),))
        for b in range(m - warm, m):
            late.append(b)
            seq += [(Op("B", b, s),), (Op("W", late.popleft(), s),)]
        out.append(tuple(seq + [(Op("W", b, s),) for b in late]))
    return tuple(out)


def _dualpipe_actions(ranks: int, rank: int, chunks: int, last: bool) -> Iterator[tuple[str, int, int, bool]]:
    """``step()`` of DualPipe / DualPipeV for one rank, as (action, phase0, phase1, zero_bubble) where action is
    ``f``, ``b``, ``fb`` or ``w``.  ``ranks`` / ``rank`` / ``chunks`` are DualPipe's ``num_half_ranks`` /
    ``half_rank`` / ``half_num_chunks`` (DualPipeV: ``num_ranks`` / ``rank`` / ``num_chunks``); ``last`` is
    DualPipe's ``is_middle_rank`` (DualPipeV: ``is_last_rank``)."""
    yield from [("f", 0, 0, False)] * ((ranks - rank - 1) * 2)  # step 1: nF0
    for _ in range(rank + 1):  # step 2: nF0F1
        yield from [("f", 0, 0, False), ("f", 1, 1, False)]
    for _ in range(ranks - rank - 1):  # step 3: nB1W1F1
        yield from [("b", 1, 1, True), ("w", 0, 0, False), ("f", 1, 1, False)]
    for i in range(chunks - 2 * ranks + rank + 1):  # step 4: nF0B1F1B0
        if i == 0 and last:
            yield from [("f", 0, 0, False), ("b", 1, 1, False)]
        else:
            yield ("fb", 0, 1, False)
        yield ("fb", 1, 0, False)
    for _ in range(ranks - rank - 1):  # step 5: nB1F1B0
        yield from [("b", 1, 1, False), ("fb", 1, 0, False)]
    zb = False
    for i in range(rank + 1):  # step 6: nB1B0
        zb = zb or (i == (rank + 1) // 2 and rank % 2 == 1)
        yield ("b", 1, 1, zb)
        zb = zb or (i == (rank + 1) // 2 and rank % 2 == 0)
        yield ("b", 0, 0, zb)
    for _ in range(ranks - rank - 1):  # step 7: nWB0
        yield from [("w", 0, 0, False), ("b", 0, 0, True)]
    yield from [("w", 0, 0, False)] * (rank + 1)  # step 8: nW


def _dualpipe_slots(actions: Iterator[tuple[str, int, int, bool]], mbs: tuple[list[int], list[int]],
                    steps: tuple[int, int]) -> tuple[Slot, ...]:
    """Actions -> slots: each phase takes its next micro-batch for F and for B; a zero-bubble B queues its W
    (FIFO, DualPipe's ``WeightGradStore``), any other backward is fused."""
    nf, nb, queue, seq = [0, 0], [0, 0], deque[Op](), []

    def fwd(ph: int) -> Op:
        nf[ph] += 1
        return Op("F", mbs[ph][nf[ph] - 1], steps[ph])

    def bwd(ph: int) -> Op:
        nb[ph] += 1
        return Op("B", mbs[ph][nb[ph] - 1], steps[ph])

    for act, ph0, ph1, zb in actions:
        if act == "f":
            seq.append((fwd(ph0),))
        elif act == "w":
            seq.append((queue.popleft(),))
        elif act == "fb":
            f, b = fwd(ph0), bwd(ph1)
            seq.append((f, b, b._replace(kind="W")))
        else:
            b = bwd(ph0)
            if zb:
                queue.append(b._replace(kind="W"))
            seq.append((b,) if zb else (b, b._replace(kind="W")))
    if queue:
        raise AssertionError("DualPipe transcription left weight passes queued")
    return tuple(seq)


def order_dualpipe(p: int, m: int) -> Order:
    if p % 2 or m % 2 or m < 2 * p:
        raise ValueError(f"DualPipe needs even devices and micro-batches, micro-batches >= 2 x devices ({p}, {m})")
    half = p // 2
    out = []
    for r in range(p):
        second = r >= half
        h = min(r, p - 1 - r)
        # phase 0 is direction 0 on the first half of the ranks, direction 1 on the second half
        dirs = (1, 0) if second else (0, 1)
        mbs = tuple(list(range(m // 2)) if d == 0 else list(range(m // 2, m)) for d in dirs)
        steps = tuple(r if d == 0 else p - 1 - r for d in dirs)
        acts = _dualpipe_actions(half, h, m // 2, h == half - 1)
        out.append(_dualpipe_slots(acts, mbs, steps))  # type: ignore[arg-type]
    return tuple(out)


def order_dualpipev(d: int, m: int) -> Order:
    if m < 2 * d:
        raise ValueError(f"DualPipeV needs micro-batches >= 2 x devices ({d}, {m})")
    out = []
    for r in range(d):
        acts = _dualpipe_actions(d, r, m, r == d - 1)
        out.append(_dualpipe_slots(acts, (list(range(m)), list(range(m))), (r, 2 * d - 1 - r)))
    return tuple(out)


def makespan_1f1b(p: int, m: int, f: float, b: float, w: float) -> float:
    return (m + p - 1) * (f + b + w)


def makespan_interleaved(p: int, v: int, m: int, f: float, b: float, w: float) -> float:
    """``f, b, w`` per chunk; per device and micro-batch ``F = v f``, ``B = v (b + w)``."""
    big_f, big_b = v * f, v * (b + w)
    return m * (big_f + big_b) + (p - 1) * (big_f + big_b) / v


def makespan_zb_h1(p: int, m: int, f: float, b: float, w: float) -> float:
    return m * (f + b + w) + (p - 1) * (f + (b + w) - 2 * w)


def bubble_dualpipe(stages: int, fb: float, b: float, w: float) -> float:
    """The DualPipe README's ``(PP / 2 - 1)(F&B + B - 3W)`` with ``B = b + w`` (a full backward)."""
    return (stages / 2 - 1) * (fb + (b + w) - 3 * w)


_PRIORITY = {"B": 0, "F": 1, "W": 2}


def order_list_1f1b(inst: PipelineInstance) -> Order | None:
    """The 1F1B rule as a list schedule for any routes: repeatedly start the op that can start first (ties: B,
    then F, then W; then the lower micro-batch), a forward only while chunk ``k`` holds fewer than ``S - k``
    micro-batches (1F1B's in-flight count: ``p - s`` on a straight route, ``PP + 1`` on a DualPipe device) and
    the activations fit the memory limit.  On a straight route without a memory limit this is 1F1B with B and W
    split.  None when the rule deadlocks (a memory limit below what its forwards need)."""
    preds: dict[Op, list[tuple[Op, float]]] = {op: [] for op in inst.ops()}
    succs: dict[Op, list[Op]] = {op: [] for op in inst.ops()}
    for u, v, lag in dependencies(inst):
        preds[v].append((u, lag))
        succs[u].append(v)
    missing = {op: len(ps) for op, ps in preds.items()}
    ready = {op for op, n in missing.items() if n == 0}
    end: dict[Op, float] = {}
    free = [0.0] * inst.devices
    seqs: list[list[Slot]] = [[] for _ in range(inst.devices)]
    in_flight: dict[tuple[int, int], int] = {}
    held: list[list[Op]] = [[] for _ in range(inst.devices)]  # forwards whose activations may still be held
    fw = inst.weight_grad_fraction

    def holding(d: int, t: float) -> float:
        out = 0.0
        for f in held[d]:
            a = inst.activation_bytes[f.step]
            b_end, w_end = end.get(f._replace(kind="B"), math.inf), end.get(f._replace(kind="W"), math.inf)
            out += a * (1 - fw) * (b_end > t) + a * fw * (w_end > t)
        return out

    def can_start(op: Op, t: float) -> bool:
        if op.kind != "F":
            return True
        d = inst.device_of(op)
        if in_flight.get((d, op.step), 0) >= inst.chunks - op.step:
            return False
        if inst.memory_limit_bytes is None or not inst.activation_bytes:
            return True
        return holding(d, t) + inst.activation_bytes[op.step] <= inst.memory_limit_bytes * (1 + 1e-12)

    while ready:
        keys = []
        for op in ready:
            t = max([free[inst.device_of(op)]] + [end[u] + lag for u, lag in preds[op]])
            if can_start(op, t):
                keys.append((t, _PRIORITY[op.kind], op.mb, op.step, op))
        if not keys:
            return None
        t, *_, op = min(keys)
        d = inst.device_of(op)
        end[op] = t + inst.pass_s(op)
        free[d] = end[op]
        seqs[d].append((op,))
        key = (d, op.step)
        if op.kind == "F":
            in_flight[key] = in_flight.get(key, 0) + 1
            held[d].append(op)
        elif op.kind == "B":
            in_flight[key] -= 1
        ready.discard(op)
        for v in succs[op]:
            missing[v] -= 1
            if missing[v] == 0:
                ready.add(v)
    return tuple(tuple(s) for s in seqs) if len(end) == len(preds) else None
