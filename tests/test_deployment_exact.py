"""The exact deployment split's shortcuts against the plain scan they replace: one decode replica count per
prefill replica count (:func:`_best_decode_replicas`), and the score bound that skips (prefill, decode) pairs
(:func:`_top_combos`). Random instances, every objective."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.kinds import DeploymentMode
from planner.cpsat import quantize
from planner.cpsat.deployment_instance import OBJECTIVES, DeploymentInstance
from planner.search import deployment_exact as ex


@dataclass(frozen=True, kw_only=True)
class _Cand:
    devices_per_replica: int
    prefill_tok_per_s_per_device: float
    decode_tok_per_s_per_device: float
    aggregated_tok_per_s_per_device: float
    tpot_s: float
    ttft_s: float = 0.1
    aggregated_user_tok_per_s: float = 20.0
    aggregated_tpot_s: float = 0.05
    prefill_ok: bool = True
    decode_ok: bool = True
    aggregated_ok: bool = True


def _scan_pair(inst: DeploymentInstance, p: _Cand, d: _Cand) -> tuple[tuple[int, int], tuple[int, int, int, int]] | None:
    """The definition: every (x, y) in order, the first strictly better (objective, devices) point kept."""
    n, z_max = inst.cluster_devices, ex._z_max(inst)
    pre_rate, dec_rate = quantize.tok_per_s(p.prefill_tok_per_s_per_device), quantize.tok_per_s(d.decode_tok_per_s_per_device)
    best, arg = None, None
    for x in range(1, n // p.devices_per_replica + 1):
        pre_used = x * p.devices_per_replica
        feed = pre_used * pre_rate * inst.output_tokens // inst.input_tokens
        for y in range(1, (n - pre_used) // d.devices_per_replica + 1):
            used = pre_used + y * d.devices_per_replica
            z = min(y * d.devices_per_replica * dec_rate, feed)
            obj = ex._objective(inst, z, used, round(d.tpot_s * 1e6), z_max)
            if obj is not None and ex._better(inst, (obj, used), best):
                best, arg = (obj, used), (z, used, x, y)
    return None if best is None else (best, arg)


_cand = st.builds(
    _Cand, devices_per_replica=st.sampled_from([1, 2, 3, 4, 8, 16]),
    prefill_tok_per_s_per_device=st.sampled_from([0.0, 0.004, 1.0, 850.5, 2400.0, 9000.0]),
    decode_tok_per_s_per_device=st.sampled_from([0.0, 0.003, 2.0, 120.25, 900.0, 3100.0]),
    aggregated_tok_per_s_per_device=st.sampled_from([0.0, 50.0, 400.0]),
    tpot_s=st.sampled_from([0.01, 0.02, 0.05]), aggregated_ok=st.booleans())


def _instance(cands, n, objective, need_fraction):
    inst = DeploymentInstance(candidates=tuple(cands), cluster_devices=n, input_tokens=4000, output_tokens=1000,
                              objective=objective)
    if objective == "devices":
        top = max(c.decode_tok_per_s_per_device for c in cands) * n
        inst = DeploymentInstance(candidates=tuple(cands), cluster_devices=n, input_tokens=4000, output_tokens=1000,
                                  objective=objective, required_output_tok_per_s=top * need_fraction)
    return inst


@settings(max_examples=150, deadline=None)
@given(p=_cand, d=_cand, n=st.sampled_from([8, 16, 24, 64]), objective=st.sampled_from(OBJECTIVES),
       need=st.sampled_from([0.0, 0.01, 0.3, 0.9]))
def test_best_pair_equals_the_scan_of_every_replica_split(p, d, n, objective, need):
    inst = _instance([p, d], n, objective, need)
    got = ex._best_pair(inst, p, d, ex._z_max(inst))
    want = _scan_pair(inst, p, d)
    if want is None:
        assert got is None
        return
    (obj, used), dep = got
    assert (obj, used) == want[0]
    assert (dep.output_tok_per_s_units, dep.devices_used, dep.prefill_replicas, dep.decode_replicas) == want[1]
    assert ex._score(inst, obj) <= ex._pair_score_bound(inst, p, d, ex._z_max(inst))


@settings(max_examples=60, deadline=None)
@given(cands=st.lists(_cand, min_size=2, max_size=9), n=st.sampled_from([16, 32, 48]),
       objective=st.sampled_from(OBJECTIVES), need=st.sampled_from([0.0, 0.2, 0.6]), k=st.sampled_from([1, 3, 5]))
def test_top_combos_rank_like_every_combination(cands, n, objective, need, k):
    inst = _instance(cands, n, objective, need)
    sign = -1 if objective == "throughput" else 1

    def top(combos):
        ranked = sorted(combos, key=lambda t: (sign * t[0][0], t[0][1]))[:k]
        return [(obj, d.mode, id(d.prefill), id(d.decode), d.prefill_replicas, d.decode_replicas) for (obj, _), d in ranked]

    assert top(ex._top_combos(inst, k)) == top(ex._combos(inst))


def test_decode_replicas_hand_derived():
    # feed 1,000 units, 300 per decode replica, room for 5: ceil(1000 / 300) = 4 replicas absorb the feed
    assert ex._best_decode_replicas(1000, 300, 5, None) == 4
    # room for only 3: all of them (z = 900 < feed)
    assert ex._best_decode_replicas(1000, 300, 3, None) == 3
    # nothing to feed: one replica, the fewest devices
    assert ex._best_decode_replicas(0, 300, 5, None) == 1
    # devices objective, need 700: ceil(700 / 300) = 3 replicas, and the feed (1,000) reaches 700
    assert ex._best_decode_replicas(1000, 300, 5, 700) == 3
    # need 1,200 > feed 1,000: no decode count helps at this prefill size
    assert ex._best_decode_replicas(1000, 300, 5, 1200) is None
    # need 700 but room for 2 replicas (600): infeasible
    assert ex._best_decode_replicas(1000, 300, 2, 700) is None


def test_score_bound_hand_derived():
    # 64 devices, prefill 1 tok/s/device = 100 units, decode 1 tok/s/device = 100 units, 4,000 in / 1,000 out:
    # z <= 64 x 100 x 1000 x 100 / (100 x 1000 + 100 x 4000) = 1,280 units (+1 for the integer floor);
    # throughput score = z x 65 - (1 + 1) devices
    p = _Cand(devices_per_replica=1, prefill_tok_per_s_per_device=1.0, decode_tok_per_s_per_device=0.0,
              aggregated_tok_per_s_per_device=0.0, tpot_s=0.02)
    d = _Cand(devices_per_replica=1, prefill_tok_per_s_per_device=0.0, decode_tok_per_s_per_device=1.0,
              aggregated_tok_per_s_per_device=0.0, tpot_s=0.02)
    inst = DeploymentInstance(candidates=(p, d), cluster_devices=64, input_tokens=4000, output_tokens=1000)
    assert quantize.tok_per_s(1.0) == 100
    assert ex._pair_score_bound(inst, p, d, ex._z_max(inst)) == 1281 * 65 - 2
    # the best split: 51 prefill devices feed 51 x 100 / 4 = 1,275 units, 13 decode devices deliver 1,300
    (obj, used), dep = ex._best_pair(inst, p, d, ex._z_max(inst))
    assert (dep.mode, dep.prefill_replicas, dep.decode_replicas, dep.output_tok_per_s_units) == \
        (DeploymentMode.DISAGGREGATED, 51, 13, 1275)
    assert obj == 1275 * 65 - 64
