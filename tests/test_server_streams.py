"""The SSE streams of the API against a REAL server (uvicorn on 127.0.0.1), read as raw bytes:
framing, snapshot-first subscription, ends and non-ends, late subscription and Last-Event-ID resume
with no gap, keep-alives, progress throttling, cleanup on disconnect, the reduced `/runs/subscribe`
notifications, auth on streams, and events produced by a worker in ANOTHER process.

What a late viewer is told after the snapshot, as Durably 0.7 events (frames marked `replayed`), is
pinned by tests/test_wire_conformance.py; here such frames are read past where they would show.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durably_reflex import Run, create_durably
from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    FAST,
    GATES,
    ISO_Z,
    KEEP_ALIVE,
    WAIT,
    Frame,
    LiveServer,
    Serve,
    assert_error,
    assert_json,
    compact,
    database_url,
    migrated_template,  # noqa: F401  (fixture)
    of_type,
    parse_frame,
    serve_fixture,  # noqa: F401  (the `serve` fixture)
    server_fixture,  # noqa: F401  (the `server` fixture)
)
from tests.server_worker import XP_JOBS

ROOT = Path(__file__).resolve().parent.parent
ROWS = {"rows": [{"name": "ada"}, {"name": "bob"}]}


# -- helpers ---------------------------------------------------------------------------------------
def types(frames: list[Frame]) -> list[str]:
    return [frame.type for frame in frames]


def is_replayed(frame: Frame) -> bool:
    """A frame made from the run's state for a late viewer, not read from the event log."""
    return frame.event.get("replayed") is True


def step_indexes(frames: list[Frame], event_type: str) -> list[int]:
    return [frame.event["stepIndex"] for frame in frames if frame.type == event_type]


def assert_well_framed(frames: list[Frame]) -> None:
    """Every frame after the snapshot: `id: <n>\\ndata: <compact JSON>\\n\\n`, ids increasing."""
    ids = [frame.id for frame in frames]
    assert all(isinstance(i, int) for i in ids), ids
    assert ids == sorted(set(ids)), f"ids not strictly increasing: {ids}"
    for frame in frames:
        assert frame.data == compact(frame.event), frame.raw
        assert frame.raw == b"id: %d\ndata: %s\n\n" % (frame.id, frame.data)


def assert_retried(frames: list[Frame]) -> None:
    """A retry followed to its end (the order of run:retry and run:start is pinned by
    test_run_retry_is_streamed_before_the_retried_runs_run_start)."""
    seen = types(frames)
    assert seen.count("run:retry") == 1 and seen.count("run:start") == 1, seen
    assert seen[-1] == "run:complete" and seen.count("run:complete") == 1, seen


async def subscribe(server: LiveServer, run_id: str, **options: Any) -> tuple[Any, dict[str, Any]]:
    """Open /subscribe and read its first frame, which must be the run's snapshot."""
    stream = await server.stream("/subscribe", params={"runId": run_id}, **options)
    first = await stream.next()
    assert first is not None and first.type == "run:snapshot", first
    assert first.event["runId"] == run_id
    return stream, first.event["run"]


async def held_run(server: LiveServer, *, steps: int = 3, hold_at: int = 0, **script: Any) -> tuple[str, str]:
    gate = GATES.new()
    run_id = await server.trigger("script", {"steps": steps, "hold_at": hold_at, "gate": gate, **script})
    await server.wait_run(run_id, lambda run: run["status"] == "running" and run["stepCount"] == hold_at)
    return run_id, gate


# -- framing ---------------------------------------------------------------------------------------
async def test_subscribe_answers_with_event_stream_headers(server: LiveServer) -> None:
    run_id, _ = await held_run(server)
    stream = await server.stream("/subscribe", params={"runId": run_id})
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"] == "text/event-stream"
    assert stream.response.headers["cache-control"] == "no-cache"


