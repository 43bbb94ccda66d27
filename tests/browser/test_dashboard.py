"""The dashboard (app/app.py) for real: `reflex run --env prod` of the repository root on a fresh
SQLite database of its own, driven by Chromium, checked against the HTTP API it mounts.

Two environments, each its own database: the example jobs on an empty database (most tests), then
10,000 seeded runs (the tests at the end of the module; the session fixture stops the first
instance before starting the second, so keep them last).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest

from .conftest import ReflexServerFactory, require_playwright
from .reflex_server import REPO_ROOT, ReflexServer

require_playwright()
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

API = "/api/durably"
SEEDED_RUNS = 10_000
PAGE_SIZE = 20  # app/app.py: use_runs(page_size=20)
FINISHED = ("completed", "failed", "cancelled")
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


# -- fixtures and helpers ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dashboard_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("dashboard-db") / "durably.db"
    return {"DURABLY_DB_URL": f"sqlite:///{path}", "DURABLY_APP": "app.jobs:durably"}


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
def dashboard(page: Page, reflex_server: ReflexServerFactory, dashboard_env: dict[str, str]) -> ReflexServer:
    return reflex_server(REPO_ROOT, env=dashboard_env)


@pytest.fixture
def seeded_dashboard(page: Page, reflex_server: ReflexServerFactory, seeded_env: dict[str, str]) -> ReflexServer:
    return reflex_server(REPO_ROOT, env=seeded_env)


def api_get(server: ReflexServer, path: str) -> Any:
    with urllib.request.urlopen(server.url(API + path), timeout=30) as response:
        return json.loads(response.read())


def api_post(server: ReflexServer, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        server.url(API + path), data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def trigger(server: ReflexServer, job_name: str, input: dict[str, Any] | None = None) -> str:
    """Trigger a run as another client would (over HTTP, not through the page); its id."""
    return api_post(server, "/trigger", {"jobName": job_name, "input": input or {}})["runId"]


def run_status(server: ReflexServer, run_id: str) -> str | None:
    try:
        return api_get(server, f"/run?runId={run_id}")["status"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def wait_for_status(server: ReflexServer, run_id: str, statuses: tuple[str, ...], timeout: float = 60) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        status = run_status(server, run_id)
        if status in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def all_runs(server: ReflexServer) -> list[dict[str, Any]]:
    return api_get(server, "/runs?limit=100")


def wait_until_settled(server: ReflexServer, timeout: float = 90) -> list[dict[str, Any]]:
    """The runs once none is pending or running (runs of other tests may still be going)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = all_runs(server)
        if all(run["status"] in FINISHED for run in runs):
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"runs still going after {timeout}s: {[(r['jobName'], r['status']) for r in runs]}")
        time.sleep(0.5)


def row(page: Page, run_id: str):  # noqa: ANN201  (a Locator)
    return page.locator(f".durably-run-row[data-run-id='{run_id}']")


def header_status(page: Page):  # noqa: ANN201  (the run page's status badge)
    return page.locator(".durably-run-detail .durably-status").first


def wait_for_live_table(page: Page) -> None:
    """The runs page has loaded its first page and follows the runs stream."""
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    expect(page.locator(".durably-run-row").first.or_(page.locator(".durably-runs-empty"))).to_be_visible()


