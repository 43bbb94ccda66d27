"""Dashboard benchmark: how fast the run list and the stats answer with many stored runs.

    .venv/bin/python bench/dashboard.py [--runs 100000] [--repeat 200] [--db bench/results/dashboard.db]

Seeds a SQLite database with `--runs` runs (several jobs, every status, realistic input, progress,
output and error JSON, a few step rows per run), spread over the last 7 days, then times each query
two ways: through the real HTTP server (uvicorn on 127.0.0.1, `create_durably_handler`, keep-alive
httpx client, body read and decoded) and as the storage call alone (`Durably.get_runs` /
`get_run_stats` on the same engine, no HTTP). Prints p50/p95 in milliseconds per query.

`seed_runs(db_url, n)` is importable (tests seed a database with it before opening a dashboard).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert

from durably_reflex import create_durably
from durably_reflex._clock import now_ms
from durably_reflex._ids import new_id
from durably_reflex._storage.tables import runs as run_table
from durably_reflex._storage.tables import steps as step_table

JOBS = ("import-csv", "send-email", "resize-image", "sync-crm", "nightly-report")
JOB_WEIGHTS = (30, 35, 20, 10, 5)
STATUSES = ("completed", "failed", "cancelled", "pending", "running")
STATUS_WEIGHTS = (75, 10, 5, 7, 3)
SPAN_MS = 7 * 24 * 3600 * 1000
BATCH = 5000
TARGET_RUNS_MS = 20.0
STEP_OUTPUT = '{"rows":100}'
# The most names one filter takes (server.MAX_FILTER_VALUES): the seeded jobs and names of none.
MANY_NAMES = [*JOBS, *(f"other-job-{i}" for i in range(100 - len(JOBS)))]


def seed_runs(db_url: str, n: int, *, seed: int = 1) -> None:
    """Add `n` runs to the database at `db_url` (migrated first) in a few bulk transactions.

    Written with SQLAlchemy Core on the real tables rather than through `trigger`: 100,000 runs in
    seconds, with created_at spread over the last 7 days (newest now) and each run's fields as the
    engine would have left them for its status. Safe to call from inside a running event loop.
    """
    migrate = threading.Thread(target=asyncio.run, args=(_migrate(db_url),))
    migrate.start()
    migrate.join()
    rng = random.Random(seed)
    now = now_ms()
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA synchronous=OFF")  # seeding: no fsync per batch
                connection.commit()
            for first in range(0, n, BATCH):
                runs, steps = [], []
                for i in range(first, min(n, first + BATCH)):
                    run, run_steps = _fake_run(rng, now - SPAN_MS * (n - 1 - i) // max(n - 1, 1))
                    runs.append(run)
                    steps.extend(run_steps)
                connection.execute(insert(run_table), runs)
                if steps:
                    connection.execute(insert(step_table), steps)
                connection.commit()
    finally:
        engine.dispose()


async def _migrate(db_url: str) -> None:
    durably = create_durably(db_url)
    await durably.migrate()
    await durably.close()


def _fake_run(rng: random.Random, created: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run row and its step rows, consistent with its status."""
    job = rng.choices(JOBS, JOB_WEIGHTS)[0]
    status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
    run_id = new_id()
    total = rng.randint(3, 8)
    done = {"completed": total, "pending": 0}.get(status, rng.randint(0, total - 1))
    started = None if status == "pending" else created + rng.randint(5, 500)
    finished = started + rng.randint(100, 60_000) if started is not None and status not in ("running",) else None
    run = {
        "id": run_id, "job_name": job, "status": status, "idempotency_key": None,
        "concurrency_key": f"tenant-{rng.randint(1, 50)}" if rng.random() < 0.2 else None,
        # JSON written as text: every value is an id or a number, and json.dumps would triple the seeding time
        "input": f'{{"file":"s3://bucket/uploads/{run_id}.csv","rows":{total * 100},'
                 f'"options":{{"dryRun":false,"notify":["ops@example.com"]}}}}',
        "progress": None if done == 0 else f'{{"current":{done},"total":{total},"message":"step {done} of {total}"}}',
        "output": f'{{"imported":{total * 100},"skipped":{rng.randint(0, 9)},"report":"/reports/{run_id}.html"}}'
        if status == "completed" else None,
        "error": f"ValueError: row {rng.randint(1, 999)} has no email" if status == "failed" else None,
        "error_stack": "Traceback (most recent call last):\n  File \"jobs.py\", line 42, in import_rows\nValueError"
        if status == "failed" else None,
        "attempt": 0 if status == "pending" else 1, "owner": "bench:1:1" if status == "running" else None,
        "started_at": started, "completed_at": None if status == "running" else finished,
        "heartbeat_at": finished or started or created, "created_at": created, "updated_at": finished or started or created,
    }  # fmt: skip
    base = started or created
    steps = [
        {"id": f"{run_id}-{index}", "run_id": run_id, "name": f"batch-{index}", "step_index": index,
         "status": "completed", "output": STEP_OUTPUT, "error": None, "error_stack": None,
         "started_at": base + index * 10, "completed_at": base + index * 10 + 5}
        for index in range(done)
    ]  # fmt: skip
    return run, steps


