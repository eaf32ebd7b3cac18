"""Network tiers shared by several catalog devices (per device, per direction, SI units).

``latency_s`` is one collective step at small message size (an NCCL LL-protocol step; cost_models/collectives.py
adds the kernel's fixed cost ``NCCL_BASE_S`` and the protocol's step factor).  NVLink tiers: fitted on one-node
nccl-tests all_reduce times (ai-dynamo/aiconfigurator@095f58a51c4c systems/data/<system>/comm/nccl/<version>/
nccl_perf.parquet, copied into tests/data/nccl_perf_aiconfigurator.csv): the 8-GPU rows at 1-8 KiB (14 ring
steps) less ``NCCL_BASE_S`` = 4.8 us, over 14.  The other tiers stay this catalog's estimates: no one-node
small-message table was found for them.
"""

from __future__ import annotations

from planner.catalog.device_entry import LinkSources
from planner.catalog.sourced import GB_PER_S, US, Sourced, datasheet, derived, estimated, gbit_per_s, measured

SRC = "SOURCES.md"  # ids of planner/catalog/SOURCES.md

_AIC_NCCL = "ai-dynamo/aiconfigurator@095f58a51c4c {}/comm/nccl/{}/nccl_perf.parquet (fitted)"
NVLINK4_LATENCY = measured(
    0.83 * US, _AIC_NCCL.format("h200_sxm", "2.29.2"),
    "8 x H200 all_reduce 1-8 KiB mean 16.36 us: (16.36 - 4.8) / 14 steps = 0.826 us; the 2-GPU rows give the "
    "same slope ((16.36 - 6.43) / 12 = 0.828); H100 rows (checked, not fitted): 0.79 us")
NVLINK3_LATENCY = measured(
    1.2 * US, _AIC_NCCL.format("a100_sxm", "2.27.3"),
    "8 x A100 all_reduce 1-8 KiB mean 21.50 us: (21.50 - 4.8) / 14 = 1.19 us; the 2-GPU rows (10.3 us) sit "
    "3 us above base + 2 steps: A100's kernel fixed cost is larger than Hopper's")
NVLINK5_LATENCY = measured(
    1.5 * US, _AIC_NCCL.format("b200_sxm", "2.29.2"),
    "8 x B200 all_reduce 1-8 KiB mean 25.71 us: (25.71 - 4.8) / 14 = 1.49 us; the 2-GPU rows (10.3 us) sit "
    "2.5 us above base + 2 steps")
IB_LATENCY = estimated(8 * US, "moeplan estimate", "InfiniBand/RoCE step ~5-10 us incl. NIC and proxy overhead")
HCCS_LATENCY = estimated(5 * US, "moeplan estimate", "HCCS/UB collective step; no published HCCL step latency found")
UB_SUPERNODE_LATENCY = estimated(
    6 * US, "moeplan estimate; SOURCES.md CloudMatrix384 (n,q) [S]",
    "5 us in-node step + inter-node UB adds <1 us per arXiv 2506.12708 as summarised [S]")
XGMI_LATENCY = estimated(4 * US, "moeplan estimate", "no published RCCL step latency found for MI300X")

NVLS_H100 = measured(1, "NVIDIA/nccl-tests#212 (NCCL maintainer)",
                     "'allreduce uses NVLink SHARP by default' on 8 x H100: busBW ~480 GB/s above the ring's ~370")
NVLS_HOPPER_DERIVED = derived(1, "NVSwitch 3 with NVLink SHARP, as H100 (NVIDIA/nccl-tests#212)",
                              "same NVLink 4 / NVSwitch generation as H100")
NVLS_BLACKWELL = derived(1, "coreweave/nccl-tests PR #43 [S]", "NVLink 5 switches: 72-GPU all_reduce runs NVLS")

