"""Reading runs back (get_run, get_runs, the wire shape of a run), the event bus and per-run
subscriptions, and the schema that migrate() leaves in the SQLite file."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import FAST
from engine_helpers import TERMINAL, Gate, collect, db_path, query_db, wait_for_status

from durably_reflex import (
    Durably,
    InvalidArgumentError,
    RunStatus,
    create_durably,
    define_job,
)
from durably_reflex._storage.tables import SCHEMA_VERSION

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
WIRE_KEYS = {
    "id", "jobName", "input", "status", "idempotencyKey", "concurrencyKey", "currentStepIndex", "stepCount",
    "progress", "output", "error", "errorStack", "startedAt", "completedAt", "heartbeatAt", "createdAt",
    "updatedAt",
    "priority", "waitingFor", "labels", "replayOf",  # extensions: waits, labels, replays (README, /openapi.json)
}  # fmt: skip


async def next_event(subscription, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(anext(subscription), timeout)


async def simple(step, input):
    return {"doubled": await step.run("double", lambda: input["n"] * 2)}


async def flaky(step, input):
    if await step.run("attempt", lambda: input.get("fail", False)):
        raise RuntimeError("asked to fail")
    return "ok"


def listener_count(durably: Durably) -> int:
    return sum(len(listeners) for listeners in durably._bus._listeners.values())


# -- get_runs -------------------------------------------------------------------------------------
async def trigger_numbered(durably: Durably, job: str, count: int, start: int = 1) -> list[str]:
    return [(await durably.trigger(job, {"n": n})).id for n in range(start, start + count)]


async def test_get_runs_returns_newest_first(durably):
    durably.register(job=define_job(name="simple", run=simple))
    ids = await trigger_numbered(durably, "simple", 5)

    runs = await durably.get_runs()

    assert [run.id for run in runs] == ids[::-1]
    assert [run.input["n"] for run in runs] == [5, 4, 3, 2, 1]


async def test_get_runs_filters_by_job_name_single_and_list(durably):
    durably.register(a=define_job(name="job-a", run=simple), b=define_job(name="job-b", run=simple),
                     c=define_job(name="job-c", run=simple))  # fmt: skip
    a = await trigger_numbered(durably, "job-a", 2)
    b = await trigger_numbered(durably, "job-b", 3)
    await trigger_numbered(durably, "job-c", 1)

    assert [run.id for run in await durably.get_runs(job_name="job-a")] == a[::-1]
    assert {run.id for run in await durably.get_runs(job_name=["job-a", "job-b"])} == {*a, *b}
    assert [run.id for run in await durably.jobs.b.get_runs()] == b[::-1]
    assert await durably.get_runs(job_name="unknown") == []


async def test_get_runs_filters_by_status_single_and_list(durably):
    durably.register(job=define_job(name="flaky", run=flaky))
    await durably.start()
    ok = await durably.trigger("flaky", {})
    bad = await durably.trigger("flaky", {"fail": True})
    await wait_for_status(durably, ok.id, *TERMINAL)
    await wait_for_status(durably, bad.id, *TERMINAL)
    await durably.stop()
    pending = await durably.trigger("flaky", {})
    cancelled = await durably.trigger("flaky", {})
    await durably.cancel(cancelled.id)

    def ids(runs):
        return {run.id for run in runs}

    assert ids(await durably.get_runs(status="completed")) == {ok.id}
    assert ids(await durably.get_runs(status=RunStatus.FAILED)) == {bad.id}
    assert ids(await durably.get_runs(status="pending")) == {pending.id}
    assert ids(await durably.get_runs(status=["failed", "cancelled"])) == {bad.id, cancelled.id}
    assert ids(await durably.get_runs(status="running")) == set()
    assert ids(await durably.jobs.job.get_runs(status="completed")) == {ok.id}
    assert ids(await durably.get_runs(job_name="flaky", status=["completed", "pending"])) == {ok.id, pending.id}


async def test_get_runs_pages_with_limit_and_offset(durably):
    durably.register(a=define_job(name="job-a", run=simple), b=define_job(name="job-b", run=simple))
    await trigger_numbered(durably, "job-a", 10)
    await trigger_numbered(durably, "job-b", 2, start=100)

    async def page(**query):
        return [run.input["n"] for run in await durably.get_runs(job_name="job-a", **query)]

    assert await page(limit=3) == [10, 9, 8]
    assert await page(limit=3, offset=3) == [7, 6, 5]
    assert await page(limit=3, offset=6) == [4, 3, 2]
    assert await page(limit=3, offset=9) == [1]
    assert await page(limit=3, offset=10) == []
    assert await page(offset=7) == [3, 2, 1]
    assert await page(limit=0) == []
    assert [run.input["n"] for run in await durably.get_runs(limit=2, offset=1)] == [100, 10]


async def test_pages_of_several_jobs_or_statuses_are_slices_of_the_whole_list(durably):
    """Such pages are merged from one index range per job or status: they must still interleave by
    creation time and page exactly like the unpaged list."""
    durably.register(a=define_job(name="job-a", run=simple), b=define_job(name="job-b", run=simple),
                     c=define_job(name="job-c", run=simple))  # fmt: skip
    for n in range(12):
        run = await durably.trigger(("job-a", "job-b", "job-c")[n % 3], {"n": n})
        if n % 4 == 0:
            await durably.cancel(run.id)

    for query in (
        {"job_name": ["job-a", "job-b"]},
        {"job_name": ["job-b", "job-a", "job-b"]},
        {"status": ["pending", "cancelled"]},
        {"job_name": ["job-a", "job-c"], "status": ["cancelled", "pending"]},
        {"job_name": "job-a", "status": ["cancelled", "pending"]},
    ):
        whole = [run.input["n"] for run in await durably.get_runs(**query)]
        assert whole == sorted(whole, reverse=True) and len(set(whole)) == len(whole), query
        for limit, offset in ((1, 0), (3, 0), (3, 2), (5, 5), (4, 20), (0, 1)):
            page = [run.input["n"] for run in await durably.get_runs(**query, limit=limit, offset=offset)]
            assert page == whole[offset : offset + limit], (query, limit, offset)


@pytest.mark.parametrize(
    "query",
    [
        {"status": "done"},
        {"status": ["completed", "bogus"]},
        {"status": ""},
        {"limit": -1},
        {"limit": 1.5},
        {"limit": "3"},
        {"limit": True},
        {"offset": -1},
        {"job_name": ""},
    ],
)
async def test_get_runs_rejects_invalid_arguments(durably, query):
    with pytest.raises(InvalidArgumentError):
        await durably.get_runs(**query)


async def test_an_invalid_status_error_lists_the_valid_ones(durably):
    with pytest.raises(InvalidArgumentError) as raised:
        await durably.get_runs(status="done")

    for status in ("pending", "running", "completed", "failed", "cancelled"):
        assert status in str(raised.value)


async def test_get_runs_reports_each_runs_step_count(durably):
    async def steps(step, input):
        for i in range(input["n"]):
            await step.run(f"step-{i}", lambda: None)

    durably.register(job=define_job(name="steps", run=steps))
    await durably.start()
    runs = [await durably.trigger("steps", {"n": n}) for n in (0, 2, 3)]
    for run in runs:
        await wait_for_status(durably, run.id, RunStatus.COMPLETED)

    listed = {run.id: run.step_count for run in await durably.get_runs()}

    assert [listed[run.id] for run in runs] == [0, 2, 3]
    assert [(await durably.get_run(run.id)).step_count for run in runs] == [0, 2, 3]


# -- get_run --------------------------------------------------------------------------------------
async def test_get_run_of_an_unknown_id_is_none(durably):
    assert await durably.get_run("no-such-run") is None


async def test_handle_get_run_of_another_jobs_run_is_none(durably):
    durably.register(a=define_job(name="job-a", run=simple), b=define_job(name="job-b", run=simple))
    run = await durably.trigger("job-a", {"n": 1})

    assert (await durably.jobs.a.get_run(run.id)).id == run.id
    assert await durably.jobs.b.get_run(run.id) is None
    assert await durably.jobs.b.get_run("no-such-run") is None


async def test_get_run_returns_what_the_run_did(durably):
    durably.register(job=define_job(name="simple", run=simple))
    await durably.start()
    run = await durably.trigger("simple", {"n": 21}, idempotency_key="idem", concurrency_key="conc")

    done = await wait_for_status(durably, run.id, RunStatus.COMPLETED)

    assert (done.id, done.job_name, done.input, done.output) == (run.id, "simple", {"n": 21}, {"doubled": 42})
    assert (done.idempotency_key, done.concurrency_key) == ("idem", "conc")
    assert done.created_at <= done.started_at <= done.completed_at
    assert done.created_at <= done.updated_at
    assert abs(datetime.now(UTC) - done.created_at) < timedelta(seconds=10)


# -- wire shape -----------------------------------------------------------------------------------
async def test_run_to_wire_has_exactly_the_contract_keys(durably):
    durably.register(job=define_job(name="simple", run=simple))

    wire = (await durably.trigger("simple", {"n": 1})).to_wire()

    assert set(wire) == WIRE_KEYS
    assert wire["status"] == "pending"
    assert wire["jobName"] == "simple"
    assert (wire["startedAt"], wire["completedAt"], wire["progress"], wire["output"]) == (None, None, None, None)


async def test_run_to_wire_timestamps_are_iso_with_milliseconds_and_z(durably):
    async def progressing(step, input):
        step.progress(1, 2)
        await step.run("s", lambda: 1)

    durably.register(job=define_job(name="progressing", run=progressing))
    await durably.start()
    run = await durably.trigger("progressing", {})
    done = await wait_for_status(durably, run.id, RunStatus.COMPLETED)

    wire = done.to_wire()

    assert set(wire) == WIRE_KEYS
    for key in ("startedAt", "completedAt", "heartbeatAt", "createdAt", "updatedAt"):
        assert ISO.match(wire[key]), (key, wire[key])
    assert wire["currentStepIndex"] == 1 and wire["stepCount"] == 1
    assert wire["progress"] == {"current": 1, "total": 2}
    assert wire["status"] == "completed"


async def test_a_failed_runs_wire_form_carries_error_and_error_stack(durably):
    durably.register(job=define_job(name="flaky", run=flaky))
    await durably.start()
    run = await durably.trigger("flaky", {"fail": True})
    done = await wait_for_status(durably, run.id, RunStatus.FAILED)

    wire = done.to_wire()

    assert wire["error"] == "asked to fail"
    assert "flaky" in wire["errorStack"] and "RuntimeError" in wire["errorStack"]


# -- events ---------------------------------------------------------------------------------------
async def test_events_of_a_simple_job_come_in_order(durably):
    durably.register(job=define_job(name="simple", run=simple))
    events = collect(durably)
    run = await durably.trigger("simple", {"n": 2})
    await durably.start()

    await wait_for_status(durably, run.id, RunStatus.COMPLETED)
    await asyncio.sleep(0.1)

    assert [e["type"] for e in events] == ["run:trigger", "run:start", "step:start", "step:complete", "run:complete"]
    assert all((e["runId"], e["jobName"]) == (run.id, "simple") for e in events)


async def test_each_event_type_carries_its_fields(durably):
    async def everything(step, input):
        step.log.info("hello", {"k": 1})
        step.progress(1, 2, "half")
        await step.run("ok", lambda: {"v": 1})
        if input["fail"]:
            await step.run("broken", lambda: 1 / 0)

    durably.register(job=define_job(name="everything", run=everything))
    events = collect(durably)
    await durably.start()
    ok = await durably.trigger("everything", {"fail": False})
    await wait_for_status(durably, ok.id, RunStatus.COMPLETED)
    bad = await durably.trigger("everything", {"fail": True})
    await wait_for_status(durably, bad.id, RunStatus.FAILED)
    await durably.retry(bad.id)
    await wait_for_status(durably, bad.id, RunStatus.FAILED)
    await durably.stop()
    pending = await durably.trigger("everything", {"fail": False})
    await durably.cancel(pending.id)
    await durably.delete_run(pending.id)
    await asyncio.sleep(0.05)

    by_type: dict[str, dict] = {}
    for event in events:
        by_type.setdefault(event["type"], event)
        assert ISO.match(event["timestamp"])
        assert isinstance(event["sequence"], int)
        assert event["jobName"] == "everything"

    def fields(event_type):
        return set(by_type[event_type]) - {"type", "runId", "jobName", "timestamp", "sequence"}

    assert fields("run:trigger") == {"payload"} and by_type["run:trigger"]["payload"] == {"fail": False}
    assert fields("run:start") == {"payload"}
    assert fields("run:complete") == {"output", "duration"}
    assert by_type["run:complete"]["output"] is None and by_type["run:complete"]["duration"] >= 0
    assert fields("run:fail") == {"error", "failedStepName", "errorStack"}
    assert by_type["run:fail"]["error"] == "division by zero"
    assert by_type["run:fail"]["failedStepName"] == "broken"
    assert "ZeroDivisionError" in by_type["run:fail"]["errorStack"]
    assert fields("run:progress") == {"progress"}
    assert by_type["run:progress"]["progress"] == {"current": 1, "total": 2, "message": "half"}
    assert fields("step:start") == {"stepName", "stepIndex"}
    assert (by_type["step:start"]["stepName"], by_type["step:start"]["stepIndex"]) == ("ok", 0)
    assert fields("step:complete") == {"stepName", "stepIndex", "output", "duration"}
    assert by_type["step:complete"]["output"] == {"v": 1} and by_type["step:complete"]["duration"] >= 0
    assert fields("step:fail") == {"stepName", "stepIndex", "error"}
    assert (by_type["step:fail"]["stepName"], by_type["step:fail"]["stepIndex"]) == ("broken", 1)
    assert by_type["step:fail"]["error"] == "division by zero"
    assert fields("log:write") == {"stepName", "level", "message", "data", "id"}
    assert (by_type["log:write"]["level"], by_type["log:write"]["message"]) == ("info", "hello")
    assert by_type["log:write"]["data"] == {"k": 1} and by_type["log:write"]["stepName"] is None
    for event_type in ("run:retry", "run:cancel", "run:delete"):
        assert fields(event_type) == set(), event_type
    assert by_type["run:cancel"]["runId"] == pending.id == by_type["run:delete"]["runId"]
    assert by_type["run:retry"]["runId"] == bad.id


async def test_event_sequence_numbers_are_unique_and_follow_each_runs_life(durably):
    durably.register(job=define_job(name="simple", run=simple))
    events = collect(durably)
    runs = [await durably.trigger("simple", {"n": n}) for n in range(3)]
    await durably.start()

    for run in runs:
        await wait_for_status(durably, run.id, RunStatus.COMPLETED)
    await asyncio.sleep(0.1)

    sequences = [event["sequence"] for event in events]
    assert len(sequences) == 15 and len(set(sequences)) == 15
    for run in runs:
        in_sequence_order = sorted((e for e in events if e["runId"] == run.id), key=lambda e: e["sequence"])
        assert [e["type"] for e in in_sequence_order] == [
            "run:trigger", "run:start", "step:start", "step:complete", "run:complete",
        ]  # fmt: skip


async def test_listeners_receive_events_in_sequence_order(durably):
    made = [Gate() for _ in range(5)]
    resume = [Gate() for _ in range(5)]

    async def chatty(step, input):
        for i in range(5):
            step.log.info(f"line {i}")
            made[i].set()
            await resume[i].wait()

    durably.register(job=define_job(name="chatty", run=chatty), other=define_job(name="other", run=simple))
    events = collect(durably)
    await durably.start()
    run = await durably.trigger("chatty", {})
    for i in range(5):  # another run is triggered while each log line is on its way to the listeners
        await made[i].wait()
        await durably.trigger("other", {"n": i})
        resume[i].set()
    await wait_for_status(durably, run.id, RunStatus.COMPLETED)
    await asyncio.sleep(0.1)

    sequences = [event["sequence"] for event in events]
    assert sequences == sorted(sequences)


async def test_a_runs_trigger_event_is_numbered_before_its_start_even_when_the_loop_is_busy(durably):
    durably.register(job=define_job(name="simple", run=simple))
    events = collect(durably)
    await durably.start()

    triggering = asyncio.create_task(durably.trigger("simple", {"n": 1}))
    await asyncio.sleep(0)  # the insert is now in flight
    time.sleep(0.5)  # the server's loop is busy elsewhere; worker threads are not
    run = await triggering
    await wait_for_status(durably, run.id, RunStatus.COMPLETED)
    await asyncio.sleep(0.1)

    by_type = {e["type"]: e["sequence"] for e in events if e["runId"] == run.id}
    assert by_type["run:trigger"] < by_type["run:start"] < by_type["run:complete"]


async def test_a_throwing_listener_stops_neither_other_listeners_nor_the_run(durably):
    errors = []

    def broken(event):
        raise RuntimeError(f"listener broke on {event['type']}")

    durably.on("*", broken)
    events = collect(durably)
    durably.on_error(lambda error, event: errors.append((str(error), event["type"])))
    durably.register(job=define_job(name="simple", run=simple))
    run = await durably.trigger("simple", {"n": 1})
    await durably.start()

    done = await wait_for_status(durably, run.id, *TERMINAL)
    await asyncio.sleep(0.1)

    assert (done.status, done.output) == (RunStatus.COMPLETED, {"doubled": 2})
    assert [e["type"] for e in events] == ["run:trigger", "run:start", "step:start", "step:complete", "run:complete"]
    assert errors == [(f"listener broke on {e['type']}", e["type"]) for e in events]


async def test_an_async_listener_that_raises_goes_to_on_error(durably):
    errors = []
    reported = asyncio.Event()

    async def broken(event):
        await asyncio.sleep(0)
        raise ValueError("async listener broke")

    def on_error(error, event):
        errors.append((type(error), str(error), event["type"]))
        reported.set()

    durably.on("run:trigger", broken)
    durably.on_error(on_error)
    durably.register(job=define_job(name="simple", run=simple))

    await durably.trigger("simple", {"n": 1})
    await asyncio.wait_for(reported.wait(), 5)

    assert errors == [(ValueError, "async listener broke", "run:trigger")]


async def test_listeners_only_get_their_own_event_type(durably):
    durably.register(job=define_job(name="simple", run=simple))
    starts = collect(durably, "step:start")
    await durably.start()

    run = await durably.trigger("simple", {"n": 1})
    await wait_for_status(durably, run.id, RunStatus.COMPLETED)

    assert [(e["type"], e["stepName"]) for e in starts] == [("step:start", "double")]


async def test_unsubscribe_stops_delivery(durably):
    durably.register(job=define_job(name="simple", run=simple))
    received = []
    unsubscribe = durably.on("run:trigger", received.append)

    await durably.trigger("simple", {"n": 1})
    unsubscribe()
    await durably.trigger("simple", {"n": 2})
    unsubscribe()  # a second call is harmless

    assert [e["payload"]["n"] for e in received] == [1]


async def test_on_with_an_unknown_event_type_is_a_value_error(durably):
    with pytest.raises(ValueError, match="run:started"):
        durably.on("run:started", lambda event: None)


# -- subscribe(run_id) ----------------------------------------------------------------------------
async def test_a_run_subscription_delivers_the_runs_events_and_ends_after_run_complete(durably):
    durably.register(job=define_job(name="simple", run=simple))
    run = await durably.trigger("simple", {"n": 3})
    other = await durably.trigger("simple", {"n": 4})

    async with durably.subscribe(run.id) as subscription:
        await durably.start()
        received = [event async for event in _bounded(subscription)]

    assert [e["type"] for e in received] == ["run:start", "step:start", "step:complete", "run:complete"]
    assert all(e["runId"] == run.id for e in received)
    assert received[-1]["output"] == {"doubled": 6}
    await wait_for_status(durably, other.id, RunStatus.COMPLETED)


async def _bounded(subscription, timeout: float = 5.0):
    """The subscription's events, failing the test instead of hanging if it never ends."""
    async with asyncio.timeout(timeout):
        async for event in subscription:
            yield event


