"""Durable time and waiting in the engine, on both backends: delayed runs, priority, `step.sleep`,
`step.wait_for_signal` and `durably.signal`. A waiting run is `pending` (what a Durably 0.7 client
knows) with `waiting_for` saying for what and until when, and holds no worker slot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from durably_reflex import (
    BatchItem,
    Durably,
    InvalidArgumentError,
    JobDefinition,
    NonRetryableError,
    Retry,
    RunNotFoundError,
    RunStateError,
    SignalConflictError,
    SignalTimeoutError,
    define_job,
)
from tests.engine_helpers import collect, query_db, wait_for_status


class Empty(BaseModel):
    pass


class Approval(BaseModel):
    approved: bool
    by: str


async def _done(step, payload: Empty) -> str:
    return "done"


async def _nap(step, payload: Empty) -> str:
    await step.run("before", lambda: "before")
    await step.sleep("nap", 0.3)
    return await step.run("after", lambda: "after")


async def _approval(step, payload: Empty) -> dict:
    await step.run("ask", lambda: "asked")
    decision = await step.wait_for_signal("approval", model=Approval)
    return {"approved": decision.approved, "by": decision.by}


async def _approval_with_deadline(step, payload: Empty) -> str:
    try:
        await step.wait_for_signal("approval", timeout=0.3)
    except SignalTimeoutError:
        return await step.run("escalate", lambda: "escalated")
    return "approved"


ROOT = Path(__file__).resolve().parent.parent
DONE = define_job(name="done", input=Empty, run=_done)
NAP = define_job(name="nap", input=Empty, run=_nap)
APPROVAL = define_job(name="approval", input=Empty, run=_approval)
DEADLINE = define_job(name="deadline", input=Empty, run=_approval_with_deadline)


@pytest.fixture
async def engine(durably: Durably) -> Durably:
    durably.register(done=DONE, nap=NAP, approval=APPROVAL, deadline=DEADLINE)
    await durably.start()
    return durably


# -- delayed runs and priority ---------------------------------------------------------------------
async def test_a_delayed_run_waits_pending_until_its_time_then_runs(engine: Durably) -> None:
    before = int(time.time() * 1000)  # epoch ms, as the engine counts
    run = await engine.jobs.done.trigger({}, delay=0.4)
    assert run.status == "pending"
    assert run.waiting_for is not None and run.waiting_for.kind == "delay"
    assert run.waiting_for.until is not None and ms(run.waiting_for.until) >= before + 400
    done = await wait_for_status(engine, run.id, "completed", timeout=10)
    assert done.started_at is not None and ms(done.started_at) >= before + 400
    assert done.waiting_for is None


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


async def test_run_at_in_the_past_runs_at_once_and_naive_or_conflicting_times_are_refused(engine: Durably) -> None:
    run = await engine.jobs.done.trigger({}, run_at=datetime.now(UTC) - timedelta(minutes=1))
    assert run.waiting_for is None
    await wait_for_status(engine, run.id, "completed", timeout=10)
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        await engine.jobs.done.trigger({}, run_at=datetime.now())
    with pytest.raises(InvalidArgumentError, match="delay or run_at"):
        await engine.jobs.done.trigger({}, delay=1, run_at=datetime.now(UTC))
    with pytest.raises(InvalidArgumentError, match="delay must be"):
        await engine.jobs.done.trigger({}, delay=-1)
    with pytest.raises(InvalidArgumentError, match="priority"):
        await engine.jobs.done.trigger({}, priority=10**9)


async def test_higher_priority_runs_go_first_and_equal_ones_in_order(durably: Durably) -> None:
    durably.register(done=DONE)
    runs = await durably.batch_trigger(
        "done",
        [BatchItem({}, priority=0), BatchItem({}, priority=5), BatchItem({}, priority=0), BatchItem({}, priority=9)],
    )
    started = collect(durably, "run:start")
    await durably.start()
    for run in runs:
        await wait_for_status(durably, run.id, "completed", timeout=10)
    order = [event["runId"] for event in started]
    assert order == [runs[3].id, runs[1].id, runs[0].id, runs[2].id]


# -- sleep -----------------------------------------------------------------------------------------
async def test_a_sleeping_run_is_pending_until_its_wake_time_and_holds_no_slot(engine: Durably) -> None:
    waits = collect(engine, "run:wait")
    napping = await engine.jobs.nap.trigger({})
    await until_waiting(engine, napping.id, "sleep")  # claimed, then back to pending (not still new)
    asleep = await engine.get_run(napping.id)
    assert asleep is not None and asleep.waiting_for is not None
    assert (asleep.waiting_for.kind, asleep.waiting_for.name) == ("sleep", "nap")
    assert asleep.step_count == 1  # "before"
    # The only slot is free: another run completes while the first one sleeps.
    other = await engine.jobs.done.trigger({})
    await wait_for_status(engine, other.id, "completed", timeout=10)
    assert (await engine.get_run(napping.id)).status == "pending"  # type: ignore[union-attr]
    done = await wait_for_status(engine, napping.id, "completed", timeout=10)
    assert done.output == "after"
    steps = await engine.get_steps(napping.id)
    assert [(step.name, step.status) for step in steps] == [
        ("before", "completed"),
        ("nap", "completed"),
        ("after", "completed"),
    ]
    nap = steps[1]
    assert nap.completed_at is not None and (nap.completed_at - nap.started_at).total_seconds() >= 0.3
    assert [event["waitingFor"]["kind"] for event in waits] == ["sleep"]


async def test_a_sleep_keeps_its_deadline_when_the_run_is_executed_again(engine: Durably, db_url: str) -> None:
    napping = await engine.jobs.nap.trigger({})
    await until_waiting(engine, napping.id, "sleep")
    (until,) = query_db(db_url, "SELECT until FROM durably_waits WHERE run_id = ? AND name = 'nap'", napping.id)[0]
    # Make the run ready at once, as a recovery or a spurious wake would: it sleeps on to the same deadline.
    query_db(db_url, "UPDATE durably_runs SET ready_at = 0 WHERE id = ?", napping.id)
    engine._worker.wake()
    done = await wait_for_status(engine, napping.id, "completed", timeout=10)
    assert done.completed_at is not None and done.completed_at.timestamp() * 1000 >= until
    assert query_db(db_url, "SELECT until FROM durably_waits WHERE run_id = ?", napping.id) == [(until,)]


# -- signals ---------------------------------------------------------------------------------------
async def test_a_signal_resumes_a_run_waiting_for_it_with_its_payload(engine: Durably) -> None:
    signals = collect(engine, "run:signal")
    run = await engine.jobs.approval.trigger({})
    await until_waiting(engine, run.id, "signal")
    waiting = await engine.get_run(run.id)
    assert waiting is not None and waiting.status == "pending" and waiting.waiting_for is not None
    assert waiting.waiting_for.name == "approval" and waiting.waiting_for.until is None
    await engine.signal(run.id, "approval", {"approved": True, "by": "ada"})
    done = await wait_for_status(engine, run.id, "completed", timeout=10)
    assert done.output == {"approved": True, "by": "ada"}
    assert [(event["runId"], event["name"]) for event in signals] == [(run.id, "approval")]


async def test_a_signal_sent_before_the_run_waits_is_kept(durably: Durably) -> None:
    durably.register(approval=APPROVAL)
    run = await durably.jobs.approval.trigger({})  # the worker is not started yet
    await durably.signal(run.id, "approval", {"approved": False, "by": "bob"})
    await durably.start()
    done = await wait_for_status(durably, run.id, "completed", timeout=10)
    assert done.output == {"approved": False, "by": "bob"}


async def test_a_wait_without_a_signal_times_out_with_an_error_the_job_can_catch(engine: Durably) -> None:
    run = await engine.jobs.deadline.trigger({})
    done = await wait_for_status(engine, run.id, "completed", timeout=10)
    assert done.output == "escalated"
    steps = {step.name: step for step in await engine.get_steps(run.id)}
    assert steps["approval"].output == {"timedOut": True}
    # A signal after the deadline is kept but changes nothing: the run is finished.
    with pytest.raises(RunStateError):
        await engine.signal(run.id, "approval", {})


async def test_a_second_signal_to_one_wait_is_refused_and_the_first_stands(durably: Durably) -> None:
    durably.register(approval=APPROVAL)
    run = await durably.jobs.approval.trigger({})  # no worker yet: the run stays where it is
    await durably.signal(run.id, "approval", {"approved": True, "by": "ada"})
    with pytest.raises(SignalConflictError, match="already sent"):
        await durably.signal(run.id, "approval", {"approved": False, "by": "eve"})
    await durably.start()
    done = await wait_for_status(durably, run.id, "completed", timeout=10)
    assert done.output == {"approved": True, "by": "ada"}


async def test_signals_to_unknown_or_finished_runs_are_errors(engine: Durably) -> None:
    with pytest.raises(RunNotFoundError):
        await engine.signal("no-such-run", "approval", {})
    run = await engine.jobs.done.trigger({})
    await wait_for_status(engine, run.id, "completed", timeout=10)
    with pytest.raises(RunStateError, match="Cannot signal completed run"):
        await engine.signal(run.id, "approval", {})


async def test_a_cancelled_waiting_run_stays_cancelled_and_a_retry_waits_again(engine: Durably) -> None:
    run = await engine.jobs.approval.trigger({})
    await until_waiting(engine, run.id, "signal")
    cancelled = await engine.cancel(run.id)
    assert cancelled.status == "cancelled" and cancelled.waiting_for is None
    await engine.retry(run.id)
    await until_waiting(engine, run.id, "signal")
    await engine.signal(run.id, "approval", {"approved": True, "by": "ada"})
    await wait_for_status(engine, run.id, "completed", timeout=10)


async def until_waiting(durably: Durably, run_id: str, kind: str, timeout: float = 10.0) -> None:
    """Until the run is pending and waiting for `kind`."""
    async with asyncio.timeout(timeout):
        while True:
            run = await durably.get_run(run_id)
            if (
                run is not None
                and run.status == "pending"
                and run.waiting_for is not None
                and run.waiting_for.kind == kind
            ):
                return
            await asyncio.sleep(0.01)


# -- retries ---------------------------------------------------------------------------------------
class Flaky:
    """A step function that fails its first `failures` calls (thread-safe enough: one run at a time)."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[float] = []

    def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error(f"attempt {len(self.calls)} failed")
        return "ok"


