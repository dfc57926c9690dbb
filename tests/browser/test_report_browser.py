"""The HTML report in a real browser: headless Chromium (/usr/bin/chromium) driven by Playwright.

Skipped when Chromium or Playwright is missing, except in CI (CI=true), where that is a failure.
Set SEMRSM_SCREENSHOT_DIR to keep the full-page screenshot.
"""

import os
import shutil
from pathlib import Path

import pytest
from reporting.report_tree import EXPECTED, write_outputs_tree

from semrsm.reporting.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI") == "true"


def _require(available: bool, reason: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (required in CI: .ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _require(CHROMIUM.is_file(), f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (pip install playwright==1.65.2)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def opened(browser, tmp_path):
    """The report of a tiny outputs tree opened in a page; network requests other than the file are recorded."""
    report = build_report(write_outputs_tree(tmp_path / "outputs"))
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    url = report.resolve().as_uri()
    requests, errors = [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="load")
    yield page, url, requests, errors
    context.close()


def column(page, table_name: str, header: str) -> list[str]:
    table = page.get_by_role("table", name=table_name)
    index = table.locator("th").all_inner_texts().index(header)
    return table.locator(f"tbody tr:visible td:nth-child({index + 1})").all_inner_texts()


def test_report_in_headless_chromium(opened, tmp_path):
    page, url, requests, errors = opened

    for claim, status in EXPECTED.items():
        label = page.locator(f"#claim-{claim} .badge")
        assert label.is_visible() and label.inner_text().lower() == status, claim
    page.locator("#claim-C4 summary").click()
    assert page.locator("#claim-C4 tr.fail").is_visible()

    for name in ("crops_separation.csv", "retrieval.csv", "class_probability.csv", "matchers.csv"):
        table = page.get_by_role("table", name=name)
        table.scroll_into_view_if_needed()
        assert table.is_visible() and table.locator("tbody tr").count() >= 4, name

    images = page.locator("figure img")
    assert images.count() == 4
    for index in range(images.count()):
        image = images.nth(index)
        image.scroll_into_view_if_needed()
        assert image.is_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0")

    scores = page.get_by_role("table", name="retrieval.csv").locator("th", has_text="f1_at_1")
    scores.click()
    ascending = [float(value) for value in column(page, "retrieval.csv", "f1_at_1")]
    assert ascending == sorted(ascending) and len(ascending) == 8
    assert scores.get_attribute("aria-sort") == "ascending"
    scores.click()
    descending = [float(value) for value in column(page, "retrieval.csv", "f1_at_1")]
    assert descending == sorted(ascending, reverse=True) and descending[0] == pytest.approx(0.53)

    table_id = page.get_by_role("table", name="retrieval.csv").get_attribute("id")
    search = page.locator(f'input.filter[data-table="{table_id}"]')
    search.fill("vit_tiny rbf")
    assert column(page, "retrieval.csv", "backbone") == ["vit_tiny", "vit_tiny"]
    assert search.locator("xpath=following-sibling::span[1]").inner_text() == "2 of 8 rows"

    assert errors == []
    assert [request for request in requests if request != url] == [], (
        "the report must make no network request"
    )

    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("SEMRSM_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / "report.png")
