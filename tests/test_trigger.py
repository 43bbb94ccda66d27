"""Triggering runs: input validation, stored input, idempotency keys, concurrency keys, batches,
`trigger_and_wait`, and how quickly and in what order the in-process worker picks runs up."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import FAST
from engine_helpers import Gate, query_db, wait_for_status
from pydantic import BaseModel, Field

from durably_reflex import (
    BatchItem,
    Durably,
    InvalidArgumentError,
    InvalidInputError,
    JobNotFoundError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    RunResult,
    RunStatus,
    WaitTimeoutError,
    create_durably,
    define_job,
)


class Row(BaseModel):
    name: str


class ImportInput(BaseModel):
    count: int = Field(ge=1)
    rows: list[Row] = []
    limit: int = 10
    label: str = "default"


class ImportOutput(BaseModel):
    imported: int
    label: str


async def import_rows(step, input: ImportInput) -> ImportOutput:
    imported = await step.run("import", lambda: input.count)
    return ImportOutput(imported=imported, label=input.label)


import_job = define_job(name="import", input=ImportInput, output=ImportOutput, run=import_rows)


async def wait_all_done(durably: Durably, run_ids, timeout: float = 5.0):
    return [
        await wait_for_status(
            durably, run_id, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, timeout=timeout
        )
        for run_id in run_ids
    ]


class Overlap:
    """Counts how many job executions are inside a section at once (per key). Jobs may run on
    several worker threads, so the counters are guarded by a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.order: list[str] = []

    def enter(self, key: str, tag: str = "") -> int:
        with self._lock:
            self.active[key] = self.active.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.active[key])
            self.order.append(f"start-{tag}")
            return self.active[key]

    def leave(self, key: str, tag: str = "") -> None:
        with self._lock:
            self.order.append(f"end-{tag}")
            self.active[key] -= 1

    async def hold(self, key: str, seconds: float, tag: str = "") -> None:
        self.enter(key, tag)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.leave(key, tag)


# -- validation -----------------------------------------------------------------------------------
async def test_invalid_input_raises_a_clear_error_naming_the_field(durably):
    durably.register(job=import_job)

    with pytest.raises(InvalidInputError) as raised:
        await durably.trigger("import", {"count": 0})

    message = str(raised.value)
    assert message.startswith("Invalid input: ")
    assert "count" in message
    assert raised.value.errors and raised.value.errors[0]["loc"] == ("count",)


async def test_invalid_nested_input_names_the_full_field_path(durably):
    durably.register(job=import_job)

    with pytest.raises(InvalidInputError, match=r"rows\.1\.name"):
        await durably.trigger("import", {"count": 1, "rows": [{"name": "ok"}, {}]})


async def test_invalid_input_creates_no_run(durably):
    durably.register(job=import_job)

    with pytest.raises(InvalidInputError):
        await durably.trigger("import", {"count": "many"})
    with pytest.raises(InvalidInputError):
        await durably.jobs.job.trigger({})

    assert await durably.get_runs() == []


async def test_invalid_input_is_a_value_error(durably):
    durably.register(job=import_job)

    with pytest.raises(ValueError):
        await durably.trigger("import", {"count": -5})


async def test_trigger_of_an_unknown_job_is_job_not_found(durably):
    with pytest.raises(JobNotFoundError, match="Job not found: missing"):
        await durably.trigger("missing", {})


async def test_trigger_returns_a_pending_run(durably):
    durably.register(job=import_job)

    run = await durably.trigger("import", {"count": 2})

    assert run.status is RunStatus.PENDING
    assert run.job_name == "import"
    assert run.step_count == 0
    assert run.output is None and run.error is None
    assert run.disposition == "created"  # not an existing run of the same key (see test_operations.py)
    stored = await durably.get_run(run.id)
    assert stored is not None and stored.model_dump() == run.model_dump(exclude={"disposition"})


async def test_stored_input_has_defaults_applied(durably):
    durably.register(job=import_job)

    run = await durably.trigger("import", {"count": 3})

    expected = {"count": 3, "rows": [], "limit": 10, "label": "default"}
    assert run.input == expected
    assert (await durably.get_run(run.id)).input == expected


async def test_trigger_accepts_an_instance_of_the_input_model(durably):
    durably.register(job=import_job)

    run = await durably.trigger("import", ImportInput(count=4, label="x"))

    assert run.input == {"count": 4, "rows": [], "limit": 10, "label": "x"}