async def test_subscribe_sends_a_snapshot_then_id_and_compact_data_frames_until_run_complete(serve: Serve) -> None:
    server = await serve(start_worker=False)
    run_id = await server.trigger("import-rows", ROWS)
    stream = await server.stream("/subscribe", params={"runId": run_id})
    first = await stream.next_raw()
    assert first is not None and first.startswith(b'data: {"type":"run:snapshot","runId":"%s",' % run_id.encode())
    snapshot = parse_frame(first)
    assert snapshot is not None and snapshot.id is None and first == b"data: " + compact(snapshot.event) + b"\n\n"
    assert set(snapshot.event) == {"type", "runId", "jobName", "run"} and snapshot.event["jobName"] == "import-rows"
    assert snapshot.event["run"]["status"] == "pending" and Run.model_validate(snapshot.event["run"]).id == run_id

    await server.durably.start()
    frames = await stream.rest()  # the server ends the stream after run:complete
    assert stream.ended and stream.raw == b"".join(stream.frames)
    assert types(frames) == [
        "run:start",
        "step:start", "log:write", "step:complete", "run:progress",
        "step:start", "log:write", "step:complete", "run:progress",
        "run:complete",
    ]  # fmt: skip
    assert_well_framed(frames)
    for frame in frames:
        event = frame.event
        assert event["runId"] == run_id and event["jobName"] == "import-rows"
        assert ISO_Z.fullmatch(event["timestamp"]) and isinstance(event["sequence"], int)
    start, *_, complete = (frame.event for frame in frames)
    assert start["payload"] == ROWS
    assert complete["output"] == {"imported": 2} and isinstance(complete["duration"], int)
    step_complete = of_type(frames, "step:complete")[1].event
    assert (step_complete["stepName"], step_complete["stepIndex"], step_complete["output"]) == ("row-1", 1, "BOB")
    log = of_type(frames, "log:write")[0].event
    assert (log["stepName"], log["level"], log["message"], log["data"]) == ("row-0", "info", "imported ada", {"row": 0})
    assert isinstance(log["id"], str) and log["id"]
    progress = [frame.event["progress"] for frame in of_type(frames, "run:progress")]
    assert progress == [{"current": 1, "total": 2, "message": "row 0"}, {"current": 2, "total": 2, "message": "row 1"}]


async def test_frames_carry_newlines_and_non_ascii_text_on_one_data_line(serve: Serve) -> None:
    server = await serve(start_worker=False)
    name = "Zoë\nline two\r\n☃ \u2028"
    run_id = await server.trigger("import-rows", {"rows": [{"name": name}]})
    stream, _ = await subscribe(server, run_id)
    await server.durably.start()
    frames = await stream.rest()
    assert_well_framed(frames)
    (log,) = of_type(frames, "log:write")
    assert log.event["message"] == f"imported {name}"
    assert of_type(frames, "step:complete")[0].event["output"] == name.upper()


async def test_subscribe_to_a_completed_run_tells_its_final_state_and_closes(server: LiveServer) -> None:
    run_id = await server.trigger("import-rows", ROWS)
    await server.wait_status(run_id, "completed")
    stream = await server.stream("/subscribe", params={"runId": run_id})
    frames = await stream.rest(timeout=3)
    assert types(frames) == ["run:snapshot", "run:start", "run:progress", "log:write", "log:write", "run:complete"]
    run = frames[0].event["run"]
    assert run["status"] == "completed" and run["output"] == {"imported": 2}
    assert frames[-1].event["output"] == {"imported": 2}
    assert all(frame.id is None for frame in frames) and all(is_replayed(frame) for frame in frames[1:])
    assert stream.raw == b"".join(b"data: " + compact(frame.event) + b"\n\n" for frame in frames)


async def test_a_failed_run_stream_stays_open_and_carries_the_retry_to_completion(server: LiveServer) -> None:
    fail_gate, hold = GATES.new(), GATES.new()
    run_id = await server.trigger("script", {"steps": 3, "fail_at": 1, "fail_gate": fail_gate, "holds": {2: hold}})
    await server.wait_status(run_id, "failed")
    stream, run = await subscribe(server, run_id)
    assert run["status"] == "failed" and run["error"] == "step 1 failed on purpose"
    replayed = await stream.until(lambda frame: frame.type == "run:fail")
    assert all(is_replayed(frame) for frame in replayed)
    assert await stream.quiet_for(0.3) == []  # open, and nothing more to say

    GATES.open(fail_gate)
    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    frames = await stream.until(lambda frame: frame.type == "run:retry")  # the retried run waits at step 2
    GATES.open(hold)
    frames += await stream.rest()
    assert_retried(frames)
    assert step_indexes(frames, "step:complete") == [1, 2]  # step 0 replays from storage
    assert frames[-1].event["output"] == {"steps": 3}
    assert_well_framed(frames)


