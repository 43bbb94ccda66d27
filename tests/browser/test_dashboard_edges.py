"""The dashboard's rough edges of issue 14, each checked fixed in Chromium against the API it mounts:
the jobs page (how a finished run ended, every form error at once, rows for a list of objects, the
schema collapsed, triggering again while a run runs), the runs page (filters that match nothing,
counts and chart following the job filter, filters in the URL, the rows' short id, step and error,
a compact chart with a time range, only the actions a run allows), the run page (where a cancelled
run stopped, duration, a timeline, input and output collapsed, logs hidden rather than cleared,
log data that says it expands) and the example newsletter's count. Same app as test_dashboard.py
(dashboard_helpers.py); every test counts its own runs and cancels what it leaves running.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from .conftest import ReflexServerFactory, require_playwright
from .dashboard_helpers import (
    FINISHED,
    api_get,
    cancel,
    header_status,
    row,
    run_status,
    shared_dashboard,
    trigger,
    wait_for_live_table,
    wait_for_status,
    wait_for_steps,
)
from .reflex_server import ReflexServer

require_playwright()
from playwright.sync_api import Locator, Page, expect

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture
def dashboard(page: Page, reflex_server: ReflexServerFactory, tmp_path_factory: pytest.TempPathFactory) -> ReflexServer:
    return shared_dashboard(reflex_server, tmp_path_factory)


def total_runs(server: ReflexServer) -> int:
    return sum(api_get(server, "/stats")["counts"].values())


def input_named(scope: Page | Locator, name: str) -> Locator:
    """The input whose id is `name` (ids hold dots: no CSS id selector)."""
    return scope.locator(f'[id="{name}"]')


def field_of(page: Page, input_id: str) -> Locator:
    return page.locator(".durably-form-field").filter(has=input_named(page, input_id))


def choose(page: Page, select_class: str, option: str) -> None:
    page.locator(f".{select_class}").click()
    page.get_by_role("option", name=option, exact=True).click()


def card_run_id(card: Locator) -> str:
    return (card.locator(".open-run").get_attribute("href") or "").rstrip("/").rsplit("/", 1)[-1]


# -- the jobs page ------------------------------------------------------------------------------------------
def test_a_finished_run_that_reports_no_progress_shows_how_it_ended_not_a_progress_bar(
    page: Page, dashboard: ReflexServer
) -> None:
    page.goto(dashboard.url("/jobs"))
    card = page.locator("#job-publish-report")
    card.locator(".durably-trigger").click()  # fails at its render step, never reports progress

    expect(card.locator(".durably-job-run")).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(card.locator(".durably-job-error")).to_contain_text("ran out of ink")
    expect(card.locator(".rt-ProgressRoot")).to_have_count(0)


def test_every_invalid_field_of_a_form_shows_its_error_at_once(page: Page, dashboard: ReflexServer) -> None:
    before = total_runs(dashboard)
    page.goto(dashboard.url("/jobs"))

    cleanup = page.locator("#job-slow-cleanup")
    input_named(page, "trigger-slow-cleanup-batches").fill("0")  # the model refuses it (ge=1)
    input_named(page, "trigger-slow-cleanup-seconds_per_batch").fill("soon")  # not even a number
    cleanup.locator(".durably-trigger").click()
    expect(cleanup.locator(".durably-field-error")).to_have_count(2)
    expect(field_of(page, "trigger-slow-cleanup-batches").locator(".durably-field-error")).to_contain_text(
        "greater than or equal to 1"
    )
    expect(field_of(page, "trigger-slow-cleanup-seconds_per_batch").locator(".durably-field-error")).to_contain_text(
        "valid number"
    )

    newsletter = page.locator("#job-send-newsletter")
    input_named(page, "trigger-send-newsletter-subject").fill("x")
    newsletter.locator(".durably-add-row").click()  # an extra recipient without the email it needs
    newsletter.locator(".durably-trigger").click()
    expect(field_of(page, "trigger-send-newsletter-subject").locator(".durably-field-error")).to_contain_text(
        "at least 3 characters"
    )
    expect(newsletter.locator(".durably-form-row").first.locator(".durably-field-error")).to_contain_text(
        "Field required"
    )
    expect(newsletter.locator(".durably-field-error")).to_have_count(2)

    # Corrected, it triggers: the one run made is this one (the refused submissions made none before it).
    input_named(page, "trigger-send-newsletter-subject").fill("Autumn news")
    newsletter.locator(".durably-remove-row").click()
    newsletter.locator(".durably-trigger").click()
    expect(newsletter.locator(".open-run")).to_be_visible()
    expect(newsletter.locator(".durably-field-error")).to_have_count(0)
    assert wait_for_status(dashboard, card_run_id(newsletter), FINISHED) == "completed"
    assert total_runs(dashboard) == before + 1


def test_a_list_of_objects_is_rows_to_add_and_remove_that_become_the_input(page: Page, dashboard: ReflexServer) -> None:
    page.goto(dashboard.url("/jobs"))
    card = page.locator("#job-import-csv")
    rows = card.locator(".durably-form-row")
    expect(rows).to_have_count(5)  # the default contacts

    card.locator(".durably-form-row[data-row-key='1'] .durably-remove-row").click()  # Grace Hopper
    expect(rows).to_have_count(4)
    card.locator(".durably-add-row").click()
    expect(rows).to_have_count(5)
    expect(rows.last).to_have_attribute("data-row-key", "5")
    input_named(page, "trigger-import-csv-rows.5.name").fill("Barbara Liskov")
    input_named(page, "trigger-import-csv-rows.5.email").fill("barbara@example.com")
    expect(input_named(page, "trigger-import-csv-rows.2.name")).to_have_value("Alan Turing")  # kept its row
    input_named(page, "trigger-import-csv-seconds_per_row").fill("0")
    card.locator(".durably-trigger").click()

    expect(card.locator(".open-run")).to_be_visible()
    run_id = card_run_id(card)
    assert wait_for_status(dashboard, run_id, FINISHED) == "completed"
    run = api_get(dashboard, f"/run?runId={run_id}")
    assert [contact["name"] for contact in run["input"]["rows"]] == [
        "Ada Lovelace", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra", "Barbara Liskov",
    ]  # fmt: skip
    assert run["input"]["rows"][-1]["email"] == "barbara@example.com"


def test_the_input_schema_is_collapsed_until_opened(page: Page, dashboard: ReflexServer) -> None:
    page.set_viewport_size(VIEWPORT)
    page.goto(dashboard.url("/jobs"))
    card = page.locator("#job-send-newsletter")
    schema = card.locator(".durably-input-schema")
    expect(schema.locator("summary")).to_be_visible()
    assert schema.evaluate("details => details.open") is False
    expect(schema.locator("code").first).to_be_hidden()
    form, whole = card.locator("form").bounding_box(), card.bounding_box()
    assert form is not None and whole is not None and form["width"] > 0.8 * whole["width"]  # the form has the card

    schema.locator("summary").click()
    expect(schema.locator("code").first).to_be_visible()
    expect(schema).to_contain_text('"extra_recipients"')


def test_a_job_can_be_triggered_again_while_its_run_is_running(page: Page, dashboard: ReflexServer) -> None:
    page.goto(dashboard.url("/jobs"))
    card = page.locator("#job-slow-cleanup")
    started: list[str] = []
    try:
        card.locator(".durably-trigger").click()  # a minute of batches
        expect(card.locator(".durably-job-run")).to_have_attribute("data-status", "running", timeout=60_000)
        started.append(card_run_id(card))
        expect(card.locator(".durably-trigger")).to_be_enabled()

        card.locator(".durably-trigger").click()
        expect(card.locator(".open-run")).not_to_have_attribute("href", re.compile(re.escape(started[0])))
        started.append(card_run_id(card))
        expect(card.locator(".durably-job-run")).to_have_attribute("data-status", re.compile("pending|running"))
        assert run_status(dashboard, started[0]) == "running"
        assert run_status(dashboard, started[1]) in ("pending", "running")
    finally:
        for run_id in started:
            cancel(dashboard, run_id)


# -- the runs page ------------------------------------------------------------------------------------------
def test_filters_that_match_nothing_say_so_and_clear_in_one_click(page: Page, dashboard: ReflexServer) -> None:
    newsletter = trigger(dashboard, "send-newsletter", {"subject": "Filter me out"})  # never cancelled
    assert wait_for_status(dashboard, newsletter, FINISHED) == "completed"

    page.goto(dashboard.url("/?job=send-newsletter&status=cancelled"))
    empty = page.locator(".durably-runs-empty")
    expect(empty).to_contain_text("No runs match these filters")
    expect(page.locator(".durably-job-filter")).to_contain_text("send-newsletter")  # read from the URL
    expect(page.locator(".durably-status-filter")).to_contain_text("cancelled")

    page.locator(".durably-clear-filters").click()
    expect(page).to_have_url(re.compile(r"^[^?]*/$"))
    expect(row(page, newsletter)).to_be_visible()
    expect(page.locator(".durably-status-filter")).to_contain_text("all")


def test_the_job_filter_scopes_the_counts_and_the_chart_and_stays_in_the_url(
    page: Page, dashboard: ReflexServer
) -> None:
    report = trigger(dashboard, "publish-report", {"title": "Scoped"})  # fails once
    newsletter = trigger(dashboard, "send-newsletter", {"subject": "Not counted"})
    for run_id in (report, newsletter):
        assert wait_for_status(dashboard, run_id, FINISHED) in FINISHED
    page.goto(dashboard.url("/"))
    wait_for_live_table(page)

    choose(page, "durably-job-filter", "publish-report")
    expect(page).to_have_url(re.compile(r"\?job=publish-report$"))
    expect(row(page, newsletter)).to_have_count(0)
    expected = api_get(dashboard, "/stats?jobName=publish-report")["counts"]
    everything = api_get(dashboard, "/stats")["counts"]
    assert sum(expected.values()) < sum(everything.values())
    count = page.locator(".durably-status-count[data-status='all'] .durably-count")
    expect(count).to_have_text(str(sum(expected.values())))
    expect(page.locator(".durably-status-count[data-status='failed'] .durably-count")).to_have_text(
        str(expected["failed"])
    )
    bars = page.locator(".durably-runs-chart .recharts-bar-rectangle")
    expect(bars.first).to_be_visible()

    page.locator(".durably-status-count[data-status='failed']").click()  # a count card is a filter too
    expect(page).to_have_url(re.compile(r"job=publish-report&status=failed$"))
    expect(page.locator(".durably-status-count[data-status='failed']")).to_have_attribute("data-selected", "true")

    page.reload()  # the URL says it all: a shared link shows the same view
    expect(page.locator(".durably-job-filter")).to_contain_text("publish-report")
    expect(page.locator(".durably-status-filter")).to_contain_text("failed")
    expect(count).to_have_text(str(sum(expected.values())))
    expect(row(page, report)).to_be_visible()
    expect(page.locator(".durably-run-row:not([data-status='failed'])")).to_have_count(0)


def test_a_row_shows_a_short_id_its_step_a_failures_first_line_and_only_the_actions_it_allows(
    page: Page, dashboard: ReflexServer
) -> None:
    failed = trigger(dashboard, "publish-report", {"title": "Failing"})
    done = trigger(dashboard, "send-newsletter", {"subject": "Five steps"})
    for run_id in (failed, done):
        assert wait_for_status(dashboard, run_id, FINISHED) in FINISHED
    running = trigger(dashboard, "slow-cleanup", {"batches": 300, "seconds_per_batch": 0.3})
    try:
        assert wait_for_status(dashboard, running, ("running", *FINISHED)) == "running"
        page.goto(dashboard.url("/"))
        wait_for_live_table(page)

        expect(row(page, failed).locator(".durably-run-id")).to_have_text(failed[-8:])
        expect(row(page, failed).locator(".durably-run-step")).to_contain_text("render")
        expect(row(page, failed).locator(".durably-run-error-line")).to_have_text(
            "the renderer ran out of ink (press Retry: fetch-figures is not run again)"
        )
        expect(row(page, done).locator(".durably-run-step")).to_have_text("5 steps")
        expect(row(page, running).locator(".durably-run-step")).to_contain_text(re.compile(r"batch-\d+"))

        def actions(run_id: str) -> list[str]:
            return [
                name for name in ("retry", "cancel", "delete") if row(page, run_id).locator(f".durably-{name}").count()
            ]

        expect(row(page, running).locator(".durably-cancel")).to_be_visible()
        assert actions(running) == ["cancel"]
        assert actions(failed) == ["retry", "delete"]
        assert actions(done) == ["delete"]
    finally:
        cancel(dashboard, running)


def test_the_chart_is_compact_and_covers_the_time_range_chosen(page: Page, dashboard: ReflexServer) -> None:
    trigger(dashboard, "send-newsletter", {"subject": "Charted"})
    page.set_viewport_size(VIEWPORT)
    page.goto(dashboard.url("/"))
    wait_for_live_table(page)
    chart = page.locator(".durably-runs-chart")
    expect(chart.locator(".recharts-bar-rectangle").first).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["height"] < VIEWPORT["height"] / 5, box
    expect(page.locator(".durably-chart-range")).to_contain_text("Last 24 hours")

    choose(page, "durably-chart-range", "Last 7 days")
    expect(page).to_have_url(re.compile(r"\?range=7d$"))
    six_hourly = chart.locator(".recharts-cartesian-axis-tick-value").filter(has_text=re.compile(r"^\d\d-\d\d \d\dh$"))
    expect(six_hourly.first).to_be_visible()  # the axis counts 6-hour buckets over 7 days
    page.reload()
    expect(page.locator(".durably-chart-range")).to_contain_text("Last 7 days")


# -- the run page -------------------------------------------------------------------------------------------
def test_a_cancelled_run_shows_the_step_where_it_stopped(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "slow-cleanup", {"batches": 100, "seconds_per_batch": 0.5})
    try:
        assert len(wait_for_steps(dashboard, run_id, 2)) >= 2
        page.goto(dashboard.url(f"/runs/{run_id}"))
        expect(header_status(page)).to_have_attribute("data-status", "running")
        page.locator(".durably-run-detail .durably-cancel").click()
        expect(header_status(page)).to_have_attribute("data-status", "cancelled")
    finally:
        cancel(dashboard, run_id)

    stopped = page.locator(".durably-step[data-status='cancelled']")
    expect(stopped).to_have_count(1)
    steps = _until_stopped_step_recorded(dashboard, run_id)
    at = steps[-1]
    assert at["status"] == "cancelled" and all(step["status"] == "completed" for step in steps[:-1])
    expect(stopped).to_contain_text(at["name"])
    expect(page.locator(".durably-run-stopped")).to_contain_text(f'Cancelled at step "{at["name"]}"')
    expect(page.locator(".durably-run-stopped")).to_contain_text(f"{len(steps) - 1} steps completed")

    page.reload()  # from what is stored, the same
    expect(page.locator(".durably-step[data-status='cancelled']")).to_contain_text(at["name"])
    page.goto(dashboard.url("/"))
    expect(row(page, run_id).locator(".durably-run-step")).to_have_text(at["name"])


def _until_stopped_step_recorded(server: ReflexServer, run_id: str, timeout: float = 20) -> list[dict[str, Any]]:
    """The run's steps once the worker has recorded the one the cancel stopped (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        steps = api_get(server, f"/steps?runId={run_id}")
        if (steps and steps[-1]["status"] == "cancelled") or time.monotonic() > deadline:
            return steps
        time.sleep(0.2)


