"""``plan`` searches attention-FFN disaggregation (planner/search/afd.py): the 2A2F layout when restricted to it,
at the figures ``evaluate`` gives; the batch search and the deployment split against brute force; infeasible
reasons; the document with an AFD choice against its schema; ``--emit`` refusing an AFD plan."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from cost_models.afd import AfdLayout
from planner.analysis.afd import evaluate_afd
from planner.cli import main
from planner.inputs.scenario import load_scenario
from planner.render.plan_view import afd_short
from planner.search import afd as search
from planner.search import validate
from planner.search.plan import NoFeasiblePlan, run_plan

ROOT = Path(__file__).resolve().parents[1]
STEP3_2A2F = ROOT / "scenarios" / "validation" / "step3_2a2f_h800_decode.yaml"
STEP3_48 = ROOT / "scenarios" / "step3_h800_48_afd.yaml"
TWO_A_TWO_F = dict(ratios=[(2, 2)], attention_tps=[1], ffn_tps=[8], micro_batches=[3])


@pytest.fixture(scope="module")
def afd_plan():
    return run_plan(load_scenario(STEP3_48), modes=("afd",))


def test_restricted_to_2a2f_finds_step3_layout_at_evaluates_figures() -> None:
    sc = load_scenario(STEP3_2A2F)
    # the search leaves a node to prefill: a fifth node (the unit's figures do not depend on the cluster's size)
    five = dataclasses.replace(sc.cluster, num_nodes=5)
    assert not search.search_afd(sc.model, sc.cluster, sc.workload, **TWO_A_TWO_F).candidates
    space = search.search_afd(sc.model, five, sc.workload, **TWO_A_TWO_F)
    assert space.layouts_considered == 1 and len(space.candidates) == 1
    c = space.candidates[0]
    assert c.dims == sc.afd  # the scenario's 2A2F: A 8 dev (tp 1), F 8 dev (tp 8), m = 3
    # the batch is whole sequences per attention rank per micro-batch: 3 micro-batches x 16 ranks = 48 a step;
    # the largest that meets 50 ms, so 48 more misses it (Step-3 runs 6,144 = 48 x 128, Table 8)
    assert c.batch % 48 == 0

    def at(batch: int):  # noqa: ANN202
        return evaluate_afd(dataclasses.replace(sc, workload=dataclasses.replace(sc.workload, concurrency=batch)))

    ev = at(c.batch)
    assert ev.result.tpot_s <= 0.050 < at(c.batch + 48).result.tpot_s
    assert c.decode_tok_per_s_per_device == ev.result.throughput_tok_per_s_per_device
    assert c.tpot_s == ev.result.tpot_s
    assert c.devices_per_replica == 32 and not c.prefill_ok and not c.aggregated_ok


def test_batch_search_matches_brute_force() -> None:
    sc = load_scenario(STEP3_48)
    model, cluster, wl = sc.model, sc.cluster, sc.workload
    layouts = list(search.afd_layouts(model, cluster, rejected=Counter(), ratios=[(1, 1), (2, 1), (3, 2)],
                                      micro_batches=[1, 3]))
    assert len(layouts) == 3 * 4 * 2  # ratios x FFN TP 1/2/4/8 (48 experts / groups divide) x m
    for lay in layouts:
        found, why = search.best_batch(model, cluster, lay, wl)
        hi = search.max_per_rank_by_memory(model, cluster, lay, wl)
        ok = [s for s in range(1, hi + 1) if search._cost(model, cluster, lay, wl, s).tpot_s <= wl.tpot_slo_s]
        if not ok:
            assert found is None and why is not None
            continue
        assert found.sequences_per_rank_per_micro_batch == max(ok), lay.label()


def test_memory_bound_by_hand() -> None:
    sc = load_scenario(STEP3_2A2F)
    lay = sc.afd
    empty = search._memory(sc.model, sc.cluster, lay, sc.workload, 0.0)
    one = search._memory(sc.model, sc.cluster, lay, sc.workload, 1.0)
    # free = capacity - (attention weights + reserve); each rank keeps m = 3 micro-batches of whole sequences
    free = empty.capacity_bytes - empty.attention_device_bytes
    assert search.max_per_rank_by_memory(sc.model, sc.cluster, lay, sc.workload) == int(free // (3 * one.kv_cache_bytes))


def test_layout_enumeration_counts_divisibility() -> None:
    sc = load_scenario(STEP3_48)
    rejected: Counter[str] = Counter()
    layouts = list(search.afd_layouts(sc.model, sc.cluster, rejected=rejected, micro_batches=[3]))
    # 6 nodes, one left to prefill: (A, F) with A + F <= 5 -> 4 + 3 + 2 + 1 = 10 ratios; FFN TP 1/2/4/8 -> 40;
    # Step-3's 48 experts need the EP groups F x 8 / TP to divide 48: F = 4 (1A4F only) fails at TP 1 (32 groups)
    assert len(layouts) + rejected["divisibility"] == 40
    assert rejected["divisibility"] == 1


def test_afd_short_label() -> None:
    lay = AfdLayout(attention_instances=2, attention_instance_devices=8, ffn_instances=2, ffn_instance_devices=8,
                    ffn_tp=8, micro_batches=3)
    assert afd_short(lay) == "2A2F A DP8 F EP2xTP8 m3"  # 16 FFN devices / TP8 = 2 EP groups


def test_afd_plan_ranks_against_brute_force(afd_plan) -> None:
    best, _ = validate.brute_force_best(afd_plan.instance)
    assert afd_plan.deployments[0].mode == "afd"
    assert afd_plan.recosts[0].output_tok_per_s == pytest.approx(best, rel=1e-4)
    assert all(d.mode == "afd" for d in afd_plan.deployments)
    # the front holds only what was searched: AFD units, each not beaten on both rate per device and per user
    front = afd_plan.pareto
    assert front and all(isinstance(c, search.AfdCandidate) for c in front)
    assert [c.decode_tok_per_s_per_device for c in front] == sorted((c.decode_tok_per_s_per_device for c in front),
                                                                    reverse=True)
    assert [c.user_tok_per_s for c in front] == sorted(c.user_tok_per_s for c in front)


def test_all_modes_rank_afd_with_the_others() -> None:
    sc = load_scenario(STEP3_48)
    assert sc.modes == ("aggregated", "disaggregated", "afd")  # the scenario's modes: list; plan's default has no AFD
    res = run_plan(sc, modes=sc.modes)
    afd_best = run_plan(load_scenario(STEP3_48), modes=("afd",)).recosts[0].output_tok_per_s
    others = run_plan(load_scenario(STEP3_48), modes=("aggregated", "disaggregated")).recosts[0].output_tok_per_s
    assert res.recosts[0].output_tok_per_s == pytest.approx(max(afd_best, others), rel=1e-4)
    assert res.afd_layouts_considered == 117  # 10 ratios x 4 FFN TP x 3 m (2, 3, 4) = 120, less 1 x 3 divisibility


@pytest.mark.parametrize(("nodes", "slo", "constraint"), [(2, "50 ms", "topology"), (6, "1 ms", "tpot"),
                                                          (6, "50 ms\n    ttft: 1 ms", "pools")])
def test_infeasible_afd_gives_a_reason(nodes: int, slo: str, constraint: str, tmp_path: Path) -> None:
    text = STEP3_48.read_text().replace("nodes: 6", f"nodes: {nodes}").replace("tpot: 50 ms", f"tpot: {slo}")
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(NoFeasiblePlan) as e:
        run_plan(load_scenario(p), modes=("afd",))
    assert e.value.constraint == constraint and e.value.fixes
    out = CliRunner().invoke(main, ["plan", str(p), "--modes", "afd"])
    assert out.exit_code == 1 and f"{constraint} constraint" in out.output


def test_plan_document_with_afd_choice_validates() -> None:
    out = CliRunner().invoke(main, ["plan", str(STEP3_48), "--modes", "afd", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    schema = json.loads((ROOT / "docs" / "schema" / "plan.schema.json").read_text())
    Draft202012Validator(schema).validate(doc)
    top = doc["top"][0]
    assert top["mode"] == "afd" and "afd" in top["pools"][1] and "plan" not in top["pools"][1]
    assert "chosen_breakdown" not in doc and doc["chosen_afd"]["schema"] == "moeplan.afd/1"
    assert doc["modes"] == ["afd"] and doc["afd_layouts_considered"] > 0


def test_emit_refuses_an_afd_plan() -> None:
    out = CliRunner().invoke(main, ["plan", str(STEP3_48), "--modes", "afd", "--emit", "sglang"])
    assert out.exit_code == 2
    assert "--emit" in out.output and "2507.19427" in out.output and "afd-plugin" in out.output


def test_bad_modes_exit_2() -> None:
    out = CliRunner().invoke(main, ["plan", str(STEP3_48), "--modes", "afd,pd"])
    assert out.exit_code == 2 and "aggregated, disaggregated, afd" in out.output


def test_export_of_an_afd_plan_names_the_unit(tmp_path: Path) -> None:
    out = tmp_path / "plan.md"
    res = CliRunner().invoke(main, ["plan", str(STEP3_48), "--modes", "afd", "--export", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "AFD 3A2F" in text and "attention_instances" in text and "Chosen AFD unit" in text


def test_scenario_modes_key_and_cli_override(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    base = STEP3_48.read_text().replace("modes: [aggregated, disaggregated, afd]\n", "")
    p.write_text(base + "modes: [afd]\n")
    assert load_scenario(p).modes == ("afd",)
    doc = json.loads(CliRunner().invoke(main, ["plan", str(p), "--json", "--top", "1"]).output)
    assert doc["modes"] == ["afd"] and doc["top"][0]["mode"] == "afd"
    over = json.loads(CliRunner().invoke(main, ["plan", str(p), "--json", "--top", "1", "--modes",
                                                "disaggregated"]).output)
    assert over["modes"] == ["disaggregated"] and over["top"][0]["mode"] == "disaggregated"
    p.write_text(base + "modes: [pd]\n")
    bad = CliRunner().invoke(main, ["plan", str(p)])
    assert bad.exit_code == 2 and "modes" in bad.output


def test_afd_is_opt_in() -> None:
    """Without --modes or a scenario modes: list, plan searches aggregated and disaggregated only (no engine the
    emitters target launches AFD, so the default plan stays launchable)."""
    from cost_models.kinds import DEFAULT_PLAN_MODES
    res = run_plan(load_scenario(STEP3_48))
    assert res.modes == DEFAULT_PLAN_MODES == ("aggregated", "disaggregated")
    assert res.afd_layouts_considered == 0 and all(d.mode != "afd" for d in res.deployments)
