"""NVIDIA devices: A100, H100, H800, H200, H20, B200, GB200 (NVL72).

Dense (no 2:4 sparsity) tensor-core peaks; "GB" of HBM as vendors print it is a binary size (HBM stacks are
2^30-byte multiples; NVIDIA's aiconfigurator writes 80 GiB = 85,899,345,920 for "80 GB"), so capacities use GIB.
Sources are the ids of ``planner/catalog/SOURCES.md`` (a = NVIDIA aiconfigurator system YAMLs @095f58a5,
c/d = Hopper whitepaper / datasheet tables, ...).
"""

from __future__ import annotations

from cost_models.specs import Precision
from planner.catalog.device_entry import DeviceEntry, make_entry
from planner.catalog.device_links import (
    NVLINK3_A100,
    NVLINK4_H20,
    NVLINK4_H100,
    NVLINK4_H800,
    NVLINK5_B200,
    NVLINK5_NVL72,
    infiniband,
)
from planner.catalog.sourced import GIB, MIB, TB_PER_S, TFLOP_PER_S, datasheet, derived, estimated, gbit_per_s, measured

SRC = "SOURCES.md"  # ids of planner/catalog/SOURCES.md
BF16, FP8, INT8, FP4 = Precision.BF16, Precision.FP8, Precision.INT8, Precision.FP4
HGX_8 = datasheet(8, f"{SRC} HGX/DGX baseboard: 8 GPUs per NVLink domain [V]")
H100_DATASHEET = "H100 SXM datasheet as reproduced by HPC Tech (SOURCES.md d) [S]"
A100_MAMF = ("stas00/ml-engineering@b9e29720 compute/accelerator/README.md, 'Maximum Achievable Matmul FLOPS "
             "comparison table' (BF16, mean of 100 iterations after 50 warm-up, torch 2.6.0+cu126) [M]")
SAME_AS_H100 = "assumed equal to H100 SXM: same GH100 SKU (aiconfigurator h800_sxm.yaml: compute identical)"
BLACKWELL_DEVICEQUERY = "pytorch/ao PR #4002 deviceQuery on B200 (148 SMs, L2 126.50 MB)"


def a100() -> DeviceEntry:
    return make_entry(
        id="a100_sxm_80gb", name="NVIDIA A100 SXM4 80GB", vendor="nvidia",
        peak={BF16: datasheet(312 * TFLOP_PER_S, f"{SRC} A100 (a)"),
              INT8: datasheet(624 * TFLOP_PER_S, f"{SRC} A100 (a)", "no FP8 units: FP8 runs at BF16 rate")},
        hbm_bytes=datasheet(80 * GIB, f"{SRC} A100: 80 GB HBM2e (a)"),
        hbm_bytes_per_s=datasheet(2.039 * TB_PER_S, f"{SRC} A100 (a)"),
        compute_units=datasheet(108, "NVIDIA A100 product brief PB-10577 as quoted in GPU spec tables [S]"),
        l2_bytes=datasheet(40 * MIB, "NVIDIA A100 product brief / Ampere whitepaper as quoted [S]"),
        scale_up=NVLINK3_A100,
        scale_out=infiniband(200, datasheet(gbit_per_s(200), f"{SRC} A100 (a,t): 1x HDR 200 Gb/s CX6 per GPU")),
        devices_per_node=HGX_8,
        vector_flop_per_s=datasheet(19.5 * TFLOP_PER_S, "NVIDIA A100 datasheet FP32 as quoted [S]"),
        sustained_clock_ratio=derived(1.0, A100_MAMF, "no power throttling of BF16 GEMMs: 271.2 TFLOP/s (86.9 % of "
                                      "peak) at 1024x10240x5120, 0.4 ms per kernel, above the 0.83 x 0.83 of peak a "
                                      "Hopper-like sustained clock would allow"),
    )


def h100() -> DeviceEntry:
    return make_entry(
        id="h100_sxm", name="NVIDIA H100 SXM5 80GB", vendor="nvidia",
        peak={BF16: datasheet(989.4 * TFLOP_PER_S, f"{SRC} H100 (a,c)", "Hopper whitepaper exact dense figure"),
              FP8: datasheet(1978.9 * TFLOP_PER_S, f"{SRC} H100 (a,c)"),
              INT8: datasheet(1978.9 * TFLOP_PER_S, f"{SRC} H100 (a,c)")},
        hbm_bytes=datasheet(80 * GIB, f"{SRC} H100: 80 GB HBM3 (a: aiconfigurator 80 GiB)"),
        hbm_bytes_per_s=datasheet(3.35 * TB_PER_S, f"{SRC} H100 (a,d)"),
        compute_units=datasheet(132, H100_DATASHEET),
        l2_bytes=datasheet(50 * MIB, H100_DATASHEET),
        scale_up=NVLINK4_H100,
        scale_out=infiniband(400, datasheet(gbit_per_s(400), f"{SRC} H100: 1x NDR 400 Gb/s CX7 per GPU [V]")),
        devices_per_node=HGX_8,
        vector_flop_per_s=datasheet(67 * TFLOP_PER_S, H100_DATASHEET, "66.9 in the whitepaper table (c)"),
    )


