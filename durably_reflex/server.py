"""The HTTP/SSE API: `create_durably_handler(durably)` is an ASGI app (Starlette) that mounts on
Reflex's backend (`rx.App(api_transformer=handler)`), on FastAPI or Starlette, or runs alone.

Routes, bodies and SSE framing follow Durably 0.7's handler, so its React client can drive it; the
errors are honest (`{"error": ..., "code": ...}` with 400, 401, 403, 404, 405, 409, 413, 415 or 503,
never a 500 for bad input),
and streams start with the run as it stands (a `run:snapshot`, then the same told as Durably 0.7
events, for its client: see `_replay`), resume by `Last-Event-ID`, and see runs executed by workers
in other processes (through the event log). Browsers of other origins may call it only when
`cors_origins` lists them; tracebacks (`errorStack`) go only to callers `expose_error_stack` allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _params
from ._bulk import BulkAction, BulkRequest, BulkRun, run_bulk
from ._cors import cors_middleware
from ._engine import MAX_KEY_LENGTH, Durably
from ._errors import (
    ConflictError,
    DurablyError,
    InvalidArgumentError,
    InvalidInputError,
    JobNotFoundError,
    NotFoundError,
    RunNotFoundError,
    ScheduleNotFoundError,
    SchemaVersionError,
    StorageUnavailableError,
)
from ._events import (
    EVENT_TYPES,
    RUN_COMPLETE,
    RUN_DELETE,
    RUN_FAIL,
    RUN_PROGRESS,
    RUN_SIGNAL,
    RUN_TRIGGER,
    RUN_WAIT,
    Event,
)
from ._feed import FeedItem, FeedSubscription
from ._jobs import JobDefinition
from ._openapi import openapi_document
from ._records import Attempt, BulkResult, Run, RunStatus, Schedule, Step
from ._replay import ReplayGuard, failed_step_name, replay_events
from ._run_filter import RunFilter, labels_from_query
from ._sse import KEEP_ALIVE, EventStreamResponse, frame
from ._throttle import ProgressThrottle

logger = logging.getLogger("durably_reflex")

RUN_SNAPSHOT = "run:snapshot"
SCHEMA_RETRY_AFTER = 60  # seconds: a database newer than this server waits for the server's upgrade
_RUN_ENDED = frozenset({RUN_COMPLETE, RUN_DELETE})  # a run's stream closes after these
# A stream resuming a run that had completed when it was read ends at its `run:complete`, or after
# this many seconds with no event of it (one no longer logged: kept `event_retention`).
_COMPLETED_RESUME_GRACE = 1.0

# What an endpoint answers with: a JSON response, or a live event stream (an ASGI app of its own).
Answer = Response | EventStreamResponse
Handler = Callable[[Request], Awaitable[Answer]]


@dataclass(frozen=True)
class DurablyAuth:
    """Optional access control; each hook may be a plain function or a coroutine function.

    - `authenticate(request)` returns the caller (any object); returning None answers 401. An
      exception it raises is logged and answered with a plain 401 (its text may say too much); an
      `ApiError` or Starlette `HTTPException` raised on purpose keeps its status and message.
    - `can_trigger(caller, job_name, input)`: False answers 403 (asked only for a job the caller sees).
      Schedules are triggers too: creating, pausing, resuming or deleting one asks it of the
      schedule's job and input.
    - `can_access_run(caller, run)`: False answers 404, as if the run did not exist (no probing).
    - `can_signal(caller, run, name, payload)`: False answers 403 (asked only for a run the caller
      sees): who may approve. None: whoever sees a run may signal it.
    - `visible_jobs(caller)`: the job names the caller may list, count, stream and trigger (None:
      all); any other job is a 404, as if it did not exist.
    - `scope(caller)`: the caller's tenant, a string (None: no tenant, every run is visible). Runs the
      caller triggers belong to its scope; its idempotency and concurrency keys are its scope's own;
      listings, counts, streams and run routes see only its scope's runs (another's is a 404).

    `/stats` counts whole jobs, so it is scoped by `scope` and `visible_jobs` only (`can_access_run`
    judges one run at a time, which a count never reads). A bulk action is held to all three: see
    `_bulk`. A replay is a trigger (`can_trigger` of the source run's job and input). Schedules belong to no tenant (their runs
    have no scope): a caller with a scope sees none, and may not create one (403).
    """

    authenticate: Callable[[Request], Any]
    can_trigger: Callable[[Any, str, Any], Any] | None = None
    can_access_run: Callable[[Any, Run], Any] | None = None
    visible_jobs: Callable[[Any], Any] | None = None
    scope: Callable[[Any], Any] | None = None
    can_signal: Callable[[Any, Run, str, Any], Any] | None = None


# The `code` of answers the HTTP layer gives on its own (the engine's errors carry their class's code).
HTTP_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
    503: StorageUnavailableError.code,
}


class ApiError(Exception):
    """An answer the HTTP layer decides on (a malformed body, a refused caller); raising one from an
    auth hook on purpose keeps its status and message."""

    def __init__(
        self, status: int, message: str, details: list[dict[str, Any]] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details
        self.code = code or HTTP_CODES.get(status, "HTTP_ERROR")


# Whether a caller is sent tracebacks: for everyone, for no one, or decided per caller (see below).
ExposeErrorStack = bool | Callable[[Any], Any]


def create_durably_handler(
    durably: Durably,
    base_path: str = "/api/durably",
    *,
    max_body_bytes: int = 1024 * 1024,
    progress_interval: float = 0.1,
    keepalive_interval: float = 15.0,
    auth: DurablyAuth | None = None,
    expose_error_stack: ExposeErrorStack = False,
    cors_origins: Sequence[str] = (),
    cors_credentials: bool = False,
    cors_headers: Sequence[str] = (),
) -> Starlette:
    """The API for `durably` under `base_path`. `progress_interval` throttles `run:progress` per run
    on each stream (the latest value is always delivered); `keepalive_interval` spaces the comment
    lines that keep idle streams (and dead-connection detection) alive.

    `expose_error_stack`: whether a failed run's traceback (`errorStack` of runs, steps and
    `run:fail`, which names the server's files) reaches the caller. False (the default) sends
    null; True sends it to everyone; a function of the caller (what `auth.authenticate` returned,
    None without auth; plain or async) decides per request.

    `cors_origins`: the browser origins (`https://app.example.com`) allowed to call the API from
    their pages, event streams included; `"*"` allows any, without credentials. None by default:
    browsers then keep other sites' pages from reading its answers. `cors_credentials` lets those
    pages send cookies (never with `"*"`); `cors_headers` names request headers they may send
    besides `Authorization`, `Content-Type` and `Last-Event-ID` (a custom auth header, say).
    """
    cors = cors_middleware(cors_origins, cors_credentials, cors_headers)
    api = _Api(durably, max_body_bytes, progress_interval, keepalive_interval, auth, expose_error_stack)
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    routes = [
        Route(f"{base}/trigger", api.trigger, methods=["POST"]),
        Route(f"{base}/runs", api.runs, methods=["GET"]),
        Route(f"{base}/stats", api.stats, methods=["GET"]),
        Route(f"{base}/run", api.run, methods=["GET"]),
        Route(f"{base}/run", api.delete_run, methods=["DELETE"]),
        Route(f"{base}/steps", api.steps, methods=["GET"]),
        Route(f"{base}/logs", api.logs, methods=["GET"]),
        Route(f"{base}/jobs", api.jobs, methods=["GET"]),
        Route(f"{base}/retry", api.retry, methods=["POST"]),
        Route(f"{base}/cancel", api.cancel, methods=["POST"]),
        Route(f"{base}/signal", api.signal, methods=["POST"]),
        Route(f"{base}/replay", api.replay, methods=["POST"]),
        Route(f"{base}/attempts", api.attempts, methods=["GET"]),
        Route(f"{base}/bulk/retry", api.bulk_retry, methods=["POST"]),
        Route(f"{base}/bulk/cancel", api.bulk_cancel, methods=["POST"]),
        Route(f"{base}/bulk/delete", api.bulk_delete, methods=["POST"]),
        Route(f"{base}/schedules", api.schedules, methods=["GET"]),
        Route(f"{base}/schedules", api.create_schedule, methods=["POST"]),
        Route(f"{base}/schedules", api.delete_schedule, methods=["DELETE"]),
        Route(f"{base}/schedules/pause", api.pause_schedule, methods=["POST"]),
        Route(f"{base}/schedules/resume", api.resume_schedule, methods=["POST"]),
        Route(f"{base}/subscribe", api.subscribe, methods=["GET"]),
        Route(f"{base}/runs/subscribe", api.subscribe_runs, methods=["GET"]),
        Route(f"{base}/openapi.json", api.openapi(base), methods=["GET"]),
    ]
    allowed = {
        route.path: sorted({m for r in routes if r.path == route.path for m in r.methods or ()} | {"OPTIONS"})
        for route in routes
    }
    # An ASGI endpoint takes every method, so no route's partial match (Starlette's own 405, naming
    # only that route's methods) answers for a path served by several routes.
    routes.append(Route(f"{base}/{{rest:path}}", _Unrouted(allowed)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        durably.feed.end_all()  # open streams would hold the server's shutdown up indefinitely

    return Starlette(routes=routes, middleware=cors, exception_handlers={HTTPException: _http_error}, lifespan=lifespan)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return _error(error.status_code, str(error.detail), headers=error.headers)


def _endpoint(handler: Callable[..., Awaitable[Answer]]) -> Callable[..., Awaitable[Answer]]:
    """Errors to JSON: ours by kind, anything unexpected as a logged 500 without its trace."""

    @functools.wraps(handler)
    async def wrapped(self: _Api, request: Request) -> Answer:
        try:
            await self.durably.migrate()
            return await handler(self, request)
        except Exception as error:
            failure = _failure(error, f"{request.method} {request.url.path}")
            return _error(failure.status, failure.message, failure.details, code=failure.code, headers=failure.headers)

    return wrapped


@dataclass(frozen=True)
class _Failure:
    status: int
    message: str
    code: str
    details: list[dict[str, Any]] | None = None
    headers: Mapping[str, str] | None = None

    def to_wire(self) -> dict[str, Any]:
        """What a stream's error frame says (see `_bulk`): the answer's status and body."""
        return {
            "status": self.status,
            "error": self.message,
            "code": self.code,
            **({"details": self.details} if self.details else {}),
        }


def _failure(error: BaseException, where: str) -> _Failure:
    """How a request (`where`, for the log) that raised `error` is answered: ours by kind, anything
    unexpected as a logged 500 without its trace."""
    if isinstance(error, ApiError):
        return _Failure(error.status, str(error), error.code, error.details)
    if isinstance(error, HTTPException):  # raised on purpose, by an auth hook say
        return _Failure(
            error.status_code, str(error.detail), HTTP_CODES.get(error.status_code, "HTTP_ERROR"), headers=error.headers
        )
    if isinstance(error, StorageUnavailableError):
        logger.warning("durably API: %s: %s", where, error)
        retry_after = str(max(1, math.ceil(error.retry_after)))
        return _Failure(503, str(error), error.code, headers={"Retry-After": retry_after})
    if isinstance(error, SchemaVersionError):  # the deployment's mistake (an old server on a new database)
        logger.error("durably API: %s", error)
        return _Failure(503, str(error), error.code, headers={"Retry-After": str(SCHEMA_RETRY_AFTER)})
    if isinstance(error, InvalidInputError):
        return _Failure(400, str(error), error.code, _jsonable(error.errors))
    if isinstance(error, NotFoundError):
        return _Failure(404, str(error), error.code)
    if isinstance(error, ConflictError):
        return _Failure(409, str(error), error.code)
    if isinstance(error, DurablyError):  # InvalidArgumentError and the rest: the caller asked amiss
        return _Failure(400, str(error), error.code)
    if isinstance(error, asyncio.CancelledError):  # a task of the request's, stopped by the server's shutdown
        return _Failure(503, "The server stopped before this ended", HTTP_CODES[503])
    logger.error("durably API: %s failed", where, exc_info=error)
    return _Failure(500, "Internal server error", HTTP_CODES[500])


def _error(
    status: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """`{"error": message, "code": code}` (plus `details` for input errors): clients map by `code`."""
    body: dict[str, Any] = {"error": message, "code": code or HTTP_CODES.get(status, "HTTP_ERROR")}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


SUCCESS = {"success": True}


class _Api:
    def __init__(
        self,
        durably: Durably,
        max_body_bytes: int,
        progress_interval: float,
        keepalive_interval: float,
        auth: DurablyAuth | None,
        expose_error_stack: ExposeErrorStack,
    ) -> None:
        self.durably = durably
        self._max_body = max_body_bytes
        self._progress_interval = progress_interval
        self._keepalive = keepalive_interval
        self._auth = auth
        self._expose_error_stack = expose_error_stack
        self._bulk_runs: set[Any] = set()  # bulk actions in progress (see `_bulk`)

    # -- commands ---------------------------------------------------------------------------------
    @_endpoint
    async def trigger(self, request: Request) -> Response:
        caller = await self._caller(request)
        body = await self._json_body(request)
        job_name = body.get("jobName")
        if not isinstance(job_name, str) or not job_name:
            raise ApiError(400, "jobName is required")
        _params.text("jobName", job_name)
        visible = await self._visible_jobs(caller)
        if self.durably.get_job(job_name) is None or (visible is not None and job_name not in visible):
            raise JobNotFoundError(job_name)  # a job the caller may not see does not exist for it
        keys: dict[str, Any] = {}
        for field, argument in (("idempotencyKey", "idempotency_key"), ("concurrencyKey", "concurrency_key")):
            value = body.get(field)
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"{field} must be a string")
            keys[argument] = None if value is None else _params.text(field, value)
        timing = _params.run_timing(body)
        labels, coalesce = body.get("labels"), body.get("coalesce")
        if labels is not None and not isinstance(labels, dict):
            raise InvalidArgumentError("labels must be a JSON object of strings")
        if coalesce not in (None, "skip"):
            raise InvalidArgumentError('coalesce must be "skip" (or absent)')
        if coalesce and keys["concurrency_key"] is None:
            raise InvalidArgumentError('coalesce "skip" needs a concurrencyKey: the pending run of that key is joined')
        run_input = body.get("input")
        await self._check_can_trigger(caller, job_name, run_input)
        run = await self.durably.trigger(
            job_name,
            {} if run_input is None else run_input,
            **keys,
            scope=await self._scope(caller),
            priority=timing.priority,
            delay=timing.delay,
            run_at=timing.run_at,
            labels=labels,
            coalesce=coalesce,
        )
        return JSONResponse({"runId": run.id, "disposition": run.disposition})

    @_endpoint
    async def retry(self, request: Request) -> Response:
        _no_body(request)
        run = await self._visible_run(request)
        await self.durably.retry(run.id)
        return JSONResponse(SUCCESS)

    @_endpoint
    async def cancel(self, request: Request) -> Response:
        _no_body(request)
        run = await self._visible_run(request)
        await self.durably.cancel(run.id)
        return JSONResponse(SUCCESS)

    @_endpoint
    async def delete_run(self, request: Request) -> Response:
        _no_body(request)
        run = await self._visible_run(request)
        await self.durably.delete_run(run.id)
        return JSONResponse(SUCCESS)

    @_endpoint
    async def signal(self, request: Request) -> Response:
        """`{"runId", "name", "payload"}`: the signal a run's `step.wait_for_signal(name)` returns."""
        caller = await self._caller(request)
        body = await self._json_body(request)
        run_id = _params.body_text(body, "runId", required=True)
        name = _params.body_text(body, "name", required=True)
        assert run_id is not None and name is not None
        run = await self._readable_run(caller, run_id)
        payload = body.get("payload")
        can_signal = None if self._auth is None else self._auth.can_signal
        if can_signal is not None and not await _call(can_signal, caller, run, name, payload):
            raise ApiError(403, f'Not allowed to send the signal "{name}" to run {run_id}')
        await self.durably.signal(run.id, name, payload)
        return JSONResponse(SUCCESS)

    @_endpoint
    async def replay(self, request: Request) -> Response:
        """`{"runId", "fromStep"?}`: a new run of the same job, input, labels and tenant whose steps
        before `fromStep` are copied from this run and the rest run anew (`durably.replay`); a
        trigger, so `can_trigger` is asked. Answers the new run."""
        caller = await self._caller(request)
        body = await self._json_body(request)
        run_id = _params.body_text(body, "runId", required=True)
        from_step = _params.body_text(body, "fromStep")
        assert run_id is not None
        run = await self._readable_run(caller, run_id)
        await self._check_can_trigger(caller, run.job_name, run.input)
        replayed = await self.durably.replay(run.id, from_step=from_step, scope=await self._scope(caller))
        return JSONResponse(_wire(replayed, await self._shows_stack(caller)))

    @_endpoint
    async def attempts(self, request: Request) -> Response:
        """A run's earlier attempts, first first: how each ended before a retry."""
        run_id = _run_id(request)
        caller = await self._caller(request)
        run = await self._readable_run(caller, run_id)
        stack = await self._shows_stack(caller)
        return JSONResponse([_wire(attempt, stack) for attempt in await self.durably.get_attempts(run.id)])

    # -- bulk actions ----------------------------------------------------------------------------
    @_endpoint
    async def bulk_retry(self, request: Request) -> Answer:
        return await self._bulk(request, "retry")

    @_endpoint
    async def bulk_cancel(self, request: Request) -> Answer:
        return await self._bulk(request, "cancel")

    @_endpoint
    async def bulk_delete(self, request: Request) -> Answer:
        return await self._bulk(request, "delete")

    async def _bulk(self, request: Request, action: BulkAction) -> Answer:
        """`{"runIds": [...]}` or `{"filter": {...}}` (and `batchSize`), worked through in batches
        by a task of its own (see `_bulk`): streamed progress for `Accept: text/event-stream`,
        else the final counts."""
        caller = await self._caller(request)
        bulk = BulkRequest.from_json(await self._json_body(request))
        scope = await self._scope(caller)
        visible = await self._visible_jobs(caller)
        can_access_run = None if self._auth is None else self._auth.can_access_run
        if bulk.filter is not None:  # jobs the caller may not see are left out of the query itself
            kept = bulk.filter.within_jobs(visible)
            # None: the filter can match no run the caller may see, so the action is one on no ids.
            bulk = replace(bulk, filter=kept) if kept is not None else BulkRequest((), None, bulk.batch_size)
            judge = None if can_access_run is None else _run_judge(caller, None, can_access_run)
        else:
            judge = None if visible is None and can_access_run is None else _run_judge(caller, visible, can_access_run)

        async def work(progress: Callable[[BulkResult], None]) -> BulkResult:
            return await run_bulk(self.durably, action, bulk, scope=scope, judge=judge, on_progress=progress)

        running = BulkRun(action, work, self._bulk_runs)
        if "text/event-stream" not in request.headers.get("accept", ""):
            return JSONResponse((await running.result()).to_wire())
        where = f"{request.method} {request.url.path}"
        return EventStreamResponse(running.frames(self._keepalive, lambda error: _failure(error, where).to_wire()))

    # -- schedules --------------------------------------------------------------------------------
    @_endpoint
    async def schedules(self, request: Request) -> Response:
        """Every schedule of the jobs the caller sees (none for a caller with a scope: see `DurablyAuth`)."""
        caller = await self._caller(request)
        if await self._scope(caller) is not None:
            return JSONResponse([])
        visible = await self._visible_jobs(caller)
        schedules = await self.durably.get_schedules()
        return JSONResponse([item.to_wire() for item in schedules if visible is None or item.job_name in visible])

    @_endpoint
    async def create_schedule(self, request: Request) -> Response:
        """`{"jobName", "cron", "input"?, "name"?, "timezone"?, "catchUp"?}`: create the schedule, or
        update the one of that name (named after the job by default)."""
        caller = await self._caller(request)
        body = await self._json_body(request)
        job_name = _params.body_text(body, "jobName", required=True)
        cron = _params.body_text(body, "cron", required=True)
        assert job_name is not None and cron is not None
        name = _params.body_text(body, "name")
        timezone = _params.body_text(body, "timezone")
        catch_up = _params.body_text(body, "catchUp")
        visible = await self._visible_jobs(caller)
        if self.durably.get_job(job_name) is None or (visible is not None and job_name not in visible):
            raise JobNotFoundError(job_name)
        if await self._scope(caller) is not None:
            raise ApiError(403, "Schedules belong to no tenant: a caller with a scope may not create one")
        run_input = body.get("input")
        await self._check_can_trigger(caller, job_name, run_input)
        schedules = await self.durably.get_schedules()
        existing = next((item for item in schedules if item.name == (name or job_name)), None)
        if existing is not None:  # an update: the caller must be allowed the schedule it replaces too
            if visible is not None and existing.job_name not in visible:
                raise ApiError(403, f'Not allowed to change the schedule "{existing.name}"')
            await self._check_can_trigger(caller, existing.job_name, existing.input)
        schedule = await self.durably.schedule(
            job_name,
            cron,
            {} if run_input is None else run_input,
            name=name,
            timezone="UTC" if timezone is None else timezone,
            catch_up="once" if catch_up is None else catch_up,  # type: ignore[arg-type]  # the engine checks it
        )
        return JSONResponse(schedule.to_wire())

    @_endpoint
    async def pause_schedule(self, request: Request) -> Response:
        schedule = await self._managed_schedule(request)
        return JSONResponse((await self.durably.pause_schedule(schedule.name)).to_wire())

    @_endpoint
    async def resume_schedule(self, request: Request) -> Response:
        schedule = await self._managed_schedule(request)
        return JSONResponse((await self.durably.resume_schedule(schedule.name)).to_wire())

    @_endpoint
    async def delete_schedule(self, request: Request) -> Response:
        schedule = await self._managed_schedule(request)
        await self.durably.delete_schedule(schedule.name)
        return JSONResponse(SUCCESS)

    async def _managed_schedule(self, request: Request) -> Schedule:
        """The schedule `?name=` names, if the caller sees it (else 404) and may trigger its job (else 403)."""
        _no_body(request)
        name = _single_text(request, "name")
        if name is None:
            raise InvalidArgumentError("name query parameter is required")
        caller = await self._caller(request)
        schedule = None
        if await self._scope(caller) is None:  # a tenant sees no schedule
            visible = await self._visible_jobs(caller)
            schedule = next((item for item in await self.durably.get_schedules() if item.name == name), None)
            if schedule is not None and visible is not None and schedule.job_name not in visible:
                schedule = None  # one the caller may not see does not exist for it
        if schedule is None:
            raise ScheduleNotFoundError(name)
        await self._check_can_trigger(caller, schedule.job_name, schedule.input)
        return schedule

    # -- queries ----------------------------------------------------------------------------------
    @_endpoint
    async def runs(self, request: Request) -> Response:
        """Runs newest first, filtered by job, status, labels, id prefix, creation time, fields of
        the input and the run they replay (see `_run_filter`)."""
        caller = await self._caller(request)
        params = request.query_params
        run_filter = RunFilter.from_query(params).within_jobs(await self._visible_jobs(caller))
        limit = _params.LIMIT.read(params)
        offset = _params.OFFSET.read(params)
        if run_filter is None:
            return JSONResponse([])
        runs = await self.durably.get_runs(
            **run_filter.arguments(), limit=limit, offset=offset, scope=await self._scope(caller)
        )
        if self._auth is not None and self._auth.can_access_run is not None:
            # Filtered after the page is read: a page may come back short (use visible_jobs to scope
            # whole jobs in the query itself).
            runs = [run for run in runs if await _call(self._auth.can_access_run, caller, run)]
        stack = await self._shows_stack(caller)
        return JSONResponse([_wire(run, stack) for run in runs])

    @_endpoint
    async def stats(self, request: Request) -> Response:
        """Counts per status and job, and a series of runs created per bucket (see `get_run_stats`)."""
        caller = await self._caller(request)
        params = request.query_params
        bucket_seconds = _params.BUCKET_SECONDS.read(params)
        buckets = _params.BUCKETS.read(params)
        job_names: list[str] | None = _params.text_values("jobName", params.getlist("jobName")) or None
        visible = await self._visible_jobs(caller)
        if visible is not None:  # a list, even empty: what the caller may not see counts as nothing
            job_names = [name for name in job_names if name in visible] if job_names else sorted(visible)
        stats = await self.durably.get_run_stats(
            job_names, bucket_seconds=bucket_seconds, buckets=buckets, scope=await self._scope(caller)
        )
        return JSONResponse(stats.to_wire())

    @_endpoint
    async def run(self, request: Request) -> Response:
        run_id = _run_id(request)
        caller = await self._caller(request)
        run = await self._readable_run(caller, run_id)
        return JSONResponse(_wire(run, await self._shows_stack(caller)))

    @_endpoint
    async def steps(self, request: Request) -> Response:
        run_id = _run_id(request)
        caller = await self._caller(request)
        run = await self._readable_run(caller, run_id)
        stack = await self._shows_stack(caller)
        return JSONResponse([_wire(step, stack) for step in await self.durably.get_steps(run.id)])

    @_endpoint
    async def logs(self, request: Request) -> Response:
        run = await self._visible_run(request)
        after = _single_text(request, "after")
        limit = _params.LOG_LIMIT.read(request.query_params)
        logs = await self.durably.get_logs(run.id, after_id=after, limit=limit)
        return JSONResponse([entry.to_wire() for entry in logs])

    @_endpoint
    async def jobs(self, request: Request) -> Response:
        visible = await self._visible_jobs(await self._caller(request))
        return JSONResponse(
            [
                {
                    "name": handle.name,
                    "inputSchema": handle.definition.input_schema(),
                    "outputSchema": handle.definition.output_schema(),
                    "signals": handle.definition.signal_schemas(),
                }
                for handle in {id(h): h for h in self.durably.jobs.values()}.values()
                if visible is None or handle.name in visible
            ]
        )

    def openapi(self, base: str) -> Handler:
        """The OpenAPI document, typing the inputs of the jobs the caller may see (made once per
        set of jobs: registering more later shows them)."""
        documents: dict[tuple[str, ...], dict[str, Any]] = {}

        @_endpoint
        async def serve(self: _Api, request: Request) -> Response:
            visible = await self._visible_jobs(await self._caller(request))
            jobs = [job for job in self._definitions() if visible is None or job.name in visible]
            key = tuple(sorted(job.name for job in jobs))
            if key not in documents:
                if len(documents) > 64:
                    documents.clear()
                documents[key] = openapi_document(base, jobs)
            return JSONResponse(documents[key])

        return functools.partial(serve, self)

    def _definitions(self) -> list[JobDefinition]:
        """Each registered job once (one may be registered under several keys)."""
        return list({id(handle): handle.definition for handle in self.durably.jobs.values()}.values())

    # -- streams ----------------------------------------------------------------------------------
    @_endpoint
    async def subscribe(self, request: Request) -> Answer:
        """One run's events: the run as it stands first, then everything after, until it completes.

        A fresh viewer gets a `run:snapshot`, then the same state told as Durably 0.7 events (see
        `_replay`), then live events the snapshot does not already reflect. A viewer resuming with
        `Last-Event-ID` has that state: it gets the snapshot, then every event after its id (of a
        completed run too, through its `run:complete`)."""
        run_id = _run_id(request)
        caller = await self._caller(request)
        # Listen first, read second: whatever happens in between arrives on the feed (perhaps twice).
        resume_after = _last_event_id(request)
        subscription = await self.durably.feed.subscribe(run_id=run_id, after=resume_after)
        try:
            stored, shown_through = await self.durably.get_run_snapshot(run_id, scope=await self._scope(caller))
            run = await self._check_readable(caller, run_id, stored)
            stack = await self._shows_stack(caller)
            opening = [{"type": RUN_SNAPSHOT, "runId": run.id, "jobName": run.job_name, "run": _wire(run, stack)}]
            guard = None
            if resume_after is None:  # a fresh viewer: events the snapshot already shows would go back in time
                subscription.skip_through(shown_through)
                replayed, guard = await self._replay(run, stack)
                opening += replayed
        except BaseException:
            subscription.close()
            raise
        frames = self._run_frames(
            run, b"".join(map(frame, opening)), subscription, guard, stack, resume_after is not None
        )
        return EventStreamResponse(frames)

    async def _replay(self, run: Run, stack: bool) -> tuple[list[Event], ReplayGuard]:
        """The run told as Durably 0.7 events, and the guard that keeps live events from repeating them.
        Logs are read after the snapshot: any that are newer arrive live too, and the guard drops them."""
        logs = await self.durably.get_logs(run.id)
        step_name = None
        if run.status is RunStatus.FAILED:
            step_name = failed_step_name(run, await self.durably.get_steps(run.id))
        events = replay_events(run, logs, failed_step_name=step_name, error_stack=stack)
        return events, ReplayGuard(run, [entry.id for entry in logs])

    async def _run_frames(
        self,
        run: Run,
        opening: bytes,
        subscription: FeedSubscription,
        guard: ReplayGuard | None,
        stack: bool,
        resumed: bool,
    ) -> AsyncIterator[bytes]:
        """The opening, then the run's events until it ends. A fresh viewer of a completed run has
        been told everything; one resuming it is sent what it missed of it."""

        def render(item: FeedItem) -> bytes:
            if item.type == RUN_FAIL and not stack:
                return frame({**item.event, "errorStack": None}, item.id)
            return _full_frame(item)

        completed = run.status is RunStatus.COMPLETED
        try:
            yield opening
            if not completed or resumed:
                admit = None if guard is None else guard.admit
                quiet_end = _COMPLETED_RESUME_GRACE if completed else None
                async for chunk in self._stream(
                    subscription, render, end_on=_RUN_ENDED, admit=admit, quiet_end=quiet_end
                ):
                    yield chunk
        finally:
            subscription.close()

    @_endpoint
    async def subscribe_runs(self, request: Request) -> Answer:
        """Reduced notifications of every run (or one job's, or those with the labels asked for,
        `label.<key>=<value>`): a signal to refresh lists. `type` (repeatable) keeps only those
        event types: a page that only switches to new runs need not be sent every progress update.

        Whether the caller may see a run (its scope, `can_access_run`) and whether the run carries
        the labels is judged once per run, by reading it at its first event on this stream. A run
        deleted before that cannot be read: its `run:delete` is still sent when only labels filter
        (news of a run a list does not show is harmless), never when access rules apply."""
        caller = await self._caller(request)
        job_name = _single_text(request, "jobName")
        types = _event_types(request.query_params.getlist("type"))
        labels = labels_from_query(request.query_params)
        visible = await self._visible_jobs(caller)
        scope = await self._scope(caller)
        can_access_run = None if self._auth is None else self._auth.can_access_run
        guarded = scope is not None or can_access_run is not None
        decided: dict[str, bool] = {}

        async def judge(item: FeedItem) -> bool:
            run = await self.durably.get_run(item.run_id, scope=scope)
            if run is None:
                return not guarded and item.type == RUN_DELETE
            if any(run.labels.get(key) != value for key, value in labels.items()):
                return False
            return can_access_run is None or bool(await _call(can_access_run, caller, run))

        async def admit(item: FeedItem) -> bool:
            if (job_name is not None and item.job_name != job_name) or (
                visible is not None and item.job_name not in visible
            ):
                return False
            if types is not None and item.type not in types:
                return False
            if not (guarded or labels):
                return True
            if item.run_id not in decided:
                if len(decided) > 10_000:
                    decided.clear()
                decided[item.run_id] = await judge(item)
            return decided[item.run_id]

        filtered = job_name is not None or visible is not None or types is not None or guarded or bool(labels)
        subscription = await self.durably.feed.subscribe(after=_last_event_id(request))

        # Unfiltered, every event goes: no call per event (the stream's cost grows with its events).
        frames = self._stream(subscription, _reduced_frame, end_on=frozenset(), admit=admit if filtered else None)
        return EventStreamResponse(frames)

    async def _stream(
        self,
        subscription: FeedSubscription,
        render: Callable[[FeedItem], bytes],
        *,
        end_on: frozenset[str],
        admit: Callable[[FeedItem], Awaitable[bool]] | None = None,
        quiet_end: float | None = None,
    ) -> AsyncIterator[bytes]:
        """Frames of feed items, all that are ready sent in one write, ids only increasing;
        `run:progress` throttled per run by `ProgressThrottle` (a held progress goes out when due
        or before the stream's next frame); a keep-alive comment whenever the stream has been
        quiet for `keepalive`. With `quiet_end`, it ends once no item has come for that long. It
        closes the subscription when it ends, however it ends."""
        throttle = ProgressThrottle(self._progress_interval)
        last_write = last_item = time.monotonic()
        end_at = math.inf
        try:
            while True:
                if quiet_end is not None:
                    end_at = last_item + quiet_end
                wake_at = min(last_write + self._keepalive, throttle.wake_at, end_at)
                batch = await subscription.next_batch(timeout=max(0.0, wake_at - time.monotonic()))
                if subscription.ended:
                    return
                now = time.monotonic()
                if batch:
                    last_item = now
                elif now >= end_at:
                    if held := throttle.release_due(math.inf):
                        yield b"".join(map(render, held))
                    return
                if admit is not None:
                    batch = [item for item in batch if await admit(item)]
                complete = False
                if end_on:
                    ending = next((at for at, item in enumerate(batch) if item.type in end_on), None)
                    if ending is not None:
                        complete = True
                        batch = batch[: ending + 1]
                # One pass per batch, not per item: with hundreds of streams, per-item work is what costs.
                ready = throttle.admit_all(batch, now) + throttle.release_due(now)
                if ready:
                    last_write = now
                    yield b"".join(map(render, ready))
                elif now >= last_write + self._keepalive:
                    last_write = now
                    yield KEEP_ALIVE
                if complete:
                    return
        finally:
            subscription.close()

    # -- access -----------------------------------------------------------------------------------
    async def _caller(self, request: Request) -> Any:
        if self._auth is None:
            return None
        try:
            caller = await _call(self._auth.authenticate, request)
        except (ApiError, HTTPException, StorageUnavailableError):
            raise  # raised on purpose (or the database is away, a 503): its status and message stand
        except Exception:
            # A bug in the hook, or what it calls: logged, never shown (its text may say too much).
            logger.exception("durably API: the authenticate hook raised on %s %s", request.method, request.url.path)
            raise ApiError(401, "Unauthorized") from None
        if caller is None:
            raise ApiError(401, "Unauthorized")
        return caller

    async def _check_can_trigger(self, caller: Any, job_name: str, run_input: Any) -> None:
        can_trigger = None if self._auth is None else self._auth.can_trigger
        if can_trigger is not None and not await _call(can_trigger, caller, job_name, run_input):
            raise ApiError(403, f"Not allowed to trigger {job_name}")

    async def _visible_jobs(self, caller: Any) -> set[str] | None:
        if self._auth is None or self._auth.visible_jobs is None:
            return None
        names = await _call(self._auth.visible_jobs, caller)
        return None if names is None else set(names)

    async def _visible_run(self, request: Request) -> Run:
        run_id = _run_id(request)
        return await self._readable_run(await self._caller(request), run_id)

    async def _readable_run(self, caller: Any, run_id: str) -> Run:
        run = await self.durably.get_run(run_id, scope=await self._scope(caller))
        return await self._check_readable(caller, run_id, run)

    async def _shows_stack(self, caller: Any) -> bool:
        """Whether this caller is sent tracebacks (see `create_durably_handler`'s `expose_error_stack`)."""
        expose = self._expose_error_stack
        return expose if isinstance(expose, bool) else bool(await _call(expose, caller))

    async def _scope(self, caller: Any) -> str | None:
        """The caller's tenant (see `DurablyAuth.scope`); None: the caller sees every run."""
        if self._auth is None or self._auth.scope is None:
            return None
        scope = await _call(self._auth.scope, caller)
        if scope is not None and not (isinstance(scope, str) and 0 < len(scope) <= MAX_KEY_LENGTH):
            # The deployment's bug, not the caller's: a logged 500, not a 400.
            raise TypeError(f"DurablyAuth.scope must return None or a non-empty string, got {scope!r}")
        return scope

    async def _check_readable(self, caller: Any, run_id: str, run: Run | None) -> Run:
        """`run`, if it exists and the caller may see it; otherwise "not found" (hiding that it exists)."""
        if run is None:
            raise RunNotFoundError(run_id)
        if self._auth is not None:
            visible = await self._visible_jobs(caller)
            allowed = visible is None or run.job_name in visible
            if allowed and self._auth.can_access_run is not None:
                allowed = bool(await _call(self._auth.can_access_run, caller, run))
            if not allowed:
                raise RunNotFoundError(run_id)
        return run

    async def _json_body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object: `application/json` in UTF-8 only (a form or `text/plain` post,
        which a browser sends cross-site without asking, is refused), at most `max_body_bytes`."""
        _require_json(request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            raise ApiError(413, f"Request body is larger than {self._max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                raise ApiError(413, f"Request body is larger than {self._max_body} bytes")
            chunks.append(chunk)
        return _parse_json_object(b"".join(chunks))


def reduce_event(event: Event) -> dict[str, Any]:
    """The light form `/runs/subscribe` sends: enough to refresh a list or update a row in place."""
    event_type = event["type"]
    reduced = {"type": event_type, "runId": event.get("runId"), "jobName": event.get("jobName")}
    if event_type == RUN_PROGRESS:
        reduced["progress"] = event.get("progress")
    elif event_type.startswith("step:"):
        reduced.update(stepName=event.get("stepName"), stepIndex=event.get("stepIndex"))
        if event_type == "step:fail":
            reduced["error"] = event.get("error")
    elif event_type == "log:write":
        reduced.update(
            stepName=event.get("stepName"),
            level=event.get("level"),
            message=event.get("message"),
            data=event.get("data"),
        )
    elif event_type == RUN_WAIT:
        reduced["waitingFor"] = event.get("waitingFor")
    elif event_type == RUN_SIGNAL:
        reduced["name"] = event.get("name")
    elif event_type == RUN_TRIGGER and event.get("schedule") is not None:
        reduced["schedule"] = event["schedule"]
    return reduced


def _run_judge(
    caller: Any, visible: set[str] | None, can_access_run: Callable[[Any, Run], Any] | None
) -> Callable[[Run], Awaitable[bool]]:
    """Whether the caller may act on a run: its job visible, and `can_access_run` agreeing."""

    async def judge(run: Run) -> bool:
        if visible is not None and run.job_name not in visible:
            return False
        return can_access_run is None or bool(await _call(can_access_run, caller, run))

    return judge


def _wire(record: Run | Step | Attempt, stack: bool) -> dict[str, Any]:
    """The record's wire form; its `errorStack` null unless the caller may see tracebacks."""
    wire = record.to_wire()
    if not stack:
        wire["errorStack"] = None
    return wire


