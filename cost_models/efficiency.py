"""Calibrated efficiency constants of the kernel-time model (:mod:`cost_models.compute`).

Every constant is device-independent: a fraction of a datasheet peak (FLOP/s, HBM bytes/s), a multiple of one
compute unit's fair share of bandwidth, a tile shape, or a fixed time in seconds.  A device enters the model only
through ``DeviceSpec.peak_for``, ``hbm_bytes_per_s``, ``compute_units`` and ``l2_bytes``.

Provenance.  "Fitted" means: chosen, jointly with the others, to minimise the relative error of
:mod:`cost_models.compute` over all 178 rows of ``planner/catalog/calibration/h200_kernels.csv`` (NVIDIA H200 SXM,
PyTorch 2.11 / CUDA 13, medians of CUDA-graph replays; see that folder's README), by a global search
(differential evolution) and a local coordinate search, then rounded to 2-3 digits; the rows named below are the
ones that move most when the constant moves.  Three rows
are cuBLAS kernel-selection outliers that no shape-consistent model reproduces; they were left out of the
max-error term of the fit (see ``tests/test_compute_calibration.py``).  "Structural" means: taken from the
hardware or kernel design (Hopper tile shapes, shared-memory occupancy), not fitted.
Confidence of all fitted values: ``measured`` on H200, ``estimated`` elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- compute rate -----------------------------------------------------------------------------------------------

MATMUL_PEAK_FRACTION_WIDE = 0.83
"""Tensor-core efficiency of a GEMM main loop with 2-byte operands (bf16/fp16), as a fraction of the dense peak.
Fitted; pinned by the short compute-bound rows (``gemm_bf16`` M = 1024-2048, 76-175 us, 760-790 TFLOP/s =
0.77-0.80 of 989 TFLOP/s after tile and wave losses)."""

MATMUL_PEAK_FRACTION_NARROW = 0.76
"""The same for 1-byte operands (fp8/int8; also fp4 where the device runs it natively).  Fitted on the
``gemm_fp8`` rows M >= 512 (1250-1390 TFLOP/s of 1979).  Lower than bf16: the main loop is twice as fast, so
the fixed per-k-block costs (scale handling, barriers) weigh twice as much."""

ATTENTION_PEAK_FRACTION = 0.76
"""Efficiency of a FlashAttention-style inner block (QK^T, softmax, PV) as a fraction of the matrix peak;
the softmax exponentials on the special-function units are what keeps it below the GEMM figure.
Fitted on the ``attn_prefill_causal`` rows (525-592 TFLOP/s at L >= 4096)."""

SUSTAINED_CLOCK_RATIO = 0.83
"""Tensor-core rate under sustained load relative to the first ``BOOST_WINDOW_S`` of a kernel: a dense GEMM
draws more than the board power limit at boost clock, and the power controller lowers the clock.  Fitted on the
long ``gemm_bf16`` / ``bmm_bf16`` rows (> 300 us: 640-700 TFLOP/s against 760-790 for 80-180 us kernels of the
same shapes).  Memory-bound kernels do not throttle (decode attention holds 4.4-4.5 TB/s at 490 us)."""

BOOST_WINDOW_S = 140e-6
"""Compute time a kernel runs at full clock before ``SUSTAINED_CLOCK_RATIO`` applies.  Fitted together with
the ratio (the knee between the 150 us and 340 us ``dsv3_expert_up`` rows)."""

# --- memory rate ------------------------------------------------------------------------------------------------

HBM_READ_FRACTION = 0.935
"""Fraction of the datasheet HBM bandwidth a read-dominated stream reaches when every compute unit streams.
Fitted; pinned by the large memory-bound rows: ``bmm_bf16`` E=32 m<=16 (4.35-4.40 TB/s) and
``attn_decode_gqa`` B>=32 (4.27-4.50 TB/s) of the 4.8 TB/s datasheet figure."""

HBM_COPY_FRACTION = 0.578
"""Fraction of the datasheet bandwidth an equal read+write stream reaches (copies, element-wise ops, norms):
read/write bus turnarounds cost.  Measured: the ``copy`` row, 2 x 2 GiB in 1551 us = 2.77 TB/s of 4.8 TB/s."""

SM_STREAM_SHARE = 3.15
"""How much more than its fair share (``HBM_READ_FRACTION * hbm_bytes_per_s / compute_units``) one compute unit
can pull: outstanding loads per unit / memory latency (Little's law).  A kernel with fewer than
``compute_units / SM_STREAM_SHARE`` busy units (few output tiles, few KV heads) cannot reach full bandwidth.
Fitted; pinned by ``dsv3_expert_up`` and ``dsv3_dense_up_tp8`` at M <= 64, whose 32-36 output tiles of 128
columns stream just short of full bandwidth without split-K."""

# --- fixed costs ------------------------------------------------------------------------------------------------

KERNEL_LAUNCH_S = 3.7e-6
"""Fixed time per kernel inside a CUDA graph: launch, the first loads' latency, the final write-back and the
gap to the next kernel.  Also charged once more for the separate combine kernel of a split-KV decode
(FlashDecoding).  Fitted; pinned by the smallest rows (11-14 us kernels that move 17-30 MB)."""

TILE_OVERHEAD_S = 1.0e-6
"""Per output tile and wave: pipeline fill (the first stages' loads are not hidden) and the epilogue store.
Fitted; it is what makes short-K GEMMs (``dsv3_expert_down``, K = 2048) less efficient than long-K ones."""

SPLIT_K_REDUCE_S = 1.85e-6
"""Extra time when a GEMM's K dimension is split across compute units (cuBLAS split-K: fp32 partial sums
reduced by the last slice or a short reduction kernel).  Fitted on the small-M rows with few output tiles (``llama70b_qkv_tp8``,
``qwen3_235b_expert_up``, ``dsv3_expert_up`` at M <= 32: 12-21 us where the bytes alone need 5-14 us)."""

ATTENTION_CTA_OVERHEAD_S = 3.7e-6
"""Per attention work unit (one 128-query block of one head): loading Q, the final softmax rescale and the
output store.  Fitted on ``attn_prefill_causal`` L=1024, where it is a third of the time."""

# --- structural -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TileShape:
    """One output-tile configuration a GEMM library can pick."""

    rows: int
    """Tile extent along M (tokens)."""
    cols: int
    """Tile extent along N (output features)."""
    ctas_per_cu: int
    """Tiles resident on one compute unit at once (shared-memory limited)."""


GEMM_TILES: tuple[TileShape, ...] = (
    TileShape(rows=64, cols=128, ctas_per_cu=2),
    TileShape(rows=64, cols=256, ctas_per_cu=1),
    TileShape(rows=128, cols=128, ctas_per_cu=1),
    TileShape(rows=128, cols=256, ctas_per_cu=1),
)
"""Structural: the warpgroup-MMA tile shapes of Hopper GEMM kernels (CUTLASS 3 / cuBLAS sm90 kernel names).
With a 4-stage pipeline of 64-deep k-blocks a 64x128 bf16 tile needs 4 x (64+128) x 64 x 2 = 96 KiB of the
228 KiB shared memory per SM, so two fit; the larger tiles need 128-192 KiB, so one fits.  The model lets the
library pick whichever shape (and split-K factor) is fastest."""

SPLIT_K_MIN_SLICE_BYTES = 512
"""Structural: a split-K slice spans at least 512 bytes of K per row (4 k-blocks of 64 bf16 elements)."""

MMA_MIN_ROWS = 64
"""Structural: the smallest M of one Hopper warpgroup MMA; decode attention pads a KV head's query group to it."""

ATTENTION_BLOCK_TOKENS = 128
"""Structural: query and key block size of FlashAttention-2/3 on Hopper for head dims <= 128."""

DECODE_SPLIT_MIN_TOKENS = 256
"""Structural: a split-KV decode (FlashDecoding) gives each split at least this many cached tokens."""

TAIL_EXPOSED_FRACTION = 0.5
"""Structural expectation: the share of a ragged last wave (or of the longest attention work unit) that shows
in the kernel time; dynamic tile schedulers hide the rest (stream-K, Osama et al. 2023)."""

OVERLAP_SHARPNESS = 4.0
"""Exponent p of the soft maximum (compute^p + memory^p)^(1/p) that joins the compute and memory times of one
wave: near the ridge point neither pipeline is fully hidden.  p = 4 adds 19 % at equal times."""
