"""The OpenAPI 3.1 document of the HTTP API (served at `<base>/openapi.json`), precise enough for
tools to trust: each job's input typed (the `/trigger` body is a choice per `jobName`), every status
code and error body a route answers declared, a response schema for every route, and links from
`/trigger`'s `runId` to the run routes. A schema-driven fuzzer holds the server to it
(tests/test_fuzz.py).

Parameter bounds come from `_params`, so the document and the server cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import _params
from ._engine import MAX_DELAY_SECONDS, MAX_PRIORITY
from ._events import EVENT_TYPES
from ._jobs import JobDefinition
from ._records import LogEntry, Run, RunStats, RunStatus, Schedule, Step
from ._schedules import CATCH_UP_POLICIES

_ERROR = {"$ref": "#/components/schemas/Error"}
_SUCCESS = {"type": "object", "properties": {"success": {"const": True}}, "required": ["success"]}
_TEXT = _params.TEXT_SCHEMA
_RUN_ID = {"name": "runId", "in": "query", "required": True, "schema": {**_TEXT, "minLength": 1}}
_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "description": "Resume after this event id (as an EventSource sends it on reconnecting)",
    "schema": {"type": "string", "pattern": "^[0-9]{0,19}$"},
}
_SSE = {
    "description": "Server-Sent Events: `id: <n>` and `data: <JSON event>` lines, until the stream ends",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
_REASONS = {
    400: "Bad request: a malformed or out-of-range parameter or body (`details`: the input's errors)",
    401: "Unauthorized: the authenticate hook refused the caller",
    403: "Forbidden: an auth hook (can_trigger, can_signal) refused",
    404: "Not found: no such run, job or schedule (or one the caller may not see)",
    409: "Conflict with the run's status (or a signal sent already: SIGNAL_ALREADY_SENT)",
    413: "Body too large",
    415: "The body is not UTF-8 application/json",
    503: "The database cannot be reached: try again after Retry-After seconds",
}
# What every route may answer besides its own: a refused caller, an unreachable database.
_ALWAYS = (401, 503)
# What a `/subscribe` stream sends, in order (README, "HTTP API and client").
_SUBSCRIBE = (
    "A fresh viewer first gets a `run:snapshot` frame (`run`: the whole run), then the run's state as the "
    "Durably 0.7 events its client reads: `run:start` if the run has started and is not pending, its latest "
    "`run:progress`, its stored logs as `log:write`, and `run:complete`, `run:fail` or `run:cancel` if it has "
    "settled. These frames carry `replayed: true` and `sequence: 0`, and no SSE `id`. Then live events, each "
    "once (none repeating what the replay told), until `run:complete` or `run:delete`; a completed run's stream "
    "closes after the replay. A viewer resuming with `Last-Event-ID` gets the snapshot, then every event after "
    "that id."
)
_ERROR_STACK = (
    "The failure's traceback; null unless the server exposes tracebacks to this caller "
    "(`create_durably_handler(expose_error_stack=...)`, off by default)"
)
# The run routes `/trigger`'s answer links to, by operation id.
_RUN_LINKS = ("getRun", "getSteps", "getLogs", "subscribeRun", "retryRun", "cancelRun", "deleteRun")
_SCHEDULE_NAME = {
    "name": "name",
    "in": "query",
    "required": True,
    "schema": {**_TEXT, "minLength": 1},
    "description": "The schedule's name",
}
_TIMING = {
    "priority": {
        "type": "integer",
        "minimum": -MAX_PRIORITY,
        "maximum": MAX_PRIORITY,
        "default": 0,
        "description": "Workers take higher priorities first, then the first ready",
    },
    "delay": {
        "type": "number",
        "minimum": 0,
        "maximum": MAX_DELAY_SECONDS,
        "description": "Seconds to wait before the run may start (not with runAt)",
    },
    "runAt": {
        "type": "string",
        "format": "date-time",
        "maxLength": _params.MAX_TIME_LENGTH,
        "description": "When the run may start, with its offset (not with delay); a past time: at once",
    },
}
_SIGNAL_BODY = {
    "type": "object",
    "properties": {
        "runId": {**_TEXT, "minLength": 1},
        "name": {**_TEXT, "minLength": 1, "description": "The signal the run waits for (or will)"},
        "payload": {
            "description": "JSON for the run's wait_for_signal; checked against the payload model the run's "
            "job declares for this signal (GET /jobs: `signals`), a 400 INVALID_INPUT naming each bad field"
        },
    },
    "required": ["runId", "name"],
}
_WAITS = (
    "Beyond Durably 0.7's events: `run:wait` (`waitingFor`: the run waits for a delay, a sleep, a signal or "
    "a failed step's next attempt, and is pending again; its next `run:start` ends the wait), `run:signal` "
    "(`name`: a signal came), and a scheduled run's `run:trigger` names its `schedule`."
)


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    responses = {str(code): _json(_ERROR, _REASONS[code]) for code in sorted({*codes, *_ALWAYS})}
    responses["503"]["headers"] = {
        "Retry-After": {"description": "Seconds to wait", "schema": {"type": "string", "pattern": "^[0-9]+$"}}
    }
    return responses


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "responses": responses}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _bounded(bound: _params.Bounded, description: str | None = None) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": bound.name, "in": "query", "schema": bound.schema()}
    if description:
        parameter["description"] = description
    return parameter


def _repeated(name: str, items: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": "array", "items": items, "maxItems": _params.MAX_FILTER_VALUES},
        "style": "form",
        "explode": True,
    }


def openapi_document(base: str, jobs: Iterable[JobDefinition] = ()) -> dict[str, Any]:
    """The document for the API under `base` serving `jobs` (their inputs type `/trigger`)."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {"type": "string", "description": "A clear message"},
                "code": {"type": "string", "pattern": "^[A-Z][A-Z_]*$", "description": "Stable: map errors by it"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["error", "code"],
        },
        "Success": _SUCCESS,
        # Validation mode: the records' catch-all timestamp serializer would make every serialization schema `{}`.
        **{
            model.__name__: model.model_json_schema(
                by_alias=True, mode="validation", ref_template="#/components/schemas/{model}"
            )
            for model in (Run, Step, LogEntry, RunStats, Schedule)
        },
    }
    for schema in list(schemas.values()):
        schemas.update(schema.pop("$defs", {}))
    for record in ("Run", "Step"):
        schemas[record]["properties"]["errorStack"]["description"] = _ERROR_STACK
    inputs = _job_inputs(list(jobs), schemas)
    trigger_body = _choice_per_job("Trigger", inputs, _trigger_properties, schemas)
    schedule_body = _choice_per_job("Schedule", inputs, _schedule_properties, schemas, required=("jobName", "cron"))
    array = lambda name: {"type": "array", "items": _ref(name)}  # noqa: E731
    statuses = {"enum": [status.value for status in RunStatus]}
    list_params = [
        _repeated("jobName", _TEXT, "Only runs of these jobs"),
        _repeated("status", statuses, "Only runs in these statuses"),
        _bounded(_params.LIMIT),
        _bounded(_params.OFFSET),
    ]
    stats_params = [
        _repeated("jobName", _TEXT, "Count only these jobs (default: every job the caller may see)"),
        _bounded(
            _params.BUCKET_SECONDS,
            "Length of a series bucket; buckets are aligned to multiples of it since the epoch (UTC)",
        ),
        _bounded(_params.BUCKETS, "Buckets in the series, the last one holding the current time"),
    ]
    links = {
        f"{operation_id[0].upper()}{operation_id[1:]}": {
            "operationId": operation_id,
            "parameters": {"runId": "$response.body#/runId"},
        }
        for operation_id in _RUN_LINKS
    }
    run_id_answer = {"type": "object", "properties": {"runId": {"type": "string"}}, "required": ["runId"]}
    paths = {
        "/trigger": {
            "post": _operation(
                "trigger",
                "Create a run (or find the run of the same idempotency key)",
                {"200": {**_json(run_id_answer), "links": links}, **_errors(400, 403, 404, 413, 415)},
                body=trigger_body,
            )
        },
        "/runs": {
            "get": _operation(
                "listRuns", "List runs, newest first", {"200": _json(array("Run")), **_errors(400)}, list_params
            )
        },
        "/stats": {
            "get": _operation(
                "getStats",
                "Runs per status and job, and runs created per time bucket and status",
                {"200": _json(_ref("RunStats")), **_errors(400)},
                stats_params,
            )
        },
        "/run": {
            "get": _operation("getRun", "Get a run", {"200": _json(_ref("Run")), **_errors(400, 404)}, [_RUN_ID]),
            "delete": _operation(
                "deleteRun",
                "Delete a finished run",
                {"200": _json(_ref("Success")), **_errors(400, 404, 409, 415)},
                [_RUN_ID],
            ),
        },
        "/steps": {
            "get": _operation(
                "getSteps", "A run's steps, in order", {"200": _json(array("Step")), **_errors(400, 404)}, [_RUN_ID]
            )
        },
        "/logs": {
            "get": _operation(
                "getLogs",
                "A run's stored logs, oldest first",
                {"200": _json(array("LogEntry")), **_errors(400, 404)},
                [
                    _RUN_ID,
                    {"name": "after", "in": "query", "schema": _TEXT, "description": "Only logs after this log id"},
                    _bounded(_params.LOG_LIMIT),
                ],
            )
        },
        "/jobs": {
            "get": _operation(
                "listJobs",
                "Registered jobs with their input and output JSON Schemas",
                {
                    "200": _json(
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "inputSchema": {"type": ["object", "null"]},
                                    "outputSchema": {"type": ["object", "null"]},
                                    "signals": {
                                        "type": "object",
                                        "additionalProperties": {"type": "object"},
                                        "description": "The JSON Schema of each signal's payload the job "
                                        "declares, by signal name (what a form to send it is built from)",
                                    },
                                },
                                "required": ["name", "inputSchema", "outputSchema", "signals"],
                            },
                        }
                    ),
                    **_errors(),
                },
            )
        },
        "/retry": {
            "post": _operation(
                "retryRun",
                "Retry a failed or cancelled run",
                {"200": _json(_ref("Success")), **_errors(400, 404, 409, 415)},
                [_RUN_ID],
            )
        },
        "/cancel": {
            "post": _operation(
                "cancelRun",
                "Cancel a pending or running run",
                {"200": _json(_ref("Success")), **_errors(400, 404, 409, 415)},
                [_RUN_ID],
            )
        },
        "/signal": {
            "post": _operation(
                "signalRun",
                "Send a signal to a run (kept until the run waits for it)",
                {"200": _json(_ref("Success")), **_errors(400, 403, 404, 409, 413, 415)},
                body=_SIGNAL_BODY,
                description="409 RUN_STATE_CONFLICT for a finished run, SIGNAL_ALREADY_SENT for a second "
                "signal to one wait; 403 when the server's can_signal refuses.",
            )
        },
        "/schedules": {
            "get": _operation(
                "listSchedules",
                "Schedules of the jobs the caller sees, by name",
                {"200": _json(array("Schedule")), **_errors()},
            ),
            "post": _operation(
                "createSchedule",
                "Trigger a job on a cron expression (scheduling again under a name updates that schedule)",
                {"200": _json(_ref("Schedule")), **_errors(400, 403, 404, 413, 415)},
                body=schedule_body,
            ),
            "delete": _operation(
                "deleteSchedule",
                "Delete a schedule (the runs it created stay)",
                {"200": _json(_ref("Success")), **_errors(400, 403, 404, 415)},
                [_SCHEDULE_NAME],
            ),
        },
        "/schedules/pause": {
            "post": _operation(
                "pauseSchedule",
                "Fire no more ticks until resumed",
                {"200": _json(_ref("Schedule")), **_errors(400, 403, 404, 415)},
                [_SCHEDULE_NAME],
            )
        },
        "/schedules/resume": {
            "post": _operation(
                "resumeSchedule",
                "Fire again from the next tick after now",
                {"200": _json(_ref("Schedule")), **_errors(400, 403, 404, 415)},
                [_SCHEDULE_NAME],
            )
        },
        "/subscribe": {
            "get": _operation(
                "subscribeRun",
                "One run's events: the run as it stands first, then live until run:complete",
                {"200": _SSE, **_errors(400, 404)},
                [_RUN_ID, _LAST_EVENT_ID],
                description=f"{_SUBSCRIBE} {_WAITS}",
            )
        },
        "/runs/subscribe": {
            "get": _operation(
                "subscribeRuns",
                "Reduced notifications of all runs (or one job's)",
                {"200": _SSE, **_errors(400)},
                [
                    {"name": "jobName", "in": "query", "schema": _TEXT},
                    _repeated("type", {"enum": list(EVENT_TYPES)}, "Only these event types"),
                    _LAST_EVENT_ID,
                ],
                description=f"Each event reduced to what a list needs. {_WAITS}",
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "durably-reflex API", "version": "1"},
        "servers": [{"url": base or "/"}],
        "paths": paths,
        "components": {"schemas": schemas},
    }


