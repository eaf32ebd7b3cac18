"""The expressible published training runs, read from their one definition: the validation scenarios in
scenarios/validation/training/*.yaml (each names its source, the measured figure and its FLOP counting).

Rows are VALIDATION: no constant of cost_models is fitted on them.  Where a row does not state an input the model
needs, the scenario's description says "assumed" and why.  Measured step times are derived from each source's own
throughput and FLOP counting.  :func:`gpt` and :func:`cluster` build the Megatron papers' GPTs and clusters for
the hand-derived tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cost_models.specs import AttentionKind, AttentionSpec, ClusterSpec, ModelSpec, Precision
from cost_models.training.dims import TrainingDims
from cost_models.training.specs import TrainingWorkload
from planner.catalog.devices import get_device

VALIDATION_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "validation" / "training"


def gpt(name: str, *, hidden: int, heads: int, layers: int) -> ModelSpec:
    """A GPT of the Megatron papers: MHA, plain 4h GeLU MLP, vocabulary 51,200, untied head."""
    d = hidden // heads
    return ModelSpec(id=name, name=name, hidden_size=hidden, num_layers=layers, num_dense_layers=layers,
                     dense_ffn_dim=4 * hidden, vocab_size=51200, ffn_gated=False,
                     attention=AttentionSpec(kind=AttentionKind.MHA, num_q_heads=heads, num_kv_heads=heads,
                                             qk_head_dim=d, v_head_dim=d),
                     moe=None, native_precision=Precision.BF16, max_context_tokens=2048)


def cluster(device_id: str, devices: int) -> ClusterSpec:
    d = get_device(device_id)
    per_node = min(devices, d.devices_per_node)
    return ClusterSpec(device=d, num_nodes=devices // per_node, devices_per_node=per_node, scale_up=d.scale_up,
                       scale_out=d.scale_out)


@dataclass(frozen=True, kw_only=True)
class Row:
    id: str
    model: ModelSpec
    cluster: ClusterSpec
    dims: TrainingDims
    workload: TrainingWorkload
    measured_step_s: float
    """Step time the source measured (or derived from its throughput with its own FLOP counting)."""
    note: str
    measured_memory_gib: float | None = None
    """Peak memory per device the source measured (max over devices), GiB."""
    path: str = ""


def measured_step_s(sc: object) -> float:
    """The scenario's first throughput / step expectation as a step time (its own FLOP counting)."""
    from planner.analysis.training import FLOP_COUNTERS
    e = next(x for x in sc.expect if x.metric != "peak_memory_gib")  # type: ignore[attr-defined]
    w, devices = sc.workload, sc.cluster.num_devices  # type: ignore[attr-defined]
    if e.metric == "step_s":
        return e.value
    if e.metric == "tokens_per_s_per_device":
        return w.global_batch_tokens / (e.value * devices)
    flops = FLOP_COUNTERS[e.flop_counting](sc.model, seq_tokens=w.seq_tokens,  # type: ignore[attr-defined]
                                           batch_sequences=w.global_batch_sequences)
    return flops / (e.value * 1e12 * devices)


def row_of(path: Path) -> Row:
    from planner.inputs.training import load_training
    sc = load_training(path)
    mem = next((x.value for x in sc.expect if x.metric == "peak_memory_gib"), None)
    return Row(id=sc.name, model=sc.model, cluster=sc.cluster, dims=sc.plan, workload=sc.workload,
               measured_step_s=measured_step_s(sc), note=sc.description.strip(), measured_memory_gib=mem,
               path=str(path))


def rows() -> list[Row]:
    return [row_of(p) for p in sorted(VALIDATION_DIR.glob("*.yaml"))]


ROWS_BY_ID: dict[str, Row] = {r.id: r for r in rows()}
"""The rows by id (built once per test session)."""
