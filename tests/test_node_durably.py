"""One scenario list, two servers: our `DurablyClient` and the hook states' sources against
durably-reflex's own server and against Durably's own Node server (`@coji/durably` 0.15 from npm,
`tests/node_durably/server.mjs`, with the same three jobs as tests/test_client.py).

Each scenario runs once per server. Where the two differ by design, the scenario says how: Node
Durably has no `/jobs`, `/logs` or `/stats` (the client raises `FeatureNotSupportedError`, the
states say the feature is not offered), retries by creating a new run (`/retrigger`), calls a
running run `leased`, sends no snapshot first on `/subscribe` and no keep-alives, and cannot resume
a stream. Both servers run on 127.0.0.1 on a SQLite file of the test's own; the Node project is
installed with `npm ci` on first use (tests/node_durably/harness.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durably_reflex import (
    DurablyClient,
    InvalidArgumentError,
    InvalidInputError,
    JobNotFoundError,
    NotFoundError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    RunStateError,
    RunStatus,
)
from durably_reflex._client import ConnectionState
from durably_reflex._errors import FeatureNotSupportedError
from durably_reflex._records import LogEntry, RunStats
from durably_reflex._wire_events import LogWrite, RunComplete, RunProgress, RunSnapshot, StepComplete, StepStart
from durably_reflex.states import use_job, use_run_actions, use_run_stats, use_runs
from durably_reflex.states.consumers import consuming
from durably_reflex.states.run_state import follow_run
from durably_reflex.states.runs_state import _follow_runs
from tests.node_durably.harness import NodeServer, ensure_installed
from tests.test_client import ROWS, ServerThread, free_port, wait_status
from tests.test_state_api import tab
from tests.test_states import RunsView, RunView, always_there, apply_until

WAIT = 10.0
OURS, NODE = "durably-reflex", "node-durably"


# -- the two servers ------------------------------------------------------------------------------------
class Server:
    """A server of one kind on its own SQLite file and port, which can be stopped and started
    again there (a restart), and a second server on the same database (another process)."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.database = directory / f"{kind}.db"
        self.port = free_port()
        self._running: list[ServerThread | NodeServer] = []

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/durably"

    @property
    def is_ours(self) -> bool:
        return self.kind == OURS

    def start(self, port: int | None = None) -> str:
        """Start a server on this database (on `port`, by default this server's own); its API."""
        port = port or self.port
        server: ServerThread | NodeServer
        if self.is_ours:
            server = ServerThread(f"sqlite:///{self.database}", port).start()
        else:
            server = NodeServer(self.database, port).start()
        self._running.append(server)
        return f"http://127.0.0.1:{port}/api/durably"

    def stop(self) -> None:
        while self._running:
            self._running.pop().stop()


@pytest.fixture(scope="session")
def node_durably() -> None:
    """The Node project installed (`npm ci`, once: a minute or two to compile better-sqlite3)."""
    ensure_installed()


@pytest.fixture(params=[OURS, NODE])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == NODE:
        request.getfixturevalue("node_durably")
    served = Server(request.param, tmp_path)
    served.start()
    yield served
    served.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[DurablyClient]:
    async with DurablyClient(server.api) as plain:
        yield plain


async def collect(stream: Any, until: Any = None) -> list[Any]:
    """Every event of `stream` until it ends (or one satisfies `until`), within WAIT seconds."""
    events: list[Any] = []
    async with asyncio.timeout(WAIT):
        async for event in stream:
            events.append(event)
            if until is not None and until(event):
                break
    return events


# -- trigger, wait, read ----------------------------------------------------------------------------------
async def test_trigger_wait_and_read_back_the_run_and_its_steps(client: DurablyClient) -> None:
    result = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    assert result.output == {"imported": 2, "names": ["ADA", "GRACE"]}

    run = await client.get_run(result.id)
    assert run is not None
    assert (run.job_name, run.status, run.input, run.step_count) == (
        "import-csv",
        RunStatus.COMPLETED,
        {**ROWS, "delay": 0},
        2,
    )
    assert run.progress is not None and (run.progress.current, run.progress.total) == (2, 2)
    assert run.completed_at is not None and run.updated_at >= run.created_at

    steps = await client.get_steps(result.id)
    assert [(step.name, step.index, step.status, step.output) for step in steps] == [
        ("row-0", 0, "completed", "ADA"), ("row-1", 1, "completed", "GRACE"),
    ]  # fmt: skip


