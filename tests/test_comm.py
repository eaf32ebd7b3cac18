"""Tests of cost_models/comm.py: hand-derived values, DeepEP anchors, Hypothesis properties.

Fixture links (tests/_clusters.py): H800 NVLink 200 GB/s x 0.8 = 160 GB/s for rings, capped at 0.70 x 200 =
140 GB/s for all-to-all (comm.ALL_TO_ALL_SCALE_UP_FRACTION), 3 us per step; CX7 IB 50 GB/s x 0.88 = 44 GB/s,
8 us per step.
"""

from __future__ import annotations

import dataclasses

import pytest
from _clusters import H800_SCALE_OUT, H800_SCALE_UP, cluster_with, h800_cluster
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models import comm
from cost_models.specs import LinkSpec

GIB = 2**30
UP_RING = 160e9  # 200e9 x 0.8
UP_A2A = 140e9  # 200e9 x min(0.8, 0.70)
OUT = 44e9  # 50e9 x 0.88
LAT_UP, LAT_OUT = 3e-6, 8e-6


# --- hand-derived values -------------------------------------------------------------------------------------

def test_all_reduce_1gib_on_8_gpus():
    # ring: each rank sends 2 (n-1)/n B = 2 x 7/8 x 1,073,741,824 = 1,879,048,192 B
    # 1,879,048,192 / 160e9 = 11.744051 ms; NCCL Simple: 4.8 us base + 15 us set-up + 2 (n-1) = 14 steps x 3 us
    # = 61.8 us; total 11.805851 ms (LL at 0.38 of the rate is far slower at this size)
    c = comm.all_reduce(h800_cluster(1), bytes=GIB, group_size=8, group_devices_per_node=8)
    assert c.bytes_scale_up == 1_879_048_192
    assert c.bytes_scale_out == 0
    assert c.latency_s == pytest.approx(61.8e-6)
    assert c.seconds == pytest.approx(11.805851e-3, rel=1e-6)
    assert c.bound == "scale_up" and c.algorithm == "ring_simple"
    # nccl-tests busBW = algBW x 2(n-1)/n = (2^30 / 11.805851 ms) x 1.75 = 159.16 GB/s, just under 160
    assert c.detail["bus_bytes_per_s"] == pytest.approx(159.16e9, rel=1e-4)


def test_all_reduce_1gib_on_2_nodes_is_hierarchical():
    # intra RS + intra AG: 2 x 7/8 x 2^30 = 1,879,048,192 B on NVLink -> 11.744051 ms
    # inter all-reduce of the 2^30 / 8 shard over m = 2 nodes: 2 x 1/2 x 134,217,728 = 134,217,728 B on IB
    #   -> 134,217,728 / 44e9 = 3.050403 ms
    # latency: 4.8 + 15 us (Simple) + 2 x 7 x 3 us + 2 x 1 x 8 us = 77.8 us; phases in sequence: 14.872254 ms
    c = comm.all_reduce(h800_cluster(2), bytes=GIB, group_size=16, group_devices_per_node=8)
    assert c.bytes_scale_up == 1_879_048_192
    assert c.bytes_scale_out == 134_217_728
    assert c.latency_s == pytest.approx(77.8e-6)
    assert c.seconds == pytest.approx(14.872254e-3, rel=1e-6)


def test_all_reduce_across_nodes_one_device_each_is_a_flat_ring_on_ib():
    # g = 1, m = 4: 2 x 3/4 x 64 MiB = 100,663,296 B on IB -> 2.287802 ms; 4.8 + 15 + 6 steps x 8 us = 67.8 us
    c = comm.all_reduce(h800_cluster(4), bytes=64 * 2**20, group_size=4, group_devices_per_node=1)
    assert c.bytes_scale_up == 0
    assert c.bytes_scale_out == 100_663_296
    assert c.seconds == pytest.approx(100_663_296 / OUT + 67.8e-6)
    assert c.bound == "scale_out"


