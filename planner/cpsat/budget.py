"""One wall-clock budget for all of a command's CP-SAT solves, and the record of which solves stopped early.

The CLI makes one :class:`SolveBudget` per command (``--time-limit``, or none) and activates it with
:func:`using`; every CP-SAT call site (deployment split, placement sub-solves, layer and pipeline schedules)
asks :func:`current` for the wall seconds it may use (:meth:`SolveBudget.allot`: its own cap, or less when the
budget has less left) and reports back (:meth:`SolveBudget.finish`) how long it ran and why it stopped. The
budget counts solver time only (layout costing before the solves is not solving), so each solve gets what the
earlier ones left.

Reproducibility (STYLE.md rule 13): each solve also has a deterministic work limit (CP-SAT deterministic
seconds, machine-independent), so a run whose wall limits never bind gives the same bytes on every machine. A
solve stopped by the wall clock (``stopped_by == "wall_limit"``) may stop elsewhere on another run; the
documents say so. Without ``--time-limit`` no budget binds: only each solve's safety-net wall cap, set far above
its work limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MIN_SOLVE_S = 0.001
"""Smallest wall limit handed to CP-SAT (0 would mean no limit to some solver versions): an exhausted budget
still lets a solve return its hint."""

STOPPED_BY = ("work_limit", "wall_limit", "skipped")
"""Why a solve stopped before proving its answer: its deterministic work limit (reproducible), the wall clock
(the budget or a safety cap: timing-dependent), or not run at all because the budget was spent."""

WALL_FRACTION_BOUND = 0.98
"""A solve that stopped without proof after this fraction of its wall allotment is counted as stopped by the
wall clock (CP-SAT checks its limits between search steps, so it stops a little before or after)."""


@dataclass(frozen=True, kw_only=True)
class SolveRecord:
    """One CP-SAT solve that stopped before proving its answer."""

    solve: str
    """Which solve, e.g. ``deployment split #3``, ``placement layer 12``, ``schedule moe layer``."""
    status: str
    """The CP-SAT status it ended with (``FEASIBLE``, ``UNKNOWN``; ``SKIPPED`` when it was not run)."""
    stopped_by: str
    """One of :data:`STOPPED_BY`."""


@dataclass(kw_only=True)
class SolveBudget:
    """Wall seconds for all solves of one command; ``wall_s=None``: no shared wall limit."""

    wall_s: float | None = None
    spent_s: float = 0.0
    stopped: list[SolveRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What a solve site did about a solve that stopped early (e.g. listed its hint), in words."""

    def remaining_s(self) -> float:
        """Wall seconds left for solving (inf without a budget)."""
        return math.inf if self.wall_s is None else max(0.0, self.wall_s - self.spent_s)

    def exhausted(self) -> bool:
        return self.remaining_s() <= MIN_SOLVE_S

    def allot(self, cap_s: float, parts: int = 1) -> float:
        """Wall seconds the next solve may use: its own cap, or its share (``1/parts``) of what is left."""
        return max(MIN_SOLVE_S, min(cap_s, self.remaining_s() / max(1, parts)))

    def charge(self, wall_s: float) -> None:
        """Count ``wall_s`` seconds of solving against the budget."""
        self.spent_s += max(0.0, wall_s)

    def finish(self, solve: str, *, status: str, wall_s: float, allotted_s: float,
               work_units: float | None = None, work_limit_units: float | None = None) -> str:
        """Charge a finished solve and record it when it stopped before proving its answer; returns why it
        stopped (``""`` when it proved optimality or infeasibility, else one of :data:`STOPPED_BY`)."""
        self.charge(wall_s)
        if status in ("OPTIMAL", "INFEASIBLE", "EXACT_ENUMERATION"):
            return ""
        by_work = (work_units is not None and work_limit_units is not None
                   and work_units >= 0.99 * work_limit_units and wall_s < WALL_FRACTION_BOUND * allotted_s)
        why = "work_limit" if by_work else "wall_limit"
        self.stopped.append(SolveRecord(solve=solve, status=status, stopped_by=why))
        return why

    def skip(self, solve: str) -> None:
        """Record a solve not run because the budget was spent."""
        self.stopped.append(SolveRecord(solve=solve, status="SKIPPED", stopped_by="skipped"))

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def wall_bound(self) -> bool:
        """Whether the wall clock stopped (or skipped) any solve: the output may differ from run to run."""
        return any(r.stopped_by in ("wall_limit", "skipped") for r in self.stopped)


_ACTIVE: contextvars.ContextVar[SolveBudget | None] = contextvars.ContextVar("moeplan_solve_budget", default=None)


def current() -> SolveBudget:
    """The active command's budget; outside one (library use, tests) a fresh unlimited budget each call."""
    return _ACTIVE.get() or SolveBudget()


@contextlib.contextmanager
def using(budget: SolveBudget) -> Iterator[SolveBudget]:
    """Make ``budget`` the one every solve in this block draws from."""
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t:`` -> ``t[0]`` is the block's wall seconds after it ends."""
    out = [0.0]
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out[0] = time.perf_counter() - t0


class ModelOutOfRange(ValueError):
    """CP-SAT refused a model (``MODEL_INVALID``): a coefficient or bound built from the input left the solver's
    64-bit range. A ``ValueError``, so the CLI exits 2 (input out of range) with this message."""


def refuse_invalid(status: str, solve: str, model: Any, inputs: str) -> None:
    """Raise :class:`ModelOutOfRange` for a ``MODEL_INVALID`` status, naming the solve, the inputs that size
    its coefficients and CP-SAT's own reason (``model.validate()``, asked only then)."""
    if status == "MODEL_INVALID":
        validation = model.validate()
        raise ModelOutOfRange(f"{solve}: the solver model is out of range ({validation.strip()[:160] or 'MODEL_INVALID'}); "
                              f"the coefficients come from {inputs}; accepted: smaller values")
