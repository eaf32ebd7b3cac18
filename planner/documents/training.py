"""Training documents: ``moeplan.train.evaluate/1`` (one layout costed), ``moeplan.train.plan/1`` (the layout
search) and ``moeplan.train.compare/1`` (two layouts side by side).  Built from
:class:`planner.analysis.training.TrainingEvaluation` and :class:`planner.search.training.TrainingPlanResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from cost_models.training.specs import TrainingOpClass
from planner.documents.base import Better, Count, Document, NonNegative, Number, Positive, field, optional, schema_id
from planner.documents.launch import LaunchBlock

if TYPE_CHECKING:
    from planner.analysis.training import TrainingEvaluation
    from planner.search.training import TrainingPlanResult

TRAIN_EVALUATE_SCHEMA = "moeplan.train.evaluate/1"
TRAIN_PLAN_SCHEMA = "moeplan.train.plan/1"
TRAIN_COMPARE_SCHEMA = "moeplan.train.compare/1"
SLOT_LIMIT = 4_000
"""Most pipeline slots a document carries (a larger schedule keeps its summary, not its slots)."""


class TrainingScenarioDoc(Document):
    """What was trained, on what."""

    name: str = field("Scenario `name:`.")
    path: str = field("Scenario file path as given.")
    model: str = field("Model id.")
    device: str = field("Device catalog id.")
    devices: Positive = field("Devices of the cluster; a count.")
    seq_tokens: Positive = field("Tokens per sequence.")
    global_batch_sequences: Positive = field("Sequences per optimizer step; a count.")
    precision: str = field("Precision recipe of the Linear GEMMs (bf16, fp8_tensorwise, fp8_blockwise, mxfp8).")
    bf16_classes: list[Literal["attention_projections", "dense_ffn", "routed_experts", "shared_experts"]] = field(
        "Linear classes kept in BF16 under an FP8 recipe (empty: the recipe for every Linear but the router and head).")
    fp8_attention: bool = field("Core attention in FP8 (Transformer Engine's fused FP8 attention).")
    optimizer: str = field("Optimizer and its state precision (adam, adam_bf16_moments, muon).")
    token_budget: Count | None = optional("Tokens to train on; a count of tokens.")
    deadline_s: NonNegative | None = optional("Time allowed to reach the token budget, seconds.")


class TrainingPlanDoc(Document):
    """The degrees of a training layout (README 'Training plans')."""

    tp: Positive = field("Tensor parallelism of attention and dense parts; a count.")
    sequence_parallel: bool = field("Sequence parallelism over the TP group.")
    cp: Positive = field("Context parallelism; a count.")
    cp_kind: Literal["ring", "ulysses"] = field("How CP exchanges keys and values.")
    pp: Positive = field("Pipeline ranks; a count.")
    vpp: Positive = field("Virtual chunks per pipeline rank (interleaved 1F1B); a count.")
    schedule: Literal["1f1b", "interleaved_1f1b", "zb1p", "dualpipe", "dualpipev"] = field("Pipeline schedule.")
    dp: Positive = field("Data parallelism of the attention / dense part; a count.")
    ep: Positive = field("Expert parallelism; a count.")
    etp: Positive = field("Tensor parallelism inside each expert; a count.")
    edp: Positive = field("Expert data parallelism, tp x cp x dp / (ep x etp); a count.")
    sharding: Literal["none", "zero1", "zero2", "zero3"] = field("What is sharded over data-parallel ranks.")
    micro_batch: Positive = field("Sequences per micro-batch per data-parallel rank; a count.")
    recompute: str | list[str] = field("`none`, `full`, `op_sac` (torchtitan's per-op selective checkpointing), or "
                                       "the recomputed modules.")
    a2a_overlap: bool = field("EP all-to-all overlapped with another micro-batch's compute.")
    dispatcher: Literal["deepep", "alltoall"] = field("EP token dispatcher: DeepEP, or the all-to-all dispatcher.")
    overlap_grad_reduce: bool = field("Gradient reduction overlapped with the backward, bucket by bucket.")
    tp_comm_overlap: bool = field("Backward TP collectives overlapped with the column-parallel Linear's GEMMs.")
    pp_comm_overlap: bool = field("Interleaved 1F1B's pipeline sends overlapped with compute.")


class Performance(Document):
    """Step time, throughput and MFU of the layout."""

    step_s: NonNegative = field("Predicted step time, seconds.")
    tokens_per_s: NonNegative = field("Training tokens per second of the whole layout.")
    tokens_per_s_per_device: NonNegative = field("Training tokens per second per device.")
    tflop_per_s_per_device: NonNegative = field("Megatron-counted FLOP/s per device / 1e12 (TFLOP/s/GPU).")
    mfu: NonNegative = field("Megatron-counted FLOPs over the dense BF16 peak; a fraction.")
    micro_batches: Positive = field("Micro-batches per step per pipeline; a count.")
    time_to_token_budget_s: NonNegative | None = optional("Seconds to train on the token budget.")


class StageMemory(Document):
    """Bytes on one device of one pipeline rank."""

    rank: Count = field("Pipeline rank index.")
    parameter_bytes: NonNegative = field("Model (bf16) parameters, bytes.")
    gradient_bytes: NonNegative = field("Gradient buffers, bytes.")
    optimizer_bytes: NonNegative = field("fp32 master weights and optimizer moments, bytes.")
    activation_bytes: NonNegative = field("Activations of the in-flight micro-batches, bytes.")
    comm_buffer_bytes: NonNegative = field("Communication buffers (DeepEP, FSDP gathers), bytes.")
    reserve_bytes: NonNegative = field("Framework reserve and fragmentation, bytes.")
    used_bytes: NonNegative = field("Sum of the above, bytes.")
    capacity_bytes: NonNegative = field("Device memory, bytes.")
    fits: bool = field("used_bytes <= capacity_bytes.")


class ChunkDoc(Document):
    """Chunk times of one micro-batch on the busiest rank (cost_models.training.pipeline.ChunkTimes)."""

    forward_s: NonNegative = field("F of the busiest rank's chunk, seconds.")
    backward_s: NonNegative = field("B (input and weight gradients, recompute), seconds.")
    weight_grad_s: NonNegative = field("W, the weight-gradient part of B, seconds.")
    overlapped_fb_s: NonNegative = field("F&B of two micro-batches run together, seconds.")


class SlotDoc(Document):
    """One slot of the drawn pipeline schedule."""

    device: Count = field("Pipeline rank index.")
    kind: Literal["F", "B", "W", "BW", "FB", "FBW"] = field("Slot kind (planner.cpsat.pipeline_result.slot_kind).")
    micro_batch: Count = field("Micro-batch index of the slot's first op.")
    chunk: Count = field("Chunk index along the micro-batch's route, of the slot's first op.")
    start_s: NonNegative = field("Start, seconds from the step's first slot.")
    end_s: NonNegative = field("End, seconds.")


class PipelineDoc(Document):
    """The pipeline part of the step: which method, its time, and the schedule drawn."""

    method: Literal["cpsat", "closed_form"] = field("Where the pipeline part of the step came from.")
    note: str = field("Why that method, and the solve's status.")
    pipeline_s: NonNegative = field("Pipeline part of the step, seconds.")
    closed_form_s: NonNegative = field("The schedule's closed form on the busiest rank, seconds.")
    bubble_s: NonNegative = field("Closed-form bubble of the busiest rank, seconds.")
    busiest_rank: Count = field("Index of the rank that sets the pace.")
    chunk: ChunkDoc = field("Chunk times of the busiest rank.")
    schedule_makespan_s: NonNegative | None = optional("Makespan of the drawn schedule, seconds.")
    schedule_micro_batches: Count | None = optional("Micro-batches of the drawn schedule (fewer than the step's "
                                                    "when the step is too large to draw); a count.")
    slots: list[SlotDoc] | None = optional(f"The drawn schedule's slots (at most {SLOT_LIMIT:,}).")


class ExpectCheck(Document):
    """One ``expect:`` row of the scenario (a published measurement) against the prediction."""

    metric: str = field("Measured metric.")
    measured: Number = field("Published value in the metric's units (tokens per second per device, seconds, TFLOP/s, GiB).")
    predicted: Number = field("Predicted value in the same units.")
    error: Number = field("predicted / measured - 1; a fraction.")
    step_error: Number | None = optional("For throughput metrics (tokens/s, TFLOP/s): the error on the step time "
                                         "they imply, measured / predicted - 1; a fraction.")
    tolerance: NonNegative = field("Accepted |error| (|step_error| for throughput metrics); a fraction.")
    source: str = field("Where the measured value comes from.")
    known_gap: str | None = optional("Why the row is outside its tolerance today.")


class TrainingEvaluateDocument(Document):
    """Output of `moeplan evaluate TRAINING_SCENARIO --json`: memory per pipeline rank, step time by op and by
    resource, the pipeline schedule, throughput and MFU of one training layout."""

    schema_id: Literal["moeplan.train.evaluate/1"] = schema_id(TRAIN_EVALUATE_SCHEMA)
    scenario: TrainingScenarioDoc = field("The scenario.")
    plan: TrainingPlanDoc = field("The layout.")
    performance: Performance = field("Step time and throughput.")
    memory: list[StageMemory] = field("One entry per pipeline rank, rank 0 first.", min_length=1)
    time_by_resource_s: dict[str, NonNegative] = field("Seconds per step on the busiest rank: compute, bubble, "
                                                       "exposed_comm, overlapped_comm, dp_exposed, dp_total, optimizer.")
    time_by_op_s: dict[str, NonNegative] = field("Seconds per step on the busiest rank by op (bwd_ = input "
                                                 "gradient, wgrad_ = weight gradient, recompute_ = rerun forward).")
    pipeline: PipelineDoc = field("The pipeline schedule.")
    checks: list[ExpectCheck] | None = optional("The scenario's expect: rows against the prediction.")
    launch: LaunchBlock | None = optional("Megatron-LM / MindSpeed-LLM launch lines of the layout (`--emit`).")


class CandidateDoc(Document):
    """One searched layout, costed."""

    plan: TrainingPlanDoc = field("The layout.")
    devices: Positive = field("Devices it uses; a count.")
    step_s: NonNegative = field("Step time, seconds.")
    tokens_per_s: NonNegative = field("Tokens per second of the layout.")
    tokens_per_s_per_device: NonNegative = field("Tokens per second per device.")
    mfu: NonNegative = field("Megatron-counted MFU; a fraction.")
    peak_memory_bytes: NonNegative = field("Busiest device's memory, bytes.")
    time_to_token_budget_s: NonNegative | None = optional("Seconds to the token budget.")


class TrainingPlanDocument(Document):
    """Output of `moeplan plan TRAINING_SCENARIO --json`: the best layouts, the Pareto front of throughput
    against devices, the rejections by constraint and the chosen layout's evaluate document."""

    schema_id: Literal["moeplan.train.plan/1"] = schema_id(TRAIN_PLAN_SCHEMA)
    objective: Literal["throughput", "time", "devices"] = field("What the search optimised.")
    method: str = field("How the layouts were searched.")
    layouts_considered: Count = field("Layouts enumerated; a count.")
    layouts_costed: Count = field("Layouts whose step time was costed; a count.")
    rejected: dict[str, Count] = field("Layouts dropped, by constraint; counts.")
    wall_s: NonNegative = field("Search wall time, seconds.")
    top: list[CandidateDoc] = field("Best layouts, best first.", min_length=1)
    pareto: list[CandidateDoc] = field("Throughput against devices: no other layout is faster on as few devices.")
    chosen: TrainingEvaluateDocument = field("The best layout, evaluated.")