NVLINK3_A100 = LinkSources(
    bytes_per_s=datasheet(300 * GB_PER_S, f"{SRC} A100 SXM (a,t: aiconfigurator a100_sxm.yaml)",
                          "NVLink 3, 12 links x 25 GB/s per direction"),
    latency_s=NVLINK3_LATENCY,
    achievable_fraction=measured(230 / 300, f"{SRC}; NVIDIA/nccl-tests#149 maintainer (w)",
                                 "~230 GB/s effective of 300 line rate"),
)

NVLINK4_H100 = LinkSources(
    bytes_per_s=datasheet(450 * GB_PER_S, f"{SRC} H100 SXM (a,u,v)", "NVLink 4, 18 links x 25 GB/s"),
    latency_s=NVLINK4_LATENCY,
    achievable_fraction=measured(370 / 450, f"{SRC}; NVIDIA/nccl-tests#212 maintainer (v)",
                                 "~370 GB/s effective of 450 line rate (ring / non-allreduce); "
                                 "aiconfigurator nccl_perf 8-GPU all_gather busBW 335 (H100) / 337 (H200) at 512 MiB"),
    multicast_reduction=NVLS_H100,
)

NVLINK4_H800 = LinkSources(
    bytes_per_s=datasheet(200 * GB_PER_S, f"{SRC} H800 (e) [S]; aiconfigurator h800_sxm.yaml intra_node_bw",
                          "NVLink capped at 400 GB/s bidirectional"),
    latency_s=derived(0.83 * US, NVLINK4_LATENCY.source, "NVLink 4 / NVSwitch 3 as H100 / H200"),
    achievable_fraction=measured(160 / 200, f"{SRC} H800; deepseek-ai/DeepEP docs/legacy.md (x)",
                                 "DeepSeek: '~160 GB/s NVLink maximum'; DeepEP intranode EP8 153/158 GB/s"),
    multicast_reduction=derived(1, "NVIDIA/nccl#1374 [S]: 8 x H800 all_reduce busBW 215 GB/s", "above the ring ceiling 0.8 x 200 = 160 GB/s: only NVLS reaches it"),
)

NVLINK4_H20 = LinkSources(
    bytes_per_s=datasheet(450 * GB_PER_S, f"{SRC} H20 (h,y) [S]; aiconfigurator h20_sxm.yaml intra_node_bw"),
    latency_s=derived(0.83 * US, NVLINK4_LATENCY.source, "NVLink 4 / NVSwitch 3 as H100 / H200"),
    achievable_fraction=derived(370 / 450, f"{SRC} (v)", "H100 NVLink 4 measurement applied to H20"),
    multicast_reduction=NVLS_HOPPER_DERIVED,
)

_NVLINK5_FRACTION_NOTE = "DeepEP V2 SM100 EP8 726/740 GB/s NVLink: ~733/900"
NVLINK5_B200 = LinkSources(
    bytes_per_s=datasheet(900 * GB_PER_S, f"{SRC} B200 (a,i)", "NVLink 5, 18 links x 50 GB/s"),
    latency_s=NVLINK5_LATENCY,
    achievable_fraction=measured(733 / 900, f"{SRC} DeepEP V2 README (x2)", _NVLINK5_FRACTION_NOTE),
    multicast_reduction=NVLS_BLACKWELL,
)

NVLINK5_NVL72 = LinkSources(
    bytes_per_s=datasheet(900 * GB_PER_S, f"{SRC} GB200 NVL72 (a,j,u)",
                          "18 links x 50 GB/s through NVLink Switch trays; health check expects 53,125 MB/s/link"),
    latency_s=derived(1.5 * US, NVLINK5_LATENCY.source, "NVLink 5 as B200 HGX"),
    achievable_fraction=derived(733 / 900, f"{SRC} DeepEP V2 README (x2), measured on B200 HGX",
                                _NVLINK5_FRACTION_NOTE + "; 72-GPU all_reduce busBW 835-847 GB/s uses NVLS "
                                "(coreweave/nccl-tests PR #43) [S]"),
    multicast_reduction=NVLS_BLACKWELL,
)

