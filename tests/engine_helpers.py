"""Helpers shared by the engine's tests: waiting for a run, collecting events, thread-safe gates.

Job code runs on worker threads with event loops of their own, so anything a job and a test both
touch must be thread-safe: hence `Gate`, not `asyncio.Event`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import psycopg

from durably_reflex import Durably, Run, RunStatus

TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class Gate:
    """A one-shot signal that job code (on a worker thread's own event loop) and the test (on the
    test's loop) can both set and await: thread-safe, polled, and bounded by a timeout."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._event.is_set():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"gate not opened within {timeout} s")
            await asyncio.sleep(0.005)


async def wait_for_status(durably: Durably, run_id: str, *statuses: str, timeout: float = 5.0) -> Run:
    """The run once its status is one of `statuses` (polling), or TimeoutError."""
    async with asyncio.timeout(timeout):
        while True:
            run = await durably.get_run(run_id)
            if run is not None and run.status in statuses:
                return run
            await asyncio.sleep(0.01)


def collect(durably: Durably, event_type: str = "*") -> list[dict]:
    """A list that fills with the engine's events of `event_type` as they are delivered."""
    events: list[dict] = []
    durably.on(event_type, events.append)
    return events


def db_path(db_url: str) -> str:
    return db_url.removeprefix("sqlite:///")


def query_db(db_url: str, sql: str, *params: object) -> list[tuple]:
    """Run SQL (with `?` placeholders) on the test's database directly, as another program would,
    whichever the backend; returns the rows (empty for statements without any)."""
    if db_url.startswith("sqlite:"):
        with sqlite3.connect(db_path(db_url)) as db:
            return db.execute(sql, params).fetchall()
    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as db:
        cursor = db.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []
