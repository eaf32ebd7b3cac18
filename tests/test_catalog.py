"""Device and model catalogs: every number sourced, ids well-formed, lookups fail helpfully."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from cost_models.specs import Confidence, DeviceSpec, LinkSpec, Precision
from planner.catalog import (
    UnknownName,
    device_entry,
    device_ids,
    device_sources,
    get_device,
    get_model,
    model_ids,
    model_sources,
)
from planner.catalog.sourced import Sourced

REQUIRED_DEVICES = {"a100_sxm_80gb", "h100_sxm", "h800", "h200_sxm", "h20", "b200", "gb200_nvl72", "mi300x",
                    "ascend_910b2", "ascend_910b3", "ascend_910b4", "ascend_910c", "cloudmatrix384"}
REQUIRED_MODELS = {"deepseek-v3", "deepseek-r1", "deepseek-v2-lite", "kimi-k2", "qwen3-235b-a22b", "qwen3-30b-a3b",
                   "mixtral-8x7b", "mixtral-8x22b", "gpt-oss-120b", "gpt-oss-20b", "llama-3.1-70b", "llama-3.1-405b"}
IDENTITY_FIELDS = {"id", "name", "vendor"}


def expected_paths(spec: DeviceSpec) -> set[str]:
    """Every DeviceSpec field path that must carry a Sourced value."""
    paths = set()
    for f in dataclasses.fields(DeviceSpec):
        if f.name in IDENTITY_FIELDS:
            continue
        if f.name == "peak_flop_per_s":
            paths |= {f"peak_flop_per_s.{p.label}" for p in spec.peak_flop_per_s}
        elif f.name in ("scale_up", "scale_out"):
            paths |= {f"{f.name}.{g.name}" for g in dataclasses.fields(LinkSpec)}
        else:
            paths.add(f.name)
    return paths


def test_catalog_has_every_required_device() -> None:
    assert REQUIRED_DEVICES <= set(device_ids())


@pytest.mark.parametrize("device_id", device_ids())
def test_device_ids_are_lower_case_with_underscores(device_id: str) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", device_id)
    assert get_device(device_id).id == device_id


@pytest.mark.parametrize("device_id", device_ids())
def test_every_device_field_has_a_source_and_confidence(device_id: str) -> None:
    spec = get_device(device_id)
    sources = device_sources(device_id)
    assert set(sources) == expected_paths(spec)
    for path, sourced in sources.items():
        assert isinstance(sourced, Sourced), path
        assert sourced.source.strip(), path
        assert isinstance(sourced.confidence, Confidence), path
        assert math.isfinite(sourced.value) and sourced.value >= 0, path


@pytest.mark.parametrize("device_id", device_ids())
def test_spec_values_are_the_sourced_values(device_id: str) -> None:
    spec, s = get_device(device_id), device_sources(device_id)
    for p, flops in spec.peak_flop_per_s.items():
        assert flops == s[f"peak_flop_per_s.{p.label}"].value
    for name in ("hbm_bytes", "hbm_bytes_per_s", "compute_units", "l2_bytes", "devices_per_node", "vector_flop_per_s"):
        assert getattr(spec, name) == s[name].value
    for tier in ("scale_up", "scale_out"):
        link = getattr(spec, tier)
        assert link.bytes_per_s == s[f"{tier}.bytes_per_s"].value
        assert link.latency_s == s[f"{tier}.latency_s"].value
        assert link.achievable_fraction == s[f"{tier}.achievable_fraction"].value


@pytest.mark.parametrize("device_id", device_ids())
def test_device_numbers_are_plausible(device_id: str) -> None:
    d = get_device(device_id)
    assert 100e12 <= d.peak_flop_per_s[Precision.BF16] <= 3000e12
    assert 16 * 2**30 <= d.hbm_bytes <= 256 * 2**30
    assert 0.5e12 <= d.hbm_bytes_per_s <= 10e12
    for link in (d.scale_up, d.scale_out):
        assert 0 < link.achievable_fraction <= 1
        assert 1e-7 < link.latency_s < 1e-4
    # scale-up is always the faster tier, per device
    assert d.scale_up.bytes_per_s > d.scale_out.bytes_per_s


def test_precision_support_follows_the_hardware() -> None:
    # SOURCES.md a, m: A100 and Ascend have no FP8 units; Blackwell adds FP4; Ascend INT8 = 2 x BF16
    assert not get_device("a100_sxm_80gb").supports(Precision.FP8)
    for ascend in ("ascend_910b2", "ascend_910b3", "ascend_910b4", "ascend_910c", "cloudmatrix384"):
        d = get_device(ascend)
        assert set(d.peak_flop_per_s) == {Precision.BF16, Precision.INT8}
        assert d.peak_for(Precision.FP8) == d.peak_flop_per_s[Precision.BF16]
        assert d.peak_flop_per_s[Precision.INT8] == pytest.approx(2 * d.peak_flop_per_s[Precision.BF16])
    for blackwell in ("b200", "gb200_nvl72"):
        assert get_device(blackwell).supports(Precision.FP4)
    for other in ("h100_sxm", "h200_sxm", "mi300x", "a100_sxm_80gb"):
        assert not get_device(other).supports(Precision.FP4)


def test_anchor_numbers_from_the_reference() -> None:
    # SOURCES.md a, g, v [V]: H200 989.4 TFLOP/s BF16, 4.8 TB/s, NVLink 450 GB/s uni, ~370 effective (v)
    h200 = get_device("h200_sxm")
    assert h200.peak_flop_per_s[Precision.BF16] == pytest.approx(989.4e12)
    assert h200.hbm_bytes_per_s == pytest.approx(4.8e12)
    assert h200.scale_up.effective_bytes_per_s == pytest.approx(370e9)
    # DeepSeek DeepEP docs (x): H800 NVLink ~160 GB/s effective; CX7 400 Gb/s = 50 GB/s line rate
    h800 = get_device("h800")
    assert h800.scale_up.effective_bytes_per_s == pytest.approx(160e9)
    assert h800.scale_out.bytes_per_s == pytest.approx(50e9)
    # HIXL (bb): Ascend RDMA 22.6 GB/s measured of 25
    assert get_device("ascend_910b2").scale_out.effective_bytes_per_s == pytest.approx(22.6e9)
    assert get_device("h100_sxm").vector_flop_per_s == pytest.approx(67e12)


def test_logical_device_and_domain_sizes() -> None:
    # one 910C die is the device: 16 per A3 node, 768 per CloudMatrix384 UB domain (384 chips x 2 dies)
    assert device_entry("ascend_910c").default_nodes_devices == (1, 16)
    assert device_entry("cloudmatrix384").default_nodes_devices == (1, 768)
    assert device_entry("gb200_nvl72").default_nodes_devices == (1, 72)
    assert device_entry("h200_sxm").default_nodes_devices == (1, 8)
    assert get_device("cloudmatrix384").devices_per_node == 768
    # per-die numbers are half a 910C chip: 64 GiB and 1.6 TB/s of 128 GB / 3.2 TB/s
    die = get_device("ascend_910c")
    assert die.hbm_bytes == 64 * 2**30 and die.hbm_bytes_per_s == pytest.approx(1.6e12)


def test_unverified_numbers_are_not_called_datasheet() -> None:
    # the 910B compute and bandwidth figures are unverified (SOURCES.md m [U])
    for ascend in ("ascend_910b2", "ascend_910b3", "ascend_910b4"):
        s = device_sources(ascend)
        assert s["peak_flop_per_s.bf16"].confidence is Confidence.ESTIMATED
        assert s["hbm_bytes_per_s"].confidence is Confidence.ESTIMATED
    assert device_sources("ascend_910c")["peak_flop_per_s.bf16"].confidence is Confidence.DERIVED
    assert device_sources("h100_sxm")["peak_flop_per_s.bf16"].confidence is Confidence.DATASHEET
    assert device_sources("h100_sxm")["scale_up.achievable_fraction"].confidence is Confidence.MEASURED


def test_device_sources_is_a_copy() -> None:
    device_sources("h100_sxm").clear()
    assert device_sources("h100_sxm")


def test_unknown_device_suggests_close_names() -> None:
    with pytest.raises(UnknownName) as info:
        get_device("h200")
    err = info.value
    assert err.kind == "device" and err.given == "h200"
    assert err.suggestions[0] == "h200_sxm"
    assert "h200_sxm" in str(err)
    with pytest.raises(UnknownName) as info:
        get_device("ascend910c")
    assert "ascend_910c" in info.value.suggestions


def test_unknown_name_without_match_has_no_suggestions() -> None:
    with pytest.raises(UnknownName) as info:
        get_device("zzzzzz")
    assert info.value.suggestions == ()


def test_sourced_requires_a_source() -> None:
    with pytest.raises(ValueError):
        Sourced(1.0, "  ", Confidence.DATASHEET)


def test_catalog_has_every_required_model() -> None:
    assert REQUIRED_MODELS <= set(model_ids())


@pytest.mark.parametrize("model_id", model_ids())
def test_every_catalog_model_imports_with_sources(model_id: str) -> None:
    assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", model_id)
    model = get_model(model_id)
    assert model.id == model_id
    sources = model_sources(model_id)
    assert {"hidden_size", "num_layers", "published.total_parameters", "computed.total_parameters"} <= set(sources)
    for path, sourced in sources.items():
        assert sourced.source.strip() and isinstance(sourced.confidence, Confidence), path


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownName) as info:
        get_model("deepseek-v3.1")
    assert info.value.kind == "model"
    assert "deepseek-v3" in info.value.suggestions
