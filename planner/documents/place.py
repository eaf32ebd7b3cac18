"""Expert placement results as a document (schema ``moeplan.place/2``) and the heatmap other documents embed.

The document carries, per layer, the three arrays that serving engines' expert-load balancers load (DeepSeek
EPLB's ``phy2log`` / ``log2phy`` / ``logcnt``; vLLM and SGLang read the same):

* ``physical_to_logical``: length ``slots``; slot ``s`` sits on device ``s // slots_per_device`` and holds
  that logical expert;
* ``logical_to_physical``: per logical expert, its slot ids, padded with -1 to ``max_replicas`` (the most
  replicas of any expert in any layer, so the layers stack into one tensor);
* ``replica_counts``: per logical expert, its number of slots;

plus the layer's max / mean device load (in the load file's token counts), the lower bound, the gap and
the scale-out metrics, for the CP-SAT placement and the two greedy baselines.
"""

from __future__ import annotations

from typing import Literal

from planner.cpsat.placement_greedy import PlacementScore, device_tokens
from planner.cpsat.placement_result import LayerResult, PlacementResult
from planner.documents.base import (
    Count,
    Document,
    NonNegative,
    PlacementMethod,
    Positive,
    SolverStatus,
    StoppedBy,
    field,
    optional,
    schema_id,
)
from planner.documents.limits import SolveLimits
from planner.inputs.loads import ExpertLoads

PLACE_SCHEMA = "moeplan.place/2"

GREEDY_HIERARCHICAL = ("EPLB-style greedy: routing groups onto nodes, then replicas and packing within each node "
                       "(falls back to greedy_global when groups do not split evenly over nodes).")
GREEDY_GLOBAL = "Greedy: water-filled replica counts over all devices, packed heaviest-first onto the least-loaded device."
CPSAT = "The CP-SAT placement (large-neighbourhood search from the best greedy start, then the node model)."


class Heatmap(Document):
    """Expert-placement heatmap: per MoE layer, each EP device's routed tokens over the layer's mean device load."""

    method: PlacementMethod = field("Placement method the heatmap shows.")
    num_devices: Positive = field("EP devices (moe_ep); a count.")
    devices_per_node: Positive = field("EP devices per node; a count.")
    slots: Positive = field("Physical expert slots per layer (routed experts + redundant slots); a count.")
    layers: list[Count] = field("MoE layer indices (rows of the load file, from 0), one per row of relative_load.")
    relative_load: list[list[NonNegative]] = field("Per layer, per device: routed tokens / the layer's mean device "
                                                   "load (1.0 = perfectly even; dimensionless).")
    mean_imbalance: NonNegative = field("Mean over layers of max / mean device load (dimensionless, >= 1).")
    worst_imbalance: NonNegative = field("Largest max / mean device load of any layer (dimensionless, >= 1).")
    source: str = field("Where the router counts came from (the load file's path as given, or a synth_loads(...) "
                        "description).")


class Score(Document):
    """One placement method's result on one layer (planner.cpsat.placement_greedy.PlacementScore)."""

    max_device_tokens: NonNegative = field("Routed tokens on the most-loaded device (the load file's token counts).")
    imbalance: NonNegative = field("max / mean device load (dimensionless, >= 1).")
    group_node_pairs: Count = field("(routing group, node) pairs with a replica on that node: the scale-out traffic "
                                    "proxy (fewest possible: one node per group); a count.")
    token_node_reach: Count | None = field("Most nodes one token can reach when it uses at most topk_groups routing "
                                           "groups, a count; null for an ungrouped model.")


class LayerScores(Document):
    """Every method's score on one layer."""

    greedy_hierarchical: Score = field(GREEDY_HIERARCHICAL)
    greedy_global: Score = field(GREEDY_GLOBAL)
    cpsat: Score = field(CPSAT)


