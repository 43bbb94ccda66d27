"""The storage's queries of pending, running, keyed and replayed runs read the partial indexes made
for them (schema version 5), on both databases: each query's conditions imply the index's, so the
planner may use it, and with a table of mostly settled runs (what a database holds after a while)
it does. Neither database reads the whole table for any of them.

The statements are the storage's own (a query whose conditions stop implying its index's fails
here, not in production as a scan of every run); the plans are SQLite's EXPLAIN QUERY PLAN without
ANALYZE (the engine never runs it) and PostgreSQL's EXPLAIN after ANALYZE (autovacuum's statistics).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from typing import Any

import psycopg
import pytest

from durably_reflex import Durably, create_durably
from durably_reflex._storage.sql import SqlStorage
from tests.conftest import FAST

NOW = 1_700_000_000_000
SETTLED = 2_000  # completed runs, without keys
PENDING = 40  # a quarter with a concurrency key, a fifth with an idempotency key
RUNNING = 8  # half with a concurrency key


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[SqlStorage]:
    """A migrated database holding mostly settled runs, and a few pending, running, keyed and replayed."""
    engine: Durably = create_durably(db_url, **FAST)
    await engine.migrate()
    rows = []
    for number in range(SETTLED + PENDING + RUNNING):
        status, key, idempotency = "completed", None, None
        if SETTLED <= number < SETTLED + PENDING:
            status = "pending"
            key = f"key-{number % 3}" if number % 4 == 0 else None
            idempotency = f"idem-{number}" if number % 5 == 0 else None
        elif number >= SETTLED + PENDING:
            status, key = "running", (f"key-{number % 3}" if number % 2 else None)
        replay_of = "run-00001" if number % 500 == 7 else None
        rows.append((f"run-{number:05}", status, idempotency, key, NOW + number, number % 3, replay_of))
    with _connect(db_url) as (db, mark):
        marks = ", ".join([mark] * 7)
        db.executemany(
            "INSERT INTO durably_runs (id, status, idempotency_key, concurrency_key, created_at, priority, replay_of,"
            f" job_name, input, attempt, heartbeat_at, updated_at, ready_at) VALUES ({marks}, 'job', 'null', 1, 0, 0, 0)",
            rows,
        )
        if mark == "%s":
            db.execute("ANALYZE durably_runs")
    assert isinstance(engine.storage, SqlStorage)
    yield engine.storage
    await engine.close(timeout=5)


@contextmanager
def _connect(db_url: str) -> Iterator[tuple[Any, str]]:
    """The test's database, as another program would open it, and its driver's parameter mark."""
    if db_url.startswith("sqlite"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db, db:
            yield db, "?"
        return
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection.cursor(), "%s"


def plan_of(db_url: str, sql: str, params: Any) -> str:
    """The database's plan for the statement, one line per step."""
    with _connect(db_url) as (db, mark):
        explain = "EXPLAIN QUERY PLAN" if mark == "?" else "EXPLAIN"
        return "\n".join(row[-1] for row in db.execute(f"{explain} {sql}", params).fetchall())


def assert_reads_index(plan: str, index: str) -> None:
    assert index in plan, plan
    whole_table = [line for line in plan.splitlines() if "Seq Scan on durably_runs" in line or _sqlite_scan(line)]
    assert not whole_table, plan


def _sqlite_scan(line: str) -> bool:
    """SQLite's line for reading every row of a table: `SCAN <table or alias>`, no index named."""
    return line.strip().startswith("SCAN ") and "INDEX" not in line


async def test_a_claim_reads_pending_runs_in_claim_order_and_running_runs_by_key(storage, db_url, backend):
    """PostgreSQL may instead read the running runs once (a few: one per slot at most) into a hash;
    it checks the key of the run it takes again under the key's lock (`_key_running`, below)."""
    params = {"job_0": "job", "job_1": "other", "now": NOW, "owner": "me", "skipped": []}
    plan = plan_of(db_url, storage._claim_statement(2).sql, params)
    assert_reads_index(plan, "ix_durably_runs_ready")
    if backend == "sqlite":
        assert_reads_index(plan, "ix_durably_runs_active_key")


async def test_the_leader_reads_the_oldest_ready_runs_and_the_next_wake_from_the_claim_order(storage, db_url):
    assert_reads_index(plan_of(db_url, storage._oldest_pending.sql, {"now": NOW, "limit": 10}), "ix_durably_runs_ready")
    assert_reads_index(plan_of(db_url, storage._next_wake.sql, {"now": NOW}), "ix_durably_runs_ready")


async def test_a_coalesced_trigger_finds_the_pending_run_of_its_key(storage, db_url):
    plan = plan_of(db_url, storage._pending_of_key.sql, {"job_name": "job", "key": "key-1", "scope": ""})
    assert_reads_index(plan, "ix_durably_runs_active_key")


async def test_a_postgresql_claim_checks_that_no_run_of_its_key_runs(storage, db_url, backend):
    if backend != "postgresql":
        pytest.skip("SQLite's claim checks within its one statement (above)")
    plan = plan_of(db_url, storage._key_running.sql, {"key": "key-1", "scope": ""})
    assert_reads_index(plan, "ix_durably_runs_active_key")


async def test_a_taken_idempotency_key_and_the_replays_of_a_run_are_found_by_their_indexes(storage, db_url):
    """The idempotency lookup of `insert_runs` and the search by `replay_of` (`queries.search`)."""
    mark = "?" if db_url.startswith("sqlite") else "%s"
    by_key = f"SELECT id FROM durably_runs WHERE scope = {mark} AND job_name = {mark} AND idempotency_key = {mark}"
    assert_reads_index(plan_of(db_url, by_key, ("", "job", "idem-2005")), "ix_durably_runs_idempotency")
    replays = f"SELECT id FROM durably_runs WHERE replay_of = {mark}"
    assert_reads_index(plan_of(db_url, replays, ("run-00001",)), "ix_durably_runs_replay_of")
