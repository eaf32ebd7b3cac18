"""Error bands (planner/analysis/error_bands.py): hand-derived bands, leave-one-out, the shipped table's rows."""

from __future__ import annotations

import pytest
from _clusters import h800_cluster

from cost_models.parallel import ParallelDims
from cost_models.specs import Precision
from planner.analysis import error_bands as eb
from planner.inputs.scenario import load_scenario


def row(id_: str, error: float, *, kind: str = "rate", phase: str = "decode", topology: str = "cross_node",
        precision: str = "fp8") -> eb.ValidationRow:
    # published 100; a rate predicted (1 + error) x 100, a time predicted 100 / (1 + error): same rate error
    predicted = 100.0 * (1 + error) if kind == "rate" else 100.0 / (1 + error)
    return eb.ValidationRow(id=id_, phase=phase, topology=topology, precision=precision, kind=kind, published=100.0,
                            predicted=predicted)


REGIME = eb.Regime(phase="decode", topology="cross_node", precision="fp8")


def test_band_of_a_rate_inverts_the_rate_errors():
    rows = [row("a:x", 0.10), row("b:x", -0.20), row("c:x", 0.0)]
    b = eb.band_from_rows(rows, REGIME)
    # truth / prediction - 1 = 1 / (1 + e) - 1: 1/1.1 - 1 = -0.090909; 1/0.8 - 1 = +0.25; 0
    assert b.low_fraction == pytest.approx(-0.090909, abs=1e-6)
    assert b.high_fraction == pytest.approx(0.25)
    assert b.rows == ("a:x", "b:x", "c:x") and b.matched == "phase, topology, precision"
    assert b.describe() == "-9% / +25%, 3 validation rows (phase, topology, precision)"


def test_band_of_a_time_is_the_rate_error_itself():
    # a time figure T: truth = T x (1 + e_rate): e in {+0.10, -0.20, 0} -> [-20 %, +10 %]
    rows = [row("a:x", 0.10, kind="time"), row("b:x", -0.20), row("c:x", 0.0)]
    b = eb.band_from_rows(rows, REGIME, kind="time")
    assert (b.low_fraction, b.high_fraction) == (pytest.approx(-0.20), pytest.approx(0.10))


def test_regime_match_relaxes_below_three_rows():
    rows = [row("a:x", 0.1), row("b:x", 0.2), row("c:x", 0.3, precision="bf16"), row("d:x", 0.4, topology="single_node")]
    b = eb.band_from_rows(rows, REGIME)
    assert b.matched == "phase, topology" and b.rows == ("a:x", "b:x", "c:x")
    b = eb.band_from_rows(rows[:2] + [row("e:x", 0.5, phase="prefill"), rows[3]], REGIME)
    assert b.matched == "phase" and b.rows == ("a:x", "b:x", "d:x")
    assert eb.band_from_rows([row("p:x", 0.1, phase="prefill")], REGIME).matched == "any"
    assert eb.band_from_rows([], REGIME) is None


def test_leave_one_out_drops_every_row_of_the_scenario():
    rows = [row("s:decode.tpot_s", 0.1, kind="time"), row("s:decode.throughput", 0.1), row("t:x", -0.1),
            row("u:x", 0.05), row("v:x", 0.0)]
    b = eb.band_from_rows(rows, REGIME, exclude_scenario="s")
    assert b.rows == ("t:x", "u:x", "v:x")


def test_topology_classes():
    one_node, two_nodes = h800_cluster(1), h800_cluster(2)
    assert eb.topology_of(one_node, ParallelDims(attn_dp=8, moe_ep=8)) == "single_node"
    assert eb.topology_of(two_nodes, ParallelDims(attn_dp=16, moe_ep=16)) == "cross_node"
    assert eb.topology_of(two_nodes, ParallelDims(attn_dp=8, moe_ep=8, pp=2)) == "cross_node"
    nvl72 = load_scenario("scenarios/kimi_k2_gb200_nvl72.yaml").cluster
    assert eb.topology_of(nvl72, ParallelDims(attn_dp=64, moe_ep=64)) == "supernode"
    assert eb.regime_of("decode", one_node, ParallelDims(attn_dp=8, moe_ep=8), Precision.FP8) == \
        eb.Regime(phase="decode", topology="single_node", precision="fp8")
    with pytest.raises(ValueError):
        eb.regime_of("train", one_node, ParallelDims(), Precision.FP8)


def test_shipped_table_has_exactly_the_validation_rows():
    table = eb.load_table()
    expected = sorted(f"{p.stem}:{e.metric}" for p in eb.VALIDATION_DIR.glob("*.yaml") for e in load_scenario(p).expect)
    assert sorted(r.id for r in table) == expected, "regenerate: python -m planner.analysis.error_bands --write"
    for r in table:
        sc = load_scenario(eb.VALIDATION_DIR / f"{r.scenario}.yaml")
        phase, kind, _ = eb.METRICS[r.id.split(":", 1)[1]]
        assert r.regime == eb.regime_of(phase, sc.cluster, sc.plan or sc.afd, sc.workload.weight_precision)
        assert r.kind == kind


def test_every_validation_rows_band_is_computed_without_its_scenario():
    table = eb.load_table()
    for r in table:
        b = eb.band(r.regime, kind=r.kind, exclude_scenario=r.scenario)
        assert b is not None and all(not i.startswith(r.scenario + ":") for i in b.rows), r.id
        others = [x for x in table if x.scenario != r.scenario]
        assert b == eb.band_from_rows(others, r.regime, kind=r.kind)
