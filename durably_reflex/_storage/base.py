"""The storage interface: every verb the engine needs of a database, and the values they exchange.

Values made on the hot path (step records, logs, events) are named tuples: as typed, far cheaper
to make than dataclasses.

One implementation per database family stands behind it (`SqliteStorage`, `PostgresStorage`), so
the engine never sees SQL. Writes made on behalf of a claimed run name the claim's `attempt`: a
worker whose claim was taken over cannot overwrite the new owner's results.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from .._records import Attempt, Disposition, LogEntry, Run, Schedule, Step
from .coordination import Coordination, OnRing, Solo
from .watch import WATCH_REFRESH

# `ready_at` of a run that waits with no deadline (a signal wait without a timeout): never ready by
# itself, only when the signal comes. Far beyond any real time, and within a BIGINT.
NEVER = 2**62


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    job_name: str
    input_json: str
    idempotency_key: str | None
    concurrency_key: str | None
    created_at: int
    scope: str = ""  # the tenant ("" for none): keys are unique within it
    priority: int = 0
    ready_at: int | None = None  # epoch ms before which no worker takes it (None: at once)
    waiting_for_json: str | None = None  # a delayed run's `{"kind": "delay", "until": ...}`
    labels: dict[str, str] = field(default_factory=dict)
    replay_of: str | None = None
    coalesce: bool = False  # return the pending run of the same concurrency key instead, if any


class Wait(NamedTuple):
    """A run's durable wait, by step name (see `tables.WaitRow`)."""

    kind: str  # "sleep" | "signal"
    until: int | None  # epoch ms; None: no deadline
    payload_json: str | None  # a signal's payload
    received_at: int | None  # when the signal came (None: not yet)
    created_at: int  # when the wait (or its early signal) was stored


class ClaimedRun(NamedTuple):
    """What a worker needs of a run it claimed (the whole `Run` costs more to make than its steps)."""

    id: str
    job_name: str
    input: Any  # decoded
    started_at: int | None  # epoch ms of the run's first start (None: this is it)


class Claim(NamedTuple):
    """A run this worker now owns, with what earlier executions already completed (name → output)."""

    run: ClaimedRun
    attempt: int
    completed_steps: dict[str, Any]


class ClaimRequest(NamedTuple):
    """Who claims, for which jobs (see `Storage.claim`)."""

    owner: str
    job_names: tuple[str, ...]


class Settled(NamedTuple):
    """What `Storage.finish_run` did."""

    conflict: str | None  # None: settled; else the run's status as it stands (nothing was written)
    next: Claim | None  # the run claimed in the same transaction, when asked for and one was pending


class StepRecord(NamedTuple):
    id: str
    run_id: str
    attempt: int
    name: str
    step_index: int  # not `index`: a NamedTuple field may not shadow tuple.index
    status: str  # "completed" | "failed" | "cancelled"
    output_json: str | None
    error: str | None
    error_stack: str | None
    started_at: int
    completed_at: int


class StepWrite(Enum):
    RECORDED = "recorded"
    RECORDED_RUN_CANCELLED = "recorded, but the run was cancelled meanwhile"
    CLAIM_LOST = "not recorded: the run is no longer this worker's"


class NewLog(NamedTuple):
    id: str
    run_id: str
    step_name: str | None
    level: str
    message: str
    data_json: str | None
    created_at: int


class NewEvent(NamedTuple):
    run_id: str
    job_name: str | None
    type: str
    body_json: str
    created_at: int


class StoredEvent(NamedTuple):
    id: int
    run_id: str
    job_name: str | None
    type: str
    body_json: str


@dataclass(frozen=True, slots=True)
class RunQuery:
    job_names: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    limit: int | None = None
    offset: int = 0
    scope: str | None = None  # only the runs of this tenant (None: every run)
    labels: tuple[tuple[str, str], ...] = ()  # every one must match
    id_prefix: str | None = None
    created_after: int | None = None  # epoch ms, inclusive
    created_before: int | None = None  # epoch ms, exclusive
    input_fields: tuple[tuple[str, str], ...] = ()  # (dotted path in the input, value as text)
    replay_of: str | None = None
    before: tuple[int, str] | None = None  # (created_at, id): only older runs (paging by key)


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """What `count_runs` counts: the runs of `job_names` (None: every job; empty: none), and for the
    series, those created in `buckets` consecutive buckets of `bucket_ms` from `start` (epoch ms)."""

    job_names: tuple[str, ...] | None
    start: int
    bucket_ms: int
    buckets: int
    scope: str | None = None  # only the runs of this tenant (None: every run)