# -- one run, from its page ---------------------------------------------------------------------------
def test_a_job_triggered_from_its_form_is_followed_live_to_completion(page: Page, dashboard: ReflexServer) -> None:
    page.goto(dashboard.url("/jobs"))
    card = page.locator("#job-import-csv")
    page.locator("#trigger-import-csv-seconds_per_row").fill("1")  # five rows: about five seconds
    card.get_by_role("button", name="Trigger").click()

    card.locator(".open-run").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9A-Z]{26}/?$"))
    run_id = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(header_status(page)).to_have_attribute("data-status", "running")

    progress = page.locator(".durably-run-detail .durably-progress")
    seen: list[str] = []
    for _ in range(150):  # bounded: ~30 s at most
        if header_status(page).get_attribute("data-status") != "running":
            break
        for text in progress.all_inner_texts():  # no waiting: the bar goes away when the run ends
            if (match := re.search(r"(\d) of 5 rows", text)) and (not seen or seen[-1] != match.group(1)):
                seen.append(match.group(1))
        page.wait_for_timeout(200)
    assert len(seen) >= 2, f"progress did not move while the page watched: {seen}"
    assert seen == sorted(seen), seen

    expect(header_status(page)).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.locator(".durably-run-output")).to_contain_text('"imported": 4')
    expect(page.locator(".durably-run-output")).to_contain_text("Alan Turing")
    expect(page.locator(".durably-step[data-status='completed']")).to_have_count(5)
    expect(page.locator(".durably-log-line")).to_have_count(5)
    expect(page.locator(".durably-log-line[data-level='warn']")).to_contain_text("no email address")
    page.locator(".durably-log-filter").click()  # the level filter keeps only the warning
    page.get_by_role("option", name="warn", exact=True).click()
    expect(page.locator(".durably-log-line")).to_have_count(1)
    expect(page.locator(".durably-log-line")).to_contain_text("skipped Alan Turing")
    assert run_status(dashboard, run_id) == "completed"


def test_a_failed_run_retried_from_its_page_completes_without_running_done_steps_again(
    page: Page, dashboard: ReflexServer
) -> None:
    run_id = trigger(dashboard, "publish-report")
    assert wait_for_status(dashboard, run_id, FINISHED) == "failed"
    fetched_before = {step["name"]: step for step in api_get(dashboard, f"/steps?runId={run_id}")}["fetch-figures"]

    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(header_status(page)).to_have_attribute("data-status", "failed")
    expect(page.locator(".durably-run-error").first).to_contain_text("ran out of ink")
    expect(page.locator(".durably-step[data-status='failed']")).to_contain_text("render")

    page.locator(".durably-run-detail .durably-retry").click()
    expect(header_status(page)).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.locator(".durably-run-error")).to_have_count(0)
    expect(page.locator(".durably-run-output")).to_contain_text("https://reports.example.com/")

    steps = page.locator(".durably-step")
    expect(steps).to_have_count(3)
    names = [steps.nth(i).locator(".rt-Text").first.inner_text() for i in range(3)]
    assert names == ["fetch-figures", "render", "publish"], names
    expect(page.locator(".durably-step[data-status='completed']")).to_have_count(3)
    # fetch-figures kept its first (only) execution: same step record, same times.
    fetched_after = {step["name"]: step for step in api_get(dashboard, f"/steps?runId={run_id}")}["fetch-figures"]
    assert fetched_after["id"] == fetched_before["id"]
    assert fetched_after["startedAt"] == fetched_before["startedAt"]
    assert fetched_after["completedAt"] == fetched_before["completedAt"]
    assert [step["name"] for step in api_get(dashboard, f"/steps?runId={run_id}")].count("fetch-figures") == 1
    expect(page.locator(".durably-log-line").filter(has_text="published")).to_have_count(1)


def test_a_running_job_cancelled_from_the_run_table_ends_cancelled(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "slow-cleanup", {"batches": 600, "seconds_per_batch": 0.1})
    assert wait_for_status(dashboard, run_id, ("running", *FINISHED)) == "running"

    page.goto(dashboard.url("/"))
    wait_for_live_table(page)
    expect(row(page, run_id)).to_have_attribute("data-status", "running")
    row(page, run_id).locator(".durably-cancel").click()
    expect(row(page, run_id)).to_have_attribute("data-status", "cancelled")
    expect(row(page, run_id).locator(".durably-cancel")).to_be_disabled()
    assert run_status(dashboard, run_id) == "cancelled"
    steps = api_get(dashboard, f"/steps?runId={run_id}")
    assert len(steps) < 600, "the run went on to the end"


