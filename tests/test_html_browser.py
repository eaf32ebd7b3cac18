"""Every kind of HTML report opened in headless Chromium with the network off: each chart renders, no errors.

Chromium is Debian's (``apt-get install chromium``), driven by the ``playwright`` Python package; playwright's
own browser downloads are not used. Without /usr/bin/chromium the test skips, unless MOEPLAN_REQUIRE_BROWSER is
set (``.ci/run`` sets it), so CI can never skip it silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _report_docs import KINDS, chart_title, document, expected, html_path

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = bool(os.environ.get("MOEPLAN_REQUIRE_BROWSER"))

if REQUIRED:
    assert CHROMIUM.exists(), f"MOEPLAN_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install chromium)"
    from playwright.sync_api import sync_playwright  # a test extra: an ImportError here must fail, not skip
else:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); set MOEPLAN_REQUIRE_BROWSER=1 to make "
                    "this an error instead of a skip", allow_module_level=True)
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (a test extra)"
                                          ).sync_playwright


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


def _open(browser, path: Path):  # noqa: ANN001, ANN202
    """``path`` in a fresh offline context; every non-file request is aborted and recorded, as are console errors,
    page errors and failed requests."""
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    attempted: list[str] = []
    errors: list[str] = []

    def route(r):  # noqa: ANN001, ANN202
        if r.request.url.startswith("file:"):
            return r.continue_()
        attempted.append(r.request.url)
        return r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    return context, page, attempted, errors


def test_the_network_trap_sees_external_requests(browser, tmp_path):
    page_file = tmp_path / "leaky.html"
    page_file.write_text('<!DOCTYPE html><html><head><title>x</title><link rel="stylesheet" '
                         'href="https://cdn.example.invalid/a.css"></head><body>'
                         '<img src="http://img.example.invalid/b.png"></body></html>')
    context, _, attempted, errors = _open(browser, page_file)
    context.close()
    assert sorted(attempted) == ["http://img.example.invalid/b.png", "https://cdn.example.invalid/a.css"]
    assert errors  # the aborted requests show up as failures too


@pytest.mark.parametrize("kind", KINDS)
def test_report_renders_offline_without_errors(browser, kind, tmp_path):
    doc, path = document(kind), html_path(kind)
    titles, charts = expected(doc)
    context, page, attempted, errors = _open(browser, path)
    assert page.title() == page.locator("h1").inner_text()
    assert page.locator("section > h2").all_inner_texts() == titles
    figures = page.locator("[data-chart]")
    assert sorted(figures.evaluate_all("els => els.map(e => e.dataset.chart)")) == sorted(charts)
    for cid in charts:
        fig = page.locator(f'[data-chart="{cid}"]')
        assert fig.locator("h3").inner_text() == chart_title(cid)
        svg = fig.locator("svg")
        assert svg.count() == 1
        box = svg.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, (cid, box)
        shapes = svg.locator("rect, circle, polyline, line").count()
        assert shapes > 3, (cid, shapes)
        drawn = svg.locator("text.chart-title")
        assert drawn.count() == 1 and (drawn.text_content() or "").strip(), cid
        heading = drawn.bounding_box()
        assert heading is not None and heading["width"] > 20, (cid, heading)  # the SVG heading is drawn
        assert svg.locator("title").first.text_content() == drawn.text_content()
    shot = tmp_path / f"{kind}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    context.close()
    assert attempted == [], f"the {kind} report tried to load {attempted}"
    assert errors == [], errors


def test_html_of_a_disaggregated_plan_shows_both_pools(browser):
    doc, path = document("plan"), html_path("plan")
    dep = doc["chosen_breakdown"]["deployment"]
    assert dep["mode"] == "disaggregated"  # the bundled scenario's best deployment splits prefill and decode
    context, page, _, errors = _open(browser, path)
    headings = page.locator("section > h2").all_inner_texts()
    for pool in ("prefill", "decode"):
        for title in ("Predicted performance", "Per-device memory", "Per-layer time"):
            assert f"{title} ({pool} pool)" in headings
        assert page.locator(f'[data-chart="{pool}-memory"] svg').bounding_box()["height"] > 50
    section = page.locator("section#deployment")
    assert dep["text"] in section.inner_text()
    roles = section.locator("tbody tr td:first-child").all_inner_texts()
    assert roles == ["prefill", "decode"]
    context.close()
    assert errors == [], errors
