"""The hook states in a real Reflex app (tests/browser/hooks_app), driven by Chromium.

The app mounts the API on its own backend (`mount_durably`) and runs the worker; its page `/` has
three `use_job` panels (`job` follows the latest runs and resumes, `other` and `failing` do
neither), `/runs` a `use_runs` table with `use_run_actions` buttons, `/run/<id>` `use_job_run` and
`use_job_logs` (max 3 lines). `/test/stats` on the backend counts the server's open event streams
and the hook consumers running. The last tests run the same app against a separate API server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import HERE, ReflexServerFactory, require_playwright
from .reflex_server import ReflexServer, free_port

require_playwright()
from playwright.sync_api import Page, expect

HOOKS_APP = HERE / "hooks_app"
ROOT = HERE.parent.parent
WAIT = 20.0


# -- helpers ----------------------------------------------------------------------------------------
def api(server: ReflexServer | str, path: str, body: Any = None, method: str | None = None) -> Any:
    base = server if isinstance(server, str) else server.backend_url
    request = urllib.request.Request(
        f"{base}{path}", data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method=method,
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def trigger(server: ReflexServer | str, job: str, input: dict[str, Any], base_path: str = "/api/durably") -> str:
    return api(server, f"{base_path}/trigger", {"jobName": job, "input": input})["runId"]


def eventually(check: Any, timeout: float = WAIT) -> Any:
    """Poll `check()` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def run_count(server: ReflexServer) -> int:
    return len(api(server, "/api/durably/runs?limit=1000"))


@pytest.fixture(scope="module")
def app(reflex_server: ReflexServerFactory, tmp_path_factory: pytest.TempPathFactory) -> ReflexServer:
    db = tmp_path_factory.mktemp("hooks") / "hooks.db"
    return reflex_server(HOOKS_APP, env={"DURABLY_DB_URL": f"sqlite:///{db}"})


def open_index(page: Page, app: ReflexServer) -> None:
    page.goto(app.url("/"))
    expect(page.locator("#job-connection")).not_to_have_text("")  # hydrated and mounted


# -- use_job -----------------------------------------------------------------------------------------------
def test_trigger_then_watch_status_progress_logs_and_output_arrive(page: Page, app: ReflexServer) -> None:
    open_index(page, app)
    page.locator("#job-trigger").click()
    expect(page.locator("#job-status")).to_have_text(re.compile("pending|running"))
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#job-percent")).to_have_text(re.compile(r"^(20|40|60|80)$"))
    expect(page.locator("#job-status")).to_have_text("completed")
    expect(page.locator("#job-percent")).to_have_text("100")
    expect(page.locator("#job-output")).to_contain_text('"count": 5')
    expect(page.locator(".job-log")).to_have_count(5)
    expect(page.locator(".job-log").last).to_have_text("counted 5 of 5")
    expect(page.locator("#job-error")).to_have_text("")  # a normal end of stream is no error
    expect(page.locator("#job-connection")).to_have_text("closed")


def test_instances_of_one_hook_are_independent(page: Page, app: ReflexServer) -> None:
    open_index(page, app)
    page.locator("#other-trigger").click()
    expect(page.locator("#other-status")).to_have_text("completed")
    expect(page.locator("#other-output")).to_contain_text('"count": 2')
    run_id = page.locator("#other-run-id").inner_text()
    assert page.locator("#failing-run-id").inner_text() == ""  # the other panels did not move
    expect(page.locator("#failing-status")).to_have_text("none")
    # `job` follows the latest run of count-up, so it picked this one up too.
    expect(page.locator("#job-run-id")).to_have_text(run_id)


def test_a_failing_job_shows_failed_with_its_error(page: Page, app: ReflexServer) -> None:
    open_index(page, app)
    page.locator("#failing-trigger").click()
    expect(page.locator("#failing-status")).to_have_text("failed")
    expect(page.locator("#failing-error")).to_have_text("boom")


def test_bad_input_shows_the_field_error_and_creates_no_run(page: Page, app: ReflexServer) -> None:
    open_index(page, app)
    before = run_count(app)
    page.locator("#bad-input").click()
    expect(page.locator("#job-field-errors")).to_contain_text('"n"')
    expect(page.locator("#job-error")).to_contain_text("Invalid input")
    expect(page.locator("#job-status")).to_have_text("none")
    assert run_count(app) == before


