"""The ``compare`` document (schema ``moeplan.compare/2``): both sides, their pools' evaluate documents, the metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.analysis.compare import Metric, Pool, Side

COMPARE_SCHEMA = "moeplan.compare/2"


def _side_doc(s: Side, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pools = [("aggregated", s.decode)] if s.mode == "aggregated" else [("prefill", s.prefill), ("decode", s.decode)]
    return {"label": s.label, "scenario": s.scenario.name, "path": s.scenario.path, "mode": str(s.mode),
            "devices": s.deployment_devices, "device": s.scenario.cluster.device.id, "output_tok_per_s": s.output_tok_per_s,
            "plan": s.decode.dims.as_dict(),
            "pools": [{"role": role, "plan": p.dims.as_dict(), "devices": p.pool_devices} for role, p in pools],
            "evaluate": docs["decode"], **({"prefill_evaluate": docs["prefill"]} if s.mode != "aggregated" else {})}


def compare_document(baseline: Side, candidate: Side, metrics: list[Metric],
                     evaluate_doc: Callable[[Side, Pool], dict[str, Any]]) -> dict[str, Any]:
    """The ``compare --json`` document (schema ``moeplan.compare/2``): both sides with their pools' evaluate
    documents (``evaluate``: the decode or aggregated pool; ``prefill_evaluate`` for disaggregated sides) and
    the metric rows (values in SI units, ratio = candidate / baseline)."""
    def docs(s: Side) -> dict[str, dict[str, Any]]:
        out = {"decode": evaluate_doc(s, s.decode)}
        if s.mode != "aggregated":
            out["prefill"] = evaluate_doc(s, s.prefill)
        return out

    return {
        "schema": COMPARE_SCHEMA,
        "baseline": _side_doc(baseline, docs(baseline)),
        "candidate": _side_doc(candidate, docs(candidate)),
        "metrics": [{"name": m.name, "unit": m.unit, "baseline": m.baseline, "candidate": m.candidate,
                     "ratio": m.ratio, "better": m.better, "improved": m.improved} for m in metrics],
    }
