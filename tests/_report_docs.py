"""Real moeplan documents for the report tests, each made once per test session through the CLI.

Every kind is produced the way a user would: ``moeplan <command> --json --export <kind>.html``; ``compare``
(which has no --export) goes through :func:`planner.render.export.write_export`. Kept fast: an explicit plan for
evaluate and schedule, placement of a 4-layer slice of the real router counts with a 0.05 s limit per layer,
and one ``plan`` run shared by every module that asks for it.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from planner.cli import main
from planner.render.export import write_export

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = str(ROOT / "scenarios" / "deepseek_v3_h200_16.yaml")
LOADS = ROOT / "planner" / "catalog" / "expert_loads" / "deepseek_v3_routing_counts.csv"
KINDS = ("evaluate", "plan", "schedule", "place", "compare")
PLAN = "attn_dp=16,moe_ep=16,redundant_experts=16,micro_batches=2,overlap=two_batch"
"""The bundled scenario's plan with two-batch overlap, so the evaluate report carries a 2-micro-batch Gantt."""


@functools.cache
def _folder() -> Path:
    folder = tempfile.mkdtemp(prefix="moeplan_reports_")
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder)


def _load_file() -> Path:
    """The first 4 MoE layers of the DeepSeek-V3 router counts (comment lines kept)."""
    out = _folder() / "loads4.csv"
    if not out.exists():
        lines = LOADS.read_text().splitlines()
        comments = [x for x in lines if x.startswith("#")]
        rows = [x for x in lines if x.strip() and not x.startswith("#")]
        out.write_text("\n".join(comments + rows[:4]) + "\n")
    return out


def _args(kind: str) -> list[str]:
    return {
        "evaluate": ["evaluate", SCENARIO, "--plan", PLAN],
        "plan": ["plan", SCENARIO, "--top", "3"],
        "schedule": ["schedule", SCENARIO, "--plan", PLAN],
        "place": ["place", SCENARIO, "--plan", "attn_dp=16,moe_ep=16,redundant_experts=32", "--expert-load",
                  str(_load_file()), "--time-limit", "0.05"],
        "compare": ["compare", SCENARIO, "--baseline", "attn_tp=8,attn_dp=2,moe_ep=16", "--candidate", PLAN],
    }[kind]


@functools.cache
def _exported(kind: str) -> tuple[str, Path]:
    html = _folder() / f"{kind}.html"
    export = [] if kind == "compare" else ["--export", str(html)]
    res = CliRunner().invoke(main, _args(kind) + ["--json"] + export)
    if res.exit_code != 0:
        raise RuntimeError(f"moeplan {' '.join(_args(kind))} failed ({res.exit_code}): {res.output}")
    if kind == "compare":
        write_export(html, json.loads(res.stdout))
    return res.stdout, html


def document(kind: str) -> dict[str, Any]:
    """A fresh copy of the ``kind`` document (tests may mutate it)."""
    return copy.deepcopy(json.loads(_exported(kind)[0]))


def html_path(kind: str) -> Path:
    """The HTML report of ``kind`` as written by ``--export`` (or write_export for compare)."""
    return _exported(kind)[1]


CHART_TITLES = {"memory": "Per-device memory", "layer-time-prefill": "Per-layer time (prefill)",
                "layer-time-decode": "Per-layer time (decode)", "gantt-moe": "Overlap schedule (moe layer)",
                "gantt-dense": "Overlap schedule (dense layer)", "pareto": "Pareto front: throughput vs interactivity",
                "rejected": "Rejected candidates by constraint", "placement-heatmap": "Expert placement heatmap",
                "placement-imbalance": "Load imbalance per layer", "compare-ratios": "Metric ratios"}
"""data-chart id -> the visible <h3> title of that chart."""


def chart_title(chart_id: str) -> str:
    """The <h3> title of a chart; a disaggregated deployment's pool charts carry the pool in id and title."""
    for pool in ("prefill", "decode"):
        if chart_id.startswith(f"{pool}-"):
            return f"{pool.capitalize()} pool: {CHART_TITLES[chart_id.removeprefix(pool + '-')]}"
    return CHART_TITLES[chart_id]


def _evaluate_expected(doc: dict[str, Any], *, chosen: bool = False,
                       pool: str | None = None) -> tuple[list[str], list[str]]:
    titles = ([] if chosen else ["Scenario", "Plan degrees"]) + ["Predicted performance", "Per-device memory",
                                                                 "Per-layer time"]
    charts = ["memory", "layer-time-prefill", "layer-time-decode"]
    if doc.get("schedule"):
        titles.append("Overlap schedule")
        charts += [f"gantt-{k}" for k in doc["schedule"]["layers"]]
    if doc.get("placement"):
        titles.append("Expert placement")
        charts.append("placement-heatmap")
    if doc.get("device") and pool != "prefill":
        titles.append("Assumptions and sources")
    if pool:
        titles, charts = [f"{t} ({pool} pool)" for t in titles], [f"{pool}-{c}" for c in charts]
    return titles, charts


def _deployment_expected(doc: dict[str, Any], *, chosen: bool = False) -> tuple[list[str], list[str]]:
    """An evaluate document with its ``deployment`` part: the Deployment section after the scenario, and a
    disaggregated deployment's two pools, each section titled with its pool."""
    if not doc.get("deployment"):
        return _evaluate_expected(doc, chosen=chosen)
    if not doc.get("prefill_pool"):
        t, c = _evaluate_expected(doc, chosen=chosen)
        cut = 0 if chosen else 1
        return t[:cut] + ["Deployment"] + t[cut:], c
    pt, pc = _evaluate_expected(doc["prefill_pool"], chosen=True, pool="prefill")
    dt, dc = _evaluate_expected(doc, chosen=True, pool="decode")
    return ([] if chosen else ["Scenario"]) + ["Deployment"] + pt + dt, pc + dc


def expected(doc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(section titles in order, data-chart ids) a document's report must show; optional keys included only when
    the document has them."""
    kind = doc["schema"].split(".")[1].split("/")[0]
    if kind == "evaluate":
        return _deployment_expected(doc)
    if kind == "plan":
        t, c = _deployment_expected(doc["chosen_breakdown"], chosen=True)
        return (["Scenario", "Chosen plan", f"Top {len(doc['top'])} deployments", "Pareto front",
                 "Rejected candidates", "Solver"] + t, ["pareto", "rejected"] + c)
    if kind == "schedule":
        return ["Scenario", "Plan degrees", "Overlap schedule"], [f"gantt-{k}" for k in doc["layers"]]
    if kind == "place":
        extra = doc.get("placement") is not None
        return (["Placement summary", "Per-layer imbalance"] + (["Expert placement"] if extra else [])
                + ["Expert-to-device arrays"],
                ["placement-imbalance"] + (["placement-heatmap"] if extra else []))
    return ["Compared plans", "Metrics", "Per-device memory"], ["compare-ratios", "memory"]
