"""SQLite's NOTIFY: a process that commits events to the log of a SQLite file rings the processes
that tail that log, so their event feed reads at once instead of at its next poll.

Each tailing process binds a datagram socket, `feed-<id>.sock`, in the folder where the workers of
the file meet (`coordination.rendezvous`). A commit that wrote events sends one datagram to each such
socket (`FeedRinger`, after the commit: a feed rung earlier might read before the events are there).
A commit without events sends nothing, and events are logged only while someone watches (see
`watch.py`), so a writer pays for rings only while a feed tails; then a directory listing and a
datagram per tailing process per commit, however many events the commit holds.

A ring is a hint, never the only way: the feed still polls, every `RUNG_POLL` seconds once its
doorbell works, so a lost ring (a socket removed by a temporary-files cleaner, say: the doorbell
binds a new one when it notices) costs that much latency, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from pathlib import Path

from .coordination import bind_socket, send_datagram, sending_socket

logger = logging.getLogger("durably_reflex")

FEED_PREFIX = "feed-"
# How often a feed with a working doorbell reads the log anyway (seconds): the safety net.
RUNG_POLL = 1.0
_RING = b"events"


class FeedRinger:
    """Rings the feeds tailing one folder's database; used by one thread at a time (a connection's)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._socket: socket.socket | None = None  # made at the first ring, kept: a commit pays no socket()

    def ring(self) -> None:
        """Tell every process tailing the database that events were committed; never waits, never
        raises. The socket of a process that died is removed."""
        try:
            targets = [Path(entry.path) for entry in os.scandir(self._folder) if entry.name.startswith(FEED_PREFIX)]
        except OSError:
            return  # no folder: nobody tails
        if not targets:
            return
        if self._socket is None:
            try:
                self._socket = sending_socket()
            except OSError:
                return
        send_datagram(self._socket, targets, _RING, remove_dead=True)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Doorbell:
    """The socket a process's event feed waits on. One waiter at a time (the feed's tailing task)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._path = folder / f"{FEED_PREFIX}{uuid.uuid4().hex[:12]}.sock"
        self._socket = bind_socket(folder, self._path.name)
        self._waiting: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    async def wait(self, poll: float) -> None:
        """Return once rung (at once if a ring came meanwhile), or after `poll` seconds, or on `close()`."""
        if self._drain():
            return
        loop = asyncio.get_running_loop()
        rung: asyncio.Future[None] = loop.create_future()
        fileno = self._socket.fileno()
        loop.add_reader(fileno, _settle, rung)
        timer = loop.call_later(poll, _settle, rung)
        self._waiting = (loop, rung)
        try:
            await rung
        finally:
            timer.cancel()
            if self._waiting is not None:  # else `close()` removed the reader (its number may be reused)
                self._waiting = None
                loop.remove_reader(fileno)
        if self._socket.fileno() != -1 and not self._drain():
            self._rebind_if_lost()

    def close(self) -> None:
        """Stop listening (from the waiter's event loop): a wait returns, the socket is removed, and
        the folder too if nobody else meets there."""
        if self._waiting is not None:
            loop, rung = self._waiting
            self._waiting = None
            loop.remove_reader(self._socket.fileno())
            _settle(rung)
        with contextlib.suppress(OSError):
            self._path.unlink()
        with contextlib.suppress(OSError):
            self._folder.rmdir()
        self._socket.close()

    def _drain(self) -> bool:
        """Read every ring queued; whether there was any."""
        rung = False
        with contextlib.suppress(BlockingIOError):
            while True:
                self._socket.recv(64)
                rung = True
        return rung

    def _rebind_if_lost(self) -> None:
        """A poll passed without a ring: if our socket file is gone, writers cannot find us; bind anew."""
        if self._path.exists():
            return
        try:
            fresh = bind_socket(self._folder, self._path.name)
        except OSError as error:
            logger.warning("durably event feed: cannot bind %s again (%s); polling meanwhile", self._path, error)
            return
        self._socket.close()
        self._socket = fresh


def open_doorbell(folder: Path) -> Doorbell | None:
    """A doorbell in this folder, or None where Unix sockets are missing or the folder cannot be used
    (the feed then polls at its own interval)."""
    if not hasattr(socket, "AF_UNIX") or os.name != "posix":
        return None
    try:
        return Doorbell(folder)
    except OSError as error:
        logger.warning("durably event feed: cannot listen for new events in %s (%s); polling instead", folder, error)
        return None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
