"""Versioned schema migrations, on both backends: a database made by every earlier release (its DDL
from git history, tests/schema_history.py), with rows in it, migrates to exactly the schema a new
database gets, keeps its rows, and records each version applied; several engines migrating at once
apply each step once; a database newer than the code is refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from durably_reflex import RunStatus, SchemaVersionError, create_durably, define_job
from durably_reflex._storage.migrations import MIGRATIONS
from durably_reflex._storage.tables import SCHEMA_VERSION
from durably_reflex.server import create_durably_handler
from tests.conftest import FAST
from tests.engine_helpers import query_db
from tests.pg_cluster import PgCluster
from tests.schema_history import ddl

EARLIER_VERSIONS = range(1, SCHEMA_VERSION)
T0 = 1_700_000_000_000  # epoch ms of the rows written by "the old release"


def _sa_url(db_url: str) -> str:
    return db_url.replace("postgresql://", "postgresql+psycopg://", 1)


def make_database(db_url: str, version: int) -> None:
    """An empty database as the release at `version` left it, stamped with that version."""
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    engine = create_engine(_sa_url(db_url))
    with engine.begin() as connection:
        for statement in ddl(version, backend):
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(
            f"INSERT INTO durably_schema_versions (version, applied_at) VALUES ({version}, {T0})"
        )
    engine.dispose()


def put_old_rows(db_url: str) -> None:
    """A completed run with a step and a log line, and a pending run with an idempotency key."""
    insert_run = (
        "INSERT INTO durably_runs (id, job_name, input, status, idempotency_key, concurrency_key, progress,"
        " output, attempt, started_at, completed_at, heartbeat_at, created_at, updated_at)"
        " VALUES (?, 'old-job', ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)"
    )
    query_db(
        db_url, insert_run, "done", '{"n":1}', "completed", None, None, '{"ok":true}', 1, T0, T0 + 5, T0, T0, T0 + 5
    )
    query_db(
        db_url, insert_run, "waiting", '{"n":2}', "pending", "key-1", "conc-1", None, 0, None, None, T0, T0 + 1, T0 + 1
    )
    query_db(
        db_url,
        "INSERT INTO durably_steps (id, run_id, name, step_index, status, output, started_at, completed_at)"
        " VALUES ('s1', 'done', 'first', 0, 'completed', '42', ?, ?)",
        T0,
        T0 + 2,
    )
    query_db(
        db_url,
        "INSERT INTO durably_logs (id, run_id, step_name, level, message, data, created_at)"
        " VALUES ('l1', 'done', 'first', 'info', 'hello', NULL, ?)",
        T0 + 3,
    )


def schema_of(db_url: str) -> dict[str, Any]:
    """What SQLAlchemy's inspector sees: each table's columns (in order, with type, nullability and
    default), indexes (with a partial index's condition) and primary key."""
    engine = create_engine(_sa_url(db_url))
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            return {
                table: {
                    "columns": [
                        (column["name"], str(column["type"]), column["nullable"], column.get("default"))
                        for column in inspector.get_columns(table)
                    ],
                    "indexes": sorted(
                        (index["name"], tuple(index["column_names"]), bool(index["unique"]), _condition(index))
                        for index in inspector.get_indexes(table)
                    ),
                    "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                }
                for table in sorted(inspector.get_table_names())
            }
    finally:
        engine.dispose()


def _condition(index: Any) -> str:
    """A partial index's condition, as the database keeps it ("" for a whole-table index)."""
    options = index.get("dialect_options", {})
    where = options.get("sqlite_where", options.get("postgresql_where"))
    return "" if where is None else str(getattr(where, "text", where))


def versions_recorded(db_url: str) -> list[int]:
    return [row[0] for row in query_db(db_url, "SELECT version FROM durably_schema_versions ORDER BY version")]


async def migrate(db_url: str) -> None:
    engine = create_durably(db_url, **FAST)
    try:
        await engine.migrate()
    finally:
        await engine.close()


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second, empty database on the same backend: what a new install gets, to compare with."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"fresh{os.getpid()}_{id(request)}"
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


def test_the_steps_are_numbered_from_2_to_the_schema_version_each_with_a_summary():
    assert [migration.version for migration in MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1))
    assert all(migration.summary for migration in MIGRATIONS)


@pytest.mark.parametrize("version", EARLIER_VERSIONS)
async def test_a_database_at_an_earlier_version_migrates_to_the_schema_of_a_new_one(db_url, fresh_url, version):
    make_database(db_url, version)
    put_old_rows(db_url)

    await migrate(db_url)
    await migrate(fresh_url)

    assert schema_of(db_url) == schema_of(fresh_url)
    assert versions_recorded(db_url) == list(range(version, SCHEMA_VERSION + 1))
    assert versions_recorded(fresh_url) == [SCHEMA_VERSION]


@pytest.mark.parametrize("version", EARLIER_VERSIONS)
async def test_rows_written_at_an_earlier_version_survive_the_migration(db_url, version):
    make_database(db_url, version)
    put_old_rows(db_url)
    durably = create_durably(db_url, **FAST)
    durably.register(old=define_job(name="old-job", run=_return_input))
    try:
        await durably.migrate()

        done = await durably.get_run("done")
        assert done is not None and done.status is RunStatus.COMPLETED
        assert (done.input, done.output, done.step_count) == ({"n": 1}, {"ok": True}, 1)
        assert [(step.name, step.output) for step in await durably.get_steps("done")] == [("first", 42)]
        assert [log.message for log in await durably.get_logs("done")] == ["hello"]
        # The old run's idempotency key still names it (it has no tenant: scope "").
        again = await durably.trigger("old-job", {"n": 3}, idempotency_key="key-1")
        assert again.id == "waiting"
        assert [run.id for run in await durably.get_runs()] == ["waiting", "done"]
    finally:
        await durably.close()


async def test_a_pending_run_of_an_earlier_version_runs_after_the_migration(db_url):
    make_database(db_url, 1)
    put_old_rows(db_url)
    durably = create_durably(db_url, **FAST)
    durably.register(old=define_job(name="old-job", run=_return_input))
    try:
        await durably.start()
        result = await durably.wait_for_run("waiting", timeout=10)
        assert result.output == {"n": 2}
    finally:
        await durably.close()


async def test_engines_migrating_an_old_database_at_once_apply_each_step_once(db_url, fresh_url):
    make_database(db_url, 1)
    put_old_rows(db_url)

    await asyncio.wait_for(asyncio.gather(*(migrate(db_url) for _ in range(4))), 60)

    assert versions_recorded(db_url) == list(range(1, SCHEMA_VERSION + 1))
    await migrate(fresh_url)
    assert schema_of(db_url) == schema_of(fresh_url)


async def test_a_database_newer_than_the_code_is_refused_and_left_alone(db_url):
    await migrate(db_url)
    newer = SCHEMA_VERSION + 1
    query_db(db_url, "INSERT INTO durably_schema_versions (version, applied_at) VALUES (?, ?)", newer, T0)
    before = schema_of(db_url)

    durably = create_durably(db_url, **FAST)
    try:
        with pytest.raises(SchemaVersionError, match=f"version {newer}, newer than .*version {SCHEMA_VERSION}"):
            await durably.migrate()
    finally:
        await durably.close()
    assert schema_of(db_url) == before
    assert versions_recorded(db_url) == [SCHEMA_VERSION, newer]


async def test_the_api_on_a_database_newer_than_the_code_answers_503_schema_too_new(db_url):
    """An old server left running after a newer one migrated the database: not the caller's mistake
    (no 4xx), and it says what to do."""
    await migrate(db_url)
    query_db(db_url, "INSERT INTO durably_schema_versions (version, applied_at) VALUES (?, ?)", SCHEMA_VERSION + 1, T0)
    durably = create_durably(db_url, **FAST)
    transport = httpx.ASGITransport(app=create_durably_handler(durably))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/api/durably/runs")
    finally:
        await durably.close()
    assert response.status_code == 503
    assert response.json()["code"] == "SCHEMA_TOO_NEW" and "upgrade durably-reflex" in response.json()["error"]
    assert response.headers["retry-after"].isdigit()


async def _return_input(step: Any, input: Any) -> Any:
    return input