async def test_get_runs_filters_by_job_and_status_and_pages(client: DurablyClient, tmp_path: Path) -> None:
    first = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    second = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    flag = tmp_path / "up"
    flag.touch()
    with pytest.raises(RunFailedError):
        await client.trigger_and_wait("flaky", {"flag": str(flag)}, timeout=WAIT)
    slow = await client.trigger("slow-job", {"steps": 100, "delay": 0.05})
    await wait_status(client, slow, "running")

    assert [run.id for run in await client.get_runs(job_name="import-csv")] == [second.id, first.id]
    assert len(await client.get_runs(job_name=["import-csv", "flaky"])) == 3
    assert [run.job_name for run in await client.get_runs(status="failed")] == ["flaky"]
    assert [run.id for run in await client.get_runs(status="running")] == [slow]  # Node: "leased"
    assert len(await client.get_runs(status=["failed", "completed"])) == 3
    assert [run.id for run in await client.get_runs(job_name="import-csv", limit=1, offset=1)] == [first.id]
    await client.cancel(slow)


async def test_waiting_on_a_settled_run_answers_at_once(client: DurablyClient, tmp_path: Path) -> None:
    done = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    assert (await client.wait_for_run(done.id, timeout=2)).output == done.output

    flag = tmp_path / "up"
    flag.touch()
    failed = await client.trigger("flaky", {"flag": str(flag)})
    await wait_status(client, failed, "failed")
    with pytest.raises(RunFailedError, match="^flag up is up$"):
        await client.wait_for_run(failed, timeout=2)


# -- events -------------------------------------------------------------------------------------------------
async def test_subscribe_gives_the_run_first_then_every_event_to_completion(client: DurablyClient) -> None:
    states: list[ConnectionState] = []
    run_id = await client.trigger("import-csv", {**ROWS, "delay": 0.3})
    stream = client.subscribe(run_id, on_state=states.append)
    events = await collect(stream)

    assert isinstance(events[0], RunSnapshot) and events[0].run.id == run_id  # read from /run on Node
    assert isinstance(events[-1], RunComplete) and events[-1].output == {"imported": 2, "names": ["ADA", "GRACE"]}
    steps = [(type(event), event.step_name) for event in events if isinstance(event, (StepStart, StepComplete))]
    # The last step's completion; its start too unless the stream attached after it (a slow machine).
    assert steps[-1] == (StepComplete, "row-1") and steps.count((StepStart, "row-1")) <= 1
    assert [event.message for event in events if isinstance(event, LogWrite)][-1] == "imported grace"
    assert [event.progress.current for event in events if isinstance(event, RunProgress)][-1] == 2
    assert states == ["connecting", "open", "closed"] and stream.reconnects == 0


async def test_subscribe_to_a_completed_run_is_its_state_and_the_end(client: DurablyClient) -> None:
    done = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    events = await collect(client.subscribe(done.id))
    assert len(events) == 1 and isinstance(events[0], RunSnapshot)
    assert events[0].run.status == RunStatus.COMPLETED and events[0].run.output == done.output


async def test_subscribe_runs_notifies_of_one_jobs_runs(client: DurablyClient) -> None:
    opened = asyncio.Event()
    stream = client.subscribe_runs("import-csv", on_state=lambda state: state == "open" and opened.set())
    async with stream:
        first = asyncio.create_task(anext(stream))
        await asyncio.wait_for(opened.wait(), WAIT)
        await client.trigger("slow-job", {"steps": 1, "delay": 0})
        run_id = await client.trigger("import-csv", {**ROWS, "delay": 0.2})
        events = [
            await asyncio.wait_for(first, WAIT),
            *await collect(stream, until=lambda e: isinstance(e, RunComplete)),
        ]
    assert {event.run_id for event in events} == {run_id} and {event.job_name for event in events} == {"import-csv"}
    assert any(isinstance(event, StepComplete) and event.step_name == "row-1" for event in events)


async def test_subscribe_runs_filters_types_even_where_the_server_does_not(client: DurablyClient) -> None:
    opened = asyncio.Event()
    stream = client.subscribe_runs(
        types=["run:trigger", "run:complete"], on_state=lambda s: s == "open" and opened.set()
    )
    async with stream:
        first = asyncio.create_task(anext(stream))
        await asyncio.wait_for(opened.wait(), WAIT)
        run_id = await client.trigger("import-csv", {**ROWS, "delay": 0.2})
        events = [
            await asyncio.wait_for(first, WAIT),
            *await collect(stream, until=lambda e: isinstance(e, RunComplete)),
        ]
    assert {event.type for event in events} <= {"run:trigger", "run:complete"} and events[-1].run_id == run_id


