"""Issue 11's input friction: unit hints, engine degree names, "did you mean" for misspelt keys, infeasibility
suggestions that match the stated reason, --export saying what it wrote, and --help text on every option."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.inputs.reader import load_yaml
from planner.inputs.scenario import dump_yaml

ROOT = Path(__file__).resolve().parents[1]
MIXTRAL = ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml"
BASE = load_yaml(MIXTRAL.read_text())


def run(*args: object):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def scenario(tmp_path: Path, mutate) -> Path:
    doc = json.loads(json.dumps(BASE))
    mutate(doc)
    path = tmp_path / "s.yaml"
    path.write_text(dump_yaml(doc))
    return path


def test_a_unitless_tpot_asks_for_a_unit(tmp_path):
    res = run("evaluate", scenario(tmp_path, lambda d: d["workload"]["slo"].update(tpot=40)))
    assert res.exit_code == 2 and "workload.slo.tpot" in res.output and "'40 ms'" in res.output, res.output


@pytest.mark.parametrize(("plan", "names"), [("tp=8,ep=8", ["attn_tp", "moe_tp"]), ("ep=8", ["moe_ep"]),
                                             ("etp=2", ["moe_tp"])])
def test_engine_degree_names_are_answered_with_the_moeplan_names(plan, names):
    res = run("evaluate", MIXTRAL, "--plan", plan)
    assert res.exit_code == 2, res.output
    assert "a moeplan plan field" in res.output
    for n in names:
        assert n in res.output


def test_a_misspelt_plan_field_gets_the_closest_one():
    res = run("evaluate", MIXTRAL, "--plan", "attn_tpp=8,moe_tp=8")
    assert res.exit_code == 2 and "did you mean 'attn_tp'?" in res.output, res.output


@pytest.mark.parametrize(("section", "wrong", "right"), [("workload", "output_token", "output_tokens"),
                                                        ("cluster", "node", "nodes"), (None, "nmae", "name")])
def test_a_misspelt_yaml_key_gets_the_closest_key(tmp_path, section, wrong, right):
    def mutate(d):
        where = d[section] if section else d
        where[wrong] = where.pop(right)
    res = run("evaluate", scenario(tmp_path, mutate))
    assert res.exit_code == 2, res.output
    assert (f"{section}.{wrong}" if section else wrong) in res.output and f"did you mean '{right}'?" in res.output


def test_an_unrelated_yaml_key_lists_the_keys_without_guessing(tmp_path):
    res = run("evaluate", scenario(tmp_path, lambda d: d["workload"].update(zzzz=1)))
    assert res.exit_code == 2 and "did you mean" not in res.output and "keys here:" in res.output, res.output


def test_weights_that_do_not_fit_get_no_shorter_context_advice(tmp_path):
    # Mixtral-8x7B BF16 holds 87 GiB of weights; one replica per A100 80GB (dp=8): no context makes it fit
    res = run("evaluate", MIXTRAL, "--plan", "attn_tp=1,moe_ep=1,dp=8")
    assert res.exit_code == 1 and "weights alone 87.0 GiB" in res.output, res.output
    assert "context" not in res.output
    # plan on a single device: the leanest layout is over before any KV cache
    one = scenario(tmp_path, lambda d: (d["cluster"].update(devices_per_node=1), d.pop("plan")))
    res = run("plan", one)
    assert res.exit_code == 1 and "before any KV cache" in res.output, res.output
    assert "shorter context" not in res.output


def test_kv_that_does_not_fit_still_gets_shorter_context_advice(tmp_path):
    # two A100s hold the 87 GiB of weights; a 1,000,000-token prompt's KV cache does not fit beside them
    two = scenario(tmp_path, lambda d: (d["cluster"].update(devices_per_node=2),
                                        d["workload"].update(input_tokens=1_000_000), d.pop("plan")))
    res = run("plan", two)
    assert res.exit_code == 1 and "shorter context" in res.output, res.output


def test_export_says_what_it_wrote_on_stderr(tmp_path):
    out = tmp_path / "e.json"
    res = CliRunner().invoke(main, ["evaluate", str(MIXTRAL), "--json", "--export", str(out)])
    assert res.exit_code == 0, res.stderr
    assert f"wrote {out}" in res.stderr and "wrote" not in res.stdout
    json.loads(res.stdout)  # stdout stays one JSON document


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


@pytest.mark.parametrize(("name", "cmd"), list(_commands(main)))
def test_every_option_of_every_command_has_help_text(name, cmd):
    missing = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, f"{name}: options without --help text: {missing}"


@pytest.mark.parametrize("args", [["evaluate", "s\0.yaml"], ["evaluate", str(MIXTRAL), "--export", "e\0.json"],
                                  ["place", str(MIXTRAL), "--expert-load", "l\0.csv"],
                                  ["loads", "synth", "--out", "l\0.csv"]])
def test_a_nul_in_a_path_is_a_usage_error_naming_the_option(args):
    # found by tests/test_fuzz.py::test_fuzz_export_paths: click's os.stat raised ValueError ("embedded null
    # byte"), which surfaced as an unnamed "out of range" message
    res = run(*args)
    assert res.exit_code == 2 and "without NUL characters" in res.output, res.output
    assert "out of the range" not in res.output