def test_all_gather_and_reduce_scatter_on_8_gpus():
    # all-gather 16 MiB per rank: 7 x 16,777,216 = 117,440,512 B -> 734.003 us + 4.8 + 15 + 7 x 3 us = 774.803 us
    ag = comm.all_gather(h800_cluster(1), bytes_per_rank=16 * 2**20, group_size=8, group_devices_per_node=8)
    assert ag.bytes_scale_up == 117_440_512
    assert ag.seconds == pytest.approx(774.8032e-6, rel=1e-6)
    # reduce-scatter 1 GiB: 7/8 x 2^30 = 939,524,096 B -> 5.872026 ms + 40.8 us = 5.912826 ms
    rs = comm.reduce_scatter(h800_cluster(1), bytes=GIB, group_size=8, group_devices_per_node=8)
    assert rs.bytes_scale_up == 939_524_096
    assert rs.seconds == pytest.approx(5.912826e-3, rel=1e-6)


def test_all_gather_across_nodes():
    # 16 GPUs, 8 per node, b = 1 MiB: IB ring among same-local-rank GPUs (m-1) b = 1,048,576 B,
    # then NVLink ring on 2 MiB chunks (g-1) m b = 14,680,064 B: 23.83 us + 91.75 us + (4.8 + 15 + 7 x 3 + 8) us
    c = comm.all_gather(h800_cluster(2), bytes_per_rank=2**20, group_size=16, group_devices_per_node=8)
    assert c.bytes_scale_out == 1_048_576
    assert c.bytes_scale_up == 14_680_064
    assert c.seconds == pytest.approx(1_048_576 / OUT + 14_680_064 / UP_RING + 48.8e-6)


@pytest.mark.parametrize(("n", "g", "nodes"), [(8, 8, 1), (16, 8, 2), (32, 8, 4), (4, 1, 4), (8, 4, 2)])
def test_reduce_scatter_plus_all_gather_is_all_reduce(n, g, nodes):
    # RS moves (g-1)/g B up, (m-1)/m B/g out; AG of B/n per rank moves the same: their sum is the all-reduce
    # plus one more kernel's fixed cost (two NCCL kernels, each 4.8 us base + 15 us Simple set-up at 96 MiB)
    cl = h800_cluster(nodes)
    b = 96 * 2**20
    rs = comm.reduce_scatter(cl, bytes=b, group_size=n, group_devices_per_node=g)
    ag = comm.all_gather(cl, bytes_per_rank=b / n, group_size=n, group_devices_per_node=g)
    ar = comm.all_reduce(cl, bytes=b, group_size=n, group_devices_per_node=g)
    assert rs.seconds + ag.seconds == pytest.approx(ar.seconds + 4.8e-6 + 15e-6)
    assert rs.bytes_scale_out + ag.bytes_scale_out == pytest.approx(ar.bytes_scale_out)


def test_point_to_point():
    # 4096 tokens x 7168 x 2 B = 58,720,256 B; over IB 8 us + 58,720,256 / 44e9 = 1,342.55 us
    c = comm.point_to_point(h800_cluster(2), bytes=58_720_256, crosses_nodes=True)
    assert c.seconds == pytest.approx(8e-6 + 58_720_256 / OUT)
    assert (c.bytes_scale_out, c.bytes_scale_up, c.bound) == (58_720_256, 0, "scale_out")
    # over NVLink: 3 us + 58,720,256 / 160e9 = 370.0 us
    c = comm.point_to_point(h800_cluster(2), bytes=58_720_256, crosses_nodes=False)
    assert c.seconds == pytest.approx(3e-6 + 58_720_256 / UP_RING)


