"""Defining and registering jobs: `define_job` (function and decorator forms), `register`, `jobs.<key>`
and `get_job`. A definition only packages the job; the registry is keyed by the job's real name."""

from __future__ import annotations

import asyncio

import pytest
from conftest import FAST
from engine_helpers import wait_for_status
from pydantic import BaseModel

from durably_reflex import (
    JobDefinition,
    JobDefinitionError,
    JobHandle,
    JobNotFoundError,
    RunStatus,
    create_durably,
    define_job,
)


class Numbers(BaseModel):
    count: int


class Total(BaseModel):
    total: int


async def add_up(step, input: Numbers) -> Total:
    value = await step.run("add", lambda: input.count + 1)
    return Total(total=value)


# -- define_job -----------------------------------------------------------------------------------
def test_define_job_function_form_packages_name_models_and_function():
    job = define_job(name="add-up", input=Numbers, output=Total, run=add_up)

    assert isinstance(job, JobDefinition)
    assert job.name == "add-up"
    assert job.input is Numbers
    assert job.output is Total
    assert job.run is add_up


def test_define_job_decorator_form_returns_a_definition():
    @define_job(name="decorated", input=Numbers)
    async def decorated(step, input):
        return None

    assert isinstance(decorated, JobDefinition)
    assert decorated.name == "decorated"
    assert decorated.input is Numbers
    assert decorated.output is None


def test_define_job_without_models_is_allowed():
    job = define_job(name="bare", run=add_up)

    assert job.input is None and job.output is None


def test_define_job_rejects_a_sync_run_function():
    def not_async(step, input):
        return 1

    with pytest.raises(JobDefinitionError, match="async"):
        define_job(name="sync-job", run=not_async)


def test_define_job_decorator_rejects_a_sync_run_function():
    with pytest.raises(JobDefinitionError, match="async"):

        @define_job(name="sync-job")
        def not_async(step, input):
            return 1


@pytest.mark.parametrize("name", ["", "   ", None, 42])
def test_define_job_rejects_a_missing_or_blank_name(name):
    with pytest.raises(JobDefinitionError, match="name"):
        define_job(name=name, run=add_up)


@pytest.mark.parametrize("role", ["input", "output"])
@pytest.mark.parametrize("model", [dict, {"count": int}, "Numbers", Numbers(count=1)])
def test_define_job_rejects_a_model_that_is_not_a_pydantic_class(role, model):
    with pytest.raises(JobDefinitionError, match=role):
        define_job(name="bad-model", run=add_up, **{role: model})


def test_bad_definitions_are_job_definition_errors_and_value_errors():
    with pytest.raises(ValueError):
        define_job(name="", run=add_up)


# -- register -------------------------------------------------------------------------------------
async def test_register_returns_the_engine_for_chaining(durably):
    first = define_job(name="first", run=add_up)
    second = define_job(name="second", run=add_up)

    returned = durably.register(a=first).register(b=second)

    assert returned is durably
    assert set(durably.jobs) == {"a", "b"}


async def test_register_exposes_a_handle_per_key(durably):
    job = define_job(name="add-up", input=Numbers, output=Total, run=add_up)
    durably.register(adder=job)

    handle = durably.jobs.adder
    assert isinstance(handle, JobHandle)
    assert handle.name == "add-up"
    assert handle.definition is job
    assert durably.jobs["adder"] is handle
    for method in ("trigger", "trigger_and_wait", "batch_trigger", "get_run", "get_runs"):
        assert callable(getattr(handle, method))


async def test_register_same_definition_twice_gives_the_same_handle(durably):
    job = define_job(name="add-up", input=Numbers, run=add_up)

    durably.register(one=job)
    durably.register(two=job, one=job)

    assert durably.jobs.one is durably.jobs.two
    assert durably.get_job("add-up") is durably.jobs.one


