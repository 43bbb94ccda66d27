"""Whether a process logs its events (the `durably_watch` mark), and what knowing it costs: an idle
process never reads the mark, a busy one at most once per `watch_refresh`, knowledge too old to trust
means "log", and a mark that cannot be read is logged once per streak of failures.

The schedule is checked on a clock the test moves (no timing assertions); the storage tests run on
both backends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from durably_reflex._clock import now_ms
from durably_reflex._storage import open_storage
from durably_reflex._storage.watch import RETRY_AFTER_FAILURE, WATCH_REFRESH, WatchMark

TICK = 0.01  # seconds the test clock moves per step of a simulated flusher
WAIT = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def simulate(mark: WatchMark, clock: Clock, seconds: float, *, logging_events: bool) -> list[float]:
    """Run the flusher's schedule for `seconds` of test clock; returns when it looked at the mark."""
    looks = []
    for _ in range(round(seconds / TICK)):
        clock.now += TICK
        if logging_events:
            mark.wanted(now_ms())
        if mark.look_due() == 0.0:
            looks.append(mark.looking())
            mark.seen(None, looks[-1])
    return looks


def test_an_idle_process_never_reads_the_watch_mark() -> None:
    clock = Clock()
    assert simulate(WatchMark(clock=clock), clock, 60.0, logging_events=False) == []


def test_a_process_that_logs_reads_the_mark_about_once_per_watch_refresh() -> None:
    clock = Clock()
    looks = simulate(WatchMark(clock=clock), clock, 10.0, logging_events=True)
    gaps = [later - earlier for earlier, later in itertools.pairwise(looks)]
    assert gaps and all(WATCH_REFRESH <= gap <= WATCH_REFRESH + TICK + 1e-9 for gap in gaps), gaps


def test_an_idle_process_that_starts_logging_logs_until_it_has_looked() -> None:
    clock = Clock()
    mark = WatchMark(clock=clock)
    assert mark.wanted(now_ms())  # never looked: not sure, so log
    assert mark.look_due() == 0.0
    mark.seen(None, mark.looking())  # nobody watches
    assert not mark.wanted(now_ms())


def test_knowledge_older_than_two_refreshes_is_not_trusted() -> None:
    clock = Clock()
    mark = WatchMark(clock=clock)
    mark.seen(None, clock.now)  # nobody watched when this look began
    clock.now += 1.5 * WATCH_REFRESH
    assert not mark.wanted(now_ms())
    clock.now += WATCH_REFRESH  # a process that began streaming may have set the mark meanwhile
    assert mark.wanted(now_ms())


def test_a_mark_in_the_future_means_log() -> None:
    clock = Clock()
    mark = WatchMark(clock=clock)
    mark.seen(now_ms() + 60_000, clock.now)
    assert mark.wanted(now_ms())


def test_a_failing_look_is_logged_once_per_streak_and_retried_every_second(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    mark = WatchMark(clock=clock)
    caplog.set_level(logging.INFO, logger="durably_reflex")
    mark.wanted(now_ms())
    for _ in range(3):
        clock.now += RETRY_AFTER_FAILURE
        assert mark.look_due() == 0.0
        mark.looking()
        mark.failed(OSError("connection refused"))
        assert mark.wanted(now_ms())  # unsure while it cannot look: log
        assert mark.look_due() == pytest.approx(RETRY_AFTER_FAILURE)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "connection refused" in warnings[0].getMessage()
    clock.now += RETRY_AFTER_FAILURE
    mark.seen(None, mark.looking())
    mark.looking()
    mark.failed(OSError("connection refused"))
    assert len([record for record in caplog.records if record.levelno == logging.WARNING]) == 2


async def test_watch_events_answers_the_mark_as_it_stood(db_url: str) -> None:
    storage = open_storage(db_url)
    try:
        await storage.migrate()
        first = now_ms() + 60_000
        assert await storage.watch_events(first) == 0
        assert await storage.watch_events(first + 1000) == first
    finally:
        await storage.close()


async def test_a_process_learns_from_the_database_that_nobody_watches(db_url: str) -> None:
    storage = open_storage(db_url)
    try:
        await storage.migrate()
        assert storage.events_watched()  # it has never looked: not sure, so it logs
        async with asyncio.timeout(WAIT):
            while storage.events_watched():  # the flusher looks when asked
                await asyncio.sleep(0.01)
    finally:
        await storage.close()


async def test_a_process_learns_that_another_one_watches(db_url: str) -> None:
    watcher, writer = open_storage(db_url), open_storage(db_url)
    try:
        await watcher.migrate()
        await writer.migrate()
        async with asyncio.timeout(WAIT):
            while writer.events_watched():
                await asyncio.sleep(0.01)
            await watcher.watch_events(now_ms() + 60_000)
            while not writer.events_watched():
                await asyncio.sleep(0.01)
    finally:
        await watcher.close()
        await writer.close()
