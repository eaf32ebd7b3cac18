"""Cluster fixtures for cost-model tests, built from the reference numbers (not from the planner catalog, so a
catalog edit cannot silently move a hand-derived test value).

H800 SXM (planner/catalog/SOURCES.md H800 (e,f,x); DeepEP README): compute and memory as H100; NVLink 200 GB/s per direction, of
which DeepSeek quotes "~160 GB/s NVLink maximum" (fraction 0.8); one ConnectX-7 400 Gb/s InfiniBand NIC per
GPU, 50 GB/s per direction.  Each link constant below names its source in a comment.
"""

from __future__ import annotations

from cost_models.specs import ClusterSpec, DeviceSpec, LinkSpec, Precision

MIB = 2**20

H800_SCALE_UP = LinkSpec(
    bytes_per_s=200e9,  # NVLink 4 on H800, 400 GB/s bidirectional (NVIDIA/nccl#1374, SOURCES.md e [S])
    latency_s=3e-6,  # estimated: one NVLink + NVSwitch step (the catalog fits 0.83 us on H200 now; fixtures keep 3 us)
    achievable_fraction=0.8,  # DeepSeek / DeepEP README: "~160 GB/s NVLink maximum" = 160 / 200
)

H800_SCALE_OUT = LinkSpec(
    bytes_per_s=50e9,  # CX7 400 Gb/s = 50 GB/s per direction (deepseek-ai/DeepEP docs/legacy.md, SOURCES.md x [V])
    latency_s=8e-6,  # estimated: one InfiniBand step incl. NIC doorbell and PCIe (catalog IB_LATENCY)
    # Measured RDMA all-to-all on SM90 + CX7, deepseek-ai/DeepEP V2 README (SOURCES.md x2), converted from its logical
    # bytes (own node included) to bytes on the wire: EP 8x2 dispatch 90 x 1/2 = 45.0, combine 81 x 1/2 = 40.5;
    # EP 8x4 dispatch and combine 61 x 3/4 = 45.75 GB/s; mean 44.2 / 50 = 0.88.  Independent of the DeepEP V1
    # rows the anchor tests check.  (NCCL rings reach ~0.96: "24GB/s is the peak per 200G NIC", nccl-tests#119.)
    achievable_fraction=0.88,
)


def h800_device(scale_up: LinkSpec = H800_SCALE_UP, scale_out: LinkSpec = H800_SCALE_OUT) -> DeviceSpec:
    """An H800 SXM5 80 GB with the given links (dense peaks as H100: SOURCES.md H800 (e,f) [S])."""
    return DeviceSpec(
        id="h800", name="NVIDIA H800 SXM5 80GB", vendor="nvidia",
        peak_flop_per_s={Precision.BF16: 989e12, Precision.FP8: 1979e12, Precision.INT8: 1979e12},
        hbm_bytes=80e9, hbm_bytes_per_s=3.35e12, compute_units=132, l2_bytes=50 * MIB,
        scale_up=scale_up, scale_out=scale_out, devices_per_node=8,
    )


def h800_cluster(num_nodes: int = 1) -> ClusterSpec:
    """``num_nodes`` HGX H800 nodes, 8 GPUs each."""
    return cluster_with(H800_SCALE_UP, H800_SCALE_OUT, num_nodes=num_nodes)


def cluster_with(scale_up: LinkSpec, scale_out: LinkSpec, *, num_nodes: int = 1,
                 devices_per_node: int = 8) -> ClusterSpec:
    """H800-like devices on arbitrary links (for property tests)."""
    device = h800_device(scale_up, scale_out)
    return ClusterSpec(device=device, num_nodes=num_nodes, devices_per_node=devices_per_node,
                       scale_up=scale_up, scale_out=scale_out)