@dataclass(frozen=True)
class _JobInput:
    """A job's input in the document: the component name its schemas take, and the `input` property."""

    component: str
    schema: dict[str, Any]
    required: bool  # the input model has required fields: the body must carry `input`


def _job_inputs(jobs: list[JobDefinition], schemas: dict[str, Any]) -> dict[str, _JobInput]:
    """Each job's input JSON Schema as the component `Input.<name>` (its `$defs` as components of
    their own, named after the job), by job name, in name order."""
    inputs: dict[str, _JobInput] = {}
    taken: set[str] = set()
    for job in sorted(jobs, key=lambda job: job.name):
        name = _component_name(job.name)
        while name in taken:  # "a.b" and "a_b" both read a_b
            name += "_"
        taken.add(name)
        input_schema = job.input_schema()
        if input_schema is None:
            inputs[job.name] = _JobInput(name, {"description": "Anything JSON: the job declares no input model"}, False)
            continue
        defs = {f"{name}.{key}": value for key, value in input_schema.pop("$defs", {}).items()}
        for key, value in defs.items():
            schemas[f"Input.{key}"] = _rewrite_refs(value, name)
        schemas[f"Input.{name}"] = _rewrite_refs(input_schema, name)
        inputs[job.name] = _JobInput(name, _ref(f"Input.{name}"), bool(input_schema.get("required")))
    return inputs


