"""Operating runs over HTTP, on both backends (a REAL server, tests/server_fixtures.py): labels and a
trigger's disposition, searching `/runs` and filtering `/runs/subscribe`, the bulk actions (by ids or
by filter, in batches, with streamed progress, going on when their caller leaves), replay from a
step and a run's attempts; with the auth hooks and error codes of the other routes."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from durably_reflex import BatchItem
from durably_reflex._records import Run
from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    GATES,
    WAIT,
    LiveServer,
    Serve,
    assert_error,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    parse_frame,
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)


async def run_ids(server: LiveServer, client: httpx.AsyncClient | None = None, **params: Any) -> list[str]:
    return [run["id"] for run in assert_json(await (client or server.client).get("/runs", params=params), 200)]


async def pending_runs(server: LiveServer, count: int, **labels: str) -> list[str]:
    """`count` runs of `script`, created in one transaction (the worker is off: they stay pending)."""
    runs = await server.durably.batch_trigger("script", [BatchItem({"steps": 1}, labels=labels) for _ in range(count)])
    return [run.id for run in runs]


async def stream_bulk(server: LiveServer, action: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A bulk action asked with `Accept: text/event-stream`: its frames' events until the stream ends."""
    headers = {"accept": "text/event-stream"}
    async with server.client.stream("POST", f"/bulk/{action}", json=body, headers=headers) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        raw = await response.aread()
    frames = [parse_frame(chunk + b"\n\n") for chunk in raw.split(b"\n\n") if chunk]
    return [frame.event for frame in frames if frame is not None]


# -- labels and the trigger's disposition --------------------------------------------------------------
async def test_a_trigger_keeps_its_labels_and_tells_whether_it_created_found_or_joined_a_run(serve: Serve) -> None:
    server = await serve(start_worker=False)
    labels = {"customer": "acme", "region": "eu"}
    body = {
        "jobName": "script",
        "input": {"steps": 1},
        "labels": labels,
        "concurrencyKey": "acct-1",
        "coalesce": "skip",
    }

    first = assert_json(await server.client.post("/trigger", json=body), 200)
    joined = assert_json(await server.client.post("/trigger", json=body), 200)
    keyed = {"jobName": "script", "idempotencyKey": "order-1"}
    created, found = [assert_json(await server.client.post("/trigger", json=keyed), 200) for _ in range(2)]

    assert first == {"runId": first["runId"], "disposition": "created"}
    assert joined == {"runId": first["runId"], "disposition": "coalesced"}
    assert (created["disposition"], found) == ("created", {"runId": created["runId"], "disposition": "idempotent"})
    run = await server.get_run(first["runId"])
    assert (run["labels"], run["replayOf"]) == (labels, None)
    assert (await server.get_run(created["runId"]))["labels"] == {}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"labels": ["customer"]}, "labels must be a JSON object"),
        ({"labels": {"bad key": "x"}}, "label key"),
        ({"labels": {"customer": 7}}, "value must be a string"),
        ({"labels": {f"k{i}": "v" for i in range(21)}}, "at most 20 labels"),
        ({"coalesce": "merge", "concurrencyKey": "k"}, 'coalesce must be "skip"'),
        ({"coalesce": "skip"}, "needs a concurrencyKey"),
    ],
)
async def test_a_trigger_with_bad_labels_or_coalesce_is_a_400_and_creates_nothing(
    serve: Serve, extra: dict[str, Any], fragment: str
) -> None:
    server = await serve(start_worker=False)
    response = await server.client.post("/trigger", json={"jobName": "script", **extra})
    assert_error(response, 400, fragment, code="INVALID_ARGUMENT")
    assert await server.durably.get_runs() == []


