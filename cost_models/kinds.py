"""The closed choices every layer shares (STYLE.md rule 3), as ``StrEnum`` so JSON documents and tables keep
the same strings: serving phases, op kinds, what bound an op, deployment modes, pool roles, and why the
search rejects a layout. (``DecodeBatchLimit`` lives beside the decode batch choice in ``serving``.)"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """One forward's phase."""

    PREFILL = "prefill"
    """Prompt tokens, sampled once per sequence."""
    DECODE = "decode"
    """One (plus speculative) token per sequence per step."""


class OpKind(enum.StrEnum):
    """What an op occupies."""

    COMPUTE = "compute"
    """A kernel on the compute units."""
    COMM = "comm"
    """A collective or transfer on the links."""


class Bound(enum.StrEnum):
    """Which roof set an op's time."""

    COMPUTE = "compute"
    MEMORY = "memory"
    """HBM bandwidth."""
    OVERHEAD = "overhead"
    """Launch and fixed per-kernel costs."""
    SCALE_UP = "scale_up"
    """The in-node links (NVLink, HCCS)."""
    SCALE_OUT = "scale_out"
    """The between-node network."""
    LATENCY = "latency"
    """Per-step start-up latency of a collective."""


class DeploymentMode(enum.StrEnum):
    """How a deployment splits the two phases over its devices."""

    AGGREGATED = "aggregated"
    """One pool prefills and decodes on the same devices."""
    DISAGGREGATED = "disaggregated"
    """A prefill pool feeds a separate decode pool."""
    AFD = "afd"
    """A prefill pool feeds an attention-FFN disaggregated decode pool (:mod:`cost_models.afd`)."""


DEFAULT_PLAN_MODES = (DeploymentMode.AGGREGATED.value, DeploymentMode.DISAGGREGATED.value)
"""The modes ``plan`` searches unless told otherwise: AFD is opt-in (``plan --modes`` or a scenario's ``modes:``),
because none of the engines moeplan emits for launches it, so a default plan stays launchable."""


class PoolRole(enum.StrEnum):
    """What one pool of a deployment runs."""

    PREFILL = "prefill"
    DECODE = "decode"
    AGGREGATED = "aggregated"
    """Both phases on the same devices."""


class Rejection(enum.StrEnum):
    """Why the plan search dropped a layout (counted by reason in reports, in this order)."""

    DIVISIBILITY = "divisibility"
    """Degrees that do not divide the heads, experts or FFN widths."""
    TOPOLOGY = "topology"
    """TP beyond a scale-up domain, or a unit that straddles nodes unevenly."""
    MEMORY = "memory"
    """Weights and one sequence's KV cache do not fit."""
    TTFT = "ttft"
    """Misses the TTFT SLO."""
    TPOT = "tpot"
    """Misses the TPOT SLO."""
    PP_NO_GAIN = "pp_no_gain"
    """Pipeline stages that cannot raise the pp=1 layout's batch (it is not memory-bound)."""
