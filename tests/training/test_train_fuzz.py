"""Property-based fuzz of the training input edge: hostile values in a training scenario and in training plan
strings, through ``moeplan evaluate`` in-process.  Every run exits 0, 1 or 2 without a traceback; an exit-2
message names a key path; ``--json`` output is strict JSON.  ``FUZZ_EXAMPLES=N`` sets the examples per property."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from planner.inputs.reader import load_yaml
from planner.inputs.scenario import dump_yaml
from tests.test_fuzz import _set, check, fuzz  # one set of invariants (exit codes, no traceback, hang bound, JSON)

ROOT = Path(__file__).resolve().parents[2]
BASE = load_yaml((ROOT / "scenarios" / "training" / "qwen3_30b_a3b_910b_16.yaml").read_text())
HOSTILE = st.one_of(st.integers(), st.sampled_from([10**400, 2**63, 2**31, 0, -1, 65_536, 2**24]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["", "x" * 5000, "1f1b", "dualpipe", "zb1p", "full", "none", "fp8_blockwise",
                                     "30 days", "-1 h", "nan s", "ulysses"]),
                    st.lists(st.sampled_from(["layernorm", "moe_act", "bogus", 3]), max_size=3), st.none(),
                    st.booleans(), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
LEAVES = ["name", "plan", "model", "model.catalog", "model.shape", "cluster.nodes", "cluster.device", "workload",
          "workload.kind", "workload.seq_tokens", "workload.global_batch_sequences", "workload.global_batch_tokens",
          "workload.precision", "workload.optimizer", "workload.optimizer.moments", "workload.routing",
          "workload.routing.capacity_factor", "workload.routing.dropless", "workload.routing.expert_imbalance",
          "workload.token_budget", "workload.deadline", "plan.tp", "plan.pp", "plan.vpp", "plan.cp", "plan.cp_kind",
          "plan.ep", "plan.etp", "plan.edp", "plan.dp", "plan.schedule", "plan.recompute", "plan.micro_batch",
          "plan.sharding", "plan.a2a_overlap", "expect"]


@fuzz(60)
@given(mutations=st.lists(st.tuples(st.sampled_from(LEAVES), HOSTILE), min_size=1, max_size=3))
def test_fuzz_training_scenario_mutations(tmp_path_factory, mutations):
    doc = json.loads(json.dumps(BASE))
    for key, value in mutations:
        _set(doc, key, value)
    path = tmp_path_factory.mktemp("t") / "t.yaml"
    path.write_text(dump_yaml(doc))
    check(["evaluate", str(path), "--json"])


_FIELD = st.sampled_from(["tp", "pp", "vpp", "cp", "ep", "etp", "dp", "edp", "schedule", "recompute", "micro_batch",
                          "sharding", "a2a_overlap", "bogus", ""])
_VALUE = st.one_of(st.integers(-3, 10**9).map(str), st.sampled_from(["9" * 400, "nan", "", "dualpipev", "full",
                                                                     "layernorm+moe_act", "true", "٨"]))


@fuzz(60)
@given(plan=st.lists(st.tuples(_FIELD, _VALUE), max_size=5).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv)))
def test_fuzz_training_plan_strings(plan):
    check(["evaluate", str(ROOT / "scenarios" / "training" / "qwen3_30b_a3b_910b_16.yaml"), "--json", "--plan", plan])
