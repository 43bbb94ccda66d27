"""Slow clients, against a REAL server (uvicorn on 127.0.0.1) and raw sockets: a stream whose client
stops reading is ended once it falls `MAX_BACKLOG_BYTES` behind (the server does not hold events
for it without bound), and the client resumes from the event log with `Last-Event-ID`, missing
nothing; `serve`'s protocols (httptools', and h11's where httptools is not installed) close
connections that never send a request head (or send it a byte at a time) and abort those whose
client stopped reading (timeouts shortened here).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from pydantic import BaseModel

from durably_reflex import Durably, define_job
from durably_reflex._feed import MAX_BACKLOG_BYTES
from durably_reflex._http_protocol import (
    ConnectionTimeouts,
    TimedH11Protocol,
    TimedHttpToolsProtocol,
    serve_protocol,
)
from durably_reflex.server import create_durably_handler
from tests.server_fixtures import WAIT, Serve, _Server, migrated_template, parse_frame, serve_fixture  # noqa: F401

CHUNK = 32 * 1024  # bytes of data per log line: few events make many megabytes


class ChatterInput(BaseModel):
    lines: int


async def chatter(step: Any, input: ChatterInput) -> dict[str, int]:
    for i in range(input.lines):
        step.log.info(f"line {i}", {"blob": "x" * CHUNK})
    return {"lines": input.lines}


JOBS = {"chatter": define_job(name="chatter", input=ChatterInput, run=chatter)}


def open_stuck_stream(port: int, path: str) -> socket.socket:
    """A stream request from a client with a small receive window that then never reads."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    return client


def read_response(client: socket.socket) -> bytes:
    """Everything the server sent, up to the end of the chunked body (the stream ended)."""
    client.settimeout(WAIT)
    received = b""
    deadline = time.monotonic() + WAIT
    while not received.endswith(b"\r\n0\r\n\r\n"):
        data = client.recv(1 << 20)
        assert data and time.monotonic() < deadline, f"the stream did not end ({len(received)} bytes)"
        received += data
    return received


def sse_frames(response: bytes) -> list[Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    payload = b""
    while True:  # de-chunk
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        payload, body = payload + body[:size], body[size + 2 :]
    frames = [parse_frame(raw + b"\n\n") for raw in payload.split(b"\n\n") if raw]
    return [frame for frame in frames if frame is not None]


async def wait_for(predicate: Any, what: str) -> None:
    """Poll `predicate` (a server-side state this test cannot be told of) until it holds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.01)


async def logged_ids(server: Any, run_id: str, count: int) -> list[int]:
    """The run's event ids once all `count` are logged (the last rides on a commit after the run's)."""
    deadline = time.monotonic() + WAIT
    while len(events := await server.durably.storage.read_events(0, run_id=run_id, limit=10_000)) < count:
        assert time.monotonic() < deadline, f"{len(events)} of {count} events logged"
        await asyncio.sleep(0.01)
    assert len(events) == count
    return [event.id for event in events]


async def test_a_client_that_stops_reading_is_ended_and_resumes_with_last_event_id(serve: Serve) -> None:
    server = await serve(jobs=JOBS)
    port = int(server.origin.rsplit(":", 1)[1])
    feed = server.durably.feed
    stuck = await asyncio.to_thread(open_stuck_stream, port, server.base_path + "/runs/subscribe")
    await wait_for(lambda: feed.subscriber_count == 1, "the stream subscribed")
    lines = 3 * MAX_BACKLOG_BYTES // CHUNK  # beyond the backlog bound and every socket buffer on the way
    run_id = await server.trigger("chatter", {"lines": lines})
    await server.wait_status(run_id, "completed")

    # The server let go of the subscription although the client has not read a byte.
    await wait_for(lambda: feed.subscriber_count == 0, "the stuck stream was ended")
    response = await asyncio.to_thread(read_response, stuck)
    stuck.close()
    received = sse_frames(response)
    logged = await logged_ids(server, run_id, lines + 3)  # run:trigger, run:start, the lines, run:complete
    assert 0 < len(received) < len(logged)
    assert [frame.id for frame in received] == logged[: len(received)]  # what came, came in order

    resumed = await server.stream("/runs/subscribe", headers={"Last-Event-ID": str(received[-1].id)})
    rest = [await resumed.next() for _ in range(len(logged) - len(received))]
    assert [frame.id for frame in rest] == logged[len(received) :]


# -- serve's connection timeouts -------------------------------------------------------------------
def test_serve_speaks_http_with_httptools_where_it_is_installed() -> None:
    assert serve_protocol() is TimedHttpToolsProtocol


@pytest.fixture(params=[TimedHttpToolsProtocol, TimedH11Protocol], ids=["httptools", "h11"])
def protocol(request: pytest.FixtureRequest) -> type[ConnectionTimeouts]:
    """Each of `serve`'s protocols: httptools' where installed, h11's as the fallback."""
    return request.param


