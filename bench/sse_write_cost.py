"""What one SSE frame costs the API per stream, part by part (µs per call, median of 5 rounds).

    .venv/bin/python bench/sse_write_cost.py

With hundreds of streams (W4a in bench/sse.py), every part below is paid once per stream for each
batch of events the feed hands out, so it is these figures, times the streams, that a fan-out costs:

  h11 Data             uvicorn's h11 path: `h11.Connection.send(h11.Data(...))` on a chunked response
  chunk by hand        the same chunk framing as one bytes formatting (what h11 produces)
  uvicorn send         the whole `send` that uvicorn hands the application, for one body chunk of a
                       chunked response, with h11's protocol and with httptools' (`serve`'s where
                       installed: it frames the chunk by hand); the transport's write is a no-op here
  send layers          `await send(message)` through N `async def` wrappers that complete at once
                       (Starlette's two exception `sender`s, ServerErrorMiddleware, `serve`'s tracked_send)
  socket send          one frame written to a local socket (the transport's write when nothing is queued),
                       by the socket itself and by a transport of asyncio's event loop and of uvloop's
  task wake            a task waiting on a future, woken by `set_result`, 200 at a time (a feed batch),
                       on asyncio's event loop and on uvloop's (`serve`'s where installed)

The frame is a typical reduced `run:progress` of /runs/subscribe.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

FRAME = (
    b'id: 123456\ndata: {"type":"run:progress","runId":"01JABCDEFGHJKMNPQRSTVWXYZ","jobName":"sse-yield",'
    b'"progress":{"current":3,"total":5,"message":"1765123456.123456"}}\n\n'
)
CALLS = 20_000
STREAMS = 200

Send = Callable[[dict[str, Any]], Awaitable[None]]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def per_call_us(run: Callable[[int], None], calls: int = CALLS) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        run(calls)
        rounds.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(rounds)


def h11_data(calls: int) -> None:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(b"GET /api/durably/runs/subscribe HTTP/1.1\r\nHost: bench\r\n\r\n")
    connection.next_event()  # the request
    connection.next_event()  # its end
    connection.send(h11.Response(status_code=200, headers=[(b"content-type", b"text/event-stream")]))
    for _ in range(calls):
        connection.send(h11.Data(data=FRAME))


def chunk_by_hand(calls: int) -> None:
    for _ in range(calls):
        b"%x\r\n%s\r\n" % (len(FRAME), FRAME)


class _NullTransport(asyncio.Transport):
    """A transport that takes every write and does nothing with it: `uvicorn send` prices the
    protocol's own work, `socket send` the write."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def uvicorn_send(protocol_class: type[asyncio.Protocol]) -> Callable[[int], None]:
    """The `send` a real uvicorn protocol gives the application for a GET, once the response has
    started; each call sends one frame, run to its end without the event loop (it does not wait)."""

    def run(calls: int) -> None:
        async def main() -> None:
            sends: list[Send] = []
            ended = asyncio.get_running_loop().create_future()

            async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
                )
                sends.append(send)
                await ended
                await send({"type": "http.response.body", "body": b"", "more_body": False})

            config = Config(app, lifespan="off", log_level="warning")
            protocol = protocol_class(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
            protocol.connection_made(_NullTransport())
            protocol.data_received(b"GET /api/durably/runs/subscribe HTTP/1.1\r\nHost: bench\r\n\r\n")  # type: ignore[attr-defined]
            while not sends:
                await asyncio.sleep(0)
            send = sends[0]
            message = {"type": "http.response.body", "body": FRAME, "more_body": True}
            for _ in range(calls):
                next(send(message).__await__(), None)  # the whole call: it does not wait
            ended.set_result(None)
            while not protocol.cycle.response_complete:  # type: ignore[attr-defined]
                await asyncio.sleep(0)

        asyncio.run(main())

    return run


async def _sent(message: dict[str, Any]) -> None:
    return None


def _wrapped(inner: Send) -> Send:
    async def layer(message: dict[str, Any]) -> None:
        await inner(message)

    return layer


def send_layers(count: int) -> Callable[[int], None]:
    def run(calls: int) -> None:
        send: Send = _sent
        for _ in range(count):
            send = _wrapped(send)
        message = {"type": "http.response.body", "body": FRAME, "more_body": True}
        for _ in range(calls):
            next(send(message).__await__(), None)  # the whole call: no layer waits

    return run


def drain(reader: socket.socket) -> None:
    """Read all that is waiting, as the client would, so that writes never find the buffer full."""
    while True:
        try:
            reader.recv(1 << 20)
        except BlockingIOError:
            return


def socket_send(calls: int) -> None:
    writer, reader = socket.socketpair()
    writer.setblocking(False)
    reader.setblocking(False)
    for sent in range(1, calls + 1):
        writer.send(FRAME)
        if sent % 64 == 0:
            drain(reader)
    writer.close()
    reader.close()


def transport_send(loop_factory: LoopFactory) -> Callable[[int], None]:
    def run(calls: int) -> None:
        async def main() -> None:
            writer, reader = socket.socketpair()
            reader.setblocking(False)
            transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=writer)
            for sent in range(1, calls + 1):
                transport.write(FRAME)
                if sent % 64 == 0:
                    drain(reader)
            transport.close()
            reader.close()

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())

    return run


def task_wake(loop_factory: LoopFactory) -> Callable[[int], None]:
    def run(calls: int) -> None:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_wake_streams(calls))

    return run


async def _wake_streams(calls: int) -> None:
    """200 streams, each waiting on a future; a feed batch wakes them all."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[None]] = []

    async def stream() -> None:
        while True:
            woken = loop.create_future()
            waiting.append(woken)
            await woken

    streams = [loop.create_task(stream()) for _ in range(STREAMS)]
    await asyncio.sleep(0)
    for _ in range(calls // STREAMS):
        batch = waiting[:]
        waiting.clear()
        for woken in batch:
            woken.set_result(None)
        await asyncio.sleep(0)  # the woken tasks run
        await asyncio.sleep(0)
    for task in streams:
        task.cancel()


def main() -> None:
    print(__doc__.split("\n\n")[0])
    rows: list[tuple[str, Callable[[int], None]]] = [
        ("h11 Data", h11_data),
        ("chunk by hand", chunk_by_hand),
        ("uvicorn send, h11", uvicorn_send(H11Protocol)),
        ("uvicorn send, httptools", uvicorn_send(HttpToolsProtocol)),
        ("1 send layer", send_layers(1)),
        ("4 send layers", send_layers(4)),
        ("socket send", socket_send),
        ("socket send, asyncio transport", transport_send(asyncio.new_event_loop)),
        ("socket send, uvloop transport", transport_send(uvloop.new_event_loop)),
        ("task wake (200 a batch), asyncio", task_wake(asyncio.new_event_loop)),
        ("task wake (200 a batch), uvloop", task_wake(uvloop.new_event_loop)),
    ]
    for name, run in rows:
        print(f"  {name} {'.' * (34 - len(name))} {per_call_us(run):6.2f} µs")


if __name__ == "__main__":
    main()
