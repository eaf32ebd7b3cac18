"""Issue 12 regression tests, the solver side: time limits that are limits (one budget for the whole command,
reported when it binds, a sorted and re-costed top list), solver statuses that never masquerade as an SLO
failure, and the divisor search that a huge redundant-expert count used to stall."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cost_models.parallel import _divisors
from planner.cli import main
from planner.cpsat import quantize


def test_divisors_hand_checked():
    # 36 = 2^2 * 3^2: (2+1) * (2+1) = 9 divisors; sqrt(36) = 6 pairs 1-36, 2-18, 3-12, 4-9 and 6 once
    assert _divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]
    assert _divisors(1) == [1]
    assert _divisors(97) == [1, 97]  # a prime: only the trivial pair


def test_divisors_of_a_billion_slots_come_from_the_square_root():
    # 256 routed experts + 1,000,000,001 redundant = 1,000,000,257 slots; the old linear loop took > 60 s, trial
    # division stops at sqrt = 31,623. 1,000,000,257 = 3 x 97 x 313 x 10,979 (91,083 x 10,979), four distinct primes,
    # so 2^4 = 16 divisors, 8 of them below the square root (not a square: each pairs with one above it).
    n = 256 + 1_000_000_001
    divs = _divisors(n)
    assert divs[0] == 1 and divs[-1] == n
    assert all(n % d == 0 for d in divs) and divs == sorted(divs)
    assert len(divs) == 16 and divs[:4] == [1, 3, 97, 291] and 10_979 in divs


# --- the budget, by hand -------------------------------------------------------------------------------------

def test_budget_allots_its_cap_or_a_share_of_what_is_left():
    from planner.cpsat.budget import MIN_SOLVE_S, SolveBudget
    free = SolveBudget()  # no --time-limit: every solve gets its own cap
    assert free.allot(60.0) == 60.0 and not free.exhausted()
    b = SolveBudget(wall_s=1.0)
    assert b.allot(60.0) == 1.0  # the cap is larger than the budget: the budget
    b.charge(0.4)
    assert b.allot(60.0) == pytest.approx(0.6)  # 1.0 - 0.4 spent
    assert b.allot(60.0, parts=3) == pytest.approx(0.2)  # three layers left: 0.6 / 3 each
    assert b.allot(0.1) == 0.1  # a cap below the remainder stays the cap
    b.charge(5.0)
    assert b.exhausted() and b.allot(60.0) == MIN_SOLVE_S  # spent: the floor, never 0 (= no limit)


def test_budget_says_why_a_solve_stopped():
    from planner.cpsat.budget import SolveBudget
    b = SolveBudget(wall_s=10.0)
    # proven answers are never "stopped early"
    assert b.finish("a", status="OPTIMAL", wall_s=0.1, allotted_s=10.0) == ""
    assert b.finish("b", status="INFEASIBLE", wall_s=0.1, allotted_s=10.0) == ""
    # used its whole work limit (5 units) in 1 s of a 9.8 s allotment: the deterministic limit stopped it
    assert b.finish("c", status="FEASIBLE", wall_s=1.0, allotted_s=9.8, work_units=5.0, work_limit_units=5.0) \
        == "work_limit"
    assert not b.wall_bound  # reproducible so far
    # 0.5 of 5 units when its 1.2 s allotment ran out: the wall clock
    assert b.finish("d", status="UNKNOWN", wall_s=1.2, allotted_s=1.2, work_units=0.5, work_limit_units=5.0) \
        == "wall_limit"
    assert b.wall_bound
    assert [(r.solve, r.stopped_by) for r in b.stopped] == [("c", "work_limit"), ("d", "wall_limit")]
    assert b.spent_s == pytest.approx(0.1 + 0.1 + 1.0 + 1.2)


def test_the_active_budget_is_per_block():
    from planner.cpsat import budget
    b = budget.SolveBudget(wall_s=2.0)
    with budget.using(b):
        assert budget.current() is b
    assert budget.current() is not b and budget.current().wall_s is None  # outside: unlimited, fresh


# --- the deployment split --------------------------------------------------------------------------------------

def test_rank_sorts_a_shuffled_top_list_by_the_delivered_rate():
    from planner.cpsat.deployment import solve_top_k
    from planner.search.deployment_exact import rank
    from tests.test_cpsat_deployment import cand, inst
    # aggregated layouts of 4 devices at 100, 300 and 200 tok/s per device on 16 devices: 4 replicas each,
    # 1,600 / 4,800 / 3,200 tok/s. A top list stopped early may come in any order; rank restores best first.
    instance = inst([cand(4, agg=100.0, tag=0), cand(4, agg=300.0, tag=1), cand(4, agg=200.0, tag=2)])
    found, _ = solve_top_k(instance, k=3)
    by_rate = sorted(found, key=lambda d: d.decode.aggregated_tok_per_s_per_device)  # worst first: "unsorted"
    ranked = rank(instance, by_rate)
    assert [d.decode.aggregated_tok_per_s_per_device for d in ranked] == [300.0, 200.0, 100.0]
    # Z re-costed from the replica counts: 16 devices x 300 tok/s x 100 units per tok/s = 480,000
    assert ranked[0].output_tok_per_s_units == 16 * 300 * quantize.TOKENS_PER_S_SCALE


def test_rank_recosts_a_solution_reported_below_what_its_replicas_deliver():
    import dataclasses

    from planner.cpsat.deployment import solve_top_k
    from planner.search.deployment_exact import rank
    from tests.test_cpsat_deployment import cand, inst
    instance = inst([cand(4, agg=100.0, tag=0), cand(4, agg=300.0, tag=1)])
    found, _ = solve_top_k(instance, k=2)
    # a FEASIBLE (early-stopped) solve may leave Z below the replicas' rate: the better layout reported at 1 unit
    low = [dataclasses.replace(found[0], output_tok_per_s_units=1), found[1]]
    ranked = rank(instance, low)
    assert ranked[0].decode.aggregated_tok_per_s_per_device == 300.0
    assert ranked[0].output_tok_per_s_units == 16 * 300 * quantize.TOKENS_PER_S_SCALE


def test_a_spent_budget_ends_the_top_list_and_says_so():
    from planner.cpsat import budget
    from planner.cpsat.deployment import solve_top_k
    from tests.test_cpsat_deployment import cand, inst
    instance = inst([cand(4, agg=100.0, tag=0), cand(4, agg=300.0, tag=1), cand(4, agg=200.0, tag=2)])
    spend = budget.SolveBudget(wall_s=1.0)
    spend.charge(1.0)  # all spent before the split
    with budget.using(spend):
        found, stats = solve_top_k(instance, k=3)
    # the first solve still runs (at the 1 ms floor) and the list ends after it: at most one deployment; either
    # that solve was cut by the wall clock, or it finished and the second was skipped. Both are recorded.
    assert len(found) <= 1 and len(stats) == 1
    assert [(r.solve, r.stopped_by) for r in spend.stopped] in (
        [("deployment split #1", "wall_limit")], [("deployment split #2", "skipped")])
    assert spend.wall_bound


def test_model_invalid_is_input_out_of_range_not_an_slo_failure():
    from planner.cpsat.budget import ModelOutOfRange
    from planner.cpsat.deployment import solve_top_k
    from tests.test_cpsat_deployment import cand, inst
    # 1e17 tok/s per device x 100 units x 16 devices = 1.6e20 > 2^63 - 1 = 9.2e18: the rate variable's bound alone
    # leaves CP-SAT's 64-bit range (ortools raised TypeError building it: an "internal error", exit 1)
    with pytest.raises(ModelOutOfRange, match="deployment split.*out of range.*device count"):
        solve_top_k(inst([cand(4, agg=1e17)]), k=1)
    assert issubclass(ModelOutOfRange, ValueError)  # the CLI's guard maps ValueError to exit 2


# --- the commands ------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
MIXTRAL = str(ROOT / "scenarios" / "mixtral_8x7b_a100_8.yaml")


def run(*args: str):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def test_plan_with_a_binding_limit_lists_a_sorted_top_and_chooses_its_best():
    """Issue 12 case 3: `plan deepseek_v3_h200_1024 --time-limit 0.1 --top 50` three times. Each run may list a
    different number of deployments (the wall clock binds), but each list is sorted, the chosen deployment is
    the best listed, the limit is reported, and no solve that stopped early is called OPTIMAL."""
    for _ in range(3):
        res = run("plan", ROOT / "scenarios" / "deepseek_v3_h200_1024.yaml", "--time-limit", "0.1", "--top", "50",
                  "--json")
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        rates = [d["output_tok_per_s"] for d in doc["top"]]
        assert rates == sorted(rates, reverse=True)
        assert doc["chosen"] == 0
        assert doc["chosen_breakdown"]["plan"] == doc["top"][0]["pools"][-1]["plan"]  # decode (or aggregated)
        limits = doc["solve_limits"]
        assert limits["time_limit_s"] == 0.1
        stopped = {r["solve"] for r in limits["stopped_early"]}
        for i, s in enumerate(doc["solver"]):  # a solve the limit stopped never reports OPTIMAL
            if f"deployment split #{i + 1}" in stopped:
                assert s["status"] != "OPTIMAL", (i, s)
        if stopped:
            assert limits["wall_limit_bound"] and "not proven optimal" in limits["note"]


def test_plan_text_names_the_solves_a_binding_limit_stopped():
    res = run("plan", ROOT / "scenarios" / "deepseek_v3_h200_1024.yaml", "--time-limit", "0.1", "--top", "50")
    assert res.exit_code == 0, res.output
    assert "Time limit 0.1 s:" in res.output
    split = next(line for line in res.output.splitlines() if line.startswith("Deployment split"))
    if "stopped before proving" in res.output:
        assert "OPTIMAL," not in split or "FEASIBLE" in split or "UNKNOWN" in split  # counted, not the first only


def test_without_a_time_limit_the_document_has_no_limits_block():
    res = run("plan", MIXTRAL, "--json")
    assert res.exit_code == 0, res.output
    assert "solve_limits" not in json.loads(res.output)


def test_a_time_limit_that_does_not_bind_says_so(tmp_path):
    res = run("plan", MIXTRAL, "--time-limit", "600")
    assert res.exit_code == 0, res.output
    assert "Time limit 600 s: not reached" in res.output


def test_no_solution_in_time_is_a_time_limit_failure_not_an_slo_one(monkeypatch):
    from planner.cpsat.stats import SolveStats
    from planner.search import plan as search_plan
    unknown = SolveStats(status="UNKNOWN", objective=0.0, bound=0.0, gap=0.0, wall_s=0.1)
    monkeypatch.setattr(search_plan, "solve_deployments", lambda inst, **kw: ([], [unknown]))
    res = run("plan", MIXTRAL, "--time-limit", "0.1")
    assert res.exit_code == 1, res.output
    assert "time_limit constraint" in res.output and "--time-limit" in res.output
    assert "SLO" not in res.output


def test_an_out_of_range_solver_model_exits_2_naming_the_inputs(monkeypatch):
    from planner.cpsat import deployment
    from planner.search import deployment_exact
    monkeypatch.setattr(deployment_exact, "MAX_ENUMERATION_STEPS", -1)  # force the CP-SAT split
    monkeypatch.setattr(deployment, "INT_RANGE", 1)  # as if the rates were 2^63 times larger
    res = run("plan", MIXTRAL)
    assert res.exit_code == 2, res.output
    assert "out of range" in res.output and "device count" in res.output and "SLO" not in res.output


@pytest.mark.parametrize("command", ["plan", "place", "schedule"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_a_bad_time_limit_exits_2_naming_the_option(command, value):
    res = run(command, MIXTRAL, "--time-limit", value)
    assert res.exit_code == 2, res.output
    assert "--time-limit" in res.output


def test_schedule_and_place_honour_and_report_the_limit(tmp_path):
    res = run("schedule", MIXTRAL, "--phase", "prefill", "--time-limit", "0.5", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["solve_limits"]["time_limit_s"] == 0.5
    loads = tmp_path / "l.csv"
    assert run("loads", "synth", "--experts", "8", "--layers", "4", "--top-k", "2", "--out", loads).exit_code == 0
    res = run("place", MIXTRAL, "--expert-load", loads, "--time-limit", "0.05", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["solve_limits"]["time_limit_s"] == 0.05
    assert all(r["solve"].startswith("placement layer") for r in doc["solve_limits"]["stopped_early"])


def test_placement_layers_share_the_budget_instead_of_each_taking_the_limit(monkeypatch):
    """Issue 12 case 3: `place --time-limit 0.05` ran each layer for twice the limit. Under a budget each layer is
    handed at most an equal share of what is left (4 layers, 0.4 s: the first gets 0.4 / 4 = 0.1 s)."""
    from planner.cpsat import budget, placement
    from planner.inputs.loads import ExpertLoads
    handed = []
    real = placement.place_layer

    def spy(row, **kw):
        left = len(loads.tokens) - kw["layer"]
        handed.append((kw["time_limit_s"], spend.remaining_s() / left))
        return real(row, **kw)

    monkeypatch.setattr(placement, "place_layer", spy)
    loads = ExpertLoads(tokens=tuple((5, 9, 1, 7, 3, 8, 2, 6) for _ in range(4)), source="test")
    spend = budget.SolveBudget(wall_s=0.4)
    with budget.using(spend):
        placement.place_all(loads, num_devices=4, devices_per_node=2, slots=8, time_limit_s=1.0)
    assert handed[0][0] == pytest.approx(0.1)
    assert all(given <= max(budget.MIN_SOLVE_S, share) + 1e-12 for given, share in handed)
    assert len(handed) == 4  # every layer still gets a placement (the greedy one at worst)


def test_schedule_solves_draw_on_one_budget(monkeypatch):
    """Issue 12 case 3: `schedule` had no limit. Every CP-SAT solve of the command is handed at most what the
    --time-limit budget has left."""
    from ortools.sat.python import cp_model

    from planner.cpsat import schedule
    schedule._solve_cached.cache_clear()  # solve afresh, not from an earlier test's cache
    handed = []
    real = cp_model.CpSolver.solve

    def spy(self, model, *a, **kw):
        handed.append(self.parameters.max_time_in_seconds)
        return real(self, model, *a, **kw)

    monkeypatch.setattr(cp_model.CpSolver, "solve", spy)
    # the CP-SAT path (where the solver-free exact search stops before its proof); that search solves this
    # instance without CP-SAT otherwise
    monkeypatch.setattr(schedule.schedule_exact, "solve_exact", lambda *a, **kw: None)
    res = run("schedule", MIXTRAL, "--phase", "prefill", "--time-limit", "0.3", "--json")
    assert res.exit_code == 0, res.output
    assert handed and all(t <= 0.3 + 1e-9 for t in handed)
    # without the budget the first solve alone would get its 10x safety cap: 5 s x 10 = 50 s
    assert handed[0] <= 0.3
