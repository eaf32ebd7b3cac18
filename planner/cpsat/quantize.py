"""The one place floats become CP-SAT integers.

Resolution: throughput in units of ``1 / TOKENS_PER_S_SCALE`` tokens/s per device (0.01 tok/s), so the largest
cluster total (1,024 devices x 1e5 tok/s x 100) stays far below CP-SAT's 2^62 bound while the rounding error of
any plan's total is at most ``devices * 0.005`` tok/s, i.e. below 1e-6 of any realistic objective. Every plan
the solver returns is re-costed in floats (:mod:`planner.search.validate`) and the ranking re-checked there.
"""

from __future__ import annotations

TOKENS_PER_S_SCALE = 100
"""Integer units per token/s."""


def tok_per_s(value: float) -> int:
    """Tokens/s -> integer units (round half to even; never negative)."""
    return max(0, round(value * TOKENS_PER_S_SCALE))


def from_tok_per_s(units: int | float) -> float:
    return units / TOKENS_PER_S_SCALE


def max_rounding_error_tok_per_s(devices: int) -> float:
    """Largest difference between a plan's float total and its integer objective, in tokens/s."""
    return devices * 0.5 / TOKENS_PER_S_SCALE
