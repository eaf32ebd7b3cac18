"""Enumerate and cost every per-unit parallel layout of a scenario; the CP-SAT deployment model then picks pools.

Why enumeration is enough here (and CP-SAT is not needed for it): a unit's per-device throughput, latency and
memory depend only on its own degrees (attn_tp, attn_dp, moe_ep, moe_tp, dense_tp, pp, overlap) and batch,
never on how many replicas of it run; so costing each distinct layout once is exact and the layout space is
small (divisor chains of the device count, a few hundred layouts for 1,024 devices). What couples decisions is
the split of the cluster into replicas and into prefill / decode pools, which is where
:mod:`planner.cpsat.deployment` uses CP-SAT.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cost_models import metrics
from cost_models.kinds import DeploymentMode, PoolRole, Rejection
from cost_models.parallel import OverlapPolicy, ParallelDims, check_dims
from cost_models.serving import DecodeBatch, DecodeBatchLimit, ServingResult, evaluate
from cost_models.specs import AttentionKind, ClusterSpec, ModelSpec, ServingWorkload
from cost_models.step import OverlapModel
from planner.search import helper

MAX_TP = 16
"""Largest tensor-parallel degree searched: beyond 16 every layer pays an all-reduce over more devices than any
published MoE deployment uses, and head / FFN slices shrink below efficient GEMM widths."""



@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One costed unit layout (``dims.dp == 1``): what each of its devices delivers in each role."""

    dims: ParallelDims
    devices_per_replica: int
    """Devices of one replica (unit x pp)."""
    prefill_tok_per_s_per_device: float
    ttft_s: float
    decode_tok_per_s_per_device: float
    tpot_s: float
    """Decode step TPOT (per accepted token): what a user of a decode pool sees."""
    decode_batch_per_device: float
    aggregated_tok_per_s_per_device: float
    aggregated_user_tok_per_s: float
    aggregated_tpot_s: float
    """TPOT a user of an aggregated pool sees (:func:`cost_models.metrics.aggregated_tpot_s`)."""
    memory_used_bytes: float
    prefill_ok: bool
    """Fits memory and meets the TTFT SLO as a prefill instance."""
    decode_ok: bool
    """Fits memory and meets the TPOT SLO as a decode instance."""
    aggregated_ok: bool
    """Meets both as an aggregated instance."""
    costed: ServingResult | Callable[[], ServingResult] = field(repr=False, compare=False)
    """The full result (:attr:`result`), or, for a layout the search helper costed (its figures above came from
    there), the function that costs it again at the batch the helper found, run when :attr:`result` is first
    read: most of a search's layouts are never read beyond these figures."""

    @property
    def result(self) -> ServingResult:
        """The layout's full serving result (phases, steps, memory); the same whichever process costed it."""
        r = self.costed
        if callable(r):
            r = r()
            object.__setattr__(self, "costed", r)  # memoised once (the figures it repeats are fields already)
        return r

    def __getstate__(self) -> dict[str, object]:
        _ = self.result  # a function does not travel between processes: the result does
        return self.__dict__

    @property
    def user_tok_per_s(self) -> float:
        return 1.0 / self.tpot_s if self.tpot_s > 0 else 0.0

    def static_bytes(self, role: PoolRole) -> float:
        """Static memory per device when this layout serves ``role`` (:func:`cost_models.metrics.pool_static_bytes`)."""
        return metrics.pool_static_bytes(role, self.result)


@dataclass
class SearchSpace:
    """Every candidate plus the count of layouts each constraint rejected."""

    candidates: list[Candidate]
    rejected: Counter[str]
    layouts_considered: int


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def unit_layouts(model: ModelSpec, cluster: ClusterSpec, max_devices: int, *, rejected: Counter[str],
                 unit_sizes: list[int] | None = None) -> Iterator[ParallelDims]:
    """Every ParallelDims with dp=1 whose unit x pp fits ``max_devices`` and divides a pool size.

    Topology rules (rejected as ``topology``): attention TP and expert TP stay inside one scale-up domain
    (their all-reduces are per-layer and latency-critical); EP may span the scale-out tier."""
    dpn = cluster.devices_per_node
    att = model.attention
    sizes = unit_sizes or [u for u in _divisors(max_devices)]
    for pp in (1, 2, 4):
        if pp > model.num_layers:
            continue
        for unit in sizes:
            if unit * pp > max_devices or max_devices % (unit * pp):
                continue
            if dpn % unit and unit % dpn:
                # a unit that neither fits inside a node nor covers whole nodes straddles node boundaries
                # unevenly: some of its EP / TP traffic would cross the scale-out tier for no gain
                rejected[Rejection.TOPOLOGY] += 1
                continue
            for attn_tp in _divisors(unit):
                if attn_tp > min(dpn, MAX_TP):
                    rejected[Rejection.TOPOLOGY] += 1
                    continue
                if att.num_q_heads % attn_tp or (att.kind is not AttentionKind.MLA and att.num_kv_heads % attn_tp
                                                 and attn_tp % att.num_kv_heads):
                    rejected[Rejection.DIVISIBILITY] += 1
                    continue
                yield from _moe_variants(model, cluster, unit, attn_tp, pp, rejected)


