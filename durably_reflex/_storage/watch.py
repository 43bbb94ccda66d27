"""Whether this process should log its events: what it knows of the `durably_watch` mark, and when
to look at the mark again.

A process that streams events sets the mark (until when it wants events logged) and then waits
`2 * refresh` seconds before reading the state it will follow. Every other process must be logging
by then, so knowledge read more than `2 * refresh` seconds ago is not trusted: the answer is then
"log" (a few events too many cost nothing; a missing one is a gap in a stream), and a fresh look is
asked for. Looks are asked for only by a process that is about to log something, at most once per
`refresh`: an idle process reads the mark not at all, so idle cost does not grow with the number of
processes, and a busy one reads it about once per `refresh` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("durably_reflex")

# How often a process that logs events re-reads the mark (seconds); see the module docstring.
WATCH_REFRESH = 0.1
# ... and how often it retries while the mark cannot be read (the database is down, say).
RETRY_AFTER_FAILURE = 1.0


class WatchMark:
    """What this process knows of the mark. `wanted()` answers the engine (any thread); the storage's
    flusher thread calls `look_due()` and then `seen()` or `failed()`."""

    def __init__(self, refresh: float = WATCH_REFRESH, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh = refresh
        self._clock = clock
        self._until = 0  # epoch ms, as the mark stores it
        self._read_at = float("-inf")  # clock time just before the read that gave `_until`
        self._asked = threading.Event()  # someone needs a fresh look
        self._looked_at = float("-inf")
        self._failing = False

    def wanted(self, now_ms: int) -> bool:
        """Whether an event made now should be logged. Asks for a look when knowledge is getting old."""
        age = self._clock() - self._read_at
        if age > self.refresh:
            if not self._asked.is_set():
                self._asked.set()
            return age > 2 * self.refresh or self._until > now_ms
        return self._until > now_ms

    def stale(self) -> bool:
        """Whether what this process knows is older than `refresh` (a busy process keeps it fresher)."""
        return self._clock() - self._read_at > self.refresh

    def raise_to(self, until: int) -> None:
        """This process set the mark itself."""
        self._until = max(self._until, until)

    def look_due(self) -> float | None:
        """None if no look is wanted; else seconds to wait before looking (0: look now). At most one
        look per `refresh` (per `RETRY_AFTER_FAILURE` while looks fail), however often `wanted()` asks."""
        if not self._asked.is_set():
            return None
        interval = RETRY_AFTER_FAILURE if self._failing else self.refresh
        return max(0.0, self._looked_at + interval - self._clock())

    def looking(self) -> float:
        """A look starts: returns the clock time to hand to `seen()`."""
        self._asked.clear()
        self._looked_at = self._clock()
        return self._looked_at

    def seen(self, until: int | None, read_at: float) -> None:
        """The mark as a read that started at `read_at` found it (None: no row yet)."""
        if self._failing:
            logger.info("durably storage: the watch mark is readable again")
            self._failing = False
        self._until = until or 0
        self._read_at = max(self._read_at, read_at)

    def failed(self, error: BaseException) -> None:
        """A look failed: logged once per streak of failures; meanwhile events are logged (unsure)."""
        if not self._failing:
            logger.warning(
                "durably storage: could not read the watch mark (%s: %s); logging every event until it is readable",
                type(error).__name__,
                error,
            )
            self._failing = True
