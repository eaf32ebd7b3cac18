"""The deployment decision's instance and solution types (solver-free): which layouts serve which pool.

A :class:`PoolCandidate` is anything that carries a costed layout's per-device rates and feasibility flags
(the search's ``Candidate`` does); the CP-SAT model reads only these attributes, so it does not depend on the
search layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cost_models.kinds import DeploymentMode


class PoolCandidate(Protocol):
    """What the deployment model reads of a costed layout."""

    devices_per_replica: int
    prefill_tok_per_s_per_device: float
    decode_tok_per_s_per_device: float
    aggregated_tok_per_s_per_device: float
    tpot_s: float
    """Decode-step TPOT: a decode pool's."""
    ttft_s: float
    aggregated_user_tok_per_s: float
    aggregated_tpot_s: float
    """The TPOT a user of an aggregated pool sees (the cycle over the user's tokens)."""
    prefill_ok: bool
    decode_ok: bool
    aggregated_ok: bool


OBJECTIVES = ("throughput", "latency", "devices")


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """One solution: a mode, its layouts and replica counts, and the integer objective it scored."""

    mode: DeploymentMode
    prefill: PoolCandidate | None
    prefill_replicas: int
    decode: PoolCandidate
    """For aggregated: the layout that serves both phases."""
    decode_replicas: int
    devices_used: int
    output_tok_per_s_units: int
    """Z, the delivered output rate in quantized units."""

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.mode, id(self.prefill), id(self.decode))


@dataclass(frozen=True, kw_only=True)
class DeploymentInstance:
    """Everything the model is built from (typed instance, no solver objects)."""

    candidates: tuple[PoolCandidate, ...]
    cluster_devices: int
    """Devices the deployment may use."""
    input_tokens: int
    output_tokens: int
    objective: str = "throughput"
    required_output_tok_per_s: float | None = None
    allow_disaggregated: bool = True
    allow_aggregated: bool = True


