"""The schema, as SQLModel tables on a metadata of our own (so `SQLModel.metadata.create_all()` in a
user's app neither creates nor drops them).

Timestamps are epoch milliseconds (BIGINT) so they compare and index alike on SQLite and PostgreSQL.
JSON columns are TEXT holding compact JSON: the engine encodes once and the wire decodes once.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Text, desc
from sqlmodel import Field, SQLModel

# The version these tables are at: the last step of `migrations.MIGRATIONS`, which says what each
# version changed. A schema change here comes with a migration step that makes it in old databases.
SCHEMA_VERSION = 4


class DurablyTable(SQLModel):
    metadata = MetaData()


def _serial() -> Column:
    """A 64-bit row id (PostgreSQL: BIGSERIAL); on SQLite exactly INTEGER PRIMARY KEY, the rowid."""
    return Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


def _millis(nullable: bool = False) -> Column:
    return Column(BigInteger, nullable=nullable)


class RunRow(DurablyTable, table=True):
    __tablename__ = "durably_runs"
    __table_args__ = (
        # An idempotency key names one run per tenant and job.
        Index("ix_durably_runs_idempotency", "scope", "job_name", "idempotency_key", unique=True),
        Index("ix_durably_runs_status_created", "status", "created_at", "id"),
        Index("ix_durably_runs_status_concurrency", "status", "concurrency_key"),
        Index("ix_durably_runs_job_created", "job_name", "created_at"),
        Index("ix_durably_runs_created", "created_at", "id"),
        # Covers the dashboard's counts per job and status: an index scan, never a table scan.
        Index("ix_durably_runs_job_status", "job_name", "status"),
        # A tenant's runs, newest first, and its counts per job and status, without reading the others'.
        Index("ix_durably_runs_scope_created", "scope", "created_at", "id"),
        Index("ix_durably_runs_scope_job_status", "scope", "job_name", "status"),
        # The claim order: pending runs that are ready, highest priority first, then first ready.
        Index("ix_durably_runs_ready", "status", desc("priority"), "ready_at", "id"),
        Index("ix_durably_runs_replay_of", "replay_of"),
    )

    id: str = Field(primary_key=True)
    job_name: str
    input: str = Field(sa_column=Column(Text, nullable=False))
    status: str
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    progress: str | None = Field(default=None, sa_column=Column(Text))
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_stack: str | None = Field(default=None, sa_column=Column(Text))
    # Claim generation: bumped by every claim; a worker's writes must name the generation it claimed.
    attempt: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    # Who holds the claim ("host:pid:start"), so a dead owner on this host can be recognised at once.
    owner: str | None = None
    started_at: int | None = Field(default=None, sa_column=_millis(nullable=True))
    completed_at: int | None = Field(default=None, sa_column=_millis(nullable=True))
    heartbeat_at: int = Field(sa_column=_millis())
    created_at: int = Field(sa_column=_millis())
    updated_at: int = Field(sa_column=_millis())
    # The tenant the run belongs to ("" for none): idempotency and concurrency keys, listings and
    # counts of a scoped caller stay inside it. Last, as version 3 added it to existing tables.
    scope: str = Field(default="", sa_column=Column(String, nullable=False, server_default=""))
    # Version 4 (waits): higher runs first among the ready ones; a pending run is not claimed before
    # `ready_at` (delayed, sleeping, waiting for a signal or for a retry's backoff); `waiting_for`
    # says what it waits for, as JSON (`{"kind", "name"?, "until"?}`), while it does.
    priority: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    ready_at: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    waiting_for: str | None = Field(default=None, sa_column=Column(Text))
    # The run's labels as a JSON object (None: none), as shown; `LabelRow` holds them for searching.
    labels: str | None = Field(default=None, sa_column=Column(Text))
    replay_of: str | None = None  # the run this one replays (`durably.replay`)


class StepRow(DurablyTable, table=True):
    """A settled step. The hot path's only write: one row in one table and one index. A run's step
    count and current step are derived from these rows, never kept twice."""

    __tablename__ = "durably_steps"
    __table_args__ = (Index("ix_durably_steps_run_index", "run_id", "step_index"),)

    seq: int | None = Field(default=None, sa_column=_serial())  # the row id: no second b-tree for `id`
    id: str
    run_id: str
    name: str
    step_index: int
    status: str
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_stack: str | None = Field(default=None, sa_column=Column(Text))
    started_at: int = Field(sa_column=_millis())
    completed_at: int | None = Field(default=None, sa_column=_millis(nullable=True))


class LabelRow(DurablyTable, table=True):
    """A run's label, one row each, indexed by (key, value) so that a search by labels reads only
    the runs that have them."""

    __tablename__ = "durably_labels"
    __table_args__ = (Index("ix_durably_labels_key_value", "key", "value", "run_id"),)

    run_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: str


class AttemptRow(DurablyTable, table=True):
    """A finished attempt of a run that was retried since: how it ended, kept when the run starts
    over (the run row shows its latest attempt)."""

    __tablename__ = "durably_attempts"

    run_id: str = Field(primary_key=True)
    number: int = Field(primary_key=True)  # from 1
    status: str  # "failed" | "cancelled"
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_stack: str | None = Field(default=None, sa_column=Column(Text))
    started_at: int | None = Field(default=None, sa_column=_millis(nullable=True))
    completed_at: int | None = Field(default=None, sa_column=_millis(nullable=True))


class WaitRow(DurablyTable, table=True):
    """A run's durable waits by step name: a sleep's deadline (so a restart does not restart the
    clock), a signal wait's deadline, and a signal's payload, which may arrive before the wait."""

    __tablename__ = "durably_waits"

    run_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    kind: str  # "sleep" | "signal"
    until: int | None = Field(default=None, sa_column=_millis(nullable=True))  # None: no deadline
    payload: str | None = Field(default=None, sa_column=Column(Text))  # a signal's, as JSON
    received_at: int | None = Field(default=None, sa_column=_millis(nullable=True))  # when the signal came
    created_at: int = Field(sa_column=_millis())


class ScheduleRow(DurablyTable, table=True):
    """A job triggered on a cron expression (see `_schedules.py`). `next_fire_at` is the next tick
    (None while paused); it only moves forward, by compare-and-set, as the tick's run is created."""

    __tablename__ = "durably_schedules"
    __table_args__ = (Index("ix_durably_schedules_next_fire", "next_fire_at"),)

    name: str = Field(primary_key=True)
    job_name: str
    cron: str
    timezone: str
    input: str = Field(sa_column=Column(Text, nullable=False))
    catch_up: str  # "once" | "skip"
    next_fire_at: int | None = Field(default=None, sa_column=_millis(nullable=True))
    last_fired_at: int | None = Field(default=None, sa_column=_millis(nullable=True))  # the last tick fired
    last_run_id: str | None = None
    created_at: int = Field(sa_column=_millis())
    updated_at: int = Field(sa_column=_millis())


