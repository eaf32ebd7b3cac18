"""Low-latency (decode) all-to-all, DeepEP V1 low-latency kernels: hand-derived values and the DeepEP tables.

Fixture links (tests/_clusters.py): H800 NVLink 200 GB/s, all-to-all cap 0.70 -> 140 GB/s, 3 us per step;
CX7 IB 50 GB/s x 0.88 = 44 GB/s, 8 us per step; HBM 3.35 TB/s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from _clusters import h800_cluster

from cost_models import all_to_all_ll, comm

DATA = Path(__file__).parent / "data" / "deepep_low_latency.csv"
ROWS = list(csv.DictReader(DATA.open()))
TOLERANCE = 0.20


def test_expected_max_of_normals():
    # Blom: Phi^-1((16 - 0.375) / (16 + 0.25)) = Phi^-1(0.961538) = 1.76883
    assert all_to_all_ll.expected_max_z(16) == pytest.approx(1.76883, abs=1e-5)
    assert all_to_all_ll.expected_max_z(1) == 0.0


def test_busiest_receiver_factor():
    # 2000 messages per device over 16 devices, experts unknown (spread 1): var = 2000 x 15/16 = 1875,
    # sd = 43.301; 1 + 1.76883 x 43.301 / 2000 = 1.038296
    f = all_to_all_ll.busiest_receiver_factor(messages_per_device=2000, ep_size=16, top_k=2, num_experts=None)
    assert f == pytest.approx(1.038296, abs=1e-6)
    # 256 experts, top-8: spread (256-8)/255 = 0.972549 shrinks the variance
    g = all_to_all_ll.busiest_receiver_factor(messages_per_device=2000, ep_size=16, top_k=8, num_experts=256)
    assert g == pytest.approx(1 + 1.76883 * (1875 * 0.972549) ** 0.5 / 2000, abs=1e-5)


def test_low_latency_dispatch_two_nodes_hand_derived():
    # EP16 = 2 nodes x 8, top-2, 1000 tokens, FP8 hidden 4096: token 4096 + 32 x 4 = 4224 B, + 16 B header = 4240 B
    # messages 2000: own device 2000/16 = 125, node peers 2000 x 7/16 = 875 (NVLink), remote 2000 x 8/16 = 1000 (IB)
    # busiest receiver 1.038296 (test above)
    #   NVLink 875 x 4240 = 3,710,000 B x 1.038296 / 140e9 = 27.515 us
    #   IB    1000 x 4240 = 4,240,000 B x 1.038296 / 44e9  = 100.054 us   (concurrent: the max counts)
    #   HBM receive copy 2 x 2000 x 4240 = 16,960,000 B x 1.038296 / 3.35e12 = 5.257 us
    #   latency 10.7 us fixed + 8 us IB = 18.7 us; total 18.7 + 100.054 + 5.257 = 124.011 us
    c = comm.ep_dispatch(h800_cluster(2), tokens_per_device=1000, hidden_size=4096, top_k=2, ep_size=16,
                         ep_devices_per_node=8, bytes_per_element=1, forward_in_node=False)
    assert c.detail["message_bytes"] == 4240
    assert (c.detail["scale_up_messages"], c.detail["scale_out_messages"]) == (875, 1000)
    assert c.bytes_scale_up == pytest.approx(3_710_000)
    assert c.bytes_scale_out == pytest.approx(4_240_000)
    assert c.latency_s == pytest.approx(18.7e-6)
    assert c.seconds == pytest.approx(124.011e-6, rel=1e-5)
    assert (c.bound, c.algorithm) == ("scale_out", "deepep_low_latency")


def test_pure_rdma_sends_node_peers_over_ib_too():
    # nvlink_in_node=False: every message but the own device's over IB, 2000 x 15/16 = 1875; none over NVLink
    c = comm.ep_dispatch(h800_cluster(2), tokens_per_device=1000, hidden_size=4096, top_k=2, ep_size=16,
                         ep_devices_per_node=8, bytes_per_element=1, forward_in_node=False, nvlink_in_node=False)
    assert c.detail["scale_out_messages"] == pytest.approx(1875)
    assert c.bytes_scale_up == 0


def test_low_latency_combine_in_one_node():
    # EP8 in one node, top-2, 1000 tokens, BF16 hidden 4096 = 8192 B messages, no header
    # NVLink: 2000 x 7/8 = 1750 messages x 8192 = 14,336,000 B; receive factor over 8 devices:
    #   z = Phi^-1(7.625/8.25) = 1.43420, var = 2000 x 7/8 = 1750 -> 1 + 1.43420 x 41.833 / 2000 = 1.029998
    #   14,336,000 x 1.029998 / 140e9 = 105.472 us
    # HBM: read 2000 x 8192 + write 1000 x 8192 = 24,576,000 B x 1.029998 / 3.35e12 = 7.556 us
    # latency 10.7 + 3 us NVLink = 13.7 us; total 126.728 us
    c = comm.ep_combine(h800_cluster(1), tokens_per_device=1000, hidden_size=4096, top_k=2, ep_size=8,
                        ep_devices_per_node=8, bytes_per_element=2, forward_in_node=False)
    assert c.bytes_scale_out == 0
    assert c.detail["receive_factor"] == pytest.approx(1.029998, abs=1e-5)
    assert c.seconds == pytest.approx(126.728e-6, rel=1e-4)


def test_a_measured_imbalance_above_the_random_one_wins():
    kw = dict(tokens_per_device=1000, hidden_size=4096, top_k=2, ep_size=16, ep_devices_per_node=8,
              bytes_per_element=1, forward_in_node=False)
    hot = comm.ep_dispatch(h800_cluster(2), imbalance=1.5, **kw)
    assert hot.detail["receive_factor"] == 1.5


def test_group_limit_does_not_change_low_latency_messages():
    # one message per (token, expert): node-limited routing changes where they go only through the expert ids,
    # uniform either way
    kw = dict(tokens_per_device=128, hidden_size=7168, top_k=8, ep_size=64, ep_devices_per_node=8,
              bytes_per_element=1, num_experts=256, forward_in_node=False)
    free_routing = comm.ep_dispatch(h800_cluster(8), **kw)
    limited = comm.ep_dispatch(h800_cluster(8), num_groups=8, topk_groups=4, **kw)
    assert limited.seconds == free_routing.seconds


# --- DeepEP V1 low-latency kernels on H800 + CX7 400G (tests/data/deepep_low_latency.csv) ---------------------
# 128 tokens per rank, hidden 7168, top-8 of 256 experts (scores random, no group limit), FP8 dispatch
# (7168 + 224 scale + 16 header = 7408 B messages), BF16 combine (14,336 B).  NVLink-path table: DeepEP@de8cfca
# README (EP128 / EP256 rows kept from the first release); pure-RDMA table: DeepEP@ebfe47e README.
# LOW_LATENCY_FIXED_S is fitted on these 24 values (minimax); the rates are the normal kernels' link constants.

def _ll(ep_size: int, nvlink: bool, op: str) -> comm.CommCost:
    fn, payload = (comm.ep_dispatch, 1.0) if op == "dispatch" else (comm.ep_combine, 2.0)
    return fn(h800_cluster(max(1, ep_size // 8)), tokens_per_device=128, hidden_size=7168, top_k=8,
              ep_size=ep_size, ep_devices_per_node=8, bytes_per_element=payload, num_experts=256,
              forward_in_node=False, nvlink_in_node=nvlink)


CASES = [(int(r["ep_size"]), r["nvlink_in_node"] == "1", op, float(r[f"{op}_us"]))
         for r in ROWS for op in ("dispatch", "combine")]


@pytest.mark.parametrize(("ep_size", "nvlink", "op", "published_us"), CASES,
                         ids=[f"EP{e}-{'nvl' if n else 'rdma'}-{o}" for e, n, o, _ in CASES])
def test_deepep_low_latency_table(ep_size, nvlink, op, published_us):
    predicted_us = _ll(ep_size, nvlink, op).seconds * 1e6
    err = predicted_us / published_us - 1
    print(f"\nDeepEP LL EP{ep_size:<3d} {'nvlink' if nvlink else 'rdma  '} {op:8s} published {published_us:5.0f} us "
          f"predicted {predicted_us:6.1f} us error {err:+.1%}")
    assert abs(err) <= TOLERANCE


def test_deepep_low_latency_message_sizes():
    assert _ll(16, True, "dispatch").detail["message_bytes"] == 7168 + 56 * 4 + 16
    assert _ll(16, True, "combine").detail["message_bytes"] == 7168 * 2