def test_follow_latest_picks_up_a_run_triggered_by_another_client(page: Page, app: ReflexServer) -> None:
    open_index(page, app)
    time.sleep(0.5)  # the latest-runs stream is open once the panel attached
    run_id = trigger(app, "count-up", {"n": 3, "delay": 0.3})
    expect(page.locator("#job-run-id")).to_have_text(run_id)
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#job-status")).to_have_text("completed")
    expect(page.locator("#other-run-id")).to_have_text("")  # follow_latest=False there


def test_a_reload_mid_run_and_a_new_tab_attach_to_the_running_run(page: Page, app: ReflexServer) -> None:
    run_id = trigger(app, "count-up", {"n": 20, "delay": 0.25})
    eventually(lambda: api(app, f"/api/durably/run?runId={run_id}")["status"] == "running")
    open_index(page, app)  # auto_resume: the running run is found
    expect(page.locator("#job-run-id")).to_have_text(run_id)
    expect(page.locator("#job-status")).to_have_text("running")
    page.reload()
    expect(page.locator("#job-run-id")).to_have_text(run_id)
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator(".job-log").first).to_be_attached()  # the log history came back with it
    fresh_tab = page.context.browser.new_context().new_page()
    try:
        open_index(fresh_tab, app)
        expect(fresh_tab.locator("#job-run-id")).to_have_text(run_id)
        expect(fresh_tab.locator("#job-status")).to_have_text("running")
        expect(fresh_tab.locator("#job-percent")).not_to_have_text("")  # its progress at once, from the snapshot
    finally:
        fresh_tab.context.close()
    api(app, f"/api/durably/cancel?runId={run_id}", {}, method="POST")
    expect(page.locator("#job-status")).to_have_text("cancelled")


# -- use_job_run, use_job_logs ---------------------------------------------------------------------------
def test_the_run_page_follows_one_run_and_keeps_the_last_logs(page: Page, app: ReflexServer) -> None:
    run_id = trigger(app, "count-up", {"n": 6, "delay": 0.3})
    page.goto(app.url(f"/run/{run_id}"))
    expect(page.locator("#run-status")).to_have_text(re.compile("pending|running"))
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-output")).to_contain_text('"count": 6')
    expect(page.locator(".run-log")).to_have_text(["counted 4 of 6", "counted 5 of 6", "counted 6 of 6"])


def test_run_callbacks_fire_on_start_and_on_the_end(page: Page, app: ReflexServer) -> None:
    run_id = trigger(app, "count-up", {"n": 12, "delay": 0.3})  # still running when the page attaches
    page.goto(app.url(f"/run/{run_id}"))
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#run-callbacks")).to_have_text("start,complete")
    failing = trigger(app, "always-fails", {"message": "no"})
    page.goto(app.url(f"/run/{failing}"))
    expect(page.locator("#run-status")).to_have_text("failed")
    # on_start only when the page saw it pending or running (it may have failed before the page attached)
    expect(page.locator("#run-callbacks")).to_have_text(re.compile(r"^start,complete,(start,)?fail$"))


def test_an_unknown_run_says_so(page: Page, app: ReflexServer) -> None:
    page.goto(app.url("/run/no-such-run"))
    expect(page.locator("#run-error")).to_have_text("Run not found: no-such-run")


# -- use_runs, use_run_actions ------------------------------------------------------------------------------
def row(page: Page, run_id: str) -> Any:
    return page.locator(".run-row", has=page.locator(".run-id", has_text=run_id))


def test_the_runs_list_is_live_and_actions_change_runs(page: Page, app: ReflexServer) -> None:
    page.goto(app.url("/runs"))
    expect(page.locator("#runs-connection")).to_have_text("open")
    slow = trigger(app, "count-up", {"n": 40, "delay": 0.25})
    expect(row(page, slow).locator(".run-status")).to_have_text("running")  # appeared without a reload
    row(page, slow).locator(".run-cancel").click()
    expect(row(page, slow).locator(".run-status")).to_have_text("cancelled")
    row(page, slow).locator(".run-retry").click()
    expect(row(page, slow).locator(".run-status")).to_have_text(re.compile("pending|running"))
    row(page, slow).locator(".run-cancel").click()
    expect(row(page, slow).locator(".run-status")).to_have_text("cancelled")
    row(page, slow).locator(".run-delete").click()
    expect(row(page, slow)).to_have_count(0)
    expect(page.locator("#actions-message")).to_have_text(f"Deleted run {slow}")


def test_a_refused_action_shows_the_servers_reason(page: Page, app: ReflexServer) -> None:
    done = trigger(app, "count-up", {"n": 1, "delay": 0})
    eventually(lambda: api(app, f"/api/durably/run?runId={done}")["status"] == "completed")
    page.goto(app.url("/runs"))
    row(page, done).locator(".run-retry").click()
    expect(page.locator("#actions-error")).to_contain_text("completed")