async def test_a_run_subscription_stays_open_after_run_fail_and_follows_a_retry(durably):
    attempts = []

    async def fails_once(step, input):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt"

    durably.register(job=define_job(name="fails-once", run=fails_once))
    run = await durably.trigger("fails-once", {})
    subscription = durably.subscribe(run.id)
    try:
        await durably.start()
        first = [await next_event(subscription), await next_event(subscription)]
        assert [e["type"] for e in first] == ["run:start", "run:fail"]

        waiting = asyncio.ensure_future(anext(subscription))
        done, _ = await asyncio.wait({waiting}, timeout=0.3)
        assert not done  # still open: nothing more until someone retries

        await durably.stop()  # (so that the retried run cannot start before run:retry is out; see below)
        await durably.retry(run.id)
        await durably.start()
        rest = [await asyncio.wait_for(waiting, 5)] + [event async for event in _bounded(subscription)]
    finally:
        subscription.close()

    assert [e["type"] for e in rest] == ["run:retry", "run:start", "run:complete"]
    assert rest[-1]["output"] == "second attempt"


async def test_run_retry_comes_before_the_retried_runs_events_even_when_the_loop_is_busy(durably):
    attempts = []

    async def fails_once(step, input):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt"

    durably.register(job=define_job(name="fails-once", run=fails_once))
    events = collect(durably)
    await durably.start()
    run = await durably.trigger("fails-once", {})
    await wait_for_status(durably, run.id, RunStatus.FAILED)

    retrying = asyncio.create_task(durably.retry(run.id))
    await asyncio.sleep(0)  # the retry is now in flight
    time.sleep(0.5)  # the server's loop is busy elsewhere; worker threads are not
    await retrying
    await wait_for_status(durably, run.id, RunStatus.COMPLETED)
    await asyncio.sleep(0.1)

    after_retry = [e["type"] for e in events if e["runId"] == run.id][3:]  # after trigger, start, fail
    assert after_retry == ["run:retry", "run:start", "run:complete"]


