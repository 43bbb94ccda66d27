"""Screenshots of the dashboard for the README: docs/screenshots/{runs,run,jobs}.png and their dark
versions ({runs,run,jobs}-dark.png); runs-search.png (a search with runs selected), runs-bulk.png
(the confirmation of an action on every run a search matches) and run-attempts.png (a retried run's
attempts, a step's "Replay from here" and the run's replay).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--width 1280]

Starts the dashboard (`reflex run --env prod` of the repository root, through the browser tests'
harness) on a fresh SQLite database in a temporary directory, triggers the example jobs over the
HTTP API, some with labels (a completed import, a report that fails and one retried to completion
then replayed from a step, newsletters, a cancelled cleanup and one still running, and newsletters
scheduled for later), then photographs the pages in Debian's Chromium
(`CHROMIUM_PATH` overrides /usr/bin/chromium). The app is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser.reflex_server import reflex_app  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
FINISHED = ("completed", "failed", "cancelled")


class Api:
    def __init__(self, origin: str) -> None:
        self.base = origin + "/api/durably"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def trigger(
        self, job_name: str, input: dict[str, Any] | None = None, labels: dict[str, str] | None = None, **timing: Any
    ) -> str:
        body = {"jobName": job_name, "input": input or {}, "labels": labels or {}, **timing}
        return self.post("/trigger", body)["runId"]

    def wait(self, run_id: str, statuses: tuple[str, ...], timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status = self.get(f"/run?runId={run_id}")["status"]
            if status in statuses:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {status} after {timeout}s")
            time.sleep(0.3)


def seed(api: Api) -> dict[str, str]:
    """A handful of runs in every state; the ids of those worth a picture."""
    imported = api.trigger("import-csv", {"seconds_per_row": 0.3}, {"customer": "acme", "source": "crm"})
    newsletter = api.trigger(
        "send-newsletter", {"subject": "Autumn release notes", "priority": "high"}, {"customer": "acme"}
    )
    failed = api.trigger("publish-report", {"title": "Quarterly numbers"}, {"customer": "globex"})
    retried = api.trigger("publish-report", {"title": "Monthly numbers"}, {"customer": "acme", "tier": "gold"})
    cancelled = api.trigger("slow-cleanup", {"batches": 40, "seconds_per_batch": 0.5})
    for run_id in (imported, newsletter):
        api.wait(run_id, FINISHED)
    api.wait(failed, FINISHED)
    api.wait(retried, FINISHED)
    api.post(f"/retry?runId={retried}", {})
    api.wait(cancelled, ("running",))
    time.sleep(2)
    api.post(f"/cancel?runId={cancelled}", {})
    api.wait(retried, ("completed",))
    replay = api.post("/replay", {"runId": retried, "fromStep": "publish"})["id"]
    api.wait(replay, FINISHED)
    for customer in ("acme", "globex", "acme"):  # for later: pending until then
        api.trigger(
            "send-newsletter", {"subject": "Winter sale"}, {"customer": customer, "campaign": "winter"}, delay=86400
        )
    api.trigger("import-csv", {"seconds_per_row": 0.2}, {"customer": "globex", "source": "upload"})
    running = api.trigger("slow-cleanup", {"batches": 600, "seconds_per_batch": 1.0})  # still going in the pictures
    api.wait(running, ("running",))
    time.sleep(4)
    return {"imported": imported, "failed": failed, "retried": retried, "running": running}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    with tempfile.TemporaryDirectory(prefix="durably-screenshots-") as tmp:
        env = {"DURABLY_DB_URL": f"sqlite:///{tmp}/durably.db", "DURABLY_APP": "app.jobs:durably"}
        print("starting the dashboard…", flush=True)
        with reflex_app(ROOT, env) as server, sync_playwright() as playwright:
            print(f"dashboard on {server.frontend_url} after {server.started_in:.0f}s; seeding runs…", flush=True)
            api = Api(server.frontend_url)
            runs = seed(api)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": args.width, "height": 900}, device_scale_factor=1)
                page.set_default_timeout(60_000)

                def shot(name: str, *, full_page: bool = True) -> None:
                    page.wait_for_timeout(1500)  # fonts, chart layout, relative times
                    page.screenshot(path=str(out / name), full_page=full_page)
                    print(f"saved {out / name}", flush=True)

                page.goto(server.url("/?q=customer%3Dacme"))
                expect(page.locator(".durably-run-row")).to_have_count(len(api.get("/runs?label.customer=acme")))
                for row in page.locator(".durably-run-row[data-status='pending'] .durably-select-run").all():
                    row.click()
                expect(page.locator(".durably-selection-bar")).to_be_visible()
                shot("runs-search.png")

                page.goto(server.url("/?q=campaign%3Dwinter"))
                expect(page.locator(".durably-run-row")).to_have_count(3)
                page.locator(".durably-bulk-matching").click()
                page.locator(".durably-bulk-matching-cancel").click()
                expect(page.locator(".durably-bulk-question")).to_contain_text("Cancel all 3")
                shot("runs-bulk.png", full_page=False)
                page.locator(".durably-bulk-keep").click()

                page.goto(server.url(f"/runs/{runs['retried']}"))
                expect(page.locator(".durably-attempt")).to_have_count(2)
                expect(page.locator(".durably-replay")).to_have_count(1)
                page.locator(".durably-step").filter(has_text="publish").hover()
                shot("run-attempts.png")

                for suffix in ("", "-dark"):
                    page.goto(server.url("/"))
                    expect(page.locator(".durably-run-row")).to_have_count(len(api.get("/runs")))
                    expect(page.locator(".durably-runs-chart .recharts-bar-rectangle").first).to_be_visible()
                    if suffix:  # hydrated (rows shown): the toggle's click is not lost
                        page.locator("#color-mode").click()
                        expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
                    shot(f"runs{suffix}.png")

                    page.goto(server.url(f"/runs/{runs['imported']}"))
                    expect(page.locator(".durably-run-detail .durably-status").first).to_have_attribute(
                        "data-status", "completed"
                    )
                    expect(page.locator(".durably-log-line")).to_have_count(5)
                    shot(f"run{suffix}.png")

                    page.goto(server.url("/jobs"))
                    expect(page.locator("#job-slow-cleanup")).to_be_visible()
                    report = page.locator("#job-publish-report")
                    if not suffix:  # a card with its last run (it fails at render: how it ended shows)
                        report.locator(".durably-trigger").click()
                    expect(report.locator(".durably-job-run")).to_have_attribute("data-status", "failed")
                    shot(f"jobs{suffix}.png")
            finally:
                browser.close()
                api.post(f"/cancel?runId={runs['running']}", {})


if __name__ == "__main__":
    main()
