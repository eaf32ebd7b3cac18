"""A predicted figure's error band as text: ``(-12 % / +8 %, 9 validation rows)``.

Reads any band with ``low_fraction``, ``high_fraction``, ``rows`` and ``matched`` (an analysis
:class:`~planner.analysis.error_bands.Band` or a document's :class:`~planner.documents.parts.ErrorBand`).
"""

from __future__ import annotations

from typing import Any

FULL_MATCH = "phase, topology, precision"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:+.0f} %"


def band_range(b: Any) -> str:
    """``-12 % / +8 %``: the low and high end of truth / prediction - 1."""
    return f"{_pct(b.low_fraction)} / {_pct(b.high_fraction)}"


def band_text(b: Any) -> str:
    """`` (-12 % / +8 %, 9 validation rows)`` (the regime match named when it was relaxed); empty when ``b`` is
    None (no validation row at all)."""
    if b is None:
        return ""
    n = len(b.rows)
    matched = "" if b.matched == FULL_MATCH else f", matched on {b.matched}"
    return f" ({band_range(b)}, {n} validation row{'s' if n != 1 else ''}{matched})"


def band_cell(b: Any) -> str:
    """The band for a narrow table cell: ``-12 % / +8 % (9)``; ``-`` when there is none."""
    return "-" if b is None else f"{band_range(b)} ({len(b.rows)})"
