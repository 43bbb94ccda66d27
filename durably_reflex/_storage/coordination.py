"""How the worker processes sharing a database take turns looking for work, so that idle workers
cost the database nothing however many there are.

One worker leads: every `polling_interval` it alone surveys the database (pending runs, runs whose
worker died or went silent) and prunes the event log. The others (followers) make no statement
while idle; they wait to be rung:

- `Ring.LEADER`: runs became pending that the process which made them cannot start at once (it has
  no worker, or no idle slot). The leader takes them if it has idle slots, and rings the workers
  for the rest.
- `Ring.WORKERS`: help wanted: every worker with an idle slot looks for work. The leader rings it
  when its survey (or a `LEADER` ring) finds more pending runs than it can start, or runs of jobs
  it does not have.

Who leads is a lease (`Lease`): the leader says it is alive every `polling_interval`, and a follower
that has not heard it for about three intervals steps up. A dead leader and a frozen one (stopped,
swapping) are replaced alike, so recovery never waits for a leader that cannot survey. Two leaders
for a moment (one that has not heard of the other yet) only survey twice, since claims and
recoveries are safe side by side; when they hear each other, the one with the larger id steps down.
A lost ring costs time, never a run: the leader's next survey finds what is pending and rings again.

Each backend speaks its own way: PostgreSQL with NOTIFY (see postgres.py), a SQLite file (whose
processes share one machine) with a file and Unix datagram sockets (`FileCoordination`, here).
Where neither works (an in-memory database, no Unix sockets) every worker leads (`Solo`): it
surveys as a leader does, and nobody is rung.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import selectors
import socket
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum
from pathlib import Path

logger = logging.getLogger("durably_reflex")


class Ring(Enum):
    LEADER = "leader"  # new pending runs for the leader (with how many)
    WORKERS = "workers"  # every worker with an idle slot: look for work


OnRing = Callable[[Ring, int], None]  # (which ring, how many runs it announces; 0: unknown)


def encode_ring(ring: Ring, count: int = 0, sender: str = "") -> str:
    return f"{ring.value}:{count}:{sender}"


def decode_ring(text: str) -> tuple[Ring, int, str] | None:
    """(ring, count, sender); None for anything that is not a ring (a newer version's, say): ignored."""
    name, _, rest = text.partition(":")
    count, _, sender = rest.partition(":")
    try:
        return Ring(name), int(count or 0), sender
    except ValueError:
        return None


class Coordination(ABC):
    """One worker's seat among the workers of a database: whether it leads now, and its rings
    (delivered to `on_ring` from a thread of the coordination's own)."""

    @property
    @abstractmethod
    def leading(self) -> bool: ...

    @abstractmethod
    def ring_workers(self) -> None:
        """Help wanted: ring every other worker (never waits, never raises)."""

    @abstractmethod
    def close(self) -> None:
        """Leave: stop saying alive (another worker steps up) and stop listening for rings."""


class Solo(Coordination):
    """A worker alone with its database as far as it can tell: it always leads, and nobody rings it."""

    @property
    def leading(self) -> bool:
        return True

    def ring_workers(self) -> None:
        pass

    def close(self) -> None:
        pass


class Lease:
    """Who leads, decided by heartbeats alone (no lock: a lock outlives a frozen holder). The
    backend calls `heard(sender)` for every "alive" it learns of, and `tick()` regularly: when it
    returns True, it says "alive" for this worker. A newcomer listens for `NEWCOMER_WAIT` seconds
    (the backend asks the leader to speak up, or knows how old its last word is) before stepping up."""

    NEWCOMER_WAIT = 0.5

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.me = uuid.uuid4().hex[:12]
        self.leading = False
        self._every = every
        self._clock = clock
        # A little randomness, so followers that lost the same leader do not all step up at once.
        self._patience = 3 * every + random.uniform(0, every)
        self._heard_at = clock() - self._patience + min(self.NEWCOMER_WAIT, self._patience)
        self._next_alive = 0.0

    def heard(self, sender: str, age: float = 0.0) -> None:
        """An "alive" from `sender`, said `age` seconds ago."""
        if sender == self.me or age > self._patience:
            return
        self._heard_at = max(self._heard_at, self._clock() - age)
        if self.leading and sender < self.me:
            self.leading = False  # two leaders: the smaller id stays

    def speak_up(self) -> None:
        """A newcomer asks who leads: the leader says alive at its next tick."""
        self._next_alive = 0.0

    def tick(self) -> bool:
        """Step up if the leader has been silent too long; True when this worker should say alive now."""
        now = self._clock()
        if not self.leading and now - self._heard_at > self._patience:
            self.leading, self._next_alive = True, now
        if self.leading and now >= self._next_alive:
            self._next_alive = now + self._every
            return True
        return False

    def next_tick(self) -> float:
        """Seconds until `tick()` has something to do."""
        now = self._clock()
        due = self._next_alive if self.leading else self._heard_at + self._patience
        return max(0.0, min(self._every, due - now))

    def vacant(self) -> None:
        """The leader left: step up at the next tick."""
        self._heard_at = self._clock() - self._patience

    def lost_touch(self) -> None:
        """This worker cannot hear the others (its connection broke): it does not lead meanwhile,
        and listens again as a newcomer once it can."""
        self.leading = False
        self._heard_at = self._clock() - self._patience + min(self.NEWCOMER_WAIT, self._patience)


# -- a SQLite file: one machine --------------------------------------------------------------------
def rendezvous(database: str) -> Path:
    """The folder where the processes of this database file meet (its workers, and the event feeds
    that `doorbell.py` rings): per user (its mode is 0700) and per file (named by a hash of the
    file's real path), in the system's temporary folder."""
    digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"durably-{user}-{digest}"


_ALIVE = "alive"  # the file the leader rewrites every interval: "<lease id> <socket file name>"
_WORKER_PREFIX = "worker-"


def ring_folder(folder: Path, ring: Ring, count: int = 0, *, sender: str = "") -> None:
    """Send a ring to the leader's socket (named in the alive file), or to every worker's; never
    waits, never raises. A worker socket nobody reads any more (its process died) is removed."""
    try:
        if ring is Ring.LEADER:
            targets = [folder / (folder / _ALIVE).read_text().split()[1]]
        else:
            targets = [Path(entry.path) for entry in os.scandir(folder) if entry.name.startswith(_WORKER_PREFIX)]
    except (OSError, IndexError):
        return  # no folder or no leader yet: no worker has started on this file
    own = f"{_WORKER_PREFIX}{sender}.sock"
    with sending_socket() as sender_socket:
        send_datagram(
            sender_socket,
            [target for target in targets if target.name != own],
            encode_ring(ring, count, sender).encode(),
            remove_dead=ring is Ring.WORKERS,
        )


def sending_socket() -> socket.socket:
    """An unbound, non-blocking Unix datagram socket to send rings from."""
    sender_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender_socket.setblocking(False)
    return sender_socket


def send_datagram(sender_socket: socket.socket, targets: list[Path], message: bytes, *, remove_dead: bool) -> None:
    """Send `message` to each of these sockets; never waits, never raises. With `remove_dead`, a
    socket nobody reads any more (its process died) is removed."""
    for target in targets:
        try:
            sender_socket.sendto(message, str(target))
        except (ConnectionRefusedError, FileNotFoundError):
            if remove_dead:
                with contextlib.suppress(OSError):
                    target.unlink()
        except OSError:
            pass  # its queue is full (it has rings to read already), or the folder is not ours


def bind_socket(folder: Path, name: str) -> socket.socket:
    """A non-blocking datagram socket bound to `folder/name`, making the folder (mode 0700) if needed."""
    own = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for attempt in range(3):  # the last process to leave removes the folder: it may go in between
        folder.mkdir(mode=0o700, exist_ok=True)
        try:
            own.bind(str(folder / name))
            break
        except FileNotFoundError:
            if attempt == 2:
                own.close()
                raise
        except OSError:
            own.close()
            raise
    own.setblocking(False)
    return own


class FileCoordination(Coordination):
    """The workers of one SQLite file. Every worker reads a socket of its own,
    `worker-<lease id>.sock`; the leader rewrites the `alive` file with its id and socket every
    interval, and followers look at the file (a `stat`, no statement) as often."""

    def __init__(self, folder: Path, on_ring: OnRing, every: float) -> None:
        self._folder = folder
        self._on_ring = on_ring
        self._lease = Lease(every)
        self._name = f"{_WORKER_PREFIX}{self._lease.me}.sock"
        self._own = bind_socket(folder, self._name)
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._own, selectors.EVENT_READ)
        self._selector.register(self._wakeup_read, selectors.EVENT_READ)
        self._alive_seen: tuple[int, str] | None = None  # (mtime ns, text) of the alive file last read
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="durably-coordination", daemon=True)
        self._thread.start()

    @property
    def leading(self) -> bool:
        return self._lease.leading

    def ring_workers(self) -> None:
        ring_folder(self._folder, Ring.WORKERS, sender=self._lease.me)

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._wakeup_write.send(b"x")
        self._thread.join()

    def _serve(self) -> None:
        try:
            while not self._closing.is_set():
                self._look_at_alive()
                if self._lease.tick():
                    self._say_alive()
                for key, _ in self._selector.select(self._lease.next_tick()):
                    if key.fileobj is self._own:
                        self._receive()
        finally:
            self._leave()

    def _look_at_alive(self) -> None:
        path = self._folder / _ALIVE
        try:
            seen = (path.stat().st_mtime_ns, path.read_text())
        except FileNotFoundError:
            if self._alive_seen is not None:  # the leader left (and said so): no need to wait
                self._alive_seen = None
                self._lease.vacant()
            return
        except OSError:
            return
        if seen != self._alive_seen:
            self._alive_seen = seen
            self._lease.heard(seen[1].split(" ")[0], age=max(0.0, time.time() - seen[0] / 1e9))

    def _say_alive(self) -> None:
        path = self._folder / _ALIVE
        draft = self._folder / f"{_ALIVE}.{self._lease.me}"
        try:
            draft.write_text(f"{self._lease.me} {self._name}")
            os.replace(draft, path)  # readers see the old text or the new, never half
            stat = path.stat()
        except OSError as error:
            logger.warning("durably coordination: cannot write %s: %s", path, error)
            return
        self._alive_seen = (stat.st_mtime_ns, f"{self._lease.me} {self._name}")

    def _receive(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                ring = decode_ring(self._own.recv(64).decode(errors="replace"))
                if ring is None:
                    continue
                try:
                    self._on_ring(ring[0], ring[1])
                except Exception:
                    logger.exception("durably coordination: handling a ring failed")

    def _leave(self) -> None:
        """Tidy up: this worker's socket, the alive file if it still names this worker (a follower
        steps up at once on seeing none), and the folder once nobody is left."""
        with contextlib.suppress(OSError):
            (self._folder / self._name).unlink()
        with contextlib.suppress(OSError):
            if (self._folder / _ALIVE).read_text().startswith(f"{self._lease.me} "):
                (self._folder / _ALIVE).unlink()
        with contextlib.suppress(OSError):
            self._folder.rmdir()
        self._own.close()
        self._wakeup_read.close()
        self._wakeup_write.close()
        self._selector.close()


def file_coordination(folder: Path, on_ring: OnRing, every: float) -> Coordination:
    """`FileCoordination` in this meeting folder (see `rendezvous`), or `Solo` where Unix sockets
    are missing or the folder cannot be used."""
    if not hasattr(socket, "AF_UNIX") or os.name != "posix":
        return Solo()
    try:
        return FileCoordination(folder, on_ring, every)
    except OSError as error:
        logger.warning(
            "durably coordination: cannot meet other workers in %s (%s); this worker surveys alone", folder, error
        )
        return Solo()
