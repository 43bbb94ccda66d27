"""Shared fixtures of the HTTP/SSE server tests: a REAL uvicorn server on a free port of 127.0.0.1,
served as a task of the test's own event loop, in front of a real engine on a SQLite file in tmp_path.

- `serve(**options)` (fixture) starts a server and returns a `LiveServer`: its engine (`.durably`),
  an httpx client whose base URL is the API's base path (`.client`), and `.stream(...)` to open raw SSE
  streams. Options are those of `create_durably_handler` plus `start_worker` (False: only migrate),
  `durably` (an engine of the test's own), `base_path`, `jobs` and `host_app` (an ASGI app mounted
  at "" below the handler, as Reflex's `api_transformer` does). Each server gets its own database
  file, a copy of one migrated once per session. Teardown closes streams and clients, stops
  uvicorn, closes the engine and opens every gate, whatever the test did.
- Jobs run on the engine's worker thread (its runner loop, not the test's), so they are coordinated
  with `GATES` (named `threading.Event`s), never with asyncio objects of the test's loop.
- `SseStream` keeps every byte the server sent, split into frames on the blank line, so tests can
  check framing byte for byte; reads are bounded (`WAIT`), and a read that times out does not break
  the connection (a pump task owns the response body).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import BaseModel

from durably_reflex import Durably, create_durably, define_job
from durably_reflex.server import create_durably_handler

FAST = {"polling_interval": 0.05, "heartbeat_interval": 0.05, "stale_threshold": 0.5}
WAIT = 10.0  # upper bound of any single wait
BASE_PATH = "/api/durably"
KEEP_ALIVE = b": keep-alive\n\n"


# -- gates: how tests hold and release job code running on worker threads -------------------------
class Gates:
    """Named `threading.Event`s shared by the test and the jobs of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self._names = itertools.count(1)

    def new(self, prefix: str = "gate") -> str:
        name = f"{prefix}-{next(self._names)}"
        self.get(name)
        return name

    def get(self, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def open(self, name: str) -> None:
        self.get(name).set()

    def is_open(self, name: str | None) -> bool:
        return name is not None and self.get(name).is_set()

    def wait(self, name: str, timeout: float = 15.0) -> None:
        """Block the calling thread (a synchronous step's) until the gate opens (bounded: a
        forgotten gate fails the run)."""
        if not self.get(name).wait(timeout):
            raise TimeoutError(f"gate {name} stayed closed for {timeout}s")

    async def passed(self, name: str) -> None:
        """`wait`, for job code outside steps: on a thread, so that the worker's other runs go on."""
        await asyncio.to_thread(self.wait, name)

    def open_all(self) -> None:
        with self._lock:
            events = list(self._events.values())
        for event in events:
            event.set()


GATES = Gates()


# -- jobs ----------------------------------------------------------------------------------------
class Row(BaseModel):
    name: str


class ImportInput(BaseModel):
    rows: list[Row]


class ImportOutput(BaseModel):
    imported: int


async def import_rows(step: Any, input: ImportInput) -> ImportOutput:
    for i, row in enumerate(input.rows):

        def work(row: Row = row, i: int = i) -> str:
            step.log.info(f"imported {row.name}", {"row": i})
            return row.name.upper()

        await step.run(f"row-{i}", work)
        step.progress(i + 1, len(input.rows), f"row {i}")
    return ImportOutput(imported=len(input.rows))


import_job = define_job(name="import-rows", input=ImportInput, output=ImportOutput, run=import_rows)


class ScriptInput(BaseModel):
    steps: int = 3
    hold_at: int | None = None  # before this step index, wait for `gate`
    gate: str | None = None
    holds: dict[int, str] = {}  # more of the same: step index -> gate
    fail_at: int | None = None  # this step raises while `fail_gate` is closed
    fail_gate: str | None = None
    sleep: float = 0.0  # inside each step
    progress: bool = True
    log: bool = True


async def script(step: Any, input: ScriptInput) -> dict[str, Any]:
    for i in range(input.steps):
        if input.hold_at == i and input.gate is not None:
            await GATES.passed(input.gate)
        if i in input.holds:
            await GATES.passed(input.holds[i])

        def work(i: int = i) -> dict[str, int]:
            if input.fail_at == i and not GATES.is_open(input.fail_gate):
                raise RuntimeError(f"step {i} failed on purpose")
            if input.sleep:
                time.sleep(input.sleep)
            if input.log:
                step.log.info(f"step {i}", {"i": i})
            return {"i": i}

        await step.run(f"step-{i}", work)
        if input.progress:
            step.progress(i + 1, input.steps, f"step {i} done")
    return {"steps": input.steps}


script_job = define_job(name="script", input=ScriptInput, run=script)


class BurstInput(BaseModel):
    count: int = 100
    pause: float = 0.005
    gate: str | None = None  # wait for it before the burst


async def progress_burst(step: Any, input: BurstInput) -> dict[str, int]:
    if input.gate is not None:
        await GATES.passed(input.gate)
    for i in range(1, input.count + 1):
        step.progress(i, input.count)
        await asyncio.sleep(input.pause)
    return {"count": input.count}


burst_job = define_job(name="progress-burst", input=BurstInput, run=progress_burst)


class SteppedInput(BaseModel):
    gates: list[str]  # progress 1, then after each gate opens the next value


async def stepped_progress(step: Any, input: SteppedInput) -> dict[str, int]:
    step.progress(1)
    for value, gate in enumerate(input.gates, start=2):
        await GATES.passed(gate)
        step.progress(value)
    return {"last": len(input.gates) + 1}


stepped_job = define_job(name="stepped-progress", input=SteppedInput, run=stepped_progress)


async def no_input(step: Any, input: Any) -> dict[str, Any]:
    return {"got": input}


no_input_job = define_job(name="no-input", run=no_input)

JOBS = {
    "import_rows": import_job,
    "script": script_job,
    "burst": burst_job,
    "stepped": stepped_job,
    "no_input": no_input_job,
}


# -- SSE -------------------------------------------------------------------------------------------
_DATA_FRAME = re.compile(rb"(?:id: (\d+)\n)?data: ([^\n]+)\n\n", re.DOTALL)


@dataclass(frozen=True)
class Frame:
    raw: bytes
    id: int | None
    data: bytes  # the JSON text as sent
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return self.event["type"]


def parse_frame(raw: bytes) -> Frame | None:
    """A data frame, or None for a keep-alive comment; anything else fails the test."""
    if raw == KEEP_ALIVE:
        return None
    match = _DATA_FRAME.fullmatch(raw)
    assert match is not None, f"not an SSE frame of ours: {raw!r}"
    return Frame(raw, None if match[1] is None else int(match[1]), match[2], json.loads(match[2]))


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class SseStream:
    """An open `text/event-stream` response read frame by frame; every byte is kept in `.raw`."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.raw = b""
        self.frames: list[bytes] = []  # every complete frame read so far, keep-alives included
        self.ended = False
        self._buffer = b""
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pump = asyncio.get_running_loop().create_task(self._read_body())

    async def _read_body(self) -> None:
        try:
            async for chunk in self.response.aiter_raw():
                await self._queue.put(chunk)
        except httpx.HTTPError:
            pass  # the connection broke: the stream simply ends
        finally:
            self._queue.put_nowait(None)

    async def next_raw(self, timeout: float = WAIT) -> bytes | None:
        """The next frame's bytes (keep-alives too), or None once the server has ended the stream."""
        async with asyncio.timeout(timeout):
            while b"\n\n" not in self._buffer:
                if self.ended:
                    assert self._buffer == b"", f"stream ended mid-frame: {self._buffer!r}"
                    return None
                chunk = await self._queue.get()
                if chunk is None:
                    self.ended = True
                    continue
                self.raw += chunk
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\n\n", 1)
        self.frames.append(raw + b"\n\n")
        return raw + b"\n\n"

    async def next(self, timeout: float = WAIT) -> Frame | None:
        """The next data frame (keep-alives skipped), or None at the end of the stream."""
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.next_raw(timeout)
                if raw is None:
                    return None
                frame = parse_frame(raw)
                if frame is not None:
                    return frame

    async def until(self, predicate: Callable[[Frame], bool], timeout: float = WAIT) -> list[Frame]:
        """Data frames up to and including the first that matches; fails if the stream ends first."""
        frames: list[Frame] = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next()
                assert frame is not None, f"stream ended before the expected frame; got {[f.type for f in frames]}"
                frames.append(frame)
                if predicate(frame):
                    return frames

    async def rest(self, timeout: float = WAIT) -> list[Frame]:
        """Every data frame until the server ends the stream (fails if it does not within `timeout`)."""
        frames: list[Frame] = []
        async with asyncio.timeout(timeout):
            while (frame := await self.next()) is not None:
                frames.append(frame)
        return frames

    async def quiet_for(self, seconds: float) -> list[bytes]:
        """Whatever frames arrive within `seconds` (the stream must stay open meanwhile)."""
        frames: list[bytes] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await self.next_raw(left)
            except TimeoutError:
                break
            assert raw is not None, "the server ended a stream that should stay open"
            frames.append(raw)
        return frames

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        await self.response.aclose()


def of_type(frames: list[Frame], *types: str) -> list[Frame]:
    return [frame for frame in frames if frame.type in types]


# -- the server ----------------------------------------------------------------------------------
_TLS = ssl.create_default_context()  # made once: httpx would load the CA bundle for every client (slow)


def http_client(base_url: str, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=WAIT, verify=_TLS, **options)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_now = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave the test process's signal handlers alone

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown without its fixed 100 ms pause (the tests close their clients first)."""
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown or 2):
                await self._wait_tasks_to_complete()
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel()

    async def main_loop(self) -> None:
        await self.on_tick(0)
        await self.exit_now.wait()  # rather than polling `should_exit` every 100 ms

    def exit(self) -> None:
        self.should_exit = True
        self.exit_now.set()


@dataclass
class LiveServer:
    durably: Durably
    origin: str  # http://127.0.0.1:<port>
    base_path: str
    client: httpx.AsyncClient  # base_url = origin + base_path
    _server: _Server
    _task: asyncio.Task[None]
    _streams: list[SseStream] = field(default_factory=list)
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.origin + self.base_path

    def new_client(self, **options: Any) -> httpx.AsyncClient:
        client = http_client(self.base_url, **options)
        self._clients.append(client)
        return client

    async def stream(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> SseStream:
        """Open an SSE stream (its own connection) and check it answered 200."""
        client = client or self.new_client()
        request = client.build_request("GET", path, params=params, headers=headers)
        response = await client.send(request, stream=True)
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            raise AssertionError(f"GET {path} answered {response.status_code}: {body!r}")
        stream = SseStream(response)
        self._streams.append(stream)
        return stream

    async def trigger(self, job_name: str, input: Any = None, **body: Any) -> str:
        response = await self.client.post("/trigger", json={"jobName": job_name, "input": input, **body})
        assert response.status_code == 200, response.text
        return response.json()["runId"]

    async def get_run(self, run_id: str) -> dict[str, Any]:
        response = await self.client.get("/run", params={"runId": run_id})
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_run(
        self, run_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """Poll GET /run until `predicate(run)` holds."""
        run: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout):
                while not predicate(run := await self.get_run(run_id)):
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"run {run_id} never matched; last seen {run}") from None
        return run

    async def wait_status(self, run_id: str, *statuses: str, timeout: float = WAIT) -> dict[str, Any]:
        return await self.wait_run(run_id, lambda run: run.get("status") in statuses, timeout)

    async def close(self) -> None:
        for stream in self._streams:
            with contextlib.suppress(Exception):
                await stream.close()
        for client in [self.client, *self._clients]:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._server.exit()
        try:
            async with asyncio.timeout(5):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


async def start_server(
    durably: Durably, base_path: str = BASE_PATH, *, host_app: Any = None, **handler_options: Any
) -> LiveServer:
    """`host_app`: mounted at "" below the handler, as `rx.App(api_transformer=handler)` mounts Reflex's."""
    app = create_durably_handler(durably, base_path, **handler_options)
    if host_app is not None:
        app.mount("", host_app)
    # proto=IPPROTO_TCP, or asyncio leaves Nagle on for accepted connections (+40 ms a request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http="h11", lifespan="off", log_level="warning", timeout_graceful_shutdown=2)
    server = _Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name=f"uvicorn-{port}")
    async with asyncio.timeout(WAIT):
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("uvicorn ended before it started")
            await asyncio.sleep(0.005)
    origin = f"http://127.0.0.1:{port}"
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    client = http_client(origin + base)
    return LiveServer(durably, origin, base, client, server, task)


