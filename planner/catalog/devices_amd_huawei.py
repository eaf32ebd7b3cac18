"""AMD MI300X and Huawei Ascend devices (910B2/B3/B4, one 910C die, a CloudMatrix384 supernode's die).

Ascend: no FP8 units (FP8 weights run at the BF16 Cube rate via ``DeviceSpec.peak_for``); INT8 = 2 x BF16.
No Huawei datasheet was found (``planner/catalog/SOURCES.md`` m), so compute and bandwidth figures are [U]/[D] and marked
estimated/derived. Core counts, HBM and L2 sizes of 910B2/B4 come from CANN ``platform_config/Ascend910B*.ini``
files (``ai_core_cnt``, ``memory_size``, ``l2_size``) as quoted in third-party Ascend kernel tutorials [S].

The logical device of the 910C rows is ONE DIE: CANN/MindCluster expose each of the two dies of a 910C as one
"Ascend AI processor" (SOURCES.md s: MindCluster 7.3 docs), so an Atlas 800/900 A3 node is 16 devices and a CloudMatrix384
supernode (384 chips) is 768 devices in one UB scale-up domain.
"""

from __future__ import annotations

from cost_models.specs import Precision
from planner.catalog.device_entry import DeviceEntry, LinkSources, make_entry
from planner.catalog.device_links import (
    HCCS_910B,
    ROCE_910B,
    ROCE_910C_DIE,
    UB_A3_NODE,
    UB_CM384,
    XGMI_MI300X,
    infiniband,
)
from planner.catalog.sourced import GIB, MIB, TB_PER_S, TFLOP_PER_S, Sourced, datasheet, derived, estimated, gbit_per_s

SRC = "SOURCES.md"  # ids of planner/catalog/SOURCES.md
BF16, FP8, INT8 = Precision.BF16, Precision.FP8, Precision.INT8
ROCM_SPECS = "ROCm docs reference/gpu-specs (MI300X row)"
CANN_INI = "CANN platform_config/{}.ini as quoted in third-party Ascend tutorials [S]"
NO_VECTOR = estimated(0.0, "unknown: no published Ascend vector-unit FP32 peak found",
                      "0 = unknown; cost models fall back to 1/16 of BF16")
CUBE_FORMULA = "{cores} AI cores x 4096 FP16 MAC/cycle x 2 x {ghz} GHz"


def mi300x() -> DeviceEntry:
    return make_entry(
        id="mi300x", name="AMD Instinct MI300X", vendor="amd",
        peak={BF16: datasheet(1307.4 * TFLOP_PER_S, f"{SRC} MI300X (k: ROCm mi300.md, dense)"),
              FP8: datasheet(2614.9 * TFLOP_PER_S, f"{SRC} MI300X (k)", "OCP FNUZ FP8"),
              INT8: datasheet(2614.9 * TFLOP_PER_S, f"{SRC} MI300X (k)")},
        hbm_bytes=datasheet(192 * GIB, f"{SRC} MI300X (k: gpu-arch-specs.rst 192 GiB)"),
        hbm_bytes_per_s=datasheet(5.3 * TB_PER_S, f"{SRC} MI300X (k)"),
        compute_units=datasheet(304, f"{SRC} (k: 304 CUs = 8 XCD x 38)"),
        l2_bytes=datasheet(256 * MIB, ROCM_SPECS,
                           "last-level cache = 256 MiB Infinity Cache (MALL); the 8 XCD L2s total 32 MiB"),
        scale_up=XGMI_MI300X,
        scale_out=infiniband(400, estimated(gbit_per_s(400), f"{SRC} MI300X [U]: 1x 400 Gb/s per GPU common")),
        devices_per_node=datasheet(8, f"{SRC} MI300X (k): fully connected 8-GPU platform"),
        vector_flop_per_s=datasheet(163.4 * TFLOP_PER_S, "AMD MI300X datasheet endnote MI300-11 (FP32 vector) [S]"),
        notes="XGMI is a full mesh without a switch: a GPU pair shares one 64 GB/s link.",
    )


def _ascend_910b(*, id: str, chip: str, cores: Sourced, ghz: float, marketed: str, hbm: Sourced, hbm_tb_s: float,
                 l2: Sourced) -> DeviceEntry:
    cube = int(cores.value)
    bf16 = cube * 4096 * 2 * ghz * 1e9
    row = f"{SRC} Ascend {chip} (m) [U]"
    return make_entry(
        id=id, name=f"Huawei Ascend {chip} (Atlas 800 A2)", vendor="huawei",
        peak={BF16: estimated(bf16, row, f"Cube formula {CUBE_FORMULA.format(cores=cube, ghz=ghz)}; "
                                         f"marketed {marketed}"),
              INT8: estimated(2 * bf16, row, "INT8 = 2 x BF16 Cube rate; no FP8 units")},
        hbm_bytes=hbm,
        hbm_bytes_per_s=estimated(hbm_tb_s * TB_PER_S, row),
        compute_units=cores,
        l2_bytes=l2,
        scale_up=HCCS_910B,
        scale_out=ROCE_910B,
        devices_per_node=datasheet(8, f"{SRC} Ascend 910B: 8 NPUs per Atlas 800 A2 [S]"),
        vector_flop_per_s=NO_VECTOR,
        notes="No 910B datasheet was found; check against npu-smi output before trusting compute/bandwidth.",
    )


