"""Search attention-FFN disaggregated (AFD) decode units for ``moeplan plan``: the third deployment mode.

An AFD unit (:class:`cost_models.afd.AfdLayout`) is A attention instances and F FFN instances, each one node, as
both published AFD systems deploy them: Step-3 (arXiv 2507.19427 §7.1: an attention instance and an FFN instance
are 8 GPUs each, "2A2F") and MegaScale-Infer (arXiv 2504.02263 §3-4: attention nodes replicated by data
parallelism, FFN nodes holding the experts, TP inside a node). Searched per unit:

* the A:F ratio (instance counts, at most :data:`MAX_UNIT_NODES` nodes together);
* the expert TP inside an FFN instance, every divisor of a node (the rest EP across FFN instances; Step-3: TP8 in
  a node, EP across nodes); attention runs local DP per device (:data:`ATTENTION_TPS`);
* the ping-pong micro-batch count m (:data:`MICRO_BATCHES`: 2-4; Step-3: 3);
* the batch: the most sequences per attention rank per micro-batch whose whole-sequence KV (input + output, as
  the other layouts are sized) fits the attention device and whose TPOT meets the SLO (both grow with the batch:
  a bracketed search, :func:`best_batch`).

Each unit is a decode-only :class:`AfdCandidate`, carrying what the deployment split reads of any pool layout
(:class:`planner.cpsat.deployment_instance.PoolCandidate`), so the same split (exact enumeration or CP-SAT) pairs
it with a prefill pool and ranks it against aggregated and prefill/decode deployments on the same objective;
:func:`as_afd` names such a deployment's mode ``afd``. Every figure is :func:`cost_models.afd.decode`'s, the
function ``moeplan evaluate`` uses for a scenario's ``afd:`` section.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cost_models import afd
from cost_models.afd import AfdLayout
from cost_models.kinds import DEFAULT_PLAN_MODES, DeploymentMode, PoolRole, Rejection
from cost_models.serving import decode_context
from cost_models.specs import ClusterSpec, ModelSpec, ServingWorkload
from planner.cpsat.deployment_instance import Deployment

MAX_UNIT_NODES = 8
"""Most nodes (attention + FFN instances) of one AFD unit searched; bigger clusters run replicas of a unit. The
published units have 4-6 nodes (Step-3 Table 8); the bound keeps the search at most 28 ratios on any cluster."""

ATTENTION_TPS = (1,)
"""Attention TP degrees searched inside an attention instance: local DP per device, as Step-3 (§7.1) and
MegaScale-Infer (§3: attention replicated by data parallelism) run it; ``search_afd(attention_tps=...)`` widens it."""

MICRO_BATCHES = (2, 3, 4)
"""Ping-pong micro-batch counts searched (Step-3 §7.1 runs 3, one per pipeline stage; MegaScale-Infer §4.1 pipelines
several): from 2, since one micro-batch leaves the attention devices idle while the FFN devices work and back;
``search_afd(micro_batches=...)`` widens it."""

MODES = tuple(m.value for m in DeploymentMode)
"""Deployment modes ``plan`` can search (aggregated, disaggregated, afd). AFD contributes units only where the
model has routed experts and the cluster has a node besides two instances."""

DEFAULT_MODES = DEFAULT_PLAN_MODES
"""The modes ``plan`` searches by default (:data:`cost_models.kinds.DEFAULT_PLAN_MODES`: AFD is opt-in)."""


@dataclass(frozen=True, kw_only=True)
class AfdCandidate:
    """One costed AFD unit at its best batch: a decode-only pool layout."""

    dims: AfdLayout
    """The unit's layout (named like the search's ``Candidate.dims`` so the bands and views read both alike)."""
    devices_per_replica: int
    decode_tok_per_s_per_device: float
    tpot_s: float
    batch: int
    """Sequences in flight over the unit (m x attention ranks x sequences per rank per micro-batch)."""
    decode_batch_per_device: float
    """``batch`` / the unit's devices (attention and FFN devices)."""
    memory_used_bytes: float
    """The busier device kind's bytes, KV sized for whole sequences (input + output), as the search's other
    layouts are."""
    decode_ok: bool
    result: afd.AfdResult = field(repr=False, compare=False)
    prefill_tok_per_s_per_device: float = 0.0
    """An AFD unit decodes only (Step-3 §7: prefill runs on separate instances); 0 in every other role."""
    ttft_s: float = 0.0
    aggregated_tok_per_s_per_device: float = 0.0
    aggregated_user_tok_per_s: float = 0.0
    aggregated_tpot_s: float = 0.0
    prefill_ok: bool = False
    aggregated_ok: bool = False

    @property
    def user_tok_per_s(self) -> float:
        return 1.0 / self.tpot_s if self.tpot_s > 0 else 0.0

    def static_bytes(self, role: PoolRole) -> float:
        """Weights and runtime reserve of the busier device kind (the role is always decode)."""
        m = self.result.memory
        return max(m.attention_weight_bytes, m.ffn_weight_bytes) + m.runtime_reserve_bytes


@dataclass
class AfdSpace:
    """Every costed AFD unit, what each constraint rejected, and the layouts enumerated."""

    candidates: list[AfdCandidate]
    rejected: Counter[str]
    layouts_considered: int


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def afd_layouts(model: ModelSpec, cluster: ClusterSpec, *, rejected: Counter[str],
                ratios: Sequence[tuple[int, int]] | None = None, attention_tps: Sequence[int] | None = None,
                ffn_tps: Sequence[int] | None = None,
                micro_batches: Sequence[int] = MICRO_BATCHES) -> Iterator[AfdLayout]:
    """Every node-sized AFD unit that leaves at least one node of the cluster for the prefill pool it needs and
    passes :func:`cost_models.afd.check_layout` (divisibility rejections counted); ``ratios`` (A, F),
    ``attention_tps``, ``ffn_tps`` restrict the search (a ratio over the nodes is a topology rejection)."""
    dpn = cluster.devices_per_node
    nodes = min(cluster.num_nodes - 1, MAX_UNIT_NODES)  # an AFD unit leaves at least a node to prefill
    if model.moe is None:
        return
    pairs = ratios or [(a, f) for a in range(1, nodes) for f in range(1, nodes - a + 1)]
    for a, f in pairs:
        unit = dataclasses.replace(cluster, num_nodes=a + f)  # check_layout compares with a cluster's devices
        if a + f > nodes:
            rejected[Rejection.TOPOLOGY] += 1
            continue
        for att_tp in attention_tps or ATTENTION_TPS:
            for ffn_tp in ffn_tps or _divisors(dpn):
                for m in micro_batches:
                    lay = AfdLayout(attention_instances=a, attention_instance_devices=dpn, attention_tp=att_tp,
                                    ffn_instances=f, ffn_instance_devices=dpn, ffn_tp=ffn_tp, micro_batches=m)
                    if afd.check_layout(lay, model, unit):
                        rejected[Rejection.DIVISIBILITY] += 1
                        continue
                    yield lay


def _cost(model: ModelSpec, cluster: ClusterSpec, lay: AfdLayout, wl: ServingWorkload,
          per_rank: int) -> afd.AfdResult:
    """The unit at ``per_rank`` sequences per attention rank per micro-batch, memory sized for whole sequences."""
    batch = per_rank * lay.micro_batches * lay.attention_ranks
    r = afd.decode(model, cluster, lay, batch=float(batch), context_tokens=decode_context(wl),
                   weight_precision=wl.weight_precision, kv_precision=wl.kv_precision,
                   dispatch_precision=wl.dispatch_precision, imbalance=wl.expert_imbalance)
    return dataclasses.replace(r, memory=_memory(model, cluster, lay, wl, batch / lay.attention_ranks))


def _memory(model: ModelSpec, cluster: ClusterSpec, lay: AfdLayout, wl: ServingWorkload,
            sequences_per_rank: float) -> afd.AfdMemory:
    return afd.afd_memory(model, cluster, lay, sequences_per_rank=sequences_per_rank,
                          context_tokens=wl.input_tokens + wl.output_tokens, weight_precision=wl.weight_precision,
                          kv_precision=wl.kv_precision)


