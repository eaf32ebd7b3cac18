"""What every output document shares: a frozen, closed pydantic base, SI number types, the closed choices, and
:func:`as_dict`, the one way a document becomes the dict that ``--json``, ``--export`` JSON and YAML print.

The JSON schemas in ``docs/schema/`` are generated from these models (:mod:`planner.documents.schema`), so a
field's ``description`` is its documentation: it names the unit (SI: seconds, bytes, tokens per second) or says
the value is a count, a fraction or an id.

Numbers are :data:`Number` (an int stays an int, a float a float, as the cost model returned them, so a
document's bytes do not change on the way through a model) and print as JSON numbers. Optional keys are
:func:`optional` fields: absent from the printed document when unset, never ``null``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, Field, Strict, WithJsonSchema

Number = Annotated[Annotated[int, Strict()] | Annotated[float, Strict()], WithJsonSchema({"type": "number"})]
"""A JSON number in the unit its field names: an int or a float, kept as given (never parsed from a string, never
an int turned float), so it prints as the cost model returned it."""
NonNegative = Annotated[Annotated[int, Strict(), Ge(0)] | Annotated[float, Strict(), Ge(0)],
                        WithJsonSchema({"type": "number", "minimum": 0})]
"""A JSON number >= 0, kept as given."""
Count = Annotated[int, Ge(0)]
"""A whole number >= 0 (a numpy integer is accepted and printed as a plain int)."""
Positive = Annotated[int, Ge(1)]
"""A whole number >= 1 (degrees, devices, micro-batches)."""

# --- closed choices (README "JSON output"): each is an enum in the generated schema
Phase = Literal["prefill", "decode"]
OpKind = Literal["compute", "comm"]
Bound = Literal["compute", "memory", "overhead", "scale_up", "scale_out", "latency"]
"""Which roof bound an op (cost_models.ops.OpCost.bound)."""
LayerKind = Literal["dense", "moe", "head", "mtp"]
ScheduledLayerKind = Literal["moe", "dense"]
Overlap = Literal["none", "two_batch", "single_batch"]
Precision = Literal["bf16", "fp8", "int8", "fp4"]
Confidence = Literal["datasheet", "measured", "derived", "estimated"]
DeploymentMode = Literal["aggregated", "disaggregated", "afd"]
PoolRole = Literal["aggregated", "prefill", "decode"]
RejectionKey = Literal["divisibility", "topology", "memory", "ttft", "tpot", "pp_no_gain", "engine"]
"""Why the search dropped a layout before the solve (cost_models.kinds.Rejection; ``engine``: the target engine of
``plan --engine`` cannot launch it, planner/search/engines.py)."""
SolverStatus = Literal["EXACT_ENUMERATION", "OPTIMAL", "FEASIBLE", "INFEASIBLE", "MODEL_INVALID", "UNKNOWN"]
"""CP-SAT solve status, or EXACT_ENUMERATION when the plan's deployment split was enumerated exactly (small
instances, planner/search/deployment_exact.py)."""
Resource = Literal["compute", "scale_up", "scale_out"]
"""What an op occupies in a layer schedule: compute units, the intra-node link, the inter-node network."""
BatchLimit = Literal["workload", "memory", "tpot_slo"]
Objective = Literal["throughput", "latency", "devices"]
OverlapModel = Literal["closed-form", "schedule"]
PlacementMethod = Literal["greedy_hierarchical", "greedy_global", "cpsat"]
StoppedBy = Literal["bound", "gap_limit", "no_progress", "effort", "time_limit"]
Engine = Literal["vllm", "sglang", "trtllm", "mindie", "megatron", "mindspeed"]
"""Serving engines, and the training frameworks of training scenarios (megatron, mindspeed)."""
CommandRole = Literal["aggregated", "prefill", "decode", "router", "train"]
MetricUnit = Literal["devices", "bytes", "tok/s", "s", "tokens", "bytes/token"]
Better = Literal["higher", "lower", "none"]


class Document(BaseModel):
    """Base of every document part: immutable, and an unknown key is an error (in code and in the schema). Models
    are built on first use (``defer_build``), so importing a document module costs little."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)


def field(description: str, **kw: Any) -> Any:
    """A required field with its description (the unit, or what the value counts)."""
    return Field(description=description, **kw)


def _is_none(v: Any) -> bool:
    return v is None


def _absent_not_null(schema: dict[str, Any]) -> None:
    """The schema of an optional key: the key may be absent, but when present it is never null."""
    kinds = [s for s in schema.pop("anyOf", []) if s != {"type": "null"}]
    if len(kinds) == 1:
        schema.update(kinds[0])
    elif kinds:
        schema["anyOf"] = kinds
    schema.pop("default", None)


def optional(description: str) -> Any:
    """An optional key: absent from the printed document when not given (never printed as ``null``)."""
    return Field(default=None, description=description, exclude_if=_is_none, json_schema_extra=_absent_not_null)


def schema_id(value: str) -> Any:
    """The ``schema`` key of a document: its kind and version."""
    return Field(alias="schema", description=f"Schema id and version of this document ({value}).")


def as_dict(doc: Document | dict[str, Any] | list[Any]) -> Any:
    """The JSON-ready dict of a document (key order as the model declares it; optional keys only when set).
    A dict (or a list of documents) passes through, so writers accept either."""
    if isinstance(doc, Document):
        return doc.model_dump(mode="json", by_alias=True)
    if isinstance(doc, list):
        return [as_dict(d) for d in doc]
    return doc

