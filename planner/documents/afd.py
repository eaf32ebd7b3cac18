"""The AFD ``evaluate`` document (schema ``moeplan.afd/1``): an attention-FFN disaggregated decode, as a model.

Metric paths a validation ``expect:`` row may name: ``afd.throughput_tok_per_s_per_device``, ``afd.tpot_s``,
``afd.user_tok_per_s``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from cost_models.afd import AfdLayerCost, AfdLayout, AfdMemory, AfdResult, Transfer
from cost_models.ops import OpCost
from cost_models.serving import decode_context
from planner.documents.base import (
    Document,
    NonNegative,
    Positive,
    Precision,
    field,
    schema_id,
)
from planner.documents.evaluate import DeviceDoc, OpDoc, device_document, op_fields

if TYPE_CHECKING:
    from planner.analysis.afd import AfdEvaluation

AFD_SCHEMA = "moeplan.afd/1"
"""Version of the AFD ``evaluate --json`` document; bump on any incompatible change."""

AfdLayerKind = Literal["dense", "moe", "dense+head", "moe+head"]
AfdStage = Literal["attention", "a_to_f", "ffn_scale_up", "ffn_compute", "f_to_a"]
"""The five resources of one micro-batch's layer pipeline (cost_models.afd.compose_layer)."""


class AfdScenario(Document):
    """The AFD scenario evaluated."""

    name: str = field("The scenario's `name:`.")
    path: str = field("The scenario file's path exactly as given on the command line (relative paths stay "
                      "relative).")
    model: str = field("Model id.")
    device: str = field("Device catalog id (attention and FFN instances run on the same device kind).")
    nodes: Positive = field("Nodes in the cluster; a count.")
    devices_per_node: Positive = field("Devices per node; a count.")
    devices: Positive = field("Devices in the cluster; a count.")
    context_tokens: NonNegative = field("KV length a decode step attends over (the mean over the answer), tokens.")
    weight_precision: Precision = field("Storage format of the weights.")
    kv_precision: Precision = field("Storage format of the KV cache.")
    dispatch_precision: Precision = field("Format of the hidden states sent attention -> FFN.")
    expert_imbalance: NonNegative = field("Max / mean routed-expert tokens per FFN device, a ratio (1.0 = perfect "
                                          "balance).")


class AfdLayoutDoc(Document):
    """Instances, degrees and micro-batches (cost_models.afd.AfdLayout), with the derived device counts."""

    attention_instances: Positive = field("Attention instances (A in `2A2F`); a count.")
    attention_instance_devices: Positive = field("Devices per attention instance; a count.")
    attention_tp: Positive = field("Attention TP degree inside an instance, a count (1: every device a DP rank).")
    ffn_instances: Positive = field("FFN instances (F); a count.")
    ffn_instance_devices: Positive = field("Devices per FFN instance; a count.")
    ffn_tp: Positive = field("TP degree of every expert inside an FFN instance, a count.")
    micro_batches: Positive = field("Micro-batches in flight; a count.")
    label: str = field("Short human label, e.g. `2A2F: A 8 dev (tp 1), F 8 dev (tp 8), m=3`.")
    devices: Positive = field("attention_devices + ffn_devices; a count.")
    attention_devices: Positive = field("attention_instances x attention_instance_devices; a count.")
    ffn_devices: Positive = field("ffn_instances x ffn_instance_devices; a count.")
    ffn_groups: Positive = field("EP groups over all FFN instances (ffn_devices / ffn_tp); a count.")


class AfdOp(OpDoc):
    """One kernel or transfer of a stage (cost_models.ops.OpCost), per layer and micro-batch; with the collective
    algorithm, which the AFD document also shows."""

    algorithm: str = field("A collective's algorithm (`ring`, `nvls`, `one_shot`, ...); empty for kernels.")


class AfdTransfer(Document):
    """One direction of the per-layer attention <-> FFN exchange of one micro-batch (cost_models.afd.Transfer)."""

    seconds: NonNegative = field("Latency + the slower end's bytes / NIC rate: what the micro-batch waits, seconds.")
    busy_s: NonNegative = field("How long the busier NIC is occupied: what limits the period, seconds.")
    attention_device_bytes: NonNegative = field("Bytes one attention device sends or receives.")
    ffn_device_bytes: NonNegative = field("Bytes one FFN device sends or receives.")