def test_group_of_one_and_zero_bytes_cost_nothing():
    cl = h800_cluster(1)
    for c in (comm.all_reduce(cl, bytes=GIB, group_size=1, group_devices_per_node=1),
              comm.all_gather(cl, bytes_per_rank=GIB, group_size=1, group_devices_per_node=1),
              comm.reduce_scatter(cl, bytes=GIB, group_size=1, group_devices_per_node=1),
              comm.all_reduce(cl, bytes=0, group_size=8, group_devices_per_node=8),
              comm.ep_dispatch(cl, tokens_per_device=4096, hidden_size=7168, top_k=8, ep_size=1,
                               ep_devices_per_node=1, bytes_per_element=1)):
        assert (c.seconds, c.bytes_scale_up, c.bytes_scale_out, c.latency_s) == (0, 0, 0, 0)


def test_ep_dispatch_intranode_top1():
    # top-1 of 8 devices: one destination; it is the own device with p = 1/8, so 7/8 copies cross NVLink.
    # 1000 tokens x 7/8 x 1000 x 2 B = 1,750,000 B at 140 GB/s = 12.5 us; 2 phases x 3 us = 6 us -> 18.5 us
    c = comm.ep_dispatch(h800_cluster(1), tokens_per_device=1000, hidden_size=1000, top_k=1, ep_size=8,
                         ep_devices_per_node=8, bytes_per_element=2)
    assert c.bytes_scale_up == pytest.approx(1_750_000)
    assert c.bytes_scale_out == 0
    assert c.seconds == pytest.approx(18.5e-6)
    assert c.detail["device_copies_per_token"] == pytest.approx(1.0)


def test_ep_dispatch_two_nodes_fp8_top2():
    # EP16 = 2 nodes x 8, top-2, with-replacement counts (num_experts not given):
    #   distinct devices D_dev = 16 (1 - (15/16)^2) = 1.9375; distinct nodes D_node = 2 (1 - (1/2)^2) = 1.5
    #   IB copies = D_node x 1/2 = 0.75; NVLink copies = D_dev x 7/8 = 1.6953125
    # FP8 token: 4096 B + 4096 / 128 x 4 B scales = 4224 B; 10,000 tokens
    #   IB 10,000 x 0.75 x 4224 = 31,680,000 B / 44e9 = 720.0 us
    #   NVLink 10,000 x 1.6953125 x 4224 = 71,610,000 B / 140e9 = 511.5 us (runs concurrently)
    #   latency 2 x (3 + 8) us = 22 us -> 742.0 us, IB-bound
    c = comm.ep_dispatch(h800_cluster(2), tokens_per_device=10_000, hidden_size=4096, top_k=2, ep_size=16,
                         ep_devices_per_node=8, bytes_per_element=1)
    assert c.detail["token_bytes"] == 4224
    assert c.bytes_scale_out == pytest.approx(31_680_000)
    assert c.bytes_scale_up == pytest.approx(71_610_000)
    assert c.seconds == pytest.approx(742.0e-6)
    assert c.bound == "scale_out"
    # DeepEP-style RDMA bytes count the own node too: 10,000 x 1.5 x 4224 = 63,360,000 B
    assert c.detail["algo_bytes_per_s"] == pytest.approx(63_360_000 / 742.0e-6)


def test_combine_mirrors_dispatch_and_imbalance_scales_the_bandwidth_term():
    kw = dict(tokens_per_device=10_000, hidden_size=4096, top_k=2, ep_size=16, ep_devices_per_node=8)
    d = comm.ep_dispatch(h800_cluster(2), bytes_per_element=2, **kw)
    c = comm.ep_combine(h800_cluster(2), bytes_per_element=2, **kw)
    assert c == d  # BF16 both ways: same copies, same bytes
    hot = comm.ep_combine(h800_cluster(2), bytes_per_element=2, imbalance=1.5, **kw)
    assert hot.seconds - hot.latency_s == pytest.approx(1.5 * (c.seconds - c.latency_s))
    assert hot.bytes_scale_out == c.bytes_scale_out  # mean send bytes; the busiest device carries 1.5x


