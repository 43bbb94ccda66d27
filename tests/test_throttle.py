"""The progress throttle of every stream (durably_reflex/_throttle.py), on its own: what it lets
through and when, for feed items in log order, on a clock the tests give it. Its promise: what it
hands out has strictly increasing ids, the latest progress of each run is always handed out, and a
progress is dropped only when a newer one of its run replaced it with nothing handed out between.
"""

from __future__ import annotations

import json
import math

from durably_reflex._feed import FeedItem
from durably_reflex._storage.base import StoredEvent
from durably_reflex._throttle import ProgressThrottle

INTERVAL = 10  # whole numbers of clock, so no rounding decides a test


class Log:
    """Feed items with ids in the order they are made, as the event log hands them out."""

    def __init__(self) -> None:
        self.next_id = 0

    def item(self, event_type: str, run_id: str = "a", **fields: object) -> FeedItem:
        self.next_id += 1
        body = json.dumps({"type": event_type, "runId": run_id, **fields})
        return FeedItem(StoredEvent(self.next_id, run_id, "job", event_type, body))

    def progress(self, run_id: str = "a", current: int = 1) -> FeedItem:
        return self.item("run:progress", run_id, progress={"current": current})


def ids(items: list[FeedItem]) -> list[int]:
    return [item.id for item in items]


def test_the_first_progress_of_a_run_goes_at_once_and_the_next_within_the_interval_is_held() -> None:
    log, throttle = Log(), ProgressThrottle(INTERVAL)
    first, second = log.progress(current=1), log.progress(current=2)
    assert throttle.admit(first, now=0) == [first]
    assert throttle.admit(second, now=5) == []
    assert throttle.wake_at == 10
    assert throttle.release_due(now=9) == []
    assert throttle.release_due(now=10) == [second]
    assert throttle.wake_at == math.inf


def test_a_held_progress_goes_out_before_the_next_frame_of_any_run() -> None:
    log, throttle = Log(), ProgressThrottle(INTERVAL)
    throttle.admit(log.progress("a", 1), now=0)
    held = log.progress("a", 2)
    assert throttle.admit(held, now=1) == []
    other = log.item("step:start", "b")
    assert throttle.admit(other, now=2) == [held, other]
    assert throttle.release_due(now=100) == []


def test_a_newer_progress_of_the_run_replaces_the_held_one() -> None:
    log, throttle = Log(), ProgressThrottle(INTERVAL)
    throttle.admit(log.progress(current=1), now=0)
    throttle.admit(log.progress(current=2), now=1)
    latest = log.progress(current=3)
    assert throttle.admit(latest, now=2) == []
    assert throttle.release_due(now=10) == [latest]


def test_a_due_progress_takes_the_held_progress_logged_before_it_along_in_log_order() -> None:
    log, throttle = Log(), ProgressThrottle(INTERVAL)
    throttle.admit(log.progress("b", 1), now=5)
    throttle.admit(log.progress("a", 1), now=8)
    held_a, held_b = log.progress("a", 2), log.progress("b", 2)
    assert throttle.admit(held_a, now=10) == [] and throttle.admit(held_b, now=12) == []
    assert throttle.release_due(now=15) == [held_a, held_b]  # b's is due, a's (due at 18) was logged first


def test_a_progress_held_after_a_due_one_stays_held() -> None:
    log, throttle = Log(), ProgressThrottle(INTERVAL)
    throttle.admit(log.progress("a", 1), now=0)
    throttle.admit(log.progress("b", 1), now=5)
    held_a, held_b = log.progress("a", 2), log.progress("b", 2)
    assert throttle.admit(held_a, now=6) == [] and throttle.admit(held_b, now=7) == []
    assert throttle.release_due(now=10) == [held_a]  # b's, logged later, is due only at 15
    assert throttle.release_due(now=15) == [held_b]


def test_a_due_progress_drops_its_runs_held_one_and_sends_the_others_first() -> None:
    log, throttle = Log(), ProgressThrottle(INTERVAL)
    throttle.admit(log.progress("a", 1), now=0)
    throttle.admit(log.progress("b", 1), now=0)
    throttle.admit(log.progress("a", 2), now=5)  # held, then replaced by 4 below
    held_b = log.progress("b", 2)
    throttle.admit(held_b, now=6)
    latest_a = log.progress("a", 4)
    assert throttle.admit(latest_a, now=20) == [held_b, latest_a]


def test_every_item_comes_out_once_in_log_order_whatever_the_clock() -> None:
    log, throttle = Log(), ProgressThrottle(INTERVAL)
    handed: list[FeedItem] = []
    made: list[FeedItem] = []
    for tick in range(200):
        now = tick * 1.3
        run = "ab"[tick % 3 == 0]
        item = log.progress(run, tick) if tick % 5 else log.item("log:write", run)
        made.append(item)
        handed += throttle.admit(item, now)
        handed += throttle.release_due(now)
    handed += throttle.release_due(math.inf)
    assert ids(handed) == sorted(set(ids(handed)))
    for run in "ab":  # the last progress of each run is handed out; so is every other event
        assert [item for item in made if item.run_id == run and item.type == "run:progress"][-1] in handed
    assert [item for item in made if item.type != "run:progress"] == [
        item for item in handed if item.type != "run:progress"
    ]


def test_an_interval_of_zero_lets_everything_through() -> None:
    log, throttle = Log(), ProgressThrottle(0)
    items = [log.progress(current=i) for i in range(5)]
    assert [out for item in items for out in throttle.admit(item, now=0.0)] == items


def test_a_batch_admitted_at_once_gives_what_its_items_admitted_one_by_one_give() -> None:
    log = Log()
    batches = [
        [
            log.progress("ab"[(tick + n) % 2], tick * 10 + n) if (tick + n) % 3 else log.item("step:start", "a")
            for n in range(tick % 4)
        ]
        for tick in range(60)
    ]
    one_by_one, at_once = ProgressThrottle(INTERVAL), ProgressThrottle(INTERVAL)
    for tick, batch in enumerate(batches):
        now = tick * 2.5
        expected = [out for item in batch for out in one_by_one.admit(item, now)] + one_by_one.release_due(now)
        assert at_once.admit_all(batch, now) + at_once.release_due(now) == expected
        assert at_once.wake_at == one_by_one.wake_at
