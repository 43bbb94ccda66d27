"""`durably-reflex dashboard --api URL`: the dashboard of an API served elsewhere. Its arguments and
the checks made before Reflex starts (one line, exit 2), the environment handed to Reflex, what the
packaged app module builds from it (no API mounted, every state reading the remote API with the
headers asked for), the warning about an API that does not answer as one, and the jobs page's list
and trigger by name for jobs the dashboard has no models of, against real servers.

Reflex itself serves it, against a real Node Durably server, in tests/browser/test_dashboard_node.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.requests import Request

from durably_reflex import DurablyClient
from durably_reflex._cli import UsageError, build_parser
from durably_reflex._dashboard_cli import api_warning, remote_api
from durably_reflex._dashboard_project import FORWARD_HEADERS_ENV, REMOTE_API_ENV, reflex_environment
from durably_reflex._dashboard_targets import HEADERS_ENV, parse_headers, shown_url
from durably_reflex.dashboard.remote_jobs import listed_jobs, trigger_by_name
from durably_reflex.server import DurablyAuth
from tests.test_client import ROWS, ServerThread, free_port
from tests.test_dashboard_cli import ROOT, assert_usage_error, dashboard

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX process groups and signals")

API = "http://127.0.0.1:8000/api/durably"
TOKEN = "Bearer t0k3n"


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    (tmp_path / "jobs_module.py").write_text(
        textwrap.dedent("""
            from durably_reflex import create_durably, define_job

            async def greet(step, input: dict) -> str:
                return await step.run("greet", lambda: "hello")

            durably = create_durably("sqlite:///:memory:").register(greet=define_job(name="greet", run=greet))
        """)
    )
    return tmp_path


def parsed(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(["dashboard", *args])


# -- arguments -----------------------------------------------------------------------------------------
def test_an_api_alone_needs_no_engine() -> None:
    args = parsed("--api", API)
    assert (args.target, args.api, args.api_header, args.forward_header) == (None, API, [], [])


def test_without_an_engine_or_an_api_the_command_says_to_name_one(user_dir: Path) -> None:
    assert_usage_error(dashboard(user_dir), "name the engine to serve (MODULE:ATTR", "or the API to show (--api URL)")


def test_api_headers_and_forwarded_headers_go_with_an_api(user_dir: Path) -> None:
    result = dashboard(user_dir, "jobs_module:durably", "--api-header", f"Authorization: {TOKEN}")
    assert_usage_error(result, "--api-header and --forward-header go with --api")
    assert_usage_error(dashboard(user_dir, "jobs_module:durably", "--forward-header", "cookie"), "go with --api")


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8000/api/durably", "ftp://127.0.0.1/api/durably", "http:///api/durably", "http://127.0.0.1:web/api"],
)
def test_an_api_that_is_not_an_http_url_is_one_line_and_exit_2(user_dir: Path, url: str) -> None:
    assert_usage_error(dashboard(user_dir, "--api", url), "--api")


def test_an_api_url_with_a_query_is_refused() -> None:
    with pytest.raises(UsageError, match="no query or fragment"):
        remote_api(parsed("--api", API + "?tenant=a"), {})


def test_a_malformed_api_header_is_refused_without_repeating_its_value(user_dir: Path) -> None:
    result = dashboard(user_dir, "--api", API, "--api-header", "Bearer s3cret-token")
    assert_usage_error(result, '"Name: value"', "has no colon")
    assert "s3cret" not in result.stderr


def test_a_header_of_the_browsers_connection_itself_is_not_forwarded(user_dir: Path) -> None:
    assert_usage_error(
        dashboard(user_dir, "--api", API, "--forward-header", "Host"), "describes the browser's connection"
    )


def test_headers_come_from_the_environment_then_the_options_which_win_by_name() -> None:
    environ = {HEADERS_ENV: "authorization: Bearer from-env\nX-Tenant: acme\n"}
    args = parsed("--api", API + "/", "--api-header", f"Authorization: {TOKEN}", "--forward-header", "Cookie")
    remote = remote_api(args, environ)
    assert remote is not None
    assert (remote.url, remote.headers) == (API, {"X-Tenant": "acme", "Authorization": TOKEN})
    assert remote.forward_headers == ("cookie",)


def test_an_api_url_is_shown_without_its_password() -> None:
    assert shown_url("https://admin:s3cret@jobs.example.com/api/durably") == "https://jobs.example.com/api/durably"
    assert shown_url(API) == API


# -- what Reflex is given --------------------------------------------------------------------------------
def test_reflex_gets_the_api_and_its_headers_and_no_engine(tmp_path: Path) -> None:
    stale = {"DURABLY_APP": "stale:durably", "DURABLY_API": "http://elsewhere/api/durably", "PATH": "/usr/bin"}
    env = reflex_environment(
        stale,
        build_dir=tmp_path / "build",
        user_dir=tmp_path,
        target=None,
        auth=None,
        api_url="http://localhost:3000",
        remote_api=API,
        api_headers={"Authorization": TOKEN, "X-Tenant": "acme"},
        forward_headers=("cookie",),
    )
    assert "DURABLY_APP" not in env and "DURABLY_API" not in env
    assert env[REMOTE_API_ENV] == API and env[FORWARD_HEADERS_ENV] == "cookie"
    assert parse_headers(env[HEADERS_ENV].splitlines()) == {"Authorization": TOKEN, "X-Tenant": "acme"}


def test_a_served_engine_reads_its_own_api_whatever_the_shell_says(tmp_path: Path) -> None:
    stale = {REMOTE_API_ENV: API, HEADERS_ENV: f"Authorization: {TOKEN}", "DURABLY_API": API}
    env = reflex_environment(
        stale,
        build_dir=tmp_path / "build",
        user_dir=tmp_path,
        target="jobs:durably",
        auth=None,
        api_url="http://localhost:3000",
    )
    assert env["DURABLY_APP"] == "jobs:durably"
    assert not {REMOTE_API_ENV, HEADERS_ENV, FORWARD_HEADERS_ENV, "DURABLY_API"} & env.keys()


# -- the app module Reflex imports -------------------------------------------------------------------------
STATES_OF_THE_APP = """
import json
import reflex.istate.dynamic as dynamic
from durably_reflex.dashboard.app import app

