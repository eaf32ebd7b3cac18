"""Device fixtures for compute-model tests, typed in from the datasheet rather than read from the planner catalog,
so that a catalog edit cannot silently move a calibrated or hand-derived value."""

from __future__ import annotations

from cost_models.specs import DeviceSpec, LinkSpec, Precision


def h200() -> DeviceSpec:
    """NVIDIA H200 SXM: 989.4 dense bf16 TFLOP/s, 1978.9 fp8/int8, 141 GB HBM3e at 4.8 TB/s, 132 SMs, 50 MiB L2
    (NVIDIA H200 datasheet; SM count and L2 as reported by the device the calibration CSV was measured on)."""
    return DeviceSpec(
        id="h200_sxm",
        name="NVIDIA H200 SXM",
        vendor="nvidia",
        peak_flop_per_s={Precision.BF16: 989.4e12, Precision.FP8: 1978.9e12, Precision.INT8: 1978.9e12},
        hbm_bytes=141e9,
        hbm_bytes_per_s=4.8e12,
        compute_units=132,
        l2_bytes=50 * 2**20,
        scale_up=LinkSpec(bytes_per_s=450e9, latency_s=3e-6),
        scale_out=LinkSpec(bytes_per_s=50e9, latency_s=5e-6),
        devices_per_node=8,
    )
