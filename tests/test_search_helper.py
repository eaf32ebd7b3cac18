"""The forked search helper (planner/search/helper.py) changes how long the search takes, never what it finds:
the candidates (with every figure of their results), their order and the rejection counts, in their order,
equal the search without it; a helper that fails or is not available leaves the parent to cost its share."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from planner.inputs.scenario import load_scenario
from planner.search import helper, layouts
from planner.search.layouts import _shares, _two_batch_family, search_space, unit_layouts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "deepseek_v3_h200_16.yaml"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper forks")


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


def test_helper_finds_what_the_search_alone_finds(default, two_cpus):
    sc, alone = default
    assert alone.layouts_considered >= layouts.HELPER_MIN_LAYOUTS  # 368 layouts: the helper is used
    _same(alone, search_space(sc.model, sc.cluster, sc.workload, use_helper=True))


def test_shares_are_whole_families_near_the_target(default):
    sc, _ = default
    lay = list(unit_layouts(sc.model, sc.cluster, sc.cluster.num_devices, rejected=Counter()))
    own, theirs = _shares(lay)
    flat = [i for f in theirs for i in f]
    assert sorted(own + flat) == list(range(len(lay)))  # every layout once
    assert all(f == sorted(f) for f in theirs) and own == sorted(own)
    fam_own = {_two_batch_family(lay[i]) for i in own}
    assert not fam_own & {_two_batch_family(lay[i]) for i in flat}  # no family split between the two
    assert abs(len(flat) / len(lay) - layouts.HELPER_SHARE) < 0.1


def test_a_helper_that_fails_midway_is_made_up_for(default, two_cpus, monkeypatch):
    sc, alone = default
    real = layouts._Costing.decode_batches

    def first_family_then_fail(self, families):  # runs in the child only (the parent never calls it)
        it = real(self, families)
        yield next(it)
        raise RuntimeError("helper failure")

    monkeypatch.setattr(layouts._Costing, "decode_batches", first_family_then_fail)
    _same(alone, search_space(sc.model, sc.cluster, sc.workload, use_helper=True))


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
    h.close()  # kills and reaps: returns
    h.close()  # idempotent
