"""Who holds a claim: `host:pid:start-time` of the worker process.

Heartbeats prove an owner alive anywhere; this proves one dead sooner when it ran on this host. A
run held by a process that is gone (or whose pid now belongs to a newer process) can be resumed at
once instead of after the stale threshold.
"""

from __future__ import annotations

import os
import socket
from functools import cache


@cache
def current_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or ''}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner certainly ran on this host and is certainly gone."""
    try:
        host, pid_text, started = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if os.path.isdir("/proc"):
        current = _start_time(pid)
        return current is None or (started != "" and current != started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    state, start_ticks = fields[0], fields[19]
    return None if state in ("Z", "X") else start_ticks
