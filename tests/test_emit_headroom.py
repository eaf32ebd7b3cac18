"""Issue 11: every emitted deployment keeps the headroom its engine needs. ``--emit E`` implies ``--engine E``, so
the chosen deployment is one E launches and every pool is costed with E's own reserve
(planner/catalog/engines.py ``reserve_bytes``: SGLang 0.5.5's ``_handle_gpu_memory_settings`` formula, at least
3 GiB; vLLM's ``gpu_memory_utilization`` and TensorRT-LLM's ``free_gpu_memory_fraction`` defaults 0.9, MindIE the
same 10 %), or, where the scenario states the engine's static pool (``workload.mem_fraction_static``, as the
SGL-GB200 rows do from their launch commands), the share outside that pool
(:func:`cost_models.memory_pool.outside_pool_reserve_bytes`: what the user ran overrides the engine default).
Over every shipped scenario and the four engines: no planned pool above capacity with that reserve inside it, and
no emitted memory fraction reaching into it; the deployment ``plan`` printed evaluates with
``evaluate --engine E`` to the same figures."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cost_models.memory_pool import outside_pool_reserve_bytes
from planner.catalog.engines import ENGINES, SGLANG_CUDA_GRAPH_MAX_BS, reserve_bytes
from planner.cli import main
from planner.emit.common import fraction
from planner.inputs.deployment_text import parse_deployment
from planner.inputs.scenario import load_scenario
from tests._engine_plans import ROOT, SCENARIOS, SERVING_ENGINES, emitted_plans, plan_json

H200_16 = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"
ASCEND_16 = ROOT / "scenarios" / "ascend_910b_deepseek_v3_16cards.yaml"
MEMORY_FLAG = {"vllm": "--gpu-memory-utilization", "sglang": "--mem-fraction-static",
               "trtllm": "--kv_cache_free_gpu_memory_fraction"}
"""The flag each engine sizes its pool by (MindIE: the NPU_MEMORY_FRACTION variable)."""


def _phases(doc: dict) -> dict[str, list[dict]]:
    """Pool role -> the memory breakdowns of the phases that pool runs (the chosen deployment's)."""
    cb = doc["chosen_breakdown"]
    if cb.get("prefill_pool"):
        return {"prefill": [cb["prefill_pool"]["prefill"]["memory_bytes"]], "decode": [cb["decode"]["memory_bytes"]]}
    return {"aggregated": [cb["prefill"]["memory_bytes"], cb["decode"]["memory_bytes"]]}


def _stated_static_fraction(path) -> float | None:  # noqa: ANN001
    """The scenario's ``workload.mem_fraction_static`` (None when it leaves the engine's default)."""
    return load_scenario(path).workload.static_memory_fraction


def _memory_fraction(engine: str, command: dict) -> float:
    if engine == "mindie":
        return float(command["env"]["NPU_MEMORY_FRACTION"])
    argv = command["argv"]
    return float(argv[argv.index(MEMORY_FLAG[engine]) + 1])


@pytest.mark.parametrize("engine", SERVING_ENGINES)
def test_every_emitted_pool_keeps_its_engine_headroom(engine):
    cap = ENGINES[engine]
    checked = 0
    for path in SCENARIOS:
        code, doc, err = emitted_plans(engine)[path.stem]
        assert code in (0, 1), f"{path.stem} --emit {engine}: exit {code}: {err}"
        if code:
            continue
        plan = parse_deployment(doc["top"][doc["chosen"]]["deployment"])
        phases = _phases(doc)
        stated = _stated_static_fraction(path)
        for pool in plan.pools:
            for m in phases[pool.role.value]:
                want = (reserve_bytes(cap, pool.dims, m["capacity_bytes"], SGLANG_CUDA_GRAPH_MAX_BS) if stated is None
                        else outside_pool_reserve_bytes(device_bytes=m["capacity_bytes"], mem_fraction_static=stated,
                                                        activation_bytes=m["activation_bytes"],
                                                        comm_buffer_bytes=m["comm_buffer_bytes"]))
                assert m["runtime_reserve_bytes"] == pytest.approx(want), (path.stem, pool.role)
                assert m["used_bytes"] <= m["capacity_bytes"], (path.stem, pool.role)  # the reserve inside
            usable = fraction((m["capacity_bytes"] - want) / m["capacity_bytes"])
            lines = [c for c in doc["launch"]["commands"] if c["role"] == pool.role.value]
            assert lines, (path.stem, pool.role)
            for c in lines:  # the engine may size its pool up to the usable memory, never into the reserve
                assert _memory_fraction(engine, c) <= usable, (path.stem, c["shell"])
            checked += 1
    assert checked >= 5, f"too few {engine} deployments emitted to check"


@pytest.mark.parametrize(("engine", "path"), [("sglang", H200_16), ("vllm", H200_16), ("trtllm", H200_16),
                                              ("mindie", ASCEND_16)])
def test_emit_implies_engine_and_the_deployment_evaluates_to_the_same_figures(engine, path):
    code, implied, _ = emitted_plans(engine)[path.stem]
    code2, explicit, _ = plan_json(path, "--engine", engine, "--emit", engine)
    assert code == code2 == 0
    assert implied["launch"] == explicit["launch"] and implied["top"] == explicit["top"]
    row = implied["top"][implied["chosen"]]
    res = CliRunner().invoke(main, ["evaluate", str(path), "--plan", row["deployment"], "--engine", engine,
                                    "--overlap-model", implied["overlap_model"], "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)["deployment"]
    for key in ("output_tok_per_s", "ttft_s", "tpot_s"):
        assert ev[key] == pytest.approx(row[key], rel=1e-9), key
    for got, want in zip(ev["pools"], row["pools"], strict=True):
        assert got["memory_used_bytes"] == pytest.approx(want["memory_used_bytes"], rel=1e-9)


def test_evaluate_engine_costs_the_engine_reserve_and_refuses_what_it_cannot_launch():
    plan = "attn_dp=16,moe_ep=16"
    def memory(*args: str) -> dict:
        res = CliRunner().invoke(main, ["evaluate", str(H200_16), "--plan", plan, "--overlap-model", "closed-form",
                                        "--json", *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)["decode"]["memory_bytes"]
    own, vllm = memory(), memory("--engine", "vllm")
    assert own["runtime_reserve_bytes"] == 3 * 2**30  # the workload's own reserve without an engine
    assert vllm["runtime_reserve_bytes"] == pytest.approx(0.10 * vllm["capacity_bytes"])  # 1 - 0.9 utilization
    assert memory("--emit", "vllm")["runtime_reserve_bytes"] == vllm["runtime_reserve_bytes"]  # --emit costs it too
    bad = CliRunner().invoke(main, ["evaluate", str(H200_16), "--plan", "attn_dp=16,moe_ep=16,overlap=single_batch",
                                    "--engine", "vllm"])
    assert bad.exit_code == 2 and "overlap=single_batch is not a vllm mode" in bad.stderr


def test_emit_names_the_engine_plan_is_for():
    res = CliRunner().invoke(main, ["plan", str(H200_16), "--engine", "sglang", "--emit", "vllm"])
    assert res.exit_code == 2 and "--emit: got 'vllm' with --engine sglang" in res.stderr


def test_the_same_figures_line_names_the_engine_the_plan_was_costed_for():
    res = CliRunner().invoke(main, ["plan", str(ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml"), "--emit", "vllm",
                                    "--top", "1"])
    assert res.exit_code == 0, res.output
    line = " ".join(res.stdout.split("same figures:")[1].split("\n")[:2])
    assert "--engine vllm" in line  # evaluate --engine vllm reproduces the engine-costed figures
