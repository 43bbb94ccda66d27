"""Worker processes under one supervisor: the workers of `durably-reflex serve` (beside the API) and
of `durably-reflex worker --processes N`.

Why processes: a step that computes without yielding holds its interpreter's lock, and in the API's
own process that stalls every event stream the API serves. Workers in processes of their own keep
the API's event loop free, and N of them use N cores.

Each child is `python -m durably_reflex worker MODULE:ATTR` with the supervisor's options, started in
the same folder, so it imports the same module (and opens the same database). It is told two hidden
options: which worker it is (its log lines say so) and the file descriptor of its end of a socket
pair, its lifeline:

- the child says "ready" on it once its worker has started;
- the child sees the supervisor go (end of file, even after a SIGKILL of the supervisor) and stops
  as on SIGTERM, so no worker outlives its supervisor for longer than its stop.

Each child runs in a session of its own, so a terminal's Ctrl-C reaches only the supervisor, which
passes every SIGINT or SIGTERM it gets on to every child as one SIGTERM: a child stops exactly as a
lone worker stops (first signal: finish within --stop-timeout, then hand the runs back; second: hand
them back now; third: exit at once). A child that exits while nobody asked it to (a crash, an
out-of-memory kill, a SIGTERM of its own) is logged and started again after a delay that doubles from
RESTART_DELAY_MIN to RESTART_DELAY_MAX, and is RESTART_DELAY_MIN again once a child has run for
STABLE_AFTER seconds. Its runs are resumed at once by the other workers (their owner died on this
host). A child that has not exited STOP_GRACE seconds after its stop timeout (or FORCE_GRACE seconds
after a forced stop) is killed, with whatever it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._engine import Durably

logger = logging.getLogger("durably_reflex._supervisor")

RESTART_DELAY_MIN = 0.5
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0
STOP_GRACE = 15.0  # beyond --stop-timeout: the engine's own interrupt grace, closing the database
FORCE_GRACE = 10.0
READY = b"ready\n"


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """How to start one worker child: the `worker` command with the supervisor's own options."""

    target: str
    stop_timeout: float
    log_level: str
    nice: int = 0
    retain_runs: str | None = None  # `--retain-runs` as given ("30d")

    def argv(self, index: int, lifeline: int) -> list[str]:
        return [
            sys.executable, "-m", "durably_reflex", "worker", self.target,
            "--stop-timeout", repr(self.stop_timeout), "--log-level", self.log_level,
            "--worker-index", str(index), "--lifeline", str(lifeline),
            *(["--nice", str(self.nice)] if self.nice else []),
            *(["--retain-runs", self.retain_runs] if self.retain_runs is not None else []),
        ]  # fmt: skip


def unshareable_database(durably: Durably) -> str | None:
    """Why worker processes cannot share this engine's database, or None: an in-memory SQLite
    database exists only inside the process that opened it."""
    from ._storage.sqlite import SqliteStorage  # here: the engine module does not need it

    storage = durably.storage
    if not isinstance(storage, SqliteStorage):
        return None
    database = storage.url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database:
        return "an in-memory SQLite database lives inside one process"
    return None


