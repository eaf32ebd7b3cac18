"""Self-contained HTML report of any moeplan document: inline CSS, inline SVG charts, no script, no URL.

``to_html(doc)`` dispatches on the document's ``schema`` (:func:`planner.render.report_build.build_report`).
The page loads nothing: a Content-Security-Policy of ``default-src 'none'`` (inline styles only) makes that
explicit, so the file can be mailed, attached to a ticket or opened offline. Each chart sits in a
``<figure data-chart="...">`` with a visible ``<h3>`` title and its numbers in a collapsible table.
"""

from __future__ import annotations

import re
from typing import Any

from planner import __version__
from planner.documents.base import Document
from planner.render.report_build import build_report
from planner.render.sections import Chart, Report, Section, Table
from planner.render.svg import esc

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #222; margin: 0;
       background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 28px 48px; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 16px 0 6px; }
p.meta { color: #666; margin: 0 0 12px; }
nav ul { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 4px 14px; }
nav a { color: #2b5d9b; text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #e2e2e2; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fbfbfb; }
figure.chart { margin: 10px 0 18px; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
details { margin: 4px 0; }
summary { cursor: pointer; color: #555; }
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_NUMERIC = re.compile(r"^[-+]?[\d,.]+(\s?[%x]|\s?[a-zµA-Z/]{1,8})?$")


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _table(t: Table) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{esc(c)}</td>' if _NUMERIC.match(c) else f"<td>{esc(c)}</td>"
                                    for c in row) + "</tr>" for row in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart(c: Chart) -> str:
    return (f'<figure class="chart" data-chart="{esc(c.chart_id)}"><h3>{esc(c.title)}</h3>{c.svg}'
            f"<details><summary>data</summary>{_table(c.table)}</details></figure>")


def _section(s: Section, anchor: str) -> str:
    parts = [f'<section id="{anchor}"><h2>{esc(s.title)}</h2>']
    for b in s.blocks:
        parts.append(_table(b) if isinstance(b, Table) else _chart(b) if isinstance(b, Chart) else f"<p>{esc(b)}</p>")
    return "".join(parts) + "</section>"


def render(report: Report) -> str:
    """The HTML page of a built report (deterministic: the same report gives the same bytes)."""
    anchors: list[str] = []
    for s in report.sections:
        a = _slug(s.title)
        anchors.append(a if a not in anchors else f"{a}-{len(anchors)}")
    toc = "".join(f'<li><a href="#{a}">{esc(s.title)}</a></li>' for s, a in zip(report.sections, anchors,
                                                                                   strict=True))
    body = "\n".join(_section(s, a) for s, a in zip(report.sections, anchors, strict=True))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(report.title)}</title><style>{CSS}</style></head>\n<body><main>"
            f"<h1>{esc(report.title)}</h1><p class=\"meta\">{esc(report.schema)} document, "
            f"moeplan {esc(__version__)}</p><nav><ul>{toc}</ul></nav>\n{body}\n</main></body></html>\n")


def to_html(doc: Document | dict[str, Any]) -> str:
    """Self-contained HTML of an evaluate, plan, schedule, place or compare document."""
    return render(build_report(doc))
