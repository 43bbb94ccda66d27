"""`DurablyClient` and its typed per-job access for operating runs, against a REAL server on both
backends: labels and a trigger's disposition, searching runs, bulk actions with their progress (and
their errors, typed), replay, attempts and a label-filtered runs stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from durably_reflex import BatchItem, BulkResult, InvalidArgumentError, RunNotFoundError, create_durably_client
from durably_reflex._client import BULK_IDS_PER_REQUEST, AuthError, TypedDurablyClient
from durably_reflex._records import Run
from durably_reflex._wire_events import RunCancel, RunTrigger
from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    GATES,
    JOBS,
    LiveServer,
    Serve,
    idle_server_fixture,  # noqa: F401  (the `idle` fixture)
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)


@pytest.fixture
async def client(idle: LiveServer) -> AsyncIterator[TypedDurablyClient]:
    async with create_durably_client(JOBS, api=idle.base_url) as typed:
        yield typed


async def test_trigger_returns_the_id_with_its_disposition_and_keeps_the_labels(
    idle: LiveServer, client: TypedDurablyClient
) -> None:
    first = await client.script.trigger(
        {"steps": 1}, concurrency_key="acct-1", coalesce="skip", labels={"team": "data"}
    )
    joined = await client.trigger("script", {"steps": 2}, concurrency_key="acct-1", coalesce="skip")

    assert (first.disposition, joined.disposition) == ("created", "coalesced")
    assert joined == first and isinstance(first, str)  # still the id, as before
    run = await client.get_run(first)
    assert run is not None and run.labels == {"team": "data"}


async def test_get_runs_searches_by_labels_id_prefix_input_fields_and_creation_time(
    idle: LiveServer, client: TypedDurablyClient
) -> None:
    ada = await client.script.trigger({"steps": 2, "progress": False}, labels={"customer": "acme"})
    eve = await client.no_input.trigger({"email": "eve@example.com", "vip": True}, labels={"customer": "globex"})
    created = (await client.get_run(eve)).created_at  # type: ignore[union-attr]

    assert [run.id for run in await client.get_runs(labels={"customer": "acme"})] == [ada]
    assert [run.id for run in await client.get_runs(id_prefix=eve[:20])] == [eve]
    assert [run.id for run in await client.get_runs(input_fields={"vip": True, "email": "eve@example.com"})] == [eve]
    assert [run.id for run in await client.script.get_runs(input_fields={"progress": False, "steps": 2})] == [ada]
    assert [run.id for run in await client.get_runs(created_after=created)] == [eve]
    assert [run.id for run in await client.get_runs(created_before=created)] == [ada]
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        await client.get_runs(created_after=datetime(2030, 1, 1))
    with pytest.raises(InvalidArgumentError, match="a label key is"):
        await client.get_runs(labels={"bad key": "x"})


async def test_a_bulk_action_by_filter_reports_its_progress_after_each_batch(
    idle: LiveServer, client: TypedDurablyClient
) -> None:
    await idle.durably.batch_trigger("script", [BatchItem({}, labels={"wave": "1"}) for _ in range(5)])
    await idle.durably.batch_trigger("script", [BatchItem({}, labels={"wave": "2"}) for _ in range(2)])
    progress: list[BulkResult] = []

    result = await client.bulk_cancel(labels={"wave": "1"}, batch_size=2, on_progress=progress.append)

    assert result == BulkResult(matched=5, changed=5, skipped=0)
    assert [step.matched for step in progress] == [2, 4, 5]
    assert {run.status for run in await client.get_runs(labels={"wave": "2"})} == {"pending"}
    assert await client.script.bulk_delete(status="cancelled") == BulkResult(matched=5, changed=5, skipped=0)
    assert await client.no_input.bulk_delete() == BulkResult(matched=0, changed=0, skipped=0)


async def test_a_bulk_action_by_ids_sends_them_in_requests_and_adds_up_the_totals(
    idle: LiveServer, client: TypedDurablyClient
) -> None:
    count = BULK_IDS_PER_REQUEST + 5
    runs = await idle.durably.batch_trigger("script", [{} for _ in range(count)])
    progress: list[BulkResult] = []

    cancelled = await client.bulk_cancel([run.id for run in runs], on_progress=progress.append)
    retried = await client.bulk_retry([runs[0].id, "no-such-run"])

    assert cancelled == BulkResult(matched=count, changed=count, skipped=0)
    assert [step.matched for step in progress] == [500, 1000, count]  # the server's batches, across requests
    assert retried == BulkResult(matched=2, changed=1, skipped=1)
    with pytest.raises(InvalidArgumentError, match="not both"):
        await client.bulk_delete([runs[0].id], job_name="script")
    with pytest.raises(TypeError, match="unexpected filter 'lables'"):
        await client.bulk_delete(lables={"wave": "1"})


async def test_an_error_mid_way_through_a_bulk_action_is_raised_typed(serve: Serve) -> None:
    def can_access_run(caller: Any, run: Run) -> bool:
        if run.labels.get("boom"):
            raise HTTPException(403, "not this one")
        return True

    server = await serve(
        start_worker=False, auth=DurablyAuth(authenticate=lambda request: "ann", can_access_run=can_access_run)
    )
    runs = await server.durably.batch_trigger("script", [{}, {}, BatchItem({}, labels={"boom": "yes"})])
    progress: list[BulkResult] = []
    async with create_durably_client(JOBS, api=server.base_url) as client:
        with pytest.raises(AuthError, match="not this one") as raised:
            await client.bulk_cancel([run.id for run in runs], batch_size=2, on_progress=progress.append)
    assert raised.value.status_code == 403
    assert progress == [BulkResult(matched=2, changed=2, skipped=0)]  # the first batch was done


async def test_replay_returns_the_new_run_and_attempts_tell_the_retried_ones(serve: Serve) -> None:
    server = await serve()
    gate = GATES.new()
    async with create_durably_client(JOBS, api=server.base_url) as client:
        run_id = await client.script.trigger({"steps": 2, "fail_at": 1, "fail_gate": gate}, labels={"team": "data"})
        with pytest.raises(Exception, match="failed on purpose"):
            await client.wait_for_run(run_id, timeout=10)
        GATES.open(gate)
        await client.retry(run_id)
        await client.wait_for_run(run_id, timeout=10)

        (attempt,) = await client.get_attempts(run_id)
        replay = await client.replay(run_id, from_step="step-1")

        assert (attempt.number, attempt.status, attempt.error) == (1, "failed", "step 1 failed on purpose")
        assert (replay.replay_of, replay.labels, replay.job_name) == (run_id, {"team": "data"}, "script")
        assert (await client.script.wait_for_run(replay.id, timeout=10)).output == {"steps": 2}
        assert [run.id for run in await client.get_runs(replay_of=run_id)] == [replay.id]
        with pytest.raises(InvalidArgumentError, match='no step "nope"'):
            await client.replay(run_id, from_step="nope")
        with pytest.raises(RunNotFoundError):
            await client.get_attempts("no-such-run")


async def test_subscribe_runs_with_labels_yields_only_those_runs_events(
    idle: LiveServer, client: TypedDurablyClient
) -> None:
    opened = asyncio.Event()
    stream = client.script.subscribe_runs(
        labels={"team": "data"}, on_state=lambda state: state == "open" and opened.set()
    )
    async with asyncio.timeout(10), stream:
        first = asyncio.create_task(anext(stream))
        await opened.wait()  # the server follows the feed from before its answer starts
        other = await client.script.trigger({}, labels={"team": "web"})
        mine = await client.script.trigger({}, labels={"team": "data"})
        await client.bulk_cancel([other, mine])
        seen = [await first]
        async for event in stream:
            seen.append(event)
            if isinstance(event, RunCancel):
                break
    assert [(type(event), event.run_id) for event in seen] == [(RunTrigger, mine), (RunCancel, mine)]