def _full_frame(item: FeedItem) -> bytes:
    """The event exactly as logged: no decoding, no encoding."""
    return b"id: %d\ndata: %s\n\n" % (item.id, item.body)


@functools.lru_cache(maxsize=4096)
def _reduced_frame(item: FeedItem) -> bytes:
    """Made once per event, however many streams send it."""
    return frame(reduce_event(item.event), item.id)


def _run_id(request: Request) -> str:
    run_id = _single_text(request, "runId")
    if run_id is None:
        raise InvalidArgumentError("runId query parameter is required")
    return run_id


def _single_text(request: Request, name: str) -> str | None:
    """A query parameter given at most once, checked by `_params.text` (None: absent or empty)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidArgumentError(f"{name} is given {len(values)} times: give it once")
    return _params.text(name, values[0]) if values and values[0] else None


def _event_types(requested: list[str]) -> frozenset[str] | None:
    """The event types a stream is limited to (None: all); an unknown type is the caller's mistake."""
    wanted = frozenset(_params.text_values("type", (part for value in requested for part in value.split(","))))
    if unknown := sorted(wanted - set(EVENT_TYPES)):
        raise InvalidArgumentError(f"unknown event type {unknown[0]!r}; expected some of {', '.join(EVENT_TYPES)}")
    return wanted or None


