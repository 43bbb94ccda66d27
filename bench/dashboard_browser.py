"""Dashboard benchmark in the browser: the runs page's first page with many stored runs.

    .venv/bin/python bench/dashboard_browser.py [--runs 100000] [--loads 10] [--db bench/results/dashboard-browser.db]
        [--keep] [--before REV ...] [--after REV]

Seeds a SQLite database with `--runs` runs (`bench.dashboard.seed_runs`), serves the real dashboard
on it (`reflex run --env prod` of the repository root, through the browser tests' harness), waits
until the worker has settled the seeded runs it can claim, then opens the runs page `--loads` times
in Debian's Chromium and measures, in the page, the time from navigation start to the first run row
in the DOM (a MutationObserver records `performance.now()`), checked visible by Playwright:

- cold: a new browser context each time (empty cache, new Reflex session and state);
- warm: the same context, reloaded (cached bundle, same session: the state already holds the rows,
  which come with the hydration).

Beside it, from the page: when the HTML arrived, when the Reflex socket opened, the frames it
received before the first row (how many, their size) and the time from the last of them (the one
bringing the rows) to the row in the DOM (the render), and the scripts fetched. Then the
`/runs?limit=21` query the page's state sends, timed over HTTP against the dashboard's own backend
and as the storage call alone (`Durably.get_runs`). Targets (issue 14): first row under 1 s cold and
under 500 ms warm (p50).

`--before REV` (repeatable) also serves that commit (`git archive`) or folder, with this checkout's
installed frontend packages copied in, on a database of its own seeded by its own code (an earlier
commit refuses a database a later one has migrated); `--after REV` serves a commit or folder in
place of this checkout. Every load round goes through each served code in turn, so the machine's
load falls on all alike; compare them as ratios within one run.

Measured here (2 shared cores, loaded by other work; 100,000 runs; 12 loads each): see the README's
UI benchmarks. What the first row waits for is not the data (`/runs?limit=21` takes a few ms): it is
the browser's main thread (the script's evaluation and React's renders) and the socket's round
trips (connection, hydration, the table's attach).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cli_server import code_for
from bench.dashboard import percentile, seeded_database, table, timings
from tests.browser.reflex_server import reflex_app

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
TARGET_MS = {"cold": 1000.0, "warm": 500.0}
# In the page, before its scripts: the time of the first run row in the DOM, and the Reflex
# socket's traffic (socket.io over one WebSocket): when it opened, and the frames received (time,
# characters) until that row.
PAGE_PROBE = """
(() => {
  const probe = window.__probe = {frames: []};
  const seen = () => {
    if (probe.firstRow === undefined && document.querySelector('.durably-run-row')) {
      probe.firstRow = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, {childList: true, subtree: true});
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      probe.wsCreated ??= performance.now();
      this.addEventListener('open', () => { probe.wsOpen ??= performance.now(); });
      this.addEventListener('message', (event) => {
        if (probe.firstRow === undefined) {
          probe.frames.push([performance.now(), typeof event.data === 'string' ? event.data.length : 0]);
        }
      });
    }
  };
})();
"""
PROBE_RESULT = """
(() => {
  const probe = window.__probe;
  const scripts = performance.getEntriesByType('resource').filter((r) => r.initiatorType === 'script'
    || r.name.endsWith('.js'));
  const nav = performance.getEntriesByType('navigation')[0];
  return {
    firstRow: probe.firstRow, wsCreated: probe.wsCreated ?? null, wsOpen: probe.wsOpen ?? null,
    frames: probe.frames, html: nav ? nav.responseEnd : null,
    scripts: scripts.length, scriptBytes: scripts.reduce((sum, r) => sum + (r.encodedBodySize || 0), 0),
  };
})()
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


@dataclass
class Load:
    """One page load, in milliseconds from navigation start (in the page's clock) unless said."""

    first_row: float
    wall: float  # around the navigation (Python's clock) until Playwright sees a row visible
    html: float | None  # the document's response end
    ws_open: float | None  # the Reflex socket open
    frames: int  # frames the socket received before the first row
    last_frame: float | None  # the last of them (the rows' delta: what follows is its render)
    chars: int  # their characters
    scripts: int  # scripts fetched (0 bytes when cached)
    script_kb: float