XGMI_MI300X = LinkSources(
    bytes_per_s=datasheet(448 * GB_PER_S, f"{SRC} MI300X (k,z) [S]",
                          "aggregate of 7 Infinity Fabric links x 64 GB/s; any GPU pair has ONE link (64 GB/s), "
                          "so a 2-GPU group sees 1/7 of this (LinkSpec cannot express the mesh)"),
    latency_s=XGMI_LATENCY,
    achievable_fraction=estimated(0.7, f"{SRC} (no RCCL number found)", "moeplan assumption"),
)

HCCS_910B = LinkSources(
    bytes_per_s=estimated(196 * GB_PER_S, f"{SRC} Ascend 910B (m) [U]", "7 HCCS links x 28 GB/s, full mesh"),
    latency_s=HCCS_LATENCY,
    achievable_fraction=estimated(
        0.8, f"{SRC}; Huawei HIXL A2 benchmark (bb)",
        "HCCS D2D write 19.1-19.4, read 25.2-25.7 GB/s per link of ~28; third-party 8-card HCCL all_gather "
        "149 GB/s (metric unstated) (r)"),
)

UB_910C_DIE_BYTES = datasheet(
    196 * GB_PER_S, f"{SRC} Ascend 910C (n,s,m) [S]; chinaresearchcollective (q) 'UB 196 GB/s per NPU' [S]",
    ">=392 GB/s per 2-die chip, per direction: 196 per die")
_UB_FRACTION = estimated(
    0.8, f"{SRC} CloudMatrix384 EP rows (f) [S]",
    "moeplan assumption; EP256 combine 103 / dispatch 54 GB/s are kernel-level, not link-level")

UB_A3_NODE = LinkSources(bytes_per_s=UB_910C_DIE_BYTES, latency_s=HCCS_LATENCY, achievable_fraction=_UB_FRACTION)
UB_CM384 = LinkSources(
    bytes_per_s=UB_910C_DIE_BYTES, latency_s=UB_SUPERNODE_LATENCY,
    achievable_fraction=estimated(0.8, _UB_FRACTION.source,
                                  _UB_FRACTION.note + "; inter-node UB loses <3% bandwidth [S], ignored"),
)


def infiniband(gigabits: float, rate: Sourced | None = None) -> LinkSources:
    """One NIC per device at ``gigabits`` Gb/s; ``rate`` overrides the datasheet line-rate entry."""
    line = rate or datasheet(gbit_per_s(gigabits), f"{SRC} typical scale-out NIC per device")
    if gigabits >= 400:
        fraction = measured(0.88, f"{SRC} DeepEP V2 README, SM90 + CX7 400G IB (x2)",
                            "bytes on the wire: EP 8x2 45.0/40.5 GB/s, EP 8x4 45.75/45.75 GB/s; mean 44.2 of 50; "
                            "NCCL rings reach ~0.96 (nccl-tests#119)")
    else:
        fraction = measured(86 / 100, f"{SRC} NVIDIA/nccl-tests#175",
                            "A100, 2 nodes x 4x200G NICs: 86 GB/s all_reduce busBW of 100 GB/s per node")
    return LinkSources(bytes_per_s=line, latency_s=IB_LATENCY, achievable_fraction=fraction)


ROCE_910B = LinkSources(
    bytes_per_s=datasheet(gbit_per_s(200), f"{SRC} Ascend 910B (aa) [S]", "1x 200 GbE RoCE per NPU"),
    latency_s=IB_LATENCY,
    achievable_fraction=measured(22.6 / 25, f"{SRC}; Huawei HIXL A2 benchmark (bb)",
                                 "RDMA D2D 22.5-22.6 GB/s of 25"),
)

ROCE_910C_DIE = LinkSources(
    bytes_per_s=estimated(gbit_per_s(200), f"{SRC} Ascend 910C (n,s) [S: 1 RDMA interface per die; rate U]",
                          "assumed 200 Gb/s per die (as 910B)"),
    latency_s=IB_LATENCY,
    achievable_fraction=derived(22.6 / 25, f"{SRC} (bb)", "910B RDMA measurement applied to 910C"),
)