# -- searching /runs -------------------------------------------------------------------------------------
async def test_runs_are_found_by_label_id_prefix_creation_time_and_input_field(serve: Serve) -> None:
    server = await serve(start_worker=False)
    ada = await server.trigger("script", {"steps": 2}, labels={"customer": "acme", "region": "eu"})
    bob = await server.trigger("script", {"steps": 3}, labels={"customer": "acme"})
    eve = await server.trigger("no-input", {"email": "eve@example.com", "vip": True}, labels={"customer": "globex"})
    created = {
        run_id: datetime.fromisoformat((await server.get_run(run_id))["createdAt"]) for run_id in (ada, bob, eve)
    }

    assert await run_ids(server, **{"label.customer": "acme"}) == [bob, ada]
    assert await run_ids(server, **{"label.customer": "acme", "label.region": "eu"}) == [ada]
    assert await run_ids(server, **{"label.customer": "initech"}) == []
    assert await run_ids(server, idPrefix=eve[:20]) == [eve]
    assert await run_ids(server, **{"input.steps": "3"}) == [bob]  # compared as text
    assert await run_ids(server, **{"input.email": "eve@example.com", "input.vip": "true"}) == [eve]
    assert await run_ids(server, jobName="script", **{"input.steps": "2", "label.customer": "acme"}) == [ada]
    assert await run_ids(server, createdAfter=created[bob].isoformat()) == [eve, bob]
    assert await run_ids(server, createdBefore=created[bob].isoformat(), status="pending") == [ada]
    assert await run_ids(server, **{"label.customer": "acme", "limit": "1", "offset": "1"}) == [ada]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"label.bad key": "x"}, "a label key is"),
        ({"input.email') OR 1=1 --": "x"}, "a field path is"),
        ([("label.customer", "a"), ("label.customer", "b")], "given 2 times"),
        ({"idPrefix": "x" * 65}, "idPrefix is too long"),
        ({"createdAfter": "2030-01-01T09:00:00"}, "needs its offset"),
        ({"createdBefore": "yesterday"}, "createdBefore must be an ISO 8601"),
        ({f"label.k{i}": "v" for i in range(21)}, "at most 20"),
        ({"status": "stuck"}, "Unknown status"),
    ],
)
async def test_a_malformed_search_is_a_400_naming_the_parameter(serve: Serve, params: Any, fragment: str) -> None:
    server = await serve(start_worker=False)
    assert_error(await server.client.get("/runs", params=params), 400, fragment, code="INVALID_ARGUMENT")


async def test_runs_subscribe_with_labels_sends_only_the_events_of_runs_that_carry_them(serve: Serve) -> None:
    server = await serve(start_worker=False)
    old_acme = await server.trigger("script", {"steps": 1}, labels={"customer": "acme"})
    live = await server.stream("/runs/subscribe", params={"label.customer": "acme"})
    await server.trigger("script", {"steps": 1}, labels={"customer": "globex"})
    await server.trigger("script", {"steps": 1})
    new_acme = await server.trigger("script", {"steps": 1}, labels={"customer": "acme", "tier": "gold"})
    await server.client.post("/cancel", params={"runId": old_acme})

    frames = await live.until(lambda frame: frame.type == "run:cancel")

    assert [(frame.type, frame.event["runId"]) for frame in frames] == [
        ("run:trigger", new_acme),
        ("run:cancel", old_acme),
    ]


async def test_a_label_filtered_stream_still_tells_of_a_deletion_it_could_not_judge_first(serve: Serve) -> None:
    server = await serve(start_worker=False)
    run_id = await server.trigger("script", {"steps": 1}, labels={"customer": "acme"})
    await server.durably.cancel(run_id)
    live = await server.stream("/runs/subscribe", params={"label.customer": "acme"})
    assert_json(await server.client.delete("/run", params={"runId": run_id}), 200)

    (deleted,) = await live.until(lambda frame: frame.type == "run:delete")
    assert deleted.event["runId"] == run_id


# -- bulk actions ----------------------------------------------------------------------------------------
async def test_a_bulk_cancel_by_filter_streams_its_progress_after_each_batch(serve: Serve) -> None:
    server = await serve(start_worker=False)
    wave_one = await pending_runs(server, 5, wave="1")
    wave_two = await pending_runs(server, 2, wave="2")

    events = await stream_bulk(server, "cancel", {"filter": {"labels": {"wave": "1"}}, "batchSize": 2})

    assert [(event["type"], event["matched"]) for event in events] == [
        ("bulk:progress", 2),
        ("bulk:progress", 4),
        ("bulk:progress", 5),
        ("bulk:done", 5),
    ]
    assert events[-1] == {"type": "bulk:done", "action": "cancel", "matched": 5, "changed": 5, "skipped": 0}
    statuses = {run["id"]: run["status"] for run in assert_json(await server.client.get("/runs"), 200)}
    assert {statuses[run_id] for run_id in wave_one} == {"cancelled"}
    assert {statuses[run_id] for run_id in wave_two} == {"pending"}


