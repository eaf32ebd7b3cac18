"""Time `moeplan plan` on every shipped training scenario (scenarios/training/*.yaml) and print a table: wall and
CPU seconds of the search, layouts considered and costed, the chosen layout.

Run: .venv/bin/python benchmarks/train_plan_speed.py [--repeat N] [--objective throughput|time|devices]
Speed is measured here, never asserted in unit tests.  The target (issue 13) is under 10 s per scenario; the
CPU column is what the search itself used (on a shared machine wall time also counts other processes).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from planner.inputs.training import load_training
from planner.search.training import NoFeasibleTrainingPlan, search

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 10.0


def time_one(path: Path, objective: str) -> tuple[float, float, str]:
    sc = load_training(path)
    if objective != "throughput" and sc.token_budget is None or objective == "devices" and sc.deadline_s is None:
        return float("nan"), float("nan"), "no token budget / deadline for this objective"
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        res = search(sc, objective=objective)
    except NoFeasibleTrainingPlan as e:
        return time.perf_counter() - w0, time.process_time() - c0, f"infeasible: {e.constraint}"
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    d = res.top[0].dims
    best = (f"{res.considered} considered, {res.costed} costed; TP{d.tp} CP{d.cp} PP{d.pp} {d.schedule.value} "
            f"EP{d.ep} DP{d.dp}: {res.top[0].tokens_per_s_per_device:,.0f} tok/s/device")
    return wall, cpu, best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--objective", choices=("throughput", "time", "devices"), default="throughput")
    args = ap.parse_args(argv)
    print(f"{'scenario':<36} {'wall s':>8} {'cpu s':>8}  result")
    worst = 0.0
    for path in sorted((ROOT / "scenarios" / "training").glob("*.yaml")):
        runs = [time_one(path, args.objective) for _ in range(max(1, args.repeat))]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        worst = max(worst, wall) if wall == wall else worst
        print(f"{path.stem:<36} {wall:>8.2f} {cpu:>8.2f}  {runs[-1][2]}")
    print(f"slowest wall {worst:.2f} s (target < {TARGET_S:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