Serve = Callable[..., Awaitable[LiveServer]]


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database file, copied for each server: migrating anew each time is slow."""
    path = tmp_path_factory.mktemp("template") / "durably.db"

    async def migrate() -> None:
        engine = create_durably(database_url(path), **FAST)
        await engine.migrate()
        await engine.close()

    thread = threading.Thread(target=asyncio.run, args=(migrate(),))
    thread.start()
    thread.join(WAIT)
    assert path.exists() and not Path(f"{path}-wal").exists()
    return path


def database_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(name="serve")
async def serve_fixture(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_template: Path, server_backend: str
) -> AsyncIterator[Serve]:
    """`await serve(**options)` → a LiveServer on a fresh database of `server_backend`; after the
    test its server is stopped and its engine closed (an engine passed in with `durably=` is handed
    over too), and its PostgreSQL databases dropped."""
    started: list[LiveServer] = []
    numbers = itertools.count(1)
    cluster = request.getfixturevalue("pg_cluster") if server_backend == "postgresql" else None
    databases: list[str] = []

    def new_database() -> str:
        number = next(numbers)
        if cluster is None:  # a copy of a migrated file: migrating anew each time is slow
            path = tmp_path / f"server-{number}.db"
            shutil.copyfile(migrated_template, path)
            return database_url(path)
        databases.append(f"server_{os.getpid()}_{id(databases)}_{number}")
        return str(cluster.create_database(databases[-1]))

    async def start(
        *,
        durably: Durably | None = None,
        jobs: dict[str, Any] | None = None,
        start_worker: bool = True,
        base_path: str = BASE_PATH,
        host_app: Any = None,
        **handler_options: Any,
    ) -> LiveServer:
        if durably is None:
            durably = create_durably(new_database(), max_concurrent_runs=4, **FAST)
            durably.register(**(JOBS if jobs is None else jobs))
        try:
            await (durably.init() if start_worker else durably.migrate())
            server = await start_server(durably, base_path, host_app=host_app, **handler_options)
        except BaseException:
            await durably.close(timeout=5)
            raise
        started.append(server)
        return server

    try:
        yield start
    finally:
        GATES.open_all()
        for server in reversed(started):
            await server.close()
        await asyncio.gather(*(server.durably.close(timeout=5) for server in started))
        for name in databases:
            cluster.drop_database(name)


@pytest.fixture(name="server")
async def server_fixture(serve: Serve) -> LiveServer:
    """A server with the default options, its engine's worker running."""
    return await serve()


