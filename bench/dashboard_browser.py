"""Dashboard benchmark in the browser: the runs page's first page with many stored runs.

    .venv/bin/python bench/dashboard_browser.py [--runs 100000] [--loads 10] [--db bench/results/dashboard-browser.db] [--keep]

Seeds a SQLite database with `--runs` runs (`bench.dashboard.seed_runs`), serves the real dashboard
on it (`reflex run --env prod` of the repository root, through the browser tests' harness), waits
until the worker has settled the seeded runs it can claim, then opens the runs page `--loads` times
in Debian's Chromium and measures, in the page, the time from navigation start to the first run row
in the DOM (a MutationObserver records `performance.now()`), checked visible by Playwright:

- cold: a new browser context each time (empty cache, new Reflex session and state);
- warm: the same context, reloaded (cached bundle, same session).

Printed beside it: the `/runs?limit=21` query the page's state sends, timed over HTTP against the
dashboard's own backend and as the storage call alone (`Durably.get_runs`). Target: first page
under 1 s (p50).

Measured here (2 shared cores, 100,000 runs): first run row cold p50 2.1 s / p95 2.3 s, warm p50
1.0 s / p95 1.2 s, while `/runs?limit=21` takes 11 ms over HTTP and 2.5 ms at the storage call. The
data is not the cost: in a cold load the HTML arrives in ~20 ms, the JS bundle boots and opens the
socket at ~0.8 s, the socket.io handshake and `hydrate_and_load` take ~0.4 s more, the state's
`attach` (query included) ~0.3 s, the render ~0.1 s; 10,000 runs load in the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dashboard import percentile, seeded_database, table, timings  # noqa: E402
from tests.browser.reflex_server import reflex_app  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
TARGET_MS = 1000.0
FIRST_ROW_OBSERVER = """
(() => {
  const seen = () => {
    if (window.__firstRowAt === undefined && document.querySelector('.durably-run-row')) {
      window.__firstRowAt = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, {childList: true, subtree: true});
})();
"""


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def wait_until_settled(api: str, timeout: float = 300) -> None:
    """Until the stored counts per status stop changing (the worker claims the seeded runs of the
    example jobs it knows and recovers stale "running" ones), bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    previous, same = None, 0
    while time.monotonic() < deadline and same < 3:
        counts = get_json(api + "/stats")["counts"]
        same = same + 1 if counts == previous else 0
        previous = counts
        time.sleep(1.0)
    print(f"settled: {previous}" if same >= 3 else f"still changing after {timeout:.0f}s: {previous}", flush=True)


def first_row_ms(page: Any, url: str, *, reload: bool) -> tuple[float, float]:
    """(in-page ms from navigation start to the first run row, wall ms around the navigation until
    Playwright sees a row visible)."""
    from playwright.sync_api import expect

    started = time.perf_counter()
    if reload:
        page.reload(wait_until="commit")
    else:
        page.goto(url, wait_until="commit")
    expect(page.locator(".durably-run-row").first).to_be_visible(timeout=60_000)
    wall = (time.perf_counter() - started) * 1000
    page.wait_for_function("window.__firstRowAt !== undefined", timeout=60_000)
    return float(page.evaluate("window.__firstRowAt")), wall


def browser_loads(origin: str, loads: int) -> dict[str, list[tuple[float, float]]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            warmup = browser.new_context()  # the server's first page load fills its caches
            first_row_ms(_observed(warmup.new_page()), origin + "/", reload=False)
            warmup.close()
            for _ in range(loads):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                results["cold"].append(first_row_ms(_observed(context.new_page()), origin + "/", reload=False))
                context.close()
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = _observed(context.new_page())
            first_row_ms(page, origin + "/", reload=False)
            for _ in range(loads):
                results["warm"].append(first_row_ms(page, origin + "/", reload=True))
            context.close()
        finally:
            browser.close()
    return results


def _observed(page: Any) -> Any:
    page.add_init_script(FIRST_ROW_OBSERVER)
    page.set_default_timeout(60_000)
    return page


async def runs_query_ms(db_url: str, api: str, repeat: int) -> tuple[list[float], list[float]]:
    import httpx

    from durably_reflex import create_durably

    async with httpx.AsyncClient() as http:

        async def over_http() -> Any:
            response = await http.get(api + "/runs", params={"limit": 21})
            response.raise_for_status()
            return response.json()

        served = await timings(over_http, repeat)
    durably = create_durably(db_url)  # no worker: reads only
    try:
        await durably.migrate()
        alone = await timings(lambda: durably.get_runs(limit=21), repeat)
    finally:
        await durably.close()
    return served, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=10, help="page loads per kind (cold, warm)")
    parser.add_argument("--repeat", type=int, default=50, help="timed /runs queries per way")
    parser.add_argument("--db", default=str(ROOT / "bench" / "results" / "dashboard-browser.db"))
    parser.add_argument("--keep", action="store_true", help="reuse the database if it exists (no reseeding)")
    args = parser.parse_args()
    db_url = seeded_database(Path(args.db), args.runs, keep=args.keep)

    env = {"DURABLY_DB_URL": db_url, "DURABLY_APP": "app.jobs:durably"}
    with reflex_app(ROOT, env) as server:
        print(f"dashboard on {server.frontend_url} after {server.started_in:.0f} s", flush=True)
        api = server.url("/api/durably")
        wait_until_settled(api)
        total = get_json(api + "/stats")["counts"]
        loads = browser_loads(server.frontend_url, args.loads)
        served, alone = asyncio.run(runs_query_ms(db_url, api, args.repeat))

    def cells(values: list[float]) -> list[str]:
        return [f"{percentile(values, 50):.0f}", f"{percentile(values, 95):.0f}", f"{statistics.mean(values):.0f}"]

    rows = []
    for kind, samples in loads.items():
        rows.append([f"first run row, {kind} (in page)", *cells([s[0] for s in samples])])
        rows.append([f"first run row, {kind} (around goto)", *cells([s[1] for s in samples])])
    rows.append(["/runs?limit=21 over HTTP (dashboard backend)", *(f"{v:.1f}" for v in (percentile(served, 50), percentile(served, 95), statistics.mean(served)))])
    rows.append(["/runs?limit=21 storage call alone", *(f"{v:.1f}" for v in (percentile(alone, 50), percentile(alone, 95), statistics.mean(alone)))])
    print(f"\n{sum(total.values()):,} runs {total}; {args.loads} loads per kind, {args.repeat} queries per way; milliseconds")
    print(table(["measure", "p50", "p95", "mean"], rows))
    cold_p50 = percentile([s[0] for s in loads["cold"]], 50)
    verdict = "meets" if cold_p50 < TARGET_MS else "misses"
    print(f"\ncold first page p50 {cold_p50:.0f} ms {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