async def test_register_a_different_definition_with_a_taken_name_is_rejected(durably):
    original = define_job(name="add-up", input=Numbers, run=add_up)
    impostor = define_job(name="add-up", input=Numbers, run=add_up)
    durably.register(original=original)

    with pytest.raises(JobDefinitionError, match='Job "add-up" is already registered with a different definition'):
        durably.register(impostor=impostor)

    assert durably.get_job("add-up").definition is original


async def test_register_rejects_something_that_is_not_a_job_definition(durably):
    with pytest.raises(JobDefinitionError, match="define_job"):
        durably.register(oops=add_up)


async def test_jobs_attribute_for_an_unregistered_key_is_an_attribute_error_naming_the_known_keys(durably):
    durably.register(adder=define_job(name="add-up", run=add_up))

    with pytest.raises(AttributeError) as raised:
        durably.jobs.subtractor

    assert "subtractor" in str(raised.value)
    assert "adder" in str(raised.value)


async def test_jobs_attribute_with_nothing_registered_is_an_attribute_error(durably):
    with pytest.raises(AttributeError, match="nothing|none"):
        durably.jobs.anything


async def test_get_job_finds_a_handle_by_job_name_not_by_key(durably):
    durably.register(csv_key=define_job(name="import-csv", input=Numbers, run=add_up))

    assert durably.get_job("import-csv") is durably.jobs.csv_key
    assert durably.get_job("csv_key") is None
    assert durably.get_job("unknown") is None


async def test_trigger_through_get_job_creates_a_pending_run(durably):
    durably.register(csv_key=define_job(name="import-csv", input=Numbers, run=add_up))

    run = await durably.get_job("import-csv").trigger({"count": 1})

    assert run.status is RunStatus.PENDING
    assert run.job_name == "import-csv"
    assert run.input == {"count": 1}
    assert run.step_count == 0


async def test_several_jobs_in_one_register_call_get_distinct_runs(durably):
    durably.register(
        a=define_job(name="job-a", run=add_up),
        b=define_job(name="job-b", run=add_up),
        c=define_job(name="job-c", run=add_up),
    )

    runs = [await durably.jobs.a.trigger(), await durably.jobs.b.trigger(), await durably.jobs.c.trigger()]

    assert len({run.id for run in runs}) == 3
    assert [run.job_name for run in runs] == ["job-a", "job-b", "job-c"]


async def test_triggering_an_unregistered_job_name_is_a_job_not_found_error(durably):
    with pytest.raises(JobNotFoundError, match="Job not found: nope"):
        await durably.trigger("nope", {})
    assert await durably.get_runs() == []


async def test_a_registered_job_runs_with_its_input_parsed_into_the_model(durably):
    received = []

    async def record(step, input):
        received.append(input)
        return {"doubled": input.count * 2}

    durably.register(job=define_job(name="record", input=Numbers, run=record))
    await durably.start()

    result = await durably.jobs.job.trigger_and_wait({"count": 21}, timeout=5)

    assert result.output == {"doubled": 42}
    assert received == [Numbers(count=21)]


async def test_a_worker_claims_only_runs_of_jobs_it_has_registered_until_it_registers_them(db_url):
    job = define_job(name="add-up", input=Numbers, output=Total, run=add_up)
    producer = create_durably(db_url, **FAST)
    worker = create_durably(db_url, **FAST)
    try:
        producer.register(job=job)
        run = await producer.trigger("add-up", {"count": 1})
        await worker.start()  # knows no job yet
        await asyncio.sleep(0.3)
        assert (await worker.get_run(run.id)).status is RunStatus.PENDING

        worker.register(job=job)

        done = await wait_for_status(worker, run.id, RunStatus.COMPLETED, RunStatus.FAILED)
        assert (done.status, done.error, done.output) == (RunStatus.COMPLETED, None, {"total": 2})
    finally:
        await worker.close(timeout=5)
        await producer.close(timeout=5)
