"""Versioned schema migrations: how a database made by an earlier release becomes today's.

A new database is made at once from `tables.py` and stamped with `SCHEMA_VERSION`. A database
stamped with an earlier version gets every later step of `MIGRATIONS`, in order, each recorded in
`durably_schema_versions` as it is applied. All of it happens in one transaction that first takes
the migration lock (SQLite: its write lock; PostgreSQL: an advisory lock), so processes that start
together migrate one at a time and the later ones find nothing left to do. Migrations go forward
only: a database stamped with a version newer than this code is refused, never "fixed".

Changing the schema: change `tables.py`, raise `SCHEMA_VERSION`, and append a step here that makes
the same change to an existing database (its docstring says what it does). A step names what it
adds, so it leaves a database exactly as `tables.py` would make it new; tests/test_migrations.py
checks that from every earlier version, on both databases.

Version 1 is the first release's schema: the tables runs, steps, logs, events, the watch mark and the
versions table. There is no step for it: a database without a version is made new.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Index, Table, inspect, select, text
from sqlalchemy.schema import CreateColumn

from .._clock import now_ms
from .._errors import SchemaVersionError
from .tables import SCHEMA_VERSION, metadata
from .tables import attempts as _attempts
from .tables import labels as _labels
from .tables import runs as _runs
from .tables import schedules as _schedules
from .tables import schema_versions as _versions
from .tables import waits as _waits


@dataclass(frozen=True, slots=True)
class Migration:
    """One version's change: `apply` brings a database at `version - 1` to `version`."""

    version: int
    apply: Callable[[Connection], None]

    @property
    def summary(self) -> str:
        return (self.apply.__doc__ or "").strip().splitlines()[0]


# -- what a step can do (each leaves alone what is already there) -----------------------------------
def _create_index(connection: Connection, table: Table, name: str) -> None:
    """Create the index `tables.py` declares under this name."""
    index: Index = next(index for index in table.indexes if index.name == name)
    index.create(connection, checkfirst=True)


def _drop_index(connection: Connection, name: str) -> None:
    connection.execute(text(f"DROP INDEX IF EXISTS {name}"))


def _add_column(connection: Connection, table: Table, name: str) -> None:
    """Add the column `tables.py` declares, spelled as `CREATE TABLE` would spell it (type, default,
    NOT NULL), so an old table ends up as a new one. A NOT NULL column needs a server default."""
    if any(column["name"] == name for column in inspect(connection).get_columns(table.name)):
        return
    spec = CreateColumn(table.c[name]).compile(dialect=connection.dialect)
    connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {spec}"))


# -- the steps ------------------------------------------------------------------------------------
def _index_runs_by_job_and_status(connection: Connection) -> None:
    """Index runs by (job name, status): the dashboard's counts per job and status read only the index."""
    _create_index(connection, _runs, "ix_durably_runs_job_status")


def _add_run_scopes(connection: Connection) -> None:
    """Give runs a tenant (`scope`, "" for none): idempotency keys become unique per (scope, job,
    key), and a tenant's runs are listed and counted through indexes of their own."""
    _add_column(connection, _runs, "scope")
    _drop_index(connection, "ix_durably_runs_job_idempotency")
    for name in ("ix_durably_runs_idempotency", "ix_durably_runs_scope_created", "ix_durably_runs_scope_job_status"):
        _create_index(connection, _runs, name)


def _add_waits_and_labels(connection: Connection) -> None:
    """Let runs wait and be found: run priority, `ready_at` (a pending run waits until then;
    existing runs are ready since their creation), `waiting_for`, `labels`, `replay_of`, their
    indexes, and the `durably_waits`, `durably_schedules`, `durably_labels` and `durably_attempts` tables."""
    for name in ("priority", "ready_at", "waiting_for", "labels", "replay_of"):
        _add_column(connection, _runs, name)
    connection.execute(_runs.update().values(ready_at=_runs.c.created_at))
    for index in ("ix_durably_runs_ready", "ix_durably_runs_replay_of"):
        _create_index(connection, _runs, index)
    for table in (_waits, _schedules, _labels, _attempts):
        table.create(connection, checkfirst=True)


def _index_only_the_runs_asked_for(connection: Connection) -> None:
    """Make the indexes whose entries every status change rewrote partial: the claim order holds
    pending runs only, the concurrency key index only pending and running runs with a key, the
    idempotency and replay indexes only runs with a key or a replayed run."""
    _drop_index(connection, "ix_durably_runs_status_concurrency")
    for name in (
        "ix_durably_runs_ready",
        "ix_durably_runs_active_key",
        "ix_durably_runs_idempotency",
        "ix_durably_runs_replay_of",
    ):
        _drop_index(connection, name)  # an index of every run by that name, made by version 4
        _create_index(connection, _runs, name)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, _index_runs_by_job_and_status),
    Migration(3, _add_run_scopes),
    Migration(4, _add_waits_and_labels),
    Migration(5, _index_only_the_runs_asked_for),
)


def migrate(connection: Connection) -> list[int]:
    """Bring the schema to SCHEMA_VERSION inside the caller's transaction, which already holds the
    migration lock. Returns the versions applied (a new database: just SCHEMA_VERSION)."""
    current = _current_version(connection)
    if current is None:
        metadata.create_all(connection, checkfirst=True)
        _stamp(connection, SCHEMA_VERSION)
        return [SCHEMA_VERSION]
    if current > SCHEMA_VERSION:
        raise SchemaVersionError(current, SCHEMA_VERSION)
    applied = []
    for migration in MIGRATIONS:
        if migration.version > current:
            migration.apply(connection)
            _stamp(connection, migration.version)
            applied.append(migration.version)
    return applied


def _current_version(connection: Connection) -> int | None:
    """The newest version applied, or None for a database without our tables."""
    if not inspect(connection).has_table(_versions.name):
        return None
    version: int | None = connection.execute(select(_versions.c.version).order_by(_versions.c.version.desc())).scalar()
    return version


def _stamp(connection: Connection, version: int) -> None:
    connection.execute(_versions.insert().values(version=version, applied_at=now_ms()))
