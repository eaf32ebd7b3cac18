"""The ``evaluate`` document (schema ``moeplan.evaluate/2``): one costed plan, typed, versioned, JSON-ready."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from cost_models.memory import MemoryBreakdown
from cost_models.ops import OpCost
from cost_models.parallel import ParallelDims
from cost_models.serving import PhaseResult, ServingResult
from cost_models.step import StepCost
from planner.documents.base import (
    BatchLimit,
    Bound,
    Count,
    Document,
    LayerKind,
    NonNegative,
    Number,
    OpKind,
    Overlap,
    Positive,
    Precision,
    field,
    optional,
    schema_id,
)
from planner.documents.deployment import DeploymentDoc, deployment_document
from planner.documents.launch import LaunchBlock
from planner.documents.parts import ErrorBand, ParallelPlan, SourcedValue, error_band, parallel_plan, sourced_value
from planner.documents.place import Heatmap, heatmap_document
from planner.documents.schedule import DecodeSchedules, schedules_document
from planner.inputs.scenario import Scenario

if TYPE_CHECKING:
    from planner.analysis.deployment import DeploymentEvaluation
    from planner.analysis.error_bands import FigureBands
    from planner.analysis.evaluate import Evaluation

EVALUATE_SCHEMA = "moeplan.evaluate/2"
"""Version of the ``evaluate --json`` document; bump on any incompatible change (README "JSON output")."""

ByResourceKey = Literal["compute", "memory", "overhead", "scale_up", "scale_out", "latency", "comm", "comm_exposed",
                        "comm_overlapped", "overlap_overhead"]
"""Keys of a step's ``by_resource_s``: the op bounds (``comm`` for a comm op without one), then the split of
communication time and the overlap overhead."""


class EvaluateScenario(Document):
    """The scenario the document was computed from."""

    name: str = field("The scenario's `name:`.")
    path: str = field("The scenario file's path exactly as given on the command line (relative paths stay "
                      "relative).")
    model: str = field("Model id (a catalog id such as `deepseek-v3`, or the config.json file stem for "
                       "`hf_config`).")
    device: str = field("Device catalog id, e.g. `h200_sxm`.")
    nodes: Positive = field("Nodes in the cluster; a count.")
    devices_per_node: Positive = field("Devices per node; a count.")
    devices: Positive = field("Devices in the cluster (nodes x devices_per_node); a count.")
    input_tokens: Positive = field("Prompt length, tokens.")
    output_tokens: Positive = field("Answer length, tokens.")
    weight_precision: Precision = field("Storage format of the weights.")
    expert_imbalance: NonNegative = field("Max / mean routed-expert tokens per EP device the prediction used, a "
                                          "ratio (1.0 = perfect balance; measured from workload.expert_load when "
                                          "the scenario gives one).")
    kv_precision: Precision = field("Storage format of the KV cache.")


class MemoryBytes(Document):
    """Per-device memory of the busiest device in one phase (cost_models.memory.MemoryBreakdown), bytes
    (GiB = 2^30 bytes, GB = 10^9 bytes)."""

    attention_weight_bytes: NonNegative = field("Attention weights held by the device, bytes.")
    dense_ffn_weight_bytes: NonNegative = field("Dense FFN layer weights, bytes.")
    shared_expert_weight_bytes: NonNegative = field("Shared-expert weights, bytes.")
    routed_expert_weight_bytes: NonNegative = field("Routed-expert weights (including redundant slots), bytes.")
    router_weight_bytes: NonNegative = field("Router (gate) weights, bytes.")
    embedding_weight_bytes: NonNegative = field("Embedding and LM-head weights, bytes.")
    kv_cache_bytes: NonNegative = field("KV cache of the sequences the device holds in this phase, bytes.")
    activation_bytes: NonNegative = field("Peak activations of one forward, bytes.")
    comm_buffer_bytes: NonNegative = field("Communication staging buffers (EP dispatch / combine send + receive), "
                                           "bytes.")
    runtime_reserve_bytes: NonNegative = field("Runtime context, workspaces, collective-library buffers and "
                                               "fragmentation (an estimate), bytes.")
    capacity_bytes: NonNegative = field("Device memory capacity, bytes.")
    mtp_weight_bytes: NonNegative = field("Multi-token-prediction draft modules (decoder layer and eh_proj; "
                                          "embedding and head shared), bytes; 0 when MTP is off.")
    weight_bytes: NonNegative = field("Sum of the seven *_weight_bytes, bytes.")
    static_bytes: NonNegative = field("What does not grow with the batch: weight_bytes + comm_buffer_bytes + "
                                      "runtime_reserve_bytes, bytes.")
    used_bytes: NonNegative = field("static_bytes + kv_cache_bytes + activation_bytes, bytes.")
    free_bytes: Number = field("capacity_bytes - used_bytes, bytes (negative: the phase does not fit).")


class OpDoc(Document):
    """One kernel or collective of the layer on the busiest device (cost_models.ops.OpCost)."""

    name: str = field("Op name, e.g. `attn.qkv_proj`, `moe.dispatch`, `moe.experts`.")
    kind: OpKind = field("`compute` (a kernel) or `comm` (a collective).")
    seconds: NonNegative = field("Predicted time of one execution per layer, seconds.")
    flops: NonNegative = field("Floating-point operations, FLOP.")
    hbm_bytes: NonNegative = field("Bytes read and written in device memory (HBM).")
    scale_up_bytes: NonNegative = field("Bytes the device sends over the intra-node link.")
    scale_out_bytes: NonNegative = field("Bytes the device sends over the inter-node network.")
    bound: Bound = field("Which roof bound the op: `compute`, `memory`, `overhead` (launch / tile overhead), "
                         "`scale_up`, `scale_out` or `latency` (link latency).")


class LayerDoc(Document):
    """One layer type of the step (cost_models.step.LayerCost); times are per layer."""

    kind: LayerKind = field("`dense` (dense FFN layers), `moe` (MoE layers), `head` (embedding / LM head) or `mtp` "
                            "(multi-token-prediction draft forwards: their decoder layer, or their projection and "
                            "head; op names start with `mtp.`).")
    count: Count = field("How many such layers the device's pipeline stage runs per step; a count.")
    layer_s: NonNegative = field("Time of one such layer after overlap, seconds.")
    compute_s: NonNegative = field("Compute-op time of one layer, seconds.")
    comm_s: NonNegative = field("Communication-op time of one layer before overlap, seconds.")
    exposed_comm_s: NonNegative = field("Communication time not hidden behind compute, seconds per layer.")
    overlapped_comm_s: NonNegative = field("Communication time hidden behind compute, seconds per layer.")
    overlap_overhead_s: Number = field("Extra time the overlap itself costs (split micro-batches, compute units lent "
                                       "to comm kernels, stream switches), seconds per layer; negative when the "
                                       "half-batch kernels together take less than the full-batch ones (tile and "
                                       "wave effects).")
    ops: list[OpDoc] = field("The layer's ops in execution order.")


class StepDoc(Document):
    """One forward (a prefill chunk or a decode step) of one pipeline stage on the busiest device
    (cost_models.step.StepCost)."""

    step_s: NonNegative = field("Time of one step of one stage (the interval that sets throughput), seconds.")
    latency_s: NonNegative = field("Time for a token to pass all pp stages, stage hand-offs included, seconds.")
    rank_tokens: NonNegative = field("Tokens per attention rank in this step.")
    overlap: Overlap = field("Overlap policy of the plan.")
    by_resource_s: dict[ByResourceKey, Number] = field(
        "Seconds per step by what bound each op (the op bound names), plus `comm_exposed`, `comm_overlapped` (the "
        "split of communication time) and `overlap_overhead` (negative as layers' overlap_overhead_s can be); only "
        "the bounds that occur are present; keys sorted.")
    layers: list[LayerDoc] = field("Per layer type, in model order.")


class PrefillPhase(Document):
    """The prefill phase served alone (cost_models.serving.PhaseResult)."""

    tokens_per_device_per_step: NonNegative = field("Input tokens one device prefills per forward (the chunk).")
    throughput_tok_per_s_per_device: NonNegative = field("Input (prompt) tokens per second per device.")
    throughput_band: ErrorBand | None = optional("Error band of throughput_tok_per_s_per_device (the prefill "
                                                 "regime's validation rows).")
    ttft_s: NonNegative = field("Time to first token: one prompt's prefill latency, seconds.")
    ttft_band: ErrorBand | None = optional("Error band of ttft_s.")
    expert_tokens_per_local_expert: NonNegative = field(
        "Expert compute density: mean (token, expert) pairs each local routed expert GEMM gets per step, tokens "
        "(0 for a dense model).")
    memory_bytes: MemoryBytes = field("Per-device memory in this phase, bytes.")
    step: StepDoc = field("Time of one forward of this phase, by layer and op.")


class DecodePhase(Document):
    """The decode phase served alone (cost_models.serving.PhaseResult) at the batch it chose."""

    sequences_per_device: NonNegative = field("Sequences one device decodes per step (the decode batch; fractional "
                                              "under attention TP).")
    throughput_tok_per_s_per_device: NonNegative = field("Output tokens per second per device.")
    throughput_band: ErrorBand | None = optional("Error band of throughput_tok_per_s_per_device (the decode "
                                                 "regime's validation rows).")
    tpot_s: NonNegative = field("Time per output token of one sequence, seconds.")
    tpot_band: ErrorBand | None = optional("Error band of tpot_s.")
    expert_tokens_per_local_expert: NonNegative = field(
        "Expert compute density: mean (token, expert) pairs each local routed expert GEMM gets per step, tokens "
        "(0 for a dense model).")
    memory_bytes: MemoryBytes = field("Per-device memory in this phase, bytes.")
    step: StepDoc = field("Time of one forward of this phase, by layer and op.")
    batch_limit: BatchLimit = field("What set the decode batch: `workload` (given by the scenario), `memory` (KV "
                                    "cache capacity) or `tpot_slo` (the largest batch within the TPOT SLO).")


class Aggregated(Document):
    """Prefill and decode time-shared on the same devices (aggregated serving)."""

    output_tok_per_s_per_device: NonNegative = field("Output tokens per second per device.")
    user_tok_per_s: NonNegative = field("Output tokens per second one user sees, prefill stalls included.")
    request_tok_per_s: NonNegative | None = optional(
        "Prompt and generated tokens per second one request sees: (input + output) / the time its slot lasts "
        "(at one sequence per device, TTFT + output x TPOT; the Qwen speed benchmark's metric).")
    output_band: ErrorBand | None = optional("Error band of output_tok_per_s_per_device, user_tok_per_s and "
                                             "request_tok_per_s (rates of the aggregated regime).")


class Slo(Document):
    """The scenario's latency targets and whether this plan meets them (null: no target set)."""

    ttft_s: NonNegative | None = field("TTFT target, seconds.")
    tpot_s: NonNegative | None = field("TPOT target, seconds.")
    ttft_met: bool | None = field("prefill.ttft_s <= slo.ttft_s; null without a target.")
    tpot_met: bool | None = field("decode.tpot_s <= slo.tpot_s; null without a target.")


