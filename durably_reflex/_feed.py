"""The event feed: every process's events, read back from the event log in the order written.

This is how a server sees runs executed by workers in other processes, and how a stream that drops
resumes with no gap: each event has a log id, and a subscriber may start after any id still kept.
One task per process tails the log while anyone is subscribed: when the database announces new
events (PostgreSQL's NOTIFY, SQLite's doorbell: see `_storage/doorbell.py`), with a poll as safety
net, or every `interval` seconds where nothing announces. Where the database answers at once (a
SQLite file), it reads on the event loop itself: a read on a thread comes back through the loop
twice, each time behind the writes of every stream, and with hundreds of streams that was most of
an event's way to the first of them (bench/sse.py, W4a). It hands each event to the subscribers of
its run and to those of all runs, as the stored JSON (streams send it as it is) with the event
decoded only when someone needs its fields.

A subscriber that stops reading (its client stopped reading, and the stream waits on the socket)
would otherwise hold every event logged since: each subscription holds at most `MAX_BACKLOG_BYTES`
of events its stream has not taken, and one that falls further behind is ended (`overflowed`). Its
client reconnects with `Last-Event-ID` and reads what it missed from the event log, page by page, as
any resuming stream does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque

from ._clock import now_ms
from ._errors import StorageUnavailableError
from ._events import Event
from ._storage.base import Storage, StoredEvent

logger = logging.getLogger("durably_reflex")

_PAGE = 1000
# Events read on the loop at most (see `Storage.read_events_now`): a few hundred microseconds.
_PAGE_NOW = 100

# Bytes of events a subscription holds for a stream that has not taken them yet (see the docstring).
MAX_BACKLOG_BYTES = 4 * 1024 * 1024


class FeedItem:
    """One logged event. The JSON is parsed at most once, however many streams need its fields."""

    __slots__ = ("_event", "body", "id", "job_name", "run_id", "type")

    def __init__(self, stored: StoredEvent) -> None:
        self.id = stored.id
        self.run_id = stored.run_id
        self.job_name = stored.job_name
        self.type = stored.type
        self.body = stored.body_json.encode()
        self._event: Event | None = None

    @property
    def event(self) -> Event:
        if self._event is None:
            self._event = json.loads(self.body)
        return self._event


class FeedSubscription:
    """Feed items in log order, optionally of one run. `next_batch()` returns what is waiting: first
    the items logged before the subscription began (read from the log a page at a time), then those
    that arrived meanwhile and since."""

    def __init__(self, feed: EventFeed, run_id: str | None) -> None:
        self.run_id = run_id
        self._feed = feed
        self._items: deque[FeedItem] = deque()
        self._backlog = 0  # bytes of event JSON in `_items`
        self._catch_up: tuple[int, int] | None = None  # (after id, until id) still to read from the log
        self._waiter: asyncio.Future[None] | None = None
        self._wake_at = math.inf  # when the wait in progress ends with no items (loop time)
        # One timer kept across waits (see `_arm`): arming and cancelling one per wait is a cost
        # every stream pays per batch.
        self._timer: asyncio.Handle | None = None
        # The deadline `_timer` was set for. Not `_timer.when()`: for a deadline under a millisecond
        # away uvloop's `call_at` gives a plain Handle (it calls soon), which has no `when()`.
        self._timer_at = math.inf
        self._last_id = 0
        self.ended = False
        self.overflowed = False

    def offer(self, items: list[FeedItem], size: int) -> None:
        """Items just read from the log, in log order, with `size` bytes of JSON in all: one call per
        page read, not per item, since every subscriber is offered every page."""
        if self.ended:
            return
        self._items.extend(items)
        self._backlog += size
        if self._backlog > MAX_BACKLOG_BYTES and len(self._items) > 1:
            self._overflow()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _overflow(self) -> None:
        """The stream fell too far behind: drop what it has not taken and end it (see the module docstring)."""
        logger.info(
            "durably event feed: a stream fell more than %d bytes behind; ending it (it resumes with Last-Event-ID)",
            MAX_BACKLOG_BYTES,
        )
        self._items.clear()
        self._backlog = 0
        self.overflowed = True
        self.close()
        self.end()

    def skip_through(self, event_id: int) -> None:
        """Ignore items up to this id (a snapshot already reflects them)."""
        self._last_id = max(self._last_id, event_id)

    def end(self) -> None:
        """Stop the stream reading this subscription: `ended` turns true and a waiting read returns."""
        self.ended = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def catch_up(self, after: int, until: int) -> None:
        """Items logged after `after` up to `until` (before this subscription began) go first."""
        if after < until:
            self._catch_up = (after, until)

    async def next_batch(self, timeout: float | None = None) -> list[FeedItem]:
        """The items waiting (in log order, none twice), or [] if none came within `timeout` seconds
        or the subscription has ended."""
        if self.ended:
            return []
        while self._catch_up is not None:
            after, until = self._catch_up
            page = await self._feed.read_page(after, self.run_id, until)
            self._catch_up = (page[-1].id, until) if len(page) == _PAGE and page[-1].id < until else None
            if batch := self._take(page):
                return batch
        if not self._items:
            loop = asyncio.get_running_loop()
            self._wake_at = math.inf if timeout is None else loop.time() + timeout
            self._arm(loop)
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items = list(self._items)
        self._items.clear()
        self._backlog = 0
        return self._take(items)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have the timer ring by `_wake_at`. A timer set for that time or earlier is kept: a
        stream's next deadline is mostly later than its last (its keep-alive moves on with every
        write), and a timer that rings early sets itself again instead of waking the stream."""
        if self._timer is not None:
            if self._timer_at <= self._wake_at:
                return
            self._timer.cancel()
            self._timer = None
        if self._wake_at != math.inf:
            self._timer = loop.call_at(self._wake_at, self._ring, loop, self._wake_at)
            self._timer_at = self._wake_at

    def _ring(self, loop: asyncio.AbstractEventLoop, set_for: float) -> None:
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return  # the stream is busy, or about to be: its next wait sets the timer it needs
        if self._wake_at > set_for:
            self._arm(loop)  # set for a deadline the stream has since put off
        else:
            _settle(self._waiter)

    def _take(self, items: list[FeedItem]) -> list[FeedItem]:
        """Those of `items` (in log order) not taken before: items read from the log may also arrive
        live. Looked at one by one only where they overlap what was taken."""
        if items and items[0].id <= self._last_id:
            items = [item for item in items if item.id > self._last_id]
        if items:
            self._last_id = items[-1].id
        return items

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._feed.unsubscribe(self)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventFeed:
    """While anyone is subscribed, it also tells every process sharing the database to keep logging
    events (they skip the log when nobody watches): for `WATCH_GRACE` seconds, renewed as it tails,
    so a stream that reconnects within that time finds no gap."""

    WATCH_GRACE = 60.0

    def __init__(self, storage: Storage, interval: float = 0.01) -> None:
        self.interval = interval
        self._storage = storage
        self._renewed_at = float("-inf")  # when this process last set the watch mark (monotonic)
        self._all_runs: set[FeedSubscription] = set()
        self._by_run: dict[str, set[FeedSubscription]] = {}
        self._count = 0
        self._position = 0
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def subscribe(self, *, run_id: str | None = None, after: int | None = None) -> FeedSubscription:
        """Events from now on; with `after`, first those logged after that id (if still kept)."""
        subscription = FeedSubscription(self, run_id)
        async with self._starting:
            if self._renewal_due():
                asked_at = now_ms()
                before = await self._renew_watch()
                # A mark about to lapse counts as lapsed: other processes may see it lapse before our renewal.
                if before < asked_at + int(3 * self._storage.watch_refresh * 1000):
                    # Nobody watched: other processes are not logging events. Give them time to
                    # notice our mark (see `WatchMark`) before the caller reads the state it will
                    # follow, so nothing falls between that state and the first logged event.
                    await asyncio.sleep(2 * self._storage.watch_refresh)
            if self._task is None or self._task.done():
                self._position = await self._storage.last_event_id()
                self._task = asyncio.get_running_loop().create_task(self._tail(), name="durably-event-feed")
            if run_id is None:
                self._all_runs.add(subscription)
            else:
                self._by_run.setdefault(run_id, set()).add(subscription)
            self._count += 1
            position = self._position
        if after is not None:
            subscription.catch_up(after, position)
        return subscription

    def unsubscribe(self, subscription: FeedSubscription) -> None:
        if subscription.run_id is None:
            if subscription in self._all_runs:
                self._all_runs.discard(subscription)
                self._count -= 1
            return
        of_run = self._by_run.get(subscription.run_id)
        if of_run is not None and subscription in of_run:
            of_run.discard(subscription)
            self._count -= 1
            if not of_run:
                del self._by_run[subscription.run_id]

    def end_all(self) -> None:
        """End every open stream (the server is shutting down: open streams would hold it up)."""
        for subscription in [*self._all_runs, *(s for of_run in self._by_run.values() for s in of_run)]:
            subscription.end()

    @property
    def subscriber_count(self) -> int:
        return self._count

    async def read_page(self, after: int, run_id: str | None, until: int) -> list[FeedItem]:
        """Up to one page of logged items after `after`, none beyond `until`."""
        page = await self._storage.read_events(after, run_id=run_id, limit=_PAGE)
        return [FeedItem(stored) for stored in page if stored.id <= until]

    def _renewal_due(self) -> bool:
        return time.monotonic() >= self._renewed_at + self.WATCH_GRACE / 6

    async def _renew_watch(self) -> int:
        """Ask every process to log events for another `WATCH_GRACE`; returns the mark as it stood."""
        before = await self._storage.watch_events(now_ms() + int(self.WATCH_GRACE * 1000))
        self._renewed_at = time.monotonic()
        return before

    async def _tail(self) -> None:
        read_now = True  # see `read_events_now`; a full page means a backlog, read on a thread
        while self._count:
            if self._renewal_due():
                try:
                    await self._renew_watch()
                except StorageUnavailableError:
                    pass  # the storage logs the outage once; streams carry on once it is back
                except Exception:
                    logger.exception("durably event feed: could not ask for events to be logged")
                    self._renewed_at = time.monotonic()  # try again at the next renewal, not every tick
            try:
                page = self._storage.read_events_now(self._position, _PAGE_NOW) if read_now else None
                page_size = _PAGE_NOW if page is not None else _PAGE
                if page is None:
                    page = await self._storage.read_events(self._position, limit=_PAGE)
            except Exception as error:
                if not isinstance(error, StorageUnavailableError):  # an outage is logged by the storage
                    logger.exception("durably event feed: reading the event log failed")
                await asyncio.sleep(max(self.interval, 1.0))
                continue
            if page:
                self._dispatch([FeedItem(stored) for stored in page])
                self._position = page[-1].id
            read_now = len(page) < page_size
            if read_now:
                await self._storage.wait_for_events(self.interval)

    def _dispatch(self, items: list[FeedItem]) -> None:
        # Over copies: a subscription that overflows leaves the feed while being offered the items.
        size = sum(len(item.body) for item in items)
        for subscription in tuple(self._all_runs):
            subscription.offer(items, size)
        if not self._by_run:
            return
        by_run: dict[str, list[FeedItem]] = {}
        for item in items:
            if item.run_id in self._by_run:
                by_run.setdefault(item.run_id, []).append(item)
        for run_id, of_run in by_run.items():
            size = sum(len(item.body) for item in of_run)
            for subscription in tuple(self._by_run.get(run_id, ())):
                subscription.offer(of_run, size)