class MetricDoc(Document):
    """One compared metric, both values in the unit named."""

    name: str = field("Metric.")
    unit: str = field("Unit of both values.")
    baseline: Number = field("Baseline value, in the row's unit.")
    candidate: Number = field("Candidate value, in the row's unit.")
    ratio: Number | None = optional("candidate / baseline; a ratio.")
    better: Better = field("Which direction is better.")


class TrainingCompareDocument(Document):
    """Output of `moeplan compare TRAINING_SCENARIO --json`: two training layouts side by side."""

    schema_id: Literal["moeplan.train.compare/1"] = schema_id(TRAIN_COMPARE_SCHEMA)
    baseline_label: str = field("How the baseline was named.")
    candidate_label: str = field("How the candidate was named.")
    metrics: list[MetricDoc] = field("Compared metrics.")
    baseline: TrainingEvaluateDocument = field("The baseline, evaluated.")
    candidate: TrainingEvaluateDocument = field("The candidate, evaluated.")


def plan_doc(ev: TrainingEvaluation) -> TrainingPlanDoc:
    from planner.inputs.training import plan_section
    return TrainingPlanDoc(**plan_section(ev.dims, ev.workload.recompute))


def _memory(ev: TrainingEvaluation) -> list[StageMemory]:
    keys = ("parameter_bytes", "gradient_bytes", "optimizer_bytes", "activation_bytes", "comm_buffer_bytes",
            "reserve_bytes", "capacity_bytes")
    return [StageMemory(rank=m.rank, used_bytes=m.used_bytes, fits=m.fits, **{k: float(getattr(m, k)) for k in keys})
            for m in ev.memory]


