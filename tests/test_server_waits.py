"""Durable time and waiting over HTTP, on both backends (a REAL server, tests/server_fixtures.py):
`POST /signal` (checked against the payload model a job declares), the schedule routes, a trigger's
`priority` / `delay` / `runAt`, and the events that tell waits, signals, retries and fired schedules
on both streams; with the auth hooks and error codes of the other routes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    GATES,
    Serve,
    assert_error,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)
from tests.wait_jobs import APPROVED, WAIT_JOBS, waiting_run


def by_header(request: Any) -> str | None:
    return request.headers.get("x-user") or None


# -- POST /signal ----------------------------------------------------------------------------------
async def test_a_run_waiting_for_a_signal_says_so_and_the_signal_completes_it(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS)
    run = await waiting_run(server)
    assert run["waitingFor"] == {"kind": "signal", "name": "approval", "until": None, "attempt": None}
    sent = await server.client.post("/signal", json={"runId": run["id"], "name": "approval", "payload": APPROVED})
    assert assert_json(sent, 200) == {"success": True}
    done = await server.wait_status(run["id"], "completed")
    assert done["output"] == APPROVED and done["waitingFor"] is None


async def test_a_signal_payload_the_jobs_model_refuses_answers_400_by_field_and_is_not_kept(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS)
    run = await waiting_run(server)
    bad = {"runId": run["id"], "name": "approval", "payload": {"approved": "perhaps", "by": ""}}
    error = assert_error(
        await server.client.post("/signal", json=bad), 400, "approval", "approved", code="INVALID_INPUT"
    )
    assert sorted(detail["loc"] for detail in error["details"]) == [["approved"], ["by"]]
    good = {"runId": run["id"], "name": "approval", "payload": APPROVED}
    assert_json(await server.client.post("/signal", json=good), 200)  # the refused one took no place
    assert (await server.wait_status(run["id"], "completed"))["output"] == APPROVED


async def test_a_signal_the_job_does_not_declare_carries_any_json(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS, start_worker=False)
    run_id = await server.trigger("approval", {})
    body = {"runId": run_id, "name": "extra", "payload": [1, "two", None]}
    assert_json(await server.client.post("/signal", json=body), 200)


async def test_signal_errors_have_their_codes(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS, start_worker=False)
    run_id = await server.trigger("approval", {})  # no worker: the run stays pending
    signal = {"runId": run_id, "name": "approval", "payload": APPROVED}
    for body, fragment in (
        ({"name": "approval"}, "runId is required"),
        ({"runId": run_id}, "name is required"),
        ({"runId": run_id, "name": ""}, "name must be a non-empty string"),
        ({"runId": 7, "name": "approval"}, "runId must be a non-empty string"),
        ({"runId": run_id, "name": "n" * 300}, "name is too long"),
    ):
        assert_error(await server.client.post("/signal", json=body), 400, fragment, code="INVALID_ARGUMENT")
    unknown = {**signal, "runId": "no-such-run"}
    assert_error(await server.client.post("/signal", json=unknown), 404, code="RUN_NOT_FOUND")
    text = await server.client.post("/signal", content=b"{}", headers={"content-type": "text/plain"})
    assert_error(text, 415)
    assert_json(await server.client.post("/signal", json=signal), 200)  # kept for when the run waits
    again = await server.client.post("/signal", json=signal)
    assert_error(again, 409, "already sent", code="SIGNAL_ALREADY_SENT")
    await server.durably.cancel(run_id)
    late = {**signal, "name": "another"}
    assert_error(
        await server.client.post("/signal", json=late), 409, "Cannot signal cancelled run", code="RUN_STATE_CONFLICT"
    )


async def test_can_signal_decides_who_may_signal_and_hidden_runs_are_not_found(serve: Serve) -> None:
    seen: list[tuple[Any, ...]] = []

    def can_signal(caller: str, run: Any, name: str, payload: Any) -> bool:
        seen.append((caller, run.id, name, payload))
        return caller == "boss"

    auth = DurablyAuth(
        authenticate=by_header, can_signal=can_signal, visible_jobs=lambda caller: None if caller != "guest" else []
    )
    server = await serve(jobs=WAIT_JOBS, auth=auth)
    server.client.headers["x-user"] = "boss"
    run = await waiting_run(server)
    body = {"runId": run["id"], "name": "approval", "payload": APPROVED}
    assert_error(await server.client.post("/signal", json=body, headers={"x-user": "intern"}), 403, "approval")
    assert_error(await server.client.post("/signal", json=body, headers={"x-user": "guest"}), 404, code="RUN_NOT_FOUND")
    assert_error(await server.client.post("/signal", json=body, headers={"x-user": ""}), 401)
    assert seen == [("intern", run["id"], "approval", APPROVED)]  # never asked for a run the caller cannot see
    assert_json(await server.client.post("/signal", json=body), 200)
    await server.wait_status(run["id"], "completed")


# -- POST /trigger: priority, delay, runAt ---------------------------------------------------------
async def test_trigger_takes_a_priority_and_a_delay_or_a_start_time(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS, start_worker=False)
    before = datetime.now(UTC)
    delayed = await server.get_run(await server.trigger("no-input", {}, delay=30, priority=7))
    assert delayed["priority"] == 7 and delayed["status"] == "pending"
    assert delayed["waitingFor"]["kind"] == "delay"
    until = datetime.fromisoformat(delayed["waitingFor"]["until"])
    assert before + timedelta(seconds=29) < until < datetime.now(UTC) + timedelta(seconds=31)
    at = (before + timedelta(hours=2)).replace(microsecond=0)
    scheduled = await server.get_run(await server.trigger("no-input", {}, runAt=at.isoformat()))
    assert datetime.fromisoformat(scheduled["waitingFor"]["until"]) == at
    year = before.year + 1
    in_paris = await server.get_run(await server.trigger("no-input", {}, runAt=f"{year}-01-01T10:00:00+01:00"))
    assert in_paris["waitingFor"]["until"] == f"{year}-01-01T09:00:00.000Z"


async def test_a_delayed_run_starts_once_its_time_comes(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS)
    run_id = await server.trigger("no-input", {}, delay=0.3)
    triggered = time.monotonic()
    assert (await server.get_run(run_id))["status"] == "pending"
    await server.wait_status(run_id, "completed")
    assert time.monotonic() - triggered >= 0.25


async def test_bad_timing_answers_400_naming_the_field(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS, start_worker=False)
    for extra, fragment in (
        ({"priority": "high"}, "priority must be a whole number"),
        ({"priority": 1.5}, "priority must be a whole number"),
        ({"priority": True}, "priority must be a whole number"),
        ({"priority": 10**7}, "priority must be a whole number between"),
        ({"delay": "soon"}, "delay must be a number"),
        ({"delay": -1}, "delay must be a number of seconds from 0"),
        ({"delay": 10**12}, "delay must be a number of seconds from 0"),
        ({"runAt": "tomorrow"}, "runAt must be an ISO 8601 date and time"),
        ({"runAt": 1700000000}, "runAt must be an ISO 8601 date and time"),
        ({"runAt": "2030-01-01T09:00:00"}, "runAt needs its offset"),
        ({"runAt": "9999-12-31T23:59:59Z"}, "run_at must be within"),
        ({"delay": 5, "runAt": "2030-01-01T09:00:00Z"}, "delay or run_at"),
    ):
        body = {"jobName": "no-input", "input": {}, **extra}
        assert_error(await server.client.post("/trigger", json=body), 400, fragment, code="INVALID_ARGUMENT")
    assert await server.durably.get_runs() == []


# -- schedules -------------------------------------------------------------------------------------
async def test_schedules_are_created_listed_paused_resumed_and_deleted(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS, start_worker=False)
    body = {"jobName": "script", "cron": "0 9 * * 1-5", "input": {"steps": 1}, "timezone": "Europe/Paris"}
    created = assert_json(await server.client.post("/schedules", json=body), 200)
    assert {key: created[key] for key in ("name", "jobName", "cron", "timezone", "catchUp", "paused")} == {
        "name": "script", "jobName": "script", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris",
        "catchUp": "once", "paused": False,
    }  # fmt: skip
    assert created["input"]["steps"] == 1 and created["nextFireAt"] > datetime.now(UTC).isoformat()
    assert created["lastFiredAt"] is None and created["lastRunId"] is None
    second = {"jobName": "no-input", "cron": "*/5 * * * *", "name": "often", "catchUp": "skip"}
    assert assert_json(await server.client.post("/schedules", json=second), 200)["catchUp"] == "skip"
    listed = assert_json(await server.client.get("/schedules"), 200)
    assert [item["name"] for item in listed] == ["often", "script"]
    paused = assert_json(await server.client.post("/schedules/pause", params={"name": "script"}), 200)
    assert paused["paused"] is True and paused["nextFireAt"] is None
    resumed = assert_json(await server.client.post("/schedules/resume", params={"name": "script"}), 200)
    assert resumed["paused"] is False and resumed["nextFireAt"] is not None
    updated = assert_json(await server.client.post("/schedules", json={**body, "cron": "30 9 * * *"}), 200)
    assert updated["cron"] == "30 9 * * *" and updated["createdAt"] == created["createdAt"]
    assert assert_json(await server.client.delete("/schedules", params={"name": "often"}), 200) == {"success": True}
    assert [item["name"] for item in assert_json(await server.client.get("/schedules"), 200)] == ["script"]


async def test_schedule_errors_have_their_codes(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS, start_worker=False)
    for body, status, fragment, code in (
        ({"cron": "* * * * *"}, 400, "jobName is required", "INVALID_ARGUMENT"),
        ({"jobName": "script"}, 400, "cron is required", "INVALID_ARGUMENT"),
        ({"jobName": "script", "cron": "every day"}, 400, "Invalid cron expression", "INVALID_ARGUMENT"),
        ({"jobName": "script", "cron": "0 0 31 2 *"}, 400, "never fires", "INVALID_ARGUMENT"),
        (
            {"jobName": "script", "cron": "* * * * *", "timezone": "Mars/Olympus"},
            400,
            "Unknown timezone",
            "INVALID_ARGUMENT",
        ),
        ({"jobName": "script", "cron": "* * * * *", "catchUp": "twice"}, 400, "catch_up", "INVALID_ARGUMENT"),
        ({"jobName": "script", "cron": "* * * * *", "name": 3}, 400, "name must be a string", "INVALID_ARGUMENT"),
        ({"jobName": "script", "cron": "* * * * *", "input": {"steps": "x"}}, 400, "steps", "INVALID_INPUT"),
        ({"jobName": "nope", "cron": "* * * * *"}, 404, "Job not found: nope", "JOB_NOT_FOUND"),
    ):
        assert_error(await server.client.post("/schedules", json=body), status, fragment, code=code)
    for method, path in (("POST", "/schedules/pause"), ("POST", "/schedules/resume"), ("DELETE", "/schedules")):
        assert_error(
            await server.client.request(method, path, params={"name": "nope"}),
            404,
            "Schedule not found: nope",
            code="SCHEDULE_NOT_FOUND",
        )
        assert_error(await server.client.request(method, path), 400, "name query parameter is required")
    assert assert_json(await server.client.get("/schedules"), 200) == []


async def test_schedules_follow_the_auth_hooks(serve: Serve) -> None:
    def visible_jobs(caller: str) -> list[str] | None:
        return ["script"] if caller == "ann" else None

    def can_trigger(caller: str, job_name: str, run_input: Any) -> bool:
        return caller != "viewer"

    auth = DurablyAuth(
        authenticate=by_header,
        visible_jobs=visible_jobs,
        can_trigger=can_trigger,
        scope=lambda caller: "acme" if caller == "tenant" else None,
    )
    server = await serve(jobs=WAIT_JOBS, auth=auth, start_worker=False)
    await server.durably.jobs.no_input.schedule("0 * * * *")
    await server.durably.jobs.script.schedule("0 * * * *")
    ann, viewer, tenant = ({"x-user": user} for user in ("ann", "viewer", "tenant"))
    assert [item["name"] for item in assert_json(await server.client.get("/schedules", headers=ann), 200)] == ["script"]
    assert len(assert_json(await server.client.get("/schedules", headers=viewer), 200)) == 2
    assert assert_json(await server.client.get("/schedules", headers=tenant), 200) == []  # schedules have no tenant
    hidden = await server.client.post("/schedules/pause", params={"name": "no-input"}, headers=ann)
    assert_error(hidden, 404, code="SCHEDULE_NOT_FOUND")
    assert_error(await server.client.post("/schedules/pause", params={"name": "script"}, headers=viewer), 403)
    assert_error(await server.client.delete("/schedules", params={"name": "script"}, headers=tenant), 404)
    body = {"jobName": "script", "cron": "0 * * * *", "name": "no-input"}  # the name of a schedule ann cannot see
    assert_error(await server.client.post("/schedules", json=body, headers=ann), 403, "no-input")
    assert_error(await server.client.post("/schedules", json={**body, "name": "mine"}, headers=viewer), 403)
    assert_error(await server.client.post("/schedules", json={**body, "name": "mine"}, headers=tenant), 403, "tenant")
    assert_error(await server.client.get("/schedules"), 401)
    assert {item.name: item.paused for item in await server.durably.get_schedules()} == {
        "no-input": False,
        "script": False,
    }
    assert_json(await server.client.post("/schedules", json={**body, "name": "mine"}, headers=ann), 200)


async def test_a_schedule_fires_runs_that_the_run_stream_names(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS)
    stream = await server.stream("/runs/subscribe", params={"type": "run:trigger"})
    body = {"jobName": "no-input", "cron": "* * * * * *", "input": {"tick": True}, "name": "every-second"}
    assert_json(await server.client.post("/schedules", json=body), 200)
    (fired,) = await stream.until(lambda frame: frame.event.get("schedule") == "every-second", timeout=5)
    assert set(fired.event) == {"type", "runId", "jobName", "schedule"}
    assert (await server.get_run(fired.event["runId"]))["input"] == {"tick": True}
    assert_json(await server.client.post("/schedules/pause", params={"name": "every-second"}), 200)
    listed = assert_json(await server.client.get("/schedules"), 200)
    assert listed[0]["lastRunId"] is not None and listed[0]["lastFiredAt"] is not None
    plain = await server.trigger("no-input", {})
    (triggered,) = await stream.until(lambda frame: frame.event["runId"] == plain)
    assert "schedule" not in triggered.event  # Durably 0.7's reduced trigger, unchanged


# -- events ----------------------------------------------------------------------------------------
async def test_the_run_stream_tells_the_wait_the_signal_and_the_end_of_the_wait(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS)
    run = await waiting_run(server)
    stream = await server.stream("/subscribe", params={"runId": run["id"]})
    snapshot = await stream.next()
    assert snapshot is not None and snapshot.event["run"]["waitingFor"]["name"] == "approval"
    assert_json(
        await server.client.post("/signal", json={"runId": run["id"], "name": "approval", "payload": APPROVED}), 200
    )
    frames = await stream.until(lambda frame: frame.type == "run:complete")
    live = [frame.type for frame in frames if not frame.event.get("replayed")]
    assert live[:2] == ["run:signal", "run:start"]  # the signal, then the run resumes: the wait is over
    signal = next(frame.event for frame in frames if frame.type == "run:signal")
    assert signal["name"] == "approval" and "payload" not in signal


async def test_the_runs_stream_tells_sleeps_and_retries_with_when_they_end(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS)
    stream = await server.stream("/runs/subscribe", params={"type": ["run:wait", "run:start", "run:signal"]})
    napping = await server.trigger("nap", {})
    (slept,) = [
        frame for frame in await stream.until(lambda frame: frame.type == "run:wait") if frame.type == "run:wait"
    ]
    assert slept.event["runId"] == napping and slept.event["waitingFor"]["kind"] == "sleep"
    assert slept.event["waitingFor"]["name"] == "nap" and slept.event["waitingFor"]["until"]
    await server.wait_status(napping, "completed")
    gate = GATES.new()
    retried = await server.trigger("flaky", {"gate": gate})
    frames = await stream.until(lambda frame: frame.type == "run:wait" and frame.event["runId"] == retried)
    waiting_for = frames[-1].event["waitingFor"]
    assert (waiting_for["kind"], waiting_for["name"], waiting_for["attempt"]) == ("retry", "call", 1)
    GATES.open(gate)
    await server.wait_status(retried, "completed")
    steps = assert_json(await server.client.get("/steps", params={"runId": retried}), 200)
    assert [step["status"] for step in steps][-1] == "completed" and steps[0]["status"] == "failed"
    assert {step["name"] for step in steps} == {"call"} and {step["index"] for step in steps} == {0}


# -- GET /jobs -------------------------------------------------------------------------------------
async def test_jobs_list_the_payload_schema_of_each_declared_signal(serve: Serve) -> None:
    server = await serve(jobs=WAIT_JOBS, start_worker=False)
    jobs = {job["name"]: job for job in assert_json(await server.client.get("/jobs"), 200)}
    assert set(jobs["approval"]["signals"]) == {"approval"}
    assert jobs["approval"]["signals"]["approval"]["required"] == ["approved", "by"]
    assert jobs["script"]["signals"] == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/signal"), ("GET", "/schedules"), ("POST", "/schedules"), ("POST", "/schedules/pause"),
     ("POST", "/schedules/resume"), ("DELETE", "/schedules")],
)  # fmt: skip
async def test_the_new_routes_refuse_callers_authenticate_refuses(serve: Serve, method: str, path: str) -> None:
    server = await serve(jobs=WAIT_JOBS, auth=DurablyAuth(authenticate=lambda request: None), start_worker=False)
    await server.durably.jobs.script.schedule("0 * * * *")
    options: dict[str, Any] = {"params": {"name": "script"}}
    if method == "POST" and path in ("/signal", "/schedules"):
        options = {"json": {"runId": "x", "name": "approval", "jobName": "script", "cron": "* * * * *"}}
    assert_error(await server.client.request(method, path, **options), 401)
    assert [item.paused for item in await server.durably.get_schedules()] == [False]


# -- GET /openapi.json -----------------------------------------------------------------------------
async def test_the_document_declares_signals_schedules_and_timing(serve: Serve) -> None:
    doc = assert_json(await (await serve(jobs=WAIT_JOBS, start_worker=False)).client.get("/openapi.json"), 200)
    schemas = doc["components"]["schemas"]
    signal = doc["paths"]["/signal"]["post"]
    assert {"200", "400", "403", "404", "409", "413", "415"} <= set(signal["responses"])
    assert signal["requestBody"]["content"]["application/json"]["schema"]["required"] == ["runId", "name"]
    create = doc["paths"]["/schedules"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["discriminator"]["propertyName"] == "jobName"
    script = schemas[create["discriminator"]["mapping"]["script"].rsplit("/", 1)[1]]
    assert script["required"] == ["jobName", "cron"] and script["properties"]["catchUp"]["enum"] == ["once", "skip"]
    assert script["properties"]["input"] == {"$ref": "#/components/schemas/Input.script"}  # shared with /trigger
    trigger = schemas["Trigger.script"]["properties"]
    assert trigger["runAt"]["format"] == "date-time" and trigger["priority"]["maximum"] == 1_000_000
    assert set(schemas["Schedule"]["properties"]) >= {"name", "jobName", "cron", "nextFireAt", "lastRunId", "paused"}
    assert set(schemas["WaitingFor"]["properties"]) == {"kind", "name", "until", "attempt"}
    for path in ("/schedules/pause", "/schedules/resume"):
        assert doc["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Schedule"
        }
    assert "run:wait" in doc["paths"]["/subscribe"]["get"]["description"]
