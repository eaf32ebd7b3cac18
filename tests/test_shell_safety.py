"""Emitted launch lines run as data, not code: hostile model ids (the hf_config file name), paths and scenario names
go through ``moeplan evaluate S --emit E``, the printed lines run under ``bash`` with stub engines on PATH, and
nothing but the intended config files appears (issue 12, item 1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.emit import render_shell
from planner.emit.types import LaunchCommand, LaunchPlan

ROOT = Path(__file__).resolve().parents[1]
DEEPSEEK_CONFIG = ROOT / "planner" / "catalog" / "hf_configs" / "DeepSeek-V3.json"
BASH = shutil.which("bash")
STUBS = ("python3", "vllm", "trtllm-serve", "trtllm-llmapi-launch", "mindie_llm_server", "srun")

# each model id starts with "deepseek" so that MindIE accepts expert parallelism and SGLang trusts remote code
HOSTILE_IDS = [
    "deepseek$(touch PWNED)",
    "deepseek;touch PWNED2",
    "deepseek`touch PWNED3`",
    "deepseek\ntouch PWNED4\n",
    "deepseek'\"$(touch PWNED5)\"'",
    "deepseek${IFS}$(touch${IFS}PWNED6)\\",
    "deepseek\nEOF\ntouch PWNED7",
]
HOSTILE_NAME = "a;touch PWNED8 $(touch PWNED9) `touch PWNED10` '\" <!-- | EOF"
HOSTILE_DIR = "d$(touch PWNED11);`touch PWNED12`"

# engine -> (cluster and workload of a scenario it accepts, plan, the config files its lines write)
ENGINES = {
    "vllm": ("h200", "attn_tp=1,attn_dp=16,moe_ep=16,moe_tp=1,redundant_experts=16,micro_batches=2", ()),
    "sglang": ("h200", "attn_tp=1,attn_dp=16,moe_ep=16,moe_tp=1,redundant_experts=16,micro_batches=2", ()),
    "trtllm": ("h200", "attn_dp=16,moe_ep=16", ("trtllm_aggregated.yaml",)),
    "mindie": ("ascend", "attn_tp=8,attn_dp=2,moe_ep=16,moe_tp=1", ("mindie_aggregated_0.json",)),
}
CLUSTERS = {
    "h200": {"model": {"weight_precision": "fp8", "kv_precision": "bf16"},
             "cluster": {"device": "h200_sxm", "nodes": 2, "devices_per_node": 8},
             "workload": {"input_tokens": 4000, "output_tokens": 1000, "prefill_tokens_per_device": 8192,
                          "slo": {"ttft": "2 s", "tpot": "50 ms"}}},
    "ascend": {"model": {"weight_precision": "int8", "kv_precision": "bf16"},
               "cluster": {"device": "ascend_910b2", "nodes": 2, "devices_per_node": 8},
               "workload": {"input_tokens": 2048, "output_tokens": 512, "prefill_tokens_per_device": 4096,
                            "slo": {"tpot": "150 ms"}}},
}


def hostile_scenario(tmp: Path, model_id: str, cluster: str, plan: str) -> Path:
    folder = tmp / "in" / HOSTILE_DIR
    folder.mkdir(parents=True)
    shutil.copy(DEEPSEEK_CONFIG, folder / f"{model_id}.json")
    base = CLUSTERS[cluster]
    doc = {"name": HOSTILE_NAME, "model": {"hf_config": f"{HOSTILE_DIR}/{model_id}.json", **base["model"]},
           "cluster": base["cluster"], "workload": base["workload"], "plan": plan}
    path = tmp / "in" / "s.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return path


def launch_text(output: str) -> str:
    """The launch lines: everything from the header ``--emit`` prints after the text report."""
    at = output.index("# moeplan launch lines for")
    return output[at:]


def run_lines(text: str, scratch: Path) -> tuple[set[str], Path]:
    """Run ``text`` with bash in ``scratch/run`` (stub engines first on PATH, every variable the header lists set
    to a dummy value); returns the names of the files the run left there, and the run folder."""
    stubs, run = scratch / "stubs", scratch / "run"
    stubs.mkdir(parents=True)
    run.mkdir()
    for name in STUBS:
        stub = stubs / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "HOME": str(scratch), "LC_ALL": "C"}
    env |= {v: f"dummy-{v.lower()}" for v in re.findall(r"^# set ([A-Za-z_][A-Za-z0-9_]*):", text, re.M)}
    script = scratch / "launch.sh"
    script.write_text(text, encoding="utf-8")
    done = subprocess.run([BASH, "-u", str(script)], cwd=run, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return {p.name for p in run.iterdir()}, run


def pwned(tmp: Path) -> list[Path]:
    """Files named PWNED* anywhere under ``tmp`` except the hostile inputs themselves (config file and folder)."""
    inputs = tmp / "in"
    return [p for p in tmp.rglob("PWNED*")] + [p for p in inputs.rglob("*")
                                               if p.name not in ("s.yaml", HOSTILE_DIR) and p.suffix != ".json"]


@pytest.mark.skipif(BASH is None, reason="needs bash")
@pytest.mark.parametrize("model_id", HOSTILE_IDS)
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_hostile_strings_in_emitted_lines_stay_data(tmp_path, engine, model_id):
    cluster, plan, config_files = ENGINES[engine]
    path = hostile_scenario(tmp_path, model_id, cluster, plan)
    res = CliRunner().invoke(main, ["evaluate", str(path), "--emit", engine])
    assert res.exit_code == 0, res.output
    text = launch_text(res.output)
    written, run = run_lines(text, tmp_path / "scratch")
    assert written == set(config_files)
    assert pwned(tmp_path) == []
    if engine == "mindie":  # the fragment is exact: the hostile id verbatim, ${MODEL_PATH} expanded
        model = json.loads((run / config_files[0]).read_text())["BackendConfig"]["ModelDeployConfig"]["ModelConfig"]
        assert model[0]["modelName"] == model_id and model[0]["modelWeightPath"] == "dummy-model_path"
    if engine == "trtllm":
        assert (run / config_files[0]).read_text().startswith("enable_attention_dp: true\n")


HOSTILE = "x$(touch PWNED_A);touch PWNED_B `touch PWNED_C`\n'\"\\"


def test_every_value_and_file_body_is_inert_even_next_to_an_expanding_variable(tmp_path):
    # ${MODEL_PATH} must expand in argv, env and file bodies; everything around it must not execute. A body line
    # "EOF" must not end the here-document early.
    cmd = LaunchCommand(role="aggregated", replica=0, node_rank=0, node=0,
                        argv=("vllm", f"${{MODEL_PATH}}/{HOSTILE}", HOSTILE),
                        env={"X_VAR": f"{HOSTILE}${{MODEL_PATH}}"},
                        files={"a.txt": f"{HOSTILE}\nEOF\n${{MODEL_PATH}}\n", "b.txt": f"EOF\n{HOSTILE}\n$HOME\n"},
                        notes=(f"note {HOSTILE}",))
    plan = LaunchPlan(engine="vllm", version="t", sources=(f"src {HOSTILE}",), commands=(cmd,),
                      notes=(f"plan note\ntouch PWNED_D {HOSTILE}",))
    text = render_shell(plan)
    assert "cat > b.txt <<'EOF_1'" in text  # no variable in b.txt: quoted delimiter, nothing expands
    written, run = run_lines(text, tmp_path)
    assert written == {"a.txt", "b.txt"}
    assert not list(tmp_path.rglob("PWNED*"))
    assert (run / "a.txt").read_text() == f"{HOSTILE}\nEOF\ndummy-model_path\n"
    assert (run / "b.txt").read_text() == f"EOF\n{HOSTILE}\n$HOME\n"


def test_the_vllm_stub_receives_the_hostile_words_verbatim(tmp_path):
    # a stub that records its arguments: the quoting keeps each word whole (one argument per argv entry)
    cmd = LaunchCommand(role="aggregated", replica=0, node_rank=0, node=0,
                        argv=("recorder", f"${{MODEL_PATH}}{HOSTILE}", HOSTILE, ""))
    text = render_shell(LaunchPlan(engine="vllm", version="t", sources=(), commands=(cmd,)))
    stubs = tmp_path / "bin"
    stubs.mkdir()
    rec = stubs / "recorder"
    rec.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > {tmp_path}/args\n")
    rec.chmod(0o755)
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "MODEL_PATH": "m p"}
    subprocess.run([BASH, "-c", text], cwd=tmp_path, env=env, check=True, timeout=60)
    args = (tmp_path / "args").read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in args] == [f"m p{HOSTILE}", HOSTILE, ""]


def _training_plans() -> dict[str, LaunchPlan]:
    """Training launch plans whose words carry shell metacharacters of their own: the pipeline layout ('|'), the
    MoE layer pattern ('(', '*', '[', '+'), and the three variables the user sets."""
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "training"))
    from _train_rows import ROWS_BY_ID

    from planner.emit import megatron, mindspeed
    out = {}
    for engine, fn, row_id in (("megatron", megatron.emit, "TR-DSV3-H100"), ("mindspeed", mindspeed.emit, "TR-MIX-A2")):
        r = ROWS_BY_ID[row_id]
        out[engine] = fn(r.model, r.workload, r.dims, r.cluster)
    return out


@pytest.mark.skipif(BASH is None, reason="needs bash")
@pytest.mark.parametrize("engine", ["megatron", "mindspeed"])
def test_training_lines_pass_every_word_verbatim_with_hostile_variables(tmp_path, engine):
    # the user's MASTER_ADDR / DATA_PATH / TOKENIZER_PATH hold hostile text: it must reach torchrun as one word
    plan = _training_plans()[engine]
    plan = LaunchPlan(engine=plan.engine, version=plan.version, sources=plan.sources, commands=plan.commands[:1],
                      notes=plan.notes)
    text = render_shell(plan)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    rec = stubs / "torchrun"
    rec.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > {tmp_path}/args\n"
                   f"env > {tmp_path}/env\n")
    rec.chmod(0o755)
    values = {"MASTER_ADDR": HOSTILE, "DATA_PATH": f"d {HOSTILE}", "TOKENIZER_PATH": f"{HOSTILE}*"}
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", **values}
    subprocess.run([BASH, "-u", "-c", text], cwd=tmp_path, env=env, check=True, timeout=60)
    assert not list(tmp_path.rglob("PWNED*"))
    args = [a.decode() for a in (tmp_path / "args").read_bytes().split(b"\0")[:-1]]
    expected = list(plan.commands[0].argv[1:])
    for var, value in values.items():
        expected = [a.replace("${" + var + "}", value) for a in expected]
    assert args == expected
    recorded_env = (tmp_path / "env").read_text()
    assert all(f"{k}={v}" in recorded_env for k, v in plan.commands[0].env.items())
