"""The cold paths' SQL, in SQLAlchemy Core: listings, counts, searches, actions on runs, schedules.

Imported on first use by the storage's cold verbs (see `sql.py`): a worker that only claims, runs
and settles never loads SQLAlchemy. Statements are built per call from the tables of `tables.py`
and run on the session's SQLAlchemy connection (`SqlSession.sa`), inside the transaction the group
commit opened.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import Any

import pydantic_core
from sqlalchemy import JSON, ColumnElement, Select, Text, bindparam, case, cast, delete, func, select, true, update

from .base import RunQuery
from .sql import STORED_RUN_COLUMNS, SqlSession
from .tables import attempts as attempt_table
from .tables import labels as label_table
from .tables import logs as log_table
from .tables import runs as run_table
from .tables import schedules as schedule_table
from .tables import steps as step_table
from .tables import waits as wait_table

_completed_steps_of_run = (step_table.c.run_id == run_table.c.id) & (step_table.c.status == "completed")
run_columns = [
    *(run_table.c[name] for name in STORED_RUN_COLUMNS),
    select(func.count()).where(_completed_steps_of_run).scalar_subquery().label("step_count"),
    select(func.coalesce(func.max(step_table.c.step_index) + 1, 0))
    .where(_completed_steps_of_run)
    .scalar_subquery()
    .label("current_step_index"),
]

NEWEST_FIRST = (run_table.c.created_at.desc(), run_table.c.id.desc())
LABEL_LEADS_BELOW = 5_000  # runs: a label on fewer leads a search (see `rarest_label_first`)


def merged_page(query: RunQuery, limit: int, dialect: str, *, lead: bool = True) -> Select[Any]:
    """The ids of one page of runs of several jobs (or statuses), newest first: the newest
    `offset + limit` of each from its own index range, merged and cut. Filtering on them all at
    once makes the database sort every run they have (0.3 s at 100,000 runs, against 1 ms).

    The values travel as one JSON array parameter, joined as a table (`json_each` on SQLite,
    `json_array_elements_text` on PostgreSQL) to a correlated "newest of this value" subquery: the
    statement is the same whatever the number of values, so building, planning and running it cost
    one index range per value, not a UNION term each (500 terms broke SQLite; 2,000 took PostgreSQL
    12 s to plan)."""
    others: list[ColumnElement[bool]]
    if len(set(query.job_names)) > 1:
        name, values = "job_name", query.job_names
        others = [run_table.c.status.in_(query.statuses)] if query.statuses else []
    else:
        name, values = "status", query.statuses
        others = [run_table.c.job_name.in_(query.job_names)] if query.job_names else []
    if query.scope is not None:
        others.append(run_table.c.scope == query.scope)
    others.extend(search(query, dialect, lead=lead))
    distinct = list(dict.fromkeys(values))
    if dialect == "postgresql":  # a LATERAL join: one index range per value (JSON's bind type encodes the list)
        each = func.json_array_elements_text(cast(distinct, JSON)).table_valued("value").render_derived()
        newest = (
            select(run_table.c.id, run_table.c.created_at)
            .where(run_table.c[name] == each.c.value, *others)
            .order_by(*NEWEST_FIRST)
            .limit(query.offset + limit)
            .lateral()
        )
        return (
            select(newest.c.id)
            .select_from(each)
            .join(newest, true())
            .order_by(newest.c.created_at.desc(), newest.c.id.desc())
            .limit(limit)
            .offset(query.offset)
        )
    # SQLite has no LATERAL; a correlated IN per value is its equivalent.
    each = func.json_each(json.dumps(distinct)).table_valued("value")
    newest_ids = (
        select(run_table.c.id)
        .where(run_table.c[name] == each.c.value, *others)
        .order_by(*NEWEST_FIRST)
        .limit(query.offset + limit)
        .correlate(each)
    )
    page = run_table.alias("page")
    return (
        select(page.c.id)
        .select_from(each)
        .join(page, page.c.id.in_(newest_ids))
        .order_by(page.c.created_at.desc(), page.c.id.desc())
        .limit(limit)
        .offset(query.offset)
    )


def rarest_label_first(session: SqlSession, query: RunQuery, dialect: str) -> tuple[RunQuery, bool]:
    """The query with its labels reordered, the rarest first, and whether that one should lead the
    search (SQLite only: its planner knows no label's frequency; PostgreSQL's has statistics per
    value and turns either form into the join it prefers, so its query is kept as it is).

    A label on few runs leads: its runs are read by (key, value) and the newest of them sorted
    (1M runs, `customer` on ~500 and `region` on 200,000: p95 12 ms in bench/search.py, against
    60 ms when every label was such a list). When every label is on at least `LABEL_LEADS_BELOW`
    runs, none leads: the newest runs are read in created-at order and each label checked per run,
    so a page of 50 reads about 50 x (runs / runs with the label) rows (`region=eu` alone: under
    1 ms, against 0.7 to 1.5 s sorting its 200,000 runs; a bulk action's page of 500 of 100,000
    labelled runs: 334 ms a batch became 92). Each label's count is capped at that limit, so asking costs an index range of at
    most `LABEL_LEADS_BELOW` entries per label."""
    if not query.labels or dialect != "sqlite":
        return query, True
    counted = select(label_table.c.run_id).where(
        label_table.c.key == bindparam("key"), label_table.c.value == bindparam("value")
    )
    capped = select(func.count()).select_from(counted.limit(LABEL_LEADS_BELOW).subquery())
    counts = {
        label: session.sa.execute(capped, {"key": label[0], "value": label[1]}).scalar_one() for label in query.labels
    }
    ordered = tuple(sorted(query.labels, key=counts.__getitem__))
    return replace(query, labels=ordered), counts[ordered[0]] < LABEL_LEADS_BELOW


def delete_runs(session: SqlSession, run_ids: list[str]) -> None:
    """Delete runs with everything of theirs."""
    for table in (log_table, step_table, wait_table, label_table, attempt_table):
        session.sa.execute(delete(table).where(table.c.run_id.in_(run_ids)))
    session.sa.execute(delete(run_table).where(run_table.c.id.in_(run_ids)))


def search(query: RunQuery, dialect: str, *, lead: bool = True) -> list[ColumnElement[bool]]:
    """The conditions of a search beyond job, status and scope. Labels go through `durably_labels`'
    indexes (see `rarest_label_first`: with `lead`, the first label's runs are the ones read, by
    (key, value); every other label is checked per run by (run_id, key)); ids through the primary
    key; created-at through the created index; an input field is read from each run's input JSON
    that the other conditions leave (a scan of those runs)."""
    conditions: list[ColumnElement[bool]] = []
    for number, (key, value) in enumerate(query.labels):
        if number == 0 and lead:
            runs_with_label = select(label_table.c.run_id).where(label_table.c.key == key, label_table.c.value == value)
            conditions.append(run_table.c.id.in_(runs_with_label))
        else:
            has_label = (label_table.c.run_id == run_table.c.id) & (label_table.c.key == key)
            conditions.append(select(1).where(has_label, label_table.c.value == value).exists())
    if query.id_prefix:
        conditions.append(run_table.c.id >= query.id_prefix)
        conditions.append(run_table.c.id < query.id_prefix + "\uffff")
    if query.created_after is not None:
        conditions.append(run_table.c.created_at >= query.created_after)
    if query.created_before is not None:
        conditions.append(run_table.c.created_at < query.created_before)
    for path, value in query.input_fields:
        conditions.append(_input_field_json(path, dialect).in_(_json_forms(value)))
    if query.replay_of is not None:
        conditions.append(run_table.c.replay_of == query.replay_of)
    if query.before is not None:
        created_at, run_id = query.before
        conditions.append(
            (run_table.c.created_at < created_at) | ((run_table.c.created_at == created_at) & (run_table.c.id < run_id))
        )
    return conditions


def _input_field_json(path: str, dialect: str) -> ColumnElement[Any]:
    """A field of the run's input (a dotted path) as JSON text, never decoded to SQL text: JSON text
    compares exactly, and decoding fails or cuts where a string holds a NUL character (PostgreSQL
    refuses "\\u0000" in text; SQLite's text functions stop at it). PostgreSQL's `json` keeps the
    stored text (pydantic-core's encoding) but cannot walk a document holding "\\u0000" at all: such
    runs are not found by an input search there. SQLite's `->` (3.38+) gives the stored JSON text."""
    parts = path.split(".")
    if dialect == "postgresql":
        walkable = func.strpos(run_table.c.input, "\\u0000") == 0
        field = cast(func.json_extract_path(cast(run_table.c.input, JSON), *parts), Text)
        return case((walkable, field), else_=None)
    json_path = "$." + ".".join(f'"{part}"' for part in parts)
    if sqlite3.sqlite_version_info >= (3, 38):
        return run_table.c.input.op("->")(json_path)
    kind = func.json_type(run_table.c.input, json_path)  # older SQLite: decoded, then quoted again
    return case(
        (kind == "true", "true"),
        (kind == "false", "false"),
        else_=func.json_quote(func.json_extract(run_table.c.input, json_path)),
    )


def _json_forms(value: str) -> list[str]:
    """The JSON texts a searched value matches: the string itself, and the number or boolean it
    spells ("42" also finds 42, "true" finds true)."""
    forms = [pydantic_core.to_json(value).decode()]
    try:
        literal = json.loads(value)
    except ValueError:
        return forms
    if isinstance(literal, bool | int | float) and value == json.dumps(literal):
        forms.append(value)
    return forms


__all__ = [
    "NEWEST_FIRST",
    "attempt_table",
    "delete",
    "delete_runs",
    "func",
    "label_table",
    "log_table",
    "merged_page",
    "rarest_label_first",
    "run_columns",
    "run_table",
    "schedule_table",
    "search",
    "select",
    "step_table",
    "update",
    "wait_table",
]
