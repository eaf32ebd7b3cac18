"""Print the training validation table of README 'Training validation': every scenario of
scenarios/validation/training/ evaluated as `moeplan evaluate` does, against its published figures.

Run: .venv/bin/python benchmarks/train_validation.py
The error is on the step time for throughput rows (tokens/s, TFLOP/s: measured / predicted - 1), on the value
otherwise; tolerance 20 % (step / throughput) and 15 % (memory).  Rows are validation, never fitting data.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from planner.analysis.training import evaluate_training
from planner.documents.training import checked_error, expect_checks, plan_doc
from planner.inputs.training import load_training
from planner.render.training_view import plan_text

ROOT = Path(__file__).resolve().parents[1]


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def main() -> int:
    print("| row | layout | metric | measured | predicted | error | within |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    step_errs = []
    for path in sorted((ROOT / "scenarios" / "validation" / "training").glob("*.yaml")):
        ev = evaluate_training(load_training(path))
        for c in expect_checks(ev):
            err = checked_error(c)
            if c.metric != "peak_memory_gib":
                step_errs.append(abs(err))
            ok = "yes" if abs(err) <= c.tolerance else "no (known gap)"
            print(f"| {ev.scenario.name} | {plan_text(plan_doc(ev))} | {c.metric} | {_num(c.measured)} | "
                  f"{_num(c.predicted)} | {err:+.1%} | {ok} |")
    within = sum(e <= 0.20 for e in step_errs)
    print(f"\nstep / throughput rows: {within} of {len(step_errs)} within 20 %, median |error| "
          f"{statistics.median(step_errs):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