async def test_a_live_stream_stays_open_through_run_fail_then_follows_the_retry(serve: Serve) -> None:
    server = await serve(start_worker=False)
    fail_gate, hold = GATES.new(), GATES.new()
    run_id = await server.trigger("script", {"steps": 3, "fail_at": 1, "fail_gate": fail_gate, "holds": {2: hold}})
    stream, run = await subscribe(server, run_id)
    assert run["status"] == "pending"
    await server.durably.start()
    frames = await stream.until(lambda frame: frame.type == "run:fail")
    assert types(frames)[0] == "run:start"
    assert of_type(frames, "step:fail")[0].event["error"] == "step 1 failed on purpose"
    fail = frames[-1].event
    assert fail["error"] == "step 1 failed on purpose" and fail["failedStepName"] == "step-1"
    assert fail["errorStack"] is None  # tracebacks are not sent by default (tests/test_error_stack.py)
    assert await stream.quiet_for(0.3) == []

    GATES.open(fail_gate)
    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    rest = await stream.until(lambda frame: frame.type == "run:retry")
    GATES.open(hold)
    rest += await stream.rest()
    assert_retried(rest)
    assert_well_framed(frames + rest)


async def test_a_stream_stays_open_through_run_cancel_then_follows_the_retry(server: LiveServer) -> None:
    first, second = GATES.new(), GATES.new()
    run_id = await server.trigger("script", {"steps": 3, "holds": {0: first, 1: second}})
    await server.wait_status(run_id, "running")
    stream, _ = await subscribe(server, run_id)
    assert_json(await server.client.post("/cancel", params={"runId": run_id}), 200)
    frames = await stream.until(lambda frame: frame.type == "run:cancel")
    assert {key: frames[-1].event[key] for key in ("runId", "jobName")} == {"runId": run_id, "jobName": "script"}
    GATES.open(first)  # the job goes on to its next step.run, which stops it
    assert await stream.quiet_for(0.3) == []

    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    rest = await stream.until(lambda frame: frame.type == "run:retry")  # the retried run waits at step 1
    GATES.open(second)
    rest += await stream.rest()
    assert_retried(rest)


# -- late subscription and resume ------------------------------------------------------------------
async def test_a_late_subscriber_gets_the_running_snapshot_with_progress_then_every_later_step(
    server: LiveServer,
) -> None:
    run_id, gate = await held_run(server, steps=6, hold_at=3)
    await server.wait_run(run_id, lambda run: run["progress"] is not None and run["progress"]["current"] == 3)
    stream, run = await subscribe(server, run_id)
    assert run["status"] == "running" and run["stepCount"] == 3
    assert run["progress"] == {"current": 3, "total": 6, "message": "step 2 done"}
    GATES.open(gate)
    frames = await stream.rest()
    assert step_indexes(frames, "step:start") == [3, 4, 5]
    assert step_indexes(frames, "step:complete") == [3, 4, 5]
    assert frames[-1].type == "run:complete"
    assert frames[-2].event["progress"]["current"] == 6  # the last progress always arrives


async def test_late_subscribers_lose_no_step_of_a_running_run(server: LiveServer) -> None:
    """Subscribing races the worker (no gate): whatever the snapshot says, every later step arrives."""
    steps = 60
    run_id = await server.trigger("script", {"steps": steps, "sleep": 0.02})
    subscriptions = []
    for at_least in (2, 10, 20):
        await server.wait_run(run_id, lambda run, n=at_least: run["stepCount"] >= n or run["status"] == "completed")
        subscriptions.append(await subscribe(server, run_id))
    for stream, snapshot in subscriptions:
        assert snapshot["status"] == "running", "the run finished too soon for this test"
        assert snapshot["progress"] is not None
        frames = await stream.rest()
        completed = step_indexes(frames, "step:complete")
        assert set(range(snapshot["stepCount"], steps)) <= set(completed), (snapshot["stepCount"], completed)
        assert set(range(snapshot["stepCount"] + 1, steps)) <= set(step_indexes(frames, "step:start"))
        assert frames[-1].type == "run:complete"