class AfdLayer(Document):
    """One layer kind of one micro-batch (cost_models.afd.AfdLayerCost); times per layer."""

    kind: AfdLayerKind = field("`dense` or `moe`; `+head` for the layer that also runs the LM head.")
    count: Positive = field("Layers of this kind; a count.")
    layer_s: NonNegative = field("max(micro_batches x period_s, round_trip_s): one layer of the whole batch, "
                                 "seconds.")
    period_s: NonNegative = field("The busiest stage per micro-batch, seconds.")
    bottleneck: AfdStage = field("Which stage sets period_s.")
    round_trip_s: NonNegative = field("attention + A->F + FFN scale-up + FFN compute + F->A of one micro-batch, "
                                      "seconds.")
    attention_s: NonNegative = field("Attention stage (sum of attention_ops), seconds.")
    a_to_f: AfdTransfer = field("Attention -> FFN transfer.")
    ffn_scale_up_s: NonNegative = field("FFN-side intra-node collectives, seconds.")
    ffn_compute_s: NonNegative = field("FFN kernels, seconds.")
    f_to_a: AfdTransfer = field("FFN -> attention transfer.")
    attention_ops: list[AfdOp] = field("Ops of one attention rank.")
    ffn_ops: list[AfdOp] = field("Ops of one FFN device.")


class AfdMemoryBytes(Document):
    """Bytes on one attention device and one FFN device (cost_models.afd.AfdMemory)."""

    attention_weight_bytes: NonNegative = field("Attention (and embedding / head) weights per attention device, "
                                                "bytes.")
    kv_cache_bytes: NonNegative = field("KV cache per attention device, bytes.")
    ffn_weight_bytes: NonNegative = field("FFN and expert weights per FFN device, bytes.")
    runtime_reserve_bytes: NonNegative = field("Runtime reserve on every device (an estimate), bytes.")
    attention_device_bytes: NonNegative = field("attention_weight + kv_cache + runtime_reserve, bytes.")
    ffn_device_bytes: NonNegative = field("ffn_weight + runtime_reserve, bytes.")
    capacity_bytes: NonNegative = field("Device memory capacity, bytes.")
    fits: bool = field("Both device kinds within capacity_bytes.")


class AfdSection(Document):
    """Layout, the figures, memory per device kind and every layer's pipeline."""

    layout: AfdLayoutDoc = field("The AFD layout evaluated.")
    batch: NonNegative = field("Sequences decoded per step over all attention ranks (a count; fractional when "
                               "derived from a per-rank share).")
    sequences_per_rank_per_micro_batch: NonNegative = field("Sequences per attention rank per micro-batch (a count; "
                                                            "fractional when the batch does not divide).")
    micro_batch_tokens: NonNegative = field("Tokens of one micro-batch over all attention ranks.")
    tpot_s: NonNegative = field("Time per output token, seconds.")
    user_tok_per_s: NonNegative = field("1 / tpot_s, output tokens per second one user sees.")
    throughput_tok_per_s_per_device: NonNegative = field("Output tokens per second per device (attention and FFN "
                                                         "devices counted).")
    memory_bytes: AfdMemoryBytes = field("Memory per device kind.")
    layers: list[AfdLayer] = field("One entry per layer kind, in model order.", min_length=1)


class AfdSlo(Document):
    """The scenario's TPOT target and whether the layout meets it (null: no target set)."""

    tpot_s: NonNegative | None = field("TPOT target, seconds.")
    tpot_met: bool | None = field("afd.tpot_s <= slo.tpot_s; null without a target.")


class AfdDocument(Document):
    """Output of `moeplan evaluate SCENARIO --json` for a scenario with an `afd:` section (attention-FFN
    disaggregated decode). Units are SI. Versioning: adding an optional key keeps the version; removing, renaming
    or changing the meaning of a key bumps it."""

    schema_id: Literal["moeplan.afd/1"] = schema_id(AFD_SCHEMA)
    scenario: AfdScenario = field("The scenario evaluated.")
    afd: AfdSection = field("The AFD prediction.")
    slo: AfdSlo = field("Latency target.")
    device: DeviceDoc = field("The device numbers the prediction used, with source and confidence.")


