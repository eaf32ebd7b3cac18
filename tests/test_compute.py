"""Compute model: hand-derived FLOP/byte counts, structural identities, and Hypothesis properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models import compute
from cost_models import efficiency as eff
from cost_models.specs import DeviceSpec, Precision

try:
    from tests._devices import h200
except ImportError:  # tests/ on sys.path instead of the repository root
    from _devices import h200

DEV = h200()


# --- hand-derived counts ------------------------------------------------------------------------------------------


def test_gemm_flops_and_bytes_bf16() -> None:
    c = compute.gemm_cost(DEV, m=4096, k=7168, n=4096)
    # flops = 2 * m * k * n = 2 * 4096 * 7168 * 4096 = 240,518,168,576
    assert c.flops == 240_518_168_576
    # bytes = (A: 4096*7168 + W: 7168*4096) * 2 B + C: 4096*4096 * 2 B
    #       = 2 * 29,360,128 * 2 + 33,554,432 = 117,440,512 + 33,554,432 = 150,994,944
    assert c.bytes == 150_994_944
    assert c.bound == "compute"
    # 0.24 TFLOP at <= 0.83 * 989.4 TFLOP/s needs >= 293 us; the model may only add to that.
    assert c.seconds >= c.flops / (eff.MATMUL_PEAK_FRACTION_WIDE * 989.4e12)


def test_gemm_bytes_fp8_decode() -> None:
    c = compute.gemm_cost(DEV, m=16, k=7168, n=4096, precision=Precision.FP8)
    # fp8 operands 1 B, bf16 output 2 B: 16*7168 + 7168*4096 + 16*4096*2 = 114,688 + 29,360,128 + 131,072
    assert c.bytes == 29_605_888
    assert c.flops == 2 * 16 * 7168 * 4096  # 939,524,096
    assert c.bound in ("memory", "overhead")
    # weights stream at no more than 0.935 * 4.8 TB/s = 4.488 TB/s: >= 6.6 us
    assert c.seconds >= c.bytes / (eff.HBM_READ_FRACTION * 4.8e12)


def test_attention_prefill_counts() -> None:
    c = compute.attention_prefill_cost(DEV, batch=1, q_heads=32, kv_heads=32, qk_head_dim=128, v_head_dim=128,
                                       seq_tokens=4096, causal=True)
    # causal pairs per head = L(L+1)/2 = 4096 * 4097 / 2 = 8,390,656
    # flops = 2 * batch * heads * pairs * (qk + v) = 2 * 32 * 8,390,656 * 256 = 137,472,507,904
    assert c.flops == 137_472_507_904
    # bytes = L * (q: 32*128 + k: 32*128 + v: 32*128) * 2 + o: L * 32*128 * 2
    #       = 4096 * 12,288 * 2 + 4096 * 4096 * 2 = 100,663,296 + 33,554,432 = 134,217,728
    assert c.bytes == 134_217_728
    assert c.bound == "compute"
    full = compute.attention_prefill_cost(DEV, batch=1, q_heads=32, kv_heads=32, qk_head_dim=128, v_head_dim=128,
                                          seq_tokens=4096, causal=False)
    assert full.flops == 2 * 32 * 4096 * 4096 * 256  # L^2 pairs
    assert full.seconds > c.seconds


def test_attention_decode_mla_counts() -> None:
    # DeepSeek MLA, weight-absorbed: MQA over a 576-wide latent (512 + 64 rope), values 512 wide, bf16 cache.
    c = compute.attention_decode_cost(DEV, batch=64, q_heads=128, kv_heads=1, qk_head_dim=576, v_head_dim=512,
                                      context_tokens=4096, kv_bytes_per_token=576 * 2)
    # KV bytes = batch * context * 1152 = 64 * 4096 * 1152 = 301,989,888 (one latent serves K and V)
    assert c.detail["kv_bytes"] == 301_989_888
    # + q in and o out, bf16: 64 * 128 * (576 + 512) * 2 = 17,825,792
    assert c.bytes == 301_989_888 + 17_825_792
    # flops = 2 * batch * q_heads * context * (qk + v) = 2 * 64 * 128 * 4096 * 1088 = 73,014,444,032
    assert c.flops == 73_014_444_032


def test_attention_decode_gqa_default_kv_bytes() -> None:
    c = compute.attention_decode_cost(DEV, batch=32, q_heads=32, kv_heads=8, qk_head_dim=128, v_head_dim=128,
                                      context_tokens=4096)
    # per token: 8 heads * (128 + 128) * 2 B = 4096 B; * 32 seqs * 4096 tokens = 536,870,912
    assert c.detail["kv_bytes"] == 536_870_912
    fp8 = compute.attention_decode_cost(DEV, batch=32, q_heads=32, kv_heads=8, qk_head_dim=128, v_head_dim=128,
                                        context_tokens=4096, kv_precision=Precision.FP8)
    assert fp8.detail["kv_bytes"] == 536_870_912 / 2
    assert fp8.seconds < c.seconds


def test_memory_bound_formula() -> None:
    c = compute.memory_bound_cost(DEV, bytes=4.8e9)
    # 4.8 GB at 0.578 * 4.8 TB/s = 2.774 TB/s -> 1730.1 us, + 3.7 us launch
    assert c.seconds == pytest.approx(eff.KERNEL_LAUNCH_S + 4.8e9 / (eff.HBM_COPY_FRACTION * 4.8e12))
    assert c.seconds == pytest.approx(1733.8e-6, rel=1e-3)
    assert c.bound == "memory"
    assert compute.memory_bound_cost(DEV, bytes=1024).bound == "overhead"


# --- structure ----------------------------------------------------------------------------------------------------


def test_grouped_gemm_skips_empty_experts() -> None:
    one = compute.gemm_cost(DEV, m=24, k=7168, n=4096)
    grouped = compute.grouped_gemm_cost(DEV, tokens_per_group=[24, 0, 0, 0], k=7168, n=4096)
    assert grouped == one  # idle experts: no tiles, weights not read
    assert compute.grouped_gemm_cost(DEV, tokens_per_group=[0, 0], k=7168, n=4096).seconds == 0.0


def test_grouped_gemm_pays_for_spread_and_skew() -> None:
    # 256 tokens on 8 experts: reading 8 weight matrices costs more than reading one.
    spread = compute.grouped_gemm_cost(DEV, tokens_per_group=[32] * 8, k=7168, n=4096)
    packed = compute.grouped_gemm_cost(DEV, tokens_per_group=[256] + [0] * 7, k=7168, n=4096)
    assert spread.seconds > packed.seconds
    # Prefill-sized batches are compute bound: a hot expert adds tiles that the balanced case does not have.
    balanced = compute.grouped_gemm_cost(DEV, tokens_per_group=[1024] * 8, k=7168, n=4096)
    skewed = compute.grouped_gemm_cost(DEV, tokens_per_group=[1000] * 7 + [1192], k=7168, n=4096)
    assert skewed.flops == balanced.flops
    assert skewed.seconds > balanced.seconds
    # Tile padding: 8 experts with 1 token each run whole tiles.
    assert compute.grouped_gemm_cost(DEV, tokens_per_group=[1] * 8, k=7168, n=4096).detail["tile_efficiency"] < 0.02


def test_invalid_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        compute.gemm_cost(DEV, m=0, k=1, n=1)
    with pytest.raises(ValueError):
        compute.grouped_gemm_cost(DEV, tokens_per_group=[3, -1], k=8, n=8)
    with pytest.raises(ValueError):
        compute.grouped_gemm_cost(DEV, tokens_per_group=[], k=8, n=8)
    with pytest.raises(ValueError):
        compute.memory_bound_cost(DEV, bytes=-1)


def test_kernel_cost_is_frozen_and_complete() -> None:
    c = compute.gemm_cost(DEV, m=1, k=4096, n=4096)
    for key in ("compute_s", "memory_s", "overhead_s", "waves", "wave_efficiency", "tile_efficiency"):
        assert key in c.detail
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seconds = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.detail["compute_s"] = 0.0  # type: ignore[index]


# --- Hypothesis properties ----------------------------------------------------------------------------------------


def _faster(device: DeviceSpec, *, bw: float, flop: float) -> DeviceSpec:
    return dataclasses.replace(device, hbm_bytes_per_s=device.hbm_bytes_per_s * bw,
                               peak_flop_per_s={p: v * flop for p, v in device.peak_flop_per_s.items()})


def _all_kernels(device: DeviceSpec, m: int, k: int, n: int, e: int, ctx: int) -> list[float]:
    return [
        compute.gemm_cost(device, m=m, k=k, n=n).seconds,
        compute.gemm_cost(device, m=m, k=k, n=n, batch=e, precision=Precision.FP8).seconds,
        compute.grouped_gemm_cost(device, tokens_per_group=[m, 0, 3 * m, 1] * e, k=k, n=n).seconds,
        compute.attention_prefill_cost(device, batch=1, q_heads=8 * e, kv_heads=e, qk_head_dim=128,
                                       v_head_dim=128, seq_tokens=ctx).seconds,
        compute.attention_decode_cost(device, batch=m, q_heads=8 * e, kv_heads=e, qk_head_dim=128,
                                      v_head_dim=128, context_tokens=ctx).seconds,
        compute.memory_bound_cost(device, bytes=m * k * 2.0).seconds,
    ]


SHAPES = dict(m=st.integers(1, 20_000), k=st.sampled_from([512, 2048, 4096, 7168, 18432]),
              n=st.integers(64, 40_000), e=st.integers(1, 16), ctx=st.integers(1, 32_768))


@settings(max_examples=150, deadline=None)
@given(bw=st.floats(1.0, 8.0), flop=st.floats(1.0, 8.0), **SHAPES)
def test_more_bandwidth_or_flops_is_never_slower(bw: float, flop: float, m: int, k: int, n: int, e: int,
                                                 ctx: int) -> None:
    base = _all_kernels(DEV, m, k, n, e, ctx)
    for faster in (_faster(DEV, bw=bw, flop=1.0), _faster(DEV, bw=1.0, flop=flop), _faster(DEV, bw=bw, flop=flop)):
        for slow, fast in zip(base, _all_kernels(faster, m, k, n, e, ctx), strict=True):
            assert fast <= slow * (1 + 1e-12)


@settings(max_examples=150, deadline=None)
@given(t=st.integers(1, 4096), g=st.integers(1, 64), k=st.sampled_from([256, 2048, 7168]),
       n=st.integers(16, 8192), fp8=st.booleans())
def test_grouped_gemm_with_equal_counts_is_bmm(t: int, g: int, k: int, n: int, fp8: bool) -> None:
    p = Precision.FP8 if fp8 else Precision.BF16
    assert (compute.grouped_gemm_cost(DEV, tokens_per_group=[t] * g, k=k, n=n, precision=p)
            == compute.gemm_cost(DEV, m=t, k=k, n=n, batch=g, precision=p))


@settings(max_examples=150, deadline=None)
@given(m=st.integers(1, 20_000), k=st.sampled_from([512, 2048, 4096, 7168]), n=st.integers(64, 40_000),
       batch=st.integers(1, 16))
def test_gemm_time_is_positive_and_bounded_below_by_roofline(m: int, k: int, n: int, batch: int) -> None:
    c = compute.gemm_cost(DEV, m=m, k=k, n=n, batch=batch)
    assert c.seconds >= eff.KERNEL_LAUNCH_S
    assert c.seconds >= c.flops / 989.4e12  # never faster than the datasheet peak
    assert c.seconds >= c.bytes / 4.8e12  # never faster than the datasheet bandwidth
