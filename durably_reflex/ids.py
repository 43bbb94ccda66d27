"""Identifiers: ULIDs (26 characters, Crockford base32), as Durably uses for runs, steps and logs.

Ids made in one process increase strictly, even within one millisecond, so ordering logs or runs by
id keeps the order they were written in.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def new_id() -> str:
    global _last_ms, _last_random
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _last_random += 1
            if _last_random >> _RANDOM_BITS:  # 2**80 ids in one millisecond: borrow the next one
                ms, _last_random = ms + 1, 0
        else:
            _last_random = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
        _last_ms = ms
        value = (ms << _RANDOM_BITS) | _last_random
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))
