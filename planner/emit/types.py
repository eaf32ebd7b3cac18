"""Typed input and output of the launch-config emitters (no I/O, no engine knowledge)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cost_models.memory import MemoryBreakdown
from cost_models.parallel import ParallelDims
from cost_models.specs import DeviceSpec, ModelSpec, Precision

ROLES = ("aggregated", "prefill", "decode")
"""Serving roles a deployment runs: one aggregated pool, or a prefill and a decode pool."""


class EmitError(Exception):
    """The plan needs something the chosen engine cannot express; names the plan field, value and what it accepts."""

    def __init__(self, engine: str, field: str, value: object, accepted: str) -> None:
        self.engine, self.field, self.value, self.accepted = engine, field, value, accepted
        super().__init__(f"{engine} cannot express {field}={value}; accepted: {accepted}")

    def message(self) -> str:
        """``--emit ENGINE: KEY PATH: got VALUE; accepted: ...`` (key paths: ``plan.moe_tp``, ``cluster.device``)."""
        return f"--emit {self.engine}: {self.field}: got {self.value}; accepted: {self.accepted}"


@dataclass(frozen=True, kw_only=True)
class EngineSource:
    """Version an emitter targets and, for every name it may write, the document it was read from."""

    engine: str
    version: str
    sources: Mapping[str, str]
    """Short key -> file at a commit, or a URL."""
    flags: Mapping[str, str]
    """Command-line flag (or launcher argument) -> source key."""
    config_keys: Mapping[str, str] = field(default_factory=dict)
    """Dotted key of a config file the emitter writes -> source key."""
    env_vars: Mapping[str, str] = field(default_factory=dict)
    """Environment variable the emitter sets -> source key."""

    def cited(self) -> tuple[str, ...]:
        return tuple(f"{k}: {v}" for k, v in self.sources.items())


@dataclass(frozen=True, kw_only=True)
class RoleSpec:
    """One serving pool: its per-replica layout, replica count and the operating point the cost model chose."""

    role: str
    """``aggregated``, ``prefill`` or ``decode``."""
    dims: ParallelDims
    """Degrees of one replica (``dp == 1``)."""
    replicas: int
    """Independent copies of the replica."""
    decode_batch_per_device: float
    """Decode sequences per device in one step (0 for a prefill pool)."""
    prefill_tokens_per_device: float
    """Prompt tokens per device in one prefill step (the chunk)."""
    memory: MemoryBreakdown
    """Predicted bytes on the busiest device of the role's busiest phase."""
    placement: tuple[tuple[int, ...], ...] = ()
    """Expert placement over the replica's EP group, per MoE layer (model order): the logical expert each physical
    slot holds, slots rank-major (slot ``s`` on EP rank ``s // slots_per_rank``); empty without router counts."""

    @property
    def replica_devices(self) -> int:
        return self.dims.unit_devices * self.dims.pp


@dataclass(frozen=True, kw_only=True)
class LaunchSpec:
    """Everything an emitter needs: model, hardware, workload lengths and the pools to launch."""

    model: ModelSpec
    hf_repo: str | None
    """Hugging Face repo id of the checkpoint, or None (the output then reads ``${MODEL_PATH}``)."""
    device: DeviceSpec
    devices_per_node: int
    num_devices: int
    input_tokens: int
    """Prompt tokens of a request (the workload's; a length mix gives its mean)."""
    output_tokens: int
    weight_precision: Precision
    kv_precision: Precision
    mtp_tokens: int
    """Speculative tokens per step from multi-token prediction (0 = off)."""
    roles: tuple[RoleSpec, ...]

    @property
    def disaggregated(self) -> bool:
        return any(r.role == "prefill" for r in self.roles)

    @property
    def context_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, kw_only=True)
class Instance:
    """One engine instance (a replica of a role) placed on whole nodes or on a slice of one node."""

    spec: RoleSpec
    replica: int
    nodes: tuple[int, ...]
    """Cluster node indices, in node-rank order."""
    local_devices: tuple[int, ...]
    """Device ids used on each of its nodes (the same ids on every node)."""
    slot: int
    """How many instances were placed on its first node before it (offsets ports)."""

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def dims(self) -> ParallelDims:
        return self.spec.dims

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def devices_per_node(self) -> int:
        return len(self.local_devices)

    @property
    def head_var(self) -> str:
        """Environment variable the output reads for the IP of this instance's first node."""
        return f"{self.role.upper()}_{self.replica}_HEAD_ADDR"


@dataclass(frozen=True, kw_only=True)
class LaunchCommand:
    """One command line to run on one node."""

    role: str
    """``aggregated``, ``prefill``, ``decode`` or ``router`` (the request front end of a disaggregated plan)."""
    replica: int
    node_rank: int
    """Rank of the node inside its instance (0 = head)."""
    node: int
    """Cluster node index the line runs on (the planner lays pools out on consecutive nodes)."""
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    """Config files to write before running (name -> content); shell output writes them with a here-document."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LaunchPlan:
    """What an emitter returns: the engine and version it targets and the commands, head node first."""

    engine: str
    version: str
    sources: tuple[str, ...]
    """Where the flag names were taken from."""
    commands: tuple[LaunchCommand, ...]
    notes: tuple[str, ...] = ()
    """Plan parts the engine does not take as a setting (printed as comments)."""