def flaky_job(name: str, flaky: Flaky, retry: Retry | None, step_retry: Retry | None = None) -> JobDefinition:
    async def run(step, payload: Empty) -> str:
        if step_retry is not None:
            return await step.run("call", flaky, retry=step_retry)
        return await step.run("call", flaky)

    return define_job(name=name, input=Empty, run=run, retry=retry)


QUICK_RETRY = Retry(max_attempts=3, initial_delay=0.1, backoff=2.0, jitter=0)


async def test_a_failing_step_is_retried_with_backoff_and_every_attempt_is_recorded(durably: Durably) -> None:
    flaky = Flaky(failures=2)
    durably.register(flaky=flaky_job("flaky", flaky, QUICK_RETRY))
    waits = collect(durably, "run:wait")
    await durably.start()
    run = await durably.jobs.flaky.trigger({})
    done = await wait_for_status(durably, run.id, "completed", "failed", timeout=10)
    assert done.status == "completed" and done.output == "ok"
    steps = await durably.get_steps(run.id)
    assert [(step.name, step.status, step.error) for step in steps] == [
        ("call", "failed", "attempt 1 failed"),
        ("call", "failed", "attempt 2 failed"),
        ("call", "completed", None),
    ]
    assert [(event["waitingFor"]["kind"], event["waitingFor"]["attempt"]) for event in waits] == [
        ("retry", 1),
        ("retry", 2),
    ]
    first_gap, second_gap = flaky.calls[1] - flaky.calls[0], flaky.calls[2] - flaky.calls[1]
    assert first_gap >= 0.1 and second_gap >= 0.2  # 0.1 s, then twice that


