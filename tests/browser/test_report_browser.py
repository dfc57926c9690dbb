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
    """The visible cells of a column, found by its header in the table's last header row."""
    table = page.get_by_role("table", name=table_name)
    index = table.locator("thead tr:last-child th").all_inner_texts().index(header)
    return table.locator(f"tbody tr:visible td:nth-child({index + 1})").all_inner_texts()


F1_TABLE = "F1@1 retrieval: semantic vs spatio-semantic RSM"
FIRST_SCREEN = {"width": 1920, "height": 1080}
# the verdicts and the three paper-style tables: all on the first screen, none scrolled
FIRST_SCREEN_TABLES = (
    "#verdicts table.verdicts",
    "#table-f1 table",
    "#table-correlation table",
    "#table-runtime table",
)


def test_report_in_headless_chromium(opened, tmp_path):
    page, url, requests, errors = opened

    for claim, status in EXPECTED.items():
        label = page.locator(f"#claim-{claim} .badge")
        assert label.is_visible() and label.inner_text().lower() == status, claim
        assert page.locator(f"#verdicts a[href='#claim-{claim}']").is_visible()
    page.locator("#claim-C4 summary").click()
    assert page.locator("#claim-C4 tr.fail").is_visible()

    # the banners name the data and models
    banner = page.locator("#table-f1 [data-banner]")
    assert banner.is_visible() and "a synthetic stand-in for EgoObjects" in banner.inner_text()
    crops = page.locator("#exp-translated_crops [data-banner]").first
    crops.scroll_into_view_if_needed()
    assert "resnet18_synthetic (trained here on synthetic data: 3 epoch(s)" in crops.inner_text()
    assert "1 failed" in page.locator("header").inner_text()

    for name in ("crops_separation.csv", "retrieval.csv", "class_probability.csv", "matchers.csv"):
        table = page.get_by_role("table", name=name)
        table.scroll_into_view_if_needed()
        assert table.is_visible() and table.locator("tbody tr").count() >= 4, name

    # every image loads: the thumbnails, and each full-size image in its dialog
    thumbs = page.locator("figure button.thumb img")
    full = page.locator("dialog.lightbox img.full")
    assert thumbs.count() == 4 and full.count() == 4
    loaded = "img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0"
    for index in range(thumbs.count()):
        thumb = thumbs.nth(index)
        thumb.scroll_into_view_if_needed()
        assert thumb.is_visible() and thumb.evaluate(loaded)
        assert full.nth(index).evaluate(loaded)

    # click to enlarge: the dialog opens on the full-size image, Escape closes it
    first = page.locator("figure").first
    first.locator("button.thumb").click()
    dialog = first.locator("dialog.lightbox")
    assert dialog.evaluate("d => d.open") and dialog.locator("img.full").is_visible()
    natural = dialog.locator("img.full").evaluate("img => img.naturalWidth")
    assert natural == int(dialog.locator("img.full").get_attribute("width"))
    assert natural > first.locator("button.thumb img").evaluate("img => img.naturalWidth")
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")

    # the paper-style pivot table sorts (by a column under a group header) and filters
    f1 = page.get_by_role("table", name=F1_TABLE)
    f1.scroll_into_view_if_needed()
    semantic = f1.locator("thead tr:last-child th", has_text="semantic").nth(1)  # cosine · semantic
    semantic.click()
    assert semantic.get_attribute("aria-sort") == "ascending"
    assert column(page, F1_TABLE, "backbone") == ["vit_tiny", "resnet18"]  # 0.46 < 0.53
    semantic.click()
    assert column(page, F1_TABLE, "backbone") == ["resnet18", "vit_tiny"]
    search = page.locator(f'input.filter[data-table="{f1.get_attribute("id")}"]')
    search.fill("vit_tiny")
    assert column(page, F1_TABLE, "backbone") == ["vit_tiny"]
    assert search.locator("xpath=following-sibling::span[1]").inner_text() == "1 of 2 rows"

    scores = page.get_by_role("table", name="retrieval.csv").locator("th", has_text="f1_at_1")
    scores.click()
    ascending = [float(value) for value in column(page, "retrieval.csv", "f1_at_1")]
    assert ascending == sorted(ascending) and len(ascending) == 8
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


def test_first_screen_holds_the_verdicts_and_the_paper_tables(opened):
    page, _, _, errors = opened
    page.set_viewport_size(FIRST_SCREEN)
    page.evaluate("window.scrollTo(0, 0)")
    for selector in FIRST_SCREEN_TABLES:
        table = page.locator(selector)
        assert table.count() == 1, selector
        box = table.bounding_box()
        assert box is not None and box["x"] >= 0 and box["y"] >= 0, selector
        right, bottom = box["x"] + box["width"], box["y"] + box["height"]
        assert right <= FIRST_SCREEN["width"] and bottom <= FIRST_SCREEN["height"], (selector, box)
        # shown whole: its box neither scrolls nor clips it
        wrap = table.locator("xpath=..")
        assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth && w.scrollHeight <= w.clientHeight"), (
            selector
        )
    assert page.evaluate("document.documentElement.scrollWidth") <= FIRST_SCREEN["width"]
    assert errors == []
    if target := os.environ.get("SEMRSM_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / "first_screen.png"))
