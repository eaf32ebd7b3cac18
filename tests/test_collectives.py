"""Collective algorithms by size and topology: hand-derived values, the choice, published nccl-tests busBW.

Fixture links: H800 as tests/_clusters.py (no NVLS flag); an H100-like NVLink 4 tier (450 GB/s, ring fraction
370/450, 3 us per step, NVLS) built here.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
from _clusters import H800_SCALE_OUT, cluster_with, h800_cluster

from cost_models import collectives, comm
from cost_models.specs import LinkSpec

KIB, MIB = 2**10, 2**20
H100_UP = LinkSpec(bytes_per_s=450e9, latency_s=3e-6, achievable_fraction=370 / 450, multicast_reduction=True)
A100_UP = LinkSpec(bytes_per_s=300e9, latency_s=3e-6, achievable_fraction=230 / 300)
DATA = Path(__file__).parent / "data" / "nccl_tests_published.csv"


def _node(up: LinkSpec, n: int = 8):
    return cluster_with(up, H800_SCALE_OUT, num_nodes=1, devices_per_node=n)


def test_one_shot_and_two_shot_hand_derived():
    # A100-like, 8 GPUs, 64 KiB = 65,536 B, rate 230e9
    #   one-shot: 7 x 65,536 = 458,752 B / 230e9 = 1.99457 us + 2 barriers x 3 us = 7.99457 us
    #   two-shot: 2 x 7/8 x 65,536 = 114,688 B / 230e9 = 0.49864 us + 3 x 3 us = 9.49864 us
    #   ring: 114,688 B / 230e9 + 14 x 3 us = 42.49864 us
    cands = {c.algorithm: c for c in collectives.all_reduce_candidates(_node(A100_UP), bytes=64 * KIB,
                                                                       group_size=8, group_devices_per_node=8)}
    assert set(cands) == {"ring", "one_shot", "two_shot"}
    assert cands["one_shot"].seconds == pytest.approx(7.99457e-6, rel=1e-5)
    assert cands["two_shot"].seconds == pytest.approx(9.49864e-6, rel=1e-5)
    assert cands["ring"].seconds == pytest.approx(42.49864e-6, rel=1e-5)
    assert comm.all_reduce(_node(A100_UP), bytes=64 * KIB, group_size=8, group_devices_per_node=8).algorithm == "one_shot"


def test_one_shot_to_two_shot_crossover_is_near_vllms_threshold():
    # one-shot 6 us + 7 B / r = two-shot 9 us + 1.75 B / r  ->  B = 3 us x r / 5.25; A100 r = 230e9: 131 KB
    # vLLM switches at 256 KiB for 8 GPUs (csrc/custom_all_reduce.cuh): the same order, within 2x
    cross = 3e-6 * 230e9 / 5.25
    assert cross == pytest.approx(131_429, rel=1e-4)
    assert 256 * KIB / 2 <= cross <= 256 * KIB * 2
    below = comm.all_reduce(_node(A100_UP), bytes=cross * 0.9, group_size=8, group_devices_per_node=8)
    above = comm.all_reduce(_node(A100_UP), bytes=cross * 1.1, group_size=8, group_devices_per_node=8)
    assert (below.algorithm, above.algorithm) == ("one_shot", "two_shot")


def test_custom_kernels_stop_at_8_mib_and_for_nccl_only():
    big = comm.all_reduce(_node(A100_UP), bytes=16 * MIB, group_size=8, group_devices_per_node=8)
    assert big.algorithm == "ring"
    nccl = comm.all_reduce(_node(A100_UP), bytes=64 * KIB, group_size=8, group_devices_per_node=8,
                           custom_kernels=False)
    assert nccl.algorithm == "ring"


def test_nvls_all_reduce_hand_derived():
    # H100-like, 8 GPUs, 1 GiB: B (1 + 1/8) = 1,207,959,552 B at 450e9 x 0.686 = 308.7e9 -> 3.913053 ms
    # + 2 steps x 3 us = 3.919053 ms; busBW = 2^30 / 3.919053 ms x 1.75 = 479.4 GB/s
    c = comm.all_reduce(_node(H100_UP), bytes=2**30, group_size=8, group_devices_per_node=8)
    assert c.algorithm == "nvls"
    assert c.seconds == pytest.approx(3.919053e-3, rel=1e-6)
    assert c.detail["bus_bytes_per_s"] == pytest.approx(479.4e9, rel=1e-3)


def test_tree_beats_ring_across_many_nodes_at_small_sizes():
    # 16 nodes x 8, 1 MiB: ring out steps 2 x 15 = 30 x 8 us = 240 us; tree 2 x 4 = 8 x 8 = 64 us
    # tree bytes 2 B/g = 262,144 B / 44e9 = 5.96 us vs ring 2 x 15/16 x B/8 = 245,760 B = 5.59 us
    cl = h800_cluster(16)
    cands = {c.algorithm: c for c in collectives.all_reduce_candidates(cl, bytes=MIB, group_size=128,
                                                                       group_devices_per_node=8)}
    assert cands["tree"].detail["steps_scale_out"] == 8 and cands["ring"].detail["steps_scale_out"] == 30
    assert cands["tree"].bytes_scale_out == pytest.approx(262_144)
    assert comm.all_reduce(cl, bytes=MIB, group_size=128, group_devices_per_node=8).algorithm == "tree"
    # at 1 GiB the ring's smaller NIC volume wins
    assert comm.all_reduce(cl, bytes=2**30, group_size=128, group_devices_per_node=8).algorithm == "ring"


def test_forced_algorithm_and_unavailable_one():
    c = comm.all_reduce(_node(H100_UP), bytes=2**30, group_size=8, group_devices_per_node=8, algorithm="ring")
    assert c.algorithm == "ring"
    with pytest.raises(ValueError):
        comm.all_reduce(h800_cluster(1), bytes=2**30, group_size=8, group_devices_per_node=8, algorithm="nvls")


def test_the_fastest_is_never_slower_than_any_candidate():
    for size in (8, 64 * KIB, MIB, 64 * MIB, 2**30):
        cands = collectives.all_reduce_candidates(_node(H100_UP), bytes=size, group_size=8, group_devices_per_node=8)
        chosen = comm.all_reduce(_node(H100_UP), bytes=size, group_size=8, group_devices_per_node=8)
        assert chosen.seconds == min(c.seconds for c in cands)


# --- published large-message busBW (tests/data/nccl_tests_published.csv) ---------------------------------------
# Links as in the catalog (planner/catalog/device_links.py); the ring fraction of each link is itself a
# measurement from the same sources (H100 370/450, A100 230/300), so the ring rows check the formula and the
# NVLS rows check NVLS_LINK_FRACTION (fitted on the H100 480 row only).
LINKS = {
    "h100": H100_UP,
    "h200": H100_UP,
    "h800": LinkSpec(bytes_per_s=200e9, latency_s=3e-6, achievable_fraction=0.8, multicast_reduction=True),
    "a100": A100_UP,
}
ROWS = [r for r in csv.DictReader(DATA.open())]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['device']}-{r['algorithm']}-{r['bytes']}" for r in ROWS])
def test_published_all_reduce_bus_bandwidth(row):
    up = LINKS[row["device"]]
    algo = None if row["algorithm"] == "default" else row["algorithm"]
    c = comm.all_reduce(_node(up, int(row["gpus"])), bytes=float(row["bytes"]), group_size=int(row["gpus"]),
                        group_devices_per_node=int(row["gpus"]), custom_kernels=False, algorithm=algo)
    predicted = c.detail["bus_bytes_per_s"] / 1e9
    published = float(row["busbw_gb_per_s"])
    err = predicted / published - 1
    print(f"\nnccl-tests {row['device']} x{row['gpus']} {row['algorithm']:8s} {float(row['bytes']):>12.0f} B "
          f"published {published:6.1f} predicted {predicted:6.1f} GB/s ({c.algorithm}) error {err:+.1%}")
    assert abs(err) <= float(row["tolerance"])


def test_more_bandwidth_never_slower_and_larger_never_faster():
    for up in (H100_UP, A100_UP):
        fast = dataclasses.replace(up, bytes_per_s=up.bytes_per_s * 2)
        prev = 0.0
        for size in [2**k for k in range(3, 33)]:
            slow_c = comm.all_reduce(_node(up), bytes=size, group_size=8, group_devices_per_node=8)
            fast_c = comm.all_reduce(_node(fast), bytes=size, group_size=8, group_devices_per_node=8)
            assert fast_c.seconds <= slow_c.seconds
            assert slow_c.seconds >= prev
            prev = slow_c.seconds
