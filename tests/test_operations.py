"""Operating runs at scale in the engine, on both backends: labels and search, coalescing, bulk
actions in batches, replay from a step, the attempts of a retried run, and retention."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from durably_reflex import (
    BatchItem,
    BulkResult,
    Durably,
    InvalidArgumentError,
    RunNotFoundError,
    create_durably,
    define_job,
)
from durably_reflex._storage import queries
from tests.conftest import FAST
from tests.engine_helpers import collect, query_db, wait_for_status


class Signup(BaseModel):
    email: str
    age: int = 30
    vip: bool = False
    plan: dict[str, str] = {}


async def _signup(step, payload: Signup) -> str:
    return payload.email


SIGNUP = define_job(name="signup", input=Signup, run=_signup)


class Gate:
    """Job code blocks here until the test opens it (a thread-safe event with a bounded wait)."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def wait(self) -> None:
        self.opened.wait(15)


# -- labels and search -------------------------------------------------------------------------------
async def test_labels_are_kept_with_the_run_and_every_label_asked_for_must_match(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    acme_eu = await durably.jobs.signup.trigger({"email": "a@x"}, labels={"customer": "acme", "region": "eu"})
    acme_us = await durably.jobs.signup.trigger({"email": "b@x"}, labels={"customer": "acme", "region": "us"})
    await durably.jobs.signup.trigger({"email": "c@x"}, labels={"customer": "globex"})
    assert acme_eu.labels == {"customer": "acme", "region": "eu"}
    assert (await durably.get_run(acme_eu.id)).to_wire()["labels"] == {"customer": "acme", "region": "eu"}  # type: ignore[union-attr]
    found = await durably.get_runs(labels={"customer": "acme"})
    assert [run.id for run in found] == [acme_us.id, acme_eu.id]
    assert [run.id for run in await durably.get_runs(labels={"customer": "acme", "region": "eu"})] == [acme_eu.id]
    assert await durably.get_runs(labels={"customer": "initech"}) == []


async def test_a_label_search_finds_the_same_runs_whether_a_rare_label_leads_or_none_does(
    durably: Durably, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A label on LABEL_LEADS_BELOW runs or more leads no search (SQLite reads the newest runs and
    # checks each label): here "eu" is common, "acme" and "T-1" rare.
    monkeypatch.setattr(queries, "LABEL_LEADS_BELOW", 3)
    durably.register(signup=SIGNUP)
    tags = [{"region": "eu", "customer": "acme"}, {"region": "eu"}, {"region": "eu", "customer": "acme", "ticket": "T-1"},
            {"region": "us", "customer": "acme"}, {"region": "eu"}]  # fmt: skip
    runs = [(await durably.jobs.signup.trigger({"email": f"{n}@x"}, labels=labels)).id for n, labels in enumerate(tags)]

    def found(*indexes: int) -> list[str]:
        return [runs[index] for index in indexes]

    async def ids(**filters: Any) -> list[str]:
        return [run.id for run in await durably.get_runs(**filters)]

    assert await ids(labels={"region": "eu"}) == found(4, 2, 1, 0)
    assert await ids(labels={"region": "eu"}, limit=2, offset=1) == found(2, 1)
    assert await ids(labels={"region": "eu", "customer": "acme"}) == found(2, 0)
    assert await ids(labels={"ticket": "T-1", "region": "eu", "customer": "acme"}) == found(2)
    assert await ids(labels={"region": "eu", "customer": "globex"}) == []
    assert await ids(labels={"region": "eu"}, status=["pending", "failed"], limit=3) == found(4, 2, 1)  # merged pages
    assert await ids(labels={"region": "eu", "customer": "acme"}, job_name=["signup", "other"], limit=5) == found(2, 0)


async def test_bad_labels_are_refused(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    for labels, message in (
        ({"": "x"}, "label key"),
        ({"bad key": "x"}, "label key"),
        ({"k": 1}, "value must be a string"),
        ({f"k{i}": "v" for i in range(21)}, "at most 20 labels"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            await durably.jobs.signup.trigger({"email": "a@x"}, labels=labels)  # type: ignore[arg-type]
    assert await durably.get_runs() == []


async def test_search_by_id_prefix_creation_time_and_input_fields(durably: Durably, db_url: str) -> None:
    durably.register(signup=SIGNUP)
    ada = await durably.jobs.signup.trigger(
        {"email": "ada@example.com", "age": 36, "vip": True, "plan": {"tier": "gold"}}
    )
    bob = await durably.jobs.signup.trigger({"email": "bob@example.com", "age": 41})
    # Ids made in the same millisecond share all but their last characters: the shortest prefix that
    # tells Ada's from Bob's (8 characters at least), then one that both share.
    differs_at = next(i for i, (a, b) in enumerate(zip(ada.id, bob.id, strict=True)) if a != b)
    assert [run.id for run in await durably.get_runs(id_prefix=ada.id[: max(differs_at + 1, 8)])] == [ada.id]
    assert [run.id for run in await durably.get_runs(id_prefix=ada.id[:differs_at])] == [bob.id, ada.id]
    assert [run.id for run in await durably.get_runs(input_fields={"email": "bob@example.com"})] == [bob.id]
    assert [run.id for run in await durably.get_runs(input_fields={"age": 36})] == [ada.id]
    assert [run.id for run in await durably.get_runs(input_fields={"vip": True})] == [ada.id]
    assert [run.id for run in await durably.get_runs(input_fields={"plan.tier": "gold"})] == [ada.id]
    query_db(db_url, "UPDATE durably_runs SET created_at = created_at - 86400000 WHERE id = ?", ada.id)
    yesterday = datetime.now(UTC) - timedelta(hours=12)
    assert [run.id for run in await durably.get_runs(created_after=yesterday)] == [bob.id]
    assert [run.id for run in await durably.get_runs(created_before=yesterday)] == [ada.id]
    # With several statuses (the merged-page query) the other filters still apply.
    assert [
        run.id for run in await durably.get_runs(status=["pending", "failed"], input_fields={"age": 41}, limit=5)
    ] == [bob.id]
    with pytest.raises(InvalidArgumentError, match="input field"):
        await durably.get_runs(input_fields={"email') OR 1=1 --": "x"})


# -- coalescing ----------------------------------------------------------------------------------------
async def test_a_trigger_tells_whether_it_created_found_or_coalesced_a_run(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    first = await durably.jobs.signup.trigger({"email": "a@x"}, concurrency_key="acct-1", coalesce="skip")
    again = await durably.jobs.signup.trigger({"email": "b@x"}, concurrency_key="acct-1", coalesce="skip")
    other = await durably.jobs.signup.trigger({"email": "c@x"}, concurrency_key="acct-2", coalesce="skip")
    keyed = await durably.jobs.signup.trigger({"email": "d@x"}, idempotency_key="k")
    same = await durably.jobs.signup.trigger({"email": "d@x"}, idempotency_key="k")
    assert (first.disposition, again.disposition, other.disposition) == ("created", "coalesced", "created")
    assert again.id == first.id and other.id != first.id
    assert (keyed.disposition, same.disposition, same.id) == ("created", "idempotent", keyed.id)
    with pytest.raises(InvalidArgumentError, match="needs a concurrency_key"):
        await durably.jobs.signup.trigger({"email": "e@x"}, coalesce="skip")


async def test_coalescing_only_joins_a_pending_run(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    await durably.start()
    first = await durably.jobs.signup.trigger({"email": "a@x"}, concurrency_key="acct-1", coalesce="skip")
    await wait_for_status(durably, first.id, "completed", timeout=10)
    later = await durably.jobs.signup.trigger({"email": "b@x"}, concurrency_key="acct-1", coalesce="skip")
    assert later.disposition == "created" and later.id != first.id


# -- bulk actions ----------------------------------------------------------------------------------------
async def test_bulk_cancel_by_filter_works_in_batches_and_reports_progress(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    batch = await durably.batch_trigger(
        "signup", [BatchItem({"email": f"{n}@x"}, labels={"wave": "1" if n < 7 else "2"}) for n in range(10)]
    )
    cancels = collect(durably, "run:cancel")
    progress: list[BulkResult] = []
    result = await durably.bulk_cancel(labels={"wave": "1"}, batch_size=3, on_progress=progress.append)
    assert result == BulkResult(matched=7, changed=7, skipped=0)
    assert [step.matched for step in progress] == [3, 6, 7]
    statuses = {run.id: run.status for run in await durably.get_runs()}
    assert sorted(statuses[run.id] for run in batch) == ["cancelled"] * 7 + ["pending"] * 3
    assert len(cancels) == 7


async def test_bulk_retry_and_delete_by_ids_skip_runs_whose_status_forbids_it(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    runs = await durably.batch_trigger("signup", [{"email": f"{n}@x"} for n in range(4)])
    await durably.bulk_cancel([run.id for run in runs[:2]])
    retried = await durably.bulk_retry([run.id for run in runs])
    assert retried == BulkResult(matched=4, changed=2, skipped=2)  # two pending runs cannot be retried
    await durably.bulk_cancel([run.id for run in runs])
    deleted = await durably.bulk_delete([run.id for run in runs] + ["no-such-run"])
    assert deleted == BulkResult(matched=5, changed=4, skipped=1)
    assert await durably.get_runs() == []
    with pytest.raises(InvalidArgumentError, match="not both"):
        await durably.bulk_delete([runs[0].id], job_name="signup")


async def test_a_bulk_retry_keeps_each_runs_attempt_numbered_after_its_earlier_ones(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    twice, once = [run.id for run in await durably.batch_trigger("signup", [{"email": "a@x"}, {"email": "b@x"}])]
    await durably.bulk_cancel([twice])
    await durably.bulk_retry([twice])
    await durably.bulk_cancel([twice, once])
    assert await durably.bulk_retry([twice, once]) == BulkResult(matched=2, changed=2, skipped=0)
    assert [(a.number, a.status) for a in await durably.get_attempts(twice)] == [(1, "cancelled"), (2, "cancelled")]
    (attempt,) = await durably.get_attempts(once)
    assert (attempt.number, attempt.status, attempt.started_at) == (1, "cancelled", None)
    assert attempt.completed_at is not None


async def test_a_bulk_retry_by_filter_sees_each_run_once_though_the_runs_change(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    runs = await durably.batch_trigger("signup", [{"email": f"{n}@x"} for n in range(7)])
    await durably.bulk_cancel(job_name="signup")
    result = await durably.bulk_retry(job_name="signup", batch_size=2)  # retried runs still match the filter
    assert result == BulkResult(matched=7, changed=7, skipped=0)
    assert {run.status for run in await durably.get_runs()} == {"pending"}
    assert len(runs) == 7


# -- replay from a step, attempts -----------------------------------------------------------------------
async def test_a_replay_from_a_step_copies_the_steps_before_it_and_runs_the_rest(durably: Durably) -> None:
    calls: list[str] = []

    async def pipeline(step, payload: Signup) -> list[str]:
        fetched = await step.run("fetch", lambda: calls.append("fetch") or "data")
        parsed = await step.run("parse", lambda: calls.append("parse") or f"{fetched}!")
        return [parsed, await step.run("store", lambda: calls.append("store") or "stored")]

    durably.register(pipeline=define_job(name="pipeline", input=Signup, run=pipeline))
    await durably.start()
    source = await durably.jobs.pipeline.trigger({"email": "a@x"}, labels={"team": "data"})
    await wait_for_status(durably, source.id, "completed", timeout=10)
    calls.clear()
    replay = await durably.replay(source.id, from_step="parse")
    assert replay.replay_of == source.id and replay.labels == {"team": "data"} and replay.input == source.input
    done = await wait_for_status(durably, replay.id, "completed", timeout=10)
    assert done.output == ["data!", "stored"] and calls == ["parse", "store"]
    assert [run.id for run in await durably.get_runs(replay_of=source.id)] == [replay.id]
    with pytest.raises(InvalidArgumentError, match='no step "nope"'):
        await durably.replay(source.id, from_step="nope")
    with pytest.raises(RunNotFoundError):
        await durably.replay("no-such-run")


async def test_a_replay_belongs_to_its_sources_tenant_whoever_asks(durably: Durably) -> None:
    durably.register(signup=SIGNUP)
    source = await durably.trigger("signup", {"email": "a@x"}, scope="acme")
    own = await durably.replay(source.id, scope="acme")
    unscoped = await durably.replay(source.id)  # an operator who sees every tenant
    assert [run.id for run in await durably.get_runs(scope="acme")] == [unscoped.id, own.id, source.id]
    with pytest.raises(RunNotFoundError):
        await durably.replay(source.id, scope="globex")
    assert await durably.get_runs(scope="globex") == []


async def test_a_retried_run_keeps_each_attempt_and_its_failed_steps(durably: Durably) -> None:
    failures = [RuntimeError("disk full")]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    async def job(step, payload: Signup) -> str:
        return await step.run("write", flaky)

    durably.register(flaky=define_job(name="flaky", input=Signup, run=job))
    await durably.start()
    run = await durably.jobs.flaky.trigger({"email": "a@x"})
    failed = await wait_for_status(durably, run.id, "failed", timeout=10)
    await durably.retry(run.id)
    await wait_for_status(durably, run.id, "completed", timeout=10)
    (attempt,) = await durably.get_attempts(run.id)
    assert (attempt.number, attempt.status, attempt.error) == (1, "failed", "disk full")
    assert attempt.started_at == failed.started_at and attempt.completed_at == failed.completed_at
    assert [(step.name, step.status) for step in await durably.get_steps(run.id)] == [
        ("write", "failed"),
        ("write", "completed"),
    ]


# -- retention ---------------------------------------------------------------------------------------
async def test_purge_deletes_finished_runs_older_than_asked_and_nothing_else(durably: Durably, db_url: str) -> None:
    durably.register(signup=SIGNUP)
    await durably.start()
    old = await durably.batch_trigger("signup", [{"email": f"{n}@x"} for n in range(3)])
    for run in old:
        await wait_for_status(durably, run.id, "completed", timeout=10)
    query_db(db_url, "UPDATE durably_runs SET completed_at = completed_at - 3 * 86400000")
    recent = await durably.jobs.signup.trigger({"email": "new@x"})
    await wait_for_status(durably, recent.id, "completed", timeout=10)
    waiting = await durably.jobs.signup.trigger({"email": "later@x"}, delay=3600)
    deleted: list[str] = []
    durably.on("run:delete", lambda event: deleted.append(event["runId"]))
    assert await durably.purge_runs(timedelta(days=2), limit=2) == 2
    assert await durably.purge_runs(2 * 86400) == 1
    assert {run.id for run in await durably.get_runs()} == {recent.id, waiting.id}
    assert sorted(deleted) == sorted(run.id for run in old)  # open lists drop them
    assert query_db(db_url, "SELECT count(*) FROM durably_steps WHERE run_id = ?", old[0].id) == [(0,)]


async def test_retain_runs_makes_the_leading_worker_purge_old_runs(db_url: str) -> None:
    durably = create_durably(db_url, **{**FAST, "event_retention": 0.4}, retain_runs="1d").register(signup=SIGNUP)
    await durably.start()
    try:
        run = await durably.jobs.signup.trigger({"email": "a@x"})
        await wait_for_status(durably, run.id, "completed", timeout=10)
        deleted = asyncio.Event()
        durably.on("run:delete", lambda event: deleted.set() if event["runId"] == run.id else None)
        query_db(db_url, "UPDATE durably_runs SET completed_at = completed_at - 2 * 86400000")
        async with asyncio.timeout(15):
            await deleted.wait()  # announced, so that open lists drop the run
        assert await durably.get_run(run.id) is None
    finally:
        await durably.close()
    with pytest.raises(ValueError, match="duration"):
        create_durably(db_url, retain_runs="a while")


async def test_an_input_search_copes_with_inputs_that_hold_any_character(durably: Durably) -> None:
    # PostgreSQL's jsonb refuses "\u0000" in text: reading such an input must not fail the search.
    durably.register(signup=SIGNUP)
    odd = await durably.jobs.signup.trigger({"email": "nul\x00here@x", "plan": {"tier": "gold\x00"}})
    plain = await durably.jobs.signup.trigger({"email": "plain@x", "plan": {"tier": "gold"}})
    assert [run.id for run in await durably.get_runs(input_fields={"email": "plain@x"})] == [plain.id]
    assert [run.id for run in await durably.get_runs(input_fields={"plan.tier": "gold"})] == [plain.id]
    assert [run.id for run in await durably.get_runs(input_fields={"email": "nul\x00here@x"})] in ([odd.id], [])
