"""UI latency benchmark (issue 4): from `step.progress()` in a job to the value in a browser's DOM,
and what 50 open tabs cost the server (streams, hook consumers, RSS) and give back when closed.

    .venv/bin/python bench/ui_latency.py [--updates 200] [--interval 0.2] [--tabs 50] [--cycles 2]
                                         [--tab-window 15] [--zero-timeout 30] [--quick]

The hooks test app (tests/browser/hooks_app) is served for real (`reflex run --env prod`, one
backend process serving the page, the API and the worker; default progress throttle 0.1 s) with a
fresh SQLite database, and driven by Playwright's Chromium (/usr/bin/chromium). Its `/bench` page
has a `use_job` panel for the `tick` job, which reports `step.progress(i, n, "<i> <send time>")`
on a fixed schedule (every `--interval` s, no drift), the send time being `time.time()` just before
the call. An init script in every tab runs a MutationObserver that records `Date.now()` each time
`#bench-message` shows a new text. Same machine, same clock: latency = DOM time - send time.

Phase 1, latency: one tab on /bench, a run of `--updates` progress reports triggered over HTTP (the
tab switches to it through `use_job`'s latest-runs stream). Reported: p50/p95/max over the updates
displayed, how many updates were coalesced (never displayed: the throttle or a state batch merged
them), and, for a breakdown, the same percentiles at a plain SSE reader in this process on
GET /subscribe?runId= (the API's part; DOM minus SSE is the hook state + websocket + React part).

Phase 2, tabs (`--cycles` times): a long `tick` run is started, `--tabs` tabs (one browser context)
open /bench and resume it (`use_job`'s auto_resume); once every tab shows the run live, the
server's open SSE streams and hook consumers (the app's GET /test/stats), the backend's RSS (the
process tree of the process listening on the app's port, via psutil) and its established TCP
connections are sampled for `--tab-window` seconds, while every tab's observer records latencies,
an SSE probe (one more stream) records the API's part, and the CPU time of the backend and of the
browser (Chromium + Playwright, same 2 cores) is measured. Then the context is closed (every tab at
once) and /test/stats is polled every 100 ms until streams and consumers are back to their value
before the tabs (0): the time from the start of the close is reported. A second cycle shows
whether anything grows from one cycle to the next.

Prints a table; no assertions. Targets from the issue: p95 < 300 ms with the default 100 ms
throttle; no growth in connections after tabs close. Every wait is bounded; the app is stopped
at the end (whole process group). The machine is shared and noisy: read ratios and percentiles.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx
import psutil

from tests.browser.reflex_server import reflex_app

HOOKS_APP = ROOT / "tests" / "browser" / "hooks_app"
API = "/api/durably"
JOB = "tick"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_P95_MS = 300.0

# Records (text, Date.now()) whenever #bench-message shows a new text; the observer is set up before
# any of the page's scripts run and watches the whole document (the element appears on hydration).
OBSERVER_JS = """
(() => {
  window.__bench = [];
  let last = null;
  const check = () => {
    const el = document.getElementById('bench-message');
    const text = el ? el.textContent : null;
    if (text && text !== last) { last = text; window.__bench.push([text, Date.now()]); }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, characterData: true});
})();
"""


# -- small helpers -----------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict[str, Any], timeout: float = 10.0) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def backend_tree(port: int) -> list[psutil.Process]:
    """The process listening on `port` (the top-most one, if a worker shares the socket) and its
    descendants."""
    pids = {c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port
            and c.status == psutil.CONN_LISTEN and c.pid}  # fmt: skip
    if not pids:
        return []
    roots = [pid for pid in pids if not ({p.pid for p in psutil.Process(pid).parents()} & pids)]
    root = psutil.Process(roots[0])
    return [root, *root.children(recursive=True)]


def tree_rss_mb(tree: list[psutil.Process]) -> float:
    total = 0
    for process in tree:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 2**20


def cpu_seconds(tree: list[psutil.Process]) -> tuple[float, float]:
    """CPU seconds used so far by the backend tree, and by this script's other descendants
    (Chromium, Playwright's driver)."""
    backend = {p.pid for p in tree}
    own, others = 0.0, 0.0
    processes = {p.pid: p for p in [*tree, *psutil.Process().children(recursive=True)]}
    for pid, process in processes.items():
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            if pid in backend:
                own += times.user + times.system
            else:
                others += times.user + times.system
    return own, others


def established(port: int) -> int:
    """Established TCP connections to the app's port (websockets, SSE, keep-alive HTTP)."""
    return sum(1 for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port
               and c.status == psutil.CONN_ESTABLISHED)  # fmt: skip


def latencies(records: list[list[Any]]) -> tuple[list[float], set[int]]:
    """(latency in ms of each displayed update, the update numbers displayed) from one tab's
    observer records ("<i> <send time>", Date.now())."""
    out: list[float] = []
    seen: set[int] = set()
    for text, dom_ms in records:
        parts = str(text).split()
        if len(parts) != 2:
            continue
        i, sent = int(parts[0]), float(parts[1])
        if i in seen:
            continue
        seen.add(i)
        out.append(dom_ms - sent * 1000.0)
    return out, seen


class SseProbe(threading.Thread):
    """A plain SSE reader on GET /subscribe?runId=: when each progress event reaches an HTTP client."""

    def __init__(self, base: str, run_id: str, timeout: float) -> None:
        super().__init__(daemon=True)
        self.url = f"{base}{API}/subscribe"
        self.run_id = run_id
        self.timeout = timeout
        self.arrivals: dict[int, float] = {}  # update i -> latency ms (first arrival)
        self.error: str | None = None
        self.ready = threading.Event()
        self.stopping = threading.Event()  # set: return at the next line read

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0, read=5.0)) as client,
                client.stream("GET", self.url, params={"runId": self.run_id}) as response,
            ):
                self.ready.set()
                for line in response.iter_lines():
                    now = time.time()
                    if time.monotonic() > deadline or self.stopping.is_set():
                        return
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if event.get("type") == "run:progress":
                        parts = str((event.get("progress") or {}).get("message", "")).split()
                        if len(parts) == 2:
                            self.arrivals.setdefault(int(parts[0]), (now - float(parts[1])) * 1000.0)
                    elif event.get("type") in ("run:complete", "run:fail", "run:cancel"):
                        return
        except Exception as error:
            self.error = repr(error)
        finally:
            self.ready.set()


