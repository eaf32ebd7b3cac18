"""CP-SAT: split a cluster into prefill / decode / aggregated pools of costed layouts.

Build, solve and extract are separate steps (d-krupke/cpsat-primer). Decision variables:

* ``agg[k]``  bool, layout k serves aggregated (prefill + decode on the same devices); ``ra[k]`` its replicas;
* ``pre[i]``  bool, layout i is the prefill pool;  ``xp[i]`` its replicas;
* ``dec[j]``  bool, layout j is the decode pool;   ``yd[j]`` its replicas.

Constraints: exactly one mode (one aggregated layout, or one prefill and one decode layout); replicas only of
the chosen layouts; devices used <= cluster devices; the delivered output rate ``Z`` (integer tok/s units) is
at most the decode pool's output rate and at most what the prefill pool's input rate can feed
(``Z * input <= prefill_rate * output``: the prefill rate feeds the decode rate). Objectives:

* ``throughput``: maximise Z, then use the fewest devices;
* ``latency``: minimise the TPOT of the serving layout, then maximise Z;
* ``devices``: minimise devices used subject to Z >= the requested output rate.
"""

from __future__ import annotations

import time

from ortools.sat.python import cp_model

from cost_models.kinds import DeploymentMode
from planner.cpsat import budget, quantize
from planner.cpsat.deployment_instance import OBJECTIVES, Deployment, DeploymentInstance
from planner.cpsat.stats import SolveStats

__all__ = ["OBJECTIVES", "Deployment", "DeploymentInstance", "solve_top_k"]

INT_RANGE = 2**63 - 1
"""CP-SAT's signed 64-bit integer range: variable bounds and objective terms must stay within it."""


def _check_range(term: int, what: str) -> None:
    """Refuse (:class:`~planner.cpsat.budget.ModelOutOfRange`, exit 2) an instance whose ``term`` (a bound or
    the largest objective term) leaves CP-SAT's integer range, before building it (ortools raised a TypeError
    on such a bound: an "internal error")."""
    if term > INT_RANGE:
        raise budget.ModelOutOfRange(
            f"deployment split: the solver model is out of range ({what} = {term:.3g} > 2^63); the coefficients "
            "come from the cluster's device count and the layouts' per-device rates; accepted: smaller values")


