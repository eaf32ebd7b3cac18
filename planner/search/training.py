"""``plan`` on a training scenario: every layout of :mod:`planner.search.training_space` on the cluster (and on
halves and quarters of it, for the Pareto front of throughput against devices), checked and costed.

Method: exact enumeration.  Each candidate is checked for divisibility (cost_models.training.dims), topology
(TP inside the scale-up domain) and memory per pipeline rank (the lightest recompute that fits is kept), then its
step is costed in floats (the closed-form pipeline; ``evaluate`` re-costs the chosen layout with the CP-SAT
schedule where that pays).  CP-SAT does not pay for the degree search itself: after divisibility a few hundred
layouts remain, each must be costed by the float model anyway, and enumeration is exact (the brute-force test
in tests/training/test_train_plan.py checks the recompute shortcut against costing every option).

Objectives: ``throughput`` (most tokens/s per device on the whole cluster), ``time`` (shortest time to the
token budget, any device count searched) and ``devices`` (fewest devices whose time to the budget meets the
deadline; ties by throughput).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from cost_models.training.dims import TrainingDims
from cost_models.training.memory import training_memory
from cost_models.training.specs import TrainingWorkload
from planner.analysis.training import (
    TrainingEvaluation,
    costed_closed_form,
    dims_problems,
    stage_memory,
    with_routing,
)
from planner.search.training_bound import ComputeBound
from planner.search.training_space import SpaceLimits, layouts, recompute_options, topology_ok

OBJECTIVES = ("throughput", "time", "devices")
REJECT_DIVISIBILITY, REJECT_SCHEDULE, REJECT_TOPOLOGY = "divisibility", "schedule", "topology"
REJECT_MEMORY, REJECT_DEADLINE, REJECT_BOUND, REJECT_ENGINE = "memory", "deadline", "bound", "engine"
Accept = Callable[[TrainingDims, TrainingWorkload], bool]
"""A caller's filter on (layout, workload), e.g. "the launch framework can express it" (plan --emit)."""
_SCHEDULE_FIELDS = ("pp", "vpp", "schedule")


class NoFeasibleTrainingPlan(Exception):
    """No layout passes; names the constraint that removed the most and what would help."""

    def __init__(self, constraint: str, detail: str, fixes: list[str]) -> None:
        super().__init__(f"{constraint}: {detail}")
        self.constraint, self.detail, self.fixes = constraint, detail, fixes


@dataclass(frozen=True, kw_only=True)
class TrainingPlanResult:
    objective: str
    method: str
    considered: int
    costed: int
    rejected: dict[str, int]
    wall_s: float
    top: tuple[TrainingEvaluation, ...]
    pareto: tuple[TrainingEvaluation, ...]


def device_counts(sc: object, objective: str) -> list[int]:
    """The whole cluster and half of it (the Pareto front), or every halving down to one node (``devices``)."""
    c = sc.cluster  # type: ignore[attr-defined]
    out, n = [], c.num_nodes
    while n >= 1 and (objective == "devices" or len(out) < 2):
        out.append(n * c.devices_per_node)
        if n % 2:
            break
        n //= 2
    return out


def _limits(sc: object, devices: int) -> SpaceLimits:
    c, w = sc.cluster, sc.workload  # type: ignore[attr-defined]
    return SpaceLimits(devices=devices, scale_up_devices=c.devices_per_node, seq_tokens=w.seq_tokens,
                       global_batch_sequences=w.global_batch_sequences)