# -- phases ----------------------------------------------------------------------------------------
def stats(base: str) -> dict[str, int]:
    return get_json(f"{base}/test/stats")


def trigger(base: str, n: int, interval: float) -> str:
    return post_json(f"{base}{API}/trigger", {"jobName": JOB, "input": {"n": n, "interval": interval}})["runId"]


def cancel(base: str, run_id: str) -> None:
    with contextlib.suppress(Exception):
        post_json(f"{base}{API}/cancel?runId={run_id}", {})


def phase_latency(browser: Any, base: str, updates: int, interval: float) -> dict[str, Any]:
    context = browser.new_context()
    context.add_init_script(OBSERVER_JS)
    page = context.new_page()
    try:
        before = stats(base)
        page.goto(f"{base}/bench", wait_until="load", timeout=60_000)
        # Attached: the tab's consumer runs and follows the job's latest runs.
        wait_for("the tab's consumer", lambda: stats(base)["consumers"] > before["consumers"], 60)
        time.sleep(0.5)
        run_id = trigger(base, updates, interval)
        probe = SseProbe(base, run_id, timeout=updates * interval + 60)
        probe.start()
        probe.ready.wait(10)
        page.wait_for_function(
            "document.getElementById('bench-status')?.textContent === 'completed'",
            timeout=(updates * interval + 60) * 1000,
        )
        time.sleep(0.5)
        records = page.evaluate("window.__bench")
        probe.join(10)
    finally:
        context.close()
    dom, seen = latencies(records)
    return {
        "run_id": run_id,
        "updates": updates,
        "dom": dom,
        "displayed": len(seen),
        "coalesced": updates - len(seen),
        "final_shown": updates in seen,
        "sse": list(probe.arrivals.values()),
        "sse_received": len(probe.arrivals),
        "sse_error": probe.error,
    }