def _pipeline(ev: TrainingEvaluation) -> PipelineDoc:
    v, s = ev.pipeline, ev.step
    slots = None
    if v.schedule is not None and len(v.schedule.slots) <= SLOT_LIMIT:
        t0 = min(x.start_s for x in v.schedule.slots)
        slots = [SlotDoc(device=x.device, kind=x.kind, micro_batch=x.ops[0].mb, chunk=x.ops[0].step,
                         start_s=x.start_s - t0, end_s=x.end_s - t0) for x in v.schedule.slots]
    c = s.chunk
    return PipelineDoc(method=v.method, note=v.note, pipeline_s=v.pipeline_s, closed_form_s=v.closed_form_s,
                       bubble_s=s.bubble_s, busiest_rank=s.busiest_rank,
                       chunk=ChunkDoc(forward_s=c.forward_s, backward_s=c.backward_s, weight_grad_s=c.weight_grad_s,
                                      overlapped_fb_s=c.overlapped_fb_s),
                       schedule_makespan_s=v.schedule.makespan_s if v.schedule else None,
                       schedule_micro_batches=v.schedule_micro_batches if v.schedule else None, slots=slots)


def checked_error(c: ExpectCheck) -> float:
    """The error the tolerance applies to: on the step time for throughput metrics, else on the metric."""
    return c.step_error if c.step_error is not None else c.error