class LogRow(DurablyTable, table=True):
    __tablename__ = "durably_logs"
    __table_args__ = (Index("ix_durably_logs_run_id", "run_id", "id"),)

    id: str = Field(primary_key=True)
    run_id: str
    step_name: str | None = None
    level: str
    message: str = Field(sa_column=Column(Text, nullable=False))
    data: str | None = Field(default=None, sa_column=Column(Text))
    created_at: int = Field(sa_column=_millis())


class EventRow(DurablyTable, table=True):
    """Every event, in the order written: how processes see each other's runs, and how a stream that
    reconnects resumes where it left off (`Last-Event-ID`). Kept for a retention window only."""

    __tablename__ = "durably_events"
    # No secondary index: every event is written on the hot path, and readers go by id (tailing,
    # resuming after an id); pruning walks from the oldest id. Ids are never reused, even after
    # pruning, because clients resume by id.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(default=None, sa_column=_serial())
    run_id: str
    job_name: str | None = None
    type: str
    body: str = Field(sa_column=Column(Text, nullable=False))  # the event as JSON, as streamed
    created_at: int = Field(sa_column=_millis())


class WatchRow(DurablyTable, table=True):
    """Until when some process streams events (one row). Writers skip the event log when nobody
    has watched for a while, so an engine without a live UI pays nothing for it."""

    __tablename__ = "durably_watch"

    id: int = Field(default=1, primary_key=True)
    until: int = Field(sa_column=_millis())


class SchemaVersionRow(DurablyTable, table=True):
    __tablename__ = "durably_schema_versions"

    version: int = Field(primary_key=True)
    applied_at: int = Field(sa_column=_millis())