def max_per_rank_by_memory(model: ModelSpec, cluster: ClusterSpec, lay: AfdLayout, wl: ServingWorkload) -> int:
    """Most sequences per attention rank per micro-batch whose whole-length KV fits (0: not even one; also 0
    when the FFN device's experts do not fit)."""
    empty = _memory(model, cluster, lay, wl, 0.0)
    if empty.ffn_device_bytes > empty.capacity_bytes:
        return 0
    per_seq = _memory(model, cluster, lay, wl, 1.0).kv_cache_bytes
    free = empty.capacity_bytes - empty.attention_device_bytes
    return max(0, int(free // (per_seq * lay.micro_batches))) if per_seq > 0 else 0


def best_batch(model: ModelSpec, cluster: ClusterSpec, lay: AfdLayout,
               wl: ServingWorkload) -> tuple[afd.AfdResult | None, Rejection | None]:
    """The unit at the largest batch that fits memory and meets the TPOT SLO (TPOT and memory only grow with the
    batch: bisection on sequences per rank per micro-batch), or the constraint that rules out even one."""
    hi = max_per_rank_by_memory(model, cluster, lay, wl)
    if hi < 1:
        return None, Rejection.MEMORY
    slo = wl.tpot_slo_s
    top = _cost(model, cluster, lay, wl, hi)
    if slo is None or top.tpot_s <= slo:
        return top, None
    low = _cost(model, cluster, lay, wl, 1)
    if low.tpot_s > slo:
        return None, Rejection.TPOT
    lo, t_lo, t_hi = 1, low.tpot_s, top.tpot_s  # invariant: lo meets the SLO, hi does not
    while hi - lo > 1:
        # TPOT is close to linear in the batch: interpolate, then look one step beyond the guess to close early
        guess = lo + int((slo - t_lo) / (t_hi - t_lo) * (hi - lo)) if t_hi > t_lo else (lo + hi) // 2
        guess = min(max(guess, lo + 1), hi - 1)
        r = _cost(model, cluster, lay, wl, guess)
        if r.tpot_s <= slo:
            lo, low, t_lo = guess, r, r.tpot_s
            step = guess + 1
        else:
            hi, t_hi = guess, r.tpot_s
            step = guess - 1
        if lo < step < hi:
            probe = _cost(model, cluster, lay, wl, step)
            if probe.tpot_s <= slo:
                lo, low, t_lo = step, probe, probe.tpot_s
            else:
                hi, t_hi = step, probe.tpot_s
    return low, None


def candidate(lay: AfdLayout, r: afd.AfdResult) -> AfdCandidate:
    m = r.memory
    return AfdCandidate(dims=lay, devices_per_replica=lay.devices,
                        decode_tok_per_s_per_device=r.throughput_tok_per_s_per_device, tpot_s=r.tpot_s,
                        batch=round(r.batch), decode_batch_per_device=r.batch / lay.devices,
                        memory_used_bytes=max(m.attention_device_bytes, m.ffn_device_bytes), decode_ok=True, result=r)


def search_afd(model: ModelSpec, cluster: ClusterSpec, wl: ServingWorkload, **restrict: Sequence) -> AfdSpace:
    """Cost every AFD unit (:func:`afd_layouts`; ``restrict``: its ``ratios`` / ``attention_tps`` / ``ffn_tps`` /
    ``micro_batches``) at its best batch; count rejections by constraint."""
    rejected: Counter[str] = Counter()
    layouts = list(afd_layouts(model, cluster, rejected=rejected, **restrict))
    out: list[AfdCandidate] = []
    for lay in layouts:
        r, why = best_batch(model, cluster, lay, wl)
        if r is None:
            rejected[why] += 1
            continue
        out.append(candidate(lay, r))
    return AfdSpace(candidates=out, rejected=rejected, layouts_considered=len(layouts))


def as_afd(d: Deployment) -> Deployment:
    """A deployment whose decode pool is an AFD unit, with its mode named ``afd``."""
    return dataclasses.replace(d, mode=DeploymentMode.AFD) if isinstance(d.decode, AfdCandidate) else d


def infeasible_reason(space: AfdSpace, wl: ServingWorkload, cluster: ClusterSpec) -> tuple[str, str, list[str]]:
    """(constraint, detail, fixes) when no AFD deployment was found, for ``plan --modes afd``."""
    if not space.layouts_considered:
        if space.rejected.get(Rejection.DIVISIBILITY):
            return ("divisibility", "no AFD unit's FFN EP groups (FFN devices / expert TP) divide the routed "
                    "experts", ["a node count whose FFN devices divide the experts"])
        return ("topology", "an AFD unit needs one node per attention and per FFN instance and a node left to "
                f"prefill: at least 3 nodes, {cluster.num_nodes} here",
                ["at least three nodes", "--modes aggregated,disaggregated"])
    if not space.candidates:
        if space.rejected.get(Rejection.TPOT):
            return ("tpot", "every AFD unit misses the TPOT SLO "
                    f"{(wl.tpot_slo_s or 0) * 1e3:.0f} ms at one sequence per attention rank per micro-batch",
                    ["a looser TPOT SLO", "shorter context", "more FFN instances"])
        return ("memory", "no AFD unit fits one sequence per attention rank per micro-batch with its experts",
                ["more FFN instances (experts) or attention instances (KV)", "lower weight or KV precision",
                 "shorter sequences"])
    best = min(space.candidates, key=lambda c: c.devices_per_replica)
    return ("pools", f"the smallest AFD unit ({best.dims.label()}) takes {best.devices_per_replica} of "
            f"{cluster.num_devices} devices and leaves no room for a prefill pool that meets every constraint",
            [f"more than {best.devices_per_replica} devices", "a looser TTFT SLO"])
