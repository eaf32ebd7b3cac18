"""Error bands in the output: every throughput, TTFT and TPOT of the evaluate and plan documents carries the band
planner.analysis.error_bands computes for its regime, a validation scenario's band leaves its own rows out, and the
text views print it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from click.testing import CliRunner

from planner.analysis import error_bands as eb
from planner.cli import main
from planner.render.bands import band_cell, band_text

ROOT = Path(__file__).resolve().parents[1]
TRT = ROOT / "scenarios" / "validation" / "trt_h200_aggregated.yaml"
DEFAULT = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"


def _run(*args: str | Path) -> str:
    res = CliRunner().invoke(main, [*map(str, args)])
    assert res.exit_code == 0, res.output
    return res.stdout


def _as_doc(b: eb.Band) -> dict:
    return {"low_fraction": b.low_fraction, "high_fraction": b.high_fraction, "rows": list(b.rows),
            "matched": b.matched}


def test_a_validation_scenario_band_is_computed_without_its_own_rows():
    from planner.inputs.scenario import load_scenario
    doc = json.loads(_run("evaluate", TRT, "--json"))
    sc = load_scenario(TRT)
    assert eb.validation_stem(sc.path) == "trt_h200_aggregated"
    cases = [(doc["prefill"]["throughput_band"], "prefill", "rate"), (doc["prefill"]["ttft_band"], "prefill", "time"),
             (doc["decode"]["throughput_band"], "decode", "rate"), (doc["decode"]["tpot_band"], "decode", "time"),
             (doc["aggregated"]["output_band"], "aggregated", "rate")]
    for got, phase, kind in cases:
        regime = eb.regime_of(phase, sc.cluster, sc.plan, sc.workload.weight_precision)
        assert got == _as_doc(eb.band(regime, kind=kind, exclude_scenario="trt_h200_aggregated"))
        assert not any(r.startswith("trt_h200_aggregated:") for r in got["rows"])
    # the exclusion matters: the aggregated band with the scenario's own rows uses its two aggregated rows
    regime = eb.regime_of("aggregated", sc.cluster, sc.plan, sc.workload.weight_precision)
    with_own = eb.band(regime, kind="rate")
    assert {"trt_h200_aggregated:aggregated.output_tok_per_s_per_device",
            "trt_h200_aggregated:aggregated.user_tok_per_s"} <= set(with_own.rows)
    assert _as_doc(with_own) != doc["aggregated"]["output_band"]


def test_an_ordinary_scenario_keeps_every_row_and_plan_top_deployments_carry_bands():
    from planner.inputs.scenario import load_scenario
    sc = load_scenario(DEFAULT)
    assert eb.validation_stem(sc.path) is None
    doc = json.loads(_run("evaluate", DEFAULT, "--json"))
    regime = eb.regime_of("decode", sc.cluster, sc.plan, sc.workload.weight_precision)
    assert doc["decode"]["tpot_band"] == _as_doc(eb.band(regime, kind="time"))
    plan = json.loads(_run("plan", DEFAULT, "--json", "--top", "2"))
    for top in plan["top"]:
        assert {"output_band", "ttft_band", "tpot_band"} <= set(top)
        decode = next(p for p in top["pools"] if p["role"] in ("decode", "aggregated"))
        assert top["tpot_band"]["rows"] == list(eb.band(
            eb.Regime(phase="decode", topology=eb.topology_of(sc.cluster, _dims(decode["plan"])),
                      precision=sc.workload.weight_precision.label), kind="time").rows)
    assert plan["chosen_breakdown"]["decode"]["tpot_band"]["rows"]


def _dims(plan: dict):  # noqa: ANN202
    from planner.inputs.scenario import parse_plan
    return parse_plan(",".join(f"{k}={v}" for k, v in plan.items()))


def test_band_text_by_hand():
    # rows: 9 ids; -0.1249 -> "-12 %", 0.0751 -> "+8 %"
    b = SimpleNamespace(low_fraction=-0.1249, high_fraction=0.0751, rows=("r",) * 9,
                        matched="phase, topology, precision")
    assert band_text(b) == " (-12 % / +8 %, 9 validation rows)"
    assert band_cell(b) == "-12 % / +8 % (9)"
    one = SimpleNamespace(low_fraction=0.02, high_fraction=0.02, rows=("r",), matched="phase")
    assert band_text(one) == " (+2 % / +2 %, 1 validation row, matched on phase)"
    assert band_text(None) == "" and band_cell(None) == "-"


def test_terminal_views_print_the_bands():
    out = _run("evaluate", TRT)
    assert "validation rows" in out and "TPOT" in out
    plan = _run("plan", DEFAULT, "--top", "2")
    assert "error band the validation set supports" in plan
