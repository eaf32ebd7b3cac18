"""Engine-aware planning and the launch-line rules of issue 11 (planner/catalog/engines.py,
planner/search/engines.py, the emitters): hand-derived reserves, refusals, and the flags / variables each
engine's own start-up checks need (the real parsers run in tests/test_engine_parsers.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from cost_models.memory import RUNTIME_RESERVE_BYTES
from planner import emit as E
from planner.catalog.engines import ENGINES, SGLANG, VLLM, layout_refusal, reserve_bytes
from planner.cli import main
from planner.emit import common
from planner.emit.spec import _role
from planner.inputs.scenario import load_scenario, parse_plan
from planner.search.engines import capability, engine_workload
from planner.search.plan import run_plan
from tests.test_emit import H200_16, check_against_table, disagg_spec, evaluated, value

ROOT = Path(__file__).resolve().parents[1]
MIB, GIB = 2.0**20, 2.0**30


def test_sglang_reserve_follows_its_server_args_formula():
    # tp 32 (attn_dp 32, EP 32 on DeepEP), bs 128: 512 + 2 x 128 + 1,024 x 32 / 8 = 4,864 MiB (no DP padding)
    d = parse_plan("attn_dp=32,moe_ep=32")
    assert reserve_bytes(SGLANG, d, 141 * GIB, 128) == pytest.approx(4864 * MIB)
    # tp 8 on DeepEP: 512 + 256 + 1,024 = 1,792 MiB, below the cost model's 3 GiB floor
    assert reserve_bytes(SGLANG, parse_plan("attn_dp=8,moe_ep=8"), 141 * GIB, 128) == RUNTIME_RESERVE_BYTES
    # DP attention without DeepEP keeps the padding: 1,792 + 3 x 128 x 8 = 4,864 MiB
    assert reserve_bytes(SGLANG, parse_plan("attn_dp=8,moe_tp=8"), 141 * GIB, 128) == pytest.approx(4864 * MIB)


def test_fraction_engines_and_no_engine_reserve_ten_percent():
    d = parse_plan("attn_dp=8,moe_ep=8")
    assert reserve_bytes(VLLM, d, 80e9, 128) == pytest.approx(8e9)  # 1 - gpu_memory_utilization 0.9
    assert reserve_bytes(None, d, 141e9, 128) == pytest.approx(14.1e9)


@pytest.mark.parametrize(("engine", "plan", "words"), [
    ("sglang", "attn_dp=48,moe_ep=24,moe_tp=2", "expert TP must be 1"),  # issue 11: tp 48 / ep 24 gets no DeepEP
    ("vllm", "attn_tp=2,attn_dp=4,moe_ep=8,dense_tp=1", "dense FFN"),
    ("vllm", "attn_tp=8,moe_ep=8,micro_batches=2,overlap=two_batch", "attention DP"),
    ("vllm", "attn_dp=8,moe_ep=8,overlap=single_batch", "not a vllm mode"),
    ("trtllm", "attn_tp=2,attn_dp=4,moe_ep=8", "attention TP must be 1"),
    ("trtllm", "attn_dp=8,moe_ep=8,micro_batches=2,overlap=two_batch", "not a trtllm mode"),
    ("sglang", "attn_dp=8,moe_ep=8,pp=2", "pipeline parallelism"),
])
def test_layouts_an_engine_cannot_launch_are_refused(engine, plan, words):
    sc = load_scenario(H200_16)
    why = layout_refusal(ENGINES[engine], sc.model, parse_plan(plan), 8, "nvidia", "fp8")
    assert why is not None and words in why


def test_layouts_the_engines_launch_pass():
    sc = load_scenario(H200_16)
    for engine, plan in [("sglang", "attn_dp=8,moe_ep=8,micro_batches=2,overlap=two_batch"),
                         ("vllm", "attn_dp=16,moe_ep=16,micro_batches=2,overlap=two_batch"),
                         ("trtllm", "attn_dp=8,moe_ep=8"), ("sglang", "attn_tp=8,moe_tp=8")]:
        assert layout_refusal(ENGINES[engine], sc.model, parse_plan(plan), 8, "nvidia", "fp8") is None, plan


def test_engine_version_must_be_the_targeted_release():
    assert capability("sglang", "0.5.5") is SGLANG
    with pytest.raises(ValueError, match="accepted: 0.11.0"):
        capability("vllm", "0.10.2")


def test_engine_workload_carries_the_reserve_and_drops_mtp_the_lines_do_not_enable():
    sc = load_scenario(H200_16)
    wl = dataclasses.replace(sc.workload, mtp_tokens=1, mtp_acceptance=0.8)
    d = parse_plan("attn_dp=8,moe_ep=8")
    out = engine_workload(SGLANG, sc.cluster, wl, d)
    assert out.runtime_reserve_bytes == RUNTIME_RESERVE_BYTES and out.mtp_tokens == 1  # SGLang emits EAGLE MTP
    assert engine_workload(ENGINES["trtllm"], sc.cluster, wl, d).mtp_tokens == 1  # trtllm emits MTP
    assert engine_workload(ENGINES["mindie"], sc.cluster, wl, d).mtp_tokens == 0  # MindIE's lines do not


@pytest.mark.parametrize("engine", ["sglang", "vllm", "trtllm"])
def test_plan_engine_keeps_the_reserve_and_only_launchable_pools(engine):
    sc = load_scenario(H200_16)
    res = run_plan(sc, top_k=3, engine=ENGINES[engine])
    assert res.rejected["engine"] > 0
    for d in res.deployments:
        for c in (d.decode, d.prefill):
            if c is None:
                continue
            assert layout_refusal(ENGINES[engine], sc.model, c.dims, 8, "nvidia", "fp8") is None
            for m in (c.result.prefill.memory, c.result.decode.memory):
                want = reserve_bytes(ENGINES[engine], c.dims, m.capacity_bytes, 128)
                assert m.runtime_reserve_bytes == pytest.approx(want)
                assert m.used_bytes <= m.capacity_bytes  # no planned pool above the engine's usable memory


def test_plan_engine_mindie_on_nvidia_exits_1_saying_why():
    res = CliRunner().invoke(main, ["plan", str(H200_16), "--engine", "mindie", "--emit", "mindie"])
    assert res.exit_code == 1
    assert "engine constraint" in res.stderr and "mindie runs on huawei devices, not nvidia" in res.stderr


def test_engine_version_without_engine_is_bad_input():
    res = CliRunner().invoke(main, ["plan", str(H200_16), "--engine-version", "0.5.5"])
    assert res.exit_code == 2 and "--engine-version" in res.stderr


def test_sglang_pd_decode_with_dp_gets_round_robin_balance():
    plan = E.emit(disagg_spec(), "sglang")
    pre, dec = (next(c for c in plan.commands if c.role == r) for r in ("prefill", "decode"))
    # server_args.py _handle_disaggregation: decode dp > 1 asserts --prefill-round-robin-balance, and its prefill
    # servers must balance round-robin
    assert "--prefill-round-robin-balance" in dec.argv and value(dec.argv, "--load-balance-method") == "round_robin"
    assert value(pre.argv, "--load-balance-method") == "round_robin"
    assert "--prefill-round-robin-balance" not in pre.argv


def _decode_spec(seqs_per_device: float) -> E.LaunchSpec:
    spec = disagg_spec()
    pre, dec = spec.roles
    return dataclasses.replace(spec, roles=(pre, dataclasses.replace(dec, decode_batch_per_device=seqs_per_device)))


def test_sglang_sets_the_deepep_dispatch_cap_to_cover_the_decode_step():
    # 132 sequences per DP rank (issue 11: 1,056 at dp 8) > the default 128: the variable covers them
    dec = next(c for c in E.emit(_decode_spec(132), "sglang").commands if c.role == "decode")
    assert dec.env["SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK"] == "132"
    assert value(dec.argv, "--max-running-requests") == "1056" and value(dec.argv, "--cuda-graph-max-bs") == "128"
    small = next(c for c in E.emit(_decode_spec(100), "sglang").commands if c.role == "decode")
    assert "SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK" not in small.env  # the default 128 covers 100
    with pytest.raises(E.EmitError) as err:  # DeepEP low latency dispatches at most 1,024 tokens per rank
        E.emit(_decode_spec(1025), "sglang")
    assert err.value.field == "decode batch per DP rank"


def test_vllm_ep_roles_name_the_deepep_backend_and_dbo_gets_it():
    sc, dims, res = evaluated(H200_16, "attn_dp=8,moe_ep=8,dp=2")
    tbo = parse_plan("attn_dp=8,moe_ep=8,micro_batches=2,overlap=two_batch")
    spec = dataclasses.replace(E.spec_from_evaluation(sc, dims, res),
                               roles=(_role("prefill", tbo, 1, res), _role("decode", tbo, 1, res)))
    plan = E.emit(spec, "vllm")
    pre, dec = (next(c for c in plan.commands if c.role == r) for r in ("prefill", "decode"))
    assert "--enable-dbo" in dec.argv and dec.env["VLLM_ALL2ALL_BACKEND"] == "deepep_low_latency"
    assert pre.env["VLLM_ALL2ALL_BACKEND"] == "deepep_high_throughput"
    proxy = next(c for c in plan.commands if c.role == "router")
    assert value(proxy.argv, "--prefiller-hosts") == "${PREFILL_0_HEAD_ADDR}"
    assert value(proxy.argv, "--decoder-ports") == "8000"


def test_vllm_raises_the_dp_chunk_when_the_decode_step_dispatches_more():
    dec = next(c for c in E.emit(_decode_spec(300), "vllm").commands if c.role == "decode")
    assert dec.env["VLLM_MOE_DP_CHUNK_SIZE"] == "300"  # vLLM's default chunk is 256 tokens per DP rank
    dec = next(c for c in E.emit(_decode_spec(200), "vllm").commands if c.role == "decode")
    assert "VLLM_MOE_DP_CHUNK_SIZE" not in dec.env


def test_memory_fractions_leave_the_engine_reserve():
    spec = disagg_spec()
    m = spec.roles[1].memory
    dec = next(c for c in E.emit(spec, "vllm").commands if c.role == "decode")
    util = float(value(dec.argv, "--gpu-memory-utilization"))
    # everything but the reserve, rounded up to 0.01: never reaches into the reserve by more than 1 % of the device
    assert util == common.engine_fraction(m)
    assert util * m.capacity_bytes <= m.used_bytes - m.runtime_reserve_bytes + 0.01 * m.capacity_bytes


def test_sglang_several_aggregated_replicas_get_a_router():
    sc, dims, res = evaluated(H200_16, "attn_dp=8,moe_ep=8,dp=2")
    plan = E.emit(E.spec_from_evaluation(sc, dims, res), "sglang")
    router = next(c for c in plan.commands if c.role == "router")
    assert value(router.argv, "--worker-urls") == "http://${AGGREGATED_0_HEAD_ADDR}:30000"
    assert router.argv.count("http://${AGGREGATED_1_HEAD_ADDR}:30000") == 1


def test_plan_without_engine_lists_the_engines_per_deployment():
    res = CliRunner().invoke(main, ["plan", str(ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml"), "--json",
                                    "--top", "3"])
    import json
    doc = json.loads(res.stdout)
    for d in doc["top"]:
        assert set(d["engines"]) <= {"sglang", "vllm", "trtllm"}  # mindie needs an Ascend NPU


def test_mtp_is_emitted_for_sglang_and_vllm_when_the_checkpoint_has_mtp_layers():
    spec = dataclasses.replace(disagg_spec(), mtp_tokens=2)  # DeepSeek-V3: one MTP layer, chained for k = 2
    sg = E.emit(spec, "sglang")
    check_against_table(sg)
    pre, dec = (next(c for c in sg.commands if c.role == r) for r in ("prefill", "decode"))
    for c in (pre, dec):  # EAGLE on both pools: the prefill server hands the draft state to decode
        assert value(c.argv, "--speculative-algorithm") == "EAGLE" and value(c.argv, "--speculative-num-steps") == "2"
        assert value(c.argv, "--speculative-eagle-topk") == "1" and value(c.argv, "--speculative-num-draft-tokens") == "3"
    assert not any("MTP" in n for n in sg.notes)
    vl = E.emit(spec, "vllm")
    check_against_table(vl)
    pre, dec = (next(c for c in vl.commands if c.role == r) for r in ("prefill", "decode"))
    assert value(dec.argv, "--speculative-config") == '{"method":"mtp","num_speculative_tokens":2}'
    assert "--speculative-config" not in pre.argv


def test_mtp_for_a_checkpoint_without_mtp_layers_is_a_note():
    sc, dims, res = evaluated(ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml", "attn_tp=8,moe_tp=8")
    spec = dataclasses.replace(E.spec_from_evaluation(sc, dims, res), mtp_tokens=1)
    for engine in ("sglang", "vllm"):
        plan = E.emit(spec, engine)
        assert any("MTP (1 speculative tokens) is not emitted" in n for n in plan.notes), plan.notes
        assert not any("speculative" in a for c in plan.commands for a in c.argv)


def test_plan_says_afd_deployments_have_no_launch_form_and_why():
    res = CliRunner().invoke(main, ["plan", str(ROOT / "scenarios" / "step3_h800_48_afd.yaml"), "--modes", "afd",
                                    "--top", "2"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "No launch form for the AFD deployments (#1, #2): no deployment string and no --emit lines" in text
    assert "2507.19427" in text and "afd-plugin" in text  # where AFD runs instead (plan.AFD_ENGINES)