class _Model:
    def __init__(self, inst: DeploymentInstance) -> None:
        self.inst = inst
        m = self.m = cp_model.CpModel()
        n = inst.cluster_devices
        c = inst.candidates
        self.agg_idx = [k for k, x in enumerate(c) if x.aggregated_ok and inst.allow_aggregated and x.devices_per_replica <= n]
        self.pre_idx = [k for k, x in enumerate(c) if x.prefill_ok and inst.allow_disaggregated and x.devices_per_replica < n]
        self.dec_idx = [k for k, x in enumerate(c) if x.decode_ok and inst.allow_disaggregated and x.devices_per_replica < n]
        self.agg = {k: m.new_bool_var(f"agg{k}") for k in self.agg_idx}
        self.pre = {k: m.new_bool_var(f"pre{k}") for k in self.pre_idx}
        self.dec = {k: m.new_bool_var(f"dec{k}") for k in self.dec_idx}
        self.ra = {k: m.new_int_var(0, n // c[k].devices_per_replica, f"ra{k}") for k in self.agg_idx}
        self.xp = {k: m.new_int_var(0, n // c[k].devices_per_replica, f"xp{k}") for k in self.pre_idx}
        self.yd = {k: m.new_int_var(0, n // c[k].devices_per_replica, f"yd{k}") for k in self.dec_idx}
        for b, r in ((self.agg, self.ra), (self.pre, self.xp), (self.dec, self.yd)):
            for k in b:
                m.add(r[k] >= 1).only_enforce_if(b[k])
                m.add(r[k] == 0).only_enforce_if(~b[k])
        disagg = m.new_bool_var("disaggregated")
        m.add(sum(self.pre.values()) == disagg)
        m.add(sum(self.dec.values()) == disagg)
        m.add(sum(self.agg.values()) + disagg == 1)
        self.disagg = disagg
        used = (sum(r * c[k].devices_per_replica for k, r in self.ra.items()) + sum(r * c[k].devices_per_replica for k, r in self.xp.items())
                + sum(r * c[k].devices_per_replica for k, r in self.yd.items()))
        self.used = m.new_int_var(0, n, "devices_used")
        m.add(self.used == used)
        hi = sum(quantize.tok_per_s(x.decode_tok_per_s_per_device + x.aggregated_tok_per_s_per_device) for x in c) * n + 1
        _check_range(hi, "output rate bound")
        self.zmax = hi
        self.z = m.new_int_var(0, hi, "output_rate")
        agg_rate = sum(r * c[k].devices_per_replica * quantize.tok_per_s(c[k].aggregated_tok_per_s_per_device) for k, r in self.ra.items())
        dec_rate = sum(r * c[k].devices_per_replica * quantize.tok_per_s(c[k].decode_tok_per_s_per_device) for k, r in self.yd.items())
        pre_rate = sum(r * c[k].devices_per_replica * quantize.tok_per_s(c[k].prefill_tok_per_s_per_device) for k, r in self.xp.items())
        m.add(self.z <= agg_rate + dec_rate)
        # Z * input <= prefill input-rate * output  (+ the aggregated rate, which feeds itself)
        m.add(self.z * inst.input_tokens <= pre_rate * inst.output_tokens + agg_rate * inst.input_tokens)
        self._objective()
        self.hinted: Deployment | None = None
        """The hinted (or fallback) deployment, a valid one: listed when the first solve finds nothing in time."""
        self._hint()

    def _objective(self) -> None:
        inst, m, c = self.inst, self.m, self.inst.candidates
        n = inst.cluster_devices
        if inst.objective == "throughput":
            _check_range(self.zmax * (n + 1), "rate bound x (devices + 1)")
            m.maximize(self.z * (n + 1) - self.used)
        elif inst.objective == "latency":
            # TPOT a user sees from the layout that decodes (aggregated: the whole cycle over the user's tokens,
            # as the feasibility check has it), in microseconds; then throughput
            worst_us = max((round(max(x.tpot_s, x.aggregated_tpot_s) * 1e6) for x in c), default=0)
            _check_range(worst_us * (self.zmax + 1), "TPOT in us x (rate bound + 1)")
            tpot_us = (sum(b * round(c[k].aggregated_tpot_s * 1e6) for k, b in self.agg.items())
                       + sum(b * round(c[k].tpot_s * 1e6) for k, b in self.dec.items()))
            m.minimize(tpot_us * (self.zmax + 1) - self.z)
        elif inst.objective == "devices":
            need = quantize.tok_per_s(inst.required_output_tok_per_s or 0.0)
            _check_range(n * (self.zmax + 1), "devices x (rate bound + 1)")
            m.add(self.z >= need)
            m.minimize(self.used * (self.zmax + 1) - self.z)
        else:
            raise ValueError(inst.objective)

    def _hint(self) -> None:
        """Hint: the best single aggregated layout filling the cluster (what a sweep tool would return). Without
        one, no hint (a hint changes which of tied optima CP-SAT returns, and so the golden bytes), but a
        fallback split (:meth:`_fallback_split`) to list when the first solve finds nothing in its time."""
        c, n = self.inst.candidates, self.inst.cluster_devices
        if not self.agg:
            self._fallback_split()
            return
        k = max(self.agg, key=lambda k: (n // c[k].devices_per_replica) * c[k].devices_per_replica * c[k].aggregated_tok_per_s_per_device)
        self.m.add_hint(self.agg[k], 1)
        self.m.add_hint(self.ra[k], n // c[k].devices_per_replica)
        r = n // c[k].devices_per_replica
        used = r * c[k].devices_per_replica
        self.hinted = Deployment(mode=DeploymentMode.AGGREGATED, prefill=None, prefill_replicas=0, decode=c[k],
                                 decode_replicas=r, devices_used=used,
                                 output_tok_per_s_units=used * quantize.tok_per_s(c[k].aggregated_tok_per_s_per_device))

    def _fallback_split(self) -> None:
        """The layouts with the highest prefill and decode rate per device, at the prefill replica count that
        delivers the most with the rest of the cluster decoding (one pass over the prefill replica counts)."""
        c, n, inst = self.inst.candidates, self.inst.cluster_devices, self.inst
        if not self.pre or not self.dec:
            return
        p = max(self.pre, key=lambda k: c[k].prefill_tok_per_s_per_device)
        d = max(self.dec, key=lambda k: c[k].decode_tok_per_s_per_device)
        pre_q, dec_q = quantize.tok_per_s(c[p].prefill_tok_per_s_per_device), quantize.tok_per_s(c[d].decode_tok_per_s_per_device)
        best = None
        for x in range(1, n // c[p].devices_per_replica + 1):
            y = (n - x * c[p].devices_per_replica) // c[d].devices_per_replica
            if y < 1:
                break
            z = min(y * c[d].devices_per_replica * dec_q,
                    x * c[p].devices_per_replica * pre_q * inst.output_tokens // inst.input_tokens)
            if best is None or z > best[0]:
                best = (z, x, y)
        if best is None:
            return
        z, x, y = best
        self.hinted = Deployment(mode=DeploymentMode.DISAGGREGATED, prefill=c[p], prefill_replicas=x, decode=c[d],
                                 decode_replicas=y, devices_used=x * c[p].devices_per_replica + y * c[d].devices_per_replica,
                                 output_tok_per_s_units=z)

    def forbid(self, d: Deployment) -> None:
        """Exclude a found (mode, layouts) combination, for the next-best solve."""
        c = self.inst.candidates
        if d.mode is DeploymentMode.AGGREGATED:
            self.m.add(self.agg[c.index(d.decode)] == 0)
        else:
            assert d.prefill is not None
            self.m.add_bool_or([~self.pre[c.index(d.prefill)], ~self.dec[c.index(d.decode)]])

    def extract(self, s: cp_model.CpSolver) -> Deployment:
        c = self.inst.candidates
        used = s.value(self.used)
        z = s.value(self.z)
        for k, b in self.agg.items():
            if s.boolean_value(b):
                return Deployment(mode=DeploymentMode.AGGREGATED, prefill=None, prefill_replicas=0, decode=c[k],
                                  decode_replicas=s.value(self.ra[k]), devices_used=used, output_tok_per_s_units=z)
        p = next(k for k, b in self.pre.items() if s.boolean_value(b))
        d = next(k for k, b in self.dec.items() if s.boolean_value(b))
        return Deployment(mode=DeploymentMode.DISAGGREGATED, prefill=c[p], prefill_replicas=s.value(self.xp[p]), decode=c[d],
                          decode_replicas=s.value(self.yd[d]), devices_used=used, output_tok_per_s_units=z)


WORK_LIMIT_UNITS = 5.0
"""CP-SAT deterministic seconds per deployment solve: the reproducible limit. The largest measured need is 0.36
(1,024 x H200, --top 50, every solve OPTIMAL), so the limit binds only on far larger instances."""
WALL_CAP_S = 60.0
"""Wall-clock cap per deployment solve without --time-limit: a safety net only (measured 0.2-0.5 units per wall
second on the loaded 2-core reference machine, so 5 units end a solve within about 25 s, before this cap)."""


def _meets(inst: DeploymentInstance, d: Deployment) -> bool:
    """Whether a deployment meets the devices objective's required rate (the others have no such constraint)."""
    need = quantize.tok_per_s(inst.required_output_tok_per_s or 0.0) if inst.objective == "devices" else 0
    return d.output_tok_per_s_units >= need


def solve_top_k(inst: DeploymentInstance, *, k: int = 5, seed: int = 0) -> tuple[list[Deployment], list[SolveStats]]:
    """Best deployment, then the next best with each earlier (mode, layouts) combination forbidden. Each solve
    draws its wall time from the command's :mod:`~planner.cpsat.budget`; once that is spent the list ends
    (recorded as skipped)."""
    model = _Model(inst)
    found: list[Deployment] = []
    stats: list[SolveStats] = []
    spend = budget.current()
    for i in range(k):
        if i > 0 and spend.exhausted():  # the first always runs (its hint is a deployment to list)
            spend.skip(f"deployment split #{i + 1}")
            break
        solver = cp_model.CpSolver()
        allotted = spend.allot(WALL_CAP_S)
        solver.parameters.max_time_in_seconds = allotted
        solver.parameters.max_deterministic_time = WORK_LIMIT_UNITS
        solver.parameters.random_seed = seed
        solver.parameters.num_workers = 1  # deterministic: same scenario + seed -> same plan, byte for byte
        t0 = time.perf_counter()
        status = solver.solve(model.m)
        wall = time.perf_counter() - t0
        name = solver.status_name(status)
        budget.refuse_invalid(name, "deployment split", model.m,
                              "the cluster's device count and the layouts' per-device rates")
        spend.finish(f"deployment split #{i + 1}", status=name, wall_s=wall, allotted_s=allotted,
                     work_units=solver.deterministic_time, work_limit_units=WORK_LIMIT_UNITS)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            stats.append(SolveStats(status=name, objective=0.0, bound=0.0, gap=0.0, wall_s=wall))
            if status == cp_model.UNKNOWN and not found and model.hinted is not None and _meets(inst, model.hinted):
                found.append(model.hinted)  # stopped before any solution: the hint is a valid deployment
                spend.note("deployment split #1: no solution in time; listed a heuristic split (the best "
                           "single layout, or the fastest prefill and decode layouts at their best replica counts)")
            break
        obj, bound = solver.objective_value, solver.best_objective_bound
        gap = abs(bound - obj) / max(1.0, abs(obj))
        stats.append(SolveStats(status=name, objective=obj, bound=bound, gap=gap, wall_s=wall))
        d = model.extract(solver)
        found.append(d)
        model.forbid(d)
    return found, stats
