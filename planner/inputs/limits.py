"""Documented ranges of every input quantity (README 'Robustness'): checked at the edge, before any work.

The bounds are generous (well past any published deployment) but finite, so that no arithmetic downstream
overflows, no loop runs over a huge count and no integer leaves the CP-SAT solver's 64-bit range.
"""

from __future__ import annotations

import math

MAX_NODES = 8_192
MAX_DEVICES_PER_NODE = 1_024
MAX_DEVICES = 65_536
"""Devices in one cluster (nodes x devices per node)."""
MAX_COMPUTE_UNITS = 1_000_000
MAX_TOKENS = 2**24
"""Prompt / output / context / per-device token counts (16,777,216)."""
MAX_CONCURRENCY = 2**24
MAX_REQUEST_RATE_PER_S = 1e9
MAX_DECODE_BATCH_PER_DEVICE = 1e6
MAX_EXPERT_IMBALANCE = 1_000.0
MAX_SHARE = 1e9
MAX_DEGREE = 65_536
"""Any parallel degree or redundant-expert count in a plan."""
MAX_MICRO_BATCHES = 1_024
MAX_AFD = 65_536
"""Instances, devices per instance and TP of an ``afd:`` section."""
MAX_NAME_CHARS = 200
"""Scenario ``name``, device / model ids."""
MAX_TEXT_CHARS = 4_096
"""Any other string (description, paths, plan strings, sources)."""
MAX_SEED = 2**31 - 1
MAX_LOAD_LAYERS = 1_024
"""Rows (MoE layers) of a load file; a file is also checked against the model's MoE layers."""
MAX_LOAD_EXPERTS = 4_096
"""Columns (experts per layer) of a load file."""
MAX_TIME_LIMIT_S = 3_600.0
MAX_TRAIN_BATCH_SEQUENCES = 2**24
"""Sequences per training step (global batch)."""
MAX_TRAIN_BATCH_TOKENS = 2**40
"""Tokens per training step (``global_batch_tokens``)."""
MAX_TOKEN_BUDGET = 10**16
"""Tokens to train on (``token_budget``)."""
MAX_DEADLINE_S = 100 * 365 * 86_400.0
"""Longest ``deadline``: 100 years."""

# quantities with units, in SI: (lowest, highest) accepted, both inclusive
BYTES_RANGE = (2.0**20, 2.0**50)
"""Memory capacity: 1 MiB .. 1 PiB."""
BANDWIDTH_RANGE = (1e6, 1e15)
"""HBM or link bandwidth: 1 MB/s .. 1 PB/s."""
LATENCY_RANGE = (0.0, 10.0)
"""Link latency: 0 .. 10 s."""
FLOPS_RANGE = (1e9, 1e18)
"""Peak rate: 1 GFLOP/s .. 1 EFLOP/s."""
SLO_RANGE = (1e-9, 86_400.0)
"""TTFT / TPOT targets: 1 ns .. 1 day."""


def range_text(lo: float, hi: float, fmt: str = "g") -> str:
    return f"{lo:{fmt}} .. {hi:{fmt}}"


def out_of_range(value: float, lo: float, hi: float) -> bool:
    """True when ``value`` is not a finite number in ``[lo, hi]``."""
    return not (math.isfinite(value) and lo <= value <= hi)
