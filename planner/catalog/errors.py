"""Errors raised by the catalog: an unknown catalog name, and a bad or missing key in a config.json.

Both carry what the CLI needs to print one actionable line (STYLE.md rule 9: name the key path, the bad value
and what would be accepted) and exit with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class CatalogError(Exception):
    """Base class of the catalog's bad-input errors."""


class UnknownName(CatalogError):
    """A device or model id that the catalog does not have; carries the closest valid names."""

    def __init__(self, kind: str, given: str, suggestions: Iterable[str]) -> None:
        self.kind = kind
        """What was looked up: ``device`` or ``model``."""
        self.given = given
        """The name as the user wrote it."""
        self.suggestions = tuple(suggestions)
        """Closest valid names, best first (may be empty)."""
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} {given!r}{hint}")

    @classmethod
    def among(cls, kind: str, given: str, valid: Iterable[str], *, limit: int = 3) -> UnknownName:
        """Build the error with the valid names closest to ``given``.

        Names that contain ``given`` (case-insensitive) come first, so ``h200`` suggests ``h200_sxm``;
        then :func:`difflib.get_close_matches` fills up to ``limit`` names.
        """
        names = list(valid)
        needle = given.strip().lower()
        contained = [n for n in names if needle and needle in n.lower()]
        close = difflib.get_close_matches(needle, names, n=limit, cutoff=0.5)
        ordered = list(dict.fromkeys(sorted(contained, key=len) + close))
        return cls(kind, given, ordered[:limit])


class ConfigError(CatalogError):
    """A config.json value that is missing or of the wrong kind.

    ``str(err)`` reads ``hf_config.<key_path>: got <value>, expected <expected>``.
    """

    def __init__(self, key_path: str, value: Any, expected: str) -> None:
        self.key_path = key_path
        """Dotted path of the key inside config.json, e.g. ``quantization_config.quant_method``."""
        self.value = value
        """The value found (``MISSING`` when the key is absent)."""
        self.expected = expected
        """What would have been accepted, in words."""
        super().__init__(f"hf_config.{key_path}: got {_show(value)}, expected {expected}")


class _Missing:
    """Marker for a key that is absent from a config (prints as ``<missing>``)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