def test_pages_of_runs(page: Page, app: ReflexServer) -> None:
    for _ in range(6):
        trigger(app, "count-up", {"n": 1, "delay": 0})
    page.goto(app.url("/runs"))
    expect(page.locator(".run-row")).to_have_count(5)
    expect(page.locator("#runs-has-more")).to_have_text("more")
    first_page = page.locator(".run-id").all_inner_texts()
    page.locator("#runs-next").click()
    expect(page.locator("#runs-page")).to_have_text("1")
    expect(page.locator(".run-id").first).not_to_have_text(first_page[0])
    assert not set(page.locator(".run-id").all_inner_texts()) & set(first_page)
    page.locator("#runs-prev").click()
    expect(page.locator("#runs-page")).to_have_text("0")


# -- cleaning up after closed tabs --------------------------------------------------------------------------
def test_closing_tabs_stops_their_consumers_and_closes_their_streams(page: Page, app: ReflexServer) -> None:
    baseline = eventually(lambda: (s := api(app, "/test/stats"))["consumers"] == 0 and s, timeout=10) or api(
        app, "/test/stats"
    )
    run_id = trigger(app, "count-up", {"n": 60, "delay": 0.25})
    context = page.context.browser.new_context()
    tabs = [context.new_page() for _ in range(3)]
    for tab in tabs:
        open_index(tab, app)
        expect(tab.locator("#job-run-id")).to_have_text(run_id)
    tabs[0].goto(app.url("/runs"))
    expect(tabs[0].locator("#runs-connection")).to_have_text("open")
    opened = api(app, "/test/stats")
    assert opened["consumers"] >= baseline["consumers"] + 7 and opened["streams"] >= baseline["streams"] + 5
    context.close()
    closed = eventually(lambda: (s := api(app, "/test/stats")) == baseline and s, timeout=10)
    assert closed == baseline, api(app, "/test/stats")
    api(app, f"/api/durably/cancel?runId={run_id}", {}, method="POST")


# -- the API on another server -----------------------------------------------------------------------------
class ApiServer:
    """`python -m durably_reflex serve` of the hooks app's jobs on its own port and database,
    which can be stopped and started again (same port, same database) like a redeployed server."""

    def __init__(self, db: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {"DURABLY_DB_URL": f"sqlite:///{db}", "PYTHONPATH": f"{ROOT}:{HOOKS_APP}", "PATH": "/usr/bin:/bin"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "durably_reflex", "serve", "hooks_app.jobs:durably",
                   "--host", "127.0.0.1", "--port", str(self.port), "--stop-timeout", "0.5"]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=HOOKS_APP, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        if not eventually(lambda: _answers(f"{self.base}/api/durably/jobs"), timeout=30):
            self.process.kill()
            raise RuntimeError(f"the API server did not start: {self.process.stdout.read().decode()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def separate_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("separate") / "api.db")
    server.start()
    yield server
    server.stop()


def test_the_states_work_against_a_separate_api_server_and_survive_its_restart(
    page: Page, reflex_server: ReflexServerFactory, separate_api: ApiServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Runs last (it restarts the app with another environment): the page's states talk to the
    other server, whose worker runs the job; the app's own mounted API never sees the run. When
    that server goes away mid-run the page says it is reconnecting, and picks the run up again
    when the server is back."""
    own_db = tmp_path_factory.mktemp("own") / "own.db"
    app = reflex_server(
        HOOKS_APP, env={"DURABLY_DB_URL": f"sqlite:///{own_db}", "DURABLY_API": f"{separate_api.base}/api/durably"}
    )
    open_index(page, app)
    page.locator("#other-trigger").click()
    expect(page.locator("#other-status")).to_have_text("completed")
    run_id = page.locator("#other-run-id").inner_text()
    assert api(separate_api.base, f"/api/durably/run?runId={run_id}")["status"] == "completed"
    assert run_count(app) == 0

    long_run = trigger(separate_api.base, "count-up", {"n": 12, "delay": 0.3})
    expect(page.locator("#job-run-id")).to_have_text(long_run)  # follow_latest, through the other server
    expect(page.locator("#job-status")).to_have_text("running")
    separate_api.stop()
    expect(page.locator("#job-connection")).to_have_text("reconnecting")
    expect(page.locator("#job-error")).to_have_text("")  # down is not failed
    separate_api.start()
    expect(page.locator("#job-connection")).to_have_text(re.compile("open|closed"))
    expect(page.locator("#job-status")).to_have_text("completed", timeout=40_000)
