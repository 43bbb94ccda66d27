"""Two tenants on one real server (uvicorn, both backends), with `DurablyAuth` hooks as the README
writes them: the tenant is a request header, `scope` returns it, and `visible_jobs` hides a job from
tenant B. Nothing of A's reaches B: not through idempotency keys, concurrency keys, counts, listings,
run routes or streams; a job B may not see cannot be triggered by B; a caller without a scope sees
every tenant's runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from durably_reflex import create_durably
from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    FAST,
    GATES,
    JOBS,
    WAIT,
    LiveServer,
    Serve,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)

B_JOBS = {"script", "no-input"}  # what tenant B may see; A and the admin see every job


def tenant_of(request: Request) -> str | None:
    return request.headers.get("x-tenant")


AUTH = DurablyAuth(
    authenticate=tenant_of,
    scope=lambda tenant: None if tenant == "admin" else tenant,
    visible_jobs=lambda tenant: B_JOBS if tenant == "b" else None,
)


@dataclass
class Tenants:
    server: LiveServer
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    admin: httpx.AsyncClient

    async def trigger(self, client: httpx.AsyncClient, job: str, input: Any = None, **body: Any) -> str:
        response = await client.post("/trigger", json={"jobName": job, "input": input, **body})
        return str(assert_json(response, 200)["runId"])

    async def status(self, client: httpx.AsyncClient, run_id: str) -> str:
        return str(assert_json(await client.get("/run", params={"runId": run_id}), 200)["status"])

    async def wait_status(self, client: httpx.AsyncClient, run_id: str, status: str) -> None:
        """Poll the run as `client` sees it until it has `status` (bounded by WAIT)."""
        async with asyncio.timeout(WAIT):
            while await self.status(client, run_id) != status:
                await asyncio.sleep(0.01)

    async def run_ids(self, client: httpx.AsyncClient, **params: Any) -> list[str]:
        return [run["id"] for run in assert_json(await client.get("/runs", params=params), 200)]


StartTenants = Callable[..., Awaitable[Tenants]]


@pytest.fixture
def tenants(serve: Serve, db_url: str) -> StartTenants:
    """`await tenants(start_worker=...)`: the server on the test's database (SQLite or PostgreSQL)."""

    async def start(start_worker: bool = True) -> Tenants:
        durably = create_durably(db_url, max_concurrent_runs=4, **FAST).register(**JOBS)
        server = await serve(durably=durably, auth=AUTH, start_worker=start_worker)
        clients = [server.new_client(headers={"x-tenant": name}) for name in ("a", "b", "admin")]
        return Tenants(server, *clients)

    return start