async def test_the_job_receives_the_stored_input_as_its_model(durably):
    received = []

    async def record(step, input):
        received.append(input)

    durably.register(job=define_job(name="record", input=ImportInput, run=record))
    await durably.start()

    await durably.trigger_and_wait("record", {"count": 1, "rows": [{"name": "a"}]}, timeout=5)

    assert received == [ImportInput(count=1, rows=[Row(name="a")])]


# -- idempotency ----------------------------------------------------------------------------------
async def test_same_idempotency_key_returns_the_same_run(durably):
    durably.register(job=import_job)

    first = await durably.trigger("import", {"count": 1}, idempotency_key="order-1")
    second = await durably.trigger("import", {"count": 99}, idempotency_key="order-1")

    assert second.id == first.id
    assert second.input == first.input  # the original input, not the new one
    assert second.idempotency_key == "order-1"
    assert len(await durably.get_runs()) == 1


async def test_same_idempotency_key_returns_the_existing_run_in_any_status(durably):
    async def maybe_fail(step, input):
        if input["fail"]:
            raise RuntimeError("no")
        return {"ok": True}

    durably.register(job=define_job(name="maybe", run=maybe_fail))
    await durably.start()
    completed = await durably.trigger("maybe", {"fail": False}, idempotency_key="done")
    failed = await durably.trigger("maybe", {"fail": True}, idempotency_key="broken")
    await wait_all_done(durably, [completed.id, failed.id])

    again_completed = await durably.trigger("maybe", {"fail": True}, idempotency_key="done")
    again_failed = await durably.trigger("maybe", {"fail": False}, idempotency_key="broken")

    assert (again_completed.id, again_completed.status) == (completed.id, RunStatus.COMPLETED)
    assert again_completed.output == {"ok": True}
    assert (again_failed.id, again_failed.status) == (failed.id, RunStatus.FAILED)
    assert len(await durably.get_runs()) == 2


async def test_a_deduplicated_trigger_reports_the_existing_runs_real_step_count(durably):
    durably.register(job=import_job)
    await durably.start()
    first = await durably.trigger("import", {"count": 1}, idempotency_key="k")
    await wait_for_status(durably, first.id, RunStatus.COMPLETED)

    again = await durably.trigger("import", {"count": 1}, idempotency_key="k")

    assert again.step_count == 1


async def test_different_jobs_may_share_an_idempotency_key(durably):
    durably.register(job=import_job, other=define_job(name="other", run=import_rows))

    a = await durably.trigger("import", {"count": 1}, idempotency_key="shared")
    b = await durably.trigger("other", {"count": 1}, idempotency_key="shared")

    assert a.id != b.id
    assert {a.job_name, b.job_name} == {"import", "other"}


async def test_runs_without_idempotency_key_are_never_deduplicated(durably):
    durably.register(job=import_job)

    a = await durably.trigger("import", {"count": 1})
    b = await durably.trigger("import", {"count": 1})

    assert a.id != b.id


async def test_after_delete_the_idempotency_key_is_free_again(durably):
    durably.register(job=import_job)
    await durably.start()
    first = await durably.trigger("import", {"count": 1}, idempotency_key="once")
    await wait_for_status(durably, first.id, RunStatus.COMPLETED)

    await durably.delete_run(first.id)
    second = await durably.trigger("import", {"count": 2}, idempotency_key="once")

    assert second.id != first.id
    assert second.input["count"] == 2
    assert second.status is RunStatus.PENDING


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_a_blank_or_overlong_key_is_an_invalid_argument(durably, key):
    durably.register(job=import_job)

    with pytest.raises(InvalidArgumentError, match="idempotency_key"):
        await durably.trigger("import", {"count": 1}, idempotency_key=key)
    with pytest.raises(InvalidArgumentError, match="concurrency_key"):
        await durably.trigger("import", {"count": 1}, concurrency_key=key)
    assert await durably.get_runs() == []


# -- concurrency keys -----------------------------------------------------------------------------
async def test_runs_with_the_same_concurrency_key_never_overlap(db_url):
    overlap = Overlap()

    async def hold(step, input):
        await overlap.hold("user-1", 0.1, tag=str(input["n"]))

    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 4})
    try:
        durably.register(job=define_job(name="hold", run=hold))
        runs = [await durably.trigger("hold", {"n": n}, concurrency_key="user-1") for n in range(3)]
        await durably.start()
        done = await wait_all_done(durably, [run.id for run in runs])

        assert all(run.status is RunStatus.COMPLETED for run in done)
        assert overlap.peak["user-1"] == 1
        assert overlap.order == ["start-0", "end-0", "start-1", "end-1", "start-2", "end-2"]
    finally:
        await durably.close(timeout=5)


