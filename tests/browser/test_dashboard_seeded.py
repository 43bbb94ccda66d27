"""The dashboard with 10,000 stored runs: its first page shows quickly and pages through them. A
database seeded in bulk (bench.dashboard.seed_runs) and an instance of the app of its own (the
session's `reflex_server` stops the shared one first: this module runs after the others).
"""

from __future__ import annotations

import time

import pytest

from .conftest import ReflexServerFactory, require_playwright
from .dashboard_helpers import PAGE_SIZE, api_get
from .reflex_server import REPO_ROOT, ReflexServer

require_playwright()
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

SEEDED_RUNS = 10_000
# Records, in the page, when the first run row appears (performance.now(): ms since navigation start).
FIRST_ROW_OBSERVER = """
(() => {
  const seen = () => {
    if (window.__firstRowAt === undefined && document.querySelector('.durably-run-row')) {
      window.__firstRowAt = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, {childList: true, subtree: true});
})();
"""


@pytest.fixture(scope="session")
def seeded_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from bench.dashboard import seed_runs

    path = tmp_path_factory.mktemp("dashboard-seeded-db") / "durably.db"
    url = f"sqlite:///{path}"
    started = time.perf_counter()
    seed_runs(url, SEEDED_RUNS)
    print(f"\n[dashboard] seeded {SEEDED_RUNS:,} runs in {time.perf_counter() - started:.1f}s")
    return {"DURABLY_DB_URL": url, "DURABLY_APP": "app.jobs:durably"}


@pytest.fixture
def seeded_dashboard(page: Page, reflex_server: ReflexServerFactory, seeded_env: dict[str, str]) -> ReflexServer:
    return reflex_server(REPO_ROOT, env=seeded_env)


def _first_page_load(page: Page, server: ReflexServer) -> tuple[float, float]:
    """Open the runs page; (ms from navigation start to the first run row in the DOM, ms measured
    around `goto` until a row is visible)."""
    page.add_init_script(FIRST_ROW_OBSERVER)
    started = time.perf_counter()
    page.goto(server.url("/"), wait_until="commit")
    expect(page.locator(".durably-run-row").first).to_be_visible(timeout=60_000)
    outside = (time.perf_counter() - started) * 1000
    page.wait_for_function("window.__firstRowAt !== undefined")
    return page.evaluate("window.__firstRowAt"), outside


def test_ten_thousand_runs_show_their_first_page_quickly(page: Page, seeded_dashboard: ReflexServer) -> None:
    warmup = page.context.browser.new_page()  # the first load of a fresh server pays for its caches
    try:
        warmup.goto(seeded_dashboard.url("/"))
        expect(warmup.locator(".durably-run-row").first).to_be_visible(timeout=60_000)
    finally:
        warmup.close()

    in_page, outside = _first_page_load(page, seeded_dashboard)
    print(
        f"\n[dashboard] {SEEDED_RUNS:,} runs: navigation start → first run row {in_page:.0f} ms (around goto: {outside:.0f} ms)"
    )
    expect(page.locator(".durably-run-row")).to_have_count(PAGE_SIZE)
    expect(page.get_by_text(f"Runs 1–{PAGE_SIZE}", exact=True)).to_be_visible()
    expect(page.locator(".durably-status-count[data-status='all'] .durably-count")).to_have_text(str(SEEDED_RUNS))
    newest = api_get(seeded_dashboard, f"/runs?limit={PAGE_SIZE}")
    expect(page.locator(".durably-run-row").first).to_have_attribute("data-run-id", newest[0]["id"])
    assert in_page < 5000, f"first page of {SEEDED_RUNS:,} runs took {in_page:.0f} ms"


def test_ten_thousand_runs_can_be_paged_through(page: Page, seeded_dashboard: ReflexServer) -> None:
    page.goto(seeded_dashboard.url("/"))
    rows = page.locator(".durably-run-row")
    expect(rows).to_have_count(PAGE_SIZE, timeout=60_000)
    expected = [run["id"] for run in api_get(seeded_dashboard, f"/runs?limit={3 * PAGE_SIZE}")]

    page.locator(".durably-next").click()
    expect(page.get_by_text(f"Runs {PAGE_SIZE + 1}–{2 * PAGE_SIZE}", exact=True)).to_be_visible()
    expect(page.get_by_text("Page 2", exact=True)).to_be_visible()
    expect(page.get_by_text("paused", exact=True)).to_be_visible()  # pages after the first are not live
    expect(rows.first).to_have_attribute("data-run-id", expected[PAGE_SIZE])
    expect(rows).to_have_count(PAGE_SIZE)

    page.locator(".durably-next").click()
    expect(page.get_by_text(f"Runs {2 * PAGE_SIZE + 1}–{3 * PAGE_SIZE}", exact=True)).to_be_visible()
    expect(rows.first).to_have_attribute("data-run-id", expected[2 * PAGE_SIZE])
    expect(rows.last).to_have_attribute("data-run-id", expected[3 * PAGE_SIZE - 1])

    page.locator(".durably-prev").click()
    page.locator(".durably-prev").click()
    expect(page.get_by_text(f"Runs 1–{PAGE_SIZE}", exact=True)).to_be_visible()
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    expect(page.locator(".durably-prev")).to_be_disabled()

    # A filter goes back to the first page of its runs.
    page.locator(".durably-next").click()
    expect(page.get_by_text("Page 2", exact=True)).to_be_visible()
    page.locator(".durably-status-filter").click()
    page.get_by_role("option", name="failed", exact=True).click()
    expect(page.get_by_text("Page 1", exact=True)).to_be_visible()
    expect(rows).to_have_count(PAGE_SIZE)
    expect(page.locator(".durably-run-row:not([data-status='failed'])")).to_have_count(0)
