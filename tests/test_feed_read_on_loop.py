"""The event feed reads a SQLite file's newest events on the event loop itself
(`Storage.read_events_now`): a read on a thread would come back through the loop twice, each time
behind the writes of every open stream. It may do so only because such a read never waits: where
SQLite would make it wait, it declines at once and the feed reads on a thread as before.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from durably_reflex._clock import now_ms
from durably_reflex._storage.base import NewEvent, NewRun
from durably_reflex._storage.sqlite import SqliteStorage


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


def new_run(run_id: str) -> NewRun:
    return NewRun(id=run_id, job_name="job", input_json="null", idempotency_key=None, concurrency_key=None,
                  created_at=now_ms())  # fmt: skip


async def log_events(storage: SqliteStorage, run_id: str, kinds: list[str]) -> None:
    """Commit one run and `kinds` events of it."""

    def announce(run: object) -> None:  # inside the insertion's transaction
        for kind in kinds:
            storage.append_event(NewEvent(run_id, "job", kind, "{}", now_ms()))

    await storage.insert_runs([new_run(run_id)], announce=announce)


async def test_a_file_gives_the_events_after_an_id_on_the_callers_thread_as_read_events_does(db_file: Path) -> None:
    storage = SqliteStorage(f"sqlite:///{db_file}")
    await storage.migrate()
    try:
        await log_events(storage, "run-1", ["a", "b", "c", "d"])
        everything = await storage.read_events(0)
        assert storage.read_events_now(0, 100) == everything
        assert storage.read_events_now(everything[1].id, 100) == everything[2:]
        assert storage.read_events_now(0, 2) == everything[:2]
        assert storage.read_events_now(everything[-1].id, 100) == []
    finally:
        await storage.close()


async def test_an_in_memory_database_declines_and_is_read_on_a_thread() -> None:
    storage = SqliteStorage("sqlite://")
    await storage.migrate()
    try:
        assert storage.read_events_now(0, 100) is None
    finally:
        await storage.close()


async def test_a_read_that_would_wait_for_a_lock_declines_at_once_and_the_next_one_reads_again(db_file: Path) -> None:
    writer = SqliteStorage(f"sqlite:///{db_file}")
    await writer.migrate()
    await log_events(writer, "run-1", ["a"])
    await writer.close()
    # A connection in exclusive locking mode keeps the file to itself once it has written: any
    # other connection's read would wait for it.
    holder = sqlite3.connect(db_file, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM durably_events WHERE id < 0")
    holder.execute("COMMIT")
    storage = SqliteStorage(f"sqlite:///{db_file}")
    try:
        started = time.monotonic()
        assert storage.read_events_now(0, 100) is None
        assert time.monotonic() - started < 1.0  # declined, not waited out (its busy_timeout is 0)
        holder.close()
        assert [event.type for event in storage.read_events_now(0, 100) or []] == ["a"]
    finally:
        holder.close()
        await storage.close()


async def test_a_file_whose_log_cannot_be_read_declines_and_is_read_on_a_thread(db_file: Path) -> None:
    storage = SqliteStorage(f"sqlite:///{db_file}")
    try:
        assert storage.read_events_now(0, 100) is None  # no schema yet: the read fails
        await storage.migrate()
        assert storage.read_events_now(0, 100) == []
    finally:
        await storage.close()