def phase_tabs(browser: Any, base: str, port: int, tabs: int, interval: float, window: float,
               zero_timeout: float) -> dict[str, Any]:  # fmt: skip
    tree = backend_tree(port)
    # The previous phase's tabs are closed; their consumers stop within ~2 s (liveness checks).
    with contextlib.suppress(TimeoutError):
        wait_for("the previous tabs' streams to end", lambda: not any(stats(base).values()), zero_timeout)
    before = stats(base)
    rss_before = tree_rss_mb(tree)
    conns_before = established(port)
    # Long enough for opening the tabs and the window; cancelled at the end.
    run_id = trigger(base, n=100_000, interval=interval)
    context = browser.new_context()
    context.add_init_script(OBSERVER_JS)
    pages = []
    opened_at = time.monotonic()
    closed = False
    try:
        for _ in range(tabs):
            page = context.new_page()
            page.goto(f"{base}/bench", wait_until="load", timeout=120_000)
            pages.append(page)
        # Every tab shows the run live: a progress message arrived after its consumer attached.
        for page in pages:
            page.wait_for_function(
                "(document.getElementById('bench-status')?.textContent === 'running') && window.__bench.length >= 2",
                timeout=120_000,
            )
        wait_for("every tab's consumer", lambda: stats(base)["consumers"] >= before["consumers"] + tabs, 60)
        open_s = time.monotonic() - opened_at
        # Start of the window: drop what the tabs recorded while the others were opening.
        for page in pages:
            page.evaluate("window.__bench.length = 0")
        probe = SseProbe(base, run_id, timeout=window + 30)  # the API's part of the latency, under load
        probe.start()
        probe.ready.wait(10)
        samples: list[dict[str, Any]] = []
        backend_cpu, others_cpu = cpu_seconds(tree)
        window_start = time.monotonic()
        end = window_start + window
        while time.monotonic() < end:
            s = stats(base)
            samples.append({**s, "rss": tree_rss_mb(tree), "conns": established(port)})
            time.sleep(0.5)
        backend_cpu2, others_cpu2 = cpu_seconds(tree)
        elapsed = time.monotonic() - window_start
        per_tab = [page.evaluate("window.__bench") for page in pages]
        probe.stopping.set()
        probe.join(10)
        sse = list(probe.arrivals.values())
        # Close every tab at once and time the server's return to where it was (from the moment
        # the close begins: closing 50 tabs takes a while on a loaded machine).
        closed_at = time.monotonic()
        context.close()
        closed = True
        close_s = time.monotonic() - closed_at
        zero_s: float | None = None
        after: dict[str, int] = {}
        while time.monotonic() - closed_at < zero_timeout:
            after = stats(base)
            if after["streams"] <= before["streams"] and after["consumers"] <= before["consumers"]:
                zero_s = time.monotonic() - closed_at
                break
            time.sleep(0.1)
    finally:
        if not closed:
            context.close()
        cancel(base, run_id)
    time.sleep(1.0)
    settled = stats(base)
    dom: list[float] = []
    coalesced = 0
    per_tab_p95: list[float] = []
    for records in per_tab:
        lat, seen = latencies(records)
        dom.extend(lat)
        per_tab_p95.append(pct(lat, 95))
        if seen:
            coalesced += (max(seen) - min(seen) + 1) - len(seen)
    return {
        "tabs": tabs,
        "open_s": open_s,
        "before": before,
        "rss_before": rss_before,
        "conns_before": conns_before,
        "streams": max(s["streams"] for s in samples),
        "consumers": max(s["consumers"] for s in samples),
        "rss_max": max(s["rss"] for s in samples),
        "rss_mean": sum(s["rss"] for s in samples) / len(samples),
        "conns": max(s["conns"] for s in samples),
        "dom": dom,
        "per_tab_p95_worst": max(per_tab_p95) if per_tab_p95 else math.nan,
        "coalesced": coalesced,
        "zero_s": zero_s,
        "close_s": close_s,
        "sse": sse,
        "backend_cores": (backend_cpu2 - backend_cpu) / elapsed,
        "others_cores": (others_cpu2 - others_cpu) / elapsed,
        "after_close": after,
        "settled": settled,
        "rss_after": tree_rss_mb(tree),
        "conns_after": established(port),
        "processes": len(tree),
        "process_names": ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])[:60]}" for p in tree),
    }


# -- report ----------------------------------------------------------------------------------------
def fmt_ms(values: list[float]) -> str:
    return f"p50 {pct(values, 50):7.1f}  p95 {pct(values, 95):7.1f}  max {max(values, default=math.nan):7.1f}"