async def test_a_bulk_action_by_ids_answers_its_totals_and_skips_what_it_may_not_do(serve: Serve) -> None:
    server = await serve(start_worker=False)
    runs = await pending_runs(server, 4)
    await server.durably.cancel(runs[0])

    retried = await server.client.post("/bulk/retry", json={"runIds": runs})
    deleted = await server.client.post("/bulk/delete", json={"runIds": [runs[1], runs[0], "no-such-run", runs[0]]})

    assert assert_json(retried, 200) == {"matched": 4, "changed": 1, "skipped": 3}  # only the cancelled one
    assert assert_json(deleted, 200) == {"matched": 3, "changed": 0, "skipped": 3}  # nothing finished; ids once
    everything = await server.client.post("/bulk/cancel", json={"filter": {}})
    assert assert_json(everything, 200) == {"matched": 4, "changed": 4, "skipped": 0}
    assert (
        assert_json(await server.client.post("/bulk/delete", json={"filter": {"jobName": ["script"]}}), 200)["changed"]
        == 4
    )
    assert await run_ids(server) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "give runIds or filter"),
        ({"runIds": ["a"], "filter": {}}, "give runIds or filter"),
        ({"filter": {"lables": {"customer": "acme"}}}, "no field 'lables'"),
        ({"filter": {"jobName": ""}}, "filter.jobName must be a non-empty string"),
        ({"filter": {"status": ["failed", "lost"]}}, "Unknown status"),
        ({"filter": {"input": {"email": {"is": "x"}}}}, "must be a string, number or boolean"),
        ({"filter": {"createdAfter": "2030-01-01"}}, "needs its offset"),
        ({"filter": []}, "filter must be a JSON object"),
        ({"runIds": "abc"}, "runIds must be a list"),
        ({"runIds": ["x"] * 10_001}, "at most 10000"),
        ({"runIds": ["a"], "batchSize": 0}, "batchSize must be"),
        ({"runIds": ["a"], "everything": True}, "not 'everything'"),
    ],
)
async def test_a_malformed_bulk_action_is_a_400_and_does_nothing(serve: Serve, body: Any, fragment: str) -> None:
    server = await serve(start_worker=False)
    (run_id,) = await pending_runs(server, 1)
    assert_error(await server.client.post("/bulk/cancel", json=body), 400, fragment, code="INVALID_ARGUMENT")
    assert (await server.get_run(run_id))["status"] == "pending"


