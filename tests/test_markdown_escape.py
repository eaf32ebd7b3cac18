"""Markdown export writes user text (scenario name, model id, paths) as literal text: no live HTML, comments,
links or extra table columns in a Markdown viewer (issue 12, item 8)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from click.testing import CliRunner
from markdown_it import MarkdownIt

from planner.cli import main
from planner.render.markdown import _cell, _text

ROOT = Path(__file__).resolve().parents[1]
DEEPSEEK_CONFIG = ROOT / "planner" / "catalog" / "hf_configs" / "DeepSeek-V3.json"
HOSTILE = ("<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
           "<javascript:alert(4)> <!-- a | b || c \\| d `code` &lt;x&gt;")
MODEL_ID = "m<img src=x onerror=alert(5)>|[y](javascript:alert(6))<!--"


def export_markdown(tmp: Path) -> str:
    shutil.copy(DEEPSEEK_CONFIG, tmp / f"{MODEL_ID}.json")
    doc = {"name": HOSTILE, "description": HOSTILE,
           "model": {"hf_config": f"{MODEL_ID}.json", "weight_precision": "fp8", "kv_precision": "bf16"},
           "cluster": {"device": "h200_sxm", "nodes": 2, "devices_per_node": 8},
           "workload": {"input_tokens": 4000, "output_tokens": 1000, "prefill_tokens_per_device": 8192,
                        "slo": {"ttft": "2 s", "tpot": "50 ms"}},
           "plan": "attn_dp=16,moe_ep=16,moe_tp=1"}
    scenario = tmp / "s.yaml"
    scenario.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    out = tmp / "x.md"
    res = CliRunner().invoke(main, ["evaluate", str(scenario), "--export", str(out)])
    assert res.exit_code == 0, res.output
    return out.read_text(encoding="utf-8")


def rendered(md: str) -> str:
    """HTML a viewer that allows raw HTML (CommonMark + GFM tables) makes of ``md``."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(md)


def cells(line: str) -> list[str]:
    """Cells of a table row, split on pipes not escaped by a backslash."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_hostile_scenario_name_and_model_id_render_as_text(tmp_path):
    md = export_markdown(tmp_path)
    html = rendered(md)
    for live in ("<script", "<img", "<!--", "<a ", "href="):
        assert live not in html, live
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, not run
    # the name is in the title and the scenario table; the model id in the table: every occurrence escaped
    assert md.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2 and "&lt;img src=x onerror=alert(5)&gt;" in md
    for line in (x for x in md.splitlines() if "onerror" in x):  # no bracket or backtick left unescaped
        assert not re.search(r"(?<!\\)[\[\]`]", line), line
    blocks: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    assert len(blocks) > 2
    for block in (b for b in blocks if b):
        assert len({len(cells(row)) for row in block}) == 1, block  # pipes in a cell make no extra column


def test_text_escapes_hand_checked():
    # each markup character becomes its entity or a backslash escape; plain text is unchanged
    assert _text("a <b> & [c](d) `e` \\") == "a &lt;b&gt; &amp; \\[c\\](d) \\`e\\` \\\\"
    assert _text("line\nbreak\r<!--") == "line break &lt;!--"
    assert _text("DeepSeek-V3 on 16 x H200 (chosen, off the front)") == "DeepSeek-V3 on 16 x H200 (chosen, off the front)"
    assert _cell("a|b") == "a\\|b"
