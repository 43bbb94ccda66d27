"""Which feed items a stream sends, and when: `run:progress` throttled per run, ids never going back.

A client that reconnects sends the id of the last frame it received (`Last-Event-ID`) and is sent
every event logged after it, so that id must mean "everything up to here has been received": a
stream's ids must only increase. A progress held back by the throttle therefore goes out before
any later frame of the stream, never after one: when it is due, or just before the next frame the
stream sends, whichever comes first. What the throttle drops is only a progress that a newer
progress of the same run replaced while both were held, with nothing sent between them, so a
resumed stream (which throttles what it reads afresh) tells the same as the one that dropped.
"""

from __future__ import annotations

import math

from ._events import RUN_PROGRESS
from ._feed import FeedItem

# Runs remembered before those whose last progress went out longer than the interval ago are forgotten.
_REMEMBERED_RUNS = 1024


class ProgressThrottle:
    """At most one `run:progress` per run per `interval` seconds on one stream, the latest always sent
    (see the module docstring). `admit(item, now)` gives what to send for an item, in log order;
    `release_due(now)` what is due by now; `wake_at` when the next held progress is due."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        # run id → (when due, its latest progress), in log order: items come in log order, and a
        # replaced one is removed before its successor goes in at the end.
        self._held: dict[str, tuple[float, FeedItem]] = {}
        self._sent_at: dict[str, float] = {}  # run id → when its last progress went out
        self._forget_at = _REMEMBERED_RUNS

    @property
    def wake_at(self) -> float:
        """When the earliest held progress is due (inf: none is held)."""
        if not self._held:  # asked before every wait of the stream: mostly nothing is held
            return math.inf
        return min(due for due, _ in self._held.values())

    def admit(self, item: FeedItem, now: float) -> list[FeedItem]:
        """The items to send now, in log order, for `item` coming next: [] if it is a progress held
        back; otherwise any held progress (all logged before it), then the item."""
        return self.admit_all([item], now)

    def admit_all(self, items: list[FeedItem], now: float) -> list[FeedItem]:
        """`admit` of each item in turn, in one call per batch (a stream's cost per event is what
        hundreds of streams multiply): what to send now for these items, in log order.

        Items come in log order, so whatever is held was logged before the item at hand: an item
        that goes out takes every held progress along, before it."""
        if self._interval <= 0:
            return items
        held = self._held
        ready: list[FeedItem] = []
        for item in items:
            if item.type == RUN_PROGRESS:
                run_id = item.run_id
                held.pop(run_id, None)  # replaced: nothing was sent since it was held
                due = self._sent_at.get(run_id, -math.inf) + self._interval
                if due > now:
                    held[run_id] = (due, item)
                    continue
                self._sent(run_id, now)
            if held:
                self._release_all(ready, now)
            ready.append(item)
        return ready

    def release_due(self, now: float) -> list[FeedItem]:
        """Held progress that is due by `now`, with any held progress logged before it, in log order."""
        if not self._held:
            return []
        through = max((item.id for due, item in self._held.values() if due <= now), default=None)
        if through is None:
            return []
        ready: list[FeedItem] = []
        for _, item in self._held.values():
            if item.id > through:
                break
            ready.append(item)
        for item in ready:
            del self._held[item.run_id]
            self._sent(item.run_id, now)
        return ready

    def _release_all(self, ready: list[FeedItem], now: float) -> None:
        """Every held progress onto `ready`, in log order (the order it was held in)."""
        for run_id, (_, item) in self._held.items():
            ready.append(item)
            self._sent(run_id, now)
        self._held.clear()

    def _sent(self, run_id: str, now: float) -> None:
        self._sent_at[run_id] = now
        if len(self._sent_at) > self._forget_at:  # a long stream of many runs: forget those long quiet
            horizon = now - self._interval
            self._sent_at = {run: at for run, at in self._sent_at.items() if at > horizon}
            self._forget_at = max(_REMEMBERED_RUNS, 2 * len(self._sent_at))
