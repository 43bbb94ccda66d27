"""What a viewer that attaches late is told first: the run as it stands, as Durably 0.7 events.

Durably 0.7's React client builds a run's state from the events it knows (`run:start`,
`run:progress`, `log:write`, `run:complete`, `run:fail`, `run:cancel`, `run:retry`) and never
fetches the run; it ignores `run:snapshot`. So a `/subscribe` stream that opens on a run already
under way (or over) first tells the events that bring such a client where an early viewer's client
is (`replay_events`): `run:start` if the run has started and is not pending again (a run waiting
mid-way, for a sleep, a signal or a step's retry, counts as started: 0.7 knows no `run:wait`, so its
early client still shows it running), its latest `run:progress`, its stored logs as `log:write`
(the newest `log_retention`), then `run:complete` with the output, `run:fail` with the error, or
`run:cancel` for a run that has settled.

These frames are made from the run as read, not from the event log: they carry `"replayed": true`,
`"sequence": 0` (the engine's counter is per process and never stored) and the times the run
records, and no SSE `id`, so a reconnecting client resumes after the last live event it received.

Live events race the replay: a run's row, its logs and its events are committed separately (a run
shows `running` a moment before its `run:start` is logged), so an event logged after the snapshot
may say what the replay already said. `ReplayGuard` drops those: a `log:write` whose line was
replayed, a `run:progress` equal to the last one let through, and a lifecycle event that is not a
move the run can make from the status the client was last told (a duplicate of the replay's, or a
stale one another process logged late: either would move the client backwards).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._events import (
    LOG_WRITE,
    RUN_CANCEL,
    RUN_COMPLETE,
    RUN_FAIL,
    RUN_PROGRESS,
    RUN_RETRY,
    RUN_START,
    RUN_WAIT,
    Event,
)
from ._feed import FeedItem
from ._records import LogEntry, Run, RunStatus, Step

REPLAYED = "replayed"  # the field that marks a frame made from the run's state, not the event log

# Each lifecycle event: the status the run then has, and the statuses it can have made that move from.
# (`run:complete` is not held back: it ends the stream, and cannot repeat a replay, which for a
# completed run is the whole stream.)
TRANSITIONS: dict[str, tuple[RunStatus, frozenset[RunStatus]]] = {
    RUN_START: (RunStatus.RUNNING, frozenset({RunStatus.PENDING})),
    RUN_FAIL: (RunStatus.FAILED, frozenset({RunStatus.RUNNING})),
    RUN_CANCEL: (RunStatus.CANCELLED, frozenset({RunStatus.PENDING, RunStatus.RUNNING})),
    RUN_RETRY: (RunStatus.PENDING, frozenset({RunStatus.FAILED, RunStatus.CANCELLED})),
    RUN_WAIT: (RunStatus.PENDING, frozenset({RunStatus.RUNNING})),  # 0.7's client ignores it (still running)
}


def replay_events(
    run: Run, logs: Sequence[LogEntry], *, failed_step_name: str | None = None, error_stack: bool = False
) -> list[Event]:
    """The events that bring a 0.7 client from nothing to `run` as it stands (see the module
    docstring); `error_stack`: whether `run:fail` carries the traceback (else null)."""
    wire = run.to_wire()

    def event(event_type: str, timestamp: Any, **fields: Any) -> Event:
        return {
            "type": event_type,
            "runId": run.id,
            "jobName": run.job_name,
            **fields,
            "timestamp": timestamp or wire["updatedAt"],
            "sequence": 0,
            REPLAYED: True,
        }

    events = []
    waiting_mid_way = run.waiting_for is not None and run.waiting_for.kind != "delay"
    if run.status is RunStatus.RUNNING or waiting_mid_way or (run.is_terminal and run.started_at is not None):
        events.append(event(RUN_START, wire["startedAt"], payload=run.input))
    if wire["progress"] is not None:
        events.append(event(RUN_PROGRESS, wire["updatedAt"], progress=wire["progress"]))
    for entry in logs:
        line = entry.to_wire()
        events.append(
            event(
                LOG_WRITE,
                line["timestamp"],
                stepName=line["stepName"],
                level=line["level"],
                message=line["message"],
                data=line["data"],
                id=line["id"],
            )
        )
    ended = wire["completedAt"]
    if run.status is RunStatus.COMPLETED:
        duration = {}
        if run.started_at is not None and run.completed_at is not None:
            duration["duration"] = round((run.completed_at - run.started_at).total_seconds() * 1000)
        events.append(event(RUN_COMPLETE, ended, output=run.output, **duration))
    elif run.status is RunStatus.FAILED:
        stack = run.error_stack if error_stack else None
        events.append(event(RUN_FAIL, ended, error=run.error, failedStepName=failed_step_name, errorStack=stack))
    elif run.status is RunStatus.CANCELLED:
        events.append(event(RUN_CANCEL, ended))
    return events


def failed_step_name(run: Run, steps: Sequence[Step]) -> str | None:
    """The step whose failure the run's last execution reported (as its `run:fail` named it): the
    latest failed step since the run last started; None if it failed outside any step."""
    failed = [
        step
        for step in steps
        if step.status == "failed" and (run.started_at is None or step.started_at >= run.started_at)
    ]
    return max(failed, key=lambda step: (step.started_at, step.id)).name if failed else None


class ReplayGuard:
    """Lets through the live events of a stream that began with `replay_events` unless the client
    has been told them already (see the module docstring)."""

    def __init__(self, run: Run, replayed_log_ids: Sequence[str]) -> None:
        self._status = run.status
        self._progress = None if run.progress is None else run.progress.to_wire()
        self._log_ids = set(replayed_log_ids)

    async def admit(self, item: FeedItem) -> bool:
        if item.type == LOG_WRITE:
            log_id = item.event.get("id")
            if log_id in self._log_ids:
                self._log_ids.discard(log_id)  # each line is logged once: no second duplicate to wait for
                return False
            return True
        if item.type == RUN_PROGRESS:
            progress = item.event.get("progress")
            if progress == self._progress:
                return False
            self._progress = progress
            return True
        transition = TRANSITIONS.get(item.type)
        if transition is None:
            return True
        status, from_statuses = transition
        if self._status not in from_statuses:
            return False
        self._status = status
        return True
