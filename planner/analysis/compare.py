"""`moeplan compare`: two deployments side by side in the metrics the field reports when it changes one.

Each side is a scenario (model, cluster, workload) with a plan, costed exactly as ``evaluate`` costs it. The
metrics are the ones deployment write-ups quote (static memory per card, throughput, end-to-end latency,
TPOT, expert compute density, all-to-all time, cross-node traffic), each as both values and the ratio
candidate / baseline, with which direction is better. Deployment metrics (static memory, throughput by mode,
effective TPOT, end-to-end latency, device counts) come from :mod:`cost_models.metrics`; ``evaluate A B`` shows
a subset of these same rows (:data:`SIDE_BY_SIDE`), each scenario as one aggregated deployment of its plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cost_models import metrics
from cost_models.step import StepCost

if TYPE_CHECKING:
    from planner.analysis.deployment import DeploymentEvaluation


@dataclass(frozen=True, kw_only=True)
class Side:
    """One compared deployment: how the user named it, and the deployment as ``evaluate`` costs it (the one
    deployment type, :class:`planner.analysis.deployment.DeploymentEvaluation`)."""

    label: str
    """How the user named it (``baseline`` / ``candidate`` and the plan or file)."""
    deployment: DeploymentEvaluation

@dataclass(frozen=True, kw_only=True)
class Metric:
    name: str
    unit: str
    """SI unit of both values (``bytes``, ``tok/s``, ``s``, ``tokens``, ``bytes/token``, ``devices``)."""
    baseline: float
    candidate: float
    better: str
    """``higher`` or ``lower``: which direction is an improvement (``none`` for context rows)."""

    @property
    def ratio(self) -> float | None:
        """candidate / baseline; None when the baseline is zero."""
        return self.candidate / self.baseline if self.baseline else None

    @property
    def improved(self) -> bool | None:
        if self.better == "none" or self.candidate == self.baseline:
            return None
        return (self.candidate > self.baseline) == (self.better == "higher")


def _comm_seconds(step: StepCost, name_prefix: str) -> float:
    """Per step: seconds of the comm ops whose name starts with ``name_prefix``, summed over layers (before
    overlap: what the links are busy for, hidden or not)."""
    return sum(o.seconds * layer.count for layer in step.layers for o in layer.ops
               if o.kind == "comm" and o.name.startswith(name_prefix))


def _exposed_comm_s(step: StepCost) -> float:
    return sum(layer.exposed_comm_s * layer.count for layer in step.layers)


def _scale_out_bytes_per_token(step: StepCost, tokens_per_device: float) -> float:
    """Bytes one device sends over the scale-out tier per token it processes in the step."""
    total = sum(o.scale_out_bytes * layer.count for layer in step.layers for o in layer.ops)
    return total / tokens_per_device if tokens_per_device else 0.0


def _dec(d: DeploymentEvaluation):  # noqa: ANN202
    return d.decode.result.decode


def _pre(d: DeploymentEvaluation):  # noqa: ANN202
    return d.prefill.result.prefill


def _static_bytes(d: DeploymentEvaluation) -> float:
    return metrics.static_bytes_per_device(d.mode, d.prefill, d.decode)


def _weight_bytes(d: DeploymentEvaluation) -> float:
    return metrics.weight_bytes_per_device(d.mode, d.prefill, d.decode)


def _e2e_s(d: DeploymentEvaluation) -> float:
    return metrics.deployment_end_to_end_s(d.mode, d.prefill, d.decode, d.scenario.workload.output_tokens)


@dataclass(frozen=True, kw_only=True)
class MetricRow:
    """How one compare metric is read off a deployment."""

    name: str
    unit: str
    better: str
    get: Callable[[DeploymentEvaluation], float]


def _row(name: str, unit: str, better: str, get: Callable[[DeploymentEvaluation], float]) -> MetricRow:
    return MetricRow(name=name, unit=unit, better=better, get=get)


DEVICES = "devices (deployment)"
STATIC = "static memory per device (weights, buffers, reserve)"
THROUGHPUT = "throughput, total (output tok/s)"
THROUGHPUT_PER_DEVICE = "throughput per device (output tok/s)"
DECODE_PER_DEVICE = "decode throughput per decode device"
PREFILL_PER_DEVICE = "prefill throughput per prefill device"
TTFT = "TTFT"
TPOT = "TPOT, effective (aggregated: the cycle over a user's tokens)"
DECODE_TPOT = "TPOT, decode step"
E2E = "end-to-end latency (TTFT + output x effective TPOT)"
DECODE_DENSITY = "expert compute density, decode (tokens per local expert per step)"

ROWS: tuple[MetricRow, ...] = (
    _row(DEVICES, "devices", "none", lambda d: float(d.devices)),
    _row(STATIC, "bytes", "lower", _static_bytes),
    _row("weights per device", "bytes", "lower", _weight_bytes),
    _row(THROUGHPUT, "tok/s", "higher", lambda d: d.output_tok_per_s),
    _row(THROUGHPUT_PER_DEVICE, "tok/s", "higher", lambda d: d.output_tok_per_s / d.devices),
    _row(DECODE_PER_DEVICE, "tok/s", "higher", lambda d: _dec(d).throughput_tok_per_s_per_device),
    _row(PREFILL_PER_DEVICE, "tok/s", "higher", lambda d: _pre(d).throughput_tok_per_s_per_device),
    _row(TTFT, "s", "lower", lambda d: _pre(d).latency_s),
    _row(TPOT, "s", "lower", lambda d: d.tpot_s),
    _row(DECODE_TPOT, "s", "lower", lambda d: _dec(d).latency_s),
    _row(E2E, "s", "lower", _e2e_s),
    _row(DECODE_DENSITY, "tokens", "higher", lambda d: _dec(d).expert_tokens_per_local_expert),
    _row("expert compute density, prefill", "tokens", "higher", lambda d: _pre(d).expert_tokens_per_local_expert),
    _row("all-to-all time per decode step (dispatch + combine)", "s", "lower",
         lambda d: _comm_seconds(_dec(d).step, "moe.dispatch") + _comm_seconds(_dec(d).step, "moe.combine")),
    _row("exposed communication per decode step", "s", "lower", lambda d: _exposed_comm_s(_dec(d).step)),
    _row("cross-node traffic per decode token", "bytes/token", "lower",
         lambda d: _scale_out_bytes_per_token(_dec(d).step, _dec(d).tokens_per_device_per_step)),
    _row("cross-node traffic per prefill token", "bytes/token", "lower",
         lambda d: _scale_out_bytes_per_token(_pre(d).step, _pre(d).tokens_per_device_per_step)),
)
"""Every compare metric; ``evaluate``'s side-by-side table shows a subset of these same rows."""