def test_cross_node_fraction():
    # one node: nothing crosses
    assert comm.cross_node_fraction(top_k=8, ep_size=8, ep_devices_per_node=8, num_groups=8, topk_groups=4) == 0
    # 8 nodes, unlimited top-8: D_node = 8 (1 - (7/8)^8) = 8 x 0.656391 = 5.251129; x 7/8 / 8 = 0.574342
    assert comm.cross_node_fraction(top_k=8, ep_size=64, ep_devices_per_node=8) == pytest.approx(0.574342, abs=1e-6)
    # DeepSeek-V3 node limit, 8 groups = 8 nodes, top-4 groups: D_node = 8 x 4/8 x (1 - (3/4)^8) = 3.59954
    #   x 7/8 / 8 = 0.39370
    v3 = comm.cross_node_fraction(top_k=8, ep_size=64, ep_devices_per_node=8, num_groups=8, topk_groups=4)
    assert v3 == pytest.approx(0.39370, abs=1e-5)
    # one group per token and one group per node: exactly one node, remote with p = 7/8: 7/8 / 8
    one = comm.cross_node_fraction(top_k=8, ep_size=64, ep_devices_per_node=8, num_groups=8, topk_groups=1)
    assert one == pytest.approx(7 / 64)


def test_distinct_destinations_exact_without_replacement():
    # 256 experts on 8 devices (32 each), top-8 distinct experts: C(224,8) / C(256,8) = 0.338168,
    # 8 x (1 - 0.338168) = 5.294652 (the with-replacement 8 (1 - (7/8)^8) = 5.251129 undercounts by 0.8 %)
    hit = comm.expected_units_hit(units=8, top_k=8, num_groups=1, topk_groups=1, num_experts=256)
    assert hit == pytest.approx(5.294652, abs=1e-6)


@pytest.mark.parametrize("bad", [
    dict(group_size=16, group_devices_per_node=16),  # more devices per node than the node has
    dict(group_size=8, group_devices_per_node=0),
    dict(group_size=0, group_devices_per_node=1),
])
def test_bad_group_is_rejected(bad):
    with pytest.raises(ValueError):
        comm.all_reduce(h800_cluster(2), bytes=1.0, **bad)


def test_bad_ep_input_is_rejected():
    kw = dict(tokens_per_device=1, hidden_size=8, top_k=2, ep_size=16, ep_devices_per_node=8, bytes_per_element=1)
    for extra in (dict(imbalance=0.9), dict(num_groups=4, topk_groups=5), dict(num_experts=8, num_groups=8)):
        with pytest.raises(ValueError):
            comm.ep_dispatch(h800_cluster(2), **{**kw, **extra})
    with pytest.raises(ValueError):
        comm.all_gather(h800_cluster(1), bytes_per_rank=-1.0, group_size=8, group_devices_per_node=8)


# --- anchors: DeepEP normal kernels on H800 -----------------------------------------------------------------
# Source: deepseek-ai/DeepEP README (V1 table, now docs/legacy.md @0297fc80; planner/catalog/SOURCES.md x,
# anchor DEEPEP).  Setup as DeepEP's
# tests/test_intranode.py and tests/test_internode.py: 4096 tokens per GPU, hidden 7168, top-8 of 256 experts,
# scores random; internode: one expert group per node, num_topk_groups = min(nodes, 4).
# Payload assumption: FP8 dispatch = 7168 B + 7168 / 128 = 56 FP32 scales = 7392 B per token (DeepEP's
# fp8_factor (1 + 4/128) / 2); BF16 combine = 14,336 B per token.
# Published GB/s count DeepEP's benchmark bytes: intranode "NVL" = every token copy received incl. the own GPU's;
# internode "RDMA" = one copy per destination node incl. the own node.  Compared: detail["algo_bytes_per_s"].
# Tolerance 25 %.  What the model gets (fixture constants only, nothing per row):
#   EP8 153/158 -> 159.0/159.5 (+4 %/+1 %), NVLink-bound at the 0.70 all-to-all cap
#   EP16 43/43  -> 48.0/48.4 (+12 %/+13 %), NVLink-bound: forwarding 6.5 device copies vs 1 IB copy per token
#   EP32 58/57  -> 58.0/58.3 (0 %/+2 %), IB-bound: 44 GB/s on the wire x 4/3 for the own-node copy
#   EP64 51/50  -> 49.8/50.0 (-2 %/0 %), IB-bound: 44 x 8/7
DEEPEP_TOLERANCE = 0.25
DEEPEP_ROWS = [  # (ep_size, op, published GB/s)
    (8, "dispatch", 153), (8, "combine", 158),
    (16, "dispatch", 43), (16, "combine", 43),
    (32, "dispatch", 58), (32, "combine", 57),
    (64, "dispatch", 51), (64, "combine", 50),
]


