"""Two tenants on one real server (both backends; tests/test_tenants.py's hooks: the tenant is a request
header, B may not see `import-rows`): searching, filtered streams and bulk actions leak nothing of
A's to B, and touch none of A's runs."""

from __future__ import annotations

from tests.server_fixtures import (
    assert_error,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)
from tests.test_tenants import StartTenants, tenants  # noqa: F401  (the `tenants` fixture)


async def test_a_search_finds_none_of_another_tenants_runs(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_run = await t.trigger(t.a, "script", {"steps": 1}, labels={"customer": "acme"})
    b_run = await t.trigger(t.b, "script", {"steps": 1}, labels={"customer": "acme"})

    assert await t.run_ids(t.b, **{"label.customer": "acme"}) == [b_run]
    assert await t.run_ids(t.b, idPrefix=a_run[:20]) == []
    assert await t.run_ids(t.b, **{"input.steps": "1"}) == [b_run]
    assert await t.run_ids(t.admin, **{"label.customer": "acme"}) == [b_run, a_run]


async def test_a_tenants_bulk_action_by_filter_touches_only_its_own_visible_runs(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_runs = [await t.trigger(t.a, job, {"rows": []}) for job in ("script", "import-rows")]
    b_runs = [await t.trigger(t.b, "script", {}) for _ in range(2)]
    hidden_from_b = await t.trigger(t.b, "script", {})
    await t.server.durably.cancel(hidden_from_b)  # not pending: B's cancel skips it

    everything = await t.b.post("/bulk/cancel", json={"filter": {}})
    import_rows = await t.b.post("/bulk/cancel", json={"filter": {"jobName": "import-rows"}})

    assert assert_json(everything, 200) == {"matched": 3, "changed": 2, "skipped": 1}  # A's runs not even counted
    assert assert_json(import_rows, 200) == {"matched": 0, "changed": 0, "skipped": 0}  # a job B may not see
    assert [await t.status(t.b, run_id) for run_id in b_runs] == ["cancelled", "cancelled"]
    assert [await t.status(t.a, run_id) for run_id in a_runs] == ["pending", "pending"]


async def test_another_tenants_run_ids_in_a_bulk_action_count_as_ids_that_do_not_exist(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_run = await t.trigger(t.a, "script", {"steps": 1})
    await t.server.durably.cancel(a_run)  # finished: deleting it would be allowed to A
    b_run = await t.trigger(t.b, "script", {"steps": 1})
    await t.server.durably.cancel(b_run)

    theirs = await t.b.post("/bulk/delete", json={"runIds": [a_run]})
    missing = await t.b.post("/bulk/delete", json={"runIds": ["0" * len(a_run)]})
    own = await t.b.post("/bulk/delete", json={"runIds": [a_run, b_run]})

    assert assert_json(theirs, 200) == assert_json(missing, 200) == {"matched": 1, "changed": 0, "skipped": 1}
    assert assert_json(own, 200) == {"matched": 2, "changed": 1, "skipped": 1}
    assert await t.status(t.a, a_run) == "cancelled"  # still there


async def test_a_label_filtered_runs_stream_sends_a_tenant_only_its_runs(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    live = await t.server.stream("/runs/subscribe", params={"label.customer": "acme"}, client=t.b)
    a_run = await t.trigger(t.a, "script", {"steps": 1}, labels={"customer": "acme"})
    await t.b.delete("/run", params={"runId": a_run})  # a 404 for B: no event
    await t.server.durably.cancel(a_run)
    await t.server.durably.delete_run(a_run)  # deleted before B's stream could judge it: not sent
    b_run = await t.trigger(t.b, "script", {"steps": 1}, labels={"customer": "acme"})

    frames = await live.until(lambda frame: frame.event.get("runId") == b_run)
    assert [frame.event["runId"] for frame in frames] == [b_run]


async def test_a_tenant_replays_its_own_runs_into_its_own_scope_and_no_one_elses(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_run = await t.trigger(t.a, "script", {"steps": 1})
    b_run = await t.trigger(t.b, "script", {"steps": 1})

    replay = assert_json(await t.a.post("/replay", json={"runId": a_run}), 200)
    by_admin = assert_json(await t.admin.post("/replay", json={"runId": b_run}), 200)  # still B's run

    assert replay["replayOf"] == a_run
    assert await t.run_ids(t.a, replayOf=a_run) == [replay["id"]]
    assert await t.run_ids(t.b) == [by_admin["id"], b_run]
    assert_error(await t.b.get("/run", params={"runId": replay["id"]}), 404, code="RUN_NOT_FOUND")
    assert_error(await t.b.post("/replay", json={"runId": a_run}), 404, code="RUN_NOT_FOUND")
    assert_error(await t.b.post("/replay", json={"runId": replay["id"]}), 404, code="RUN_NOT_FOUND")
    assert len(await t.server.durably.get_runs()) == 4  # B's refused replays made nothing


async def test_a_tenant_sees_only_its_own_runs_attempts(tenants: StartTenants) -> None:
    t = await tenants(start_worker=False)
    a_run = await t.trigger(t.a, "script", {"steps": 1})

    assert_error(await t.b.get("/attempts", params={"runId": a_run}), 404, code="RUN_NOT_FOUND")
    assert assert_json(await t.a.get("/attempts", params={"runId": a_run}), 200) == []
