"""The dashboard as users start it: `durably-reflex dashboard MODULE:ATTR`, its default (production
build) beside `--dev`, in one run on one seeded database.

    .venv/bin/python bench/dashboard_command.py [--runs 10000] [--loads 5] [--keep]

For each mode: seconds from launching the command until the page answers (a warm build directory:
the first start's `npm install` is done by a warm-up start first), the runs page's first run row in
Chromium (navigation start to the first row in the DOM, cold: a new browser context each load;
warm: reloads; `bench/dashboard_browser.py` measures the same for the repository's own app), and,
after SIGTERM to the command, how long it took to exit and whether any process of its tree or its
port survived.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil

from bench.dashboard import percentile, seeded_database, table
from bench.dashboard_browser import browser_loads
from tests.browser.reflex_server import free_port

COMMAND = [str(ROOT / ".venv" / "bin" / "durably-reflex"), "dashboard", "app.jobs:durably"]
START_TIMEOUT = 600.0
RESULTS = ROOT / "bench" / "results"  # the commands' logs stay here


def wait_for_dashboard(page: str, backend: str, process: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until the page and the backend (Reflex's /ping, the API) answer 200 (bounded; fails
    if the command exits first): the page alone can answer before its websocket's backend is up."""
    started = time.monotonic()
    for url in (page + "/", backend + "/ping", backend + "/api/durably/jobs"):
        while not _answers(url):
            if process.poll() is not None:
                raise RuntimeError(f"the dashboard command exited with {process.returncode}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
            time.sleep(0.25)
    return time.monotonic() - started


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop(process: subprocess.Popen[bytes], port: int) -> tuple[float, int, bool]:
    """SIGTERM the command: (seconds to exit, processes of its tree left, port still listening)."""
    tree = [process, *(child for child in psutil.Process(process.pid).children(recursive=True))]
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    took = time.monotonic() - started
    psutil.wait_procs([p for p in tree if isinstance(p, psutil.Process)], timeout=5)
    left = sum(
        1 for p in tree if isinstance(p, psutil.Process) and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    )
    listening = any(
        c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in psutil.net_connections("tcp")
    )
    return took, left, listening


def run_mode(dev: bool, db_url: str, build_dir: Path, loads: int) -> dict[str, object]:
    port = free_port()
    args = [*COMMAND, "--port", str(port), "--build-dir", str(build_dir), *(["--dev"] if dev else [])]
    env = {**os.environ, "DURABLY_DB_URL": db_url}
    log = open(RESULTS / f"dashboard-command-{'dev' if dev else 'prod'}.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        origin = f"http://127.0.0.1:{port}"
        backend = f"http://127.0.0.1:{port + 1}" if dev else origin  # --dev: the backend on port + 1
        started_in = wait_for_dashboard(origin, backend, process, START_TIMEOUT)
        samples = browser_loads(origin, loads)
    finally:
        stopped_in, left, listening = stop(process, port) if process.poll() is None else (0.0, 0, False)
        log.close()
    return {"start": started_in, "samples": samples, "stop": stopped_in, "left": left, "listening": listening}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5, help="page loads per kind (cold, warm) and mode")
    parser.add_argument("--db", default=str(ROOT / "bench" / "results" / "dashboard-command.db"))
    parser.add_argument("--keep", action="store_true", help="reuse the database if it exists (no reseeding)")
    args = parser.parse_args()
    db_url = seeded_database(Path(args.db), args.runs, keep=args.keep)
    with tempfile.TemporaryDirectory(prefix="durably-dashboard-bench-") as scratch:
        results = {}
        for dev in (False, True):
            build_dir = Path(scratch) / ("dev" if dev else "prod") / "build"
            build_dir.parent.mkdir(parents=True)
            run_mode(dev, db_url, build_dir, 1)  # warm-up: npm install and the first build
            results["--dev" if dev else "default (prod)"] = run_mode(dev, db_url, build_dir, args.loads)

    rows = []
    for mode, result in results.items():
        samples = result["samples"]
        assert isinstance(samples, dict)
        for kind in ("cold", "warm"):
            in_page = [sample[0] for sample in samples[kind]]
            rows.append(
                [
                    f"{mode}: first run row, {kind}",
                    f"{percentile(in_page, 50):.0f}",
                    f"{percentile(in_page, 95):.0f}",
                    f"{statistics.mean(in_page):.0f}",
                ]
            )
    print(f"\n{args.runs:,} runs, {args.loads} loads per kind; milliseconds from navigation start")
    print(table(["mode and measure", "p50", "p95", "mean"], rows))
    print()
    headers = ["mode", "start to first answer (warm build)", "SIGTERM to exit", "processes left", "port listening"]
    lines = [
        [mode, f"{r['start']:.1f} s", f"{r['stop']:.1f} s", str(r["left"]), str(r["listening"])]
        for mode, r in results.items()
    ]
    print(table(headers, lines))


if __name__ == "__main__":
    main()
