"""Kernel times on one device: dense and grouped GEMMs, attention prefill and decode, memory-bound ops.

The model is a roofline refined by the mechanisms that decide real kernel times on GPUs, each taken from how the
kernels are built, with the constants of :mod:`cost_models.efficiency` (calibrated on measured H200 kernels,
``planner/catalog/calibration/h200_kernels.csv``):

* tiles: a GEMM is cut into output tiles (:data:`~cost_models.efficiency.GEMM_TILES`); a tile computes all its
  rows even when M fills only part of it (tile quantization);
* waves: tiles run ``compute_units x ctas_per_cu`` at a time; a ragged last wave costs part of a full one
  (wave quantization; NVIDIA "Matrix Multiplication Background" user guide; stream-K, Osama et al. 2023);
* split-K: with fewer tiles than compute units, K is split so more units stream weights, at the price of
  fp32 partials and a reduction (cuBLAS ``splitKreduce`` kernels);
* per-unit streaming limit: one compute unit pulls at most ``SM_STREAM_SHARE`` times its fair share of HBM
  bandwidth, so a kernel with few busy units is memory-latency bound (Little's law);
* per wave, compute and memory overlap imperfectly: a soft maximum of the two;
* fixed costs per kernel, per tile and wave, per split-K reduction;
* power-limited clocks: compute beyond ``BOOST_WINDOW_S`` runs at ``SUSTAINED_CLOCK_RATIO`` of the rate (or the
  device's own ``sustained_clock_ratio`` where its catalog entry measures one).

The library is assumed to pick the fastest tile shape and split for each shape (the model is optimistic where
cuBLAS's heuristic picks a slow kernel).  Attention follows FlashAttention-2's work partition (Dao 2023):
one work unit per 128-query block and head, causal blocks skip masked key blocks; decode follows FlashDecoding
(split-KV over the cached tokens, then a combine).  All functions are pure; times are seconds.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from cost_models import efficiency as eff
from cost_models.kinds import Bound
from cost_models.specs import DeviceSpec, Precision

OUTPUT_BYTES_PER_ELEMENT = 2.0
"""GEMM and attention outputs are bf16."""
PARTIAL_BYTES_PER_ELEMENT = 4.0
"""Split-K / split-KV partial sums are fp32."""

FP8_ATTENTION_EFFICIENCY_RATIO = (1200 / 1978.9) / (740 / 989.4)
"""Derived, not fitted: FlashAttention-3's FP8 forward utilisation over its BF16 one on H100 SXM (Shah et al. 2024,
arXiv 2407.08608, abstract: "FP16 reaching up to 740 TFLOPs/s (75% utilization), and with FP8 reaching close to
1.2 PFLOPs/s"): 0.606 / 0.748 = 0.81.  An FP8 attention kernel runs at ``ATTENTION_PEAK_FRACTION x`` this of the
FP8 peak (twice the BF16 peak): the softmax on the special-function units does not get faster with the operands."""


@dataclass(frozen=True, kw_only=True)
class KernelCost:
    """Time of one kernel and what bound it."""

    seconds: float
    """Predicted kernel time, seconds."""
    flops: float
    """Useful FLOPs (2*m*n*k for a GEMM; padding not counted)."""
    bytes: float
    """Minimum HBM bytes: each input read once, each output written once."""
    bound: Bound
    """Which term dominated: ``compute``, ``memory`` or ``overhead``."""
    detail: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Breakdown: compute_s, memory_s, overhead_s, waves, wave_efficiency, tile_efficiency, ... (kernel-specific)."""


class _Launch(NamedTuple):
    seconds: float
    compute_s: float
    memory_s: float
    overhead_s: float
    waves: int
    wave_efficiency: float


def sustained_clock_ratio(device: DeviceSpec) -> float:
    """The device's sustained-over-boost matrix rate; the Hopper-fitted ``SUSTAINED_CLOCK_RATIO`` unless its
    catalog entry gives one."""
    return device.sustained_clock_ratio or eff.SUSTAINED_CLOCK_RATIO


