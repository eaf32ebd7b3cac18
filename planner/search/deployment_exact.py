"""The deployment split solved by exact enumeration, for instances small enough that it beats starting CP-SAT.

Same integer model as :mod:`planner.cpsat.deployment` (same quantized rates, same objectives, same top-K rule:
each next solution forbids the earlier (mode, layouts) combinations), so both methods return the same
objective values; this one finds the best point of every (mode, layouts) combination that can rank in the top K
(per prefill replica count only one decode count can be best; a pair whose score bound is below the K-th best
found is skipped). Ties, where CP-SAT may return any of several equal solutions, are broken here by the fewest
devices, then the first layouts in the candidate order. Tests compare the two on every shipped scenario small enough (tests/test_plan.py).

Why: importing ortools costs 0.35-0.55 s of CPU on the 2-core reference machine, against microseconds to
milliseconds for enumerating a 16-device cluster's shortlist.
"""

from __future__ import annotations

import dataclasses
import math
import time

from cost_models.kinds import DeploymentMode
from planner.cpsat import quantize
from planner.cpsat.deployment_instance import Deployment, DeploymentInstance, PoolCandidate
from planner.cpsat.stats import SolveStats

EXACT_STATUS = "EXACT_ENUMERATION"
"""The solver status a deployment found by enumeration reports (CP-SAT's are ``OPTIMAL``, ``FEASIBLE``, ...)."""

MAX_ENUMERATION_STEPS = 1_000_000
"""Largest number of enumeration steps (:func:`enumeration_steps`: the work with no pair skipped) before the
split goes to CP-SAT; a step costs about 1 us, so the worst case stays near CP-SAT's 0.35-0.55 s import.
Measured on the 2-core reference machine (CPU time, top 5, shortlists of the shipped scenarios): 1,024 x H200
291,712 steps, 0.27 s with every pair solved, 0.014-0.027 s with the score bound (CP-SAT: 0.15-0.40 s after
its import); CloudMatrix384 451,680 steps, 0.59 s / 0.03-0.06 s (CP-SAT 0.39-0.71 s)."""

_Point = tuple[int, int, int, int]  # (z, used, prefill replicas, decode replicas)


def _indices(inst: DeploymentInstance) -> tuple[list[int], list[int], list[int]]:
    n, c = inst.cluster_devices, inst.candidates
    agg = [k for k, x in enumerate(c) if x.aggregated_ok and inst.allow_aggregated and x.devices_per_replica <= n]
    pre = [k for k, x in enumerate(c) if x.prefill_ok and inst.allow_disaggregated and x.devices_per_replica < n]
    dec = [k for k, x in enumerate(c) if x.decode_ok and inst.allow_disaggregated and x.devices_per_replica < n]
    return agg, pre, dec