def test_the_run_page_shows_duration_a_timeline_and_its_steps_and_logs_first(
    page: Page, dashboard: ReflexServer
) -> None:
    run_id = trigger(dashboard, "import-csv", {"seconds_per_row": 0.2})
    assert wait_for_status(dashboard, run_id, FINISHED) == "completed"
    page.set_viewport_size(VIEWPORT)
    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(header_status(page)).to_have_attribute("data-status", "completed")

    expect(page.locator(".durably-run-duration")).to_have_text(re.compile(r"\d(\.\d)? s$"))
    bars = page.locator(".durably-step-bar")
    expect(bars).to_have_count(5)
    lefts = [
        float(bars.nth(i).evaluate("bar => parseFloat(bar.style.left || getComputedStyle(bar).left)")) for i in range(5)
    ]
    assert lefts == sorted(lefts) and lefts[0] < lefts[-1], lefts  # one after the other on the time axis

    for details in (".durably-run-input", ".durably-run-output"):
        assert page.locator(details).evaluate("details => details.open") is False
    expect(page.locator(".durably-run-input summary")).to_contain_text('"seconds_per_row":0.2')
    for part in (".durably-steps", ".durably-log-viewer"):  # above the fold
        box = page.locator(part).bounding_box()
        assert box is not None and box["y"] < VIEWPORT["height"] - 100, (part, box)

    lines = page.locator(".durably-log-line")
    expect(lines).to_have_count(5)
    expect(page.locator(".durably-log-line .durably-log-data-toggle")).to_have_count(5)  # each says it has data
    lines.first.locator("summary").click()
    expect(lines.first.locator("code").first).to_be_visible()
    expect(lines.first).to_contain_text("ada@example.com")


