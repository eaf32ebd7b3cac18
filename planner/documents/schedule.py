"""Layer schedules as documents: ``moeplan schedule --json`` (schema ``moeplan.schedule/1``) and the decode
schedules an evaluate document embeds."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Len

from cost_models.parallel import ParallelDims
from planner.cpsat.schedule_result import RESOURCES, LayerSchedule, ScheduledOp, fold
from planner.documents.base import (
    Count,
    Document,
    NonNegative,
    Number,
    OpKind,
    Phase,
    Positive,
    Resource,
    ScheduledLayerKind,
    SolverStatus,
    field,
    optional,
    schema_id,
)
from planner.documents.limits import SolveLimits
from planner.documents.parts import ParallelPlan, parallel_plan

SCHEDULE_SCHEMA = "moeplan.schedule/1"

SYMBOLS: tuple[tuple[str, str], ...] = (
    ("attn.tp_all_reduce", "R"), ("moe.tp_all_reduce", "R"), ("ffn.tp_all_reduce", "R"),
    ("moe.dispatch", "D"), ("moe.combine", "C"), ("moe.shared.", "S"), ("moe.experts", "E"),
    ("moe.router", "G"), ("moe.topk", "G"), ("moe.norm", "N"), ("ffn.norm", "N"), ("attn.", "A"), ("ffn.", "F"),
)
"""Op-name prefix -> chart letter (first match); other ops draw as their name's first letter, upper-cased."""
LEGEND = {"A": "attention", "N": "norm", "G": "router + top-k", "D": "dispatch", "E": "routed experts",
          "C": "combine", "S": "shared expert", "F": "dense FFN", "R": "TP all-reduce"}
IDLE = "."


def symbol(name: str) -> str:
    return next((s for p, s in SYMBOLS if name.startswith(p)), (name[:1] or "?").upper())


class ScheduledOpDoc(Document):
    """One op of one micro-batch of layer 0 as scheduled; layer i runs it i x makespan_s later."""

    micro_batch: Count = field("Micro-batch index, from 0.")
    op: str = field("Op name, e.g. `attn.qkv_proj`, `moe.dispatch`, `moe.experts`.")
    kind: OpKind = field("`compute` (a kernel) or `comm` (a collective).")
    resource: Resource = field("Resource the op occupies: `compute` (the device's compute units), `scale_up` (the "
                               "intra-node link, e.g. NVLink / HCCS) or `scale_out` (the inter-node network).")
    start_s: Number = field("Start, seconds from the schedule's origin (in `period_intervals`: from the period "
                            "start).")
    end_s: Number = field("End, seconds from the same origin as start_s.")
    sm_shared: bool = field("True when this compute op runs on the compute units a concurrent comm kernel leaves "
                            "free (so it is stretched).")
    symbol: str = field("One-letter Gantt-chart glyph of the op (planner.documents.schedule.SYMBOLS: A attention, "
                        "N norm, G router + top-k, D dispatch, E routed experts, C combine, S shared expert, "
                        "F dense FFN, R TP all-reduce; other ops their upper-cased first letter).",
                        min_length=1, max_length=1)


class ScheduleSolve(Document):
    """How the CP-SAT schedule solve ended (no wall time: the solve is bounded by deterministic work, so the
    document is byte-stable)."""

    status: SolverStatus = field("CP-SAT status (UNKNOWN: the periodic solve beat neither the hint nor the "
                                 "no-overlap schedule in time; the better of those is reported).")
    objective_s: Number = field("Period of the integer (1 ns resolution) solution, seconds.")
    bound_s: Number = field("Lower bound on the period the solver proved, seconds.")
    gap: NonNegative = field("(objective - bound) / objective, a fraction (0 when proven optimal).")


class LayerScheduleDoc(Document):
    """The CP-SAT overlap schedule of one layer (planner.cpsat.schedule_result.LayerSchedule), re-costed in floats.
    Seconds are per layer on the busiest device."""

    makespan_s: NonNegative = field("Steady-state seconds per layer: the period of the periodic schedule.")
    layer_latency_s: NonNegative = field("One layer from its first op's start to its last op's end, seconds (what "
                                         "the first layer of a step costs).")
    no_overlap_s: NonNegative = field("All ops of all micro-batches back to back, seconds.")
    speedup: NonNegative = field("no_overlap_s / makespan_s, a ratio (1.0 when makespan_s is 0).")
    busiest_resource: Resource = field("Resource with the most work per layer.")
    busiest_resource_s: NonNegative = field("Work of the busiest resource per layer, seconds (compute includes the "
                                            "compute units comm kernels take): a lower bound on makespan_s.")
    work_s: dict[Resource, NonNegative] = field("Seconds of work per layer on each resource.")
    busy_s: dict[Resource, NonNegative] = field("Seconds each resource is held per layer as scheduled (stretched "
                                                "compute included).")
    utilization: dict[Resource, NonNegative] = field("busy_s / makespan_s per resource, a fraction (0 when "
                                                     "makespan_s is 0).")
    exposed_comm_s: NonNegative = field("Seconds per period with a comm op in flight and no compute running.")
    micro_batches: Positive = field("Micro-batches the layer is split into; a count.")
    comm_sm_fraction: NonNegative = field("Fraction (0-1, quantized to 1/1000) of the compute units a comm kernel "
                                          "occupies while compute runs beside it.", le=1)
    window_layers: Positive = field("Consecutive layers the periodic model keeps in flight; a count.")
    resources: list[Resource] = field("Resources that carry at least one op, in the order compute, scale_up, "
                                      "scale_out.")
    dependencies: list[Annotated[list[str], Len(2, 2)]] = field(
        "Op-level edges within one micro-batch, as [predecessor op name, successor op name].")
    intervals: list[ScheduledOpDoc] = field("Every op of layer 0, absolute seconds from the schedule's origin.")
    period_intervals: list[ScheduledOpDoc] = field("The same ops folded into one period [0, makespan_s) (an op that "
                                                   "wraps appears as two pieces), for a steady-state plot.")
    solver: ScheduleSolve = field("How the CP-SAT solve ended.")