class DeviceDoc(Document):
    """The device numbers the prediction used, each with its source and confidence."""

    id: str = field("Device catalog id.")
    name: str = field("Device name.")
    sources: dict[str, SourcedValue] = field("Dotted device-spec path (e.g. `hbm_bytes`, `peak_flop_per_s.fp8`, "
                                             "`scale_out.bytes_per_s`) -> the value used; keys sorted.")


class EvaluateDocument(Document):
    """One `moeplan evaluate --json` document: what one plan of one scenario costs. Also embedded in plan
    (`chosen_breakdown`) and compare (`evaluate`, `prefill_evaluate`) documents. Units are SI (seconds, bytes,
    tokens per second). Versioning: adding an optional key keeps `moeplan.evaluate/2`; removing, renaming or
    changing the meaning of a key bumps the version."""

    schema_id: Literal["moeplan.evaluate/2"] = schema_id(EVALUATE_SCHEMA)
    scenario: EvaluateScenario = field("The scenario evaluated.")
    plan: ParallelPlan = field("The plan evaluated.")
    prefill: PrefillPhase = field("Prefill served alone.")
    decode: DecodePhase = field("Decode served alone.")
    aggregated: Aggregated = field("Prefill and decode on the same devices.")
    slo: Slo = field("Latency targets and whether they are met.")
    device: DeviceDoc = field("Device numbers used, with provenance.")
    schedule: DecodeSchedules | None = optional("The decode overlap schedules (absent when none was solved).")
    placement: Heatmap | None = optional("Present when the scenario gives router counts (workload.expert_load) for "
                                         "an MoE model: the CP-SAT placement whose imbalance the prediction used.")
    launch: LaunchBlock | None = optional("Present with `--emit ENGINE`.")
    deployment: DeploymentDoc | None = optional(
        "The whole deployment this document's plan belongs to: its string, pools, rates, the rate match and the "
        "deployment's throughput, TTFT and TPOT. The top-level plan and phases are its decode (or aggregated) "
        "pool's.")
    prefill_pool: EvaluateDocument | None = optional(
        "A disaggregated deployment's prefill pool, costed the same way (its own plan, phases and memory).")


