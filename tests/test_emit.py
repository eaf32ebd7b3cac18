"""Launch lines (--emit): every flag, config key and variable is in the engine's source table; the values realise
the plan; what an engine cannot express raises EmitError naming the plan field."""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from cost_models.serving import evaluate
from planner import emit as E
from planner.cli import main
from planner.emit import common
from planner.emit.spec import _role
from planner.inputs.scenario import load_scenario, parse_plan

ROOT = Path(__file__).resolve().parents[1]
H200_16 = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"
ASCEND_16 = ROOT / "scenarios" / "ascend_910b_deepseek_v3_16cards.yaml"
A100_8 = ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml"
SGLANG_PLAN = "attn_dp=16,moe_ep=16,redundant_experts=16,micro_batches=2,overlap=two_batch"


def evaluated(path: Path, plan: str | None = None):  # noqa: ANN201
    sc = load_scenario(path)
    dims = parse_plan(plan) if plan else sc.plan
    return sc, dims, evaluate(sc.model, sc.cluster, dims, sc.workload)


def spec_of(path: Path, plan: str | None = None) -> E.LaunchSpec:
    return E.spec_from_evaluation(*evaluated(path, plan))


def disagg_spec() -> E.LaunchSpec:
    """16 x H200: one 8-GPU prefill replica and one 8-GPU decode replica, both attention-DP 8 / EP 8."""
    sc, dims, res = evaluated(H200_16, "attn_dp=8,moe_ep=8,dp=2")
    one = parse_plan("attn_dp=8,moe_ep=8")
    spec = E.spec_from_evaluation(sc, dims, res)
    return dataclasses.replace(spec, roles=(_role("prefill", one, 1, res), _role("decode", one, 1, res)))


