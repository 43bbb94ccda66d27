"""SQLite: the connection settings and the few things SQLite spells its own way. The only module
that knows it is talking to SQLite.

Two connections: a writer that group-commits (SQLite takes one writer at a time, so more writer
connections would only queue on its lock) and a reader, which WAL lets run beside it. An in-memory
database lives in one connection, so there it serves both.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from sqlalchemy import URL, create_engine, make_url
from sqlalchemy.pool import NullPool

from .group_commit import GroupCommit
from .sql import SqlSession, SqlStorage, pop_url_option

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


class SqliteSession(SqlSession):
    def begin(self, write: bool) -> None:
        # IMMEDIATE takes the write lock up front, so a batch never fails half-way on a lock upgrade.
        self.raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def is_transient(self, error: BaseException) -> bool:
        message = str(error).lower()
        return isinstance(error, sqlite3.OperationalError) and ("locked" in message or "busy" in message)


class SqliteStorage(SqlStorage):
    """Options come from the URL query: `sqlite:///jobs.db?synchronous=FULL&busy_timeout=30`.

    `synchronous=NORMAL` (the default, with WAL) loses nothing when a process is killed; a power cut
    or OS crash may lose the last commits (never corrupts). `synchronous=FULL` makes every commit
    survive power loss, at the cost of an fsync per commit.
    """

    def __init__(self, url: str | URL) -> None:
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            # A relative file is relative to where the engine is created, not to wherever the
            # process's working directory is when it first connects (a server may change it).
            parsed = parsed.set(database=os.path.abspath(parsed.database))
        options = dict(parsed.query)
        synchronous = pop_url_option(options, "synchronous", "NORMAL").upper()
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {synchronous!r}")
        busy_timeout = float(pop_url_option(options, "busy_timeout", "30"))
        in_memory = parsed.database in (None, "", ":memory:")
        engine = create_engine(
            parsed.set(query=options),
            poolclass=NullPool,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
        )

        def connect() -> SqliteSession:
            session = SqliteSession(engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
            raw: Any = session.raw
            raw.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            if not in_memory:
                _enable_wal(raw, busy_timeout)
            raw.execute(f"PRAGMA synchronous={synchronous}")
            raw.execute("PRAGMA temp_store=MEMORY")
            return session

        writer: GroupCommit[SqliteSession] = GroupCommit(
            "durably-sqlite-writer",
            connect,
            before_group=self.flush_before_group,
            before_commit=self.flush_before_commit,
        )
        reader = writer if in_memory else GroupCommit("durably-sqlite-reader", connect)
        super().__init__(engine.dialect, writer, reader)
        self.url = parsed


def _enable_wal(raw: Any, busy_timeout: float) -> None:
    """Switch to WAL. Changing the journal mode needs the database to itself and SQLite does not
    wait for that, so a new file that another process is writing is retried for `busy_timeout`."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            message = str(error).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)
