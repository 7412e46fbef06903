"""The report in a real headless browser (Debian's chromium driven by Playwright): no console errors,
sorting and filtering work, and a screenshot is saved to build/report-screenshot.png for people to look at.

Skips with a message when chromium or the playwright package is missing; .ci/run installs both.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from reports.render import render_report
from tests.reports import fixtures

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "report-screenshot.png"
# As root on a closed network: no sandbox (root), no GPU, and nothing that phones home.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    index = render_report([fixtures.write(out / "fixture.jsonl")], out / "site")
    errors: list[str] = []
    with sync_api.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1680, "height": 1000},
        )
        tab = browser.new_page()
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(index.as_uri())
        tab.wait_for_load_state("load")
        tab.errors = errors
        yield tab
        browser.close()


def _column(page, table: str, header: str) -> list[str]:
    index = page.locator(f"#{table} thead th").all_inner_texts().index(header)
    return page.eval_on_selector_all(
        f"#{table} tbody tr:not([hidden])", f"rows => rows.map(r => r.cells[{index}].getAttribute('data-v'))"
    )


def test_no_console_errors(page):
    assert page.title() == "SegBench leaderboard"
    assert page.errors == []


def test_sort_by_clicking_a_header(page):
    header = page.locator("#board-realtime thead th", has_text="p50 (ms)")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    values = _column(page, "board-realtime", "p50 (ms)")
    numbers = [float(v) for v in values if v]
    assert numbers == sorted(numbers) and len(numbers) == 5  # 3 cells on the CPU, 2 on the GPU
    assert values[-2:] == ["", ""]  # the failed cells (no latency) sort last
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    numbers = [float(v) for v in _column(page, "board-realtime", "p50 (ms)") if v]
    assert numbers == sorted(numbers, reverse=True)
    page.locator("#board-realtime thead th", has_text="model").first.click()
    models = page.locator("#board-realtime tbody tr td:first-child").all_inner_texts()
    assert models == sorted(models)


def test_filter_by_device_hides_rows(page):
    rows = page.locator("#board-realtime tbody tr")
    assert page.locator("#filters").is_visible()
    total = rows.count()
    page.select_option("#filter-device", "cuda")
    visible = page.locator("#board-realtime tbody tr:visible")
    assert 0 < visible.count() < total
    assert set(
        page.eval_on_selector_all("#board-realtime tbody tr:visible", "rs => rs.map(r => r.dataset.device)")
    ) == {"cuda"}
    assert page.locator("#board-realtime-count").inner_text() == f"{visible.count()} of {total} rows shown"
    assert page.locator("#board-backbone tbody tr:visible").count() == 0  # mobilenetv2 was only on the CPU
    page.select_option("#filter-device", "")
    assert page.locator("#board-realtime tbody tr:visible").count() == total
    assert page.errors == []


def test_screenshot(page):
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert SCREENSHOT.stat().st_size > 10_000
