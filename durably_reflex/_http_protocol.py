"""uvicorn's HTTP/1.1 protocols with the two timeouts uvicorn lacks, for `durably-reflex serve`.

uvicorn closes a keep-alive connection that stays silent after a response (`timeout_keep_alive`),
but not one that opened and never sent a request, nor one that sends its request head a byte at a
time (each byte resets the keep-alive timer): a few hundred such clients would hold as many sockets
for ever. Nor does it give up on a client that stopped reading a response: an event stream's writes
then wait for ever, and the socket with them (the stream itself lets go of its events; see
`_feed.MAX_BACKLOG_BYTES`). So:

- HEADER_TIMEOUT: the request head (request line and headers) must arrive within this many seconds
  of the connection opening or of the previous response ending; else the connection is closed.
- WRITE_STALL_TIMEOUT: a connection whose client has not taken any of what was written to it (the
  transport stays paused: the socket buffers are full) for this many seconds is aborted.

`serve` uses uvicorn's httptools protocol where httptools is installed (the `server` extra has it):
it frames a streaming body's chunks with one bytes formatting, where h11's state machine costs an
event stream about 6 µs per write (see bench/sse_write_cost.py), paid once per stream for every
batch of events. h11's protocol, with the same timeouts, is the fallback (`serve_protocol`).

An application mounted in another server gets that server's limits; behind a reverse proxy, set the
proxy's client header and send timeouts too (nginx: `client_header_timeout`, `send_timeout`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0
WRITE_STALL_TIMEOUT = 60.0


class ConnectionTimeouts(asyncio.Protocol):
    """The two timeouts, mixed in before either of uvicorn's protocols. Each protocol's subclass
    tells when a request head has arrived (`_head_arrived`) and when a response has ended
    (`_response_ended`), since each parser says so in its own way."""

    header_timeout = HEADER_TIMEOUT
    write_stall_timeout = WRITE_STALL_TIMEOUT
    # Set by the uvicorn protocol this is mixed into.
    loop: asyncio.AbstractEventLoop
    logger: logging.Logger
    transport: asyncio.Transport

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._cancel(self._stall_timer)
        self._stall_timer = self.loop.call_later(self.write_stall_timeout, self._abort, "a stalled reader")

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel(self._stall_timer)
        self._stall_timer = None

    def _head_arrived(self) -> None:
        """The application has a request now: the header timer stops."""
        self._cancel(self._header_timer)
        self._header_timer = None

    def _response_ended(self, next_request_started: bool) -> None:
        """A response ended: the next request head is waited for, unless one was already in (pipelined)."""
        if not next_request_started and not self.transport.is_closing():
            self._await_request_head()

    def _await_request_head(self) -> None:
        self._cancel(self._header_timer)
        self._header_timer = self.loop.call_later(self.header_timeout, self._close_waiting)

    def _close_waiting(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.logger.debug("closing a connection whose request head did not arrive in %s s", self.header_timeout)
            self.transport.close()

    def _abort(self, why: str) -> None:
        self._stall_timer = None
        self.logger.info("aborting a connection to %s (%s s without progress)", why, self.write_stall_timeout)
        self.transport.abort()

    def _cancel_timers(self) -> None:
        self._cancel(self._header_timer)
        self._cancel(self._stall_timer)
        self._header_timer = self._stall_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


class TimedH11Protocol(ConnectionTimeouts, H11Protocol):
    """h11's protocol: a request head has arrived when handling the received bytes started a new
    request-response cycle."""

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:
            self._head_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts a pipelined request, if one came
        self._response_ended(next_request_started=not self.cycle.response_complete)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


if HttpToolsProtocol is not None:

    class TimedHttpToolsProtocol(ConnectionTimeouts, HttpToolsProtocol):
        """httptools' protocol: its parser calls `on_headers_complete` once a request head has arrived."""

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._head_arrived()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # starts a pipelined request, if one came
            self._response_ended(next_request_started=not self.cycle.response_complete)


def serve_protocol() -> type[ConnectionTimeouts]:
    """httptools' protocol where httptools is installed, else h11's: both with the timeouts."""
    return TimedH11Protocol if HttpToolsProtocol is None else TimedHttpToolsProtocol