def measure_load(page: Any, url: str, *, reload: bool) -> Load:
    from playwright.sync_api import expect

    started = time.perf_counter()
    if reload:
        page.reload(wait_until="commit")
    else:
        page.goto(url, wait_until="commit")
    expect(page.locator(".durably-run-row").first).to_be_visible(timeout=60_000)
    wall = (time.perf_counter() - started) * 1000
    page.wait_for_function("window.__probe && window.__probe.firstRow !== undefined", timeout=60_000)
    found = page.evaluate(PROBE_RESULT)
    frames = found["frames"]
    return Load(
        first_row=float(found["firstRow"]),
        wall=wall,
        html=found["html"],
        ws_open=found["wsOpen"],
        frames=len(frames),
        last_frame=frames[-1][0] if frames else None,
        chars=sum(size for _, size in frames),
        scripts=found["scripts"],
        script_kb=found["scriptBytes"] / 1024,
    )


def browser_loads(origins: dict[str, str], loads: int) -> dict[tuple[str, str], list[Load]]:
    """`loads` cold and `loads` warm loads of each origin's runs page, the origins interleaved
    (each round loads every one), so that the machine's load falls on all alike."""
    from playwright.sync_api import sync_playwright

    results: dict[tuple[str, str], list[Load]] = {(name, kind): [] for name in origins for kind in ("cold", "warm")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for origin in origins.values():  # the server's first page load fills its caches
                warmup = browser.new_context()
                measure_load(_probed(warmup.new_page()), origin + "/", reload=False)
                warmup.close()
            for _ in range(loads):
                for name, origin in origins.items():
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    results[name, "cold"].append(measure_load(_probed(context.new_page()), origin + "/", reload=False))
                    context.close()
            warm_pages = {}
            for name, origin in origins.items():
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                warm_pages[name] = _probed(context.new_page())
                measure_load(warm_pages[name], origin + "/", reload=False)
            for _ in range(loads):
                for name, origin in origins.items():
                    results[name, "warm"].append(measure_load(warm_pages[name], origin + "/", reload=True))
            for page in warm_pages.values():
                page.context.close()
        finally:
            browser.close()
    return results


def _probed(page: Any) -> Any:
    page.add_init_script(PAGE_PROBE)
    page.set_default_timeout(60_000)
    return page


async def runs_query_ms(db_url: str, api: str, repeat: int, *, storage: bool) -> tuple[list[float], list[float]]:
    import httpx

    from durably_reflex import create_durably

    async with httpx.AsyncClient() as http:

        async def over_http() -> Any:
            response = await http.get(api + "/runs", params={"limit": 21})
            response.raise_for_status()
            return response.json()

        served = await timings(over_http, repeat)
    if not storage:
        return served, []
    durably = create_durably(db_url)  # no worker: reads only
    try:
        await durably.migrate()
        alone = await timings(lambda: durably.get_runs(limit=21), repeat)
    finally:
        await durably.close()
    return served, alone


def prepared_copy(rev: str) -> Path:
    """The code of `rev` (a commit, as `git archive`, or a folder) as a Reflex project of its own,
    with this checkout's installed frontend packages copied in (`.web` less its build), so that it
    starts without an `npm install`."""
    folder = Path(code_for(rev))
    web = ROOT / ".web"
    if web.is_dir() and not (folder / ".web").exists():
        top_build = lambda parent, names: ["build"] if Path(parent) == web else []  # noqa: E731  (not node_modules' own)
        shutil.copytree(web, folder / ".web", symlinks=True, ignore=top_build)
    return folder


def seeded_by(folder: Path, path: Path, runs: int, keep: bool) -> str:
    """The URL of a database at `path` seeded by `folder`'s own code, in a process of its own: an
    earlier commit refuses a database a later one has migrated (and their tables may differ)."""
    seed = (
        "import sys; from pathlib import Path; from bench.dashboard import seeded_database; "
        "print(seeded_database(Path(sys.argv[1]), int(sys.argv[2]), keep=sys.argv[3] == '1'))"
    )
    command = [sys.executable, "-c", seed, str(path), str(runs), "1" if keep else "0"]
    env = {**os.environ, "PYTHONPATH": str(folder)}
    done = subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True, text=True)
    print(done.stdout.strip(), flush=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=10, help="page loads per kind (cold, warm) and code")
    parser.add_argument("--repeat", type=int, default=50, help="timed /runs queries per way")
    parser.add_argument("--db", default=str(ROOT / "bench" / "results" / "dashboard-browser.db"))
    parser.add_argument("--keep", action="store_true", help="reuse the database if it exists (no reseeding)")
    parser.add_argument(
        "--before",
        metavar="REV",
        action="append",
        default=[],
        help="also serve this commit (git archive) or folder, interleaved (repeatable)",
    )
    parser.add_argument("--after", metavar="REV", help="serve this commit or folder instead of this checkout")
    args = parser.parse_args()

    after = f"after ({args.after})" if args.after else "this checkout"
    codes = {
        **{f"before ({rev})": prepared_copy(rev) for rev in args.before},
        after: prepared_copy(args.after) if args.after else ROOT,
    }
    path = Path(args.db)
    databases = {
        name: seeded_by(folder, path.with_name(f"{path.stem}-{index}{path.suffix}"), args.runs, args.keep)
        if folder != ROOT
        else seeded_database(path, args.runs, keep=args.keep)
        for index, (name, folder) in enumerate(codes.items())
    }
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, folder in codes.items():
            # The app's own folder first on the path: its durably_reflex, not this checkout's.
            env = {"DURABLY_DB_URL": databases[name], "DURABLY_APP": "app.jobs:durably", "PYTHONPATH": str(folder)}
            servers[name] = stack.enter_context(reflex_app(folder, env))
            print(
                f"{name}: dashboard on {servers[name].frontend_url} after {servers[name].started_in:.0f} s", flush=True
            )
        for server in servers.values():
            wait_until_settled(server.url("/api/durably"))
        api = servers[after].url("/api/durably")
        total = get_json(api + "/stats")["counts"]
        loads = browser_loads({name: server.frontend_url for name, server in servers.items()}, args.loads)
        # The storage call runs this checkout's code: on another code's database only its HTTP is timed.
        served, alone = asyncio.run(runs_query_ms(databases[after], api, args.repeat, storage=not args.after))

    print(f"\n{sum(total.values()):,} runs {total}; {args.loads} loads per kind and code, interleaved; milliseconds")
    print(table(["code", "load", "measure", "p50", "p95", "mean"], report_rows(loads)))
    print(table(["query", "p50", "p95", "mean"], [
        ["/runs?limit=21 over HTTP (dashboard backend)", *(f"{v:.1f}" for v in summary(served))],
        *([["/runs?limit=21 storage call alone", *(f"{v:.1f}" for v in summary(alone))]] if alone else []),
    ]))  # fmt: skip
    print()
    for name in codes:
        for kind, target in TARGET_MS.items():
            p50 = percentile([load.first_row for load in loads[name, kind]], 50)
            verdict = "meets" if p50 < target else "misses"
            print(f"{name}: {kind} first run row p50 {p50:.0f} ms {verdict} the {target:.0f} ms target")
    for before in list(codes)[:-1]:
        for kind in TARGET_MS:
            ratio = percentile([load.first_row for load in loads[after, kind]], 50) / percentile(
                [load.first_row for load in loads[before, kind]], 50
            )
            print(f"{kind}: {after} / {before} = {ratio:.2f}")


