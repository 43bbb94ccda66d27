"""Which runs a request means: the filter of `GET /runs` (and the labels of `/runs/subscribe`),
read from a query string, and the `filter` object of a bulk action, read from its JSON body.

    GET /runs?jobName=signup&status=failed&label.customer=acme&input.email=ada@example.com
    POST /bulk/retry  {"filter": {"jobName": "signup", "status": "failed", "labels": {"customer": "acme"}}}

Both carry the same fields: `jobName` and `status` (one or several), labels (`label.<key>=<value>`;
`labels` in JSON: every one must match), `idPrefix`, `createdAfter` (inclusive) and `createdBefore`
(exclusive) as ISO 8601 with an offset, fields of the input (`input.<dotted.path>=<value>`; `input`
in JSON, compared as text) and `replayOf`. They are checked here under the names the caller wrote,
then by the engine's own rules (`_search.run_query`), so nothing the engine would refuse is accepted
first. A JSON filter names only these fields: a misspelt one ("lables") is refused, never read as
"every run", since a bulk action acts on what its filter matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from . import _params
from ._errors import InvalidArgumentError
from ._records import RunStatus
from ._search import FIELD_PATH, LABEL_KEY, MAX_LABELS, run_query

LABEL_PREFIX = "label."  # `label.customer=acme`
INPUT_PREFIX = "input."  # `input.user.email=ada@example.com`
MAX_INPUT_FILTERS = 10  # each is a comparison on every run the other filters leave: keep them few
MAX_ID_PREFIX = 64
# The JSON pattern of what may follow each prefix (the OpenAPI document declares them with it).
LABEL_KEY_PATTERN = LABEL_KEY.pattern
FIELD_PATH_PATTERN = FIELD_PATH.pattern
LABEL_RULE = "a label key is letters, digits and _ . - / (starting with a letter, digit or _), at most 100"
FIELD_RULE = "a field path is names of letters, digits, _ and -, joined by dots (at most 10)"
JSON_FIELDS = ("jobName", "status", "labels", "idPrefix", "createdAfter", "createdBefore", "input", "replayOf")


class MultiParams(Protocol):
    def getlist(self, key: str) -> list[str]: ...

    def multi_items(self) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class RunFilter:
    job_names: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    id_prefix: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    input_fields: Mapping[str, Any] = field(default_factory=dict)
    replay_of: str | None = None

    def __post_init__(self) -> None:
        """The engine's checks, now: an action must not start on a filter it would refuse later."""
        for status in self.statuses:
            if status not in RunStatus.__members__.values():
                raise InvalidArgumentError(f"Unknown status {status!r}: expected one of {', '.join(RunStatus)}")
        run_query(job_names=self.job_names, statuses=self.statuses, limit=None, offset=0, scope=None, **self._search())

    def _search(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels) or None,
            "id_prefix": self.id_prefix,
            "created_after": self.created_after,
            "created_before": self.created_before,
            "input_fields": dict(self.input_fields) or None,
            "replay_of": self.replay_of,
        }

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Durably.get_runs` and of the bulk actions."""
        return {"job_name": list(self.job_names) or None, "status": list(self.statuses) or None, **self._search()}

    def within_jobs(self, visible: set[str] | None) -> RunFilter | None:
        """This filter kept to the jobs a caller may see (None: every job); None when it can match
        no run the caller may see."""
        if visible is None:
            return self
        names = tuple(name for name in self.job_names if name in visible) if self.job_names else tuple(sorted(visible))
        return replace(self, job_names=names) if names else None

    # -- reading ----------------------------------------------------------------------------------
    @classmethod
    def from_query(cls, params: MultiParams) -> RunFilter:
        """`GET /runs`' parameters; empty values are absent, as for the other parameters."""
        return cls(
            job_names=tuple(_params.text_values("jobName", params.getlist("jobName"))),
            statuses=tuple(_params.text_values("status", params.getlist("status"))),
            labels=labels_from_query(params),
            id_prefix=_id_prefix(_single(params, "idPrefix")),
            created_after=_moment(params, "createdAfter"),
            created_before=_moment(params, "createdBefore"),
            input_fields=_prefixed(params, INPUT_PREFIX, FIELD_PATH, MAX_INPUT_FILTERS, FIELD_RULE),
            replay_of=_single(params, "replayOf"),
        )

    @classmethod
    def from_json(cls, value: Any, name: str = "filter") -> RunFilter:
        """A bulk action's `filter` object (`{}`: every run the caller may see)."""
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"{name} must be a JSON object of run filters")
        if unknown := sorted(set(value) - set(JSON_FIELDS)):
            raise InvalidArgumentError(f"{name} has no field {unknown[0]!r}: expected some of {', '.join(JSON_FIELDS)}")
        labels = _object(value, "labels", name)
        inputs = _object(value, "input", name)
        for key, text in labels.items():
            _label(f"{name}.labels.{key}", key, text)
        if len(labels) > MAX_LABELS:
            raise InvalidArgumentError(f"{name}.labels: at most {MAX_LABELS} labels")
        if len(inputs) > MAX_INPUT_FILTERS:
            raise InvalidArgumentError(f"{name}.input: at most {MAX_INPUT_FILTERS} fields")
        for path, item in inputs.items():
            if not FIELD_PATH.fullmatch(path):
                raise InvalidArgumentError(f"{name}.input.{path[:120]}: {FIELD_RULE}")
            if isinstance(item, str):
                _params.text(f"{name}.input.{path}", item)
            elif item is None or not isinstance(item, bool | int | float):
                raise InvalidArgumentError(f"{name}.input.{path} must be a string, number or boolean")
        return cls(
            job_names=_names(value, "jobName", name),
            statuses=_names(value, "status", name),
            labels=labels,
            id_prefix=_id_prefix(_params.body_text(value, "idPrefix")),
            created_after=_body_moment(value, "createdAfter", name),
            created_before=_body_moment(value, "createdBefore", name),
            input_fields=inputs,
            replay_of=_params.body_text(value, "replayOf") or None,
        )


def labels_from_query(params: MultiParams) -> dict[str, str]:
    """`label.<key>=<value>` parameters, each key at most once."""
    labels = _prefixed(params, LABEL_PREFIX, LABEL_KEY, MAX_LABELS, LABEL_RULE)
    for key, value in labels.items():
        _label(f"{LABEL_PREFIX}{key}", key, value)
    return labels


def _prefixed(params: MultiParams, prefix: str, key_rule: re.Pattern[str], most: int, rule: str) -> dict[str, str]:
    """The `<prefix><key>=<value>` parameters with a value, by key; each key at most once."""
    found: dict[str, str] = {}
    for name, value in params.multi_items():
        if not name.startswith(prefix) or not value:
            continue
        key = name[len(prefix) :]
        if not key_rule.fullmatch(key):
            raise InvalidArgumentError(f"{name[:120]}: {rule}")
        if len(given := params.getlist(name)) > 1:
            raise InvalidArgumentError(f"{name} is given {len(given)} times: give it once")
        found[key] = _params.text(name, value)
        if len(found) > most:
            raise InvalidArgumentError(f"at most {most} {prefix}<name> filters")
    return found


def _label(name: str, key: Any, value: Any) -> None:
    if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
        raise InvalidArgumentError(f"{name[:120]}: {LABEL_RULE}")
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string")
    _params.text(name, value)


def _single(params: MultiParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise InvalidArgumentError(f"{name} is given {len(values)} times: give it once")
    return _params.text(name, values[0]) if values and values[0] else None


def _moment(params: MultiParams, name: str) -> datetime | None:
    value = _single(params, name)
    return None if value is None else _params.moment(name, value)


def _body_moment(body: Mapping[str, Any], key: str, name: str) -> datetime | None:
    return None if body.get(key) is None else _params.moment(f"{name}.{key}", body[key])


def _id_prefix(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_ID_PREFIX:
        raise InvalidArgumentError(f"idPrefix is too long (at most {MAX_ID_PREFIX} characters)")
    return value or None


def _object(body: Mapping[str, Any], key: str, name: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{name}.{key} must be a JSON object")
    return value


def _names(body: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
    """One string or a list of them (at most `MAX_FILTER_VALUES`)."""
    value = body.get(key)
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) and item for item in values):
        raise InvalidArgumentError(f"{name}.{key} must be a non-empty string or a list of them")
    return tuple(_params.text_values(f"{name}.{key}", values))
