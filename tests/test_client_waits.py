"""`DurablyClient` and its typed per-job access for durable time and waiting, against a REAL server
on both backends: signals (the payload checked locally against the job's declared model), schedules,
a trigger's timing, the typed errors, and the typed `run:wait` / `run:signal` events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from durably_reflex import (
    InvalidArgumentError,
    InvalidInputError,
    RunStateError,
    ScheduleNotFoundError,
    SignalConflictError,
    create_durably_client,
)
from durably_reflex._client import TypedDurablyClient
from durably_reflex._wire_events import RunSignal, RunSnapshot, RunStart, RunTrigger, RunWait
from tests.server_fixtures import (
    LiveServer,
    Serve,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)
from tests.wait_jobs import APPROVED, WAIT_JOBS, Approval, waiting_run


@pytest.fixture
async def server(serve: Serve) -> LiveServer:
    return await serve(jobs=WAIT_JOBS)


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[TypedDurablyClient]:
    async with create_durably_client(WAIT_JOBS, api=server.base_url) as typed:
        yield typed


async def test_signal_resumes_the_run_and_the_stream_tells_the_wait_and_the_signal(
    server: LiveServer, client: TypedDurablyClient
) -> None:
    run = await waiting_run(server)
    seen: list[object] = []
    async with asyncio.timeout(10), client.subscribe(run["id"]) as events:
        async for event in events:
            seen.append(event)
            if isinstance(event, RunSnapshot):
                assert event.run.waiting_for is not None and event.run.waiting_for.name == "approval"
                await client.approval.signal(run["id"], "approval", Approval(approved=True, by="ada"))
            if event.type == "run:complete":
                break
    assert [type(event) for event in seen[1:3]] == [RunSignal, RunStart]
    assert isinstance(seen[1], RunSignal) and seen[1].name == "approval"
    assert (await client.approval.wait_for_run(run["id"], timeout=10)).output == APPROVED


async def test_a_typed_signal_is_checked_locally_and_errors_come_back_typed(
    server: LiveServer, client: TypedDurablyClient
) -> None:
    run = await waiting_run(server)
    with pytest.raises(InvalidInputError, match="approved") as refused:
        await client.approval.signal(run["id"], "approval", {"approved": "perhaps", "by": "ada"})
    assert refused.value.errors[0]["loc"] == ("approved",)
    with pytest.raises(InvalidInputError, match="by") as server_side:  # the untyped client: the server says it
        await client.signal(run["id"], "approval", {"approved": True, "by": ""})
    assert [detail["loc"] for detail in server_side.value.errors] == [["by"]]
    await client.signal(run["id"], "approval", APPROVED)
    await client.wait_for_run(run["id"], timeout=10)
    with pytest.raises(RunStateError, match="Cannot signal completed run"):
        await client.signal(run["id"], "later")
    later = await client.approval.trigger({}, delay=60)  # pending a while: the signal is kept for it
    await client.signal(later, "approval", APPROVED)
    with pytest.raises(SignalConflictError) as conflict:
        await client.signal(later, "approval", APPROVED)
    assert (conflict.value.run_id, conflict.value.name) == (later, "approval")


async def test_schedules_through_the_client(client: TypedDurablyClient) -> None:
    created = await client.script.schedule("0 9 * * *", {"steps": 1}, timezone="Europe/Paris", name="morning")
    assert (created.name, created.job_name, created.timezone, created.paused) == (
        "morning",
        "script",
        "Europe/Paris",
        False,
    )
    assert created.next_fire_at is not None and created.next_fire_at > datetime.now(UTC)
    assert [item.name for item in await client.get_schedules()] == ["morning"]
    assert (await client.pause_schedule("morning")).paused is True
    assert (await client.resume_schedule("morning")).next_fire_at is not None
    with pytest.raises(InvalidInputError, match="steps"):  # checked locally: nothing sent
        await client.script.schedule("0 9 * * *", {"steps": "many"})
    with pytest.raises(InvalidArgumentError, match="Invalid cron expression"):
        await client.schedule("script", "whenever")
    await client.delete_schedule("morning")
    with pytest.raises(ScheduleNotFoundError) as missing:
        await client.pause_schedule("morning")
    assert missing.value.name == "morning"
    assert await client.get_schedules() == []


async def test_trigger_with_a_priority_and_a_start_time(server: LiveServer, client: TypedDurablyClient) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    run_id = await client.no_input.trigger({}, priority=3, run_at=at)
    run = await client.get_run(run_id)
    assert run is not None and run.priority == 3
    assert run.waiting_for is not None and (run.waiting_for.kind, run.waiting_for.until) == ("delay", at)
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        await client.trigger("no-input", {}, run_at=datetime.now())
    soon = await client.trigger("no-input", {}, delay=0.2)
    assert (await client.wait_for_run(soon, timeout=10)).output == {"got": {}}


async def test_run_events_of_waits_and_schedules_are_typed(server: LiveServer, client: TypedDurablyClient) -> None:
    opened = asyncio.Event()
    events = client.subscribe_runs(
        types=["run:wait", "run:trigger"], on_state=lambda state: opened.set() if state == "open" else None
    )
    waits: list[RunWait] = []
    fired: list[RunTrigger] = []

    async def read() -> None:
        async for event in events:
            if isinstance(event, RunWait):
                waits.append(event)
            elif isinstance(event, RunTrigger) and event.schedule == "ticker":
                fired.append(event)
            if waits and fired:
                return

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(10):
            await opened.wait()
            await client.schedule("no-input", "* * * * * *", name="ticker")
            napping = await client.trigger("nap", {})
            await reader
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    await client.pause_schedule("ticker")
    assert waits[0].run_id == napping and waits[0].waiting_for is not None
    assert (waits[0].waiting_for.kind, waits[0].waiting_for.name) == ("sleep", "nap")
    assert fired[0].job_name == "no-input"


async def test_jobs_list_their_signal_schemas(client: TypedDurablyClient) -> None:
    jobs = {job.name: job for job in await client.list_jobs()}
    assert jobs["approval"].signals["approval"]["properties"]["by"]["minLength"] == 1
    assert jobs["nap"].signals == {}
