"""Inside a job: `step.run` checkpoints and replays, `step.progress`, `step.log`, and how failures are
recorded on the run and on the failed step."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
import uuid

from conftest import FAST
from engine_helpers import Gate, collect, wait_for_status
from pydantic import BaseModel

from durably_reflex import Durably, Progress, RunStatus, create_durably, define_job
from durably_reflex._clock import now_ms
from durably_reflex._storage.base import NewRun, StepRecord, StepWrite


async def run_to_end(durably: Durably, job_name: str, input=None, timeout: float = 5.0):
    """Trigger a run and wait until it completes or fails; returns the stored run."""
    run = await durably.trigger(job_name, {} if input is None else input)
    return await wait_for_status(durably, run.id, RunStatus.COMPLETED, RunStatus.FAILED, timeout=timeout)


# -- checkpointing and replay ---------------------------------------------------------------------
class FlakyPipeline:
    """Steps a, b, c; b fails on its first call only. Counts the calls of each step function."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    def definition(self):
        async def pipeline(step, input):
            a = await step.run("a", self.a)
            b = await step.run("b", self.b, a)
            c = await step.run("c", self.c, b)
            return {"a": a, "b": b, "c": c}

        return define_job(name="pipeline", run=pipeline)

    def a(self):
        self.calls["a"] += 1
        return {"token": str(uuid.uuid4())}  # different on each call: a replay must return the stored one

    def b(self, a):
        self.calls["b"] += 1
        if self.calls["b"] == 1:
            raise RuntimeError("b failed the first time")
        return len(a["token"])

    async def c(self, b):
        self.calls["c"] += 1
        return b * 2


async def test_retry_keeps_completed_steps_and_reruns_the_failed_one(durably):
    pipeline = FlakyPipeline()
    durably.register(job=pipeline.definition())
    await durably.start()
    failed = await run_to_end(durably, "pipeline")
    assert failed.status is RunStatus.FAILED
    assert pipeline.calls == {"a": 1, "b": 1}

    await durably.retry(failed.id)
    done = await wait_for_status(durably, failed.id, RunStatus.COMPLETED, RunStatus.FAILED)

    assert done.status is RunStatus.COMPLETED
    assert pipeline.calls == {"a": 1, "b": 2, "c": 1}


async def test_a_replayed_step_returns_the_stored_output_of_its_first_execution(durably):
    pipeline = FlakyPipeline()
    durably.register(job=pipeline.definition())
    await durably.start()
    failed = await run_to_end(durably, "pipeline")
    (first_a,) = [step for step in await durably.get_steps(failed.id) if step.name == "a"]

    await durably.retry(failed.id)
    done = await wait_for_status(durably, failed.id, RunStatus.COMPLETED)

    assert done.output["a"] == first_a.output
    assert done.output == {"a": first_a.output, "b": 36, "c": 72}


async def test_a_replayed_step_emits_no_step_events(durably):
    pipeline = FlakyPipeline()
    durably.register(job=pipeline.definition())
    await durably.start()
    failed = await run_to_end(durably, "pipeline")
    events = collect(durably)

    await durably.retry(failed.id)
    await wait_for_status(durably, failed.id, RunStatus.COMPLETED)

    started = [event["stepName"] for event in events if event["type"] == "step:start"]
    assert started == ["b", "c"]


async def test_step_rows_after_a_retry_keep_the_failed_attempt_and_their_indexes(durably):
    pipeline = FlakyPipeline()
    durably.register(job=pipeline.definition())
    await durably.start()
    failed = await run_to_end(durably, "pipeline")
    await durably.retry(failed.id)
    done = await wait_for_status(durably, failed.id, RunStatus.COMPLETED)

    steps = await durably.get_steps(done.id)

    assert [(step.name, step.index, step.status) for step in steps] == [
        ("a", 0, "completed"),
        ("b", 1, "failed"),
        ("b", 1, "completed"),
        ("c", 2, "completed"),
    ]
    assert (done.current_step_index, done.step_count) == (3, 3)


async def test_the_value_a_step_returns_equals_its_stored_output(durably):
    returned = []

    async def job(step, input):
        returned.append(await step.run("tuple-and-key", lambda: {"pair": (1, 2), 3: "x"}))

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await run_to_end(durably, "job")

    (stored,) = await durably.get_steps(run.id)
    # the live value is the JSON round trip, so first execution and replay agree
    assert returned == [{"pair": [1, 2], "3": "x"}]
    assert stored.output == returned[0]


async def test_step_run_accepts_sync_and_async_callables_with_arguments(durably):
    def add(x, y, *, scale=1):
        return (x + y) * scale

    async def async_add(x, y, *, scale=1):
        await asyncio.sleep(0)
        return (x + y) * scale

    async def job(step, input):
        sync_result = await step.run("sync", add, 1, 2, scale=10)
        async_result = await step.run("async", async_add, 3, 4, scale=100)
        lambda_result = await step.run("lambda", lambda: "plain")
        return [sync_result, async_result, lambda_result]

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.output == [30, 700, "plain"]


