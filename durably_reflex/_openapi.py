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

from . import _params, _run_filter
from ._bulk import MAX_BATCH, MAX_RUN_IDS
from ._engine import BULK_BATCH, MAX_DELAY_SECONDS, MAX_PRIORITY
from ._events import EVENT_TYPES
from ._jobs import JobDefinition
from ._records import Attempt, BulkResult, LogEntry, Run, RunStats, RunStatus, Schedule, Step
from ._schedules import CATCH_UP_POLICIES
from ._search import MAX_LABELS

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
_RUN_LINKS = ("getRun", "getSteps", "getLogs", "getAttempts", "subscribeRun", "retryRun", "cancelRun", "deleteRun")
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
_STATUSES = {"enum": [status.value for status in RunStatus]}
_NAME = {**_TEXT, "minLength": 1}
_MOMENT = {"type": "string", "format": "date-time", "maxLength": _params.MAX_TIME_LENGTH}
_LABEL_KEY = f"^{_run_filter.LABEL_KEY_PATTERN}$"
_FIELD_PATH = f"^{_run_filter.FIELD_PATH_PATTERN}$"
_LABELS = {
    "type": "object",
    "propertyNames": {"pattern": _LABEL_KEY},
    "additionalProperties": _TEXT,
    "maxProperties": MAX_LABELS,
    "description": "Labels kept with the run and searchable (`label.<key>=<value>` on /runs)",
}
# The `label.<key>` and `input.<path>` query parameters: an object whose properties are parameters.
_LABEL_FILTER: dict[str, Any] = {
    "name": "label",
    "in": "query",
    "style": "form",
    "explode": True,
    "description": "`label.<key>=<value>`: only runs with these labels (every one given must match)",
    "schema": {
        "type": "object",
        "patternProperties": {f"^label\\.{_run_filter.LABEL_KEY_PATTERN}$": _TEXT},
        "additionalProperties": False,
        "maxProperties": MAX_LABELS,
    },
}
_INPUT_FILTER: dict[str, Any] = {
    "name": "input",
    "in": "query",
    "style": "form",
    "explode": True,
    "description": "`input.<field>=<value>` (a dotted path for nested fields): only runs whose input has "
    "this value there, compared as text (`42` matches 42, `true` matches true). Read on the runs the other "
    "filters leave, so pair it with jobName or a time range on large databases",
    "schema": {
        "type": "object",
        "patternProperties": {f"^input\\.{_run_filter.FIELD_PATH_PATTERN}$": _TEXT},
        "additionalProperties": False,
        "maxProperties": _run_filter.MAX_INPUT_FILTERS,
    },
}
_SEARCH_PARAMS: list[dict[str, Any]] = [
    _LABEL_FILTER,
    {
        "name": "idPrefix",
        "in": "query",
        "schema": {**_TEXT, "maxLength": _run_filter.MAX_ID_PREFIX},
        "description": "Only runs whose id starts so",
    },
    {"name": "createdAfter", "in": "query", "schema": _MOMENT, "description": "Only runs created at or after"},
    {"name": "createdBefore", "in": "query", "schema": _MOMENT, "description": "Only runs created before"},
    _INPUT_FILTER,
    {"name": "replayOf", "in": "query", "schema": _TEXT, "description": "Only the replays of this run"},
]
_ONE_OR_MORE = lambda item: {"anyOf": [item, {"type": "array", "items": item, "maxItems": _params.MAX_FILTER_VALUES}]}  # noqa: E731
_RUN_FILTER = {
    "type": "object",
    "additionalProperties": False,
    "description": "The runs `GET /runs` would list with these filters (`{}`: every run the caller may see)",
    "properties": {
        "jobName": _ONE_OR_MORE(_NAME),
        "status": _ONE_OR_MORE(_STATUSES),
        "labels": _LABELS,
        "idPrefix": {**_TEXT, "maxLength": _run_filter.MAX_ID_PREFIX},
        "createdAfter": _MOMENT,
        "createdBefore": _MOMENT,
        "input": {
            "type": "object",
            "propertyNames": {"pattern": _FIELD_PATH},
            "additionalProperties": {"anyOf": [_TEXT, {"type": ["number", "boolean"]}]},
            "maxProperties": _run_filter.MAX_INPUT_FILTERS,
        },
        "replayOf": _TEXT,
    },
}
_BULK_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "runIds": {"type": "array", "items": _NAME, "maxItems": MAX_RUN_IDS},
        "filter": _RUN_FILTER,
        "batchSize": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BATCH,
            "default": BULK_BATCH,
            "description": "Runs per transaction (and per progress frame)",
        },
    },
    "oneOf": [{"required": ["runIds"]}, {"required": ["filter"]}],
}
_BULK = (
    "Works through the runs in batches of `batchSize`, one transaction each, as a task of its own: a caller "
    "that leaves stops following the action, never the action. With `Accept: text/event-stream` the answer "
    "streams `bulk:progress` frames (`action`, and `matched`, `changed`, `skipped` so far) after each batch, "
    "keep-alive comments meanwhile, and ends with `bulk:done` (the totals) or `bulk:error` (the totals so far, "
    "and the `status`, `error` and `code` an answer would have had); otherwise it answers the totals as JSON "
    "when done. Runs whose status does not allow the action are skipped; so are ids of runs that do not exist "
    "or that the caller may not see. A filter is kept to the caller's scope and visible jobs, and to the runs "
    "`can_access_run` admits."
)
_REPLAY_BODY = {
    "type": "object",
    "properties": {
        "runId": _NAME,
        "fromStep": {
            **_NAME,
            "description": "Copy the completed steps before the first step of this name, run it and the rest anew "
            "(absent: run everything again)",
        },
    },
    "required": ["runId"],
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
            for model in (Run, Step, LogEntry, RunStats, Schedule, Attempt, BulkResult)
        },
    }
    for schema in list(schemas.values()):
        schemas.update(schema.pop("$defs", {}))
    for record in ("Run", "Step", "Attempt"):
        schemas[record]["properties"]["errorStack"]["description"] = _ERROR_STACK
    inputs = _job_inputs(list(jobs), schemas)
    trigger_body = _choice_per_job("Trigger", inputs, _trigger_properties, schemas)
    schedule_body = _choice_per_job("Schedule", inputs, _schedule_properties, schemas, required=("jobName", "cron"))
    array = lambda name: {"type": "array", "items": _ref(name)}  # noqa: E731
    list_params = [
        _repeated("jobName", _TEXT, "Only runs of these jobs"),
        _repeated("status", _STATUSES, "Only runs in these statuses"),
        *_SEARCH_PARAMS,
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
    run_id_answer = {
        "type": "object",
        "properties": {
            "runId": {"type": "string"},
            "disposition": {
                "enum": ["created", "idempotent", "coalesced"],
                "description": "A new run, the run of the same idempotency key, or the pending run of the same "
                'concurrency key (`coalesce: "skip"`)',
            },
        },
        "required": ["runId", "disposition"],
    }
    bulk_answer = {
        "description": "The totals (JSON), or the action's progress (Server-Sent Events, asked by Accept)",
        "content": {
            "application/json": {"schema": _ref("BulkResult")},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
    bulk = {
        f"/bulk/{action}": {
            "post": _operation(
                f"bulk{action.capitalize()}",
                summary,
                {"200": bulk_answer, **_errors(400, 413, 415)},
                body=_BULK_BODY,
                description=_BULK,
            )
        }
        for action, summary in (
            ("retry", "Retry the failed and cancelled runs among those named (by ids or a filter)"),
            ("cancel", "Cancel the pending and running runs among those named (by ids or a filter)"),
            ("delete", "Delete the finished runs among those named (by ids or a filter)"),
        )
    }
    paths = {
        "/trigger": {
            "post": _operation(
                "trigger",
                "Create a run (or find the run of the same idempotency key, or join a pending one)",
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
        "/attempts": {
            "get": _operation(
                "getAttempts",
                "A run's earlier attempts (how each ended before a retry), first first",
                {"200": _json(array("Attempt")), **_errors(400, 404)},
                [_RUN_ID],
            )
        },
        "/replay": {
            "post": _operation(
                "replayRun",
                "A new run of the same job, input, labels and tenant, from a step: the steps before it copied",
                {"200": _json(_ref("Run")), **_errors(400, 403, 404, 413, 415)},
                body=_REPLAY_BODY,
                description="The new run's `replayOf` names the source; `GET /runs?replayOf=` lists a run's "
                "replays. A trigger: 403 when the server's can_trigger refuses. 400 for a step the run does not have.",
            )
        },
        **bulk,
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
                    _LABEL_FILTER,
                    _LAST_EVENT_ID,
                ],
                description="Each event reduced to what a list needs. Labels and access are judged once per run, "
                f"at its first event on the stream. {_WAITS}",
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
        "labels": _LABELS,
        "coalesce": {
            "const": "skip",
            "description": "With concurrencyKey: join the pending run of this job and key, if any, instead of "
            "creating one (the answer's disposition says `coalesced`)",
        },
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