async def test_a_step_that_fails_every_attempt_fails_the_run_and_a_manual_retry_starts_a_new_budget(
    durably: Durably,
) -> None:
    flaky = Flaky(failures=4)
    durably.register(flaky=flaky_job("flaky", flaky, QUICK_RETRY))
    await durably.start()
    run = await durably.jobs.flaky.trigger({})
    failed = await wait_for_status(durably, run.id, "failed", timeout=10)
    assert failed.error == "attempt 3 failed" and len(flaky.calls) == 3
    await durably.retry(run.id)
    done = await wait_for_status(durably, run.id, "completed", timeout=10)
    assert done.output == "ok" and len(flaky.calls) == 5  # attempt 4 failed, attempt 5 succeeded


async def test_non_retryable_errors_fail_at_once(durably: Durably) -> None:
    class BadRequest(ValueError):
        pass

    marked, typed = Flaky(failures=5, error=NonRetryableError), Flaky(failures=5, error=BadRequest)
    durably.register(
        marked=flaky_job("marked", marked, QUICK_RETRY),
        typed=flaky_job("typed", typed, Retry(max_attempts=3, initial_delay=0.1, non_retryable=(BadRequest,))),
    )
    await durably.start()
    for job, flaky in (("marked", marked), ("typed", typed)):
        run = await durably.trigger(job, {})
        await wait_for_status(durably, run.id, "failed", timeout=10)
        assert len(flaky.calls) == 1