def memory_document(m: MemoryBreakdown) -> MemoryBytes:
    return MemoryBytes(
        attention_weight_bytes=m.attention_weight_bytes, dense_ffn_weight_bytes=m.dense_ffn_weight_bytes,
        shared_expert_weight_bytes=m.shared_expert_weight_bytes, routed_expert_weight_bytes=m.routed_expert_weight_bytes,
        router_weight_bytes=m.router_weight_bytes, embedding_weight_bytes=m.embedding_weight_bytes,
        kv_cache_bytes=m.kv_cache_bytes, activation_bytes=m.activation_bytes, comm_buffer_bytes=m.comm_buffer_bytes,
        runtime_reserve_bytes=m.runtime_reserve_bytes, capacity_bytes=m.capacity_bytes,
        mtp_weight_bytes=m.mtp_weight_bytes, weight_bytes=m.weight_bytes,
        static_bytes=m.static_bytes, used_bytes=m.used_bytes, free_bytes=m.free_bytes)


def op_fields(o: OpCost) -> dict[str, object]:
    """The :class:`OpDoc` fields of an op cost (also the base of the AFD document's ops)."""
    return dict(name=o.name, kind=o.kind, seconds=o.seconds, flops=o.flops, hbm_bytes=o.hbm_bytes,
                scale_up_bytes=o.scale_up_bytes, scale_out_bytes=o.scale_out_bytes, bound=o.bound)


