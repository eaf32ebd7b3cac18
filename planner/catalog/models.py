"""Model catalog: each id is built by importing a bundled config.json (``hf_configs/``, provenance in its SOURCES.md).

``model_sources(id)`` shows where every number came from: the config key(s) it was read from, the citation of the
config file, the published parameter counts and the ones recomputed by :mod:`cost_models.params`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cost_models import params
from cost_models.specs import ModelSpec, Precision
from planner.catalog.errors import UnknownName
from planner.catalog.hf_import import FAMILY_KEYS, detect_family, model_from_hf_config
from planner.catalog.sourced import Sourced, datasheet, derived

HF_CONFIG_DIR = Path(__file__).resolve().parent / "hf_configs"
"""Bundled config.json files (package data)."""

_MIRROR = "ai-dynamo/aiconfigurator model_configs mirror @095f58a (hf_configs/SOURCES.md)"


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """One catalog model: the bundled config it is imported from and its published size."""

    id: str
    """Catalog id, lower-case with hyphens, e.g. ``deepseek-v3``."""
    name: str
    """Human name."""
    config_file: str
    """File name under ``hf_configs/``."""
    config_source: str
    """Where the config values come from (ids of ``planner/catalog/SOURCES.md``)."""
    published_total: Sourced
    """Official total parameter count."""
    published_active: Sourced
    """Official activated parameters per token."""


def _entry(id: str, name: str, config_file: str, cite: str, total: float, active: float, note: str = "",
           secondary: bool = False) -> ModelEntry:
    tag = " [S]" if secondary else ""
    return ModelEntry(id=id, name=name, config_file=config_file, config_source=f"{_MIRROR}; SOURCES.md {cite}",
                      published_total=datasheet(total, f"official, SOURCES.md {cite}{tag}"),
                      published_active=datasheet(active, f"official, SOURCES.md {cite}{tag}", note))


_ENTRIES = (
    _entry("deepseek-v3", "DeepSeek-V3", "DeepSeek-V3.json", "C1, M1", 671e9, 37e9, "685B on HF incl. 14B MTP"),
    _entry("deepseek-r1", "DeepSeek-R1", "DeepSeek-R1.json", "C1, M1", 671e9, 37e9, "same architecture as V3"),
    ModelEntry(id="deepseek-v2-lite", name="DeepSeek-V2-Lite", config_file="DeepSeek-V2-Lite.json",
               config_source="reconstructed from published values (SOURCES.md C3: MaxText deepseek2-16b.yml [V]; "
                             "transformers dump [S]); see hf_configs/SOURCES.md",
               published_total=datasheet(15.7e9, "official, SOURCES.md M2 DeepSeek-V2 README", "'16B'"),
               published_active=datasheet(2.4e9, "official, SOURCES.md M2 DeepSeek-V2 README")),
    _entry("kimi-k2", "Kimi K2 Instruct", "Kimi-K2-Instruct.json", "C4, M3", 1e12, 32e9),
    _entry("qwen3-235b-a22b", "Qwen3-235B-A22B", "Qwen3-235B-A22B.json", "C5, M4", 235e9, 22e9, secondary=True),
    _entry("qwen3-30b-a3b", "Qwen3-30B-A3B", "Qwen3-30B-A3B.json", "C5, M4", 30.5e9, 3.3e9, secondary=True),
    _entry("mixtral-8x7b", "Mixtral-8x7B-v0.1", "Mixtral-8x7B-v0.1.json", "C7", 46.7e9, 12.9e9, secondary=True),
    _entry("mixtral-8x22b", "Mixtral-8x22B-v0.1", "Mixtral-8x22B-v0.1.json", "C7", 141e9, 39e9, secondary=True),
    _entry("gpt-oss-120b", "gpt-oss-120b", "gpt-oss-120b.json", "C8, M5", 117e9, 5.1e9,
           "official active count excludes embedding and head"),
    _entry("gpt-oss-20b", "gpt-oss-20b", "gpt-oss-20b.json", "C8, M5", 21e9, 3.6e9,
           "official active count excludes embedding and head"),
    ModelEntry(id="step3", name="Step-3", config_file="step3.json",
               config_source="reconstructed from vLLM Step3TextConfig defaults (vllm-project/vllm@fb6c0501) and the "
                             "stepfun-ai/step3 model card; see hf_configs/SOURCES.md",
               published_total=datasheet(316e9, "arXiv 2507.19427 Table 1 / stepfun-ai/step3 model card",
                                         "LLM only; 321B with the 5B vision encoder (not modelled)"),
               published_active=datasheet(38e9, "arXiv 2507.19427 Table 1 / stepfun-ai/step3 model card",
                                          "'38B'; matches the count without the input embedding table")),
    _entry("llama-3.1-70b", "Llama-3.1-70B", "Meta-Llama-3.1-70B.json", "C14", 70e9, 70e9, "dense"),
    _entry("llama-3.1-405b", "Llama-3.1-405B", "Meta-Llama-3.1-405B.json", "C14", 405e9, 405e9, "dense"),
)
_BY_ID: Mapping[str, ModelEntry] = {e.id: e for e in _ENTRIES}


def model_ids() -> list[str]:
    """All catalog model ids."""
    return list(_BY_ID)


def model_entry(id: str) -> ModelEntry:
    """The catalog record of ``id``; raises UnknownName with close matches."""
    try:
        return _BY_ID[id]
    except KeyError:
        raise UnknownName.among("model", id, model_ids()) from None


def load_hf_config(config_file: str) -> dict[str, Any]:
    """The parsed bundled config.json ``config_file``."""
    return json.loads((HF_CONFIG_DIR / config_file).read_text(encoding="utf-8"))


@cache
def get_model(id: str) -> ModelSpec:
    """The ModelSpec of catalog model ``id`` (e.g. ``deepseek-v3``), imported from its bundled config."""
    entry = model_entry(id)
    return model_from_hf_config(load_hf_config(entry.config_file), id=entry.id, name=entry.name)


def model_sources(id: str) -> dict[str, Sourced]:
    """ModelSpec field path -> Sourced (config key and file), plus ``published.*`` and ``computed.*`` counts."""
    entry = model_entry(id)
    model = get_model(id)
    keys = FAMILY_KEYS[detect_family(load_hf_config(entry.config_file))]
    out: dict[str, Sourced] = {}
    for path, value in _flatten(model):
        key = keys.get(path, "not in config: family default")
        src = f"hf_configs/{entry.config_file} `{key}`; {entry.config_source}"
        out[path] = _config_value(value, src)
    total, active = params.total_parameters(model), params.active_parameters(model)
    out["published.total_parameters"] = entry.published_total
    out["published.active_parameters"] = entry.published_active
    out["computed.total_parameters"] = derived(total, "cost_models.params.total_parameters",
                                               "counting rules in the cost_models.params docstring")
    out["computed.active_parameters"] = derived(active, "cost_models.params.active_parameters",
                                                "incl. embedding and head")
    return out


def _config_value(value: Any, source: str) -> Sourced:
    if isinstance(value, Precision):
        return datasheet(value.bytes_per_element, source, f"{value.label} (bytes per element)")
    if value is None:
        return datasheet(0.0, source, "null / absent")
    return datasheet(float(value), source)


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Numeric, boolean, None and Precision leaves of a spec dataclass, as (dotted path, value)."""
    leaves: list[tuple[str, Any]] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if is_dataclass(value):
            leaves.extend(_flatten(value, f"{path}."))
        elif value is None or isinstance(value, (bool, int, float, Precision)):
            leaves.append((path, value))
    return leaves
