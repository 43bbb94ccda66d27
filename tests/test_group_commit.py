"""GroupCommit's one connection, shared by a worker's runner loop (`run_grouped`) and other threads
(`run_blocking`), on a real SQLite file: a lone slot's write runs at once when nobody leads, and
neither overtakes nor strands the writes of others."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from durably_reflex._storage.group_commit import GroupCommit
from durably_reflex._storage.sqlite import SqliteSession


def _connection(path: Path) -> GroupCommit[SqliteSession]:
    def connect() -> SqliteSession:
        raw = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        raw.execute("CREATE TABLE IF NOT EXISTS written (name TEXT, thread INTEGER)")
        return SqliteSession(raw, None)

    return GroupCommit("test-writer", connect)


def _write(name: str, before: Callable[[], None] = lambda: None) -> Callable[[SqliteSession], str]:
    """An operation that runs `before`, then records `name` and the thread that wrote it."""

    def operation(session: SqliteSession) -> str:
        before()
        session.raw.execute("INSERT INTO written VALUES (?, ?)", (name, threading.get_ident()))
        return name

    return operation


def _written(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT name, thread FROM written ORDER BY rowid").fetchall()


def _until_queued(connection: GroupCommit[SqliteSession]) -> None:
    """Wait until an operation waits in the queue for its leader."""
    while not connection._queue:
        time.sleep(0.001)


async def test_a_lone_write_while_another_thread_leads_waits_for_that_leader_and_commits_after_it(tmp_path):
    connection = _connection(tmp_path / "db")
    leading = threading.Event()
    try:
        # The other thread leads until the loop's write has queued behind it.
        other = threading.Thread(
            target=connection.run_blocking,
            args=(_write("leader's", lambda: (leading.set(), _until_queued(connection))),),
        )
        other.start()
        leading.wait(5)

        assert await connection.run_grouped(_write("lone")) == "lone"
        other.join(5)

        assert [name for name, _ in _written(tmp_path / "db")] == ["leader's", "lone"]
    finally:
        connection.close()


async def test_writes_queued_while_a_lone_write_runs_are_then_committed_by_the_loop_thread(tmp_path):
    connection = _connection(tmp_path / "db")
    others: list[threading.Thread] = []

    def while_lone() -> None:
        others.append(threading.Thread(target=connection.run_blocking, args=(_write("queued"),)))
        others[0].start()
        _until_queued(connection)

    try:
        assert await connection.run_grouped(_write("lone", while_lone)) == "lone"
        others[0].join(5)

        loop_thread = threading.get_ident()
        assert _written(tmp_path / "db") == [("lone", loop_thread), ("queued", loop_thread)]
    finally:
        connection.close()
