"""`moeplan compare`: two deployments side by side in the metrics the field reports when it changes one.

Each side is a scenario (model, cluster, workload) with a plan, costed exactly as ``evaluate`` costs it. The
metrics are the ones deployment write-ups quote (static memory per card, throughput, end-to-end latency,
TPOT, expert compute density, all-to-all time, cross-node traffic), each as both values and the ratio
candidate / baseline, with which direction is better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cost_models.parallel import ParallelDims
from cost_models.serving import ServingResult
from cost_models.step import StepCost
from planner.inputs.scenario import Scenario


@dataclass(frozen=True, kw_only=True)
class Pool:
    """One layout serving one role, costed as ``evaluate`` costs a plan."""

    dims: ParallelDims
    result: ServingResult
    devices: int
    """Devices of this pool (all replicas)."""


@dataclass(frozen=True, kw_only=True)
class Side:
    """One deployment: where it came from and its pools (the same pool twice when aggregated)."""

    label: str
    """How the user named it (``baseline`` / ``candidate`` and the plan or file)."""
    scenario: Scenario
    mode: str
    """``aggregated`` or ``disaggregated``."""
    prefill: Pool
    decode: Pool
    output_tok_per_s: float
    """Output tokens per second of the whole deployment."""

    @property
    def devices(self) -> int:
        return self.decode.devices if self.mode == "aggregated" else self.prefill.devices + self.decode.devices

    @classmethod
    def aggregated(cls, label: str, scenario: Scenario, dims: ParallelDims, result: ServingResult) -> Side:
        n = scenario.cluster.num_devices
        pool = Pool(dims=dims, result=result, devices=n)
        return cls(label=label, scenario=scenario, mode="aggregated", prefill=pool, decode=pool,
                   output_tok_per_s=result.aggregated_output_tok_per_s_per_device * n)

    @classmethod
    def disaggregated(cls, label: str, scenario: Scenario, prefill: Pool, decode: Pool) -> Side:
        """Output rate: the decode pool's, or what the prefill pool feeds it if that is less."""
        wl = scenario.workload
        pre_tok_per_s = prefill.result.prefill.throughput_tok_per_s_per_device * prefill.devices
        dec_tok_per_s = decode.result.decode.throughput_tok_per_s_per_device * decode.devices
        return cls(label=label, scenario=scenario, mode="disaggregated", prefill=prefill, decode=decode,
                   output_tok_per_s=min(dec_tok_per_s, pre_tok_per_s * wl.output_tokens / wl.input_tokens))


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


def _e2e_s(s: Side) -> float:
    return s.prefill.result.prefill.latency_s + s.scenario.workload.output_tokens * s.decode.result.decode.latency_s


def _decode_tokens_per_device(s: Side) -> float:
    return s.decode.result.decode.tokens_per_device_per_step


def _dec(s: Side):  # noqa: ANN202
    return s.decode.result.decode


def _pre(s: Side):  # noqa: ANN202
    return s.prefill.result.prefill


_ROWS: tuple[tuple[str, str, str, Callable[[Side], float]], ...] = (
    ("devices", "devices", "none", lambda s: float(s.devices)),
    ("static memory per device (weights, buffers, reserve)", "bytes", "lower",
     lambda s: max(_dec(s).memory.static_bytes, _pre(s).memory.static_bytes)),
    ("weights per device", "bytes", "lower", lambda s: max(_dec(s).memory.weight_bytes, _pre(s).memory.weight_bytes)),
    ("throughput, total (output tok/s)", "tok/s", "higher", lambda s: s.output_tok_per_s),
    ("throughput per device (output tok/s)", "tok/s", "higher", lambda s: s.output_tok_per_s / s.devices),
    ("decode throughput per decode device", "tok/s", "higher", lambda s: _dec(s).throughput_tok_per_s_per_device),
    ("prefill throughput per prefill device", "tok/s", "higher", lambda s: _pre(s).throughput_tok_per_s_per_device),
    ("TTFT", "s", "lower", lambda s: _pre(s).latency_s),
    ("TPOT", "s", "lower", lambda s: _dec(s).latency_s),
    ("end-to-end latency (TTFT + output x TPOT)", "s", "lower", _e2e_s),
    ("expert compute density, decode (tokens per local expert per step)", "tokens", "higher",
     lambda s: _dec(s).expert_tokens_per_local_expert),
    ("expert compute density, prefill", "tokens", "higher", lambda s: _pre(s).expert_tokens_per_local_expert),
    ("all-to-all time per decode step (dispatch + combine)", "s", "lower",
     lambda s: _comm_seconds(_dec(s).step, "moe.dispatch") + _comm_seconds(_dec(s).step, "moe.combine")),
    ("exposed communication per decode step", "s", "lower", lambda s: _exposed_comm_s(_dec(s).step)),
    ("cross-node traffic per decode token", "bytes/token", "lower",
     lambda s: _scale_out_bytes_per_token(_dec(s).step, _decode_tokens_per_device(s))),
    ("cross-node traffic per prefill token", "bytes/token", "lower",
     lambda s: _scale_out_bytes_per_token(_pre(s).step, _pre(s).tokens_per_device_per_step)),
)


def compare(baseline: Side, candidate: Side) -> list[Metric]:
    """Every metric of :data:`_ROWS` for both sides."""
    return [Metric(name=name, unit=unit, baseline=get(baseline), candidate=get(candidate), better=better)
            for name, unit, better, get in _ROWS]


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