# -- measuring ------------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def timings(call: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    """Milliseconds per call, after a few warm-up calls (cache, connection)."""
    for _ in range(3):
        await call()
    spent = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    return "\n".join(lines)


async def measure(db_url: str, repeat: int) -> list[list[str]]:
    import httpx
    import uvicorn

    from durably_reflex.server import create_durably_handler

    durably = create_durably(db_url)
    await durably.migrate()  # no worker: the runs stay as seeded
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: no Nagle delay
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_durably_handler(durably), lifespan="off", log_level="warning"))
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    queries: list[tuple[str, Any, Callable[[], Awaitable[Any]]]] = [
        ("/runs?limit=21", {"limit": 21}, lambda: durably.get_runs(limit=21)),
        ("/runs?status=failed&limit=21", {"status": "failed", "limit": 21}, lambda: durably.get_runs(status="failed", limit=21)),
        ("/runs?jobName=sync-crm&limit=21", {"jobName": "sync-crm", "limit": 21},
         lambda: durably.get_runs(job_name="sync-crm", limit=21)),
        ("/runs?jobName=sync-crm&jobName=send-email&limit=21", [("jobName", "sync-crm"), ("jobName", "send-email"), ("limit", 21)],
         lambda: durably.get_runs(job_name=["sync-crm", "send-email"], limit=21)),
        ("/runs?status=failed&status=cancelled&limit=21", [("status", "failed"), ("status", "cancelled"), ("limit", 21)],
         lambda: durably.get_runs(status=["failed", "cancelled"], limit=21)),
        ("/runs?jobName=<100 names>&limit=21", [*(("jobName", name) for name in MANY_NAMES), ("limit", 21)],
         lambda: durably.get_runs(job_name=MANY_NAMES, limit=21)),
        ("/runs?jobName=<100 names>&offset=1000", [*(("jobName", name) for name in MANY_NAMES), ("limit", 21), ("offset", 1000)],
         lambda: durably.get_runs(job_name=MANY_NAMES, limit=21, offset=1000)),
        ("/runs?limit=21&offset=50000", {"limit": 21, "offset": 50000}, lambda: durably.get_runs(limit=21, offset=50000)),
        ("/stats", {}, lambda: durably.get_run_stats()),
        ("/stats?jobName=sync-crm", {"jobName": "sync-crm"}, lambda: durably.get_run_stats("sync-crm")),
    ]  # fmt: skip
    rows = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/durably") as http:
            for label, params, storage_call in queries:
                path, _, _ = label.partition("?")

                async def over_http(path: str = path, params: Any = params) -> Any:
                    response = await http.get(path, params=params)
                    response.raise_for_status()
                    return response.json()

                served = await timings(over_http, repeat)
                alone = await timings(storage_call, repeat)
                rows.append([label, *(f"{percentile(t, p):.1f}" for t in (served, alone) for p in (50, 95)),
                             f"{statistics.mean(alone):.1f}"])  # fmt: skip
    finally:
        server.should_exit = True
        await serving
        await durably.close()
    return rows


def seeded_database(path: Path, runs: int, *, keep: bool) -> str:
    """The URL of a SQLite file at `path` holding `runs` seeded runs: made afresh, unless `keep` and
    it exists (seeding 100,000 runs takes half a minute)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{path}"
    if not (keep and path.exists()):
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        started = time.perf_counter()
        seed_runs(db_url, runs)
        print(f"seeded {runs:,} runs in {time.perf_counter() - started:.1f} s ({path})", flush=True)
    return db_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per query and way")
    parser.add_argument("--db", default=str(ROOT / "bench" / "results" / "dashboard.db"))
    parser.add_argument("--keep", action="store_true", help="reuse the database if it exists (no reseeding)")
    args = parser.parse_args()
    db_url = seeded_database(Path(args.db), args.runs, keep=args.keep)
    rows = asyncio.run(measure(db_url, args.repeat))
    headers = ["query", "HTTP p50", "HTTP p95", "storage p50", "storage p95", "storage mean"]
    print(f"\n{args.runs:,} runs, {args.repeat} calls each, milliseconds (target: /runs under {TARGET_RUNS_MS:.0f} ms)")
    print(table(headers, rows))


if __name__ == "__main__":
    main()