def value(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def flags(argv: tuple[str, ...]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv if a.startswith("-") and not a.lstrip("-").isdigit()}


def leaf_keys(obj: object, prefix: str = "") -> set[str]:
    """Dotted paths of the scalar (or scalar-list) values of nested dicts; list items share their list's path; a
    dict keyed by integers (a per-layer map) is one value."""
    if isinstance(obj, dict) and obj and all(str(k).isdigit() for k in obj):
        return {prefix}
    if isinstance(obj, dict):
        return {k for key, v in obj.items() for k in leaf_keys(v, f"{prefix}.{key}" if prefix else str(key))}
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return {k for v in obj for k in leaf_keys(v, prefix)}
    return {prefix}


def simple_yaml(text: str) -> dict:
    """Parse the YAML subset the TensorRT-LLM emitter writes (2-space mappings, '- ' lists, JSON scalars);
    yaml itself is only imported by planner/inputs/scenario.py."""
    root: dict = {}
    stack: list = [(-1, root, None, None)]
    for line in text.splitlines():
        indent, body = len(line) - len(line.lstrip(" ")), line.strip()
        while stack[-1][0] >= indent:
            stack.pop()
        level, box, owner, key = stack[-1]
        if body.startswith("- "):
            if isinstance(box, dict):
                box = owner[key] = []
                stack[-1] = (level, box, owner, key)
            box.append(json.loads(body[2:]))
            continue
        k, _, v = body.partition(":")
        if v.strip():
            box[k] = json.loads(v.strip())
        else:
            box[k] = {}
            stack.append((indent, box[k], box, k))
    return root


def load_file(name: str, text: str) -> object:
    return json.loads(text) if name.endswith(".json") else simple_yaml(text)


def check_against_table(plan: E.LaunchPlan) -> None:
    src = E.ENGINES[plan.engine][0]
    assert plan.version == src.version and plan.sources == src.cited()
    for c in plan.commands:
        unknown = flags(c.argv) - set(src.flags)
        assert not unknown, f"{plan.engine}: flags not in the source table: {unknown}"
        assert set(c.env) <= set(src.env_vars), set(c.env) - set(src.env_vars)
        for name, text in c.files.items():
            written = leaf_keys(load_file(name, text))
            assert written <= set(src.config_keys), written - set(src.config_keys)


CASES = [("vllm", H200_16, None), ("sglang", H200_16, None), ("trtllm", H200_16, "attn_dp=16,moe_ep=16"),
         ("sglang", ASCEND_16, None), ("mindie", ASCEND_16, None), ("vllm", A100_8, None),
         ("trtllm", A100_8, None), ("sglang", A100_8, "attn_tp=4,moe_tp=4,dp=2")]


@pytest.mark.parametrize(("engine", "path", "plan"), CASES)
def test_every_emitted_name_is_in_the_engine_source_table(engine, path, plan):
    check_against_table(E.emit(spec_of(path, plan), engine))


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_disaggregated_plans_get_separate_prefill_and_decode_lines(engine):
    plan = E.emit(disagg_spec(), engine)
    check_against_table(plan)
    roles = [c.role for c in plan.commands]
    assert roles.count("prefill") == 1 and roles.count("decode") == 1
    pre, dec = (next(c for c in plan.commands if c.role == r) for r in ("prefill", "decode"))
    assert pre.node != dec.node  # two 8-GPU pools on two nodes
    if engine == "sglang":
        assert value(pre.argv, "--disaggregation-mode") == "prefill"
        assert value(dec.argv, "--disaggregation-mode") == "decode"
        assert value(pre.argv, "--deepep-mode") == "normal" and value(dec.argv, "--deepep-mode") == "low_latency"
        router = next(c for c in plan.commands if c.role == "router")
        assert value(router.argv, "--prefill") == "http://${PREFILL_0_HEAD_ADDR}:30000"
    elif engine == "vllm":
        for c in (pre, dec):
            assert json.loads(value(c.argv, "--kv-transfer-config"))["kv_connector"] == "NixlConnector"
        assert "--max-num-seqs" in dec.argv and "--max-num-seqs" not in pre.argv
    else:
        pre_opts = simple_yaml(pre.files["trtllm_prefill.yaml"])
        assert pre_opts["cache_transceiver_config"]["max_tokens_in_buffer"] == 4000
        assert pre_opts["disable_overlap_scheduler"] is True
        router = next(c for c in plan.commands if c.role == "router")
        cfg = simple_yaml(router.files["disagg_config.yaml"])
        assert cfg["context_servers"]["urls"] == ["${PREFILL_0_HEAD_ADDR}:8001"]
        assert cfg["generation_servers"]["num_instances"] == 1


def test_sglang_deepseek_v3_on_16_h200_realises_the_plan():
    spec = spec_of(H200_16, SGLANG_PLAN)
    plan = E.emit(spec, "sglang")
    assert [c.node_rank for c in plan.commands] == [0, 1] and [c.node for c in plan.commands] == [0, 1]
    role = spec.roles[0]
    for c in plan.commands:
        a = c.argv
        assert value(a, "--tp-size") == "16" and value(a, "--dp-size") == "16" and "--enable-dp-attention" in a
        assert value(a, "--ep-size") == "16" and value(a, "--moe-a2a-backend") == "deepep"
        assert value(a, "--ep-num-redundant-experts") == "16" and "--enable-eplb" in a
        assert "--enable-two-batch-overlap" in a and value(a, "--moe-dense-tp-size") == "1"
        assert value(a, "--nnodes") == "2" and value(a, "--dist-init-addr") == "${AGGREGATED_0_HEAD_ADDR}:5000"
        # instance-wide values SGLang divides by --dp-size: 8192 tokens/device x attn_tp 1 x 16 ranks
        assert value(a, "--chunked-prefill-size") == str(8192 * 16)
        assert value(a, "--max-running-requests") == str(math.ceil(role.decode_batch_per_device) * 16)
        assert value(a, "--context-length") == "5000"  # 4000 in + 1000 out
        frac = float(value(a, "--mem-fraction-static"))
        m = role.memory
        assert (m.weight_bytes + m.kv_cache_bytes + m.comm_buffer_bytes) / m.capacity_bytes <= frac
    assert [value(c.argv, "--node-rank") for c in plan.commands] == ["0", "1"]


def test_vllm_multi_node_data_parallel_lines():
    spec = spec_of(H200_16)
    head, other = E.emit(spec, "vllm").commands
    for c in (head, other):
        assert value(c.argv, "--tensor-parallel-size") == "1" and value(c.argv, "--data-parallel-size") == "16"
        assert value(c.argv, "--data-parallel-size-local") == "8" and "--enable-expert-parallel" in c.argv
        assert json.loads(value(c.argv, "--eplb-config")) == {"num_redundant_experts": 16}
        m = spec.roles[0].memory  # everything the plan puts on a device except the engine's reserve
        used = (m.used_bytes - m.runtime_reserve_bytes) / m.capacity_bytes
        assert used <= float(value(c.argv, "--gpu-memory-utilization")) < used + 0.01 + 1e-9
    assert "--headless" not in head.argv and "--data-parallel-start-rank" not in head.argv
    assert "--headless" in other.argv and value(other.argv, "--data-parallel-start-rank") == "8"
    # --max-num-seqs is per DP rank: the cost model's sequences per device x attn_tp (1)
    assert value(head.argv, "--max-num-seqs") == str(common.seqs_per_rank(spec.roles[0]))


def test_trtllm_attention_dp_and_srun_over_two_nodes():
    spec = spec_of(H200_16, "attn_dp=16,moe_ep=16")
    (cmd,) = E.emit(spec, "trtllm").commands
    a = cmd.argv
    assert a[:7] == ("srun", "-N", "2", "--ntasks", "16", "--ntasks-per-node=8", "--mpi=pmix")
    assert value(a, "--tp_size") == "16" and value(a, "--ep_size") == "16"
    assert simple_yaml(cmd.files["trtllm_aggregated.yaml"])["enable_attention_dp"] is True
    m = spec.roles[0].memory
    # KV over what is left after weights, activations and buffers: the engine's reserve stays outside
    kv = m.kv_cache_bytes / (m.capacity_bytes - (m.used_bytes - m.kv_cache_bytes - m.runtime_reserve_bytes))
    assert kv <= float(value(a, "--kv_cache_free_gpu_memory_fraction")) < kv + 0.01 + 1e-9


def test_mindie_writes_config_fragments_per_node():
    spec = spec_of(ASCEND_16)
    plan = E.emit(spec, "mindie")
    assert len(plan.commands) == 2 and any("config.json" in n for n in plan.notes)
    for rank, c in enumerate(plan.commands):
        assert c.argv == ("mindie_llm_server",) and c.node_rank == rank
        cfg = json.loads(c.files["mindie_aggregated_0.json"])
        model = cfg["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]
        assert (model["tp"], model["dp"], model["moe_tp"], model["moe_ep"], model["worldSize"]) == (8, 2, 1, 16, 16)
        assert model["tp"] * model["dp"] == model["worldSize"]  # MindIE's rule (data_parallel.md)
        assert cfg["BackendConfig"]["multiNodesInferEnabled"] is True
        assert c.env["MASTER_IP"] == "${AGGREGATED_0_HEAD_ADDR}" and "RANK_TABLE_FILE" in c.env
        assert float(c.env["NPU_MEMORY_FRACTION"]) == common.engine_fraction(spec.roles[0].memory)


def test_replicas_smaller_than_a_node_share_it_on_disjoint_devices():
    spec = spec_of(A100_8, "attn_tp=4,moe_tp=4,dp=2")
    a, b = E.emit(spec, "vllm").commands  # no front end: a note says to put a load balancer in front
    assert (a.node, b.node) == (0, 0)
    assert (a.env["CUDA_VISIBLE_DEVICES"], b.env["CUDA_VISIBLE_DEVICES"]) == ("0,1,2,3", "4,5,6,7")
    assert "--port" not in a.argv and value(b.argv, "--port") == "8001"
    s0, s1, router = E.emit(spec, "sglang").commands
    assert router.role == "router" and "--worker-urls" in router.argv
    assert "--base-gpu-id" not in s0.argv and value(s1.argv, "--base-gpu-id") == "4"
    assert value(s1.argv, "--port") == "30001"


@pytest.mark.parametrize(("engine", "path", "plan", "field"), [
    ("trtllm", ASCEND_16, None, "cluster.device"),
    ("vllm", ASCEND_16, None, "cluster.device"),
    ("mindie", H200_16, None, "cluster.device"),
    ("vllm", H200_16, "attn_dp=16,moe_ep=8,moe_tp=2", "plan.moe_tp"),
    ("trtllm", H200_16, "attn_tp=2,attn_dp=8,moe_ep=16,dense_tp=2", "plan.attn_tp"),
    ("trtllm", H200_16, None, "plan.redundant_experts"),
    ("vllm", H200_16, "attn_tp=2,attn_dp=8,moe_ep=16", "plan.dense_tp"),
    ("sglang", H200_16, "attn_tp=2,attn_dp=8,moe_ep=16,dense_tp=2", "plan.dense_tp"),
    ("vllm", H200_16, "attn_dp=8,moe_ep=8,pp=2", "plan.pp"),
    ("sglang", H200_16, "attn_dp=8,moe_ep=8,pp=2", "plan.pp"),
    ("trtllm", H200_16, "attn_dp=8,moe_ep=8,pp=2", "plan.pp"),
    ("mindie", ASCEND_16, "attn_tp=8,attn_dp=2,moe_ep=16,redundant_experts=16", "plan.redundant_experts"),
    ("mindie", ASCEND_16, "attn_tp=8,moe_ep=8,pp=2", "plan.pp"),
])
def test_what_an_engine_cannot_express_raises_naming_the_field(engine, path, plan, field):
    with pytest.raises(E.EmitError) as err:
        E.emit(spec_of(path, plan), engine)
    assert err.value.field == field and err.value.accepted
    assert err.value.message().startswith(f"--emit {engine}: {field}: got ")


def test_mindie_refuses_disaggregation_and_sglang_refuses_expert_tp():
    with pytest.raises(E.EmitError) as err:
        E.emit(dataclasses.replace(disagg_spec(), device=spec_of(ASCEND_16).device), "mindie")
    assert err.value.field == "deployment.mode"
    # SGLang 0.5.5 forces ep_size = tp_size under DeepEP, the all-to-all the plan was costed with (issue 11:
    # --tp-size 48 --ep-size 24 did not get DeepEP)
    with pytest.raises(E.EmitError) as err:
        E.emit(spec_of(H200_16, "attn_dp=16,moe_ep=8,moe_tp=2"), "sglang")
    assert err.value.field == "plan.moe_tp" and "ep_size = tp_size" in err.value.accepted


def test_shell_lines_keep_variables_expandable_and_split_back_to_argv():
    plan = E.emit(spec_of(H200_16), "vllm")
    text = E.render_shell(plan)
    assert text.startswith("# moeplan launch lines for vllm 0.11.0")
    assert "# set AGGREGATED_0_HEAD_ADDR: IP address of node rank 0 of aggregated replica 0" in text
    line = next(ln for ln in text.splitlines() if "vllm serve" in ln and not ln.startswith("#"))
    assert '"${AGGREGATED_0_HEAD_ADDR}"' in line
    words = shlex.split(line)  # VAR=value assignments (the all-to-all back end), then the command
    env = dict(w.split("=", 1) for w in words[:words.index("vllm")])
    assert env == dict(plan.commands[0].env) and tuple(words[len(env):]) == plan.commands[0].argv


def test_model_without_a_known_repo_reads_model_path():
    spec = spec_of(H200_16)
    plan = E.emit(dataclasses.replace(spec, hf_repo=None), "sglang")
    assert value(plan.commands[0].argv, "--model-path") == "${MODEL_PATH}"
    assert "# set MODEL_PATH:" in E.render_shell(plan)
    assert E.HF_REPOS["deepseek-v3"] == "deepseek-ai/DeepSeek-V3"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_cli_evaluate_emit_sglang():
    res = run("evaluate", str(H200_16), "--plan", SGLANG_PLAN, "--emit", "sglang")
    assert res.exit_code == 0, res.output
    assert "# moeplan launch lines for sglang" in res.stdout and "--enable-dp-attention" in res.stdout


def test_cli_evaluate_emit_vllm_json():
    res = run("evaluate", str(H200_16), "--plan", SGLANG_PLAN, "--emit", "vllm", "--json")
    assert res.exit_code == 0, res.output
    launch = json.loads(res.stdout)["launch"]
    assert launch["engine"] == "vllm" and launch["version"] == "0.11.0"
    assert [c["node_rank"] for c in launch["commands"]] == [0, 1]
    assert launch["commands"][0]["argv"][:2] == ["vllm", "serve"]


def test_cli_evaluate_emit_trtllm_and_its_exit_2():
    ok = run("evaluate", str(H200_16), "--plan", "attn_dp=16,moe_ep=16", "--emit", "trtllm")
    assert ok.exit_code == 0, ok.output
    assert "trtllm-serve" in ok.stdout and "cat > trtllm_aggregated.yaml <<'EOF'" in ok.stdout
    bad = run("evaluate", str(H200_16), "--emit", "trtllm")  # the scenario's plan has 16 redundant experts
    assert bad.exit_code == 2 and "plan.redundant_experts: got 16" in bad.stderr


def test_cli_evaluate_emit_mindie_and_its_exit_2():
    ok = run("evaluate", str(ASCEND_16), "--emit", "mindie")
    assert ok.exit_code == 0, ok.output
    assert "mindie_llm_server" in ok.stdout and '"moe_ep": 16' in ok.stdout
    bad = run("evaluate", str(H200_16), "--emit", "mindie")
    assert bad.exit_code == 2 and "cluster.device: got h200_sxm" in bad.stderr


def test_cli_emit_needs_one_scenario():
    res = run("evaluate", str(H200_16), str(H200_16), "--plan", SGLANG_PLAN, "--emit", "sglang")
    assert res.exit_code == 2 and "one scenario" in res.stderr


def test_cli_plan_emit_matches_the_chosen_deployment():
    res = run("plan", "--top", "1", "--time-limit", "2", "--json", "--emit", "sglang")
    assert res.exit_code == 0, res.output  # --emit sglang implies --engine sglang: a layout SGLang launches
    doc = json.loads(res.stdout)
    pools = {p["role"] for p in doc["top"][0]["pools"]}
    roles = {c["role"] for c in doc["launch"]["commands"]} - {"router"}
    assert roles == pools
