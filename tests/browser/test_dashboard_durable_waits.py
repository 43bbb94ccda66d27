"""Durable waits in the dashboard, in Chromium against the API it mounts: a run waiting for an
approval shows what it waits for (with a countdown to its deadline) on its page and in the runs
table, its page offers the form built from the job's signal model (a bad field says so, nothing is
sent), and sending it completes the run; the Schedules page shows each schedule's next fire time and
its runs as they fire, live, and pauses, resumes and deletes it. Same app as test_dashboard.py
(dashboard_helpers.py): every test counts what it made, and leaves nothing running or scheduled.
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ReflexServerFactory, require_playwright
from .dashboard_helpers import (
    API,
    api_get,
    api_post,
    cancel,
    header_status,
    row,
    shared_dashboard,
    trigger,
    wait_for_status,
)
from .reflex_server import ReflexServer

require_playwright()
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

FORM = "signal-approve-expense-approval"  # the form's id: signal-<job>-<signal>


@pytest.fixture
def dashboard(page: Page, reflex_server: ReflexServerFactory, tmp_path_factory: pytest.TempPathFactory) -> ReflexServer:
    return shared_dashboard(reflex_server, tmp_path_factory)


def input_named(page: Page, input_id: str):  # a Locator; ids hold dots, so no CSS id selector
    return page.locator(f'[id="{input_id}"]')


def wait_for_run(server: ReflexServer, run_id: str, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = api_get(server, f"/run?runId={run_id}")
        if predicate(run):
            return run
        assert time.monotonic() < deadline, f"run {run_id} never matched; last seen {run}"
        time.sleep(0.2)


def api_delete(server: ReflexServer, path: str) -> None:
    request = urllib.request.Request(server.url(API + path), method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass


# -- approvals -------------------------------------------------------------------------------------
def test_a_run_waiting_for_an_approval_gets_it_from_the_form_on_its_page(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "approve-expense", {"description": "Conference", "amount": 420})
    try:
        waiting = wait_for_run(dashboard, run_id, lambda run: (run["waitingFor"] or {}).get("kind") == "signal")
        assert waiting["status"] == "pending" and waiting["waitingFor"]["until"]

        page.goto(dashboard.url("/"))  # the table says what the run waits for
        expect(row(page, run_id).locator(".durably-waiting")).to_contain_text('Waiting for the signal "approval"')

        page.goto(dashboard.url(f"/runs/{run_id}"))
        expect(header_status(page)).to_have_attribute("data-status", "pending")
        note = page.locator(".durably-run-waiting")
        expect(note).to_contain_text('Waiting for the signal "approval"')
        expect(note.locator(".durably-countdown")).to_contain_text(re.compile(r"^6d 23h 5\dm \d+s$"))
        form = page.locator(f"#{FORM}")
        expect(form).to_be_visible()

        form.locator(".durably-send-signal").click()  # no approver: the model refuses, nothing is sent
        approver = page.locator(".durably-form-field").filter(has=input_named(page, f"{FORM}-approver"))
        expect(approver.locator(".durably-field-error")).to_contain_text("Field required")
        assert api_get(dashboard, f"/run?runId={run_id}")["status"] == "pending"

        input_named(page, f"{FORM}-approved").click()
        input_named(page, f"{FORM}-approver").fill("ada")
        input_named(page, f"{FORM}-comment").fill("fine by me")
        form.locator(".durably-send-signal").click()

        expect(header_status(page)).to_have_attribute("data-status", "completed", timeout=60_000)
        expect(page.locator(".durably-run-output")).to_contain_text('"approver": "ada"')
        expect(page.locator(".durably-run-waiting")).to_have_count(0)
        expect(page.locator(".durably-signal-form")).to_have_count(0)
        expect(page.locator(".durably-step[data-status='completed']")).to_have_count(3)  # submit, approval, book
        done = api_get(dashboard, f"/run?runId={run_id}")
        assert done["output"] == {"approved": True, "approver": "ada"}
    finally:
        cancel(dashboard, run_id)


def test_a_retried_steps_attempts_are_rows_of_the_timeline(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "publish-report")
    assert wait_for_status(dashboard, run_id, ("failed",)) == "failed"
    api_post(dashboard, f"/retry?runId={run_id}", {})
    assert wait_for_status(dashboard, run_id, ("completed",)) == "completed"

    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(header_status(page)).to_have_attribute("data-status", "completed")
    render = page.locator(".durably-step").filter(has_text="render")
    expect(render).to_have_count(2)
    expect(render.nth(0)).to_have_attribute("data-status", "failed")
    expect(render.nth(0)).to_contain_text("ran out of ink")
    expect(render.nth(1)).to_have_attribute("data-attempt", "2")
    expect(render.nth(1)).to_contain_text("attempt 2")
    expect(render.nth(1)).to_have_attribute("data-status", "completed")


# -- schedules -------------------------------------------------------------------------------------
@pytest.fixture
def schedule_names(dashboard: ReflexServer) -> Iterator[list[str]]:
    """Names for the test's schedules; whatever is left of them is deleted afterwards."""
    names: list[str] = []
    yield names
    existing = {item["name"] for item in api_get(dashboard, "/schedules")}
    for name in names:
        if name in existing:
            api_delete(dashboard, f"/schedules?name={name}")