def _boosted(compute_s: float, ratio: float) -> float:
    """Compute time after the power limiter: full clock for BOOST_WINDOW_S, then ``ratio`` of it."""
    window = eff.BOOST_WINDOW_S
    if compute_s <= window:
        return compute_s
    return window + (compute_s - window) / ratio


def _soft_max(a: float, b: float) -> float:
    """(a^p + b^p)^(1/p) with p = OVERLAP_SHARPNESS: max(a, b) when one dominates, 2^(1/p) x a when equal."""
    hi, lo = max(a, b), min(a, b)
    if lo <= 0.0:
        return hi
    p = eff.OVERLAP_SHARPNESS
    return hi * (1.0 + (lo / hi) ** p) ** (1.0 / p)


def _stream_bytes_per_s(device: DeviceSpec) -> float:
    """Achievable read bandwidth with every compute unit streaming."""
    return eff.HBM_READ_FRACTION * device.hbm_bytes_per_s


def _launch(device: DeviceSpec, *, ctas: int, cta_compute_s: float, cta_bytes: float, ctas_per_cu: int = 1,
            spill_bytes: float = 0.0, combine_s: float = 0.0) -> _Launch:
    """Time of ``ctas`` equal work units, each ``cta_compute_s`` of math and ``cta_bytes`` of HBM traffic.

    Full waves fill all ``compute_units x ctas_per_cu`` slots; the last, ragged wave streams at the rate its busy
    units can pull (``SM_STREAM_SHARE``) and exposes ``TAIL_EXPOSED_FRACTION`` of a full wave's compute plus the
    rest in proportion to its fill.  ``spill_bytes`` (split partials that do not fit in L2) stream at the end;
    ``combine_s`` is the fixed cost of reducing split partials.
    """
    return _launch_on(device.compute_units, _stream_bytes_per_s(device), ctas, cta_compute_s, cta_bytes,
                      ctas_per_cu, spill_bytes, combine_s, sustained_clock_ratio(device))


def _launch_on(units: int, stream: float, ctas: int, cta_compute_s: float, cta_bytes: float, ctas_per_cu: int,
               spill_bytes: float, combine_s: float, clock_ratio: float) -> _Launch:
    """:func:`_launch` on ``units`` compute units streaming ``stream`` bytes/s in all (positional, and without
    per-wave containers: a plan search calls it a few times per GEMM shape; the sums keep the order of a sum
    over the (full, tail) waves)."""
    unit_cap = eff.SM_STREAM_SHARE * stream / units
    slots = units * ctas_per_cu
    full, rem = divmod(ctas, slots)
    compute = memory = 0  # sums over the waves of count x compute_s and count x memory_s
    if full:
        c_full, m_full = ctas_per_cu * cta_compute_s, slots * cta_bytes / min(stream, units * unit_cap)
        compute, memory = compute + full * c_full, memory + full * m_full
    if rem:
        busy = min(rem, units)
        c = math.ceil(rem / units) * cta_compute_s
        tail = eff.TAIL_EXPOSED_FRACTION
        c_tail, m_tail = tail * c + (1.0 - tail) * c * rem / slots, rem * cta_bytes / min(stream, busy * unit_cap)
        compute, memory = compute + c_tail, memory + m_tail
    scale = _boosted(compute, clock_ratio) / compute if compute > 0.0 else 1.0
    body = 0
    if full:
        body += full * (eff.TILE_OVERHEAD_S + _soft_max(c_full * scale, m_full))
    if rem:
        body += eff.TILE_OVERHEAD_S + _soft_max(c_tail * scale, m_tail)
    n_waves = full + (1 if rem else 0)
    fixed = eff.KERNEL_LAUNCH_S + combine_s
    spill_s = spill_bytes / stream
    return _Launch(fixed + body + spill_s, compute * scale, memory + spill_s, fixed + n_waves * eff.TILE_OVERHEAD_S,
                   n_waves, ctas / (n_waves * slots))


