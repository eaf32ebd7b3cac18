"""The forked search helper (planner/search/helper.py) changes how long the search takes, never what it finds:
the candidates (with every figure of their results), their order and the rejection counts, in their order,
equal the search without it; a helper that fails or is not available leaves the parent to cost its share."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from planner.inputs.scenario import load_scenario
from planner.search import helper, layouts
from planner.search.layouts import _shares, search_space, two_batch_family, unit_layouts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the helper forks on Linux only")


def _same(a: layouts.SearchSpace, b: layouts.SearchSpace) -> None:
    assert a.layouts_considered == b.layouts_considered
    assert [c.dims for c in a.candidates] == [c.dims for c in b.candidates]
    assert a.candidates == b.candidates  # every figure but the result (compare=False there) ...
    assert all(x.result == y.result for x, y in zip(a.candidates, b.candidates, strict=True))  # ... and it
    assert list(a.rejected.items()) == list(b.rejected.items())  # the same counts, first counted in the same order


@pytest.fixture(scope="module")
def default():
    sc = load_scenario(DEFAULT)
    return sc, search_space(sc.model, sc.cluster, sc.workload)


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr(helper, "usable_cpus", lambda: 2)  # the test machine may pin the run to one CPU


@pytest.fixture
def frames(monkeypatch):
    """How many frames the parent received from helpers (a helper that always failed would deliver none)."""
    got = []
    real = helper.Helper.messages

    def counted(self, *a, **k):
        for m in real(self, *a, **k):
            got.append(m)
            yield m

    monkeypatch.setattr(helper.Helper, "messages", counted)
    return got


def _no_children_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_helper_finds_what_the_search_alone_finds(default, two_cpus, frames):
    sc, alone = default
    assert alone.layouts_considered >= layouts.HELPER_MIN_LAYOUTS  # 368 layouts: the helper is used
    _same(alone, search_space(sc.model, sc.cluster, sc.workload, use_helper=True))
    families = len(_shares(list(unit_layouts(sc.model, sc.cluster, sc.cluster.num_devices, rejected=Counter())))[1])
    # the helper delivers its families from the first on; the parent costs the rest from the last (work stealing)
    assert 1 <= len(frames) <= families and [k for k, _ in frames] == list(range(len(frames)))
    assert _no_children_left()


def test_a_slow_helper_has_its_families_costed_by_the_parent(default, two_cpus, monkeypatch, frames):
    sc, alone = default
    real = layouts._Costing.helper_events

    def slow(self, families):  # runs in the child only: a helper far slower than the parent
        for item in real(self, families):
            time.sleep(0.5)
            yield item

    monkeypatch.setattr(layouts._Costing, "helper_events", slow)
    _same(alone, search_space(sc.model, sc.cluster, sc.workload, use_helper=True))
    families = len(_shares(list(unit_layouts(sc.model, sc.cluster, sc.cluster.num_devices, rejected=Counter())))[1])
    assert len(frames) < families  # the parent took the families the helper had not sent yet
    assert _no_children_left()


def test_shares_are_whole_families_near_the_target(default):
    sc, _ = default
    lay = list(unit_layouts(sc.model, sc.cluster, sc.cluster.num_devices, rejected=Counter()))
    own, theirs = _shares(lay)
    flat = [i for f in theirs for i in f]
    assert sorted(own + flat) == list(range(len(lay)))  # every layout once
    assert all(f == sorted(f) for f in theirs) and own == sorted(own)
    fam_own = {two_batch_family(lay[i]) for i in own}
    assert not fam_own & {two_batch_family(lay[i]) for i in flat}  # no family split between the two
    assert abs(len(flat) / len(lay) - layouts.HELPER_SHARE) < 0.1


def test_a_helper_that_fails_midway_is_made_up_for(default, two_cpus, monkeypatch, frames):
    sc, alone = default
    real = layouts._Costing.helper_events

    def first_family_then_fail(self, families):  # runs in the child only (the parent never calls it)
        it = real(self, families)
        yield next(it)
        raise RuntimeError("helper failure")

    monkeypatch.setattr(layouts._Costing, "helper_events", first_family_then_fail)
    _same(alone, search_space(sc.model, sc.cluster, sc.workload, use_helper=True))
    assert len(frames) == 1  # the one family it sent was used, the rest costed by the parent
    assert _no_children_left()


def test_the_engine_is_asked_once_per_layout_in_layout_order(default, two_cpus):
    # run_plan counts the engine's reasons as refusal() is called, and names the most common first (ties in the
    # order first counted): the helper must not reorder those calls
    sc, _ = default
    calls: list = []

    def refusal(d):
        calls.append(d)
        return "too many experts" if d.moe_ep == 16 else None

    kw = dict(refusal=refusal)
    alone = search_space(sc.model, sc.cluster, sc.workload, **kw)
    serial_calls, calls[:] = list(calls), []
    _same(alone, search_space(sc.model, sc.cluster, sc.workload, use_helper=True, **kw))
    assert calls == serial_calls == list(unit_layouts(sc.model, sc.cluster, sc.cluster.num_devices,
                                                      rejected=Counter()))
    assert alone.rejected["engine"] > 0


def test_an_exception_in_the_parent_is_the_one_without_helper_and_leaves_no_child(default, two_cpus):
    sc, _ = default
    parent = os.getpid()
    seen: list = []

    def imbalance(d):
        if os.getpid() == parent and d.moe_ep == 8 and d.attn_tp == 2:
            seen.append(d)
            raise ValueError(f"bad loads for {d.moe_ep}")
        return 1.0

    with pytest.raises(ValueError, match="bad loads for 8"):
        search_space(sc.model, sc.cluster, sc.workload, imbalance_of=imbalance)
    first_serial = seen[0]
    seen.clear()
    with pytest.raises(ValueError, match="bad loads for 8"):
        search_space(sc.model, sc.cluster, sc.workload, imbalance_of=imbalance, use_helper=True)
    assert seen[-1] == first_serial  # the serial rerun raised at the same layout
    assert _no_children_left()


def test_off_linux_there_is_no_helper(two_cpus, monkeypatch):
    monkeypatch.setattr(helper.sys, "platform", "darwin")
    assert helper.start(lambda: [1]) is None
    assert helper.split_map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]


def test_without_a_second_cpu_there_is_no_helper(default, monkeypatch):
    sc, alone = default
    monkeypatch.setattr(helper, "usable_cpus", lambda: 1)
    assert helper.start(lambda: [1]) is None
    _same(alone, search_space(sc.model, sc.cluster, sc.workload, use_helper=True))


def test_messages_arrive_in_order_and_end_at_a_failure(two_cpus):
    def produce():
        yield {"a": 1}
        yield [2, 3]
        raise ValueError("stop")  # exit status 1: what arrived whole still counts

    h = helper.start(produce)
    assert h is not None and list(h.messages()) == [{"a": 1}, [2, 3]]


def test_a_truncated_frame_ends_the_messages():
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child that sends one whole frame, then half of one
        body = __import__("pickle").dumps("whole")
        os.write(write_fd, helper._LENGTH.pack(len(body)) + body + helper._LENGTH.pack(1000) + b"abc")
        os._exit(0)
    os.close(write_fd)
    assert list(helper.Helper(pid, read_fd).messages()) == ["whole"]
    assert _no_children_left()


def test_a_silent_helper_is_given_up_on(two_cpus):
    def produce():
        yield "first"
        signal.pause()  # never sends again

    h = helper.start(produce)
    assert h is not None and list(h.messages(idle_timeout_s=0.5)) == ["first"]  # then killed and reaped
    assert _no_children_left()


def test_a_killed_helper_delivers_what_it_sent_before(two_cpus):
    def produce():
        yield "first"
        os.kill(os.getpid(), signal.SIGKILL)
        yield "never"

    h = helper.start(produce)
    assert h is not None and list(h.messages()) == ["first"]


def test_close_stops_a_helper_still_running(two_cpus):
    def produce():
        signal.pause()  # would wait forever
        yield None

    h = helper.start(produce)
    assert h is not None
    signal.alarm(20)  # a close() that stopped killing would wait for ever: fail instead
    try:
        h.close()  # kills and reaps: returns
        h.close()  # idempotent
    finally:
        signal.alarm(0)
    assert _no_children_left()


def _tagged(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_split_map_keeps_the_order_and_each_group_in_one_process(two_cpus):
    items = [0, 1, 2, 3, 4, 5, 6, 7, 8]
    got = helper.split_map(_tagged, items, key=lambda x: x % 3)  # groups {0,3,6} {1,4,7} {2,5,8}
    assert [v for v, _ in got] == [x * x for x in items]
    pid = {x: p for x, (_, p) in zip(items, got, strict=True)}
    assert all(pid[x] == pid[x % 3] for x in items)  # one process per group
    assert pid[1] != os.getpid() and pid[0] == pid[2] == os.getpid()  # the second group went to the helper


def test_split_map_makes_up_for_a_failing_helper(two_cpus):
    parent = os.getpid()

    def only_here(x: int) -> int:
        if os.getpid() != parent:
            raise RuntimeError("the helper fails")
        return x + 1

    assert helper.split_map(only_here, list(range(6))) == [1, 2, 3, 4, 5, 6]


def test_results_with_read_only_maps_travel_back(two_cpus):
    import types
    proxy = types.MappingProxyType({"compute_s": 1.5})
    got = helper.split_map(lambda x: {"detail": proxy, "pid": os.getpid()}, [0, 1])
    assert got[1]["pid"] != os.getpid()  # item 1 came back from the helper (not recomputed here) ...
    assert got[1]["detail"] == proxy and isinstance(got[1]["detail"], types.MappingProxyType)  # ... intact


def test_split_map_raises_what_the_comprehension_raises(two_cpus):
    def fn(x: int) -> int:
        if x in (1, 2):  # item 1 goes to the helper, item 2 stays here: the comprehension fails at 1 first
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 1"):
        helper.split_map(fn, [0, 1, 2, 3])
    assert _no_children_left()


def test_schedules_under_a_time_limit_stay_in_one_process(two_cpus, monkeypatch):
    # a --time-limit is one wall budget for all solves (and their record of early stops): not split
    from planner.cpsat import budget
    from planner.search import plan as plan_mod

    calls = []
    real = helper.split_map

    def counted(fn, items, key=id):
        calls.append(len(items))
        return real(fn, items, key)

    monkeypatch.setattr(helper, "split_map", counted)
    sc = load_scenario(ROOT / "scenarios" / "qwen3_235b_h200_8.yaml")
    free = plan_mod.run_plan(sc, overlap_model="schedule")
    assert calls and calls[0] > 1  # without a time limit the two-batch layouts' schedules are split
    calls.clear()
    with budget.using(budget.SolveBudget(wall_s=600.0)):
        limited = plan_mod.run_plan(sc, overlap_model="schedule")
    assert not calls
    assert [d.decode.dims for d in limited.deployments] == [d.decode.dims for d in free.deployments]


def test_a_helper_candidate_costs_its_result_when_first_read(default, two_cpus):
    import pickle
    sc, alone = default
    space = search_space(sc.model, sc.cluster, sc.workload, use_helper=True)
    lazy = [(c, ref) for c, ref in zip(space.candidates, alone.candidates, strict=True) if callable(c.costed)]
    assert len(lazy) > 50  # the helper's share arrives as figures only
    c, ref = lazy[0]
    assert c == ref and c.result == ref.result  # read: costed again, the same result
    assert not callable(c.costed)  # ... and kept
    c2, ref2 = lazy[1]
    back = pickle.loads(pickle.dumps(c2))  # a function does not travel: the result does
    assert not callable(back.costed) and back.result == ref2.result and back == ref2
