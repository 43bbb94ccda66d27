"""The async Python client of the durably HTTP/SSE API (`create_durably_handler`), on httpx and httpx-sse.

    async with DurablyClient("http://127.0.0.1:8000/api/durably") as client:
        run_id = await client.trigger("import-csv", {"rows": [...]})
        async for event in client.subscribe(run_id):
            ...

Errors come back as the engine's own exception classes (`RunNotFoundError`, `RunStateError`,
`InvalidInputError`, ...) carrying the server's message, so code written against the in-process
engine handles them unchanged. Event streams reconnect by themselves with `Last-Event-ID`, so a
dropped connection or a restarted server costs the consumer nothing but a fresh snapshot.

It also speaks to Durably's own Node server (0.7 as the seed documents it, 0.15 as on npm): their
names are mapped (`_node_wire`), routes they lack raise `FeatureNotSupportedError` (a
`NotFoundError`) instead of a bare not-found, `retry` falls back to `/retrigger`, and a run's stream
reads the run's state itself where the server sends no snapshot (`ServerTraits`).

`create_durably_client(durably)` adds per-job typed access from the server's job definitions: inputs
are validated locally and outputs parsed into the job's output model. It reads only the definitions,
never the engine's storage, so it also works in a process that merely imports the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import sys
import types as types_module
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self

import httpx
import pydantic_core
from httpx_sse import EventSource
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from ._errors import (
    ConflictError,
    DurablyError,
    FeatureNotSupportedError,
    InvalidArgumentError,
    InvalidInputError,
    JobNotFoundError,
    NotFoundError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    RunStateError,
    ScheduleNotFoundError,
    SignalConflictError,
    StorageUnavailableError,
    WaitTimeoutError,
)
from ._jobs import JobDefinition
from ._node_wire import LEASED, run_from_wire, run_status
from ._records import Attempt, BulkResult, Disposition, LogEntry, Run, RunResult, RunStats, RunStatus, Schedule, Step
from ._registry import ByKey
from ._wire_events import (
    RunCancel,
    RunComplete,
    RunDelete,
    RunFail,
    RunSnapshot,
    StreamEvent,
    StreamGap,
    WireEvent,
    parse_event,
)

DEFAULT_API = "http://127.0.0.1:8000/api/durably"
DEFAULT_BASE_PATH = "/api/durably"
# The server sends a keep-alive comment about every 15 s: three missed ones mean the connection is dead.
STREAM_READ_TIMEOUT = 45.0
RECONNECT_INITIAL_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
# A durably-reflex server starts a run's stream with its snapshot at once; a server still silent
# this long after connecting may send none (Node Durably, on a pending run): the run is read instead.
FIRST_FRAME_WAIT = 1.0
BULK_IDS_PER_REQUEST = 1_000  # run ids a bulk action sends per request (the server takes up to 10,000)

ConnectionState = Literal["connecting", "open", "reconnecting", "closed"]
StateListener = Callable[[ConnectionState], None]
BulkProgress = Callable[[BulkResult], object]  # told a bulk action's totals so far, after each batch

logger = logging.getLogger("durably_reflex._client")


def default_api() -> str:
    """Where the API is when no `api` is given: `$DURABLY_API`; else, inside a Reflex app, the
    backend of its config (`api_url`, which `reflex run` keeps in step with the port it picked)
    with the API mounted at `/api/durably` by `mount_durably`; else `DEFAULT_API`."""
    if configured := os.environ.get("DURABLY_API"):
        return configured
    if "reflex" in sys.modules:  # only ask Reflex when the app already uses it
        try:
            from reflex_base.config import get_config

            return get_config().api_url.rstrip("/") + DEFAULT_BASE_PATH
        except Exception as error:  # no rxconfig here: not a Reflex app after all
            logger.debug("no Reflex config for the default API (%r)", error)
    return DEFAULT_API


# -- errors only the client can meet ------------------------------------------------------------------
class ClientConnectionError(DurablyError, ConnectionError):
    """The server could not be reached or the connection broke; the httpx error is the `__cause__`."""


class AuthError(DurablyError, PermissionError):
    """401 or 403: the server's auth hook refused the request."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class PayloadTooLargeError(DurablyError, ValueError):
    """413: the request body is over the server's limit."""


class ServerError(DurablyError):
    """A 5xx answer: the server (or a proxy in front of it) failed; the request may be retried."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class UnexpectedResponseError(DurablyError):
    """An answer this client cannot interpret (an unlisted status, an event stream that is not SSE)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


_RUN_NOT_FOUND = re.compile(r"^Run not found(?:: (?P<id>.+))?$")
_JOB_NOT_FOUND = re.compile(r"^Job not found: (?P<name>.+)$")
_RUN_STATE = re.compile(r"^Cannot (?P<action>\w+) (?P<status>already cancelled|\w+) run: (?P<id>.+)$")
_INVALID_INPUT = re.compile(r"^(?:.*: )?Invalid input\b")
_SIGNAL_SENT = re.compile(r'^Signal "(?P<name>.*)" was already sent to run (?P<id>.+)$')
_SCHEDULE_NOT_FOUND = re.compile(r"^Schedule not found: (?P<name>.+)$")
_ACTIONS = {"retrigger": "retry"}  # Durably 0.15's word for what is a retry here


def error_from_response(response: httpx.Response, route: str, run_id: str | None = None) -> DurablyError:
    """The typed exception for an error answer of `route` (e.g. "trigger"), with the server's message;
    `run_id` is the run the request named, if any.

    By the body's stable `code` first (`RUN_NOT_FOUND`, `STORAGE_UNAVAILABLE`, ...). A server that
    sends none (Durably's own Node server) is read by status code and, where one status covers
    several cases, by the message its engine wrote (`Run not found: <id>`, `Cannot retry completed
    run: <id>`), even under a 500, which Durably 0.7 answers for most refusals. A 404 without a
    Durably error body (a bare `Not Found`) means the server has no such route:
    `FeatureNotSupportedError`.
    """
    body = _error_body(response)
    by_code = _BY_CODE.get(body.code or "")
    if by_code is not None:
        error = by_code(body.message, body.details, response)
    else:
        error = _by_status(response, body, route, run_id)
    if not isinstance(error, FeatureNotSupportedError) and not _inferred_run_id(error, body.message):
        error.args = (body.message,)  # the server's words exactly, whatever the class would have phrased
    return error