@dataclass(eq=False)
class _Child:
    index: int
    process: asyncio.subprocess.Process
    lifeline: socket.socket
    started_at: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    signals: int = 0  # SIGTERMs sent to it (see Supervisor.escalate)

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Keeps `count` worker children running until asked to stop, then waits for them to stop."""

    def __init__(self, command: WorkerCommand, count: int) -> None:
        self._command = command
        self._count = count
        self._children: dict[int, _Child] = {}  # by worker index (1 to count): the one alive now
        self._level = 0  # stop signals asked for so far; every child is brought up to it
        self._failures: list[str] = []  # children that did not stop cleanly
        self.all_ready = asyncio.Event()  # every worker has started once
        self._stopping = asyncio.Event()

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children.values()]

    async def run(self) -> bool:
        """Start the children, keep them running until `escalate()`, and return once they have all
        exited: True if every one stopped cleanly (exit code 0)."""
        await asyncio.gather(*(self._keep(index) for index in range(1, self._count + 1)))
        return not self._failures

    def escalate(self) -> None:
        """One more stop signal (SIGINT or SIGTERM came): the first stops the children, the second
        makes them hand their runs back at once, the third makes them exit at once."""
        self._level += 1
        if self._level == 1:
            self._stopping.set()
            self._kill_later(self._command.stop_timeout + STOP_GRACE)
        elif self._level == 2:
            self._kill_later(FORCE_GRACE)
        for child in list(self._children.values()):
            self._catch_up(child)

    def stop(self) -> None:
        """Ask the children to stop, unless that was asked already."""
        if self._level == 0:
            self.escalate()

    # -- one worker's place ------------------------------------------------------------------------
    async def _keep(self, index: int) -> None:
        delay = RESTART_DELAY_MIN
        while not self._stopping.is_set():
            child = await self._start(index)
            if child is None:
                code: int | None = None
            else:
                code = await self._wait(child)
                if self._stopping.is_set():
                    if code != 0:
                        self._failures.append(f"worker {index} (pid {child.pid}) {_describe_exit(code)}")
                        logger.warning("worker %d (pid %d) %s while stopping", index, child.pid, _describe_exit(code))
                    return
                if time.monotonic() - child.started_at >= STABLE_AFTER:
                    delay = RESTART_DELAY_MIN
            logger.warning(
                "worker %d%s %s; starting it again in %gs",
                index,
                "" if child is None else f" (pid {child.pid})",
                "could not be started" if child is None else _describe_exit(code),
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, RESTART_DELAY_MAX)

    async def _start(self, index: int) -> _Child | None:
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command.argv(index, theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # a terminal's Ctrl-C is the supervisor's to pass on
            )
        except OSError as error:
            ours.close()
            logger.error("worker %d: cannot start a process: %s", index, error)
            return None
        finally:
            theirs.close()
        ours.setblocking(False)
        child = self._children[index] = _Child(index, process, ours)
        logger.info("worker %d started (pid %d)", index, child.pid)
        self._catch_up(child)  # a stop asked for while it was being started
        return child

    async def _wait(self, child: _Child) -> int:
        """Until the child exits; notes when it says it is ready."""
        listening = asyncio.create_task(self._listen(child))
        try:
            return await child.process.wait()
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            child.lifeline.close()
            if self._children.get(child.index) is child:
                del self._children[child.index]

    async def _listen(self, child: _Child) -> None:
        loop = asyncio.get_running_loop()
        received = b""
        while READY not in received:
            data = await loop.sock_recv(child.lifeline, 64)
            if not data:
                return
            received += data
        child.ready.set()
        if len(self._children) == self._count and all(c.ready.is_set() for c in self._children.values()):
            self.all_ready.set()

    # -- stopping ------------------------------------------------------------------------------------
    def _catch_up(self, child: _Child) -> None:
        """Send the child the stop signals it has not had yet."""
        while child.signals < self._level and child.process.returncode is None:
            child.signals += 1
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    def _kill_later(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._kill_all, delay)

    def _kill_all(self, delay: float) -> None:
        for child in list(self._children.values()):
            if child.process.returncode is None:
                logger.warning(
                    "worker %d (pid %d) has not stopped %gs after being told: killing it", child.index, child.pid, delay
                )
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)  # it leads its own session: what it started goes too


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Lifeline:
    """A supervised worker's end of the socket pair (see the module docstring)."""

    def __init__(self, fd: int) -> None:
        self._socket = socket.socket(fileno=fd)
        self._socket.setblocking(False)

    def watch(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[], None]) -> None:
        """Call `on_lost` once the supervisor is gone."""

        def readable() -> None:
            try:
                data = self._socket.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self._socket)
                on_lost()

        loop.add_reader(self._socket, readable)

    def ready(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.send(READY)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._socket)
        self._socket.close()
