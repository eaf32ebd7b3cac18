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

from planner.analysis.error_bands import load_table
from planner.cli import main
from planner.inputs.scenario import load_scenario

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
KNOWN_GAPS: dict[tuple[str, str], str] = {
    ("sgl_gb200_2a_decode", "decode.throughput_tok_per_s_per_device"):
        "+20.3%: predicted 16,097 vs 13,386 tok/s/GPU (87 ms vs about 105 ms per step at batch 1,408). Believed "
        "missing: expert-load imbalance at EP48 (idealised 1.0; the blog's data is in-distribution), and the "
        "auxiliary kernels the blog calls not yet fully optimised; the activation quantization passes, the "
        "FP8 RoPE-quantize of the absorbed query and the KV-cache write are now costed (+33% before them)",
    ("sgl_gb200_2b_decode", "decode.throughput_tok_per_s_per_device"):
        "+46%: predicted 13,247 vs 9,087 tok/s/GPU (memory-limited batch 1,084, 82 ms per step). Same missing "
        "mechanisms as 2a (EP48 imbalance, unoptimised auxiliary kernels of the BF16 code path); the batch is "
        "not published for this precision (+51% before the activation quantization passes)",
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
    # the error-band table (planner/catalog/validation_errors.json) must hold this very prediction
    shipped = {r.id: r for r in load_table()}[f"{path.stem}:{expect.metric}"]
    assert shipped.predicted == pytest.approx(predicted, rel=1e-9), \
        "stale error-band table: python -m planner.analysis.error_bands --write"


def test_every_validation_scenario_has_an_expectation():
    assert VALIDATION, "no validation scenarios found"
    for p in VALIDATION:
        assert load_scenario(p).expect, p.name
