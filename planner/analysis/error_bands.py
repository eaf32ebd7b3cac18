"""How far to trust a predicted figure: the error band the validation set supports for its regime.

Every row of ``scenarios/validation/`` (a published measurement and the scenario that reproduces its setup) has a
prediction error ``e = predicted / published - 1``.  Those errors are kept in a generated table
(:data:`TABLE_PATH`, rewritten by ``python -m planner.analysis.error_bands --write`` whenever the cost models change;
``tests/test_error_bands.py`` fails when it is stale), so that a band costs a table look-up, not a re-run of the
validation set.

A figure's *regime* is (phase, topology, precision class):

* phase: ``prefill`` (prefill throughput, TTFT), ``decode`` (decode throughput, TPOT) or ``aggregated``;
* topology: ``single_node`` (the layout fits one node of at most 8 devices), ``cross_node`` (its unit or its
  pipeline spans the scale-out tier), ``supernode`` (it spans more than 8 devices inside one scale-up domain:
  NVL72, CloudMatrix384);
* precision class: the weight precision (``bf16``, ``fp8``, ``int8``, ``fp4``).

Rates (throughput, tokens/s per user) and times (TTFT, TPOT) are put on one footing: every row's error is taken
as a *rate* error ``e`` (for a time metric, ``published / predicted - 1``, the error of its inverse).  The band of a
predicted rate ``P`` is the range of true values the validation rows of its regime imply: a row with rate error
``e`` says the truth is ``P / (1 + e)``, so the band is ``[min_i 1/(1+e_i), max_i 1/(1+e_i)] x P``; a predicted
time ``T`` gets ``[min_i (1+e_i), max_i (1+e_i)] x T``.  With
fewer than :data:`MIN_ROWS` rows in the exact regime the match is relaxed step by step (drop the precision
class, then the topology, then the phase) and the band says which rows it used.  For a validation row itself the
band is computed leave-one-out: the row never vouches for itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cost_models.afd import AfdLayout
from cost_models.parallel import ParallelDims
from cost_models.serving import ServingResult
from cost_models.specs import ClusterSpec, Precision

if TYPE_CHECKING:
    from planner.cpsat.deployment_instance import Deployment
    from planner.inputs.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
VALIDATION_DIR = ROOT / "scenarios" / "validation"
TABLE_PATH = Path(__file__).resolve().parents[1] / "catalog" / "validation_errors.json"
"""The generated table of validation errors (package data)."""

MIN_ROWS = 3
"""Fewest validation rows a band is built from before the regime match is relaxed."""

SCALE_OUT_NODE_DEVICES = 8
"""Largest scale-up domain counted as an ordinary node (HGX / Atlas 800 A2: 8 devices)."""

PHASES = ("prefill", "decode", "aggregated")
TOPOLOGIES = ("single_node", "cross_node", "supernode")

METRICS: dict[str, tuple[str, str, Callable[[ServingResult], float]]] = {
    "prefill.throughput_tok_per_s_per_device": ("prefill", "rate", lambda r: r.prefill.throughput_tok_per_s_per_device),
    "prefill.ttft_s": ("prefill", "time", lambda r: r.prefill.latency_s),
    "decode.throughput_tok_per_s_per_device": ("decode", "rate", lambda r: r.decode.throughput_tok_per_s_per_device),
    "decode.tpot_s": ("decode", "time", lambda r: r.decode.latency_s),
    "aggregated.output_tok_per_s_per_device": ("aggregated", "rate",
                                               lambda r: r.aggregated_output_tok_per_s_per_device),
    "aggregated.user_tok_per_s": ("aggregated", "rate", lambda r: r.aggregated_user_tok_per_s),
    "aggregated.request_tok_per_s": ("aggregated", "rate", lambda r: r.aggregated_request_tok_per_s),
    # attention-FFN disaggregated decode (scenarios with an afd: section; the result is a cost_models.afd.AfdResult)
    "afd.throughput_tok_per_s_per_device": ("decode", "rate", lambda r: r.throughput_tok_per_s_per_device),
    "afd.tpot_s": ("decode", "time", lambda r: r.tpot_s),
}
"""Validation metric path (as in the evaluate document and a scenario's ``expect:``) -> (phase, ``rate`` or
``time``, its value in a result)."""


@dataclass(frozen=True, kw_only=True)
class Regime:
    phase: str
    topology: str
    precision: str

    def label(self) -> str:
        return f"{self.phase}, {self.topology.replace('_', ' ')}, {self.precision}"


def topology_of(cluster: ClusterSpec, dims: ParallelDims | AfdLayout) -> str:
    """Which network a layout's per-layer traffic crosses (module docstring); an AFD layout's attention <-> FFN
    traffic spans all its devices."""
    span = dims.devices if isinstance(dims, AfdLayout) else dims.unit_devices * dims.pp
    if span <= min(cluster.devices_per_node, SCALE_OUT_NODE_DEVICES):
        return "single_node"
    if span <= cluster.devices_per_node:
        return "supernode"
    return "cross_node"


def regime_of(phase: str, cluster: ClusterSpec, dims: ParallelDims | AfdLayout, weight_precision: Precision) -> Regime:
    if phase not in PHASES:
        raise ValueError(f"phase: got {phase!r}; accepted: {PHASES}")
    return Regime(phase=phase, topology=topology_of(cluster, dims), precision=weight_precision.label)


@dataclass(frozen=True, kw_only=True)
class ValidationRow:
    """One published figure and its prediction."""

    id: str
    """``<scenario file stem>:<metric path>``."""
    phase: str
    topology: str
    precision: str
    kind: str
    """``rate`` (higher is faster) or ``time``."""
    published: float
    predicted: float

    @property
    def scenario(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def error(self) -> float:
        """predicted / published - 1, the signed error as the README tables show it."""
        return self.predicted / self.published - 1.0

    @property
    def rate_error(self) -> float:
        """The error of the rate: predicted / published - 1 for a rate, published / predicted - 1 for a time."""
        return self.error if self.kind == "rate" else self.published / self.predicted - 1.0

    @property
    def regime(self) -> Regime:
        return Regime(phase=self.phase, topology=self.topology, precision=self.precision)


@dataclass(frozen=True, kw_only=True)
class Band:
    """The range of truth / prediction - 1 the rows support for a figure (both ends may have one sign: a model
    that is always optimistic in a regime has both below 0)."""

    low_fraction: float
    high_fraction: float
    rows: tuple[str, ...]
    """Ids of the validation rows used."""
    matched: str
    """Which part of the regime the rows share: ``phase, topology, precision`` down to ``any``."""

    def describe(self) -> str:
        return (f"{self.low_fraction:+.0%} / {self.high_fraction:+.0%}, {len(self.rows)} validation rows"
                f" ({self.matched})").replace("+-", "-")


def band_from_rows(rows: Sequence[ValidationRow], regime: Regime, *, kind: str = "rate",
                   exclude_scenario: str | None = None) -> Band | None:
    """The band of a ``kind`` figure (``rate`` or ``time``) in ``regime`` from ``rows``, leaving out every row of
    the scenario ``exclude_scenario``; None when no row is left at all."""
    if kind not in ("rate", "time"):
        raise ValueError(f"kind: got {kind!r}; accepted: 'rate' or 'time'")
    pool = [r for r in rows if r.scenario != exclude_scenario]
    steps: tuple[tuple[str, Callable[[ValidationRow], bool]], ...] = (
        ("phase, topology, precision", lambda r: r.regime == regime),
        ("phase, topology", lambda r: r.phase == regime.phase and r.topology == regime.topology),
        ("phase", lambda r: r.phase == regime.phase),
        ("any", lambda r: True),
    )
    for matched, keep in steps:
        chosen = [r for r in pool if keep(r)]
        if len(chosen) >= MIN_ROWS or (matched == "any" and chosen):
            truth = [(1.0 / (1.0 + r.rate_error) if kind == "rate" else 1.0 + r.rate_error) - 1.0 for r in chosen]
            return Band(low_fraction=min(truth), high_fraction=max(truth), rows=tuple(r.id for r in chosen),
                        matched=matched)
    return None


def load_table(path: Path = TABLE_PATH) -> tuple[ValidationRow, ...]:
    data = json.loads(path.read_text())
    return tuple(ValidationRow(**row) for row in data["rows"])


_TABLE: tuple[ValidationRow, ...] | None = None


def band(regime: Regime, *, kind: str = "rate", exclude_scenario: str | None = None) -> Band | None:
    """:func:`band_from_rows` over the shipped table (read once)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = load_table()
    return band_from_rows(_TABLE, regime, kind=kind, exclude_scenario=exclude_scenario)


