"""Which writers a group-commit leader waits for (`_storage/cadence.py`): a pure function of when
each thread's writes were done and arrived, so these tests give it the times."""

from __future__ import annotations

from durably_reflex._storage.cadence import FORGET_AFTER, LIMIT, Cadence

MS = 0.001


def writes(cadence: Cadence, thread: int, gaps: list[float], start: float = 0.0) -> float:
    """`thread` writes with these gaps between one write done and the next arriving (each write
    done at once); returns when its last write was done."""
    now = start
    cadence.done([thread], now, took=0.0)
    for gap in gaps:
        now += gap
        cadence.arrived(thread, now)
        cadence.done([thread], now, took=0.0)
    return now


def test_a_lone_writer_waits_for_nobody():
    cadence = Cadence()
    writes(cadence, 1, [0.1 * MS] * 5)

    assert cadence.expected_until({1}, 1.0) is None


def test_a_quick_writer_that_is_away_is_expected_until_twice_its_cadence_has_passed():
    cadence = Cadence()
    done = writes(cadence, 2, [0.2 * MS] * 5)

    until = cadence.expected_until({1}, done + 0.1 * MS)

    assert until is not None and done + 0.4 * MS < until < done + 1 * MS
    assert cadence.expected_until({1}, until + 0.01 * MS) is None  # overdue: not waited for any longer


def test_a_writer_already_queued_is_not_waited_for():
    cadence = Cadence()
    done = writes(cadence, 2, [0.2 * MS] * 5)

    assert cadence.expected_until({1, 2}, done + 0.1 * MS) is None


def test_the_wait_lasts_until_the_last_quick_writer_is_overdue():
    cadence = Cadence()
    done = writes(cadence, 2, [0.1 * MS] * 5)
    writes(cadence, 3, [0.3 * MS] * 5, start=done - 1.5 * MS)  # both done at the same moment

    until = cadence.expected_until({1}, done)

    assert until is not None and until > done + 0.6 * MS  # thread 3's: twice 0.3 ms


def test_writers_slower_than_the_limit_are_not_waited_for():
    """A thread away doing I/O, a heartbeat, an API request now and then."""
    cadence = Cadence()
    done = writes(cadence, 2, [LIMIT * 2] * 5)

    assert cadence.expected_until({1}, done + 0.1 * MS) is None


def test_where_commits_take_longer_than_the_limit_writers_as_slow_as_a_commit_are_waited_for():
    """PostgreSQL flushing its log to disk: a commit of a few milliseconds is worth waiting for."""
    cadence = Cadence()
    done = writes(cadence, 2, [LIMIT * 2] * 5)
    for _ in range(20):
        cadence.done([3], done, took=LIMIT * 3)

    assert cadence.expected_until({1, 3}, done + 0.1 * MS) is not None


def test_a_writer_that_slows_down_stops_being_waited_for():
    cadence = Cadence()
    done = writes(cadence, 2, [0.1 * MS] * 5 + [50 * MS] * 5)

    assert cadence.expected_until({1}, done + 0.01 * MS) is None


def test_writers_gone_for_long_are_forgotten():
    cadence = Cadence()
    done = writes(cadence, 2, [0.1 * MS] * 5)
    cadence.expected_until({1}, done + FORGET_AFTER + 1)

    cadence.arrived(2, done + FORGET_AFTER + 2)  # comes back: a first write again, nothing to time
    assert cadence.expected_until({1}, done + FORGET_AFTER + 2) is None
