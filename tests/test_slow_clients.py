"""Clients that stop reading, against a REAL server (uvicorn on 127.0.0.1) and raw sockets: a stream
whose client stops reading is ended once it falls `MAX_BACKLOG_BYTES` behind (the server does not
hold events for it without bound), and the client resumes from the event log with `Last-Event-ID`,
missing nothing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from pydantic import BaseModel

from durably_reflex import define_job
from durably_reflex._feed import MAX_BACKLOG_BYTES
from tests.server_fixtures import WAIT, Serve, migrated_template, parse_frame, serve_fixture  # noqa: F401

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
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.01)


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
    logged = [event.id for event in await server.durably.storage.read_events(0, run_id=run_id, limit=10_000)]
    assert len(logged) == lines + 3  # run:trigger, run:start, the lines, run:complete
    assert 0 < len(received) < len(logged)
    assert [frame.id for frame in received] == logged[: len(received)]  # what came, came in order

    resumed = await server.stream("/runs/subscribe", headers={"Last-Event-ID": str(received[-1].id)})
    rest = [await resumed.next() for _ in range(len(logged) - len(received))]
    assert [frame.id for frame in rest] == logged[len(received) :]