def test_a_running_steps_bar_grows_with_its_time_so_far(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "slow-cleanup", {"batches": 2, "seconds_per_batch": 30})
    try:
        assert wait_for_status(dashboard, run_id, ("running", *FINISHED)) == "running"
        page.goto(dashboard.url(f"/runs/{run_id}"))
        expect(page.locator(".durably-step-bar-running")).to_have_count(1)
        span = page.locator(".durably-timeline-span")
        expect(span).to_have_text(re.compile(r"\d"))
        first = span.inner_text()
        expect(span).not_to_have_text(first)  # the axis follows the clock (every second)
        elapsed = page.locator(".durably-step[data-status='running'] time").first
        first_elapsed = elapsed.inner_text()
        expect(elapsed).not_to_have_text(first_elapsed)
    finally:
        cancel(dashboard, run_id)


def test_hiding_earlier_log_lines_says_what_it_does_and_can_be_undone(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "import-csv", {"seconds_per_row": 0})
    assert wait_for_status(dashboard, run_id, FINISHED) == "completed"
    page.goto(dashboard.url(f"/runs/{run_id}"))
    lines = page.locator(".durably-log-line")
    expect(lines).to_have_count(5)
    expect(page.locator(".durably-log-viewer button", has_text="Clear")).to_have_count(0)

    hide = page.locator(".durably-log-hide")
    expect(hide).to_have_attribute("title", re.compile("only here"))
    hide.click()
    expect(lines).to_have_count(0)
    show = page.locator(".durably-log-show-all")
    expect(show).to_have_text("Show 5 hidden")
    show.click()
    expect(lines).to_have_count(5)
    assert len(api_get(dashboard, f"/logs?runId={run_id}")) == 5


def test_the_example_newsletter_sends_to_every_recipient(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(
        dashboard,
        "send-newsletter",
        {
            "subject": "Everyone",
            "audience": {"countries": ["NL", "JP", "DE"]},
            "extra_recipients": [{"email": "a@b.c"}],
        },
    )
    assert wait_for_status(dashboard, run_id, FINISHED) == "completed"
    run = api_get(dashboard, f"/run?runId={run_id}")
    assert run["output"] == {"sent": 121, "dry_run": True}
    assert run["progress"] == {"current": 121, "total": 121, "message": "121 of 121 simulated"}

    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(page.locator(".durably-run-output")).to_contain_text('"sent": 121')
    page.goto(dashboard.url("/"))
    expect(row(page, run_id)).to_contain_text("100%")