def rows_named(names: tuple[str, ...]) -> tuple[MetricRow, ...]:
    """The rows of :data:`ROWS` with these names, in this order."""
    by_name = {r.name: r for r in ROWS}
    return tuple(by_name[n] for n in names)


def compare(baseline: Side, candidate: Side) -> list[Metric]:
    """Every metric of :data:`ROWS` for both sides."""
    return [Metric(name=r.name, unit=r.unit, baseline=r.get(baseline.deployment),
                   candidate=r.get(candidate.deployment), better=r.better) for r in ROWS]


SIDE_BY_SIDE = (STATIC, THROUGHPUT, THROUGHPUT_PER_DEVICE, DECODE_PER_DEVICE, TPOT, DECODE_TPOT, TTFT, E2E,
                DECODE_DENSITY, PREFILL_PER_DEVICE)
"""The rows ``evaluate A B`` shows: the same definitions as ``compare``'s, so the two commands agree."""


@dataclass(frozen=True, kw_only=True)
class MetricSeries:
    """One metric over several sides (``evaluate A B``'s side-by-side table)."""

    name: str
    unit: str
    values: tuple[float, ...]


def side_by_side(deployments: list[DeploymentEvaluation]) -> list[MetricSeries]:
    """The :data:`SIDE_BY_SIDE` rows of every deployment."""
    return [MetricSeries(name=r.name, unit=r.unit, values=tuple(r.get(d) for d in deployments))
            for r in rows_named(SIDE_BY_SIDE)]


def parse_side(spec: str) -> tuple[str | None, str | None]:
    """A ``--baseline`` / ``--candidate`` value: ``PLAN`` (degrees on the command's scenario), ``FILE.yaml``
    (another scenario with its own ``plan:``) or ``FILE.yaml:PLAN`` (another scenario with this plan).
    Returns (scenario path or None, plan text or None)."""
    for ext in (".yaml:", ".yml:"):
        if ext in spec:
            path, _, plan = spec.partition(ext)
            return path + ext[:-1], plan or None
    if spec.endswith((".yaml", ".yml")):
        return spec, None
    return None, spec
