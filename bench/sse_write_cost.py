"""What one SSE frame costs the API per stream, part by part (µs per call, median of 5 rounds).

    .venv/bin/python bench/sse_write_cost.py

With hundreds of streams (W4a in bench/sse.py), every part below is paid once per stream for each
batch of events the feed hands out, so it is these figures, times the streams, that a fan-out costs:

  h11 Data             uvicorn's h11 path: `h11.Connection.send(h11.Data(...))` on a chunked response
  chunk by hand        the same chunk framing as one bytes formatting (what h11 produces)
  send layers          `await send(message)` through N `async def` wrappers that complete at once
                       (Starlette's two exception `sender`s, ServerErrorMiddleware, `serve`'s tracked_send)
  socket send          one frame written to a local socket (the transport's write when nothing is queued)
  task wake            a task waiting on a future, woken by `set_result`, 200 at a time (a feed batch)

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

FRAME = (
    b'id: 123456\ndata: {"type":"run:progress","runId":"01JABCDEFGHJKMNPQRSTVWXYZ","jobName":"sse-yield",'
    b'"progress":{"current":3,"total":5,"message":"1765123456.123456"}}\n\n'
)
CALLS = 20_000
STREAMS = 200

Send = Callable[[dict[str, Any]], Awaitable[None]]


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


def socket_send(calls: int) -> None:
    writer, reader = socket.socketpair()
    writer.setblocking(False)
    reader.setblocking(False)
    for sent in range(1, calls + 1):
        writer.send(FRAME)
        if sent % 64 == 0:  # drain, as the client would
            while True:
                try:
                    reader.recv(1 << 20)
                except BlockingIOError:
                    break
    writer.close()
    reader.close()


def task_wake(calls: int) -> None:
    async def main() -> None:
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

    asyncio.run(main())


def main() -> None:
    print(__doc__.split("\n\n")[0])
    print(f"  h11 Data ................ {per_call_us(h11_data):6.2f} µs")
    print(f"  chunk by hand ........... {per_call_us(chunk_by_hand):6.2f} µs")
    print(f"  1 send layer ............ {per_call_us(send_layers(1)):6.2f} µs")
    print(f"  4 send layers ........... {per_call_us(send_layers(4)):6.2f} µs")
    print(f"  socket send ............. {per_call_us(socket_send):6.2f} µs")
    print(f"  task wake (200 a batch) . {per_call_us(task_wake):6.2f} µs")


if __name__ == "__main__":
    main()
