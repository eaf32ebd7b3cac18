"""`moeplan plan` against AIConfigurator 0.12.0 on the same question, end to end, plus moeplan's own speed
targets; called by `benchmarks/plan_speed.py --side-by-side`.

Every figure is a subprocess as a user runs it: wall clock from spawn to exit (interpreter start included),
CPU time as the child's user + system time from resource.getrusage(RUSAGE_CHILDREN). The runs are
interleaved (one repetition of every command, then the next), so a load from another process on the machine
falls on both tools alike; the load average is printed beside the table. Each figure is the median of N
repetitions, with the minimum beside it; a target holds when the median meets it. Speed is measured here,
never asserted in unit tests.

Exit status: 0 every target holds, 1 a target is missed, 2 a command failed.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiconfigurator_peer as peer

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_16 = "scenarios/deepseek_v3_h200_16.yaml"
RATIO_FLOOR = 100.0
"""AIConfigurator's wall time over moeplan's on SCENARIO_16 must be at least this."""


@dataclass(frozen=True, kw_only=True)
class Case:
    """One command to time."""

    key: str
    """Short name the figures refer to."""
    label: str
    """What the table calls it."""
    argv: tuple[str, ...]
    """The command, run with the repository root as working directory."""
    cpu: bool = False
    """Judge it by CPU time (True) or by wall time (False)."""
    target_s: float | None = None
    """The most seconds the target allows; None for a figure with no target of its own."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One timed run."""

    wall_s: float
    cpu_s: float
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True, kw_only=True)
class Spread:
    """Median and minimum of N repetitions (seconds, or a ratio of seconds)."""

    median: float
    minimum: float


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One row of the table: wall and CPU spreads, and the target one of them is judged against."""

    label: str
    wall: Spread | None
    """None when a run failed."""
    cpu: Spread | None
    ratio: bool = False
    """The spreads are ratios (AIConfigurator / moeplan), not seconds."""
    judged_on_cpu: bool = False
    """The target applies to the CPU median (True) or to the wall median (False)."""
    target: float | None = None
    at_least: bool = False
    """True when the target is a floor (the ratio), False when it is a ceiling (seconds)."""

    @property
    def holds(self) -> bool | None:
        if self.target is None:
            return None
        judged = self.cpu if self.judged_on_cpu else self.wall
        if judged is None:
            return False
        return judged.median >= self.target if self.at_least else judged.median <= self.target


def moeplan_cases(moeplan: str) -> list[Case]:
    """moeplan's commands and their targets (the house acceptance line)."""
    return [
        Case(key="plan16", label=f"moeplan plan {SCENARIO_16} --json", argv=(moeplan, "plan", SCENARIO_16, "--json")),
        Case(key="plan1024", label="moeplan plan scenarios/deepseek_v3_h200_1024.yaml --json",
             argv=(moeplan, "plan", "scenarios/deepseek_v3_h200_1024.yaml", "--json"), target_s=2.0),
        Case(key="plan384", label="moeplan plan scenarios/deepseek_r1_cloudmatrix384.yaml --json",
             argv=(moeplan, "plan", "scenarios/deepseek_r1_cloudmatrix384.yaml", "--json"), target_s=3.0),
        Case(key="schedule16", label=f"moeplan plan {SCENARIO_16} --overlap-model schedule --json",
             argv=(moeplan, "plan", SCENARIO_16, "--overlap-model", "schedule", "--json"), target_s=5.0),
        Case(key="help", label="moeplan --help", argv=(moeplan, "--help"), cpu=True, target_s=0.3),
        Case(key="evaluate16", label=f"moeplan evaluate {SCENARIO_16}", argv=(moeplan, "evaluate", SCENARIO_16),
             cpu=True, target_s=0.5),
    ]


def timed(argv: tuple[str, ...], cwd: Path) -> Sample:
    """Run argv to completion and measure it: wall clock around the subprocess, CPU from the rusage delta."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall_s=wall_s, cpu_s=cpu_s, returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def run_all(cases: list[Case], repeat: int, peer_cwd: Path) -> dict[str, list[Sample]]:
    """Every case `repeat` times, interleaved; the peer (key 'aic') runs in its own scratch directory."""
    samples: dict[str, list[Sample]] = {c.key: [] for c in cases}
    for rep in range(repeat):
        for c in cases:
            s = timed(c.argv, peer_cwd if c.key == "aic" else ROOT)
            samples[c.key].append(s)
            state = "ok" if s.returncode == 0 else f"exit {s.returncode}"
            print(f"[{rep + 1}/{repeat}] {c.label}: {s.wall_s:.2f} s wall, {s.cpu_s:.2f} s CPU, {state}",
                  file=sys.stderr)
    return samples


def spread(samples: list[Sample], cpu: bool) -> Spread | None:
    """Median and minimum of the runs' wall (or CPU) seconds, or None if any run failed."""
    if not samples or any(s.returncode != 0 for s in samples):
        return None
    vals = [s.cpu_s if cpu else s.wall_s for s in samples]
    return Spread(median=statistics.median(vals), minimum=min(vals))


def figure_of(case: Case, samples: list[Sample]) -> Figure:
    return Figure(label=case.label, wall=spread(samples, cpu=False), cpu=spread(samples, cpu=True),
                  judged_on_cpu=case.cpu, target=case.target_s)