def _moe_variants(model: ModelSpec, cluster: ClusterSpec, unit: int, attn_tp: int, pp: int,
                  rejected: Counter[str]) -> Iterator[ParallelDims]:
    base = dict(attn_tp=attn_tp, attn_dp=unit // attn_tp, pp=pp)
    dense_tps = sorted({1, attn_tp}) if model.num_dense_layers else [1]
    if model.moe is None:
        yield ParallelDims(**base, dense_tp=attn_tp)
        return
    experts = model.moe.num_routed_experts
    for moe_tp in _divisors(unit):
        if moe_tp > min(cluster.devices_per_node, MAX_TP):
            rejected[Rejection.TOPOLOGY] += 1
            continue
        ep = unit // moe_tp
        if model.moe.expert_ffn_dim % moe_tp:
            rejected[Rejection.DIVISIBILITY] += 1
            continue
        spare = (-experts) % ep  # fewest redundant slots that make the slots divide by EP
        if spare > experts // 2:
            rejected[Rejection.DIVISIBILITY] += 1
            continue
        for dense_tp in dense_tps:
            for overlap in (tuple(OverlapPolicy) if ep > 1 else (OverlapPolicy.NONE,)):  # none, TBO, SBO
                yield ParallelDims(**base, moe_ep=ep, moe_tp=moe_tp, dense_tp=dense_tp, redundant_experts=spare,
                                   micro_batches=2 if overlap is OverlapPolicy.TWO_BATCH else 1, overlap=overlap)


def cost_layout(model: ModelSpec, cluster: ClusterSpec, dims: ParallelDims, wl: ServingWorkload,
                overlap_model: OverlapModel | None = None, *, decode_hint_rank: int | None = None,
                decode_batch: DecodeBatch | None = None) -> Candidate:
    """Cost one layout in every role (floats, the same functions as ``moeplan evaluate``); ``decode_hint_rank``
    only guides the TPOT batch search (:func:`cost_models.serving.decode_batch_search`); ``decode_batch`` is that
    search's answer found by the helper process (:func:`search_space`), the same result without the search."""
    r = evaluate(model, cluster, dims, wl, overlap_model=overlap_model, decode_hint_rank=decode_hint_rank,
                 decode_batch=decode_batch)
    pre_fits = r.prefill.memory.free_bytes >= 0
    dec_fits = r.decode.memory.free_bytes >= 0 and r.decode_batch_per_device > 0
    ttft_ok = wl.ttft_slo_s is None or r.prefill.latency_s <= wl.ttft_slo_s
    tpot_ok = wl.tpot_slo_s is None or r.decode.latency_s <= wl.tpot_slo_s
    # aggregated: a user's tokens also wait while the device prefills other prompts (the effective TPOT)
    agg_tpot_s = metrics.effective_tpot_s(DeploymentMode.AGGREGATED, r)
    agg_tpot_ok = wl.tpot_slo_s is None or agg_tpot_s <= wl.tpot_slo_s
    return Candidate(
        dims=dims, devices_per_replica=dims.unit_devices * dims.pp,
        prefill_tok_per_s_per_device=r.prefill.throughput_tok_per_s_per_device, ttft_s=r.prefill.latency_s,
        decode_tok_per_s_per_device=r.decode.throughput_tok_per_s_per_device if dec_fits else 0.0,
        tpot_s=r.decode.latency_s, decode_batch_per_device=r.decode_batch_per_device,
        aggregated_tok_per_s_per_device=r.aggregated_output_tok_per_s_per_device if dec_fits else 0.0,
        aggregated_user_tok_per_s=r.aggregated_user_tok_per_s, aggregated_tpot_s=agg_tpot_s,
        memory_used_bytes=max(r.prefill.memory.used_bytes, r.decode.memory.used_bytes),
        prefill_ok=pre_fits and ttft_ok, decode_ok=dec_fits and tpot_ok,
        aggregated_ok=pre_fits and dec_fits and ttft_ok and agg_tpot_ok, costed=r)


def layout_workload(wl: ServingWorkload, dims: ParallelDims,
                    imbalance_of: Callable[[ParallelDims], float] | None = None,
                    workload_of: Callable[[ParallelDims, ServingWorkload], ServingWorkload] | None = None
                    ) -> ServingWorkload:
    """The workload one layout is costed with: its expert imbalance (``imbalance_of``), then the engine's
    adjustment (``workload_of``: its memory reserve), as :func:`search_space` takes them."""
    if imbalance_of is not None:
        wl = dataclasses.replace(wl, expert_imbalance=imbalance_of(dims))
    return wl if workload_of is None else workload_of(dims, wl)


HELPER_MIN_LAYOUTS = 200
"""Layouts from which :func:`search_space` hands a share to a forked helper (:mod:`planner.search.helper`):
below it the search takes well under half a second and the fork is not worth its start."""

HELPER_SHARE = 0.6
"""Share of the layouts dealt to the helper. It sends back each layout's figures, not its full result, and the
parent costs a result again only where one is read (:attr:`Candidate.costed`: the shortlist's few dozen), so both
sides do about the same work per layout; but the parent also reads the pipe and builds every candidate, and the
two sides' families differ in cost. So the helper is dealt more than half and the parent, done with its own
share, costs the helper's families from the last one back until the two meet (:func:`search_space`): they end
together whichever side is faster, to within one family."""

_Event = tuple[str | None, Candidate | None]
"""What the search loop did with one layout: the rejection it counted (or None) and the candidate it kept."""


@dataclass(frozen=True, kw_only=True)
class _Costing:
    """The search loop over a share of the layouts, as :func:`search_space` runs it."""

    model: ModelSpec
    cluster: ClusterSpec
    wl: ServingWorkload
    layouts: list[ParallelDims]
    imbalance_of: Callable[[ParallelDims], float] | None
    refused: frozenset[int]
    """Indices of the layouts the target engine refuses (asked once each, in layout order, before the loop)."""
    workload_of: Callable[[ParallelDims, ServingWorkload], ServingWorkload] | None

    def run(self, indices: list[int], *, tick: Callable[[], None] | None = None) -> dict[int, _Event]:
        """Cost the layouts at ``indices`` in order. The state the loop keeps (a pp = 1 layout's memory verdict,
        the batch hints) is per family of one attention split and MoE group size, so a share made of whole
        families (:func:`_shares`) runs exactly as that share does inside the loop over every layout."""
        events: dict[int, _Event] = {}
        memory_bound: dict[ParallelDims, bool] = {}
        hints: dict[ParallelDims | tuple[int, int, int], int] = {}
        for i in indices:
            events[i] = ("engine", None) if i in self.refused else self._one(
                self.layouts[i], memory_bound, hints)
            if tick is not None:
                tick()
        return events

    def _workload(self, dims: ParallelDims) -> ServingWorkload:
        return layout_workload(self.wl, dims, self.imbalance_of, self.workload_of)

    def _one(self, dims: ParallelDims, memory_bound: dict[ParallelDims, bool],
             hints: dict[ParallelDims | tuple[int, int, int], int]) -> _Event:
        if check_dims(dims, self.model, dims.unit_devices * dims.pp):
            return Rejection.DIVISIBILITY, None
        flat = dataclasses.replace(dims, pp=1)
        if dims.pp > 1 and memory_bound.get(flat) is False:
            # Pipeline stages only help by freeing memory: per device they run the same ops on fewer layers,
            # so throughput per device is at best equal and latency grows by the stage hand-offs. When the
            # pp=1 layout's decode batch is already set by the TPOT SLO (not memory), more memory buys nothing.
            return Rejection.PP_NO_GAIN, None
        wl = self._workload(dims)
        family = _decode_family(dims)
        hint = hints.get(family)
        if hint is None and dims.overlap is OverlapPolicy.TWO_BATCH:
            hint = hints.get(two_batch_family(dims))
        c = cost_layout(self.model, self.cluster, dims, wl, decode_hint_rank=hint)
        if c.result.decode_batch_limit == "tpot_slo":
            hints[family] = round(c.decode_batch_per_device * dims.attn_tp)
            if dims.overlap is OverlapPolicy.TWO_BATCH:
                hints[two_batch_family(dims)] = hints[family]
        if dims.pp == 1:
            fits = c.result.prefill.memory.free_bytes >= 0
            memory_bound[dims] = not fits or c.result.decode_batch_limit is DecodeBatchLimit.MEMORY
        return (None if c.prefill_ok or c.decode_ok else _why(c, self.wl)), c

    def helper_events(self, families: list[list[int]]) -> Iterator[tuple[int, dict[int, _Sent]]]:
        """The helper's work, family by family (``(position in families, events)``): each layout's event with its
        candidate's figures and decode batch, not its full result (a few hundred bytes a layout; the parent costs
        a result again only where it is read, :attr:`Candidate.costed`)."""
        for k, indices in enumerate(families):
            yield k, {i: (reason, None if c is None else (tuple(getattr(c, f) for f in _FIGURES),
                                                          c.result.decode_batch_limit))
                      for i, (reason, c) in self.run(indices).items()}

    def received(self, sent: dict[int, _Sent]) -> dict[int, _Event]:
        """The parent's events of a family the helper sent (:meth:`helper_events`)."""
        out: dict[int, _Event] = {}
        for i, (reason, cand) in sent.items():
            if cand is None:
                out[i] = (reason, None)
                continue
            values, limit = cand
            figures = dict(zip(_FIGURES, values, strict=True))
            batch = DecodeBatch(batch_per_device=figures["decode_batch_per_device"], limit=limit, step=None, probes=0)
            out[i] = (reason, Candidate(dims=self.layouts[i], **figures,
                                        costed=functools.partial(self._result_at, i, batch)))
        return out

    def _result_at(self, i: int, batch: DecodeBatch) -> ServingResult:
        """Layout ``i`` costed again at the decode batch the helper found (the same result it computed)."""
        dims = self.layouts[i]
        return cost_layout(self.model, self.cluster, dims, self._workload(dims), decode_batch=batch).result


_FIGURES = ("devices_per_replica", "prefill_tok_per_s_per_device", "ttft_s", "decode_tok_per_s_per_device", "tpot_s",
            "decode_batch_per_device", "aggregated_tok_per_s_per_device", "aggregated_user_tok_per_s",
            "aggregated_tpot_s", "memory_used_bytes", "prefill_ok", "decode_ok", "aggregated_ok")
"""The fields of a :class:`Candidate` besides its layout and result."""

_Sent = tuple[str | None, tuple[tuple[float | bool | int, ...], DecodeBatchLimit] | None]
"""One layout's event as the helper sends it: the rejection, and the candidate's figures (in ``_FIGURES`` order)
with its batch limit."""


def _shares(layouts: list[ParallelDims]) -> tuple[list[int], list[list[int]]]:
    """(the parent's layout indices, the helper's families): whole families (attention TP and DP, MoE group
    size: what :meth:`_Costing.run` keeps state by) dealt largest first to the side furthest below its target
    (``HELPER_SHARE`` of the layouts to the helper); indices in order within each."""
    families: dict[tuple[int, int, int], list[int]] = {}
    for i, d in enumerate(layouts):
        families.setdefault(two_batch_family(d), []).append(i)
    own: list[int] = []
    theirs: list[list[int]] = []
    given = 0
    for members in sorted(families.values(), key=lambda m: (-len(m), m[0])):
        if HELPER_SHARE * len(layouts) - given >= (1.0 - HELPER_SHARE) * len(layouts) - len(own):
            theirs.append(members)
            given += len(members)
        else:
            own.extend(members)
    return sorted(own), theirs


def search_space(model: ModelSpec, cluster: ClusterSpec, wl: ServingWorkload, *,
                 progress: Callable[[int, int], None] | None = None,
                 imbalance_of: Callable[[ParallelDims], float] | None = None,
                 refusal: Callable[[ParallelDims], str | None] | None = None,
                 workload_of: Callable[[ParallelDims, ServingWorkload], ServingWorkload] | None = None,
                 use_helper: bool = False) -> SearchSpace:
    """Cost every layout that can tile the cluster; count rejections by constraint. ``refusal`` names why the
    target engine cannot launch a layout (counted under ``engine``); ``workload_of`` adjusts the workload per
    layout (the engine's memory reserve, planner/search/engines.py). ``use_helper``: from
    ``HELPER_MIN_LAYOUTS`` layouts on, a forked helper (:mod:`planner.search.helper`) costs a share of them
    meanwhile; the candidates (figures and results), their order and the rejection counts are those of the
    search without it (tests/test_search_helper.py)."""
    rejected: Counter[str] = Counter()
    layouts = list(unit_layouts(model, cluster, cluster.num_devices, rejected=rejected))
    refused = frozenset(i for i, d in enumerate(layouts) if refusal is not None and refusal(d) is not None)
    costing = _Costing(model=model, cluster=cluster, wl=wl, layouts=layouts, imbalance_of=imbalance_of,
                       refused=refused, workload_of=workload_of)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(layouts))

    pending = None
    if use_helper and len(layouts) >= HELPER_MIN_LAYOUTS:
        own, theirs = _shares(layouts)
        pending = helper.start(lambda: costing.helper_events(theirs))
    events = None
    if pending is not None:
        try:
            t0 = time.perf_counter()
            events = costing.run(own, tick=tick)
            left = dict(enumerate(theirs))
            # each family as soon as the helper has it; while it has nothing new, the parent costs the helper's
            # last family not yet delivered (the helper works from the first): the two meet wherever the work
            # balances, and a family both cost is kept once (the same events either way). A helper silent for far
            # longer than the parent's own share took is given up on.
            idle_s = max(helper.IDLE_TIMEOUT_S, 4.0 * (time.perf_counter() - t0))
            messages = pending.messages(idle_s)
            while left:
                if not pending.ready():
                    k = max(left)
                    events.update(costing.run(left.pop(k), tick=tick))
                    continue
                item = next(messages, None)
                if item is None:  # the helper ended (or failed): the rest is costed here
                    for indices in left.values():
                        events.update(costing.run(indices, tick=tick))
                    break
                k, sent = item
                if left.pop(k, None) is None:
                    continue  # a family the parent costed itself meanwhile
                events.update(costing.received(sent))
                for _ in sent:
                    tick()
        except Exception:  # costed again in layout order below: the same exception as without the helper
            events = None
        finally:
            pending.close()
    if events is None:
        done = 0
        events = costing.run(list(range(len(layouts))), tick=tick)
    out: list[Candidate] = []
    for i in sorted(events):  # counted and kept in layout order, as one loop over every layout does
        reason, c = events[i]
        if reason is not None:
            rejected[reason] += 1
        if c is not None:
            out.append(c)
    return SearchSpace(candidates=out, rejected=rejected, layouts_considered=len(layouts))


