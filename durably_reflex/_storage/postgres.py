"""PostgreSQL: what many processes on many machines sharing one database need, and nothing else. The
only module that knows it is talking to PostgreSQL (through psycopg 3).

Per process, up to four connections: a writer that group-commits (one commit carries many runs'
step writes, so more writer connections would only add commits), a reader, once someone streams
events a listener, and in a process that runs a worker, the workers' coordination (LISTEN for rings,
see coordination.py). A hundred worker processes are three hundred connections: size
`max_connections`, or put PgBouncer in session mode in front.

Where SQLite's single writer made things safe by itself, PostgreSQL needs saying so:

- Claims: the oldest pending run is locked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take
  different runs without waiting for each other. A run with a concurrency key is taken only by a
  transaction holding that key's advisory lock, which checks, in a statement started after it got the
  lock, that no run with the key is running: two claimers of one key are serialised through the lock
  and the second sees the first's commit, so at most one run per key runs, across machines. A key
  belongs to its run's scope (tenant): the lock and the check are of the (scope, key) pair.
- Step writes lock the run's row (`FOR SHARE`) while checking the claim generation: a recovery or a
  new claim either waits for the write's commit (and then sees the step) or wins first (and the write
  is refused as a lost claim). A retried step write (after a connection broke at commit) is skipped
  if its row exists, so a step is never completed twice.
- Round trips cost a worker and the server about as much as the statements they carry: the step
  writes of a commit group go as one statement, and a transaction begins with its first statement,
  so a group of step writes alone is one round trip (see `PostgresSession`).
- Event ids come from a sequence, and sequences are not commit-ordered: a tailer reading `id > last`
  could pass over an event that commits late with a smaller id. Event inserts therefore take a
  transaction-level advisory lock, held to the commit: ids are handed out in commit order. They are
  written last in their transaction, so the lock is held only for the insert and the commit. The
  same transaction sends a NOTIFY, which wakes the feed of every process at once.
- Reads that must agree with each other (a run and the newest event id) share a REPEATABLE READ
  snapshot; migrations hold an advisory lock, so processes starting together migrate one at a time.
- A broken connection (a server restart) is opened again; while the server is unavailable (down,
  restarting, its disk full, refusing connections) callers wait for it, for `reconnect_timeout`
  seconds (URL option, default 2) before `StorageUnavailableError` (see group_commit.py). Workers
  call again until it is back, however long that takes: an outage never fails a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from .._records import RunStatus
from .base import StepRecord, StepWrite
from .coordination import Coordination, Lease, OnRing, Ring, decode_ring, encode_ring
from .group_commit import DEFAULT_PATIENCE, GroupCommit
from .sql import CLAIMED_SQL, Prepared, SqlSession, SqlStorage, pop_url_option
from .urls import DatabaseUrl, parse_url

logger = logging.getLogger("durably_reflex")

# Advisory lock spaces (the two-int form, apart from applications' single-bigint locks).
_KEY_LOCKS = 0x64757201  # per concurrency key: (space, hashtext(key))
_GLOBAL_LOCKS = 0x64757202  # (space, _EVENTS) and (space, _MIGRATION)
_EVENTS = 1
_MIGRATION = 2
CHANNEL = "durably_events"
WORKERS_CHANNEL = "durably_workers"
_ALIVE = "alive"  # the leader's message on WORKERS_CHANNEL, every polling interval (see `Lease`)
_HELLO = "hello"  # a newcomer's: the leader answers alive at once
# While the listener is connected, the feed re-reads at least this often anyway (a safety net).
_NOTIFIED_POLL = 1.0
_MAX_KEY_SKIPS = 16
# SQLSTATEs of a server that cannot serve now (not of a statement that is wrong): connection
# exceptions, insufficient resources (disk full, too many connections), system errors (I/O), and
# admin or crash shutdown / cannot connect now; read-only transactions meet a standby after failover.
_UNAVAILABLE_CLASSES = ("08", "53", "58")
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", "25006"})


class PendingStep:
    """A step write waiting for its transaction's next statement or commit, then what came of it."""

    __slots__ = ("outcome", "step")

    def __init__(self, step: StepRecord) -> None:
        self.step = step
        self.outcome = StepWrite.CLAIM_LOST  # until written


