"""The exact periodic layer schedule without the solver (planner/cpsat/schedule_exact.py).

Hand-derived periods on tiny instances (durations in ticks, arithmetic in the comments), a validator of the
integer model written here from the model's definition (not from either solver), and a seeded randomized
cross-check against CP-SAT: where CP-SAT proves a period optimal the exact method finds the same one, and
CP-SAT, asked for one tick less than the exact period, proves that there is none."""

from __future__ import annotations

import random

import pytest

from planner.cpsat import schedule as sc
from planner.cpsat import schedule_exact as ex
from planner.cpsat.schedule import ScheduleInstance

NAMES = ("attn.a", "moe.norm", "moe.gate", "moe.dispatch", "moe.experts", "moe.combine", "moe.shared.up")
"""A MoE layer's op names: ``moe.shared.*`` forks from ``moe.norm`` (planner.cpsat.schedule.SIDE_BRANCHES)."""


def inst(ops: list[tuple[str, str, int]], *, k: int, w: int = 2, c: int = 0) -> ScheduleInstance:
    """ops: (name, resource, ticks)."""
    return ScheduleInstance(names=tuple(o[0] for o in ops), resources=tuple(o[1] for o in ops),
                            duration_ticks=tuple(o[2] for o in ops), micro_batches=k, comm_demand=c, window_layers=w)


def violations(i: ScheduleInstance, sol: sc.IntSolution) -> list[str]:
    """Every constraint of the integer model, checked on the unrolled timeline of layers 0..W (the model's
    definition: planner/cpsat/schedule.py module docstring)."""
    g, p, w, c = i.graph, sol.period_ticks, i.window_layers, i.comm_demand
    size = {(b, q): (i.shared_ticks(q) if sol.shared[b][q] else g.block_ticks[q])
            for b in range(i.micro_batches) for q in range(len(g.blocks))}
    start = {(b, q): sol.start_ticks[b][q] for b, q in size}
    errs = [f"{x} starts before 0" for x in start if start[x] < 0]
    span = max(start[x] + size[x] for x in size)
    errs += [f"span {span} > {w} x {p}"] * (span > w * p)
    for b, q in size:
        errs += [f"{(b, q)} before its predecessor {(b, r)} ends" for r in g.preds[q]
                 if start[b, q] < start[b, r] + size[b, r]]
        errs += [f"next layer's {(b, q)} before {(b, t)} ends" for t in g.sinks
                 if q in g.sources and start[b, q] + p < start[b, t] + size[b, t]]
    ivs = [(start[x] + j * p, start[x] + j * p + size[x], x) for x in size for j in range(w + 1) if size[x]]
    points = sorted({a for a, _, _ in ivs})
    for t in points:  # at every start, the blocks running: one per resource, compute units within capacity
        on = [x for a, e, x in ivs if a <= t < e]
        for r in sc.RESOURCES:
            if sum(g.resource[x[1]] == r for x in on) > 1:
                errs.append(f"{r}: two blocks at {t}")
        units = sum(c if g.resource[x[1]] != "compute" else (sc.SM_CAPACITY - c if sol.shared[x[0]][x[1]]
                                                             else sc.SM_CAPACITY) for x in on)
        if c and units > sc.SM_CAPACITY:
            errs.append(f"compute units {units} at {t}")
    return errs


def test_two_batches_hide_the_link_at_the_work_bound():
    # A 10 (compute) -> D 6 (link), K=2, W=2, c=0: work 20 on compute, 12 on the link, chain 16: P >= 20, and
    # A0 [0,10) A1 [10,20) D0 [10,16) D1 [20,26) (= [0,6) mod 20) meets it.
    sol = ex.solve_exact(inst([("attn.a", "compute", 10), ("moe.dispatch", "scale_out", 6)], k=2))
    assert sol is not None and sol.period_ticks == 20 and sol.stats.status == "OPTIMAL"


