"""Who writes again soon: what a group-commit leader waits for before it commits.

Each thread that writes through a `GroupCommit` has a cadence: the time from its last write's
commit to its next write, as a moving average. A worker slot running short steps comes back
within a fraction of a millisecond; an API request, a heartbeat, the buffer flusher come and go
on their own time. With no leader committing, a thread whose write arrives while such quick
writers are still away (computing their next step) waits for them, until they are all there or
the one expected last is overdue (twice its cadence), and the whole lot shares one commit.

Why wait: the slots of one process share the interpreter lock, so their steps run one after the
other anyway; what waiting costs is only the latency of the first writer's step, and what it
saves is a commit per writer and the thread switches of each commit. Without it, the first slot
to come back commits alone while the others compute, the others commit together after it, and so
on: half the commits carry one step, and every commit's database calls hand the interpreter lock
to a computing slot and back (on SQLite, four slots ran W1 slower than one). On PostgreSQL with
durable commits, one flush then carries every slot's step instead of every other.

A writer whose cadence exceeds `LIMIT`, or a commit's usual duration if that is longer, is not
waited for: nobody waits on a thread that is away doing I/O or that writes only now and then, but
where a commit costs milliseconds (PostgreSQL flushing its log to disk), writers that come back
within one are worth one commit less. A lone writer (one slot) never waits.
"""

from __future__ import annotations

from dataclasses import dataclass

LIMIT = 0.001  # seconds: writers that come back slower than this are not waited for
FORGET_AFTER = 10.0  # seconds without a write: the thread's cadence is forgotten
_WEIGHT = 0.3  # of the newest gap in the moving average
_SLACK = 0.0003  # seconds beyond twice a writer's cadence before it is overdue


@dataclass(slots=True)
class _Writer:
    committed_at: float  # when its last write was done (committed or failed)
    gap: float | None = None  # moving average of the time from `committed_at` to its next write


class Cadence:
    """The writers of one connection, keyed by thread ident. Not thread-safe: the caller holds the
    group commit's lock."""

    def __init__(self) -> None:
        self._writers: dict[int, _Writer] = {}
        self._commit = 0.0  # moving average of a write group's duration, commit included (seconds)

    def arrived(self, ident: int, now: float) -> None:
        """A thread's write arrives."""
        writer = self._writers.get(ident)
        if writer is None:
            return
        gap = now - writer.committed_at
        writer.gap = gap if writer.gap is None else writer.gap + _WEIGHT * (gap - writer.gap)

    def done(self, idents: list[int], now: float, took: float) -> None:
        """These threads' writes are done, in one group that took `took` seconds: their next ones
        are timed from now."""
        self._commit += _WEIGHT * (took - self._commit)
        for ident in idents:
            writer = self._writers.get(ident)
            if writer is None:
                self._writers[ident] = _Writer(now)
            else:
                writer.committed_at = now

    def expected_until(self, present: set[int], now: float) -> float | None:
        """When the last of the quick writers not `present` is overdue (a `time.monotonic()`
        time), or None if no such writer is expected."""
        until = None
        stale = []
        limit = max(LIMIT, self._commit)  # a slow commit (a durable flush) is worth a longer wait
        for ident, writer in self._writers.items():
            if ident in present:
                continue
            if now - writer.committed_at > FORGET_AFTER:
                stale.append(ident)
                continue
            if writer.gap is None or writer.gap > limit:
                continue
            overdue = writer.committed_at + 2 * writer.gap + _SLACK
            if overdue > now and (until is None or overdue > until):
                until = overdue
        for ident in stale:
            del self._writers[ident]
        return until