def _by_status(response: httpx.Response, body: _ErrorBody, route: str, run_id: str | None) -> DurablyError:
    """An error of a server that sends no code, from its status and its engine's words."""
    message, status = body.message, response.status_code
    if status == 400:
        return InvalidInputError(message, body.details) if route == "trigger" else InvalidArgumentError(message)
    if status in (401, 403):
        return AuthError(message, status)
    if status == 404:
        if not body.is_durably_error:
            return FeatureNotSupportedError(f"{response.request.method} /{route}")
        return _not_found(message, run_id)
    if status == 409:
        return _conflict(message)
    if status == 413:
        return PayloadTooLargeError(message)
    if status >= 500:
        return _refusal(message, route, run_id) or ServerError(message, status)
    return UnexpectedResponseError(message, status)


def _refusal(message: str, route: str, run_id: str | None) -> DurablyError | None:
    """The refusal a 5xx message states in the engine's words (Durably 0.7 answers 500 for an
    unknown run, a state conflict and an invalid input), or None for a real server failure."""
    if _RUN_NOT_FOUND.match(message) or _JOB_NOT_FOUND.match(message):
        return _not_found(message, run_id)
    if _RUN_STATE.match(message):
        return _conflict(message)
    if route == "trigger" and _INVALID_INPUT.match(message):
        return InvalidInputError(message)
    return None


def _inferred_run_id(error: DurablyError, message: str) -> bool:
    """Whether the error names a run the server's message left out ("Run not found"): its own
    message, with the id, is then the better one."""
    return isinstance(error, RunNotFoundError) and error.run_id not in message


def _retry_after(response: httpx.Response) -> float:
    """`Retry-After` in seconds (the delta form; a date or nothing reads as 5 s)."""
    value = response.headers.get("retry-after", "")
    return float(value) if value.isascii() and value.isdigit() else 5.0


ErrorFactory = Callable[[str, list[dict[str, Any]], httpx.Response], DurablyError]
_BY_CODE: dict[str, ErrorFactory] = {
    InvalidInputError.code: lambda message, details, response: InvalidInputError(message, details),
    InvalidArgumentError.code: lambda message, details, response: InvalidArgumentError(message),
    NotFoundError.code: lambda message, details, response: _not_found(message),
    RunNotFoundError.code: lambda message, details, response: _not_found(message),
    JobNotFoundError.code: lambda message, details, response: _not_found(message),
    ConflictError.code: lambda message, details, response: _conflict(message),
    RunStateError.code: lambda message, details, response: _conflict(message),
    "UNAUTHORIZED": lambda message, details, response: AuthError(message, response.status_code),
    "FORBIDDEN": lambda message, details, response: AuthError(message, response.status_code),
    "PAYLOAD_TOO_LARGE": lambda message, details, response: PayloadTooLargeError(message),
    SignalConflictError.code: lambda message, details, response: _signal_conflict(message),
    ScheduleNotFoundError.code: lambda message, details, response: _schedule_not_found(message),
    StorageUnavailableError.code: lambda message, details, response: StorageUnavailableError(
        message, _retry_after(response)
    ),
}


@dataclass(frozen=True)
class _ErrorBody:
    message: str
    details: list[dict[str, Any]]
    code: str | None
    is_durably_error: bool  # a JSON `{"error": ...}`, not a bare text (a route the server lacks)


def _error_body(response: httpx.Response) -> _ErrorBody:
    """What `{"error": ..., "code": ..., "details": [...]}` says, or the bare text of the answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        details, code = body.get("details"), body.get("code")
        return _ErrorBody(
            body["error"], details if isinstance(details, list) else [], code if isinstance(code, str) else None, True
        )
    text = response.text.strip()
    return _ErrorBody(text or f"HTTP {response.status_code} {response.reason_phrase}".strip(), [], None, False)


def _not_found(message: str, run_id: str | None = None) -> NotFoundError:
    if (match := _RUN_NOT_FOUND.match(message)) and (match["id"] or run_id):
        return RunNotFoundError(match["id"] or run_id or "")
    if match := _JOB_NOT_FOUND.match(message):
        return JobNotFoundError(match["name"])
    return NotFoundError(message)


def _signal_conflict(message: str) -> ConflictError:
    match = _SIGNAL_SENT.match(message)
    return SignalConflictError(match["id"], match["name"]) if match else ConflictError(message)


def _schedule_not_found(message: str) -> NotFoundError:
    match = _SCHEDULE_NOT_FOUND.match(message)
    return ScheduleNotFoundError(match["name"]) if match else NotFoundError(message)


def _conflict(message: str) -> ConflictError:
    if match := _RUN_STATE.match(message):
        status = "cancelled" if match["status"] == "already cancelled" else run_status(match["status"])
        return RunStateError(_ACTIONS.get(match["action"], match["action"]), status, match["id"])
    return ConflictError(message)


# -- wire records -------------------------------------------------------------------------------------
class JobInfo(BaseModel):
    """One entry of `GET /jobs`: a registered job and the JSON Schemas of its input and output."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    name: str
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    # The JSON Schema of each signal payload the job declares, by signal name (`define_job(signals=)`).
    signals: dict[str, dict[str, Any]] = {}


_RUNS = TypeAdapter(list[Run])
_STEPS = TypeAdapter(list[Step])
_LOGS = TypeAdapter(list[LogEntry])
_JOBS = TypeAdapter(list[JobInfo])
_SCHEDULES = TypeAdapter(list[Schedule])
_ATTEMPTS = TypeAdapter(list[Attempt])


class TriggeredRunId(str):
    """What `trigger` returns: the run's id (a `str`, as before), and `disposition`: whether the
    trigger `created` the run, found the run of its idempotency key (`idempotent`) or joined the
    pending run of its concurrency key (`coalesced`); None from a server that does not say."""

    disposition: Disposition | None

    def __new__(cls, run_id: str, disposition: Disposition | None = None) -> Self:
        self = super().__new__(cls, run_id)
        self.disposition = disposition
        return self


