"""Terminal view of a placement and the CSV writer for load matrices (the rich side of `moeplan place`)."""

from __future__ import annotations

from rich.table import Table

from planner.cpsat.placement import PlacementResult
from planner.loads import ExpertLoads


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


def loads_to_csv(loads: ExpertLoads) -> str:
    """Rows = MoE layers, columns = experts, with a leading ``#`` provenance line (the format read_loads takes)."""
    lines = [f"# {loads.source or 'moeplan'}"]
    for row in loads.tokens:
        lines.append(",".join(f"{v:g}" for v in row))
    return "\n".join(lines) + "\n"