async def test_the_concurrency_key_is_shared_across_jobs(db_url):
    overlap = Overlap()

    async def hold(step, input):
        await overlap.hold("tenant", 0.1)

    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 4})
    try:
        durably.register(a=define_job(name="job-a", run=hold), b=define_job(name="job-b", run=hold))
        runs = [
            await durably.trigger("job-a", {}, concurrency_key="tenant"),
            await durably.trigger("job-b", {}, concurrency_key="tenant"),
        ]
        await durably.start()
        await wait_all_done(durably, [run.id for run in runs])

        assert overlap.peak["tenant"] == 1
    finally:
        await durably.close(timeout=5)


async def test_runs_with_different_concurrency_keys_run_concurrently(db_url):
    both_started = Gate()
    started = []

    async def meet(step, input):
        started.append(input["key"])
        if len(started) == 2:
            both_started.set()
        await both_started.wait(3)  # fails the run if the other never starts

    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 4})
    try:
        durably.register(job=define_job(name="meet", run=meet))
        runs = [await durably.trigger("meet", {"key": key}, concurrency_key=key) for key in ("a", "b")]
        await durably.start()
        done = await wait_all_done(durably, [run.id for run in runs])

        assert [(run.status, run.error) for run in done] == [(RunStatus.COMPLETED, None)] * 2
    finally:
        await durably.close(timeout=5)


async def test_a_keyed_run_waiting_for_its_key_does_not_block_other_runs(db_url):
    release = Gate()
    finished = []

    async def work(step, input):
        if input["blocker"]:
            await release.wait(5)
        finished.append(input["name"])

    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 2})
    try:
        durably.register(job=define_job(name="work", run=work))
        blocker = await durably.trigger("work", {"blocker": True, "name": "blocker"}, concurrency_key="k")
        waiting = await durably.trigger("work", {"blocker": False, "name": "waiting"}, concurrency_key="k")
        free = await durably.trigger("work", {"blocker": False, "name": "free"})
        await durably.start()

        await wait_for_status(durably, free.id, RunStatus.COMPLETED)
        assert (await durably.get_run(waiting.id)).status is RunStatus.PENDING
        release.set()
        await wait_all_done(durably, [blocker.id, waiting.id])
        assert finished == ["free", "blocker", "waiting"]
    finally:
        release.set()
        await durably.close(timeout=5)


# -- batch_trigger --------------------------------------------------------------------------------
async def test_batch_trigger_creates_pending_runs_in_item_order(durably):
    durably.register(job=import_job)

    runs = await durably.batch_trigger("import", [{"count": 1}, {"count": 2}, ImportInput(count=3)])

    assert [run.input["count"] for run in runs] == [1, 2, 3]
    assert all(run.status is RunStatus.PENDING for run in runs)
    assert all(run.input["limit"] == 10 for run in runs)  # defaults applied
    assert len({run.id for run in runs}) == 3
    assert len(await durably.get_runs()) == 3


async def test_batch_trigger_is_all_or_nothing_and_names_the_bad_index(durably):
    durably.register(job=import_job)

    with pytest.raises(InvalidInputError) as raised:
        await durably.batch_trigger("import", [{"count": 1}, {"count": 0}, {"count": 2}])

    assert str(raised.value).startswith("at index 1: Invalid input: ")
    assert "count" in str(raised.value)
    assert await durably.get_runs() == []


async def test_batch_trigger_names_the_index_even_for_a_single_item(durably):
    durably.register(job=import_job)

    with pytest.raises(InvalidInputError, match=r"^at index 0: Invalid input: "):
        await durably.batch_trigger("import", [{"count": 0}])


async def test_batch_trigger_with_bad_keys_creates_nothing(durably):
    durably.register(job=import_job)

    with pytest.raises(InvalidArgumentError, match=r"^at index 1: .*idempotency_key"):
        await durably.batch_trigger("import", [{"count": 1}, BatchItem({"count": 1}, idempotency_key="")])

    assert await durably.get_runs() == []