async def test_reconnecting_with_last_event_id_replays_the_events_after_it(serve: Serve) -> None:
    server = await serve(start_worker=False, progress_interval=0)
    gate = GATES.new()
    run_id = await server.trigger("script", {"steps": 6, "hold_at": 4, "gate": gate})
    reference, _ = await subscribe(server, run_id)  # never interrupted
    first, _ = await subscribe(server, run_id)
    await server.durably.start()
    before = await first.until(lambda frame: frame.type == "step:complete" and frame.event["stepIndex"] == 1)
    last_id = before[-1].id
    await first.close()  # gone while steps 2 and 3 run
    await server.wait_run(run_id, lambda run: run["stepCount"] == 4)

    second, snapshot = await subscribe(server, run_id, headers={"Last-Event-ID": str(last_id)})
    assert snapshot["stepCount"] == 4
    GATES.open(gate)
    after = await second.rest()
    everything = await reference.rest()
    assert [frame.raw for frame in everything if frame.id <= last_id] == [frame.raw for frame in before]
    assert [frame.raw for frame in after] == [frame.raw for frame in everything if frame.id > last_id]
    assert step_indexes(after, "step:complete") == [2, 3, 4, 5]


async def test_runs_subscribe_resumes_after_last_event_id(serve: Serve) -> None:
    server = await serve(start_worker=False)
    stream = await server.stream("/runs/subscribe")
    ids = [await server.trigger("no-input") for _ in range(3)]
    frames = [await stream.next() for _ in ids]
    assert [frame.event["runId"] for frame in frames] == ids
    await stream.close()
    later = [await server.trigger("no-input") for _ in range(2)]
    resumed = await server.stream("/runs/subscribe", headers={"Last-Event-ID": str(frames[0].id)})
    again = [await resumed.next() for _ in range(4)]
    assert [frame.event["runId"] for frame in again] == ids[1:] + later
    assert [frame.raw for frame in again[:2]] == [frame.raw for frame in frames[1:]]


async def test_an_empty_last_event_id_is_a_fresh_viewer(server: LiveServer) -> None:
    run_id, gate = await held_run(server, steps=1)
    stream, run = await subscribe(server, run_id, headers={"Last-Event-ID": ""})
    assert run["status"] == "running"
    await stream.close()
    GATES.open(gate)


@pytest.mark.parametrize("path", ["/subscribe", "/runs/subscribe"])
async def test_a_last_event_id_that_is_not_an_event_id_answers_400(server: LiveServer, path: str) -> None:
    run_id, gate = await held_run(server, steps=1)
    for value in (b"abc", b"-1", b"1.5", b"+1", b"1_0", "\u0661".encode(), b"9223372036854775808", b"9" * 30):
        response = await server.client.get(path, params={"runId": run_id}, headers={"Last-Event-ID": value})
        assert_error(response, 400, "Last-Event-ID", code="INVALID_ARGUMENT")
    GATES.open(gate)


async def test_an_absurd_last_event_id_is_not_a_server_error(server: LiveServer) -> None:
    run_id, _ = await held_run(server, steps=1)
    statuses = {}
    for path, params in (("/subscribe", {"runId": run_id}), ("/runs/subscribe", None)):
        for value in (b"\xb2", b"9" * 5000):
            request = server.client.build_request("GET", path, params=params, headers={"Last-Event-ID": value})
            response = await server.client.send(request, stream=True)
            statuses[path, value[:3]] = response.status_code
            await response.aclose()
    assert set(statuses.values()) <= {200, 400}, statuses


# -- keep-alives, throttling, cleanup --------------------------------------------------------------
@pytest.mark.parametrize("path", ["/subscribe", "/runs/subscribe"])
async def test_an_idle_stream_carries_keep_alive_comments(serve: Serve, path: str) -> None:
    server = await serve(keepalive_interval=0.2)
    run_id, _ = await held_run(server)
    stream = await server.stream(path, params={"runId": run_id} if path == "/subscribe" else None)
    if path == "/subscribe":
        assert (await stream.next()).type == "run:snapshot"  # type: ignore[union-attr]
    replayed = b'"replayed":true'
    frames = [raw for raw in await stream.quiet_for(1.0) if not (raw.startswith(b"data: ") and replayed in raw)]
    assert 3 <= len(frames) <= 6 and set(frames) == {KEEP_ALIVE}, frames


async def test_progress_is_throttled_and_the_last_value_is_always_delivered(server: LiveServer) -> None:
    gate = GATES.new()
    run_id = await server.trigger("progress-burst", {"count": 100, "pause": 0.005, "gate": gate})
    await server.wait_status(run_id, "running")
    stream, _ = await subscribe(server, run_id)
    began = time.monotonic()
    GATES.open(gate)
    frames = await stream.rest()
    elapsed = time.monotonic() - began
    progress = [frame.event["progress"]["current"] for frame in of_type(frames, "run:progress")]
    assert 100 in progress and max(progress) == 100 and progress[0] == 1
    assert len(progress) <= elapsed / 0.1 + 2, (len(progress), elapsed, progress)
    assert len(progress) < 30, progress
    assert types(frames)[-1] == "run:complete"
    assert progress == sorted(set(progress)), progress


