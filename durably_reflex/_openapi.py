"""The OpenAPI 3.1 document of the HTTP API (served at `<base>/openapi.json`)."""

from __future__ import annotations

from typing import Any

from ._engine import MAX_BUCKET_SECONDS, MAX_STATS_BUCKETS
from ._records import LogEntry, Run, RunStats, Step

_ERROR = {"$ref": "#/components/schemas/Error"}
_SUCCESS = {"type": "object", "properties": {"success": {"const": True}}, "required": ["success"]}
_RUN_ID = {
    "name": "runId",
    "in": "query",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_SSE = {
    "description": "Server-Sent Events: `id: <n>` and `data: <JSON event>` lines",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict with the run's status",
        413: "Body too large",
    }
    return {str(code): _json(_ERROR, reasons[code]) for code in codes}


def _operation(
    summary: str,
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def openapi_document(base: str) -> dict[str, Any]:
    array = lambda name: {"type": "array", "items": _ref(name)}  # noqa: E731
    trigger_body = {
        "type": "object",
        "required": ["jobName"],
        "properties": {
            "jobName": {"type": "string", "minLength": 1},
            "input": {"description": "The job's input; validated with its input schema (see /jobs)"},
            "idempotencyKey": {"type": "string"},
            "concurrencyKey": {"type": "string"},
        },
    }
    list_params: list[dict[str, Any]] = [
        {
            "name": "jobName",
            "in": "query",
            "schema": {"type": "array", "items": {"type": "string"}},
            "style": "form",
            "explode": True,
        },
        {
            "name": "status",
            "in": "query",
            "schema": {"type": "array", "items": {"enum": ["pending", "running", "completed", "failed", "cancelled"]}},
            "style": "form",
            "explode": True,
        },
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
    ]
    stats_params: list[dict[str, Any]] = [
        {
            "name": "jobName",
            "in": "query",
            "schema": {"type": "array", "items": {"type": "string"}},
            "style": "form",
            "explode": True,
            "description": "Count only these jobs (default: every job the caller may see)",
        },
        {
            "name": "bucketSeconds",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_BUCKET_SECONDS, "default": 3600},
            "description": "Length of a series bucket; buckets are aligned to multiples of it since the epoch (UTC)",
        },
        {
            "name": "buckets",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_STATS_BUCKETS, "default": 24},
            "description": "Buckets in the series, the last one holding the current time",
        },
    ]
    paths = {
        "/trigger": {
            "post": _operation(
                "Create a run",
                {
                    "200": _json(
                        {"type": "object", "properties": {"runId": {"type": "string"}}, "required": ["runId"]}
                    ),
                    **_errors(400, 401, 403, 404, 413),
                },
                body=trigger_body,
            )
        },
        "/runs": {
            "get": _operation("List runs, newest first", {"200": _json(array("Run")), **_errors(400, 401)}, list_params)
        },
        "/stats": {
            "get": _operation(
                "Runs per status and job, and runs created per time bucket and status",
                {"200": _json(_ref("RunStats")), **_errors(400, 401)},
                stats_params,
            )
        },
        "/run": {
            "get": _operation("Get a run", {"200": _json(_ref("Run")), **_errors(400, 401, 404)}, [_RUN_ID]),
            "delete": _operation(
                "Delete a finished run", {"200": _json(_SUCCESS), **_errors(400, 401, 404, 409)}, [_RUN_ID]
            ),
        },
        "/steps": {
            "get": _operation(
                "A run's steps, in order", {"200": _json(array("Step")), **_errors(400, 401, 404)}, [_RUN_ID]
            )
        },
        "/logs": {
            "get": _operation(
                "A run's stored logs, oldest first",
                {"200": _json(array("LogEntry")), **_errors(400, 401, 404)},
                [
                    _RUN_ID,
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Only logs after this log id",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 1000},
                    },
                ],
            )
        },
        "/jobs": {
            "get": _operation(
                "Registered jobs with their input and output JSON Schemas",
                {
                    "200": _json(
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}, "inputSchema": {}, "outputSchema": {}},
                            },
                        }
                    ),
                    **_errors(401),
                },
            )
        },
        "/retry": {
            "post": _operation(
                "Retry a failed or cancelled run", {"200": _json(_SUCCESS), **_errors(400, 401, 404, 409)}, [_RUN_ID]
            )
        },
        "/cancel": {
            "post": _operation(
                "Cancel a pending or running run", {"200": _json(_SUCCESS), **_errors(400, 401, 404, 409)}, [_RUN_ID]
            )
        },
        "/subscribe": {
            "get": _operation(
                "One run's events: a run:snapshot first, then live until run:complete",
                {"200": _SSE, **_errors(400, 401, 404)},
                [_RUN_ID],
            )
        },
        "/runs/subscribe": {
            "get": _operation(
                "Reduced notifications of all runs",
                {"200": _SSE, **_errors(401)},
                [
                    {"name": "jobName", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "type",
                        "in": "query",
                        "description": "only these event types (repeatable)",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    },
                ],
            )
        },
    }
    schemas = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "details": {"type": "array"}},
            "required": ["error"],
        },
        # Validation mode: the records' catch-all timestamp serializer would make every serialization schema `{}`.
        **{
            model.__name__: model.model_json_schema(
                by_alias=True, mode="validation", ref_template="#/components/schemas/{model}"
            )
            for model in (Run, Step, LogEntry, RunStats)
        },
    }
    for schema in list(schemas.values()):
        schemas.update(schema.pop("$defs", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "durably-reflex API", "version": "1"},
        "servers": [{"url": base or "/"}],
        "paths": paths,
        "components": {"schemas": schemas},
    }