@dataclass(frozen=True, kw_only=True)
class FigureBands:
    """The band of every figure of one evaluated plan (None where the table has no row at all)."""

    prefill_throughput: Band | None
    ttft: Band | None
    decode_throughput: Band | None
    tpot: Band | None
    aggregated_throughput: Band | None
    """Aggregated output tokens per second per device (and, on the same footing, per user)."""


@dataclass(frozen=True, kw_only=True)
class DeploymentBands:
    """The bands of one deployment's delivered throughput, TTFT and TPOT."""

    throughput: Band | None
    ttft: Band | None
    tpot: Band | None


def validation_stem(path: str | Path) -> str | None:
    """The file stem of a validation scenario (one under ``scenarios/validation/``), else None: a validation
    scenario's own rows never vouch for its figures."""
    p = Path(path).resolve()
    return p.stem if (p.parent.name, p.parent.parent.name) == ("validation", "scenarios") else None


def serving_bands(sc: Scenario, dims: ParallelDims) -> FigureBands:
    """Bands of one plan's prefill / decode / aggregated figures on ``sc`` (regimes from the plan's own span)."""
    own = validation_stem(sc.path)

    def get(phase: str, kind: str) -> Band | None:
        regime = regime_of(phase, sc.cluster, dims, sc.workload.weight_precision)
        return band(regime, kind=kind, exclude_scenario=own)

    return FigureBands(prefill_throughput=get("prefill", "rate"), ttft=get("prefill", "time"),
                       decode_throughput=get("decode", "rate"), tpot=get("decode", "time"),
                       aggregated_throughput=get("aggregated", "rate"))


