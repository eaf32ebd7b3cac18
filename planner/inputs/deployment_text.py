"""Deployments as one value: the pools, their replica counts and plans, as a string or a scenario's YAML block.

Grammar (README 'Deployments'); ``PLAN`` is a plan string (:func:`planner.inputs.plan_text.parse_plan`) of one
replica, ``N`` its replica count::

    prefill: N x PLAN; decode: M x PLAN     a prefill pool feeding a decode pool (either order)
    N x PLAN  |  aggregated: N x PLAN       one pool serving both phases
    PLAN                                    one aggregated pool over the whole cluster (``dp`` = its replicas)

The YAML block ``deployment:`` is the same string, or a mapping from role to ``N x PLAN``. ``plan`` prints
:func:`deployment_text` of its choice, which parses back to the same value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from cost_models.kinds import DeploymentMode, PoolRole
from cost_models.parallel import DimsProblem, OverlapPolicy, ParallelDims, check_dims
from cost_models.specs import ModelSpec
from planner.inputs import limits as lim
from planner.inputs.errors import ScenarioError
from planner.inputs.plan_text import parse_plan

_ROLES = tuple(r.value for r in PoolRole)
_ACCEPTED = ("'prefill: N x PLAN; decode: M x PLAN', 'N x PLAN' (aggregated) or a plan such as "
             "'attn_dp=32,moe_ep=32'")


@dataclass(frozen=True, kw_only=True)
class PoolPlan:
    """One pool: ``replicas`` copies of one replica's plan serving one role."""

    role: PoolRole
    replicas: int
    """Copies of the replica; a count."""
    dims: ParallelDims
    """The plan of one replica (``dp == 1``)."""

    @property
    def devices_per_replica(self) -> int:
        return self.dims.unit_devices * self.dims.pp

    @property
    def devices(self) -> int:
        """Devices of the pool (every replica)."""
        return self.devices_per_replica * self.replicas

    @property
    def pool_dims(self) -> ParallelDims:
        """The pool as one plan: the replica's degrees with ``dp`` = the replica count."""
        return dataclasses.replace(self.dims, dp=self.replicas)


@dataclass(frozen=True, kw_only=True)
class DeploymentPlan:
    """A deployment: one aggregated pool, or a prefill pool then a decode pool."""

    pools: tuple[PoolPlan, ...]
    whole_cluster: bool = False
    """Given as a bare plan: its pool must cover the cluster exactly (as ``--plan`` always required)."""

    @property
    def mode(self) -> DeploymentMode:
        return DeploymentMode.AGGREGATED if len(self.pools) == 1 else DeploymentMode.DISAGGREGATED

    @property
    def devices(self) -> int:
        """Devices of every pool."""
        return sum(p.devices for p in self.pools)

    @property
    def decode(self) -> PoolPlan:
        """The pool that decodes (the aggregated pool, or the decode pool)."""
        return self.pools[-1]

    @property
    def prefill(self) -> PoolPlan:
        """The pool that prefills (the aggregated pool, or the prefill pool)."""
        return self.pools[0]


def aggregated(dims: ParallelDims) -> DeploymentPlan:
    """A plan over the whole cluster as a deployment: one aggregated pool of ``dims.dp`` replicas."""
    return DeploymentPlan(pools=(PoolPlan(role=PoolRole.AGGREGATED, replicas=dims.dp,
                                          dims=dataclasses.replace(dims, dp=1)),), whole_cluster=True)


def plan_text(dims: ParallelDims) -> str:
    """The shortest plan string that parses back to ``dims``: the degrees that differ from 1 (and the overlap
    when ``micro_batches`` does not imply it)."""
    default = ParallelDims()
    parts = [f"{k}={v}" for k, v in dims.as_dict().items()
             if k != "overlap" and getattr(dims, k) != getattr(default, k)]
    implied = OverlapPolicy.TWO_BATCH if dims.micro_batches == 2 else OverlapPolicy.NONE
    if dims.overlap is not implied:
        parts.append(f"overlap={dims.overlap.value}")
    return ",".join(parts) or "attn_tp=1"


def deployment_text(dep: DeploymentPlan) -> str:
    """The one-line form: ``N x PLAN`` for one aggregated pool, ``prefill: N x PLAN; decode: M x PLAN``."""
    if dep.mode is DeploymentMode.AGGREGATED:
        return _pool_text(dep.pools[0])
    return "; ".join(f"{p.role.value}: {_pool_text(p)}" for p in dep.pools)


def _pool_text(p: PoolPlan) -> str:
    return f"{p.replicas} x {plan_text(p.dims)}"