def h800() -> DeviceEntry:
    return make_entry(
        id="h800", name="NVIDIA H800 SXM5 80GB", vendor="nvidia",
        peak={BF16: datasheet(989.4 * TFLOP_PER_S, f"{SRC} H800 (e,f) [S]; aiconfigurator h800_sxm.yaml",
                              "same GH100 die as H100; CloudMatrix paper normalises H800 at 1,979 FP8 TFLOPS"),
              FP8: datasheet(1978.9 * TFLOP_PER_S, f"{SRC} H800 (e,f) [S]; aiconfigurator h800_sxm.yaml"),
              INT8: datasheet(1978.9 * TFLOP_PER_S, f"{SRC} H800 (e,f) [S]; aiconfigurator h800_sxm.yaml")},
        hbm_bytes=datasheet(80 * GIB, f"{SRC} H800 [S]; aiconfigurator h800_sxm.yaml mem_capacity 80 GiB"),
        hbm_bytes_per_s=datasheet(3.35 * TB_PER_S, f"{SRC} H800 [S]; aiconfigurator h800_sxm.yaml"),
        compute_units=estimated(132, SAME_AS_H100),
        l2_bytes=estimated(50 * MIB, SAME_AS_H100),
        scale_up=NVLINK4_H800,
        scale_out=infiniband(400, datasheet(gbit_per_s(400), f"{SRC} H800 (x): 1x CX7 400 Gb/s IB per GPU [V]")),
        devices_per_node=datasheet(8, f"{SRC} H800 [V]"),
        vector_flop_per_s=estimated(67 * TFLOP_PER_S, SAME_AS_H100, "FP64 is cut on H800, FP32 is not reported cut"),
        notes="DeepSeek's V3/R1 serving GPU; NVLink halved vs H100.",
    )


def h200() -> DeviceEntry:
    return make_entry(
        id="h200_sxm", name="NVIDIA H200 SXM 141GB", vendor="nvidia",
        peak={BF16: datasheet(989.4 * TFLOP_PER_S, f"{SRC} H200 (a,g)"),
              FP8: datasheet(1978.9 * TFLOP_PER_S, f"{SRC} H200 (a,g)"),
              INT8: datasheet(1978.9 * TFLOP_PER_S, f"{SRC} H200 (a,g)")},
        hbm_bytes=datasheet(141 * GIB, f"{SRC} H200: 141 GB HBM3e (a,g)",
                            "nvidia-smi shows ~140 GiB; the runtime reserve covers the difference"),
        hbm_bytes_per_s=datasheet(4.8 * TB_PER_S, f"{SRC} H200 (a,g)"),
        compute_units=measured(132, "planner/catalog/calibration/README.md: the measured H200 SXM has 132 SMs"),
        l2_bytes=estimated(50 * MIB, "assumed equal to H100 SXM (same GH100 configuration, new HBM only)"),
        scale_up=NVLINK4_H100,
        scale_out=infiniband(400, datasheet(gbit_per_s(400), f"{SRC} H200 (a,g): 400 Gb/s per GPU [V]")),
        devices_per_node=datasheet(8, f"{SRC} H200 (g: MLPerf H200-SXM-141GBx8)"),
        vector_flop_per_s=estimated(67 * TFLOP_PER_S, "assumed equal to H100 SXM (same SMs and clocks)"),
    )


def h20() -> DeviceEntry:
    src = f"{SRC} H20 (h) [U]; NVIDIA aiconfigurator h20_sxm.yaml"
    return make_entry(
        id="h20", name="NVIDIA H20 96GB", vendor="nvidia",
        peak={BF16: datasheet(148 * TFLOP_PER_S, src, "aiconfigurator float16_tc_flops 148e12 agrees with (h)"),
              FP8: datasheet(296 * TFLOP_PER_S, src, "aiconfigurator lists 294e12; (h) 296 = 2 x 148"),
              INT8: datasheet(296 * TFLOP_PER_S, src, "aiconfigurator lists 294e12")},
        hbm_bytes=estimated(96 * GIB, f"{SRC} H20 (h) [U]", "a 141 GB HBM3e H20 variant also exists [U]"),
        hbm_bytes_per_s=datasheet(4.0 * TB_PER_S, src, "aiconfigurator mem_bw 4.0e12"),
        compute_units=estimated(78, "Geekbench listing as reported by zangshuxian.com (h) [U]"),
        l2_bytes=estimated(60 * MIB, "moeplan assumption: no source found; GH100 die has 60 MiB physically"),
        scale_up=NVLINK4_H20,
        scale_out=infiniband(400, estimated(gbit_per_s(400), f"{SRC} H20 [U]: 400 Gb/s assumed",
                                            "aiconfigurator h20_sxm.yaml assumes 25 GB/s per GPU")),
        devices_per_node=datasheet(8, "aiconfigurator h20_sxm.yaml num_gpus_per_node (a); SOURCES.md H20 [U]"),
        vector_flop_per_s=estimated(44 * TFLOP_PER_S, "zangshuxian.com (h) [U]"),
        notes="China-market Hopper with cut tensor throughput; used for the Qwen3-30B speed benchmark.",
    )


