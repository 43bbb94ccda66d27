"""Multi-value filters on PostgreSQL: how `get_runs` over many job names scales with the number of
names (the issue's report: 2,000 names took 12 s when each name was a UNION term).

    .venv/bin/python bench/filters.py [--runs 100000] [--repeat 20]

Starts a throwaway PostgreSQL server (tests/pg_cluster.py), seeds `--runs` runs over five jobs
(bench/dashboard.py's `seed_runs`), and times `Durably.get_runs(job_name=<n names>, limit=21)` for
n = 2, 10, 100 (the HTTP API's bound) and 2,000 (beyond it: storage alone), newest first and at
offset 1,000. Prints p50 / max milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dashboard import JOBS, seed_runs
from durably_reflex import create_durably
from tests.pg_cluster import PgCluster


async def measure(db_url: str, repeat: int) -> list[tuple[str, float, float]]:
    durably = create_durably(db_url)
    await durably.migrate()
    rows = []
    try:
        for count in (2, 10, 100, 2000):
            names = [*JOBS, *(f"other-job-{i}" for i in range(count - len(JOBS)))][:count]
            for offset in (0, 1000):
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    await durably.get_runs(job_name=names, limit=21, offset=offset)
                    times.append((time.perf_counter() - started) * 1000)
                rows.append((f"{count:>5} names, offset {offset:>4}", statistics.median(times), max(times)))
    finally:
        await durably.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    cluster = PgCluster().start()
    try:
        db_url = cluster.create_database("filters")
        started = time.perf_counter()
        seed_runs(db_url, args.runs)
        print(f"seeded {args.runs:,} runs in {time.perf_counter() - started:.1f} s", flush=True)
        rows = asyncio.run(measure(db_url, args.repeat))
    finally:
        cluster.destroy()
    print(f"\nPostgreSQL, {args.runs:,} runs, get_runs(job_name=[...], limit=21), {args.repeat} calls, ms")
    print(f"{'query':<26}  {'p50':>8}  {'max':>8}")
    for label, p50, worst in rows:
        print(f"{label:<26}  {p50:>8.1f}  {worst:>8.1f}")


if __name__ == "__main__":
    main()
