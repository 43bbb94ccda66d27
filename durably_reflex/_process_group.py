"""Run a command as a process tree of its own that a signal to us stops as a whole.

`reflex run` starts a tree: the Reflex CLI, granian and its workers, npm and node while it builds.
Run in a new session (its own process group), it does not see a terminal's Ctrl-C by itself, and
nothing of it can outlive us: SIGINT or SIGTERM to this process sends SIGTERM to the whole group,
waits up to `stop_timeout` for the group to be gone, then SIGKILLs what is left. A second signal
while stopping kills the group at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

POLL_SECONDS = 0.2


def run_group(command: Sequence[str], *, cwd: Path, env: Mapping[str, str], stop_timeout: float) -> int:
    """Run `command` until it exits (its exit code; 1 if a signal ended it) or until we get SIGINT or
    SIGTERM (0, once the whole group is gone)."""
    stop = _StopRequest()
    with stop.installed():
        if stop.received:  # a signal came before the tree existed: nothing to start
            return 0
        process = subprocess.Popen(command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, start_new_session=True)
        stop.group = process.pid
        while process.poll() is None and not stop.received:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(POLL_SECONDS)
        if not stop.received:
            code = process.returncode
            end_group(process.pid, stop_timeout)  # what the command left running
            return code if code >= 0 else 1
        stop.forward()
        end_group(process.pid, stop_timeout, already_signalled=True)
        process.wait()
        return 0


def end_group(group: int, timeout: float, *, already_signalled: bool = False) -> None:
    """SIGTERM the process group (unless done already), wait up to `timeout` for it to be empty,
    then SIGKILL it and wait (bounded) for the kernel to tear it down."""
    if not already_signalled:
        _signal_group(group, signal.SIGTERM)
    if _wait_group_gone(group, timeout):
        return
    _signal_group(group, signal.SIGKILL)
    _wait_group_gone(group, 5.0)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _wait_group_gone(group: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(group)
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _reap(group: int) -> None:
    """Collect the group leader once it exits (our child): a zombie still counts as a member."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(group, os.WNOHANG)


class _StopRequest:
    """SIGINT/SIGTERM while the tree runs: the first asks to stop (SIGTERM to the group), a second
    one kills the group at once."""

    def __init__(self) -> None:
        self.received = False
        self.group: int | None = None
        self._forwarded = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {signum: signal.signal(signum, self._handle) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def forward(self) -> None:
        if self.group is not None and not self._forwarded:
            self._forwarded = True
            _signal_group(self.group, signal.SIGTERM)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received and self.group is not None:
            _signal_group(self.group, signal.SIGKILL)
            return
        self.received = True
        self.forward()
