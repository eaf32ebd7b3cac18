"""Issue 11: the expert placement (``place``'s CP-SAT slot maps, from the scenario's router counts) converted to
what each engine loads, checked against the loader's contract read at the pinned source:

- SGLang 0.5.5 ``--init-expert-location FILE.json`` (python/sglang/srt/eplb/expert_location.py:
  ``compute_initial_expert_location_metadata`` reads ``physical_to_logical_map`` and calls
  ``ExpertLocationMetadata.init_by_mapping``): shape [num_hidden_layers][experts + ep_num_redundant_experts],
  ``_init_common`` asserts the physical experts divide by ep_size; dense layers get ``init_trivial``'s row.
  The loader itself needs torch tensors and a process group, so it cannot run here; the real SGLang parser
  accepting the flag is checked in tests/test_engine_parsers.py.
- TensorRT-LLM ``moe_config.load_balancer.initial_global_assignments`` (MoeLoadBalancerConfig; the MoE module
  asks for its own ``layer_idx`` and asserts len == num_slots >= num_experts and every expert present).
- MindIE's static load balancer (docs/en/user_guide/feature/expert_parallelism_load_balancer.md at
  Ascend/MindIE-LLM@613aab54: atb-models ``models.deepseekv2.eplb`` level 1 + ``expert_map_file``), the table in
  the format msit elb writes (Ascend/msit@893d6128 elb/load_balancing.py ``save_matrix_to_json``).
- vLLM 0.11.0 loads no given placement: a note says so."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cost_models.specs import Precision
from planner import emit as E
from planner.cli import main
from planner.inputs.reader import load_yaml
from planner.inputs.scenario import parse_plan
from tests.engine_parsers.schema_check import mindie_problems, schema, trtllm_problems
from tests.test_emit import ASCEND_16, H200_16, check_against_table, disagg_spec, evaluated, value

ROOT = Path(__file__).resolve().parents[1]
EXPERTS, MOE_LAYERS, LAYERS, DENSE = 256, 58, 61, 3  # DeepSeek-V3: 61 layers, the first 3 dense


def _rows(slots: int) -> tuple[tuple[int, ...], ...]:
    """A slot map per MoE layer: layer l shifts the experts by l; slots past 256 repeat the first experts."""
    return tuple(tuple((s + layer) % EXPERTS for s in range(slots)) for layer in range(MOE_LAYERS))


def _with_placement(spec: E.LaunchSpec, slots: int = EXPERTS) -> E.LaunchSpec:
    return dataclasses.replace(spec, roles=tuple(dataclasses.replace(r, placement=_rows(slots)) for r in spec.roles))


def test_sglang_writes_the_placement_as_its_init_expert_location_file():
    plan = E.emit(_with_placement(disagg_spec()), "sglang")
    check_against_table(plan)  # the flag and the file's key are in SGLang's source table
    dec = next(c for c in plan.commands if c.role == "decode")
    name = value(dec.argv, "--init-expert-location")
    table = json.loads(dec.files[name])["physical_to_logical_map"]
    assert set(json.loads(dec.files[name])) == {"physical_to_logical_map"}
    assert len(table) == LAYERS and {len(r) for r in table} == {EXPERTS}  # 256 + 0 redundant, 256 % ep 8 = 0
    assert table[DENSE] == list(_rows(EXPERTS)[0]) and table[LAYERS - 1] == list(_rows(EXPERTS)[-1])
    assert table[0] == list(range(EXPERTS))  # dense layer: init_trivial's arange % experts
    assert all(set(r) == set(range(EXPERTS)) for r in table)


def test_sglang_placement_with_redundant_experts_has_the_redundant_slots():
    sc, dims, res = evaluated(H200_16, "attn_dp=16,moe_ep=16,redundant_experts=16")
    spec = _with_placement(E.spec_from_evaluation(sc, dims, res), EXPERTS + 16)
    cmd = E.emit(spec, "sglang").commands[0]
    table = json.loads(cmd.files[value(cmd.argv, "--init-expert-location")])["physical_to_logical_map"]
    # physical experts = 256 + --ep-num-redundant-experts 16 = 272 = 17 per rank x 16 ranks
    assert value(cmd.argv, "--ep-num-redundant-experts") == "16" and {len(r) for r in table} == {272}
    assert table[0] == [s % EXPERTS for s in range(272)]


def test_trtllm_writes_the_placement_as_initial_global_assignments():
    sc, dims, res = evaluated(H200_16, "attn_dp=16,moe_ep=16,redundant_experts=16")
    spec = dataclasses.replace(_with_placement(E.spec_from_evaluation(sc, dims, res), EXPERTS + 16),
                               weight_precision=Precision.FP4)
    plan = E.emit(spec, "trtllm")
    check_against_table(plan)
    cmd = plan.commands[0]
    balancer = load_yaml(next(iter(cmd.files.values())))["moe_config"]["load_balancer"]
    assignments = balancer["initial_global_assignments"]
    assert balancer["num_slots"] == 272 and sorted(assignments) == list(range(DENSE, LAYERS))  # MoE layer_idx
    assert all(len(a) == 272 and set(a) == set(range(EXPERTS)) for a in assignments.values())
    doc = {"argv": list(cmd.argv), "files": dict(cmd.files)}
    assert trtllm_problems(doc, schema("trtllm")) == []


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_engines_that_load_no_given_placement_say_so(engine):
    plan = E.emit(_with_placement(disagg_spec()), engine)  # TensorRT-LLM: no redundant experts, no WIDEEP
    assert any("expert placement is not loaded" in n for n in plan.notes), plan.notes
    assert not any("init-expert-location" in " ".join(c.argv) for c in plan.commands)


def test_a_placement_of_another_model_is_refused():
    spec = disagg_spec()
    short = dataclasses.replace(spec, roles=tuple(dataclasses.replace(r, placement=_rows(EXPERTS)[:10])
                                                  for r in spec.roles))
    with pytest.raises(E.EmitError) as err:
        E.emit(short, "sglang")
    assert err.value.field == "workload.expert_load" and "all 58 MoE layers" in err.value.accepted


def test_evaluate_emit_converts_the_placement_of_the_scenario_router_counts(tmp_path):
    text = (ROOT / "scenarios" / "deepseek_v3_h200_16.yaml").read_text()
    loads = ROOT / "planner" / "catalog" / "expert_loads" / "deepseek_v3_routing_counts.csv"
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("  output_tokens: 1000\n", f"  output_tokens: 1000\n  expert_load: {loads}\n"))
    one = parse_plan("attn_dp=16,moe_ep=16,redundant_experts=16")
    res = CliRunner().invoke(main, ["evaluate", str(path), "--plan", "attn_dp=16,moe_ep=16,redundant_experts=16",
                                    "--overlap-model", "closed-form", "--emit", "sglang", "--json"])
    assert res.exit_code == 0, res.output
    cmds = json.loads(res.stdout)["launch"]["commands"]
    table = json.loads(cmds[0]["files"]["sglang_aggregated_expert_location.json"])["physical_to_logical_map"]
    from planner.analysis.imbalance import layout_placement_cpsat
    from planner.inputs.scenario import load_scenario
    sc = load_scenario(str(path))
    placed = layout_placement_cpsat(sc.model, one, sc.expert_loads, sc.cluster.devices_per_node)
    assert table[DENSE:] == [list(layer.cpsat.placement.physical_to_logical) for layer in placed.layers]
    assert all(c["files"] == cmds[0]["files"] for c in cmds)  # every node rank writes the same file


def test_mindie_writes_the_placement_as_its_static_load_balancer_table():
    sc, dims, res = evaluated(ASCEND_16, "attn_dp=16,moe_ep=16,redundant_experts=16")
    spec = _with_placement(E.spec_from_evaluation(sc, dims, res), EXPERTS + 16)
    plan = E.emit(spec, "mindie")
    check_against_table(plan)
    cmd = plan.commands[0]
    table = json.loads(cmd.files["mindie_aggregated_expert_map.json"])
    atb = json.loads(cmd.files["atb_models_aggregated_0.json"])
    assert atb == {"models": {"deepseekv2": {"eplb": {"level": 1, "expert_map_file":
                                                      "${PWD}/mindie_aggregated_expert_map.json"}}}}
    # 58 MoE layers; 16 EP ranks x 17 experts (256 + 16 redundant); rank j holds slots 17 j .. 17 j + 16
    assert table["moe_layer_count"] == MOE_LAYERS and len(table["layer_list"]) == MOE_LAYERS
    layer = table["layer_list"][1]
    assert layer["layer_id"] == 1 and layer["device_count"] == 16
    assert layer["device_list"][2] == {"device_id": 2, "device_expert": list(_rows(272)[1][34:51])}
    doc = {"argv": list(cmd.argv), "files": dict(cmd.files)}
    assert mindie_problems(doc, schema("mindie")) == []


def test_mindie_redundant_experts_without_a_placement_are_refused():
    sc, dims, res = evaluated(ASCEND_16, "attn_dp=16,moe_ep=16,redundant_experts=16")
    with pytest.raises(E.EmitError) as err:
        E.emit(E.spec_from_evaluation(sc, dims, res), "mindie")
    assert err.value.field == "plan.redundant_experts" and "workload.expert_load" in err.value.accepted


def test_the_mindie_table_check_rejects_uneven_devices():
    bad = {"moe_layer_count": 1, "layer_list": [{"layer_id": 0, "device_count": 2, "device_list": [
        {"device_id": 0, "device_expert": [0, 1]}, {"device_id": 1, "device_expert": [2]}]}]}
    doc = {"argv": ["mindie_llm_server"], "files": {"mindie_decode_expert_map.json": json.dumps(bad)}}
    assert any("different expert counts" in p for p in mindie_problems(doc, schema("mindie")))
