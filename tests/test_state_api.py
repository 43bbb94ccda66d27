"""The hook states as a user's app meets them: how `use_*` names its state classes, what a subclass
may override, and whose credentials a tab's requests carry. Real Reflex state classes, and a real
API server (uvicorn on 127.0.0.1, SQLite file) where requests are made; no browser (the states in a
browser: tests/browser/test_hooks.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reflex as rx
from reflex.istate.data import RouterData
from starlette.requests import Request

from durably_reflex import DurablyClient, Run, create_durably_client
from durably_reflex.server import DurablyAuth
from durably_reflex.states import (
    EXTENSION_POINTS,
    StateNameError,
    UseRunsState,
    use_job,
    use_job_run,
    use_run_actions,
    use_runs,
    use_runs_state,
)
from tests.test_client import ROWS, ServerThread, free_port, import_csv, wait_status

REPO_ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = DurablyClient("http://127.0.0.1:9/api/durably")  # the states below make no request


def tab(state_class: type[rx.State], **headers: str) -> Any:
    """An instance of `state_class` as the backend holds it for a browser tab whose websocket
    handshake carried `headers`."""
    state = state_class(_reflex_internal_init=True)  # type: ignore[call-arg]
    state.router = RouterData.from_router_data({"headers": {"host": "127.0.0.1", **headers}})
    return state


# -- names ---------------------------------------------------------------------------------------------
def test_each_call_makes_its_own_state_even_from_one_place() -> None:
    states = [use_runs(UNREACHABLE) for _ in range(3)]
    assert len({state.get_full_name() for state in states}) == 3


def test_name_pins_a_state_name_and_a_second_state_of_that_name_is_refused() -> None:
    pinned = use_run_actions(UNREACHABLE, name="pinned actions")
    assert pinned.__name__ == "durably_pinned_actions"
    with pytest.raises(StateNameError, match="durably_pinned_actions"):
        use_job_run(UNREACHABLE, name="pinned actions")


def test_state_names_do_not_depend_on_the_order_other_hooks_are_created_in(tmp_path: Path) -> None:
    """The compiled frontend and the backend are separate processes: a state must get the same name
    in both, even when modules load in another order or a hook is called inside a page function."""
    package = tmp_path / "names_app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text(
        textwrap.dedent("""
            from durably_reflex import DurablyClient
            from durably_reflex.states import use_job, use_runs

            client = DurablyClient("http://127.0.0.1:9/api/durably")
            runs = use_runs(client)

            def page():
                return use_job(client, "import-csv")
        """)
    )
    (package / "second.py").write_text(
        textwrap.dedent("""
            from names_app.first import client
            from durably_reflex.states import use_run_actions

            actions = use_run_actions(client)
        """)
    )
    show = (
        "import names_app.{0}, names_app.{1}; from names_app import first, second; "
        "print(first.runs.__name__, first.page().__name__, second.actions.__name__)"
    )

    def names(first: str, second: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", show.format(first, second)],
            cwd=tmp_path,
            env={"PYTHONPATH": f"{tmp_path}:{REPO_ROOT}", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return result.stdout.strip()

    assert names("first", "second") == names("second", "first")


# -- extension points ---------------------------------------------------------------------------------
def test_extension_points_stay_python_methods_not_events_a_browser_can_send() -> None:
    class Overridden(use_runs_state(UNREACHABLE), rx.State):
        def to_row(self, run: Run) -> dict[str, Any]:
            return super().to_row(run)

    assert {"session_headers", "on_status_change", "fetch_runs", "to_row"} == EXTENSION_POINTS
    assert not (EXTENSION_POINTS | {"api"}) & Overridden.event_handlers.keys()
    assert {"attach", "next_page", "refresh"} <= Overridden.event_handlers.keys()


def test_a_mixin_alone_is_not_a_state_subclass_it_with_rx_state() -> None:
    mixin = use_runs_state(UNREACHABLE)
    with pytest.raises(Exception, match="mixin"):
        tab(mixin)


# -- a real server: what a tab sees ---------------------------------------------------------------------
@pytest.fixture
def tenant_server(db_url: str) -> Iterator[ServerThread]:
    """A server whose auth hook knows the caller from a session cookie, and shows each caller only
    the runs of the jobs they may see: alice the imports, bob the flaky job."""

    def authenticate(request: Request) -> str | None:
        return request.cookies.get("session")

    def visible_jobs(caller: str) -> list[str]:
        return {"alice": ["import-csv"], "bob": ["flaky"]}.get(caller, [])

    server = ServerThread(db_url, free_port(), DurablyAuth(authenticate, visible_jobs=visible_jobs))
    server.start()
    yield server
    server.stop()


async def test_a_tab_forwards_its_own_cookie_so_each_user_sees_their_runs(tenant_server: ServerThread) -> None:
    admin = DurablyClient(tenant_server.api, headers={"cookie": "session=alice"})
    imported = await admin.trigger("import-csv", ROWS)
    await wait_status(admin, imported, "completed")
    await DurablyClient(tenant_server.api, headers={"cookie": "session=bob"}).trigger(
        "flaky", {"flag": "/nonexistent/flag"}
    )

    runs = use_runs(DurablyClient(tenant_server.api), forward_headers=("Cookie",))
    alice, bob, stranger = tab(runs, cookie="session=alice"), tab(runs, cookie="session=bob"), tab(runs)
    for state in (alice, bob, stranger):
        await state._load()
    assert [row["job_name"] for row in alice.runs] == ["import-csv"]
    assert [row["job_name"] for row in bob.runs] == ["flaky"]
    assert stranger.runs == [] and stranger.error is not None  # no cookie: refused, nothing shown


async def test_request_headers_compute_credentials_from_the_state(tenant_server: ServerThread) -> None:
    client = create_durably_client({}, tenant_server.api)
    await DurablyClient(tenant_server.api, headers={"cookie": "session=bob"}).trigger(
        "flaky", {"flag": "/nonexistent/flag"}
    )

    def from_state(state: Any) -> dict[str, str]:
        return {"cookie": f"session={state.router.headers.raw_headers['x-user']}"}

    actions = use_run_actions(client, request_headers=from_state)
    state = tab(actions, **{"x-user": "bob"})
    assert state.session_headers() == {"cookie": "session=bob"}
    assert [run.job_name for run in await state.api().get_runs()] == ["flaky"]


async def test_a_subclass_shapes_rows_and_chooses_the_runs_of_a_page(tenant_server: ServerThread) -> None:
    client = DurablyClient(tenant_server.api, headers={"cookie": "session=alice"})
    for _ in range(3):
        await client.trigger("import-csv", ROWS)

    class CompletedFirst(use_runs_state(client, page_size=2), rx.State):
        """Rows carry how many input rows a run imports; a page lists the oldest runs first."""

        async def fetch_runs(self, limit: int, offset: int) -> list[Run]:
            return list(reversed(await super().fetch_runs(limit, offset)))

        def to_row(self, run: Run) -> dict[str, Any]:
            return {**super().to_row(run), "row_count": len(run.input["rows"])}

    state = tab(CompletedFirst)
    await state._load()
    assert [row["row_count"] for row in state.runs] == [2, 2]
    assert state.has_more is True
    assert state.runs[0]["created_at"] <= state.runs[1]["created_at"]


def test_typed_hooks_take_the_job_client_and_refuse_a_mismatched_name() -> None:
    client = create_durably_client({"import_csv": import_csv}, UNREACHABLE.api)
    state = use_job(client.import_csv)
    assert state.job_name == "import-csv" and state.job is client.import_csv and state.client is client
    with pytest.raises(ValueError, match="flaky"):
        use_runs(client.import_csv, "flaky")
    assert issubclass(use_runs(client.import_csv), UseRunsState)
