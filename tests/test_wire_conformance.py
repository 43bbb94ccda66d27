"""Durably 0.7's client attaching late to our `/subscribe` ends where one attached early does.

The 0.7 React client (`@coji/durably-react/client`, reference spec 4.1) never fetches a run: its
state is built only from the events it knows (`run:start`, `run:complete`, `run:fail`,
`run:cancel`, `run:retry`, `run:progress`, `log:write`), ignoring every other type. `Durably07`
below is that reducer, fed raw SSE frames from a REAL server (uvicorn on 127.0.0.1, SQLite and
PostgreSQL). An early reader connects while the run is pending and sees it happen; a late reader
connects to a running, a completed, a failed or a cancelled run. Each must reconstruct what the
early one saw: the same status sequence, the same progress, logs, output and error; no event told
twice, even when live events race the state the late reader was told first. The last test states
the rules of the guard that keeps live events from repeating that state, one event at a time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from durably_reflex import DurablyClient, Run, RunStatus, define_job
from durably_reflex._feed import FeedItem
from durably_reflex._records import Progress
from durably_reflex._replay import ReplayGuard
from durably_reflex._storage.base import StoredEvent
from durably_reflex._wire_events import RunSnapshot, WireEvent
from tests.server_fixtures import (
    GATES,
    ISO_Z,
    JOBS,
    WAIT,
    Frame,
    LiveServer,
    Serve,
    SseStream,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)

# The event types Durably 0.7's client reads; it ignores any other.
KNOWN_TO_07 = {"run:start", "run:complete", "run:fail", "run:cancel", "run:retry", "run:progress", "log:write"}


@dataclass
class Durably07:
    """The 0.7 client's per-run state (reference 4.1): what its hooks return for one run id."""

    run_id: str
    status: str | None = None
    output: Any = None
    error: str | None = None
    progress: Any = None
    logs: list[tuple[str, str, Any]] = field(default_factory=list)  # (level, message, data): it keeps no step name
    statuses: list[str] = field(default_factory=list)  # every status an event set, in order

    def apply(self, event: dict[str, Any]) -> None:
        if event.get("runId") != self.run_id or event.get("type") not in KNOWN_TO_07:
            return
        match event["type"]:
            case "run:start":
                self._set("running")
            case "run:complete":
                self._set("completed")
                self.output = event.get("output")
            case "run:fail":
                self._set("failed")
                self.error = event.get("error")
            case "run:cancel":
                self._set("cancelled")
            case "run:retry":
                self._set("pending")
                self.error = None
            case "run:progress":
                self.progress = event.get("progress")
            case "log:write":
                self.logs.append((event["level"], event["message"], event.get("data")))

    def _set(self, status: str) -> None:
        self.status = status
        self.statuses.append(status)

    def end_state(self) -> tuple[Any, ...]:
        return (self.status, self.output, self.error, self.progress, self.logs)


