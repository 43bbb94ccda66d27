"""The event feed: every process's events, read back from the event log in the order written.

This is how a server sees runs executed by workers in other processes, and how a stream that drops
resumes with no gap: each event has a log id, and a subscriber may start after any id still kept.
One task per process tails the log every `interval` seconds while anyone is subscribed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

from .clock import now_ms
from .events import Event
from .storage.base import Storage

logger = logging.getLogger("durably_reflex")

_PAGE = 1000


class FeedSubscription:
    """Events `(log id, event)` in log order, optionally of one run; an async iterator."""

    def __init__(self, feed: EventFeed, run_id: str | None) -> None:
        self.run_id = run_id
        self._feed = feed
        self._replay: deque[tuple[int, Event]] = deque()
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._last_id = 0

    def offer(self, event_id: int, event: Event) -> None:
        if self.run_id is None or event.get("runId") == self.run_id:
            self._queue.put_nowait((event_id, event))

    def replay(self, events: list[tuple[int, Event]]) -> None:
        self._replay.extend(events)

    async def next(self, timeout: float | None = None) -> tuple[int, Event] | None:
        """The next event, or None if none came within `timeout` seconds."""
        while self._replay:
            event_id, event = self._replay.popleft()
            if event_id > self._last_id:
                self._last_id = event_id
                return event_id, event
        while True:
            try:
                event_id, event = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                return None
            if event_id > self._last_id:  # replayed already
                self._last_id = event_id
                return event_id, event

    def __aiter__(self) -> FeedSubscription:
        return self

    async def __anext__(self) -> tuple[int, Event]:
        item = await self.next()
        assert item is not None
        return item

    def close(self) -> None:
        self._feed.unsubscribe(self)

    async def __aenter__(self) -> FeedSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class EventFeed:
    """While anyone is subscribed, it also tells every process sharing the database to keep logging
    events (they skip the log when nobody watches): for `WATCH_GRACE` seconds, renewed as it tails,
    so a stream that reconnects within that time finds no gap."""

    WATCH_GRACE = 60.0

    def __init__(self, storage: Storage, interval: float = 0.025) -> None:
        self.interval = interval
        self._storage = storage
        self._subscribers: set[FeedSubscription] = set()
        self._position = 0
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def subscribe(self, *, run_id: str | None = None, after: int | None = None) -> FeedSubscription:
        """Events from now on; with `after`, first those logged after that id (if still kept)."""
        subscription = FeedSubscription(self, run_id)
        async with self._starting:
            if self._task is None or self._task.done():
                self._position = await self._storage.last_event_id()
                self._task = asyncio.get_running_loop().create_task(self._tail(), name="durably-event-feed")
            self._subscribers.add(subscription)
            position = self._position
        if after is not None and after < position:
            subscription.replay(await self._read(after, run_id, until=position))
        return subscription

    def unsubscribe(self, subscription: FeedSubscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def _read(self, after: int, run_id: str | None, until: int) -> list[tuple[int, Event]]:
        events: list[tuple[int, Event]] = []
        while after < until:
            page = await self._storage.read_events(after, run_id=run_id, limit=_PAGE)
            events.extend((stored.id, json.loads(stored.body_json)) for stored in page if stored.id <= until)
            if len(page) < _PAGE:
                break
            after = page[-1].id
        return events

    async def _tail(self) -> None:
        next_watch = 0.0
        while self._subscribers:
            if time.monotonic() >= next_watch:
                next_watch = time.monotonic() + self.WATCH_GRACE / 6
                try:
                    await self._storage.watch_events(now_ms() + int(self.WATCH_GRACE * 1000))
                except Exception:
                    logger.exception("durably event feed: could not ask for events to be logged")
            try:
                page = await self._storage.read_events(self._position, limit=_PAGE)
            except Exception:
                logger.exception("durably event feed: reading the event log failed")
                await asyncio.sleep(max(self.interval, 1.0))
                continue
            for stored in page:
                event: dict[str, Any] = json.loads(stored.body_json)
                for subscription in list(self._subscribers):
                    subscription.offer(stored.id, event)
            if page:
                self._position = page[-1].id
            if len(page) < _PAGE:
                await asyncio.sleep(self.interval)
