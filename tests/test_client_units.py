"""The client's pieces that need no server: typed event parsing, the mapping of error answers to
exceptions (answers faked with httpx.MockTransport), reconnect backoff and the typed client's shape.
Everything the client does with a server is tested against the real one in test_client.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from durably_reflex import (
    ConflictError,
    InvalidArgumentError,
    InvalidInputError,
    JobNotFoundError,
    NotFoundError,
    RunNotFoundError,
    RunStateError,
    define_job,
)
from durably_reflex import _client as client_module
from durably_reflex._client import (
    AuthError,
    DurablyClient,
    PayloadTooLargeError,
    ServerError,
    UnexpectedResponseError,
    create_durably_client,
    reconnect_delay,
)
from durably_reflex._errors import FeatureNotSupportedError, StorageUnavailableError
from durably_reflex._records import Progress, Run, RunStatus
from durably_reflex._wire_events import (
    EVENT_CLASSES,
    LogWrite,
    RunComplete,
    RunFail,
    RunProgress,
    RunSnapshot,
    RunStart,
    RunTrigger,
    StepComplete,
    StepFail,
    StepStart,
    StreamGap,
    parse_event,
)

WAIT = 10.0
BASE = {"runId": "r1", "jobName": "import-csv"}
FULL = {**BASE, "timestamp": "2026-01-03T10:15:30.123Z", "sequence": 7}
RUN = {
    "id": "r1", "jobName": "import-csv", "input": {"rows": []}, "status": "running", "idempotencyKey": None,
    "concurrencyKey": None, "currentStepIndex": 1, "stepCount": 1, "progress": {"current": 1, "total": 3},
    "output": None, "error": None, "errorStack": None, "startedAt": "2026-01-03T10:15:30.000Z",
    "completedAt": None, "heartbeatAt": "2026-01-03T10:15:30.100Z", "createdAt": "2026-01-03T10:15:29.900Z",
    "updatedAt": "2026-01-03T10:15:30.100Z", "priority": 0, "waitingFor": None, "labels": {}, "replayOf": None,
}  # fmt: skip


# -- events -------------------------------------------------------------------------------------------
def test_full_events_parse_into_their_classes() -> None:
    snapshot = parse_event({"type": "run:snapshot", **BASE, "run": RUN})
    assert isinstance(snapshot, RunSnapshot)
    assert snapshot.run.status is RunStatus.RUNNING and snapshot.run.progress == Progress(current=1, total=3)
    assert snapshot.timestamp is None and snapshot.sequence is None

    complete = parse_event({"type": "run:complete", **FULL, "output": {"imported": 2}, "duration": 12})
    assert isinstance(complete, RunComplete)
    assert (complete.run_id, complete.job_name, complete.output, complete.sequence) == (
        "r1",
        "import-csv",
        {"imported": 2},
        7,
    )
    assert complete.timestamp is not None and complete.timestamp.microsecond == 123_000

    fail = parse_event({"type": "run:fail", **FULL, "error": "boom", "failedStepName": "s", "errorStack": "Traceback"})
    assert isinstance(fail, RunFail) and (fail.error, fail.failed_step_name, fail.error_stack) == (
        "boom",
        "s",
        "Traceback",
    )

    step = parse_event({"type": "step:complete", **FULL, "stepName": "s", "stepIndex": 2, "output": [1], "duration": 3})
    assert isinstance(step, StepComplete) and (step.step_name, step.step_index, step.output) == ("s", 2, [1])

    log = parse_event(
        {"type": "log:write", **FULL, "stepName": None, "level": "warn", "message": "m", "data": {"a": 1}, "id": "L1"}
    )
    assert isinstance(log, LogWrite) and (log.level, log.message, log.data, log.id) == ("warn", "m", {"a": 1}, "L1")


def test_reduced_notifications_parse_without_timestamps_or_outputs() -> None:
    assert isinstance(parse_event({"type": "run:start", **BASE}), RunStart)
    assert parse_event({"type": "run:complete", **BASE}) == RunComplete(run_id="r1", job_name="import-csv")
    progress = parse_event({"type": "run:progress", **BASE, "progress": {"current": 2}})
    assert isinstance(progress, RunProgress) and progress.progress == Progress(current=2)
    assert isinstance(parse_event({"type": "step:start", **BASE, "stepName": "s", "stepIndex": 0}), StepStart)
    failed = parse_event({"type": "step:fail", **BASE, "stepName": "s", "stepIndex": 0, "error": "x"})
    assert isinstance(failed, StepFail) and failed.error == "x"
    log = parse_event({"type": "log:write", **BASE, "stepName": "s", "level": "info", "message": "m", "data": None})
    assert isinstance(log, LogWrite) and log.id is None


def test_unknown_types_are_none_and_unknown_fields_are_ignored() -> None:
    assert parse_event({"type": "run:teleport", **BASE}) is None
    assert parse_event({"runId": "r1"}) is None
    event = parse_event({"type": "run:cancel", **FULL, "addedInVersion2": True})
    assert event is not None and not hasattr(event, "addedInVersion2")
    with pytest.raises(ValidationError):
        parse_event({"type": "step:start", **BASE})  # a known type missing its fields is an error


def test_every_event_class_round_trips_by_alias() -> None:
    assert len(EVENT_CLASSES) == 15  # Durably 0.7's 12, run:snapshot, run:wait and run:signal
    for type_name, cls in EVENT_CLASSES.items():
        assert cls.model_fields["type"].default == type_name
        assert cls.model_config["extra"] == "ignore"


# -- error answers ------------------------------------------------------------------------------------
async def answer(status: int, body: Any, call: str = "get_steps") -> Exception:
    """The exception `call` raises when the server answers `status` with `body` (JSON, or text)."""

    def reply(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as http:
        client = DurablyClient("http://test/api/durably", http=http)
        calls = {
            "get_steps": lambda: client.get_steps("r1"),
            "get_runs": lambda: client.get_runs(status="bogus"),
            "trigger": lambda: client.trigger("import-csv", {"rows": 1}),
            "retry": lambda: client.retry("r1"),
            "cancel": lambda: client.cancel("r1"),
        }
        with pytest.raises(Exception) as caught:
            await calls[call]()
        return caught.value


async def test_400_is_invalid_input_on_trigger_with_details_and_invalid_argument_elsewhere() -> None:
    details = [{"loc": ["rows"], "msg": "Input should be a valid list", "type": "list_type"}]
    error = await answer(
        400, {"error": "Invalid input: rows: Input should be a valid list", "details": details}, "trigger"
    )
    assert type(error) is InvalidInputError
    assert str(error) == "Invalid input: rows: Input should be a valid list" and error.errors == details

    error = await answer(400, {"error": "Unknown status 'bogus'"}, "get_runs")
    assert type(error) is InvalidArgumentError and str(error) == "Unknown status 'bogus'"


async def test_404_is_typed_by_the_servers_message() -> None:
    error = await answer(404, {"error": "Run not found: r1"})
    assert type(error) is RunNotFoundError and error.run_id == "r1" and str(error) == "Run not found: r1"
    error = await answer(404, {"error": "Job not found: nope"}, "trigger")
    assert type(error) is JobNotFoundError and error.job_name == "nope"
    error = await answer(404, {"error": "Not found: GET /api/wrong/steps", "code": "NOT_FOUND"})
    assert type(error) is NotFoundError and str(error) == "Not found: GET /api/wrong/steps"


async def test_get_run_is_none_only_for_an_unknown_run() -> None:
    async def get_run(status: int, body: Any) -> Any:
        transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
        async with httpx.AsyncClient(transport=transport) as http:
            return await DurablyClient("http://test/api/durably", http=http).get_run("r1")

    assert await get_run(404, {"error": "Run not found: r1"}) is None
    with pytest.raises(NotFoundError):  # a wrong base path must not read as "no such run"
        await get_run(404, {"error": "Not found: /wrong/run"})


async def test_409_is_a_run_state_error_when_the_message_says_which() -> None:
    error = await answer(409, {"error": "Cannot retry completed run: r1"}, "retry")
    assert isinstance(error, RunStateError)
    assert (error.action, error.status, error.run_id, str(error)) == (
        "retry",
        "completed",
        "r1",
        "Cannot retry completed run: r1",
    )
    error = await answer(409, {"error": "Cannot cancel already cancelled run: r1"}, "cancel")
    assert isinstance(error, RunStateError) and error.status == "cancelled"
    assert str(error) == "Cannot cancel already cancelled run: r1"
    error = await answer(409, {"error": "Somebody else holds it"}, "cancel")
    assert type(error) is ConflictError and str(error) == "Somebody else holds it"


async def test_other_statuses() -> None:
    error = await answer(413, {"error": "Request body over 1048576 bytes"}, "trigger")
    assert type(error) is PayloadTooLargeError and str(error) == "Request body over 1048576 bytes"
    for status in (401, 403):
        error = await answer(status, {"error": "Not allowed"})
        assert type(error) is AuthError and error.status_code == status and str(error) == "Not allowed"
    error = await answer(503, "")
    assert type(error) is ServerError and error.status_code == 503 and str(error) == "HTTP 503 Service Unavailable"
    error = await answer(418, {"error": "teapot"})
    assert type(error) is UnexpectedResponseError and error.status_code == 418


async def test_the_code_decides_the_class_whatever_the_status_or_wording() -> None:
    cases = [
        (400, {"error": "limit must be from 0 to 1000", "code": "INVALID_ARGUMENT"}, "trigger", InvalidArgumentError),
        (422, {"error": "rows: field required", "code": "INVALID_INPUT"}, "trigger", InvalidInputError),
        (404, {"error": "Run not found: r1", "code": "RUN_NOT_FOUND"}, "retry", RunNotFoundError),
        (404, {"error": "Job not found: nope", "code": "JOB_NOT_FOUND"}, "trigger", JobNotFoundError),
        (404, {"error": "Not found: GET /nothing", "code": "NOT_FOUND"}, "retry", NotFoundError),
        (409, {"error": "Cannot retry completed run: r1", "code": "RUN_STATE_CONFLICT"}, "retry", RunStateError),
        (409, {"error": "Somebody else holds it", "code": "CONFLICT"}, "cancel", ConflictError),
        (401, {"error": "Unauthorized", "code": "UNAUTHORIZED"}, "retry", AuthError),
        (403, {"error": "Not allowed", "code": "FORBIDDEN"}, "trigger", AuthError),
        (413, {"error": "Too big", "code": "PAYLOAD_TOO_LARGE"}, "trigger", PayloadTooLargeError),
    ]
    for status, body, call, expected in cases:
        error = await answer(status, body, call)
        assert type(error) is expected and str(error) == body["error"], (body, error)


async def test_an_unknown_code_falls_back_to_the_status() -> None:
    error = await answer(400, {"error": "Malformed JSON body", "code": "BAD_REQUEST"}, "trigger")
    assert type(error) is InvalidInputError
    error = await answer(415, {"error": "The body must be application/json", "code": "UNSUPPORTED_MEDIA_TYPE"})
    assert type(error) is UnexpectedResponseError and error.status_code == 415
    error = await answer(500, {"error": "Internal server error", "code": "INTERNAL_ERROR"})
    assert type(error) is ServerError and error.status_code == 500


async def test_503_storage_unavailable_is_a_storage_unavailable_error_with_the_retry_after() -> None:
    body = {"error": "The database cannot be reached", "code": "STORAGE_UNAVAILABLE"}
    for retry_after, expected in (("7", 7.0), (None, 5.0)):
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        transport = httpx.MockTransport(
            lambda request, headers=headers: httpx.Response(503, json=body, headers=headers)
        )
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(StorageUnavailableError) as caught:
                await DurablyClient("http://test/api/durably", http=http).get_runs()
        assert str(caught.value) == body["error"] and caught.value.retry_after == expected


# -- Durably's own Node server: its words, its missing routes, its streams -------------------------------
NODE_RUN = {  # GET /run of @coji/durably 0.15 (toClientRun): no updatedAt nor keys, `leased`, its own counters
    "id": "r1", "jobName": "import-csv", "input": {"rows": []}, "status": "leased", "currentStepIndex": 1,
    "completedStepCount": 1, "progress": {"current": 1, "total": 3}, "output": None, "error": None,
    "labels": {}, "startedAt": "2026-01-03T10:15:30.000Z", "completedAt": None,
    "createdAt": "2026-01-03T10:15:29.900Z", "isTerminal": False, "isActive": True,
}  # fmt: skip


def node_like(routes: dict[str, Any]) -> httpx.AsyncClient:
    """An httpx client whose server answers `routes` ("GET /run" -> a response, or a function of
    the request giving one) and a bare `Not Found` text for any other route, as Node Durably does."""

    def reply(request: httpx.Request) -> httpx.Response:
        route = f"{request.method} {request.url.path.removeprefix('/api/durably')}"
        answer = routes.get(route)
        if answer is None:
            return httpx.Response(404, text="Not Found")
        return answer(request) if callable(answer) else answer

    return httpx.AsyncClient(transport=httpx.MockTransport(reply))


def sse(*events: dict[str, Any], ids: bool = False) -> bytes:
    return b"".join(
        (f"id: {number}\n" if ids else "").encode() + b"data: " + json.dumps(event).encode() + b"\n\n"
        for number, event in enumerate(events, start=1)
    )


def stream_response(body: Any) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


async def test_runs_in_node_durablys_words_read_as_ours() -> None:
    old = {**{key: value for key, value in RUN.items() if key != "input"}, "payload": {"rows": [1]}}  # Durably 0.7
    async with node_like(
        {"GET /run": httpx.Response(200, json=NODE_RUN), "GET /runs": httpx.Response(200, json=[old])}
    ) as http:
        client = DurablyClient("http://test/api/durably", http=http)
        run = await client.get_run("r1")
        [seed_run] = await client.get_runs()
    assert run is not None and run.status is RunStatus.RUNNING and run.step_count == 1
    assert run.updated_at == run.started_at  # the newest time it has stands in for updatedAt
    assert run.idempotency_key is None and run.progress == Progress(current=1, total=3)
    assert seed_run.input == {"rows": [1]}
    assert Run.model_validate(RUN).to_wire() == RUN  # ours pass through unchanged


def test_node_durablys_events_read_as_ours() -> None:
    leased = parse_event({"type": "run:leased", **FULL, "input": {"rows": []}, "leaseOwner": "w1"})
    assert isinstance(leased, RunStart) and leased.payload == {"rows": []}
    trigger = parse_event({"type": "run:trigger", **BASE, "input": {"a": 1}, "labels": {}})
    assert isinstance(trigger, RunTrigger) and trigger.payload == {"a": 1}
    log = parse_event({"type": "log:write", "runId": "r1", "stepName": None, "level": "info", "message": "m"})
    assert isinstance(log, LogWrite) and log.job_name is None  # Durably 0.7's log:write names no job
    assert parse_event({"type": "run:lease-renewed", **BASE}) is None


async def test_a_bare_404_is_a_feature_the_server_does_not_offer() -> None:
    async with node_like({}) as http:
        client = DurablyClient("http://test/api/durably", http=http)
        for call, feature in (
            (client.list_jobs, "GET /jobs"),
            (client.get_stats, "GET /stats"),
            (lambda: client.get_logs("r1"), "GET /logs"),
        ):
            with pytest.raises(FeatureNotSupportedError) as caught:
                await call()
            assert isinstance(caught.value, NotFoundError) and caught.value.feature == feature
            assert caught.value.code == "FEATURE_NOT_SUPPORTED"


async def test_a_run_not_found_without_its_id_names_the_run_asked_for() -> None:
    error = await answer(404, {"error": "Run not found"})  # Durably 0.15: no id in the message
    assert type(error) is RunNotFoundError and error.run_id == "r1" and str(error) == "Run not found: r1"
    async with node_like({"GET /run": httpx.Response(404, json={"error": "Run not found"})}) as http:
        assert await DurablyClient("http://test/api/durably", http=http).get_run("r1") is None


async def test_a_500_in_the_engines_words_is_the_refusal_it_states() -> None:
    """Durably 0.7 answers 500 for an unknown run, a state conflict and an invalid input."""
    error = await answer(500, {"error": "Run not found: r1"}, "cancel")
    assert type(error) is RunNotFoundError and error.run_id == "r1"
    error = await answer(500, {"error": "Cannot retry completed run: r1"}, "retry")
    assert type(error) is RunStateError and (error.action, error.status) == ("retry", "completed")
    error = await answer(500, {"error": "Invalid input: rows: Required"}, "trigger")
    assert type(error) is InvalidInputError and str(error) == "Invalid input: rows: Required"
    error = await answer(500, {"error": "SQLITE_BUSY: database is locked"}, "cancel")
    assert type(error) is ServerError and error.status_code == 500


async def test_durably_015s_conflicts_speak_of_retries_and_running_runs() -> None:
    error = await answer(409, {"error": "Cannot retrigger pending run: r1"}, "retry")
    assert type(error) is RunStateError and (error.action, error.status) == ("retry", "pending")
    assert str(error) == "Cannot retrigger pending run: r1"
    error = await answer(409, {"error": "Cannot delete leased run: r1"}, "cancel")
    assert type(error) is RunStateError and (error.action, error.status) == ("delete", "running")


async def test_retry_falls_back_to_retrigger_and_returns_the_new_run() -> None:
    retrigger = httpx.Response(200, json={"success": True, "runId": "r2"})
    async with node_like({"POST /retrigger": retrigger}) as http:
        assert await DurablyClient("http://test/api/durably", http=http).retry("r1") == "r2"
    async with node_like({"POST /retry": httpx.Response(200, json={"success": True})}) as http:
        assert await DurablyClient("http://test/api/durably", http=http).retry("r1") == "r1"


async def test_a_running_filter_is_sent_as_leased_once_the_server_refuses_running() -> None:
    asked: list[list[str]] = []

    def runs(request: httpx.Request) -> httpx.Response:
        statuses = request.url.params.get_list("status")
        asked.append(statuses)
        for status in statuses:
            if status not in ("pending", "leased", "completed", "failed", "cancelled"):
                message = f"Invalid status: {status}. Must be one of: pending, leased, completed, failed, cancelled"
                return httpx.Response(400, json={"error": message})
        return httpx.Response(200, json=[NODE_RUN])

    async with node_like({"GET /runs": runs}) as http:
        client = DurablyClient("http://test/api/durably", http=http)
        assert [run.id for run in await client.get_runs(status="running")] == ["r1"]
        await client.get_runs(status=["running", "pending"])
        with pytest.raises(InvalidArgumentError, match="bogus"):
            await client.get_runs(status="bogus")
    assert asked[:3] == [["running"], ["leased"], ["leased", "pending"]]
    assert client.traits.running_status == "leased"


async def test_a_run_stream_without_snapshots_reads_the_run_and_ends_where_the_server_closes_it() -> None:
    connections: list[str] = []
    leased = {"type": "run:leased", **FULL, "input": {}}
    failed = {"type": "run:fail", **FULL, "error": "boom", "failedStepName": "s"}

    def subscribe(request: httpx.Request) -> httpx.Response:
        connections.append(str(request.url))
        return stream_response(sse(leased, failed))  # Durably 0.15 closes the stream after run:fail

    async with node_like({"GET /subscribe": subscribe, "GET /run": httpx.Response(200, json=NODE_RUN)}) as http:
        client = DurablyClient("http://test/api/durably", http=http)
        async with client.subscribe("r1") as stream:
            events = [event async for event in stream]
    assert [type(event) for event in events] == [RunSnapshot, RunStart, RunFail]
    assert isinstance(events[0], RunSnapshot) and events[0].run.status is RunStatus.RUNNING
    assert len(connections) == 1 and stream.reconnects == 0 and client.traits.sends_snapshots is False


async def test_a_silent_run_stream_shows_the_run_read_from_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Node Durably sends nothing on a pending run's stream until it starts: the run is read."""
    monkeypatch.setattr(client_module, "FIRST_FRAME_WAIT", 0.05)
    started = asyncio.Event()

    async def silent_then_start() -> AsyncIterator[bytes]:
        await started.wait()
        yield sse({"type": "run:complete", **FULL, "output": 1})

    pending = {**NODE_RUN, "status": "pending", "startedAt": None}
    routes = {"GET /subscribe": stream_response(silent_then_start()), "GET /run": httpx.Response(200, json=pending)}
    async with node_like(routes) as http, DurablyClient("http://test/api/durably", http=http).subscribe("r1") as stream:
        first = await asyncio.wait_for(anext(stream), WAIT)
        started.set()
        rest = [event async for event in stream]
    assert isinstance(first, RunSnapshot) and first.run.status is RunStatus.PENDING
    assert [type(event) for event in rest] == [RunComplete]


