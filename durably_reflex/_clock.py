"""Time as the engine stores it (integer epoch milliseconds) and as the wire shows it (ISO-8601 `Z`).

Integers compare and index the same way on every database, so storage keeps milliseconds and only
the wire format (`2026-01-03T10:15:30.123Z`, the shape Durably's clients parse) deals in strings.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: float | timedelta | str) -> float:
    """Seconds from a number of seconds, a timedelta, or text such as "30d", "12h", "90m", "45s"."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ValueError(f'a duration is a number and a unit (d, h, m, s), like "30d"; got {value!r}')
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"a duration is seconds, a timedelta or text like '30d'; got {value!r}")
    if not seconds > 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


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
