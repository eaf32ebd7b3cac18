"""Markdown report of any moeplan document: the same sections as the HTML report, charts as tables.

``to_markdown(doc)`` dispatches on the document's ``schema`` (:func:`planner.render.report_build.build_report`).
"""

from __future__ import annotations

from typing import Any

from planner.documents.base import Document
from planner.render.report_build import build_report
from planner.render.sections import Chart, Report, Table


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in t.headers) + " |", "|" + "---|" * len(t.headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return lines + [""]


def render(report: Report) -> str:
    lines = [f"# {report.title}", "", f"_{report.schema} document_", ""]
    for s in report.sections:
        lines += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                lines += _table(b)
            elif isinstance(b, Chart):
                lines += [f"### {b.title}", ""] + _table(b.table)
            else:
                lines += [b, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def to_markdown(doc: Document | dict[str, Any]) -> str:
    """Markdown of an evaluate, plan, schedule, place or compare document."""
    return render(build_report(doc))
