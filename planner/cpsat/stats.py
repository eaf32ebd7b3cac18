"""What every CP-SAT solve reports (STYLE.md rule 7): status, objective, bound, gap and wall time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SolveStats:
    """One solve's outcome; objective and bound are in the model's own units (documented by each model)."""

    status: str
    objective: float
    bound: float
    gap: float
    wall_s: float
