"""HTML / Markdown reports and --export: deterministic escaped SVG, every section of every document kind,
nothing external, atomic writes, exit 2 on a bad --export before any work."""

from __future__ import annotations

import re

import pytest
from _report_docs import KINDS, SCENARIO, chart_title, document, expected
from click.testing import CliRunner

from planner.cli import main
from planner.render import svg as svg
from planner.render.export import ExportError, write_export
from planner.render.html import to_html
from planner.render.markdown import to_markdown
from planner.render.report_build import build_report

EXTERNAL = re.compile(r"""(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _charts() -> list[str]:
    rows = [svg.BarRow("a", (("x", 1.0), ("y", 2.5))), svg.BarRow("b", (("x", 0.25), ("z", 3.0)))]
    return [
        svg.line_chart(title="t", series=[svg.Series("s", ((1.0, 2.0), (3.0, 1.0 / 3)))], x_label="x", y_label="y",
                       marked=svg.Marked(1.0, 2.0, "chosen")),
        svg.stacked_bar_chart(title="t", rows=rows, value_label="GiB", reference=3.0),
        svg.stacked_bar_chart(title="t", rows=rows, value_label="GiB", horizontal=False),
        svg.gantt_chart(title="t", rows=["compute mb0", "comm mb1"], span_s=1e-3,
                        bars=[svg.GanttBar("compute mb0", 0.0, 4e-4, "attention", "attn.core"),
                              svg.GanttBar("comm mb1", 1e-4, 7e-4, "dispatch", "moe.dispatch")]),
        svg.heatmap(title="t", row_labels=["0", "1"], col_labels=["0", "1", "2"],
                    values=[[1.0, 0.9, 1.1], [1.2, 0.8, 1.0]], x_label="device", y_label="layer"),
    ]


def test_svg_charts_are_deterministic_and_well_formed():
    first, second = _charts(), _charts()
    assert first == second
    for s in first:
        assert s.startswith("<svg") and s.endswith("</svg>") and "<title>t</title>" in s
        assert 'class="chart-title"' in s  # visible heading, not only the tooltip title
        assert "nan" not in s and "inf" not in s
        assert not re.search(r'="-?\d+\.\d{3,}', s)  # fixed two-decimal coordinates


def test_svg_charts_escape_every_text():
    evil = '<script>alert("x")</script> & co'
    out = [svg.line_chart(title=evil, series=[svg.Series(evil, ((0.0, 1.0), (1.0, 2.0)), (evil, evil))],
                          x_label=evil, y_label=evil, marked=svg.Marked(0.0, 1.0, evil)),
           svg.stacked_bar_chart(title=evil, rows=[svg.BarRow(evil, ((evil, 1.0),))], value_label=evil),
           svg.gantt_chart(title=evil, rows=[evil], bars=[svg.GanttBar(evil, 0.0, 1.0, evil, evil)], span_s=1.0),
           svg.heatmap(title=evil, row_labels=[evil], col_labels=[evil], values=[[1.0]], x_label=evil, y_label=evil)]
    for s in out:
        assert "<script" not in s and "&lt;script&gt;" in s and "&amp; co" in s


def test_nice_ticks_cover_the_range_with_round_steps():
    # [0, 806.9] with 5 ticks: raw step 161 -> 200; ticks 0, 200, ..., 1000 (the first covering 806.9)
    assert svg.nice_ticks(0, 806.9) == [0, 200, 400, 600, 800, 1000]
    assert svg.nice_ticks(1.0, 1.03) == [1.0, 1.01, 1.02, 1.03]
    with pytest.raises(ValueError, match="finite"):
        svg.nice_ticks(0, float("nan"))


def test_diverging_colour_is_white_at_the_centre_and_saturates():
    assert svg.diverging_colour(1.0, 1.0, 0.1) == "#ffffff"
    assert svg.diverging_colour(5.0, 1.0, 0.1) == svg.diverging_colour(1.1, 1.0, 0.1) == "#b2182b"
    assert svg.diverging_colour(0.0, 1.0, 0.1) == "#2166ac"


@pytest.mark.parametrize("kind", KINDS)
def test_html_has_every_section_and_chart_and_nothing_external(kind):
    doc = document(kind)
    html = to_html(doc)
    titles, charts = expected(doc)
    for t in titles:
        assert f"<h2>{t}</h2>" in html, t
    found = re.findall(r'data-chart="([^"]+)"', html)
    assert sorted(found) == sorted(charts)
    for c in charts:
        assert f'<figure class="chart" data-chart="{c}"><h3>{chart_title(c)}</h3><svg' in html
    assert not EXTERNAL.search(html)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "default-src 'none'" in html
    assert to_html(document(kind)) == html  # same document, same bytes


@pytest.mark.parametrize("kind", KINDS)
def test_markdown_has_the_same_sections_and_charts_as_tables(kind):
    doc = document(kind)
    md = to_markdown(doc)
    titles, charts = expected(doc)
    assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == titles
    for c in charts:
        assert f"### {chart_title(c)}\n\n| " in md
    assert [s.title for s in build_report(doc).sections] == titles


def test_plan_report_marks_the_chosen_point_on_or_off_the_front():
    doc = document("plan")
    # the default scenario's chosen decode pool (prefill-bound, so tied with faster decode layouts) may or may not be
    # on the decode front: build both cases from it
    chosen = doc["chosen_breakdown"]
    if not any(p["plan"] == chosen["plan"] for p in doc["pareto"]):
        dec = chosen["decode"]
        doc["pareto"] = [{"plan": chosen["plan"], "decode_tok_per_s_per_device": dec["throughput_tok_per_s_per_device"],
                          "user_tok_per_s": 1 / dec["tpot_s"], "tpot_s": dec["tpot_s"]}] + doc["pareto"]
    on = to_html(doc)
    assert 'class="marked"' in on and "(on the front)" in on
    doc["pareto"] = [p for p in doc["pareto"] if p["plan"] != doc["chosen_breakdown"]["plan"]]
    off = to_markdown(doc)
    assert "(chosen, off the front)" in off and "is off the front" in off


def test_optional_sections_follow_their_keys():
    doc = document("evaluate")
    for key in ("schedule", "placement"):
        doc.pop(key, None)
    titles = [s.title for s in build_report(doc).sections]
    assert titles == ["Scenario", "Deployment", "Plan degrees", "Predicted performance", "Per-device memory",
                      "Per-layer time", "Assumptions and sources"]
    doc["placement"] = {"method": "cpsat", "num_devices": 3, "devices_per_node": 3, "slots": 3, "layers": [3, 4],
                        "relative_load": [[1.0, 0.9, 1.1], [1.2, 0.8, 1.0]], "mean_imbalance": 1.15,
                        "worst_imbalance": 1.2, "source": "hand-made"}
    html = to_html(doc)
    assert 'data-chart="placement-heatmap"' in html and "layer 4, device 1: 0.800" in html


def test_a_document_its_model_rejects_does_not_render():
    doc = document("evaluate")
    del doc["device"]  # required
    with pytest.raises(ValueError, match="device"):
        to_html(doc)
    doc = document("schedule")
    doc["layers"]["moe"]["solver"]["status"] = "DONE"
    with pytest.raises(ValueError, match="status"):
        to_markdown(doc)


def test_unknown_schema_names_the_value_and_the_accepted_ones():
    with pytest.raises(ValueError, match=r"schema: got 'moeplan.nope/9'; accepted: moeplan.evaluate/2"):
        to_html({"schema": "moeplan.nope/9"})


@pytest.mark.parametrize("ext", [".json", ".yaml", ".yml", ".md", ".html"])
def test_write_export_every_format(tmp_path, ext):
    doc = document("schedule")
    out = write_export(tmp_path / f"r{ext}", doc)
    text = out.read_text()
    assert "DeepSeek-V3" in text
    assert [p.name for p in tmp_path.iterdir()] == [f"r{ext}"]  # no temporary file left


def test_write_export_fails_cleanly(tmp_path):
    target = tmp_path / "r.html"
    target.write_text("old")
    with pytest.raises(ValueError, match="schema"):
        write_export(target, {"schema": "bad"})  # rendering fails before anything is written
    assert target.read_text() == "old"
    with pytest.raises(ExportError, match=r"got '.*r.pdf'; accepted: a file ending in .json, .yaml, .yml, .md"):
        write_export(tmp_path / "r.pdf", document("schedule"))
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(ExportError, match="dir.md"):
        write_export(tmp_path / "dir.md", document("schedule"))  # the rename fails: the temporary file goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.md", "r.html"]


@pytest.mark.parametrize("command", [["evaluate", SCENARIO], ["plan", SCENARIO], ["schedule", SCENARIO],
                                     ["place", SCENARIO, "--expert-load", "missing.csv"]])
def test_cli_rejects_a_bad_export_before_any_work(tmp_path, monkeypatch, command):
    def no_work(path):  # noqa: ANN001, ANN202
        raise AssertionError("the scenario was loaded before --export was checked")

    monkeypatch.setattr("planner.cli.app.load", no_work)
    for bad in (tmp_path / "report.pdf", tmp_path / "missing" / "report.html"):
        res = CliRunner().invoke(main, command + ["--export", str(bad)])
        assert res.exit_code == 2, res.output
        assert "--export" in res.output and str(bad) in res.output and ".html" in res.output
        assert not bad.exists()


def test_cli_evaluate_export_needs_one_scenario(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", SCENARIO, SCENARIO, "--export", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "one scenario" in res.output
