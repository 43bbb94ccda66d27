"""A page of another origin calling the API from a real Chromium: with its origin in `cors_origins`
it triggers a run (a JSON POST, so preflighted) and follows the run's EventSource to the end; without
it, the browser lets the page read nothing.

The page is served by a second server on 127.0.0.1 (another port: another origin, both loopback);
the API is `create_durably_handler` under uvicorn on a thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from durably_reflex import create_durably
from tests.server_fixtures import FAST, JOBS, WAIT, LiveServer, start_server

from .conftest import require_playwright

require_playwright()
from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# Trigger a run, then follow its stream until run:complete: what a page of the app would do.
TRIGGER_AND_FOLLOW = """async (api) => {
  try {
    const answer = await fetch(api + "/trigger", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({jobName: "no-input", input: {}}),
    });
    const {runId} = await answer.json();
    const events = await new Promise((resolve, reject) => {
      const seen = [];
      const source = new EventSource(api + "/subscribe?runId=" + encodeURIComponent(runId));
      source.onmessage = (message) => {
        const event = JSON.parse(message.data);
        seen.push(event.type);
        if (event.type === "run:complete") { source.close(); resolve(seen); }
      };
      source.onerror = () => { source.close(); reject(new Error("EventSource failed after " + seen)); };
    });
    return {status: answer.status, events};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>app</title><p id='app'>another origin</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    """The origin of a page on another port of 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(WAIT)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`api(**handler_options)` → the base URL of an API served on a thread of its own until the test ends."""
    stops: list[Callable[[], None]] = []

    def start(**options: Any) -> str:
        ready: list[LiveServer] = []
        started = threading.Event()
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        async def serve() -> None:
            durably = create_durably(f"sqlite:///{tmp_path / f'api-{len(stops)}.db'}", **FAST)
            durably.register(**JOBS)
            await durably.init()
            server = await start_server(durably, **options)
            ready.append(server)
            started.set()
            try:
                await stop.wait()
            finally:
                await server.close()
                await durably.close(timeout=5)

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        assert started.wait(WAIT), "the API did not start"

        def halt() -> None:
            loop.call_soon_threadsafe(stop.set)
            thread.join(WAIT)
            loop.close()

        stops.append(halt)
        return ready[0].base_url

    yield start
    for halt in stops:
        halt()


def test_a_listed_origins_page_triggers_a_run_and_follows_its_stream(page: Page, site: str, api: Any) -> None:
    base_url = api(cors_origins=[site])
    page.goto(site)
    result = page.evaluate(TRIGGER_AND_FOLLOW, base_url)
    assert result.get("status") == 200, result
    events = result["events"]
    assert events[0] == "run:snapshot" and events[-1] == "run:complete", events
    assert events.count("run:start") == 1 and events.count("run:complete") == 1, events


def test_a_page_of_an_origin_not_listed_reads_nothing(page: Page, site: str, api: Any) -> None:
    base_url = api()
    page.goto(site)
    assert page.evaluate(TRIGGER_AND_FOLLOW, base_url) == {"error": "TypeError: Failed to fetch"}