# The filters of `get_runs` and the bulk actions, as the engine names them, and their wire names.
_FILTER_FIELDS = {
    "job_name": "jobName",
    "status": "status",
    "labels": "labels",
    "id_prefix": "idPrefix",
    "created_after": "createdAfter",
    "created_before": "createdBefore",
    "input_fields": "input",
    "replay_of": "replayOf",
}


def _filter_body(filters: Mapping[str, Any]) -> dict[str, Any]:
    """A bulk action's `filter` object from `get_runs`' keyword arguments (None ones left out)."""
    if unknown := sorted(set(filters) - set(_FILTER_FIELDS)):
        raise TypeError(f"unexpected filter {unknown[0]!r}: expected some of {', '.join(_FILTER_FIELDS)}")
    body: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name in ("job_name", "status"):
            value = _as_list(value)
        elif name in ("created_after", "created_before"):
            value = _iso(name, value)
        body[_FILTER_FIELDS[name]] = value
    return body


def _search_params(
    labels: Mapping[str, str] | None,
    id_prefix: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    input_fields: Mapping[str, Any] | None,
    replay_of: str | None,
) -> list[tuple[str, str]]:
    """The query parameters of `/runs` beyond job and status (`label.<key>`, `input.<path>`, ...)."""
    params = [(f"label.{key}", value) for key, value in (labels or {}).items()]
    params += [(f"input.{path}", _as_text(value)) for path, value in (input_fields or {}).items()]
    for name, value in (("idPrefix", id_prefix), ("replayOf", replay_of)):
        if value is not None:
            params.append((name, value))
    for name, moment in (("createdAfter", created_after), ("createdBefore", created_before)):
        if moment is not None:
            params.append((name, _iso(name, moment)))
    return params


