"""Storage on SQL, shared by every SQL database.

Hot paths (claim, step writes, settling, progress, logs, heartbeats, the leader's survey) are written
once as SQL text with named parameters, put in the driver's own parameter style once, and run on
the driver's connection: statement building would otherwise cost more than the commit. Cold paths
(listings, counts, actions on runs, schedules, migrations) are SQLAlchemy Core statements
(`queries.py`, `migrations.py`), imported on first use: a worker process that only claims, runs and
settles never loads SQLAlchemy. A dialect subclass opens the connections (`SqlSession`) and spells
what its database spells differently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .._clock import now_ms
from .._errors import (
    RunNotFoundError,
    RunStateError,
    ScheduleNotFoundError,
    SignalConflictError,
    StorageUnavailableError,
)
from .._ids import new_id
from .._json import decode_json
from .._records import (
    TERMINAL_STATUSES,
    Attempt,
    Disposition,
    LogEntry,
    Progress,
    Run,
    RunStatus,
    Schedule,
    Step,
    WaitingFor,
    from_ms,
)
from .base import (
    NEVER,
    Announce,
    Claim,
    ClaimedRun,
    ClaimRequest,
    DueSchedule,
    Heartbeat,
    NewEvent,
    NewLog,
    NewRun,
    RunCounts,
    RunQuery,
    Settled,
    StatsQuery,
    StepRecord,
    StepWrite,
    Storage,
    StoredEvent,
    Survey,
    Wait,
)
from .group_commit import GroupCommit
from .version import SCHEMA_VERSION
from .watch import WatchMark

if TYPE_CHECKING:
    from sqlalchemy import Connection

STORED_RUN_COLUMNS = (
    "id",
    "job_name",
    "input",
    "status",
    "idempotency_key",
    "concurrency_key",
    "progress",
    "output",
    "error",
    "error_stack",
    "started_at",
    "completed_at",
    "heartbeat_at",
    "created_at",
    "updated_at",
    "priority",
    "waiting_for",
    "labels",
    "replay_of",
)
STORED_RUN_SQL = ", ".join(STORED_RUN_COLUMNS)
# What a claim returns: a ClaimedRun, its attempt, and what it replays (a first attempt of a run that
# replays none has no steps yet).
CLAIMED_SQL = "id, job_name, input, started_at, attempt, replay_of"
STEP_COLUMNS = (
    "id",
    "run_id",
    "name",
    "step_index",
    "status",
    "output",
    "error",
    "error_stack",
    "started_at",
    "completed_at",
)
LOG_COLUMNS = ("id", "run_id", "step_name", "level", "message", "data", "created_at")


# A `:name` parameter, as SQLAlchemy's text() finds them (not `::`, not an escaped `\:`).
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


class Prepared:
    """SQL text with `:name` parameters in the driver's own style, made once: sqlite3 takes `:name`
    as it is; psycopg takes `%(name)s`. Either binds by name from a dict."""

    def __init__(self, sql: str, paramstyle: str) -> None:
        if paramstyle == "named":
            self.sql = sql
        elif paramstyle == "pyformat":
            self.sql = _PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))
        else:
            raise ValueError(f"unsupported parameter style {paramstyle!r}")


class SqlSession:
    """One connection as a `Transactional`: the driver's for the hot paths, and SQLAlchemy Core over
    the same connection for the cold ones, made on first use (see the module's docstring)."""

    def __init__(self, raw: Any, sqlalchemy_url: str) -> None:
        self.raw: Any = raw
        self._sqlalchemy_url = sqlalchemy_url  # names the dialect ("sqlite://", "postgresql+psycopg://")
        self._sa: Connection | None = None
        self._on_rollback: list[Callable[[], None]] = []

    @property
    def sa(self) -> Connection:
        """SQLAlchemy Core on this connection, made on first use, often in the middle of a
        transaction: the group commit's BEGIN and COMMIT frame its statements, and SQLAlchemy ends
        none itself (it would roll back after its first look at a connection, and when a connection
        goes back to its pool)."""
        if self._sa is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import StaticPool

            raw = self.raw
            engine = create_engine(
                self._sqlalchemy_url, creator=lambda: raw, poolclass=StaticPool, pool_reset_on_return=None
            )
            for ending in ("do_commit", "do_rollback"):
                setattr(engine.dialect, ending, _leave_transaction)
            self._sa = engine.connect()
        return self._sa

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Run `undo` if the current transaction rolls back (to put taken buffers back)."""
        self._on_rollback.append(undo)

    def execute(self, statement: Prepared, **params: Any) -> Any:
        return self.raw.execute(statement.sql, params)

    def execute_many(self, statement: Prepared, rows: list[dict[str, Any]]) -> None:
        self.raw.executemany(statement.sql, rows)

    @abstractmethod
    def begin(self, write: bool) -> None: ...

    def commit(self) -> None:
        self.raw.execute("COMMIT")
        self._on_rollback.clear()

    def rollback(self) -> None:
        undo, self._on_rollback = self._on_rollback, []
        try:
            self.raw.execute("ROLLBACK")
        finally:
            for action in reversed(undo):
                action()

    def close(self) -> None:
        if self._sa is not None:
            self._sa.close()
        self.raw.close()

    def is_transient(self, error: BaseException) -> bool:
        return False

    def is_unavailable(self, error: BaseException) -> bool:
        return False

    def is_broken(self) -> bool:
        return False


def _leave_transaction(_connection: Any) -> None:
    """What SQLAlchemy does instead of committing or rolling back a session's connection."""


def pop_url_option(options: dict[str, str | tuple[str, ...]], name: str, default: str) -> str:
    """Take one of our options out of a database URL's query (what is left goes to the driver).
    SQLAlchemy gives an option named twice as a tuple: ours take one value."""
    value = options.pop(name, default)
    if isinstance(value, tuple):
        raise ValueError(f"{name} is given more than once in the database URL")
    return value


def _json(text_value: str | None) -> Any:
    """Stored JSON, decoded. A column that is not valid JSON (edited by hand, say) comes back as
    its text rather than breaking every query that meets it."""
    if text_value is None:
        return None
    try:
        return decode_json(text_value)
    except ValueError:
        return text_value


def run_from_row(row: Sequence[Any]) -> Run:
    """A run from a row of STORED_RUN_COLUMNS followed by the completed step count and the next step index."""
    (
        id_,
        job_name,
        input_,
        status,
        idem,
        conc,
        progress,
        output,
        error,
        stack,
        started,
        completed,
        heartbeat,
        created,
        updated,
        priority,
        waiting_for,
        labels,
        replay_of,
        count,
        index,
    ) = row
    return Run(
        id=id_,
        job_name=job_name,
        input=_json(input_),
        status=status,
        idempotency_key=idem,
        concurrency_key=conc,
        current_step_index=index,
        step_count=count,
        progress=None if progress is None else Progress.model_validate_json(progress),
        output=_json(output),
        error=error,
        error_stack=stack,
        started_at=from_ms(started),
        completed_at=from_ms(completed),
        heartbeat_at=from_ms(heartbeat),
        created_at=from_ms(created),
        updated_at=from_ms(updated),
        priority=priority,
        waiting_for=None if waiting_for is None else WaitingFor.model_validate_json(waiting_for),
        labels={} if labels is None else json.loads(labels),
        replay_of=replay_of,
    )


def schedule_from_row(row: Any) -> Schedule:
    return Schedule(
        name=row.name,
        job_name=row.job_name,
        cron=row.cron,
        timezone=row.timezone,
        input=_json(row.input),
        catch_up=row.catch_up,
        paused=row.next_fire_at is None,
        next_fire_at=from_ms(row.next_fire_at),
        last_fired_at=from_ms(row.last_fired_at),
        last_run_id=row.last_run_id,
        created_at=from_ms(row.created_at),
        updated_at=from_ms(row.updated_at),
    )


def step_from_row(row: Sequence[Any]) -> Step:
    id_, run_id, name, index, status, output, error, stack, started, completed = row
    return Step(
        id=id_,
        run_id=run_id,
        name=name,
        index=index,
        status=status,
        output=_json(output),
        error=error,
        error_stack=stack,
        started_at=from_ms(started),
        completed_at=from_ms(completed),
    )


def log_from_row(row: Sequence[Any]) -> LogEntry:
    id_, run_id, step_name, level, message, data, created = row
    return LogEntry(
        id=id_,
        run_id=run_id,
        step_name=step_name,
        level=level,
        message=message,
        data=_json(data),
        timestamp=from_ms(created),
    )


logger = logging.getLogger("durably_reflex")

_BUSY = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
# The run statuses in which a claimed execution's step is still recorded, most likely first, with
# what the writer is told.
_STEP_WRITES = (
    (RunStatus.RUNNING.value, StepWrite.RECORDED),
    (RunStatus.CANCELLED.value, StepWrite.RECORDED_RUN_CANCELLED),
)


def _nothing(session: SqlSession) -> None:
    """An empty write transaction; buffered writes flush at the start of every write transaction."""


class SqlStorage(Storage):
    """Everything but connecting; a dialect subclass opens the writer and reader and may adjust SQL.

    The writer must run `flush_before_group` first in every write transaction and `flush_before_commit`
    last (GroupCommit's `before_group` and `before_commit`).
    """

    # How long buffered writes wait for a commit to carry them before the flusher commits them itself
    # (seconds): a job that reports progress in a loop makes one commit per delay, not one per report.
    FLUSH_DELAY = 0.01
    # ... while someone streams their events: a subscriber waits for them, and a commit costs a fraction of that.
    WATCHED_FLUSH_DELAY = 0.002

    claim_sql = f"""
        UPDATE durably_runs
        SET status = 'running', attempt = attempt + 1, owner = :owner, started_at = COALESCE(started_at, :now),
            heartbeat_at = :now, updated_at = :now, completed_at = NULL, waiting_for = NULL
        WHERE status = 'pending' AND id = (
            SELECT r.id FROM durably_runs r
            WHERE r.status = 'pending' AND r.ready_at <= :now AND r.job_name IN ({{job_names}})
              AND (r.concurrency_key IS NULL OR NOT EXISTS (
                  SELECT 1 FROM durably_runs b
                  WHERE b.status = 'running' AND b.concurrency_key = r.concurrency_key AND b.scope = r.scope))
            ORDER BY r.priority DESC, r.ready_at, r.id
            LIMIT 1)
        RETURNING {CLAIMED_SQL}
    """
    # A step is written only while its execution's claim holds and the run is in `:run_status` (see
    # `record_step`): one row inserted if so, none otherwise. A row count costs less than a RETURNING
    # or an EXISTS subquery would, on the path every step takes.
    insert_step_sql = """
        INSERT INTO durably_steps (id, run_id, name, step_index, status, output, error, error_stack,
            started_at, completed_at)
        SELECT :id, :run_id, :name, :step_index, :status, :output_json, :error, :error_stack, :started_at,
            :completed_at
        FROM durably_runs WHERE id = :run_id AND attempt = :attempt AND status = :run_status"""
    # Whether a table exists (`migrate`'s first look).
    table_exists_sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"
    # A log line of a deleted run is dropped.
    insert_log_sql = """
        INSERT INTO durably_logs (id, run_id, step_name, level, message, data, created_at)
        SELECT :id, :run_id, :step_name, :level, :message, :data, :created_at
        WHERE EXISTS (SELECT 1 FROM durably_runs WHERE id = :run_id)"""

    def __init__(
        self,
        dialect: str,
        paramstyle: str,
        writer: GroupCommit[Any],
        reader: GroupCommit[Any],
        counter: GroupCommit[Any] | None = None,
    ) -> None:
        """`dialect`: SQLAlchemy's name for the database ("sqlite", "postgresql"); `paramstyle`: its
        driver's ("named", "pyformat"). `counter`, a connection of its own for counts (`/stats`),
        which read whole indexes: reads queue behind each other on a connection, so a page of runs
        or a stream's poll would otherwise wait for a count to end."""
        self._dialect = dialect
        self._paramstyle = paramstyle
        self._writer = writer
        self._reader = reader
        self._counter = reader if counter is None else counter
        self._claim_by_arity: dict[int, Prepared] = {}
        self._buffer_lock = threading.Lock()
        self._progress: dict[str, tuple[int, str, int]] = {}
        self._logs: list[NewLog] = []
        self._events: list[NewEvent] = []
        self._buffered = threading.Condition(self._buffer_lock)
        self._closing = False
        self._watch_mark = WatchMark(self.watch_refresh)
        self._flusher: threading.Thread | None = None  # started with the schema: nothing opens before use
        prepare = self._prepare
        self._insert_run = prepare(f"""
            INSERT INTO durably_runs (id, job_name, input, status, idempotency_key, concurrency_key,
                attempt, heartbeat_at, created_at, updated_at, scope, priority, ready_at, waiting_for, labels,
                replay_of)
            VALUES (:id, :job_name, :input, 'pending', :idem, :conc, 0, :now, :now, :now, :scope, :priority,
                :ready_at, :waiting_for, :labels, :replay_of)
            ON CONFLICT DO NOTHING
            RETURNING {STORED_RUN_SQL}, 0, 0""")
        self._completed_steps = prepare(
            "SELECT name, output FROM durably_steps WHERE run_id = :run_id AND status = 'completed'"
        )
        self._insert_step = prepare(self.insert_step_sql)

        self._write_progress = prepare("""
            UPDATE durably_runs SET progress = :progress, updated_at = :now
            WHERE id = :run_id AND attempt = :attempt AND status = 'running'""")
        self._insert_log = prepare(self.insert_log_sql)
        self._finish = prepare("""
            UPDATE durably_runs
            SET status = :status, output = :output, error = :error, error_stack = :error_stack,
                completed_at = :now, updated_at = :now, owner = NULL
            WHERE id = :run_id AND attempt = :attempt AND status = 'running'""")
        self._release = prepare("""
            UPDATE durably_runs SET status = 'pending', owner = NULL, updated_at = :now
            WHERE id = :run_id AND attempt = :attempt AND status = 'running'""")
        self._beat = prepare("""
            UPDATE durably_runs SET heartbeat_at = :now
            WHERE id = :run_id AND attempt = :attempt AND status = 'running'""")
        self._status_of = prepare("SELECT status, attempt FROM durably_runs WHERE id = :run_id")
        self._running = prepare(
            "SELECT id, owner, heartbeat_at, attempt, job_name FROM durably_runs WHERE status = 'running'"
        )
        self._oldest_pending = prepare("""
            SELECT job_name FROM durably_runs WHERE status = 'pending' AND ready_at <= :now
            ORDER BY status, priority DESC, ready_at, id LIMIT :limit""")
        self._next_wake = prepare(f"""
            SELECT min(at) FROM (
                SELECT min(ready_at) AS at FROM durably_runs
                WHERE status = 'pending' AND ready_at > :now AND ready_at < {NEVER}
                UNION ALL
                SELECT min(next_fire_at) AS at FROM durably_schedules WHERE next_fire_at > :now) AS wakes""")
        self._due_schedules = prepare("""
            SELECT name, job_name, cron, timezone, input, catch_up, next_fire_at FROM durably_schedules
            WHERE next_fire_at <= :now ORDER BY next_fire_at""")
        self._move_schedule = prepare("""
            UPDATE durably_schedules SET next_fire_at = :following, updated_at = :now
            WHERE name = :name AND next_fire_at = :due""")
        self._schedule_fired = prepare("""
            UPDATE durably_schedules SET last_fired_at = :due, last_run_id = :run_id WHERE name = :name""")
        self._get_wait = prepare(
            "SELECT kind, until, payload, received_at, created_at FROM durably_waits WHERE run_id = :run_id AND name = :name"
        )
        self._insert_wait = prepare("""
            INSERT INTO durably_waits (run_id, name, kind, until, payload, received_at, created_at)
            VALUES (:run_id, :name, :kind, :until, :payload, :received_at, :created_at)
            ON CONFLICT DO NOTHING""")
        self._replace_wait = prepare("""
            INSERT INTO durably_waits (run_id, name, kind, until, payload, received_at, created_at)
            VALUES (:run_id, :name, :kind, :until, :payload, :received_at, :created_at)
            ON CONFLICT (run_id, name) DO UPDATE SET until = excluded.until, payload = excluded.payload""")
        self._insert_label = prepare("INSERT INTO durably_labels (run_id, key, value) VALUES (:run_id, :key, :value)")
        self._pending_of_key = prepare("""
            SELECT id FROM durably_runs
            WHERE status = 'pending' AND job_name = :job_name AND concurrency_key = :key AND scope = :scope
            ORDER BY created_at, id LIMIT 1""")
        self._receive_signal = prepare("""
            UPDATE durably_waits SET payload = :payload, received_at = :now
            WHERE run_id = :run_id AND name = :name AND received_at IS NULL""")
        self._suspend = prepare("""
            UPDATE durably_runs
            SET status = 'pending', owner = NULL, ready_at = :ready_at, waiting_for = :waiting_for, updated_at = :now
            WHERE id = :run_id AND attempt = :attempt AND status = 'running'""")
        self._ready_now = prepare("UPDATE durably_runs SET ready_at = :now WHERE id = :run_id AND status = 'pending'")
        self._watched = prepare("SELECT until FROM durably_watch WHERE id = 1")
        self._watch_until = prepare("""
            INSERT INTO durably_watch (id, until) VALUES (1, :until)
            ON CONFLICT (id) DO UPDATE SET until = excluded.until WHERE durably_watch.until < excluded.until""")
        self._insert_event = prepare("""
            INSERT INTO durably_events (run_id, job_name, type, body, created_at)
            VALUES (:run_id, :job_name, :type, :body, :created_at)""")
        # A run with its completed step count and the index after its last completed step.
        stored_run = f"""
            SELECT {", ".join(f"r.{name}" for name in STORED_RUN_COLUMNS)},
                (SELECT count(*) FROM durably_steps s WHERE s.run_id = r.id AND s.status = 'completed'),
                (SELECT coalesce(max(s.step_index) + 1, 0) FROM durably_steps s
                 WHERE s.run_id = r.id AND s.status = 'completed')
            FROM durably_runs r WHERE r.id = :run_id"""
        self._run_by_id = prepare(stored_run)
        self._run_of_scope = prepare(f"{stored_run} AND r.scope = :scope")
        self._table_exists = prepare(self.table_exists_sql)
        self._newest_version = prepare("SELECT max(version) FROM durably_schema_versions")
        self._first_event_kept = prepare(
            "SELECT id FROM durably_events WHERE created_at >= :before ORDER BY id LIMIT 1"
        )
        self._prune_events = prepare("DELETE FROM durably_events WHERE id < :keep_from")
        self._get_steps = prepare(f"""
            SELECT {", ".join(STEP_COLUMNS)} FROM durably_steps WHERE run_id = :run_id
            ORDER BY step_index, started_at, id""")
        self._last_event = prepare("SELECT coalesce(max(id), 0) FROM durably_events")
        # Every stream polls these (every 10 ms on SQLite): plain SQL, no statement built per poll.
        events_after = "SELECT id, run_id, job_name, type, body FROM durably_events WHERE id > :after_id"
        self._events_after = prepare(f"{events_after} ORDER BY id LIMIT :limit")
        self._run_events_after = prepare(f"{events_after} AND run_id = :run_id ORDER BY id LIMIT :limit")
        self._prune_logs = prepare("""
            DELETE FROM durably_logs WHERE run_id = :run_id AND id NOT IN (
                SELECT id FROM durably_logs WHERE run_id = :run_id ORDER BY id DESC LIMIT :keep)""")

    def _prepare(self, sql: str) -> Prepared:
        return Prepared(sql, self._paramstyle)

    # -- schema -----------------------------------------------------------------------------------
    async def migrate(self) -> None:
        await self._writer.run(self._migrate)
        with self._buffer_lock:
            if self._flusher is None and not self._closing:
                self._flusher = threading.Thread(target=self._flush_when_idle, name="durably-flusher", daemon=True)
                self._flusher.start()

    def _migrate(self, session: SqlSession) -> None:
        """Bring the schema to the current version (see `migrations`) in one transaction that holds
        the migration lock. A database already current (every start but the first after an
        upgrade) is known so from two statements, without the migration machinery."""
        if self._schema_version(session) == SCHEMA_VERSION:
            return
        from . import migrations

        self.lock_for_migration(session)
        applied = migrations.migrate(session.sa)  # reads the version again, under the lock
        if applied:
            logger.info("durably storage: schema migrated to version %s", applied[-1])

    def _schema_version(self, session: SqlSession) -> int | None:
        """The newest version applied, or None for a database without our tables."""
        if session.execute(self._table_exists, name="durably_schema_versions").fetchone() is None:
            return None
        version: int | None = session.execute(self._newest_version).fetchone()[0]
        return version

    def lock_for_migration(self, session: SqlSession) -> None:
        """Keep other processes out of the schema until this transaction ends (where they could meet)."""

    # -- runs on behalf of callers ----------------------------------------------------------------
    async def insert_runs(self, runs: list[NewRun], announce: Announce | None = None) -> list[tuple[Run, Disposition]]:
        def insert_all(session: SqlSession) -> list[tuple[Run, Disposition]]:
            created: list[tuple[Run, Disposition]] = []
            for run in runs:
                if run.coalesce and run.concurrency_key is not None:
                    pending = session.execute(
                        self._pending_of_key, job_name=run.job_name, key=run.concurrency_key, scope=run.scope
                    ).fetchone()
                    if pending is not None:
                        created.append((self._run(session, pending[0]), "coalesced"))
                        continue
                inserted = self._insert(session, run)
                if inserted is not None:
                    created.append((inserted, "created"))
                    if announce is not None:
                        announce(inserted)
                    continue
                # Its key was taken; or, with no key, this very run exists (a retry after a lost connection).
                from .queries import run_columns, run_table, select

                same = (
                    run_table.c.id == run.id
                    if run.idempotency_key is None
                    else (run_table.c.scope == run.scope)
                    & (run_table.c.job_name == run.job_name)
                    & (run_table.c.idempotency_key == run.idempotency_key)
                )
                existing = session.sa.execute(select(*run_columns).where(same)).one()
                created.append((run_from_row(existing), "idempotent" if run.idempotency_key is not None else "created"))
            return created

        return await self._writer.run(insert_all)

    def _insert(self, session: SqlSession, run: NewRun) -> Run | None:
        """Insert the run and its labels; None if its idempotency key (or its id) exists."""
        row = session.execute(
            self._insert_run,
            id=run.id,
            job_name=run.job_name,
            input=run.input_json,
            idem=run.idempotency_key,
            conc=run.concurrency_key,
            now=run.created_at,
            scope=run.scope,
            priority=run.priority,
            ready_at=run.created_at if run.ready_at is None else run.ready_at,
            waiting_for=run.waiting_for_json,
            labels=json.dumps(run.labels, separators=(",", ":")) if run.labels else None,
            replay_of=run.replay_of,
        ).fetchone()
        if row is None:
            return None
        if run.labels:
            session.execute_many(
                self._insert_label,
                [{"run_id": run.id, "key": key, "value": value} for key, value in run.labels.items()],
            )
        return run_from_row(row)

    def _run(self, session: SqlSession, run_id: str) -> Run:
        return run_from_row(session.execute(self._run_by_id, run_id=run_id).fetchone())

    def _run_in_scope(self, session: SqlSession, run_id: str, scope: str | None) -> Run | None:
        """One run by id; with a scope, only if it is that tenant's (another's reads as missing)."""
        if scope is None:
            row = session.execute(self._run_by_id, run_id=run_id).fetchone()
        else:
            row = session.execute(self._run_of_scope, run_id=run_id, scope=scope).fetchone()
        return None if row is None else run_from_row(row)

    async def get_run(self, run_id: str, scope: str | None = None) -> Run | None:
        return await self._reader.run(lambda session: self._run_in_scope(session, run_id, scope), write=False)

    async def get_run_and_last_event_id(self, run_id: str, scope: str | None = None) -> tuple[Run | None, int]:
        def read(session: SqlSession) -> tuple[Run | None, int]:
            run = self._run_in_scope(session, run_id, scope)
            last: int = session.execute(self._last_event).fetchone()[0]
            return run, last

        return await self._reader.run(read, write=False)

    async def get_runs(self, query: RunQuery) -> list[Run]:
        from .queries import NEWEST_FIRST, merged_page, rarest_label_first, run_columns, run_table, search, select

        def read(session: SqlSession) -> list[Run]:
            ordered, lead = rarest_label_first(session, query, self._dialect)
            statement = select(*run_columns).order_by(*NEWEST_FIRST)
            if query.scope is not None:
                statement = statement.where(run_table.c.scope == query.scope)
            statement = statement.where(*search(ordered, self._dialect, lead=lead))
            if query.limit is not None and (len(set(query.job_names)) > 1 or len(set(query.statuses)) > 1):
                page = merged_page(ordered, query.limit, self._dialect, lead=lead)
                statement = statement.where(run_table.c.id.in_(page))
            else:
                if query.job_names:
                    statement = statement.where(run_table.c.job_name.in_(query.job_names))
                if query.statuses:
                    statement = statement.where(run_table.c.status.in_(query.statuses))
                statement = statement.limit(query.limit).offset(query.offset or None)
            return [run_from_row(row) for row in session.sa.execute(statement)]

        return await self._reader.run(read, write=False)

    async def count_runs(self, query: StatsQuery) -> RunCounts:
        from .queries import func, run_table, select

        status, job_name, created_at = run_table.c.status, run_table.c.job_name, run_table.c.created_at
        by_job = select(job_name, status, func.count()).group_by(job_name, status)
        end = query.start + query.bucket_ms * query.buckets
        # Naming every status lets (status, created_at) cover the series; the bucket is computed in a
        # subquery so GROUP BY names a column (PostgreSQL would not match two copies of its parameters).
        created = select(((created_at - query.start) // query.bucket_ms).label("bucket"), status).where(
            status.in_([value.value for value in RunStatus]), created_at >= query.start, created_at < end
        )
        if query.job_names is not None:
            by_job = by_job.where(job_name.in_(query.job_names))
            created = created.where(job_name.in_(query.job_names))
        if query.scope is not None:
            by_job = by_job.where(run_table.c.scope == query.scope)
            created = created.where(run_table.c.scope == query.scope)
        buckets = created.subquery()
        by_bucket = select(buckets.c.bucket, buckets.c.status, func.count()).group_by(
            buckets.c.bucket, buckets.c.status
        )

        def read(session: SqlSession) -> RunCounts:
            return RunCounts(
                [tuple(row) for row in session.sa.execute(by_job)],
                [tuple(row) for row in session.sa.execute(by_bucket)],
            )

        return await self._counter.run(read, write=False)

    async def get_steps(self, run_id: str) -> list[Step]:
        def read(session: SqlSession) -> list[Step]:
            return [step_from_row(row) for row in session.execute(self._get_steps, run_id=run_id)]

        return await self._reader.run(read, write=False)

    async def get_logs(self, run_id: str, *, after_id: str | None = None, limit: int | None = None) -> list[LogEntry]:
        from .queries import log_table, select

        statement = select(*[log_table.c[name] for name in LOG_COLUMNS]).where(log_table.c.run_id == run_id)
        if after_id is not None:
            statement = statement.where(log_table.c.id > after_id)
        statement = statement.order_by(log_table.c.id).limit(limit)

        def read(session: SqlSession) -> list[LogEntry]:
            return [log_from_row(row) for row in session.sa.execute(statement)]

        return await self._reader.run(read, write=False)

    async def retry(self, run_id: str, now: int, announce: Announce | None = None) -> Run:
        from .queries import delete, wait_table

        def change(session: SqlSession) -> Run:
            self._require_status(session, run_id, "retry", {RunStatus.FAILED, RunStatus.CANCELLED})
            self._keep_attempts(session, [run_id])
            run = self._update_run(
                session,
                run_id,
                status=RunStatus.PENDING.value,
                error=None,
                error_stack=None,
                completed_at=None,
                owner=None,
                updated_at=now,
                ready_at=now,
                waiting_for=None,
                started_at=None,  # a new start: the job's timeout counts from it
            )
            # A new retry budget for each step (the failed attempts stay recorded as steps).
            session.sa.execute(delete(wait_table).where(wait_table.c.run_id == run_id, wait_table.c.kind == "retry"))
            if announce is not None:
                announce(run)
            return run

        return await self._writer.run(change)

    async def cancel(self, run_id: str, now: int) -> Run:
        def change(session: SqlSession) -> Run:
            self._require_status(session, run_id, "cancel", _BUSY)
            return self._update_run(
                session, run_id, status=RunStatus.CANCELLED.value, completed_at=now, updated_at=now, waiting_for=None
            )

        return await self._writer.run(change)

    async def delete_run(self, run_id: str) -> Run:
        from .queries import delete_runs

        def remove(session: SqlSession) -> Run:
            run = self._require_status(session, run_id, "delete", TERMINAL_STATUSES)
            delete_runs(session, [run_id])
            return run

        return await self._writer.run(remove)

    # -- many runs at once, replays, attempts, retention ----------------------------------------------
    async def bulk_change(self, action: str, run_ids: list[str], now: int, announce: Announce) -> list[Run]:
        from .queries import delete, delete_runs, run_columns, run_table, select, update, wait_table

        allowed = {"retry": {RunStatus.FAILED, RunStatus.CANCELLED}, "cancel": _BUSY, "delete": TERMINAL_STATUSES}[
            action
        ]

        def change(session: SqlSession) -> list[Run]:
            rows = session.sa.execute(
                select(*run_columns).where(run_table.c.id.in_(run_ids)).with_for_update(of=run_table)
            ).fetchall()
            runs = [run for run in map(run_from_row, rows) if run.status in allowed]
            ids = [run.id for run in runs]
            if not ids:
                return []
            if action == "delete":
                delete_runs(session, ids)
                for run in runs:
                    announce(run)
                return runs
            if action == "retry":
                self._keep_attempts(session, ids)
                values: dict[str, Any] = {
                    "status": RunStatus.PENDING.value,
                    "error": None,
                    "error_stack": None,
                    "completed_at": None,
                    "owner": None,
                    "ready_at": now,
                    "waiting_for": None,
                    "started_at": None,
                }
                session.sa.execute(delete(wait_table).where(wait_table.c.run_id.in_(ids), wait_table.c.kind == "retry"))
            else:
                values = {"status": RunStatus.CANCELLED.value, "completed_at": now, "waiting_for": None}
            session.sa.execute(update(run_table).where(run_table.c.id.in_(ids)).values(updated_at=now, **values))
            changed = [
                run_from_row(row) for row in session.sa.execute(select(*run_columns).where(run_table.c.id.in_(ids)))
            ]
            for run in changed:
                announce(run)
            return changed

        return await self._writer.run(change)

    async def replay(self, run: NewRun, source_id: str, step_names: list[str], announce: Announce) -> Run:
        from .queries import run_table, select, step_table

        def create(session: SqlSession) -> Run:
            scope = session.sa.execute(select(run_table.c.scope).where(run_table.c.id == source_id)).scalar()
            if scope is None:
                raise RunNotFoundError(source_id)  # deleted since the engine read it
            created = self._insert(session, replace(run, scope=scope))
            if created is None:
                raise RunStateError("replay", "existing", run.id)  # a new id never exists
            if step_names:
                copied = select(
                    step_table.c.name,
                    step_table.c.step_index,
                    step_table.c.output,
                    step_table.c.started_at,
                    step_table.c.completed_at,
                ).where(
                    step_table.c.run_id == source_id,
                    step_table.c.status == "completed",
                    step_table.c.name.in_(step_names),
                )
                rows = [
                    {
                        "id": new_id(),
                        "run_id": run.id,
                        "name": name,
                        "step_index": index,
                        "status": "completed",
                        "output": output,
                        "started_at": started_at,
                        "completed_at": completed_at,
                    }
                    for name, index, output, started_at, completed_at in session.sa.execute(copied)
                ]
                if rows:
                    session.sa.execute(step_table.insert(), rows)
            created = self._run(session, run.id)
            announce(created)
            return created

        return await self._writer.run(create)

    async def get_attempts(self, run_id: str) -> list[Attempt]:
        from .queries import attempt_table, select

        statement = select(attempt_table).where(attempt_table.c.run_id == run_id).order_by(attempt_table.c.number)

        def read(session: SqlSession) -> list[Attempt]:
            return [
                Attempt(
                    run_id=row.run_id,
                    number=row.number,
                    status=row.status,
                    error=row.error,
                    error_stack=row.error_stack,
                    started_at=from_ms(row.started_at),
                    completed_at=from_ms(row.completed_at),
                )
                for row in session.sa.execute(statement)
            ]

        return await self._reader.run(read, write=False)

    def purge_runs(self, finished_before: int, limit: int, announce: Announce) -> list[str]:
        from .queries import delete_runs, run_columns, run_table, select

        oldest = (
            select(*run_columns)
            .where(run_table.c.status.in_([status.value for status in TERMINAL_STATUSES]))
            .where(run_table.c.completed_at < finished_before)
            .order_by(run_table.c.completed_at)
            .limit(limit)
        )

        def purge(session: SqlSession) -> list[str]:
            runs = [run_from_row(row) for row in session.sa.execute(oldest)]
            if runs:
                delete_runs(session, [run.id for run in runs])
            for run in runs:
                announce(run)
            return [run.id for run in runs]

        return self._writer.run_blocking(purge)

    def _keep_attempts(self, session: SqlSession, run_ids: list[str]) -> None:
        """Before finished runs start over: each one's attempt as it ended, numbered after its
        earlier ones. One statement however many runs (a bulk retry's batch of 500 was 1,000)."""
        from .queries import attempt_table, func, run_table, select

        earlier = select(func.count()).where(attempt_table.c.run_id == run_table.c.id).scalar_subquery()
        ended = select(
            run_table.c.id,
            earlier + 1,
            run_table.c.status,
            run_table.c.error,
            run_table.c.error_stack,
            run_table.c.started_at,
            run_table.c.completed_at,
        ).where(run_table.c.id.in_(run_ids))
        columns = ("run_id", "number", "status", "error", "error_stack", "started_at", "completed_at")
        session.sa.execute(attempt_table.insert().from_select(columns, ended))

    def _require_status(
        self, session: SqlSession, run_id: str, action: str, allowed: set[RunStatus] | frozenset[RunStatus]
    ) -> Run:
        # The row stays locked to the commit (PostgreSQL; SQLite's single writer needs no lock): a
        # run cannot complete between this check and the change that depends on it.
        from .queries import run_columns, run_table, select

        locked = select(*run_columns).where(run_table.c.id == run_id).with_for_update(of=run_table)
        row = session.sa.execute(locked).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        run = run_from_row(row)
        if run.status not in allowed:
            raise RunStateError(action, run.status.value, run_id)
        return run

    def _update_run(self, session: SqlSession, run_id: str, **values: Any) -> Run:
        from .queries import run_columns, run_table, select, update

        session.sa.execute(update(run_table).where(run_table.c.id == run_id).values(**values))
        return run_from_row(session.sa.execute(select(*run_columns).where(run_table.c.id == run_id)).one())

    # -- runs on behalf of a worker (blocking) -----------------------------------------------------
    def last_outage(self) -> float:
        return max(connection.last_outage() for connection in self._connections())

    async def claim(self, owner: str, job_names: tuple[str, ...], limit: int, now: int) -> list[Claim]:
        if not job_names or limit <= 0:
            return []
        return await self._writer.run_grouped(
            lambda session: self._claim_in(session, ClaimRequest(owner, job_names), limit, now)
        )

    def _claim_in(self, session: SqlSession, request: ClaimRequest, limit: int, now: int) -> list[Claim]:
        """Claim up to `limit` runs in the session's transaction."""
        statement = self._claim_statement(len(request.job_names))
        params: dict[str, Any] = {f"job_{i}": name for i, name in enumerate(request.job_names)}
        params.update(owner=request.owner, now=now)
        claims = []
        for _ in range(limit):
            row = self.claim_next(session, statement, params)
            if row is None:
                break
            run_id, job_name, input_json, started_at, attempt, replay_of = row
            completed = {}
            if attempt > 1 or replay_of is not None:  # else no execution, and no replay, made steps
                steps = session.execute(self._completed_steps, run_id=run_id).fetchall()
                completed = {name: _json(output) for name, output in steps}
            claims.append(Claim(ClaimedRun(run_id, job_name, _json(input_json), started_at), attempt, completed))
        if claims and self._watch_mark.stale():  # runs about to start learn whether anyone watches their events
            self._read_watch_mark(session)
        return claims

    def claim_next(self, session: SqlSession, statement: Prepared, params: dict[str, Any]) -> Sequence[Any] | None:
        """Take the oldest claimable run: its STORED_RUN_COLUMNS and new attempt, or None. One
        conditional update suffices where writers are serialised (SQLite)."""
        return session.execute(statement, **params).fetchone()

    def _claim_statement(self, arity: int) -> Prepared:
        statement = self._claim_by_arity.get(arity)
        if statement is None:
            names = ", ".join(f":job_{i}" for i in range(arity))
            statement = self._claim_by_arity[arity] = self._prepare(self.claim_sql.replace("{job_names}", names))
        return statement

    async def record_step(self, step: StepRecord) -> StepWrite:
        """A step is recorded while its execution's claim holds: the run is running (the usual case:
        one statement), or was cancelled meanwhile (a second one, which says so). Else the claim is
        lost and nothing is written."""
        params = step._asdict()

        def write(session: SqlSession) -> StepWrite:
            for run_status, written in _STEP_WRITES:
                if session.execute(self._insert_step, **params, run_status=run_status).rowcount == 1:
                    return written
            return StepWrite.CLAIM_LOST

        return await self._writer.run_grouped(write)

    def set_progress(self, run_id: str, attempt: int, progress_json: str, now: int) -> None:
        with self._buffer_lock:
            self._wake_flusher()
            self._progress[run_id] = (attempt, progress_json, now)

    def append_log(self, log: NewLog) -> None:
        with self._buffer_lock:
            self._wake_flusher()
            self._logs.append(log)

    def append_event(self, event: NewEvent) -> None:
        with self._buffer_lock:
            self._wake_flusher()
            self._events.append(event)

    def _wake_flusher(self) -> None:
        """Called with the buffer lock held, before adding: the flusher sleeps only while all are empty."""
        if not (self._progress or self._logs or self._events):
            self._buffered.notify()

    def _flush_when_idle(self) -> None:
        """Commit buffered writes that no other write carried within `FLUSH_DELAY` (say, a job that
        reported progress and then computes for a while), `WATCHED_FLUSH_DELAY` while events are
        logged; and look at the watch mark when the engine asks (see `WatchMark`: never while the
        process is idle)."""
        while True:
            look_in = self._watch_mark.look_due()
            if look_in == 0.0:
                self._refresh_watched()
                continue
            with self._buffer_lock:
                if not (self._progress or self._logs or self._events or self._closing):
                    # Woken by a write to buffer, by closing, or by `events_watched` asking for a look.
                    self._buffered.wait(self.watch_refresh if look_in is None else look_in)
                if self._closing:
                    return
                if not (self._progress or self._logs or self._events):
                    continue
            time.sleep(self.WATCHED_FLUSH_DELAY if self.events_watched() else self.FLUSH_DELAY)
            with self._buffer_lock:
                pending = bool(self._progress or self._logs or self._events)
            if pending:
                try:
                    self._writer.run_blocking(_nothing)  # an empty write: the buffers ride on it
                except StorageUnavailableError:
                    pass  # the buffers wait for the database (the outage is logged once, by the writer)
                except Exception:
                    logger.exception("durably storage: writing buffered progress, logs and events failed")
                    time.sleep(1.0)

    def _restore_buffers(
        self, progress: dict[str, tuple[int, str, int]], logs: list[NewLog], events: list[NewEvent]
    ) -> None:
        with self._buffer_lock:
            self._progress = {**progress, **self._progress}  # newer values win
            self._logs[:0] = logs
            self._events[:0] = events
            self._buffered.notify()

    def flush_before_group(self, session: SqlSession) -> None:
        """First in every write transaction: buffered progress and logs, so they are committed with
        the writes they came before (a run's last progress before it finishes, say)."""
        self._flush_buffers(session, events=False)

    def flush_before_commit(self, session: SqlSession) -> None:
        """Last in every write transaction: what was buffered meanwhile, and the events. Events go
        last so that a database that must serialise event writers (see `write_events`) does so only
        for the commit."""
        self._flush_buffers(session, events=True)

    def _flush_buffers(self, session: SqlSession, *, events: bool) -> None:
        """Write buffered progress, logs and events: one statement batch however many calls made them.
        If the transaction rolls back, they go back to the buffers to be written later."""
        if not (self._progress or self._logs or (events and self._events)):
            return  # nothing buffered (read without the lock: what this thread buffered, it sees)
        with self._buffer_lock:
            progress, self._progress = self._progress, {}
            logs, self._logs = self._logs, []
            new_events: list[NewEvent] = []
            if events:
                new_events, self._events = self._events, []
        if not (progress or logs or new_events):
            return
        session.on_rollback(lambda: self._restore_buffers(progress, logs, new_events))
        if progress:
            session.execute_many(
                self._write_progress,
                [
                    {"progress": value, "now": now, "run_id": run_id, "attempt": attempt}
                    for run_id, (attempt, value, now) in progress.items()
                ],
            )
        if logs:
            session.execute_many(
                self._insert_log,
                [
                    {
                        "id": log.id,
                        "run_id": log.run_id,
                        "step_name": log.step_name,
                        "level": log.level,
                        "message": log.message,
                        "data": log.data_json,
                        "created_at": log.created_at,
                    }
                    for log in logs
                ],
            )
        if new_events:
            self.write_events(
                session,
                [
                    {
                        "run_id": event.run_id,
                        "job_name": event.job_name,
                        "type": event.type,
                        "body": event.body_json,
                        "created_at": event.created_at,
                    }
                    for event in new_events
                ],
            )

    def write_events(self, session: SqlSession, rows: list[dict[str, Any]]) -> None:
        """Insert event rows. Readers tail the log by id, so ids must be committed in increasing
        order; a single writer (SQLite) guarantees that by itself."""
        session.execute_many(self._insert_event, rows)

    async def finish_run(
        self,
        run_id: str,
        attempt: int,
        status: str,
        now: int,
        *,
        output_json: str | None = None,
        error: str | None = None,
        error_stack: str | None = None,
        keep_logs: int | None = None,
        claim_next: ClaimRequest | None = None,
    ) -> Settled:
        def finish(session: SqlSession) -> Settled:
            changed = session.execute(
                self._finish,
                status=status,
                output=output_json,
                error=error,
                error_stack=error_stack,
                now=now,
                run_id=run_id,
                attempt=attempt,
            ).rowcount
            conflict = None
            if changed == 0:
                row = session.execute(self._status_of, run_id=run_id).fetchone()
                conflict = "missing" if row is None else row[0]
            elif keep_logs is not None:
                session.execute(self._prune_logs, run_id=run_id, keep=keep_logs)
            claimed = (
                [] if claim_next is None or not claim_next.job_names else self._claim_in(session, claim_next, 1, now)
            )
            return Settled(conflict, claimed[0] if claimed else None)

        return await self._writer.run_grouped(finish)

    def release(self, run_id: str, attempt: int, now: int) -> bool:
        def give_back(session: SqlSession) -> bool:
            return session.execute(self._release, run_id=run_id, attempt=attempt, now=now).rowcount == 1

        return self._writer.run_blocking(give_back)

    def heartbeat_blocking(self, claims: list[tuple[str, int]], now: int) -> Heartbeat:
        def beat(session: SqlSession) -> Heartbeat:
            outcome = Heartbeat()
            for run_id, attempt in claims:
                if session.execute(self._beat, now=now, run_id=run_id, attempt=attempt).rowcount == 1:
                    continue
                row = session.execute(self._status_of, run_id=run_id).fetchone()
                if row is not None and row[1] == attempt and row[0] == RunStatus.CANCELLED:
                    outcome.cancelled.append((run_id, attempt))
                else:
                    outcome.lost.append((run_id, attempt))
            return outcome

        return self._writer.run_blocking(beat)

    def recover(self, stale_before: int, owner_is_dead: Callable[[str], bool], now: int) -> list[str]:
        def reset(session: SqlSession) -> list[str]:
            running = session.execute(self._running).fetchall()
            return self._reset(session, _abandoned(running, stale_before, owner_is_dead), now)

        return self._writer.run_blocking(reset)

    def survey(self, stale_before: int, owner_is_dead: Callable[[str], bool], now: int, limit: int) -> Survey:
        def look(session: SqlSession) -> tuple[list[str], list[Sequence[Any]], int | None, list[DueSchedule]]:
            pending = [row[0] for row in session.execute(self._oldest_pending, now=now, limit=limit)]
            running = session.execute(self._running).fetchall()
            next_wake = session.execute(self._next_wake, now=now).fetchone()[0]
            due = [DueSchedule(*row) for row in session.execute(self._due_schedules, now=now)]
            return pending, running, next_wake, due

        pending_jobs, running, next_wake, due = self._reader.run_blocking(look, write=False)
        abandoned = _abandoned(running, stale_before, owner_is_dead)
        if not abandoned:
            return Survey(pending_jobs, [], next_wake, due)
        recovered = self._writer.run_blocking(lambda session: self._reset(session, abandoned, now))
        jobs = {run_id: job for run_id, _, _, _, job in abandoned}
        return Survey((pending_jobs + [jobs[run_id] for run_id in recovered])[:limit], recovered, next_wake, due)

    # -- schedules --------------------------------------------------------------------------------
    async def put_schedule(self, schedule: Schedule, input_json: str, next_fire_at: int) -> Schedule:
        from .queries import schedule_table, select, update

        now = round(schedule.updated_at.timestamp() * 1000)
        values = {
            "name": schedule.name,
            "job_name": schedule.job_name,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "input": input_json,
            "catch_up": schedule.catch_up,
            "next_fire_at": next_fire_at,
            "created_at": now,
            "updated_at": now,
        }

        def put(session: SqlSession) -> Schedule:
            row = session.sa.execute(select(schedule_table).where(schedule_table.c.name == schedule.name)).fetchone()
            if row is None:
                session.sa.execute(schedule_table.insert().values(**values))
            else:
                unchanged = (row.cron, row.timezone) == (schedule.cron, schedule.timezone)
                keep = {"next_fire_at": row.next_fire_at} if row.next_fire_at is None or unchanged else {}
                session.sa.execute(
                    update(schedule_table)
                    .where(schedule_table.c.name == schedule.name)
                    .values(**{**values, "created_at": row.created_at, **keep})
                )
            return self._schedule(session, schedule.name)

        return await self._writer.run(put)

    async def get_schedules(self) -> list[Schedule]:
        from .queries import schedule_table, select

        def read(session: SqlSession) -> list[Schedule]:
            rows = session.sa.execute(select(schedule_table).order_by(schedule_table.c.name))
            return [schedule_from_row(row) for row in rows]

        return await self._reader.run(read, write=False)

    async def set_schedule_next(self, name: str, next_fire_at: int | None, now: int) -> Schedule:
        from .queries import schedule_table, update

        def change(session: SqlSession) -> Schedule:
            self._schedule(session, name)  # or ScheduleNotFoundError
            statement = update(schedule_table).where(schedule_table.c.name == name)
            session.sa.execute(statement.values(next_fire_at=next_fire_at, updated_at=now))
            return self._schedule(session, name)

        return await self._writer.run(change)

    async def delete_schedule(self, name: str) -> Schedule:
        from .queries import delete, schedule_table

        def remove(session: SqlSession) -> Schedule:
            schedule = self._schedule(session, name)
            session.sa.execute(delete(schedule_table).where(schedule_table.c.name == name))
            return schedule

        return await self._writer.run(remove)

    def _schedule(self, session: SqlSession, name: str) -> Schedule:
        from .queries import schedule_table, select

        row = session.sa.execute(select(schedule_table).where(schedule_table.c.name == name)).fetchone()
        if row is None:
            raise ScheduleNotFoundError(name)
        return schedule_from_row(row)

    def fire_schedule(self, due: DueSchedule, following: int, run: NewRun | None, announce: Announce) -> Run | None:
        def fire(session: SqlSession) -> Run | None:
            moved = session.execute(
                self._move_schedule, name=due.name, due=due.due, following=following, now=now_ms()
            ).rowcount
            if not moved or run is None:
                return None  # fired by another leader already, or a missed tick skipped
            created = self._insert(session, run)
            if created is None:
                return None  # the tick's run exists (its idempotency key)
            session.execute(self._schedule_fired, name=due.name, due=due.due, run_id=created.id)
            announce(created)
            return created

        return self._writer.run_blocking(fire)

    # -- waits ------------------------------------------------------------------------------------
    async def get_wait(self, run_id: str, name: str) -> Wait | None:
        def read(session: SqlSession) -> Wait | None:
            row = session.execute(self._get_wait, run_id=run_id, name=name).fetchone()
            return None if row is None else Wait(*row)

        return await self._reader.run_grouped(read, write=False)

    async def suspend(
        self, run_id: str, attempt: int, now: int, name: str, wait: Wait, waiting_for_json: str, ready_at: int
    ) -> str | None:
        def change(session: SqlSession) -> str | None:
            session.execute(
                self._replace_wait if wait.kind == "retry" else self._insert_wait,
                run_id=run_id,
                name=name,
                kind=wait.kind,
                until=wait.until,
                payload=wait.payload_json,
                received_at=None,
                created_at=wait.created_at,  # when the step set its deadline: a sleep's step starts then
            )
            moved = session.execute(
                self._suspend, run_id=run_id, attempt=attempt, ready_at=ready_at, waiting_for=waiting_for_json, now=now
            ).rowcount
            if not moved:
                row = session.execute(self._status_of, run_id=run_id).fetchone()
                if row is None:
                    return "missing"
                return "lost" if row[1] != attempt else str(row[0])
            # A new statement, after the run's row is ours: it sees a signal committed before that.
            stored = session.execute(self._get_wait, run_id=run_id, name=name).fetchone()
            if stored is not None and stored[3] is not None:
                session.execute(self._ready_now, run_id=run_id, now=now)
            return None

        return await self._writer.run_grouped(change)

    async def signal(self, run_id: str, name: str, payload_json: str, now: int) -> Run:
        def deliver(session: SqlSession) -> Run:
            run = self._require_status(session, run_id, "signal", _BUSY)  # the row stays locked
            stored = session.execute(self._get_wait, run_id=run_id, name=name).fetchone()
            if stored is None:
                session.execute(
                    self._insert_wait,
                    run_id=run_id,
                    name=name,
                    kind="signal",
                    until=None,
                    payload=payload_json,
                    received_at=now,
                    created_at=now,
                )
            elif stored[0] != "signal" or stored[3] is not None:
                raise SignalConflictError(run_id, name)
            else:
                session.execute(self._receive_signal, run_id=run_id, name=name, payload=payload_json, now=now)
            waiting = run.waiting_for
            if waiting is not None and waiting.kind == "signal" and waiting.name == name:
                session.execute(self._ready_now, run_id=run_id, now=now)
            return run

        return await self._writer.run(deliver)

    def _reset(self, session: SqlSession, abandoned: list[Sequence[Any]], now: int) -> list[str]:
        """Abandoned running runs back to pending. Only the claim judged abandoned: where writers run
        side by side (PostgreSQL), another process may have recovered a run and a worker claimed it
        again meanwhile."""
        return [
            run_id
            for run_id, _, _, attempt, _ in abandoned
            if session.execute(self._release, run_id=run_id, attempt=attempt, now=now).rowcount
        ]

    def prune_logs(self, run_id: str, keep: int) -> None:
        def prune(session: SqlSession) -> None:
            session.execute(self._prune_logs, run_id=run_id, keep=keep)

        self._writer.run_later(prune)

    # -- the event log ----------------------------------------------------------------------------
    async def read_events(self, after_id: int, *, run_id: str | None = None, limit: int = 1000) -> list[StoredEvent]:
        return await self._reader.run(lambda session: self.events_in(session, after_id, run_id, limit), write=False)

    def events_in(self, session: SqlSession, after_id: int, run_id: str | None, limit: int) -> list[StoredEvent]:
        """`read_events` on a connection the caller holds."""
        if run_id is None:
            rows = session.execute(self._events_after, after_id=after_id, limit=limit)
        else:
            rows = session.execute(self._run_events_after, after_id=after_id, run_id=run_id, limit=limit)
        return [StoredEvent(*row) for row in rows]

    async def last_event_id(self) -> int:
        def read(session: SqlSession) -> int:
            last: int = session.execute(self._last_event).fetchone()[0]
            return last

        return await self._reader.run(read, write=False)

    async def watch_events(self, until: int) -> int:
        def write(session: SqlSession) -> int:
            row = session.execute(self._watched).fetchone()
            session.execute(self._watch_until, until=until)
            return int(row[0]) if row else 0

        self._watch_mark.raise_to(until)
        return await self._writer.run(write)

    def events_watched(self) -> bool:
        return self._watch_mark.wanted(now_ms())

    def _read_watch_mark(self, session: SqlSession) -> None:
        started = time.monotonic()
        row = session.execute(self._watched).fetchone()
        self._watch_mark.seen(row[0] if row else None, started)

    def _refresh_watched(self) -> None:
        """One look at the watch mark, from the flusher thread; a failure is logged once per streak."""
        self._watch_mark.looking()
        try:
            self._reader.run_blocking(self._read_watch_mark, write=False)
        except Exception as error:
            self._watch_mark.failed(error)

    def prune_events(self, before: int) -> None:
        def prune(session: SqlSession) -> None:
            # Ids grow with time: the first event to keep, walking from the oldest (no index on time).
            row = session.execute(self._first_event_kept, before=before).fetchone()
            keep_from = row[0] if row is not None else session.execute(self._last_event).fetchone()[0] + 1
            session.execute(self._prune_events, keep_from=keep_from)

        self._writer.run_blocking(prune)

    async def close(self) -> None:
        """Finish queued writes and close the connections (joining threads, so off the event loop).
        Closing twice is harmless."""
        with self._buffer_lock:
            if self._closing:
                return
            self._closing = True
            self._buffered.notify()
        if self._flusher is not None:
            await asyncio.to_thread(self._flusher.join)
        try:
            await asyncio.to_thread(self._writer.run_blocking, _nothing)  # the last buffered writes
        except StorageUnavailableError as error:
            logger.warning("durably storage: closing without the last progress, logs and events: %s", error)
        for connection in self._connections():
            await asyncio.to_thread(connection.close)

    def _connections(self) -> list[GroupCommit[Any]]:
        """The writer, the reader and the counter, each once (an in-memory database has one)."""
        return list(dict.fromkeys((self._writer, self._reader, self._counter)))


def _abandoned(
    running: Sequence[Sequence[Any]], stale_before: int, owner_is_dead: Callable[[str], bool]
) -> list[Sequence[Any]]:
    """The rows of `SqlStorage._running` whose heartbeat is older than `stale_before` or whose
    owner is known dead."""
    return [row for row in running if row[2] < stale_before or (row[1] is not None and owner_is_dead(row[1]))]