def summary(values: list[float]) -> tuple[float, float, float]:
    return percentile(values, 50), percentile(values, 95), statistics.mean(values)


def report_rows(loads: dict[tuple[str, str], list[Load]]) -> list[list[str]]:
    measures: list[tuple[str, str, Any]] = [
        ("first run row (in page)", "{:.0f}", lambda load: load.first_row),
        ("first run row (around goto)", "{:.0f}", lambda load: load.wall),
        ("HTML received", "{:.0f}", lambda load: load.html),
        ("socket open", "{:.0f}", lambda load: load.ws_open),
        ("socket open to first row", "{:.0f}", lambda load: load.first_row - load.ws_open if load.ws_open else None),
        ("rows' frame to first row (render)", "{:.0f}", lambda x: x.first_row - x.last_frame if x.last_frame else None),
        ("frames received before the row", "{:.0f}", lambda load: load.frames),
        ("their kB", "{:.1f}", lambda load: load.chars / 1000),
        ("scripts fetched, kB", "{:.0f}", lambda load: load.script_kb),
    ]
    rows = []
    for (name, kind), samples in loads.items():
        for label, form, value in measures:
            values = [v for v in map(value, samples) if v is not None]
            if values:
                rows.append([name, kind, label, *(form.format(v) for v in summary(values))])
    return rows


if __name__ == "__main__":
    main()
