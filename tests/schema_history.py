"""The schema as earlier releases made it, for tests/test_migrations.py: the DDL each version's
`tables.py` emitted (`CreateTable`/`CreateIndex` compiled for each database), copied verbatim from
git history so that later changes to `tables.py` cannot change what "version 1" means here.

- Version 1 (a9811ba, durably_reflex/storage/tables.py): the tables with their first indexes.
- Version 2 (23171d6): version 1 and ix_durably_runs_job_status.
- Version 3 (6084749): version 2 and runs.scope, with the idempotency index per scope and two
  indexes for a tenant's runs (the same DDL on both databases).
"""

from __future__ import annotations

VERSION_1: dict[str, str] = {
    "sqlite": """
CREATE TABLE durably_events (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    run_id VARCHAR NOT NULL,
    job_name VARCHAR,
    type VARCHAR NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE durably_logs (
    id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    step_name VARCHAR,
    level VARCHAR NOT NULL,
    message TEXT NOT NULL,
    data TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_durably_logs_run_id ON durably_logs (run_id, id);
CREATE TABLE durably_runs (
    id VARCHAR NOT NULL,
    job_name VARCHAR NOT NULL,
    input TEXT NOT NULL,
    status VARCHAR NOT NULL,
    idempotency_key VARCHAR,
    concurrency_key VARCHAR,
    progress TEXT,
    output TEXT,
    error TEXT,
    error_stack TEXT,
    attempt INTEGER NOT NULL,
    owner VARCHAR,
    started_at BIGINT,
    completed_at BIGINT,
    heartbeat_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_durably_runs_created ON durably_runs (created_at, id);
CREATE INDEX ix_durably_runs_job_created ON durably_runs (job_name, created_at);
CREATE UNIQUE INDEX ix_durably_runs_job_idempotency ON durably_runs (job_name, idempotency_key);
CREATE INDEX ix_durably_runs_status_concurrency ON durably_runs (status, concurrency_key);
CREATE INDEX ix_durably_runs_status_created ON durably_runs (status, created_at, id);
CREATE TABLE durably_schema_versions (
    version INTEGER NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (version)
);
CREATE TABLE durably_steps (
    seq INTEGER NOT NULL,
    id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    step_index INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    output TEXT,
    error TEXT,
    error_stack TEXT,
    started_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (seq)
);
CREATE INDEX ix_durably_steps_run_index ON durably_steps (run_id, step_index);
CREATE TABLE durably_watch (
    id INTEGER NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (id)
);
""",
    "postgresql": """
CREATE TABLE durably_events (
    id BIGSERIAL NOT NULL,
    run_id VARCHAR NOT NULL,
    job_name VARCHAR,
    type VARCHAR NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE durably_logs (
    id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    step_name VARCHAR,
    level VARCHAR NOT NULL,
    message TEXT NOT NULL,
    data TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_durably_logs_run_id ON durably_logs (run_id, id);
CREATE TABLE durably_runs (
    id VARCHAR NOT NULL,
    job_name VARCHAR NOT NULL,
    input TEXT NOT NULL,
    status VARCHAR NOT NULL,
    idempotency_key VARCHAR,
    concurrency_key VARCHAR,
    progress TEXT,
    output TEXT,
    error TEXT,
    error_stack TEXT,
    attempt INTEGER NOT NULL,
    owner VARCHAR,
    started_at BIGINT,
    completed_at BIGINT,
    heartbeat_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_durably_runs_created ON durably_runs (created_at, id);
CREATE INDEX ix_durably_runs_job_created ON durably_runs (job_name, created_at);
CREATE UNIQUE INDEX ix_durably_runs_job_idempotency ON durably_runs (job_name, idempotency_key);
CREATE INDEX ix_durably_runs_status_concurrency ON durably_runs (status, concurrency_key);
CREATE INDEX ix_durably_runs_status_created ON durably_runs (status, created_at, id);
CREATE TABLE durably_schema_versions (
    version SERIAL NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (version)
);
CREATE TABLE durably_steps (
    seq BIGSERIAL NOT NULL,
    id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    step_index INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    output TEXT,
    error TEXT,
    error_stack TEXT,
    started_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (seq)
);
CREATE INDEX ix_durably_steps_run_index ON durably_steps (run_id, step_index);
CREATE TABLE durably_watch (
    id INTEGER NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (id)
);
""",}

VERSION_2_ADDS = "CREATE INDEX ix_durably_runs_job_status ON durably_runs (job_name, status);"


VERSION_3_CHANGES = (
    "ALTER TABLE durably_runs ADD COLUMN scope VARCHAR DEFAULT '' NOT NULL",
    "DROP INDEX ix_durably_runs_job_idempotency",
    "CREATE UNIQUE INDEX ix_durably_runs_idempotency ON durably_runs (scope, job_name, idempotency_key)",
    "CREATE INDEX ix_durably_runs_scope_created ON durably_runs (scope, created_at, id)",
    "CREATE INDEX ix_durably_runs_scope_job_status ON durably_runs (scope, job_name, status)",
)


def ddl(version: int, backend: str) -> list[str]:
    """The statements that make an empty database at `version` (1 to 3) on `backend`."""
    statements = [part.strip() for part in VERSION_1[backend].split(";") if part.strip()]
    if version >= 2:
        statements.append(VERSION_2_ADDS.rstrip(";"))
    if version >= 3:
        statements.extend(VERSION_3_CHANGES)
    return statements
