"""The ``catalog`` documents (``moeplan.catalog.devices/1``, ``moeplan.catalog.models/1``): every bundled number
with its source and confidence."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Len

from cost_models import params
from planner.catalog import devices, models
from planner.documents.base import Count, Document, Positive, Precision, field, schema_id
from planner.documents.parts import SourcedValue, sourced_value

DEVICES_SCHEMA = "moeplan.catalog.devices/1"
MODELS_SCHEMA = "moeplan.catalog.models/1"


class DeviceItem(Document):
    """One bundled device with every number's source and confidence."""

    id: str = field("Device catalog id (what a scenario's `cluster.device` names).")
    name: str = field("Device name.")
    vendor: str = field("Vendor, lower case (e.g. `nvidia`, `amd`, `huawei`).")
    default_nodes_devices: Annotated[list[Positive], Len(2, 2)] = field(
        "Default [nodes, devices per node] of a cluster of this device; counts.")
    notes: str = field("Caveats about the entry (may be empty).")
    sources: dict[str, SourcedValue] = field("Dotted device-spec path (e.g. `hbm_bytes`, `peak_flop_per_s.fp8`) -> "
                                             "its value in SI units with source and confidence; keys sorted.")


class DevicesDocument(Document):
    """Output of `moeplan catalog devices --json`: every bundled device and the source of each of its numbers.
    Versioning: adding an optional key keeps the version; removing, renaming or changing the meaning of a key
    bumps it."""

    schema_id: Literal["moeplan.catalog.devices/1"] = schema_id(DEVICES_SCHEMA)
    items: list[DeviceItem] = field("The devices, by id.")


class ModelItem(Document):
    """One bundled model: its shape, parameter counts and the source of each number."""

    id: str = field("Model catalog id (what a scenario's `model.catalog` names).")
    name: str = field("Model name.")
    total_parameters: Count = field("All parameters, a count (embedding and every expert included).")
    active_parameters: Count = field("Parameters one token uses (shared and top-k routed experts), a count.")
    layers: Positive = field("Transformer layers; a count.")
    moe_layers: Count = field("Layers whose FFN is a mixture of experts; a count.")
    hidden_size: Positive = field("Model width, elements per token.")
    attention: Literal["mha", "gqa", "mla", "mfa"] = field("Attention family: `mha`, `gqa`, `mla` (latent KV) or "
                                                           "`mfa` (Step-3's multi-matrix factorisation).")
    routed_experts: Count = field("Routed experts per MoE layer (0 for a dense model); a count.")
    top_k: Count = field("Routed experts each token uses (0 for a dense model); a count.")
    native_precision: Precision = field("Format the published weights are stored in.")
    sources: dict[str, SourcedValue] = field("Dotted model-spec path -> its value with source and confidence; keys "
                                             "sorted.")


class ModelsDocument(Document):
    """Output of `moeplan catalog models --json`: every bundled model. Versioning: adding an optional key keeps
    the version; removing, renaming or changing the meaning of a key bumps it."""

    schema_id: Literal["moeplan.catalog.models/1"] = schema_id(MODELS_SCHEMA)
    items: list[ModelItem] = field("The models, by id.")


def devices_document() -> DevicesDocument:
    items = []
    for i in devices.device_ids():
        entry = devices.device_entry(i)
        items.append(DeviceItem(id=i, name=entry.name, vendor=entry.vendor,
                                default_nodes_devices=list(entry.default_nodes_devices), notes=entry.notes,
                                sources={k: sourced_value(v) for k, v in sorted(entry.sources.items())}))
    return DevicesDocument(schema_id=DEVICES_SCHEMA, items=items)


def models_document() -> ModelsDocument:
    items = []
    for i in models.model_ids():
        m = models.get_model(i)
        items.append(ModelItem(id=i, name=m.name, total_parameters=params.total_parameters(m),
                               active_parameters=params.active_parameters(m), layers=m.num_layers,
                               moe_layers=m.num_moe_layers, hidden_size=m.hidden_size, attention=m.attention.kind.value,
                               routed_experts=m.moe.num_routed_experts if m.moe else 0,
                               top_k=m.moe.top_k if m.moe else 0, native_precision=m.native_precision.label,
                               sources={k: sourced_value(v) for k, v in sorted(models.model_sources(i).items())}))
    return ModelsDocument(schema_id=MODELS_SCHEMA, items=items)
