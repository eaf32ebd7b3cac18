"""Deployments as one value: the string and YAML forms, their exit-2 errors, and the printed form parsing back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cost_models.kinds import DeploymentMode, PoolRole
from cost_models.parallel import OverlapPolicy, ParallelDims
from planner.catalog.models import get_model
from planner.cli import main
from planner.inputs.deployment_text import (
    DeploymentPlan,
    PoolPlan,
    check_deployment,
    deployment_text,
    parse_deployment,
    plan_text,
)
from planner.inputs.errors import ScenarioError
from planner.inputs.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "scenarios" / "deepseek_v3_h200_16.yaml")
DISAGG = "prefill: 1 x attn_tp=2,attn_dp=4,moe_ep=8,micro_batches=2; decode: 1 x attn_dp=8,moe_ep=8"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_the_issue_example_parses_to_two_pools():
    dep = parse_deployment("prefill: 3 x attn_tp=1,attn_dp=8,moe_ep=8,pp=2; decode: 1 x attn_dp=48,moe_ep=24,moe_tp=2")
    assert dep.mode is DeploymentMode.DISAGGREGATED
    pre, dec = dep.pools
    assert (pre.role, pre.replicas, pre.dims) == (PoolRole.PREFILL, 3, ParallelDims(attn_dp=8, moe_ep=8, pp=2))
    assert (dec.role, dec.replicas, dec.dims) == (PoolRole.DECODE, 1, ParallelDims(attn_dp=48, moe_ep=24, moe_tp=2))
    # 3 replicas x 8 devices x 2 stages = 48 prefill devices; 1 x 48 decode devices: 96 in all
    assert (pre.devices, dec.devices, dep.devices) == (48, 48, 96)


def test_pool_order_and_aggregated_forms():
    a = parse_deployment("decode: 2 x attn_dp=8,moe_ep=8; prefill: 1 x attn_dp=8,moe_ep=8")
    assert [p.role for p in a.pools] == [PoolRole.PREFILL, PoolRole.DECODE]       # stored prefill first
    assert parse_deployment("4 x attn_dp=8,moe_ep=8") == parse_deployment("aggregated: 4 x attn_dp=8,moe_ep=8")
    bare = parse_deployment("attn_dp=8,moe_ep=8,dp=2")                            # a bare plan: dp replicas
    assert bare.whole_cluster and bare.pools[0].replicas == 2 and bare.pools[0].dims.dp == 1
    # 'redundant_experts' holds an x: a bare plan that starts with it is still a plan
    assert parse_deployment("redundant_experts=8,attn_dp=8,moe_ep=8").pools[0].dims.redundant_experts == 8


def test_plan_text_is_the_shortest_string_that_parses_back():
    assert plan_text(ParallelDims(attn_dp=8, moe_ep=8)) == "attn_dp=8,moe_ep=8"
    # micro_batches=2 implies two-batch overlap; single-batch overlap must be written out
    assert plan_text(ParallelDims(attn_dp=8, moe_ep=8, micro_batches=2, overlap=OverlapPolicy.TWO_BATCH)) == \
        "attn_dp=8,moe_ep=8,micro_batches=2"
    assert plan_text(ParallelDims(attn_dp=8, moe_ep=8, overlap=OverlapPolicy.SINGLE_BATCH)) == \
        "attn_dp=8,moe_ep=8,overlap=single_batch"
    assert plan_text(ParallelDims(micro_batches=2, overlap=OverlapPolicy.NONE)) == "micro_batches=2,overlap=none"
    assert plan_text(ParallelDims()) == "attn_tp=1"


_DEG = st.sampled_from([1, 2, 4, 8])


@st.composite
def _dims(draw: st.DrawFn) -> ParallelDims:
    return ParallelDims(attn_tp=draw(_DEG), attn_dp=draw(_DEG), moe_ep=draw(_DEG), moe_tp=draw(_DEG),
                        dense_tp=draw(_DEG), pp=draw(st.sampled_from([1, 2, 4])),
                        redundant_experts=draw(st.sampled_from([0, 8, 32])), micro_batches=draw(st.sampled_from([1, 2])),
                        overlap=draw(st.sampled_from(list(OverlapPolicy))))


@given(pre=_dims(), dec=_dims(), x=st.integers(1, 64), y=st.integers(1, 64), agg=st.booleans())
def test_every_deployment_string_parses_back_to_the_same_value(pre, dec, x, y, agg):
    if agg:
        dep = DeploymentPlan(pools=(PoolPlan(role=PoolRole.AGGREGATED, replicas=x, dims=dec),))
    else:
        dep = DeploymentPlan(pools=(PoolPlan(role=PoolRole.PREFILL, replicas=x, dims=pre),
                                    PoolPlan(role=PoolRole.DECODE, replicas=y, dims=dec)))
    assert parse_deployment(deployment_text(dep)) == dep


@pytest.mark.parametrize(("text", "path", "accepted"), [
    ("prefill: 1 x attn_dp=8", "--plan", "a prefill pool and a decode pool"),
    ("prefil: 1 x attn_dp=8; decode: 1 x attn_dp=8", "--plan.prefil", "a pool role: prefill, decode, aggregated"),
    ("prefill: 0 x attn_dp=8; decode: 1 x attn_dp=8", "--plan.prefill.replicas", "an integer in 1 .."),
    ("prefill: attn_dp=8; decode: 1 x attn_dp=8", "--plan.prefill", "'N x PLAN'"),
    ("2 x attn_dp=8,dp=2", "--plan.aggregated.dp", "the replica count N is the pool's dp"),
    ("decode: 1 x attn_dp=8; decode: 2 x attn_dp=8", "--plan.decode", "each pool role once"),
    ("prefill: 1 x attn_dp=8; decode: 1 x atn_dp=8", "--plan.decode.atn_dp", "did you mean 'attn_dp'"),
])
def test_bad_deployment_strings_name_key_path_value_and_accepted(text, path, accepted):
    with pytest.raises(ScenarioError) as e:
        parse_deployment(text)
    assert e.value.path == path and accepted in e.value.accepted


def test_pools_must_fit_the_cluster_and_each_replica_must_divide_the_model():
    model = get_model("deepseek-v3")
    ok = parse_deployment(DISAGG)
    assert check_deployment(ok, model, 16) == []
    assert check_deployment(ok, model, 24) == []                   # a deployment may leave devices idle
    over = check_deployment(parse_deployment("prefill: 2 x attn_dp=8,moe_ep=8; decode: 1 x attn_dp=8,moe_ep=8"),
                            model, 16)
    assert [p.field for p in over] == ["devices"] and over[0].value == 24          # 2 x 8 + 8 = 24 > 16
    bad = check_deployment(parse_deployment("prefill: 1 x attn_dp=8,moe_ep=4; decode: 1 x attn_dp=8,moe_ep=8"),
                           model, 16)
    assert [p.field for p in bad] == ["prefill.moe_ep*moe_tp"]                      # 4 x 1 != 8 devices
    # a bare plan keeps covering the whole cluster, as --plan always required
    assert [p.field for p in check_deployment(parse_deployment("attn_dp=8,moe_ep=8"), model, 16)] == \
        ["attn_tp*attn_dp*pp*dp"]


def test_cli_bad_deployment_exits_2_with_the_key_path():
    res = run("evaluate", DEFAULT, "--plan", "prefill: 2 x attn_dp=8,moe_ep=8; decode: 1 x attn_dp=8,moe_ep=8")
    assert res.exit_code == 2 and "plan.devices: got 24; accepted: at most the cluster's 16 devices" in res.output
    res = run("evaluate", DEFAULT, "--plan", "prefill: 1 x attn_dp=8,moe_ep=8")
    assert res.exit_code == 2 and "--plan: got 'prefill: ...'" in res.output and "Traceback" not in res.output


def test_scenario_deployment_block_as_mapping_and_as_string(tmp_path):
    base = (ROOT / "scenarios" / "deepseek_v3_h200_16.yaml").read_text().replace("\nplan:", "\n# plan:")
    block = tmp_path / "block.yaml"
    block.write_text(base + "\ndeployment:\n  prefill: 1 x attn_tp=2,attn_dp=4,moe_ep=8,micro_batches=2\n"
                            "  decode: 1 x attn_dp=8,moe_ep=8\n")
    line = tmp_path / "line.yaml"
    line.write_text(base + f"\ndeployment: '{DISAGG}'\n")
    a, b = load_scenario(block), load_scenario(line)
    assert a.deployment == b.deployment == parse_deployment(DISAGG)
    assert a.plan is None                                          # two pools: no single plan
    res = run("evaluate", str(block), "--json", "--overlap-model", "closed-form")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["deployment"]["text"] == DISAGG


def test_scenario_with_plan_and_deployment_or_a_bad_block_exits_2(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text((ROOT / "scenarios" / "deepseek_v3_h200_16.yaml").read_text() + "\ndeployment: '2 x attn_dp=8'\n")
    res = run("evaluate", str(both))
    assert res.exit_code == 2 and "deployment:" in res.output and "either plan: or deployment:" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "scenarios" / "deepseek_v3_h200_16.yaml").read_text().replace("\nplan:", "\n# plan:")
                   + "\ndeployment:\n  prefil: 1 x attn_dp=8,moe_ep=8\n")
    res = run("evaluate", str(bad))
    assert res.exit_code == 2 and "deployment.prefil" in res.output and "a pool role" in res.output