async def test_a_step_can_override_the_jobs_retry_policy(durably: Durably) -> None:
    flaky = Flaky(failures=1)
    durably.register(flaky=flaky_job("flaky", flaky, QUICK_RETRY, step_retry=Retry(max_attempts=1)))
    await durably.start()
    run = await durably.jobs.flaky.trigger({})
    await wait_for_status(durably, run.id, "failed", timeout=10)
    assert len(flaky.calls) == 1


# -- timeouts --------------------------------------------------------------------------------------
async def test_a_step_that_runs_too_long_fails_with_a_timeout_and_frees_its_slot(durably: Durably) -> None:
    release = threading.Event()

    async def slow_async(step, payload: Empty) -> None:
        await step.run("slow", asyncio.sleep, 30, timeout=0.2)

    async def slow_sync(step, payload: Empty) -> None:
        await step.run("slow", release.wait, 30, timeout=0.2)

    durably.register(
        slow_async=define_job(name="slow-async", input=Empty, run=slow_async),
        slow_sync=define_job(name="slow-sync", input=Empty, run=slow_sync),
        done=DONE,
    )
    await durably.start()
    try:
        for job in ("slow-async", "slow-sync"):
            run = await durably.trigger(job, {})
            failed = await wait_for_status(durably, run.id, "failed", timeout=10)
            assert failed.error == 'Step "slow" timed out after 0.2s'
        # The sync function still waits on its thread; the only slot is free all the same.
        other = await durably.jobs.done.trigger({})
        await wait_for_status(durably, other.id, "completed", timeout=10)
    finally:
        release.set()


async def test_a_run_longer_than_its_jobs_timeout_fails_and_waits_count(durably: Durably) -> None:
    async def slow(step, payload: Empty) -> None:
        await step.run("slow", asyncio.sleep, 30)

    async def waits(step, payload: Empty) -> None:
        await step.wait_for_signal("never")

    durably.register(
        slow=define_job(name="slow", input=Empty, run=slow, timeout=0.3),
        waits=define_job(name="waits", input=Empty, run=waits, timeout=0.3),
    )
    await durably.start()
    for job in ("slow", "waits"):
        run = await durably.trigger(job, {})
        failed = await wait_for_status(durably, run.id, "failed", timeout=10)
        assert failed.error == "Run timed out after 0.3s"
        assert failed.completed_at is not None and failed.started_at is not None
        assert (failed.completed_at - failed.started_at).total_seconds() >= 0.3


# -- a sleep across a SIGKILL ------------------------------------------------------------------------
async def _long_nap(step, payload: Empty) -> str:
    await step.sleep("nap", 4)
    return await step.run("after", lambda: "after")


LONG_NAP = define_job(name="long-nap", input=Empty, run=_long_nap)
WORKER_CHILD = """
import asyncio, sys
from tests.test_waits import LONG_NAP
from durably_reflex import create_durably

async def main():
    durably = create_durably(sys.argv[1], polling_interval=0.2).register(nap=LONG_NAP)
    await durably.init()
    print("ready", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_a_sleep_survives_a_killed_worker_and_its_clock_does_not_restart(durably: Durably, db_url: str) -> None:
    durably.register(nap=LONG_NAP)  # this engine triggers and reads; worker processes run the job
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def worker() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER_CHILD, db_url],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    first = worker()
    second = None
    try:
        assert first.stdout is not None and await asyncio.to_thread(first.stdout.readline) == "ready\n"
        run = await durably.jobs.nap.trigger({})
        await until_waiting(durably, run.id, "sleep")
        asleep = await durably.get_run(run.id)
        assert asleep is not None and asleep.waiting_for is not None and asleep.waiting_for.until is not None
        deadline = ms(asleep.waiting_for.until)
        first.kill()  # SIGKILL while the run sleeps
        first.wait(10)
        second = worker()  # it finds the run pending, ready at the first deadline
        done = await wait_for_status(durably, run.id, "completed", timeout=30)
        # A clock restarted by the new execution would end 4 s after the deadline.
        assert done.completed_at is not None and deadline <= ms(done.completed_at) < deadline + 3000
    finally:
        for child in (first, second):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait(10)
