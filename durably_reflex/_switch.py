"""The interpreter's switch interval, shortened while a worker runs where latency matters.

A thread waiting for the interpreter lock waits up to the switch interval (Python's default: 5 ms)
every time it comes back from a system call, while another thread computes. Two places pay for it:

- A worker in a server's process (`mount_durably` in a Reflex app, `durably-reflex serve
  --in-process-worker`): the server's event loop shares the lock with the worker's threads, and a
  server writing to many sockets comes back from system calls constantly: with job code computing,
  its streams would stall.
- A worker process of the command line (`durably-reflex worker`, serve's worker processes): its
  runner commits each step and writes the events that streams send, a few system calls each, and
  with synchronous steps computing on their threads each of those waited for the lock. With 4 slots
  of steps that never yield, `bench/sse.py` (W4a, CPU-bound) measured the API's streams 1.3 to 1.4
  times as late, and the runs taking 1.4 times as long, at Python's default.

Those ask for `SHORT_SWITCH_INTERVAL` when they start the worker. It is the process's setting, so it
is set only when asked for, by name, and given back: the previous value returns when the last
worker that asked stops (engines that start and stop in any order share one hold). A worker that
an application starts itself (`durably.start()`) leaves it alone.
"""

from __future__ import annotations

import sys
import threading

SHORT_SWITCH_INTERVAL = 0.0005  # seconds

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
