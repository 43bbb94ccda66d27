"""Identifiers: ULIDs (26 characters, Crockford base32), as Durably uses for runs, steps and logs.

Ids made in one process increase strictly, even within one millisecond, so ordering logs or runs by
id keeps the order they were written in.
"""

from __future__ import annotations

import os
import random
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two characters: encoding takes 13 look-ups, not 26.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_RANDOM_BITS = 80
_lock = threading.Lock()
# Uniqueness comes from the clock and the increments; randomness only separates processes, so a
# generator seeded once from the OS suffices (and costs no system call per id).
_random = random.Random(os.urandom(16))
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
            _last_random = _random.getrandbits(_RANDOM_BITS - 1)  # headroom for increments
        _last_ms = ms
        value = (ms << _RANDOM_BITS) | _last_random
    # 26 characters of 5 bits cover 130 bits: the 128-bit value with 2 zero bits in front.
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])
