"""What the HTTP API refuses, and how: every malformed or unaffordable request is a clear 4xx with a
stable `code`, the same on SQLite and on PostgreSQL (tests taking `backend_server` run on both), and
never reaches the database as a value it cannot store, compare or afford.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from durably_reflex import create_durably
from durably_reflex._errors import StorageUnavailableError
from durably_reflex._params import MAX_FILTER_VALUES, MAX_OFFSET
from durably_reflex.server import ApiError, DurablyAuth
from tests.server_fixtures import (
    FAST,
    JOBS,
    LiveServer,
    Serve,
    assert_error,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)

RUN_ROUTES = [("GET", "/run"), ("GET", "/steps"), ("GET", "/logs"), ("POST", "/retry"), ("POST", "/cancel")]
RUN_ROUTES += [("DELETE", "/run"), ("GET", "/subscribe")]


@pytest.fixture
async def backend_server(serve: Serve, db_url: str) -> AsyncIterator[LiveServer]:
    """A server on each backend (a fresh SQLite file, a fresh PostgreSQL database), no worker."""
    durably = create_durably(db_url, **FAST)
    durably.register(**JOBS)
    yield await serve(durably=durably, start_worker=False)


# -- integers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["9223372036854775808", str(10**30), str(MAX_OFFSET + 1)])
async def test_an_offset_beyond_its_bound_is_a_400_on_both_backends(backend_server: LiveServer, value: str) -> None:
    response = await backend_server.client.get("/runs", params={"offset": value})
    assert_error(response, 400, "offset", code="INVALID_ARGUMENT")


async def test_the_largest_offset_is_answered_with_an_empty_page(backend_server: LiveServer) -> None:
    await backend_server.durably.trigger("no-input")
    response = await backend_server.client.get("/runs", params={"offset": MAX_OFFSET})
    assert assert_json(response, 200) == []


@pytest.mark.parametrize(
    ("path", "name"),
    [("/runs", "limit"), ("/runs", "offset"), ("/stats", "bucketSeconds"), ("/stats", "buckets"), ("/logs", "limit")],
)
async def test_an_integer_parameter_takes_ascii_digits_only(serve: Serve, path: str, name: str) -> None:
    server = await serve(start_worker=False)
    run_id = (await server.durably.trigger("no-input")).id
    for value in ("", " 1", "1_000", "+1", "-0", "1e3", "0x10", "\u0661", "\uff11", "1.0"):
        response = await server.client.get(path, params={name: value, "runId": run_id})
        assert_error(response, 400, name, code="INVALID_ARGUMENT")


async def test_an_integer_parameter_given_twice_is_a_400(serve: Serve) -> None:
    server = await serve(start_worker=False)
    response = await server.client.get("/runs", params=[("limit", "1"), ("limit", "2")])
    assert_error(response, 400, "limit is given 2 times", code="INVALID_ARGUMENT")


# -- repeated filters --------------------------------------------------------------------------------
async def test_more_job_names_than_a_filter_takes_is_a_400_on_both_backends(backend_server: LiveServer) -> None:
    names = [("jobName", f"job-{i}") for i in range(MAX_FILTER_VALUES + 1)]
    assert_error(await backend_server.client.get("/runs", params=names), 400, "jobName", code="INVALID_ARGUMENT")
    assert_error(await backend_server.client.get("/stats", params=names), 400, "jobName", code="INVALID_ARGUMENT")


async def test_the_most_job_names_a_filter_takes_list_the_matching_runs_on_both_backends(
    backend_server: LiveServer,
) -> None:
    durably = backend_server.durably
    expected = [(await durably.trigger(name, input)).id for name, input in (("no-input", None), ("script", {}))]
    names = ["no-input", "script", *(f"job-{i}" for i in range(MAX_FILTER_VALUES - 2))]
    response = await backend_server.client.get("/runs", params=[("jobName", name) for name in names])
    assert [run["id"] for run in assert_json(response, 200)] == expected[::-1]


async def test_more_event_types_than_a_filter_takes_is_a_400(serve: Serve) -> None:
    server = await serve(start_worker=False)
    types = ",".join(["run:start"] * 5 + [f"x{i}" for i in range(MAX_FILTER_VALUES)])
    response = await server.client.get("/runs/subscribe", params={"type": types})
    assert_error(response, 400, "type", code="INVALID_ARGUMENT")


# -- text a backend cannot store ---------------------------------------------------------------------
async def test_a_nul_in_a_run_id_is_a_400_on_every_run_route_on_both_backends(backend_server: LiveServer) -> None:
    for method, path in RUN_ROUTES:
        response = await backend_server.client.request(method, path, params={"runId": "run\x00id"})
        assert_error(response, 400, "runId must not contain a NUL", code="INVALID_ARGUMENT")


@pytest.mark.parametrize("field", ["jobName", "idempotencyKey", "concurrencyKey"])
async def test_a_nul_in_a_trigger_field_is_a_400_on_both_backends(backend_server: LiveServer, field: str) -> None:
    body = {"jobName": "no-input", field: "key\x00"}
    assert_error(await backend_server.client.post("/trigger", json=body), 400, field, code="INVALID_ARGUMENT")
    assert await backend_server.durably.get_runs() == []


@pytest.mark.parametrize(("path", "name"), [("/runs", "jobName"), ("/stats", "jobName"), ("/logs", "after")])
async def test_a_nul_in_a_query_filter_is_a_400_on_both_backends(
    backend_server: LiveServer, path: str, name: str
) -> None:
    run_id = (await backend_server.durably.trigger("no-input")).id
    response = await backend_server.client.get(path, params={name: "a\x00b", "runId": run_id})
    assert_error(response, 400, f"{name} must not contain a NUL", code="INVALID_ARGUMENT")


async def test_a_lone_surrogate_in_a_trigger_body_is_a_400_on_both_backends(backend_server: LiveServer) -> None:
    for body in (
        b'{"jobName": "no-input", "idempotencyKey": "\\ud800"}',
        b'{"jobName": "no-input", "input": {"a": "\\udfff"}}',
    ):
        response = await backend_server.client.post(
            "/trigger", content=body, headers={"content-type": "application/json"}
        )
        assert_error(response, 400)
    assert await backend_server.durably.get_runs() == []


async def test_a_nul_inside_the_input_is_stored_and_read_back(backend_server: LiveServer) -> None:
    response = await backend_server.client.post("/trigger", json={"jobName": "no-input", "input": {"a\x00": "b\x00"}})
    run_id = assert_json(response, 200)["runId"]
    run = assert_json(await backend_server.client.get("/run", params={"runId": run_id}), 200)
    assert run["input"] == {"a\x00": "b\x00"}


# -- bodies --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_a_trigger_body_that_is_not_declared_json_is_a_415(serve: Serve, content_type: str | None) -> None:
    server = await serve(start_worker=False)
    headers = {} if content_type is None else {"content-type": content_type}
    response = await server.client.post("/trigger", content=b'{"jobName": "no-input"}', headers=headers)
    assert_error(response, 415, code="UNSUPPORTED_MEDIA_TYPE")
    assert await server.durably.get_runs() == []


async def test_a_json_body_in_another_charset_is_a_415(serve: Serve) -> None:
    server = await serve(start_worker=False)
    body = '{"jobName": "no-input"}'.encode("utf-16")
    response = await server.client.post(
        "/trigger", content=body, headers={"content-type": "application/json; charset=utf-16"}
    )
    assert_error(response, 415, "UTF-8", code="UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    "body",
    [
        '{"jobName": "no-input"}'.encode("utf-16"),
        '{"jobName": "no-input"}'.encode("utf-16-le"),
        b"\xef\xbb\xbf" + b'{"jobName": "no-input"}',
        b'{"jobName": "no-input", "input": {"x": NaN}}',
        b'{"jobName": "no-input", "input": {"x": Infinity}}',
        b'{"jobName": "no-\xff"}',
    ],
)
async def test_a_json_body_that_is_not_strict_utf8_json_is_a_400(serve: Serve, body: bytes) -> None:
    server = await serve(start_worker=False)
    response = await server.client.post("/trigger", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, code="BAD_REQUEST")
    assert await server.durably.get_runs() == []


async def test_a_json_body_declared_utf8_is_accepted(serve: Serve) -> None:
    server = await serve(start_worker=False)
    headers = {"content-type": "Application/JSON; charset=UTF-8"}
    assert_json(await server.client.post("/trigger", content=b'{"jobName": "no-input"}', headers=headers), 200)


@pytest.mark.parametrize("path", ["/retry", "/cancel"])
async def test_a_form_post_to_a_command_is_a_415_and_changes_nothing(serve: Serve, path: str) -> None:
    server = await serve(start_worker=False)
    run_id = (await server.durably.trigger("no-input")).id
    response = await server.client.post(path, params={"runId": run_id}, data={"a": "b"})
    assert_error(response, 415, code="UNSUPPORTED_MEDIA_TYPE")
    assert (await server.durably.get_run(run_id)).status == "pending"


async def test_a_command_without_a_body_or_headers_is_accepted(serve: Serve) -> None:
    """Durably 0.7's React client posts `{method: "POST"}` only."""
    server = await serve(start_worker=False)
    run_id = (await server.durably.trigger("no-input")).id
    assert assert_json(await server.client.post("/cancel", params={"runId": run_id}), 200) == {"success": True}