def _as_text(value: Any) -> str:
    """An input field's value as the server compares it (JSON's `true`, `42`)."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _iso(name: str, moment: Any) -> str:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidArgumentError(f"{name} must be a timezone-aware datetime")
    return moment.isoformat()


# -- event streams ------------------------------------------------------------------------------------
@dataclass
class ServerTraits:
    """What a client has learned of its server's dialect, from its answers (never assumed), shared
    by the clients of one API (`with_headers`). A durably-reflex server and Durably's Node server
    differ here; see `_node_wire` for the names they give the same things."""

    # Whether `/subscribe` starts each connection with the run's state (`run:snapshot`); None until
    # a run's stream has told. Without it, a run's stream reads the run itself on every connection.
    sends_snapshots: bool | None = None
    # What the server calls a run a worker is executing: "running", or "leased" (Durably 0.15), as
    # a `status` filter of `/runs` must say it; learned when the server refuses "running".
    running_status: str = RunStatus.RUNNING.value


def reconnect_delay(failures: int) -> float:
    """Backoff before reconnect number `failures`: 0.1 s doubling up to 5 s, jittered down by up to
    half so that many clients cut off together by a server restart do not come back in lockstep."""
    ceiling = min(RECONNECT_MAX_DELAY, RECONNECT_INITIAL_DELAY * 2 ** (failures - 1))
    return ceiling * random.uniform(0.5, 1.0)


class EventStream:
    """Typed events of one SSE route, as an async iterator that survives dropped connections.

    When the connection breaks (network error, server restart, a stream of a run that ends before
    `run:complete`), it reconnects with backoff and sends `Last-Event-ID`, so the server resumes
    after the last event seen. A run stream (`/subscribe`) starts every connection with a
    `RunSnapshot`, which is yielded too: consumers reset their state from it. From a server that
    sends none (Durably's Node server), the stream reads the run (`GET /run`) on each connection
    and yields that as the snapshot. A run stream ends after `run:complete` (or a snapshot of a
    completed run) and after `run:delete`, and where the server itself closes it once the run has
    failed or was cancelled (Node Durably 0.15); `/runs/subscribe` never ends by itself, and after a
    reconnect that could not resume it yields a `StreamGap` first. Errors the server states (404 for
    an unknown run, 401/403) are raised, not retried.

    `state` (and the optional `on_state` callback) follow the connection for UIs: "connecting",
    "open", "reconnecting", "closed". Close it with `aclose()` or `async with`, from the task that
    iterates it (or cancel that task).
    """

    def __init__(
        self,
        client: DurablyClient,
        route: str,
        params: dict[str, str | list[str]],
        *,
        follows_run: bool,
        types: Sequence[str] | None = None,
        on_state: StateListener | None = None,
    ) -> None:
        self._client = client
        self._route = route
        self._params = params
        self._follows_run = follows_run
        self._types = frozenset(types or ())  # only these, where the server ignores the filter
        self._on_state = on_state
        self._state: ConnectionState | None = None
        events = self._run()
        # An `async def` with `yield` makes an AsyncGeneratorType, whose `ag_running` aclose() checks.
        assert isinstance(events, types_module.AsyncGeneratorType)
        self._events = events
        self.last_event_id: str | None = None
        self.reconnects = 0

    @property
    def state(self) -> ConnectionState:
        """The connection's state; before the first `anext` the stream is about to connect."""
        return self._state or "connecting"

    def _set_state(self, state: ConnectionState) -> None:
        if state != self._state:
            self._state = state
            if self._on_state is not None:
                self._on_state(state)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        if self._events.ag_running:
            raise RuntimeError(
                "EventStream.aclose() while another task iterates it: cancel and await that task instead"
            )
        await self._events.aclose()
        self._set_state("closed")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        failures = 0
        self._set_state("connecting")
        try:
            while True:
                resumable = self.reconnects == 0 or self.last_event_id is not None
                last: StreamEvent | None = None
                try:
                    async with contextlib.aclosing(self._connection(resumable)) as events:
                        async for event in events:
                            failures = 0
                            if self._types and event.type not in self._types and not isinstance(event, StreamGap):
                                continue
                            yield event
                            if self._is_last(event):
                                return
                            last = event
                    if self._closed_once_settled(last):
                        return
                except (httpx.TransportError, ClientConnectionError, ServerError, StorageUnavailableError) as error:
                    logger.info("event stream %s dropped (%r); reconnecting", self._route, error)
                failures += 1
                self._set_state("reconnecting")
                await asyncio.sleep(reconnect_delay(failures))
                self.reconnects += 1
        finally:
            self._set_state("closed")

    async def _connection(self, resumable: bool) -> AsyncGenerator[StreamEvent, None]:
        """One connection's events; returns when the server ends the stream. `resumable`: whether
        the server can go on where the previous connection stopped (there was none, or it had an id)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(self._client.timeout, read=STREAM_READ_TIMEOUT)
        async with self._client._open_stream(self._route, self._params, headers, timeout) as response:
            self._set_state("open")
            async with contextlib.aclosing(self._frames(response)) as frames:
                if self._follows_run:  # closed first: it may be reading `frames` in a task of its own
                    async with contextlib.aclosing(self._run_state_first(frames)) as events:
                        async for event in events:
                            yield event
                    return
                if not resumable:
                    yield StreamGap()
                async for event in frames:
                    yield event

    async def _frames(self, response: httpx.Response) -> AsyncGenerator[WireEvent, None]:
        """The typed events of an open response, keeping the last event id for a reconnect."""
        async with contextlib.aclosing(EventSource(response).aiter_sse()) as frames:
            async for frame in frames:
                if frame.id:  # the first frame of a connection may have none: keep the last one
                    self.last_event_id = frame.id
                event = _decode(frame.data)
                if event is not None:
                    yield event

    async def _run_state_first(self, frames: AsyncGenerator[WireEvent, None]) -> AsyncGenerator[WireEvent, None]:
        """A run's events with its state first: the server's snapshot, or the run read from `/run`
        when the server sends none (learned from a connection's first frame, or read anyway when
        the server stays silent for `FIRST_FRAME_WAIT`, as Node Durably does on a pending run)."""
        traits = self._client.traits
        if traits.sends_snapshots is False:
            yield await self._read_snapshot()
            async for event in frames:
                yield event
            return
        first: asyncio.Future[WireEvent | None] = asyncio.ensure_future(anext(frames, None))
        try:
            done, _ = await asyncio.wait({first}, timeout=FIRST_FRAME_WAIT)
            read_already = not done
            if read_already:
                yield await self._read_snapshot()
            opening = await first
        finally:
            if not first.done():
                first.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await first
        if opening is None:
            return
        traits.sends_snapshots = isinstance(opening, RunSnapshot)
        if not traits.sends_snapshots and not read_already:
            yield await self._read_snapshot()
        yield opening
        async for event in frames:
            yield event

    async def _read_snapshot(self) -> RunSnapshot:
        """The followed run as it stands, as a snapshot event; RunNotFoundError if it is gone."""
        run_id = str(self._params["runId"])
        run = await self._client.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return RunSnapshot(run_id=run.id, job_name=run.job_name, run=run)

    def _is_last(self, event: StreamEvent) -> bool:
        """Whether a run stream is over: the run completed (nothing follows) or was deleted."""
        if not self._follows_run:
            return False
        if isinstance(event, RunSnapshot):
            return event.run.status is RunStatus.COMPLETED
        return isinstance(event, (RunComplete, RunDelete))

    def _closed_once_settled(self, last: StreamEvent | None) -> bool:
        """Whether the server ended a run's stream because the run failed or was cancelled, as a
        server without snapshots may (Durably 0.15): connecting again would only hear that again.
        (A durably-reflex server keeps the stream open through both, for a retry to follow.)"""
        if not self._follows_run or self._client.traits.sends_snapshots is not False:
            return False
        if isinstance(last, RunSnapshot):
            return last.run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
        return isinstance(last, (RunFail, RunCancel))


def _decode(data: str) -> WireEvent | None:
    """The typed event in an SSE data field; unknown types and malformed frames are skipped (and
    logged) so one odd frame from a newer or buggy server does not tear down a UI's stream. So are
    frames marked `replayed`: the run's state told again, after the snapshot, for Durably 0.7's
    client (which ignores snapshots); consumers here reset from the snapshot."""
    try:
        raw = json.loads(data)
        if isinstance(raw, dict) and raw.get("replayed") is True:
            return None
        return parse_event(raw)
    except (ValueError, ValidationError) as error:
        logger.warning("skipping an event frame that does not parse (%s): %.200s", error, data)
        return None


# -- the client ---------------------------------------------------------------------------------------
class DurablyClient:
    """The HTTP API of one durably server, base URL `api` (the handler's base path included;
    default: `default_api()`).

    It owns its `httpx.AsyncClient` unless one is passed as `http` (then closing it is the caller's
    job). `timeout` (seconds) applies to every request; event streams keep it for connecting but wait
    up to `STREAM_READ_TIMEOUT` between frames. `headers` are sent with every request (auth tokens).
    `traits` holds what it has learned of the server's dialect (see `ServerTraits`).
    """

    def __init__(
        self,
        api: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float | None = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.api = (api or default_api()).rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._owns_http = http is None
        # No cap on connections: every open event stream holds one (a UI server follows many).
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        self.http = http if http is not None else httpx.AsyncClient(limits=limits)
        self.traits = ServerTraits()

    def with_headers(self, headers: Mapping[str, str]) -> DurablyClient:
        """A client of the same API, over the same connection pool, that also sends `headers`: one
        user's credentials, say, for a page that shows that user's runs. Closing it leaves the pool
        to this client. Without headers, this client itself."""
        if not headers:
            return self
        client = DurablyClient(self.api, http=self.http, timeout=self.timeout, headers={**self.headers, **headers})
        client.traits = self.traits  # one server, one dialect
        return client

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- transport ------------------------------------------------------------------------------------
    def _url(self, route: str) -> str:
        return f"{self.api}/{route}"

    async def _request(
        self, method: str, route: str, *, params: Any = None, body: Any = None, run_id: str | None = None
    ) -> httpx.Response:
        """Send one request (about `run_id`, if one); errors come back as typed exceptions, network
        failures as `ClientConnectionError`."""
        headers = dict(self.headers)
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = pydantic_core.to_json(body)  # models, dates, UUIDs serialize as the engine stores them
        url = self._url(route)
        try:
            response = await self.http.request(
                method, url, params=params, content=content, headers=headers, timeout=self.timeout
            )
        except httpx.TransportError as error:
            raise ClientConnectionError(f"{method} {url} failed: {error!r}") from error
        if response.is_error:
            raise error_from_response(response, route, run_id)
        return response

    @contextlib.asynccontextmanager
    async def _open_stream(
        self, route: str, params: dict[str, str | list[str]], headers: dict[str, str], timeout: httpx.Timeout
    ) -> AsyncGenerator[httpx.Response, None]:
        """An open event-stream response, or the typed error the server answered with instead."""
        async with self.http.stream(
            "GET", self._url(route), params=params, headers={**self.headers, **headers}, timeout=timeout
        ) as response:
            if response.is_error:
                await response.aread()
                run_id = params.get("runId")
                raise error_from_response(response, route, run_id if isinstance(run_id, str) else None)
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                raise UnexpectedResponseError(
                    f"{route} answered {content_type or 'no content type'}, not an event stream", response.status_code
                )
            yield response

    # -- triggering -----------------------------------------------------------------------------------
    async def trigger(
        self,
        job_name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        coalesce: Literal["skip"] | None = None,
    ) -> TriggeredRunId:
        """Create a run of the job with this name; returns its id. With an idempotency key already
        used for this job, the existing run's id comes back instead. Workers take higher `priority`
        runs first; a run with `delay` (seconds) or `run_at` (a timezone-aware datetime) waits,
        pending, until then. `labels` are kept with the run and searchable (`get_runs(labels=)`);
        with `coalesce="skip"` and a `concurrency_key`, the pending run of that key is returned
        instead of a new one. The id's `disposition` tells which happened (`TriggeredRunId`).
        (A durably-reflex server; Durably's own ignores timing, labels and coalescing.)"""
        body: dict[str, Any] = {"jobName": job_name}
        if input is not None:
            body["input"] = input
        if idempotency_key is not None:
            body["idempotencyKey"] = idempotency_key
        if concurrency_key is not None:
            body["concurrencyKey"] = concurrency_key
        if priority is not None:
            body["priority"] = priority
        if delay is not None:
            body["delay"] = delay
        if run_at is not None:
            if not isinstance(run_at, datetime) or run_at.tzinfo is None:
                raise InvalidArgumentError("run_at must be a timezone-aware datetime")
            body["runAt"] = run_at.isoformat()
        if labels is not None:
            body["labels"] = dict(labels)
        if coalesce is not None:
            body["coalesce"] = coalesce
        answer = (await self._request("POST", "trigger", body=body)).json()
        return TriggeredRunId(str(answer["runId"]), answer.get("disposition"))

    async def trigger_and_wait(
        self,
        job_name: str,
        input: Any = None,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
    ) -> RunResult:
        """Trigger, then wait for the run to settle (see `wait_for_run`); `timeout` bounds the wait."""
        run_id = await self.trigger(job_name, input, idempotency_key=idempotency_key, concurrency_key=concurrency_key)
        return await self.wait_for_run(run_id, timeout=timeout)

    async def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """The run's result once it completes (its output as JSON).

        Raises RunFailedError or RunCancelledError when it fails or is cancelled (at once if it
        already has), WaitTimeoutError after `timeout` seconds (the run keeps going). Follows the
        run's event stream, so dropped connections are reconnected transparently.
        """
        try:
            async with asyncio.timeout(timeout) as deadline:
                return await self._settle(run_id)
        except TimeoutError:
            if deadline.expired():
                raise WaitTimeoutError(run_id, timeout or 0) from None
            raise

    async def _settle(self, run_id: str) -> RunResult:
        async with self.subscribe(run_id) as events:
            async for event in events:
                if isinstance(event, RunSnapshot):
                    _raise_if_settled_badly(event.run)
                    if event.run.status is RunStatus.COMPLETED:
                        return RunResult(id=run_id, output=event.run.output)
                elif isinstance(event, RunComplete):
                    return RunResult(id=run_id, output=event.output)
                elif isinstance(event, RunFail):
                    raise RunFailedError(run_id, event.error, event.error_stack)
                elif isinstance(event, RunCancel):
                    raise RunCancelledError(run_id)
        raise RunNotFoundError(run_id)  # the stream ends unsettled only when the run was deleted

    # -- queries --------------------------------------------------------------------------------------
    async def get_run(self, run_id: str) -> Run | None:
        """The run, or None if the server does not know it."""
        try:
            response = await self._request("GET", "run", params={"runId": run_id}, run_id=run_id)
        except RunNotFoundError:
            return None
        return Run.model_validate(run_from_wire(response.json()))

    async def get_runs(
        self,
        *,
        job_name: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        labels: Mapping[str, str] | None = None,
        id_prefix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        input_fields: Mapping[str, Any] | None = None,
        replay_of: str | None = None,
    ) -> list[Run]:
        """Runs newest first, filtered by job name(s) and status(es); on a durably-reflex server
        also by `labels` (every one must match), `id_prefix`, creation time (`created_after`
        inclusive, `created_before` exclusive, timezone-aware), fields of the input
        (`input_fields={"user.email": "ada@example.com"}`, compared as text) and `replay_of`."""
        statuses = _as_list(status)
        search = _search_params(labels, id_prefix, created_after, created_before, input_fields, replay_of)
        try:
            return await self._get_runs(_as_list(job_name), statuses, limit, offset, search)
        except InvalidArgumentError as error:
            if not self._learned_leased(statuses, error):
                raise
        return await self._get_runs(_as_list(job_name), statuses, limit, offset, search)

    async def _get_runs(
        self, job_names: list[str], statuses: list[str], limit: int | None, offset: int, search: list[tuple[str, str]]
    ) -> list[Run]:
        running = self.traits.running_status
        params = [("jobName", name) for name in job_names]
        params += [("status", running if value == RunStatus.RUNNING else value) for value in statuses]
        params += search
        if limit is not None:
            params.append(("limit", str(limit)))
        if offset:
            params.append(("offset", str(offset)))
        response = await self._request("GET", "runs", params=params)
        return _RUNS.validate_python([run_from_wire(run) for run in response.json()])

    def _learned_leased(self, statuses: list[str], error: InvalidArgumentError) -> bool:
        """Whether refusing "running" taught that the server says "leased" (Durably 0.15)."""
        refused = RunStatus.RUNNING in statuses and LEASED in str(error)
        if refused and self.traits.running_status != LEASED:
            self.traits.running_status = LEASED
            return True
        return False

    async def get_stats(
        self,
        job_name: str | Sequence[str] | None = None,
        *,
        bucket_seconds: int | None = None,
        buckets: int | None = None,
    ) -> RunStats:
        """Runs per status and per job, and runs created per time bucket (the server's defaults: 24
        buckets of an hour, the last holding now); counts only the jobs named, if any.
        FeatureNotSupportedError from a server without `/stats` (Durably's Node server)."""
        params = [("jobName", name) for name in _as_list(job_name)]
        if bucket_seconds is not None:
            params.append(("bucketSeconds", str(bucket_seconds)))
        if buckets is not None:
            params.append(("buckets", str(buckets)))
        response = await self._request("GET", "stats", params=params)
        return RunStats.model_validate(response.json())

    async def get_steps(self, run_id: str) -> list[Step]:
        """The run's settled steps in step order."""
        response = await self._request("GET", "steps", params={"runId": run_id}, run_id=run_id)
        return _STEPS.validate_python(response.json())

    async def get_logs(self, run_id: str, *, after: str | None = None, limit: int | None = None) -> list[LogEntry]:
        """The run's stored log entries oldest first; `after` (a log id) pages forward.
        FeatureNotSupportedError from a server that stores none (Durably's Node server): its logs
        are only in the run's event stream."""
        params = {"runId": run_id}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = str(limit)
        response = await self._request("GET", "logs", params=params, run_id=run_id)
        return _LOGS.validate_python(response.json())

    async def list_jobs(self) -> list[JobInfo]:
        """The server's registered jobs with their input and output JSON Schemas
        (FeatureNotSupportedError from a server without `/jobs`, such as Durably's Node server)."""
        response = await self._request("GET", "jobs")
        return _JOBS.validate_python(response.json())

    # -- actions --------------------------------------------------------------------------------------
    async def retry(self, run_id: str) -> str:
        """Run a failed or cancelled run again (RunStateError otherwise); returns the id of the run
        that will execute: this one, put back to pending, on a durably-reflex server; a new run with
        the same input on a server that only retriggers (Durably 0.15's `/retrigger`, which also
        takes a completed run)."""
        params = {"runId": run_id}
        try:
            await self._request("POST", "retry", params=params, run_id=run_id)
        except FeatureNotSupportedError:
            response = await self._request("POST", "retrigger", params=params, run_id=run_id)
            return str(response.json()["runId"])
        return run_id

    async def cancel(self, run_id: str) -> None:
        """Cancel a pending or running run (RunStateError if it has already settled)."""
        await self._request("POST", "cancel", params={"runId": run_id}, run_id=run_id)

    async def delete_run(self, run_id: str) -> None:
        """Delete a completed, failed or cancelled run with its steps and logs."""
        await self._request("DELETE", "run", params={"runId": run_id}, run_id=run_id)

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send the signal `name` to a run: its `step.wait_for_signal(name)` returns `payload`, at
        once if the run waits for it now, or when it gets there. InvalidInputError (by field) for a
        payload its job's declared model refuses, RunStateError for a finished run,
        SignalConflictError if sent already, RunNotFoundError; FeatureNotSupportedError from a
        server without signals (Durably's own)."""
        body = {"runId": run_id, "name": name, "payload": payload}
        await self._request("POST", "signal", body=body, run_id=run_id)

    async def replay(self, run_id: str, *, from_step: str | None = None) -> Run:
        """A new run of this run's job, input and labels, whose completed steps before `from_step`
        are copied and the rest run anew (without `from_step`: everything again); returns the new
        run, whose `replay_of` names this one. InvalidArgumentError for a step the run does not
        have; FeatureNotSupportedError from a server without replays (Durably's own)."""
        body = {"runId": run_id} if from_step is None else {"runId": run_id, "fromStep": from_step}
        response = await self._request("POST", "replay", body=body, run_id=run_id)
        return Run.model_validate(response.json())

    async def get_attempts(self, run_id: str) -> list[Attempt]:
        """How each earlier attempt of a retried run ended, first first (the run shows its latest)."""
        response = await self._request("GET", "attempts", params={"runId": run_id}, run_id=run_id)
        return _ATTEMPTS.validate_python(response.json())

    # -- many runs at once ----------------------------------------------------------------------------
    async def bulk_retry(
        self,
        run_ids: Sequence[str] | None = None,
        *,
        batch_size: int | None = None,
        on_progress: BulkProgress | None = None,
        **filters: Any,
    ) -> BulkResult:
        """Retry the failed and cancelled runs among `run_ids`, or among the runs the filters of
        `get_runs` match (`job_name=`, `status=`, `labels=`, ...; none: every run). See `bulk_cancel`."""
        return await self._bulk("retry", run_ids, filters, batch_size, on_progress)

    async def bulk_cancel(
        self,
        run_ids: Sequence[str] | None = None,
        *,
        batch_size: int | None = None,
        on_progress: BulkProgress | None = None,
        **filters: Any,
    ) -> BulkResult:
        """Cancel the pending and running runs among `run_ids` or the runs `filters` match.

        The server works in transactions of `batch_size` runs (500 by default); `on_progress(result
        so far)` is called after each, from the action's event stream (ids go in requests of
        `BULK_IDS_PER_REQUEST`). Runs whose status does not allow the action, and ids the server
        does not know or shows this caller no run for, are skipped and counted. If the connection
        drops, ClientConnectionError: the action itself goes on at the server."""
        return await self._bulk("cancel", run_ids, filters, batch_size, on_progress)

    async def bulk_delete(
        self,
        run_ids: Sequence[str] | None = None,
        *,
        batch_size: int | None = None,
        on_progress: BulkProgress | None = None,
        **filters: Any,
    ) -> BulkResult:
        """Delete the finished runs among `run_ids` or the runs `filters` match. See `bulk_cancel`."""
        return await self._bulk("delete", run_ids, filters, batch_size, on_progress)

    async def _bulk(
        self,
        action: str,
        run_ids: Sequence[str] | None,
        filters: Mapping[str, Any],
        batch_size: int | None,
        on_progress: BulkProgress | None,
    ) -> BulkResult:
        if run_ids is not None and filters:
            raise InvalidArgumentError("give run_ids or filters, not both")
        if isinstance(run_ids, str):
            raise InvalidArgumentError("run_ids must be a list of run ids, not one string")
        extra = {} if batch_size is None else {"batchSize": batch_size}
        if run_ids is None:
            return await self._bulk_request(
                action, {"filter": _filter_body(filters), **extra}, NOTHING_DONE, on_progress
            )
        done = NOTHING_DONE
        ids = list(run_ids)
        for start in range(0, len(ids), BULK_IDS_PER_REQUEST):
            body = {"runIds": ids[start : start + BULK_IDS_PER_REQUEST], **extra}
            done = await self._bulk_request(action, body, done, on_progress)
        return done

    async def _bulk_request(
        self,
        action: str,
        body: dict[str, Any],
        before: BulkResult,
        on_progress: BulkProgress | None,
    ) -> BulkResult:
        """One bulk request, followed as an event stream; its totals added to `before`'s."""
        route = f"bulk/{action}"
        headers = {**self.headers, "Accept": "text/event-stream", "Content-Type": "application/json"}
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT)
        url = self._url(route)
        try:
            async with self.http.stream(
                "POST", url, content=pydantic_core.to_json(body), headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response, route)
                async for frame in EventSource(response).aiter_sse():
                    event = json.loads(frame.data)
                    so_far = _added(before, event)
                    if event.get("type") == "bulk:progress" and on_progress is not None:
                        on_progress(so_far)
                    elif event.get("type") == "bulk:done":
                        return so_far
                    elif event.get("type") == "bulk:error":
                        error = {key: event[key] for key in ("error", "code", "details") if key in event}
                        failed = httpx.Response(int(event["status"]), json=error, request=response.request)
                        raise error_from_response(failed, route)
        except httpx.TransportError as error:
            raise ClientConnectionError(
                f"POST {url} broke off ({error!r}); the action goes on at the server"
            ) from error
        raise ClientConnectionError(f"POST {url} ended before the action did; the action goes on at the server")

    # -- schedules ------------------------------------------------------------------------------------
    async def get_schedules(self) -> list[Schedule]:
        """The schedules of the jobs this caller sees, by name (FeatureNotSupportedError from a
        server without schedules, such as Durably's Node server)."""
        response = await self._request("GET", "schedules")
        return _SCHEDULES.validate_python(response.json())

    async def schedule(
        self,
        job_name: str,
        cron: str,
        input: Any = None,
        *,
        name: str | None = None,
        timezone: str | None = None,
        catch_up: Literal["once", "skip"] | None = None,
    ) -> Schedule:
        """Trigger `job_name` with `input` on `cron` (five fields, or six with seconds first) in
        `timezone` (UTC by default); the schedule is named after the job unless `name` is given, and
        scheduling again under a name updates it. `catch_up`: what ticks missed while no worker ran
        become ("once", the default: one run; "skip": none)."""
        body: dict[str, Any] = {"jobName": job_name, "cron": cron}
        for key, value in (("input", input), ("name", name), ("timezone", timezone), ("catchUp", catch_up)):
            if value is not None:
                body[key] = value
        response = await self._request("POST", "schedules", body=body)
        return Schedule.model_validate(response.json())

    async def pause_schedule(self, name: str) -> Schedule:
        """Fire no more ticks until `resume_schedule` (ScheduleNotFoundError for an unknown name)."""
        response = await self._request("POST", "schedules/pause", params={"name": name})
        return Schedule.model_validate(response.json())

    async def resume_schedule(self, name: str) -> Schedule:
        """Fire again from the next tick after now (the ticks while paused are skipped)."""
        response = await self._request("POST", "schedules/resume", params={"name": name})
        return Schedule.model_validate(response.json())

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule; the runs it created stay."""
        await self._request("DELETE", "schedules", params={"name": name})

    # -- events ---------------------------------------------------------------------------------------
    def subscribe(self, run_id: str, *, on_state: StateListener | None = None) -> EventStream:
        """The run's events, each connection starting with a `RunSnapshot`; ends after completion.
        An unknown run raises RunNotFoundError on the first `anext`."""
        return EventStream(self, "subscribe", {"runId": run_id}, follows_run=True, on_state=on_state)

    def subscribe_runs(
        self,
        job_name: str | None = None,
        *,
        types: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        on_state: StateListener | None = None,
    ) -> EventStream:
        """Reduced notifications of every run (or one job's runs, or those carrying `labels`: a
        durably-reflex server), only of `types` if given (say `["run:trigger"]`, filtered here too
        where the server ignores the filter), and a `StreamGap` after a reconnect that could not
        resume; never ends by itself."""
        params: dict[str, str | list[str]] = {} if job_name is None else {"jobName": job_name}
        if types:
            params["type"] = list(types)
        for key, value in (labels or {}).items():
            params[f"label.{key}"] = value
        return EventStream(self, "runs/subscribe", params, follows_run=False, types=types, on_state=on_state)


NOTHING_DONE = BulkResult(matched=0, changed=0, skipped=0)


def _added(before: BulkResult, event: dict[str, Any]) -> BulkResult:
    """`before`'s totals plus a bulk frame's (the totals of its request so far)."""
    matched, changed = before.matched + int(event.get("matched", 0)), before.changed + int(event.get("changed", 0))
    return BulkResult(matched=matched, changed=changed, skipped=matched - changed)


def _raise_if_settled_badly(run: Run) -> None:
    if run.status is RunStatus.FAILED:
        raise RunFailedError(run.id, run.error, run.error_stack)
    if run.status is RunStatus.CANCELLED:
        raise RunCancelledError(run.id)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# -- typed access per job -----------------------------------------------------------------------------
class JobClient:
    """One registered job through the HTTP client: `client.import_csv.trigger({...})`.

    Input is validated against the job's input model before anything is sent (a bad field raises
    InvalidInputError with no request made), the job's real name goes on the wire whatever the
    registration key, and outputs come back as the job's output model.
    """

    def __init__(self, client: DurablyClient, key: str, definition: JobDefinition) -> None:
        self.client = client  # the untyped client it speaks through
        self.key = key
        self.definition = definition

    @property
    def name(self) -> str:
        return self.definition.name

    async def trigger(
        self,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        coalesce: Literal["skip"] | None = None,
    ) -> TriggeredRunId:
        # Only a check: the input goes out as given (a model by its aliases) for the server to parse.
        self.definition.validate_input(input)
        return await self.client.trigger(
            self.name,
            input,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            priority=priority,
            delay=delay,
            run_at=run_at,
            labels=labels,
            coalesce=coalesce,
        )

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """`DurablyClient.signal`, the payload first checked against the model the job declares for
        `name` (a bad field raises InvalidInputError with no request made)."""
        self.definition.validate_signal(name, payload)
        await self.client.signal(run_id, name, payload)

    async def schedule(
        self,
        cron: str,
        input: Any = None,
        *,
        name: str | None = None,
        timezone: str | None = None,
        catch_up: Literal["once", "skip"] | None = None,
    ) -> Schedule:
        """`DurablyClient.schedule` for this job, the input first checked against its model."""
        self.definition.validate_input(input)
        return await self.client.schedule(self.name, cron, input, name=name, timezone=timezone, catch_up=catch_up)

    async def trigger_and_wait(
        self,
        input: Any = None,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
    ) -> RunResult:
        run_id = await self.trigger(input, idempotency_key=idempotency_key, concurrency_key=concurrency_key)
        return await self.wait_for_run(run_id, timeout=timeout)

    async def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        result = await self.client.wait_for_run(run_id, timeout=timeout)
        return RunResult(id=result.id, output=self.definition.load_output(result.output))

    async def get_run(self, run_id: str) -> Run | None:
        """The run, or None if it does not exist or belongs to another job."""
        run = await self.client.get_run(run_id)
        return run if run is not None and run.job_name == self.name else None

    async def get_runs(
        self, *, status: str | Sequence[str] | None = None, limit: int | None = None, offset: int = 0, **search: Any
    ) -> list[Run]:
        """This job's runs; `search` takes `DurablyClient.get_runs`' other filters (`labels=`, ...)."""
        return await self.client.get_runs(job_name=self.name, status=status, limit=limit, offset=offset, **search)

    async def bulk_retry(
        self, *, batch_size: int | None = None, on_progress: BulkProgress | None = None, **filters: Any
    ) -> BulkResult:
        """`DurablyClient.bulk_retry` on this job's runs that match `filters`."""
        return await self.client.bulk_retry(
            job_name=self.name, batch_size=batch_size, on_progress=on_progress, **filters
        )

    async def bulk_cancel(
        self, *, batch_size: int | None = None, on_progress: BulkProgress | None = None, **filters: Any
    ) -> BulkResult:
        """`DurablyClient.bulk_cancel` on this job's runs that match `filters`."""
        return await self.client.bulk_cancel(
            job_name=self.name, batch_size=batch_size, on_progress=on_progress, **filters
        )

    async def bulk_delete(
        self, *, batch_size: int | None = None, on_progress: BulkProgress | None = None, **filters: Any
    ) -> BulkResult:
        """`DurablyClient.bulk_delete` on this job's runs that match `filters`."""
        return await self.client.bulk_delete(
            job_name=self.name, batch_size=batch_size, on_progress=on_progress, **filters
        )

    def subscribe_runs(
        self,
        *,
        types: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        on_state: StateListener | None = None,
    ) -> EventStream:
        return self.client.subscribe_runs(self.name, types=types, labels=labels, on_state=on_state)

    def __repr__(self) -> str:
        return f"<JobClient {self.key}={self.name!r}>"


class TypedDurablyClient(DurablyClient):
    """A `DurablyClient` that also knows the server's jobs: `client.import_csv` (or
    `client.jobs["import_csv"]`) is that job's `JobClient`. Every untyped `DurablyClient` method is
    available on it as well; `client.http` is the underlying httpx client. A registration key equal
    to a method name (say `trigger`) is reachable through `client.jobs` only.
    """

    def __init__(
        self,
        jobs: Mapping[str, JobDefinition],
        api: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float | None = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api, http=http, timeout=timeout, headers=headers)
        self.jobs: ByKey[JobClient] = ByKey({key: JobClient(self, key, definition) for key, definition in jobs.items()})

    def __getattr__(self, key: str) -> JobClient:
        jobs = self.__dict__.get("jobs")
        if jobs is None or key.startswith("_"):
            raise AttributeError(key)
        return getattr(jobs, key)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.__dict__.get("jobs", {})]


def create_durably_client(
    durably_or_jobs: Any,
    api: str | None = None,
    *,
    http: httpx.AsyncClient | None = None,
    timeout: float | None = 10.0,
    headers: Mapping[str, str] | None = None,
) -> TypedDurablyClient:
    """A typed client for the jobs of a `Durably` engine, or of a mapping of registration key to
    `JobHandle` or `JobDefinition`. Only the job definitions are read: the client talks HTTP only."""
    jobs = durably_or_jobs if isinstance(durably_or_jobs, Mapping) else durably_or_jobs.jobs
    definitions = {key: _definition_of(key, job) for key, job in jobs.items()}
    return TypedDurablyClient(definitions, api, http=http, timeout=timeout, headers=headers)


def _definition_of(key: str, job: Any) -> JobDefinition:
    definition = job if isinstance(job, JobDefinition) else getattr(job, "definition", None)
    if not isinstance(definition, JobDefinition):
        raise TypeError(f"{key}: expected a job handle or a job definition, got {job!r}")
    return definition
