"""Document parts several documents share: a pool's parallel degrees, a number with its provenance and
a figure's error band."""

from __future__ import annotations

from typing import Any, Literal

from cost_models.parallel import ParallelDims
from planner.catalog.sourced import Sourced
from planner.documents.base import Confidence, Count, Document, Number, Overlap, Positive, field


class ParallelPlan(Document):
    """Every parallel degree of one serving pool (cost_models.parallel.ParallelDims); the same names `--plan`
    and a scenario's `plan:` accept. unit = attn_tp x attn_dp = moe_ep x moe_tp devices; world = unit x pp x dp."""

    attn_tp: Positive = field("Tensor-parallel degree of attention (heads split across devices); a count.")
    attn_dp: Positive = field("Data-parallel degree of attention inside a unit (each rank owns its sequences and "
                              "KV cache); a count.")
    moe_ep: Positive = field("Expert-parallel degree of the routed experts (experts split across devices); a count.")
    moe_tp: Positive = field("Tensor-parallel degree inside each routed expert (its FFN width split); a count.")
    dense_tp: Positive = field("Tensor-parallel degree of the dense FFN layers (the rest of the unit runs them "
                               "data-parallel); a count.")
    pp: Positive = field("Pipeline stages (layers split across stages); a count.")
    dp: Positive = field("Plain data-parallel replicas of the whole model; a count.")
    redundant_experts: Count = field("Extra physical expert slots per MoE layer, spread evenly over the moe_ep "
                                     "ranks, for replicas of hot experts; a count.")
    micro_batches: Positive = field("Micro-batches a step is split into (2 for two-batch overlap); a count.")
    overlap: Overlap = field("Communication-overlap policy: `none` (every op back to back on one stream) or "
                             "`two_batch` (one micro-batch's all-to-all runs while the other computes).")


def parallel_plan(dims: ParallelDims) -> ParallelPlan:
    return ParallelPlan(attn_tp=dims.attn_tp, attn_dp=dims.attn_dp, moe_ep=dims.moe_ep, moe_tp=dims.moe_tp,
                        dense_tp=dims.dense_tp, pp=dims.pp, dp=dims.dp, redundant_experts=dims.redundant_experts,
                        micro_batches=dims.micro_batches, overlap=dims.overlap.value)


class SourcedValue(Document):
    """One catalog or device number with its provenance (planner.catalog.sourced.Sourced)."""

    value: Number = field("The number in SI base units (FLOP/s, bytes, bytes/s, seconds) or a plain count / "
                          "fraction, as its key names it.")
    source: str = field("Where it comes from: document, section, row or file; `scenario file: KEY` when the "
                        "scenario overrode the catalog.")
    confidence: Confidence = field("How far to trust it: `datasheet`, `measured`, `derived` or `estimated`.")
    note: str = field("Arithmetic, caveats or competing values (may be empty); for an override, the catalog value "
                      "it replaced.")


def sourced_value(s: Sourced) -> SourcedValue:
    return SourcedValue(value=s.value, source=s.source, confidence=s.confidence.value, note=s.note)


BandMatch = Literal["phase, topology, precision", "phase, topology", "phase", "any"]


class ErrorBand(Document):
    """How far the validation set says to trust one predicted figure (planner.analysis.error_bands.Band): the
    range of truth / prediction - 1 its regime's validation rows imply (README 'Error bands')."""

    low_fraction: Number = field("Low end of truth / prediction - 1, a fraction (-0.12: the truth may be 12 % "
                                 "below the prediction).")
    high_fraction: Number = field("High end of truth / prediction - 1, a fraction.")
    rows: list[str] = field("Ids of the validation rows the band rests on (`<scenario stem>:<metric path>`); a "
                            "validation scenario's own rows are left out.", min_length=1)
    matched: BandMatch = field("What the rows share with the figure's regime: all of `phase, topology, "
                               "precision`, or fewer when the exact regime had too few rows.")


def error_band(b: Any) -> ErrorBand | None:
    """``b``: a :class:`planner.analysis.error_bands.Band` or None (no row at all)."""
    if b is None:
        return None
    return ErrorBand(low_fraction=b.low_fraction, high_fraction=b.high_fraction, rows=list(b.rows),
                     matched=b.matched)