WriteSteps = Callable[["PostgresSession", list[PendingStep], bool], None]


class PostgresSession(SqlSession):
    """A transaction is opened by its first statement, not by `begin`; and step writes wait for the
    next statement or the commit, where they go as one (see `PostgresStorage.record_step`). A group
    of step writes alone (no events buffered for its commit) is one statement run alone, atomic by
    itself: one round trip instead of one per step and two more for BEGIN and COMMIT. Each round trip
    costs the worker and the server about as much as the statement it carries."""

    def __init__(self, raw: Any, sqlalchemy_url: str, write_steps: WriteSteps) -> None:
        super().__init__(raw, sqlalchemy_url)
        self._write_steps = write_steps
        self._begin_sql = "BEGIN"
        self._open = False  # BEGIN sent and no COMMIT or ROLLBACK yet
        self._steps: list[PendingStep] = []

    def begin(self, write: bool) -> None:
        # A read-only group sees one snapshot, as a SQLite read transaction does.
        self._begin_sql = "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def add_step(self, step: PendingStep) -> None:
        """Write the step before the transaction's next statement, or as it commits."""
        self._steps.append(step)

    def write_steps(self, *, last: bool) -> None:
        """Write the steps added so far; `last`: no statement follows in this transaction."""
        if self._steps:
            steps, self._steps = self._steps, []
            self._write_steps(self, steps, last)

    def _opened(self) -> Any:
        """The connection, inside the transaction, with the steps added so far written."""
        self.write_steps(last=False)
        if not self._open:
            self.raw.execute(self._begin_sql)
            self._open = True
        return self.raw

    @property
    def sa(self) -> Any:
        self._opened()
        return super().sa

    def execute(self, statement: Prepared, **params: Any) -> Any:
        return self._opened().execute(statement.sql, params)

    def execute_many(self, statement: Prepared, rows: list[dict[str, Any]]) -> None:
        with self._opened().cursor() as cursor:
            cursor.executemany(statement.sql, rows)

    def execute_last(self, statement: Prepared, **params: Any) -> Any:
        """The transaction's last statement: run alone if it is also its first."""
        return (self._opened() if self._open else self.raw).execute(statement.sql, params)

    def commit(self) -> None:
        assert not self._steps, "steps are written before the commit (flush_before_commit)"
        if self._open:
            self._open = False
            self.raw.execute("COMMIT")
        self._on_rollback.clear()

    def rollback(self) -> None:
        self._steps.clear()
        undo, self._on_rollback = self._on_rollback, []
        try:
            if self._open:
                self._open = False
                self.raw.execute("ROLLBACK")
        finally:
            for action in reversed(undo):
                action()

    def is_transient(self, error: BaseException) -> bool:
        return isinstance(
            error, pg_errors.SerializationFailure | pg_errors.DeadlockDetected | pg_errors.LockNotAvailable
        )

    def is_unavailable(self, error: BaseException) -> bool:
        """The server cannot serve us now, whatever we ask: shutting down or starting up, out of disk
        or connections, an I/O error, a read-only standby (a failover), or no connection at all."""
        error = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
        if not isinstance(error, psycopg.Error):
            return False
        state = error.sqlstate
        if state is None:
            return isinstance(error, psycopg.OperationalError)  # the client's: the connection failed
        return state.startswith(_UNAVAILABLE_CLASSES) or state in _UNAVAILABLE_STATES

    def is_broken(self) -> bool:
        return bool(self.raw.closed or self.raw.broken)


