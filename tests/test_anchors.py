"""Anchor tests: every validation scenario's published figure, predicted through `moeplan evaluate --json`.

Each scenario in scenarios/validation/ cites its source and carries `expect:` rows (metric path in the
evaluate document, published value, tolerance). The table is printed (run with -s) and reproduced in the
README "Accuracy" section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = sorted((ROOT / "scenarios" / "validation").glob("*.yaml"))


def _metric(doc: dict, path: str) -> float:
    node = doc
    for part in path.split("."):
        node = node[part]
    return float(node)


def _evaluate(path: Path) -> dict:
    res = CliRunner().invoke(main, ["evaluate", str(path), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


# Rows the model does not yet reach within tolerance, each with what it is missing. strict=True: a row that
# starts passing fails here until it is removed from this list, so the README table stays honest.
PREFILL_GAP = ("prefill with two-batch overlap is predicted 28-40 % fast: the overlap composes per-layer compute "
               "and all-to-all as max(C, M) + SM share; production traces show more serialisation than that "
               "(issue 4's CP-SAT schedule is to replace the closed form) and DeepGEMM fine-grained-scaled FP8 "
               "efficiency is not in the per-tensor-scaled calibration data")
KNOWN_GAPS = {
    ("ds_prof_p_h800_prefill_ep32", "prefill.throughput_tok_s_per_device"): PREFILL_GAP,
    ("sgl_h100_prefill_ep32_in1024", "prefill.throughput_tok_s_per_device"): PREFILL_GAP,
    ("sgl_h100_prefill_ep32_in2048", "prefill.throughput_tok_s_per_device"): PREFILL_GAP,
    ("sgl_h100_prefill_ep32_in4096", "prefill.throughput_tok_s_per_device"): PREFILL_GAP,
    ("ds_prof_d_h800_decode_ep128", "decode.throughput_tok_s_per_device"):
        "decode at 128 sequences/GPU over EP128 is predicted 25.3 % fast (limit 25 %): low-latency all-to-all is "
        "modelled from bandwidth plus a fixed latency, without the per-expert-message cost that makes DeepEP's "
        "measured LL kernels take 192 us dispatch / 369 us combine at EP128",
}


def _case(p: Path, e) -> object:
    reason = KNOWN_GAPS.get((p.stem, e.metric))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(p, e, marks=marks, id=f"{p.stem}:{e.metric}")


CASES = [_case(p, e) for p in VALIDATION for e in load_scenario(p).expect]


@pytest.mark.parametrize(("path", "expect"), CASES)
def test_published_figure_within_tolerance(path, expect):
    doc = _evaluate(path)
    predicted = _metric(doc, expect.metric)
    err = predicted / expect.value - 1
    print(f"\n{path.stem:40s} {expect.metric:45s} published {expect.value:>10.4g} predicted {predicted:>10.4g} "
          f"error {err:+.1%}  ({expect.source})")
    assert abs(err) <= expect.tolerance, f"{expect.metric}: predicted {predicted:.4g} vs {expect.value} ({err:+.1%})"


def test_every_validation_scenario_has_an_expectation():
    assert VALIDATION, "no validation scenarios found"
    for p in VALIDATION:
        assert load_scenario(p).expect, p.name
