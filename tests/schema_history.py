"""The schema as earlier releases made it, for tests/test_migrations.py: the DDL each version's
`tables.py` emitted (`CreateTable`/`CreateIndex` compiled for each database), copied verbatim from
git history so that later changes to `tables.py` cannot change what "version 1" means here.

- Version 1 (a9811ba, durably_reflex/storage/tables.py): the tables with their first indexes.
- Version 2 (23171d6): version 1 and ix_durably_runs_job_status.
- Version 3 (6084749): version 2 and runs.scope, with the idempotency index per scope and two
  indexes for a tenant's runs (the same DDL on both databases).
- Version 4 (592bbe5, unchanged to de42940): version 3 and runs' priority, ready_at, waiting_for,
  labels and replay_of, the claim order and replay indexes, and the tables of waits, schedules,
  labels and attempts (the same DDL on both databases).
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
""",
}

VERSION_2_ADDS = "CREATE INDEX ix_durably_runs_job_status ON durably_runs (job_name, status);"


VERSION_3_CHANGES = (
    "ALTER TABLE durably_runs ADD COLUMN scope VARCHAR DEFAULT '' NOT NULL",
    "DROP INDEX ix_durably_runs_job_idempotency",
    "CREATE UNIQUE INDEX ix_durably_runs_idempotency ON durably_runs (scope, job_name, idempotency_key)",
    "CREATE INDEX ix_durably_runs_scope_created ON durably_runs (scope, created_at, id)",
    "CREATE INDEX ix_durably_runs_scope_job_status ON durably_runs (scope, job_name, status)",
)


VERSION_4_CHANGES = (
    "ALTER TABLE durably_runs ADD COLUMN priority INTEGER DEFAULT '0' NOT NULL",
    "ALTER TABLE durably_runs ADD COLUMN ready_at BIGINT DEFAULT '0' NOT NULL",
    "ALTER TABLE durably_runs ADD COLUMN waiting_for TEXT",
    "ALTER TABLE durably_runs ADD COLUMN labels TEXT",
    "ALTER TABLE durably_runs ADD COLUMN replay_of VARCHAR",
    "CREATE INDEX ix_durably_runs_ready ON durably_runs (status, priority DESC, ready_at, id)",
    "CREATE INDEX ix_durably_runs_replay_of ON durably_runs (replay_of)",
    """CREATE TABLE durably_waits (
    run_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    until BIGINT,
    payload TEXT,
    received_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
)""",
    """CREATE TABLE durably_schedules (
    name VARCHAR NOT NULL,
    job_name VARCHAR NOT NULL,
    cron VARCHAR NOT NULL,
    timezone VARCHAR NOT NULL,
    input TEXT NOT NULL,
    catch_up VARCHAR NOT NULL,
    next_fire_at BIGINT,
    last_fired_at BIGINT,
    last_run_id VARCHAR,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (name)
)""",
    "CREATE INDEX ix_durably_schedules_next_fire ON durably_schedules (next_fire_at)",
    """CREATE TABLE durably_labels (
    run_id VARCHAR NOT NULL,
    "key" VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    PRIMARY KEY (run_id, "key")
)""",
    'CREATE INDEX ix_durably_labels_key_value ON durably_labels ("key", value, run_id)',
    """CREATE TABLE durably_attempts (
    run_id VARCHAR NOT NULL,
    number INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    error TEXT,
    error_stack TEXT,
    started_at BIGINT,
    completed_at BIGINT,
    PRIMARY KEY (run_id, number)
)""",
)


def ddl(version: int, backend: str) -> list[str]:
    """The statements that make an empty database at `version` (1 to 4) on `backend`."""
    statements = [part.strip() for part in VERSION_1[backend].split(";") if part.strip()]
    if version >= 2:
        statements.append(VERSION_2_ADDS.rstrip(";"))
    if version >= 3:
        statements.extend(VERSION_3_CHANGES)
    if version >= 4:
        statements.extend(VERSION_4_CHANGES)
    return statements