def step_document(step: StepCost) -> StepDoc:
    layers = [LayerDoc(kind=la.kind, count=la.count, layer_s=la.layer_s, compute_s=la.compute_s, comm_s=la.comm_s,
                       exposed_comm_s=la.exposed_comm_s, overlapped_comm_s=la.overlapped_comm_s,
                       overlap_overhead_s=la.overlap_overhead_s,
                       ops=[OpDoc(**op_fields(o)) for o in la.ops])
              for la in step.layers]
    return StepDoc(step_s=step.step_s, latency_s=step.latency_s, rank_tokens=step.rank_tokens, overlap=step.overlap,
                   by_resource_s=dict(sorted(step.by_resource.items())), layers=layers)


def _prefill(p: PhaseResult, bands: FigureBands | None) -> PrefillPhase:
    return PrefillPhase(tokens_per_device_per_step=p.tokens_per_device_per_step,
                        throughput_tok_per_s_per_device=p.throughput_tok_per_s_per_device, ttft_s=p.latency_s,
                        throughput_band=error_band(bands and bands.prefill_throughput),
                        ttft_band=error_band(bands and bands.ttft),
                        expert_tokens_per_local_expert=p.expert_tokens_per_local_expert,
                        memory_bytes=memory_document(p.memory), step=step_document(p.step))


def _decode(p: PhaseResult, batch_limit: str, bands: FigureBands | None) -> DecodePhase:
    return DecodePhase(sequences_per_device=p.sequences_per_device,
                       throughput_tok_per_s_per_device=p.throughput_tok_per_s_per_device, tpot_s=p.latency_s,
                       throughput_band=error_band(bands and bands.decode_throughput),
                       tpot_band=error_band(bands and bands.tpot),
                       expert_tokens_per_local_expert=p.expert_tokens_per_local_expert,
                       memory_bytes=memory_document(p.memory), step=step_document(p.step), batch_limit=batch_limit)


