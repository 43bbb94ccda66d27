"""The dashboard as a live UI for Durably's own Node server: `durably-reflex dashboard --api URL`, as
a user runs it (from a folder of their own, no engine, no Reflex project), pointed at a real
`@coji/durably` 0.15 server (tests/node_durably: installed from npm by its harness, served on
127.0.0.1), driven by Chromium.

Runs are triggered on the Node side through our `DurablyClient`, and from the dashboard's own
trigger by name; the pages follow them live (statuses, `leased` read as running, steps, logs as they
are written) and say what this server lacks: no job list, no counts, no stored logs, no schedules;
a retry there makes a new run, which the run page links to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from durably_reflex import DurablyClient
from tests.node_durably.harness import NodeServer, ensure_installed

from .conftest import require_playwright
from .dashboard_helpers import header_status
from .reflex_server import free_port
from .test_dashboard_command import STOP_BOUND, Dashboard, row, start

require_playwright()
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

T = TypeVar("T")
RUN_BOUND_MS = 60_000  # a run of a few seconds, on 2 shared cores


# -- the Node server and the dashboard pointed at it ------------------------------------------------------
@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeServer]:
    try:
        ensure_installed()
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        pytest.skip(f"Durably's Node server cannot be installed here (npm ci in tests/node_durably): {error}")
    server = NodeServer(tmp_path_factory.mktemp("node-durably") / "durably.db", free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dashboard(browser: Browser, node: NodeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    served = start(tmp_path_factory.mktemp("dashboard-node-user"), "--api", node.api)
    yield served
    served.process.send_signal(signal.SIGTERM)
    try:
        served.process.wait(STOP_BOUND)
    finally:
        if served.process.poll() is None:
            served.kill_leftovers()


def on_node(node: NodeServer, call: Callable[[DurablyClient], Awaitable[T]]) -> T:
    """`call(client)` with our client of the Node server, on a thread of its own (Playwright's sync
    API owns this thread's event loop)."""

    async def main() -> T:
        async with DurablyClient(node.api) as client:
            return await call(client)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


def trigger(node: NodeServer, job_name: str, input: dict[str, Any]) -> str:
    return on_node(node, lambda client: client.trigger(job_name, input))


def run_id_of(page: Page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[1]


# -- runs, live --------------------------------------------------------------------------------------------
def test_the_runs_page_follows_a_node_run_live_and_says_there_are_no_counts(
    page: Page, dashboard: Dashboard, node: NodeServer
) -> None:
    page.goto(dashboard.url("/"))
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    expect(page.locator("#remote-api")).to_contain_text(node.api)
    expect(page.locator(".durably-no-stats")).to_contain_text("keeps no run counts")
    expect(page.locator(".durably-status-count")).to_have_count(0)

    run_id = trigger(node, "slow-job", {"steps": 6, "delay": 0.5})
    expect(row(page, run_id)).to_be_visible()
    expect(row(page, run_id)).to_have_attribute("data-status", "running")  # Node's "leased"
    expect(row(page, run_id)).to_have_attribute("data-status", "completed", timeout=RUN_BOUND_MS)


def test_a_run_page_shows_a_node_run_as_it_goes_steps_and_logs_live(
    page: Page, dashboard: Dashboard, node: NodeServer
) -> None:
    names = ["ada", "grace", "alan", "edsger", "barbara"]
    run_id = trigger(node, "import-csv", {"rows": [{"name": name} for name in names], "delay": 0.8})
    page.goto(dashboard.url(f"/runs/{run_id}"))
    expect(header_status(page)).to_have_attribute("data-status", "running")
    expect(page.locator(".durably-log-viewer")).to_contain_text("live only")  # Node keeps no log history

    steps, lines = page.locator(".durably-step[data-status='completed']"), page.locator(".durably-log-line")
    seen: list[tuple[int, int]] = []  # (completed steps, log lines) while the page showed it running
    for _ in range(100):  # bounded: ~20 s at most
        if header_status(page).get_attribute("data-status") != "running":
            break
        counts = (steps.count(), lines.count())
        if not seen or seen[-1] != counts:
            seen.append(counts)
        page.wait_for_timeout(200)
    assert len(seen) >= 3 and seen == sorted(seen), f"steps and logs did not come one by one: {seen}"

    expect(header_status(page)).to_have_attribute("data-status", "completed", timeout=RUN_BOUND_MS)
    expect(steps).to_have_count(len(names))
    expect(lines.last).to_contain_text("imported barbara")
    expect(page.locator(".durably-run-output")).to_contain_text('"imported": 5')


# -- jobs: Node lists none -----------------------------------------------------------------------------------
def test_the_jobs_page_says_node_lists_no_jobs_and_triggers_one_by_name(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url("/jobs"))
    expect(page.locator(".durably-jobs-not-listed")).to_contain_text("does not list its jobs")
    form, error = page.locator("#trigger-by-name"), page.locator(".durably-trigger-error")

    page.locator("#trigger-by-name-job").fill("no-such-job")
    form.get_by_role("button", name="Trigger").click()
    expect(error).to_have_text('The server has no job named "no-such-job".')

    page.locator("#trigger-by-name-job").fill("import-csv")
    page.locator("#trigger-by-name-input").fill('{"rows": [{"name": "ada"}')
    form.get_by_role("button", name="Trigger").click()
    expect(error).to_contain_text("The input is not JSON")

    page.locator("#trigger-by-name-input").fill('{"rows": [{"nom": "ada"}]}')
    form.get_by_role("button", name="Trigger").click()
    expect(error).to_contain_text("name")  # the server's own words about the missing field

    page.locator("#trigger-by-name-input").fill('{"rows": [{"name": "ada"}, {"name": "grace"}]}')
    form.get_by_role("button", name="Trigger").click()
    expect(error).to_have_count(0)
    page.locator(".durably-triggered-run .open-run").first.click()
    expect(page).to_have_url(re.compile(r"/runs/[^/]+/?$"))
    expect(header_status(page)).to_have_attribute("data-status", "completed", timeout=RUN_BOUND_MS)
    expect(page.locator(".durably-run-output")).to_contain_text("GRACE")


# -- a retry makes a new run there ---------------------------------------------------------------------------
def test_a_failed_node_run_retried_from_its_page_links_to_the_new_run(
    page: Page, dashboard: Dashboard, node: NodeServer, tmp_path: Path
) -> None:
    flag = tmp_path / "up"
    flag.touch()
    failed = trigger(node, "flaky", {"flag": str(flag)})
    page.goto(dashboard.url(f"/runs/{failed}"))
    expect(header_status(page)).to_have_attribute("data-status", "failed", timeout=RUN_BOUND_MS)
    expect(page.locator(".durably-run-error")).to_contain_text("flag up is up")

    flag.unlink()
    page.locator(".durably-run-detail .durably-retry").click()
    page.locator(".durably-retried-run").click()
    expect(page).not_to_have_url(re.compile(re.escape(failed)))
    expect(header_status(page)).to_have_attribute("data-status", "completed", timeout=RUN_BOUND_MS)
    assert on_node(node, lambda client: client.get_run(failed)).status == "failed"  # type: ignore[union-attr]


# -- schedules: Node keeps none ------------------------------------------------------------------------------
def test_the_schedules_page_says_the_server_keeps_none(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url("/schedules"))
    expect(page.locator(".durably-schedules-not-offered")).to_contain_text("keeps no schedules")
    expect(page.locator(".durably-schedule-row")).to_have_count(0)
