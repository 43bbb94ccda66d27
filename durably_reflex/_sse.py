"""Server-Sent Events as an ASGI response that notices a client leaving at once.

Starlette's StreamingResponse may only learn of a disconnect when its next write fails, which on a
quiet stream can be many seconds later; every stream here holds a feed subscription, so it listens
for `http.disconnect` alongside streaming and stops (closing its subscription) the moment it comes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pydantic_core
from starlette.types import Receive, Scope, Send

KEEP_ALIVE = b": keep-alive\n\n"


def frame(data: Any, event_id: int | None = None) -> bytes:
    """`id: <id>\\ndata: <compact JSON>\\n\\n`; Durably's clients read the JSON from `data`."""
    body = b"data: " + pydantic_core.to_json(data) + b"\n\n"
    return body if event_id is None else b"id: %d\n" % event_id + body


class EventStreamResponse:
    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"connection", b"keep-alive"),
                    (b"x-accel-buffering", b"no"),  # proxies must not buffer a live stream
                ],
            }
        )
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                try:
                    async for chunk in self._frames:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:
                    pass  # the client went away mid-write
                finally:
                    await _close(self._frames)
                group.cancel_scope.cancel()

            async def watch_for_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stream)
            group.start_soon(watch_for_disconnect)


async def _close(frames: AsyncIterator[bytes]) -> None:
    aclose = getattr(frames, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()
