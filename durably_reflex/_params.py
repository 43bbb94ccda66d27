"""Strict reading of what a request names: integer query parameters, repeated filters and identifier
strings. Every bound is defined here once (the server reads with them, the OpenAPI document declares
them), so no value a database cannot store, compare or afford ever reaches one: a number past a
64-bit integer, a thousand UNION terms, a NUL byte PostgreSQL's text type refuses. What does not
pass is the caller's mistake: `InvalidArgumentError`, a 400 with the parameter's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ._engine import MAX_BUCKET_SECONDS, MAX_STATS_BUCKETS
from ._errors import InvalidArgumentError

MAX_ID_LENGTH = 255  # run ids, job names, idempotency and concurrency keys, log ids
MAX_PAGE = 1000  # runs per page
MAX_LOG_PAGE = 10 * MAX_PAGE
MAX_OFFSET = 1_000_000_000  # far beyond any page a person turns to; well inside every integer column
MAX_FILTER_VALUES = 100  # values of one repeated filter (jobName, status, type)
MAX_EVENT_ID = 2**63 - 1  # event ids are BIGINT
MAX_TIME_LENGTH = 64  # an ISO 8601 date and time with its offset takes 35 characters at most


class QueryParams(Protocol):
    def getlist(self, key: str) -> list[str]: ...


@dataclass(frozen=True)
class Bounded:
    """An integer query parameter: ASCII digits only (no sign, `_`, space or other script's digits),
    within `[minimum, maximum]`; absent means `default`, present but empty is a mistake."""

    name: str
    default: int
    minimum: int
    maximum: int

    def read(self, params: QueryParams) -> int:
        values = params.getlist(self.name)
        if not values:
            return self.default
        if len(values) > 1:
            raise InvalidArgumentError(f"{self.name} is given {len(values)} times: give it once")
        return self.parse(values[0])

    def parse(self, raw: str) -> int:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(self.maximum)):
            raise InvalidArgumentError(
                f"{self.name} must be a whole number from {self.minimum} to {self.maximum}, got {raw[:40]!r}"
            )
        value = int(raw)
        if not self.minimum <= value <= self.maximum:
            raise InvalidArgumentError(f"{self.name} must be from {self.minimum} to {self.maximum}, got {value}")
        return value

    def schema(self) -> dict[str, Any]:
        """The parameter's JSON Schema, for the OpenAPI document."""
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum, "default": self.default}


LIMIT = Bounded("limit", default=100, minimum=0, maximum=MAX_PAGE)
OFFSET = Bounded("offset", default=0, minimum=0, maximum=MAX_OFFSET)
LOG_LIMIT = Bounded("limit", default=MAX_PAGE, minimum=0, maximum=MAX_LOG_PAGE)
BUCKET_SECONDS = Bounded("bucketSeconds", default=3600, minimum=1, maximum=MAX_BUCKET_SECONDS)
BUCKETS = Bounded("buckets", default=24, minimum=1, maximum=MAX_STATS_BUCKETS)
LAST_EVENT_ID = Bounded("Last-Event-ID", default=0, minimum=0, maximum=MAX_EVENT_ID)


# `text`'s rule as JSON Schema, for the OpenAPI document (a lone surrogate cannot travel as UTF-8).
TEXT_SCHEMA: dict[str, Any] = {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": "^[^\\u0000]*$"}


def text(name: str, value: str) -> str:
    """`value` if every backend can store and compare it: at most `MAX_ID_LENGTH` characters, no NUL
    (PostgreSQL's text refuses it) and no lone surrogate (not encodable as UTF-8)."""
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(f"{name} is too long (at most {MAX_ID_LENGTH} characters)")
    if "\x00" in value:
        raise InvalidArgumentError(f"{name} must not contain a NUL character")
    if not _encodable(value):
        raise InvalidArgumentError(f"{name} must be valid Unicode text (it has a lone surrogate)")
    return value


def text_values(name: str, values: Iterable[str]) -> list[str]:
    """A repeated filter's distinct non-empty values, in order, each checked by `text`; at most
    `MAX_FILTER_VALUES` may be given (so a request's cost stays bounded)."""
    given = list(values)
    if len(given) > MAX_FILTER_VALUES:
        raise InvalidArgumentError(f"{name} is given {len(given)} values: at most {MAX_FILTER_VALUES}")
    return [text(name, value) for value in dict.fromkeys(given) if value]


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- fields of a JSON body -------------------------------------------------------------------------
def body_text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string field of a request body, checked by `text`; absent or null is None, unless the
    field is `required` (then it must be a non-empty string)."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidArgumentError(f"{name} is required")
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidArgumentError(f"{name} must be a {'non-empty ' if required else ''}string")
    return text(name, value)


@dataclass(frozen=True)
class RunTiming:
    """When a triggered run may start and how it ranks (`/trigger`'s `priority`, `delay`, `runAt`);
    the engine checks the ranges, so the API and in-process callers are held to the same ones."""

    priority: int = 0
    delay: float | None = None  # seconds from now
    run_at: datetime | None = None  # timezone-aware


def run_timing(body: Mapping[str, Any]) -> RunTiming:
    """`priority` (a whole number), `delay` (seconds) and `runAt` (an ISO 8601 date and time with
    its offset, `Z` for UTC) of a trigger body; absent or null ones take their defaults."""
    priority, delay, run_at = body.get("priority"), body.get("delay"), body.get("runAt")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise InvalidArgumentError("priority must be a whole number")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)):
        raise InvalidArgumentError("delay must be a number of seconds")
    return RunTiming(0 if priority is None else priority, delay, None if run_at is None else moment("runAt", run_at))


def moment(name: str, value: Any) -> datetime:
    """An ISO 8601 date and time with an offset (`2030-01-01T09:00:00Z`), as an aware datetime."""
    if not isinstance(value, str) or len(value) > MAX_TIME_LENGTH:
        raise InvalidArgumentError(f"{name} must be an ISO 8601 date and time such as 2030-01-01T09:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgumentError(
            f"{name} must be an ISO 8601 date and time such as 2030-01-01T09:00:00Z, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidArgumentError(f"{name} needs its offset from UTC (Z or +01:00, say), got {value!r}")
    return parsed
