"""The ``compare`` document (schema ``moeplan.compare/2``): both sides, their pools' evaluate documents, the metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from planner.documents.base import (
    Better,
    DeploymentMode,
    Document,
    MetricUnit,
    NonNegative,
    Number,
    PoolRole,
    Positive,
    field,
    optional,
    schema_id,
)
from planner.documents.evaluate import EvaluateDocument
from planner.documents.parts import ParallelPlan, parallel_plan

if TYPE_CHECKING:
    from planner.analysis.compare import Metric, Side
    from planner.analysis.deployment import PoolEvaluation

COMPARE_SCHEMA = "moeplan.compare/2"


class ComparePool(Document):
    """One pool of a compared deployment."""

    role: PoolRole = field("Role of the pool.")
    plan: ParallelPlan = field("The pool's plan (dp = its replicas).")
    devices: Positive = field("Devices of the pool (all replicas); a count.")


class CompareSide(Document):
    """One deployment of the comparison (planner.analysis.compare.Side: a labelled DeploymentEvaluation)."""

    label: str = field("How the user named it: `baseline: SPEC`, `candidate: SPEC`, or `candidate: plan's best "
                       "(MODE)`.")
    scenario: str = field("The side's scenario `name:`.")
    path: str = field("The side's scenario file path exactly as given (relative paths stay relative).")
    mode: DeploymentMode = field("`aggregated` or `disaggregated`.")
    devices: Positive = field("Devices of the deployment (all pools); a count.")
    device: str = field("Device catalog id.")
    output_tok_per_s: NonNegative = field("Output tokens per second of the whole deployment.")
    plan: ParallelPlan = field("The decode (or aggregated) pool's plan.")
    pools: list[ComparePool] = field("One aggregated pool, or the prefill pool then the decode pool.", min_length=1,
                                     max_length=2)
    evaluate: EvaluateDocument = field("Evaluate document of the decode (or aggregated) pool.")
    prefill_evaluate: EvaluateDocument | None = optional("Evaluate document of the prefill pool of a disaggregated "
                                                         "side.")


class MetricRow(Document):
    """One compared metric, both values in SI units."""

    name: str = field("What is measured, e.g. `TPOT`, `throughput per device (output tok/s)`.")
    unit: MetricUnit = field("Unit of both values: `devices`, `bytes`, `tok/s`, `s`, `tokens` (per local expert per "
                             "step) or `bytes/token`.")
    baseline: Number = field("The baseline's value, in the row's unit.")
    candidate: Number = field("The candidate's value, in the row's unit.")
    ratio: Number | None = field("candidate / baseline, a ratio (null when the baseline is 0).")
    better: Better = field("Which direction improves: `higher`, `lower`, or `none` (context rows).")
    improved: bool | None = field("Whether the candidate is better; null when equal or when better is `none`.")


class CompareDocument(Document):
    """Output of `moeplan compare SCENARIO --baseline ... --candidate ... --json`: both deployments with their
    pools' evaluate documents and the metric rows (ratio = candidate / baseline). Versioning: adding an optional
    key keeps the version; removing, renaming or changing the meaning of a key bumps it."""

    schema_id: Literal["moeplan.compare/2"] = schema_id(COMPARE_SCHEMA)
    baseline: CompareSide = field("The baseline deployment.")
    candidate: CompareSide = field("The candidate deployment.")
    metrics: list[MetricRow] = field("The metric rows, in a fixed order.")


EvaluateOf = Callable[["PoolEvaluation"], EvaluateDocument]
"""Builds the evaluate document of one pool (the caller adds the solver results)."""


def _side(s: Side, evaluate_of: EvaluateOf) -> CompareSide:
    d = s.deployment
    aggregated = d.mode == "aggregated"
    sc = d.scenario
    return CompareSide(
        label=s.label, scenario=sc.name, path=sc.path, mode=d.mode, devices=d.devices, device=sc.cluster.device.id,
        output_tok_per_s=d.output_tok_per_s, plan=parallel_plan(d.decode.pool.pool_dims),
        pools=[ComparePool(role=p.role, plan=parallel_plan(p.pool.pool_dims), devices=p.pool_devices)
               for p in d.pools],
        evaluate=evaluate_of(d.decode), prefill_evaluate=None if aggregated else evaluate_of(d.prefill))


def _metric(m: Metric) -> MetricRow:
    return MetricRow(name=m.name, unit=m.unit, baseline=m.baseline, candidate=m.candidate, ratio=m.ratio,
                     better=m.better, improved=m.improved)


def compare_document(baseline: Side, candidate: Side, metrics: list[Metric],
                     evaluate_of: EvaluateOf) -> CompareDocument:
    """The ``compare --json`` document (schema ``moeplan.compare/2``): both sides with their pools' evaluate
    documents (``evaluate``: the decode or aggregated pool; ``prefill_evaluate`` for disaggregated sides) and
    the metric rows (values in SI units, ratio = candidate / baseline)."""
    return CompareDocument(schema_id=COMPARE_SCHEMA, baseline=_side(baseline, evaluate_of),
                           candidate=_side(candidate, evaluate_of), metrics=[_metric(m) for m in metrics])