def test_a_running_job_cancelled_from_its_page_ends_cancelled(page: Page, dashboard: ReflexServer) -> None:
    # Two batches a second: the page follows every step and progress event of the run.
    run_id = trigger(dashboard, "slow-cleanup", {"batches": 120, "seconds_per_batch": 0.5})
    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(header_status(page)).to_have_attribute("data-status", "running")
    expect(page.locator(".durably-step").first).to_be_visible()
    page.locator(".durably-run-detail .durably-cancel").click()
    expect(header_status(page)).to_have_attribute("data-status", "cancelled", timeout=60_000)
    expect(page.locator(".durably-run-detail .durably-retry")).to_be_enabled()
    assert run_status(dashboard, run_id) == "cancelled"


def test_deleting_a_finished_run_from_the_table_asks_first_then_removes_its_row(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "send-newsletter", {"subject": "Delete me"})
    assert wait_for_status(dashboard, run_id, FINISHED) == "completed"
    page.goto(dashboard.url("/"))
    wait_for_live_table(page)

    row(page, run_id).locator(".durably-delete").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete this run?")
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    expect(row(page, run_id)).to_be_visible()
    assert run_status(dashboard, run_id) == "completed"

    row(page, run_id).locator(".durably-delete").click()
    expect(dialog).to_be_visible()
    page.locator(".durably-confirm-delete").click()
    expect(row(page, run_id)).to_have_count(0)
    assert run_status(dashboard, run_id) is None


def test_deleting_a_finished_run_from_its_page_goes_back_to_the_runs(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "send-newsletter", {"subject": "Delete me too"})
    assert wait_for_status(dashboard, run_id, FINISHED) == "completed"
    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(header_status(page)).to_have_attribute("data-status", "completed")

    page.locator(".durably-run-detail .durably-delete").click()
    expect(page.get_by_role("alertdialog")).to_be_visible()
    page.locator(".durably-confirm-delete").click()
    expect(page).to_have_url(re.compile(r"^[^?#]*://[^/]+/?$"))
    wait_for_live_table(page)
    expect(row(page, run_id)).to_have_count(0)
    assert run_status(dashboard, run_id) is None


# -- the trigger form -------------------------------------------------------------------------------------
def test_invalid_form_input_shows_the_field_error_and_triggers_nothing(page: Page, dashboard: ReflexServer) -> None:
    before = len(all_runs(dashboard))
    page.goto(dashboard.url("/jobs"))

    newsletter = page.locator("#job-send-newsletter")
    page.locator("#trigger-send-newsletter-subject").fill("x")
    newsletter.get_by_role("button", name="Trigger").click()
    subject_field = page.locator(".durably-form-field").filter(has=page.locator("#trigger-send-newsletter-subject"))
    expect(subject_field.locator(".durably-field-error")).to_contain_text("at least 3 characters")

    cleanup = page.locator("#job-slow-cleanup")
    page.locator("#trigger-slow-cleanup-seconds_per_batch").fill("soon")
    cleanup.get_by_role("button", name="Trigger").click()
    per_batch_field = page.locator(".durably-form-field").filter(has=page.locator("#trigger-slow-cleanup-seconds_per_batch"))
    expect(per_batch_field.locator(".durably-field-error")).to_be_visible()
    expect(cleanup.locator(".durably-field-error")).to_have_count(1)  # batches (valid) has none

    expect(newsletter.locator(".open-run")).to_have_count(0)
    expect(cleanup.locator(".open-run")).to_have_count(0)
    page.wait_for_timeout(1000)  # a run triggered anyway would be stored by now
    assert len(all_runs(dashboard)) == before

    # Corrected, the same form triggers.
    page.locator("#trigger-send-newsletter-subject").fill("Autumn news")
    newsletter.get_by_role("button", name="Trigger").click()
    expect(newsletter.locator(".open-run")).to_be_visible()
    expect(subject_field.locator(".durably-field-error")).to_have_count(0)
    assert len(all_runs(dashboard)) == before + 1