async def test_a_sync_step_runs_off_the_event_loop(durably):
    ticks = []

    async def ticker():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def job(step, input):
        ticks.clear()
        await step.run("blocking", time.sleep, 0.5)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    ticking = asyncio.create_task(ticker())
    try:
        run = await run_to_end(durably, "job")
    finally:
        ticking.cancel()

    assert run.status is RunStatus.COMPLETED
    during = [t for t in ticks if t - ticks[0] < 0.5]
    assert len(during) >= 10  # ~50 expected; a blocked loop would give 1
    assert max(b - a for a, b in itertools.pairwise(during)) < 0.45  # never blocked for the step's 0.5 s


async def test_a_duplicate_step_name_fails_the_run_with_a_clear_message(durably):
    calls = collections.Counter()

    def count(name):
        calls[name] += 1
        return calls[name]

    async def job(step, input):
        await step.run("fetch", count, "first")
        await step.run("fetch", count, "second")
        await step.run("after", count, "after")

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.status is RunStatus.FAILED
    assert run.error == 'Step "fetch" was already run in this execution: step names must be unique per run'
    assert "DuplicateStepError" in run.error_stack
    assert calls == {"first": 1}


async def test_a_step_result_that_is_not_json_fails_the_run_with_a_clear_message(durably):
    async def job(step, input):
        await step.run("make-object", object)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.status is RunStatus.FAILED
    assert 'The result of step "make-object" is not JSON-serializable' in run.error
    (step,) = await durably.get_steps(run.id)
    assert (step.name, step.status) == ("make-object", "failed")
    assert step.error == run.error


async def test_step_rows_record_order_outputs_and_timing(durably):
    async def job(step, input):
        await step.run("first", lambda: 1)
        await step.run("slow", time.sleep, 0.1)
        await step.run("third", lambda: {"ok": True})

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")
    steps = await durably.get_steps(run.id)

    assert [(s.name, s.index, s.status, s.output) for s in steps] == [
        ("first", 0, "completed", 1),
        ("slow", 1, "completed", None),
        ("third", 2, "completed", {"ok": True}),
    ]
    for step in steps:
        assert step.run_id == run.id
        assert step.started_at <= step.completed_at
        assert step.error is None and step.error_stack is None
    assert (steps[1].completed_at - steps[1].started_at).total_seconds() >= 0.09
    assert steps[0].completed_at <= steps[1].started_at <= steps[1].completed_at <= steps[2].started_at


async def test_current_step_index_and_step_count_follow_completed_steps(durably):
    seen = []
    gate = Gate()

    async def job(step, input):
        await step.run("one", lambda: 1)
        await step.run("two", lambda: 2)
        seen.append("two done")
        await gate.wait(5)
        await step.run("three", lambda: 3)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})
    assert (run.current_step_index, run.step_count) == (0, 0)
    async with asyncio.timeout(5):
        while not seen:
            await asyncio.sleep(0.01)

    middle = await durably.get_run(run.id)
    gate.set()
    done = await wait_for_status(durably, run.id, RunStatus.COMPLETED)

    assert (middle.current_step_index, middle.step_count) == (2, 2)
    assert (done.current_step_index, done.step_count) == (3, 3)


async def test_the_step_context_knows_its_run_id(durably):
    seen = []

    async def job(step, input):
        seen.append(step.run_id)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await run_to_end(durably, "job")

    assert seen == [run.id]


async def test_a_step_failure_caught_by_the_job_does_not_fail_the_run(durably):
    def broken():
        raise KeyError("missing")

    async def job(step, input):
        with contextlib.suppress(KeyError):
            await step.run("optional", broken)
        return await step.run("fallback", lambda: "used fallback")

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await run_to_end(durably, "job")

    assert (run.status, run.output) == (RunStatus.COMPLETED, "used fallback")
    steps = await durably.get_steps(run.id)
    assert [(s.name, s.status) for s in steps] == [("optional", "failed"), ("fallback", "completed")]


# -- progress -------------------------------------------------------------------------------------
async def test_progress_is_persisted_while_running(durably):
    gate = Gate()

    async def job(step, input):
        step.progress(50)
        await gate.wait(5)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})
    try:
        async with asyncio.timeout(5):
            while (current := await durably.get_run(run.id)).progress is None:
                await asyncio.sleep(0.01)
    finally:
        gate.set()

    assert current.progress == Progress(current=50)
    assert current.to_wire()["progress"] == {"current": 50}