def on_devices(sc: object, devices: int) -> object:
    """The scenario on its first ``devices`` devices (whole nodes)."""
    c = sc.cluster  # type: ignore[attr-defined]
    return replace(sc, cluster=replace(c, num_nodes=devices // c.devices_per_node))


def _passes_checks(sc: object, dims: TrainingDims, rejected: Counter) -> bool:
    """Divisibility and topology; a failure is counted in ``rejected``."""
    problems = dims_problems(sc, dims, sc.workload)  # type: ignore[attr-defined]
    if problems:
        rejected[REJECT_SCHEDULE if problems[0].field in _SCHEDULE_FIELDS else REJECT_DIVISIBILITY] += 1
        return False
    if not topology_ok(dims.tp, _limits(sc, dims.world_devices)):
        rejected[REJECT_TOPOLOGY] += 1
        return False
    return True


def _memory_if_fits(sc: object, dims: TrainingDims, w: TrainingWorkload) -> tuple | None:
    """Memory per rank when every rank fits (the first and last ranks, which hold the most activations and the
    logits, are checked before the others), else None."""
    cap = sc.cluster.device.hbm_bytes  # type: ignore[attr-defined]
    if not all(training_memory(sc.model, dims, w, rank=r, capacity_bytes=cap).fits  # type: ignore[attr-defined]
               for r in dict.fromkeys((0, dims.pp - 1))):
        return None
    mem = stage_memory(sc, dims, w)
    return mem if all(m.fits for m in mem) else None


def _best_on(sc: object, devices: int, k: int, rejected: Counter, *, exhaustive: bool,
             max_step_s: float = float("inf"), accept: Accept | None = None
             ) -> tuple[int, int, list[TrainingEvaluation]]:
    """(considered, costed, the ``k`` fastest layouts on ``devices`` devices).

    Branch and bound: every (layout, recompute option) that passes the checks gets the step-time lower bound of
    planner.search.training_bound; in increasing bound order each is checked for memory and costed, until the
    bound reaches the ``k``-th best step.  ``exhaustive``: every candidate that fits is costed (the brute force
    the tests compare with).  Candidates left unexamined are counted as ``bound`` (could not be among the best);
    a layout is a ``memory`` rejection when every recompute option examined failed memory, a ``deadline`` one
    when its bound exceeds ``max_step_s``, an ``engine`` one when ``accept`` refuses it."""
    sub = on_devices(sc, devices)
    bound = ComputeBound(sub)
    cands, considered = [], 0
    for dims in layouts(sc.model, _limits(sub, devices)):  # type: ignore[attr-defined]
        considered += 1
        if _passes_checks(sub, dims, rejected):
            for rec in recompute_options(sc.model):  # type: ignore[attr-defined]
                w = with_routing(sub, dims, replace(sub.workload, recompute=rec))  # type: ignore[attr-defined]
                cands.append((bound.step_lower_bound_s(dims, w), len(cands), dims, w))
    cands.sort(key=lambda c: (c[0], c[1]))
    status: dict[TrainingDims, str] = {}
    best: list[TrainingEvaluation] = []
    costed = 0
    for lb, _, dims, w in cands:
        if not exhaustive and (lb > max_step_s or len(best) >= k and lb >= best[-1].step_s):
            break
        if accept is not None and not accept(dims, w):
            status.setdefault(dims, REJECT_ENGINE)
            continue
        mem = _memory_if_fits(sub, dims, w)
        if mem is None:
            status.setdefault(dims, REJECT_MEMORY)
            continue
        status[dims] = "costed"
        costed += 1
        best.append(costed_closed_form(sub, dims, w, mem))
        best.sort(key=lambda e: (e.step_s, e.peak_memory.used_bytes))
        best = best if exhaustive else best[:k]
    for reason in (REJECT_MEMORY, REJECT_ENGINE):
        rejected[reason] += sum(1 for v in status.values() if v == reason)
    unexamined = {c[2] for c in cands} - set(status)
    rejected[REJECT_DEADLINE if max_step_s < float("inf") else REJECT_BOUND] += len(unexamined)
    return considered, costed, best


def _key(objective: str) -> Callable[[TrainingEvaluation], tuple]:
    if objective == "devices":
        return lambda e: (e.devices, -e.tokens_per_s)
    if objective == "time":
        return lambda e: (-e.tokens_per_s, e.devices)
    return lambda e: (-e.tokens_per_s_per_device, e.peak_memory.used_bytes)


def pareto_front(evals: list[TrainingEvaluation]) -> list[TrainingEvaluation]:
    """Fewest devices first: each kept layout is faster (tokens/s) than every one on as few devices."""
    out: list[TrainingEvaluation] = []
    for e in sorted(evals, key=lambda e: (e.devices, -e.tokens_per_s)):
        if not out or e.tokens_per_s > out[-1].tokens_per_s * (1 + 1e-12):
            if out and out[-1].devices == e.devices:
                continue
            out.append(e)
    return out


def search(sc: object, *, objective: str = "throughput", top_k: int = 5, exhaustive: bool = False,
           counts: list[int] | None = None, accept: Accept | None = None) -> TrainingPlanResult:
    """Enumerate, check and cost (module docstring); NoFeasibleTrainingPlan when nothing passes."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}; accepted: {OBJECTIVES}")
    if objective != "throughput" and sc.token_budget is None or objective == "devices" and sc.deadline_s is None:  # type: ignore[attr-defined]
        raise ValueError(f"objective {objective}: needs workload.token_budget" + (" and workload.deadline"
                                                                                 if objective == "devices" else ""))
    t0 = time.perf_counter()
    rejected: Counter = Counter()
    full = sc.cluster.num_devices  # type: ignore[attr-defined]
    considered = costed = 0
    per_count: list[TrainingEvaluation] = []
    max_step = (sc.deadline_s * sc.workload.global_batch_tokens / sc.token_budget  # type: ignore[attr-defined]
                if objective == "devices" else float("inf"))
    for devices in counts or device_counts(sc, objective):
        k = top_k if objective != "throughput" or devices == full else 1
        n, c, best = _best_on(sc, devices, k, rejected, exhaustive=exhaustive, max_step_s=max_step, accept=accept)
        considered, costed = considered + n, costed + c
        per_count += best
    ranked = [e for e in per_count if objective != "throughput" or e.devices == full]
    if objective == "devices":
        ranked = _meeting_deadline(sc, ranked, rejected)
    if not ranked:
        raise _infeasible(rejected, considered)
    ranked.sort(key=_key(objective))
    return TrainingPlanResult(objective=objective, method="exact enumeration, branch and bound on the compute "
                              "lower bound", considered=considered, costed=costed, rejected=dict(rejected),
                              wall_s=time.perf_counter() - t0, top=tuple(ranked[:top_k]),
                              pareto=tuple(pareto_front(per_count)))


def _meeting_deadline(sc: object, evals: list[TrainingEvaluation], rejected: Counter) -> list[TrainingEvaluation]:
    budget, deadline = sc.token_budget, sc.deadline_s  # type: ignore[attr-defined]
    ok = [e for e in evals if e.time_to_tokens_s(budget) <= deadline]
    rejected[REJECT_DEADLINE] += len(evals) - len(ok)
    return ok


def _infeasible(rejected: Counter, considered: int) -> NoFeasibleTrainingPlan:
    worst = max(rejected, key=rejected.get) if rejected else REJECT_DIVISIBILITY
    fixes = {REJECT_MEMORY: ["more devices", "a smaller micro-batch or sequence", "bf16 Adam moments or FP8"],
             REJECT_DEADLINE: ["a later workload.deadline", "a smaller workload.token_budget", "more nodes"],
             REJECT_TOPOLOGY: ["a larger scale-up domain (cluster.devices_per_node)"]}
    return NoFeasibleTrainingPlan(worst, f"{rejected[worst]:,} of {considered:,} layouts fail it "
                                  f"({', '.join(f'{k} {v:,}' for k, v in sorted(rejected.items()))})",
                                  fixes.get(worst, ["a global batch divisible by more data-parallel sizes",
                                                    "a device count with more power-of-two factors"]))
