"""A catalog number with its source and confidence (STYLE.md rule 8), plus SI unit constants.

Confidence mapping from the source tags listed in ``planner/catalog/SOURCES.md``:

* ``[V]`` vendor figure -> ``DATASHEET``; ``[V]`` measurement -> ``MEASURED``;
* ``[S]`` vendor figure quoted by a third party -> ``DATASHEET`` with ``[S]`` in the note;
  ``[S]`` measurement -> ``MEASURED`` with ``[S]`` in the note;
* ``[D]`` arithmetic on other numbers -> ``DERIVED`` (the note shows the arithmetic);
* ``[U]`` and this catalog's own assumptions -> ``ESTIMATED``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_models.specs import Confidence

# --- SI unit constants: a catalog writes ``141 * GIB`` or ``4.8 * TB_PER_S`` and stores bytes, bytes/s. ---
KIB = 2.0**10
MIB = 2.0**20
GIB = 2.0**30
GB = 1e9
TB = 1e12
GB_PER_S = 1e9
TB_PER_S = 1e12
TFLOP_PER_S = 1e12
US = 1e-6


def gbit_per_s(gigabits: float) -> float:
    """Bytes/s of a link rated in Gb/s (network line rates are decimal bits: 400 Gb/s = 50e9 B/s)."""
    return gigabits * 1e9 / 8


@dataclass(frozen=True)
class Sourced:
    """One catalog value in SI units with where it came from and how far to trust it."""

    value: float
    """The number, SI base units (FLOP/s, bytes, bytes/s, seconds, or a plain count/fraction)."""
    source: str
    """Where it comes from: document, section, row or file (never empty)."""
    confidence: Confidence
    """``datasheet``, ``measured``, ``derived`` or ``estimated``."""
    note: str = ""
    """Arithmetic, caveats, or competing values."""

    def __post_init__(self) -> None:
        if not self.source.strip():
            raise ValueError("a Sourced value needs a non-empty source")
        if not isinstance(self.confidence, Confidence):
            raise TypeError(f"confidence must be a Confidence, got {self.confidence!r}")


def datasheet(value: float, source: str, note: str = "") -> Sourced:
    """A vendor-published figure."""
    return Sourced(float(value), source, Confidence.DATASHEET, note)


def measured(value: float, source: str, note: str = "") -> Sourced:
    """A number someone measured and published."""
    return Sourced(float(value), source, Confidence.MEASURED, note)


def derived(value: float, source: str, note: str = "") -> Sourced:
    """Arithmetic on other sourced numbers; the note shows the arithmetic."""
    return Sourced(float(value), source, Confidence.DERIVED, note)


def estimated(value: float, source: str, note: str = "") -> Sourced:
    """An unverified figure or this catalog's own assumption."""
    return Sourced(float(value), source, Confidence.ESTIMATED, note)
