"""Search and bulk actions at scale on SQLite: how fast `/runs` answers a search (labels, id prefix,
job and status, a created-at range, a field of the input) with 1,000,000 stored runs, and what a
bulk action over 100,000 of them costs per batch.

    .venv/bin/python bench/search.py [--runs 1000000] [--bulk 100000] [--repeat 100] [--keep]
                                     [--before REV] [--rounds 2]

Seeds a SQLite file (bench/results/search.db; `--keep` reuses it) with `--runs` runs of several jobs
over the last 7 days, each with labels `customer` (one of 2,000) and `region` (one of 5), one run in
10,000 with a `ticket` label of its own, and an input holding an `email` (one of 200,000); `--bulk`
of them, spread over the week, are pending and labelled `batch=nightly` (the rest are as bench/
dashboard.py makes them: mostly completed). Then times each search two ways, through the real HTTP
server (uvicorn on 127.0.0.1, a page of 50, body read and decoded) and as `Durably.get_runs` alone,
and prints p50 / p95 in milliseconds (target: p95 under 50 ms).

Then the bulk actions over the `--bulk` runs, each in batches of 500: in process by filter
(`bulk_cancel(labels=...)`), over HTTP by filter streaming its progress (`DurablyClient.bulk_retry`),
and over HTTP by ids (`bulk_cancel(ids)`, 1,000 ids a request, then `bulk_retry(ids)`, which leaves
the runs as seeded); for each, the total time and the time per batch (from one progress report to
the next: p50, p95, max).

`--before REV` (a commit, as `git archive`, or a folder holding durably_reflex/) measures that code
too, on a copy of the same database (`search-before.db`: this code may migrate its own to a schema
the earlier one refuses): each code in a process of its own (this script, its durably_reflex taken
from that folder), the two taking turns for `--rounds` rounds (each round a share of the
calls, and one whole sequence of bulk actions, which leaves the runs as seeded); the tables then show
both codes' figures side by side and after / before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
CODE_ENV = "DURABLY_BENCH_CODE"  # a child's code folder: its durably_reflex, ahead of this checkout's
if os.environ.get(CODE_ENV):
    _only_the_package = tempfile.mkdtemp(prefix="durably-bench-code-")
    os.symlink(Path(os.environ[CODE_ENV], "durably_reflex").resolve(), Path(_only_the_package, "durably_reflex"))
    sys.path.insert(0, _only_the_package)

from sqlalchemy import create_engine, insert

from bench.dashboard import _fake_run, _migrate, percentile, table, timings
from durably_reflex import BulkResult, DurablyClient, create_durably
from durably_reflex._clock import now_ms
from durably_reflex._storage.tables import labels as label_table
from durably_reflex._storage.tables import runs as run_table

SPAN_MS = 7 * 24 * 3600 * 1000
BATCH = 10_000
CUSTOMERS = 2_000
REGIONS = ("eu", "us", "apac", "latam", "mena")
EMAILS = 200_000
TICKET_EVERY = 10_000
PAGE = 50
TARGET_MS = 50.0


def seed(db_url: str, runs: int, bulk: int, rng: random.Random) -> None:
    """`runs` runs with their labels, written with SQLAlchemy Core on the real tables (no steps)."""
    import threading

    migrate = threading.Thread(target=asyncio.run, args=(_migrate(db_url),))
    migrate.start()
    migrate.join()
    now = now_ms()
    every = max(1, runs // bulk) if bulk else 0
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA synchronous=OFF")  # seeding: no fsync per batch
            connection.commit()
            for first in range(0, runs, BATCH):
                rows, labels = [], []
                for i in range(first, min(runs, first + BATCH)):
                    run, _ = _fake_run(rng, now - SPAN_MS * (runs - 1 - i) // max(runs - 1, 1))
                    tags = {"customer": f"cust-{rng.randint(1, CUSTOMERS)}", "region": rng.choice(REGIONS)}
                    if i % TICKET_EVERY == 0:
                        tags["ticket"] = f"T-{i}"
                    if every and i % every == 0 and i // every < bulk:
                        tags["batch"] = "nightly"
                        run.update(status="pending", started_at=None, completed_at=None, owner=None, output=None,
                                   error=None, error_stack=None, progress=None, attempt=0)  # fmt: skip
                    run["input"] = (
                        f'{{"email":"user{rng.randint(1, EMAILS)}@example.com","rows":{rng.randint(1, 999)}}}'
                    )
                    run["labels"] = json.dumps(tags, separators=(",", ":"))
                    rows.append(run)
                    labels += [{"run_id": run["id"], "key": key, "value": value} for key, value in tags.items()]
                connection.execute(insert(run_table), rows)
                connection.execute(insert(label_table), labels)
                connection.commit()
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    finally:
        engine.dispose()


def seeded_database(path: Path, runs: int, bulk: int, *, keep: bool) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{path}"
    if not (keep and path.exists()):
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        started = time.perf_counter()
        seed(db_url, runs, bulk, random.Random(1))
        print(f"seeded {runs:,} runs in {time.perf_counter() - started:.1f} s ({path})", flush=True)
    return db_url


# -- searches ------------------------------------------------------------------------------------------
Query = tuple[str, Callable[[random.Random], tuple[list[tuple[str, str]], dict[str, Any]]]]


def searches(sample_ids: list[str], now: datetime) -> list[Query]:
    """Each search as (its name, a function making one call's HTTP parameters and `get_runs`
    arguments), varied from call to call so no answer comes from a cache of the same query."""

    def customer(rng: random.Random) -> str:
        return f"cust-{rng.randint(1, CUSTOMERS)}"

    def hour(rng: random.Random) -> tuple[datetime, datetime]:
        start = now - timedelta(hours=rng.randint(1, 7 * 24 - 1))
        return start, start + timedelta(hours=1)

    def by_label(rng: random.Random) -> Any:
        value = customer(rng)
        return [("label.customer", value)], {"labels": {"customer": value}}

    def by_two_labels(rng: random.Random) -> Any:
        value, region = customer(rng), rng.choice(REGIONS)
        return [("label.customer", value), ("label.region", region)], {"labels": {"customer": value, "region": region}}

    def by_rare_label(rng: random.Random) -> Any:
        value = f"T-{rng.randrange(0, len(sample_ids)) // TICKET_EVERY * TICKET_EVERY}"
        return [("label.ticket", value)], {"labels": {"ticket": value}}

    def by_id_prefix(rng: random.Random) -> Any:
        prefix = rng.choice(sample_ids)[:16]
        return [("idPrefix", prefix)], {"id_prefix": prefix}

    def by_job_status(rng: random.Random) -> Any:
        job, status = rng.choice(["sync-crm", "import-csv", "send-email"]), rng.choice(["failed", "cancelled"])
        return [("jobName", job), ("status", status)], {"job_name": job, "status": status}

    def by_range(rng: random.Random) -> Any:
        start, end = hour(rng)
        return [("createdAfter", start.isoformat()), ("createdBefore", end.isoformat())], {
            "created_after": start,
            "created_before": end,
        }

    def by_job_status_label(rng: random.Random) -> Any:
        value = customer(rng)
        return [("jobName", "send-email"), ("status", "completed"), ("label.customer", value)], {
            "job_name": "send-email",
            "status": "completed",
            "labels": {"customer": value},
        }

    def by_input_in_a_day(rng: random.Random) -> Any:
        email = f"user{rng.randint(1, EMAILS)}@example.com"
        start = now - timedelta(days=rng.randint(1, 6))
        end = start + timedelta(days=1)
        params = [("input.email", email), ("jobName", "import-csv"), ("createdAfter", start.isoformat()),
                  ("createdBefore", end.isoformat())]  # fmt: skip
        return params, {"input_fields": {"email": email}, "job_name": "import-csv", "created_after": start,
                        "created_before": end}  # fmt: skip

    def by_input_in_an_hour(rng: random.Random) -> Any:
        email = f"user{rng.randint(1, EMAILS)}@example.com"
        start, end = hour(rng)
        params = [("input.email", email), ("createdAfter", start.isoformat()), ("createdBefore", end.isoformat())]
        return params, {"input_fields": {"email": email}, "created_after": start, "created_before": end}

    def by_input_alone(rng: random.Random) -> Any:
        email = f"user{rng.randint(1, EMAILS)}@example.com"
        return [("input.email", email)], {"input_fields": {"email": email}}

    return [
        ("label.customer=<one of 2,000>", by_label),
        ("label.customer & label.region", by_two_labels),
        ("label.ticket=<one run>", by_rare_label),
        ("idPrefix=<16 chars>", by_id_prefix),
        ("jobName & status", by_job_status),
        ("createdAfter/Before: 1 h", by_range),
        ("jobName & status & label", by_job_status_label),
        ("input.email & job & 1 day", by_input_in_a_day),
        ("input.email & 1 h", by_input_in_an_hour),
        ("input.email alone (a scan)", by_input_alone),
    ]


Figures = dict[str, Any]  # one code's measurements: {"searches": {name: ...}, "bulk": {name: ...}}


async def measure_searches(durably: Any, api: str, repeat: int, sample_ids: list[str]) -> dict[str, Any]:
    """Each search's milliseconds per call over HTTP and through `get_runs`, and how many it found."""
    import httpx

    figures: dict[str, Any] = {}
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=api, timeout=120) as http:
        for name, make in searches(sample_ids, now):
            rng = random.Random(name)
            calls = repeat if "scan" not in name else max(3, repeat // 20)

            async def over_http(make: Any = make, rng: random.Random = rng) -> Any:
                params, _ = make(rng)
                response = await http.get("/runs", params=[*params, ("limit", str(PAGE))])
                response.raise_for_status()
                return response.json()

            async def alone(make: Any = make, rng: random.Random = rng) -> Any:
                _, arguments = make(rng)
                return await durably.get_runs(**arguments, limit=PAGE)

            served, storage = await timings(over_http, calls), await timings(alone, calls)
            figures[name] = {"http": served, "storage": storage, "found": len(await alone())}
            print(f"  {name}: HTTP p95 {percentile(served, 95):.1f} ms", flush=True)
    return figures


# -- bulk actions --------------------------------------------------------------------------------------
class BatchClock:
    """The time between progress reports: one batch each."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.batches: list[float] = []
        self.result: BulkResult | None = None

    def __call__(self, result: BulkResult) -> None:
        now = time.perf_counter()
        self.batches.append((now - self.last) * 1000)
        self.last = now
        self.result = result

    def figures(self, result: BulkResult) -> dict[str, Any]:
        total = time.perf_counter() - self.started
        return {"matched": result.matched, "changed": result.changed, "total": total, "batches": self.batches}


async def measure_bulk(durably: Any, api: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    ids = [run.id for run in await durably.get_runs(labels={"batch": "nightly"})]
    actions: list[tuple[str, Callable[[BatchClock], Awaitable[BulkResult]]]] = []
    async with DurablyClient(api, timeout=60) as client:
        actions = [
            ("in process: bulk_cancel(labels=)", lambda clock: durably.bulk_cancel(labels={"batch": "nightly"}, on_progress=clock)),
            ("HTTP, streamed: bulk_retry(labels=)", lambda clock: client.bulk_retry(labels={"batch": "nightly"}, on_progress=clock)),
            ("HTTP, streamed: bulk_cancel(ids)", lambda clock: client.bulk_cancel(ids, on_progress=clock)),
            ("HTTP, streamed: bulk_retry(ids)", lambda clock: client.bulk_retry(ids, on_progress=clock)),
        ]  # fmt: skip
        for name, act in actions:
            clock = BatchClock()
            figures[name] = clock.figures(await act(clock))
            print(f"  {name}: {figures[name]['total']:.1f} s", flush=True)
    return figures


async def measure(db_url: str, repeat: int, bulk: bool) -> Figures:
    import uvicorn

    from durably_reflex.server import create_durably_handler

    durably = create_durably(db_url)
    await durably.migrate()  # no worker: the runs stay as seeded
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: no Nagle delay
    sock.bind(("127.0.0.1", 0))
    api = f"http://127.0.0.1:{sock.getsockname()[1]}/api/durably"
    server = uvicorn.Server(uvicorn.Config(create_durably_handler(durably), lifespan="off", log_level="warning"))
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        sample_ids = [run.id for run in await durably.get_runs(limit=1000, offset=1000)]
        print("searches:", flush=True)
        found = await measure_searches(durably, api, repeat, sample_ids)
        print("bulk actions:", flush=True)
        acted = await measure_bulk(durably, api) if bulk else {}
    finally:
        server.should_exit = True
        await serving
        await durably.close()
    return {"searches": found, "bulk": acted}


# -- this code against another ---------------------------------------------------------------------
RESULT_TAG = "@@FIGURES "


def measure_code(code: str, db: str, args: argparse.Namespace, repeat: int) -> Figures:
    """One round of `code` (a folder holding durably_reflex/) on the database file `db`, in a
    process of its own; its progress lines are passed on as they come."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--keep", "--db", db,
               "--repeat", str(repeat), "--runs", str(args.runs), "--bulk", str(args.bulk)]  # fmt: skip
    env = {**os.environ, CODE_ENV: code}
    figures: Figures | None = None
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(RESULT_TAG):
                figures = json.loads(line[len(RESULT_TAG) :])
            else:
                print(f"  {line}", end="", flush=True)
    if child.returncode or figures is None:
        raise SystemExit(f"the measuring process of {code} failed (exit code {child.returncode})")
    return figures