async def test_batch_trigger_honours_batch_item_keys(durably):
    durably.register(job=import_job)

    runs = await durably.batch_trigger(
        "import",
        [
            BatchItem({"count": 1}, idempotency_key="idem-1", concurrency_key="conc-1"),
            {"count": 2},
            BatchItem(ImportInput(count=3), concurrency_key="conc-3"),
        ],
    )

    assert [(run.idempotency_key, run.concurrency_key) for run in runs] == [
        ("idem-1", "conc-1"),
        (None, None),
        (None, "conc-3"),
    ]
    stored = await durably.get_run(runs[0].id)
    assert (stored.idempotency_key, stored.concurrency_key) == ("idem-1", "conc-1")


async def test_batch_trigger_returns_the_existing_run_for_a_known_idempotency_key(durably):
    durably.register(job=import_job)
    existing = await durably.trigger("import", {"count": 1}, idempotency_key="known")

    runs = await durably.batch_trigger(
        "import", [BatchItem({"count": 5}, idempotency_key="known"), BatchItem({"count": 6}, idempotency_key="new")]
    )

    assert runs[0].id == existing.id and runs[0].input["count"] == 1
    assert runs[1].id != existing.id
    assert len(await durably.get_runs()) == 2


async def test_batch_trigger_of_nothing_returns_an_empty_list(durably):
    durably.register(job=import_job)

    assert await durably.batch_trigger("import", []) == []
    assert await durably.jobs.job.batch_trigger([]) == []
    assert await durably.get_runs() == []


async def test_batch_trigger_through_a_handle_runs_every_item(durably):
    durably.register(job=import_job)
    await durably.start()

    runs = await durably.jobs.job.batch_trigger([{"count": n} for n in (1, 2, 3)])
    done = await wait_all_done(durably, [run.id for run in runs])

    assert [run.output["imported"] for run in done] == [1, 2, 3]


async def test_batch_trigger_of_an_unknown_job_is_job_not_found(durably):
    with pytest.raises(JobNotFoundError):
        await durably.batch_trigger("missing", [{}])


# -- trigger_and_wait -----------------------------------------------------------------------------
async def test_trigger_and_wait_returns_the_typed_output(durably):
    durably.register(job=import_job)
    await durably.start()

    result = await durably.trigger_and_wait("import", {"count": 7, "label": "csv"}, timeout=5)

    assert isinstance(result, RunResult)
    assert isinstance(result.output, ImportOutput)
    assert result.output == ImportOutput(imported=7, label="csv")
    run = await durably.get_run(result.id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"imported": 7, "label": "csv"}


async def test_trigger_and_wait_through_a_handle_passes_the_idempotency_key(durably):
    durably.register(job=import_job)
    await durably.start()

    result = await durably.jobs.job.trigger_and_wait({"count": 1}, idempotency_key="tw-1", timeout=5)

    assert (await durably.get_run(result.id)).idempotency_key == "tw-1"
    again = await durably.jobs.job.trigger_and_wait({"count": 2}, idempotency_key="tw-1", timeout=5)
    assert again.id == result.id and again.output.imported == 1


async def test_trigger_and_wait_raises_run_failed_with_the_message(durably):
    def explode():
        raise ValueError("row 3 is broken")

    async def failing(step, input):
        await step.run("parse", explode)

    durably.register(job=define_job(name="failing", run=failing))
    await durably.start()

    with pytest.raises(RunFailedError, match="^row 3 is broken$") as raised:
        await durably.trigger_and_wait("failing", {}, timeout=5)

    assert "explode" in raised.value.error_stack
    assert (await durably.get_run(raised.value.run_id)).status is RunStatus.FAILED


async def test_trigger_and_wait_raises_run_cancelled_when_the_run_is_cancelled(durably):
    started = Gate()

    async def slow(step, input):
        started.set()
        await step.run("wait", asyncio.sleep, 0.3)
        await step.run("never", lambda: None)

    durably.register(job=define_job(name="slow", run=slow))
    await durably.start()
    waiter = asyncio.create_task(durably.trigger_and_wait("slow", {}, timeout=5))
    await started.wait(5)

    runs = await durably.get_runs()
    await durably.cancel(runs[0].id)

    with pytest.raises(RunCancelledError):
        await asyncio.wait_for(waiter, 5)