def _trigger_properties(job_name: str, job_input: _JobInput) -> dict[str, Any]:
    return {
        "jobName": {"const": job_name},
        "input": job_input.schema,
        "idempotencyKey": _TEXT,
        "concurrencyKey": _TEXT,
        **_TIMING,
    }


def _schedule_properties(job_name: str, job_input: _JobInput) -> dict[str, Any]:
    return {
        "jobName": {"const": job_name},
        "cron": {
            **_TEXT,
            "minLength": 1,
            "description": "Five fields (minute hour day month weekday), or six with seconds first",
        },
        "input": job_input.schema,
        "name": {**_TEXT, "minLength": 1, "description": "The schedule's name (default: the job's name)"},
        "timezone": {**_TEXT, "default": "UTC", "description": "An IANA timezone the cron expression is read in"},
        "catchUp": {
            "enum": list(CATCH_UP_POLICIES),
            "default": "once",
            "description": "Ticks missed while no worker ran: one run for them all, or none",
        },
    }


def _choice_per_job(
    kind: str,
    inputs: dict[str, _JobInput],
    properties: Callable[[str, _JobInput], dict[str, Any]],
    schemas: dict[str, Any],
    *,
    required: tuple[str, ...] = ("jobName",),
) -> dict[str, Any]:
    """A body that is one object schema per job (the component `<kind>.<name>`), discriminated by
    `jobName`; `input` is required too when its model has required fields."""
    branches: dict[str, str] = {}
    for job_name, job_input in inputs.items():
        schemas[f"{kind}.{job_input.component}"] = {
            "type": "object",
            "properties": properties(job_name, job_input),
            "required": [*required, *(["input"] if job_input.required else [])],
        }
        branches[job_name] = f"#/components/schemas/{kind}.{job_input.component}"
    if not branches:
        return {"type": "object", "properties": {"jobName": _TEXT}, "required": ["jobName"]}
    return {
        "oneOf": [{"$ref": ref} for ref in branches.values()],
        "discriminator": {"propertyName": "jobName", "mapping": branches},
    }


def _component_name(job_name: str) -> str:
    """A component name OpenAPI allows (`^[a-zA-Z0-9._-]+$`) for a job name that may hold anything."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", job_name) or "_"


def _rewrite_refs(schema: Any, prefix: str) -> Any:
    """`#/$defs/X` references, pointed at the component `Input.<prefix>.X`."""
    if isinstance(schema, dict):
        return {
            key: (
                f"#/components/schemas/Input.{prefix}.{value.removeprefix('#/$defs/')}"
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                else _rewrite_refs(value, prefix)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_rewrite_refs(item, prefix) for item in schema]
    return schema
