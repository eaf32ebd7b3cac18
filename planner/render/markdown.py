"""Markdown report of any moeplan document: the same sections as the HTML report, charts as tables.

Every piece of text is written as literal inline text (:func:`_text`): a hostile scenario name or model id cannot
become HTML, a comment, a link or a table column in a Markdown viewer.

``to_markdown(doc)`` dispatches on the document's ``schema`` (:func:`planner.render.report_build.build_report`).
"""

from __future__ import annotations

import re
from typing import Any

from planner.documents.base import Document
from planner.render.report_build import build_report
from planner.render.sections import Chart, Report, Table

_ESCAPES = {"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]", "`": "\\`"}
"""Characters of user text (scenario names, model ids, paths) that Markdown would turn into markup: ``<`` ``>``
``&`` open raw HTML (``<script>``, ``<img onerror>``, ``<!--``) or entities and become entities; brackets
(links, images, ``javascript:`` targets) and backticks are backslash-escaped, and the backslash itself."""


def _text(text: str) -> str:
    """``text`` as literal Markdown inline text on one line (control characters become spaces)."""
    flat = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    return "".join(_ESCAPES.get(ch, ch) for ch in flat)


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")


_NUMERIC = re.compile(r"^[-+]?[\d,.]+(\s?[%x]|\s?[a-zµA-Z/]{1,8})?$")
"""A number, optionally with a unit or a percent sign (the HTML report's rule for right-aligned cells)."""


def _align(t: Table, col: int) -> str:
    """``---:`` (right-aligned) for a column whose every non-empty cell is a number, else ``---``."""
    cells = [row[col] for row in t.rows if col < len(row) and row[col] not in ("", "-")]
    return "---:|" if cells and all(_NUMERIC.match(c) for c in cells) else "---|"


def _table(t: Table) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in t.headers) + " |",
             "|" + "".join(_align(t, i) for i in range(len(t.headers)))]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return lines + [""]


def render(report: Report) -> str:
    lines = [f"# {_text(report.title)}", "", f"_{_text(report.schema)} document_", ""]
    for s in report.sections:
        lines += [f"## {_text(s.title)}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                lines += _table(b)
            elif isinstance(b, Chart):
                lines += [f"### {_text(b.title)}", ""] + _table(b.table)
            else:
                lines += [_text(b), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def to_markdown(doc: Document | dict[str, Any]) -> str:
    """Markdown of an evaluate, plan, schedule, place or compare document."""
    return render(build_report(doc))