async def test_progress_frames_stay_in_order_when_the_loop_lags(serve: Serve) -> None:
    """A newer progress read when an older one, held back, is already overdue: the stream must not
    send the older one after it (the client would end on a stale value). 59f3c1b sent 1, 3, 2."""
    server = await serve(progress_interval=0.5, start_worker=False)
    second, third = GATES.new(), GATES.new()
    run_id = await server.trigger("stepped-progress", {"gates": [second, third]})
    feed = server.durably.feed
    subscribe_feed = feed.subscribe

    async def lagging_subscribe(**options: Any) -> Any:
        subscription = await subscribe_feed(**options)
        offer = subscription.offer

        def offer_then_lag(items: list[Any], size: int) -> None:
            offer(items, size)
            if any(item.type == "run:progress" and item.event["progress"]["current"] == 3 for item in items):
                time.sleep(0.7)  # the server's loop is busy just after this event was queued

        subscription.offer = offer_then_lag  # type: ignore[method-assign]
        return subscription

    feed.subscribe = lagging_subscribe  # type: ignore[method-assign]
    stream, _ = await subscribe(server, run_id)
    await server.durably.start()
    await stream.until(lambda frame: frame.type == "run:progress")  # 1, sent at once
    GATES.open(second)  # 2 arrives within the interval: held until 0.5 s after 1
    await asyncio.sleep(0.1)
    GATES.open(third)  # 3 is queued before 2 is due, but read (after the lag) when 2 is overdue
    frames = await stream.rest()
    values = [frame.event["progress"]["current"] for frame in of_type(frames, "run:progress")]
    assert values in ([2, 3], [3]), values
    assert types(frames)[-1] == "run:complete"


async def test_progress_interval_zero_delivers_every_progress_event(serve: Serve) -> None:
    server = await serve(progress_interval=0)
    gate = GATES.new()
    run_id = await server.trigger("progress-burst", {"count": 100, "pause": 0.002, "gate": gate})
    await server.wait_status(run_id, "running")
    stream, _ = await subscribe(server, run_id)
    GATES.open(gate)
    frames = await stream.rest()
    assert [frame.event["progress"] for frame in of_type(frames, "run:progress")] == [
        {"current": i, "total": 100} for i in range(1, 101)
    ]


async def test_closing_streams_releases_every_feed_subscription(server: LiveServer) -> None:
    run_id, _ = await held_run(server)
    streams = [await subscribe(server, run_id) for _ in range(3)]
    streams = [stream for stream, _ in streams] + [await server.stream("/runs/subscribe") for _ in range(2)]
    assert server.durably.feed.subscriber_count == 5
    for stream in streams:
        await stream.close()
    async with asyncio.timeout(1.0):
        while server.durably.feed.subscriber_count:
            await asyncio.sleep(0.01)


async def test_a_stream_that_ends_releases_its_feed_subscription(server: LiveServer) -> None:
    run_id, gate = await held_run(server)
    stream, _ = await subscribe(server, run_id)
    GATES.open(gate)
    await stream.rest()
    async with asyncio.timeout(1.0):
        while server.durably.feed.subscriber_count:
            await asyncio.sleep(0.01)


# -- /runs/subscribe -------------------------------------------------------------------------------
REDUCED_FIELDS = {
    "run:trigger": set(), "run:start": set(), "run:complete": set(), "run:fail": set(), "run:cancel": set(),
    "run:retry": set(), "run:delete": set(), "run:progress": {"progress"}, "step:start": {"stepName", "stepIndex"},
    "step:complete": {"stepName", "stepIndex"}, "step:fail": {"stepName", "stepIndex", "error"},
    "log:write": {"stepName", "level", "message", "data"},
}  # fmt: skip


