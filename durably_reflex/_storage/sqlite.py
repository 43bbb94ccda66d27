"""SQLite: the connection settings and the few things SQLite spells its own way. The only module
that knows it is talking to SQLite.

Two connections: a writer that group-commits (SQLite takes one writer at a time, so more writer
connections would only queue on its lock) and a reader, which WAL lets run beside it. An in-memory
database lives in one connection, so there it serves both.

The processes of one file meet in a folder of their own (`coordination.rendezvous`): workers take
turns there (`FileCoordination`), and a commit that logged events rings the processes whose event
feed tails the log (`doorbell.py`), as PostgreSQL's NOTIFY does.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import StoredEvent
from .coordination import Coordination, OnRing, Ring, Solo, file_coordination, rendezvous, ring_folder
from .doorbell import RUNG_POLL, Doorbell, FeedRinger, open_doorbell
from .group_commit import DEFAULT_PATIENCE, GroupCommit
from .sql import SqlSession, SqlStorage, pop_url_option
from .urls import DatabaseUrl, Query, as_bool, parse_url

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
# Primary result codes of a database that cannot be written now (the extended codes keep them in
# their low byte): SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
_UNAVAILABLE_CODES = frozenset({5, 6, 8, 10, 13, 14})


class SqliteSession(SqlSession):
    def __init__(self, raw: Any, meeting: Path | None) -> None:
        """`meeting`: the folder of the file's processes, whose feeds a commit with events rings."""
        super().__init__(raw, "sqlite://")
        self._ringer = FeedRinger(meeting) if meeting is not None else None
        self.logged_events = False  # this transaction wrote events: ring the feeds once it commits

    def begin(self, write: bool) -> None:
        # IMMEDIATE takes the write lock up front, so a batch never fails half-way on a lock upgrade.
        self.raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        super().commit()
        if self.logged_events:
            self.logged_events = False
            if self._ringer is not None:
                self._ringer.ring()

    def rollback(self) -> None:
        self.logged_events = False
        super().rollback()

    def close(self) -> None:
        if self._ringer is not None:
            self._ringer.close()
        super().close()

    def is_transient(self, error: BaseException) -> bool:
        message = str(error).lower()
        return isinstance(error, sqlite3.OperationalError) and ("locked" in message or "busy" in message)

    def is_unavailable(self, error: BaseException) -> bool:
        """The file cannot be written now: its disk is full, failing or read-only, or another
        process holds the lock beyond `busy_timeout` (once the transient retries are spent)."""
        error = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
        code = getattr(error, "sqlite_errorcode", None)
        return isinstance(error, sqlite3.Error) and code is not None and code & 0xFF in _UNAVAILABLE_CODES