class RunCounts(NamedTuple):
    by_job: list[tuple[str, str, int]]  # (job name, status, runs)
    by_bucket: list[tuple[int, str, int]]  # (bucket index from 0, status, runs created in it)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The outcome of one heartbeat round: runs whose claim ended, by what became of them."""

    cancelled: list[tuple[str, int]] = field(default_factory=list)  # (run id, attempt)
    lost: list[tuple[str, int]] = field(default_factory=list)


class DueSchedule(NamedTuple):
    """A schedule whose tick has come (see `Storage.survey`)."""

    name: str
    job_name: str
    cron: str
    timezone: str
    input_json: str
    catch_up: str
    due: int  # the tick, epoch ms


class Survey(NamedTuple):
    """What the leading worker's look at the database found (see `Storage.survey`)."""

    pending_jobs: list[str]  # the jobs of the first ready pending runs (up to the limit asked), recovered ones included
    recovered: list[str]  # runs handed back to pending (their worker died or went silent)
    next_ready_at: int | None  # epoch ms of the next waiting run's readiness or schedule tick (None: none)
    due_schedules: list[DueSchedule]


Announce = Callable[[Run], object]  # its result is ignored


def once_per_run(post: Callable[[Run], object]) -> Announce:
    """`post` as events for storage to make inside its transaction: once per run even if the
    transaction is run again. They then come before anything a worker does with the run."""
    announced: set[str] = set()

    def announce(run: Run) -> None:
        if run.id not in announced:
            announced.add(run.id)
            post(run)

    return announce


