"""Device and model catalogs: every number with a source and a confidence (STYLE.md rule 8)."""

from __future__ import annotations

from planner.catalog.devices import device_entry, device_ids, device_sources, get_device
from planner.catalog.errors import CatalogError, ConfigError, UnknownName
from planner.catalog.hf_import import model_from_hf_config
from planner.catalog.models import get_model, model_entry, model_ids, model_sources
from planner.catalog.sourced import Sourced

__all__ = [
    "CatalogError", "ConfigError", "Sourced", "UnknownName", "device_entry", "device_ids", "device_sources",
    "get_device", "get_model", "model_entry", "model_from_hf_config", "model_ids", "model_sources",
]
