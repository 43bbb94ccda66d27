"""Feed latency: how long an event made by a job in one process takes to reach the event feed of
another process on the same SQLite file. The pipeline under every live stream of `durably-reflex
serve` (a worker process beside the API), without HTTP or fan-out.

    .venv/bin/python bench/feed_latency.py [--before REV] [--repeat 3] [--runs 3] [--reports 40]

Each configuration is a fresh SQLite file and two fresh processes (this script with `--child`): the
feed process opens the engine, subscribes to its feed (all runs) and starts the worker process,
which runs `--runs` runs, one after the other, of a job that reports progress `--reports` times, each
report followed by a step and a 20 ms sleep (a step that yields). Delay = when the feed hands the
event over (time.time()) - the event's own timestamp (stamped when it is made, in whole ms, so the
figures read 0-1 ms high). Every event of the runs counts: run:trigger, run:start, step:start,
step:complete, run:progress, run:complete.

`--before REV` measures that commit's code (`git archive`) as well, in both processes; with
`--repeat N` the configurations are interleaved round after round, so the machine's drift hits them
alike. Only local files are used; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
from cli_server import code_for, describe_code

RESULT_TAG = "@@RESULT "
PAUSE_S = 0.02
TIMEOUT_S = 120.0


# -- the worker process -----------------------------------------------------------------------------
def child_worker(db: str, runs: int, reports: int) -> None:
    from durably_reflex import create_durably, define_job

    async def reporting(step: Any, _input: Any) -> None:
        for i in range(reports):
            step.progress(i + 1, reports)
            await step.run(f"s{i}", lambda: None)
            await asyncio.sleep(PAUSE_S)

    async def main() -> None:
        durably = create_durably(db, polling_interval=0.05).register(job=define_job(name="job", run=reporting))
        await durably.start()
        for _ in range(runs):
            await durably.jobs.job.trigger_and_wait(timeout=TIMEOUT_S)
        await durably.close()

    asyncio.run(main())


# -- the feed process -------------------------------------------------------------------------------
def child_feed(db: str, runs: int, reports: int) -> None:
    from durably_reflex import create_durably

    async def main() -> dict[str, Any]:
        durably = create_durably(db)
        await durably.migrate()
        subscription = await durably.feed.subscribe()
        worker = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", "worker", "--db", db, "--runs", str(runs), "--reports", str(reports)
        )
        waiting = asyncio.ensure_future(worker.wait())
        delays: list[float] = []
        deadline = time.monotonic() + TIMEOUT_S
        while not waiting.done() and time.monotonic() < deadline:
            for item in await subscription.next_batch(timeout=0.5):
                made = datetime.fromisoformat(item.event["timestamp"]).timestamp()
                delays.append((time.time() - made) * 1000)
        subscription.close()
        await durably.close()
        return {"delays": delays, "worker_rc": worker.returncode}

    print(RESULT_TAG + json.dumps(asyncio.run(main())), flush=True)


# -- the parent -------------------------------------------------------------------------------------
def measure(code: str, runs: int, reports: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="durably-feed-latency-") as folder:
        db = f"sqlite:///{os.path.join(folder, 'jobs.db')}"
        env = {**os.environ, "PYTHONPATH": code}
        command = [
            sys.executable,
            __file__,
            "--child",
            "feed",
            "--db",
            db,
            "--runs",
            str(runs),
            "--reports",
            str(reports),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S + 30, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result: dict[str, Any] = json.loads(line[len(RESULT_TAG) :])
            return result
    raise RuntimeError(f"the feed process printed no result:\n{done.stderr[-2000:]}")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", metavar="REV", help="also measure this commit's code (git archive)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, configurations interleaved (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--reports", type=int, default=40, help="progress reports per run (default 40)")
    parser.add_argument("--child", choices=["feed", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child == "worker":
        child_worker(opts.db, opts.runs, opts.reports)
        return 0
    if opts.child == "feed":
        child_feed(opts.db, opts.runs, opts.reports)
        return 0

    codes = [(f"before ({opts.before})", code_for(opts.before))] if opts.before else []
    codes.append(("after (" + describe_code(str(ROOT)) + ")", str(ROOT)))
    print("durably-reflex feed latency: a job's events, from the worker process to another process's feed")
    print(f"  {opts.runs} runs x {opts.reports} progress reports per configuration; load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    rows: dict[str, list[tuple[float, float, float, int]]] = {label: [] for label, _ in codes}
    for number in range(1, opts.repeat + 1):
        for label, code in codes:
            result = measure(code, opts.runs, opts.reports)
            delays = result["delays"]
            row = (statistics.median(delays), quantile(delays, 0.95), max(delays), len(delays))
            rows[label].append(row)
            print(f"  round {number}, {label}: {row[3]} events, p50 {row[0]:.1f} ms, p95 {row[1]:.1f} ms, "
                  f"max {row[2]:.1f} ms (worker exit {result['worker_rc']})", flush=True)  # fmt: skip
    print("\nconfiguration                 p50 ms (median of rounds)  p95 ms (median of rounds)  p95 by round")
    for label, measured in rows.items():
        p50 = statistics.median(row[0] for row in measured)
        p95 = statistics.median(row[1] for row in measured)
        by_round = ", ".join(f"{row[1]:.1f}" for row in measured)
        print(f"{label:<30}{p50:>10.1f}{p95:>27.1f}                 {by_round}")
    print(f"(load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
