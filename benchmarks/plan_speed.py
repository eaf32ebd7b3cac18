"""Time `moeplan plan` on every shipped scenario and print a table (wall seconds, layouts, solver status).

Run: .venv/bin/python benchmarks/plan_speed.py [--repeat N]
Speed is measured here, never asserted in unit tests. Each scenario is planned in a fresh process state
(op-cost caches cleared) so the figure is what a user sees on the first call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from cost_models import ops
from planner.inputs.scenario import load_scenario
from planner.search.plan import NoFeasiblePlan, run_plan

ROOT = Path(__file__).resolve().parents[1]


def _clear_caches() -> None:
    for fn in (ops.attention_ops, ops.moe_ops, ops.dense_ffn_ops, ops.head_ops):
        fn.cache_clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        sc = load_scenario(path)
        times = []
        status, layouts, mode = "-", 0, "-"
        for _ in range(args.repeat):
            _clear_caches()
            t0 = time.perf_counter()
            try:
                res = run_plan(sc, top_k=5)
                status, layouts, mode = res.stats[0].status, res.layouts_considered, res.deployments[0].mode
            except NoFeasiblePlan as e:
                status = f"infeasible ({e.constraint})"
            times.append(time.perf_counter() - t0)
        rows.append((path.name, sc.cluster.num_devices, layouts, status, mode, statistics.median(times)))
    print(f"{'scenario':42s} {'devices':>7s} {'layouts':>7s} {'status':>12s} {'mode':>14s} {'wall s':>7s}")
    for name, n, layouts, status, mode, t in rows:
        print(f"{name:42s} {n:7d} {layouts:7d} {status:>12s} {mode:>14s} {t:7.2f}")


if __name__ == "__main__":
    main()