async def test_runs_subscribe_sends_run_trigger_at_once(serve: Serve) -> None:
    server = await serve(start_worker=False)
    stream = await server.stream("/runs/subscribe")
    assert stream.response.headers["content-type"] == "text/event-stream"
    assert stream.response.headers["cache-control"] == "no-cache"
    sent = time.monotonic()
    run_id = await server.trigger("import-rows", ROWS)
    frame = await stream.next(timeout=1.0)
    assert time.monotonic() - sent < 1.0
    assert frame is not None and frame.event == {"type": "run:trigger", "runId": run_id, "jobName": "import-rows"}
    assert frame.raw == b'id: %d\ndata: {"type":"run:trigger","runId":"%s","jobName":"import-rows"}\n\n' % (
        frame.id,
        run_id.encode(),
    )


async def test_runs_subscribe_sends_reduced_payloads_exactly(server: LiveServer) -> None:
    stream = await server.stream("/runs/subscribe")
    fail_gate = GATES.new()
    failing = await server.trigger("script", {"steps": 2, "fail_at": 1, "fail_gate": fail_gate})
    await server.wait_status(failing, "failed")
    GATES.open(fail_gate)
    assert_json(await server.client.post("/retry", params={"runId": failing}), 200)
    await server.wait_status(failing, "completed")
    assert_json(await server.client.delete("/run", params={"runId": failing}), 200)
    cancelled, _ = await held_run(server)
    assert_json(await server.client.post("/cancel", params={"runId": cancelled}), 200)
    frames = await stream.until(lambda frame: frame.type == "run:cancel")
    assert_well_framed(frames)
    for frame in frames:
        event = frame.event
        assert set(event) == {"type", "runId", "jobName"} | REDUCED_FIELDS[event["type"]], event
        assert event["jobName"] == "script"
    seen = types(frames)
    assert set(seen) == set(REDUCED_FIELDS), set(REDUCED_FIELDS) - set(seen)
    by_type = {frame.type: frame.event for frame in frames if frame.event["runId"] == failing}
    assert by_type["step:fail"] == {
        "type": "step:fail", "runId": failing, "jobName": "script", "stepName": "step-1", "stepIndex": 1,
        "error": "step 1 failed on purpose",
    }  # fmt: skip
    assert by_type["log:write"]["level"] == "info" and by_type["log:write"]["data"] == {"i": 1}
    assert by_type["run:progress"]["progress"] == {"current": 2, "total": 2, "message": "step 1 done"}
    assert seen.index("run:delete") > seen.index("run:complete")


async def test_runs_subscribe_with_job_name_sends_only_that_jobs_events(server: LiveServer) -> None:
    stream = await server.stream("/runs/subscribe", params={"jobName": "import-rows"})
    other = await server.trigger("script", {"steps": 2})
    await server.wait_status(other, "completed")
    mine = await server.trigger("import-rows", ROWS)
    seen: set[str] = set()
    frames = await stream.until(lambda frame: seen.add(frame.type) or {"run:trigger", "run:complete"} <= seen)
    assert {frame.event["runId"] for frame in frames} == {mine}
    assert {frame.event["jobName"] for frame in frames} == {"import-rows"}
    assert {"run:trigger", "run:start", "step:complete", "log:write", "run:progress"} <= seen


async def test_runs_subscribe_with_types_sends_only_those_event_types(server: LiveServer) -> None:
    stream = await server.stream("/runs/subscribe", params={"type": ["run:trigger", "run:complete"]})
    run_id = await server.trigger("import-rows", ROWS)
    await server.wait_status(run_id, "completed")
    frames = await stream.until(lambda frame: frame.type == "run:complete")
    assert types(frames) == ["run:trigger", "run:complete"]


async def test_runs_subscribe_refuses_an_unknown_event_type(server: LiveServer) -> None:
    response = await server.client.get("/runs/subscribe", params={"type": "run:explode"})
    assert response.status_code == 400
    assert "unknown event type 'run:explode'" in response.json()["error"]


