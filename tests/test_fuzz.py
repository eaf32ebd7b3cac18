"""Property-based fuzz of the input edge (issue 12): hostile scenario values, plan strings, load files, hf
configs, option values (loads synth, cost gemm, plan, schedule) and --export paths, driven through the CLI
in-process. Every run must exit 0, 1 or 2, without a
traceback, within 20 s; an exit-2 message names a key path or an option; ``--json`` output is strict JSON.

``FUZZ_EXAMPLES=N`` sets the examples per property (default: a few hundred in all, for ``make test``)."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.inputs.reader import load_yaml
from planner.inputs.scenario import dump_yaml

ROOT = Path(__file__).resolve().parents[1]
BASE_PATH = ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml"
BASE = load_yaml(BASE_PATH.read_text())
HF = json.loads((ROOT / "planner" / "catalog" / "hf_configs" / "Mixtral-8x7B-v0.1.json").read_text())
N = int(os.environ.get("FUZZ_EXAMPLES", "0"))
HANG_S = 20


def fuzz(default: int):
    return settings(max_examples=N or default, deadline=None, derandomize=not N,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise Hang(f"a run took more than {HANG_S} s")


def _no_constant(name: str):
    raise AssertionError(f"JSON output holds {name}")


_NAMES_A_KEY = re.compile(r"(\S+: got |--[a-z][a-z-]*|'-[a-z-]+'|<file>|<top level>)")


def check(args: list[str]):
    """Run the CLI and assert the invariants; returns the result."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        res = CliRunner().invoke(main, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert not isinstance(res.exception, Hang), f"hang: {args}"
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    assert res.exit_code in (0, 1, 2), (args, res.exit_code, res.output[-500:])
    assert "Traceback" not in res.output, res.output[-2000:]
    if res.exit_code == 2:
        assert _NAMES_A_KEY.search(res.output), res.output[-500:]
        assert len(res.output) < 4000, len(res.output)
    if res.exit_code == 0 and "--json" in args:
        json.loads(res.stdout, parse_constant=_no_constant)
    return res


HOSTILE = st.one_of(
    st.integers(), st.sampled_from([10**400, -(10**400), 2**63, 2**31, 0, -1, 65_536]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, 1e-308, float("nan"), float("inf")]),
    st.text(max_size=30), st.sampled_from(["x" * 5000, "", "1e999 GB", "0 GB", "-5 ms", "nan s", "1e400 TFLOP/s",
                                           "40", "1e-30 ms", "9" * 400 + " GB/s", "<script>", "../../etc/passwd"]),
    st.lists(st.integers(), max_size=3), st.none(), st.booleans(),
    st.recursive(st.integers(), lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=3), c,
                                                                                     max_size=2), max_leaves=40))

_LEAVES = ["name", "plan", "model.catalog", "model.weight_precision", "model.kv_precision", "cluster.device",
           "cluster.nodes", "cluster.devices_per_node", "cluster.scale_up.bandwidth", "cluster.scale_up.latency",
           "cluster.scale_out.bandwidth", "cluster.scale_up.achievable_fraction",
           "cluster.device_overrides.hbm_capacity", "cluster.device_overrides.hbm_bandwidth",
           "cluster.device_overrides.peak_bf16", "cluster.device_overrides.compute_units", "workload.input_tokens",
           "workload.output_tokens", "workload.concurrency", "workload.request_rate",
           "workload.decode_batch_per_device", "workload.prefill_tokens_per_device",
           "workload.decode_context_tokens", "workload.expert_imbalance", "workload.slo.ttft", "workload.slo.tpot",
           "workload.mtp", "workload.length_mix", "workload", "cluster", "model", "extra_key"]