async def test_trigger_and_wait_raises_run_cancelled_for_a_pending_run_cancelled_before_any_worker(durably):
    durably.register(job=import_job)
    waiter = asyncio.create_task(durably.trigger_and_wait("import", {"count": 1}, timeout=5))
    async with asyncio.timeout(5):
        while not (runs := await durably.get_runs()):
            await asyncio.sleep(0.01)

    await durably.cancel(runs[0].id)

    with pytest.raises(RunCancelledError):
        await asyncio.wait_for(waiter, 5)


async def test_trigger_and_wait_times_out_when_no_worker_runs(durably):
    durably.register(job=import_job)
    started = time.monotonic()

    with pytest.raises(WaitTimeoutError) as raised:
        await asyncio.wait_for(durably.trigger_and_wait("import", {"count": 1}, timeout=0.3), 5)

    assert 0.25 <= time.monotonic() - started < 2
    assert isinstance(raised.value, TimeoutError)
    assert "timeout" in str(raised.value)
    assert (await durably.get_run(raised.value.run_id)).status is RunStatus.PENDING  # the run keeps going


async def test_trigger_and_wait_validates_input_before_waiting(durably):
    durably.register(job=import_job)

    with pytest.raises(InvalidInputError):
        await asyncio.wait_for(durably.trigger_and_wait("import", {"count": 0}, timeout=1), 5)
    assert await durably.get_runs() == []


# -- worker pick-up -------------------------------------------------------------------------------
async def test_in_process_trigger_starts_at_once_despite_a_long_polling_interval(db_url):
    durably = create_durably(db_url, polling_interval=30.0)
    try:
        durably.register(job=import_job)
        await durably.init()
        await asyncio.sleep(0.1)  # the worker is now asleep for its 30 s poll
        started = time.monotonic()

        result = await asyncio.wait_for(durably.trigger_and_wait("import", {"count": 1}), 5)

        assert result.output.imported == 1
        assert time.monotonic() - started < 2
    finally:
        await durably.close(timeout=5)


async def test_a_retry_in_process_starts_at_once_despite_a_long_polling_interval(db_url):
    attempts = []

    async def flaky(step, input):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return {"attempts": len(attempts)}

    durably = create_durably(db_url, polling_interval=30.0)
    try:
        durably.register(job=define_job(name="flaky", run=flaky))
        await durably.start()
        run = await durably.trigger("flaky", {})
        await wait_for_status(durably, run.id, RunStatus.FAILED, timeout=2)
        started = time.monotonic()

        await durably.retry(run.id)
        done = await wait_for_status(durably, run.id, RunStatus.COMPLETED, timeout=5)

        assert done.output == {"attempts": 2}
        assert time.monotonic() - started < 2
    finally:
        await durably.close(timeout=5)


async def test_runs_execute_in_fifo_order_with_one_slot(durably):
    order = []
    overlap = Overlap()

    async def record(step, input):
        order.append(input["n"])
        await overlap.hold("all", 0.01)

    durably.register(job=define_job(name="record", run=record))
    runs = [await durably.trigger("record", {"n": n}) for n in range(5)]
    await durably.start()
    await wait_all_done(durably, [run.id for run in runs])

    assert order == [0, 1, 2, 3, 4]
    assert overlap.peak["all"] == 1


async def test_runs_triggered_in_one_batch_execute_in_item_order(durably):
    order = []

    async def record(step, input):
        order.append(input["n"])

    durably.register(job=define_job(name="record", run=record))
    runs = await durably.batch_trigger("record", [{"n": n} for n in range(5)])
    await durably.start()
    await wait_all_done(durably, [run.id for run in runs])

    assert order == [0, 1, 2, 3, 4]


async def test_max_concurrent_runs_three_really_runs_three_at_once(db_url):
    overlap = Overlap()
    three_running = Gate()

    async def hold(step, input):
        if overlap.enter("all") == 3:
            three_running.set()
        try:
            await three_running.wait(3)  # the run fails if three never run together
            await asyncio.sleep(0.05)
        finally:
            overlap.leave("all")

    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 3})
    try:
        durably.register(job=define_job(name="hold", run=hold))
        runs = [await durably.trigger("hold", {"n": n}) for n in range(5)]
        await durably.start()
        done = await wait_all_done(durably, [run.id for run in runs])

        assert [(run.status, run.error) for run in done] == [(RunStatus.COMPLETED, None)] * 5
        assert overlap.peak["all"] == 3
    finally:
        await durably.close(timeout=5)


