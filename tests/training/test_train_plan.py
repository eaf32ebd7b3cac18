"""``plan`` / ``evaluate`` / ``compare`` on training scenarios: the search against brute force, its lower bound,
the Pareto front, the CP-SAT pipeline path, the reports and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.analysis.training import evaluate_training
from planner.cli import main
from planner.inputs.training import load_training
from planner.search.training import _best_on, pareto_front, search
from planner.search.training_bound import ComputeBound, rank_layer_counts

ROOT = Path(__file__).resolve().parents[2]
QWEN30 = ROOT / "scenarios" / "training" / "qwen3_30b_a3b_910b_16.yaml"
GPT_8 = """name: small GPT on 8 A100
model: {shape: {hidden_size: 2048, num_heads: 16, num_layers: 16}, name: GPT 1B}
cluster: {device: a100_sxm_80gb, nodes: 1}
workload: {kind: training, seq_tokens: 2048, global_batch_sequences: 64, token_budget: 1000000000, deadline: 2 h}
"""


@pytest.fixture(scope="module")
def gpt8(tmp_path_factory) -> object:
    p = tmp_path_factory.mktemp("gpt") / "gpt8.yaml"
    p.write_text(GPT_8)
    return load_training(p)


@pytest.mark.parametrize("which", ["gpt8", "qwen30"])
def test_branch_and_bound_finds_the_brute_force_best(which, gpt8):
    # brute force: every layout with every recompute option that fits, all costed; the search prunes on the
    # compute lower bound and keeps only the lightest recompute that fits
    sc = gpt8 if which == "gpt8" else load_training(QWEN30)
    devices = sc.cluster.num_devices
    from collections import Counter
    _, costed_all, every = _best_on(sc, devices, 1, Counter(), exhaustive=True)
    _, costed, best = _best_on(sc, devices, 3, Counter(), exhaustive=False)
    assert costed < costed_all
    assert best[0].step_s == pytest.approx(every[0].step_s, rel=1e-12)
    assert [e.step_s for e in best] == pytest.approx([e.step_s for e in every[:3]], rel=1e-12)


@pytest.mark.parametrize("which", ["gpt8", "qwen30"])
def test_step_lower_bound_never_exceeds_the_step(which, gpt8):
    from collections import Counter
    sc = gpt8 if which == "gpt8" else load_training(QWEN30)
    _, _, every = _best_on(sc, sc.cluster.num_devices, 1, Counter(), exhaustive=True)
    bound = ComputeBound(sc)
    assert len(every) > 20
    for e in every:
        assert bound.step_lower_bound_s(e.dims, e.workload) <= e.step_s * (1 + 1e-12)


def test_rank_layer_counts_hand_derived():
    # DeepSeek-V3: 61 layers (3 dense) on PP16 1F1B: 61 = 16 x 3 + 13; the 13 extra layers go to chunks 1..13
    # (first and last stay light), so rank 0 holds layers 0-2 (all dense), rank 1 layers 3-6 (4 MoE)
    from cost_models.training.dims import TrainingDims
    from planner.catalog.models import get_model
    counts = rank_layer_counts(get_model("deepseek-v3"), TrainingDims(pp=16, dp=1))
    assert counts[0] == (3, 0) and counts[1] == (0, 4) and counts[15] == (0, 3)
    assert sum(d + m for d, m in counts) == 61


def test_pareto_front_keeps_only_faster_with_more_devices(gpt8):
    res = search(gpt8, objective="time", top_k=3)
    front = list(res.pareto)
    assert [e.devices for e in front] == sorted({e.devices for e in front})
    assert all(a.tokens_per_s < b.tokens_per_s for a, b in zip(front, front[1:], strict=False))
    assert pareto_front(list(res.top) + front) == pareto_front(front)


def test_objective_devices_is_the_fewest_meeting_the_deadline(gpt8):
    res = search(gpt8, objective="devices", top_k=5)
    assert all(e.time_to_tokens_s(gpt8.token_budget) <= gpt8.deadline_s for e in res.top)
    assert res.top[0].devices == min(e.devices for e in res.top)


def test_small_pipeline_uses_cpsat_with_every_rank_times():
    sc = load_training(QWEN30)
    ev = evaluate_training(sc)
    # PP2 1F1B, 32 micro-batches: 32 x 2 chunks x 3 passes = 192 <= 600: solved with the 1F1B order fixed
    assert ev.pipeline.method == "cpsat" and ev.pipeline.schedule is not None
    # the closed form prices every rank as the busiest one: the schedule over each rank's own times is no longer
    assert ev.pipeline.pipeline_s <= ev.pipeline.closed_form_s * (1 + 1e-6)


def _run(*args: str | Path) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_evaluate_json_and_reports(tmp_path):
    res = _run("evaluate", QWEN30, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "moeplan.train.evaluate/1" and doc["pipeline"]["method"] == "cpsat"
    html = tmp_path / "q.html"
    assert _run("evaluate", QWEN30, "--export", html).exit_code == 0
    text = html.read_text()
    assert 'data-chart="train-gantt"' in text and 'data-chart="train-memory"' in text
    md = tmp_path / "q.md"
    assert _run("evaluate", QWEN30, "--export", md).exit_code == 0
    assert "Memory per pipeline stage" in md.read_text()


def test_cli_exit_codes(tmp_path):
    assert _run("evaluate", QWEN30, "--plan", "tp=3").exit_code == 2
    assert _run("evaluate", QWEN30, "--plan", "pp=2,ep=8,vpp=2,schedule=1f1b").exit_code == 2  # vpp, no interleaving
    over = _run("evaluate", QWEN30, "--plan", "tp=1,pp=1,ep=1,micro_batch=2")
    assert over.exit_code == 1 and "memory" in over.output
    assert _run("plan", QWEN30, "--objective", "devices").exit_code == 2  # no token budget / deadline
    assert _run("schedule", QWEN30).exit_code == 2
    assert _run("evaluate", QWEN30, "--emit", "vllm").exit_code == 2  # a serving engine


def test_cli_plan_and_compare_json(tmp_path):
    res = _run("plan", QWEN30, "--json", "--top", "3")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["top"]) == 3 and doc["top"][0]["tokens_per_s_per_device"] >= doc["top"][1]["tokens_per_s_per_device"]
    cmp = _run("compare", QWEN30, "--baseline", QWEN30, "--json")
    assert cmp.exit_code == 0, cmp.output
    rows = {m["name"]: m for m in json.loads(cmp.stdout)["metrics"]}
    # the default candidate is plan's best: at least as fast as the scenario's own layout
    assert rows["step time"]["candidate"] <= rows["step time"]["baseline"] * (1 + 1e-9)


def test_cli_emit_megatron_and_mindspeed_for_training_only():
    res = _run("evaluate", ROOT / "scenarios" / "training" / "qwen3_235b_h100_256.yaml", "--emit", "megatron", "--json")
    assert res.exit_code == 0, res.output
    launch = json.loads(res.stdout)["launch"]
    assert launch["engine"] == "megatron" and len(launch["commands"]) == 32  # one torchrun line per node
    assert "--expert-model-parallel-size" in launch["commands"][0]["argv"]
    res = _run("plan", QWEN30, "--emit", "mindspeed", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["chosen"]["launch"]["engine"] == "mindspeed"
    assert _run("evaluate", QWEN30, "--emit", "megatron").exit_code == 2  # Ascend: mindspeed
    assert _run("evaluate", ROOT / "scenarios" / "deepseek_v3_h200_16.yaml", "--emit", "megatron").exit_code == 2
