"""Fixtures of the browser tests: a real Chromium driven by Playwright, and real Reflex apps.

- `browser` (session): Playwright's Chromium, Debian's /usr/bin/chromium (never a downloaded one;
  `CHROMIUM_PATH` overrides the path). Without it or without the `playwright` package the browser
  tests are skipped, saying why, unless `CI` is set: then they fail.
- `page` (function): a new page in a new browser context (fresh cookies and storage) per test.
- `reflex_server(app_dir, env=None)` (session): starts the Reflex app in `app_dir` (see
  reflex_server.py) and returns a `ReflexServer` (`.frontend_url`, `.backend_url`, `.url(path)`,
  `.log_tail()`, `.stop()`); the same (app_dir, env) is started once per session and every app is
  stopped at the end of the session. Asking for an app with another `env` stops its running
  instance first (one instance per app directory), so group tests by environment. For an app
  per module or per test, use the context manager `reflex_app(app_dir, env)` (from
  .reflex_server) in a fixture of that scope (no session instance of that app may be running).
- `smoke_server` (session): the harness's own smoke app (tests/browser/smoke_app).

A test module starts with `require_playwright()` (from .conftest) before importing from
playwright, and its tests ask for `page` before any server fixture, so that a missing browser
skips (or, under CI, fails) the test before an app is started for nothing.

Every test under tests/browser gets the `browser` marker (`pytest -m "not browser"` leaves them
out). Browser tests are plain `def` tests: Playwright's sync API cannot run inside an event loop.
When a test fails, the tails of the logs of the running Reflex apps are added to its report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .reflex_server import RUNNING, ReflexServer, start_reflex_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

HERE = Path(__file__).resolve().parent
SMOKE_APP = HERE / "smoke_app"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Upper bounds of Playwright's waits (actions, navigation, expect): generous, 2 shared cores.
ACTION_TIMEOUT_MS = 30_000
NAVIGATION_TIMEOUT_MS = 60_000
EXPECT_TIMEOUT_MS = 20_000

ReflexServerFactory = Callable[..., ReflexServer]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and RUNNING:
        for server in RUNNING:
            report.sections.append(
                (f"Reflex app {server.app_dir.name} on {server.frontend_url} (log {server.log_path})",
                 server.log_tail(40))
            )  # fmt: skip
    return report


def _unavailable(reason: str, *, module_level: bool = False) -> None:
    """Skip locally; under CI a missing browser is a failure, not a silent skip."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def require_playwright() -> None:
    """Call at the top of a test module, before importing from playwright: skips the module
    locally (fails it under CI) when the package is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        _unavailable(f"the playwright package is not installed ({error}); run scripts/setup.sh", module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:
        _unavailable(f"the playwright package is not installed ({error}); run scripts/setup.sh")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM}; scripts/test.sh installs Debian's chromium with apt-get")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=120_000)
        except Exception as error:
            _unavailable(f"Chromium at {CHROMIUM} did not start: {error}")
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def reflex_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReflexServerFactory]:
    """`reflex_server(app_dir, env=None, **options)` → a running `ReflexServer`, started once per
    session for each (app_dir, env); all are stopped (whole process groups) when the session ends.
    Their logs go to pytest's temporary directory (reflex-logs*/)."""
    started: dict[tuple[Path, tuple[tuple[str, str], ...]], ReflexServer] = {}
    logs = tmp_path_factory.mktemp("reflex-logs")

    def get(app_dir: Path | str, env: Mapping[str, str] | None = None, **options: Any) -> ReflexServer:
        key = (Path(app_dir).resolve(), tuple(sorted((env or {}).items())))
        server = started.get(key)
        if server is None or not server.is_running():
            for other_key, other in started.items():
                if other_key[0] == key[0] and other_key != key:
                    other.stop()  # one instance per app directory at a time (see reflex_server.py)
            options.setdefault("log_path", logs / f"{key[0].name}-{len(started) + 1}.log")
            server = started[key] = start_reflex_app(app_dir, env, **options)
            print(f"\n[reflex] {key[0].name} ready on {server.frontend_url} after {server.started_in:.1f}s")
        return server

    yield get
    errors = []
    for server in started.values():
        try:
            server.stop()
        except Exception as error:
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def smoke_server(reflex_server: ReflexServerFactory) -> ReflexServer:
    return reflex_server(SMOKE_APP, env={"SMOKE_GREETING": "hello from the test"})