def device_document(sc: Scenario) -> DeviceDoc:
    """The device numbers the prediction used, each with its source and confidence (scenario overrides marked)."""
    return DeviceDoc(id=sc.cluster.device.id, name=sc.cluster.device.name,
                     sources={k: sourced_value(v) for k, v in sorted(sc.device_sources.items())})


def _scenario(sc: Scenario) -> EvaluateScenario:
    wl = sc.workload
    return EvaluateScenario(name=sc.name, path=sc.path, model=sc.model.id, device=sc.cluster.device.id,
                            nodes=sc.cluster.num_nodes, devices_per_node=sc.cluster.devices_per_node,
                            devices=sc.cluster.num_devices, input_tokens=wl.input_tokens,
                            output_tokens=wl.output_tokens, weight_precision=wl.weight_precision.label,
                            expert_imbalance=wl.expert_imbalance, kv_precision=wl.kv_precision.label)


def evaluate_document(sc: Scenario, dims: ParallelDims, r: ServingResult, *, schedule: DecodeSchedules | None = None,
                      placement: Heatmap | None = None, launch: LaunchBlock | None = None,
                      bands: FigureBands | None = None) -> EvaluateDocument:
    """The ``evaluate --json`` document (schema ``moeplan.evaluate/2``). ``schedule``: the decode overlap
    schedules (:func:`planner.documents.schedule.schedules_document`); ``placement``: the expert-placement heatmap
    (:func:`planner.documents.place.heatmap_document`) when a load file was given; ``launch``: the ``--emit``
    block; ``bands``: each figure's error band (:func:`planner.analysis.error_bands.serving_bands`)."""
    wl = sc.workload
    slo = Slo(ttft_s=wl.ttft_slo_s, tpot_s=wl.tpot_slo_s,
              ttft_met=None if wl.ttft_slo_s is None else r.prefill.latency_s <= wl.ttft_slo_s,
              tpot_met=None if wl.tpot_slo_s is None else r.decode.latency_s <= wl.tpot_slo_s)
    return EvaluateDocument(
        schema_id=EVALUATE_SCHEMA, scenario=_scenario(sc), plan=parallel_plan(dims), prefill=_prefill(r.prefill, bands),
        decode=_decode(r.decode, r.decode_batch_limit, bands),
        aggregated=Aggregated(output_tok_per_s_per_device=r.aggregated_output_tok_per_s_per_device,
                              user_tok_per_s=r.aggregated_user_tok_per_s,
                              request_tok_per_s=r.aggregated_request_tok_per_s,
                              output_band=error_band(bands and bands.aggregated_throughput)),
        slo=slo, device=device_document(sc), schedule=schedule, placement=placement, launch=launch)


def evaluation_document(ev: Evaluation, launch: LaunchBlock | None = None) -> EvaluateDocument:
    """:func:`evaluate_document` of an :class:`~planner.analysis.evaluate.Evaluation`, with the decode overlap
    schedules, the placement heatmap and the error bands it carries (added by ``with_solver_results``)."""
    schedule = None if ev.schedules is None else schedules_document(ev.schedules, ev.schedule_micro_batches)
    placement = None
    if ev.placement is not None and ev.scenario.expert_loads is not None:
        placement = heatmap_document(ev.placement, ev.scenario.expert_loads)
    return evaluate_document(ev.scenario, ev.dims, ev.result, schedule=schedule, placement=placement, launch=launch,
                             bands=ev.bands)


def deployment_evaluation_document(dep: DeploymentEvaluation, launch: LaunchBlock | None = None) -> EvaluateDocument:
    """The evaluate document of a whole deployment: the decode (or aggregated) pool's evaluation, the
    ``deployment`` part, and for a disaggregated deployment the prefill pool's evaluation as ``prefill_pool``."""
    prefill = None if len(dep.pools) == 1 else evaluation_document(dep.prefill.evaluation)
    doc = evaluation_document(dep.decode.evaluation, launch=launch)
    return doc.model_copy(update={"deployment": deployment_document(dep), "prefill_pool": prefill})
