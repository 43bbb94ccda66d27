"""Identifiers: ULIDs (26 characters, Crockford base32), as Durably uses for runs, steps and logs.

Ids made in one process increase strictly, even within one millisecond, so ordering logs or runs by
id keeps the order they were written in.

An id is made on every step, so it is made cheaply: the first 10 characters (the millisecond) are
encoded once per millisecond, the last 16 (80 bits: random for the millisecond's first id, then
incremented) with eight look-ups of two characters each.
"""

from __future__ import annotations

import os
import random
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two characters.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_RANDOM_BITS = 80
_lock = threading.Lock()
# Uniqueness comes from the clock and the increments; randomness only separates processes, so a
# generator seeded once from the OS suffices (and costs no system call per id).
_random = random.Random(os.urandom(16))
_last_ms = 0
_last_random = 0
_prefix = ""  # the characters of `_last_ms`


def _time_prefix(ms: int) -> str:
    """The first 10 characters: 50 bits, the 48-bit millisecond with 2 zero bits in front (26
    characters of 5 bits cover 130 bits: the 128-bit value with 2 zero bits in front)."""
    return (
        _PAIRS[ms >> 40]
        + _PAIRS[(ms >> 30) & 1023]
        + _PAIRS[(ms >> 20) & 1023]
        + _PAIRS[(ms >> 10) & 1023]
        + _PAIRS[ms & 1023]
    )


def new_id() -> str:
    global _last_ms, _last_random, _prefix
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _last_random += 1
            if _last_random >> _RANDOM_BITS:  # 2**80 ids in one millisecond: borrow the next one
                ms, _last_random = ms + 1, 0
        else:
            _last_random = _random.getrandbits(_RANDOM_BITS - 1)  # headroom for increments
        if ms != _last_ms or not _prefix:
            _prefix = _time_prefix(ms)
        _last_ms = ms
        r, prefix = _last_random, _prefix
    return (
        prefix
        + _PAIRS[r >> 70]
        + _PAIRS[(r >> 60) & 1023]
        + _PAIRS[(r >> 50) & 1023]
        + _PAIRS[(r >> 40) & 1023]
        + _PAIRS[(r >> 30) & 1023]
        + _PAIRS[(r >> 20) & 1023]
        + _PAIRS[(r >> 10) & 1023]
        + _PAIRS[r & 1023]
    )
