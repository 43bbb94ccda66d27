"""Acting on runs: retry, cancel, delete; and stopping the worker (gracefully, or after a timeout)."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest
from conftest import FAST
from engine_helpers import TERMINAL, Gate, collect, query_db, wait_for_status

from durably_reflex import (
    ConflictError,
    Durably,
    RunNotFoundError,
    RunStateError,
    RunStatus,
    create_durably,
    define_job,
)


class Gated:
    """A job of steps one, two, three. Step one waits for `release`; `entered` is set once it is inside."""

    def __init__(self) -> None:
        self.entered = Gate()
        self.release = Gate()
        self.calls: collections.Counter[str] = collections.Counter()
        self.returned = False

    def definition(self, name: str = "gated", more_steps: bool = True):
        async def one():
            self.calls["one"] += 1
            self.entered.set()
            await self.release.wait(5)
            return "one done"

        async def job(step, input):
            await step.run("one", one)
            if more_steps:
                await step.run("two", lambda: self.calls.update(["two"]))
                await step.run("three", lambda: self.calls.update(["three"]))
            self.returned = True
            return {"finished": True}

        return define_job(name=name, run=job)


async def make_run(durably: Durably, outcome: str) -> str:
    """A run of job "outcome" in a terminal state, with one completed step and a log line; the
    worker must be started. A run to cancel waits after its first step until it is cancelled."""
    run = await durably.trigger("outcome", {"outcome": outcome})
    if outcome == "cancelled":
        async with asyncio.timeout(5):
            while not await durably.get_steps(run.id):
                await asyncio.sleep(0.01)
        await durably.cancel(run.id)
    await wait_for_status(durably, run.id, *TERMINAL)
    return run.id


async def outcome_job(step, input):
    await step.run("log", lambda: step.log.info("a line"))
    if input["outcome"] == "failed":
        raise RuntimeError("failed on purpose")
    if input["outcome"] == "cancelled":
        deadline = time.monotonic() + 5
        while not step.is_cancelled and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await step.run("after-cancel", lambda: None)  # raises: the run was cancelled


# -- retry ----------------------------------------------------------------------------------------
async def test_retry_of_a_failed_run_puts_it_back_to_pending_without_its_error(durably):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    await durably.start()
    run_id = await make_run(durably, "failed")
    await durably.stop()
    events = collect(durably)

    retried = await durably.retry(run_id)

    assert retried.id == run_id
    assert retried.status is RunStatus.PENDING
    assert (retried.error, retried.error_stack) == (None, None)
    assert await durably.get_run(run_id) == retried
    assert [(e["type"], e["runId"], e["jobName"]) for e in events] == [("run:retry", run_id, "outcome")]


async def test_retry_resumes_at_the_first_unfinished_step(durably):
    calls = collections.Counter()
    failures = {"two": 1}

    def step_fn(name):
        calls[name] += 1
        if failures.get(name):
            failures[name] -= 1
            raise RuntimeError(f"{name} failed")
        return name

    async def job(step, input):
        return [await step.run(name, step_fn, name) for name in ("one", "two", "three")]

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})
    await wait_for_status(durably, run.id, RunStatus.FAILED)

    await durably.retry(run.id)
    done = await wait_for_status(durably, run.id, RunStatus.COMPLETED, RunStatus.FAILED)

    assert (done.status, done.output) == (RunStatus.COMPLETED, ["one", "two", "three"])
    assert calls == {"one": 1, "two": 2, "three": 1}


async def test_retry_of_a_cancelled_run_runs_it_to_completion(durably):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    run = await durably.trigger("outcome", {"outcome": "completed"})
    await durably.cancel(run.id)

    retried = await durably.retry(run.id)
    assert retried.status is RunStatus.PENDING
    await durably.start()

    done = await wait_for_status(durably, run.id, RunStatus.COMPLETED, RunStatus.FAILED)
    assert (done.status, done.error) == (RunStatus.COMPLETED, None)


async def test_retry_of_a_run_cancelled_mid_way_keeps_its_completed_step(durably):
    gated = Gated()
    durably.register(job=gated.definition())
    await durably.start()
    run = await durably.trigger("gated", {})
    await gated.entered.wait(5)
    await durably.cancel(run.id)
    gated.release.set()
    async with asyncio.timeout(5):
        while not (await durably.get_steps(run.id)):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # let the cancelled execution wind down

    await durably.retry(run.id)
    done = await wait_for_status(durably, run.id, RunStatus.COMPLETED, RunStatus.FAILED)

    assert done.status is RunStatus.COMPLETED
    assert gated.calls == {"one": 1, "two": 1, "three": 1}


async def test_retry_of_a_completed_run_is_a_state_error(durably):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    await durably.start()
    run_id = await make_run(durably, "completed")

    with pytest.raises(RunStateError, match=f"^Cannot retry completed run: {run_id}$") as raised:
        await durably.retry(run_id)

    assert isinstance(raised.value, ConflictError)
    assert (await durably.get_run(run_id)).status is RunStatus.COMPLETED


async def test_retry_of_a_pending_run_is_a_state_error(durably):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    run = await durably.trigger("outcome", {"outcome": "completed"})

    with pytest.raises(RunStateError, match=f"^Cannot retry pending run: {run.id}$"):
        await durably.retry(run.id)


async def test_retry_of_a_running_run_is_a_state_error(durably):
    gated = Gated()
    durably.register(job=gated.definition())
    await durably.start()
    run = await durably.trigger("gated", {})
    await gated.entered.wait(5)
    try:
        with pytest.raises(RunStateError, match=f"^Cannot retry running run: {run.id}$"):
            await durably.retry(run.id)
    finally:
        gated.release.set()
    assert (await wait_for_status(durably, run.id, *TERMINAL)).status is RunStatus.COMPLETED


async def test_retry_of_an_unknown_run_is_run_not_found(durably):
    with pytest.raises(RunNotFoundError, match="^Run not found: nope$"):
        await durably.retry("nope")


# -- cancel ---------------------------------------------------------------------------------------
async def test_cancel_of_a_pending_run_cancels_it_and_it_never_runs(durably):
    calls = []

    async def job(step, input):
        calls.append(1)

    durably.register(job=define_job(name="job", run=job))
    run = await durably.trigger("job", {})
    events = collect(durably)

    cancelled = await durably.cancel(run.id)
    await durably.start()
    await asyncio.sleep(0.3)

    assert cancelled.status is RunStatus.CANCELLED
    assert (await durably.get_run(run.id)).status is RunStatus.CANCELLED
    assert calls == []
    assert [(e["type"], e["runId"], e["jobName"]) for e in events] == [("run:cancel", run.id, "job")]


async def test_cancel_of_a_running_run_is_immediate_and_the_current_step_finishes_and_is_saved(durably):
    gated = Gated()
    durably.register(job=gated.definition())
    events = collect(durably)
    await durably.start()
    run = await durably.trigger("gated", {})
    await gated.entered.wait(5)

    cancelled = await durably.cancel(run.id)

    assert cancelled.status is RunStatus.CANCELLED
    assert (await durably.get_run(run.id)).status is RunStatus.CANCELLED  # while step one is still running
    assert gated.calls == {"one": 1}

    gated.release.set()
    async with asyncio.timeout(5):
        while not any(e["type"] == "step:complete" for e in events):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)

    steps = await durably.get_steps(run.id)
    assert [(s.name, s.status, s.output) for s in steps] == [("one", "completed", "one done")]
    assert gated.calls == {"one": 1}  # two and three never ran
    assert not gated.returned
    final = await durably.get_run(run.id)
    assert final.status is RunStatus.CANCELLED
    assert final.step_count == 1
    types = [e["type"] for e in events]
    assert "run:cancel" in types
    assert "run:complete" not in types and "run:fail" not in types


async def test_a_cancelled_run_stays_cancelled_when_the_job_returns_normally(durably):
    gated = Gated()
    durably.register(job=gated.definition(more_steps=False))
    events = collect(durably)
    await durably.start()
    run = await durably.trigger("gated", {})
    await gated.entered.wait(5)

    await durably.cancel(run.id)
    gated.release.set()
    async with asyncio.timeout(5):
        while not gated.returned:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)

    final = await durably.get_run(run.id)
    assert (final.status, final.output) == (RunStatus.CANCELLED, None)
    assert "run:complete" not in [e["type"] for e in events]


async def test_a_cancelled_run_stays_cancelled_when_the_job_then_raises(durably):
    entered = Gate()
    release = Gate()

    async def job(step, input):
        entered.set()
        await release.wait(5)
        raise RuntimeError("raised after the cancel")

    durably.register(job=define_job(name="job", run=job))
    events = collect(durably)
    await durably.start()
    run = await durably.trigger("job", {})
    await entered.wait(5)

    await durably.cancel(run.id)
    release.set()
    await asyncio.sleep(0.3)

    final = await durably.get_run(run.id)
    assert (final.status, final.error) == (RunStatus.CANCELLED, None)
    assert "run:fail" not in [e["type"] for e in events]


async def test_cancel_sets_the_step_signal_so_a_long_sync_step_can_stop_early(durably):
    entered = Gate()
    observed = {}

    async def job(step, input):
        def long_sync_step():
            entered.set()
            started = time.monotonic()
            stopped_early = step.signal.wait(5)  # a real step would do a unit of work per check
            observed["elapsed"] = time.monotonic() - started
            observed["is_cancelled"] = step.is_cancelled
            return "stopped early" if stopped_early else "ran to the end"

        await step.run("long", long_sync_step)
        await step.run("after", lambda: observed.setdefault("after ran", True))

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})
    await entered.wait(5)

    await durably.cancel(run.id)
    async with asyncio.timeout(5):
        while not await durably.get_steps(run.id):
            await asyncio.sleep(0.01)

    assert observed["elapsed"] < 1
    assert observed["is_cancelled"] is True
    assert "after ran" not in observed
    (saved,) = await durably.get_steps(run.id)
    # It saw the cancel and stopped early: unfinished work, recorded where the run stopped.
    assert (saved.name, saved.status, saved.output) == ("long", "cancelled", "stopped early")
    assert (await durably.get_run(run.id)).status is RunStatus.CANCELLED


async def test_a_step_stopped_early_by_the_cancel_is_not_replayed_a_retry_runs_it_again(durably):
    entered = Gate()
    calls = collections.Counter()

    async def job(step, input):
        def batch():
            calls["batch"] += 1
            entered.set()
            return "partial" if step.signal.wait(5 if calls["batch"] == 1 else 0) else "whole"

        return await step.run("batch", batch)

    durably.register(job=define_job(name="job", run=job))
    events = collect(durably)
    await durably.start()
    run = await durably.trigger("job", {})
    await entered.wait(5)
    await durably.cancel(run.id)
    async with asyncio.timeout(5):
        while not await durably.get_steps(run.id):
            await asyncio.sleep(0.01)
    stopped = await durably.get_run(run.id)
    assert (stopped.step_count, stopped.current_step_index) == (0, 0)  # nothing counts as done
    assert "step:complete" not in [e["type"] for e in events]

    await durably.retry(run.id)
    done = await wait_for_status(durably, run.id, RunStatus.COMPLETED, RunStatus.FAILED)

    assert (done.status, done.output, calls["batch"]) == (RunStatus.COMPLETED, "whole", 2)
    assert [(s.status, s.output) for s in await durably.get_steps(run.id)] == [
        ("cancelled", "partial"),
        ("completed", "whole"),
    ]


async def test_a_step_that_raises_on_seeing_the_cancel_is_recorded_cancelled_with_its_reason(durably):
    entered = Gate()

    async def job(step, input):
        def batch():
            entered.set()
            if step.signal.wait(5):
                raise InterruptedError("stopped at row 7")

        await step.run("batch", batch)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})
    await entered.wait(5)
    await durably.cancel(run.id)
    async with asyncio.timeout(5):
        while not await durably.get_steps(run.id):
            await asyncio.sleep(0.01)

    (saved,) = await durably.get_steps(run.id)
    assert (saved.status, saved.error, saved.output) == ("cancelled", "stopped at row 7", None)
    final = await durably.get_run(run.id)
    assert (final.status, final.error) == (RunStatus.CANCELLED, None)


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("completed", "Cannot cancel completed run: {}"),
        ("failed", "Cannot cancel failed run: {}"),
        ("cancelled", "Cannot cancel already cancelled run: {}"),
    ],
)
async def test_cancel_of_a_terminal_run_is_a_state_error(durably, outcome, message):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    await durably.start()
    run_id = await make_run(durably, outcome)

    with pytest.raises(RunStateError) as raised:
        await durably.cancel(run_id)

    assert str(raised.value) == message.format(run_id)
    assert (await durably.get_run(run_id)).status == outcome


async def test_cancel_of_an_unknown_run_is_run_not_found(durably):
    with pytest.raises(RunNotFoundError, match="^Run not found: nope$"):
        await durably.cancel("nope")


# -- delete ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled"])
async def test_delete_removes_a_terminal_run_with_its_steps_and_logs(durably, db_url, outcome):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    await durably.start()
    run_id = await make_run(durably, outcome)
    keep_id = await make_run(durably, "completed")
    assert await durably.get_steps(run_id) and await durably.get_logs(run_id)

    assert await durably.delete_run(run_id) is None

    assert await durably.get_run(run_id) is None
    assert await durably.get_steps(run_id) == []
    assert await durably.get_logs(run_id) == []
    for table in ("durably_runs", "durably_steps", "durably_logs"):
        column = "id" if table == "durably_runs" else "run_id"
        assert query_db(db_url, f"SELECT count(*) FROM {table} WHERE {column} = ?", run_id) == [(0,)]
    assert await durably.get_run(keep_id) is not None  # other runs untouched
    assert await durably.get_steps(keep_id)


async def test_delete_of_a_pending_run_is_a_state_error(durably):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    run = await durably.trigger("outcome", {"outcome": "completed"})

    with pytest.raises(RunStateError, match=f"^Cannot delete pending run: {run.id}$"):
        await durably.delete_run(run.id)
    assert await durably.get_run(run.id) is not None


async def test_delete_of_a_running_run_is_a_state_error(durably):
    gated = Gated()
    durably.register(job=gated.definition())
    await durably.start()
    run = await durably.trigger("gated", {})
    await gated.entered.wait(5)
    try:
        with pytest.raises(RunStateError, match=f"^Cannot delete running run: {run.id}$"):
            await durably.delete_run(run.id)
    finally:
        gated.release.set()
    assert (await wait_for_status(durably, run.id, *TERMINAL)).status is RunStatus.COMPLETED


async def test_delete_of_an_unknown_run_is_run_not_found(durably):
    with pytest.raises(RunNotFoundError, match="^Run not found: nope$"):
        await durably.delete_run("nope")


async def test_delete_emits_run_delete(durably):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    await durably.start()
    run_id = await make_run(durably, "completed")
    events = collect(durably)

    await durably.delete_run(run_id)

    assert [(e["type"], e["runId"], e["jobName"]) for e in events] == [("run:delete", run_id, "outcome")]


# -- stop -----------------------------------------------------------------------------------------
async def test_stop_with_nothing_running_is_quick(durably):
    await durably.start()
    await asyncio.sleep(0.1)
    started = time.monotonic()

    await asyncio.wait_for(durably.stop(), 5)

    assert time.monotonic() - started < 0.5
    assert not durably.is_running


async def test_stop_with_default_timings_is_quick(db_url):
    durably = create_durably(db_url)  # polling 1 s, heartbeat 5 s
    try:
        await durably.init()
        await asyncio.sleep(0.1)
        started = time.monotonic()

        await asyncio.wait_for(durably.stop(), 5)

        assert time.monotonic() - started < 0.5
    finally:
        await durably.close(timeout=5)


async def test_stop_without_start_and_twice_is_harmless(durably):
    await asyncio.wait_for(durably.stop(), 1)
    await durably.start()
    await asyncio.wait_for(durably.stop(), 1)
    await asyncio.wait_for(durably.stop(), 1)
    assert not durably.is_running


async def test_stop_waits_for_a_running_run_which_completes(durably):
    entered = Gate()

    async def job(step, input):
        entered.set()
        await step.run("slow", asyncio.sleep, 0.3)
        await step.run("after", lambda: "after")
        return "finished"

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})
    await entered.wait(5)

    await asyncio.wait_for(durably.stop(), 5)

    final = await durably.get_run(run.id)
    assert (final.status, final.output) == (RunStatus.COMPLETED, "finished")
    assert [s.name for s in await durably.get_steps(run.id)] == ["slow", "after"]


async def test_stop_with_a_timeout_interrupts_a_long_run_and_a_new_engine_resumes_it(db_url):
    calls = collections.Counter()
    entered = Gate()

    async def first_step():
        calls["first"] += 1
        return "first result"

    async def long_step():
        calls["long"] += 1
        entered.set()
        if calls["long"] == 1:
            await asyncio.sleep(30)  # interrupted by stop(timeout)
        return "long result"

    async def job(step, input):
        first = await step.run("first", first_step)
        long = await step.run("long", long_step)
        return [first, long]

    definition = define_job(name="job", run=job)
    durably = create_durably(db_url, **FAST)
    try:
        durably.register(job=definition)
        await durably.start()
        run = await durably.trigger("job", {})
        await entered.wait(5)
        started = time.monotonic()

        await asyncio.wait_for(durably.stop(timeout=0.2), 5)

        assert time.monotonic() - started < 2
        interrupted = await durably.get_run(run.id)
        assert interrupted.status is RunStatus.PENDING
        assert [(s.name, s.status) for s in await durably.get_steps(run.id)] == [("first", "completed")]
    finally:
        await durably.close(timeout=5)

    successor = create_durably(db_url, **FAST)
    try:
        successor.register(job=definition)
        await successor.start()
        done = await wait_for_status(successor, run.id, *TERMINAL)
    finally:
        await successor.close(timeout=5)

    assert (done.status, done.output) == (RunStatus.COMPLETED, ["first result", "long result"])
    assert calls == {"first": 1, "long": 2}


async def test_stop_with_a_timeout_hands_back_a_run_whose_sync_step_stopped_early_on_the_signal(db_url):
    calls = collections.Counter()
    seen = {}

    def long_step(step):
        calls["long"] += 1
        if calls["long"] == 1:
            seen["stopped early"] = step.signal.wait(10)
            return "partial"
        return "whole"

    async def job(step, input):
        return await step.run("long", long_step, step)

    definition = define_job(name="job", run=job)
    durably = create_durably(db_url, **FAST)
    try:
        durably.register(job=definition)
        await durably.start()
        run = await durably.trigger("job", {})
        async with asyncio.timeout(5):
            while not calls["long"]:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(durably.stop(timeout=0.2), 5)
        interrupted = await durably.get_run(run.id)
        steps = await durably.get_steps(run.id)
    finally:
        await durably.close(timeout=5)

    successor = create_durably(db_url, **FAST)
    try:
        successor.register(job=definition)
        await successor.start()
        done = await wait_for_status(successor, run.id, *TERMINAL)
    finally:
        await successor.close(timeout=5)

    assert seen["stopped early"] is True
    assert interrupted.status is RunStatus.PENDING
    assert "completed" not in [s.status for s in steps if s.name == "long"]
    assert (done.status, done.output, calls["long"]) == (RunStatus.COMPLETED, "whole", 2)


async def test_an_engine_restarted_after_stop_picks_up_work_again(durably):
    durably.register(job=define_job(name="outcome", run=outcome_job))
    await durably.start()
    await durably.stop()
    await durably.start()

    run_id = await make_run(durably, "completed")

    assert (await durably.get_run(run_id)).status is RunStatus.COMPLETED


class WindingDown:
    """Step one ignores the cancel and keeps going until `release`; step two lasts longer than the
    stale threshold (0.5 s in FAST), so a run that loses its heartbeats would be recovered mid-step."""

    def __init__(self) -> None:
        self.entered = Gate()
        self.release = Gate()
        self.calls: collections.Counter[str] = collections.Counter()
        self.active = 0
        self.peak = 0

    def definition(self):
        async def one():
            self.calls["one"] += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.entered.set()
            try:
                await self.release.wait(5)
            finally:
                self.active -= 1
            return "one"

        async def two():
            self.calls["two"] += 1
            await asyncio.sleep(0.8)
            return "two"

        async def job(step, input):
            await step.run("one", one)
            await step.run("two", two)
            return "done"

        return define_job(name="winding", run=job)


async def cancel_and_retry_while_winding_down(durably: Durably, winding: WindingDown) -> str:
    run = await durably.trigger("winding", {})
    await winding.entered.wait(5)
    await durably.cancel(run.id)
    await durably.retry(run.id)
    return run.id


async def test_a_retried_run_whose_cancelled_execution_is_still_winding_down_is_not_executed_twice_at_once(db_url):
    winding = WindingDown()
    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 2})
    try:
        durably.register(job=winding.definition())
        await durably.start()
        await cancel_and_retry_while_winding_down(durably, winding)
        await asyncio.sleep(0.3)  # the retried run must wait for its first execution to end

        assert winding.peak == 1
    finally:
        winding.release.set()
        await durably.close(timeout=2)


async def test_a_retried_run_whose_cancelled_execution_was_still_winding_down_completes_once(db_url):
    winding = WindingDown()
    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 2})
    starts = collect(durably, "run:start")
    try:
        durably.register(job=winding.definition())
        await durably.start()
        run_id = await cancel_and_retry_while_winding_down(durably, winding)
        await asyncio.sleep(0.1)
        winding.release.set()

        done = await wait_for_status(durably, run_id, *TERMINAL, timeout=3)

        assert (done.status, done.output) == (RunStatus.COMPLETED, "done")
        assert winding.calls["two"] == 1
        assert len(starts) == 2
    finally:
        winding.release.set()
        await durably.close(timeout=2)


async def test_a_deleted_run_gets_no_log_lines_from_its_winding_down_execution(durably):
    entered = Gate()
    release = Gate()

    async def job(step, input):
        async def one():
            entered.set()
            await release.wait(5)
            step.log.info("written after the delete")
            return 1

        await step.run("one", one)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})
    await entered.wait(5)
    await durably.cancel(run.id)
    await durably.delete_run(run.id)

    release.set()
    await asyncio.sleep(0.3)

    assert await durably.get_run(run.id) is None
    assert await durably.get_steps(run.id) == []
    assert await durably.get_logs(run.id) == []


# -- heartbeats -----------------------------------------------------------------------------------
async def test_a_run_longer_than_the_stale_threshold_keeps_heartbeating_and_runs_once(durably):
    calls = collections.Counter()
    heartbeats = []
    starts = collect(durably, "run:start")

    async def job(step, input):
        async def long_step():
            calls["long"] += 1
            for _ in range(6):  # 1.2 s, against a 0.5 s stale threshold
                await asyncio.sleep(0.2)
                heartbeats.append((await durably.get_run(step.run_id)).heartbeat_at)
            return "long"

        return await step.run("long", long_step)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})

    done = await wait_for_status(durably, run.id, *TERMINAL)

    assert (done.status, done.output) == (RunStatus.COMPLETED, "long")
    assert calls == {"long": 1}
    assert len(starts) == 1
    assert heartbeats == sorted(heartbeats) and heartbeats[-1] > heartbeats[0]


async def test_a_sync_step_blocking_longer_than_the_stale_threshold_is_not_recovered(durably):
    calls = collections.Counter()
    starts = collect(durably, "run:start")

    def blocking():
        calls["blocking"] += 1
        time.sleep(1.0)  # against a 0.5 s stale threshold
        return "done"

    async def job(step, input):
        return await step.run("blocking", blocking)

    durably.register(job=define_job(name="job", run=job))
    await durably.start()
    run = await durably.trigger("job", {})

    done = await wait_for_status(durably, run.id, *TERMINAL)

    assert (done.status, done.output) == (RunStatus.COMPLETED, "done")
    assert calls == {"blocking": 1}
    assert len(starts) == 1
