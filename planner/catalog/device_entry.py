"""Catalog record of one device: every DeviceSpec field as a Sourced value, and the spec built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cost_models.specs import DeviceSpec, LinkSpec, Precision
from planner.catalog.sourced import Sourced, estimated

LINK_FIELDS = ("bytes_per_s", "latency_s", "achievable_fraction", "multicast_reduction")
NO_MULTICAST = estimated(0, "moeplan default", "no in-switch reduction assumed unless the entry cites one")
SCALAR_FIELDS = ("hbm_bytes", "hbm_bytes_per_s", "compute_units", "l2_bytes", "devices_per_node", "vector_flop_per_s",
                 "sustained_clock_ratio")
HOPPER_CLOCK = estimated(0, "moeplan default", "0: the sustained clock ratio calibrated on H200 kernels applies "
                         "(cost_models.efficiency.SUSTAINED_CLOCK_RATIO)")
PEAK_PREFIX = "peak_flop_per_s."


@dataclass(frozen=True, kw_only=True)
class LinkSources:
    """One network tier as seen from one device, each number sourced."""

    bytes_per_s: Sourced
    """Line rate per device per direction, bytes/s."""
    latency_s: Sourced
    """Start-up latency of one transfer or collective step, seconds."""
    achievable_fraction: Sourced
    """Share of the line rate that large collectives reach."""
    multicast_reduction: Sourced = field(default=NO_MULTICAST)
    """1 when the tier's switch reduces and multicasts (NVLink SHARP), else 0."""

    def spec(self) -> LinkSpec:
        return LinkSpec(bytes_per_s=self.bytes_per_s.value, latency_s=self.latency_s.value,
                        achievable_fraction=self.achievable_fraction.value,
                        multicast_reduction=bool(self.multicast_reduction.value))


@dataclass(frozen=True, kw_only=True)
class DeviceEntry:
    """A catalog device: identity, sourced numbers keyed by DeviceSpec field path, and its default cluster shape."""

    id: str
    """Lower-case catalog id with underscores, e.g. ``h200_sxm``."""
    name: str
    """Human name."""
    vendor: str
    """``nvidia``, ``amd`` or ``huawei``."""
    sources: Mapping[str, Sourced]
    """DeviceSpec field path -> Sourced: ``peak_flop_per_s.bf16``, ``hbm_bytes``, ``scale_up.latency_s``, ..."""
    default_nodes_devices: tuple[int, int]
    """(nodes, devices per node) of the default cluster: one scale-up domain (1x8 HGX, 1x72 NVL72, 1x768 CM384)."""
    notes: str = ""
    """What one logical device is and how it is packaged."""

    def spec(self) -> DeviceSpec:
        """The DeviceSpec the cost models take, built from the sourced values."""
        s = self.sources
        peaks = {Precision.from_label(k[len(PEAK_PREFIX):]): v.value for k, v in s.items() if k.startswith(PEAK_PREFIX)}
        return DeviceSpec(
            id=self.id, name=self.name, vendor=self.vendor,
            peak_flop_per_s=MappingProxyType(peaks),
            hbm_bytes=s["hbm_bytes"].value,
            hbm_bytes_per_s=s["hbm_bytes_per_s"].value,
            compute_units=int(s["compute_units"].value),
            l2_bytes=s["l2_bytes"].value,
            scale_up=_link(s, "scale_up"),
            scale_out=_link(s, "scale_out"),
            devices_per_node=int(s["devices_per_node"].value),
            vector_flop_per_s=s["vector_flop_per_s"].value,
            sustained_clock_ratio=s["sustained_clock_ratio"].value,
        )


def _link(sources: Mapping[str, Sourced], tier: str) -> LinkSpec:
    values = {f: sources[f"{tier}.{f}"].value for f in LINK_FIELDS}
    return LinkSpec(**{**values, "multicast_reduction": bool(values["multicast_reduction"])})


def make_entry(*, id: str, name: str, vendor: str, peak: Mapping[Precision, Sourced], hbm_bytes: Sourced,
               hbm_bytes_per_s: Sourced, compute_units: Sourced, l2_bytes: Sourced, scale_up: LinkSources,
               scale_out: LinkSources, devices_per_node: Sourced, vector_flop_per_s: Sourced,
               sustained_clock_ratio: Sourced = HOPPER_CLOCK, notes: str = "") -> DeviceEntry:
    """Flatten sourced fields into a DeviceEntry; the default cluster is one scale-up domain."""
    if Precision.BF16 not in peak:
        raise ValueError(f"{id}: every device needs a BF16 peak (the fallback of DeviceSpec.peak_for)")
    for label, count in (("compute_units", compute_units), ("devices_per_node", devices_per_node)):
        if count.value != int(count.value) or count.value < 1:
            raise ValueError(f"{id}: {label} must be a positive integer, got {count.value}")
    sources: dict[str, Sourced] = {f"{PEAK_PREFIX}{p.label}": v for p, v in peak.items()}
    sources.update(hbm_bytes=hbm_bytes, hbm_bytes_per_s=hbm_bytes_per_s, compute_units=compute_units,
                   l2_bytes=l2_bytes, devices_per_node=devices_per_node, vector_flop_per_s=vector_flop_per_s,
                   sustained_clock_ratio=sustained_clock_ratio)
    for tier, link in (("scale_up", scale_up), ("scale_out", scale_out)):
        for f in LINK_FIELDS:
            sources[f"{tier}.{f}"] = getattr(link, f)
    return DeviceEntry(id=id, name=name, vendor=vendor, sources=MappingProxyType(sources),
                       default_nodes_devices=(1, int(devices_per_node.value)), notes=notes)
