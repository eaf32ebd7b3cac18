"""ParallelDims validation and the Hypothesis properties of plans and memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models import memory
from cost_models.parallel import OverlapPolicy, ParallelDims, check_dims
from cost_models.specs import Precision
from planner.catalog.models import get_model

V3 = get_model("deepseek-v3")
QWEN = get_model("qwen3-235b-a22b")
LLAMA = get_model("llama-3.1-70b")


def test_deepseek_decode_unit_is_accepted():
    dims = ParallelDims(attn_dp=144, moe_ep=144, redundant_experts=32, micro_batches=2,
                        overlap=OverlapPolicy.TWO_BATCH)
    assert check_dims(dims, V3, 144) == []
    assert dims.experts_per_device(V3) == 2  # (256 + 32) / 144


def test_wrong_device_count_names_the_product():
    problems = check_dims(ParallelDims(attn_dp=8, moe_ep=8), V3, 16)
    assert [p.field for p in problems] == ["attn_tp*attn_dp*pp*dp"]
    assert "16" in problems[0].accepted


def test_ep_must_divide_the_expert_slots():
    problems = check_dims(ParallelDims(attn_dp=24, moe_ep=24), V3, 24)
    (p,) = problems
    assert p.field == "moe_ep" and p.value == 24
    assert "256 experts" in p.accepted and "[1, 2, 4, 8, 16]" in p.accepted


def test_heads_must_divide_by_tp():
    # Qwen3-235B: 64 query heads, 4 KV heads; TP 3 divides neither
    problems = check_dims(ParallelDims(attn_tp=3, moe_ep=3), QWEN, 3)
    assert any(p.field == "attn_tp" for p in problems)


def test_gqa_tp_may_exceed_kv_heads_when_it_is_a_multiple():
    # 8 ranks over 4 KV heads: each KV head replicated twice (vLLM / SGLang behaviour)
    assert check_dims(ParallelDims(attn_tp=8, moe_ep=8), QWEN, 8) == []


def test_dense_model_rejects_expert_parallelism():
    problems = check_dims(ParallelDims(attn_tp=8, moe_ep=8, dense_tp=8), LLAMA, 8)
    assert any(p.field == "moe_ep" for p in problems)
    assert check_dims(ParallelDims(attn_tp=8, dense_tp=8), LLAMA, 8) == []


def test_two_batch_overlap_needs_two_micro_batches():
    problems = check_dims(ParallelDims(attn_dp=8, moe_ep=8, overlap=OverlapPolicy.TWO_BATCH), V3, 8)
    assert [p.field for p in problems] == ["overlap"]


_pow2 = st.sampled_from([1, 2, 4, 8, 16, 32, 64])


@settings(max_examples=200, deadline=None)
@given(attn_tp=_pow2, attn_dp=_pow2, moe_tp=_pow2, pp=st.sampled_from([1, 2, 4]), dp=st.sampled_from([1, 2, 3]),
       devices=st.integers(min_value=1, max_value=512))
def test_every_accepted_plan_multiplies_to_the_device_count(attn_tp, attn_dp, moe_tp, pp, dp, devices):
    unit = attn_tp * attn_dp
    moe_ep = max(1, unit // moe_tp)
    dims = ParallelDims(attn_tp=attn_tp, attn_dp=attn_dp, moe_ep=moe_ep, moe_tp=moe_tp, pp=pp, dp=dp)
    if not check_dims(dims, V3, devices):
        assert dims.attn_tp * dims.attn_dp * dims.pp * dims.dp == devices
        assert dims.moe_ep * dims.moe_tp == dims.unit_devices


@settings(max_examples=60, deadline=None)
@given(small=st.sampled_from([8, 16, 32, 64]), factor=st.sampled_from([2, 4]), attn_tp=st.sampled_from([1, 8]))
def test_more_devices_under_ep_never_raise_weight_bytes_per_device(small, factor, attn_tp):
    large = small * factor
    a = ParallelDims(attn_tp=attn_tp, attn_dp=small // attn_tp, moe_ep=small)
    b = ParallelDims(attn_tp=attn_tp, attn_dp=large // attn_tp, moe_ep=large)
    wa = sum(memory.weight_breakdown(V3, a, Precision.FP8).values())
    wb = sum(memory.weight_breakdown(V3, b, Precision.FP8).values())
    assert wb <= wa