def report(
    args: argparse.Namespace, lat: dict[str, Any] | None, cycles: list[dict[str, Any]], started_in: float
) -> None:
    line = "-" * 96
    print()
    print(line)
    print(f"UI latency benchmark: hooks app /bench (prod, app answered in {started_in:.1f}s), "
          f"progress throttle 0.1 s (default), {os.cpu_count()} cores")  # fmt: skip
    print(line)
    if lat is not None:
        ok = "meets" if pct(lat["dom"], 95) < TARGET_P95_MS else "MISSES"
        print(f"Phase 1: 1 tab, {lat['updates']} progress updates every {args.interval * 1000:.0f} ms")
        print(f"  step.progress() -> DOM (ms)       {fmt_ms(lat['dom'])}   n={len(lat['dom'])}  "
              f"[target p95 < {TARGET_P95_MS:.0f}: {ok}]")  # fmt: skip
        if lat["sse"]:
            print(f"  step.progress() -> SSE client (ms){fmt_ms(lat['sse'])}   n={lat['sse_received']}")
        if lat["sse_error"]:
            print(f"  (SSE probe error: {lat['sse_error']})")
        print(f"  displayed {lat['displayed']}/{lat['updates']}, coalesced (never displayed) {lat['coalesced']}, "
              f"final value shown: {lat['final_shown']}")  # fmt: skip
    for k, c in enumerate(cycles, 1):
        print(line)
        print(f"Phase 2, cycle {k}: {c['tabs']} tabs on /bench following one running run "
              f"(updates every {args.interval * 1000:.0f} ms; tabs opened and live in {c['open_s']:.1f}s)")  # fmt: skip
        print(f"  {'':34}{'before tabs':>14}{'with tabs (max)':>18}{'after close':>14}")
        print(
            f"  {'SSE streams (server; +1 probe)':34}{c['before']['streams']:>14}{c['streams']:>18}{c['settled']['streams']:>14}"
        )
        print(
            f"  {'hook consumers':34}{c['before']['consumers']:>14}{c['consumers']:>18}{c['settled']['consumers']:>14}"
        )
        print(f"  {'established TCP conns to port':34}{c['conns_before']:>14}{c['conns']:>18}{c['conns_after']:>14}")
        print(f"  {'backend RSS, MB (' + str(c['processes']) + ' processes)':34}{c['rss_before']:>14.1f}"
              f"{c['rss_max']:>18.1f}{c['rss_after']:>14.1f}")  # fmt: skip
        print(f"  backend processes: {c['process_names']}")
        per_tab = (c["rss_max"] - c["rss_before"]) / c["tabs"]
        print(f"  RSS per tab ~ {per_tab:.2f} MB (mean with tabs {c['rss_mean']:.1f} MB)")
        zero = (
            f"{c['zero_s']:.1f} s"
            if c["zero_s"] is not None
            else f"NOT within {args.zero_timeout:.0f} s ({c['after_close']})"
        )
        print(f"  streams and consumers back to before, from the start of closing all tabs: {zero} "
              f"(closing them took {c['close_s']:.1f} s)")  # fmt: skip
        print(f"  CPU during the window: backend {c['backend_cores']:.2f} cores, Chromium + Playwright "
              f"{c['others_cores']:.2f} cores (of {os.cpu_count()})")  # fmt: skip
        if c["sse"]:
            print(f"  step.progress() -> SSE client, same window (ms)   {fmt_ms(c['sse'])}  n={len(c['sse'])}")
        if c["dom"]:
            print(f"  step.progress() -> DOM, all tabs over {args.tab_window:.0f}s (ms) {fmt_ms(c['dom'])}  "
                  f"n={len(c['dom'])}; worst tab p95 {c['per_tab_p95_worst']:.1f}; coalesced {c['coalesced']}")  # fmt: skip
    print(line)
    if cycles:
        growth = [c["settled"]["streams"] - cycles[0]["before"]["streams"] for c in cycles]
        print(f"Streams after each cycle minus before the first: {growth} (0 = no growth); "
              f"RSS before each cycle: {[round(c['rss_before'], 1) for c in cycles]} MB")  # fmt: skip
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=200, help="progress updates in phase 1")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between two progress updates")
    parser.add_argument("--tabs", type=int, default=50)
    parser.add_argument("--cycles", type=int, default=2, help="open/close cycles of the tabs")
    parser.add_argument("--tab-window", type=float, default=15.0, help="seconds measured with the tabs open")
    parser.add_argument("--zero-timeout", type=float, default=30.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--quick", action="store_true", help="20 updates, 5 tabs, 1 cycle, 5 s window")
    args = parser.parse_args()
    if args.quick:
        args.updates, args.tabs, args.cycles, args.tab_window = 20, 5, 1, 5.0

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="ui-latency-") as tmp:
        env = {"DURABLY_DB_URL": f"sqlite:///{tmp}/bench.db"}
        print("starting the hooks app (waits if another process serves it) ...", flush=True)
        with reflex_app(HOOKS_APP, env=env) as server, sync_playwright() as pw:
            base = server.backend_url
            print(f"app on {base} (answered in {server.started_in:.1f}s)", flush=True)
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                lat = None
                if not args.skip_latency:
                    print(f"phase 1: {args.updates} updates ...", flush=True)
                    lat = phase_latency(browser, base, args.updates, args.interval)
                cycles = []
                for k in range(args.cycles):
                    print(f"phase 2, cycle {k + 1}: {args.tabs} tabs ...", flush=True)
                    cycles.append(phase_tabs(browser, base, server.port, args.tabs, args.interval,
                                             args.tab_window, args.zero_timeout))  # fmt: skip
            finally:
                browser.close()
            report(args, lat, cycles, server.started_in)


if __name__ == "__main__":
    main()