def parse_deployment(text: str, *, key: str = "--plan") -> DeploymentPlan:
    """A deployment string (module docstring) -> :class:`DeploymentPlan`; :class:`ScenarioError` naming the key
    path, the value and the accepted forms on bad input."""
    if not isinstance(text, str) or not text.strip() or len(text) > lim.MAX_TEXT_CHARS:
        raise ScenarioError(key, text, f"{_ACCEPTED} (non-empty, at most {lim.MAX_TEXT_CHARS:,} characters)")
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if len(parts) == 1 and ":" not in parts[0] and not _has_replicas(parts[0]):
        return aggregated(parse_plan(parts[0], key=key))
    roles: dict[str, str] = {}
    for part in parts:
        role, sep, body = part.partition(":")
        role = role.strip() if sep else "aggregated"
        if not sep:
            body = part
        if role not in _ROLES:
            raise ScenarioError(f"{key}.{role}", body.strip(), f"a pool role: {', '.join(_ROLES)}; forms: {_ACCEPTED}")
        if role in roles:
            raise ScenarioError(f"{key}.{role}", body.strip(), "each pool role once (it appears twice)")
        roles[role] = body
    return _from_roles(roles, key)


def deployment_from_yaml(value: Any, *, key: str = "deployment") -> DeploymentPlan:
    """A scenario's ``deployment:`` block: the one-line string, or a mapping from role to ``N x PLAN``."""
    if isinstance(value, str):
        return parse_deployment(value, key=key)
    if not isinstance(value, dict) or not value:
        raise ScenarioError(key, value, f"a deployment string ({_ACCEPTED}) or a mapping such as "
                            "{prefill: '1 x attn_dp=8,moe_ep=8', decode: '2 x attn_dp=8,moe_ep=8'}")
    roles: dict[str, str] = {}
    for role, body in value.items():
        if role not in _ROLES:
            raise ScenarioError(f"{key}.{role}", body, f"a pool role: {', '.join(_ROLES)}")
        if not isinstance(body, str):
            raise ScenarioError(f"{key}.{role}", body, "'N x PLAN', e.g. '2 x attn_dp=8,moe_ep=8'")
        roles[role] = body
    return _from_roles(roles, key)


def _from_roles(roles: dict[str, str], key: str) -> DeploymentPlan:
    if set(roles) == {"aggregated"}:
        return DeploymentPlan(pools=(_pool(PoolRole.AGGREGATED, roles["aggregated"], key),))
    if set(roles) == {"prefill", "decode"}:
        return DeploymentPlan(pools=(_pool(PoolRole.PREFILL, roles["prefill"], key),
                                     _pool(PoolRole.DECODE, roles["decode"], key)))
    raise ScenarioError(key, "; ".join(f"{r}: ..." for r in roles),
                        "one aggregated pool, or a prefill pool and a decode pool (both)")


_REPLICAS = re.compile(r"\s*(\S*?)\s*x\s+(.*)", re.DOTALL)
"""``N x PLAN``: the count, then ``x`` and at least one space (plan names may contain an ``x``)."""


def _has_replicas(body: str) -> bool:
    m = _REPLICAS.fullmatch(body)
    return m is not None and "=" not in m.group(1)


def _pool(role: PoolRole, body: str, key: str) -> PoolPlan:
    """``N x PLAN`` of one role."""
    path = f"{key}.{role.value}"
    m = _REPLICAS.fullmatch(body)
    if m is None or "=" in m.group(1):
        raise ScenarioError(path, body.strip(), "'N x PLAN': a replica count, 'x', then the plan of one replica, "
                            "e.g. '2 x attn_dp=8,moe_ep=8'")
    count, plan = m.group(1), m.group(2)
    if not (count.isascii() and count.isdigit() and len(count) <= 9 and 1 <= int(count) <= lim.MAX_DEGREE):
        raise ScenarioError(f"{path}.replicas", count, f"an integer in 1 .. {lim.MAX_DEGREE:,}")
    dims = parse_plan(plan.strip(), key=path)
    if dims.dp != 1:
        raise ScenarioError(f"{path}.dp", dims.dp, "1 inside 'N x PLAN' (the replica count N is the pool's dp)")
    return PoolPlan(role=role, replicas=int(count), dims=dims)


def check_deployment(dep: DeploymentPlan, model: ModelSpec, num_devices: int) -> list[DimsProblem]:
    """Every problem of ``dep`` on ``model`` and a cluster of ``num_devices``: each replica's degrees divide
    the model (:func:`cost_models.parallel.check_dims`), and the pools fit the cluster (a bare plan: fill it)."""
    if dep.whole_cluster:
        return check_dims(dep.pools[0].pool_dims, model, num_devices)
    problems: list[DimsProblem] = []
    for p in dep.pools:
        problems += [dataclasses.replace(q, field=f"{p.role.value}.{q.field}")
                     for q in check_dims(p.dims, model, p.devices_per_replica)]
    if dep.devices > num_devices:
        problems.append(DimsProblem(field="devices", value=dep.devices,
                                    accepted=f"at most the cluster's {num_devices} devices (replicas x unit x pp, "
                                             "summed over the pools)"))
    return problems
