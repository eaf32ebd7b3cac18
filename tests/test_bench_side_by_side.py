"""Smoke test of the side-by-side speed benchmark's argument parser, verdicts, table and answer readers.

No speed is asserted and AIConfigurator is not installed here: the peer's output is a short synthetic text in
the layout its 0.12.0 CLI prints (a 'Best Experiment Chosen' line, an overall-best block, a top table).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import aiconfigurator_peer as peer  # noqa: E402
import plan_speed  # noqa: E402
import side_by_side as sbs  # noqa: E402


def test_repeat_defaults_to_three_side_by_side_and_one_in_process():
    assert plan_speed.parse_args(["--side-by-side"]).repeat == 3
    assert plan_speed.parse_args([]).repeat == 1
    assert plan_speed.parse_args(["--side-by-side", "--repeat", "5"]).repeat == 5


@pytest.mark.parametrize("argv", [["--no-peer"], ["--side-by-side", "--repeat", "0"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        plan_speed.parse_args(argv)


def test_question_is_moeplans_default_scenario():
    args = dict(zip(peer.QUESTION_ARGS[2::2], peer.QUESTION_ARGS[3::2], strict=False))
    # 16 GPUs, 4,000 in / 1,000 out, TTFT 2,000 ms, TPOT 50 ms, agg and disagg (auto)
    assert (args["--total-gpus"], args["--isl"], args["--osl"], args["--ttft"], args["--tpot"]) == (
        "16", "4000", "1000", "2000", "50")
    assert args["--serving-mode"] == "auto" and args["--system"] == "h200_sxm"


def _samples(*walls, rc=0):
    # CPU time half the wall time, as if another process held one core
    return [sbs.Sample(wall_s=w, cpu_s=w / 2, returncode=rc, stdout="", stderr="") for w in walls]


def test_ratio_is_median_over_median_and_min_over_min():
    f = sbs.ratio_figure(_samples(30.0, 40.0, 50.0), _samples(2.0, 4.0, 3.0), floor=100.0)
    assert f.wall.median == pytest.approx(40.0 / 3.0)  # medians 40 and 3
    assert f.wall.minimum == pytest.approx(15.0)  # 30 / 2
    assert f.cpu.median == pytest.approx(20.0 / 1.5)  # CPU halves both, the ratio stays
    assert f.holds is False  # 13.3x < 100x


def test_a_failed_run_is_a_missed_target_not_a_figure():
    f = sbs.ratio_figure(_samples(30.0), _samples(2.0, rc=1), floor=100.0)
    assert f.wall is None and f.cpu is None and f.holds is False


def test_a_cpu_target_is_judged_on_cpu_time():
    case = sbs.Case(key="help", label="moeplan --help", argv=("moeplan", "--help"), cpu=True, target_s=0.3)
    f = sbs.figure_of(case, _samples(0.5, 0.4, 0.6))  # wall median 0.5 s misses, CPU median 0.25 s holds
    assert f.wall.median == pytest.approx(0.5) and f.cpu.median == pytest.approx(0.25)
    assert f.holds is True


def test_verdicts_and_table():
    def sp(m, lo):
        return sbs.Spread(median=m, minimum=lo)

    held = sbs.Figure(label="a", wall=sp(1.5, 1.2), cpu=sp(1.4, 1.1), target=2.0)
    missed = sbs.Figure(label="b", wall=sp(0.7, 0.6), cpu=sp(0.6, 0.5), judged_on_cpu=True, target=0.3)
    floor = sbs.Figure(label="c", wall=sp(120.0, 130.0), cpu=sp(110.0, 115.0), ratio=True, target=100.0,
                       at_least=True)
    free = sbs.Figure(label="d", wall=None, cpu=None)
    assert (held.holds, missed.holds, floor.holds, free.holds) == (True, False, True, None)
    lines = sbs.format_table([held, missed, floor, free]).splitlines()
    assert len(lines) == 6  # header, rule, four rows
    assert lines[2].split()[-1] == "yes" and lines[3].split()[-1] == "NO"
    assert "<= 0.3 s CPU" in lines[3] and ">= 100x wall" in lines[4] and "120.0x" in lines[4]
    assert lines[5].split() == ["d", "failed", "failed", "failed", "failed", "-", "-"]


_AIC_TEXT = """\
    Best Experiment Chosen: disagg at 1,234.50 tokens/s/gpu (disagg 1.20x better than agg)
  Overall Best Configuration:
    - TTFT: 1500.00ms
    - TPOT: 45.00ms
disagg Top Configurations: (Ranked by tokens/s/gpu)
+------+--------------+------------+------------------+-------+------------+------------------+-------+
| Rank | tokens/s/gpu | (p)workers |   (p)parallel    | (p)bs | (d)workers |   (d)parallel    | (d)bs |
+------+--------------+------------+------------------+-------+------------+------------------+-------+
|  1   |   1234.50    |     2      | tp1pp1dp4etp1ep4 |   1   |     1      | tp1pp1dp8etp1ep8 |   64  |
|  2   |   1000.00    |     1      | tp1pp1dp8etp1ep8 |   1   |     1      | tp1pp1dp8etp1ep8 |   32  |
+------+--------------+------------+------------------+-------+------------+------------------+-------+
"""


def test_peer_answer_is_read_from_its_output():
    ans = peer.parse_answer(_AIC_TEXT)
    assert ans.mode == "disagg" and ans.tok_per_s_per_gpu == pytest.approx(1234.5)
    assert ans.layout == "prefill 2 x tp1pp1dp4etp1ep4 (bs 1), decode 1 x tp1pp1dp8etp1ep8 (bs 64)"
    assert (ans.ttft_s, ans.tpot_s) == (pytest.approx(1.5), pytest.approx(0.045))
    assert peer.parse_answer("no answer here") is None


def test_moeplan_answer_names_mode_rate_and_pools():
    plan = {"attn_tp": 1, "attn_dp": 8, "moe_ep": 8, "moe_tp": 1, "dense_tp": 1, "pp": 1,
            "redundant_experts": 0, "overlap": "none"}
    doc = {"top": [{"mode": "aggregated", "output_tok_per_s_per_device": 812.25, "ttft_s": 1.0, "tpot_s": 0.04,
                    "pools": [{"role": "aggregated", "replicas": 2, "plan": plan, "decode_batch_per_device": 40.0}]}]}
    text = sbs.moeplan_answer(json.dumps(doc))
    assert text.startswith("aggregated, 812.2 output tok/s/GPU (TTFT 1.00 s, TPOT 40.0 ms)")
    assert "aggregated 2 x [attn TP1 x DP8, EP8" in text and "batch 40/device" in text
    assert sbs.moeplan_answer("not json").startswith("(no plan read")
