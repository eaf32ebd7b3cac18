"""Issue 11: TensorRT-LLM and MindIE launch lines checked against each engine's published config schema at a
pinned commit, copied into tests/data/engine_schemas/ with its source (``source`` in each file):

- TensorRT-LLM: the fields and types of TorchLlmArgs / BaseLlmArgs, KvCacheConfig, MoeConfig,
  MoeLoadBalancerConfig, CacheTransceiverConfig, CudaGraphConfig and MTPDecodingConfig (pydantic models that
  forbid extra keys, so an unknown key fails the engine's start-up), the ``trtllm-serve`` and ``trtllm-serve
  disaggregated`` click options, and the keys ``trtllm-serve disaggregated -c`` reads.
- MindIE: the config.json parameter tables (types, accepted values, ranges) plus the keys the data-parallel and
  expert-parallel feature pages add to ModelConfig, and the rules the tables state between keys.

Every emitted line of every shipped scenario (``plan --emit E``, tests/_engine_plans.py) and hand-made specs
covering the branches the scenarios do not reach (disaggregation, MTP, FP8 KV, redundant experts on FP4) are
checked; the checker is shown to reject the mistakes it is for."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cost_models.specs import Precision
from planner import emit as E
from planner.emit.spec import _role
from planner.inputs.scenario import parse_plan
from tests._engine_plans import SCENARIOS, emitted_plans
from tests.engine_parsers.schema_check import mindie_problems, schema, trtllm_problems
from tests.test_emit import ASCEND_16, H200_16, disagg_spec, evaluated

CHECK = {"trtllm": trtllm_problems, "mindie": mindie_problems}


def _problems(engine: str, plan: E.LaunchPlan | dict) -> list[str]:
    doc = plan if isinstance(plan, dict) else json.loads(E.launch_document(plan).model_dump_json())
    sch = schema(engine)
    return [f"#{i} {c['role']}: {p}" for i, c in enumerate(doc["commands"]) for p in CHECK[engine](c, sch)]


@pytest.mark.parametrize("engine", ["trtllm", "mindie"])
def test_every_shipped_scenario_emits_keys_the_engine_schema_has(engine):
    checked = 0
    for path in SCENARIOS:
        code, doc, _ = emitted_plans(engine)[path.stem]
        if code:
            continue
        problems = _problems(engine, doc["launch"])
        assert not problems, f"{path.stem}: " + "; ".join(problems)
        checked += sum(len(c["files"]) for c in doc["launch"]["commands"])
    assert checked >= 3, f"too few {engine} config files emitted to check"


def _trtllm_specs() -> list[E.LaunchSpec]:
    disagg = disagg_spec()
    sc, dims, res = evaluated(H200_16, "attn_dp=8,moe_ep=8,dp=2")
    redundant = parse_plan("attn_dp=8,moe_ep=8,redundant_experts=8")
    fp4 = dataclasses.replace(E.spec_from_evaluation(sc, dims, res), weight_precision=Precision.FP4,
                              roles=(_role("aggregated", redundant, 2, res),))
    return [disagg, dataclasses.replace(disagg, mtp_tokens=1), dataclasses.replace(disagg, kv_precision=Precision.FP8),
            fp4]


def test_trtllm_branches_the_scenarios_do_not_reach_match_the_schema():
    plans = [E.emit(s, "trtllm") for s in _trtllm_specs()]
    files = {name: text for p in plans for c in p.commands for name, text in c.files.items()}
    assert {"disagg_config.yaml", "trtllm_prefill.yaml", "trtllm_aggregated.yaml"} <= set(files)
    texts = [text for p in plans for c in p.commands for text in c.files.values()]
    for key in ("speculative_config:", "cache_transceiver_config:", "load_balancer:", "dtype: \"fp8\""):
        assert any(key in t for t in texts), key  # each branch was emitted
    for p in plans:
        assert _problems("trtllm", p) == []


def test_mindie_single_and_multi_node_fragments_match_the_schema():
    sc, dims, res = evaluated(ASCEND_16, "attn_tp=2,attn_dp=8,moe_ep=16")
    one_node = parse_plan("attn_tp=2,attn_dp=4,moe_ep=8")
    spec = E.spec_from_evaluation(sc, dims, res)
    for s in (spec, dataclasses.replace(spec, roles=(_role("aggregated", one_node, 2, res),))):
        assert _problems("mindie", E.emit(s, "mindie")) == []


def _trtllm_command(files: dict[str, str], argv: tuple[str, ...] = ("trtllm-serve", "m", "--tp_size", "8")) -> dict:
    return {"argv": list(argv), "files": files}


@pytest.mark.parametrize(("files", "argv", "words"), [
    ({"a.yaml": "moe_config:\n  backend: \"DEEPEP\"\n"}, None, "moe_config.backend: got 'DEEPEP'"),
    ({"a.yaml": "enable_attention_data_parallel: true\n"}, None, "enable_attention_data_parallel: not a field"),
    ({"a.yaml": "kv_cache_config:\n  free_gpu_memory_fraction: \"0.9\"\n"}, None,
     "kv_cache_config.free_gpu_memory_fraction: got '0.9'"),
    ({"a.yaml": "cache_transceiver_config:\n  max_num_tokens: 4096\n"}, None,
     "cache_transceiver_config.max_num_tokens: not a field"),  # the 0.19 name, renamed max_tokens_in_buffer
    ({}, ("trtllm-serve", "m", "--tp-size", "8"), "--tp-size: not an option"),
    ({}, ("trtllm-serve", "m", "--kv_cache_free_gpu_memory_fraction", "most"),
     "--kv_cache_free_gpu_memory_fraction: got 'most'"),
    ({"disagg_config.yaml": "context_servers:\n  num_instances: 1\n  urls:\n    - \"host\"\n"}, None,
     "context_servers.urls: got ['host']"),
])
def test_the_trtllm_check_rejects_what_the_engine_would(files, argv, words):
    problems = trtllm_problems(_trtllm_command(files, argv or ("trtllm-serve", "m")), schema("trtllm"))
    assert any(words in p for p in problems), problems


def _mindie_fragment(**model: object) -> dict:
    base = {"modelName": "m", "worldSize": 8, "tp": 1, "dp": 8, "npuMemSize": -1, "backendType": "atb"}
    doc = {"BackendConfig": {"npuDeviceIds": [list(range(8))], "ModelDeployConfig": {
        "maxSeqLen": 5000, "maxInputTokenLen": 4000, "ModelConfig": [base | model]},
        "ScheduleConfig": {"maxBatchSize": 64, "maxPrefillTokens": 4000, "maxIterTimes": 1000}}}
    return {"argv": ["mindie_llm_server"], "files": {"f.json": json.dumps(doc)}}


@pytest.mark.parametrize(("model", "words"), [
    ({}, None),
    ({"ep": 8}, "ModelConfig[0].ep: not a field"),
    ({"backendType": "ms"}, "backendType: got 'ms'"),
    ({"models": {"deepseekv2": {"ep_level": 3}}}, "ep_level: got 3"),
    ({"tp": 2}, "tp=2 x dp=8 != worldSize=8"),
    ({"npuMemSize": 0}, "npuMemSize=0"),
])
def test_the_mindie_check_rejects_what_the_tables_forbid(model, words):
    problems = mindie_problems(_mindie_fragment(**model), schema("mindie"))
    if words is None:
        assert problems == []
    else:
        assert any(words in p for p in problems), problems
