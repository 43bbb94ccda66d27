"""A runs table's bulk actions without Reflex (durably_reflex/states/bulk.py): which runs an action
on a search takes, how they are counted before the confirmation, the one call that acts with its
progress, and what the page says; against a REAL server (its worker off: runs stay pending)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from durably_reflex import BatchItem, BulkResult, DurablyClient
from durably_reflex.states import bulk
from durably_reflex.states.bulk import Count, count_changed, outcome, plan_for_ids, plan_for_search, question, run_plan
from durably_reflex.states.run_search import parse_search
from tests.server_fixtures import (
    LiveServer,
    idle_server_fixture,  # noqa: F401  (the `idle` fixture)
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)


@pytest.fixture
async def client(idle: LiveServer) -> AsyncIterator[DurablyClient]:
    async with DurablyClient(idle.base_url) as plain:
        yield plain


def search(text: str):  # a RunSearch
    parsed = parse_search(text)
    assert parsed.ok, parsed.errors
    return parsed.search


def test_an_action_on_a_search_takes_only_the_statuses_it_can_change() -> None:
    assert plan_for_search("cancel", search("team=a")).filters == {
        "labels": {"team": "a"},
        "status": ["pending", "running"],
    }
    assert plan_for_search("retry", search("status:failed")).filters["status"] == ["failed"]
    assert plan_for_search("delete", search("")).filters == {"status": ["completed", "failed", "cancelled"]}
    assert plan_for_search("retry", search("status:completed")).filters["status"] == []  # nothing to retry


async def test_a_search_of_labels_is_counted_by_paging_and_says_more_than_past_the_cap(
    idle: LiveServer, client: DurablyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await idle.durably.batch_trigger("script", [BatchItem({}, labels={"wave": "1"}) for _ in range(5)])
    await idle.durably.batch_trigger("script", [BatchItem({}, labels={"wave": "2"}) for _ in range(2)])
    wave = search("wave=1")

    assert await count_changed(client, "cancel", wave, plan_for_search("cancel", wave)) == Count(5)
    assert await count_changed(client, "retry", wave, plan_for_search("retry", wave)) == Count(0)  # all pending
    monkeypatch.setattr(bulk, "COUNT_PAGE", 2)
    monkeypatch.setattr(bulk, "COUNT_CAP", 4)
    assert await count_changed(client, "cancel", wave, plan_for_search("cancel", wave)) == Count(4, exact=False)


async def test_a_search_of_a_job_and_a_status_is_counted_exactly_from_the_run_counts(
    idle: LiveServer, client: DurablyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await idle.durably.batch_trigger("script", [{} for _ in range(5)])
    await idle.durably.batch_trigger("no-input", [{} for _ in range(3)])
    monkeypatch.setattr(bulk, "COUNT_CAP", 2)  # paging would stop at 2: /stats counts them all
    job = search("job:script status:pending")

    assert await count_changed(client, "cancel", job, plan_for_search("cancel", job)) == Count(5)
    everything = search("")
    assert await count_changed(client, "cancel", everything, plan_for_search("cancel", everything)) == Count(8)


async def test_a_plan_is_one_action_whose_progress_is_told_after_each_batch(
    idle: LiveServer, client: DurablyClient
) -> None:
    runs = await idle.durably.batch_trigger("script", [BatchItem({}, labels={"wave": "1"}) for _ in range(5)])
    wave = search("wave=1")
    progress: list[BulkResult] = []

    done = await run_plan(client, plan_for_search("cancel", wave, batch_size=2), progress.append)

    assert done == BulkResult(matched=5, changed=5, skipped=0)
    assert [step.matched for step in progress] == [2, 4, 5]
    retried = await run_plan(client, plan_for_ids("retry", [runs[0].id, runs[1].id]), progress.append)
    assert retried == BulkResult(matched=2, changed=2, skipped=0)
    assert {run.status for run in await client.get_runs(labels={"wave": "1"})} == {"pending", "cancelled"}


def test_the_confirmation_names_how_many_runs_and_which() -> None:
    assert question("retry", "selection", Count(3), "") == (
        "Retry the 3 selected runs? Only failed or cancelled runs are retried: the others are skipped."
    )
    assert question("cancel", "matching", Count(1204), "job:import-csv") == (
        "Cancel all 1,204 pending or running runs matching job:import-csv?"
    )
    assert question("delete", "matching", Count(10_000, exact=False), "") == (
        "Delete every completed, failed or cancelled run in this database (more than 10,000)?"
    )
    assert (
        question("retry", "matching", Count(0), "team=a")
        == "No failed or cancelled run matching team=a: nothing to retry."
    )
    assert question("retry", "matching", None, "team=a") == ""  # still counting


def test_the_outcome_says_what_changed_and_what_was_skipped() -> None:
    assert outcome("retry", BulkResult(matched=1234, changed=1200, skipped=34)) == (
        "Retried 1,200 runs; 34 skipped (their status does not allow it, or they are gone)."
    )
    assert outcome("delete", BulkResult(matched=1, changed=1, skipped=0)) == "Deleted 1 run."
