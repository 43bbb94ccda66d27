"""A long PostgreSQL outage with runs in flight (issue 12): no run fails, the API answers 503 during it,
and the runs resume when the server is back.

    .venv/bin/python bench/outage.py [--outage 120] [--runs 60] [--steps 40] [--workers 2]

A throwaway server with PostgreSQL's durable defaults (tests/pg_cluster.py); one
`durably-reflex serve tests.outage_jobs:durably --in-process-worker` process (API and a worker) and --workers
`durably-reflex worker` processes, 4 runs at a time each, default settings (reconnect_timeout 2 s,
stale threshold 30 s). Once every process has run steps, the server is killed
(`pg_ctl stop -m immediate`) for --outage seconds; meanwhile the API is asked, twice a second,
`GET /runs` and `POST /trigger`. Then the server starts again, and the bench waits for every run
to settle and prints what it saw: runs completed and failed, steps run more than once, the API's
answers during the outage (status codes, 0 for none within the client's 60 s; slowest answer), and how long after the server was back
the first step ran and the last run completed. Exits 1 if a run failed or the API did not answer
503 throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pg_cluster import PgCluster


class Process:
    """A `durably-reflex` command whose stdout lines are collected with the time they arrived."""

    def __init__(self, url: str, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DURABLY_OUTAGE_DB": url, "DURABLY_OUTAGE_STALE": "30"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "durably_reflex", *args, "tests.outage_jobs:durably", "--stop-timeout", "5"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(
            target=lambda: self.err.extend(raw.decode() for raw in self.proc.stderr or ()), daemon=True
        ).start()

    def _read(self) -> None:
        for raw in self.proc.stdout or ():
            self.lines.append((time.monotonic(), raw.decode()))

    def steps(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, json.loads(line)) for at, line in list(self.lines) if line.startswith("{")]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=120.0, help="seconds the server stays down")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="worker processes beside the API process")
    args = parser.parse_args()

    cluster = PgCluster(durable=True).start()
    processes: list[Process] = []
    try:
        url = cluster.create_database("outage")
        api = Process(url, "serve", "--port", "0", "--in-process-worker")  # the API and a worker, as documented
        processes = [api, *(Process(url, "worker") for _ in range(args.workers))]
        banner = wait_for(lambda: next((line for _, line in api.lines if "API on" in line), None), 60, "the API")
        base = banner.split(" on ", 1)[1].split(" ", 1)[0]
        http = httpx.Client(base_url=base, timeout=60, trust_env=False)
        for _ in range(args.runs):
            trigger = {"jobName": "paced", "input": {"steps": args.steps, "sleep": 0.05}}
            assert http.post("/trigger", json=trigger).status_code == 200
        wait_for(lambda: all(p.steps() for p in processes), 60, "every process to run steps")

        cluster.stop()  # -m immediate: the server dies; with durable settings no commit is lost
        down_at = time.monotonic()
        answers: list[tuple[str, int, float]] = []
        while time.monotonic() - down_at < args.outage:
            for method, path, body in (
                ("GET", "/runs", None),
                ("POST", "/trigger", {"jobName": "paced", "input": {"steps": 1}}),
            ):
                started = time.monotonic()
                try:
                    status = http.request(method, path, json=body).status_code
                except httpx.TimeoutException:
                    status = 0  # no answer within the client's timeout
                answers.append((f"{method} {path}", status, time.monotonic() - started))
            time.sleep(0.5)
        cluster.start()
        back_at = time.monotonic()

        def settled() -> list[tuple[str, str, int]] | None:
            with psycopg.connect(url) as db:
                rows = db.execute("SELECT id, status, attempt FROM durably_runs").fetchall()
            return rows if all(status in ("completed", "failed", "cancelled") for _, status, _ in rows) else None

        rows = wait_for(settled, 600, "every run to settle")
        settled_at = time.monotonic()
        with psycopg.connect(url) as db:
            last_completed = db.execute("SELECT max(completed_at) FROM durably_runs").fetchone()
        steps = [(at, line) for p in processes for at, line in p.steps()]
        first_after = min((at for at, _ in steps if at > back_at), default=None)
        executions = Counter((line["run"], line["step"]) for _, line in steps)
        statuses = Counter(status for _, status, _ in rows)
        codes = Counter((what, status) for what, status, _ in answers)
        exit_codes = [p.stop() for p in processes]
        unavailable_logs = sum(e.count("database unavailable") for p in processes for e in p.err)
        print(f"outage {args.outage:g} s (pg_ctl stop -m immediate), {1 + args.workers} processes x 4 runs at a time")
        print(f"runs: {len(rows)} ({dict(statuses)}); taken over (attempt > 1): {sum(a > 1 for *_, a in rows)}")
        print(f"steps run more than once: {sum(c > 1 for c in executions.values())} of {len(executions)}")
        print(f"API during the outage: {dict(codes)}; slowest answer {max(t for *_, t in answers):.2f} s")
        print(
            f"after the server was back: first step {first_after - back_at:.2f} s" if first_after else "no step after"
        )
        print(
            f"every run settled {settled_at - back_at:.2f} s after the server was back (last completed_at {last_completed[0]})"
        )
        print(
            f"'database unavailable' log lines, all processes: {unavailable_logs}; exit codes on SIGTERM: {exit_codes}"
        )
        ok = (
            statuses.get("failed", 0) == 0
            and all(status == 503 for _, status, _ in answers)
            and exit_codes == [0] * len(processes)
        )
        return 0 if ok else 1
    finally:
        for process in processes:
            if process.proc.poll() is None:
                process.proc.kill()
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