async def test_blocking_synchronous_steps_of_different_runs_overlap(db_url):
    """The slots share one runner thread, but a synchronous step function that blocks runs on a
    thread of its own: four runs sleeping 0.3 s in a step sleep at the same time."""
    spans: list[tuple[float, float]] = []

    def nap() -> None:
        began = time.monotonic()
        time.sleep(0.3)
        spans.append((began, time.monotonic()))

    async def napper(step, input):
        await step.run("nap", nap)

    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 4})
    try:
        durably.register(job=define_job(name="napper", run=napper))
        runs = await durably.batch_trigger("napper", [{}] * 4)
        await durably.start()
        done = await wait_all_done(durably, [run.id for run in runs])

        assert [run.status for run in done] == [RunStatus.COMPLETED] * 4
        assert max(began for began, _ in spans) < min(ended for _, ended in spans)  # all four at once
    finally:
        await durably.close(timeout=5)


async def test_a_stopped_worker_leaves_new_runs_pending_until_started_again(durably):
    durably.register(job=import_job)
    await durably.start()
    await durably.stop()

    run = await durably.trigger("import", {"count": 1})
    # No runner thread is left to claim it (the trigger's wake-up found no worker).
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("durably-runner")]
    assert (await durably.get_run(run.id)).status is RunStatus.PENDING

    await durably.start()
    assert (await wait_for_status(durably, run.id, RunStatus.COMPLETED)).output["imported"] == 1


async def test_concurrent_triggers_with_one_idempotency_key_create_one_run(durably):
    durably.register(job=import_job)

    runs = await asyncio.wait_for(
        asyncio.gather(*(durably.trigger("import", {"count": n}, idempotency_key="same") for n in range(1, 6))), 5
    )

    assert len({run.id for run in runs}) == 1
    assert len(await durably.get_runs()) == 1


async def test_batch_trigger_with_a_key_repeated_inside_the_batch_creates_one_run_for_it(durably):
    durably.register(job=import_job)

    runs = await durably.batch_trigger(
        "import",
        [BatchItem({"count": 1}, idempotency_key="dup"), {"count": 2}, BatchItem({"count": 3}, idempotency_key="dup")],
    )

    assert runs[0].id == runs[2].id
    assert runs[2].input["count"] == 1
    assert len(await durably.get_runs()) == 2


async def test_a_deduplicated_trigger_emits_no_second_run_trigger(durably):
    durably.register(job=import_job)
    events = []
    durably.on("run:trigger", events.append)

    first = await durably.trigger("import", {"count": 1}, idempotency_key="k")
    await durably.trigger("import", {"count": 2}, idempotency_key="k")

    assert [(e["runId"], e["payload"]["count"]) for e in events] == [(first.id, 1)]


async def test_wait_for_run_of_an_unknown_run_is_run_not_found(durably):
    with pytest.raises(RunNotFoundError):
        await asyncio.wait_for(durably.wait_for_run("no-such-run", timeout=1), 5)


async def test_wait_for_run_of_an_already_completed_run_returns_at_once(durably):
    durably.register(job=import_job)
    await durably.start()
    result = await durably.trigger_and_wait("import", {"count": 2}, timeout=5)
    await durably.stop()

    again = await asyncio.wait_for(durably.wait_for_run(result.id, timeout=1), 5)

    assert again == result


async def test_a_freed_slot_is_refilled_at_once_despite_a_long_polling_interval(db_url):
    release = Gate()
    finished_at = {}
    running = {"now": 0, "peak": 0}

    async def work(step, input):
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        if input["first"]:
            await release.wait(5)
        finished_at[input["first"]] = time.monotonic()
        running["now"] -= 1

    durably = create_durably(db_url, polling_interval=30.0)
    try:
        durably.register(job=define_job(name="work", run=work))
        await durably.start()
        first = await durably.trigger("work", {"first": True})
        await wait_for_status(durably, first.id, RunStatus.RUNNING)
        second = await durably.trigger("work", {"first": False})  # waits for the only slot
        assert (await durably.get_run(second.id)).status is RunStatus.PENDING

        release.set()
        await wait_for_status(durably, second.id, RunStatus.COMPLETED, timeout=3)

        assert running["peak"] == 1  # the second never ran beside the first: it waited for the slot
        assert finished_at[False] - finished_at[True] < 1
    finally:
        release.set()
        await durably.close(timeout=5)