def expect_checks(ev: TrainingEvaluation) -> list[ExpectCheck]:
    """Each ``expect:`` row of the scenario against the prediction."""
    out = []
    for e in ev.scenario.expect:  # type: ignore[attr-defined]
        predicted = predicted_metric(ev, e.metric, e.flop_counting)
        inverse = e.metric in ("tokens_per_s_per_device", "tflop_per_s_per_device")
        out.append(ExpectCheck(metric=e.metric, measured=e.value, predicted=predicted, error=predicted / e.value - 1,
                               step_error=e.value / predicted - 1 if inverse else None, tolerance=e.tolerance,
                               source=e.source, known_gap=e.known_gap))
    return out


def predicted_metric(ev: TrainingEvaluation, metric: str, counting: str = "megatron") -> float:
    if metric == "step_s":
        return ev.step_s
    if metric == "tokens_per_s_per_device":
        return ev.tokens_per_s_per_device
    if metric == "tflop_per_s_per_device":
        return ev.tflop_per_s_per_device(counting)
    return ev.peak_memory.used_bytes / 2**30


def _scenario(ev: TrainingEvaluation) -> TrainingScenarioDoc:
    sc = ev.scenario
    return TrainingScenarioDoc(name=sc.name, path=sc.path, model=sc.model.id,  # type: ignore[attr-defined]
                               device=sc.cluster.device.id, devices=sc.cluster.num_devices,  # type: ignore[attr-defined]
                               seq_tokens=ev.workload.seq_tokens,
                               global_batch_sequences=ev.workload.global_batch_sequences,
                               precision=ev.workload.recipe.label,
                               bf16_classes=[c.value for c in TrainingOpClass if c in ev.workload.bf16_classes],
                               fp8_attention=ev.workload.fp8_attention, optimizer=ev.workload.optimizer.label,
                               token_budget=sc.token_budget, deadline_s=sc.deadline_s)  # type: ignore[attr-defined]


