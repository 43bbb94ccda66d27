"""Operating runs from the dashboard (issue 14), in Chromium against the API it mounts: the runs
page's search box (labels, job, status, input fields, run ids; errors shown where they are typed;
kept in the URL), labels as chips that filter, bulk actions on a selection and on everything a
search matches (a confirmation naming how many, progress, what was done), replaying a run from one
of its steps, and a retried run's earlier attempts. Same app as test_dashboard.py
(dashboard_helpers.py); each test tags its runs with a label of its own and counts only those.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .conftest import ReflexServerFactory, require_playwright
from .dashboard_helpers import (
    FINISHED,
    api_get,
    api_post,
    header_status,
    row,
    shared_dashboard,
    wait_for_live_table,
    wait_for_status,
)
from .reflex_server import ReflexServer

require_playwright()
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def dashboard(page: Page, reflex_server: ReflexServerFactory, tmp_path_factory: pytest.TempPathFactory) -> ReflexServer:
    return shared_dashboard(reflex_server, tmp_path_factory)


def new_tag() -> str:
    return uuid.uuid4().hex[:10]


def trigger(server: ReflexServer, job_name: str, input: dict[str, Any], labels: dict[str, str], **timing: Any) -> str:
    body = {"jobName": job_name, "input": input, "labels": labels, **timing}
    return api_post(server, "/trigger", body)["runId"]


def runs_labelled(server: ReflexServer, key: str, value: str) -> list[dict[str, Any]]:
    return api_get(server, "/runs?" + urllib.parse.urlencode({f"label.{key}": value, "limit": 1000}))


def search(page: Page, text: str) -> None:
    box = page.locator("input[name='q']")
    box.fill(text)
    box.press("Enter")


def shown_ids(page: Page) -> set[str]:
    return {row.get_attribute("data-run-id") or "" for row in page.locator(".durably-run-row").all()}


# -- search ---------------------------------------------------------------------------------------------
def test_the_search_box_finds_runs_by_label_input_status_job_and_id_and_keeps_it_in_the_url(
    page: Page, dashboard: ReflexServer
) -> None:
    tag = new_tag()
    acme = trigger(dashboard, "send-newsletter", {"subject": "Acme news"}, {"batch": tag, "customer": "acme"})
    globex = trigger(dashboard, "send-newsletter", {"subject": "Globex news"}, {"batch": tag, "customer": "globex"})
    report = trigger(dashboard, "publish-report", {"title": "Acme figures"}, {"batch": tag, "customer": "acme"})
    for run_id in (acme, globex, report):
        assert wait_for_status(dashboard, run_id, FINISHED) in FINISHED
    page.goto(dashboard.url("/"))
    wait_for_live_table(page)

    search(page, f"batch={tag} customer=acme")
    expect(page.locator(".durably-run-row")).to_have_count(2)
    assert shown_ids(page) == {acme, report}
    expect(page).to_have_url(re.compile(r"\?q=batch%3D" + tag + r"\+customer%3Dacme$"))
    expect(page.locator(".durably-counts-note")).to_contain_text("follow the job filter only")

    search(page, f'batch={tag} input.subject="Globex news"')
    expect(row(page, acme)).to_have_count(0)
    assert shown_ids(page) == {globex}

    search(page, f"batch={tag} status:failed")
    expect(row(page, globex)).to_have_count(0)
    assert shown_ids(page) == {report}
    expect(page.locator(".durably-status-filter")).to_contain_text("failed")  # the term is the filter
    expect(page.locator("input[name='q']")).to_have_value(f"status:failed batch={tag}")  # canonical order

    search(page, acme.lower())  # a run's whole id (any case) finds it
    expect(row(page, report)).to_have_count(0)
    assert shown_ids(page) == {acme}

    search(page, f"job:publish-report batch={tag}")  # the job term is the job filter: the counts follow it
    expect(page.locator(".durably-job-filter")).to_contain_text("publish-report")
    expect(page.locator(".durably-run-row")).to_have_count(1)
    job_total = sum(api_get(dashboard, "/stats?jobName=publish-report")["counts"].values())
    expect(page.locator(".durably-status-count[data-status='all'] .durably-count")).to_have_text(str(job_total))

    page.reload()  # the URL holds it all
    expect(page.locator("input[name='q']")).to_have_value(f"job:publish-report batch={tag}")
    expect(page.locator(".durably-run-row")).to_have_count(1)
    expect(row(page, report)).to_be_visible()

    search(page, f"batch={tag} state:failed since:soon")  # nothing applied; each mistake said
    error = page.locator(".durably-search-error")
    expect(error).to_contain_text('unknown filter "state:"')
    expect(error).to_contain_text("since: takes a time ago")
    expect(page.locator("input[name='q']")).to_have_value(f"batch={tag} state:failed since:soon")
    expect(row(page, report)).to_be_visible()

    page.locator(".durably-search-help").click()  # the terms, listed
    expect(page.get_by_text("a field of the input", exact=False)).to_be_visible()


def test_a_label_chip_filters_the_table_and_a_runs_labels_link_to_its_search(
    page: Page, dashboard: ReflexServer
) -> None:
    tag = new_tag()
    tagged = trigger(dashboard, "send-newsletter", {"subject": "Chips"}, {"batch": tag, "tier": "gold"})
    other = trigger(dashboard, "send-newsletter", {"subject": "Chips"}, {"tier": "gold"})
    for run_id in (tagged, other):
        assert wait_for_status(dashboard, run_id, FINISHED) == "completed"
    page.goto(dashboard.url("/"))
    wait_for_live_table(page)

    chips = row(page, tagged).locator(".durably-label")
    expect(chips).to_have_count(2)
    expect(chips.first).to_have_text(f"batch={tag}")
    chips.first.click()
    expect(page.locator("input[name='q']")).to_have_value(f"batch={tag}")
    expect(row(page, other)).to_have_count(0)
    expect(page.locator(".durably-run-row")).to_have_count(1)
    row(page, tagged).locator(".durably-label[data-key='tier']").click()  # labels add up
    expect(page.locator("input[name='q']")).to_have_value(f"batch={tag} tier=gold")

    page.goto(dashboard.url(f"/runs/{tagged}"))
    expect(header_status(page)).to_have_attribute("data-status", "completed")
    label = page.locator(".durably-run-detail .durably-label[data-key='batch']")
    expect(label).to_have_text(f"batch={tag}")
    label.click()
    expect(page).to_have_url(re.compile(r"/\?q=batch%3D" + tag + "$"))
    expect(page.locator(".durably-run-row")).to_have_count(1)
    expect(row(page, tagged)).to_be_visible()


# -- bulk actions ---------------------------------------------------------------------------------------
def test_selected_runs_are_cancelled_in_one_action_after_a_confirmation(page: Page, dashboard: ReflexServer) -> None:
    tag = new_tag()
    waiting = [
        trigger(dashboard, "send-newsletter", {"subject": "Later"}, {"batch": tag}, delay=3600) for _ in range(3)
    ]
    try:
        page.goto(dashboard.url(f"/?q=batch%3D{tag}"))
        wait_for_live_table(page)
        expect(page.locator(".durably-run-row")).to_have_count(3)

        page.locator(".durably-select-page").click()  # the page, then one less
        expect(page.locator(".durably-selected")).to_have_text("3 selected")
        row(page, waiting[0]).locator(".durably-select-run").click()
        expect(page.locator(".durably-selected")).to_have_text("2 selected")
        page.locator(".durably-selection-bar .durably-bulk-cancel").click()

        dialog = page.locator(".durably-bulk-dialog")
        expect(dialog.locator(".durably-bulk-question")).to_have_text(
            "Cancel the 2 selected runs? Only pending or running runs are cancelled: the others are skipped."
        )
        dialog.locator(".durably-bulk-confirm").click()
        expect(page.locator(".durably-bulk-done")).to_contain_text("Cancelled 2 runs.")
        expect(page.locator(".durably-selection-bar")).to_have_count(0)  # the selection is spent
        expect(row(page, waiting[1])).to_have_attribute("data-status", "cancelled")
        statuses = {run["id"]: run["status"] for run in runs_labelled(dashboard, "batch", tag)}
        assert statuses == {waiting[0]: "pending", waiting[1]: "cancelled", waiting[2]: "cancelled"}
    finally:
        api_post(dashboard, "/bulk/cancel", {"filter": {"labels": {"batch": tag}}})


PROGRESS_OBSERVER = """
window.__bulkProgress = [];
new MutationObserver(() => {
  const text = document.querySelector('.durably-bulk-progress-text');
  if (text && window.__bulkProgress.at(-1) !== text.textContent) window.__bulkProgress.push(text.textContent);
}).observe(document.body, {childList: true, subtree: true, characterData: true});
"""


def test_every_run_a_search_matches_is_acted_on_after_a_confirmation_naming_how_many(
    page: Page, dashboard: ReflexServer
) -> None:
    tag, count = new_tag(), 1100  # more than one of the server's batches (500)
    body = {"jobName": "send-newsletter", "input": {"subject": "Bulk"}, "labels": {"batch": tag}, "delay": 3600}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: api_post(dashboard, "/trigger", body), range(count)))
    try:
        page.goto(dashboard.url(f"/?q=batch%3D{tag}"))
        wait_for_live_table(page)
        page.evaluate(PROGRESS_OBSERVER)

        page.locator(".durably-bulk-matching").click()
        page.locator(".durably-bulk-matching-cancel").click()
        dialog = page.locator(".durably-bulk-dialog")
        expect(dialog.locator(".durably-bulk-question")).to_have_text(
            f"Cancel all 1,100 pending or running runs matching batch={tag}?"
        )
        expect(dialog.locator(".durably-bulk-confirm")).to_have_text("Cancel 1,100 runs")
        dialog.locator(".durably-bulk-confirm").click()
        expect(page.locator(".durably-bulk-done")).to_contain_text("Cancelled 1,100 runs.", timeout=60_000)
        seen = page.evaluate("window.__bulkProgress")
        assert seen and all(re.fullmatch(r"Cancelling… [\d,]+ of 1,100 runs", text) for text in seen), seen
        assert {run["status"] for run in runs_labelled(dashboard, "batch", tag)} == {"cancelled"}

        page.locator(".durably-bulk-matching").click()  # nothing left to cancel: it says so, and cannot
        page.locator(".durably-bulk-matching-cancel").click()
        expect(dialog.locator(".durably-bulk-question")).to_have_text(
            f"No pending or running run matching batch={tag}: nothing to cancel."
        )
        expect(dialog.locator(".durably-bulk-confirm")).to_be_disabled()
        dialog.locator(".durably-bulk-keep").click()

        page.locator(".durably-bulk-matching").click()
        page.locator(".durably-bulk-matching-delete").click()
        expect(dialog.locator(".durably-bulk-question")).to_have_text(
            f"Delete all 1,100 completed, failed or cancelled runs matching batch={tag}?"
        )
        expect(dialog).to_contain_text("cannot be undone")
        dialog.locator(".durably-bulk-confirm").click()
        expect(page.locator(".durably-bulk-done")).to_contain_text("Deleted 1,100 runs.", timeout=60_000)
        expect(page.locator(".durably-runs-empty")).to_contain_text("No runs match these filters")
        assert runs_labelled(dashboard, "batch", tag) == []
    finally:
        api_post(dashboard, "/bulk/cancel", {"filter": {"labels": {"batch": tag}}})


# -- replay and attempts --------------------------------------------------------------------------------
def test_replaying_from_a_step_opens_the_new_run_which_names_its_source_which_lists_it(
    page: Page, dashboard: ReflexServer
) -> None:
    source = trigger(
        dashboard, "publish-report", {"title": "Replayed", "fail_first_attempt": False}, {"batch": new_tag()}
    )
    assert wait_for_status(dashboard, source, FINISHED) == "completed"
    page.goto(dashboard.url(f"/runs/{source}"))
    expect(header_status(page)).to_have_attribute("data-status", "completed")

    step = page.locator(".durably-step").filter(has_text="publish")
    step.locator(".durably-replay-from").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("the steps before “publish” that completed are copied")
    page.locator(".durably-confirm-replay").click()

    expect(page).not_to_have_url(re.compile(re.escape(source) + "$"))
    replay = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator(".durably-replay-of")).to_have_attribute("data-run-id", source)
    expect(header_status(page)).to_have_attribute("data-status", "completed")
    run = api_get(dashboard, f"/run?runId={replay}")
    assert run["replayOf"] == source and run["labels"] == api_get(dashboard, f"/run?runId={source}")["labels"]
    expect(page.locator(".durably-step")).to_have_count(3)

    page.locator(".durably-replay-of a").click()
    expect(page.locator(".durably-replays .durably-replay")).to_have_count(1)
    expect(page.locator(f".durably-replay[data-run-id='{replay}']")).to_be_visible()


def test_a_retried_run_keeps_its_failed_attempt_with_its_error_and_times(page: Page, dashboard: ReflexServer) -> None:
    run_id = trigger(dashboard, "publish-report", {"title": "Twice"}, {"batch": new_tag()})  # fails once
    assert wait_for_status(dashboard, run_id, FINISHED) == "failed"
    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(header_status(page)).to_have_attribute("data-status", "failed")
    expect(page.locator(".durably-attempts")).to_have_count(0)  # one attempt: nothing to list

    page.locator(".durably-run-detail .durably-retry").click()
    expect(header_status(page)).to_have_attribute("data-status", "completed", timeout=60_000)

    def check_attempts() -> None:
        attempts = page.locator(".durably-attempt")
        expect(attempts).to_have_count(2)
        first = page.locator(".durably-attempt[data-number='1']")
        expect(first).to_have_attribute("data-status", "failed")
        expect(first.locator(".durably-attempt-error")).to_have_text(
            "the renderer ran out of ink (press Retry: fetch-figures is not run again)"
        )
        expect(first.locator("time").first).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
        expect(page.locator(".durably-attempt-current")).to_contain_text("completed")
        failed = page.locator(".durably-step[data-status='failed']")  # the failed step keeps its row and error
        expect(failed).to_have_count(1)
        expect(failed).to_contain_text("ran out of ink")
        expect(page.locator(".durably-step[data-attempt='2']")).to_have_attribute("data-status", "completed")
        expect(page.locator(".durably-run-error")).to_have_count(0)

    check_attempts()
    page.reload()  # from what is stored, the same
    expect(header_status(page)).to_have_attribute("data-status", "completed")
    check_attempts()
    stored = api_get(dashboard, f"/attempts?runId={run_id}")
    assert [(attempt["number"], attempt["status"]) for attempt in stored] == [(1, "failed")]
