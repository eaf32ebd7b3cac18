"""Training scenarios: the validation scenarios against their published rows (through the same evaluate path the
CLI uses), the shipped scenarios, the Qwen3-235B / 256 H100 question and the input edge (exit-2 discipline)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from planner.analysis.training import evaluate_training, with_layout
from planner.documents.training import checked_error, evaluate_document, expect_checks
from planner.inputs.errors import ScenarioError
from planner.inputs.scenario import load_scenario
from planner.inputs.training import load_training, parse_duration, parse_training_plan
from planner.search.training import search

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = sorted((ROOT / "scenarios" / "validation" / "training").glob("*.yaml"))
SHIPPED = sorted((ROOT / "scenarios" / "training").glob("*.yaml"))


def _checks(path: Path) -> list:
    return expect_checks(evaluate_training(load_training(path)))


@pytest.mark.parametrize("path", VALIDATION, ids=lambda p: p.stem)
def test_validation_row_within_tolerance_or_a_named_gap(path: Path):
    # each row: asserted within its tolerance (20 % step / throughput, 15 % memory), or, where the scenario names
    # the missing mechanism (known_gap), asserted OUTSIDE it, so a fix shows up here and the gap is removed
    for c in _checks(path):
        err = checked_error(c)
        print(f"\n{path.stem}: {c.metric} predicted {c.predicted:.4g}, measured {c.measured:.4g}, error {err:+.1%}")
        if c.known_gap:
            assert abs(err) > c.tolerance, f"{path.stem} {c.metric} now within tolerance: drop its known_gap"
        else:
            assert abs(err) <= c.tolerance


def test_validation_median_error_of_throughput_rows():
    errs = [abs(checked_error(c)) for p in VALIDATION for c in _checks(p) if c.metric != "peak_memory_gib"]
    med = statistics.median(errs)
    print(f"\nmedian |error| over {len(errs)} step / throughput rows: {med:.1%}")
    # regression guard of the measured state (14.6 % after the torchtitan micro-batch fix); the target is 10 %
    assert med <= 0.15


def test_every_validation_scenario_names_its_source():
    for p in VALIDATION:
        sc = load_training(p)
        assert sc.expect and all(e.source for e in sc.expect), p.stem


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_evaluates_or_plans(path: Path):
    sc = load_training(path)
    ev = evaluate_training(sc) if sc.plan is not None else None
    if ev is not None:
        doc = evaluate_document(ev)
        assert doc.performance.step_s > 0 and len(doc.memory) == ev.dims.pp
        print(f"\n{path.stem}: {doc.performance.tokens_per_s_per_device:,.0f} tok/s/device, peak "
              f"{ev.peak_memory.used_bytes / 2**30:.1f} GiB ({'fits' if ev.fits else 'over capacity'})")


def test_qwen3_235b_shared_layouts_in_measured_order_and_plan_at_least_as_fast():
    # Megatron-MoE-ModelZoo@798dfb50 qwen3 readme: 19.7 s without, 17.6 s with the 1F1B all-to-all overlap
    sc = load_training(ROOT / "scenarios" / "training" / "qwen3_235b_h100_256.yaml")
    without = evaluate_training(sc)
    with_overlap = with_layout(without, a2a_overlap=with_overlap_value())
    assert with_overlap.step_s < without.step_s
    best = search(sc, top_k=1).top[0]
    assert best.tokens_per_s_per_device >= max(without.tokens_per_s_per_device,
                                               with_overlap.tokens_per_s_per_device) * (1 - 1e-9)


def with_overlap_value():
    from cost_models.training.dims import A2AOverlap
    return A2AOverlap.FB_PAIRS


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "t.yaml"
    p.write_text(text)
    return p


BASE = """name: t
model: {catalog: qwen3-30b-a3b}
cluster: {device: h100_sxm, nodes: 2}
workload: {kind: training, seq_tokens: 4096, global_batch_sequences: 256%s}
%s"""


@pytest.mark.parametrize(("extra", "plan", "key"), [
    (", precision: fp9", "", "workload.precision"),
    (", global_batch_tokens: 100", "", "workload.global_batch_sequences"),
    (", deadline: soon", "", "workload.deadline"),
    (", routing: {capacity_factor: 1.2}", "", "workload.routing.capacity_factor"),
    ("", "plan: {tp: 3}", "plan.tp*cp*pp"),
    ("", "plan: {tp: 2, edp: 5}", "plan.edp"),
    ("", "plan: {recompute: [everything]}", "plan.recompute"),
    ("", "plan: {tpp: 2}", "plan.tpp"),
])
def test_bad_training_input_names_the_key(tmp_path: Path, extra: str, plan: str, key: str):
    with pytest.raises(ScenarioError) as e:
        load_training(_write(tmp_path, BASE % (extra, plan)))
    assert e.value.path == key


def test_serving_reader_refuses_a_training_scenario(tmp_path: Path):
    with pytest.raises(ScenarioError) as e:
        load_scenario(_write(tmp_path, BASE % ("", "")))
    assert e.value.path == "workload.kind"


def test_plan_string_and_mapping_agree(tmp_path: Path):
    sc = load_training(_write(tmp_path, BASE % ("", "plan: {tp: 2, pp: 2, ep: 4, recompute: [layernorm, moe_act]}")))
    dims, rec = parse_training_plan("tp=2,pp=2,ep=4,recompute=layernorm+moe_act", 16)
    assert dims == sc.plan and rec == sc.workload.recompute
    assert dims.dp == 16 // (2 * 2) and dims.edp == 2 * 4 // 4  # dp = devices / (tp pp); edp = tp dp / ep


def test_op_sac_in_the_plan_string_and_mapping(tmp_path: Path):
    sc = load_training(_write(tmp_path, BASE % ("", "plan: {tp: 2, pp: 2, ep: 4, recompute: op_sac}")))
    dims, rec = parse_training_plan("tp=2,pp=2,ep=4,recompute=op_sac", 16)
    assert rec == sc.workload.recompute and rec.op_sac and not rec.full and not rec.modules
    with pytest.raises(ScenarioError) as e:
        parse_training_plan("tp=2,recompute=op_sak", 16)
    assert e.value.path == "--plan.recompute" and "op_sac" in e.value.accepted


def test_durations():
    assert parse_duration("d", "30 days") == 30 * 86400
    assert parse_duration("d", "12 h") == 12 * 3600


def test_contiguous_imbalance_hand_derived():
    from planner.analysis.training import contiguous_imbalance
    from planner.inputs.loads import ExpertLoads
    loads = ExpertLoads(tokens=((4.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)))
    # layer 0 on EP2: ranks 4 and 0, mean 2 -> 2; on EP4: 4 / 1 -> 4; layer 1 balanced -> 1; mean over layers
    assert contiguous_imbalance(loads, 1) == 1.0
    assert contiguous_imbalance(loads, 2) == (2.0 + 1.0) / 2
    assert contiguous_imbalance(loads, 4) == (4.0 + 1.0) / 2


def test_router_counts_set_the_training_imbalance(tmp_path: Path):
    counts = ROOT / "planner" / "catalog" / "expert_loads" / "deepseek_v3_routing_counts.csv"
    text = (ROOT / "scenarios" / "training" / "deepseek_v3_h800_2048.yaml").read_text()
    assert "  kind: training\n" in text
    path = tmp_path / "dsv3_loads.yaml"
    path.write_text(text.replace("  kind: training\n", f"  kind: training\n  routing: {{expert_load: {counts}}}\n"))
    measured = evaluate_training(load_training(path))
    balanced = evaluate_training(load_training(ROOT / "scenarios" / "training" / "deepseek_v3_h800_2048.yaml"))
    assert measured.workload.expert_imbalance > 1.0
    assert measured.step_s > balanced.step_s
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  kind: training\n", "  kind: training\n  routing: {expert_load: nowhere.csv}\n"))
    with pytest.raises(ScenarioError) as e:
        load_training(bad)
    assert e.value.path == "workload.routing.expert_load"
