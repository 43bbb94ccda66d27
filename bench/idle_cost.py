"""Idle cost: database statements per second made by idle worker processes, on SQLite and PostgreSQL.

    .venv/bin/python bench/idle_cost.py [--workers 1,10,100] [--window 10] [--backends sqlite,postgres]
                                        [--code DIR]

Each configuration starts N worker processes (this script with `--child`) on a fresh database with
one job and no runs, waits until every one has started its worker, lets them settle for a second,
then counts the statements they make over `--window` seconds:
  SQLite      every statement the driver executes (sqlite3's trace callback on every connection,
              BEGIN/COMMIT included), summed over the processes (each reports its count on SIGUSR1)
  PostgreSQL  the calls pg_stat_statements records for the database (BEGIN/COMMIT included), on a
              throwaway server started with it (tests/pg_cluster.py)
Of idle workers, only the leader surveys the database, every `polling_interval` (1 s, the
contract's default); followers wait to be rung (see `durably_reflex/_storage/coordination.py`), so
the total should not grow with N. `--code DIR` imports durably_reflex from DIR (a
`git archive` of an earlier commit, say) to measure before and after in one run.

Only 127.0.0.1 is used; every wait is bounded; every child is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 180.0


def child(url: str, code: str, report: Path) -> None:
    """An idle worker that reports how many statements it has executed whenever SIGUSR1 comes."""
    sys.path.insert(0, code)
    import sqlite3

    from pydantic import BaseModel

    from durably_reflex import create_durably, define_job

    executed = [0]

    def count(_statement: str) -> None:
        executed[0] += 1

    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:  # every connection, whoever opens it
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(count)
        return connection

    sqlite3.connect = traced

    class Empty(BaseModel):
        pass

    async def run(step: object, payload: Empty) -> None:
        return None

    async def main() -> None:
        durably = create_durably(url).register(idle=define_job(name="idle", input=Empty, run=run))
        await durably.init()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: report.open("a").write(f"{executed[0]}\n"))
        report.open("a").write("ready\n")
        await asyncio.wait_for(stop.wait(), 3600)
        await durably.stop(0)

    asyncio.run(main())


def _counts(report: Path) -> list[int]:
    return [int(line) for line in report.read_text().split() if line.isdigit()]


def measure(url: str, workers: int, window: float, code: str, pg_admin: str | None, database: str) -> float:
    """Statements per second over `window` made by `workers` idle worker processes."""
    folder = Path(tempfile.mkdtemp(prefix="durably-idle-"))
    reports = [folder / f"child-{index}.txt" for index in range(workers)]
    children = [
        subprocess.Popen([sys.executable, __file__, "--child", url, "--code", code, "--report", str(report)])
        for report in reports
    ]
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(report.exists() and "ready" in report.read_text() for report in reports):
            if time.monotonic() > deadline or any(process.poll() is not None for process in children):
                raise RuntimeError("the idle workers did not all start")
            time.sleep(0.2)
        time.sleep(1.0)
        before = _sample(children, reports, pg_admin, database)
        time.sleep(window)
        after = _sample(children, reports, pg_admin, database)
        return (after - before) / window
    finally:
        for process in children:
            process.send_signal(signal.SIGTERM)
        for process in children:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _sample(children: list[subprocess.Popen[bytes]], reports: list[Path], pg_admin: str | None, database: str) -> int:
    if pg_admin is not None:
        import psycopg

        with psycopg.connect(pg_admin, autocommit=True) as admin:
            row = admin.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname = %s",
                (database,),
            ).fetchone()
        return int(row[0]) if row else 0
    seen = [len(_counts(report)) for report in reports]
    for process in children:
        process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while any(len(_counts(report)) == count for report, count in zip(reports, seen, strict=True)):
        if time.monotonic() > deadline:
            raise RuntimeError("an idle worker did not report its count")
        time.sleep(0.05)
    return sum(_counts(report)[-1] for report in reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,10")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--code", default=str(ROOT))
    parser.add_argument("--child")
    parser.add_argument("--report")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.code, Path(args.report))
        return
    sys.path.insert(0, str(ROOT))
    counts = [int(part) for part in args.workers.split(",")]
    print(f"code: {args.code}")
    for backend in args.backends.split(","):
        cluster = None
        if backend == "postgres":
            from tests.pg_cluster import PgCluster

            cluster = PgCluster(max_connections=max(200, 4 * max(counts) + 20))
            cluster._options.append("-c shared_preload_libraries=pg_stat_statements")
            cluster.start()
            with __import__("psycopg").connect(cluster.url(), autocommit=True) as admin:
                admin.execute("CREATE EXTENSION pg_stat_statements")
        try:
            for workers in counts:
                name = f"idle_{workers}"
                if cluster is not None:
                    url = cluster.create_database(name)
                    rate = measure(url, workers, args.window, args.code, cluster.url(), name)
                else:
                    url = f"sqlite:///{tempfile.mkdtemp(prefix='durably-idle-db-')}/{name}.db"
                    rate = measure(url, workers, args.window, args.code, None, name)
                print(
                    f"{backend:9} {workers:4} idle workers: {rate:8.1f} statements/s ({rate / workers:.2f} per worker)"
                )
        finally:
            if cluster is not None:
                cluster.destroy()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