class DecodeSchedules(Document):
    """The plan's decode overlap schedules as evaluate used them (planner.analysis.evaluate.Evaluation.schedules)."""

    phase: Literal["decode"] = field("Always `decode`.")
    micro_batches: Positive = field("The plan's micro-batches under two-batch overlap, else 1; a count.")
    layers: dict[ScheduledLayerKind, LayerScheduleDoc] = field(
        "One schedule per layer type the model has: `moe` (models with routed experts), `dense` (models with "
        "dense-FFN layers).", min_length=1)


class ScheduleDocument(Document):
    """Output of `moeplan schedule SCENARIO --json`: the CP-SAT overlap schedule of one MoE layer and one dense
    layer (where the model has them) for the scenario's plan. Units are SI. Versioning: adding an optional key
    keeps the version; removing, renaming or changing the meaning of a key bumps it."""

    schema_id: Literal["moeplan.schedule/1"] = schema_id(SCHEDULE_SCHEMA)
    scenario: str = field("The scenario's `name:`.")
    plan: ParallelPlan = field("The plan scheduled (`--plan`, else the scenario's).")
    phase: Phase = field("Phase scheduled (`--phase`): `decode` at the batch evaluate chooses, or `prefill` at the "
                         "scenario's chunk.")
    micro_batches: Positive = field("Micro-batches each layer is split into (`--micro-batches`, default the "
                                    "plan's); a count.", le=4)
    layers: dict[ScheduledLayerKind, LayerScheduleDoc] = field(
        "One schedule per layer type the model has: `moe` (models with routed experts), `dense` (models with "
        "dense-FFN layers).", min_length=1)
    solve_limits: SolveLimits | None = optional("Present with `--time-limit`: which solves the limit stopped.")
    decode_batch_per_device: NonNegative | None = optional(
        "Decode phase: the sequences per device the schedule assumed (the batch evaluate chooses for the plan; "
        "fractional under attention TP).")


def _op_doc(o: ScheduledOp, start: float, end: float) -> ScheduledOpDoc:
    return ScheduledOpDoc(micro_batch=o.micro_batch, op=o.name, kind=o.kind, resource=o.resource, start_s=start,
                          end_s=end, sm_shared=o.sm_shared, symbol=symbol(o.name))


def schedule_document(schedule: LayerSchedule) -> LayerScheduleDoc:
    """One layer's schedule: the figures, the dependency edges, the intervals of layer 0 (absolute seconds) and
    the same intervals folded into one period (``period_intervals``, for a steady-state plot)."""
    sch = schedule
    p = sch.makespan_s
    st = sch.stats
    folded = [_op_doc(o, x, y) for o in sch.intervals for x, y in (fold(o.start_s, o.end_s, p) if p > 0 else [])]
    return LayerScheduleDoc(
        makespan_s=p, layer_latency_s=sch.layer_latency_s, no_overlap_s=sch.no_overlap_s,
        speedup=sch.no_overlap_s / p if p > 0 else 1.0, busiest_resource=sch.busiest_resource,
        busiest_resource_s=sch.busiest_resource_s, work_s=dict(sch.work_s), busy_s=dict(sch.busy_s),
        utilization={r: (sch.busy_s[r] / p if p > 0 else 0.0) for r in RESOURCES},
        exposed_comm_s=sch.exposed_comm_s, micro_batches=sch.micro_batches, comm_sm_fraction=sch.comm_sm_fraction,
        window_layers=sch.window_layers, resources=[r for r in RESOURCES if any(o.resource == r for o in sch.intervals)],
        dependencies=[list(e) for e in sch.dependencies],
        intervals=[_op_doc(o, o.start_s, o.end_s) for o in sch.intervals], period_intervals=folded,
        solver=ScheduleSolve(status=st.status, objective_s=st.objective, bound_s=st.bound, gap=st.gap))


def schedules_document(schedules: dict[str, LayerSchedule], micro_batches: int) -> DecodeSchedules:
    """The decode overlap schedules of a plan as reports embed them (:attr:`Evaluation.schedules`)."""
    return DecodeSchedules(phase="decode", micro_batches=micro_batches,
                           layers={kind: schedule_document(s) for kind, s in schedules.items()})


def schedule_command_document(scenario_name: str, dims: ParallelDims, phase: str, micro_batches: int,
                              schedules: dict[str, LayerSchedule],
                              limits: SolveLimits | None = None, *,
                              decode_batch_per_device: float | None = None) -> ScheduleDocument:
    """The ``moeplan schedule --json`` document (schema ``moeplan.schedule/1``); ``limits``: the
    ``--time-limit`` block; ``decode_batch_per_device``: the decode batch the schedule assumed."""
    return ScheduleDocument(schema_id=SCHEDULE_SCHEMA, scenario=scenario_name, plan=parallel_plan(dims), phase=phase,
                            micro_batches=micro_batches,
                            layers={k: schedule_document(v) for k, v in schedules.items()}, solve_limits=limits,
                            decode_batch_per_device=decode_batch_per_device)
