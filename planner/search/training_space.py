"""The training layouts ``plan`` enumerates on a given device count (solver-free, deterministic order).

Degrees are powers of two (as every published layout in the anchors is) within these limits:

* ``tp``: divides the query heads, at most 8 and inside the scale-up domain (devices per node): TP's
  all-gathers and reduce-scatters sit on the critical path of every layer;
* ``cp``: 1 below 16K tokens per sequence, else up to 8, ring or all-to-all (Ulysses);
* ``pp``: up to the layer count and 64; schedules 1F1B, ZB-H1, interleaved 1F1B (``vpp`` 2 and 4), DualPipe
  (even ``pp``) and DualPipeV; with EP > 1 the 1F1B and interleaved schedules use the all-to-all overlap, which
  never costs time (``F&B = max(C + f M, M) <= C + M``, cost_models.training.step);
* ``ep``: divides the routed experts; ``etp`` 1, or with ``ep`` 1 also ``tp`` (experts split like the dense
  part, as MindSpeed's Mixtral layout); ``dp`` the devices left over;
* micro-batch 1 and 2 (1 only above 2K tokens); optimizer sharding ZeRO-1, and FSDP (ZeRO-3) without pipelines;
* recompute: none, selective (norms and FFN activations, plus MLA's up-projections), full -- tried in that
  order, the first that fits is kept (less recompute is never slower; the brute-force test checks this).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from cost_models.specs import AttentionKind, ModelSpec
from cost_models.training.dims import A2AOverlap, ContextParallel, OptimizerSharding, Schedule, TrainingDims
from cost_models.training.specs import Recompute, RecomputeModule

MAX_TP = 8
MAX_PP = 64
CP_FROM_TOKENS = 16_384
MBS2_UP_TO_TOKENS = 2_048


def powers_of_two(limit: int) -> list[int]:
    out, d = [], 1
    while d <= limit:
        out.append(d)
        d *= 2
    return out


def recompute_options(model: ModelSpec) -> tuple[Recompute, ...]:
    """None, selective, full: in the order the search tries them."""
    mods = [RecomputeModule.NORM, RecomputeModule.ACTIVATION]
    if model.attention.kind is AttentionKind.MLA:
        mods.append(RecomputeModule.MLA_UP_PROJ)
    return Recompute.none(), Recompute(modules=frozenset(mods)), Recompute.full_layers()


@dataclass(frozen=True, kw_only=True)
class SpaceLimits:
    """What bounds the enumeration on one cluster."""

    devices: int
    scale_up_devices: int
    """Devices per scale-up domain (TP must stay inside)."""
    seq_tokens: int
    global_batch_sequences: int


def _schedules(model: ModelSpec, pp: int) -> list[tuple[Schedule, int]]:
    if pp == 1:
        return [(Schedule.ONE_F_ONE_B, 1)]
    out = [(Schedule.ONE_F_ONE_B, 1), (Schedule.ZERO_BUBBLE, 1)]
    out += [(Schedule.INTERLEAVED, v) for v in (2, 4) if pp * v <= model.num_layers]
    out += [(Schedule.DUALPIPE, 1)] if pp % 2 == 0 else []
    out += [(Schedule.DUALPIPE_V, 1)] if 2 * pp <= model.num_layers else []
    return out


def tp_options(model: ModelSpec, lim: SpaceLimits) -> list[int]:
    heads = model.attention.num_q_heads
    return [t for t in powers_of_two(min(MAX_TP, lim.devices)) if heads % t == 0]


def topology_ok(tp: int, lim: SpaceLimits) -> bool:
    return tp <= lim.scale_up_devices


def layouts(model: ModelSpec, lim: SpaceLimits) -> Iterator[TrainingDims]:
    """Every candidate layout on ``lim.devices`` devices (module docstring), before any check but the product."""
    experts = model.moe.num_routed_experts if model.moe is not None else 1
    cps = [c for c in powers_of_two(8) if lim.seq_tokens >= CP_FROM_TOKENS or c == 1]
    mbs = (1, 2) if lim.seq_tokens <= MBS2_UP_TO_TOKENS else (1,)
    for tp in tp_options(model, lim):
        for cp in cps:
            for pp in powers_of_two(min(MAX_PP, model.num_layers, lim.devices)):
                if lim.devices % (tp * cp * pp):
                    continue
                dp = lim.devices // (tp * cp * pp)
                for ep in (e for e in powers_of_two(experts) if experts % e == 0):
                    for etp in sorted({1, tp}) if model.moe is not None and ep == 1 else (1,):
                        for kind in (ContextParallel.RING, ContextParallel.ULYSSES) if cp > 1 else (
                                ContextParallel.RING,):
                            for d in _variants(model, tp=tp, cp=cp, pp=pp, dp=dp, ep=ep, etp=etp, mbs=mbs):
                                yield replace(d, cp_kind=kind)


def _variants(model: ModelSpec, *, tp: int, cp: int, pp: int, dp: int, ep: int, etp: int,
              mbs: tuple[int, ...]) -> Iterator[TrainingDims]:
    shardings = (OptimizerSharding.ZERO1, OptimizerSharding.ZERO3) if pp == 1 else (OptimizerSharding.ZERO1,)
    for schedule, vpp in _schedules(model, pp):
        overlap = (A2AOverlap.FB_PAIRS if ep > 1 and schedule in (Schedule.ONE_F_ONE_B, Schedule.INTERLEAVED)
                   else A2AOverlap.NONE)
        for mb in mbs:
            for sharding in shardings:
                yield TrainingDims(tp=tp, cp=cp, pp=pp, vpp=vpp, schedule=schedule, dp=dp, ep=ep, etp=etp,
                                   sharding=sharding, micro_batch_sequences=mb, a2a_overlap=overlap)