def delay_after(durably: Any, method: str, seconds: float) -> None:
    """Make `durably.storage.<method>` return `seconds` late, as on a busy event loop: the row is
    committed on time, the engine just gets control back later."""
    original = getattr(durably.storage, method)

    async def delayed(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        await asyncio.sleep(seconds)
        return result

    setattr(durably.storage, method, delayed)


async def test_run_retry_is_streamed_before_the_retried_runs_run_start(server: LiveServer) -> None:
    """Even when the engine gets control back late after committing the retry (a busy loop), the
    worker that claims the run at once must not get its run:start (or run:fail) out before run:retry.
    Before 014f6a3 the stream went run:start, step:start, step:fail, run:fail and then run:retry,
    leaving a client showing a failed run as pending."""
    run_id = await server.trigger("script", {"steps": 1, "fail_at": 0})
    await server.wait_status(run_id, "failed")
    stream, _ = await subscribe(server, run_id)
    await stream.until(lambda frame: frame.type == "run:fail")  # the replay of the failed run
    delay_after(server.durably, "retry", 0.2)
    assert_json(await server.client.post("/retry", params={"runId": run_id}), 200)
    frames = await stream.until(lambda frame: frame.type == "run:fail")
    assert types(frames)[:2] == ["run:retry", "run:start"], types(frames)


async def test_run_trigger_is_streamed_before_the_runs_run_start(server: LiveServer) -> None:
    """As above for a trigger: a polling worker may claim the new run before the engine, back on its
    loop, would make run:trigger (before 014f6a3, /runs/subscribe showed run:start first)."""
    stream = await server.stream("/runs/subscribe")
    delay_after(server.durably, "insert_runs", 0.2)
    run_id = await server.trigger("script", {"steps": 1})
    frames = await stream.until(lambda frame: frame.type == "run:complete")
    assert [frame.event["runId"] for frame in frames] == [run_id] * len(frames)
    assert types(frames)[:2] == ["run:trigger", "run:start"], types(frames)


# -- auth on streams -------------------------------------------------------------------------------
async def test_visible_jobs_limits_runs_subscribe(serve: Serve) -> None:
    auth = DurablyAuth(
        authenticate=lambda request: request.headers.get("x-user"), visible_jobs=lambda caller: ["no-input"]
    )
    server = await serve(auth=auth)
    stream = await server.stream("/runs/subscribe", headers={"x-user": "ann"})
    hidden = (await server.durably.trigger("script", {"steps": 1})).id
    await server.durably.wait_for_run(hidden, timeout=WAIT)
    shown = (await server.durably.trigger("no-input")).id
    frames = await stream.until(lambda frame: frame.type == "run:complete")
    assert {frame.event["runId"] for frame in frames} == {shown}
    asked = await server.stream("/runs/subscribe", params={"jobName": "script"}, headers={"x-user": "ann"})
    again = (await server.durably.trigger("script", {"steps": 1})).id
    await server.durably.wait_for_run(again, timeout=WAIT)
    assert await asked.quiet_for(0.3) == []


async def test_runs_subscribe_does_not_stream_runs_that_can_access_run_hides(serve: Serve) -> None:
    auth = DurablyAuth(
        authenticate=lambda request: request.headers.get("x-user"),
        can_access_run=lambda caller, run: run.input.get("rows", [{}])[0].get("name") == caller,
    )
    server = await serve(auth=auth)
    stream = await server.stream("/runs/subscribe", headers={"x-user": "ann"})
    bobs = (await server.durably.trigger("import-rows", {"rows": [{"name": "bob"}]})).id
    await server.durably.wait_for_run(bobs, timeout=WAIT)
    anns = (await server.durably.trigger("import-rows", {"rows": [{"name": "ann"}]})).id
    frames = await stream.until(lambda frame: frame.type == "run:complete" and frame.event["runId"] == anns)
    assert {frame.event["runId"] for frame in frames} == {anns}, [(f.type, f.event["runId"]) for f in frames]


async def test_can_access_run_false_hides_the_stream_but_not_from_its_owner(serve: Serve) -> None:
    auth = DurablyAuth(
        authenticate=lambda request: request.headers.get("x-user"),
        can_access_run=lambda caller, run: caller == "owner",
    )
    server = await serve(auth=auth)
    server.client.headers["x-user"] = "owner"
    run_id, _ = await held_run(server)
    response = await server.client.get("/subscribe", params={"runId": run_id}, headers={"x-user": "other"})
    assert_error(response, 404, f"Run not found: {run_id}")
    _, run = await subscribe(server, run_id, headers={"x-user": "owner"})
    assert run["id"] == run_id


# -- a worker in another process -------------------------------------------------------------------
@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    ready_file: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text()[-3000:]

    async def ready(self) -> None:
        """Wait (without blocking the loop the API server runs on) until its engine is open."""
        try:
            async with asyncio.timeout(WAIT):
                while not self.ready_file.exists():
                    assert self.proc.poll() is None, f"worker exited early:\n{self.stderr()}"
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"worker not ready in {WAIT}s:\n{self.stderr()}") from None


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Any]:
    """`spawn_worker(db)` runs tests/server_worker.py in a child process; stopped at teardown."""
    children: list[WorkerProcess] = []

    def spawn(db: Path) -> WorkerProcess:
        ready, err = tmp_path / f"ready-{len(children)}", tmp_path / f"worker-{len(children)}.err"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "tests.server_worker", "--db", str(db), "--ready", str(ready)]
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        children.append(child := WorkerProcess(proc, ready, err))
        return child

    yield spawn
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait(timeout=5)