def test_window_one_is_one_layer_alone():
    # The same ops, W=1 (P = H): D1 ends last at >= A0 + A1 + D1 = 26; A0 [0,10) A1 [10,20) D0 [10,16) D1 [20,26).
    i = inst([("attn.a", "compute", 10), ("moe.dispatch", "scale_out", 6)], k=2, w=1)
    sol = ex.solve_exact(i)
    assert sol is not None and sol.period_ticks == 26 and not violations(i, sol)


def test_comm_on_sms_idles_compute_when_sharing_costs_more():
    # A 100 -> X 40 -> B 100, K=2, c=500 (tests/test_schedule_bound.py): sharing stretches a block by 100 > 40,
    # so each X runs beside idle compute: P = 4 x 100 + 2 x 40 = 480, the coverage bound, back to back.
    i = inst([("attn.a", "compute", 100), ("moe.dispatch", "scale_out", 40), ("moe.experts", "compute", 100)],
             k=2, c=500)
    sol = ex.solve_exact(i)
    assert sol is not None and sol.period_ticks == 480 and not violations(i, sol)


def test_a_shared_block_never_runs_beside_both_links():
    # A 10 -> U 5 (scale_up) -> E 10 -> O 5 (scale_out), K=2, c=200 (stretch 10 -> 13): a shared block beside
    # comm kernels on both links would need 800 + 2 x 200 > 1000 units, a constraint of three blocks the
    # search adds where the earliest schedule breaks it; the validator checks the units at every instant.
    i = inst([("attn.a", "compute", 10), ("moe.dispatch", "scale_up", 5), ("moe.experts", "compute", 10),
              ("moe.combine", "scale_out", 5)], k=2, c=200)
    sol = ex.solve_exact(i)
    assert sol is not None and sol.stats.status == "OPTIMAL" and not violations(i, sol)
    assert cpsat_period(i) == ("OPTIMAL", sol.period_ticks)


def test_node_limit_gives_up_instead_of_guessing():
    i = inst([("attn.a", "compute", 41), ("moe.norm", "compute", 3), ("moe.dispatch", "scale_out", 7),
              ("moe.experts", "compute", 32), ("moe.combine", "scale_out", 13), ("moe.shared.up", "compute", 4)],
             k=2, c=152)
    assert ex.solve_exact(i, node_limit=1) is None  # stopped before any schedule
    assert ex.solve_exact(i).stats.status == "OPTIMAL"


def random_instance(rng: random.Random) -> ScheduleInstance:
    w = rng.choice((1, 2, 2))
    n = rng.randint(2, 7 if w > 1 else 5)  # one layer alone leaves every pair two orders: a wider search
    c = rng.choice((0, 0, 152, 300, 600))
    links = ("scale_up", "scale_out")
    names = [NAMES[0], *sorted(rng.sample(NAMES[1:], n - 1), key=NAMES.index)]
    ops = [(x, "compute" if x in ("attn.a", "moe.experts", "moe.shared.up", "moe.gate") or rng.random() < 0.2
            else rng.choice(links), rng.randint(1, 30)) for x in names]
    return inst(ops, k=rng.choice((1, 2, 2)), w=w, c=c)


def cpsat_period(i: ScheduleInstance) -> tuple[str, int]:
    """CP-SAT's own status and period on the model (no early stop at the bound, no hint)."""
    from ortools.sat.python import cp_model
    model = sc._Model(i)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 3.0
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(model.m)
    return solver.status_name(status), solver.value(model.period)


@pytest.mark.parametrize("seed", range(30))
def test_exact_period_matches_cpsat(seed):
    i = random_instance(random.Random(seed))
    sol = ex.solve_exact(i)
    assert sol is not None and sol.stats.status == "OPTIMAL", "small instances are within the work limit"
    assert not violations(i, sol), violations(i, sol)
    assert sol.stats.status == "OPTIMAL" and sol.period_ticks >= i.period_lower_bound_ticks()
    status, period = cpsat_period(i)  # run to its own proof: the exact period; stopped early: never below it
    assert (status, period) == ("OPTIMAL", sol.period_ticks) or (status == "FEASIBLE" and period >= sol.period_ticks)