class Storage(ABC):
    # How often a process that logs events re-reads whether anyone watches them (see `events_watched`).
    watch_refresh: float = WATCH_REFRESH

    # -- schema -----------------------------------------------------------------------------------
    @abstractmethod
    async def migrate(self) -> None:
        """Bring the schema to the current version; safe to call often and from several processes."""

    # -- runs on behalf of callers ----------------------------------------------------------------
    @abstractmethod
    async def insert_runs(self, runs: list[NewRun], announce: Announce | None = None) -> list[tuple[Run, Disposition]]:
        """Create runs in one transaction. A run whose (scope, job, idempotency key) exists is not
        created: the existing run comes back, `idempotent`; nor is a `coalesce` run whose concurrency
        key has a pending run of the job: that one comes back, `coalesced`. `announce(run)` is called
        for each created run before the commit, so its event comes before anything a worker does."""

    @abstractmethod
    async def get_run(self, run_id: str, scope: str | None = None) -> Run | None:
        """The run, or None if there is none; with a `scope`, None too for a run of another tenant."""

    @abstractmethod
    async def get_run_and_last_event_id(self, run_id: str, scope: str | None = None) -> tuple[Run | None, int]:
        """The run (as `get_run`) and the newest logged event id, read together: every event up to
        that id is already reflected in the run, so a stream that starts from this run skips them."""

    @abstractmethod
    async def get_runs(self, query: RunQuery) -> list[Run]:
        """Newest first (creation time, then id)."""

    @abstractmethod
    async def count_runs(self, query: StatsQuery) -> RunCounts:
        """Runs per job and status, and runs created per bucket and status: counted by the database
        (GROUP BY on indexes), so a dashboard's counters cost no more with 100,000 runs than 100."""

    @abstractmethod
    async def get_steps(self, run_id: str) -> list[Step]:
        """In step order; failed rows of earlier attempts stay beside the completed ones."""

    @abstractmethod
    async def get_logs(self, run_id: str, *, after_id: str | None = None, limit: int | None = None) -> list[LogEntry]:
        """Oldest first."""

    @abstractmethod
    async def retry(self, run_id: str, now: int, announce: Announce | None = None) -> Run:
        """failed | cancelled → pending, keeping completed steps; `announce(run)` before the commit.
        Raises RunNotFoundError, RunStateError."""

    @abstractmethod
    async def bulk_change(self, action: str, run_ids: list[str], now: int, announce: Announce) -> list[Run]:
        """`retry`, `cancel` or `delete` these runs in one transaction, those whose status allows it
        (the others are left as they are); returns the runs changed, as they were before for
        `delete`. `announce(run)` for each, inside the transaction."""

    @abstractmethod
    async def replay(self, run: NewRun, source_id: str, step_names: list[str], announce: Announce) -> Run:
        """Create `run` (a replay of `source_id`, in the source's scope) with copies of the source's
        completed steps of these names, in one transaction."""

    @abstractmethod
    async def get_attempts(self, run_id: str) -> list[Attempt]:
        """The run's earlier attempts, first first."""

    @abstractmethod
    def purge_runs(self, finished_before: int, limit: int, announce: Announce) -> list[str]:
        """Delete up to `limit` finished runs (with their steps, logs, labels, waits and attempts)
        that finished before `finished_before` (epoch ms), oldest first; returns their ids.
        `announce(run)` is called for each, inside the transaction (its `run:delete`, so that open
        lists drop it). Blocking (the leading worker purges old runs from its own thread)."""

    @abstractmethod
    async def cancel(self, run_id: str, now: int) -> Run:
        """pending | running → cancelled. Raises RunNotFoundError, RunStateError."""

    @abstractmethod
    async def delete_run(self, run_id: str) -> Run:
        """Delete a terminal run with its steps and logs. Raises RunNotFoundError, RunStateError."""

    # -- runs on behalf of a worker -------------------------------------------------------------------
    # The async verbs are awaited on the worker's runner loop: those its tasks call in one iteration
    # of the loop share a commit, run on the loop's thread (see `GroupCommit.run_grouped`). The
    # blocking ones are called from the worker's other threads.
    def last_outage(self) -> float:
        """When an outage of the database that any caller of this process met (a step write, an API
        request, ...) last ended or was last seen (`time.monotonic()`; minus infinity: never).
        Nobody's heartbeat could be written meanwhile, so runs are not judged stale by it."""
        return -float("inf")

    @abstractmethod
    async def claim(self, owner: str, job_names: tuple[str, ...], limit: int, now: int) -> list[Claim]:
        """Atomically take up to `limit` pending runs of these jobs, oldest first, skipping runs whose
        concurrency key is held by a running run of the same scope."""

    @abstractmethod
    async def record_step(self, step: StepRecord) -> StepWrite:
        """Checkpoint a settled step: committed (with the other slots' steps of the same loop
        iteration) before this returns."""

    @abstractmethod
    def set_progress(self, run_id: str, attempt: int, progress_json: str, now: int) -> None:
        """Store progress without waiting; successive values for one run coalesce into the last."""

    @abstractmethod
    def append_log(self, log: NewLog) -> None:
        """Store a log line without waiting; lines are written in order."""

    @abstractmethod
    async def finish_run(
        self,
        run_id: str,
        attempt: int,
        status: str,
        now: int,
        *,
        output_json: str | None = None,
        error: str | None = None,
        error_stack: str | None = None,
        keep_logs: int | None = None,
        claim_next: ClaimRequest | None = None,
    ) -> Settled:
        """Move a claimed running run to completed or failed.
        `conflict` is None when done, else the run's status as it stands (e.g. "cancelled";
        "missing" when deleted) and nothing is written. With `claim_next`, the same transaction
        claims the next run (as `claim` would, one run) for the slot the run leaves: a worker busy
        with short runs pays one commit, not two, between them."""

    @abstractmethod
    def release(self, run_id: str, attempt: int, now: int) -> bool:
        """Give a claimed run back (running → pending) so another worker resumes it at once (blocking)."""

    @abstractmethod
    def heartbeat_blocking(self, claims: list[tuple[str, int]], now: int) -> Heartbeat:
        """Refresh the heartbeat of claimed runs; from a plain thread, so a busy event loop cannot
        starve it. Reports the claims that ended (cancelled elsewhere, or taken over)."""

    @abstractmethod
    def recover(self, stale_before: int, owner_is_dead: Callable[[str], bool], now: int) -> list[str]:
        """Running runs whose heartbeat is older than `stale_before`, or whose owner is known dead,
        go back to pending. Returns their ids."""

    @abstractmethod
    def survey(self, stale_before: int, owner_is_dead: Callable[[str], bool], now: int, limit: int) -> Survey:
        """The leading worker's look around, every `polling_interval` (blocking): `recover` what
        needs it, say which jobs the first `limit` ready pending runs belong to, which schedules are
        due, and when the next waiting run becomes ready or schedule tick comes. Reads only when
        nothing needs recovering: an idle database costs the leader one read transaction."""

    # -- schedules ----------------------------------------------------------------------------------
    @abstractmethod
    async def put_schedule(self, schedule: Schedule, input_json: str, next_fire_at: int) -> Schedule:
        """Create the schedule, or update the one of that name: a paused one stays paused, and one
        whose cron and timezone are unchanged keeps its next tick (a missed tick is not forgotten)."""

    @abstractmethod
    async def get_schedules(self) -> list[Schedule]:
        """By name."""

    @abstractmethod
    async def set_schedule_next(self, name: str, next_fire_at: int | None, now: int) -> Schedule:
        """Pause (None) or resume a schedule. Raises ScheduleNotFoundError."""

    @abstractmethod
    async def delete_schedule(self, name: str) -> Schedule:
        """Raises ScheduleNotFoundError."""

    @abstractmethod
    def fire_schedule(self, due: DueSchedule, following: int, run: NewRun | None, announce: Announce) -> Run | None:
        """Move a due schedule on to its `following` tick and create its tick's `run` (None: a
        missed tick skipped), in one transaction, if nobody did already (blocking, from the leader).
        Returns the run created, or None."""

    # -- waits (from the worker's runner loop; `signal` for callers) -------------------------------
    @abstractmethod
    async def get_wait(self, run_id: str, name: str) -> Wait | None:
        """The run's wait of this step name, if one was begun or a signal for it came."""

    @abstractmethod
    async def suspend(
        self, run_id: str, attempt: int, now: int, name: str, wait: Wait, waiting_for_json: str, ready_at: int
    ) -> str | None:
        """A claimed running run begins (or keeps) waiting: its wait is stored unless stored already
        (a retry's replaces the last one), and the run goes back to pending, not ready before
        `ready_at` (`NEVER`: only when a signal comes), or at once if a signal it waits for has
        come. Returns None when done, else the run's status as it stands ("cancelled"; "missing"
        when deleted; "lost" when another claim holds it)."""

    @abstractmethod
    async def signal(self, run_id: str, name: str, payload_json: str, now: int) -> Run:
        """Deliver a signal: stored for the run's wait of that name (kept if the run has not reached
        it yet), and the run made ready at once if it waits for it. Raises RunNotFoundError,
        RunStateError (a finished run), SignalConflictError (sent already)."""

    # -- the workers' rings (see coordination.py) --------------------------------------------------
    def coordinate(self, on_ring: OnRing, polling_interval: float) -> Coordination:
        """A seat for one worker among those of this database: whether it leads, and its rings.
        `Solo` (always leading, never rung) where the database offers no way to ring."""
        return Solo()

    @abstractmethod
    def ring_leader(self, count: int) -> None:
        """Tell the leading worker that `count` runs became pending that this process cannot start
        at once; never waits, never raises."""

    @abstractmethod
    def prune_logs(self, run_id: str, keep: int) -> None:
        """Keep only the newest `keep` log lines of a run; queued, not waited for."""

    # -- the event log ----------------------------------------------------------------------------
    @abstractmethod
    def append_event(self, event: NewEvent) -> None:
        """Log an event without waiting; events are written in order, with the writes they follow."""

    @abstractmethod
    async def read_events(self, after_id: int, *, run_id: str | None = None, limit: int = 1000) -> list[StoredEvent]:
        """Logged events with ids above `after_id`, oldest first."""

    def read_events_now(self, after_id: int, limit: int) -> list[StoredEvent] | None:
        """`read_events` of all runs on the caller's thread, where the database answers at once;
        None where it cannot (the caller then awaits `read_events`). The event feed reads this way
        first: on a thread, its read would wait for the event loop twice, behind every stream's
        writes. A database that may keep the caller waiting (a network round trip) returns None."""
        return None

    @abstractmethod
    async def last_event_id(self) -> int:
        """The id of the newest logged event (0 if none)."""

    async def wait_for_events(self, poll: float) -> None:
        """Return when new events may have been logged. A database that announces commits
        (PostgreSQL's NOTIFY, a SQLite file's doorbell) returns as soon as one does; otherwise after
        `poll` seconds. One caller per storage: the engine's event feed."""
        await asyncio.sleep(poll)

    @abstractmethod
    async def watch_events(self, until: int) -> int:
        """Ask every process sharing the database to log events until `until` (epoch ms). Returns
        the mark as it stood before (epoch ms, 0 if never set)."""

    @abstractmethod
    def events_watched(self) -> bool:
        """Whether an event made now should be logged: some process asked for events until later
        than now, or this process is not sure (see `watch.WatchMark`: a process re-reads the mark
        only while it logs, at most every `watch_refresh` seconds). Cheap: no I/O on the caller's
        thread."""

    @abstractmethod
    def prune_events(self, before: int) -> None:
        """Forget events logged before `before` (epoch ms). Blocking."""

    @abstractmethod
    async def close(self) -> None: ...