# -- logs ---------------------------------------------------------------------------------------------------
async def test_logs_come_live_everywhere_and_stored_where_the_server_keeps_them(
    server: Server, client: DurablyClient
) -> None:
    run_id = await client.trigger("import-csv", {**ROWS, "delay": 0.2})
    live = [event.message for event in await collect(client.subscribe(run_id)) if isinstance(event, LogWrite)]
    assert live[-1] == "imported grace"
    if server.is_ours:
        stored = await client.get_logs(run_id)
        assert all(isinstance(entry, LogEntry) for entry in stored)
        assert [entry.message for entry in stored] == ["imported ada", "imported grace"]
    else:
        with pytest.raises(FeatureNotSupportedError, match="does not offer GET /logs"):
            await client.get_logs(run_id)


async def test_routes_the_server_lacks_are_reported_as_not_offered(server: Server, client: DurablyClient) -> None:
    if server.is_ours:
        assert {job.name for job in await client.list_jobs()} == {"import-csv", "flaky", "slow-job"}
        assert isinstance(await client.get_stats(), RunStats)
        return
    for call, feature in ((client.list_jobs, "GET /jobs"), (client.get_stats, "GET /stats")):
        with pytest.raises(FeatureNotSupportedError) as caught:
            await call()
        assert isinstance(caught.value, NotFoundError) and caught.value.feature == feature
        assert str(caught.value).startswith(f"The server does not offer {feature}")


# -- actions ------------------------------------------------------------------------------------------------
async def test_retry_runs_a_failed_run_again(server: Server, client: DurablyClient, tmp_path: Path) -> None:
    flag = tmp_path / "up"
    flag.touch()
    run_id = await client.trigger("flaky", {"flag": str(flag)})
    with pytest.raises(RunFailedError):
        await client.wait_for_run(run_id, timeout=WAIT)
    flag.unlink()
    retried = await client.retry(run_id)
    assert (await client.wait_for_run(retried, timeout=WAIT)).output == "ok"
    if server.is_ours:
        assert retried == run_id  # the same run, back to pending
    else:
        assert retried != run_id  # a new run with the same input (/retrigger)
        assert (await client.get_run(run_id)).status == RunStatus.FAILED  # type: ignore[union-attr]


async def test_cancel_and_delete_and_their_conflicts(client: DurablyClient) -> None:
    run_id = await client.trigger("slow-job", {"steps": 100, "delay": 0.05})
    await wait_status(client, run_id, "running")
    with pytest.raises(RunStateError) as refused:
        await client.delete_run(run_id)
    assert (refused.value.action, refused.value.status, refused.value.run_id) == ("delete", "running", run_id)
    await client.cancel(run_id)
    with pytest.raises(RunCancelledError):
        await client.wait_for_run(run_id, timeout=WAIT)
    with pytest.raises(RunStateError, match=f"^Cannot cancel already cancelled run: {run_id}$"):
        await client.cancel(run_id)
    await client.delete_run(run_id)
    assert await client.get_run(run_id) is None


async def test_unknown_runs_are_none_or_run_not_found(client: DurablyClient) -> None:
    assert await client.get_run("no-such-run") is None
    for call in (client.get_steps, client.retry, client.cancel, client.delete_run):
        with pytest.raises(RunNotFoundError) as caught:
            await call("no-such-run")
        assert caught.value.run_id == "no-such-run" and str(caught.value) == "Run not found: no-such-run"
    with pytest.raises(RunNotFoundError):
        await collect(client.subscribe("no-such-run"))


async def test_refusals_are_typed_errors(client: DurablyClient) -> None:
    with pytest.raises(JobNotFoundError) as unknown:
        await client.trigger("importCsv", ROWS)
    assert unknown.value.job_name == "importCsv"
    with pytest.raises(InvalidInputError, match="name"):
        await client.trigger("import-csv", {"rows": [{"nom": "ada"}]})
    with pytest.raises(InvalidArgumentError, match="bogus"):
        await client.get_runs(status="bogus")
    with pytest.raises(InvalidArgumentError):
        await client.get_runs(limit=-1)


# -- the hook states' sources -------------------------------------------------------------------------------
@dataclass
class LogsView(RunView):
    log_history_offered: bool = True


