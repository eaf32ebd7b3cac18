"""The ``solve_limits`` block: what ``--time-limit`` allowed, which CP-SAT solves stopped before proving their
answer, and whether the output may differ from run to run (planner/cpsat/budget.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from planner.documents.base import Document, NonNegative, field, optional

if TYPE_CHECKING:
    from planner.cpsat.budget import SolveBudget

StoppedEarlyBy = Literal["work_limit", "wall_limit", "skipped"]


class StoppedSolve(Document):
    """One CP-SAT solve that ended before proving its answer."""

    solve: str = field("Which solve: `deployment split #K`, `placement layer L`, `schedule`, `pipeline`.")
    status: str = field("Its CP-SAT status (FEASIBLE: a solution, not proven best; UNKNOWN: none found; SKIPPED: "
                        "not run because the time limit was spent).")
    stopped_by: StoppedEarlyBy = field(
        "`work_limit`: its deterministic work limit (the same on every run); `wall_limit`: the wall clock "
        "(--time-limit or a safety cap: another run may stop elsewhere); `skipped`: no time was left.")


class SolveLimits(Document):
    """Present when --time-limit was given: the shared budget and the solves it or their own limits stopped."""

    time_limit_s: NonNegative = field("--time-limit: wall-clock seconds for all of the command's solves together.")
    wall_limit_bound: bool = field(
        "True when the wall clock stopped or skipped a solve: the figures and the ranking may not be optimal and "
        "may differ from run to run (README 'Reproducibility'). False: the output is what the work limits give, "
        "the same bytes on every run.")
    stopped_early: list[StoppedSolve] = field("Solves that stopped before proving their answer, in order.")
    note: str | None = optional("What a binding limit means for this document, in words.")


def solve_limits(budget: SolveBudget | None) -> SolveLimits | None:
    """The block for ``budget`` (None without --time-limit: the output is then reproducible and unchanged)."""
    if budget is None or budget.wall_s is None:
        return None
    note = ("; ".join(["the wall clock stopped solves early: the results are the best found in time, not proven "
                       "optimal, and another run may give others", *budget.notes]) if budget.wall_bound else None)
    return SolveLimits(time_limit_s=budget.wall_s, wall_limit_bound=budget.wall_bound, note=note,
                       stopped_early=[StoppedSolve(solve=r.solve, status=r.status, stopped_by=r.stopped_by)
                                      for r in budget.stopped])