class PostgresStorage(SqlStorage):
    """`postgresql://user:password@host/db` (or `postgresql+psycopg://`); `?reconnect_timeout=2`."""

    # The claim's first statement: the oldest claimable pending run, row-locked, skipping runs other
    # claimers hold (and runs this claim already passed over for their concurrency key).
    claim_sql = """
        SELECT r.id, r.concurrency_key, r.scope FROM durably_runs r
        WHERE r.status = 'pending' AND r.ready_at <= :now AND r.job_name IN ({job_names})
          AND (r.concurrency_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM durably_runs b
              WHERE b.status = 'running' AND b.concurrency_key = r.concurrency_key AND b.scope = r.scope))
          AND NOT (r.id = ANY(:skipped))
        ORDER BY r.priority DESC, r.ready_at, r.id
        LIMIT 1
        FOR UPDATE OF r SKIP LOCKED
    """
    table_exists_sql = "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = :name"
    # A step write (see `record_step`): written only if its run's claim holds, returning the run's
    # status then. The run's row is share-locked while checking the claim generation, so a recovery
    # or a new claim either waits for this commit (and then sees the step) or wins first (and the
    # step is refused). A retried write (after a connection broke at commit) skips a step whose row
    # exists. `insert_steps_sql` does the same for several steps in one round trip, returning the
    # id of each step whose claim holds with its run's status: per step (LATERAL, a subquery in the select list), so that its plan reads
    # each run by its key and each run's steps by their index whatever the number of steps. Each
    # array goes through a scalar subquery, which hides its length from the planner: seeing it,
    # PostgreSQL would find each execution's own plan cheaper than the prepared one and plan every
    # execution anew (about 0.3 ms).
    insert_step_sql = """
        WITH run AS (
            SELECT status FROM durably_runs
            WHERE id = CAST(:run_id AS VARCHAR) AND attempt = :attempt AND status IN ('running', 'cancelled')
            FOR SHARE),
        written AS (
            INSERT INTO durably_steps (id, run_id, name, step_index, status, output, error, error_stack,
                started_at, completed_at)
            SELECT CAST(:id AS VARCHAR), CAST(:run_id AS VARCHAR), :name, :step_index, :status, :output_json, :error,
                :error_stack, :started_at, :completed_at
            FROM run
            WHERE NOT EXISTS (SELECT 1 FROM durably_steps
                              WHERE run_id = CAST(:run_id AS VARCHAR) AND id = CAST(:id AS VARCHAR)))
        SELECT status FROM run"""
    insert_steps_sql = """
        WITH step AS (
            SELECT * FROM unnest((SELECT CAST(:ids AS VARCHAR[])), (SELECT CAST(:run_ids AS VARCHAR[])),
                (SELECT CAST(:attempts AS INTEGER[])), (SELECT CAST(:names AS VARCHAR[])),
                (SELECT CAST(:indexes AS INTEGER[])), (SELECT CAST(:statuses AS VARCHAR[])),
                (SELECT CAST(:outputs AS TEXT[])), (SELECT CAST(:errors AS TEXT[])),
                (SELECT CAST(:stacks AS TEXT[])), (SELECT CAST(:started AS BIGINT[])),
                (SELECT CAST(:completed AS BIGINT[])))
            AS s(id, run_id, attempt, name, step_index, status, output, error, error_stack, started_at,
                completed_at)),
        held AS (
            SELECT step.*, run.status AS run_status, run.fresh FROM step CROSS JOIN LATERAL (
                SELECT status, NOT EXISTS (SELECT 1 FROM durably_steps d WHERE d.run_id = step.run_id
                                           AND d.id = step.id) AS fresh
                FROM durably_runs
                WHERE id = step.run_id AND attempt = step.attempt AND status IN ('running', 'cancelled')
                FOR SHARE) AS run),
        written AS (
            INSERT INTO durably_steps (id, run_id, name, step_index, status, output, error, error_stack,
                started_at, completed_at)
            SELECT id, run_id, name, step_index, status, output, error, error_stack, started_at, completed_at
            FROM held WHERE fresh)
        SELECT id, run_status FROM held"""
    # Parameters used twice need one type: PostgreSQL would deduce text in the select list.
    insert_log_sql = """
        INSERT INTO durably_logs (id, run_id, step_name, level, message, data, created_at)
        SELECT :id, CAST(:run_id AS VARCHAR), :step_name, :level, :message, :data, :created_at
        WHERE EXISTS (SELECT 1 FROM durably_runs WHERE id = CAST(:run_id AS VARCHAR))"""

    def __init__(self, url: str) -> None:
        parsed = parse_url(url)
        options = dict(parsed.query)
        self.reconnect_timeout = float(pop_url_option(options, "reconnect_timeout", DEFAULT_PATIENCE))
        # libpq's own URI (psycopg's conninfo): the driver's options stay in it.
        self._conninfo = parsed.without_options(options, scheme="postgresql")

        def connect() -> PostgresSession:
            raw = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
            return PostgresSession(raw, "postgresql+psycopg://", self._write_steps)

        writer: GroupCommit[PostgresSession] = GroupCommit(
            "durably-pg-writer",
            connect,
            before_group=self.flush_before_group,
            before_commit=self.flush_before_commit,
            patience=self.reconnect_timeout,
        )
        reader: GroupCommit[PostgresSession] = GroupCommit(
            "durably-pg-reader", connect, patience=self.reconnect_timeout
        )
        counter: GroupCommit[PostgresSession] = GroupCommit(
            "durably-pg-counter", connect, threads=2, patience=self.reconnect_timeout
        )
        super().__init__("postgresql", "pyformat", writer, reader, counter)
        self.url: DatabaseUrl = parsed
        prepare = self._prepare
        # A key is a tenant's: (scope, key) is locked and looked up (a hash collision only delays a claim).
        self._key_lock = prepare(
            f"SELECT pg_try_advisory_xact_lock({_KEY_LOCKS}, hashtext(CAST(:scope AS TEXT) || '/' || CAST(:key AS TEXT)))"
        )
        self._key_running = prepare(
            "SELECT 1 FROM durably_runs WHERE status = 'running' AND concurrency_key = :key AND scope = :scope LIMIT 1"
        )
        self._take = prepare(f"""
            UPDATE durably_runs
            SET status = 'running', attempt = attempt + 1, owner = :owner, started_at = COALESCE(started_at, :now),
                heartbeat_at = :now, updated_at = :now, completed_at = NULL, waiting_for = NULL
            WHERE id = :id AND status = 'pending'
            RETURNING {CLAIMED_SQL}""")
        self._events_lock = prepare(f"SELECT pg_advisory_xact_lock({_GLOBAL_LOCKS}, {_EVENTS})")
        self._notify = prepare(f"SELECT pg_notify('{CHANNEL}', '')")
        self._migration_lock = prepare(f"SELECT pg_advisory_xact_lock({_GLOBAL_LOCKS}, {_MIGRATION})")
        self._ring = prepare(f"SELECT pg_notify('{WORKERS_CHANNEL}', :message)")
        self._listener: _Listener | None = None
        self._insert_steps = prepare(self.insert_steps_sql)

    # -- what PostgreSQL needs said ---------------------------------------------------------------
    async def record_step(self, step: StepRecord) -> StepWrite:
        """The step is written with the other step writes of its commit group, in one statement,
        before the group's next statement or as it commits (see `PostgresSession`)."""
        pending = PendingStep(step)

        def write(session: PostgresSession) -> PendingStep:
            session.add_step(pending)
            return pending

        written: PendingStep = await self._writer.run_grouped(write)
        return written.outcome

    def flush_before_commit(self, session: SqlSession) -> None:
        assert isinstance(session, PostgresSession)
        # Read without the lock, as `_flush_buffers` does: a write buffered meanwhile commits just after.
        session.write_steps(last=not (self._progress or self._logs or self._events))
        super().flush_before_commit(session)

    def _write_steps(self, session: PostgresSession, pending: list[PendingStep], last: bool) -> None:
        """One statement for the steps; a lone step takes the simpler one (cheaper to run alone)."""
        execute = session.execute_last if last else session.execute
        if len(pending) == 1:
            step = pending[0].step
            row = execute(self._insert_step, **step._asdict()).fetchone()
            held = {} if row is None else {step.id: row[0]}
        else:
            steps = [item.step for item in pending]
            held = dict(
                execute(
                    self._insert_steps,
                    ids=[step.id for step in steps],
                    run_ids=[step.run_id for step in steps],
                    attempts=[step.attempt for step in steps],
                    names=[step.name for step in steps],
                    indexes=[step.step_index for step in steps],
                    statuses=[step.status for step in steps],
                    outputs=[step.output_json for step in steps],
                    errors=[step.error for step in steps],
                    stacks=[step.error_stack for step in steps],
                    started=[step.started_at for step in steps],
                    completed=[step.completed_at for step in steps],
                ).fetchall()
            )
        for item in pending:
            status = held.get(item.step.id)
            if status is None:
                item.outcome = StepWrite.CLAIM_LOST
            elif status == RunStatus.CANCELLED:
                item.outcome = StepWrite.RECORDED_RUN_CANCELLED
            else:
                item.outcome = StepWrite.RECORDED

    def lock_for_migration(self, session: SqlSession) -> None:
        session.execute(self._migration_lock)

    def claim_next(self, session: SqlSession, statement: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        skipped: list[str] = []
        while len(skipped) <= _MAX_KEY_SKIPS:
            candidate = session.execute(statement, **params, skipped=skipped).fetchone()
            if candidate is None:
                return None
            run_id, key, scope = candidate
            # A new statement after the lock: its snapshot includes every claim of this key that
            # committed before we got the lock (and ours in this transaction).
            if key is not None and not (
                session.execute(self._key_lock, key=key, scope=scope).fetchone()[0]
                and session.execute(self._key_running, key=key, scope=scope).fetchone() is None
            ):
                skipped.append(run_id)
                continue
            return session.execute(self._take, id=run_id, owner=params["owner"], now=params["now"]).fetchone()
        return None

    def write_events(self, session: SqlSession, rows: list[dict[str, Any]]) -> None:
        session.execute(self._events_lock)  # held to the commit: ids are handed out in commit order
        session.execute_many(self._insert_event, rows)
        session.execute(self._notify)  # delivered at commit, to every listening process

    # -- the workers' rings ------------------------------------------------------------------------
    def coordinate(self, on_ring: OnRing, polling_interval: float) -> Coordination:
        return _Coordination(self._conninfo, on_ring, polling_interval, self._send_ring)

    def ring_leader(self, count: int) -> None:
        self._send_ring(encode_ring(Ring.LEADER, count))

    def _send_ring(self, message: str) -> None:
        """NOTIFY from the writer's pool: delivered once that commit is made; the caller goes on."""
        with contextlib.suppress(RuntimeError):  # the storage is closing
            self._writer.run_later(lambda session: session.execute(self._ring, message=message))

    # -- being told of new events -----------------------------------------------------------------
    async def wait_for_events(self, poll: float) -> None:
        if self._listener is None:
            self._listener = _Listener(self._conninfo)
        await self._listener.wait(poll)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        await super().close()


class _Listener:
    """LISTENs on a connection of its own, in a thread, and wakes the feed when events commit.

    While it is not connected (the server restarted, say), the feed falls back to polling every
    `poll` seconds; it reconnects with backoff and wakes the feed on reconnecting, so events logged
    meanwhile are read at once. One consumer: the engine's feed.
    """

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._notified = 0  # notifications (and reconnections) so far
        self._consumed = 0  # ... of which the feed has seen
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self.connected = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="durably-pg-listener", daemon=True)
        self._thread.start()

    async def wait(self, poll: float) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._notified != self._consumed:
                self._consumed = self._notified
                return
            future = loop.create_future()
            self._waiter = (loop, future)
            timeout = _NOTIFIED_POLL if self.connected else poll
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, timeout)
        with self._lock:
            self._waiter = None
            self._consumed = self._notified

    def close(self) -> None:
        self._closing.set()

    def _wake(self) -> None:
        with self._lock:
            self._notified += 1
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_settle, future)

    def _listen(self) -> None:
        backoff = 0.1
        reported = False  # the disconnection is logged once, not at every failed reconnection
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.connected, backoff, reported = True, 0.1, False
                    self._wake()  # whatever was logged while we were not listening
                    while not self._closing.is_set():
                        for _ in connection.notifies(timeout=0.25):
                            self._wake()
            except psycopg.Error as error:
                if not (self._closing.is_set() or reported):
                    reported = True
                    logger.warning("durably event listener: %s; polling until it reconnects", error)
            finally:
                self.connected = False
            self._closing.wait(backoff)
            backoff = min(backoff * 2, 5.0)