async def test_a_bulk_action_refuses_a_form_post(serve: Serve) -> None:
    server = await serve(start_worker=False)
    form = await server.client.post(
        "/bulk/delete", content=b"filter=", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_error(form, 415)


async def test_a_bulk_action_runs_to_its_end_after_its_caller_leaves(serve: Serve) -> None:
    held = asyncio.Event()
    release = asyncio.Event()

    async def can_access_run(caller: Any, run: Run) -> bool:
        if run.labels.get("hold") == "yes":  # the action's listing waits here until the test lets it go
            held.set()
            await release.wait()
        return True

    auth = DurablyAuth(authenticate=lambda request: "ann", can_access_run=can_access_run)
    server = await serve(start_worker=False, auth=auth)
    runs = await pending_runs(server, 3) + await pending_runs(server, 1, hold="yes")
    headers = {"accept": "text/event-stream"}
    async with server.client.stream("POST", "/bulk/cancel", json={"filter": {}}, headers=headers) as response:
        assert response.status_code == 200
        async with asyncio.timeout(WAIT):
            await held.wait()
    # The caller has gone; the action has not.
    release.set()
    async with asyncio.timeout(WAIT):
        while {run.status for run in await server.durably.get_runs()} != {"cancelled"}:
            await asyncio.sleep(0.01)
    assert len(runs) == 4


async def test_a_bulk_error_mid_way_ends_the_stream_with_the_answer_it_would_have_had(serve: Serve) -> None:
    from starlette.exceptions import HTTPException

    def can_access_run(caller: Any, run: Run) -> bool:
        if run.labels.get("boom"):
            raise HTTPException(403, "not this one")
        return True

    server = await serve(
        start_worker=False, auth=DurablyAuth(authenticate=lambda request: "ann", can_access_run=can_access_run)
    )
    ids = await pending_runs(server, 2) + await pending_runs(server, 1, boom="yes")

    events = await stream_bulk(server, "cancel", {"runIds": ids, "batchSize": 2})
    plain = await server.client.post("/bulk/cancel", json={"runIds": ids[2:]})

    assert events == [
        {"type": "bulk:progress", "action": "cancel", "matched": 2, "changed": 2, "skipped": 0},
        {"type": "bulk:error", "action": "cancel", "matched": 2, "changed": 2, "skipped": 0, "status": 403, "error": "not this one", "code": "FORBIDDEN"},
    ]  # fmt: skip
    assert_error(plain, 403, "not this one", code="FORBIDDEN")


async def test_bulk_actions_and_search_leave_out_runs_the_caller_may_not_see(serve: Serve) -> None:
    def user(request: Request) -> str:
        return "ann"

    auth = DurablyAuth(
        authenticate=user,
        visible_jobs=lambda caller: {"script"},
        can_access_run=lambda caller, run: run.labels.get("secret") != "yes",
    )
    server = await serve(start_worker=False, auth=auth)
    mine = await pending_runs(server, 2, team="data")
    secret = await pending_runs(server, 1, team="data", secret="yes")
    hidden_job = (await server.durably.trigger("no-input", {}, labels={"team": "data"})).id

    assert await run_ids(server, **{"label.team": "data"}) == mine[::-1]
    by_filter = await server.client.post("/bulk/cancel", json={"filter": {"labels": {"team": "data"}}})
    by_ids = await server.client.post("/bulk/cancel", json={"runIds": [*secret, hidden_job]})

    assert assert_json(by_filter, 200) == {"matched": 2, "changed": 2, "skipped": 0}  # the others not even counted
    assert assert_json(by_ids, 200) == {"matched": 2, "changed": 0, "skipped": 2}  # as ids that do not exist
    statuses = {run.id: run.status for run in await server.durably.get_runs()}
    assert [statuses[run_id] for run_id in [*secret, hidden_job]] == ["pending", "pending"]


# -- replay and attempts -------------------------------------------------------------------------------
async def test_a_replay_from_a_step_answers_the_new_run_which_reruns_only_from_there(serve: Serve) -> None:
    server = await serve()
    source = await server.trigger("script", {"steps": 3}, labels={"team": "data"})
    await server.wait_status(source, "completed")

    answer = await server.client.post("/replay", json={"runId": source, "fromStep": "step-1"})

    replay = assert_json(answer, 200)
    assert (replay["replayOf"], replay["labels"], replay["input"]) == (
        source,
        {"team": "data"},
        (await server.get_run(source))["input"],
    )
    await server.wait_status(replay["id"], "completed")
    steps = assert_json(await server.client.get("/steps", params={"runId": replay["id"]}), 200)
    source_steps = assert_json(await server.client.get("/steps", params={"runId": source}), 200)
    assert steps[0]["completedAt"] == source_steps[0]["completedAt"]  # copied, not run again
    assert steps[1]["completedAt"] > source_steps[2]["completedAt"]  # run anew
    assert await run_ids(server, replayOf=source) == [replay["id"]]


async def test_replay_errors_have_their_codes(serve: Serve) -> None:
    server = await serve(start_worker=False)
    run_id = await server.trigger("script", {"steps": 1})
    for body, status, code in (
        ({"runId": run_id, "fromStep": "nope"}, 400, "INVALID_ARGUMENT"),
        ({"fromStep": "step-0"}, 400, "INVALID_ARGUMENT"),
        ({"runId": "no-such-run"}, 404, "RUN_NOT_FOUND"),
    ):
        assert_error(await server.client.post("/replay", json=body), status, code=code)
    assert_error(await server.client.post("/replay", content=b"{}", headers={"content-type": "text/plain"}), 415)


async def test_a_replay_is_a_trigger_which_can_trigger_may_refuse(serve: Serve) -> None:
    auth = DurablyAuth(authenticate=lambda request: "ann", can_trigger=lambda caller, job, input: False)
    server = await serve(start_worker=False, auth=auth)
    run_id = (await server.durably.trigger("script", {"steps": 1})).id
    assert_error(await server.client.post("/replay", json={"runId": run_id}), 403, code="FORBIDDEN")
    assert len(await server.durably.get_runs()) == 1


async def test_attempts_tell_how_each_attempt_of_a_retried_run_ended(serve: Serve) -> None:
    server = await serve()
    gate = GATES.new()
    run_id = await server.trigger("script", {"steps": 1, "fail_at": 0, "fail_gate": gate})
    failed = await server.wait_status(run_id, "failed")
    assert assert_json(await server.client.get("/attempts", params={"runId": run_id}), 200) == []
    GATES.open(gate)
    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    await server.wait_status(run_id, "completed")

    (attempt,) = assert_json(await server.client.get("/attempts", params={"runId": run_id}), 200)

    assert attempt == {
        "runId": run_id,
        "number": 1,
        "status": "failed",
        "error": "step 0 failed on purpose",
        "errorStack": None,  # as for runs: only to callers expose_error_stack allows
        "startedAt": failed["startedAt"],
        "completedAt": failed["completedAt"],
    }
    assert_error(await server.client.get("/attempts", params={"runId": "no-such-run"}), 404, code="RUN_NOT_FOUND")
    assert_error(await server.client.get("/attempts"), 400, "runId", code="INVALID_ARGUMENT")