async def test_a_stored_input_the_worker_cannot_parse_fails_that_run_and_the_worker_goes_on(db_url):
    async def job(step, input):
        return "ran"

    loose = define_job(name="job", run=job)  # the producer's version accepts anything
    strict = define_job(name="job", input=ImportInput, run=job)
    producer = create_durably(db_url, **FAST)
    worker = create_durably(db_url, **FAST)
    try:
        producer.register(job=loose)
        bad = await producer.trigger("job", {"unexpected": True})
        good = await producer.trigger("job", {"count": 1})
        worker.register(job=strict)
        await worker.start()

        bad_done = await wait_for_status(worker, bad.id, RunStatus.FAILED, RunStatus.COMPLETED)
        good_done = await wait_for_status(worker, good.id, RunStatus.FAILED, RunStatus.COMPLETED)

        assert bad_done.status is RunStatus.FAILED
        assert bad_done.error.startswith("Invalid input: ") and "count" in bad_done.error
        assert (good_done.status, good_done.output) == (RunStatus.COMPLETED, "ran")
    finally:
        await worker.close(timeout=5)
        await producer.close(timeout=5)


async def test_a_corrupt_pending_row_does_not_block_the_other_runs(durably, db_url):
    durably.register(job=import_job)
    corrupt = await durably.trigger("import", {"count": 1})
    query_db(db_url, "UPDATE durably_runs SET input = '{not json' WHERE id = ?", corrupt.id)  # damaged by hand
    good = await durably.trigger("import", {"count": 1})
    await durably.start()

    try:
        done = await wait_for_status(durably, good.id, RunStatus.COMPLETED, RunStatus.FAILED, timeout=2)
    except TimeoutError:
        done = await durably.get_run(good.id)
    finally:
        await durably.stop()  # quiet the worker before reporting (its error logs race pytest's reporting)

    assert done.status is RunStatus.COMPLETED


class AliasedInput(BaseModel):
    row_count: int = Field(alias="rowCount")


async def test_an_input_model_with_aliases_round_trips_through_storage(durably):
    async def count(step, input: AliasedInput):
        return {"rows": input.row_count}

    durably.register(job=define_job(name="aliased", input=AliasedInput, run=count))
    await durably.start()
    result = await durably.trigger_and_wait("aliased", {"rowCount": 3}, timeout=5)
    assert result.output == {"rows": 3}
    assert (await durably.get_run(result.id)).input == {"rowCount": 3}


# -- tenant scopes --------------------------------------------------------------------------------
async def test_an_idempotency_key_is_per_scope(durably: Durably):
    durably.register(job=import_job)
    first = await durably.trigger("import", {"count": 1}, idempotency_key="k", scope="tenant-1")

    other = await durably.trigger("import", {"count": 2}, idempotency_key="k", scope="tenant-2")
    unscoped = await durably.trigger("import", {"count": 3}, idempotency_key="k")
    again = await durably.trigger("import", {"count": 4}, idempotency_key="k", scope="tenant-1")

    assert len({first.id, other.id, unscoped.id}) == 3
    assert (other.input, unscoped.input) == ({"count": 2, "rows": [], "limit": 10, "label": "default"},
                                             {"count": 3, "rows": [], "limit": 10, "label": "default"})  # fmt: skip
    assert again.id == first.id


async def test_a_concurrency_key_held_in_one_scope_does_not_hold_another_scopes_run(db_url):
    release = Gate()

    async def hold(step, input):
        if input["wait"]:
            await release.wait(10)

    durably = create_durably(db_url, **{**FAST, "max_concurrent_runs": 4})
    try:
        durably.register(job=define_job(name="hold", run=hold))
        await durably.start()
        holder = await durably.trigger("hold", {"wait": True}, concurrency_key="k", scope="tenant-1")
        await wait_for_status(durably, holder.id, RunStatus.RUNNING)
        same_scope = await durably.trigger("hold", {"wait": False}, concurrency_key="k", scope="tenant-1")

        other_scope = await durably.trigger("hold", {"wait": False}, concurrency_key="k", scope="tenant-2")

        await wait_for_status(durably, other_scope.id, RunStatus.COMPLETED)
        assert (await durably.get_run(same_scope.id)).status is RunStatus.PENDING  # still behind the holder
        release.set()
        await wait_for_status(durably, same_scope.id, RunStatus.COMPLETED)
    finally:
        release.set()
        await durably.close(timeout=5)