def evaluate_document(ev: TrainingEvaluation, *, launch: LaunchBlock | None = None) -> TrainingEvaluateDocument:
    budget = ev.scenario.token_budget  # type: ignore[attr-defined]
    perf = Performance(step_s=ev.step_s, tokens_per_s=ev.tokens_per_s, tokens_per_s_per_device=ev.tokens_per_s_per_device,
                       tflop_per_s_per_device=ev.tflop_per_s_per_device(), mfu=ev.mfu,
                       micro_batches=ev.step.micro_batches,
                       time_to_token_budget_s=ev.time_to_tokens_s(budget) if budget else None)
    checks = expect_checks(ev) or None
    return TrainingEvaluateDocument(schema_id=TRAIN_EVALUATE_SCHEMA, scenario=_scenario(ev), plan=plan_doc(ev),
                                    performance=perf, memory=_memory(ev),
                                    time_by_resource_s={k: max(0.0, v) for k, v in ev.step.by_resource_s.items()},
                                    time_by_op_s={k: max(0.0, v) for k, v in ev.step.by_op_s.items()},
                                    pipeline=_pipeline(ev), checks=checks, launch=launch)


def candidate_doc(ev: TrainingEvaluation) -> CandidateDoc:
    budget = ev.scenario.token_budget  # type: ignore[attr-defined]
    return CandidateDoc(plan=plan_doc(ev), devices=ev.devices, step_s=ev.step_s, tokens_per_s=ev.tokens_per_s,
                        tokens_per_s_per_device=ev.tokens_per_s_per_device, mfu=ev.mfu,
                        peak_memory_bytes=ev.peak_memory.used_bytes,
                        time_to_token_budget_s=ev.time_to_tokens_s(budget) if budget else None)


def plan_document(res: TrainingPlanResult, chosen: TrainingEvaluation, *, launch: LaunchBlock | None = None
                  ) -> TrainingPlanDocument:
    return TrainingPlanDocument(schema_id=TRAIN_PLAN_SCHEMA, objective=res.objective, method=res.method,
                                layouts_considered=res.considered, layouts_costed=res.costed,
                                rejected=dict(res.rejected), wall_s=res.wall_s,
                                top=[candidate_doc(e) for e in res.top], pareto=[candidate_doc(e) for e in res.pareto],
                                chosen=evaluate_document(chosen, launch=launch))


COMPARED = (("step time", "s", "lower", lambda e: e.step_s),
            ("tokens / s / device", "tok/s", "higher", lambda e: e.tokens_per_s_per_device),
            ("tokens / s", "tok/s", "higher", lambda e: e.tokens_per_s),
            ("MFU", "fraction", "higher", lambda e: e.mfu),
            ("bubble", "s", "lower", lambda e: e.step.bubble_s),
            ("exposed communication", "s", "lower", lambda e: e.step.by_resource_s.get("exposed_comm", 0.0)),
            ("peak memory / device", "bytes", "lower", lambda e: e.peak_memory.used_bytes),
            ("devices", "devices", "none", lambda e: e.devices))


def compare_document(base: TrainingEvaluation, cand: TrainingEvaluation, labels: tuple[str, str]
                     ) -> TrainingCompareDocument:
    rows = []
    for name, unit, better, get in COMPARED:
        b, c = float(get(base)), float(get(cand))
        rows.append(MetricDoc(name=name, unit=unit, baseline=b, candidate=c, ratio=c / b if b else None,
                              better=better))
    return TrainingCompareDocument(schema_id=TRAIN_COMPARE_SCHEMA, baseline_label=labels[0], candidate_label=labels[1],
                                   metrics=rows, baseline=evaluate_document(base), candidate=evaluate_document(cand))
