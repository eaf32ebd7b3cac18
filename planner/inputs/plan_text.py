"""Plan strings ("attn_dp=32,moe_ep=32", from ``--plan`` or a scenario's ``plan:``) -> ParallelDims."""

from __future__ import annotations

import dataclasses
from typing import Any

from cost_models.parallel import OverlapPolicy, ParallelDims
from planner.inputs import limits as lim
from planner.inputs.errors import ScenarioError

_PLAN_FIELDS = {f.name: f for f in dataclasses.fields(ParallelDims)}


def parse_plan(text: str, *, key: str = "--plan") -> ParallelDims:
    """"attn_tp=1,attn_dp=32,moe_ep=32" -> ParallelDims; unnamed degrees default to 1."""
    values: dict[str, Any] = {}
    if not isinstance(text, str) or not text.strip() or len(text) > lim.MAX_TEXT_CHARS:
        raise ScenarioError(key, text, "comma-separated name=value pairs, e.g. 'attn_dp=32,moe_ep=32' (non-empty, "
                            f"at most {lim.MAX_TEXT_CHARS:,} characters)")
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, sep, raw = item.partition("=")
        name = name.strip()
        if name in values:
            raise ScenarioError(f"{key}.{name}", raw, "each plan field once (it appears twice)")
        if not sep:
            raise ScenarioError(key, item, "comma-separated name=value pairs, e.g. 'attn_dp=32,moe_ep=32'")
        if name not in _PLAN_FIELDS:
            from planner.inputs.suggest import plan_field_hint
            raise ScenarioError(f"{key}.{name}", raw, f"{plan_field_hint(name, list(_PLAN_FIELDS))}; all: "
                                f"{', '.join(_PLAN_FIELDS)}")
        if name == "overlap":
            try:
                values[name] = OverlapPolicy(raw.strip())
            except ValueError:
                raise ScenarioError(f"{key}.overlap", raw, ", ".join(o.value for o in OverlapPolicy)) from None
            continue
        values[name] = _plan_int(f"{key}.{name}", raw, lim.MAX_MICRO_BATCHES if name == "micro_batches"
                                 else lim.MAX_DEGREE)
    if values.get("micro_batches") == 2 and "overlap" not in values:
        values["overlap"] = OverlapPolicy.TWO_BATCH
    return ParallelDims(**values)


def _plan_int(key: str, raw: str, highest: int) -> int:
    """One plan degree: a decimal integer in 0 .. ``highest`` (0 only makes sense for redundant_experts)."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) <= highest):
        raise ScenarioError(key, raw, f"an integer in 0 .. {highest:,}")
    return int(text)
