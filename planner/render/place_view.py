"""Terminal view of a placement and the CSV writer for load matrices (the rich side of `moeplan place`)."""

from __future__ import annotations

from rich.table import Table

from planner.cpsat.placement_result import METHODS, PlacementResult


def layer_table(res: PlacementResult, *, max_rows: int = 64) -> Table:
    """Per layer: max/mean device load of the two greedy balancers and CP-SAT, the bound and the gap."""
    t = Table(title=f"Expert placement: {res.slots} slots on {res.num_devices} devices "
                    f"({res.num_devices // res.devices_per_node} nodes); max / mean device load per layer")
    for col in ("layer", "greedy hierarchical", "greedy global", "CP-SAT", "bound", "gap", "status"):
        t.add_column(col, justify="right")
    for r in res.layers[:max_rows]:
        t.add_row(str(r.layer), f"{r.greedy_hierarchical.imbalance:.3f}", f"{r.greedy_global.imbalance:.3f}",
                  f"{r.cpsat.imbalance:.3f}", f"{r.bound_imbalance:.3f}", f"{r.stats.gap:.2%}", r.stats.status)
    t.add_row("mean", f"{res.mean_imbalance('greedy_hierarchical'):.3f}", f"{res.mean_imbalance('greedy_global'):.3f}",
              f"{res.mean_imbalance('cpsat'):.3f}", f"{res.mean_bound_imbalance:.3f}", f"{res.mean_gap:.2%}", "",
              end_section=True)
    t.add_row("worst", f"{res.worst_imbalance('greedy_hierarchical'):.3f}",
              f"{res.worst_imbalance('greedy_global'):.3f}", f"{res.worst_imbalance('cpsat'):.3f}", "", "", "")
    return t


def summary_lines(result: PlacementResult) -> list[str]:
    """A few human lines: per method mean / worst max-over-mean device load, the bound, gap and wall time."""
    n = len(result.layers)
    head = (f"{result.slots} slots on {result.num_devices} devices in "
            f"{result.num_devices // result.devices_per_node} nodes, {n} layers")
    lines = [head, f"{'method':22s} {'mean':>8s} {'worst':>8s} {'pairs':>7s} {'reach':>6s}"]
    for m in METHODS:
        pairs = sum(getattr(r, m).group_node_pairs for r in result.layers) / n
        reach = [getattr(r, m).token_node_reach for r in result.layers]
        reach_s = f"{max(x for x in reach if x is not None):6d}" if any(x is not None for x in reach) else "     -"
        lines.append(f"{m:22s} {result.mean_imbalance(m):8.4f} {result.worst_imbalance(m):8.4f} {pairs:7.1f} {reach_s}")
    lines.append(f"{'lower bound':22s} {result.mean_bound_imbalance:8.4f}")
    lines.append(f"mean gap to bound {result.mean_gap:.5f}; wall {result.wall_s:.1f} s "
                 f"({result.time_limit_s:g} s limit per layer)")
    return lines