def _launch_seconds(units: int, stream: float, ctas: int, cta_compute_s: float, cta_bytes: float, ctas_per_cu: int,
                    spill_bytes: float, combine_s: float, clock_ratio: float) -> float:
    """``_launch_on(...).seconds`` alone, for the tile / split-K choice (it compares only the times): the same
    float operations in the same order, without the other fields and the nested calls (a plan search evaluates
    every tile shape of tens of thousands of GEMM shapes; tests/test_compute_speedups.py checks equality)."""
    unit_cap = eff.SM_STREAM_SHARE * stream / units
    slots = units * ctas_per_cu
    full, rem = divmod(ctas, slots)
    compute = 0.0
    if full:
        c_full, m_full = ctas_per_cu * cta_compute_s, slots * cta_bytes / min(stream, units * unit_cap)
        compute = full * c_full
    if rem:
        c = math.ceil(rem / units) * cta_compute_s
        tail = eff.TAIL_EXPOSED_FRACTION
        c_tail = tail * c + (1.0 - tail) * c * rem / slots
        m_tail = rem * cta_bytes / min(stream, min(rem, units) * unit_cap)
        compute = compute + c_tail
    scale = _boosted(compute, clock_ratio) / compute if compute > 0.0 else 1.0
    p = eff.OVERLAP_SHARPNESS
    body = 0.0
    if full:
        a, b = c_full * scale, m_full
        hi, lo = (a, b) if a >= b else (b, a)
        body = full * (eff.TILE_OVERHEAD_S + (hi if lo <= 0.0 else hi * (1.0 + (lo / hi) ** p) ** (1.0 / p)))
    if rem:
        a, b = c_tail * scale, m_tail
        hi, lo = (a, b) if a >= b else (b, a)
        body += eff.TILE_OVERHEAD_S + (hi if lo <= 0.0 else hi * (1.0 + (lo / hi) ** p) ** (1.0 / p))
    return eff.KERNEL_LAUNCH_S + combine_s + body + spill_bytes / stream


def _bound(compute_s: float, memory_s: float, overhead_s: float) -> Bound:
    """The largest term (the first of equals, in the order compute, memory, overhead)."""
    bound, largest = Bound.COMPUTE, compute_s
    if memory_s > largest:
        bound, largest = Bound.MEMORY, memory_s
    return Bound.OVERHEAD if overhead_s > largest else bound


def _matmul_unit_flop_per_s(device: DeviceSpec, precision: Precision) -> float:
    """Main-loop FLOP/s of one compute unit: peak x the operand width's efficiency / units."""
    narrow = precision.bytes_per_element < 2 and device.supports(precision)
    fraction = eff.MATMUL_PEAK_FRACTION_NARROW if narrow else eff.MATMUL_PEAK_FRACTION_WIDE
    return device.peak_for(precision) * fraction / device.compute_units


def attention_unit_flop_per_s(device: DeviceSpec, precision: Precision) -> float:
    """Inner-block FLOP/s of one compute unit for attention math in ``precision``: FP8 math runs at the FP8
    peak x ``ATTENTION_PEAK_FRACTION x FP8_ATTENTION_EFFICIENCY_RATIO`` where the device has FP8 tensor cores;
    anything else (BF16, or FP8 on a device without FP8 units) at the BF16 peak x ``ATTENTION_PEAK_FRACTION``."""
    if precision.bytes_per_element < 2 and device.supports(precision):
        return (device.peak_for(precision) * eff.ATTENTION_PEAK_FRACTION * FP8_ATTENTION_EFFICIENCY_RATIO
                / device.compute_units)
    return device.peak_for(Precision.BF16) * eff.ATTENTION_PEAK_FRACTION / device.compute_units


def _split_spill_bytes(device: DeviceSpec, partial_bytes: float) -> float:
    """fp32 partials are written and read back; only what overflows L2 reaches HBM."""
    return 2.0 * max(0.0, partial_bytes - device.l2_bytes)


def _group_key(groups: Counter[int]) -> tuple[tuple[int, int], ...]:
    """``groups`` (m_g -> number of such groups) as the sorted ``(m_g, count)`` pairs with both > 0."""
    return tuple(sorted((m, g) for m, g in groups.items() if m > 0 and g > 0))