async def test_durably_07s_idle_stream_of_a_settled_or_unknown_run_is_answered_from_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Durably 0.7 keeps a stream of a finished run idle forever and does not check the run exists."""
    monkeypatch.setattr(client_module, "FIRST_FRAME_WAIT", 0.05)

    async def idle() -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""

    seed_run = {
        **{key: value for key, value in RUN.items() if key != "input"},
        "payload": {},
        "status": "completed",
        "output": 7,
    }
    routes = {"GET /subscribe": lambda request: stream_response(idle()), "GET /run": httpx.Response(200, json=seed_run)}
    async with node_like(routes) as http:
        result = await DurablyClient("http://test/api/durably", http=http).wait_for_run("r1", timeout=WAIT)
    assert result.output == 7

    routes["GET /run"] = httpx.Response(404, json={"error": "Run not found"})
    async with node_like(routes) as http:
        with pytest.raises(RunNotFoundError, match="^Run not found: r1$"):
            await DurablyClient("http://test/api/durably", http=http).wait_for_run("r1", timeout=WAIT)


async def test_a_runs_stream_that_could_not_resume_says_so_with_a_gap() -> None:
    bodies = iter([sse({"type": "run:trigger", **BASE}), sse({"type": "run:trigger", **BASE, "runId": "r2"}, ids=True)])
    async with (
        node_like({"GET /runs/subscribe": lambda request: stream_response(next(bodies))}) as http,
        DurablyClient("http://test/api/durably", http=http).subscribe_runs() as stream,
    ):
        events = [await asyncio.wait_for(anext(stream), WAIT) for _ in range(3)]
    assert [event.type for event in events] == ["run:trigger", "stream:gap", "run:trigger"]
    assert isinstance(events[1], StreamGap) and stream.last_event_id == "1"


# -- backoff and the typed client's shape ---------------------------------------------------------------
def test_reconnect_delay_doubles_from_a_tenth_of_a_second_to_five_with_jitter() -> None:
    for failures, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (7, 5.0), (50, 5.0)):
        delays = [reconnect_delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1


class Hello(BaseModel):
    name: str


@define_job(name="say-hello", input=Hello)
async def say_hello(step: Any, input: Hello) -> str:
    return f"hello {input.name}"


async def test_typed_client_from_definitions_names_its_keys() -> None:
    async with create_durably_client({"greet": say_hello}, "http://test/api/durably") as client:
        assert client.greet.name == "say-hello" and client.jobs["greet"] is client.greet
        assert "greet" in dir(client)
        with pytest.raises(AttributeError, match=r"No job registered under 'gret' \(registered: greet\)"):
            client.gret
    with pytest.raises(TypeError, match="bad: expected a job handle or a job definition"):
        create_durably_client({"bad": object()})
