"""Identifiers: ULIDs (26 characters, Crockford base32), as Durably uses for runs, steps and logs.

Ids made in one process increase strictly, even within one millisecond, so ordering logs or runs by
id keeps the order they were written in.
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# base64's base32 alphabet mapped onto Crockford's: encoding then takes one C call, not 26 Python steps.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
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
    # ULID's 26 characters cover 130 bits (2 zero bits pad the front). Placed at bit 1 of 17 bytes,
    # those 130 bits fill base32's 5-bit groups 1 to 26 exactly.
    return base64.b32encode((value << 1).to_bytes(17, "big"))[1:27].translate(_TO_CROCKFORD).decode()