def _decode_family(dims: ParallelDims) -> ParallelDims:
    """Layouts whose TPOT-limited decode batches lie close together: the same attention and MoE degrees and
    overlap, differing only in the dense-layer TP (a few of the layers) or the pipeline depth (the same layers
    in stages). One's answer is the next one's hint."""
    return dataclasses.replace(dims, dense_tp=1, pp=1)


def two_batch_family(dims: ParallelDims) -> tuple[int, int, int]:
    """Two-batch layouts of one attention split and MoE group size: their TPOT-limited batches differ by a
    sequence or two across the EP / expert-TP split (measured on the 16-, 768- and 1,024-device scenarios: 7, 7, 7;
    17, 17, 17; 34, 35, 35 at attention TP 1, 2, 4 on 8 GPUs), so the first of a new expert-TP degree starts from
    its sibling's answer (a hint, never the answer: :func:`cost_models.serving.decode_batch_search`)."""
    return dims.attn_tp, dims.attn_dp, dims.moe_ep * dims.moe_tp


def _why(c: Candidate, wl: ServingWorkload) -> Rejection:
    r = c.result
    if r.prefill.memory.free_bytes < 0 or r.decode.memory.free_bytes < 0 or r.decode_batch_per_device <= 0:
        return Rejection.MEMORY
    if wl.ttft_slo_s is not None and c.ttft_s > wl.ttft_slo_s:
        return Rejection.TTFT
    return Rejection.TPOT


def pareto_front(cands: list[Candidate]) -> list[Candidate]:
    """Decode candidates not beaten on both throughput per device and tokens/s per user."""
    pts = sorted((c for c in cands if c.decode_ok), key=lambda c: (-c.decode_tok_per_s_per_device, -c.user_tok_per_s))
    front: list[Candidate] = []
    best_user = -math.inf
    for c in pts:
        if c.user_tok_per_s > best_user:
            front.append(c)
            best_user = c.user_tok_per_s
    return front
