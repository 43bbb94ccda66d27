"""Fixtures and helpers of the dashboard's browser tests (test_dashboard*.py): the dashboard of the
repository (app/app.py: `reflex run --env prod` of the repository root) on a SQLite database of its
own, and the HTTP API it mounts, to act as another client and to check what the page shows.

The database is one per test session at a fixed place under pytest's base temporary directory, so
every module's `dashboard` fixture (`shared_dashboard`) asks for the same environment, hence gets
the same running app (the session's `reflex_server` starts an app once per app directory and
environment). Tests share it:
count what they made (by run id, or before/after), never all runs, and cancel what they leave running.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from .conftest import ReflexServerFactory, require_playwright
from .reflex_server import REPO_ROOT, ReflexServer

require_playwright()
from playwright.sync_api import Page, expect

API = "/api/durably"
PAGE_SIZE = 20  # the dashboard's runs page: durably_reflex/dashboard/pages.py, PAGE_SIZE
FINISHED = ("completed", "failed", "cancelled")


def dashboard_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The shared dashboard's environment: the same in every module of the session."""
    folder = tmp_path_factory.getbasetemp() / "dashboard-db"
    folder.mkdir(exist_ok=True)
    return {"DURABLY_DB_URL": f"sqlite:///{folder / 'durably.db'}", "DURABLY_APP": "app.jobs:durably"}


def shared_dashboard(reflex_server: ReflexServerFactory, tmp_path_factory: pytest.TempPathFactory) -> ReflexServer:
    """The dashboard the modules share (started by the first to ask); a module's `dashboard`
    fixture returns it, asking for `page` first (see conftest.py)."""
    return reflex_server(REPO_ROOT, env=dashboard_env(tmp_path_factory))


def api_get(server: ReflexServer, path: str) -> Any:
    with urllib.request.urlopen(server.url(API + path), timeout=30) as response:
        return json.loads(response.read())


def api_post(server: ReflexServer, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        server.url(API + path),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def trigger(server: ReflexServer, job_name: str, input: dict[str, Any] | None = None) -> str:
    """Trigger a run as another client would (over HTTP, not through the page); its id."""
    return api_post(server, "/trigger", {"jobName": job_name, "input": input or {}})["runId"]


def cancel(server: ReflexServer, run_id: str) -> None:
    """Cancel a run if it is still going (tests leave no long run behind for the next ones)."""
    try:
        api_post(server, f"/cancel?runId={run_id}", {})
    except urllib.error.HTTPError as error:
        if error.code not in (404, 409):
            raise


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


def wait_for_steps(server: ReflexServer, run_id: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The run's stored steps once it has at least `count` (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        steps = api_get(server, f"/steps?runId={run_id}")
        if len(steps) >= count or time.monotonic() > deadline:
            return steps
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


def row(page: Page, run_id: str):  # a Locator
    return page.locator(f".durably-run-row[data-run-id='{run_id}']")


def header_status(page: Page):  # the run page's status badge (a Locator)
    return page.locator(".durably-run-detail .durably-status").first


def wait_for_live_table(page: Page) -> None:
    """The runs page has loaded its first page and follows the runs stream."""
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    expect(page.locator(".durably-run-row").first.or_(page.locator(".durably-runs-empty"))).to_be_visible()