async def test_b_reusing_as_idempotency_key_gets_a_run_of_its_own(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_run = await t.trigger(t.a, "script", {"steps": 1}, idempotencyKey="order-1")

    b_run = await t.trigger(t.b, "script", {"steps": 2}, idempotencyKey="order-1")

    assert b_run != a_run
    assert (await t.status(t.b, b_run)) == "pending"
    assert await t.trigger(t.a, "script", {"steps": 1}, idempotencyKey="order-1") == a_run  # still A's own
    assert await t.trigger(t.b, "script", {"steps": 2}, idempotencyKey="order-1") == b_run


async def test_bs_run_does_not_wait_behind_as_run_with_the_same_concurrency_key(tenants: StartTenants) -> None:
    t = await tenants()
    gate = GATES.new()
    a_run = await t.trigger(t.a, "script", {"steps": 1, "hold_at": 0, "gate": gate}, concurrencyKey="k")
    await t.wait_status(t.a, a_run, "running")

    b_run = await t.trigger(t.b, "script", {"steps": 1}, concurrencyKey="k")

    await t.wait_status(t.b, b_run, "completed")
    assert await t.status(t.a, a_run) == "running"  # held by its gate all along: B never waited for it
    GATES.open(gate)


async def test_stats_count_only_the_callers_runs(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    for client in (t.a, t.a, t.b):
        await t.trigger(client, "script", {"steps": 1})
    await t.server.durably.trigger("script", {"steps": 1})  # in-process, without a scope

    def pending(client_stats: httpx.Response) -> tuple[int, int]:
        stats = assert_json(client_stats, 200)
        return stats["counts"]["pending"], sum(bucket["pending"] for bucket in stats["series"])

    assert pending(await t.b.get("/stats")) == (1, 1)
    assert pending(await t.a.get("/stats")) == (2, 2)
    assert pending(await t.admin.get("/stats")) == (4, 4)


async def test_runs_list_only_the_callers_runs(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_runs = [await t.trigger(t.a, job, {}) for job in ("script", "no-input")]
    b_runs = [await t.trigger(t.b, job, {}) for job in ("script", "no-input")]
    unscoped = (await t.server.durably.trigger("script", {})).id

    assert await t.run_ids(t.b) == b_runs[::-1]
    assert await t.run_ids(t.b, jobName=["script", "no-input"], limit=1, offset=1) == [b_runs[0]]
    assert await t.run_ids(t.a, status=["pending", "failed"]) == a_runs[::-1]
    assert await t.run_ids(t.admin) == [unscoped, *b_runs[::-1], *a_runs[::-1]]


RUN_ROUTES = [
    ("GET", "/run"),
    ("GET", "/steps"),
    ("GET", "/logs"),
    ("GET", "/subscribe"),
    ("POST", "/retry"),
    ("POST", "/cancel"),
    ("DELETE", "/run"),
]


@pytest.mark.parametrize(("method", "path"), RUN_ROUTES)
async def test_another_tenants_run_is_a_404_exactly_as_an_unknown_run(
    tenants: StartTenants, method: str, path: str
) -> None:
    t = await tenants(start_worker=False)
    a_run = await t.trigger(t.a, "script", {"steps": 1})
    unknown = "0" * len(a_run)

    theirs = await t.b.request(method, path, params={"runId": a_run})
    missing = await t.b.request(method, path, params={"runId": unknown})

    body, expected = assert_json(theirs, 404), assert_json(missing, 404)
    assert body == {**expected, "error": expected["error"].replace(unknown, a_run)}
    assert body.get("code", "RUN_NOT_FOUND") == "RUN_NOT_FOUND" and a_run in body["error"]
    assert await t.status(t.a, a_run) == "pending"  # and nothing was done to it


async def test_runs_subscribe_sends_a_tenant_only_its_runs_events(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    live = await t.server.stream("/runs/subscribe", client=t.b)
    a_run = await t.trigger(t.a, "script", {"steps": 1})
    b_run = await t.trigger(t.b, "script", {"steps": 1})

    # Events come in log order: A's trigger, logged first, would come before B's.
    frames = await live.until(lambda frame: frame.event.get("runId") == b_run)
    replayed = await t.server.stream("/runs/subscribe", client=t.b, headers={"Last-Event-ID": "0"})
    frames += await replayed.until(lambda frame: frame.event.get("runId") == b_run)

    assert {frame.event["runId"] for frame in frames} == {b_run}
    # A's events were logged (A's own replay has them): B was kept from them, not spared them.
    own = await t.server.stream("/runs/subscribe", client=t.a, headers={"Last-Event-ID": "0"})
    await own.until(lambda frame: frame.event.get("runId") == a_run)


async def test_a_trigger_of_a_job_hidden_from_the_caller_is_a_404_and_creates_nothing(
    tenants: StartTenants,
) -> None:
    t = await tenants(start_worker=False)

    hidden = await t.b.post("/trigger", json={"jobName": "import-rows", "input": {"rows": []}})
    unknown = await t.b.post("/trigger", json={"jobName": "no-such-job", "input": {}})

    body, expected = assert_json(hidden, 404), assert_json(unknown, 404)
    assert body == {**expected, "error": expected["error"].replace("no-such-job", "import-rows")}
    assert await t.server.durably.get_runs() == []


async def test_a_caller_without_a_scope_sees_and_acts_on_every_tenants_runs(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_run = await t.trigger(t.a, "script", {"steps": 1})

    assert await t.status(t.admin, a_run) == "pending"
    assert_json(await t.admin.post("/cancel", params={"runId": a_run}), 200)
    assert await t.status(t.a, a_run) == "cancelled"


async def test_a_scope_hook_returning_a_non_string_is_a_logged_500_not_the_callers_fault(
    serve: Serve, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    durably = create_durably(db_url, **FAST).register(**JOBS)
    broken = DurablyAuth(authenticate=tenant_of, scope=lambda tenant: 42)
    server = await serve(durably=durably, auth=broken, start_worker=False)
    client = server.new_client(headers={"x-tenant": "a"})

    response = await client.get("/runs")

    assert response.status_code == 500 and "42" not in response.text
    assert "DurablyAuth.scope must return None or a non-empty string, got 42" in caplog.text
