"""The interpreter's switch interval, shortened while a worker shares its process with a server.

The worker's threads (its runner, and the threads of slow synchronous steps) share the interpreter
lock with the server's event loop when the worker runs in the server's process (`mount_durably` in
a Reflex app, `durably-reflex serve --in-process-worker`). A thread waiting for the lock waits up
to the switch interval (Python's default: 5 ms) every time it comes back from a system call, and a
server writing to many sockets does that constantly: with job code computing, its streams would
stall. Those two ask for `SERVER_SWITCH_INTERVAL` when
they start the worker.

It is the process's setting, so it is set only when asked for, by name, and given back: the
previous value returns when the last worker that asked stops (engines that start and stop in any
order share one hold). A worker alone in its process (`durably-reflex worker`, serve's worker
processes) leaves it alone: there, a shorter interval only adds switches between its own threads.
"""

from __future__ import annotations

import sys
import threading

SERVER_SWITCH_INTERVAL = 0.0005  # seconds

_lock = threading.Lock()
_holders = 0
_previous = 0.0
_set = 0.0


def hold(seconds: float) -> None:
    """Shorten the switch interval to `seconds` (never lengthen it) until the matching `release`."""
    global _holders, _previous, _set
    with _lock:
        if _holders == 0:
            _previous = sys.getswitchinterval()
            _set = min(_previous, seconds)
        else:
            _set = min(_set, seconds)
        _holders += 1
        sys.setswitchinterval(_set)


def release() -> None:
    """The last holder gone, the interval before the first returns (unless someone else changed it
    meanwhile: then theirs stays)."""
    global _holders
    with _lock:
        _holders -= 1
        if _holders == 0 and sys.getswitchinterval() == _set:
            sys.setswitchinterval(_previous)