@contextlib.asynccontextmanager
async def timed_server(
    durably: Durably, protocol: type[ConnectionTimeouts], **timeouts: float
) -> AsyncIterator[tuple[_Server, int]]:
    """uvicorn serving the API with one of `serve`'s protocols, its timeouts set to `timeouts`."""
    shortened = type("ShortTimeouts", (protocol,), timeouts)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_durably_handler(durably), http=shortened, lifespan="off", log_level="warning")
    server = _Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: server.started or task.done(), "uvicorn started")
        yield server, sock.getsockname()[1]
    finally:
        server.exit()
        server.force_exit = True
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(WAIT):
                await task


def closed_by_server(client: socket.socket) -> bool:
    """Read until the server closes the connection (EOF or reset); False if it stays open for WAIT."""
    client.settimeout(WAIT)
    try:
        while client.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


async def test_a_connection_that_sends_nothing_is_closed(serve: Serve, protocol: type[ConnectionTimeouts]) -> None:
    server = await serve(start_worker=False)
    async with timed_server(server.durably, protocol, header_timeout=0.2) as (_, port):
        client = socket.create_connection(("127.0.0.1", port))
        with client:
            assert await asyncio.to_thread(closed_by_server, client)


async def test_a_request_head_sent_a_byte_at_a_time_is_closed(serve: Serve, protocol: type[ConnectionTimeouts]) -> None:
    server = await serve(start_worker=False)
    async with timed_server(server.durably, protocol, header_timeout=0.5) as (_, port):
        client = socket.create_connection(("127.0.0.1", port))
        head = b"GET /api/durably/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
        sent = 0
        with client, contextlib.suppress(OSError):  # the server may reset the connection mid-send
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                client.send(head[sent : sent + 1])
                sent += 1
                await asyncio.sleep(0.02)  # a slow client: each byte well within any per-read timeout
        assert sent < len(head), "the server kept waiting for the request head"


async def test_a_prompt_request_on_a_kept_alive_connection_is_answered(
    serve: Serve, protocol: type[ConnectionTimeouts]
) -> None:
    server = await serve(start_worker=False)
    async with timed_server(server.durably, protocol, header_timeout=0.5) as (_, port):
        client = socket.create_connection(("127.0.0.1", port))
        with client:
            client.settimeout(WAIT)
            for _ in range(2):
                client.sendall(b"GET /api/durably/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert (await asyncio.to_thread(read_one_response, client)).startswith(b"HTTP/1.1 200")


async def test_a_stream_requested_behind_another_request_outlives_the_header_timeout(
    serve: Serve, protocol: type[ConnectionTimeouts]
) -> None:
    server = await serve(jobs=JOBS)
    async with timed_server(server.durably, protocol, header_timeout=0.2) as (_, port):
        client = socket.create_connection(("127.0.0.1", port))
        with client:
            client.sendall(  # pipelined: the stream's request head is in before the first response ends
                b"GET /api/durably/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"GET /api/durably/runs/subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
            )
            await wait_for(lambda: server.durably.feed.subscriber_count == 1, "the stream subscribed")
            await asyncio.sleep(3 * 0.2)  # past the header timeout, had it been set again
            run_id = await server.trigger("chatter", {"lines": 1})
            assert await asyncio.to_thread(read_until, client, f'"runId":"{run_id}"'.encode())


def read_until(client: socket.socket, wanted: bytes) -> bool:
    """Read until `wanted` arrives (True) or the server closes the connection (False)."""
    client.settimeout(WAIT)
    received = b""
    while wanted not in received:
        data = client.recv(1 << 16)
        if not data:
            return False
        received += data
    return True


def read_one_response(client: socket.socket) -> bytes:
    """One whole response with a Content-Length body."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(1 << 16)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += client.recv(1 << 16)
    return head


async def test_a_client_that_stops_reading_is_aborted_after_the_write_stall_timeout(
    serve: Serve, protocol: type[ConnectionTimeouts]
) -> None:
    server = await serve(jobs=JOBS)
    async with timed_server(server.durably, protocol, write_stall_timeout=0.5) as (uvicorn_server, port):
        stuck = await asyncio.to_thread(open_stuck_stream, port, "/api/durably/runs/subscribe")
        await wait_for(lambda: server.durably.feed.subscriber_count == 1, "the stream subscribed")
        run_id = await server.trigger("chatter", {"lines": 3 * MAX_BACKLOG_BYTES // CHUNK})
        await server.wait_status(run_id, "completed")
        connections = uvicorn_server.server_state.connections
        await wait_for(lambda: not connections, "the stalled connection was aborted")
        stuck.close()
