"""The schema, as SQLAlchemy Core tables on a metadata of our own (so a user's `metadata.create_all()`
neither creates nor drops them).

Core tables, not ORM classes: the engine reads and writes rows, never objects, and its hot path runs
SQL on the driver's connection; Core alone is what migrations (`create_all`, the indexes each step
adds) and the cold queries (listings, counts, actions) need. The ORM and SQLModel cost a process
about a fifth of a second to import and are not loaded at all.

Timestamps are epoch milliseconds (BIGINT) so they compare and index alike on SQLite and PostgreSQL.
JSON columns are TEXT holding compact JSON: the engine encodes once and the wire decodes once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, desc, text

# The version these tables are at: the last step of `migrations.MIGRATIONS`, which says what each
# version changed. A schema change here comes with a migration step that makes it in old databases.
# (`version.py` holds the number itself, for code that must not import SQLAlchemy.)
from .version import SCHEMA_VERSION

metadata = MetaData()


def _serial() -> Column[int]:
    """A 64-bit row id (PostgreSQL: BIGSERIAL); on SQLite exactly INTEGER PRIMARY KEY, the rowid."""
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


def _text(name: str, *, primary_key: bool = False, nullable: bool = False) -> Column[str]:
    """A short text column (VARCHAR): names, ids, keys, statuses."""
    return Column(name, String, primary_key=primary_key, nullable=nullable)


def _millis(name: str, nullable: bool = False) -> Column[int]:
    return Column(name, BigInteger, nullable=nullable)


def _partial(name: str, *columns: Any, where: str, unique: bool = False) -> Index:
    """An index of the rows that meet `where` only, on both databases (the same SQL on each)."""
    return Index(name, *columns, unique=unique, sqlite_where=text(where), postgresql_where=text(where))


runs = Table(
    "durably_runs",
    metadata,
    _text("id", primary_key=True),
    _text("job_name"),
    Column("input", Text, nullable=False),
    _text("status"),
    _text("idempotency_key", nullable=True),
    _text("concurrency_key", nullable=True),
    Column("progress", Text),
    Column("output", Text),
    Column("error", Text),
    Column("error_stack", Text),
    # Claim generation: bumped by every claim; a worker's writes must name the generation it claimed.
    Column("attempt", Integer, nullable=False, default=0),
    # Who holds the claim ("host:pid:start"), so a dead owner on this host can be recognised at once.
    _text("owner", nullable=True),
    _millis("started_at", nullable=True),
    _millis("completed_at", nullable=True),
    _millis("heartbeat_at"),
    _millis("created_at"),
    _millis("updated_at"),
    # The tenant the run belongs to ("" for none): idempotency and concurrency keys, listings and
    # counts of a scoped caller stay inside it. Last, as version 3 added it to existing tables.
    Column("scope", String, nullable=False, server_default=""),
    # Version 4 (waits): higher runs first among the ready ones; a pending run is not claimed before
    # `ready_at` (delayed, sleeping, waiting for a signal or for a retry's backoff); `waiting_for`
    # says what it waits for, as JSON (`{"kind", "name"?, "until"?}`), while it does.
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("ready_at", BigInteger, nullable=False, server_default="0"),
    Column("waiting_for", Text),
    # The run's labels as a JSON object (None: none), as shown; `labels` holds them for searching.
    Column("labels", Text),
    _text("replay_of", nullable=True),  # the run this one replays (`durably.replay`)
    # Partial indexes (version 5) hold only the runs their queries can ask for, so that a run
    # without a key, or a settled one, costs them nothing: SQLite writes no entry for it, and
    # PostgreSQL, which writes an entry in every index for each new version of a row whose status
    # changed, skips those whose condition the row fails. Each query of them states their condition
    # in a form both planners prove (see tests/test_storage_plans.py).
    # An idempotency key names one run per tenant and job.
    _partial(
        "ix_durably_runs_idempotency",
        "scope",
        "job_name",
        "idempotency_key",
        unique=True,
        where="idempotency_key IS NOT NULL",
    ),
    Index("ix_durably_runs_status_created", "status", "created_at", "id"),
    # A concurrency key's pending and running runs: is one running (the claim), which is pending
    # (a coalesced trigger). Settled runs leave it. An OR, not IN: SQLite proves that `status =
    # 'running'` implies an OR that names it, but not an IN list.
    _partial(
        "ix_durably_runs_active_key",
        "concurrency_key",
        "scope",
        "status",
        "job_name",
        "created_at",
        "id",
        where="concurrency_key IS NOT NULL AND (status = 'pending' OR status = 'running')",
    ),
    Index("ix_durably_runs_job_created", "job_name", "created_at"),
    Index("ix_durably_runs_created", "created_at", "id"),
    # Covers the dashboard's counts per job and status: an index scan, never a table scan.
    Index("ix_durably_runs_job_status", "job_name", "status"),
    # A tenant's runs, newest first, and its counts per job and status, without reading the others'.
    Index("ix_durably_runs_scope_created", "scope", "created_at", "id"),
    Index("ix_durably_runs_scope_job_status", "scope", "job_name", "status"),
    # The claim order: pending runs that are ready, highest priority first, then first ready. The
    # status leads although every entry has the same: SQLite's planner, which has no statistics,
    # prefers an index its query constrains by equality over one it would walk from the start.
    _partial("ix_durably_runs_ready", "status", desc("priority"), "ready_at", "id", where="status = 'pending'"),
    _partial("ix_durably_runs_replay_of", "replay_of", where="replay_of IS NOT NULL"),
)

# A settled step. The hot path's only write: one row in one table and one index. A run's step count
# and current step are derived from these rows, never kept twice.
steps = Table(
    "durably_steps",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    ),  # the row id: no second b-tree for `id`
    _text("id"),
    _text("run_id"),
    _text("name"),
    Column("step_index", Integer, nullable=False),
    _text("status"),
    Column("output", Text),
    Column("error", Text),
    Column("error_stack", Text),
    _millis("started_at"),
    _millis("completed_at", nullable=True),
    Index("ix_durably_steps_run_index", "run_id", "step_index"),
)

# A run's label, one row each, indexed by (key, value) so that a search by labels reads only the
# runs that have them.
labels = Table(
    "durably_labels",
    metadata,
    _text("run_id", primary_key=True),
    _text("key", primary_key=True),
    _text("value"),
    Index("ix_durably_labels_key_value", "key", "value", "run_id"),
)

# A finished attempt of a run that was retried since: how it ended, kept when the run starts over
# (the run row shows its latest attempt).
attempts = Table(
    "durably_attempts",
    metadata,
    _text("run_id", primary_key=True),
    Column("number", Integer, primary_key=True, nullable=False),  # from 1
    _text("status"),  # "failed" | "cancelled"
    Column("error", Text),
    Column("error_stack", Text),
    _millis("started_at", nullable=True),
    _millis("completed_at", nullable=True),
)

# A run's durable waits by step name: a sleep's deadline (so a restart does not restart the clock), a
# signal wait's deadline, and a signal's payload, which may arrive before the wait.
waits = Table(
    "durably_waits",
    metadata,
    _text("run_id", primary_key=True),
    _text("name", primary_key=True),
    _text("kind"),  # "sleep" | "signal" | "retry"
    _millis("until", nullable=True),  # None: no deadline
    Column("payload", Text),  # a signal's, as JSON
    _millis("received_at", nullable=True),  # when the signal came
    _millis("created_at"),
)

# A job triggered on a cron expression (see `_schedules.py`). `next_fire_at` is the next tick (None
# while paused); it only moves forward, by compare-and-set, as the tick's run is created.
schedules = Table(
    "durably_schedules",
    metadata,
    _text("name", primary_key=True),
    _text("job_name"),
    _text("cron"),
    _text("timezone"),
    Column("input", Text, nullable=False),
    _text("catch_up"),  # "once" | "skip"
    _millis("next_fire_at", nullable=True),
    _millis("last_fired_at", nullable=True),  # the last tick fired
    _text("last_run_id", nullable=True),
    _millis("created_at"),
    _millis("updated_at"),
    Index("ix_durably_schedules_next_fire", "next_fire_at"),
)

logs = Table(
    "durably_logs",
    metadata,
    _text("id", primary_key=True),
    _text("run_id"),
    _text("step_name", nullable=True),
    _text("level"),
    Column("message", Text, nullable=False),
    Column("data", Text),
    _millis("created_at"),
    Index("ix_durably_logs_run_id", "run_id", "id"),
)

# Every event, in the order written: how processes see each other's runs, and how a stream that
# reconnects resumes where it left off (`Last-Event-ID`). Kept for a retention window only. No
# secondary index: every event is written on the hot path, and readers go by id (tailing, resuming
# after an id); pruning walks from the oldest id. Ids are never reused, even after pruning, because
# clients resume by id.
events = Table(
    "durably_events",
    metadata,
    _serial(),
    _text("run_id"),
    _text("job_name", nullable=True),
    _text("type"),
    Column("body", Text, nullable=False),  # the event as JSON, as streamed
    _millis("created_at"),
    sqlite_autoincrement=True,
)

# Until when some process streams events (one row). Writers skip the event log when nobody has
# watched for a while, so an engine without a live UI pays nothing for it.
watch = Table(
    "durably_watch",
    metadata,
    Column("id", Integer, primary_key=True, default=1),
    _millis("until"),
)

schema_versions = Table(
    "durably_schema_versions",
    metadata,
    Column("version", Integer, primary_key=True),
    _millis("applied_at"),
)

__all__ = [
    "SCHEMA_VERSION",
    "attempts",
    "events",
    "labels",
    "logs",
    "metadata",
    "runs",
    "schedules",
    "schema_versions",
    "steps",
    "waits",
    "watch",
]
