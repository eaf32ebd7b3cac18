"""cost_models.memory_pool and the static pool in cost_models.memory, hand-derived.

SGLang's KV pool (model_runner.profile_max_num_token): (free after init - weights) - free after init x (1 - f)
= f x device - weights bytes; everything else the engine allocates lives in the (1 - f) share.
The measured check (a stated engine KV pool) is in tests/test_anchors.py.
"""

from __future__ import annotations

import pytest

from cost_models import memory, memory_pool
from cost_models.parallel import ParallelDims
from cost_models.specs import Precision
from planner.catalog.models import get_model

GIB = 2**30
BF16, FP8 = Precision.BF16, Precision.FP8
V3 = get_model("deepseek-v3")


def test_pool_is_the_fraction_of_the_device_less_the_weights() -> None:
    # 0.8 x 100 GiB - 30 GiB = 50 GiB of KV
    assert memory_pool.static_pool_kv_bytes(device_bytes=100 * GIB, mem_fraction_static=0.8,
                                            weight_bytes=30 * GIB) == pytest.approx(50 * GIB)
    # weights above the pool: no KV at all (never negative)
    assert memory_pool.static_pool_kv_bytes(device_bytes=100 * GIB, mem_fraction_static=0.5,
                                            weight_bytes=60 * GIB) == 0.0
    # 50 GiB / 70,272 B per DeepSeek-V3 BF16 token = 53,687,091,200 / 70,272 = 763,989.8 -> 763,989 tokens
    assert memory_pool.static_pool_kv_tokens(device_bytes=100 * GIB, mem_fraction_static=0.8,
                                             weight_bytes=30 * GIB, kv_bytes_per_token=70_272) == 763_989


def test_outside_share_books_what_activations_and_buffers_leave() -> None:
    # (1 - 0.8) x 100 GiB = 20 GiB outside the pool; 1 GiB of activations and 2 GiB of EP buffers -> 17 GiB
    assert memory_pool.outside_pool_reserve_bytes(device_bytes=100 * GIB, mem_fraction_static=0.8,
                                                  activation_bytes=1 * GIB,
                                                  comm_buffer_bytes=2 * GIB) == pytest.approx(17 * GIB)
    # activations beyond the share: nothing more is booked
    assert memory_pool.outside_pool_reserve_bytes(device_bytes=100 * GIB, mem_fraction_static=0.95,
                                                  activation_bytes=4 * GIB, comm_buffer_bytes=2 * GIB) == 0.0


_KW = dict(capacity_bytes=141 * GIB, weight_precision=FP8, kv_precision=BF16, act_precision=BF16,
           dispatch_precision=FP8, context_tokens=5000)
_DIMS = ParallelDims(attn_dp=16, moe_ep=16, redundant_experts=16)


def test_static_pool_caps_the_kv_at_the_fraction_less_the_weights() -> None:
    s = memory.max_sequences_per_device(V3, _DIMS, **_KW, tokens_per_sequence_step=1.0, static_fraction=0.8)
    full = memory.memory_breakdown(V3, _DIMS, **_KW, sequences_per_device=s, tokens_per_device=s,
                                   static_fraction=0.8)
    # the pool is full: KV = 0.8 x 141 GiB - weights, and the device is exactly used
    assert full.kv_cache_bytes == pytest.approx(0.8 * 141 * GIB - full.weight_bytes, rel=1e-9)
    assert full.free_bytes == pytest.approx(0.0, abs=1.0)
    # the booked reserve is the 20 % share less the breakdown's own activation and buffer lines
    assert full.runtime_reserve_bytes == pytest.approx(0.2 * 141 * GIB - full.activation_bytes
                                                       - full.comm_buffer_bytes, rel=1e-9)
    # and it is fewer sequences than the default 3 GiB reserve allows
    assert s < memory.max_sequences_per_device(V3, _DIMS, **_KW, tokens_per_sequence_step=1.0)


def test_activations_beyond_the_outside_share_set_the_batch_on_the_other_piece() -> None:
    # f = 0.99 leaves 1.41 GiB outside the pool; 8 tokens per sequence per step make activations and EP buffers
    # outgrow it before the pool fills, so free = capacity - weights - KV - activations - buffers there
    kw = dict(_KW, context_tokens=500)
    s = memory.max_sequences_per_device(V3, _DIMS, **kw, tokens_per_sequence_step=8.0, static_fraction=0.99)
    full = memory.memory_breakdown(V3, _DIMS, **kw, sequences_per_device=s, tokens_per_device=8 * s,
                                   static_fraction=0.99)
    assert full.runtime_reserve_bytes == 0.0
    assert full.activation_bytes + full.comm_buffer_bytes > 0.01 * 141 * GIB
    assert full.free_bytes == pytest.approx(0.0, abs=1.0)
