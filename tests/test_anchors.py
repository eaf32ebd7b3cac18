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
    ("sgl_gb200_2b_decode", "decode.throughput_tok_per_s_per_device"):
        "+45%: predicted 13,204 vs 9,087 tok/s/GPU (memory-limited batch 1,084, 82 ms per step). The EPLB "
        "imbalance measured on the real router counts with per-step routing noise (1.030) moves it 0.5 points "
        "only; still missing: the unoptimised auxiliary kernels of the BF16 code path the blog names, and the "
        "batch is not published for this precision (+51% before the activation quantization passes)",
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


def test_sgl_gb200_imbalance_is_the_measured_eplb_figure():
    """The two SGL-GB200 decode rows carry the per-layer EPLB (global mode) imbalance of the shipped DeepSeek-V3
    router counts on 48 devices x 6 slots, combined layer by layer with the routing noise at the row's batch."""
    from cost_models.expert_load import mean_layer_load_factor
    from planner.cpsat.placement_greedy import greedy_global, score_placement
    from planner.inputs.loads import DEEPSEEK_V3_SAMPLE, read_loads

    loads = read_loads(DEEPSEEK_V3_SAMPLE)
    layers = tuple(score_placement(greedy_global(row, num_devices=48, slots=288), row, devices_per_node=4).imbalance
                   for row in loads.tokens)
    assert sum(layers) / len(layers) == pytest.approx(1.0141, abs=1e-4)  # EPLB global's own mean
    for stem in ("sgl_gb200_2a_decode", "sgl_gb200_2b_decode"):
        path = ROOT / "scenarios" / "validation" / f"{stem}.yaml"
        batch = _metric(_evaluate(path), "decode.sequences_per_device")
        expected = mean_layer_load_factor(layer_imbalances=layers, tokens_per_device=batch, top_k=8, ep_size=48,
                                          num_experts=256)
        assert load_scenario(path).workload.expert_imbalance == pytest.approx(expected, abs=5e-4), stem