async def test_full_progress_is_persisted_and_emitted(durably):
    async def job(step, input):
        step.progress(1, 3)
        step.progress(2, 3, "two")
        step.progress(25, 100, "Processing items...")

    durably.register(job=define_job(name="job", run=job))
    events = collect(durably, "run:progress")
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.progress == Progress(current=25, total=100, message="Processing items...")
    assert run.to_wire()["progress"] == {"current": 25, "total": 100, "message": "Processing items..."}
    assert [event["progress"] for event in events] == [
        {"current": 1, "total": 3},
        {"current": 2, "total": 3, "message": "two"},
        {"current": 25, "total": 100, "message": "Processing items..."},
    ]
    assert all((event["runId"], event["jobName"]) == (run.id, "job") for event in events)


async def test_progress_from_a_sync_step_in_a_thread_is_emitted(durably):
    async def job(step, input):
        def work():
            for i in range(1, 4):
                step.progress(i, 3)

        await step.run("work", work)

    durably.register(job=define_job(name="job", run=job))
    events = collect(durably, "run:progress")
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.progress == Progress(current=3, total=3)
    assert [event["progress"]["current"] for event in events] == [1, 2, 3]


async def test_progress_rejects_values_that_are_not_numbers(durably):
    async def job(step, input):
        step.progress("half")

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.status is RunStatus.FAILED
    assert "current" in run.error


# -- logs -----------------------------------------------------------------------------------------
async def test_logs_are_persisted_with_step_name_level_and_data(durably):
    async def job(step, input):
        step.log.info("before any step")

        def sync_step():
            step.log.warn("inside sync step", {"row": 3})
            return 1

        async def async_step():
            step.log.error("inside async step", {"rows": [1, 2]})
            return 2

        await step.run("sync-step", sync_step)
        await step.run("async-step", async_step)
        step.log.info("after the steps", "plain data")

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")
    logs = await durably.get_logs(run.id)

    assert [(log.step_name, log.level, log.message, log.data) for log in logs] == [
        (None, "info", "before any step", None),
        ("sync-step", "warn", "inside sync step", {"row": 3}),
        ("async-step", "error", "inside async step", {"rows": [1, 2]}),
        (None, "info", "after the steps", "plain data"),
    ]
    assert all(log.run_id == run.id for log in logs)
    assert [log.timestamp for log in logs] == sorted(log.timestamp for log in logs)


async def test_logs_are_emitted_as_log_write_events_matching_the_stored_lines(durably):
    async def job(step, input):
        step.log.info("outside")
        await step.run("inside", lambda: step.log.warn("in step", {"n": 1}))

    durably.register(job=define_job(name="job", run=job))
    events = collect(durably, "log:write")
    await durably.start()

    run = await run_to_end(durably, "job")
    logs = await durably.get_logs(run.id)

    assert [
        (e["runId"], e["jobName"], e["stepName"], e["level"], e["message"], e["data"], e["id"]) for e in events
    ] == [(run.id, "job", log.step_name, log.level, log.message, log.data, log.id) for log in logs]
    assert [e["stepName"] for e in events] == [None, "inside"]


async def test_log_retention_keeps_only_the_newest_lines_of_each_run(db_url):
    async def chatty(step, input):
        for i in range(10):
            step.log.info(f"{input['name']} line {i}")

    durably = create_durably(db_url, **FAST, log_retention=3)
    try:
        durably.register(job=define_job(name="chatty", run=chatty))
        await durably.start()
        first = await run_to_end(durably, "chatty", {"name": "a"})
        second = await run_to_end(durably, "chatty", {"name": "b"})

        assert [log.message for log in await durably.get_logs(first.id)] == ["a line 7", "a line 8", "a line 9"]
        assert [log.message for log in await durably.get_logs(second.id)] == ["b line 7", "b line 8", "b line 9"]
    finally:
        await durably.close(timeout=5)


async def test_get_logs_pages_after_an_id(durably):
    async def job(step, input):
        for i in range(5):
            step.log.info(f"line {i}")

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await run_to_end(durably, "job")

    first_two = await durably.get_logs(run.id, limit=2)
    rest = await durably.get_logs(run.id, after_id=first_two[-1].id)

    assert [log.message for log in first_two] == ["line 0", "line 1"]
    assert [log.message for log in rest] == ["line 2", "line 3", "line 4"]


# -- failures -------------------------------------------------------------------------------------
def parse_row_three():
    raise ValueError("row 3: bad date")


async def test_a_failing_step_stores_error_and_traceback_on_the_run_and_the_step(durably):
    async def job(step, input):
        await step.run("ok", lambda: 1)
        await step.run("parse", parse_row_three)
        await step.run("never", lambda: 2)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.status is RunStatus.FAILED
    assert run.error == "row 3: bad date"
    assert "parse_row_three" in run.error_stack and "ValueError" in run.error_stack
    assert run.completed_at is not None
    steps = await durably.get_steps(run.id)
    assert [(s.name, s.status) for s in steps] == [("ok", "completed"), ("parse", "failed")]
    failed = steps[1]
    assert failed.error == "row 3: bad date"
    assert "parse_row_three" in failed.error_stack
    assert failed.output is None
    assert failed.started_at <= failed.completed_at
    assert (run.current_step_index, run.step_count) == (1, 1)


