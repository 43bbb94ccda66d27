"""One database connection shared by threads, committing their writes in groups.

A thread that needs the database queues its operation (a function of the connection). If no thread
is leading, it leads: it takes everything queued, runs it in one transaction, commits once, and hands
each waiting thread its result; then it leads the next group if more queued meanwhile. Under load,
several runs' step writes share a commit, and nobody hears "done" before the commit that makes it
durable. The caller's own thread does the work when it leads, so an uncontended write costs no thread
hand-off at all. The tasks of a worker's runner loop queue theirs together: what they queue in one
iteration of the loop is one group, run on the loop's thread (`run_grouped`).

If one operation raises, the group is rolled back and its operations are run again one transaction
each, so every operation stays atomic and only the faulty one fails. Event-loop code awaits `run()`,
which does the same on a small thread pool: the event loop never waits on the database.

When the database is unavailable (a server restarting or down, a network cut, a full disk: whatever
the connection's `is_unavailable` says, or a connection that broke or cannot be opened), a broken
connection is dropped and the operations that met the outage wait for the database: one caller at a
time tries again (with backoff, from 50 ms to 1 s), the others wait for its outcome. A caller waits
at most `patience` seconds, then gets `StorageUnavailableError`: an HTTP request answers 503 at once
instead of hanging, and a worker, which is in no hurry, simply calls again (see `_persist.py`). The
outage is logged when it starts and when it ends, not per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .._errors import StorageUnavailableError

T = TypeVar("T")
C = TypeVar("C", bound="Transactional")

logger = logging.getLogger("durably_reflex")

_TRANSIENT_RETRIES = 8
_GROUPS_PER_LEADER = 8  # then leadership passes on, so a leader's own caller is not kept waiting
DEFAULT_PATIENCE = "2"  # seconds a caller waits for an unavailable database (URL option reconnect_timeout)
# While the database is unavailable, one caller tries it again after each backoff, which doubles.
_FIRST_BACKOFF = 0.05
_MOST_BACKOFF = 1.0


class Transactional(Protocol):
    """What group commit needs of a connection; operations receive the same object."""

    def begin(self, write: bool) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def is_transient(self, error: BaseException) -> bool: ...
    def is_unavailable(self, error: BaseException) -> bool: ...
    def is_broken(self) -> bool: ...


Operation = Callable[[C], T]


@dataclass(slots=True, eq=False)
class _Queued:
    operation: Callable[[Any], Any]
    write: bool
    # Held while a follower waits for its leader; a leader's own operation needs none. (A plain lock
    # costs far less to make than an Event, and this is made once per operation.)
    waiter: Any = None
    done: asyncio.Future[None] | None = None  # a runner loop's task waits on it (see `run_grouped`)
    promoted: bool = False  # woken to lead, not because its operation ran
    unavailable: bool = False  # not done: the database was unavailable (the caller waits and tries again)
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
        patience: float = float(DEFAULT_PATIENCE),
    ) -> None:
        """`before_group(connection)` runs first in every write transaction and `before_commit(connection)`
        last: buffered writes ride along. `patience`: seconds a caller waits for an unavailable
        database before `StorageUnavailableError`."""
        self._connect = connect
        self._before_group = before_group
        self._before_commit = before_commit
        self.patience = patience
        self._connection: C | None = None
        self._lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._leading = False
        self._closed = False
        # The outage, if any: since when, the last error, when and whether someone tries again.
        self._state = threading.Condition(self._lock)
        self._down_since: float | None = None
        self._outage_ended = -float("inf")  # time.monotonic() when the last outage ended
        self._down_error: BaseException | None = None
        self._backoff = _FIRST_BACKOFF
        self._probe_at = 0.0
        self._probing = False
        self._loop_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._loop_groups: dict[asyncio.AbstractEventLoop, list[_Queued]] = {}  # see `run_grouped`
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    def run_blocking(self, operation: Operation[C, T], *, write: bool = True) -> T:
        """Run `operation(connection)` in a committed transaction, from any thread but the event loop's.
        Raises `StorageUnavailableError` if the database stays unavailable for `patience` seconds."""
        deadline = time.monotonic() + self.patience
        if self._down_since is None:  # the usual case, known without a lock: no outage to wait out
            item = self._submit(operation, write)
            if not item.unavailable:
                return item.outcome()
        return self._run_by(operation, write, deadline)

    async def run(self, operation: Operation[C, T], *, write: bool = True) -> T:
        """`run_blocking` for event-loop code, on this connection's own small thread pool. During an
        outage the waiting is done here, on the loop: the pool's threads stay free for the callers
        whose turn it is."""
        deadline = time.monotonic() + self.patience
        loop = asyncio.get_running_loop()
        while True:
            with self._state:
                now = time.monotonic()
                if self._down_since is None or now >= deadline or (not self._probing and now >= self._probe_at):
                    break
                changed = loop.create_future()
                self._loop_waiters.append((loop, changed))
                until = deadline if self._probing else min(deadline, self._probe_at)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed, until - now)
        return await loop.run_in_executor(self._pool, lambda: self._run_by(operation, write, deadline))

    async def run_grouped(self, operation: Operation[C, T], *, write: bool = True) -> T:
        """`run()` for the tasks of a worker's runner loop (see `_worker.py`): the operations they
        queue in one iteration of the loop go as one group, run on the loop's own thread, and each
        task resumes once their commit is done. The first task to queue one yields once, so that
        the tasks ready in the same iteration queue theirs, then runs the group: no thread hand-off
        (the loop waits for the commit; its tasks have nothing else to do meanwhile). Nothing else
        ready on the loop (one slot busy), it runs its operation at once. During an outage, `run()`
        waits for the database, so the loop stays free (timeouts, cancels)."""
        if self._down_since is None:
            loop = asyncio.get_running_loop()
            item = _Queued(operation, write)
            group = self._loop_groups.get(loop)
            if group is None and not _others_ready(loop):
                self._run_lone(item)
            elif group is None:
                group = self._loop_groups[loop] = [item]
                try:
                    await asyncio.sleep(0)
                finally:  # even when this task was cancelled meanwhile: the others' operations are here
                    del self._loop_groups[loop]
                    self._run_loop_group(group)
            else:
                item.done = loop.create_future()
                group.append(item)
                await item.done  # if this task is cancelled meanwhile, its operation runs regardless
            if not item.unavailable:
                return item.outcome()
        return await self.run(operation, write=write)

    def _run_lone(self, item: _Queued) -> None:
        """A runner loop's lone operation: when nobody leads (the usual case), it is run at once, as
        a group of one, by this thread, which then leads whatever others queued meanwhile; else it
        is queued for the leader like any other. The same work as `_run_loop_group` does, without
        the queue."""
        with self._lock:
            free = not self._leading and not self._closed  # nobody leads: nothing is queued
            if free:
                self._leading = True
        if not free:
            self._run_loop_group([item])
            return
        try:
            self._run_group([item])
        finally:
            self._lead()

    def _run_loop_group(self, group: list[_Queued]) -> None:
        """Run a runner loop's group as one queued lot (leading it, or waiting for the leader to take
        it), then wake the tasks waiting for it."""
        try:
            self._submit_all(group)
        except RuntimeError as closed:
            for item in group:
                item.error = closed
        finally:
            for item in group:
                if item.done is not None:
                    _settle(item.done)

    def _run_by(self, operation: Operation[C, T], write: bool, deadline: float) -> T:
        while True:
            probing = self._await_database(deadline)
            try:
                item = self._submit(operation, write)
            finally:
                if probing:
                    with self._state:
                        self._probing = False
                        self._changed()
            if not item.unavailable:
                return item.outcome()

    def _submit(self, operation: Operation[C, T], write: bool) -> _Queued:
        item = _Queued(operation, write)
        self._submit_all([item])
        return item

    def _submit_all(self, items: list[_Queued]) -> None:
        """Queue the operations and see them run: leading their group, or waiting for the leader
        (which takes them all at once: waiting for the first suffices)."""
        first = items[0]
        with self._lock:
            if self._closed:
                raise RuntimeError("the database connection is closed")
            self._queue.extend(items)
            leads = not self._leading
            if leads:
                self._leading = True
            else:
                first.waiter = threading.Lock()
                first.waiter.acquire()
        if not leads:
            first.waiter.acquire()  # released by the leader that ran it, or that hands over the lead
            if not first.promoted:
                return
        self._lead()

    # -- outages ----------------------------------------------------------------------------------
    def _await_database(self, deadline: float) -> bool:
        """Return when this caller may try the database: at once while it is up; during an outage,
        when it is this caller's turn to try it again (True: report back through `_probing`).
        Raises `StorageUnavailableError` at `deadline`, or when the connection is closed meanwhile."""
        with self._state:
            while self._down_since is not None:
                now = time.monotonic()
                if now >= deadline or self._closed:
                    raise self._unavailable(now)
                if not self._probing and now >= self._probe_at:
                    self._probing = True
                    return True
                until = deadline if self._probing else min(deadline, self._probe_at)
                self._state.wait(until - now)
        return False

    def _changed(self) -> None:
        """Wake every caller waiting out an outage, threads and event loops (hold `_state`)."""
        self._state.notify_all()
        waiters, self._loop_waiters = self._loop_waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_settle, future)

    def _unavailable(self, now: float) -> StorageUnavailableError:
        assert self._down_since is not None
        error = StorageUnavailableError(
            f"The database is unavailable (for {now - self._down_since:.0f} s so far); try again shortly",
            retry_after=max(1.0, self.patience),
        )
        error.__cause__ = self._down_error
        return error

    def _mark_down(self, error: BaseException) -> None:
        with self._state:
            self._down_error = error
            if self._down_since is None:
                self._down_since = time.monotonic()
                self._backoff = _FIRST_BACKOFF
                logger.warning(
                    "database unavailable (%s); waiting for it (callers in a hurry give up after %gs)",
                    _one_line(error),
                    self.patience,
                )
            else:
                self._backoff = min(self._backoff * 2, _MOST_BACKOFF)
            self._probe_at = time.monotonic() + self._backoff
            self._changed()

    def _mark_up(self) -> None:
        if self._down_since is None:  # the usual case: no lock taken
            return
        with self._state:
            if self._down_since is not None:
                logger.warning("database available again after %.1fs", time.monotonic() - self._down_since)
                self._down_since = self._down_error = None
                self._outage_ended = time.monotonic()
                self._changed()

    def last_outage(self) -> float:
        """Now, during an outage met by any caller; else when the last one ended (`time.monotonic()`;
        minus infinity: none yet)."""
        return time.monotonic() if self._down_since is not None else self._outage_ended

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
        with self._state:
            self._closed = True
            self._changed()  # callers waiting out an outage give up now
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
                if self._failure(error) == "unavailable":
                    self._postpone(group, error)
                    return
            else:
                self._mark_up()
                for item, result in zip(group, results, strict=True):
                    item.result = result
                return
        for position, item in enumerate(group):
            self._run_alone(item)
            if item.unavailable:  # the rest would only meet the outage too
                self._postpone(group[position + 1 :], item.error)
                return

    def _postpone(self, items: list[_Queued], error: BaseException | None) -> None:
        assert error is not None
        self._mark_down(error)
        for item in items:
            item.unavailable, item.error = True, error

    def _run_alone(self, item: _Queued) -> None:
        retries = 0
        while True:
            try:
                (item.result,) = self._transaction(self._connected(), item.write, [item.operation])
                item.error = None
                self._mark_up()
                return
            except Exception as error:  # handed to the operation's caller
                item.error = error
                kind = self._failure(error)
                if kind == "transient" and retries < _TRANSIENT_RETRIES:
                    time.sleep(min(0.01 * 2**retries, 1.0))
                    retries += 1
                    continue
                if kind == "unavailable" or (kind == "transient" and self._is_unavailable(error)):
                    item.unavailable = True
                else:
                    self._mark_up()  # the database answered: the operation itself failed
                return

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

    def _failure(self, error: BaseException) -> str:
        """Roll back, and say what failed: "unavailable" (the database: the connection broke or could
        not be opened, and is dropped so the next try reconnects; or the connection says so),
        "transient" (worth trying again at once: a lock, a serialization failure) or "operation"."""
        connection = self._connection
        if connection is None:
            return "operation" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "unavailable"
        _rollback_quietly(connection)
        if connection.is_broken():
            self._connection = None
            try:
                connection.close()
            except Exception:
                logger.debug("closing a broken connection failed", exc_info=True)
            return "unavailable"
        if connection.is_transient(error):
            return "transient"
        return "unavailable" if connection.is_unavailable(error) else "operation"

    def _is_unavailable(self, error: BaseException) -> bool:
        connection = self._connection
        return connection is not None and connection.is_unavailable(error)


def _rollback_quietly(connection: Transactional) -> None:
    try:
        connection.rollback()
    except Exception:
        logger.debug("rollback failed", exc_info=True)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _others_ready(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether callbacks (other tasks' steps) wait to run on the loop before it next polls: asyncio's
    own loops keep them in `_ready`. Any other loop is assumed to have some."""
    ready = getattr(loop, "_ready", None)
    return ready is None or len(ready) > 0


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
