"""The harness itself: a real `reflex run` of the smoke app, driven by a real Chromium."""

from __future__ import annotations

import re

import psutil
import pytest

from .conftest import SMOKE_APP, ReflexServerFactory, require_playwright
from .reflex_server import ReflexServer, ReflexServerError, start_reflex_app

require_playwright()
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_click_updates_the_counter(page: Page, smoke_server: ReflexServer) -> None:
    page.goto(smoke_server.frontend_url)
    expect(page.locator("#title")).to_have_text("smoke")
    expect(page.locator("#count")).to_have_text("0")
    page.locator("#increment").click()
    expect(page.locator("#count")).to_have_text("1")
    page.locator("#increment").click()
    page.locator("#increment").click()
    expect(page.locator("#count")).to_have_text("3")


def test_background_event_update_arrives(page: Page, smoke_server: ReflexServer) -> None:
    page.goto(smoke_server.frontend_url)
    expect(page.locator("#background")).to_have_text("idle")
    page.locator("#start-background").click()
    # The handler sleeps 0.5 s between its two updates; both reach the page.
    expect(page.locator("#background")).to_have_text(re.compile("running|done"))
    expect(page.locator("#background")).to_have_text("done")


def test_each_page_has_its_own_state(page: Page, smoke_server: ReflexServer) -> None:
    """A new browser context per test: this page starts from 0 whatever the others clicked."""
    page.goto(smoke_server.frontend_url)
    expect(page.locator("#count")).to_have_text("0")


def test_environment_reaches_the_app(page: Page, smoke_server: ReflexServer) -> None:
    page.goto(smoke_server.url("/"))
    expect(page.locator("#greeting")).to_have_text("hello from the test")


def test_only_loopback_and_a_clean_stop(page: Page, reflex_server: ReflexServerFactory) -> None:
    """An instance with another environment (the factory stops the first one) listens on
    127.0.0.1 only, and stopping it leaves no process of its tree behind. Runs last: the smoke
    server of the other tests would be started again otherwise."""
    server = reflex_server(SMOKE_APP, env={"SMOKE_GREETING": "second"})
    tree = [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]
    listening = {
        conn.laddr for proc in tree for conn in proc.net_connections(kind="inet") if conn.status == psutil.CONN_LISTEN
    }
    assert listening, "the app's processes listen on nothing"
    assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening
    page.goto(server.frontend_url)
    expect(page.locator("#greeting")).to_have_text("second")
    with pytest.raises(ReflexServerError, match="already served"):
        start_reflex_app(SMOKE_APP)

    server.stop()
    assert server.process.poll() is not None
    still_alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not still_alive, [(p.pid, p.cmdline()) for p in still_alive]