async def api_without_worker(serve: Serve, db: Path) -> LiveServer:
    """The API process: the same jobs registered (to validate triggers), migrated, no worker."""
    durably = create_durably(database_url(db), **FAST)
    durably.register(**XP_JOBS)
    server = await serve(durably=durably, start_worker=False)
    assert not durably.is_running
    return server


async def test_a_subscriber_sees_the_events_of_a_worker_in_another_process(
    serve: Serve, spawn_worker: Any, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    server = await api_without_worker(serve, db)
    run_id = await server.trigger("cross-process", {"steps": 3})
    stream, run = await subscribe(server, run_id)
    assert run["status"] == "pending"
    worker = spawn_worker(db)  # only now, so that every event of the run comes after the snapshot
    await worker.ready()
    frames = await stream.rest()
    assert types(frames)[0] == "run:start" and types(frames)[-1] == "run:complete", types(frames)
    assert frames[0].event["payload"] == {"steps": 3, "sleep": 0.01}
    assert step_indexes(frames, "step:start") == [0, 1, 2] and step_indexes(frames, "step:complete") == [0, 1, 2]
    assert [frame.event["message"] for frame in of_type(frames, "log:write")] == [
        f"step {i} in {worker.proc.pid}" for i in range(3)
    ]
    assert of_type(frames, "run:progress")[-1].event["progress"] == {"current": 3, "total": 3}
    assert frames[-1].event["output"] == {"steps": 3, "pid": worker.proc.pid} and worker.proc.pid != os.getpid()
    assert_well_framed(frames)
    assert not server.durably.is_running


async def test_runs_subscribe_sees_runs_executed_by_another_process(
    serve: Serve, spawn_worker: Any, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    server = await api_without_worker(serve, db)
    stream = await server.stream("/runs/subscribe")
    await spawn_worker(db).ready()
    run_id = await server.trigger("cross-process", {"steps": 2})
    seen: set[str] = set()
    frames = await stream.until(lambda frame: seen.add(frame.type) or {"run:trigger", "run:complete"} <= seen)
    assert {frame.event["runId"] for frame in frames} == {run_id}
    # run:trigger is logged by this process and the rest by the worker's, each with its own commits:
    # their order in the log is not pinned here (in one process it is: see
    # test_run_trigger_is_streamed_before_the_runs_run_start).
    assert sorted(types(frames)) == sorted(
        ["run:trigger", "run:start", "step:start", "log:write", "step:complete", "run:progress"] * 1
        + ["step:start", "log:write", "step:complete", "run:progress", "run:complete"]
    ), types(frames)
    assert step_indexes(frames, "step:complete") == [0, 1]


async def test_a_late_subscriber_loses_nothing_of_a_run_in_another_process(
    serve: Serve, spawn_worker: Any, tmp_path: Path
) -> None:
    """The worker process logs no events while nobody watches, so the first subscriber arrives while
    it runs unlogged: nothing may fall between the snapshot and the first logged event (before
    ae98422 the worker went on unlogged until its next look at the watch mark, up to 1 s: every
    step in between was lost)."""
    db = tmp_path / "shared.db"
    server = await api_without_worker(serve, db)
    await spawn_worker(db).ready()
    steps = 150  # ~5 ms each: well over a second
    run_id = await server.trigger("cross-process", {"steps": steps, "sleep": 0.005})
    await server.wait_run(run_id, lambda run: run["stepCount"] >= 3)
    stream, snapshot = await subscribe(server, run_id)
    assert snapshot["status"] == "running"
    frames = await stream.rest(timeout=20)
    completed = step_indexes(frames, "step:complete")
    missing = sorted(set(range(snapshot["stepCount"], steps)) - set(completed))
    assert not missing, f"snapshot at stepCount {snapshot['stepCount']}; no step:complete for steps {missing}"
    assert frames[-1].type == "run:complete"