def _grouped_matmul(device: DeviceSpec, key: tuple[tuple[int, int], ...], *, k: int, n: int, precision: Precision,
                    weight_bytes_per_element: float | None) -> KernelCost:
    """One kernel over independent [m_g, k] x [k, n] products; ``key`` is :func:`_group_key` of the groups."""
    wbpe = precision.bytes_per_element if weight_bytes_per_element is None else float(weight_bytes_per_element)
    if wbpe <= 0:
        raise ValueError(f"weight_bytes_per_element must be > 0, got {wbpe}")
    return _grouped_matmul_cached(device, key, k, n, precision, wbpe)


@functools.lru_cache(maxsize=1 << 17)
def _grouped_matmul_cached(device: DeviceSpec, groups: tuple[tuple[int, int], ...], k: int, n: int,
                           precision: Precision, weight_bpe: float) -> KernelCost:
    """Memoised body of :func:`_grouped_matmul` (pure: same shapes on the same device give the same cost; a plan
    search asks for the same GEMM shapes across many layouts)."""
    bpe = precision.bytes_per_element
    tokens = sum(m * g for m, g in groups)
    weights = sum(g for _, g in groups)
    flops = 2.0 * tokens * k * n
    # Inputs once (activations at the math precision, each used weight matrix once as stored), bf16 output once.
    min_bytes = tokens * k * bpe + weights * k * n * weight_bpe + tokens * n * OUTPUT_BYTES_PER_ELEMENT
    if tokens == 0:
        return KernelCost(seconds=0.0, flops=0.0, bytes=0.0, bound=Bound.OVERHEAD,
                          detail=MappingProxyType({"compute_s": 0.0, "memory_s": 0.0, "overhead_s": 0.0}))
    unit_rate = _matmul_unit_flop_per_s(device, precision)
    units, stream = device.compute_units, _stream_bytes_per_s(device)
    clock_ratio = sustained_clock_ratio(device)
    slice_splits = int(k * bpe // eff.SPLIT_K_MIN_SLICE_BYTES)
    best: tuple[float, eff.TileShape, int, int, float, float] | None = None
    for tile in eff.GEMM_TILES:
        col_tiles = math.ceil(n / tile.cols)
        tiles = sum(g * math.ceil(m / tile.rows) for m, g in groups) * col_tiles
        max_split = max(1, min(units // tiles, slice_splits))
        for split in (1, max_split) if max_split > 1 else (1,):
            ctas = tiles * split
            # split > 1: fp32 partials and a reduction; split 1 has none (_split_spill_bytes(device, 0.0) == 0.0)
            spill, combine = ((_split_spill_bytes(device, tokens * n * PARTIAL_BYTES_PER_ELEMENT * split),
                               eff.SPLIT_K_REDUCE_S) if split > 1 else (0.0, 0.0))
            seconds = _launch_seconds(units, stream, ctas, 2.0 * tile.rows * tile.cols * (k / split) / unit_rate,
                                      min_bytes / ctas, tile.ctas_per_cu, spill, combine, clock_ratio)
            if best is None or seconds < best[0]:
                best = (seconds, tile, split, tiles, spill, combine)
    assert best is not None
    _, tile, split, tiles, spill, combine = best
    ctas = tiles * split  # the winner's full launch (every field), the same arithmetic as its seconds above
    run = _launch_on(units, stream, ctas, 2.0 * tile.rows * tile.cols * (k / split) / unit_rate, min_bytes / ctas,
                     tile.ctas_per_cu, spill, combine, clock_ratio)
    return KernelCost(
        seconds=run.seconds, flops=flops, bytes=min_bytes, bound=_bound(run.compute_s, run.memory_s, run.overhead_s),
        detail=MappingProxyType({
            "compute_s": run.compute_s, "memory_s": run.memory_s, "overhead_s": run.overhead_s,
            "waves": float(run.waves), "wave_efficiency": run.wave_efficiency,
            "tile_efficiency": flops / (2.0 * tiles * tile.rows * tile.cols * k),
            "tile_m": float(tile.rows), "tile_n": float(tile.cols), "split_k": float(split),
            "ctas": float(tiles * split), "groups": float(weights),
        }))


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")


def gemm_cost(device: DeviceSpec, *, m: int, k: int, n: int, batch: int = 1,
              precision: Precision = Precision.BF16, weight_bytes_per_element: float | None = None) -> KernelCost:
    """``[batch, m, k] x [batch, k, n] -> [batch, m, n]`` bf16; ``batch`` independent weight matrices (bmm).

    ``precision`` is the math (tensor-core) precision and the activations' storage (fp8 reads 1 byte per element,
    writes bf16); on a device without units for it the BF16 peak is used (:meth:`DeviceSpec.peak_for`).
    ``weight_bytes_per_element`` is the stored weight size with its scales (``WeightFormat.bytes_per_element``;
    default: ``precision``'s): a weight-only kernel (FP4 weights de-quantised to BF16 on Hopper) passes
    ``precision=BF16`` with the FP4 bytes.
    Source: tile/wave/split-K model of this module; constants fitted on the ``gemm_bf16``, ``gemm_fp8`` and
    ``bmm_bf16`` rows of ``h200_kernels.csv`` (per-row errors: tests/test_compute_calibration.py).
    """
    _check_positive(m=m, k=k, n=n, batch=batch)
    return _grouped_matmul(device, ((m, batch),), k=k, n=n, precision=precision,
                           weight_bytes_per_element=weight_bytes_per_element)


def grouped_gemm_cost(device: DeviceSpec, *, tokens_per_group: Sequence[int], k: int, n: int,
                      precision: Precision = Precision.BF16,
                      weight_bytes_per_element: float | None = None) -> KernelCost:
    """One grouped GEMM over the local experts: group g multiplies ``[tokens_per_group[g], k] x [k, n]``.

    Each group is tiled separately (``ceil(m_g / tile_m) x ceil(n / tile_n)`` tiles), so an expert with 3 tokens
    costs a whole tile row and the most loaded expert adds tiles; all tiles share the waves of one launch.
    Groups with 0 tokens cost nothing and their weights are not read.  Equals ``gemm_cost(batch=G, m=t)`` when
    every count is ``t``.  Returns zero time when no group has a token (no kernel is launched).
    ``precision`` and ``weight_bytes_per_element`` as in :func:`gemm_cost`.
    """
    _check_positive(k=k, n=n)
    if not tokens_per_group:
        raise ValueError("tokens_per_group must name at least one group")
    if min(tokens_per_group) < 0:
        raise ValueError(f"tokens_per_group must be >= 0, got {min(tokens_per_group)}")
    return _grouped_matmul(device, _group_key(Counter(tokens_per_group)), k=k, n=n, precision=precision,
                           weight_bytes_per_element=weight_bytes_per_element)


def attention_prefill_cost(device: DeviceSpec, *, batch: int, q_heads: int, kv_heads: int, qk_head_dim: int,
                           v_head_dim: int, seq_tokens: int, causal: bool = True,
                           precision: Precision = Precision.BF16) -> KernelCost:
    """FlashAttention-style prefill of ``batch`` sequences of ``seq_tokens`` tokens each.

    Work units are (sequence, query head, 128-query block); a causal unit visits only the key blocks at or
    before its diagonal, so units differ in length and the longest one sticks out of the last wave.  Useful
    FLOPs: ``2 x batch x q_heads x pairs x (qk_head_dim + v_head_dim)`` with ``pairs = L(L+1)/2`` (causal) or
    ``L^2``.  Constants fitted on the ``attn_prefill_causal`` rows of ``h200_kernels.csv``.  ``precision`` is
    the Q/K/V storage and the math (FP8: FlashAttention-3 FP8, rate from :func:`attention_unit_flop_per_s`).
    """
    _check_positive(batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=qk_head_dim,
                    v_head_dim=v_head_dim, seq_tokens=seq_tokens)
    length, width = seq_tokens, qk_head_dim + v_head_dim
    pairs = length * (length + 1) / 2 if causal else float(length * length)
    flops = 2.0 * batch * q_heads * pairs * width
    bpe = precision.bytes_per_element
    min_bytes = (batch * length * (q_heads * qk_head_dim + kv_heads * width) * bpe
                 + batch * length * q_heads * v_head_dim * OUTPUT_BYTES_PER_ELEMENT)
    units = device.compute_units
    blk = eff.ATTENTION_BLOCK_TOKENS
    q_blocks = math.ceil(length / blk)
    kv_blocks_per_head = q_blocks * (q_blocks + 1) / 2 if causal else float(q_blocks * q_blocks)
    block_s = 2.0 * blk * blk * width / attention_unit_flop_per_s(device, precision)
    work_units = batch * q_heads * q_blocks
    total_s = work_units * eff.ATTENTION_CTA_OVERHEAD_S + batch * q_heads * kv_blocks_per_head * block_s
    longest_s = eff.ATTENTION_CTA_OVERHEAD_S + q_blocks * block_s
    ratio = sustained_clock_ratio(device)
    compute_s = _boosted(max(total_s / units + eff.TAIL_EXPOSED_FRACTION * longest_s, longest_s), ratio)
    memory_s = min_bytes / _stream_bytes_per_s(device)
    seconds = eff.KERNEL_LAUNCH_S + _soft_max(compute_s, memory_s)
    overhead_s = eff.KERNEL_LAUNCH_S + work_units * eff.ATTENTION_CTA_OVERHEAD_S / units
    math_s = _boosted(batch * q_heads * kv_blocks_per_head * block_s / units, ratio)
    return KernelCost(
        seconds=seconds, flops=flops, bytes=min_bytes, bound=_bound(math_s, memory_s, overhead_s),
        detail=MappingProxyType({
            "compute_s": compute_s, "memory_s": memory_s, "overhead_s": overhead_s,
            "work_units": float(work_units), "waves": float(math.ceil(work_units / units)),
            "tile_efficiency": pairs / (kv_blocks_per_head * blk * blk),
        }))


def attention_decode_cost(device: DeviceSpec, *, batch: int, q_heads: int, kv_heads: int, qk_head_dim: int,
                          v_head_dim: int, context_tokens: int, kv_precision: Precision = Precision.BF16,
                          kv_bytes_per_token: float | None = None,
                          math_precision: Precision = Precision.BF16) -> KernelCost:
    """One query token per sequence against a ``context_tokens`` KV cache (FlashDecoding-style).

    A work unit is one (sequence, KV head) with its whole query group, padded to ``MMA_MIN_ROWS`` rows; with
    fewer units than compute units the cached tokens are split (split-KV) and a combine step follows.
    ``kv_bytes_per_token`` overrides the per-sequence, per-token cache bytes (default
    ``kv_heads x (qk_head_dim + v_head_dim) x kv bytes``); DeepSeek MLA in the weight-absorbed form is MQA with
    ``kv_heads=1, qk_head_dim=576, v_head_dim=512`` and one shared 576-wide latent: pass ``576 x kv bytes``.
    ``math_precision`` is the QK^T / PV math: BF16 (an FP8 cache is de-quantised in the kernel) or FP8 (FlashMLA
    FP8, FlashAttention-3 FP8), timed by :func:`attention_unit_flop_per_s` (FP8 falls back to the BF16 rate on a
    device without FP8 units).  Constants fitted on the ``attn_decode_gqa`` rows of ``h200_kernels.csv``.
    """
    _check_positive(batch=batch, q_heads=q_heads, kv_heads=kv_heads, qk_head_dim=qk_head_dim,
                    v_head_dim=v_head_dim, context_tokens=context_tokens)
    width = qk_head_dim + v_head_dim
    per_token = (kv_heads * width * kv_precision.bytes_per_element if kv_bytes_per_token is None
                 else float(kv_bytes_per_token))
    if per_token <= 0:
        raise ValueError(f"kv_bytes_per_token must be > 0, got {per_token}")
    kv_bytes = batch * context_tokens * per_token
    min_bytes = kv_bytes + batch * q_heads * width * OUTPUT_BYTES_PER_ELEMENT  # + q in, o out
    flops = 2.0 * batch * q_heads * context_tokens * width
    group_rows = math.ceil(math.ceil(q_heads / kv_heads) / eff.MMA_MIN_ROWS) * eff.MMA_MIN_ROWS
    padded_flops = 2.0 * batch * kv_heads * group_rows * context_tokens * width
    unit_rate = attention_unit_flop_per_s(device, math_precision)
    work_units = batch * kv_heads
    fill = max(1, min(device.compute_units // work_units, math.ceil(context_tokens / eff.DECODE_SPLIT_MIN_TOKENS)))
    best: tuple[_Launch, int] | None = None
    for split in sorted({1, fill}):
        ctas = work_units * split
        partials = batch * q_heads * v_head_dim * PARTIAL_BYTES_PER_ELEMENT * split if split > 1 else 0.0
        run = _launch(device, ctas=ctas, cta_compute_s=padded_flops / ctas / unit_rate, cta_bytes=min_bytes / ctas,
                      spill_bytes=_split_spill_bytes(device, partials),
                      combine_s=eff.KERNEL_LAUNCH_S if split > 1 else 0.0)  # a separate combine kernel
        if best is None or run.seconds < best[0].seconds:
            best = (run, split)
    assert best is not None
    run, split = best
    return KernelCost(
        seconds=run.seconds, flops=flops, bytes=min_bytes, bound=_bound(run.compute_s, run.memory_s, run.overhead_s),
        detail=MappingProxyType({
            "compute_s": run.compute_s, "memory_s": run.memory_s, "overhead_s": run.overhead_s,
            "waves": float(run.waves), "wave_efficiency": run.wave_efficiency, "split_kv": float(split),
            "tile_efficiency": flops / padded_flops, "kv_bytes": kv_bytes,
        }))


_HELD_DEVICES: dict[int, DeviceSpec] = {}
"""Every device a memo below was keyed by, held so that its ``id`` stays its own."""


def device_key(device: DeviceSpec) -> int:
    """A memo key for ``device`` that costs no hashing of its fields: its ``id``, valid because the device is held
    in :data:`_HELD_DEVICES` (an id is only reused after its object is freed). The few devices a process costs
    stay held."""
    key = id(device)
    if _HELD_DEVICES.get(key) is not device:
        _HELD_DEVICES[key] = device
    return key


def memory_bound_cost(device: DeviceSpec, *, bytes: float) -> KernelCost:
    """:func:`_memory_bound_cost`, memoised (pure; a plan search asks for the same norm and copy sizes across
    many layouts)."""
    return _memory_bound_cost_cached(device_key(device), bytes)


@functools.lru_cache(maxsize=1 << 16)
def _memory_bound_cost_cached(device_id: int, bytes: float) -> KernelCost:
    return _memory_bound_cost(_HELD_DEVICES[device_id], bytes)


def _memory_bound_cost(device: DeviceSpec, bytes: float) -> KernelCost:
    """An element-wise / norm / copy kernel moving ``bytes`` (reads + writes) at the read+write stream rate.

    ``seconds = KERNEL_LAUNCH_S + bytes / (HBM_COPY_FRACTION x hbm_bytes_per_s)``; the fraction is measured on
    the ``copy`` row of ``h200_kernels.csv`` (2 x 2 GiB in 1551 us on H200).
    """
    if bytes < 0:
        raise ValueError(f"bytes must be >= 0, got {bytes}")
    memory_s = bytes / (eff.HBM_COPY_FRACTION * device.hbm_bytes_per_s)
    return KernelCost(
        seconds=eff.KERNEL_LAUNCH_S + memory_s, flops=0.0, bytes=float(bytes),
        bound=Bound.MEMORY if memory_s >= eff.KERNEL_LAUNCH_S else Bound.OVERHEAD,
        detail=MappingProxyType({"compute_s": 0.0, "memory_s": memory_s, "overhead_s": eff.KERNEL_LAUNCH_S}))