def b200() -> DeviceEntry:
    return make_entry(
        id="b200", name="NVIDIA B200 (HGX/DGX)", vendor="nvidia",
        peak={BF16: datasheet(2250 * TFLOP_PER_S, f"{SRC} B200 (a,i)"),
              FP8: datasheet(4500 * TFLOP_PER_S, f"{SRC} B200 (a,i)"),
              INT8: datasheet(4500 * TFLOP_PER_S, f"{SRC} B200 (a,i)"),
              FP4: datasheet(9000 * TFLOP_PER_S, f"{SRC} B200 (a,i)", "dense FP4 (NVFP4/MXFP4)")},
        hbm_bytes=datasheet(180 * GIB, f"{SRC} B200 (a,i: MLPerf B200-SXM-180GB; aiconfigurator 180 GiB)",
                            "192 GB in 2024 launch material [S]"),
        hbm_bytes_per_s=datasheet(7.7 * TB_PER_S, f"{SRC} B200 (a)",
                                  "8.0 in launch material [S]; 7680-bit bus x 3996 MHz = 7.67 TB/s (pytorch/ao #4002)"),
        compute_units=measured(148, BLACKWELL_DEVICEQUERY, "Chips and Cheese: 74 SMs enabled per die x 2"),
        l2_bytes=measured(126.5 * MIB, BLACKWELL_DEVICEQUERY),
        scale_up=NVLINK5_B200,
        scale_out=infiniband(400, datasheet(gbit_per_s(400), f"{SRC} B200 (i): 8x CX7 NDR 400 Gb/s per node [V]",
                                            "aiconfigurator assumes CX8 800 Gb/s (100 GB/s)")),
        devices_per_node=datasheet(8, f"{SRC} B200 (i) [V]"),
        vector_flop_per_s=datasheet(80 * TFLOP_PER_S, "NVIDIA HGX B200 FP32 as quoted at glennklockwood.com [S]"),
    )


def gb200_nvl72() -> DeviceEntry:
    return make_entry(
        id="gb200_nvl72", name="NVIDIA GB200 NVL72 (one Blackwell GPU)", vendor="nvidia",
        peak={BF16: datasheet(2500 * TFLOP_PER_S, f"{SRC} GB200 (a,j)"),
              FP8: datasheet(5000 * TFLOP_PER_S, f"{SRC} GB200 (a,j)"),
              INT8: datasheet(5000 * TFLOP_PER_S, f"{SRC} GB200 (a,j)"),
              FP4: datasheet(10000 * TFLOP_PER_S, f"{SRC} GB200 (a,j)")},
        hbm_bytes=measured(189_471 * MIB, f"{SRC} GB200: nvidia-smi 189,471 MiB [V]", "186 GB marketed (j)"),
        hbm_bytes_per_s=datasheet(8.0 * TB_PER_S, f"{SRC} GB200 (a,j)"),
        compute_units=estimated(148, "assumed equal to B200 (same Blackwell die pair); not verified for GB200"),
        l2_bytes=estimated(126.5 * MIB, "assumed equal to B200 (" + BLACKWELL_DEVICEQUERY + ")"),
        scale_up=NVLINK5_NVL72,
        scale_out=infiniband(400, datasheet(gbit_per_s(400), f"{SRC} GB200 NVL72 (j): 4x CX7 per 4-GPU tray [V]",
                                            "aiconfigurator assumes CX8 800 Gb/s between racks")),
        devices_per_node=derived(72, f"{SRC} GB200 NVL72 [S]", "18 compute trays x 4 GPUs in one NVLink domain"),
        vector_flop_per_s=datasheet(90 * TFLOP_PER_S, "NVIDIA GB200 (1.2 kW) FP32 quoted by glennklockwood.com [S]"),
        notes="Device = one GPU; a 'node' here is the whole 72-GPU NVLink domain (physically 18 trays of 4).",
    )


ENTRIES = (a100, h100, h800, h200, h20, b200, gb200_nvl72)