async def test_a_job_failing_outside_any_step_stores_error_and_traceback(durably):
    async def job_that_raises_itself(step, input):
        await step.run("ok", lambda: 1)
        raise RuntimeError("gave up between steps")

    durably.register(job=define_job(name="job", run=job_that_raises_itself))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.error == "gave up between steps"
    assert "job_that_raises_itself" in run.error_stack
    assert [s.status for s in await durably.get_steps(run.id)] == ["completed"]


async def test_an_exception_without_a_message_is_reported_by_its_type(durably):
    async def job(step, input):
        raise KeyboardInterruptLike()

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.error == "KeyboardInterruptLike"


class KeyboardInterruptLike(Exception):
    pass


class Summary(BaseModel):
    rows: int


async def test_invalid_output_fails_the_run(durably):
    async def job(step, input):
        await step.run("count", lambda: 3)
        return {"rows": "three"}

    durably.register(job=define_job(name="job", output=Summary, run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert run.status is RunStatus.FAILED
    assert run.error.startswith("Invalid output: ")
    assert "rows" in run.error
    assert run.output is None


async def test_valid_output_is_stored_as_json_of_the_output_model(durably):
    async def job(step, input):
        return Summary(rows=3)

    durably.register(job=define_job(name="job", output=Summary, run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert (run.status, run.output) == (RunStatus.COMPLETED, {"rows": 3})


async def test_a_job_returning_nothing_completes_with_no_output(durably):
    async def job(step, input):
        await step.run("only", lambda: None)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert (run.status, run.output, run.error) == (RunStatus.COMPLETED, None, None)


async def test_steps_run_in_parallel_get_their_own_index_and_log_attribution(durably):
    both_inside = Gate()
    inside = []

    async def job(step, input):
        async def part(name):
            inside.append(name)
            if len(inside) == 2:
                both_inside.set()
            await both_inside.wait(3)
            step.log.info(f"from {name}")
            return name.upper()

        return list(await asyncio.gather(step.run("left", part, "left"), step.run("right", part, "right")))

    durably.register(job=define_job(name="job", run=job))
    await durably.start()

    run = await run_to_end(durably, "job")

    assert (run.status, run.output) == (RunStatus.COMPLETED, ["LEFT", "RIGHT"])
    steps = await durably.get_steps(run.id)
    assert sorted((s.name, s.index) for s in steps) == [("left", 0), ("right", 1)]
    assert sorted((log.step_name, log.message) for log in await durably.get_logs(run.id)) == [
        ("left", "from left"),
        ("right", "from right"),
    ]
    assert (run.current_step_index, run.step_count) == (2, 2)


# -- the step write ------------------------------------------------------------------------------
async def test_a_step_is_written_only_while_its_claim_holds_and_its_writer_learns_of_a_cancel(durably):
    """What `storage.record_step` promises the step context: written while the run is running under
    this claim; written too, saying so, if the run was cancelled meanwhile (the step stays visible
    where the run stopped); refused, writing nothing, once the claim is lost: an earlier claim's
    write, or one after the run settled."""
    storage = durably.storage
    now = now_ms()
    await storage.insert_runs([NewRun(f"run-{n}", "j", "null", None, None, now + n) for n in range(3)])
    attempts = {claim.run.id: claim.attempt for claim in await storage.claim("me", ("j",), 3, now + 10)}

    def step(run_id: str, name: str, attempt: int | None = None) -> StepRecord:
        at = now_ms()
        attempt = attempts[run_id] if attempt is None else attempt
        return StepRecord(f"{run_id}-{name}", run_id, attempt, name, 0, "completed", "1", None, None, at, at)

    await storage.cancel("run-1", now_ms())
    await storage.finish_run("run-2", attempts["run-2"], "completed", now_ms())

    assert await storage.record_step(step("run-0", "running")) is StepWrite.RECORDED
    assert await storage.record_step(step("run-0", "stale", attempts["run-0"] - 1)) is StepWrite.CLAIM_LOST
    assert await storage.record_step(step("run-1", "cancelled")) is StepWrite.RECORDED_RUN_CANCELLED
    assert await storage.record_step(step("run-2", "settled")) is StepWrite.CLAIM_LOST
    written = {n: [s.name for s in await storage.get_steps(f"run-{n}")] for n in range(3)}
    assert written == {0: ["running"], 1: ["cancelled"], 2: []}
