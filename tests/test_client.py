"""DurablyClient against the real server: `create_durably_handler` served by uvicorn on a free port of
127.0.0.1, on its own thread and event loop, with a real engine on a fresh SQLite file.

Covers every method, the typed errors and their messages, per-job typed access, event streams
(snapshot first, end after completion, job filter) and reconnection across a server restart.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import FAST
from pydantic import BaseModel

from durably_reflex import (
    Durably,
    InvalidArgumentError,
    InvalidInputError,
    JobNotFoundError,
    NotFoundError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    RunStateError,
    RunStatus,
    WaitTimeoutError,
    create_durably,
    define_job,
)
from durably_reflex._client import (
    AuthError,
    ClientConnectionError,
    ConnectionState,
    DurablyClient,
    EventStream,
    JobInfo,
    PayloadTooLargeError,
    create_durably_client,
)
from durably_reflex._wire_events import (
    LogWrite,
    RunCancel,
    RunComplete,
    RunDelete,
    RunFail,
    RunProgress,
    RunSnapshot,
    RunStart,
    RunTrigger,
    StepComplete,
    StepStart,
    WireEvent,
)
from durably_reflex.server import DurablyAuth, create_durably_handler

WAIT = 10.0  # upper bound of any single wait in these tests


# -- jobs -----------------------------------------------------------------------------------------------
class Row(BaseModel):
    name: str


class ImportInput(BaseModel):
    rows: list[Row]
    delay: float = 0.0


class ImportOutput(BaseModel):
    imported: int
    names: list[str]


def shout(name: str, delay: float) -> str:
    time.sleep(delay)
    return name.upper()


@define_job(name="import-csv", input=ImportInput, output=ImportOutput)
async def import_csv(step: Any, input: ImportInput) -> ImportOutput:
    names = []
    for index, row in enumerate(input.rows):
        names.append(await step.run(f"row-{index}", shout, row.name, input.delay))
        step.progress(index + 1, len(input.rows), f"row {index + 1}")
        step.log.info(f"imported {row.name}", {"row": index})
    return ImportOutput(imported=len(names), names=names)


class FlagInput(BaseModel):
    flag: str  # a file: the job fails while it exists


def check_flag(path: str) -> bool:
    if os.path.exists(path):
        raise RuntimeError(f"flag {os.path.basename(path)} is up")
    return True


@define_job(name="flaky", input=FlagInput)
async def flaky(step: Any, input: FlagInput) -> str:
    await step.run("check", check_flag, input.flag)
    return "ok"


class SlowInput(BaseModel):
    steps: int = 5
    delay: float = 0.2


@define_job(name="slow-job", input=SlowInput)
async def slow(step: Any, input: SlowInput) -> int:
    for index in range(input.steps):  # async steps: an engine shutting down can interrupt between them
        await step.run(f"tick-{index}", asyncio.sleep, input.delay)
        step.progress(index + 1, input.steps)
    return input.steps


def register(durably: Durably) -> Durably:
    """Registration keys differ from job names on purpose: the client must send the names."""
    return durably.register(import_csv=import_csv, flaky=flaky, slow=slow)


# -- the server -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """A server process in miniature: its own engine on `db_url`, `create_durably_handler` under uvicorn,
    on a thread with its own event loop. Stopping it shuts uvicorn down (cutting open streams after a
    short grace) and closes the engine, handing interrupted runs back as pending, as a restart would."""

    def __init__(self, db_url: str, port: int, auth: DurablyAuth | None = None) -> None:
        self.db_url = db_url
        self.port = port
        self.auth = auth
        self.api = f"http://127.0.0.1:{port}/api/durably"
        self.durably = register(create_durably(db_url, **FAST))
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=self._main, name=f"durably-server-{port}", daemon=True)
        self._failure: BaseException | None = None

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + WAIT
        while not (self._server is not None and self._server.started):
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError("the test server did not start") from self._failure
            if time.monotonic() > deadline:
                raise TimeoutError("the test server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the test server did not stop"

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start(); a thread has nowhere else to raise it
            self._failure = error

    async def _serve(self) -> None:
        await self.durably.init()
        config = uvicorn.Config(
            create_durably_handler(self.durably, auth=self.auth, expose_error_stack=True),  # the client carries it
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=0.2,
        )
        self._server = uvicorn.Server(config)
        try:
            await self._server.serve()
        finally:
            await self.durably.close(timeout=0.2)


@pytest.fixture
def server(db_url: str) -> Iterator[ServerThread]:
    running = ServerThread(db_url, free_port()).start()
    yield running
    running.stop()


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[DurablyClient]:
    async with DurablyClient(server.api) as plain:
        yield plain


async def collect(stream: EventStream, until: Callable[[WireEvent], bool] | None = None) -> list[WireEvent]:
    """Every event of `stream` until it ends (or until one satisfies `until`), within WAIT seconds."""
    events: list[WireEvent] = []
    async with asyncio.timeout(WAIT):
        async for event in stream:
            events.append(event)
            if until is not None and until(event):
                break
    return events


def is_a(cls: type) -> Callable[[WireEvent], bool]:
    return lambda event: isinstance(event, cls)


def shows(status: RunStatus, settling: type) -> Callable[[WireEvent], bool]:
    """The run has reached `status`: by its `settling` event, or already in a snapshot (events that
    happened before the stream started need not follow it)."""
    return lambda event: isinstance(event, settling) or (isinstance(event, RunSnapshot) and event.run.status == status)


async def wait_status(client: DurablyClient, run_id: str, *statuses: str) -> Any:
    async with asyncio.timeout(WAIT):
        while (run := await client.get_run(run_id)) is None or run.status not in statuses:
            await asyncio.sleep(0.02)
    return run


ROWS = {"rows": [{"name": "ada"}, {"name": "grace"}]}


# -- requests ---------------------------------------------------------------------------------------------
async def test_trigger_wait_and_read_back_a_run(client: DurablyClient) -> None:
    result = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    assert result.output == {"imported": 2, "names": ["ADA", "GRACE"]}

    run = await client.get_run(result.id)
    assert run is not None
    assert (run.job_name, run.status, run.input, run.step_count) == (
        "import-csv",
        RunStatus.COMPLETED,
        {**ROWS, "delay": 0.0},
        2,
    )
    assert run.progress is not None and (run.progress.current, run.progress.total) == (2, 2)
    assert run.completed_at is not None and run.completed_at.tzinfo is not None

    steps = await client.get_steps(result.id)
    assert [(step.name, step.index, step.status, step.output) for step in steps] == [
        ("row-0", 0, "completed", "ADA"), ("row-1", 1, "completed", "GRACE"),
    ]  # fmt: skip

    logs = await client.get_logs(result.id)
    assert [(log.step_name, log.level, log.message, log.data) for log in logs] == [
        (None, "info", "imported ada", {"row": 0}),
        (None, "info", "imported grace", {"row": 1}),
    ]  # fmt: skip (logged between steps, so no step name)
    assert await client.get_logs(result.id, after=logs[0].id) == logs[1:]
    assert await client.get_logs(result.id, limit=1) == logs[:1]


async def test_list_jobs_gives_names_and_schemas(client: DurablyClient) -> None:
    jobs = {job.name: job for job in await client.list_jobs()}
    assert set(jobs) == {"import-csv", "flaky", "slow-job"}
    assert isinstance(jobs["import-csv"], JobInfo)
    assert jobs["import-csv"].input_schema == ImportInput.model_json_schema()
    assert jobs["import-csv"].output_schema == ImportOutput.model_json_schema()
    assert jobs["flaky"].output_schema is None


async def test_get_runs_filters_by_job_and_status_and_pages(client: DurablyClient, tmp_path: Path) -> None:
    first = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    second = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    flag = tmp_path / "up"
    flag.touch()
    with pytest.raises(RunFailedError):
        await client.trigger_and_wait("flaky", {"flag": str(flag)}, timeout=WAIT)

    assert [run.id for run in await client.get_runs(job_name="import-csv")] == [second.id, first.id]
    assert len(await client.get_runs(job_name=["import-csv", "flaky"])) == 3
    assert [run.job_name for run in await client.get_runs(status="failed")] == ["flaky"]
    assert len(await client.get_runs(status=["failed", "completed"])) == 3
    assert [run.id for run in await client.get_runs(job_name="import-csv", limit=1)] == [second.id]
    assert [run.id for run in await client.get_runs(job_name="import-csv", limit=1, offset=1)] == [first.id]
    assert await client.get_runs(job_name="slow-job") == []


async def test_idempotency_and_concurrency_keys_reach_the_run(client: DurablyClient) -> None:
    run_id = await client.trigger("import-csv", ROWS, idempotency_key="once", concurrency_key="csv")
    assert await client.trigger("import-csv", ROWS, idempotency_key="once") == run_id
    run = await client.get_run(run_id)
    assert run is not None and (run.idempotency_key, run.concurrency_key) == ("once", "csv")


async def test_unknown_runs(client: DurablyClient) -> None:
    assert await client.get_run("no-such-run") is None
    for call in (client.get_steps, client.get_logs, client.retry, client.cancel, client.delete_run):
        with pytest.raises(RunNotFoundError) as caught:
            await call("no-such-run")
        assert caught.value.run_id == "no-such-run" and str(caught.value) == "Run not found: no-such-run"


async def test_bad_requests_are_typed_errors_with_the_servers_message(client: DurablyClient) -> None:
    with pytest.raises(JobNotFoundError) as not_found:
        await client.trigger("importCsv", ROWS)
    assert not_found.value.job_name == "importCsv" and str(not_found.value) == "Job not found: importCsv"

    with pytest.raises(InvalidInputError) as invalid:
        await client.trigger("import-csv", {"rows": [{"nom": "ada"}]})
    assert "rows.0.name" in str(invalid.value)
    assert [tuple(detail["loc"]) for detail in invalid.value.errors] == [("rows", 0, "name")]

    with pytest.raises(InvalidArgumentError, match="bogus"):
        await client.get_runs(status="bogus")
    with pytest.raises(InvalidArgumentError, match="^limit must be a whole number from 0 to 1000"):
        await client.get_runs(limit=-1)
    with pytest.raises(PayloadTooLargeError, match="larger than 1048576 bytes"):
        await client.trigger("import-csv", {"rows": [{"name": "x" * 1_100_000}]})


async def test_a_wrong_base_path_is_not_found_rather_than_no_run(server: ServerThread) -> None:
    async with DurablyClient(server.api.replace("/api/durably", "/api/wrong")) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.get_run("anything")
    assert type(caught.value) is NotFoundError


async def test_auth_refusals_are_auth_errors_and_headers_are_sent(db_url: str) -> None:
    auth = DurablyAuth(
        authenticate=lambda request: request.headers.get("x-token") == "secret" or None,
        can_trigger=lambda caller, job_name, input: job_name != "flaky",
    )
    server = ServerThread(db_url, free_port(), auth).start()
    try:
        async with DurablyClient(server.api) as anonymous:
            with pytest.raises(AuthError) as unauthenticated:
                await anonymous.get_runs()
            assert unauthenticated.value.status_code == 401 and str(unauthenticated.value) == "Unauthorized"
            with pytest.raises(AuthError):
                await anext(anonymous.subscribe_runs())
        async with DurablyClient(server.api, headers={"x-token": "secret"}) as client:
            assert (await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)).output["imported"] == 2
            with pytest.raises(AuthError) as forbidden:
                await client.trigger("flaky", {"flag": "x"})
            assert forbidden.value.status_code == 403 and str(forbidden.value) == "Not allowed to trigger flaky"
    finally:
        server.stop()


async def test_actions_and_their_conflicts(client: DurablyClient, tmp_path: Path) -> None:
    flag = tmp_path / "up"
    flag.touch()
    run_id = await client.trigger("flaky", {"flag": str(flag)})
    with pytest.raises(RunFailedError) as failed:
        await client.wait_for_run(run_id, timeout=WAIT)
    assert str(failed.value) == "flag up is up" and "RuntimeError" in (failed.value.error_stack or "")

    with pytest.raises(RunStateError) as conflict:
        await client.cancel(run_id)
    assert (conflict.value.action, conflict.value.status) == ("cancel", "failed")
    assert str(conflict.value) == f"Cannot cancel failed run: {run_id}"

    flag.unlink()
    await client.retry(run_id)
    assert (await client.wait_for_run(run_id, timeout=WAIT)).output == "ok"
    with pytest.raises(RunStateError, match=f"^Cannot retry completed run: {run_id}$"):
        await client.retry(run_id)

    await client.delete_run(run_id)
    assert await client.get_run(run_id) is None


async def test_cancel_and_delete_of_a_running_run(client: DurablyClient) -> None:
    run_id = await client.trigger("slow-job", {"steps": 50, "delay": 0.05})
    await wait_status(client, run_id, "running")
    with pytest.raises(RunStateError, match=f"^Cannot delete running run: {run_id}$"):
        await client.delete_run(run_id)
    await client.cancel(run_id)
    with pytest.raises(RunCancelledError) as cancelled:
        await client.wait_for_run(run_id, timeout=WAIT)
    assert cancelled.value.run_id == run_id
    with pytest.raises(RunStateError, match=f"^Cannot cancel already cancelled run: {run_id}$"):
        await client.cancel(run_id)


async def test_wait_times_out_and_settles_at_once_on_an_ended_run(client: DurablyClient) -> None:
    run_id = await client.trigger("slow-job", {"steps": 50, "delay": 0.05})
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as timed_out:
        await client.wait_for_run(run_id, timeout=0.3)
    assert timed_out.value.run_id == run_id and 0.3 <= time.monotonic() - started < 2
    await client.cancel(run_id)

    done = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    started = time.monotonic()
    assert (await client.wait_for_run(done.id, timeout=WAIT)).output == done.output  # from the snapshot
    assert time.monotonic() - started < 1


async def test_network_failure_is_a_client_connection_error() -> None:
    async with DurablyClient(f"http://127.0.0.1:{free_port()}/api/durably", timeout=2) as client:
        with pytest.raises(ClientConnectionError) as caught:
            await client.get_runs()
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# -- typed access per job -----------------------------------------------------------------------------------
async def test_typed_client_validates_locally_sends_real_names_and_parses_outputs(server: ServerThread) -> None:
    requests: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        client = create_durably_client(server.durably, server.api, http=http)

        with pytest.raises(InvalidInputError, match=r"rows\.0\.name") as invalid:
            await client.import_csv.trigger({"rows": [{}]})
        assert invalid.value.errors[0]["loc"] == ("rows", 0, "name") and requests == []

        result = await client.import_csv.trigger_and_wait(ImportInput(rows=[Row(name="ada")]), timeout=WAIT)
        assert result.output == ImportOutput(imported=1, names=["ADA"])
        assert b'"jobName":"import-csv"' in requests[0].content

        run_id = await client.import_csv.trigger({"rows": [{"name": "x"}]})
        assert (await client.import_csv.wait_for_run(run_id, timeout=WAIT)).output.names == ["X"]
        assert {run.id for run in await client.import_csv.get_runs()} == {result.id, run_id}
        assert await client.import_csv.get_runs(status="failed") == []
        assert await client.slow.get_runs() == []
        assert await client.slow.get_run(run_id) is None  # another job's run
        assert (await client.import_csv.get_run(run_id)) == await client.get_run(run_id)  # untyped methods too

        with pytest.raises(AttributeError, match="registered: flaky, import_csv, slow"):
            client.importCsv
        await client.aclose()
        assert not http.is_closed  # it was passed in: closing it is its owner's job


# -- event streams ----------------------------------------------------------------------------------------------
async def test_subscribe_yields_the_snapshot_then_every_event_and_ends_after_complete(client: DurablyClient) -> None:
    states: list[ConnectionState] = []
    run_id = await client.trigger("import-csv", {**ROWS, "delay": 0.3})
    stream = client.subscribe(run_id, on_state=states.append)
    assert stream.state == "connecting"
    events = await collect(stream)

    assert isinstance(events[0], RunSnapshot) and events[0].run.id == run_id
    assert isinstance(events[-1], RunComplete) and events[-1].output == {"imported": 2, "names": ["ADA", "GRACE"]}
    assert events[-1].timestamp is not None and events[-1].sequence is not None
    if events[0].run.status == RunStatus.PENDING:
        assert any(isinstance(event, RunStart) for event in events)
    steps = [(type(event), event.step_name) for event in events if isinstance(event, (StepStart, StepComplete))]
    # The last step's completion; its start too unless the stream attached after it (a slow machine).
    assert steps[-1] == (StepComplete, "row-1") and steps.count((StepStart, "row-1")) <= 1
    assert [event.message for event in events if isinstance(event, LogWrite)][-1] == "imported grace"
    assert [event.progress.current for event in events if isinstance(event, RunProgress)][-1] == 2
    assert states == ["connecting", "open", "closed"] and stream.state == "closed" and stream.reconnects == 0


async def test_subscribe_to_a_completed_run_is_its_snapshot(client: DurablyClient) -> None:
    done = await client.trigger_and_wait("import-csv", ROWS, timeout=WAIT)
    events = await collect(client.subscribe(done.id))
    assert len(events) == 1 and isinstance(events[0], RunSnapshot)
    assert events[0].run.status == RunStatus.COMPLETED and events[0].run.output == done.output


async def test_subscribe_to_an_unknown_run_raises(client: DurablyClient) -> None:
    states: list[ConnectionState] = []
    with pytest.raises(RunNotFoundError, match="^Run not found: nope$"):
        await collect(client.subscribe("nope", on_state=states.append))
    assert states == ["connecting", "closed"]


async def test_subscribe_stays_open_through_fail_and_retry(client: DurablyClient, tmp_path: Path) -> None:
    flag = tmp_path / "up"
    flag.touch()
    run_id = await client.trigger("flaky", {"flag": str(flag)})
    async with client.subscribe(run_id) as stream:
        seen = await collect(stream, until=shows(RunStatus.FAILED, RunFail))
        failed = seen[-1].run if isinstance(seen[-1], RunSnapshot) else seen[-1]
        assert failed.error == "flag up is up"
        flag.unlink()
        await client.retry(run_id)  # the stream is still open: it sees the retry through to completion
        rest = await collect(stream)
    assert isinstance(rest[-1], RunComplete) and rest[-1].output == "ok"


async def test_subscribe_ends_when_the_run_is_cancelled_then_deleted(client: DurablyClient) -> None:
    run_id = await client.trigger("slow-job", {"steps": 50, "delay": 0.05})
    async with client.subscribe(run_id) as stream:
        assert isinstance(await anext(stream), RunSnapshot)
        await client.cancel(run_id)
        assert isinstance((await collect(stream, until=is_a(RunCancel)))[-1], RunCancel)
        await wait_status(client, run_id, "cancelled")
        await client.delete_run(run_id)
        assert isinstance((await collect(stream))[-1], RunDelete)
    assert stream.state == "closed"


async def test_subscribe_runs_notifies_of_one_jobs_runs(client: DurablyClient) -> None:
    opened = asyncio.Event()
    stream = client.subscribe_runs("import-csv", on_state=lambda state: state == "open" and opened.set())
    async with stream:
        first = asyncio.create_task(anext(stream))
        await asyncio.wait_for(opened.wait(), WAIT)
        await asyncio.sleep(0.2)  # the server subscribes to the feed once the response has started
        await client.trigger("slow-job", {"steps": 1, "delay": 0})
        run_id = await client.trigger("import-csv", ROWS)
        events = [await asyncio.wait_for(first, WAIT), *await collect(stream, until=is_a(RunComplete))]
    assert {event.run_id for event in events} == {run_id} and {event.job_name for event in events} == {"import-csv"}
    assert isinstance(events[0], RunTrigger) and isinstance(events[-1], RunComplete)
    assert any(isinstance(event, StepComplete) and event.step_name == "row-1" for event in events)
    assert stream.state == "closed"


# -- reconnection --------------------------------------------------------------------------------------------
async def test_subscribe_resumes_across_a_server_restart(db_url: str) -> None:
    port = free_port()
    first = ServerThread(db_url, port).start()
    second: ServerThread | None = None
    requests: list[httpx.Request] = []
    states: list[ConnectionState] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    try:
        async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
            client = DurablyClient(first.api, http=http)
            run_id = await client.trigger("slow-job", {"steps": 8, "delay": 0.15})
            async with client.subscribe(run_id, on_state=states.append) as stream:
                before = await collect(stream, until=is_a(StepComplete))
                last_id_seen = stream.last_event_id
                await asyncio.to_thread(first.stop)
                second = ServerThread(db_url, port).start()
                after = await collect(stream)

        assert isinstance(before[0], RunSnapshot) and last_id_seen is not None
        snapshots = [event for event in after if isinstance(event, RunSnapshot)]
        assert snapshots and snapshots[0].run.status != RunStatus.COMPLETED  # it resumed mid-run
        assert isinstance(after[-1], RunComplete) and after[-1].output == 8
        # No gap: what the resumed snapshot counts as done, plus every step completed after it, is all.
        done_by_then = {f"tick-{index}" for index in range(snapshots[0].run.step_count)}
        completed_after = {event.step_name for event in after if isinstance(event, StepComplete)}
        assert done_by_then | completed_after == {f"tick-{index}" for index in range(8)}
        assert stream.reconnects >= 1 and states[0] == "connecting" and states[-1] == "closed"
        assert "reconnecting" in states and states.count("open") >= 2
        resumed = [request for request in requests if request.url.path.endswith("/subscribe")][1:]
        assert resumed and all(request.headers.get("last-event-id") for request in resumed)
    finally:
        first.stop()
        if second is not None:
            second.stop()
