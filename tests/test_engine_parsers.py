"""Issue 11 acceptance: for every shipped scenario and each engine, ``plan --engine E --emit E`` exits 0 with launch
lines the engine accepts, or exits 1 saying why no layout that engine can run fits. The plans are
``plan --emit E`` (tests/_engine_plans.py, shared with tests/test_emit_headroom.py, which checks that it gives the
same output as ``plan --engine E --emit E``).

SGLang 0.5.5 and vLLM 0.11.0: every emitted server line (every role, replica and node rank) goes through the
engine's own argument parser and config checks (tests/engine_parsers/check_lines.py), with the real wheels
installed without dependencies by ``make engines`` (tests/engine_parsers/requirements-*.txt). Only these
heavy compiled modules are stand-ins, and only to build the parsers:
tests/engine_parsers/stand_ins/moeplan_stand_ins.py REPLACED = torch, functorch, triton, triton_kernels,
vllm._C, vllm._moe_C, vllm._flashmla_C, vllm.vllm_flash_attn, sgl_kernel, common_ops, flashinfer, deep_ep,
deep_gemm, pplx_kernels, xformers, flash_attn, flash_attn_origin, mscclpp.

The model argument of each line is replaced by a local folder holding the catalog's config.json for that model
(its ``auto_map`` removed: transformers' own DeepSeek-V3 / Qwen3 / Mixtral config classes read it, no remote code
is fetched); ``${VAR}`` host references by documentation addresses (192.0.2.x). Not parsed: SGLang lines with
``--device npu`` (the Ascend scenarios): SGLang's NPU path queries the device through torch_npu's runtime, which a
stand-in cannot answer honestly; their plans still must exit 0 or 1.

Skipped (with the reason) when .venv/engines is missing, unless MOEPLAN_REQUIRE_ENGINES=1 (``make test``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from planner.catalog.models import HF_CONFIG_DIR, model_entry
from planner.emit.spec import HF_REPOS
from planner.inputs.scenario import load_scenario
from tests._engine_plans import ROOT, SCENARIOS, emitted_plans

ENGINES_DIR = Path(os.environ.get("MOEPLAN_ENGINES_DIR", ROOT / ".venv" / "engines"))
HARNESS = ROOT / "tests" / "engine_parsers"
PARSED = ("sglang", "vllm")

if not (ENGINES_DIR / ".installed").exists():
    if os.environ.get("MOEPLAN_REQUIRE_ENGINES") == "1":
        raise RuntimeError(f"MOEPLAN_REQUIRE_ENGINES=1 but {ENGINES_DIR} is not installed: run `make engines`")
    pytest.skip(f"engine wheels not installed in {ENGINES_DIR} (run `make engines`)", allow_module_level=True)


_plans = emitted_plans


def _model_dir(tmp: Path, model_id: str, engine: str = "") -> Path:
    d = tmp / model_id
    if not d.exists():
        d.mkdir(parents=True)
        cfg = json.loads((HF_CONFIG_DIR / model_entry(model_id).config_file).read_text())
        cfg.pop("auto_map", None)
        if cfg.get("model_type") == "kimi_k2":  # its auto_map names DeepseekV3Config (remote code, not fetched)
            cfg["model_type"] = "deepseek_v3"
        if engine == "sglang" and cfg.get("model_type") == "step3_text":  # the catalog keeps the text part of
            # stepfun-ai/step3's config; the checkpoint the emitted --model-path names nests it as text_config of a
            # step3_vl config, which SGLang 0.5.5 registers (it has no step3_text config class; vLLM 0.11.0 has one)
            cfg = {"model_type": "step3_vl", "architectures": ["Step3VLForConditionalGeneration"],
                   "text_config": cfg}
        (d / "config.json").write_text(json.dumps(cfg))
    return d


_HOST = re.compile(r"\$\{[A-Z]+_\d+_HEAD_ADDR\}")


def _concrete(token: str, model_ref: str, model_dir: Path) -> str:
    if token == model_ref:
        return str(model_dir)
    return _HOST.sub("192.0.2.10", token)


def _lines(stem: str, doc: dict, tmp: Path, engine: str) -> list[dict]:
    sc = load_scenario(str(next(p for p in SCENARIOS if p.stem == stem)))
    ref = HF_REPOS.get(sc.model.id, "${MODEL_PATH}")
    model_dir = _model_dir(tmp, sc.model.id, engine)
    out = []
    for i, c in enumerate(doc["launch"]["commands"]):
        if c["role"] == "router" or "npu" in c["argv"]:
            continue
        env = {k: _concrete(v, ref, model_dir) for k, v in c["env"].items()}
        visible = env.get("CUDA_VISIBLE_DEVICES")
        node_devices = len(visible.split(",")) if visible else sc.cluster.devices_per_node
        out.append({"id": f"{stem} #{i} {c['role']} {c['replica']}/{c['node_rank']}",
                    "argv": [_concrete(a, ref, model_dir) for a in c["argv"]],
                    "env": env | {"MOEPLAN_STANDIN_DEVICES": str(node_devices)}})
    return out


def _run_parser(engine: str, lines: list[dict]) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HARNESS / "stand_ins"), str(ENGINES_DIR)]),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_LOGGING_LEVEL="ERROR")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run([sys.executable, str(HARNESS / "check_lines.py")], input=json.dumps(
        {"engine": engine, "lines": lines}), capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("engine", ("sglang", "vllm", "trtllm", "mindie"))
def test_plan_engine_exits_0_or_says_why(engine: str) -> None:
    """Exit 0 with launch lines, or exit 1 naming the engine constraint (never 2: a layout the search picked for
    an engine is one that engine's emitter can express)."""
    for p in SCENARIOS:
        code, doc, err = _plans(engine)[p.stem]
        assert code in (0, 1), f"{p.stem} --engine {engine}: exit {code}: {err}"
        if code == 0:
            assert doc["launch"]["engine"] == engine and doc["launch"]["commands"]
        else:
            assert "no feasible plan" in err and "constraint" in err, err


@pytest.mark.parametrize("engine", PARSED)
def test_every_emitted_line_passes_the_engines_own_checks(engine: str, tmp_path_factory) -> None:
    tmp = tmp_path_factory.mktemp(f"models-{engine}")
    plans = _plans(engine)
    lines = [ln for p in SCENARIOS if plans[p.stem][0] == 0 for ln in _lines(p.stem, plans[p.stem][1], tmp, engine)]
    assert len(lines) >= 10, "too few plans produced launch lines to test the parser on"
    results = _run_parser(engine, lines)
    assert set(results) == {ln["id"] for ln in lines}
    failed = {k: v for k, v in results.items() if v != "ok"}
    kinds = {v[:300]: k for k, v in failed.items()}  # one example line per distinct message
    assert not failed, f"{len(failed)} of {len(lines)} {engine} lines rejected: " + json.dumps(kinds, indent=1)


@pytest.mark.parametrize("engine", PARSED)
def test_the_parser_rejects_what_the_issue_reported(engine: str, tmp_path) -> None:
    """The harness can fail: the two line shapes issue 11 found broken are rejected by the same checks."""
    model_dir = _model_dir(tmp_path, "deepseek-v3")
    if engine == "sglang":
        argv = ["python3", "-m", "sglang.launch_server", "--model-path", str(model_dir), "--tp-size", "8",
                "--dp-size", "8", "--enable-dp-attention", "--ep-size", "8", "--moe-a2a-backend", "deepep",
                "--deepep-mode", "low_latency", "--disaggregation-mode", "decode", "--trust-remote-code"]
        want = "Prefill round robin balance is required"
    else:
        argv = ["vllm", "serve", str(model_dir), "--tensor-parallel-size", "1", "--data-parallel-size", "8",
                "--enable-expert-parallel", "--enable-dbo", "--max-model-len", "5000"]
        want = "VLLM_ALL2ALL_BACKEND"
    out = _run_parser(engine, [{"id": "broken", "argv": argv, "env": {}}])
    assert want in out["broken"], out


def test_sglang_accepts_the_init_expert_location_line(tmp_path):
    """The line with an expert placement (tests/test_emit_placement.py) through SGLang's own parser and checks,
    the file written where the line names it."""
    import dataclasses

    from planner import emit as E
    from tests.test_emit import disagg_spec
    from tests.test_emit_placement import _with_placement
    spec = _with_placement(dataclasses.replace(disagg_spec(), hf_repo=None))
    model_dir = _model_dir(tmp_path, "deepseek-v3")
    lines = []
    for i, c in enumerate(E.emit(spec, "sglang").commands):
        if c.role == "router":
            continue
        for name, text in c.files.items():
            (tmp_path / name).write_text(text)
        argv = [str(tmp_path / a) if a in c.files else str(model_dir) if a == "${MODEL_PATH}" else a
                for a in c.argv]
        lines.append({"id": f"#{i} {c.role}", "argv": argv, "env": dict(c.env) | {"MOEPLAN_STANDIN_DEVICES": "8"}})
    assert any("--init-expert-location" in ln["argv"] for ln in lines)
    results = _run_parser("sglang", lines)
    assert set(results.values()) == {"ok"}, results


@pytest.mark.parametrize("engine", PARSED)
def test_mtp_lines_pass_the_engines_own_checks(engine, tmp_path):
    """A plan with one MTP token (DeepSeek-V3 has one MTP layer) on every role of a disaggregated deployment:
    SGLang's speculative flags (EAGLE over the MTP layer) and vLLM's --speculative-config through each engine's
    parser and config checks (vLLM builds its draft model config from the same checkpoint folder)."""
    import dataclasses

    from planner import emit as E
    from tests.test_emit import disagg_spec
    spec = dataclasses.replace(disagg_spec(), mtp_tokens=1, hf_repo=None)
    model_dir = _model_dir(tmp_path, "deepseek-v3", engine)
    lines = [{"id": f"#{i} {c.role}", "argv": [str(model_dir) if a == "${MODEL_PATH}" else _HOST.sub("192.0.2.10", a)
                                                for a in c.argv],
              "env": dict(c.env) | {"MOEPLAN_STANDIN_DEVICES": "8"}}
             for i, c in enumerate(E.emit(spec, engine).commands) if c.role != "router"]
    flag = "--speculative-algorithm" if engine == "sglang" else "--speculative-config"
    assert any(flag in ln["argv"] for ln in lines if "decode" in ln["id"])
    results = _run_parser(engine, lines)
    assert set(results.values()) == {"ok"}, results