async def test_a_run_view_follows_a_running_run_to_the_end(server: Server, client: DurablyClient) -> None:
    names = [f"n{index}" for index in range(5)]
    run_id = await client.trigger("import-csv", {"rows": [{"name": name} for name in names], "delay": 0.3})
    await wait_status(client, run_id, "running")
    view = LogsView(current_run_id=run_id)
    statuses: list[str | None] = []
    async with consuming("tab", "run", probe=always_there) as consumer:
        consumer.start_source("run", follow_run(consumer, client, run_id), follows=run_id)
        await apply_until(consumer, view, lambda v: statuses.append(v.status) or v.connection == "closed")
    shown = [status for index, status in enumerate(statuses) if index == 0 or status != statuses[index - 1]]
    assert shown == [None, "running", "completed"]
    assert view.output == {"imported": 5, "names": [name.upper() for name in names]} and view.error is None
    assert [row["name"] for row in view.steps] == [f"row-{index}" for index in range(5)]
    messages = [line["message"] for line in view.logs]
    if server.is_ours:  # the stored history, then live lines
        assert view.log_history_offered and messages == [f"imported {name}" for name in names]
    else:  # no history to fetch: the lines logged while the view watched
        assert not view.log_history_offered and messages and messages[-1] == "imported n4"
        assert messages == [f"imported {name}" for name in names][-len(messages) :]


async def test_a_runs_stream_reads_again_what_it_missed_while_away(server: Server, client: DurablyClient) -> None:
    view = RunsView(client)
    async with consuming("tab", "runs", probe=always_there) as consumer:
        consumer.start_source("runs", _follow_runs(consumer, client, None))
        await apply_until(consumer, view, lambda v: v.connection == "open")
        await asyncio.to_thread(server.stop)
        await apply_until(consumer, view, lambda v: v.connection == "reconnecting")
        # While it is away, a run is triggered and completes through another server on the database.
        elsewhere_api = await asyncio.to_thread(server.start, free_port())
        async with DurablyClient(elsewhere_api) as elsewhere:
            missed = await elsewhere.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        await apply_until(
            consumer, view, lambda v: any(r["id"] == missed.id and r["status"] == "completed" for r in v.runs)
        )


async def test_use_runs_pages_runs_filtered_by_status(client: DurablyClient) -> None:
    await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    run_id = await client.trigger("slow-job", {"steps": 100, "delay": 0.05})
    await wait_status(client, run_id, "running")
    state = tab(use_runs(client, status="running"))
    state._configure()
    await state._load()
    assert state.error is None and [(row["id"], row["status"]) for row in state.runs] == [(run_id, "running")]
    await client.cancel(run_id)


async def test_use_job_resumes_the_jobs_running_run(client: DurablyClient) -> None:
    run_id = await client.trigger("slow-job", {"steps": 100, "delay": 0.05})
    await wait_status(client, run_id, "running")
    state = tab(use_job(client, "slow-job"))
    assert await state._run_to_resume(client) == run_id
    await client.cancel(run_id)


async def test_use_run_stats_counts_or_says_the_server_offers_none(server: Server, client: DurablyClient) -> None:
    await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    state = tab(use_run_stats(client))
    await state._load()
    assert state.error is None
    if server.is_ours:
        assert state.stats_offered and state.counts["completed"] == 1
    else:
        assert not state.stats_offered and state.counts == {}


async def test_use_run_actions_retry_cancel_delete(server: Server, client: DurablyClient, tmp_path: Path) -> None:
    actions = tab(use_run_actions(client))
    flag = tmp_path / "up"
    flag.touch()
    failed = await client.trigger("flaky", {"flag": str(flag)})
    await wait_status(client, failed, "failed")
    flag.unlink()
    async for _ in actions.retry(failed):
        pass
    assert actions.error is None and actions.retried_run_id is not None
    assert (await client.wait_for_run(actions.retried_run_id, timeout=WAIT)).output == "ok"
    assert (actions.retried_run_id == failed) is server.is_ours

    running = await client.trigger("slow-job", {"steps": 100, "delay": 0.05})
    await wait_status(client, running, "running")
    async for _ in actions.delete_run(running):
        pass
    assert actions.error == f"Cannot delete {'running' if server.is_ours else 'leased'} run: {running}"
    async for _ in actions.cancel(running):
        pass
    assert actions.error is None and actions.message == f"Cancelled run {running}"
    await wait_status(client, running, "cancelled")
    async for _ in actions.delete_run(running):
        pass
    assert actions.error is None and await client.get_run(running) is None