def deployment_bands(sc: Scenario, d: Deployment) -> DeploymentBands:
    """Bands of a deployment's figures: its delivered rate in the ``aggregated`` regime (one pool) or the decode
    pool's ``decode`` regime (disaggregated); TTFT in the prefill regime of the pool that prefills; TPOT in the
    decode regime of the decode pool. Each regime's topology is that of one replica of its pool."""
    own = validation_stem(sc.path)
    wp = sc.workload.weight_precision
    aggregated = d.prefill is None or str(d.mode) == "aggregated"
    prefill_dims = d.decode.dims if aggregated else d.prefill.dims

    def get(phase: str, dims: ParallelDims, kind: str) -> Band | None:
        return band(regime_of(phase, sc.cluster, dims, wp), kind=kind, exclude_scenario=own)

    return DeploymentBands(throughput=get("aggregated" if aggregated else "decode", d.decode.dims, "rate"),
                           ttft=get("prefill", prefill_dims, "time"), tpot=get("decode", d.decode.dims, "time"))


def compute_rows(paths: Sequence[Path] | None = None) -> list[ValidationRow]:
    """Evaluate every validation scenario's ``expect:`` rows as ``moeplan evaluate`` does (schedule overlap)."""
    from planner.analysis.evaluate import evaluate_scenario
    from planner.inputs.scenario import load_scenario

    rows: list[ValidationRow] = []
    for path in paths or sorted(VALIDATION_DIR.glob("*.yaml")):
        sc = load_scenario(path)
        if not sc.expect:
            continue
        if sc.afd is not None:
            from planner.analysis.afd import evaluate_afd
            result, topology = evaluate_afd(sc).result, topology_of(sc.cluster, sc.afd)
        else:
            assert sc.plan is not None, f"{path.name}: a validation scenario names its plan"
            result, topology = evaluate_scenario(sc, sc.plan).result, topology_of(sc.cluster, sc.plan)
        for e in sc.expect:
            if e.metric not in METRICS:
                raise ValueError(f"{path.name}: expect.metric {e.metric!r} has no error-band phase; accepted: "
                                 f"{', '.join(METRICS)}")
            phase, kind, get = METRICS[e.metric]
            rows.append(ValidationRow(id=f"{path.stem}:{e.metric}", phase=phase, topology=topology,
                                      precision=sc.workload.weight_precision.label, kind=kind, published=e.value,
                                      predicted=get(result)))
    return rows


def table_text(rows: Sequence[ValidationRow]) -> str:
    doc = {"about": "Generated by `python -m planner.analysis.error_bands --write` from scenarios/validation/: "
                    "each published figure and moeplan's prediction of it (README 'Error bands').",
           "rows": [asdict(r) for r in rows]}
    return json.dumps(doc, indent=1) + "\n"


def main(argv: Sequence[str]) -> int:
    rows = compute_rows()
    if "--write" in argv:
        from planner.inputs.files import write_text_atomic
        write_text_atomic(TABLE_PATH, table_text(rows), force=True)  # a generated table, replaced on purpose
    for r in rows:
        b = band_from_rows(rows, r.regime, kind=r.kind, exclude_scenario=r.scenario)
        print(f"{r.id:70s} {r.error:+7.1%}  band {b.describe() if b else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
