"""The HTTP API against a REAL server (uvicorn on 127.0.0.1, a real engine on a SQLite file): every
route's success shape, every error code (never a 500, never a trace), body limits, routing under the
base path, and the auth hooks. The SSE streams are in tests/test_server_streams.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from durably_reflex import Run
from durably_reflex._records import LogEntry, Step
from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    GATES,
    ISO_Z,
    LOG_FIELDS,
    RUN_FIELDS,
    STEP_FIELDS,
    LiveServer,
    Serve,
    assert_error,
    assert_json,
    http_client,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
    server_fixture,  # noqa: F401  (the `server` fixture)
)

ROWS = {"rows": [{"name": "ada"}, {"name": "bob"}, {"name": "cy"}]}


# -- helpers ---------------------------------------------------------------------------------------
async def completed_run(server: LiveServer, steps: int = 2) -> str:
    run_id = await server.trigger("script", {"steps": steps})
    await server.wait_status(run_id, "completed")
    return run_id


async def failed_run(server: LiveServer) -> str:
    run_id = await server.trigger("script", {"steps": 2, "fail_at": 1})
    await server.wait_status(run_id, "failed")
    return run_id


async def held_run(server: LiveServer, hold_at: int = 0, steps: int = 2) -> tuple[str, str]:
    """A run that is `running`, waiting before step `hold_at` until its gate opens."""
    gate = GATES.new()
    run_id = await server.trigger("script", {"steps": steps, "hold_at": hold_at, "gate": gate})
    await server.wait_run(run_id, lambda run: run["status"] == "running" and run["stepCount"] == hold_at)
    return run_id, gate


async def cancelled_run(server: LiveServer) -> str:
    run_id, gate = await held_run(server)
    assert_json(await server.client.post("/cancel", params={"runId": run_id}), 200)
    GATES.open(gate)
    await server.wait_status(run_id, "cancelled")
    return run_id


RUN_ROUTES = [  # (method, path) of every route that takes ?runId=
    ("GET", "/run"),
    ("GET", "/steps"),
    ("GET", "/logs"),
    ("POST", "/retry"),
    ("POST", "/cancel"),
    ("DELETE", "/run"),
    ("GET", "/subscribe"),
]


@contextlib.contextmanager
def case(*label: Any) -> Iterator[None]:
    """Name the case in a failure of a loop over cases."""
    try:
        yield
    except AssertionError as error:
        raise AssertionError(f"case {label!r}: {error}") from None


async def request(server: LiveServer, method: str, path: str, **options: Any) -> httpx.Response:
    """A plain (non-streaming) request; an SSE answer would never end, so those are only opened for errors."""
    return await server.client.request(method, path, **options)


# -- POST /trigger ---------------------------------------------------------------------------------
async def test_trigger_answers_200_with_the_new_run_id(server: LiveServer) -> None:
    body = assert_json(await server.client.post("/trigger", json={"jobName": "import-rows", "input": ROWS}), 200)
    assert set(body) == {"runId", "disposition"} and isinstance(body["runId"], str) and body["runId"]
    assert body["disposition"] == "created"  # beside the contract's runId (tests/test_server_operations.py)
    run = await server.get_run(body["runId"])
    assert run["jobName"] == "import-rows" and run["input"] == ROWS


async def test_trigger_runs_the_job_to_completion(server: LiveServer) -> None:
    run_id = await server.trigger("import-rows", ROWS)
    run = await server.wait_status(run_id, "completed")
    assert run["output"] == {"imported": 3} and run["stepCount"] == 3


async def test_trigger_with_the_same_idempotency_key_answers_the_same_run_id(serve: Serve) -> None:
    server = await serve(start_worker=False)
    first = await server.trigger("import-rows", ROWS, idempotencyKey="once")
    second = await server.trigger("import-rows", {"rows": []}, idempotencyKey="once")
    assert second == first
    runs = assert_json(await server.client.get("/runs"), 200)
    assert [run["id"] for run in runs] == [first]
    assert runs[0]["idempotencyKey"] == "once"


async def test_trigger_stores_the_concurrency_key(serve: Serve) -> None:
    server = await serve(start_worker=False)
    run_id = await server.trigger("import-rows", ROWS, concurrencyKey="tenant-1")
    assert (await server.get_run(run_id))["concurrencyKey"] == "tenant-1"


@pytest.mark.parametrize("body", [{"jobName": "no-input"}, {"jobName": "no-input", "input": None}])
async def test_trigger_without_input_stores_an_empty_object(serve: Serve, body: dict[str, Any]) -> None:
    server = await serve(start_worker=False)
    run_id = assert_json(await server.client.post("/trigger", json=body), 200)["runId"]
    assert (await server.get_run(run_id))["input"] == {}


async def test_trigger_with_malformed_json_answers_400(server: LiveServer) -> None:
    response = await server.client.post(
        "/trigger", content=b'{"jobName": "import-rows",', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "Malformed JSON")


async def test_trigger_with_a_body_that_is_not_an_object_answers_400(server: LiveServer) -> None:
    for content in (b"[]", b'"import-rows"', b"42", b"null", b"", b"true"):
        with case(content):
            response = await server.client.post(
                "/trigger", content=content, headers={"content-type": "application/json"}
            )
            assert_error(response, 400)


async def test_trigger_with_missing_or_empty_job_name_answers_400(server: LiveServer) -> None:
    for body in (
        {},
        {"jobName": ""},
        {"jobName": None},
        {"jobName": 42},
        {"jobName": ["import-rows"]},
        {"input": ROWS},
    ):
        with case(body):
            assert_error(await server.client.post("/trigger", json=body), 400, "jobName is required")


async def test_trigger_with_a_non_string_key_answers_400_naming_it(server: LiveServer) -> None:
    for field in ("idempotencyKey", "concurrencyKey"):
        for value in (42, ["a"], {"a": 1}, True):
            with case(field, value):
                body = {"jobName": "import-rows", "input": ROWS, field: value}
                assert_error(await server.client.post("/trigger", json=body), 400, field)
    assert assert_json(await server.client.get("/runs"), 200) == []


async def test_trigger_with_an_empty_or_overlong_key_answers_400(server: LiveServer) -> None:
    for field, name in (("idempotencyKey", "idempotency"), ("concurrencyKey", "concurrency")):
        for value in ("", "k" * 300):
            with case(field, value):
                body = {"jobName": "import-rows", "input": ROWS, field: value}
                assert_error(await server.client.post("/trigger", json=body), 400, name)
    assert assert_json(await server.client.get("/runs"), 200) == []


async def test_trigger_with_invalid_input_answers_400_naming_the_field(server: LiveServer) -> None:
    body = {"jobName": "import-rows", "input": {"rows": [{"name": "ok"}, {"nom": "x"}]}}
    error = assert_error(await server.client.post("/trigger", json=body), 400, "Invalid input", "rows.1.name")
    assert [detail["loc"] for detail in error["details"]] == [["rows", 1, "name"]]
    assert {"loc", "msg", "type"} <= set(error["details"][0])
    assert assert_json(await server.client.get("/runs"), 200) == []  # nothing was created


async def test_trigger_with_input_of_the_wrong_shape_answers_400(server: LiveServer) -> None:
    for run_input in ([1, 2], "rows", 7, {"rows": "nope"}, {}):
        with case(run_input):
            body = {"jobName": "import-rows", "input": run_input}
            error = assert_error(await server.client.post("/trigger", json=body), 400, "Invalid input")
            assert error["details"]


async def test_trigger_of_an_unknown_job_answers_404(server: LiveServer) -> None:
    assert_error(await server.client.post("/trigger", json={"jobName": "x", "input": {}}), 404, "Job not found: x")


async def test_trigger_with_a_too_deeply_nested_body_answers_400(server: LiveServer) -> None:
    depth = 5000
    body = b'{"jobName": "no-input", "input": ' + b"[" * depth + b"]" * depth + b"}"
    response = await server.client.post("/trigger", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400)


# -- body limits -----------------------------------------------------------------------------------
def big_body(size: int) -> bytes:
    body = b'{"jobName": "no-input", "input": {"pad": "' + b"x" * size + b'"}}'
    assert len(body) > size
    return body


async def test_a_body_over_max_body_bytes_answers_413(serve: Serve) -> None:
    server = await serve(max_body_bytes=1024)
    response = await server.client.post(
        "/trigger", content=big_body(2048), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "1024")
    assert assert_json(await server.client.get("/runs"), 200) == []


async def test_a_chunked_body_over_max_body_bytes_answers_413(serve: Serve) -> None:
    server = await serve(max_body_bytes=1024)
    body = big_body(4096)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256):
            yield body[start : start + 256]

    request = server.client.build_request(
        "POST", "/trigger", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    assert_error(await server.client.send(request), 413, "1024")
    assert assert_json(await server.client.get("/runs"), 200) == []


async def test_a_body_just_under_max_body_bytes_is_accepted(serve: Serve) -> None:
    server = await serve(max_body_bytes=1024, start_worker=False)
    body = big_body(900)
    assert len(body) <= 1024
    response = await server.client.post("/trigger", content=body, headers={"content-type": "application/json"})
    assert set(assert_json(response, 200)) == {"runId", "disposition"}


# -- GET /runs -------------------------------------------------------------------------------------
async def test_runs_answers_a_bare_array_newest_first(serve: Serve) -> None:
    server = await serve(start_worker=False)
    ids = [await server.trigger("import-rows", ROWS) for _ in range(3)]
    runs = assert_json(await server.client.get("/runs"), 200)
    assert isinstance(runs, list)
    assert [run["id"] for run in runs] == ids[::-1]
    for run in runs:
        assert set(run) == RUN_FIELDS and run["status"] == "pending"


async def test_runs_filters_by_job_name_which_may_repeat(serve: Serve) -> None:
    server = await serve(start_worker=False)
    imports = [await server.trigger("import-rows", ROWS) for _ in range(2)]
    scripts = [await server.trigger("script", {})]
    await server.trigger("no-input")
    only_imports = assert_json(await server.client.get("/runs", params={"jobName": "import-rows"}), 200)
    assert [run["id"] for run in only_imports] == imports[::-1]
    both = assert_json(
        await server.client.get("/runs", params=[("jobName", "import-rows"), ("jobName", "script")]), 200
    )
    assert [run["id"] for run in both] == (imports + scripts)[::-1]
    assert assert_json(await server.client.get("/runs", params={"jobName": "nobody"}), 200) == []


async def test_runs_filters_by_status_which_may_repeat(server: LiveServer) -> None:
    done = await completed_run(server)
    failed = await failed_run(server)
    cancelled = await cancelled_run(server)
    by_status = assert_json(await server.client.get("/runs", params={"status": "failed"}), 200)
    assert [run["id"] for run in by_status] == [failed]
    both = assert_json(await server.client.get("/runs", params=[("status", "completed"), ("status", "cancelled")]), 200)
    assert [run["id"] for run in both] == [cancelled, done]
    combined = await server.client.get("/runs", params=[("status", "completed"), ("jobName", "import-rows")])
    assert assert_json(combined, 200) == []


async def test_runs_limit_and_offset_page_through_newest_first(serve: Serve) -> None:
    server = await serve(start_worker=False)
    ids = [await server.trigger("no-input") for _ in range(5)][::-1]

    def page(limit, offset):
        return server.client.get("/runs", params={"limit": limit, "offset": offset})

    assert [run["id"] for run in assert_json(await page(2, 0), 200)] == ids[0:2]
    assert [run["id"] for run in assert_json(await page(2, 2), 200)] == ids[2:4]
    assert [run["id"] for run in assert_json(await page(2, 4), 200)] == ids[4:]
    assert assert_json(await page(2, 10), 200) == []


async def test_runs_with_an_unknown_status_answers_400(server: LiveServer) -> None:
    for params in (
        {"status": "done"},
        {"status": "RUNNING"},
        {"status": "pending,failed"},
        [("status", "failed"), ("status", "x")],
    ):
        with case(params):
            assert_error(await server.client.get("/runs", params=params), 400, "status")


async def test_runs_with_a_non_numeric_or_negative_limit_or_offset_answers_400(server: LiveServer) -> None:
    for name, value in (
        ("limit", "abc"),
        ("limit", "-1"),
        ("limit", "1.5"),
        ("offset", "x"),
        ("offset", "-3"),
        ("limit", "100000"),
    ):
        with case(name, value):
            assert_error(await server.client.get("/runs", params={name: value}), 400, name)


# -- GET /run, /steps, /logs, /jobs --------------------------------------------------------------
async def test_run_answers_the_run_with_every_wire_field(server: LiveServer) -> None:
    run_id = await server.trigger("import-rows", ROWS, idempotencyKey="k1")
    await server.wait_status(run_id, "completed")
    run = assert_json(await server.client.get("/run", params={"runId": run_id}), 200)
    assert set(run) == RUN_FIELDS
    assert run["id"] == run_id and run["jobName"] == "import-rows" and run["input"] == ROWS
    assert run["status"] == "completed" and run["output"] == {"imported": 3}
    assert run["stepCount"] == 3 and run["progress"] == {"current": 3, "total": 3, "message": "row 2"}
    assert run["idempotencyKey"] == "k1" and run["concurrencyKey"] is None
    assert run["error"] is None and run["errorStack"] is None
    for key in ("startedAt", "completedAt", "createdAt", "updatedAt"):
        assert ISO_Z.fullmatch(run[key]), (key, run[key])
    assert Run.model_validate(run).id == run_id


async def test_run_of_a_failed_run_carries_the_error_but_not_its_stack_by_default(server: LiveServer) -> None:
    run = await server.get_run(await failed_run(server))
    assert run["status"] == "failed" and run["error"] == "step 1 failed on purpose"
    assert run["errorStack"] is None and run["stepCount"] == 1  # exposing it: tests/test_error_stack.py


async def test_steps_answers_the_steps_in_order(server: LiveServer) -> None:
    run_id = await server.trigger("import-rows", ROWS)
    await server.wait_status(run_id, "completed")
    steps = assert_json(await server.client.get("/steps", params={"runId": run_id}), 200)
    assert [(step["index"], step["name"], step["status"], step["output"]) for step in steps] == [
        (0, "row-0", "completed", "ADA"),
        (1, "row-1", "completed", "BOB"),
        (2, "row-2", "completed", "CY"),
    ]
    for step in steps:
        assert set(step) == STEP_FIELDS and step["runId"] == run_id
        Step.model_validate(step)


async def test_steps_of_a_failed_run_include_the_failed_step(server: LiveServer) -> None:
    steps = assert_json(await server.client.get("/steps", params={"runId": await failed_run(server)}), 200)
    assert [(step["name"], step["status"]) for step in steps] == [("step-0", "completed"), ("step-1", "failed")]
    assert steps[1]["error"] == "step 1 failed on purpose"


async def test_logs_answers_the_logs_oldest_first(server: LiveServer) -> None:
    run_id = await server.trigger("import-rows", ROWS)
    await server.wait_status(run_id, "completed")
    logs = assert_json(await server.client.get("/logs", params={"runId": run_id}), 200)
    assert [(log["stepName"], log["level"], log["message"], log["data"]) for log in logs] == [
        ("row-0", "info", "imported ada", {"row": 0}),
        ("row-1", "info", "imported bob", {"row": 1}),
        ("row-2", "info", "imported cy", {"row": 2}),
    ]
    for log in logs:
        assert set(log) == LOG_FIELDS and log["runId"] == run_id and ISO_Z.fullmatch(log["timestamp"])
        LogEntry.model_validate(log)


async def test_logs_after_answers_only_the_logs_after_that_id(server: LiveServer) -> None:
    run_id = await server.trigger("import-rows", ROWS)
    await server.wait_status(run_id, "completed")
    logs = assert_json(await server.client.get("/logs", params={"runId": run_id}), 200)
    after_first = assert_json(await server.client.get("/logs", params={"runId": run_id, "after": logs[0]["id"]}), 200)
    assert after_first == logs[1:]
    assert assert_json(await server.client.get("/logs", params={"runId": run_id, "after": logs[-1]["id"]}), 200) == []
    limited = assert_json(await server.client.get("/logs", params={"runId": run_id, "limit": 1}), 200)
    assert limited == logs[:1]
    assert_error(await server.client.get("/logs", params={"runId": run_id, "after": "x" * 300}), 400, "after")


async def test_jobs_lists_the_registered_jobs_with_their_json_schemas(server: LiveServer) -> None:
    jobs = {job["name"]: job for job in assert_json(await server.client.get("/jobs"), 200)}
    assert set(jobs) == {"import-rows", "script", "progress-burst", "stepped-progress", "no-input"}
    for job in jobs.values():
        assert set(job) == {"name", "inputSchema", "outputSchema", "signals"}  # signals: tests/test_server_waits.py
    imports = jobs["import-rows"]
    assert imports["inputSchema"]["type"] == "object" and imports["inputSchema"]["required"] == ["rows"]
    assert imports["outputSchema"]["properties"]["imported"]["type"] == "integer"
    assert jobs["script"]["inputSchema"]["properties"]["steps"]["default"] == 3
    assert jobs["script"]["outputSchema"] is None
    assert jobs["no-input"]["inputSchema"] is None and jobs["no-input"]["outputSchema"] is None


# -- POST /retry, POST /cancel, DELETE /run ----------------------------------------------------
async def test_retry_of_a_failed_run_answers_success_and_it_runs_again(server: LiveServer) -> None:
    run_id = await server.trigger("script", {"steps": 2, "fail_at": 1, "fail_gate": (gate := GATES.new())})
    await server.wait_status(run_id, "failed")
    GATES.open(gate)
    assert assert_json(await server.client.post("/retry", params={"runId": run_id}), 200) == {"success": True}
    run = await server.wait_status(run_id, "completed")
    assert run["output"] == {"steps": 2} and run["error"] is None


async def test_retry_of_a_cancelled_run_answers_success(server: LiveServer) -> None:
    run_id = await cancelled_run(server)
    assert assert_json(await server.client.post("/retry", params={"runId": run_id}), 200) == {"success": True}
    await server.wait_status(run_id, "completed")


async def test_retry_of_a_completed_run_answers_409(server: LiveServer) -> None:
    run_id = await completed_run(server)
    assert_error(
        await server.client.post("/retry", params={"runId": run_id}), 409, f"Cannot retry completed run: {run_id}"
    )


async def test_cancel_of_a_running_run_answers_success(server: LiveServer) -> None:
    run_id, gate = await held_run(server)
    assert assert_json(await server.client.post("/cancel", params={"runId": run_id}), 200) == {"success": True}
    assert (await server.get_run(run_id))["status"] == "cancelled"
    GATES.open(gate)
    await asyncio.sleep(0.1)
    assert (await server.get_run(run_id))["status"] == "cancelled"  # never overwritten by the job's end


async def test_cancel_of_a_pending_run_answers_success(serve: Serve) -> None:
    server = await serve(start_worker=False)
    run_id = await server.trigger("no-input")
    assert assert_json(await server.client.post("/cancel", params={"runId": run_id}), 200) == {"success": True}
    assert (await server.get_run(run_id))["status"] == "cancelled"


@pytest.mark.parametrize("make", [completed_run, failed_run, cancelled_run], ids=["completed", "failed", "cancelled"])
async def test_cancel_of_a_terminal_run_answers_409(server: LiveServer, make: Any) -> None:
    run_id = await make(server)
    status = (await server.get_run(run_id))["status"]
    assert_error(await server.client.post("/cancel", params={"runId": run_id}), 409, "Cannot cancel", run_id)
    assert (await server.get_run(run_id))["status"] == status


async def test_delete_of_a_completed_run_answers_success_and_removes_it(server: LiveServer) -> None:
    run_id = await completed_run(server)
    assert assert_json(await server.client.delete("/run", params={"runId": run_id}), 200) == {"success": True}
    assert_error(await server.client.get("/run", params={"runId": run_id}), 404, f"Run not found: {run_id}")
    assert assert_json(await server.client.get("/runs"), 200) == []


async def test_delete_of_a_running_run_answers_409(server: LiveServer) -> None:
    run_id, gate = await held_run(server)
    assert_error(
        await server.client.delete("/run", params={"runId": run_id}), 409, f"Cannot delete running run: {run_id}"
    )
    GATES.open(gate)
    await server.wait_status(run_id, "completed")


async def test_delete_of_a_pending_run_answers_409(serve: Serve) -> None:
    server = await serve(start_worker=False)
    run_id = await server.trigger("no-input")
    assert_error(await server.client.delete("/run", params={"runId": run_id}), 409, "Cannot delete", run_id)


# -- errors common to the run routes ---------------------------------------------------------------
async def test_an_unknown_run_answers_404_on_every_run_route(server: LiveServer) -> None:
    for method, path in RUN_ROUTES:
        with case(method, path):
            response = await request(server, method, path, params={"runId": "no-such-run"})
            assert_error(response, 404, "Run not found: no-such-run")


async def test_a_missing_or_empty_run_id_answers_400_on_every_run_route(server: LiveServer) -> None:
    for method, path in RUN_ROUTES:
        for params in ({}, {"runId": ""}):
            with case(method, path, params):
                error = assert_error(await request(server, method, path, params=params), 400)
                assert error == {"error": "runId query parameter is required", "code": "INVALID_ARGUMENT"}


async def test_a_300_character_run_id_answers_400_on_every_run_route(server: LiveServer) -> None:
    for method, path in RUN_ROUTES:
        with case(method, path):
            assert_error(await request(server, method, path, params={"runId": "r" * 300}), 400, "runId")


async def test_a_255_character_run_id_is_looked_up(server: LiveServer) -> None:
    assert_error(await server.client.get("/run", params={"runId": "r" * 255}), 404, "Run not found")


async def test_logs_with_a_bad_limit_answers_400(server: LiveServer) -> None:
    run_id = await completed_run(server)
    assert_error(await server.client.get("/logs", params={"runId": run_id, "limit": "many"}), 400, "limit")
    assert_error(await server.client.get("/logs", params={"runId": run_id, "limit": "-1"}), 400, "limit")


# -- routing ---------------------------------------------------------------------------------------
async def test_an_unknown_route_under_the_base_path_answers_404_json(server: LiveServer) -> None:
    for method, path in (("GET", "/nope"), ("GET", "/runs/"), ("GET", "/run/extra"), ("PATCH", "/a/b/c")):
        with case(method, path):
            assert_error(await request(server, method, path), 404, "Not found")


async def test_a_wrong_method_on_a_route_answers_405_json_naming_the_allowed_ones(server: LiveServer) -> None:
    for method, path, allowed in (
        ("POST", "/runs", "GET, HEAD, OPTIONS"),
        ("PUT", "/run", "DELETE, GET, HEAD, OPTIONS"),
        ("GET", "/trigger", "OPTIONS, POST"),
    ):
        with case(method, path):
            response = await request(server, method, path)
            assert_error(response, 405, f"{method} is not allowed")
            assert response.headers["allow"] == allowed


async def test_routes_outside_the_base_path_are_not_ours(server: LiveServer) -> None:
    async with http_client(server.origin) as bare:
        for path in ("/runs", "/trigger", "/api/durablyx/runs", "/other/api/durably/runs", "/api/runs"):
            response = (
                await bare.get(path) if path != "/trigger" else await bare.post(path, json={"jobName": "no-input"})
            )
            assert response.status_code == 404, (path, response.status_code, response.text)
            assert "Traceback" not in response.text
    assert assert_json(await server.client.get("/runs"), 200) == []  # nothing was triggered


async def test_paths_outside_the_base_path_reach_the_app_mounted_below(serve: Serve) -> None:
    async def host(request: Any) -> PlainTextResponse:
        return PlainTextResponse(f"host: {request.method} {request.url.path}")

    host_app = Starlette(routes=[Route("/{path:path}", host, methods=["GET", "POST"])])
    server = await serve(host_app=host_app, start_worker=False)
    async with http_client(server.origin) as bare:
        for method, path in (
            ("GET", "/"),
            ("GET", "/runs"),
            ("POST", "/trigger"),
            ("GET", "/api/durablyx/runs"),
            ("GET", "/api"),
        ):
            with case(method, path):
                response = await bare.request(method, path)
                assert (response.status_code, response.text) == (200, f"host: {method} {path}")
    assert assert_json(await server.client.get("/runs"), 200) == []
    assert_error(await server.client.get("/nope"), 404)  # under the base path, ours even when unknown


async def test_a_custom_base_path_moves_every_route(serve: Serve) -> None:
    server = await serve(base_path="/custom/jobs/", start_worker=False)
    assert server.base_url.endswith("/custom/jobs")
    run_id = await server.trigger("no-input")
    assert [run["id"] for run in assert_json(await server.client.get("/runs"), 200)] == [run_id]
    async with http_client(server.origin) as bare:
        assert (await bare.get("/api/durably/runs")).status_code == 404
        assert (await bare.get("/custom/jobs/run", params={"runId": run_id})).status_code == 200


# -- GET /openapi.json -----------------------------------------------------------------------------
async def test_openapi_json_is_an_openapi_3_1_document_listing_every_route(server: LiveServer) -> None:
    document = assert_json(await server.client.get("/openapi.json"), 200)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] and document["info"]["version"]
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("/trigger", "post"), ("/runs", "get"), ("/run", "get"), ("/run", "delete"), ("/steps", "get"),
        ("/logs", "get"), ("/jobs", "get"), ("/retry", "post"), ("/cancel", "post"), ("/subscribe", "get"),
        ("/runs/subscribe", "get"), ("/stats", "get"), ("/signal", "post"), ("/schedules", "get"),
        ("/schedules", "post"), ("/schedules", "delete"), ("/schedules/pause", "post"), ("/schedules/resume", "post"),
        ("/replay", "post"), ("/attempts", "get"), ("/bulk/retry", "post"), ("/bulk/cancel", "post"),
        ("/bulk/delete", "post"),
    }  # fmt: skip
    assert document["servers"] == [{"url": "/api/durably"}]
    schemas = document["components"]["schemas"]
    assert {"Run", "Step", "LogEntry", "RunStats", "Error"} <= set(schemas)
    assert set(schemas["Run"]["properties"]) == RUN_FIELDS
    refs = list(references(document))
    assert {"#/components/schemas/Run", "#/components/schemas/Step", "#/components/schemas/LogEntry"} <= set(refs)
    for ref in refs:  # every reference resolves inside the document
        assert ref.startswith("#/components/schemas/") and ref.removeprefix("#/components/schemas/") in schemas, ref
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "200" in operation["responses"], (path, method)
            if (path, method) not in (("/jobs", "get"), ("/schedules", "get")):  # no parameter, no body
                assert "400" in operation["responses"] or path in ("/runs/subscribe",), (path, method)


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


# -- auth hooks ------------------------------------------------------------------------------------
def by_header(request: Any) -> str | None:
    return request.headers.get("x-user") or None


ALL_ROUTES = [
    ("POST", "/trigger"), ("GET", "/runs"), ("GET", "/run"), ("DELETE", "/run"), ("GET", "/steps"),
    ("GET", "/logs"), ("GET", "/jobs"), ("POST", "/retry"), ("POST", "/cancel"), ("GET", "/subscribe"),
    ("GET", "/runs/subscribe"),
]  # fmt: skip


@pytest.mark.parametrize("authenticate", ["returns-none", "raises"])
async def test_authenticate_refusing_answers_401_on_every_route(serve: Serve, authenticate: str) -> None:
    def refuse(request: Any) -> None:
        if authenticate == "raises":
            raise PermissionError("bad token")

    server = await serve(auth=DurablyAuth(authenticate=refuse), start_worker=False)
    run_id = (await server.durably.trigger("no-input")).id
    for method, path in ALL_ROUTES:
        options: dict[str, Any] = {"params": {"runId": run_id}}
        if path == "/trigger":
            options = {"json": {"jobName": "no-input"}}
        response = await request(server, method, path, **options)
        assert_error(response, 401)
    assert (await server.durably.get_run(run_id)) is not None  # the DELETE did nothing
    assert len(await server.durably.get_runs()) == 1  # nor did the trigger


async def test_authenticated_callers_use_every_route(serve: Serve) -> None:
    server = await serve(auth=DurablyAuth(authenticate=by_header))
    server.client.headers["x-user"] = "ann"
    run_id = await server.trigger("script", {"steps": 1})
    await server.wait_status(run_id, "completed")
    for path in ("/runs", "/jobs", "/run", "/steps", "/logs"):
        assert_json(await server.client.get(path, params={"runId": run_id}), 200)


async def test_can_trigger_false_answers_403(serve: Serve) -> None:
    seen: list[tuple[Any, ...]] = []

    async def can_trigger(caller: str, job_name: str, run_input: Any) -> bool:
        seen.append((caller, job_name, run_input))
        return caller == "admin"

    server = await serve(auth=DurablyAuth(authenticate=by_header, can_trigger=can_trigger), start_worker=False)
    body = {"jobName": "import-rows", "input": ROWS}
    assert_error(await server.client.post("/trigger", json=body, headers={"x-user": "guest"}), 403, "import-rows")
    assert seen == [("guest", "import-rows", ROWS)]
    assert await server.durably.get_runs() == []
    assert set(assert_json(await server.client.post("/trigger", json=body, headers={"x-user": "admin"}), 200)) == {
        "runId",
        "disposition",
    }


async def test_can_access_run_false_answers_404_on_run_and_subscribe(serve: Serve) -> None:
    def can_access_run(caller: str, run: Run) -> bool:
        return run.input.get("rows", [{}])[0].get("name") == caller

    server = await serve(auth=DurablyAuth(authenticate=by_header, can_access_run=can_access_run), start_worker=False)
    run_id = (await server.durably.trigger("import-rows", {"rows": [{"name": "ann"}]})).id
    for method, path in RUN_ROUTES:
        response = await request(server, method, path, params={"runId": run_id}, headers={"x-user": "bob"})
        assert_error(response, 404, f"Run not found: {run_id}")
    assert (await server.durably.get_run(run_id)).status == "pending"  # nothing was cancelled or deleted
    own = await server.client.get("/run", params={"runId": run_id}, headers={"x-user": "ann"})
    assert assert_json(own, 200)["id"] == run_id


async def test_runs_does_not_list_runs_that_can_access_run_hides(serve: Serve) -> None:
    def can_access_run(caller: str, run: Run) -> bool:
        return run.input.get("rows", [{}])[0].get("name") == caller

    server = await serve(auth=DurablyAuth(authenticate=by_header, can_access_run=can_access_run), start_worker=False)
    anns = (await server.durably.trigger("import-rows", {"rows": [{"name": "ann"}]})).id
    bobs = (await server.durably.trigger("import-rows", {"rows": [{"name": "bob"}]})).id
    assert_error(await server.client.get("/run", params={"runId": bobs}, headers={"x-user": "ann"}), 404)
    listed = assert_json(await server.client.get("/runs", headers={"x-user": "ann"}), 200)
    assert [run["id"] for run in listed] == [anns]


async def test_visible_jobs_limits_runs_and_jobs(serve: Serve) -> None:
    def visible_jobs(caller: str) -> list[str] | None:
        return None if caller == "admin" else ["import-rows"]

    server = await serve(auth=DurablyAuth(authenticate=by_header, visible_jobs=visible_jobs), start_worker=False)
    imported = (await server.durably.trigger("import-rows", ROWS)).id
    scripted = (await server.durably.trigger("script", {})).id
    ann = {"x-user": "ann"}
    assert [run["id"] for run in assert_json(await server.client.get("/runs", headers=ann), 200)] == [imported]
    asked = await server.client.get("/runs", params={"jobName": "script"}, headers=ann)
    assert assert_json(asked, 200) == []
    assert [job["name"] for job in assert_json(await server.client.get("/jobs", headers=ann), 200)] == ["import-rows"]
    assert_error(await server.client.get("/run", params={"runId": scripted}, headers=ann), 404)
    admin = {"x-user": "admin"}
    assert {run["id"] for run in assert_json(await server.client.get("/runs", headers=admin), 200)} == {
        imported,
        scripted,
    }
    assert len(assert_json(await server.client.get("/jobs", headers=admin), 200)) == 5
