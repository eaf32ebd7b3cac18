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
        "+31%: predicted 11,862 vs 9,087 tok/s/GPU at the 768 sequences per rank of the blog's reproduction "
        "command (64.7 ms per step against the 84.5 ms the measurement implies), with SGLang's Blackwell SBO "
        "(FP8 experts: the combine waits for the whole down GEMM). The engine's KV pool is reproduced (test "
        "below) and the batch is stated, so the gap is in the step: the blog names unoptimised auxiliary "
        "kernels on the BF16 code path, which gives nothing to cost",
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


# SGLang's --max-total-tokens of the two GB200 decode commands (sgl-project/sglang issue #10903, the blog's
# reproduction instructions): the KV pool per rank, in tokens.
STATED_KV_POOL_TOKENS = {"sgl_gb200_2a_decode": 3_122_380, "sgl_gb200_2b_decode": 1_838_284}


@pytest.mark.parametrize("stem", sorted(STATED_KV_POOL_TOKENS))
def test_sgl_gb200_engine_kv_pool_covers_the_stated_one(stem):
    """Both commands run --mem-fraction-static 0.83. The static pool (cost_models/memory_pool.py) on the
    scenario's weights must hold at least the stated --max-total-tokens (SGLang takes the smaller of its profiled
    pool and that cap) and the decode batch's full-length KV. 2b's stated pool is the profiled one: the model
    gives 0.83 x 185.0 GiB - 32.05 GiB = 121.5 GiB = 1,856,930 tokens of 70,272 B, +1.0 %. 2a's is a cap below
    its pool (3,951,437 tokens of 35,136 B predicted: the FP4 checkpoint's weights as the scenario states them)."""
    from cost_models import memory, memory_pool

    path = ROOT / "scenarios" / "validation" / f"{stem}.yaml"
    sc = load_scenario(path)
    decode = _evaluate(path)["decode"]
    weights = decode["memory_bytes"]["weight_bytes"]
    per_token = memory.kv_bytes_per_token(sc.model, sc.plan, sc.workload.kv_precision)
    pool = memory_pool.static_pool_kv_tokens(device_bytes=decode["memory_bytes"]["capacity_bytes"],
                                             mem_fraction_static=sc.workload.static_memory_fraction,
                                             weight_bytes=weights, kv_bytes_per_token=per_token)
    stated = STATED_KV_POOL_TOKENS[stem]
    assert pool >= stated
    assert stated >= decode["sequences_per_device"] * (sc.workload.input_tokens + sc.workload.output_tokens)
    if stem == "sgl_gb200_2b_decode":
        assert pool / stated - 1 == pytest.approx(0.010, abs=0.005)
