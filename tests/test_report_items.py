"""Report details from the first-use friction list: legend keys drawn like their marks, the heatmap scale
naming the data's spread, no raw None / float digits in key-value tables, µs and right-aligned numbers."""

from __future__ import annotations

import re

from planner.render import svg
from planner.render.markdown import render
from planner.render.sections import Report, Section, key_value_section, secs, table


def test_legend_keys_are_drawn_like_the_marks():
    chart = svg.line_chart(title="t", series=[svg.Series("front", ((1.0, 2.0), (2.0, 1.0))),
                                             svg.Series("bound", ((1.0, 1.5), (2.0, 0.5)), markers=False)],
                           x_label="x", y_label="y", marked=svg.Marked(1.0, 2.0, "chosen"))
    legend = chart[chart.index('>chosen</text>'):]             # after the marks and the chosen point's label
    # front: a line and a dot; bound: a line only; chosen: a ring like the mark; no square swatch
    assert legend.count("<circle") == 2 and legend.count("<line") == 2 and "<rect" not in legend
    assert 'fill="none" stroke="#d62728"' in legend


def test_line_chart_axes_span_the_points_not_zero():
    chart = svg.line_chart(title="t", series=[svg.Series("s", ((10.0, 900.0), (20.0, 1000.0)))],
                           x_label="x", y_label="y")
    ticks = [float(t.replace(",", "")) for t in re.findall(r'text-anchor="end"[^>]*>([\d,.]+)<', chart)]
    assert min(ticks) >= 800 and max(ticks) <= 1100              # nice ticks around 900 .. 1000, not from 0


def test_heatmap_scale_names_the_data_min_and_max():
    drawn = svg.heatmap(title="t", row_labels=["0", "1"], col_labels=["0", "1", "2"],
                        values=[[1.0, 0.9, 1.1], [1.21, 0.85, 1.0]], x_label="device", y_label="layer")
    assert "max 1.210" in drawn and "min 0.850" in drawn
    # the scale saturates at the largest deviation from 1.0: 0.21, so its ends read 1.210 and 0.790
    assert ">1.210<" in drawn and ">0.790<" in drawn


def test_key_value_tables_have_no_raw_none_or_float_digits():
    rows = dict(key_value_section("s", {"ttft_slo_s": 2.0, "tpot_slo_s": None, "devices": 16,
                                        "expert_imbalance": 1.2345678, "hbm_bytes": 2.0**31}).blocks[0].rows)
    assert rows == {"ttft_slo_s": "2.00 s", "tpot_slo_s": "none", "devices": "16", "expert_imbalance": "1.235",
                    "hbm_bytes": "2.0 GiB"}


def test_markdown_uses_micro_sign_and_right_aligns_number_columns():
    assert secs(12.5e-6) == "12.5 µs"
    md = render(Report("r", "s", (Section("x", (table(("op", "time", "count"), [["a", secs(1e-5), "3"],
                                                                                ["b", secs(2e-3), "-"]]),)),)))
    assert "| op | time | count |\n|---|---:|---:|" in md and "10.0 µs" in md