class SqliteStorage(SqlStorage):
    """Options come from the URL query: `sqlite:///jobs.db?synchronous=FULL&busy_timeout=30`, and
    `reconnect_timeout` (seconds, default 2): how long a call waits for a file that cannot be written
    (a full disk, say) before `StorageUnavailableError`.

    `synchronous=NORMAL` (the default, with WAL) loses nothing when a process is killed; a power cut
    or OS crash may lose the last commits (never corrupts). `synchronous=FULL` makes every commit
    survive power loss, at the cost of an fsync per commit.
    """

    def __init__(self, url: str) -> None:
        parsed = parse_url(url)
        if parsed.host_part:
            raise ValueError(
                f"Invalid SQLite URL {url!r}: use sqlite:///relative/path.db, sqlite:////absolute/path.db "
                "or sqlite:// (in memory)"
            )
        options = dict(parsed.query)
        synchronous = pop_url_option(options, "synchronous", "NORMAL").upper()
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {synchronous!r}")
        busy_timeout = float(pop_url_option(options, "busy_timeout", "30"))
        patience = float(pop_url_option(options, "reconnect_timeout", DEFAULT_PATIENCE))
        database = parsed.database
        in_memory = database in (None, ":memory:")
        if database and not in_memory and not database.startswith("file:"):
            # A relative file is relative to where the engine is created, not to wherever the
            # process's working directory is when it first connects (a server may change it).
            database = os.path.abspath(database)
            parsed = parsed.with_database(database)
        filename, driver_options = _connect_args(database or ":memory:", options)
        # Workers of an in-memory database share this process: its worker is alone, its feed unrung.
        meeting = rendezvous(database) if database and not in_memory and not database.startswith("file:") else None

        def connect() -> SqliteSession:
            raw = sqlite3.connect(
                filename, timeout=busy_timeout, check_same_thread=False, isolation_level=None, **driver_options
            )
            session = SqliteSession(raw, meeting)
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
            patience=patience,
        )
        if in_memory:  # one connection is the database
            super().__init__("sqlite", "named", writer, writer)
        else:
            reader = GroupCommit("durably-sqlite-reader", connect, patience=patience)
            counter = GroupCommit("durably-sqlite-counter", connect, threads=2, patience=patience)
            super().__init__("sqlite", "named", writer, reader, counter)
        self.url: DatabaseUrl = parsed
        self._meeting = meeting
        # The event feed's own connection to a file, opened at its first read (see `read_events_now`).
        self._log_tail_args = (filename, driver_options) if meeting is not None else None
        self._log_tail: SqliteSession | None = None
        self._doorbell: Doorbell | None = None
        self._doorbell_tried = False

    def coordinate(self, on_ring: OnRing, polling_interval: float) -> Coordination:
        if self._meeting is None:
            return Solo()
        return file_coordination(self._meeting, on_ring, polling_interval)

    def ring_leader(self, count: int) -> None:
        if self._meeting is not None:
            ring_folder(self._meeting, Ring.LEADER, count)

    def write_events(self, session: SqlSession, rows: list[dict[str, Any]]) -> None:
        super().write_events(session, rows)
        assert isinstance(session, SqliteSession)
        session.logged_events = True

    def read_events_now(self, after_id: int, limit: int) -> list[StoredEvent] | None:
        """A file answers at once: a WAL reader never waits for a writer, and the newest events were
        just written, so they are in the operating system's cache. On a connection of its own that
        never waits for a lock (busy_timeout 0): where SQLite would make it wait (a WAL being
        reset, say) or the file cannot be read, None, and the feed reads on a thread as usual."""
        if self._log_tail_args is None:
            return None
        try:
            if self._log_tail is None:
                filename, driver_options = self._log_tail_args
                raw = sqlite3.connect(
                    filename, timeout=0, check_same_thread=False, isolation_level=None, **driver_options
                )
                self._log_tail = SqliteSession(raw, None)
            return self.events_in(self._log_tail, after_id, None, limit)
        except sqlite3.Error:
            self._close_log_tail()
            return None

    def _close_log_tail(self) -> None:
        if self._log_tail is not None:
            with contextlib.suppress(sqlite3.Error):
                self._log_tail.close()
            self._log_tail = None

    async def wait_for_events(self, poll: float) -> None:
        """Rung by the processes that commit events (see `doorbell.py`), polling every `RUNG_POLL`
        seconds (or `poll`, if longer) as a safety net; every `poll` seconds where nobody can ring."""
        if not self._doorbell_tried:
            self._doorbell_tried = True
            self._doorbell = open_doorbell(self._meeting) if self._meeting is not None else None
            return  # events committed before the doorbell was there rang nobody: read once more first
        if self._doorbell is None:
            await super().wait_for_events(poll)
        else:
            await self._doorbell.wait(max(poll, RUNG_POLL))

    async def close(self) -> None:
        self._close_log_tail()
        if self._doorbell is not None:
            self._doorbell.close()
            self._doorbell = None
        await super().close()


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


# The sqlite3 options a URL may give (as SQLAlchemy reads them); the engine sets the others.
_DRIVER_OPTIONS: dict[str, Callable[[str], Any]] = {"uri": as_bool, "detect_types": int, "cached_statements": int}
_ENGINE_OWNED = ("timeout", "isolation_level", "check_same_thread")


def _connect_args(database: str, options: Query) -> tuple[str, dict[str, Any]]:
    """sqlite3.connect's file name and options for what is left of the URL's query. With `uri=true`,
    the rest goes into the file's URI (`file:jobs.db?mode=ro`); without, it is ignored with a
    warning, as SQLAlchemy does."""
    rest = {name: value for name, value in options.items() if name not in _ENGINE_OWNED}
    driver: dict[str, Any] = {}
    for name, convert in _DRIVER_OPTIONS.items():
        if name in rest:
            driver[name] = convert(pop_url_option(rest, name, ""))
    if driver.get("uri"):
        if rest:
            database += "?" + "&".join(f"{name}={rest[name]}" for name in sorted(rest))
        return database, driver
    if rest:
        warnings.warn(
            f"SQLite URL option(s) {', '.join(sorted(rest))} ignored: SQLite URI options need uri=true",
            stacklevel=3,
        )
    return (database if database == ":memory:" else os.path.abspath(database)), driver
