"""Time `moeplan plan` on every shipped scenario and print a table (wall seconds, layouts, solver status).

Run: .venv/bin/python benchmarks/plan_speed.py [--repeat N]
Speed is measured here, never asserted in unit tests. Each scenario is planned in a fresh process state
(op-cost caches cleared) so the figure is what a user sees on the first call.

Side by side with NVIDIA AIConfigurator 0.12.0, every command end to end as a subprocess:
    .venv/bin/python benchmarks/plan_speed.py --side-by-side [--repeat N] [--no-peer] [--aic-venv DIR]
creates benchmarks/.venv-aiconfigurator (git-ignored) on first use and installs aiconfigurator==0.12.0 into it;
see benchmarks/side_by_side.py for what is timed and benchmarks/aiconfigurator_peer.py for the question.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from cost_models import compute, ops, step
from planner.inputs.scenario import load_scenario
from planner.search.plan import NoFeasiblePlan, run_plan

ROOT = Path(__file__).resolve().parents[1]


def _clear_caches() -> None:
    for fn in (ops.attention_ops, ops.mfa_attention_ops, ops.moe_ops, ops.dense_ffn_ops, ops.head_ops,
               step._layer, compute._grouped_matmul_cached, compute._memory_bound_cost_cached):
        fn.cache_clear()
    ops._GEMM_MATH.clear()
    ops._QUANT_BYTES.clear()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Time moeplan plan; --side-by-side: against AIConfigurator 0.12.0.")
    ap.add_argument("--repeat", type=int, default=None,
                    help="repetitions per command (default: 1 in-process, 3 with --side-by-side)")
    ap.add_argument("--side-by-side", action="store_true",
                    help="time moeplan and AIConfigurator end to end as subprocesses, with the speed targets")
    ap.add_argument("--no-peer", action="store_true",
                    help="with --side-by-side: time moeplan's commands only (no AIConfigurator install)")
    ap.add_argument("--aic-venv", type=Path, default=None,
                    help="AIConfigurator's virtual environment (default: benchmarks/.venv-aiconfigurator)")
    args = ap.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.side_by_side else 1
    if args.repeat < 1:
        ap.error(f"--repeat: got {args.repeat}; accepted: an integer >= 1")
    if (args.no_peer or args.aic_venv) and not args.side_by_side:
        ap.error("--no-peer and --aic-venv go with --side-by-side")
    return args


def in_process(repeat: int) -> None:
    """The original mode: run_plan on every shipped scenario in this process, caches cleared per run."""
    rows = []
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        sc = load_scenario(path)
        times = []
        status, layouts, mode = "-", 0, "-"
        for _ in range(repeat):
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.side_by_side:
        in_process(args.repeat)
        return 0
    import side_by_side
    from aiconfigurator_peer import DEFAULT_VENV

    return side_by_side.main(args.repeat, with_peer=not args.no_peer, venv=args.aic_venv or DEFAULT_VENV)


if __name__ == "__main__":
    sys.exit(main())