class _Coordination(Coordination):
    """The workers of a PostgreSQL database. Each LISTENs on `WORKERS_CHANNEL` on a connection of
    its own, where rings arrive and the leader says it is alive (see `Lease`): while idle, the
    leader makes one statement per interval for that, and a follower none."""

    def __init__(self, conninfo: str, on_ring: OnRing, polling_interval: float, send: Callable[[str], None]) -> None:
        self._conninfo = conninfo
        self._on_ring = on_ring
        self._send = send
        self._lease = Lease(polling_interval)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="durably-coordination", daemon=True)
        self._thread.start()

    @property
    def leading(self) -> bool:
        return self._lease.leading

    def ring_workers(self) -> None:
        self._send(encode_ring(Ring.WORKERS, 0, self._lease.me))

    def close(self) -> None:
        self._closing.set()
        self._thread.join()

    def _serve(self) -> None:
        backoff = 0.1
        reported = False  # a lost connection is logged once, not at every failed reconnection
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as connection:
                    connection.execute(f"LISTEN {WORKERS_CHANNEL}")
                    connection.execute("SELECT pg_notify(%s, %s)", (WORKERS_CHANNEL, f"{_HELLO}:{self._lease.me}"))
                    backoff, reported = 0.1, False
                    self._on_ring(Ring.WORKERS, 0)  # whatever was rung while we were not listening
                    while not self._closing.is_set():
                        if self._lease.tick():
                            connection.execute(
                                "SELECT pg_notify(%s, %s)", (WORKERS_CHANNEL, f"{_ALIVE}:{self._lease.me}")
                            )
                        for notification in connection.notifies(timeout=min(0.5, self._lease.next_tick())):
                            self._heard(notification.payload)
                            if self._lease.next_tick() == 0:
                                break  # a newcomer asked who leads: answer now
            except psycopg.Error as error:
                if not (self._closing.is_set() or reported):
                    reported = True
                    logger.warning("durably coordination: %s; this worker waits to be rung until it reconnects", error)
            self._lease.lost_touch()
            self._closing.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _heard(self, message: str) -> None:
        kind, _, sender = message.partition(":")
        if kind == _ALIVE:
            self._lease.heard(sender)
            return
        if kind == _HELLO:
            if self._lease.leading and sender != self._lease.me:
                self._lease.speak_up()
            return
        ring = decode_ring(message)
        if ring is None or ring[2] == self._lease.me or (ring[0] is Ring.LEADER and not self._lease.leading):
            return
        try:
            self._on_ring(ring[0], ring[1])
        except Exception:
            logger.exception("durably coordination: handling a ring failed")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
