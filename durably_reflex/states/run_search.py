"""The runs page's search box: a small query language read into the filters of `GET /runs`.
Pure functions, no Reflex.

    job:import-csv status:failed customer=acme input.email=ada@example.com since:1h 01JB2X

Terms are separated by spaces; a value with spaces is quoted (`subject="Autumn news"`, `\\"` inside).

- `job:<name>`: one job; `status:<status>`: one of pending, running, completed, failed, cancelled.
- `<key>=<value>`: a label (every label given must match); keys as the API takes them (letters,
  digits and `_ . - /`).
- `input.<path>=<value>`: a field of the run's input, a dotted path for nested fields, compared as
  text (`input.age=42`, `input.vip=true`).
- `since:<when>` and `until:<when>`: created at or after / before `<when>`, a time ago (`30s`, `15m`,
  `1h`, `7d`, `2w`) or a date or time (`2025-01-31`, `2025-01-31T09:00`, UTC unless it says
  otherwise: `2025-01-31T09:00+02:00`).
- `replay-of:<run id>`: the replays of a run.
- a bare word: the beginning of a run's id (ids are upper case; typed lower case, they are raised).

`parse_search(text)` returns the `RunSearch` and the errors, one per term that could not be read,
in the user's words; a page shows them and applies nothing until the text reads. A time ago stays
relative (`since:1h` is the last hour whenever the page fetches), `RunSearch.filters(now)` turns it
into the keyword arguments of `DurablyClient.get_runs` and of the bulk actions, and
`RunSearch.text()` writes the search back in its canonical form (the order above), which a URL keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from .._records import Run, RunStatus
from .._run_filter import FIELD_PATH, LABEL_KEY, MAX_ID_PREFIX, MAX_INPUT_FILTERS, MAX_LABELS

STATUSES = tuple(status.value for status in RunStatus)
MAX_VALUE = 255  # job names, label values, input values and run ids, as the API bounds them
INPUT_PREFIX = "input."
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGO = re.compile(r"(\d{1,6})([smhdw])")
_ID = re.compile(r"[0-9A-Za-z]+")
_SLACK = timedelta(seconds=1)  # times a server rounds (to the millisecond) are not a mismatch
_PLAIN = re.compile(r'[^\s"\\]+')  # a value written without quotes


# What a page says when the server's answer shows it ignored the search (`RunSearch.matches`).
IGNORED_BY_SERVER = (
    "This server does not search runs by labels, ids, creation times or replays (Durably's own server "
    "filters by job and status only)"
)


@dataclass(frozen=True)
class TimeBound:
    """A `since:` or `until:` value: a time ago (`ago`) or a moment (`at`), and how it was written."""

    text: str
    ago: timedelta | None = None
    at: datetime | None = None

    def moment(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now - (self.ago or timedelta())


@dataclass(frozen=True)
class RunSearch:
    """What the search box asks for (every part optional; all given must match)."""

    job_name: str | None = None
    status: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    input_fields: tuple[tuple[str, str], ...] = ()
    since: TimeBound | None = None
    until: TimeBound | None = None
    replay_of: str | None = None
    id_prefix: str | None = None

    @property
    def is_empty(self) -> bool:
        return self == RunSearch()

    @property
    def beyond_job_and_status(self) -> bool:
        """Whether it filters on more than the job and the status (what run counts can follow)."""
        return replace(self, job_name=None, status=None) != RunSearch()

    def filters(self, now: datetime | None = None) -> dict[str, Any]:
        """The keyword arguments of `get_runs` and the bulk actions (a time ago counted from `now`)."""
        now = now or datetime.now(UTC)
        found: dict[str, Any] = {
            "job_name": self.job_name,
            "status": self.status,
            "labels": dict(self.labels) or None,
            "input_fields": dict(self.input_fields) or None,
            "created_after": None if self.since is None else self.since.moment(now),
            "created_before": None if self.until is None else self.until.moment(now),
            "replay_of": self.replay_of,
            "id_prefix": self.id_prefix,
        }
        return {name: value for name, value in found.items() if value is not None}

    def text(self) -> str:
        """The search as a search box shows it: every term, in a fixed order, quoted where needed."""
        terms = []
        if self.job_name is not None:
            terms.append("job:" + quote(self.job_name))
        if self.status is not None:
            terms.append("status:" + self.status)
        terms += [f"{key}={quote(value)}" for key, value in self.labels]
        terms += [f"{INPUT_PREFIX}{path}={quote(value)}" for path, value in self.input_fields]
        if self.since is not None:
            terms.append("since:" + self.since.text)
        if self.until is not None:
            terms.append("until:" + self.until.text)
        if self.replay_of is not None:
            terms.append("replay-of:" + quote(self.replay_of))
        if self.id_prefix is not None:
            terms.append(self.id_prefix)
        return " ".join(terms)

    def matches(self, run: Run, now: datetime) -> bool:
        """Whether `run` meets the terms a reader can check here (all but the input fields, which the
        server compares by its own rules): the runs of a server that ignores them (Durably's Node
        server) give it away."""
        filters = self.filters(now)
        after, before = filters.get("created_after"), filters.get("created_before")
        return (
            all(run.labels.get(key) == value for key, value in self.labels)
            and (self.id_prefix is None or run.id.upper().startswith(self.id_prefix))
            and (self.replay_of is None or run.replay_of == self.replay_of)
            and (after is None or run.created_at > after - _SLACK)
            and (before is None or run.created_at < before + _SLACK)
        )

    def with_label(self, key: str, value: str) -> RunSearch:
        """This search, with the label `key` matched against `value` (replacing its value, if any)."""
        labels = (*((k, v) for k, v in self.labels if k != key), (key, value))
        return replace(self, labels=labels)


@dataclass
class ParsedSearch:
    search: RunSearch
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_search(text: str, *, now: datetime | None = None) -> ParsedSearch:
    """Read a search box's text (see the module's docstring); `now` checks that `since` comes
    before `until`."""
    errors: list[str] = []
    parts: dict[str, Any] = {"labels": {}, "input_fields": {}}
    try:
        terms = list(_terms(text))
    except ValueError as error:
        return ParsedSearch(RunSearch(), [str(error)])
    for raw, key, separator, value in terms:
        problem = _read_term(parts, raw, key, separator, value)
        if problem:
            errors.append(problem)
    if len(parts["labels"]) > MAX_LABELS:
        errors.append(f"At most {MAX_LABELS} labels in a search.")
    if len(parts["input_fields"]) > MAX_INPUT_FILTERS:
        errors.append(f"At most {MAX_INPUT_FILTERS} input fields in a search.")
    search = RunSearch(
        job_name=parts.get("job_name"),
        status=parts.get("status"),
        labels=tuple(parts["labels"].items()),
        input_fields=tuple(parts["input_fields"].items()),
        since=parts.get("since"),
        until=parts.get("until"),
        replay_of=parts.get("replay_of"),
        id_prefix=parts.get("id_prefix"),
    )
    if search.since is not None and search.until is not None:
        moment = now or datetime.now(UTC)
        if search.since.moment(moment) >= search.until.moment(moment):
            errors.append(
                f"since:{search.since.text} is not before until:{search.until.text}: no run was created then."
            )
    return ParsedSearch(search if not errors else RunSearch(), errors)


def quote(value: str) -> str:
    """A value as a term writes it: bare when it can be, else in double quotes."""
    if value and _PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- reading ------------------------------------------------------------------------------------------------
_QUALIFIERS = ("job", "status", "since", "until", "replay-of")


def _read_term(parts: dict[str, Any], raw: str, key: str, separator: str, value: str) -> str:
    """Put one term into `parts`; its error ("" when it reads)."""
    if separator == "":
        return _read_id_prefix(parts, raw, key)
    if separator == ":":
        if key not in _QUALIFIERS:
            return f'"{raw}": unknown filter "{key}:" (use job:, status:, since:, until:, replay-of:, or key=value for a label).'
        return _read_qualifier(parts, raw, key, value)
    if key.startswith(INPUT_PREFIX):
        path = key[len(INPUT_PREFIX) :]
        if not FIELD_PATH.fullmatch(path):
            return f'"{raw}": an input field is names of letters, digits, _ and - joined by dots (input.user.email).'
        if len(value) > MAX_VALUE:
            return f'"{key}": the value is longer than {MAX_VALUE} characters.'
        return _put_once(parts["input_fields"], path, value, raw)
    if not LABEL_KEY.fullmatch(key):
        return f'"{raw}": a label key is letters, digits and _ . - / (starting with a letter, digit or _).'
    if len(value) > MAX_VALUE or "\x00" in value:
        return f'"{key}": a label value is at most {MAX_VALUE} characters.'
    return _put_once(parts["labels"], key, value, raw)


def _read_qualifier(parts: dict[str, Any], raw: str, key: str, value: str) -> str:
    name = {"job": "job_name", "replay-of": "replay_of"}.get(key, key)
    if name in parts:
        return f'"{raw}": one {key}: at a time.'
    if not value:
        return f'"{raw}": {key}: needs a value.'
    if key == "status":
        if value.lower() not in STATUSES:
            return f'"{raw}": a status is one of {", ".join(STATUSES)}.'
        value = value.lower()
    elif key in ("since", "until"):
        bound = _time_bound(value)
        if bound is None:
            return (
                f'"{raw}": {key}: takes a time ago (15m, 1h, 7d, 2w) or a date or time (2025-01-31, 2025-01-31T09:00).'
            )
        parts[name] = bound
        return ""
    elif len(value) > MAX_VALUE or "\x00" in value:
        return f'"{raw}": at most {MAX_VALUE} characters.'
    parts[name] = value
    return ""


def _read_id_prefix(parts: dict[str, Any], raw: str, word: str) -> str:
    if "id_prefix" in parts:
        return f'"{raw}": one run id at a time (a word alone is the beginning of a run id; a label is key=value).'
    if not _ID.fullmatch(word) or len(word) > MAX_ID_PREFIX:
        return f'"{raw}": a word alone is the beginning of a run id (letters and digits); a label is key=value.'
    parts["id_prefix"] = word.upper()
    return ""


def _put_once(found: dict[str, str], key: str, value: str, raw: str) -> str:
    if key in found:
        return f'"{raw}": "{key}" is given twice.'
    found[key] = value
    return ""


def _time_bound(text: str) -> TimeBound | None:
    ago = _AGO.fullmatch(text.lower())
    if ago is not None:
        amount, unit = int(ago.group(1)), ago.group(2)
        return TimeBound(text.lower(), ago=timedelta(**{_UNITS[unit]: amount}))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return TimeBound(text, at=moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def _terms(text: str) -> Iterator[tuple[str, str, str, str]]:
    """(raw term, key, separator, value) per term: the separator is the first ":" or "=" outside
    quotes ("" for a bare word, whose text is then the key); quotes are taken off."""
    position, length = 0, len(text)
    while position < length:
        if text[position].isspace():
            position += 1
            continue
        start, separator, in_quotes = position, "", False
        key: list[str] = []
        value: list[str] = []
        while position < length and (in_quotes or not text[position].isspace()):
            char = text[position]
            position += 1
            if char == '"':
                in_quotes = not in_quotes
                continue
            if char == "\\" and in_quotes and position < length:
                char = text[position]
                position += 1
            elif not in_quotes and not separator and char in ":=":
                separator = char
                continue
            (value if separator else key).append(char)
        raw = text[start:position]
        if in_quotes:
            raise ValueError(f"{raw}: a quote is not closed.")
        yield raw, "".join(key), separator, "".join(value)


def label_query(key: str, value: str) -> str:
    """The runs page's URL query that searches for the runs labelled `key`=`value`."""
    return urlencode({"q": f"{key}={quote(value)}"})
