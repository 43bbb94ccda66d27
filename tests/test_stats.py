"""Run statistics for the dashboard: `Durably.get_run_stats`, `GET /stats` on a real server, and
`DurablyClient.get_stats`. Counts per status (every status always present), per job, and a series of
runs created per aligned time bucket (oldest first, empty buckets included); bad parameters are
400s; `visible_jobs` and `scope` limit what a caller counts (tests/test_migrations.py: the indexes
they use reach databases of earlier versions).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durably_reflex import (
    Durably,
    InvalidArgumentError,
    RunStats,
    StatusCounts,
    define_job,
)
from durably_reflex._client import DurablyClient
from durably_reflex._ids import new_id
from durably_reflex._storage.base import NewRun
from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    GATES,
    ISO_Z,
    LiveServer,
    Serve,
    assert_error,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
ZERO = dict.fromkeys(STATUSES, 0)
HOUR = timedelta(hours=1)


def counts(**given: int) -> dict[str, int]:
    """A wire counts object: every status, zero unless given."""
    return {**ZERO, **given}


def series_total(series: list[dict[str, Any]]) -> dict[str, int]:
    return {status: sum(bucket[status] for bucket in series) for status in STATUSES}


def parse_iso(value: str) -> datetime:
    assert ISO_Z.fullmatch(value), value
    return datetime.fromisoformat(value)


@pytest.fixture
async def client(serve: Serve) -> AsyncIterator[tuple[LiveServer, DurablyClient]]:
    """A server whose worker runs, and a DurablyClient on it."""
    server = await serve()
    async with DurablyClient(server.base_url) as api:
        yield server, api


async def runs_in_every_status(server: LiveServer) -> None:
    """Two completed runs and one failed, cancelled, running and pending run of the job "script"."""
    for _ in range(2):
        await server.wait_status(await server.trigger("script", {"steps": 1}), "completed")
    await server.wait_status(await server.trigger("script", {"steps": 1, "fail_at": 0}), "failed")
    cancelled_gate = GATES.new()
    cancelled = await server.trigger("script", {"steps": 1, "hold_at": 0, "gate": cancelled_gate})
    await server.wait_status(cancelled, "running")
    await server.durably.cancel(cancelled)
    GATES.open(cancelled_gate)
    await server.wait_status(cancelled, "cancelled")
    # The running run holds concurrency key "k", so the next run with that key stays pending.
    running = await server.trigger("script", {"steps": 1, "hold_at": 0, "gate": GATES.new()}, concurrencyKey="k")
    await server.wait_status(running, "running")
    await server.trigger("script", {"steps": 1}, concurrencyKey="k")


# -- GET /stats ------------------------------------------------------------------------------------
async def test_stats_count_runs_in_each_status_per_job_and_per_hour(client: tuple[LiveServer, DurablyClient]) -> None:
    server, _ = client
    await runs_in_every_status(server)
    body = assert_json(await server.client.get("/stats"), 200)
    expected = counts(pending=1, running=1, completed=2, failed=1, cancelled=1)
    assert set(body) == {"counts", "byJob", "bucketSeconds", "series"}
    assert body["counts"] == expected
    assert body["byJob"] == {"script": expected}
    assert body["bucketSeconds"] == 3600
    series = body["series"]
    assert len(series) == 24 and all(set(bucket) == {"start", *STATUSES} for bucket in series)
    assert series_total(series) == expected  # every run was created within the last 24 hours
    starts = [parse_iso(bucket["start"]) for bucket in series]
    assert all(later - earlier == HOUR for earlier, later in itertools.pairwise(starts))
    assert starts[0].minute == starts[0].second == starts[0].microsecond == 0  # aligned on the hour
    assert starts[-1] <= datetime.now(UTC) < starts[-1] + HOUR  # the last bucket holds now


async def test_stats_of_an_empty_database_are_zeros_in_every_bucket(serve: Serve) -> None:
    server = await serve(start_worker=False)
    body = assert_json(await server.client.get("/stats", params={"bucketSeconds": 60, "buckets": 5}), 200)
    assert body["counts"] == ZERO and body["byJob"] == {} and body["bucketSeconds"] == 60
    assert [{key: value for key, value in bucket.items() if key != "start"} for bucket in body["series"]] == [ZERO] * 5
    starts = [parse_iso(bucket["start"]) for bucket in body["series"]]
    assert [later - earlier for earlier, later in itertools.pairwise(starts)] == [timedelta(minutes=1)] * 4
    assert starts[-1] <= datetime.now(UTC) < starts[-1] + timedelta(minutes=1)


async def test_stats_count_only_the_jobs_asked_for(serve: Serve) -> None:
    server = await serve(start_worker=False)
    await server.trigger("script", {})
    await server.trigger("script", {})
    await server.trigger("no-input", {})
    await server.trigger("import-rows", {"rows": []})

    only_script = assert_json(await server.client.get("/stats", params={"jobName": "script"}), 200)
    assert only_script["counts"] == counts(pending=2)
    assert only_script["byJob"] == {"script": counts(pending=2)}
    assert series_total(only_script["series"]) == counts(pending=2)

    two = assert_json(await server.client.get("/stats", params=[("jobName", "script"), ("jobName", "no-input")]), 200)
    assert two["counts"] == counts(pending=3)
    assert two["byJob"] == {"no-input": counts(pending=1), "script": counts(pending=2)}

    unknown = assert_json(await server.client.get("/stats", params={"jobName": "nope"}), 200)
    assert unknown["counts"] == ZERO and unknown["byJob"] == {"nope": ZERO}

    every = assert_json(await server.client.get("/stats"), 200)
    assert every["counts"] == counts(pending=4)
    assert list(every["byJob"]) == ["import-rows", "no-input", "script"]  # by name


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"bucketSeconds": "0"}, "bucketSeconds must be from 1 to 31622400"),
        ({"bucketSeconds": "-60"}, "bucketSeconds must be a whole number from 1 to 31622400"),
        ({"bucketSeconds": "1.5"}, "bucketSeconds must be a whole number"),
        ({"bucketSeconds": "hour"}, "bucketSeconds must be a whole number"),
        ({"bucketSeconds": str(10**30)}, "from 1 to 31622400"),
        ({"buckets": "0"}, "buckets must be from 1 to 500"),
        ({"buckets": "501"}, "buckets must be from 1 to 500"),
        ({"buckets": "x"}, "buckets must be a whole number"),
    ],
)
async def test_bad_stats_parameters_answer_400(serve: Serve, params: dict[str, str], fragment: str) -> None:
    server = await serve(start_worker=False)
    assert_error(await server.client.get("/stats", params=params), 400, fragment)


async def test_stats_accept_the_largest_series(serve: Serve) -> None:
    server = await serve(start_worker=False)
    await server.trigger("script", {})
    body = assert_json(await server.client.get("/stats", params={"bucketSeconds": 31_622_400, "buckets": 500}), 200)
    assert len(body["series"]) == 500 and body["series"][-1]["pending"] == 1
    assert parse_iso(body["series"][0]["start"]).year < 1600  # 500 buckets of 366 days back


def by_header(request: Any) -> str | None:
    return request.headers.get("x-user") or None


async def test_visible_jobs_scope_the_stats(serve: Serve) -> None:
    def visible_jobs(caller: str) -> list[str] | None:
        return None if caller == "admin" else ["import-rows"]

    server = await serve(auth=DurablyAuth(authenticate=by_header, visible_jobs=visible_jobs), start_worker=False)
    await server.durably.trigger("import-rows", {"rows": []})
    await server.durably.trigger("script", {})
    ann = {"x-user": "ann"}
    mine = assert_json(await server.client.get("/stats", headers=ann), 200)
    assert mine["counts"] == counts(pending=1) and mine["byJob"] == {"import-rows": counts(pending=1)}
    theirs = assert_json(await server.client.get("/stats", params={"jobName": "script"}, headers=ann), 200)
    assert theirs["counts"] == ZERO and theirs["byJob"] == {}
    assert series_total(theirs["series"]) == ZERO
    admin = assert_json(await server.client.get("/stats", headers={"x-user": "admin"}), 200)
    assert admin["counts"] == counts(pending=2)
    assert_error(await server.client.get("/stats"), 401)


# -- DurablyClient.get_stats ---------------------------------------------------------------------------
async def test_the_client_reads_the_stats_as_the_engine_counts_them(client: tuple[LiveServer, DurablyClient]) -> None:
    server, api = client
    await runs_in_every_status(server)
    stats = await api.get_stats()
    assert isinstance(stats, RunStats)
    assert stats.counts == StatusCounts(pending=1, running=1, completed=2, failed=1, cancelled=1)
    assert stats == await server.durably.get_run_stats()
    daily = await api.get_stats("script", bucket_seconds=86_400, buckets=7)
    assert daily.bucket_seconds == 86_400 and len(daily.series) == 7
    assert daily.series[-1].start.hour == 0 and daily.series[-1].start.tzinfo is not None
    assert (await api.get_stats(["no-input"])).counts == StatusCounts()


async def test_the_client_raises_invalid_argument_for_bad_parameters(client: tuple[LiveServer, DurablyClient]) -> None:
    _, api = client
    with pytest.raises(InvalidArgumentError, match="buckets must be from 1 to 500"):
        await api.get_stats(buckets=0)


# -- the engine ------------------------------------------------------------------------------------
async def insert_run(durably: Durably, job_name: str, created: datetime) -> str:
    """A pending run created at a chosen time (triggering would stamp it now)."""
    run_id = new_id()
    await durably.storage.insert_runs([NewRun(run_id, job_name, "{}", None, None, int(created.timestamp() * 1000))])
    return run_id


async def test_the_series_puts_each_run_in_the_bucket_of_its_creation(durably: Durably) -> None:
    since = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    await insert_run(durably, "a", since - timedelta(seconds=1))  # before the series: counted, not charted
    await insert_run(durably, "a", since)
    await insert_run(durably, "a", since + timedelta(minutes=65))
    cancelled = await insert_run(durably, "b", since + HOUR + timedelta(minutes=59, seconds=59))
    await durably.cancel(cancelled)
    await insert_run(durably, "a", since + 3 * HOUR + timedelta(minutes=30))
    await insert_run(durably, "a", since + 4 * HOUR)  # after the series

    stats = await durably.get_run_stats(since=since + timedelta(minutes=20), bucket_seconds=3600, buckets=4)

    assert [bucket.start for bucket in stats.series] == [since + i * HOUR for i in range(4)]  # aligned down
    assert [(bucket.pending, bucket.cancelled) for bucket in stats.series] == [(1, 0), (1, 1), (0, 0), (1, 0)]
    assert stats.counts == StatusCounts(pending=5, cancelled=1)
    assert stats.by_job == {"a": StatusCounts(pending=5), "b": StatusCounts(cancelled=1)}


async def test_a_naive_since_is_utc(durably: Durably) -> None:
    await insert_run(durably, "a", datetime(2026, 3, 1, 10, 30, tzinfo=UTC))
    stats = await durably.get_run_stats(since=datetime(2026, 3, 1, 10, 0), bucket_seconds=3600, buckets=1)
    assert stats.series[0].start == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert stats.series[0].pending == 1


async def test_an_empty_list_of_jobs_counts_nothing(durably: Durably) -> None:
    await insert_run(durably, "a", datetime.now(UTC))
    stats = await durably.get_run_stats([])
    assert stats.counts == StatusCounts() and stats.by_job == {} and len(stats.series) == 24


@pytest.mark.parametrize(
    "arguments",
    [{"buckets": 0}, {"buckets": 501}, {"buckets": True}, {"bucket_seconds": 0}, {"bucket_seconds": 2.5},
     {"since": "2026-03-01"}, {"job_name": [""]}],
)  # fmt: skip
async def test_get_run_stats_rejects_invalid_arguments(durably: Durably, arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        await durably.get_run_stats(**arguments)


async def test_get_run_stats_with_a_scope_count_only_that_scopes_runs(durably: Durably) -> None:
    durably.register(a=define_job(name="job-a", run=_nothing), b=define_job(name="job-b", run=_nothing))
    for job, scope in (("job-a", "tenant-1"), ("job-b", "tenant-1"), ("job-a", "tenant-2"), ("job-a", None)):
        await durably.trigger(job, scope=scope)

    mine = await durably.get_run_stats(scope="tenant-1")
    everyone = await durably.get_run_stats()

    assert (mine.counts.pending, sum(bucket.pending for bucket in mine.series)) == (2, 2)
    assert {name: counts.pending for name, counts in mine.by_job.items()} == {"job-a": 1, "job-b": 1}
    assert (await durably.get_run_stats("job-a", scope="tenant-2")).counts.pending == 1
    assert everyone.counts.pending == 4


async def test_a_count_in_progress_holds_up_no_other_read(durably: Durably) -> None:
    """Counts read whole indexes (a second or more over millions of runs): they have a connection
    of their own, so a page of runs, a run or a stream's poll never queues behind one."""
    durably.register(a=define_job(name="job-a", run=_nothing))
    run_id = (await durably.trigger("job-a")).id
    counter = durably.storage._counter  # type: ignore[attr-defined]
    counting, done = threading.Event(), threading.Event()

    def long_count(session: Any) -> None:
        counting.set()
        done.wait(10)

    count = asyncio.create_task(counter.run(long_count, write=False))
    try:
        assert await asyncio.to_thread(counting.wait, 10)
        runs = await asyncio.wait_for(durably.get_runs(), 10)
        run = await asyncio.wait_for(durably.get_run(run_id), 10)
        assert not done.is_set() and not count.done()  # read while the count still held its connection
        assert [r.id for r in runs] == [run_id] and run is not None
    finally:
        done.set()
        await count


async def _nothing(step: Any, input: Any) -> None:
    return None
