"""A database connection owned by one thread, fed by a queue: the group-commit executor.

Callers on any event loop (or thread) queue operations, functions of the connection. The thread
takes everything queued, runs it in one transaction and commits once, then resolves every caller's
future: under load several runs' step writes share a commit, and no caller hears "done" before the
commit that makes it durable. If one operation raises, the batch is rolled back and its operations
are run again one transaction each, so each operation stays atomic and only the faulty one fails.

The event loop never waits on SQLite: it only awaits futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound="Transactional")

logger = logging.getLogger("durably_reflex")

_TRANSIENT_RETRIES = 8


class Transactional(Protocol):
    """What the thread needs of a connection; operations receive the same object."""

    def begin(self, write: bool) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def is_transient(self, error: BaseException) -> bool: ...


Operation = Callable[[C], T]
Waiter = asyncio.Future[Any] | concurrent.futures.Future[Any] | None


@dataclass(slots=True)
class _Queued:
    operation: Callable[[Any], Any]
    waiter: Waiter
    write: bool
    result: Any = None
    error: BaseException | None = field(default=None)


_CLOSE = object()


class DatabaseThread(Generic[C]):
    def __init__(self, name: str, connect: Callable[[], C]) -> None:
        self._name = name
        self._connect = connect
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    async def run(self, operation: Operation[C, T], *, write: bool = True) -> T:
        """Run `operation(connection)` in a transaction of the thread and return its result."""
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(_Queued(operation, waiter, write))
        return await waiter

    def run_blocking(self, operation: Operation[C, T], *, write: bool = True) -> T:
        """The same from a plain thread (the heartbeat); never call it on the event loop."""
        waiter: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_Queued(operation, waiter, write))
        return waiter.result()

    def run_later(self, operation: Operation[C, Any]) -> None:
        """Queue a write nobody waits for (progress, logs); a failure is logged."""
        self._put(_Queued(operation, None, True))

    def close(self) -> None:
        """Finish what is queued, then close the connection and end the thread."""
        with self._start_lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_CLOSE)
            thread.join()

    def _put(self, item: _Queued) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._closed:
                    raise RuntimeError("the database connection is closed")
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                    self._thread.start()
        elif self._closed:
            raise RuntimeError("the database connection is closed")
        self._queue.put(item)

    def _serve(self) -> None:
        connection = self._connect()
        try:
            while True:
                first = self._queue.get()
                if first is _CLOSE:
                    return
                batch = [first]
                closing = False
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _CLOSE:
                        closing = True
                        break
                    batch.append(item)
                self._run_batch(connection, batch)
                _settle(batch)
                if closing:
                    return
        finally:
            connection.close()

    def _run_batch(self, connection: C, batch: list[_Queued]) -> None:
        if len(batch) > 1:
            try:
                connection.begin(write=any(item.write for item in batch))
                results = [item.operation(connection) for item in batch]
                connection.commit()
            except BaseException:
                _rollback_quietly(connection)
            else:
                for item, result in zip(batch, results):
                    item.result = result
                return
        for item in batch:
            self._run_alone(connection, item)

    def _run_alone(self, connection: C, item: _Queued) -> None:
        for attempt in range(_TRANSIENT_RETRIES + 1):
            try:
                connection.begin(write=item.write)
                item.result = item.operation(connection)
                connection.commit()
                item.error = None
                return
            except Exception as error:
                _rollback_quietly(connection)
                item.error = error
                if not connection.is_transient(error) or attempt == _TRANSIENT_RETRIES:
                    return
                time.sleep(min(0.01 * 2**attempt, 1.0))


def _rollback_quietly(connection: Transactional) -> None:
    try:
        connection.rollback()
    except Exception:
        logger.debug("rollback failed", exc_info=True)


def _settle(batch: list[_Queued]) -> None:
    """Hand results back: one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Queued]] = {}
    for item in batch:
        waiter = item.waiter
        if waiter is None:
            if item.error is not None:
                logger.error("background database write failed", exc_info=item.error)
        elif isinstance(waiter, concurrent.futures.Future):
            if item.error is None:
                waiter.set_result(item.result)
            else:
                waiter.set_exception(item.error)
        else:
            by_loop.setdefault(waiter.get_loop(), []).append(item)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_on_loop, items)
        except RuntimeError:  # the loop was closed while we worked: nobody is waiting any more
            pass


def _resolve_on_loop(items: list[_Queued]) -> None:
    for item in items:
        waiter = item.waiter
        assert isinstance(waiter, asyncio.Future)
        if waiter.done():
            continue
        if item.error is None:
            waiter.set_result(item.result)
        else:
            waiter.set_exception(item.error)
