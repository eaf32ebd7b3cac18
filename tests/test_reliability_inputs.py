"""Issue 12 regression tests, the input edge: every hostile scenario / hf-config / load-file / option case of
its "Why" list exits 2 with the key path, a shortened value and what is accepted; never a traceback, never a
hang, never exit 1 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.inputs.reader import load_yaml
from planner.inputs.scenario import dump_yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = load_yaml((ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml").read_text())
HF_DIR = ROOT / "planner" / "catalog" / "hf_configs"


def run(*args: str):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def scenario(tmp_path: Path, mutate=None, text: str | None = None, name: str = "s.yaml") -> Path:
    doc = json.loads(json.dumps(BASE))
    if mutate:
        mutate(doc)
    path = tmp_path / name
    path.write_text(text if text is not None else dump_yaml(doc))
    return path


def bad(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    assert len(res.output) < 1500, len(res.output)  # one readable message, never the expanded value
    for n in needles:
        assert n in res.output, (n, res.output)


def test_the_unmutated_base_scenario_evaluates(tmp_path):
    assert run("evaluate", scenario(tmp_path), "--json").exit_code == 0


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_non_utf8_scenario_is_refused_with_the_encoding(tmp_path, encoding):
    path = tmp_path / "s.yaml"
    path.write_bytes(dump_yaml({**BASE, "name": "Mixtral café"}).encode(encoding))
    bad(run("evaluate", path), "<file>", "UTF-8")


def test_non_utf8_hf_config_is_refused(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_bytes((HF_DIR / "Mixtral-8x7B-v0.1.json").read_text().encode("utf-16"))
    bad(run("evaluate", scenario(tmp_path, lambda d: d["model"].update(catalog=None, hf_config="cfg.json"))),
        "model.hf_config", "UTF-8")


@pytest.mark.parametrize("which", ["scenario", "hf_config", "expert_load"])
def test_dev_zero_fails_fast_as_a_non_regular_file(tmp_path, which):
    if which == "scenario":
        res = run("evaluate", "/dev/zero")
        bad(res, "<file>", "regular file")
    elif which == "hf_config":
        res = run("evaluate", scenario(tmp_path, lambda d: d["model"].update(catalog=None, hf_config="/dev/zero")))
        bad(res, "model.hf_config", "regular file")
    else:
        res = run("place", scenario(tmp_path), "--expert-load", "/dev/zero")
        bad(res, "--expert-load", "regular file")


def test_oversized_scenario_is_refused_before_parsing(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(dump_yaml(BASE) + "#" * (4 * 2**20 + 1) + "\n")
    bad(run("evaluate", path), "<file>", "4 MiB")


def test_yaml_nested_500_deep_is_refused(tmp_path):
    text = dump_yaml(BASE) + "extra: " + "[" * 500 + "]" * 500 + "\n"
    bad(run("evaluate", scenario(tmp_path, text=text)), "<file>", "nesting deeper than 32")


def test_yaml_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in (zip("abcdefgh", "bcdefghi", strict=True)):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = dump_yaml(BASE) + "\n".join(lines) + "\n"
    bad(run("evaluate", scenario(tmp_path, text=text)), "<file>", "aliases")


def test_duplicate_yaml_keys_are_refused(tmp_path):
    text = dump_yaml(BASE).replace("  nodes: 1\n", "  nodes: 2\n  nodes: 4\n")
    assert "nodes: 4" in text
    bad(run("evaluate", scenario(tmp_path, text=text)), "<file>", "duplicate key 'nodes'", "line")


def test_duplicate_hf_config_keys_are_refused(tmp_path):
    text = (HF_DIR / "Mixtral-8x7B-v0.1.json").read_text().replace("{", '{"hidden_size": 1, ', 1)
    (tmp_path / "cfg.json").write_text(text)
    res = run("evaluate", scenario(tmp_path, lambda d: d["model"].update(catalog=None, hf_config="cfg.json")))
    bad(res, "model.hf_config", "duplicate keys", "hidden_size")


@pytest.mark.parametrize(("key", "value"), [("hidden_size", 10**400), ("model_type", []), ("hidden_size", 1e308),
                                            ("num_hidden_layers", -3), ("vocab_size", "many")])
def test_hostile_hf_config_values(tmp_path, key, value):
    cfg = json.loads((HF_DIR / "Mixtral-8x7B-v0.1.json").read_text())
    cfg[key] = value
    if key == "model_type":  # nothing else names the family: model_type is read and must not crash
        cfg.pop("architectures", None)
        cfg.pop("num_local_experts", None)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    res = run("evaluate", scenario(tmp_path, lambda d: d["model"].update(catalog=None, hf_config="cfg.json")))
    bad(res, "model.hf_config")


def _at(doc, dotted, value):
    *head, last = dotted.split(".")
    for k in head:
        doc = doc.setdefault(k, {})
    doc[last] = value


@pytest.mark.parametrize(("key", "value"), [
    ("cluster.nodes", 10**400), ("cluster.nodes", 65_536), ("cluster.nodes", 10**6),
    ("cluster.device_overrides.compute_units", 10**400), ("workload.decode_context_tokens", 10**400),
    ("workload.expert_imbalance", 1e300), ("workload.expert_imbalance", float("inf")),
    ("workload.expert_imbalance", float("nan")), ("cluster.device_overrides.hbm_capacity", "1e308 PB"),
    ("cluster.device_overrides.hbm_capacity", "0 GB"), ("cluster.scale_up.latency", "1e999 s"),
    ("workload.slo.tpot", "1e999 ms"), ("name", "x" * 100_000), ("workload.input_tokens", 10**12)])
def test_out_of_range_scenario_values_exit_2_naming_the_key(tmp_path, key, value):
    res = run("evaluate", scenario(tmp_path, lambda d: _at(d, key, value)))
    bad(res, key)


def test_a_unitless_slo_says_it_needs_a_unit(tmp_path):
    res = run("evaluate", scenario(tmp_path, lambda d: _at(d, "workload.slo.tpot", 40)))
    bad(res, "workload.slo.tpot", "a unit", "'40 ms'")


@pytest.mark.parametrize(("plan", "needle"), [
    ("", "--plan"), ("   ", "--plan"), ("attn_tp=8,attn_tp=4,moe_tp=8", "--plan.attn_tp"),
    ("attn_dp=16,moe_ep=16,redundant_experts=1000000001", "--plan.redundant_experts"),
    ("attn_tp=" + "9" * 400, "--plan.attn_tp"), ("attn_tp=-1", "--plan.attn_tp")])
def test_bad_plan_strings(tmp_path, plan, needle):
    bad(run("evaluate", scenario(tmp_path), "--plan", plan), needle)


def test_duplicate_plan_field_in_the_scenario(tmp_path):
    res = run("evaluate", scenario(tmp_path, lambda d: d.update(plan="attn_tp=8,moe_tp=8,moe_tp=1")))
    bad(res, "plan.moe_tp", "twice")


@pytest.mark.parametrize("counts", ["1e300", "1e308", "inf", "nan", "-1", "9" * 400])
def test_hostile_load_counts(tmp_path, counts):
    path = tmp_path / "l.csv"
    path.write_text("\n".join(",".join([counts] + ["5"] * 7) for _ in range(2)) + "\n")
    bad(run("place", scenario(tmp_path), "--expert-load", path), "--expert-load", "line 1, column 1")


def test_load_file_with_more_layers_than_the_model_is_refused(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("\n".join(",".join(["5"] * 8) for _ in range(33)) + "\n")  # Mixtral-8x7B: 32 MoE layers
    bad(run("place", scenario(tmp_path), "--expert-load", path), "--expert-load", "33 layers", "32 MoE layers")
    path.write_text("\n".join(",".join(["5"] * 8) for _ in range(100_000)) + "\n")
    bad(run("place", scenario(tmp_path), "--expert-load", path), "--expert-load", "at most 1,024 layers")


def test_json_load_file_with_nan_is_refused(tmp_path):
    path = tmp_path / "l.json"
    path.write_text('{"layers": [[NaN, 1, 1, 1, 1, 1, 1, 1]]}')
    bad(run("place", scenario(tmp_path), "--expert-load", path), "--expert-load", "finite")


@pytest.mark.parametrize("args", [
    ["plan", "--seed", "2147483648"], ["plan", "--time-limit", "nan"], ["place", "--seed", "-1"],
    ["loads", "synth", "--seed", "-1"], ["loads", "synth", "--skew", "nan"], ["loads", "synth", "--skew", "inf"],
    ["loads", "synth", "--tokens", "99999999999999999999"],
    ["cost", "gemm", "--device", "h200_sxm", "--m", "9" * 400, "--k", "1", "--n", "1"]])
def test_out_of_range_options_exit_2_naming_the_option(args):
    opt = next(a for a in args if a.startswith("--") and a != "--device")
    if args[0] == "place":
        args = ["place", str(ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml"), *args[1:]]
    res = run(*args)
    bad(res, opt)