def copy_database(path: Path) -> str:
    """The seeded SQLite file copied beside it (`<name>-before.db`), with its log checkpointed first."""
    import shutil
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = path.with_name(f"{path.stem}-before{path.suffix}")
    for stale in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(path, copy)
    return str(copy)


def pooled(rounds: list[Figures]) -> Figures:
    """Rounds of one code as one: every call's and every batch's time together."""
    searches: dict[str, Any] = {}
    bulk: dict[str, Any] = {}
    for figures in rounds:
        for name, each in figures["searches"].items():
            into = searches.setdefault(name, {"http": [], "storage": [], "found": each["found"]})
            into["http"] += each["http"]
            into["storage"] += each["storage"]
        for name, each in figures["bulk"].items():
            into = bulk.setdefault(name, {**each, "batches": [], "total": 0.0, "rounds": 0})
            into["batches"] += each["batches"]
            into["total"] += each["total"]
            into["rounds"] += 1
    for each in bulk.values():
        each["total"] /= each.pop("rounds")
    return {"searches": searches, "bulk": bulk}


def report(codes: dict[str, Figures], args: argparse.Namespace) -> None:
    """The tables: one code's figures, or before's and after's side by side with after / before."""
    names = list(codes)
    compare = len(names) == 2
    print(f"\nSQLite, {args.runs:,} runs, a page of {PAGE}, {args.repeat} calls each (scans: fewer), ms "
          f"(target: p95 under {TARGET_MS:.0f} ms)")  # fmt: skip
    heads = ["HTTP p50", "HTTP p95", "storage p50", "storage p95"]
    headers = ["search", "found"] + [f"{head}{f' {name}' if compare else ''}" for head in heads for name in names]
    if compare:
        headers += ["HTTP p95 after/before", "storage p95 after/before"]
    rows = []
    for search in codes[names[-1]]["searches"]:
        each = [codes[name]["searches"][search] for name in names]
        cells = [f"{percentile(e[way], p):.1f}" for way in ("http", "storage") for p in (50, 95) for e in each]
        if compare:
            cells += [
                f"{percentile(each[1][way], 95) / percentile(each[0][way], 95):.2f}x" for way in ("http", "storage")
            ]
        rows.append([search, f"{each[-1]['found']}", *cells])
    print(table(headers, rows))
    if not codes[names[-1]]["bulk"]:
        return
    print(f"\nBulk actions over {args.bulk:,} runs in batches of 500: total seconds, milliseconds per batch")
    heads = ["total s", "p50", "p95", "max"]
    headers = ["action", "matched", "changed"] + [
        f"{h}{f' {name}' if compare else ''}" for h in heads for name in names
    ]
    if compare:
        headers += ["p50 after/before", "p95 after/before"]
    rows = []
    for action in codes[names[-1]]["bulk"]:
        each = [codes[name]["bulk"][action] for name in names]
        cells = [f"{e['total']:.1f}" for e in each]
        cells += [f"{percentile(e['batches'], p):.0f}" for p in (50, 95) for e in each]
        cells += [f"{max(e['batches']):.0f}" for e in each]
        if compare:
            cells += [f"{percentile(each[1]['batches'], p) / percentile(each[0]['batches'], p):.2f}x" for p in (50, 95)]
        rows.append([action, f"{each[-1]['matched']:,}", f"{each[-1]['changed']:,}", *cells])
    print(table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--bulk", type=int, default=100_000, help="pending runs labelled batch=nightly")
    parser.add_argument("--repeat", type=int, default=100, help="timed calls per search and way")
    parser.add_argument("--db", default=str(ROOT / "bench" / "results" / "search.db"))
    parser.add_argument("--keep", action="store_true", help="reuse the database if it exists (no reseeding)")
    parser.add_argument("--before", metavar="REV", help="also measure this commit (git archive) or folder, in turns")
    parser.add_argument("--rounds", type=int, default=2, help="with --before: turns each code takes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    db_url = seeded_database(Path(args.db), args.runs, args.bulk, keep=args.keep)
    if args.child:
        print(RESULT_TAG + json.dumps(asyncio.run(measure(db_url, args.repeat, args.bulk > 0))), flush=True)
        return
    if not args.before:
        report({"": asyncio.run(measure(db_url, args.repeat, args.bulk > 0))}, args)
        return
    from bench.cli_server import code_for

    codes = {"before": code_for(args.before), "after": str(ROOT)}
    # A copy for the earlier code: the later one may migrate the database to a schema it refuses.
    databases = {"before": copy_database(Path(args.db)), "after": args.db}
    rounds: dict[str, list[Figures]] = {name: [] for name in codes}
    share = max(1, args.repeat // args.rounds)
    for number in range(1, args.rounds + 1):
        for name, code in codes.items():
            print(f"round {number}, {name} ({args.before if name == 'before' else 'this checkout'}):", flush=True)
            rounds[name].append(measure_code(code, databases[name], args, share))
    report({name: pooled(each) for name, each in rounds.items()}, args)


if __name__ == "__main__":
    main()
