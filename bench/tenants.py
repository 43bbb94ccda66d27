"""Tenant scopes: what the `scope` column and its indexes cost, and what scoped queries take.

    .venv/bin/python bench/tenants.py [--runs 100000] [--tenants 20] [--url sqlite:///... | postgresql://...]

Seeds `--runs` runs spread over `--tenants` scopes (plus unscoped ones), then prints:

- trigger throughput (runs/s, `batch_trigger` of 100 runs per transaction), with the version-3
  indexes and again after dropping the two that only scoped queries use (the schema's cost, as a
  ratio within one run);
- p50/p95 of a tenant's first page of runs, of one job's page, and of its stats, beside the same
  queries unscoped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text

from durably_reflex import BatchItem, create_durably, define_job
from durably_reflex._clock import now_ms
from durably_reflex._ids import new_id
from durably_reflex._storage.tables import runs as run_table

JOBS = ("import-csv", "send-email", "resize-image")
STATUSES = ("completed", "completed", "completed", "failed", "pending")
SCOPED_ONLY_INDEXES = ("ix_durably_runs_scope_created", "ix_durably_runs_scope_job_status")


async def _nothing(step: Any, input: Any) -> None:
    return None


def seed(db_url: str, runs: int, tenants: int) -> None:
    """Rows written directly (fast), as the engine writes them."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    now = now_ms()
    rows = []
    for n in range(runs):
        created = now - (runs - n) * 1000
        rows.append(
            {
                "id": new_id(),
                "job_name": JOBS[n % len(JOBS)],
                "input": f'{{"n":{n}}}',
                "status": STATUSES[n % len(STATUSES)],
                "attempt": 1,
                "heartbeat_at": created,
                "created_at": created,
                "updated_at": created,
                "scope": "" if n % (tenants + 1) == 0 else f"tenant-{n % (tenants + 1)}",
            }
        )
    with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(insert(run_table), rows[start : start + 5000])
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE durably_runs"))
        else:
            connection.execute(text("ANALYZE"))
    engine.dispose()


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


async def trigger_rate(durably: Any, batches: int) -> float:
    started = time.perf_counter()
    for batch in range(batches):
        items = [BatchItem({"n": n}) for n in range(100)]
        await durably.batch_trigger("import-csv", items, scope=f"tenant-{batch % 5 + 1}")
    return batches * 100 / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="durably-tenants-")
    db_url = args.url or f"sqlite:///{folder}/tenants.db"

    durably = create_durably(db_url)
    durably.register(**{job.replace("-", "_"): define_job(name=job, run=_nothing) for job in JOBS})
    await durably.migrate()
    seed(db_url, args.runs, args.tenants)
    print(f"{args.runs:,} runs over {args.tenants} tenants and unscoped, on {db_url.split(':')[0]}")

    rows = [
        ("a tenant's first page (100)", lambda: durably.get_runs(limit=100, scope="tenant-3")),
        ("every run's first page (100)", lambda: durably.get_runs(limit=100)),
        ("a tenant's page of one job", lambda: durably.get_runs(job_name="send-email", limit=100, scope="tenant-3")),
        ("a tenant's page of two jobs", lambda: durably.get_runs(job_name=list(JOBS[:2]), limit=100, scope="tenant-3")),
        ("a tenant's stats (24 h)", lambda: durably.get_run_stats(scope="tenant-3")),
        ("every run's stats (24 h)", lambda: durably.get_run_stats()),
    ]
    print(f"{'query':<32} {'p50 ms':>8} {'p95 ms':>8}")
    for name, call in rows:
        p50, p95 = await timed(call, args.repeat)
        print(f"{name:<32} {p50:>8.2f} {p95:>8.2f}")

    with_indexes = await trigger_rate(durably, 30)
    await durably.close()
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        for index in SCOPED_ONLY_INDEXES:
            connection.execute(text(f"DROP INDEX {index}"))
    engine.dispose()
    durably = create_durably(db_url)
    durably.register(**{job.replace("-", "_"): define_job(name=job, run=_nothing) for job in JOBS})
    await durably.migrate()
    without = await trigger_rate(durably, 30)
    await durably.close()
    print(f"trigger, 100 runs a transaction: {with_indexes:,.0f} runs/s with the scope indexes, "
          f"{without:,.0f} runs/s without them ({with_indexes / without:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
