"""The dashboard (app/app.py) for real: `reflex run --env prod` of the repository root on a
SQLite database of the test session's, driven by Chromium, checked against the HTTP API it mounts: a run
followed live, retried, cancelled and deleted; the trigger form; the runs page's live table, counts
and theme. (Its rough edges, each fixed, are in test_dashboard_edges.py; 10,000 stored runs in
test_dashboard_seeded.py. The modules share one app: see dashboard_helpers.py.)
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from .conftest import ReflexServerFactory, require_playwright
from .dashboard_helpers import (
    FINISHED,
    PAGE_SIZE,
    all_runs,
    api_get,
    header_status,
    row,
    run_status,
    shared_dashboard,
    trigger,
    wait_for_live_table,
    wait_for_status,
    wait_until_settled,
)
from .reflex_server import ReflexServer

require_playwright()
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def dashboard(page: Page, reflex_server: ReflexServerFactory, tmp_path_factory: pytest.TempPathFactory) -> ReflexServer:
    return shared_dashboard(reflex_server, tmp_path_factory)


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
    expect(steps).to_have_count(4)  # render's failed attempt stays on the timeline beside the one that completed
    names = [steps.nth(i).locator(".rt-Text").first.inner_text() for i in range(4)]
    assert names == ["fetch-figures", "render", "render", "publish"], names
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
    expect(row(page, run_id).locator(".durably-cancel")).to_have_count(0)  # a cancelled run offers retry, delete
    expect(row(page, run_id).locator(".durably-retry")).to_be_enabled()
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


def test_deleting_a_finished_run_from_the_table_asks_first_then_removes_its_row(
    page: Page, dashboard: ReflexServer
) -> None:
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
    per_batch_field = page.locator(".durably-form-field").filter(
        has=page.locator("#trigger-slow-cleanup-seconds_per_batch")
    )
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
def test_a_run_triggered_by_another_client_appears_in_the_table_without_a_reload(
    page: Page, dashboard: ReflexServer
) -> None:
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

    def on_first_page(count: int) -> int:  # other tests' runs share this server
        return min(count, PAGE_SIZE)

    page.goto(dashboard.url("/"))
    wait_for_live_table(page)
    expect(page.locator(".durably-status-count[data-status='all'] .durably-count")).to_have_text(str(len(runs)))
    for status in ("pending", "running", *FINISHED):
        expect(page.locator(f".durably-status-count[data-status='{status}'] .durably-count")).to_have_text(
            str(counts[status])
        )
    expect(page.locator(".durably-run-row")).to_have_count(on_first_page(len(runs)))

    # The status select.
    page.locator(".durably-status-filter").click()
    page.get_by_role("option", name="failed", exact=True).click()
    expect(page.locator(".durably-status-filter")).to_contain_text("failed")
    expect(page.locator(".durably-run-row")).to_have_count(on_first_page(counts["failed"]))
    expect(page.locator(".durably-run-row:not([data-status='failed'])")).to_have_count(0)
    expect(row(page, failed)).to_be_visible()

    # A count card is a filter too; "all runs" clears it.
    page.locator(".durably-status-count[data-status='completed']").click()
    expect(page.locator(".durably-status-filter")).to_contain_text("completed")
    expect(page.locator(".durably-run-row")).to_have_count(on_first_page(counts["completed"]))
    expect(page.locator(".durably-run-row:not([data-status='completed'])")).to_have_count(0)
    page.locator(".durably-status-count[data-status='all']").click()
    expect(page.locator(".durably-run-row")).to_have_count(on_first_page(len(runs)))

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
