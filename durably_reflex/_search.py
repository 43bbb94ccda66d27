"""Finding runs: the filters `get_runs` and the bulk actions take, checked and turned into a query.

Labels are `{key: value}` strings given at trigger time and matched exactly (every label asked for
must match). A run id prefix, the job, statuses and a created-at range go through indexes; a field
of the input (`input_fields={"email": "ada@example.com"}`, a dotted path for nested fields) is
compared as text ("42" matches 42, "true" matches true) on the runs the other filters leave, so
pair it with a job or a time range on large databases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ._errors import InvalidArgumentError
from ._records import RunStatus
from ._storage.base import RunQuery

MAX_LABELS = 20
MAX_LABEL_LENGTH = 255
LABEL_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,99}")
FIELD_PATH = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+){0,9}")


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Labels as stored: at most `MAX_LABELS`, keys of letters, digits and `_ . - /`, string values."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidArgumentError("labels must be a mapping of strings to strings")
    if len(labels) > MAX_LABELS:
        raise InvalidArgumentError(f"at most {MAX_LABELS} labels per run")
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise InvalidArgumentError(
                f"label key {key!r}: letters, digits and _ . - / (starting with a letter, digit or _), at most 100"
            )
        if not isinstance(value, str) or len(value) > MAX_LABEL_LENGTH or "\x00" in value:
            raise InvalidArgumentError(
                f"label {key!r}: the value must be a string of at most {MAX_LABEL_LENGTH} characters"
            )
    return dict(labels)


def run_query(
    *,
    job_names: tuple[str, ...],
    statuses: tuple[str, ...],
    limit: int | None,
    offset: int,
    scope: str | None,
    labels: Mapping[str, str] | None = None,
    id_prefix: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    input_fields: Mapping[str, Any] | None = None,
    replay_of: str | None = None,
) -> RunQuery:
    for value in statuses:
        if value not in RunStatus.__members__.values():
            allowed = ", ".join(s.value for s in RunStatus)
            raise InvalidArgumentError(f"Unknown status {value!r}: expected one of {allowed}")
    for name, number in (("limit", limit), ("offset", offset)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 0):
            raise InvalidArgumentError(f"{name} must be a whole number of at least 0, got {number!r}")
    if id_prefix is not None and (not isinstance(id_prefix, str) or not id_prefix or len(id_prefix) > 64):
        raise InvalidArgumentError("id_prefix must be a non-empty string of at most 64 characters")
    fields = []
    for path, value in (input_fields or {}).items():
        if not isinstance(path, str) or not FIELD_PATH.fullmatch(path):
            raise InvalidArgumentError(f"input field {path!r}: names of letters, digits, _ and -, joined by dots")
        fields.append((path, _as_text(value)))
    return RunQuery(
        job_names=job_names,
        statuses=statuses,
        limit=limit,
        offset=offset,
        scope=scope,
        labels=tuple(sorted(check_labels(labels).items())),
        id_prefix=id_prefix,
        created_after=_ms("created_after", created_after),
        created_before=_ms("created_before", created_before),
        input_fields=tuple(fields),
        replay_of=replay_of,
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidArgumentError(f"an input field is matched against a string, number or boolean, got {value!r}")


def _ms(name: str, moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidArgumentError(f"{name} must be a timezone-aware datetime")
    return round(moment.timestamp() * 1000)


def as_tuple(name: str, value: str | Sequence[str] | None) -> tuple[str, ...]:
    """One value or several, as a tuple of non-empty strings."""
    if value is None:
        return ()
    values = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(item, str) and item for item in values):
        raise InvalidArgumentError(f"{name} must be a non-empty string or a list of them")
    return values
