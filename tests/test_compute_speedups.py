"""The search's fast paths give the same floats as the full costing they shortcut: the tile-choice time against
the full launch, the latency-only step and decode probe against the StepCost, the memoised kernels against
fresh ones; and hand-derived cases of the rewritten helpers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cost_models import serving
from cost_models.compute import _bound, _launch_on, _launch_seconds, _memory_bound_cost, device_key, memory_bound_cost
from cost_models.kinds import Bound, Phase
from cost_models.ops import PhaseShape
from cost_models.parallel import OverlapPolicy, ParallelDims
from cost_models.step import step_cost, step_latency_s
from planner.inputs.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"


@given(units=st.integers(1, 200), ctas=st.integers(1, 5000), ctas_per_cu=st.integers(1, 4),
       cta_compute_s=st.floats(0.0, 1e-3), cta_bytes=st.floats(0.0, 1e8), spill=st.floats(0.0, 1e9),
       combine=st.sampled_from([0.0, 2e-6]), stream=st.floats(1e9, 1e13), clock=st.floats(0.5, 1.0))
def test_launch_seconds_is_the_full_launch_time(units, ctas, ctas_per_cu, cta_compute_s, cta_bytes, spill, combine,
                                                stream, clock):
    # equality, not approx: the tile / split-K choice must rank shapes exactly as the full launch does
    full = _launch_on(units, stream, ctas, cta_compute_s, cta_bytes, ctas_per_cu, spill, combine, clock)
    assert _launch_seconds(units, stream, ctas, cta_compute_s, cta_bytes, ctas_per_cu, spill, combine,
                           clock) == full.seconds


def test_bound_takes_the_largest_term_and_the_first_of_equals():
    assert _bound(3.0, 2.0, 1.0) is Bound.COMPUTE
    assert _bound(1.0, 2.0, 1.5) is Bound.MEMORY
    assert _bound(1.0, 2.0, 3.0) is Bound.OVERHEAD
    assert _bound(2.0, 2.0, 1.0) is Bound.COMPUTE  # compute before memory on a tie (as max over the dict was)
    assert _bound(1.0, 2.0, 2.0) is Bound.MEMORY  # memory before overhead


def test_memoised_memory_bound_kernel_is_the_fresh_one_per_device():
    sc = load_scenario(DEFAULT)
    dev = sc.cluster.device
    # 1 GiB at the device's copy rate: launch + bytes / (fraction x bandwidth), same object as a fresh costing
    assert memory_bound_cost(dev, bytes=2**30) == _memory_bound_cost(dev, 2**30)
    half = dataclasses.replace(dev, hbm_bytes_per_s=dev.hbm_bytes_per_s / 2)
    assert half == half and device_key(half) != device_key(dev)  # an equal-looking copy gets its own key
    # half the bandwidth: the memory term doubles, so the memo never hands one device's answer to another
    a, b = memory_bound_cost(dev, bytes=2**30), memory_bound_cost(half, bytes=2**30)
    assert b.detail["memory_s"] == pytest.approx(2 * a.detail["memory_s"], rel=1e-12)
    with pytest.raises(ValueError):
        memory_bound_cost(dev, bytes=-1.0)


LAYOUTS = [  # no overlap, two-batch, single-batch, pipelines of 2 and 4, dense TP
    ParallelDims(attn_dp=8, moe_ep=8),
    ParallelDims(attn_dp=16, moe_ep=16, micro_batches=2, overlap=OverlapPolicy.TWO_BATCH),
    ParallelDims(attn_dp=8, moe_ep=8, overlap=OverlapPolicy.SINGLE_BATCH),
    ParallelDims(attn_dp=4, moe_ep=4, pp=2, micro_batches=2, overlap=OverlapPolicy.TWO_BATCH),
    ParallelDims(attn_tp=2, attn_dp=1, moe_ep=2, pp=4),
    ParallelDims(attn_tp=8, attn_dp=2, moe_ep=8, moe_tp=2, dense_tp=8),
]


@pytest.mark.parametrize("dims", LAYOUTS, ids=lambda d: d.label())
@pytest.mark.parametrize("phase", [Phase.DECODE, Phase.PREFILL])
def test_step_latency_is_the_step_costs_latency(dims, phase):
    sc = load_scenario(DEFAULT)
    wl = sc.workload
    tokens = 37.0 if phase is Phase.DECODE else 4000.0
    shape = PhaseShape(phase=phase, rank_tokens=tokens, sequences_per_rank=37.0 if phase is Phase.DECODE else 1.0,
                       context_tokens=4500 if phase is Phase.DECODE else 4000)
    kw = dict(weight_precision=wl.weight_precision, kv_precision=wl.kv_precision,
              dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance, precisions=wl.precisions)
    assert step_latency_s(sc.model, sc.cluster, dims, shape, **kw) == step_cost(sc.model, sc.cluster, dims, shape,
                                                                                **kw).latency_s


@pytest.mark.parametrize("mtp_tokens", [0, 1, 2])
@pytest.mark.parametrize("dims", LAYOUTS[:4], ids=lambda d: d.label())
def test_decode_probe_latency_is_the_decode_steps_latency_with_mtp(dims, mtp_tokens):
    # with MTP the draft layers add their total to the latency (cost_models.mtp.with_draft); the probe adds the
    # same sum in the same order
    sc = load_scenario(DEFAULT)
    wl = dataclasses.replace(sc.workload, mtp_tokens=mtp_tokens)
    for seqs in (1 / dims.attn_tp, 5.0, 64.0):
        assert (serving._decode_latency_s(sc.model, sc.cluster, dims, wl, seqs)
                == serving._decode_step(sc.model, sc.cluster, dims, wl, seqs).latency_s)


def test_memo_hash_keeps_the_field_hash_and_is_not_pickled():
    """A memoised spec hash is the dataclass's own field hash (so dicts and sets order as before), computed once,
    and is dropped from a pickle (a string hash is only valid in the process that computed it)."""
    import pickle

    sc = load_scenario(DEFAULT)
    for spec in (sc.model, sc.cluster, sc.plan, PhaseShape(phase=Phase.DECODE, rank_tokens=64.0, sequences_per_rank=64.0,
                                                            context_tokens=2048)):
        fields = tuple(getattr(spec, f.name) for f in dataclasses.fields(spec))
        assert hash(spec) == hash(fields)  # the generated __hash__ of a frozen dataclass: hash of the field tuple
        assert "_memo_hash" in vars(spec) and hash(spec) == vars(spec)["_memo_hash"]
        copy = pickle.loads(pickle.dumps(spec))
        assert "_memo_hash" not in vars(copy)
        assert copy == spec and hash(copy) == hash(spec)
    changed = dataclasses.replace(sc.plan, pp=sc.plan.pp + 1)
    assert changed != sc.plan and "_memo_hash" not in vars(changed)  # a replaced spec hashes its own fields
