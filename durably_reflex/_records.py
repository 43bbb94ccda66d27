"""What the engine hands back: runs, steps, log entries and progress, in their wire shape.

Attributes are snake_case for Python callers; `to_wire()` gives the contract's JSON object (camelCase
keys, UTC ISO-8601 timestamps with milliseconds and `Z`), which the HTTP layer sends unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_serializer
from pydantic.alias_generators import to_camel

from ._clock import to_iso


class RunStatus(StrEnum):
    PENDING = "pending"  # waiting for a worker (new, retried, recovered, or waiting: see `Run.waiting_for`)
    RUNNING = "running"  # claimed by a worker that heartbeats it
    COMPLETED = "completed"  # the job returned and its output was stored; final
    FAILED = "failed"  # the job raised; `error` and `error_stack` say why; may be retried
    CANCELLED = "cancelled"  # stopped on request; may be retried


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


class WireModel(BaseModel):
    """Base of the records: camelCase aliases, ISO `Z` timestamps on the wire. Each record builds
    its validator on first use (`defer_build`), not at import: a worker process that never makes
    one does not pay for it (nor for pydantic's scan of installed plugins)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, defer_build=True)

    @field_serializer("*", when_used="json")
    def _timestamps_as_iso(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return to_iso(round(value.timestamp() * 1000))
        return value

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class Progress(WireModel):
    """`{current, total?, message?}`: keys not given are absent on the wire, as Durably sends them."""

    current: int | float
    total: int | float | None = None
    message: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class WaitingFor(WireModel):
    """What a pending run waits for before a worker takes it again: its start time (`delay`), the
    end of a `sleep` step, a `signal` (by name), or a `retry` of a failed step; `until` is when the
    wait ends (None: a signal wait without a deadline)."""

    kind: Literal["delay", "sleep", "signal", "retry"]
    name: str | None = None  # the step's name (for sleep, signal and retry)
    until: datetime | None = None
    attempt: int | None = None  # retry: the number of the attempt that failed (1 for the first)


class Run(WireModel):
    id: str
    job_name: str
    input: Any
    status: RunStatus
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    current_step_index: int = 0
    step_count: int = 0
    progress: Progress | None = None
    output: Any = None
    error: str | None = None
    error_stack: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    priority: int = 0
    waiting_for: WaitingFor | None = None
    labels: dict[str, str] = {}
    replay_of: str | None = None  # the run this one replays (`durably.replay`)

    @field_serializer("progress", when_used="json")
    def _progress_without_absent_keys(self, value: Progress | None) -> dict[str, Any] | None:
        return None if value is None else value.to_wire()

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Schedule(WireModel):
    """A job triggered on a cron expression (see `schedule` on a job)."""

    name: str
    job_name: str
    cron: str
    timezone: str
    input: Any = None
    catch_up: str  # "once" | "skip": what ticks missed while no worker ran become
    paused: bool
    next_fire_at: datetime | None = None  # None while paused
    last_fired_at: datetime | None = None  # the tick that last fired
    last_run_id: str | None = None
    created_at: datetime
    updated_at: datetime


Disposition = Literal["created", "idempotent", "coalesced"]


class TriggeredRun(Run):
    """What `trigger` returns: the run, and what became of the trigger: a new run (`created`), the
    run of the same idempotency key (`idempotent`), or the pending run of the same concurrency key
    (`coalesced`, with `coalesce="skip"`)."""

    disposition: Disposition = "created"

    def to_wire(self) -> dict[str, Any]:
        """The run as the wire shows any run (a trigger answers with its disposition beside it)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"disposition"})


class Attempt(WireModel):
    """A finished attempt of a run that was retried since (the run itself shows its latest)."""

    run_id: str
    number: int  # from 1
    status: str  # "failed" | "cancelled"
    error: str | None = None
    error_stack: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class BulkResult(WireModel):
    """What a bulk action did: runs it matched, changed (retried, cancelled, deleted), and skipped
    because their status does not allow the action."""

    matched: int
    changed: int
    skipped: int


class Step(WireModel):
    id: str
    run_id: str
    name: str
    index: int
    status: str  # "completed" | "failed" | "cancelled" (saw its run's cancel and stopped): written when it settles
    output: Any = None
    error: str | None = None
    error_stack: str | None = None
    started_at: datetime
    completed_at: datetime | None = None


class LogEntry(WireModel):
    id: str
    run_id: str
    step_name: str | None = None
    level: str  # "info" | "warn" | "error"
    message: str
    data: Any = None
    timestamp: datetime


class StatusCounts(WireModel):
    """Runs in each status: every status is present, 0 when there are none (a chart needs no gaps)."""

    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class StatsBucket(StatusCounts):
    """The runs created from `start` for one bucket's length, counted by the status they have now."""

    start: datetime


class RunStats(WireModel):
    """What a dashboard shows: runs per status, per job and status, and a series of runs created
    per bucket of `bucket_seconds` (oldest first, empty buckets included)."""

    counts: StatusCounts
    by_job: dict[str, StatusCounts]
    bucket_seconds: int
    series: list[StatsBucket]


class RunResult(BaseModel):
    """What `trigger_and_wait` returns: the run id and its output (the job's output model if it has one)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)

    id: str
    output: Any = None