# -- methods -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/run", "DELETE, GET, HEAD, OPTIONS"), ("/trigger", "OPTIONS, POST"), ("/runs", "GET, HEAD, OPTIONS")],
)
async def test_options_answers_204_with_every_method_of_the_path(serve: Serve, path: str, allowed: str) -> None:
    server = await serve(start_worker=False)
    response = await server.client.options(path)
    assert response.status_code == 204 and response.headers["allow"] == allowed


async def test_options_on_a_path_we_do_not_serve_is_a_404(serve: Serve) -> None:
    server = await serve(start_worker=False)
    assert_error(await server.client.options("/nothing"), 404, code="NOT_FOUND")


async def test_an_unknown_method_on_a_path_is_a_405_naming_every_method(serve: Serve) -> None:
    server = await serve(start_worker=False)
    response = await server.client.request("PATCH", "/run")
    assert_error(response, 405, code="METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"


# -- auth hooks ----------------------------------------------------------------------------------------
async def test_an_authenticate_hook_that_raises_is_a_generic_401_and_is_logged(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Any) -> Any:
        raise RuntimeError("secret table users_v2 is missing")

    server = await serve(auth=DurablyAuth(authenticate=broken), start_worker=False)
    with caplog.at_level(logging.ERROR, logger="durably_reflex"):
        response = await server.client.get("/runs")
    body = assert_error(response, 401, code="UNAUTHORIZED")
    assert body["error"] == "Unauthorized" and "secret" not in response.text
    logged = [record for record in caplog.records if record.exc_info]
    assert logged and "secret table users_v2" in str(logged[0].exc_info[1])


@pytest.mark.parametrize(
    ("raised", "status", "message"),
    [(ApiError(403, "Token expired"), 403, "Token expired"), (HTTPException(429, "Slow down"), 429, "Slow down")],
)
async def test_an_error_an_authenticate_hook_raises_on_purpose_keeps_its_status_and_message(
    serve: Serve, raised: Exception, status: int, message: str
) -> None:
    def refuse(request: Any) -> Any:
        raise raised

    server = await serve(auth=DurablyAuth(authenticate=refuse), start_worker=False)
    assert assert_error(await server.client.get("/runs"), status)["error"] == message


async def test_an_unreachable_database_is_a_503_with_retry_after_in_whole_seconds(serve: Serve) -> None:
    def authenticate(request: Any) -> Any:  # a hook that reads the same database, say
        raise StorageUnavailableError("The database cannot be reached", retry_after=2.5)

    server = await serve(auth=DurablyAuth(authenticate=authenticate), start_worker=False)
    response = await server.client.get("/runs")
    body = assert_error(response, 503, code="STORAGE_UNAVAILABLE")
    assert body["error"] == "The database cannot be reached" and response.headers["retry-after"] == "3"


async def test_triggering_a_job_visible_jobs_hides_is_a_404_before_can_trigger_is_asked(serve: Serve) -> None:
    asked: list[str] = []

    def can_trigger(caller: Any, job_name: str, input: Any) -> bool:
        asked.append(job_name)
        return True

    auth = DurablyAuth(
        authenticate=lambda request: "ann", can_trigger=can_trigger, visible_jobs=lambda caller: ["script"]
    )
    server = await serve(auth=auth, start_worker=False)
    hidden = await server.client.post("/trigger", json={"jobName": "no-input"})
    missing = await server.client.post("/trigger", json={"jobName": "no-such-job"})
    assert assert_error(hidden, 404, code="JOB_NOT_FOUND")["error"] == "Job not found: no-input"
    assert assert_error(missing, 404, code="JOB_NOT_FOUND")["error"] == "Job not found: no-such-job"
    assert asked == [] and await server.durably.get_runs() == []
    assert_json(await server.client.post("/trigger", json={"jobName": "script"}), 200)
