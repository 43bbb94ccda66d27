"""One database connection shared by threads, committing their writes in groups.

A thread that needs the database queues its operation (a function of the connection). If no thread
is leading, it leads: it takes everything queued, runs it in one transaction, commits once, and hands
each waiting thread its result; then it leads the next group if more queued meanwhile. Under load,
several runs' step writes share a commit, and nobody hears "done" before the commit that makes it
durable. The caller's own thread does the work when it leads, so an uncontended write costs no thread
hand-off at all: a step function and its checkpoint run on the same worker thread.

If one operation raises, the group is rolled back and its operations are run again one transaction
each, so every operation stays atomic and only the faulty one fails. Event-loop code awaits `run()`,
which does the same on a small thread pool: the event loop never waits on the database.

A connection that breaks (a database server restarted, a network cut) is dropped and opened again;
with a `reconnect_window`, operations that met the break are retried, for that many seconds, until
the server answers again: callers wait through a restart instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound="Transactional")

logger = logging.getLogger("durably_reflex")

_TRANSIENT_RETRIES = 8
_GROUPS_PER_LEADER = 8  # then leadership passes on, so a leader's own caller is not kept waiting


class Transactional(Protocol):
    """What group commit needs of a connection; operations receive the same object."""

    def begin(self, write: bool) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def is_transient(self, error: BaseException) -> bool: ...
    def is_broken(self) -> bool: ...


Operation = Callable[[C], T]


@dataclass(slots=True, eq=False)
class _Queued:
    operation: Callable[[Any], Any]
    write: bool
    # Held while a follower waits for its leader; a leader's own operation needs none. (A plain lock
    # costs far less to make than an Event, and this is made once per operation.)
    waiter: Any = None
    promoted: bool = False  # woken to lead, not because its operation ran
    result: Any = None
    error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit(Generic[C]):
    def __init__(
        self,
        name: str,
        connect: Callable[[], C],
        *,
        threads: int = 8,
        before_group: Callable[[C], None] | None = None,
        before_commit: Callable[[C], None] | None = None,
        reconnect_window: float = 0.0,
    ) -> None:
        """`before_group(connection)` runs first in every write transaction and `before_commit(connection)`
        last: buffered writes ride along. `reconnect_window`: seconds to keep retrying an operation
        whose connection broke (0: fail at once; the next operation reconnects)."""
        self._connect = connect
        self._before_group = before_group
        self._before_commit = before_commit
        self._reconnect_window = reconnect_window
        self._connection: C | None = None
        self._lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._leading = False
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    def run_blocking(self, operation: Operation[C, T], *, write: bool = True) -> T:
        """Run `operation(connection)` in a committed transaction, from any thread but the event loop's."""
        item = _Queued(operation, write)
        with self._lock:
            if self._closed:
                raise RuntimeError("the database connection is closed")
            self._queue.append(item)
            leads = not self._leading
            self._leading = True
            if not leads:
                item.waiter = threading.Lock()
                item.waiter.acquire()
        if not leads:
            item.waiter.acquire()  # released by the leader that ran it, or that hands over the lead
            if not item.promoted:
                return item.outcome()
        self._lead()
        return item.outcome()

    async def run(self, operation: Operation[C, T], *, write: bool = True) -> T:
        """`run_blocking` for event-loop code, on this connection's own small thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.run_blocking(operation, write=write))

    def run_later(self, operation: Operation[C, Any]) -> None:
        """Queue a write nobody waits for (buffered progress and logs); a failure is logged."""
        self._pool.submit(self._run_logged, operation)

    def _run_logged(self, operation: Operation[C, Any]) -> None:
        try:
            self.run_blocking(operation)
        except Exception:
            logger.exception("background database write failed")

    def close(self) -> None:
        """Finish queued work, then close the connection. Blocks: call it off the event loop."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True)
        while True:
            with self._lock:
                if not self._leading:
                    break
            time.sleep(0.001)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- leading ----------------------------------------------------------------------------------
    def _lead(self) -> None:
        for _ in range(_GROUPS_PER_LEADER):
            with self._lock:
                group, self._queue = self._queue, []
                if not group:
                    self._leading = False
                    return
            self._run_group(group)
            for item in group:
                if item.waiter is not None:
                    item.waiter.release()
        with self._lock:
            if not self._queue:
                self._leading = False
                return
            successor = self._queue[0]
        successor.promoted = True
        successor.waiter.release()

    def _run_group(self, group: list[_Queued]) -> None:
        if len(group) > 1:
            write = any(item.write for item in group)
            try:
                connection = self._connected()
                results = self._transaction(connection, write, [item.operation for item in group])
            except BaseException as error:  # whatever failed, each operation then runs alone
                self._after_failure(error)
            else:
                for item, result in zip(group, results, strict=True):
                    item.result = result
                return
        for item in group:
            self._run_alone(item)

    def _run_alone(self, item: _Queued) -> None:
        retries = 0
        reconnect_deadline: float | None = None
        while True:
            try:
                (item.result,) = self._transaction(self._connected(), item.write, [item.operation])
                item.error = None
                return
            except Exception as error:  # handed to the operation's caller
                item.error = error
                if self._after_failure(error):
                    if reconnect_deadline is None:
                        reconnect_deadline = time.monotonic() + self._reconnect_window
                        if self._reconnect_window:
                            logger.warning("database connection lost (%s); reconnecting", error)
                    if time.monotonic() >= reconnect_deadline:
                        return
                    time.sleep(0.2)
                    continue
                if (
                    self._connection is None
                    or not self._connection.is_transient(error)
                    or retries == _TRANSIENT_RETRIES
                ):
                    return
                time.sleep(min(0.01 * 2**retries, 1.0))
                retries += 1

    def _transaction(self, connection: C, write: bool, operations: list[Callable[[C], Any]]) -> list[Any]:
        connection.begin(write=write)
        if write and self._before_group is not None:
            self._before_group(connection)
        results = [operation(connection) for operation in operations]
        if write and self._before_commit is not None:
            self._before_commit(connection)
        connection.commit()
        return results

    def _connected(self) -> C:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _after_failure(self, error: BaseException) -> bool:
        """Roll back; if the connection is gone (or could not be opened), drop it so the next
        operation reconnects. True when the failure was the connection's, not the operation's."""
        connection = self._connection
        if connection is None:
            return not isinstance(error, (KeyboardInterrupt, SystemExit))
        _rollback_quietly(connection)
        if not connection.is_broken():
            return False
        self._connection = None
        try:
            connection.close()
        except Exception:
            logger.debug("closing a broken connection failed", exc_info=True)
        return True


def _rollback_quietly(connection: Transactional) -> None:
    try:
        connection.rollback()
    except Exception:
        logger.debug("rollback failed", exc_info=True)
