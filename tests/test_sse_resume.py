"""Resuming a stream with `Last-Event-ID`, cut at every position of a recorded run, against a REAL
server: a stream's ids strictly increase, so the id of the last frame a client received means
"everything up to here", and reconnecting with it loses nothing and repeats nothing.

Two runs of a job with steps, logs and bursts of progress faster than the throttle lets through are
recorded whole on `/subscribe?runId=` (each run) and `/runs/subscribe`. Then, for every frame of
those recordings, a new connection resumes after that frame's id, and what it sends must tell what
the recording sent after that frame. "Tell": the throttle may let through other intermediate
progress on another connection (it runs on the clock), but only a progress that a newer progress
of the same run supersedes before anything else is sent, so both are compared as a client reads
them (`told`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel

from durably_reflex import define_job
from tests.server_fixtures import (
    Frame,
    LiveServer,
    Serve,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)

STEPS, BURST = 3, 6
PROGRESS_INTERVAL = 0.05  # a burst reports every 10 ms: some progress is sent, some held, some dropped
RESUMING_AT_ONCE = 8


class StoryInput(BaseModel):
    steps: int = STEPS
    burst: int = BURST


async def story(step: Any, input: StoryInput) -> dict[str, int]:
    total = input.steps * input.burst
    for i in range(input.steps):

        def work(i: int = i) -> int:
            step.log.info(f"step {i}", {"i": i})
            return i

        await step.run(f"step-{i}", work)
        for j in range(1, input.burst + 1):
            step.progress(i * input.burst + j, total, f"{i}.{j}")
            time.sleep(0.01)
        step.log.warn(f"burst {i} reported")
    return {"steps": input.steps}


JOBS = {"story": define_job(name="story", input=StoryInput, run=story)}


# -- how a client reads a stream ---------------------------------------------------------------------
def told(frames: list[Frame]) -> list[bytes]:
    """The frames a client must act on: in each stretch of consecutive progress frames, the last of
    each run (an earlier one of the same run is superseded with nothing sent between)."""
    kept: list[Frame] = []
    stretch: list[Frame] = []
    for frame in [*frames, None]:
        if frame is not None and frame.type == "run:progress":
            stretch.append(frame)
            continue
        last = {progress.event["runId"]: progress for progress in stretch}
        kept += [progress for progress in stretch if last[progress.event["runId"]] is progress]
        stretch = []
        if frame is not None:
            kept.append(frame)
    return [frame.raw for frame in kept]


def assert_ids_strictly_increase(frames: list[Frame], after: int = 0) -> None:
    ids = [frame.id for frame in frames]
    assert all(isinstance(i, int) for i in ids), ids
    assert [after, *ids] == sorted(set([after, *ids])), f"ids not strictly increasing after {after}: {ids}"


# -- recording -----------------------------------------------------------------------------------------
async def record(server: LiveServer) -> tuple[dict[str, list[Frame]], list[Frame]]:
    """Two runs told whole: each run's /subscribe stream (after its snapshot) and /runs/subscribe."""
    every_run = await server.stream("/runs/subscribe")
    run_ids = [await server.trigger("story", {}) for _ in range(2)]
    streams = {run_id: await server.stream("/subscribe", params={"runId": run_id}) for run_id in run_ids}
    for stream in streams.values():
        snapshot = await stream.next()
        assert snapshot is not None and snapshot.type == "run:snapshot" and snapshot.event["run"]["status"] == "pending"
    await server.durably.start()
    of_run = {run_id: await stream.rest() for run_id, stream in streams.items()}
    completed: set[str] = set()

    def both_completed(frame: Frame) -> bool:
        if frame.type == "run:complete":
            completed.add(frame.event["runId"])
        return completed == set(run_ids)

    of_all = await every_run.until(both_completed)
    await every_run.close()
    return of_run, of_all


async def resumed_run(server: LiveServer, run_id: str, after: int) -> list[Frame]:
    """/subscribe resumed after `after`: its snapshot, then what it sends until it ends."""
    stream = await server.stream("/subscribe", params={"runId": run_id}, headers={"Last-Event-ID": str(after)})
    frames = await stream.rest()
    await stream.close()
    assert frames and frames[0].type == "run:snapshot", [frame.type for frame in frames]
    assert frames[0].event["run"]["status"] == "completed"
    return frames[1:]


async def resumed_runs(server: LiveServer, after: int, through: int) -> list[Frame]:
    """/runs/subscribe resumed after `after`, read up to the frame with id `through`."""
    stream = await server.stream("/runs/subscribe", headers={"Last-Event-ID": str(after)})
    frames = [] if after >= through else await stream.until(lambda frame: frame.id is not None and frame.id >= through)
    await stream.close()
    return frames


async def every_cut(frames: list[Frame], resume: Any) -> None:
    """Resume after each frame of `frames` (a few connections at once): it must tell what followed."""
    limit = asyncio.Semaphore(RESUMING_AT_ONCE)

    async def cut(position: int) -> None:
        after = frames[position].id
        assert after is not None
        async with limit:
            resumed = await resume(after)
        assert_ids_strictly_increase(resumed, after)
        assert told(resumed) == told(frames[position + 1 :]), f"resumed after frame {position} (id {after})"

    await asyncio.gather(*(cut(position) for position in range(len(frames))))


# -- the test ------------------------------------------------------------------------------------------
async def test_a_stream_resumed_after_any_frame_loses_nothing_and_repeats_nothing(serve: Serve) -> None:
    server = await serve(jobs=JOBS, start_worker=False, progress_interval=PROGRESS_INTERVAL)
    of_run, of_all = await record(server)

    for run_id, frames in of_run.items():
        assert_ids_strictly_increase(frames)
        assert frames[-1].type == "run:complete" and not any(frame.event.get("replayed") for frame in frames)
        progress = [frame.event["progress"]["current"] for frame in frames if frame.type == "run:progress"]
        assert progress[-1] == STEPS * BURST and len(progress) < STEPS * BURST, progress  # the throttle worked
        await every_cut(frames, lambda after, run_id=run_id: resumed_run(server, run_id, after))

    assert_ids_strictly_increase(of_all)
    assert {frame.type for frame in of_all} >= {"run:trigger", "run:start", "run:progress", "log:write", "run:complete"}
    await every_cut(of_all, lambda after: resumed_runs(server, after, of_all[-1].id))