def enumeration_steps(inst: DeploymentInstance) -> int:
    """How many (mode, layout, replica count) steps :func:`solve_top_k_exact` takes (the size threshold's
    measure): every aggregated replica count, and every prefill replica count of every (prefill, decode) pair
    (the decode count follows from it: :func:`_best_decode_replicas`)."""
    n, c = inst.cluster_devices, inst.candidates
    agg, pre, dec = _indices(inst)
    return sum(n // c[k].devices_per_replica for k in agg) + len(dec) * sum(n // c[p].devices_per_replica for p in pre)


def _z_max(inst: DeploymentInstance) -> int:
    """The bound of CP-SAT's output-rate variable (the latency and devices objectives weigh by it)."""
    return sum(quantize.tok_per_s(x.decode_tok_per_s_per_device + x.aggregated_tok_per_s_per_device)
               for x in inst.candidates) * inst.cluster_devices + 1


def _objective(inst: DeploymentInstance, z: int, used: int, tpot_us: int, z_max: int) -> int | None:
    """The CP-SAT objective value of a point (maximised: throughput; minimised: latency, devices), or None when
    the point is infeasible (devices objective below the requested rate)."""
    if inst.objective == "throughput":
        return z * (inst.cluster_devices + 1) - used
    if inst.objective == "latency":
        return tpot_us * (z_max + 1) - z
    if inst.objective == "devices":
        if z < quantize.tok_per_s(inst.required_output_tok_per_s or 0.0):
            return None
        return used * (z_max + 1) - z
    raise ValueError(inst.objective)


def _better(inst: DeploymentInstance, a: tuple[int, int], b: tuple[int, int] | None) -> bool:
    """(objective, used) ``a`` strictly better than ``b``: the objective first, then the fewest devices."""
    if b is None:
        return True
    if a[0] != b[0]:
        return a[0] > b[0] if inst.objective == "throughput" else a[0] < b[0]
    return a[1] < b[1]


def _aggregated_combos(inst: DeploymentInstance, z_max: int) -> list[tuple[tuple[int, int], Deployment]]:
    """The best point of every aggregated layout, with its (objective, devices used)."""
    n, c = inst.cluster_devices, inst.candidates
    out: list[tuple[tuple[int, int], Deployment]] = []
    for k in _indices(inst)[0]:
        x = c[k]
        rate, tpot_us, best, arg = quantize.tok_per_s(x.aggregated_tok_per_s_per_device), round(x.aggregated_tpot_s * 1e6), None, 0
        for r in range(1, n // x.devices_per_replica + 1):
            used = r * x.devices_per_replica
            obj = _objective(inst, used * rate, used, tpot_us, z_max)
            if obj is not None and _better(inst, (obj, used), best):
                best, arg = (obj, used), r
        if best is not None:
            out.append((best, _deployment(DeploymentMode.AGGREGATED, None, 0, x, arg, best[1],
                                          arg * x.devices_per_replica * rate)))
    return out


def _combos(inst: DeploymentInstance) -> list[tuple[tuple[int, int], Deployment]]:
    """The best point of every (mode, layouts) combination, with its (objective, devices used)."""
    c = inst.candidates
    _, pre, dec = _indices(inst)
    z_max = _z_max(inst)
    out = _aggregated_combos(inst, z_max)
    for p in pre:
        for d in dec:
            found = _best_pair(inst, c[p], c[d], z_max)
            if found is not None:
                out.append(found)
    return out


def _score(inst: DeploymentInstance, obj: int) -> int:
    """An objective value as a score where larger is better."""
    return obj if inst.objective == "throughput" else -obj


def _pair_score_bound(inst: DeploymentInstance, p: PoolCandidate, d: PoolCandidate, z_max: int) -> int:
    """An upper bound on the :func:`_score` of any point of a (prefill, decode) pair. With ``u`` prefill devices
    the delivered rate is ``z <= min(u x pre_rate x output / input, (n - u) x dec_rate)``, at most the crossing
    ``n x pre_rate x output x dec_rate / (pre_rate x output + dec_rate x input)``; every point uses at least one
    replica of each."""
    n = inst.cluster_devices
    pr, r = quantize.tok_per_s(p.prefill_tok_per_s_per_device), quantize.tok_per_s(d.decode_tok_per_s_per_device)
    den = pr * inst.output_tokens + r * inst.input_tokens
    z_ub = n * pr * inst.output_tokens * r // den + 1 if den > 0 else 0
    if inst.objective == "throughput":
        return z_ub * (n + 1) - p.devices_per_replica - d.devices_per_replica
    if inst.objective == "latency":
        return z_ub - round(d.tpot_s * 1e6) * (z_max + 1)
    # devices: reaching the requested rate takes feed >= need and decode replicas x dec_rate >= need
    need = quantize.tok_per_s(inst.required_output_tok_per_s or 0.0)
    pre_step, dec_step = p.devices_per_replica * pr * inst.output_tokens, d.devices_per_replica * r
    if need > 0 and (pre_step <= 0 or dec_step <= 0):
        return -(n + 1) * (z_max + 1)  # below every feasible point's score (used <= n, z >= 0)
    x = max(1, -(-need * inst.input_tokens // pre_step)) if need > 0 else 1
    y = max(1, -(-need // dec_step)) if need > 0 else 1
    return z_ub - (x * p.devices_per_replica + y * d.devices_per_replica) * (z_max + 1)


def _top_combos(inst: DeploymentInstance, k: int) -> list[tuple[tuple[int, int], Deployment]]:
    """The combinations of :func:`_combos` that can rank in the top ``k``, in the same (candidate) order: pairs
    are solved from the highest score bound down, and a pair whose bound is below the k-th best score found so
    far is skipped (its objective is strictly worse than k others, so it cannot enter the top k, ties included)."""
    c = inst.candidates
    _, pre, dec = _indices(inst)
    z_max = _z_max(inst)
    agg = _aggregated_combos(inst, z_max)
    scores = sorted((_score(inst, obj) for (obj, _), _ in agg), reverse=True)[:k]
    pairs = [(p, d) for p in pre for d in dec]
    bounds = [_pair_score_bound(inst, c[p], c[d], z_max) for p, d in pairs]
    solved: dict[int, tuple[tuple[int, int], Deployment]] = {}
    for i in sorted(range(len(pairs)), key=lambda i: -bounds[i]):
        if len(scores) == k and bounds[i] < scores[-1]:
            break
        found = _best_pair(inst, c[pairs[i][0]], c[pairs[i][1]], z_max)
        if found is not None:
            solved[i] = found
            scores = sorted(scores + [_score(inst, found[0][0])], reverse=True)[:k]
    return agg + [solved[i] for i in sorted(solved)]


def _best_pair(inst: DeploymentInstance, p: PoolCandidate, d: PoolCandidate,
               z_max: int) -> tuple[tuple[int, int], Deployment] | None:
    """The best point of one (prefill, decode) pair: for each prefill replica count ``x`` only the decode count
    :func:`_best_decode_replicas` names can be best (the others are worse at that ``x``), and across ``x`` the
    first strictly better point wins, as a scan of every (x, y) in order would keep."""
    n = inst.cluster_devices
    pre_rate, dec_rate = quantize.tok_per_s(p.prefill_tok_per_s_per_device), quantize.tok_per_s(d.decode_tok_per_s_per_device)
    tpot_us = round(d.tpot_s * 1e6)
    need = quantize.tok_per_s(inst.required_output_tok_per_s or 0.0) if inst.objective == "devices" else None
    step = d.devices_per_replica * dec_rate  # output rate per decode replica
    best: tuple[int, int] | None = None
    arg: _Point = (0, 0, 0, 0)
    for x in range(1, n // p.devices_per_replica + 1):
        pre_used = x * p.devices_per_replica
        y_max = (n - pre_used) // d.devices_per_replica
        if y_max < 1:
            continue
        feed = pre_used * pre_rate * inst.output_tokens // inst.input_tokens  # z * input <= prefill rate * output
        y = _best_decode_replicas(feed, step, y_max, need)
        if y is None:
            continue
        used = pre_used + y * d.devices_per_replica
        z = min(y * step, feed)
        obj = _objective(inst, z, used, tpot_us, z_max)
        if obj is not None and _better(inst, (obj, used), best):
            best, arg = (obj, used), (z, used, x, y)
    if best is None:
        return None
    z, used, x, y = arg
    return best, _deployment(DeploymentMode.DISAGGREGATED, p, x, d, y, used, z)


def _best_decode_replicas(feed: int, step: int, y_max: int, need: int | None) -> int | None:
    """The decode replica count in [1, ``y_max``] whose point is best at a fixed prefill pool that can feed
    ``feed`` (z = min(y x ``step``, feed)); None when none is feasible.

    Throughput and latency rank by z, then by the fewest devices (z weighs ``devices + 1`` or more, so one unit
    of z outweighs any device count): z grows with y up to the first y whose pool absorbs the feed, and only
    adds devices after it, so that y (capped at ``y_max``) is the unique best. ``need`` (devices objective):
    devices first (each replica weighs more than any z), so the fewest replicas whose z reaches ``need``."""
    if need is None:
        y = -(-feed // step) if step > 0 else 1
        return min(max(1, y), y_max)
    if step <= 0:
        y = 1
    else:
        y = max(1, -(-need // step))
    if y > y_max or min(y * step, feed) < need:
        return None
    return y


def _deployment(mode: DeploymentMode, prefill: PoolCandidate | None, xp: int, decode: PoolCandidate, yd: int,
                used: int, z: int) -> Deployment:
    return Deployment(mode=mode, prefill=prefill, prefill_replicas=xp, decode=decode, decode_replicas=yd,
                      devices_used=used, output_tok_per_s_units=z)


def delivered_units(inst: DeploymentInstance, d: Deployment) -> int:
    """Z, in the model's integer units, that ``d``'s replica counts deliver: what an optimal solve of those counts
    sets it to (a solve stopped early may report less)."""
    if d.mode is DeploymentMode.AGGREGATED:
        return d.decode_replicas * d.decode.devices_per_replica * quantize.tok_per_s(d.decode.aggregated_tok_per_s_per_device)
    assert d.prefill is not None
    feed = (d.prefill_replicas * d.prefill.devices_per_replica * quantize.tok_per_s(d.prefill.prefill_tok_per_s_per_device)
            * inst.output_tokens // inst.input_tokens)
    return min(d.decode_replicas * d.decode.devices_per_replica * quantize.tok_per_s(d.decode.decode_tok_per_s_per_device),
               feed)


def rank(inst: DeploymentInstance, found: list[Deployment]) -> list[Deployment]:
    """``found`` re-costed (each at the Z its replica counts deliver) and sorted best first by the model's own
    objective, then the fewest devices; stable, so an optimal top-K keeps the solver's order. A top-K whose solves
    stopped early comes back in any order (issue 12: 1,326,111 / 1,266,585 / 1,325,042 tok/s); after this the
    first deployment is the best of those listed."""
    z_max = _z_max(inst)
    scored = []
    for d in found:
        z = delivered_units(inst, d)
        tpot = d.decode.aggregated_tpot_s if d.mode is DeploymentMode.AGGREGATED else d.decode.tpot_s
        obj = _objective(inst, z, d.devices_used, round(tpot * 1e6), z_max)
        sign = -1 if inst.objective == "throughput" else 1
        scored.append(((sign * obj if obj is not None else math.inf, d.devices_used),
                       dataclasses.replace(d, output_tok_per_s_units=z)))
    return [d for _, d in sorted(scored, key=lambda t: t[0])]


def combo_objectives(inst: DeploymentInstance) -> dict[tuple[str, int, int], tuple[int, Deployment]]:
    """Every (mode, layouts) combination's best objective value and deployment, by :attr:`Deployment.key`."""
    return {d.key: (obj, d) for (obj, _), d in _combos(inst)}


def solve_top_k_exact(inst: DeploymentInstance, *, k: int = 5) -> tuple[list[Deployment], list[SolveStats]]:
    """:func:`planner.cpsat.deployment.solve_top_k` by enumeration: the K best (mode, layouts) combinations,
    each at its best replica counts; one :class:`SolveStats` per solution (``EXACT_ENUMERATION``, gap 0), and a
    final ``INFEASIBLE`` one when fewer than K combinations exist, as CP-SAT reports."""
    t0 = time.perf_counter()
    combos = _top_combos(inst, k)  # candidate order: aggregated layouts, then (prefill, decode) pairs
    sign = -1 if inst.objective == "throughput" else 1
    ranked = sorted(combos, key=lambda t: (sign * t[0][0], t[0][1]))  # stable: ties keep the candidate order
    wall = time.perf_counter() - t0
    found = [d for _, d in ranked[:k]]
    stats = [SolveStats(status=EXACT_STATUS, objective=float(obj), bound=float(obj), gap=0.0, wall_s=wall / max(1, len(found)))
             for (obj, _), _ in ranked[:k]]
    if len(found) < k:
        stats.append(SolveStats(status="INFEASIBLE", objective=0.0, bound=0.0, gap=0.0, wall_s=0.0))
    return found, stats


def solve_deployments(inst: DeploymentInstance, *, k: int = 5,
                      seed: int = 0) -> tuple[list[Deployment], list[SolveStats]]:
    """Enumeration up to :data:`MAX_ENUMERATION_STEPS`, CP-SAT beyond (imported only then; its solves draw on
    the command's :mod:`planner.cpsat.budget`)."""
    if enumeration_steps(inst) <= MAX_ENUMERATION_STEPS:
        return solve_top_k_exact(inst, k=k)
    from planner.cpsat.deployment import solve_top_k
    return solve_top_k(inst, k=k, seed=seed)
