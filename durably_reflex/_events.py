"""Lifecycle events and the in-process bus that delivers them.

Events are plain dicts in their wire shape (`{"type": "run:start", "runId": ..., "timestamp": ...,
"sequence": ...}`) so the HTTP layer can send them as they are. The bus is synchronous: `emit` calls
every listener before it returns. A listener that raises, or an async listener whose task fails, is
reported to the error handler and never reaches the worker that emitted the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from ._clock import now_ms, to_iso

Event = dict[str, Any]
Listener = Callable[[Event], Any]
ErrorHandler = Callable[[BaseException, Event], None]

RUN_TRIGGER = "run:trigger"
RUN_START = "run:start"
RUN_COMPLETE = "run:complete"
RUN_FAIL = "run:fail"
RUN_CANCEL = "run:cancel"
RUN_RETRY = "run:retry"
RUN_PROGRESS = "run:progress"
RUN_DELETE = "run:delete"
RUN_WAIT = "run:wait"  # the run stopped to wait (a sleep, a signal): `waitingFor`; back to pending
RUN_SIGNAL = "run:signal"  # a signal came for the run: `name`
STEP_START = "step:start"
STEP_COMPLETE = "step:complete"
STEP_FAIL = "step:fail"
LOG_WRITE = "log:write"

EVENT_TYPES = (
    RUN_TRIGGER,
    RUN_START,
    RUN_COMPLETE,
    RUN_FAIL,
    RUN_CANCEL,
    RUN_RETRY,
    RUN_PROGRESS,
    RUN_DELETE,
    RUN_WAIT,
    RUN_SIGNAL,
    STEP_START,
    STEP_COMPLETE,
    STEP_FAIL,
    LOG_WRITE,
)
ALL_EVENTS = "*"
# What a per-run stream carries: everything but `run:trigger`, which happens before anyone can subscribe.
RUN_STREAM_TYPES = frozenset(EVENT_TYPES) - {RUN_TRIGGER}
# Events after which a run stays put until someone acts on it.
SETTLED_TYPES = frozenset({RUN_COMPLETE, RUN_FAIL, RUN_CANCEL})

logger = logging.getLogger("durably_reflex")


class EventBus:
    """Makes events and delivers them to listeners, in the order they were made.

    Listeners run on one event loop (the one that started the worker). Events made there are
    delivered at once; events made on job threads (`post`) queue and reach the loop in bursts at
    most `BURST_DELAY` apart (waking a loop costs the job thread a system call and a fight for the
    interpreter lock), except a run's settling events, which go at once unless the worker went
    straight on to its slot's next run (working through a backlog, it wakes the loop once per
    burst, not once per run). Whatever is queued is delivered before anything made later, so
    listeners never see `sequence` go backwards.
    `record` sees every event as it is made (the engine logs them) while `recording()` says so.

    An event posted while nobody would see it (no listener of its type or of all, nothing recorded)
    is not made at all: a job's steps cost less when nothing watches them. A listener sees the
    events made from its `on()` on, as before.
    """

    BURST_DELAY = 0.02

    def __init__(
        self, record: Callable[[Event], None] | None = None, recording: Callable[[], bool] | None = None
    ) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._sequence = itertools.count(1)
        self._record = record
        self._recording = recording if record is not None and recording is not None else _never
        self._error_handler: ErrorHandler | None = None
        self._listener_tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()  # making an event and queueing it happen together, in order
        self._queued: list[Event] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_sent = False
        self._urgent_sent = False

    def on(self, event_type: str, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for each event of `event_type` (`"*"`: every event). Returns the unsubscriber."""
        if event_type != ALL_EVENTS and event_type not in EVENT_TYPES:
            raise ValueError(f"Unknown event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)} or '*'")
        listeners = self._listeners.setdefault(event_type, [])
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    def on_error(self, handler: ErrorHandler) -> None:
        """Where listener failures go (the last handler set wins); by default they are logged."""
        self._error_handler = handler

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop whose listeners receive events posted from other threads."""
        self._loop = loop

    def bind_if_unbound(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is None or self._loop.is_closed():
            self._loop = loop

    def emit(self, event_type: str, **fields: Any) -> Event:
        """Make an event and deliver it now, after any queued earlier (on the event loop)."""
        with self._lock:
            event = self._make(event_type, fields)
            burst, self._queued = self._queued, []
        for earlier in burst:
            self._deliver(earlier)
        self._deliver(event)
        return event

    def wants(self, event_type: str) -> bool:
        """Whether an event of this type made now would be seen (by a listener, or recorded)."""
        listeners = self._listeners
        return bool(listeners.get(event_type) or listeners.get(ALL_EVENTS) or self._recording())

    def post(self, event_type: str, *, busy: bool = False, **fields: Any) -> None:
        """Make an event on any thread; it reaches the listeners on the bound loop soon, in order.
        Unless nobody would see it (see the class docstring): then, if it settles a run, what is
        queued still goes at once, as it would have before it. `busy`: the poster went straight on
        to more work (a slot that claimed its next run as it settled this one), so even an event
        that settles a run goes with the burst."""
        urgent = event_type in SETTLED_TYPES and not busy
        wanted = self.wants(event_type)
        if not (wanted or (urgent and self._queued)):
            return
        with self._lock:
            if wanted:
                self._queued.append(self._make(event_type, fields))
            if self._loop is None or (self._urgent_sent if urgent else self._wake_sent):
                return  # a wake-up is on its way (or nobody listens on a loop yet)
            self._wake_sent = True
            self._urgent_sent = self._urgent_sent or urgent
            loop = self._loop
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is listening any more
            loop.call_soon_threadsafe(self._drain if urgent else self._drain_soon)

    def _make(self, event_type: str, fields: dict[str, Any]) -> Event:
        event: Event = {"type": event_type, **fields, "timestamp": to_iso(now_ms()), "sequence": next(self._sequence)}
        if self._record is not None and self._recording():
            self._record(event)
        return event

    def flush(self) -> None:
        """Deliver whatever is queued now (on the event loop): after an action that posted events,
        its caller's listeners have them by the time the action returns."""
        self._drain()

    def _drain_soon(self) -> None:
        assert self._loop is not None
        self._loop.call_later(self.BURST_DELAY, self._drain)

    def _drain(self) -> None:
        with self._lock:
            burst, self._queued = self._queued, []
            self._wake_sent = self._urgent_sent = False
        for event in burst:
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        event_type = event["type"]
        for listener in (*self._listeners.get(event_type, ()), *self._listeners.get(ALL_EVENTS, ())):
            try:
                result = listener(event)
            except Exception as error:
                self._report(error, event)
                continue
            if inspect.isawaitable(result):
                self._watch(result, event)

    def _watch(self, awaitable: Any, event: Event) -> None:
        task = asyncio.ensure_future(awaitable)
        self._listener_tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._listener_tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                self._report(finished.exception(), event)  # type: ignore[arg-type]

        task.add_done_callback(done)

    def _report(self, error: BaseException, event: Event) -> None:
        if self._error_handler is None:
            logger.error("event listener for %s failed", event["type"], exc_info=error)
            return
        try:
            self._error_handler(error, event)
        except Exception:
            logger.exception("the event error handler itself failed")


def _never() -> bool:
    return False


class RunSubscription:
    """The events of one run as an async iterator; it ends after `run:complete`.

    It listens from the moment it is created, so a caller can subscribe, then read the run's current
    state, and lose nothing in between. A failed or cancelled run keeps the stream open, since a retry
    may follow. Leaving the `async with` block (or `close()`) removes the listener at once.
    """

    def __init__(self, bus: EventBus, run_id: str) -> None:
        self.run_id = run_id
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._finished = False
        self._unsubscribe = bus.on(ALL_EVENTS, self._receive)

    def _receive(self, event: Event) -> None:
        if event.get("runId") == self.run_id and event["type"] in RUN_STREAM_TYPES:
            self._queue.put_nowait(event)

    def __aiter__(self) -> RunSubscription:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event["type"] == RUN_COMPLETE:
            self.close()
        return event

    def close(self) -> None:
        self._finished = True
        self._unsubscribe()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> RunSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