def ascend_910b2() -> DeviceEntry:
    ini = CANN_INI.format("Ascend910B2")
    return _ascend_910b(id="ascend_910b2", chip="910B2", cores=datasheet(24, f"{ini}: ai_core_cnt=24"), ghz=1.8,
                        marketed="'376T'", hbm=datasheet(64 * GIB, f"{ini}: memory_size=68719476736"), hbm_tb_s=1.6,
                        l2=datasheet(192 * MIB, f"{ini}: l2_size=201326592"))


def ascend_910b3() -> DeviceEntry:
    return _ascend_910b(
        id="ascend_910b3", chip="910B3", ghz=1.8,
        cores=datasheet(20, "HAMi ascend-device-plugin configmap 'aiCore: 20' as quoted [S]"),
        marketed="'313T' (source m's Cube formula gives 294.9 as 24 cores x 1.5 GHz)",
        hbm=estimated(64 * GIB, f"{SRC} Ascend 910B3 (m) [U]"), hbm_tb_s=1.6,
        l2=estimated(192 * MIB, "assumed equal to 910B2 (same die, fewer cores enabled)"))


def ascend_910b4() -> DeviceEntry:
    ini = CANN_INI.format("Ascend910B4")
    return _ascend_910b(id="ascend_910b4", chip="910B4", cores=datasheet(20, f"{ini}: ai_core_cnt=20"), ghz=1.5,
                        marketed="'280T' commonly quoted", hbm=datasheet(32 * GIB, f"{ini}: memory_size=34359738368"),
                        hbm_tb_s=0.8, l2=datasheet(96 * MIB, f"{ini}: l2_size=100663296"))


def _ascend_910c_die(*, id: str, name: str, devices_src: Sourced, scale_up: LinkSources, notes: str) -> DeviceEntry:
    die = f"{SRC} Ascend 910C (2 dies)"
    a3_note = "third-party A3 kernel-timing note (npu-smi + CANN ini on one die: 24 AIC usable of 25, 1850 MHz)"
    return make_entry(
        id=id, name=name, vendor="huawei",
        peak={BF16: derived(376 * TFLOP_PER_S, f"{die} (f) [D]",
                            "CloudMatrix-Infer 6,688 tok/s/NPU / 4.45 tok/s/TFLOPS = 1,503 INT8 TOPS per chip; "
                            "/2 for BF16 = 752 per chip, /2 per die = 376; 24 cores x 1.85 GHz Cube formula gives 364"),
              INT8: derived(752 * TFLOP_PER_S, f"{die} (f) [D]", "1,503 INT8 TOPS per chip / 2 dies")},
        hbm_bytes=datasheet(64 * GIB, f"{die}: 128 GB = 2 x 64 (n,o,p) [S]", "npu-smi shows 65536 MB per die"),
        hbm_bytes_per_s=datasheet(1.6 * TB_PER_S, f"{die}: 3.2 TB/s = 2 x 1.6 (o) [S]"),
        compute_units=estimated(24, a3_note),
        l2_bytes=estimated(192 * MIB, a3_note + ": l2_size=201326592"),
        scale_up=scale_up,
        scale_out=ROCE_910C_DIE,
        devices_per_node=devices_src,
        vector_flop_per_s=NO_VECTOR,
        notes=notes,
    )


def ascend_910c() -> DeviceEntry:
    return _ascend_910c_die(
        id="ascend_910c", name="Huawei Ascend 910C die (Atlas 800/900 A3 node)", scale_up=UB_A3_NODE,
        devices_src=datasheet(16, f"{SRC} Ascend 910C (s: MindCluster 7.3): 8 HiAM modules = 16 logical NPUs [V]"),
        notes="Device = one 910C die (CANN's logical NPU); 2 dies per chip joined by SIO; 16 dies per A3 node.",
    )


def cloudmatrix384() -> DeviceEntry:
    return _ascend_910c_die(
        id="cloudmatrix384", name="Huawei CloudMatrix384 (Ascend 910C die, 768-die UB domain)",
        scale_up=UB_CM384,
        devices_src=derived(768, f"{SRC} CloudMatrix384 (n,q) [S]",
                            "384 chips x 2 dies = 768 logical NPUs in one non-blocking UB domain (48 nodes x 16)"),
        notes="Device = one 910C die; the whole supernode (384 chips, 48 nodes) is one UB scale-up domain. "
              "Published per-NPU figures (tok/s/NPU) are per chip = 2 devices here.",
    )


ENTRIES = (mi300x, ascend_910b2, ascend_910b3, ascend_910b4, ascend_910c, cloudmatrix384)
