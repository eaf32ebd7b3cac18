"""Device catalog: look up a DeviceSpec by id, list ids, and show where every number came from.

Data lives in :mod:`planner.catalog.devices_nvidia` and :mod:`planner.catalog.devices_amd_huawei`; each field of
each DeviceSpec is a :class:`~planner.catalog.sourced.Sourced` value (STYLE.md rule 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from cost_models.specs import DeviceSpec
from planner.catalog import devices_amd_huawei, devices_nvidia
from planner.catalog.device_entry import DeviceEntry
from planner.catalog.errors import UnknownName
from planner.catalog.sourced import Sourced


@cache
def _entries() -> Mapping[str, DeviceEntry]:
    entries = [make() for make in (*devices_nvidia.ENTRIES, *devices_amd_huawei.ENTRIES)]
    by_id = {e.id: e for e in entries}
    if len(by_id) != len(entries):
        raise RuntimeError("duplicate device id in the catalog")
    return MappingProxyType(by_id)


@cache
def _specs() -> Mapping[str, DeviceSpec]:
    return MappingProxyType({i: e.spec() for i, e in _entries().items()})


def device_ids() -> list[str]:
    """All catalog device ids, in catalog order (NVIDIA, AMD, Huawei)."""
    return list(_entries())


def device_entry(id: str) -> DeviceEntry:
    """The full catalog record (sources, default cluster shape, notes); raises UnknownName."""
    try:
        return _entries()[id]
    except KeyError:
        raise UnknownName.among("device", id, device_ids()) from None


def get_device(id: str) -> DeviceSpec:
    """The DeviceSpec for ``id`` (e.g. ``h200_sxm``); raises UnknownName with close matches otherwise."""
    device_entry(id)
    return _specs()[id]


def device_sources(id: str) -> dict[str, Sourced]:
    """DeviceSpec field path (``peak_flop_per_s.bf16``, ``scale_up.bytes_per_s``, ...) -> Sourced."""
    return dict(device_entry(id).sources)