def deepep_prediction(ep_size: int, op: str) -> comm.CommCost:
    nodes = ep_size // 8
    fn, payload = (comm.ep_dispatch, 1.0) if op == "dispatch" else (comm.ep_combine, 2.0)
    return fn(h800_cluster(nodes), tokens_per_device=4096, hidden_size=7168, top_k=8, ep_size=ep_size,
              ep_devices_per_node=8, bytes_per_element=payload, num_experts=256,
              num_groups=max(nodes, 1), topk_groups=min(nodes, 4))


@pytest.mark.parametrize(("ep_size", "op", "published_gb_per_s"), DEEPEP_ROWS,
                         ids=[f"EP{e}-{o}" for e, o, _ in DEEPEP_ROWS])
def test_deepep_normal_kernel_bandwidth(ep_size, op, published_gb_per_s):
    c = deepep_prediction(ep_size, op)
    predicted = c.detail["algo_bytes_per_s"] / 1e9
    assert predicted == pytest.approx(published_gb_per_s, rel=DEEPEP_TOLERANCE), (
        f"EP{ep_size} {op}: predicted {predicted:.1f} GB/s vs DeepEP {published_gb_per_s} GB/s ({c.bound}-bound)")


def test_deepep_payload_assumption():
    assert deepep_prediction(8, "dispatch").detail["token_bytes"] == 7168 + 56 * 4
    assert deepep_prediction(8, "combine").detail["token_bytes"] == 7168 * 2


# --- properties --------------------------------------------------------------------------------------------

links = st.builds(LinkSpec, bytes_per_s=st.floats(1e9, 2e12), latency_s=st.floats(0, 1e-4),
                  achievable_fraction=st.floats(0.05, 1.0))
speedups = st.tuples(st.floats(1.0, 10.0), st.floats(1.0, 1.0 / 0.05))


@st.composite
def groups(draw):
    per_node = draw(st.sampled_from([1, 2, 4, 8, 16, 72]))
    g = draw(st.integers(1, per_node))
    m = draw(st.integers(1, 8))
    return per_node, g * m, g, m


@st.composite
def ep_cases(draw):
    per_node, ep, g, m = draw(groups())
    num_groups = draw(st.integers(1, 8))
    return dict(tokens_per_device=draw(st.floats(0, 1e5)), hidden_size=draw(st.integers(0, 16384)),
                top_k=draw(st.integers(1, 8)), ep_size=ep, ep_devices_per_node=g,
                bytes_per_element=draw(st.sampled_from([0.5, 1.0, 2.0])), num_groups=num_groups,
                topk_groups=draw(st.integers(1, num_groups)), imbalance=draw(st.floats(1.0, 3.0)),
                num_experts=draw(st.sampled_from([None, 256]))), per_node, m


def _faster(link: LinkSpec, bw: float, frac: float) -> LinkSpec:
    return dataclasses.replace(link, bytes_per_s=link.bytes_per_s * bw,
                               achievable_fraction=min(1.0, link.achievable_fraction * frac))