def _last_event_id(request: Request) -> int | None:
    """Where a reconnecting stream resumes (None: a fresh viewer, as with an empty id, which an
    EventSource never sends); a malformed id is a 400."""
    raw = request.headers.get("last-event-id", "").strip()
    return _params.LAST_EVENT_ID.parse(raw) if raw else None


def _require_json(request: Request) -> None:
    """415 unless the body is declared `application/json` (charset, if named, utf-8)."""
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    if media_type.strip().lower() != "application/json":
        raise ApiError(415, "The body must be application/json")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ApiError(415, "The body must be UTF-8 encoded JSON")


def _no_body(request: Request) -> None:
    """Commands that take no body (retry, cancel, delete) still refuse a form or text post: the
    kind of request a browser sends cross-site without asking first."""
    if "content-type" in request.headers:
        _require_json(request)


def _parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from strict UTF-8 (no byte-order mark, no UTF-16), without NaN or Infinity,
    whose every string is valid Unicode (so every backend can store it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"The body is not UTF-8: {error.reason} at byte {error.start}") from None
    if text.startswith("\ufeff"):
        raise ApiError(400, "The body must not start with a byte-order mark")
    try:
        body = json.loads(text or "null", parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise ApiError(400, f"Malformed JSON body: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object")
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "The body holds a lone surrogate (\\uD800-\\uDFFF): not valid Unicode text") from None
    except RecursionError:
        raise ApiError(400, "The body is nested too deeply") from None
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Unrouted:
    """404 for a path we do not serve; for a path we do, 405 for a method it does not take and 204
    for OPTIONS, both with `Allow` naming every method of the path."""

    def __init__(self, allowed: dict[str, list[str]]) -> None:
        self._allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        methods = self._allowed.get(path)
        response: Response
        if not methods:
            response = _error(404, f"Not found: {method} {path}")
        elif method == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": ", ".join(methods)})
        else:
            response = _error(405, f"{method} is not allowed on {path}: use {', '.join(methods)}")
            response.headers["Allow"] = ", ".join(methods)
        await response(scope, receive, send)


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    result = function(*args)
    return await result if inspect.isawaitable(result) else result
