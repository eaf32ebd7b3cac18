"""Anchor test: the compute model against every measured H200 kernel in the calibration CSV.

Source: ``planner/catalog/calibration/h200_kernels.csv`` (NVIDIA H200 SXM, PyTorch 2.11 / CUDA 13, median of
CUDA-graph replays; provenance in the README beside it).  Tolerances: median absolute relative error <= 5 %;
every row within 20 %, except the documented library outliers below, which must be within 45 % and predicted
*faster* than measured.

Run with ``python3 -m pytest tests/test_compute_calibration.py -q -s`` to see the per-row table.
"""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

import pytest

from cost_models import compute
from cost_models.compute import KernelCost
from cost_models.specs import Precision

try:
    from tests._devices import h200
except ImportError:  # tests/ on sys.path instead of the repository root
    from _devices import h200

CSV = Path(__file__).resolve().parents[1] / "planner" / "catalog" / "calibration" / "h200_kernels.csv"

MEDIAN_TOLERANCE = 0.05
ROW_TOLERANCE = 0.20
OUTLIER_TOLERANCE = 0.45

LIBRARY_OUTLIERS = {
    # cuBLAS picked a slower kernel than for a *larger* M of the same weights: 104 us at M=128, 91 us at M=256,
    # 63 us at M=64. Within 20 % of 104 us needs >= 84 us at M=128: 34 % above the weight-streaming time M=64
    # reaches, while compute (30 GFLOP, 45 us at the 667 TFLOP/s large GEMMs reach) is below it; neither roof,
    # tile or wave effect in the model gives that, and the model predicts the memory-bound time (62.5 us).
    ("gemm_bf16", "mixtral_up_tp1:M=128,K=4096,N=28672"),
    # The same family: 99.8 us at m=128 and 97.2 us at m=256 for identical weights; the 235 MB of weights stream
    # in 53 us at the 4.4 TB/s the other bmm rows reach.
    ("bmm_bf16", "dsv3_expert_down:E=8,m=128,K=2048,N=7168"),
    # m=64 of that series: 79.6 us where m=16 takes 64.0 us and the 2-D GEMM of the same per-expert shape
    # (dsv3_expert_down M=64) runs at the same speed as its M=16; a 24 % jump no tile or bandwidth effect explains.
    ("bmm_bf16", "dsv3_expert_down:E=8,m=64,K=2048,N=7168"),
}


def _ints(shape: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", shape)}


def predict(kind: str, shape: str) -> KernelCost:
    """Map one CSV row onto the compute-model call that describes the same kernel."""
    dev = h200()
    d = _ints(shape)
    if kind in ("gemm_bf16", "gemm_fp8"):
        precision = Precision.FP8 if kind == "gemm_fp8" else Precision.BF16
        return compute.gemm_cost(dev, m=d["M"], k=d["K"], n=d["N"], precision=precision)
    if kind == "bmm_bf16":  # E experts with m tokens each
        return compute.gemm_cost(dev, m=d["m"], k=d["K"], n=d["N"], batch=d["E"])
    if kind == "attn_prefill_causal":  # batch 1, MHA
        return compute.attention_prefill_cost(dev, batch=1, q_heads=d["H"], kv_heads=d["H"], qk_head_dim=d["D"],
                                              v_head_dim=d["D"], seq_tokens=d["L"], causal=True)
    if kind == "attn_decode_gqa":
        return compute.attention_decode_cost(dev, batch=d["B"], q_heads=d["HQ"], kv_heads=d["HKV"],
                                             qk_head_dim=d["D"], v_head_dim=d["D"], context_tokens=d["L"])
    if kind == "copy":  # "2147483648B": bytes copied; read + write
        return compute.memory_bound_cost(dev, bytes=2 * int(shape.rstrip("B")))
    raise AssertionError(f"unknown kind {kind!r} in {CSV.name}")


def _rows() -> list[dict[str, str]]:
    with CSV.open(newline="") as f:
        return list(csv.DictReader(f))


def _errors() -> list[tuple[str, str, float, float, float]]:
    out = []
    for r in _rows():
        measured_s = float(r["us"]) * 1e-6
        predicted_s = predict(r["kind"], r["shape"]).seconds
        out.append((r["kind"], r["shape"], measured_s, predicted_s, predicted_s / measured_s - 1.0))
    return out


def test_every_row_is_predicted() -> None:
    rows = _rows()
    assert len(rows) == 178
    assert {r["kind"] for r in rows} == {"gemm_bf16", "gemm_fp8", "bmm_bf16", "attn_prefill_causal",
                                         "attn_decode_gqa", "copy"}
    assert LIBRARY_OUTLIERS <= {(r["kind"], r["shape"]) for r in rows}


def test_calibration_errors() -> None:
    errors = _errors()
    print(f"\n{'kind':20s} {'shape':45s} {'measured us':>12s} {'predicted us':>12s} {'error %':>8s}")
    for kind, shape, meas, pred, err in errors:
        flag = "  (library outlier)" if (kind, shape) in LIBRARY_OUTLIERS else ""
        print(f"{kind:20s} {shape:45s} {meas * 1e6:12.1f} {pred * 1e6:12.1f} {err * 100:8.1f}{flag}")
    print(f"\n{'kind':20s} {'rows':>5s} {'median |err| %':>15s} {'max |err| %':>12s}")
    for kind in dict.fromkeys(e[0] for e in errors):
        abs_err = [abs(e[4]) for e in errors if e[0] == kind]
        print(f"{kind:20s} {len(abs_err):5d} {statistics.median(abs_err) * 100:15.1f} {max(abs_err) * 100:12.1f}")
    all_abs = [abs(e[4]) for e in errors]
    regular = [abs(e[4]) for e in errors if (e[0], e[1]) not in LIBRARY_OUTLIERS]
    print(f"{'all':20s} {len(all_abs):5d} {statistics.median(all_abs) * 100:15.1f} {max(all_abs) * 100:12.1f}"
          f"   (max without library outliers {max(regular) * 100:.1f})")

    assert statistics.median(all_abs) <= MEDIAN_TOLERANCE
    misses = [(k, s, round(err * 100, 1)) for k, s, _, _, err in errors
              if (k, s) not in LIBRARY_OUTLIERS and abs(err) > ROW_TOLERANCE]
    assert not misses, f"rows outside {ROW_TOLERANCE:.0%}: {misses}"
    for k, s, _, _, err in errors:
        if (k, s) in LIBRARY_OUTLIERS:
            assert -OUTLIER_TOLERANCE <= err < 0.0, (k, s, err)


@pytest.mark.parametrize("kind", ["gemm_bf16", "gemm_fp8", "bmm_bf16", "attn_prefill_causal", "attn_decode_gqa"])
def test_each_kind_is_calibrated(kind: str) -> None:
    """No kind may hide behind the others: each kind's own median error is within the overall tolerance x 2."""
    abs_err = [abs(e[4]) for e in _errors() if e[0] == kind]
    assert statistics.median(abs_err) <= 2 * MEDIAN_TOLERANCE