def _all_ops(cl, size: float, n: int, g: int, ep: dict, algorithm: str | None = None):
    yield comm.all_reduce(cl, bytes=size, group_size=n, group_devices_per_node=g, algorithm=algorithm)
    yield comm.all_gather(cl, bytes_per_rank=size, group_size=n, group_devices_per_node=g, algorithm=algorithm)
    yield comm.reduce_scatter(cl, bytes=size, group_size=n, group_devices_per_node=g, algorithm=algorithm)
    yield comm.point_to_point(cl, bytes=size, crosses_nodes=True)
    yield comm.point_to_point(cl, bytes=size, crosses_nodes=False)
    yield comm.ep_dispatch(cl, **ep)
    yield comm.ep_combine(cl, **ep)
    yield comm.ep_dispatch(cl, **ep, forward_in_node=False)
    yield comm.ep_combine(cl, **ep, forward_in_node=False)


@settings(max_examples=150, deadline=None)
@given(up=links, out=links, case=ep_cases(), size=st.floats(0, 1e10), up_gain=speedups, out_gain=speedups)
def test_more_bandwidth_on_either_tier_is_never_slower(up, out, case, size, up_gain, out_gain):
    ep, per_node, m = case
    n, g = ep["ep_size"], ep["ep_devices_per_node"]
    base = cluster_with(up, out, num_nodes=m, devices_per_node=per_node)
    fast = cluster_with(_faster(up, *up_gain), _faster(out, *out_gain), num_nodes=m, devices_per_node=per_node)
    for slow_c, fast_c in zip(_all_ops(base, size, n, g, ep), _all_ops(fast, size, n, g, ep), strict=True):
        assert fast_c.seconds <= slow_c.seconds * (1 + 1e-12)


@settings(max_examples=150, deadline=None)
@given(case=ep_cases(), size=st.floats(0, 1e10), more=st.floats(1.0, 100.0))
def test_more_data_never_costs_less(case, size, more):
    ep, per_node, m = case
    n, g = ep["ep_size"], ep["ep_devices_per_node"]
    cl = cluster_with(H800_SCALE_UP, H800_SCALE_OUT, num_nodes=m, devices_per_node=per_node)
    bigger = {**ep, "tokens_per_device": ep["tokens_per_device"] * more}
    for small_c, big_c in zip(_all_ops(cl, size, n, g, ep), _all_ops(cl, size * more, n, g, bigger), strict=True):
        assert big_c.seconds >= small_c.seconds * (1 - 1e-12)
    # bytes grow with the payload for a fixed algorithm (the fastest one may switch to one that moves fewer)
    ring = _all_ops(cl, size, n, g, ep, "ring"), _all_ops(cl, size * more, n, g, bigger, "ring")
    for small_c, big_c in zip(*ring, strict=True):
        assert big_c.bytes_scale_up >= small_c.bytes_scale_up * (1 - 1e-12)
        assert big_c.bytes_scale_out >= small_c.bytes_scale_out * (1 - 1e-12)
    if ep["top_k"] < 8:  # a wider top-k reaches at least as many devices and nodes
        wider = comm.ep_dispatch(cl, **{**ep, "top_k": ep["top_k"] + 1})
        assert wider.seconds >= comm.ep_dispatch(cl, **ep).seconds * (1 - 1e-12)


@settings(max_examples=100, deadline=None)
@given(up=links, out=links, size=st.floats(0, 1e12))
def test_group_of_one_costs_nothing(up, out, size):
    cl = cluster_with(up, out, num_nodes=2)
    for c in (comm.all_reduce(cl, bytes=size, group_size=1, group_devices_per_node=1),
              comm.all_gather(cl, bytes_per_rank=size, group_size=1, group_devices_per_node=1),
              comm.reduce_scatter(cl, bytes=size, group_size=1, group_devices_per_node=1),
              comm.ep_dispatch(cl, tokens_per_device=size, hidden_size=7168, top_k=8, ep_size=1,
                               ep_devices_per_node=1, bytes_per_element=1)):
        assert c.seconds == 0 and c.bytes_scale_up == 0 and c.bytes_scale_out == 0