class PlaceLayer(Document):
    """One MoE layer's placement: the EPLB arrays of the CP-SAT placement and every method's scores."""

    layer: Count = field("MoE layer index (row of the load file), from 0.")
    physical_to_logical: list[Count] = field("Length `slots`: the index of the logical expert slot s holds; slot s sits "
                                             "on device s // slots_per_device (EPLB phy2log).")
    logical_to_physical: list[list[int]] = field("Per logical expert, its slot ids padded with -1 to max_replicas "
                                                 "(EPLB log2phy).")
    replica_counts: list[Positive] = field("Per logical expert, its number of slots, a count (EPLB logcnt).")
    mean_device_tokens: NonNegative = field("Mean routed tokens per device (the load file's token counts).")
    max_device_tokens: NonNegative = field("Routed tokens on the most-loaded device under the CP-SAT placement.")
    lower_bound_tokens: NonNegative = field("Lower bound on max_device_tokens, tokens: the larger of the mean device "
                                            "load and the smallest achievable largest per-replica load.")
    gap: NonNegative = field("(max_device_tokens - lower_bound_tokens) / lower_bound_tokens, a fraction (0 when the "
                             "bound is 0).")
    status: SolverStatus = field("OPTIMAL when the max load is at the bound (within quantization), else FEASIBLE.")
    solves: Count = field("CP-SAT solves behind the layer, a count (neighbourhood sub-solves and the node solve); "
                          "depends on timing when stopped_by is `time_limit`.")
    work_units: NonNegative = field("CP-SAT deterministic work units (its 'deterministic seconds', not seconds) "
                                    "those solves used (reproducible unless stopped_by is `time_limit`).")
    stopped_by: StoppedBy = field("Why the search ended: `bound` (proven optimal), `gap_limit`, `no_progress`, "
                                  "`effort` (deterministic budget) or `time_limit` (wall clock: the only "
                                  "timing-dependent one).")
    wall_s: NonNegative = field("Wall-clock seconds of the layer's search (varies run to run).")
    methods: LayerScores = field("Every method's score on this layer.")


class PlaceConfig(Document):
    """What the placement was asked to do."""

    num_devices: Positive = field("EP devices (the plan's moe_ep); a count.")
    devices_per_node: Positive = field("EP devices per node; a count.")
    slots: Positive = field("Physical expert slots per layer (routed experts + redundant slots); a count.")
    slots_per_device: Positive = field("slots / num_devices; a count.")
    num_groups: Positive = field("Routing groups of the model (1: ungrouped); a count.")
    topk_groups: Positive = field("Groups one token may route to; a count.")
    time_limit_s_per_layer: NonNegative = field("Wall-clock cap per layer, seconds (a safety net behind the work "
                                                "limit; --time-limit shares its budget over the layers below it).")
    work_limit_units_per_layer: NonNegative = field("CP-SAT deterministic work units per layer for the balance "
                                                    "search (not seconds).")
    seed: int = field("CP-SAT random seed (`--seed`).")


class MethodSummary(Document):
    """One method's max / mean device load over the layers."""

    mean_imbalance: NonNegative = field("Mean over layers of max / mean device load (dimensionless).")
    worst_imbalance: NonNegative = field("Largest max / mean device load of any layer (dimensionless).")


class MethodSummaries(Document):
    """Per method, mean and worst max / mean device load."""

    greedy_hierarchical: MethodSummary = field(GREEDY_HIERARCHICAL)
    greedy_global: MethodSummary = field(GREEDY_GLOBAL)
    cpsat: MethodSummary = field(CPSAT)


class PlaceSummary(Document):
    """Means over the layers."""

    methods: MethodSummaries = field("Per placement method, its mean and worst max / mean device load.")
    mean_bound_imbalance: NonNegative = field("Mean over layers of lower_bound_tokens / mean_device_tokens "
                                              "(dimensionless).")
    mean_gap: NonNegative = field("Mean over layers of the CP-SAT placement's gap to the bound, a fraction.")
    wall_s: NonNegative = field("Wall-clock seconds of the whole placement (varies run to run).")


class PlaceDocument(Document):
    """Output of `moeplan place SCENARIO --expert-load FILE --json`: per MoE layer, which EP device holds which
    experts and replicas (the arrays DeepSeek EPLB, vLLM and SGLang load), CP-SAT beside the two greedy balancers,
    with bound and gap; plus the heatmap. Loads are in the load file's token counts. `wall_s` keys vary run to
    run. Versioning: adding an optional key keeps the version; removing, renaming or changing the meaning of a key
    bumps it."""

    schema_id: Literal["moeplan.place/2"] = schema_id(PLACE_SCHEMA)
    source: str = field("Where the router counts came from (the load file's path as given).")
    config: PlaceConfig = field("What the placement was asked to do: devices, slots, groups, limits, seed.")
    max_replicas: Positive = field("The most replicas of any expert in any layer: the width of logical_to_physical; "
                                   "a count.")
    summary: PlaceSummary = field("Means over the layers, per method and for the bound.")
    layers: list[PlaceLayer] = field("One entry per MoE layer of the load file.")
    placement: Heatmap = field("The CP-SAT placement as a heatmap.")
    solve_limits: SolveLimits | None = optional("Present with `--time-limit`: which layers' solves it stopped.")
    scenario: str | None = optional("The scenario's `name:` (absent when the document was built without one).")
    plan: str | None = optional("The plan placed on (its moe_ep devices and redundant slots): the decode pool's of a "
                                "deployment, as a plan string (planner.inputs.deployment_text.plan_text).")


