"""How one run's events change what a UI shows of it: pure functions, no Reflex.

The hook states (`use_job`, `use_job_run`, `use_job_logs`) keep the same fields as the seed's
React hooks (`status`, `output`, `error`, `progress`, `logs`) plus `current_run_id`. The functions
here fold wire events into any object with those attributes, so the same rules apply to a Reflex
state inside `async with self:` and to a plain object in a unit test.

Differences from Durably 0.7's client on purpose (see the contract): a run is attached by its
snapshot, so a running run never shows `None`; log entries keep the server's id, step name and
timestamp; an event of another run than the one followed is dropped.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..clock import to_iso
from ..records import LogEntry, Run
from ..wire_events import (
    LogWrite,
    RunCancel,
    RunComplete,
    RunFail,
    RunProgress,
    RunRetry,
    RunSnapshot,
    RunStart,
    WireEvent,
)


class RunFields(Protocol):
    """What a view of one run holds; every hook state over a run has these attributes."""

    current_run_id: str | None
    status: str | None
    output: Any
    error: str | None
    progress: dict[str, Any] | None
    logs: list[dict[str, Any]]


def clear_run(view: RunFields, run_id: str | None = None) -> None:
    """Forget everything of the previous run and follow `run_id` (or nothing)."""
    view.current_run_id = run_id
    view.status = None
    view.output = None
    view.error = None
    view.progress = None
    view.logs = []


def apply_run_event(view: RunFields, event: WireEvent, *, max_logs: int) -> bool:
    """Fold one event of the followed run into `view`; False if it was not for that run or changes
    nothing the view shows (step events, triggers)."""
    if event.run_id != view.current_run_id:
        return False
    match event:
        case RunSnapshot(run=run):
            show_run(view, run)
        case RunStart():
            view.status = "running"
        case RunComplete(output=output):
            view.status, view.output = "completed", output
        case RunFail(error=error):
            view.status, view.error = "failed", error
        case RunCancel():
            view.status = "cancelled"
        case RunRetry():
            view.status, view.error = "pending", None
        case RunProgress(progress=progress):
            view.progress = progress.model_dump(mode="json")
        case LogWrite():
            add_logs(view, [log_line_from_event(event)], max_logs=max_logs)
        case _:
            return False
    return True


def show_run(view: RunFields, run: Run) -> None:
    """Take the run as it stands (a snapshot, or a fetched run); logs are kept."""
    view.status = run.status.value
    view.output = run.output
    view.error = run.error
    view.progress = None if run.progress is None else run.progress.model_dump(mode="json")


def add_logs(view: RunFields, lines: list[dict[str, Any]], *, max_logs: int) -> None:
    """Merge log lines in by id (history and live overlap when a viewer attaches), oldest first,
    keeping the newest `max_logs` (0 keeps all)."""
    seen = {line["id"] for line in view.logs}
    merged = view.logs + [line for line in lines if line["id"] not in seen]
    merged.sort(key=lambda line: line["id"])  # ids are time-ordered (ULIDs)
    view.logs = merged[-max_logs:] if max_logs > 0 else merged


def log_line(entry: LogEntry) -> dict[str, Any]:
    """A stored log entry as a UI row: the seed's LogEntry fields, snake_case, JSON values."""
    return entry.model_dump(mode="json", by_alias=False)


def log_line_from_event(event: LogWrite) -> dict[str, Any]:
    """A live `log:write` as the same row a fetched entry makes."""
    return {
        "id": event.id or f"live-{event.sequence}",
        "run_id": event.run_id,
        "step_name": event.step_name,
        "level": event.level,
        "message": event.message,
        "data": event.data,
        # The same ISO form a fetched entry has, so both kinds of rows render alike.
        "timestamp": None if event.timestamp is None else to_iso(round(event.timestamp.timestamp() * 1000)),
    }