states = [getattr(dynamic, name) for name in dir(dynamic) if name.startswith("durably_")]
print(json.dumps({
    "mounted": app.api_transformer is not None,
    "pages": sorted(app._unevaluated_pages),
    "clients": sorted({
        (type(state.client).__name__, state.client.api, json.dumps(state.client.headers), ",".join(state.forward_headers))
        for state in states if hasattr(state, "client")
    }),
}))
"""


def app_module(user_dir: Path, env: dict[str, str]) -> dict[str, object]:
    """What `durably_reflex.dashboard.app` builds under `env` (as the command sets it), in a process
    of its own: its states are registered once per process."""
    result = subprocess.run(
        [sys.executable, "-c", STATES_OF_THE_APP],
        cwd=user_dir,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DURABLY_WORKDIR": str(user_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_app_reads_the_remote_api_with_its_headers_and_mounts_nothing(user_dir: Path) -> None:
    built = app_module(
        user_dir, {REMOTE_API_ENV: API, HEADERS_ENV: f"Authorization: {TOKEN}", FORWARD_HEADERS_ENV: "cookie"}
    )
    assert built["mounted"] is False
    assert built["pages"] == ["index", "jobs", "runs/[run_id]", "schedules"]
    # Every state, the jobs page's trigger by name among them, reads that API with those headers.
    assert built["clients"] == [["DurablyClient", API, json.dumps({"Authorization": TOKEN}), "cookie"]]


def test_an_engine_named_with_the_api_lends_its_jobs_but_runs_nothing_here(user_dir: Path) -> None:
    built = app_module(user_dir, {"DURABLY_APP": "jobs_module:durably", REMOTE_API_ENV: API})
    assert built["mounted"] is False
    assert built["clients"] == [["TypedDurablyClient", API, "{}", ""]]


# -- the API's first answer, from real servers -------------------------------------------------------------
def token_auth(request: Request) -> str | None:
    return "dashboard" if request.headers.get("authorization") == TOKEN else None


@pytest.fixture
def protected_server(tmp_path: Path) -> Iterator[ServerThread]:
    server = ServerThread(f"sqlite:///{tmp_path / 'remote.db'}", free_port(), auth=DurablyAuth(authenticate=token_auth))
    server.start()
    yield server
    server.stop()


def test_an_api_that_answers_with_its_credentials_gets_no_warning(protected_server: ServerThread) -> None:
    assert api_warning(protected_server.api, {"Authorization": TOKEN}) is None


def test_an_api_that_refuses_the_dashboard_says_how_to_pass_credentials(protected_server: ServerThread) -> None:
    warning = api_warning(protected_server.api, {})
    assert warning is not None and warning.startswith("warning: ")
    assert "refused the dashboard (401)" in warning and "--api-header" in warning and HEADERS_ENV in warning


def test_a_url_without_the_apis_base_path_asks_whether_it_is_the_right_one(protected_server: ServerThread) -> None:
    root = protected_server.api.removesuffix("/api/durably")
    warning = api_warning(root, {"Authorization": TOKEN})
    assert warning is not None and "is not found" in warning and "base path" in warning


def test_an_api_that_does_not_answer_is_a_warning_not_an_error() -> None:
    warning = api_warning(f"http://127.0.0.1:{free_port()}/api/durably", {}, timeout=2)
    assert warning is not None and "does not answer now" in warning and "reconnect" in warning


# -- the jobs page of an API whose jobs the dashboard does not know ------------------------------------------
@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[DurablyClient]:
    """A durably-reflex server of the test jobs (import-csv, flaky, slow-job), and a plain client of it."""
    server = ServerThread(f"sqlite:///{tmp_path / 'served.db'}", free_port())
    await asyncio.to_thread(server.start)
    async with DurablyClient(server.api) as client:
        yield client
    await asyncio.to_thread(server.stop)


async def test_a_durably_reflex_api_lists_its_jobs_with_their_input_schemas(served: DurablyClient) -> None:
    listed = await listed_jobs(served)
    assert (listed.offered, listed.error) == (True, None)
    assert [row["name"] for row in listed.rows] == ["flaky", "import-csv", "slow-job"]
    schema = json.loads(next(row["schema"] for row in listed.rows if row["name"] == "import-csv"))
    assert "rows" in schema["properties"]


async def test_an_api_that_does_not_answer_is_an_error_not_a_missing_feature() -> None:
    async with DurablyClient(f"http://127.0.0.1:{free_port()}/api/durably", timeout=2) as client:
        listed = await listed_jobs(client)
    assert listed.offered and listed.rows == []
    assert listed.error is not None and listed.error.startswith("Failed to read the jobs: ")


async def test_a_job_triggered_by_name_with_json_input_runs(served: DurablyClient) -> None:
    run_id, problem = await trigger_by_name(served, " import-csv ", json.dumps(ROWS))
    assert problem is None and run_id is not None
    assert (await served.wait_for_run(run_id, timeout=10)).output == {"imported": 2, "names": ["ADA", "GRACE"]}


@pytest.mark.parametrize(
    ("job_name", "input_text", "problem"),
    [
        ("", "{}", "Name the job to trigger."),
        ("no-such-job", "{}", 'The server has no job named "no-such-job".'),
        ("import-csv", '{"rows": [', "The input is not JSON: Expecting value (line 1, column 11)."),
    ],
)
async def test_a_trigger_by_name_that_cannot_be_sent_says_why(
    served: DurablyClient, job_name: str, input_text: str, problem: str
) -> None:
    assert await trigger_by_name(served, job_name, input_text) == (None, problem)
    assert await served.get_runs() == []


async def test_an_input_the_job_refuses_is_told_in_the_servers_words(served: DurablyClient) -> None:
    run_id, problem = await trigger_by_name(served, "import-csv", '{"rows": [{"nom": "ada"}]}')
    assert run_id is None and problem is not None and "rows.0.name" in problem