def _score(s: PlacementScore) -> Score:
    return Score(max_device_tokens=s.max_device_tokens, imbalance=s.imbalance, group_node_pairs=s.group_node_pairs,
                 token_node_reach=s.token_node_reach)


def _layer(r: LayerResult, width: int) -> PlaceLayer:
    p = r.cpsat.placement
    return PlaceLayer(
        layer=r.layer, physical_to_logical=list(p.physical_to_logical),
        logical_to_physical=[list(s) for s in p.logical_to_physical(pad_to=width)],
        replica_counts=list(p.replica_counts), mean_device_tokens=r.cpsat.mean_device_tokens,
        max_device_tokens=r.cpsat.max_device_tokens, lower_bound_tokens=r.lower_bound_tokens, gap=r.stats.gap,
        status=r.stats.status, solves=r.solves, work_units=r.work_units, stopped_by=r.stopped_by,
        wall_s=r.stats.wall_s, methods=LayerScores(greedy_hierarchical=_score(r.greedy_hierarchical),
                                                   greedy_global=_score(r.greedy_global), cpsat=_score(r.cpsat)))


def _method_summary(result: PlacementResult, m: str) -> MethodSummary:
    return MethodSummary(mean_imbalance=result.mean_imbalance(m), worst_imbalance=result.worst_imbalance(m))


def placement_document(result: PlacementResult, heatmap: Heatmap, limits: SolveLimits | None = None, *,
                       scenario: str | None = None, plan: str | None = None) -> PlaceDocument:
    """The ``moeplan place --json`` document of a :class:`PlacementResult`; ``heatmap``: its ``placement`` key
    (:func:`heatmap_document`); ``limits``: the ``--time-limit`` block."""
    width = result.max_replicas
    config = PlaceConfig(num_devices=result.num_devices, devices_per_node=result.devices_per_node,
                         slots=result.slots, slots_per_device=result.slots // result.num_devices,
                         num_groups=result.num_groups, topk_groups=result.topk_groups,
                         time_limit_s_per_layer=result.time_limit_s,
                         work_limit_units_per_layer=result.work_limit_units, seed=result.seed)
    summary = PlaceSummary(
        methods=MethodSummaries(greedy_hierarchical=_method_summary(result, "greedy_hierarchical"),
                                greedy_global=_method_summary(result, "greedy_global"),
                                cpsat=_method_summary(result, "cpsat")),
        mean_bound_imbalance=result.mean_bound_imbalance, mean_gap=result.mean_gap, wall_s=result.wall_s)
    return PlaceDocument(schema_id=PLACE_SCHEMA, source=result.source, config=config, max_replicas=width,
                         summary=summary, layers=[_layer(r, width) for r in result.layers], placement=heatmap,
                         solve_limits=limits, scenario=scenario, plan=plan)


def heatmap_document(result: PlacementResult, loads: ExpertLoads, method: str = "cpsat") -> Heatmap:
    """Per layer, each EP device's routed tokens over the layer's mean device load (1.0 = perfectly even);
    ``loads`` are the router counts ``result`` was placed from."""
    rows = []
    for r, tokens in zip(result.layers, loads.tokens, strict=True):
        sc = getattr(r, method)
        loads_per_device = device_tokens(sc.placement, tokens)
        rows.append([x / sc.mean_device_tokens if sc.mean_device_tokens else 1.0 for x in loads_per_device])
    return Heatmap(method=method, num_devices=result.num_devices, devices_per_node=result.devices_per_node,
                   slots=result.slots, layers=[r.layer for r in result.layers], relative_load=rows,
                   mean_imbalance=result.mean_imbalance(method), worst_imbalance=result.worst_imbalance(method),
                   source=result.source)
