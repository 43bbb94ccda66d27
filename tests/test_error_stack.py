"""A failed run's traceback (`errorStack`) names the server's files and code: the API sends it only
to callers `create_durably_handler(expose_error_stack=...)` allows, against a REAL server (uvicorn on
127.0.0.1, SQLite and PostgreSQL). Everywhere it could travel is checked: `/run`, `/runs`, `/steps`,
the `/subscribe` snapshot, the `run:fail` a late viewer is told first, and the live `run:fail`.
"""

from __future__ import annotations

from typing import Any

from durably_reflex.server import DurablyAuth
from tests.server_fixtures import (
    LiveServer,
    Serve,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)

FAILING = {"steps": 2, "fail_at": 1}  # step 1 raises RuntimeError("step 1 failed on purpose")


async def stacks_seen(server: LiveServer, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Every `errorStack` the caller is sent about one run that fails: by route."""
    run_id = await server.trigger("script", FAILING)
    live = await server.stream("/subscribe", params={"runId": run_id}, headers=headers)
    await server.durably.start()
    live_fail = (await live.until(lambda frame: frame.type == "run:fail"))[-1].event
    await server.wait_status(run_id, "failed")

    def get(path: str) -> Any:
        return server.client.get(path, params={"runId": run_id}, headers=headers)

    run = assert_json(await get("/run"), 200)
    (listed,) = assert_json(await server.client.get("/runs", headers=headers), 200)
    failed_step = next(step for step in assert_json(await get("/steps"), 200) if step["status"] == "failed")
    late = await server.stream("/subscribe", params={"runId": run_id}, headers=headers)
    frames = await late.until(lambda frame: frame.type == "run:fail")
    assert run["error"] == listed["error"] == live_fail["error"] == "step 1 failed on purpose"  # always told
    return {
        "/run": run["errorStack"],
        "/runs": listed["errorStack"],
        "/steps": failed_step["errorStack"],
        "snapshot": frames[0].event["run"]["errorStack"],
        "replayed run:fail": frames[-1].event["errorStack"],
        "live run:fail": live_fail["errorStack"],
    }


def assert_all_tracebacks(stacks: dict[str, Any]) -> None:
    for route, stack in stacks.items():
        assert isinstance(stack, str) and "RuntimeError: step 1 failed on purpose" in stack, route
        assert 'File "' in stack, route


async def test_no_caller_is_sent_a_traceback_by_default(serve: Serve) -> None:
    server = await serve(start_worker=False)
    assert await stacks_seen(server) == dict.fromkeys(
        ["/run", "/runs", "/steps", "snapshot", "replayed run:fail", "live run:fail"]
    )
    assert (await server.durably.get_runs())[0].error_stack  # it is kept: only the answers leave it out


async def test_expose_error_stack_true_sends_every_caller_the_traceback(serve: Serve) -> None:
    server = await serve(start_worker=False, expose_error_stack=True)
    assert_all_tracebacks(await stacks_seen(server))


async def test_expose_error_stack_decides_per_caller(serve: Serve) -> None:
    asked: list[Any] = []

    def trusted(caller: str) -> bool:
        asked.append(caller)
        return caller == "admin"

    auth = DurablyAuth(authenticate=lambda request: request.headers.get("x-user"))
    server = await serve(start_worker=False, auth=auth, expose_error_stack=trusted)
    server.client.headers["x-user"] = "admin"
    assert_all_tracebacks(await stacks_seen(server, {"x-user": "admin"}))
    assert set(asked) == {"admin"}


async def test_an_untrusted_caller_gets_no_traceback_and_an_async_hook_is_awaited(serve: Serve) -> None:
    async def trusted(caller: str) -> bool:
        return caller == "admin"

    auth = DurablyAuth(authenticate=lambda request: request.headers.get("x-user"))
    server = await serve(start_worker=False, auth=auth, expose_error_stack=trusted)
    server.client.headers["x-user"] = "guest"
    stacks = await stacks_seen(server, {"x-user": "guest"})
    assert set(stacks.values()) == {None}, stacks
    run_id = (await server.durably.get_runs())[0].id
    as_admin = await server.client.get("/run", params={"runId": run_id}, headers={"x-user": "admin"})
    assert "RuntimeError" in assert_json(as_admin, 200)["errorStack"]