def _ops(ops: tuple[OpCost, ...]) -> list[AfdOp]:
    return [AfdOp(**op_fields(o), algorithm=o.algorithm) for o in ops]


def _transfer(t: Transfer) -> AfdTransfer:
    return AfdTransfer(seconds=t.seconds, busy_s=t.busy_s, attention_device_bytes=t.attention_device_bytes,
                       ffn_device_bytes=t.ffn_device_bytes)


def _layer(c: AfdLayerCost) -> AfdLayer:
    return AfdLayer(kind=c.kind, count=c.count, layer_s=c.layer_s, period_s=c.period_s, bottleneck=c.bottleneck,
                    round_trip_s=c.round_trip_s, attention_s=c.attention_s, a_to_f=_transfer(c.a_to_f),
                    ffn_scale_up_s=c.ffn_scale_up_s, ffn_compute_s=c.ffn_compute_s, f_to_a=_transfer(c.f_to_a),
                    attention_ops=_ops(c.attention_ops), ffn_ops=_ops(c.ffn_ops))


def _memory(m: AfdMemory) -> AfdMemoryBytes:
    return AfdMemoryBytes(attention_weight_bytes=m.attention_weight_bytes, kv_cache_bytes=m.kv_cache_bytes,
                          ffn_weight_bytes=m.ffn_weight_bytes, runtime_reserve_bytes=m.runtime_reserve_bytes,
                          attention_device_bytes=m.attention_device_bytes, ffn_device_bytes=m.ffn_device_bytes,
                          capacity_bytes=m.capacity_bytes, fits=m.fits)


def afd_layout_doc(lay: AfdLayout) -> AfdLayoutDoc:
    """An AFD layout with its derived device counts."""
    return AfdLayoutDoc(
        attention_instances=lay.attention_instances, attention_instance_devices=lay.attention_instance_devices,
        attention_tp=lay.attention_tp, ffn_instances=lay.ffn_instances, ffn_instance_devices=lay.ffn_instance_devices,
        ffn_tp=lay.ffn_tp, micro_batches=lay.micro_batches, label=lay.label(), devices=lay.devices,
        attention_devices=lay.attention_devices, ffn_devices=lay.ffn_devices, ffn_groups=lay.ffn_groups)


def afd_section(r: AfdResult) -> AfdSection:
    """The ``afd`` section: layout, the figures, memory per device kind and every layer's pipeline."""
    return AfdSection(layout=afd_layout_doc(r.layout), batch=r.batch,
                      sequences_per_rank_per_micro_batch=r.sequences_per_rank_per_micro_batch,
                      micro_batch_tokens=r.micro_batch_tokens, tpot_s=r.tpot_s, user_tok_per_s=r.user_tok_per_s,
                      throughput_tok_per_s_per_device=r.throughput_tok_per_s_per_device,
                      memory_bytes=_memory(r.memory), layers=[_layer(c) for c in r.layers])


def afd_document(ev: AfdEvaluation) -> AfdDocument:
    """The ``evaluate --json`` document of an AFD scenario (schema ``moeplan.afd/1``)."""
    sc, r = ev.scenario, ev.result
    wl = sc.workload
    scenario = AfdScenario(name=sc.name, path=sc.path, model=sc.model.id, device=sc.cluster.device.id,
                           nodes=sc.cluster.num_nodes, devices_per_node=sc.cluster.devices_per_node,
                           devices=sc.cluster.num_devices, context_tokens=decode_context(wl),
                           weight_precision=wl.weight_precision.label, kv_precision=wl.kv_precision.label,
                           dispatch_precision=wl.dispatch_precision.label, expert_imbalance=wl.expert_imbalance)
    slo = AfdSlo(tpot_s=wl.tpot_slo_s, tpot_met=None if wl.tpot_slo_s is None else r.tpot_s <= wl.tpot_slo_s)
    return AfdDocument(schema_id=AFD_SCHEMA, scenario=scenario, afd=afd_section(r), slo=slo,
                       device=device_document(sc))