def _over(a: Spread | None, b: Spread | None) -> Spread | None:
    """a / b: median over median, min over min."""
    if a is None or b is None:
        return None
    return Spread(median=a.median / b.median, minimum=a.minimum / b.minimum)


def ratio_figure(aic: list[Sample], moeplan: list[Sample], floor: float) -> Figure:
    """AIConfigurator's time over moeplan's, judged on wall time against `floor`."""
    return Figure(label="ratio AIConfigurator / moeplan",
                  wall=_over(spread(aic, cpu=False), spread(moeplan, cpu=False)),
                  cpu=_over(spread(aic, cpu=True), spread(moeplan, cpu=True)),
                  ratio=True, target=floor, at_least=True)


def _cells(sp: Spread | None, ratio: bool) -> tuple[str, str]:
    if sp is None:
        return ("failed", "failed")
    return tuple(f"{v:.1f}x" if ratio else f"{v:.2f} s" for v in (sp.median, sp.minimum))


def _target_text(f: Figure) -> str:
    if f.target is None:
        return "-"
    on = "CPU" if f.judged_on_cpu else "wall"
    return f">= {f.target:g}x {on}" if f.at_least else f"<= {f.target:g} s {on}"


def format_table(figures: list[Figure]) -> str:
    """A plain-text table: figure, wall and CPU median and min, target, whether the judged median meets it."""
    head = ("figure", "wall median", "wall min", "CPU median", "CPU min", "target", "holds")
    rows = [head]
    for f in figures:
        verdict = {None: "-", True: "yes", False: "NO"}[f.holds]
        rows.append((f.label, *_cells(f.wall, f.ratio), *_cells(f.cpu, f.ratio), _target_text(f), verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _pool_text(pool: dict) -> str:
    p = pool["plan"]
    batch = "" if pool["role"] == "prefill" else f", batch {pool['decode_batch_per_device']:g}/device"
    return (f"{pool['role']} {pool['replicas']} x [attn TP{p['attn_tp']} x DP{p['attn_dp']}, EP{p['moe_ep']} x "
            f"expert TP{p['moe_tp']}, dense TP{p['dense_tp']}, PP{p['pp']}, +{p['redundant_experts']} redundant, "
            f"{p['overlap']}{batch}]")


def moeplan_answer(stdout: str) -> str:
    """moeplan's chosen deployment, read from its `plan --json` document."""
    try:
        doc = json.loads(stdout)
        best = doc["top"][0]
    except (json.JSONDecodeError, KeyError, IndexError) as e:
        return f"(no plan read: {e})"
    pools = "; ".join(_pool_text(p) for p in best["pools"])
    return (f"{best['mode']}, {best['output_tok_per_s_per_device']:.1f} output tok/s/GPU "
            f"(TTFT {best['ttft_s']:.2f} s, TPOT {best['tpot_s'] * 1e3:.1f} ms): {pools}")


def aic_answer(stdout: str) -> str:
    ans = peer.parse_answer(stdout)
    if ans is None:
        return "(no 'Best Experiment Chosen' line in its output)"
    slo = ""
    if ans.ttft_s is not None and ans.tpot_s is not None:
        slo = f" (TTFT {ans.ttft_s:.2f} s, TPOT {ans.tpot_s * 1e3:.1f} ms)"
    return f"{ans.mode}, {ans.tok_per_s_per_gpu:.1f} output tok/s/GPU{slo}: {ans.layout}"


def _failures(cases: list[Case], samples: dict[str, list[Sample]]) -> list[str]:
    out = []
    for c in cases:
        for s in samples[c.key]:
            if s.returncode != 0:
                tail = (s.stderr or s.stdout).strip().splitlines()[-3:]
                out.append(f"{c.label}: exit {s.returncode}: {' | '.join(tail)}")
                break
    return out


def moeplan_executable() -> str:
    """The `moeplan` script beside this interpreter (the project's .venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "moeplan"
    found = str(beside) if beside.exists() else shutil.which("moeplan")
    if found is None:
        raise SystemExit("moeplan not found beside this Python nor on PATH: run `make venv` and use .venv/bin/python")
    return found


def main(repeat: int, with_peer: bool, venv: Path) -> int:
    moeplan = moeplan_executable()
    cases = moeplan_cases(moeplan)
    if with_peer:
        cases.insert(1, Case(key="aic", label="aiconfigurator " + " ".join(peer.QUESTION_ARGS[:2]) + " (same question)",
                             argv=tuple(peer.command(venv))))
        peer.ensure_venv(venv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="aic-run-") as scratch:
        samples = run_all(cases, repeat, Path(scratch))
    load_after = os.getloadavg()
    figures = [figure_of(c, samples[c.key]) for c in cases]
    if with_peer:
        figures.insert(2, ratio_figure(samples["aic"], samples["plan16"], floor=RATIO_FLOOR))
    print(f"{os.cpu_count()} CPUs; 1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{repeat} runs each, interleaved")
    if with_peer:
        print("AIConfigurator: " + " ".join(["aiconfigurator", *peer.QUESTION_ARGS]))
    print(format_table(figures))
    print(f"\nmoeplan answered: {moeplan_answer(samples['plan16'][-1].stdout)}")
    if with_peer:
        print(f"AIConfigurator answered: {aic_answer(samples['aic'][-1].stdout)}")
    failed = _failures(cases, samples)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    if failed:
        return 2
    return 0 if all(f.holds is not False for f in figures) else 1
