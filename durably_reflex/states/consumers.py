"""The background consumers behind the hook states: one per browser tab and state.

A hook state follows SSE streams from a Reflex background event (`attach`). The streams run as
*sources*, small tasks that read events and post *updates* to the consumer's inbox; the background
event applies the updates in batches inside `async with self:` (the state lock is held briefly, and
a burst of events becomes one delta to the browser).

Reflex does not cancel background events when a tab goes away, so every consumer also runs a
liveness source that asks Reflex's token manager whether the tab's client token is still connected:
while it is not, updates are held back (nobody would receive them), and once it has been gone for
`MISSES_BEFORE_STOP` checks in a row the consumer stops (a page reload reconnects in between, and
the held updates then apply). Attaching again for the same tab and state (a reload, a second mount) replaces the
previous consumer, so there is at most one per tab and state in a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

# How often a consumer checks that its browser tab is still connected, and how many failed checks
# in a row stop it: a closed tab frees its streams within about two seconds.
LIVENESS_INTERVAL = 0.5
MISSES_BEFORE_STOP = 4

# An update runs inside the state lock with the state as its argument. It may return events to
# dispatch afterwards (callbacks such as `on_complete`), and may be async (a page fetch).
Update = Callable[[Any], "Awaitable[list[Any] | None] | list[Any] | None"]
ConsumerKey = tuple[str, str]  # (client token, state's full name)

_STOP = object()  # posted to end a consumer's batches


class Consumer:
    """The streams one hook state instance follows for one browser tab."""

    def __init__(self, key: ConsumerKey) -> None:
        self.key = key
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._sources: dict[str, asyncio.Task[None]] = {}
        self._source_args: dict[str, object] = {}
        self._tab_present = asyncio.Event()
        self._tab_present.set()
        self.stopped = False

    def post(self, update: Update) -> None:
        """Queue an update for the state (from a source, or from another event of the same tab)."""
        if not self.stopped:
            self._inbox.put_nowait(update)

    def stop(self) -> None:
        """End the consumer: its background event returns after the updates already queued."""
        if not self.stopped:
            self.stopped = True
            self._inbox.put_nowait(_STOP)
            self._tab_present.set()  # release a held batch loop so it sees the stop

    def hold(self, tab_present: bool) -> None:
        """Hold updates back while the tab is away (False), apply them again once it is back."""
        if tab_present or self.stopped:
            self._tab_present.set()
        else:
            self._tab_present.clear()

    def start_source(self, name: str, source: Coroutine[Any, Any, None], *, follows: object = None) -> None:
        """Run `source` as the consumer's source `name`, replacing (cancelling) the previous one.
        `follows` names what it follows, for `follows(name)`."""
        self.cancel_source(name)
        task = asyncio.create_task(self._guarded(name, source), name=f"durably-{name}-{self.key[1]}")
        task.add_done_callback(lambda _: source.close())  # cancelled before it began: never awaited
        self._sources[name] = task
        self._source_args[name] = follows

    def cancel_source(self, name: str) -> None:
        task = self._sources.pop(name, None)
        self._source_args.pop(name, None)
        if task is not None:
            task.cancel()

    def follows(self, name: str) -> object:
        """What the running source `name` follows (a run id), or None when it is not running."""
        task = self._sources.get(name)
        return self._source_args.get(name) if task is not None and not task.done() else None

    async def batches(self) -> AsyncIterator[list[Update]]:
        """The queued updates, a batch at a time (all that arrived while the last batch applied)."""
        while True:
            first = await self._inbox.get()
            await self._tab_present.wait()
            batch = [first]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            stop = any(update is _STOP for update in batch)
            batch = [update for update in batch if update is not _STOP]
            if batch:
                yield batch
            if stop:
                return

    async def close(self) -> None:
        """Cancel every source and wait for them, so their HTTP streams are closed on return."""
        self.stopped = True
        tasks = list(self._sources.values())
        self._sources.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _guarded(self, name: str, source: Coroutine[Any, Any, None]) -> None:
        try:
            await source
        except asyncio.CancelledError:
            raise
        except Exception:  # a source's bug must not pass unnoticed, nor take the others down
            logger.exception("durably consumer source %s of %s failed", name, self.key[1])


class Refresher:
    """Turns a burst of "something changed, fetch again" into few fetches: `request()` posts the
    async update `refresh` unless one is already queued, and spaces two of them at least
    `interval` seconds apart (a request too soon is scheduled for when the interval has passed)."""

    def __init__(self, consumer: Consumer, refresh: Callable[[Any], Awaitable[None]], interval: float) -> None:
        self._consumer = consumer
        self._refresh = refresh
        self._interval = interval
        self._queued = False
        self._last = 0.0

    def request(self) -> None:
        if self._queued:
            return
        self._queued = True
        delay = self._last + self._interval - time.monotonic()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._consumer.post, self._apply)
        else:
            self._consumer.post(self._apply)

    async def _apply(self, state: Any) -> None:
        self._queued = False
        self._last = time.monotonic()
        await self._refresh(state)


_consumers: dict[ConsumerKey, Consumer] = {}


def running_consumer(token: str, state_name: str) -> Consumer | None:
    """The consumer this process runs for a tab's state, if any."""
    consumer = _consumers.get((token, state_name))
    return consumer if consumer is not None and not consumer.stopped else None


TabProbe = Callable[[str], Awaitable[bool]]


@contextlib.asynccontextmanager
async def consuming(token: str, state_name: str, *, probe: TabProbe | None = None) -> AsyncIterator[Consumer]:
    """Become the consumer of a tab's state (stopping the previous one) for the block's duration,
    with the liveness check running (`probe(token)`: is the tab still there; default: ask Reflex);
    every source is cancelled and awaited on the way out."""
    key = (token, state_name)
    previous = _consumers.get(key)
    if previous is not None:
        previous.stop()
    consumer = Consumer(key)
    _consumers[key] = consumer
    consumer.start_source("liveness", _stop_when_tab_closes(consumer, token, probe or tab_connected))
    try:
        yield consumer
    finally:
        await consumer.close()
        if _consumers.get(key) is consumer:
            del _consumers[key]


def consumer_of(state: Any) -> Consumer | None:
    """The consumer this process runs for a hook state instance's tab, if any."""
    return running_consumer(state.router.session.client_token, state.get_full_name())


async def apply_updates(state: Any, batch: list[Update]) -> list[Any]:
    """Apply updates in order (inside the caller's `async with state:`); the events they ask for."""
    events: list[Any] = []
    for update in batch:
        result = update(state)
        if inspect.isawaitable(result):
            result = await result
        events.extend(result or ())
    return events


def consumer_count() -> int:
    """How many consumers this process runs (for tests and monitoring)."""
    return sum(1 for consumer in _consumers.values() if not consumer.stopped)


async def _stop_when_tab_closes(consumer: Consumer, token: str, probe: TabProbe) -> None:
    misses = 0
    while misses < MISSES_BEFORE_STOP:
        await asyncio.sleep(LIVENESS_INTERVAL)
        misses = 0 if await probe(token) else misses + 1
        consumer.hold(tab_present=misses == 0)
    logger.debug("browser tab of %s is gone; stopping its consumer", consumer.key[1])
    consumer.stop()


async def tab_connected(token: str) -> bool:
    """Whether the browser tab with this client token has a live websocket (on any backend
    instance: Reflex's token manager knows across instances when Redis is used)."""
    from reflex_base.registry import RegistrationContext

    namespace = RegistrationContext.get().app.event_namespace
    if namespace is None:  # no websocket server (a test harness without one): assume connected
        return True
    return await namespace._token_manager.is_token_connected(token)
