""""Did you mean": the closest accepted name for a misspelt scenario key or plan field, and the moeplan names
of the degrees engines call ``tp`` / ``ep`` (issue 11's input friction)."""

from __future__ import annotations

import difflib
import typing
from typing import Any

ENGINE_TERMS = {
    "tp": "attn_tp (attention), moe_tp (expert FFN) or dense_tp (dense FFN); an engine's --tp-size is attn_tp, "
          "with moe_tp and dense_tp as the engine splits those layers",
    "ep": "moe_ep", "etp": "moe_tp", "ep_size": "moe_ep", "tp_size": "attn_tp (see 'tp')",
    "dp_attention": "attn_dp", "attention_dp": "attn_dp", "adp": "attn_dp", "edp": "moe_ep",
    "mb": "micro_batches", "microbatches": "micro_batches", "redundant": "redundant_experts",
    "pp_size": "pp", "dp_size": "dp (replicas) or attn_dp (attention data parallel)",
}
"""Engine spellings of a degree -> the moeplan plan fields that mean it (vLLM / SGLang / Megatron names)."""


def closest(name: str, accepted: list[str]) -> str | None:
    """The accepted name most like ``name`` (difflib ratio >= 0.6), or None."""
    found = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
    return found[0] if found else None


def plan_field_hint(name: str, accepted: list[str]) -> str:
    """What to say about an unknown plan field: its moeplan name when it is an engine's term, else the closest."""
    term = ENGINE_TERMS.get(name.lower())
    if term is not None:
        return f"a moeplan plan field: '{name}' is {term}"
    near = closest(name, accepted)
    return f"a plan field{f'; did you mean {near!r}?' if near else ''}"


def unknown_key(root: Any, loc: tuple[Any, ...]) -> str:
    """The "accepted" text for an unknown key at pydantic location ``loc`` under the model ``root``."""
    keys = keys_at(root, loc[:-1])
    near = closest(str(loc[-1]), keys)
    hint = f"did you mean '{near}'? " if near else ""
    known = f"keys here: {', '.join(keys)}" if keys else "see README 'Scenario format'"
    return f"no such key here ({hint}{known})"


def keys_at(root: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys accepted at ``loc``: the section model reached by following ``loc`` from ``root`` ([] when it
    cannot be followed)."""
    cls: Any = root
    for part in loc:
        if isinstance(part, int):
            continue  # a list item: its model is the list's argument, unwrapped below
        info = getattr(cls, "model_fields", {}).get(part)
        cls = None if info is None else _section_model(info.annotation)
        if cls is None:
            return []
    return list(getattr(cls, "model_fields", {}))


def _section_model(annotation: Any) -> Any:
    """The pydantic model inside ``annotation`` (``Section``, ``Section | None``, ``list[Section]``), or None."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_model(arg)
        if found is not None:
            return found
    return None