def schedule(server: ReflexServer, name: str, cron: str) -> dict[str, Any]:
    body = {"jobName": "import-csv", "cron": cron, "name": name, "input": {"rows": [], "seconds_per_row": 0}}
    return api_post(server, "/schedules", body)


def test_the_schedules_page_shows_next_fire_times_and_runs_live_and_pauses_resumes_and_deletes(
    page: Page, dashboard: ReflexServer, schedule_names: list[str]
) -> None:
    nightly, ticking = f"nightly-{uuid.uuid4().hex[:6]}", f"ticking-{uuid.uuid4().hex[:6]}"
    schedule_names += [nightly, ticking]
    schedule(dashboard, nightly, "0 3 * * *")

    page.goto(dashboard.url("/"))
    page.locator("#nav-schedules").click()
    quiet = page.locator(f".durably-schedule-row[data-schedule='{nightly}']")
    expect(quiet).to_contain_text("0 3 * * *")
    expect(quiet.locator(".durably-schedule-next .durably-countdown")).to_contain_text(re.compile(r"\d+s$"))
    expect(quiet.locator(".durably-schedule-last")).to_contain_text("never")

    schedule(dashboard, ticking, "* * * * * *")  # every second: its runs appear without a reload
    busy = page.locator(f".durably-schedule-row[data-schedule='{ticking}']")
    expect(busy.locator(".durably-schedule-run").first).to_be_visible(timeout=30_000)
    busy.locator(".durably-pause-schedule").click()
    expect(busy).to_have_attribute("data-paused", "true")
    expect(busy.locator(".durably-schedule-next")).to_contain_text("paused")
    assert {item["name"]: item["paused"] for item in api_get(dashboard, "/schedules")}[ticking] is True
    fired = api_get(dashboard, "/schedules")
    last_run = next(item["lastRunId"] for item in fired if item["name"] == ticking)
    busy.locator(".durably-schedule-run").first.click()  # a run badge opens the run
    expect(page).to_have_url(re.compile(r"/runs/[0-9A-Z]{26}/?$"))
    assert wait_for_status(dashboard, last_run, ("completed",)) == "completed"

    page.go_back()
    busy = page.locator(f".durably-schedule-row[data-schedule='{ticking}']")
    busy.locator(".durably-resume-schedule").click()
    expect(busy).to_have_attribute("data-paused", "false")
    busy.locator(".durably-pause-schedule").click()
    expect(busy).to_have_attribute("data-paused", "true")
    busy.locator(".durably-delete-schedule").click()
    page.locator(".durably-confirm-delete-schedule").click()
    expect(busy).to_have_count(0)
    assert [item["name"] for item in api_get(dashboard, "/schedules") if item["name"] in (nightly, ticking)] == [
        nightly
    ]