async def test_a_run_subscription_stays_open_after_run_cancel(durably):
    durably.register(job=define_job(name="simple", run=simple))
    run = await durably.trigger("simple", {"n": 1})

    async with durably.subscribe(run.id) as subscription:
        await durably.cancel(run.id)
        assert (await next_event(subscription))["type"] == "run:cancel"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(anext(subscription), 0.2)


async def test_leaving_a_run_subscription_removes_its_listener(durably):
    durably.register(job=define_job(name="simple", run=simple))
    run = await durably.trigger("simple", {"n": 1})
    before = listener_count(durably)

    async with durably.subscribe(run.id) as subscription:
        assert listener_count(durably) == before + 1
    assert listener_count(durably) == before

    closed = durably.subscribe(run.id)
    closed.close()
    assert listener_count(durably) == before
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(subscription), 1)


async def test_a_run_subscription_removes_its_listener_once_the_run_completed(durably):
    durably.register(job=define_job(name="simple", run=simple))
    run = await durably.trigger("simple", {"n": 1})
    before = listener_count(durably)
    subscription = durably.subscribe(run.id)
    await durably.start()

    received = [event async for event in _bounded(subscription)]

    assert received[-1]["type"] == "run:complete"
    assert listener_count(durably) == before


# -- schema ---------------------------------------------------------------------------------------
async def test_migrate_three_times_leaves_one_schema_version_row(db_url, backend):
    durably = create_durably(db_url, **FAST)
    try:
        await durably.migrate()
        await durably.migrate()
        await durably.migrate()
    finally:
        await durably.close()
    for _ in range(2):  # fresh engines on the same file migrate again
        again = create_durably(db_url, **FAST)
        await again.migrate()
        await again.close()

    assert query_db(db_url, "SELECT count(*), max(version) FROM durably_schema_versions") == [(1, SCHEMA_VERSION)]
    tables = (
        {row[0] for row in query_db(db_url, "SELECT table_name FROM information_schema.tables")}
        if backend == "postgresql"
        else {row[0] for row in query_db(db_url, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    )
    assert {"durably_runs", "durably_steps", "durably_logs", "durably_schema_versions"} <= tables


async def test_concurrent_migrate_calls_on_one_engine_all_succeed(db_url):
    durably = create_durably(db_url, **FAST)
    try:
        await asyncio.wait_for(asyncio.gather(*(durably.migrate() for _ in range(3))), 10)
        durably.register(job=define_job(name="simple", run=simple))
        assert (await durably.trigger("simple", {"n": 1})).status is RunStatus.PENDING
    finally:
        await durably.close()

    assert query_db(db_url, "SELECT count(*) FROM durably_schema_versions") == [(1,)]


async def test_migrate_waits_for_another_connections_write_on_a_fresh_file(db_url, sqlite_only):
    holder = sqlite3.connect(db_path(db_url), isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other_app (x)")
    holder.execute("BEGIN IMMEDIATE")  # another writer is mid-transaction (rollback-journal file)

    async def finish_write():
        await asyncio.sleep(0.3)
        holder.execute("COMMIT")

    durably = create_durably(db_url, **FAST)
    finishing = asyncio.create_task(finish_write())
    try:
        await asyncio.wait_for(durably.migrate(), 10)
    finally:
        await finishing
        holder.close()
        await durably.close()

    with sqlite3.connect(db_path(db_url)) as db:
        assert db.execute("SELECT count(*) FROM durably_schema_versions").fetchone() == (1,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_the_database_is_in_wal_mode(durably, db_url, sqlite_only):
    durably.register(job=define_job(name="simple", run=simple))
    await durably.trigger("simple", {"n": 1})

    with sqlite3.connect(db_path(db_url)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_relative_sqlite_path_is_relative_to_where_the_engine_was_created(tmp_path, monkeypatch):
    """A server may change its working directory after importing the user's module (the dashboard
    command runs Reflex in its build folder): the file is the one the path named at creation."""
    monkeypatch.chdir(tmp_path)
    durably = create_durably("sqlite:///relative.db", **FAST)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    try:
        durably.register(job=define_job(name="simple", run=simple))
        await durably.trigger("simple", {"n": 1})
    finally:
        await durably.close()
    assert (tmp_path / "relative.db").exists() and not (elsewhere / "relative.db").exists()


async def test_trigger_before_migrate_migrates_first(db_url):
    durably = create_durably(db_url, **FAST)
    try:
        durably.register(job=define_job(name="simple", run=simple))
        run = await durably.trigger("simple", {"n": 1})
        assert (await durably.get_run(run.id)).status is RunStatus.PENDING
    finally:
        await durably.close()


async def test_an_engine_used_as_an_async_context_manager_runs_jobs_and_closes(db_url):
    durably = create_durably(db_url, **FAST)
    durably.register(job=define_job(name="simple", run=simple))

    async with durably as engine:
        assert engine is durably and durably.is_running
        result = await durably.trigger_and_wait("simple", {"n": 5}, timeout=5)

    assert result.output == {"doubled": 10}
    assert not durably.is_running


async def test_logs_and_progress_inside_a_sync_step_are_emitted_between_its_start_and_complete(durably):
    async def job(step, input):
        def work():
            step.log.info("working")
            step.progress(1, 1)
            return "worked"

        await step.run("work", work)

    durably.register(job=define_job(name="job", run=job))
    events = collect(durably)
    run = await durably.trigger("job", {})
    await durably.start()
    await wait_for_status(durably, run.id, RunStatus.COMPLETED)
    await asyncio.sleep(0.1)

    assert [e["type"] for e in events] == [
        "run:trigger", "run:start", "step:start", "log:write", "run:progress", "step:complete", "run:complete",
    ]  # fmt: skip


# -- engine options -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {"polling_interval": 0},
        {"heartbeat_interval": -1},
        {"heartbeat_interval": 5, "stale_threshold": 5},
        {"max_concurrent_runs": 0},
        {"log_retention": 0},
    ],
)
def test_create_durably_rejects_bad_options(db_url, options):
    with pytest.raises(ValueError):
        create_durably(db_url, **options)


def test_create_durably_rejects_a_database_it_cannot_store_runs_in():
    with pytest.raises(ValueError, match="SQLite .* or PostgreSQL"):
        create_durably("mysql://localhost/jobs")


@pytest.mark.parametrize("url", ["postgresql://localhost/jobs", "postgresql+psycopg://u:p@localhost:5433/jobs"])
def test_create_durably_accepts_postgresql_urls_without_connecting(url):
    assert type(create_durably(url).storage).__name__ == "PostgresStorage"


# -- tenant scopes --------------------------------------------------------------------------------
async def test_get_runs_with_a_scope_lists_only_the_runs_triggered_with_it(durably):
    durably.register(a=define_job(name="job-a", run=simple), b=define_job(name="job-b", run=simple))
    mine = [(await durably.trigger(job, {"n": 1}, scope="tenant-1")).id for job in ("job-a", "job-b", "job-a")]
    theirs = [(await durably.trigger(job, {"n": 1}, scope="tenant-2")).id for job in ("job-a", "job-b")]
    unscoped = (await durably.trigger("job-a", {"n": 1})).id

    assert [run.id for run in await durably.get_runs(scope="tenant-1")] == mine[::-1]
    assert [run.id for run in await durably.get_runs(scope="tenant-1", job_name="job-a")] == [mine[2], mine[0]]
    # Several jobs, a page: each job's newest of the tenant, merged.
    page = await durably.get_runs(scope="tenant-1", job_name=["job-a", "job-b"], limit=2, offset=1)
    assert [run.id for run in page] == [mine[1], mine[0]]
    assert [run.id for run in await durably.get_runs(scope="tenant-2", status=["pending", "failed"])] == theirs[::-1]
    assert [run.id for run in await durably.get_runs()] == [unscoped, *theirs[::-1], *mine[::-1]]


async def test_get_run_with_another_scope_is_none_as_for_a_missing_run(durably):
    durably.register(job=define_job(name="simple", run=simple))
    run = await durably.trigger("simple", {"n": 1}, scope="tenant-1")

    assert await durably.get_run(run.id, scope="tenant-2") is None
    assert (await durably.get_run(run.id, scope="tenant-1")).id == run.id
    assert (await durably.get_run(run.id)).id == run.id
    assert (await durably.get_run_snapshot(run.id, scope="tenant-2"))[0] is None


@pytest.mark.parametrize("scope", ["", 7, "x" * 256])
async def test_a_scope_must_be_a_non_empty_string(durably, scope):
    durably.register(job=define_job(name="simple", run=simple))
    with pytest.raises(InvalidArgumentError, match="scope"):
        await durably.trigger("simple", {"n": 1}, scope=scope)
    with pytest.raises(InvalidArgumentError, match="scope"):
        await durably.get_runs(scope=scope)
    assert await durably.get_runs() == []