# -- the runs page ------------------------------------------------------------------------------------------
def test_a_run_triggered_by_another_client_appears_in_the_table_without_a_reload(page: Page, dashboard: ReflexServer) -> None:
    page.goto(dashboard.url("/"))
    wait_for_live_table(page)
    page.evaluate("window.__sameDocument = true")

    run_id = trigger(dashboard, "send-newsletter", {"subject": "From elsewhere"})
    expect(row(page, run_id)).to_be_visible()
    expect(page.locator(".durably-run-row").first).to_have_attribute("data-run-id", run_id)  # newest first
    expect(row(page, run_id)).to_have_attribute("data-status", "completed", timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"


def test_status_counts_match_the_stored_runs_and_filter_the_table(page: Page, dashboard: ReflexServer) -> None:
    failed = trigger(dashboard, "publish-report", {"title": "Counted"})  # fails at render: at least one failed run
    assert wait_for_status(dashboard, failed, FINISHED) == "failed"
    runs = wait_until_settled(dashboard)
    counts = Counter(run["status"] for run in runs)
    assert len(runs) < PAGE_SIZE, "this test expects every run on the first page"

    page.goto(dashboard.url("/"))
    wait_for_live_table(page)
    expect(page.locator(".durably-status-count[data-status='all'] .durably-count")).to_have_text(str(len(runs)))
    for status in ("pending", "running", *FINISHED):
        expect(page.locator(f".durably-status-count[data-status='{status}'] .durably-count")).to_have_text(str(counts[status]))
    expect(page.locator(".durably-run-row")).to_have_count(len(runs))

    # The status select.
    page.locator(".durably-status-filter").click()
    page.get_by_role("option", name="failed", exact=True).click()
    expect(page.locator(".durably-status-filter")).to_contain_text("failed")
    expect(page.locator(".durably-run-row")).to_have_count(counts["failed"])
    expect(page.locator(".durably-run-row:not([data-status='failed'])")).to_have_count(0)
    expect(row(page, failed)).to_be_visible()

    # A count card is a filter too; "all runs" clears it.
    page.locator(".durably-status-count[data-status='completed']").click()
    expect(page.locator(".durably-status-filter")).to_contain_text("completed")
    expect(page.locator(".durably-run-row")).to_have_count(counts["completed"])
    expect(page.locator(".durably-run-row:not([data-status='completed'])")).to_have_count(0)
    page.locator(".durably-status-count[data-status='all']").click()
    expect(page.locator(".durably-run-row")).to_have_count(len(runs))

    # Counts follow new runs live.
    trigger(dashboard, "send-newsletter", {"subject": "One more"})
    expect(page.locator(".durably-status-count[data-status='all'] .durably-count")).to_have_text(str(len(runs) + 1))


def test_the_theme_toggle_switches_between_light_and_dark(page: Page, dashboard: ReflexServer) -> None:
    page.goto(dashboard.url("/"))
    wait_for_live_table(page)
    html = page.locator("html")
    expect(html).to_have_class(re.compile(r"\blight\b"))
    light_background = page.evaluate("getComputedStyle(document.querySelector('.radix-themes')).backgroundColor")

    page.locator("#color-mode").click()
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    expect(page.locator(".radix-themes").first).to_have_class(re.compile(r"\bdark\b"))
    dark_background = page.evaluate("getComputedStyle(document.querySelector('.radix-themes')).backgroundColor")
    assert dark_background != light_background

    page.goto(dashboard.url("/jobs"))  # the choice is kept across page loads
    expect(page.locator("#job-import-csv")).to_be_visible()
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    page.goto(dashboard.url("/"))
    expect(html).to_have_class(re.compile(r"\bdark\b"))
    wait_for_live_table(page)  # hydrated: a click before that would be lost (the HTML is prerendered)
    page.locator("#color-mode").click()
    expect(html).to_have_class(re.compile(r"\blight\b"))


# -- 10,000 stored runs (a second instance, on a seeded database: keep these last) ----------------------
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
    print(f"\n[dashboard] {SEEDED_RUNS:,} runs: navigation start → first run row {in_page:.0f} ms (around goto: {outside:.0f} ms)")
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
