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
from planner.cpsat import quantize
from planner.cpsat.deployment_instance import OBJECTIVES, Deployment, DeploymentInstance
from planner.cpsat.stats import SolveStats

__all__ = ["OBJECTIVES", "Deployment", "DeploymentInstance", "solve_top_k"]

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
        self.zmax = hi
        self.z = m.new_int_var(0, hi, "output_rate")
        agg_rate = sum(r * c[k].devices_per_replica * quantize.tok_per_s(c[k].aggregated_tok_per_s_per_device) for k, r in self.ra.items())
        dec_rate = sum(r * c[k].devices_per_replica * quantize.tok_per_s(c[k].decode_tok_per_s_per_device) for k, r in self.yd.items())
        pre_rate = sum(r * c[k].devices_per_replica * quantize.tok_per_s(c[k].prefill_tok_per_s_per_device) for k, r in self.xp.items())
        m.add(self.z <= agg_rate + dec_rate)
        # Z * input <= prefill input-rate * output  (+ the aggregated rate, which feeds itself)
        m.add(self.z * inst.input_tokens <= pre_rate * inst.output_tokens + agg_rate * inst.input_tokens)
        self._objective()
        self._hint()

    def _objective(self) -> None:
        inst, m, c = self.inst, self.m, self.inst.candidates
        n = inst.cluster_devices
        if inst.objective == "throughput":
            m.maximize(self.z * (n + 1) - self.used)
        elif inst.objective == "latency":
            # TPOT a user sees from the layout that decodes (aggregated: the whole cycle over the user's tokens,
            # as the feasibility check has it), in microseconds; then throughput
            tpot_us = (sum(b * round(c[k].aggregated_tpot_s * 1e6) for k, b in self.agg.items())
                       + sum(b * round(c[k].tpot_s * 1e6) for k, b in self.dec.items()))
            m.minimize(tpot_us * (self.zmax + 1) - self.z)
        elif inst.objective == "devices":
            need = quantize.tok_per_s(inst.required_output_tok_per_s or 0.0)
            m.add(self.z >= need)
            m.minimize(self.used * (self.zmax + 1) - self.z)
        else:
            raise ValueError(inst.objective)

    def _hint(self) -> None:
        """Hint: the best single aggregated layout filling the cluster (what a sweep tool would return)."""
        c, n = self.inst.candidates, self.inst.cluster_devices
        if not self.agg:
            return
        k = max(self.agg, key=lambda k: (n // c[k].devices_per_replica) * c[k].devices_per_replica * c[k].aggregated_tok_per_s_per_device)
        self.m.add_hint(self.agg[k], 1)
        self.m.add_hint(self.ra[k], n // c[k].devices_per_replica)

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


def solve_top_k(inst: DeploymentInstance, *, k: int = 5, time_limit_s: float = 10.0,
                seed: int = 0) -> tuple[list[Deployment], list[SolveStats]]:
    """Best deployment, then the next best with each earlier (mode, layouts) combination forbidden."""
    model = _Model(inst)
    found: list[Deployment] = []
    stats: list[SolveStats] = []
    for _ in range(k):
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = time_limit_s
        solver.parameters.random_seed = seed
        solver.parameters.num_workers = 1  # deterministic: same scenario + seed -> same plan, byte for byte
        t0 = time.perf_counter()
        status = solver.solve(model.m)
        wall = time.perf_counter() - t0
        name = solver.status_name(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            stats.append(SolveStats(status=name, objective=0.0, bound=0.0, gap=0.0, wall_s=wall))
            break
        obj, bound = solver.objective_value, solver.best_objective_bound
        gap = abs(bound - obj) / max(1.0, abs(obj))
        stats.append(SolveStats(status=name, objective=obj, bound=bound, gap=gap, wall_s=wall))
        d = model.extract(solver)
        found.append(d)
        model.forbid(d)
    return found, stats