def _set(doc: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    for k in head:
        nxt = doc.get(k)
        if not isinstance(nxt, dict):
            nxt = doc[k] = {}
        doc = nxt
    doc[last] = value


@fuzz(120)
@given(mutations=st.lists(st.tuples(st.sampled_from(_LEAVES), HOSTILE), min_size=1, max_size=3))
def test_fuzz_scenario_mutations(tmp_path_factory, mutations):
    doc = json.loads(json.dumps(BASE))
    for key, value in mutations:
        _set(doc, key, value)
    path = tmp_path_factory.mktemp("s") / "s.yaml"
    path.write_text(dump_yaml(doc))
    check(["evaluate", str(path), "--json"])


_PLAN_FIELD = st.sampled_from(["attn_tp", "attn_dp", "moe_ep", "moe_tp", "dense_tp", "pp", "dp",
                               "redundant_experts", "micro_batches", "overlap", "bogus", ""])
_PLAN_VALUE = st.one_of(st.integers(-3, 1_000_000_001).map(str), st.sampled_from(["9" * 400, "1e3", "nan", "",
                        " 8", "8 ", "two_batch", "none", "٨"]))
_PLAN = st.one_of(st.lists(st.tuples(_PLAN_FIELD, _PLAN_VALUE), max_size=5).map(
    lambda items: ",".join(f"{k}={v}" for k, v in items)), st.text(max_size=40))


@fuzz(80)
@given(plan=_PLAN)
def test_fuzz_plan_strings(plan):
    check(["evaluate", str(BASE_PATH), "--json", "--plan", plan])


_CELL = st.one_of(st.integers(0, 10**6).map(str), st.sampled_from(["1e300", "1e308", "inf", "nan", "-1", "x", "",
                                                                  "9" * 400, "1e15", "0.5"]))


@fuzz(40)
@given(rows=st.lists(st.lists(_CELL, min_size=1, max_size=9), min_size=0, max_size=4), as_json=st.booleans())
def test_fuzz_load_files(tmp_path_factory, rows, as_json):
    folder = tmp_path_factory.mktemp("l")
    if as_json:
        path = folder / "l.json"
        path.write_text('{"layers": [' + ",".join("[" + ",".join(c or "null" for c in r) + "]" for r in rows) + "]}")
    else:
        path = folder / "l.csv"
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    check(["place", str(BASE_PATH), "--expert-load", str(path), "--time-limit", "0.05", "--json"])


_HF_KEYS = sorted(HF) + ["architectures", "model_type", "quantization_config", "torch_dtype"]


@fuzz(60)
@given(mutations=st.lists(st.tuples(st.sampled_from(_HF_KEYS), HOSTILE), min_size=1, max_size=3))
def test_fuzz_hf_configs(tmp_path_factory, mutations):
    cfg = dict(HF)
    for key, value in mutations:
        cfg[key] = value
    folder = tmp_path_factory.mktemp("h")
    try:
        text = json.dumps(cfg)
    except ValueError:
        return
    (folder / "cfg.json").write_text(text)
    doc = json.loads(json.dumps(BASE))
    doc["model"] = {"hf_config": "cfg.json", "weight_precision": "bf16"}
    (folder / "s.yaml").write_text(dump_yaml(doc))
    check(["evaluate", str(folder / "s.yaml"), "--json"])


_OPT_VALUE = st.one_of(st.integers(-(2**70), 2**70).map(str), st.sampled_from(["nan", "inf", "-inf", "", "x",
                       "9" * 400, "1e999", "0", "-1", "2147483648"]), st.floats().map(str))


@fuzz(40)
@given(option=st.sampled_from(["--experts", "--layers", "--top-k", "--skew", "--tokens", "--seed"]),
       value=_OPT_VALUE)
def test_fuzz_loads_synth_options(option, value):
    args = ["loads", "synth", "--experts", "8", "--layers", "2", "--top-k", "2"]
    if option in ("--experts", "--layers") and value.lstrip("-").isdigit() and abs(int(value)) > 64:
        value = "64" if int(value) > 0 else value  # keep the output small; the range itself is tested elsewhere
    check([*args, option, value])


@fuzz(30)
@given(option=st.sampled_from(["--m", "--k", "--n", "--batch"]), value=_OPT_VALUE)
def test_fuzz_cost_gemm_options(option, value):
    args = {"--m": "128", "--k": "128", "--n": "128", "--batch": "1", option: value}
    check(["cost", "gemm", "--device", "h200_sxm", "--json", *[x for kv in args.items() for x in kv]])


def _capped(value: str, most: float) -> str:
    """``value`` with a finite number above ``most`` replaced by ``most`` (keeps a run under the hang bound;
    the option's range is tested as text either way)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(most) if number == number and most < number < float("inf") else value


_PLAN_OPTIONS = {"--objective": st.sampled_from(["throughput", "latency", "devices", "speed", ""]),
                 "--top": _OPT_VALUE, "--seed": _OPT_VALUE, "--time-limit": _OPT_VALUE,
                 "--overlap-model": st.sampled_from(["closed-form", "schedule", "x"]),
                 "--pick": _OPT_VALUE,
                 "--engine": st.sampled_from(["sglang", "vllm", "trtllm", "mindie", "megatron", "x", ""]),
                 "--engine-version": st.sampled_from(["0.5.5", "0.11.0", "1.0", "3.1.0", "9", ""]),
                 "--modes": st.sampled_from(["afd", "aggregated", "disaggregated,afd", "aggregated,x", "", ",,"])}


@fuzz(30)
@given(data=st.data(), option=st.sampled_from(sorted(_PLAN_OPTIONS)))
def test_fuzz_plan_options(data, option):
    value = data.draw(_PLAN_OPTIONS[option])
    if option == "--time-limit":
        value = _capped(value, 5.0)
    check(["plan", str(BASE_PATH), "--json", option, value])


_SCHEDULE_OPTIONS = {"--micro-batches": _OPT_VALUE, "--phase": st.sampled_from(["decode", "prefill", "both", ""]),
                     "--time-limit": _OPT_VALUE, "--width": _OPT_VALUE, "--plan": _PLAN}


@fuzz(30)
@given(data=st.data(), option=st.sampled_from(sorted(_SCHEDULE_OPTIONS)), as_json=st.booleans())
def test_fuzz_schedule_options(data, option, as_json):
    value = data.draw(_SCHEDULE_OPTIONS[option])
    limit = _capped(value, 1.0) if option == "--time-limit" else "0.5"  # bounded: one budget for all solves
    args = ["schedule", str(BASE_PATH), "--time-limit", limit]
    if option != "--time-limit":
        args += [option, value]
    check(args + (["--json"] if as_json else []))


_EXPORT_NAME = st.one_of(
    st.sampled_from(["e.json", "e.yaml", "e.md", "e.html", "e.txt", "e", ".json", "e.JSON", "nodir/e.json",
                     "e.json/", "existing.json", "link.json", "sub", "d\nx.json", "$(touch PWNED).md",
                     "'; rm -rf x '.yaml", "é.json", "x" * 300 + ".json"]),
    st.text(max_size=20).map(lambda t: t + ".json"))


@fuzz(40)
@given(name=_EXPORT_NAME, force=st.booleans(), command=st.sampled_from(["evaluate", "plan", "schedule"]))
def test_fuzz_export_paths(tmp_path_factory, name, force, command):
    folder = tmp_path_factory.mktemp("x")
    (folder / "existing.json").write_text("keep")
    (folder / "sub").mkdir()
    (folder / "target").write_text("target")
    (folder / "link.json").symlink_to(folder / "target")
    before = {p.name for p in folder.iterdir()}
    args = [command, str(BASE_PATH), "--json", "--export", str(folder / name)] + (["--force"] if force else [])
    res = check(args + (["--time-limit", "0.5"] if command == "schedule" else []))
    assert (folder / "target").read_text() == "target"  # a symlink's target is never written through
    assert not (folder / "PWNED").exists()
    if not force:
        assert (folder / "existing.json").read_text() == "keep"
    if res.exit_code == 0:
        written = folder / name
        assert written.is_file() and not written.is_symlink(), name
    else:  # refused: nothing new beside what was there (no half-written temporary file)
        assert {p.name for p in folder.iterdir()} <= before | {name}, sorted(p.name for p in folder.iterdir())
