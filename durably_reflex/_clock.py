"""Time as the engine stores it (integer epoch milliseconds) and as the wire shows it (ISO-8601 `Z`).

Integers compare and index the same way on every database, so storage keeps milliseconds and only
the wire format (`2026-01-03T10:15:30.123Z`, the shape Durably's clients parse) deals in strings.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """The current time in whole epoch milliseconds."""
    return time.time_ns() // 1_000_000


_cached: tuple[int, str] = (-1, "")  # (second, its formatted prefix): one tuple, so threads never mix halves


def to_iso(ms: int) -> str:
    """Epoch milliseconds as UTC ISO-8601 with exactly three fractional digits and a `Z`.

    Every event carries one, so the date part is formatted once per second, not once per call.
    """
    global _cached
    second, millis = divmod(ms, 1000)
    cached_second, prefix = _cached
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _cached = (second, prefix)
    return f"{prefix}{millis:03d}Z"