@pytest.fixture(name="idle")
async def idle_server_fixture(serve: Serve) -> LiveServer:
    """A server whose worker is off: the runs stay pending."""
    return await serve(start_worker=False)


# -- checks --------------------------------------------------------------------------------------
RUN_FIELDS = {
    "id", "jobName", "input", "status", "idempotencyKey", "concurrencyKey", "currentStepIndex", "stepCount",
    "progress", "output", "error", "errorStack", "startedAt", "completedAt", "heartbeatAt", "createdAt", "updatedAt",
    "priority", "waitingFor", "labels", "replayOf",  # extensions: waits, labels, replays (README, /openapi.json)
}  # fmt: skip
STEP_FIELDS = {"id", "runId", "name", "index", "status", "output", "error", "errorStack", "startedAt", "completedAt"}
LOG_FIELDS = {"id", "runId", "stepName", "level", "message", "data", "timestamp"}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def assert_json(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/json", response.headers["content-type"]
    return response.json()


def assert_error(response: httpx.Response, status: int, *fragments: str, code: str | None = None) -> dict[str, Any]:
    """An honest JSON error: the status, `{"error": ..., "code": ...}` (maybe with details), no trace;
    `code`, if given, is the stable code expected."""
    body = assert_json(response, status)
    assert isinstance(body, dict) and {"error", "code"} <= set(body) <= {"error", "code", "details"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert re.fullmatch(r"[A-Z][A-Z_]*", body["code"]), body
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text
    for fragment in fragments:
        assert fragment in body["error"], f"{fragment!r} not in {body['error']!r}"
    return body
