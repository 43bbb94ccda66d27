"""Time as the engine stores it (integer epoch milliseconds) and as the wire shows it (ISO-8601 `Z`).

Integers compare and index the same way on every database, so storage keeps milliseconds and only
the wire format (`2026-01-03T10:15:30.123Z`, the shape Durably's clients parse) deals in strings.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ms() -> int:
    """The current time in whole epoch milliseconds."""
    return time.time_ns() // 1_000_000


def to_iso(ms: int | None) -> str | None:
    """Epoch milliseconds as UTC ISO-8601 with exactly three fractional digits and a `Z`."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