@dataclass
class Reader:
    """An EventSource on `/subscribe?runId=` feeding `Durably07`; every frame kept for inspection."""

    stream: SseStream
    client: Durably07
    frames: list[Frame] = field(default_factory=list)

    @classmethod
    async def attach(cls, server: LiveServer, run_id: str) -> Reader:
        return cls(await server.stream("/subscribe", params={"runId": run_id}), Durably07(run_id))

    async def read_until(self, done: Callable[[Durably07], bool]) -> None:
        while not done(self.client):
            frame = await self.stream.next()
            assert frame is not None, f"the stream ended at {self.client}"
            self._take(frame)

    async def read_to_end(self) -> None:
        """Until the server closes the stream (after run:complete)."""
        for frame in await self.stream.rest():
            self._take(frame)

    def _take(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.client.apply(frame.event)

    def replayed(self) -> dict[str, dict[str, Any]]:
        """The frames made from the run's state (the last of each type)."""
        return {frame.type: frame.event for frame in self.frames if frame.event.get("replayed") is True}

    def live(self) -> dict[str, dict[str, Any]]:
        """The frames read from the event log (the last of each type)."""
        return {frame.type: frame.event for frame in self.frames if frame.id is not None}


def assert_same_view(late: Reader, early: Reader) -> None:
    assert late.client.statuses == early.client.statuses
    assert late.client.end_state() == early.client.end_state()


def assert_replayed_like_live(late: Reader, early: Reader) -> None:
    """Replayed frames have the fields of the live events they stand for (plus `replayed`), a
    sequence of 0, an ISO timestamp, and no SSE id."""
    live = early.live()
    for event_type, event in late.replayed().items():
        assert set(event) == set(live[event_type]) | {"replayed"}, event_type
        assert event["sequence"] == 0 and ISO_Z.fullmatch(event["timestamp"]), event
    assert all(frame.id is None for frame in late.frames if frame.event.get("replayed") is True)


async def pending_run(serve: Serve, job: str, input: dict[str, Any], **options: Any) -> tuple[LiveServer, str, Reader]:
    """A server whose worker has not started, a run of `job`, and an early reader attached to it."""
    server = await serve(start_worker=False, **options)
    run_id = await server.trigger(job, input)
    early = await Reader.attach(server, run_id)
    await early.read_until(lambda client: early.frames != [])  # the snapshot: nothing a 0.7 client reads
    assert [frame.type for frame in early.frames] == ["run:snapshot"]
    await server.durably.start()
    return server, run_id, early


# -- a late reader of each kind of run -------------------------------------------------------------
async def test_a_late_reader_of_a_running_run_is_running_at_once_and_ends_as_the_early_one(serve: Serve) -> None:
    gate = GATES.new()
    server, run_id, early = await pending_run(serve, "script", {"steps": 4, "hold_at": 2, "gate": gate})
    progress = {"current": 2, "total": 4, "message": "step 1 done"}
    await server.wait_run(run_id, lambda run: run["progress"] == progress)  # waiting before step 2

    late = await Reader.attach(server, run_id)
    await late.read_until(lambda client: client.statuses != [])
    assert late.client.statuses == ["running"]  # isRunning: true at once, not null until the next event
    await late.read_until(lambda client: len(client.logs) == 2 and client.progress == progress)
    assert late.client.logs == [("info", "step 0", {"i": 0}), ("info", "step 1", {"i": 1})]
    assert late.client.statuses == ["running"]

    GATES.open(gate)
    await early.read_to_end()
    await late.read_to_end()
    assert early.client.statuses == ["running", "completed"]
    assert_same_view(late, early)
    assert late.client.output == {"steps": 4} and len(late.client.logs) == 4
    assert_replayed_like_live(late, early)


async def test_a_late_reader_of_a_completed_run_ends_as_the_early_one_and_the_stream_closes(serve: Serve) -> None:
    server, run_id, early = await pending_run(serve, "import-rows", {"rows": [{"name": "ada"}, {"name": "bob"}]})
    await early.read_to_end()
    assert early.client.statuses == ["running", "completed"]

    late = await Reader.attach(server, run_id)
    await late.read_to_end()
    assert late.stream.ended
    assert_same_view(late, early)
    assert late.client.output == {"imported": 2}
    assert late.client.logs == [("info", "imported ada", {"row": 0}), ("info", "imported bob", {"row": 1})]
    assert late.replayed()["run:complete"]["duration"] >= 0
    assert_replayed_like_live(late, early)


async def test_a_late_reader_of_a_failed_run_ends_as_the_early_one_and_follows_the_retry(serve: Serve) -> None:
    fail_gate = GATES.new()
    server, run_id, early = await pending_run(
        serve, "script", {"steps": 3, "fail_at": 1, "fail_gate": fail_gate}, expose_error_stack=True
    )
    await early.read_until(lambda client: client.status == "failed")

    late = await Reader.attach(server, run_id)
    await late.read_until(lambda client: client.status == "failed")
    assert_same_view(late, early)
    assert late.client.error == "step 1 failed on purpose"
    fail, live_fail = late.replayed()["run:fail"], early.live()["run:fail"]
    assert (fail["failedStepName"], fail["errorStack"]) == (live_fail["failedStepName"], live_fail["errorStack"])
    assert "RuntimeError" in fail["errorStack"]
    assert_replayed_like_live(late, early)

    GATES.open(fail_gate)  # the stream stays open through run:fail: the retry arrives on it, once
    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    await early.read_to_end()
    await late.read_to_end()
    assert early.client.statuses == ["running", "failed", "pending", "running", "completed"]
    assert_same_view(late, early)


async def test_a_late_reader_of_a_cancelled_run_ends_as_the_early_one_and_follows_the_retry(serve: Serve) -> None:
    first, second = GATES.new(), GATES.new()
    server, run_id, early = await pending_run(serve, "script", {"steps": 3, "holds": {1: first, 2: second}})
    await early.read_until(lambda client: len(client.logs) == 1)  # step 0 done, waiting before step 1
    assert_json(await server.client.post("/cancel", params={"runId": run_id}), 200)
    await early.read_until(lambda client: client.status == "cancelled")

    late = await Reader.attach(server, run_id)
    await late.read_until(lambda client: client.status == "cancelled")
    assert_same_view(late, early)
    assert_replayed_like_live(late, early)

    GATES.open(first)  # the cancelled job reaches its next step.run, which stops it
    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    GATES.open(second)
    await early.read_to_end()
    await late.read_to_end()
    assert early.client.statuses == ["running", "cancelled", "pending", "running", "completed"]
    assert_same_view(late, early)


async def waits_for_a_signal(step: Any, input: Any) -> dict[str, Any]:
    step.log.info("before")
    got = await step.wait_for_signal("go")
    step.log.info("after")
    return {"got": got}


async def test_a_late_reader_of_a_run_waiting_mid_way_sees_it_running_as_the_early_one_does(serve: Serve) -> None:
    """0.7 knows no run:wait: its early client still shows a run that waits for a signal running."""
    jobs = {**JOBS, "signalled": define_job(name="signalled", run=waits_for_a_signal)}
    server, run_id, early = await pending_run(serve, "signalled", {}, jobs=jobs)
    await server.wait_run(run_id, lambda run: run["status"] == "pending" and run.get("waitingFor") is not None)
    await early.read_until(lambda client: len(client.logs) == 1)

    late = await Reader.attach(server, run_id)
    await late.read_until(lambda client: len(client.logs) == 1)
    assert late.client.statuses == early.client.statuses == ["running"]
    await server.durably.signal(run_id, "go", "now")
    await early.read_to_end()
    await late.read_to_end()
    assert early.client.statuses == ["running", "running", "completed"]  # run:start again on resuming
    assert_same_view(late, early)
    assert late.client.output == {"got": "now"}


# -- our own client ---------------------------------------------------------------------------------
async def test_our_client_resets_from_the_snapshot_and_skips_the_replay(serve: Serve) -> None:
    """The replay is for 0.7's client: ours reads the snapshot, and the replay's run:start and
    run:fail after it would move a failed run's view back to running and fail it twice."""
    fail_gate = GATES.new()
    server, run_id, early = await pending_run(serve, "script", {"steps": 2, "fail_at": 1, "fail_gate": fail_gate})
    await early.read_until(lambda client: client.status == "failed")
    seen: list[WireEvent] = []
    async with DurablyClient(server.base_url) as client, client.subscribe(run_id) as events:
        async for event in events:
            seen.append(event)
            if isinstance(event, RunSnapshot):
                GATES.open(fail_gate)
                await client.retry(run_id)
    assert isinstance(seen[0], RunSnapshot) and seen[0].run.status is RunStatus.FAILED
    lifecycle = [event.type for event in seen if event.type in KNOWN_TO_07 - {"run:progress", "log:write"}]
    assert lifecycle == ["run:retry", "run:start", "run:complete"]


# -- live events racing what the late reader was told first ---------------------------------------
def lagging_snapshots(server: LiveServer, ready: Callable[[Run], bool]) -> None:
    """Make `/subscribe` read the run only once the run is `ready`, but report the event-log
    position from before its worker started: every event in between reaches the stream live although
    the run it told first already reflects it. That is the race between a run's row, its logs and
    its logged events (committed separately), widened to a whole stretch of the run."""
    durably = server.durably
    read_snapshot = durably.get_run_snapshot

    async def lagging(run_id: str, *, scope: str | None = None) -> tuple[Run | None, int]:
        _, shown_through = await read_snapshot(run_id, scope=scope)
        await durably.start()
        async with asyncio.timeout(WAIT):
            while not ready(run := await durably.get_run(run_id)):  # type: ignore[arg-type]
                await asyncio.sleep(0.01)
        return run, shown_through

    durably.get_run_snapshot = lagging  # type: ignore[method-assign]


async def test_live_events_of_what_a_running_runs_reader_was_told_are_not_told_again(serve: Serve) -> None:
    server = await serve(start_worker=False, progress_interval=0)
    gate = GATES.new()
    run_id = await server.trigger("script", {"steps": 4, "hold_at": 3, "gate": gate})
    lagging_snapshots(server, lambda run: run.status is RunStatus.RUNNING and run.step_count == 3)

    late = await Reader.attach(server, run_id)  # its run:start, 3 logs and progress are logged after
    await late.read_until(lambda client: len(client.logs) == 3)
    GATES.open(gate)
    await late.read_to_end()
    assert late.client.statuses == ["running", "completed"]
    assert late.client.logs == [("info", f"step {i}", {"i": i}) for i in range(4)]
    assert late.client.progress == {"current": 4, "total": 4, "message": "step 3 done"}
    live = [frame.event for frame in late.frames if frame.id is not None]
    assert [event["type"] for event in live if event["type"] in ("run:start", "log:write")] == ["log:write"]


async def test_live_events_of_what_a_failed_runs_reader_was_told_are_not_told_again(serve: Serve) -> None:
    server = await serve(start_worker=False)
    fail_gate = GATES.new()
    run_id = await server.trigger("script", {"steps": 3, "fail_at": 1, "fail_gate": fail_gate})
    lagging_snapshots(server, lambda run: run.status is RunStatus.FAILED)

    late = await Reader.attach(server, run_id)  # its run:start, log, progress and run:fail are logged after
    await late.read_until(lambda client: client.status == "failed")
    GATES.open(fail_gate)
    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    await late.read_to_end()
    assert late.client.statuses == ["running", "failed", "pending", "running", "completed"]
    assert late.client.logs == [("info", f"step {i}", {"i": i}) for i in range(3)]
    assert late.client.error is None and late.client.output == {"steps": 3}


# -- the guard's rules, event by event ------------------------------------------------------------
def logged(event_id: int, event_type: str, **fields: Any) -> FeedItem:
    body = {"type": event_type, "runId": "run-1", "jobName": "script", **fields}
    return FeedItem(StoredEvent(event_id, "run-1", "script", event_type, json.dumps(body)))


async def test_the_guard_lets_through_only_what_the_client_was_not_told() -> None:
    now = datetime.now(UTC)
    run = Run(
        id="run-1", job_name="script", input={}, status=RunStatus.FAILED, progress=Progress(current=1, total=3),
        created_at=now, updated_at=now,
    )  # fmt: skip
    guard = ReplayGuard(run, ["log-1"])
    told = [
        (logged(1, "log:write", id="log-1", level="info", message="a"), False),  # replayed already
        (logged(2, "run:progress", progress={"current": 1, "total": 3}), False),  # the progress shown
        (logged(3, "run:fail", error="boom"), False),  # the failure told by the replay
        (logged(4, "log:write", id="log-2", level="info", message="b"), True),
        (logged(5, "run:retry"), True),
        (logged(6, "run:fail", error="boom"), False),  # stale: logged late by another process
        (logged(7, "run:start"), True),
        (logged(8, "run:start"), False),  # the run is running already
        (logged(9, "run:progress", progress={"current": 1, "total": 3}), False),
        (logged(10, "run:progress", progress={"current": 2, "total": 3}), True),
        (logged(11, "step:start", stepName="s", stepIndex=1), True),  # not a 0.7 client's business
        (logged(12, "run:complete", output=None), True),
    ]
    assert [await guard.admit(item) for item, _ in told] == [admitted for _, admitted in told]
