"""How one run's events change what a UI shows of it: pure functions, no Reflex.

The hook states (`use_job`, `use_job_run`, `use_job_logs`) keep the same fields as the seed's
React hooks (`status`, `output`, `error`, `progress`, `logs`) plus `current_run_id`, the run's
record as first seen (`run`: input, times) and, where a state tracks them, its `steps`. The functions
here fold wire events into any object with those attributes, so the same rules apply to a Reflex
state inside `async with self:` and to a plain object in a unit test.

Differences from Durably 0.7's client on purpose (see the contract): a run is attached by its
snapshot, so a running run never shows `None`; log entries keep the server's id, step name and
timestamp; an event of another run than the one followed is dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from .._clock import to_iso
from .._records import LogEntry, Run, Step
from .._wire_events import (
    LogWrite,
    RunCancel,
    RunComplete,
    RunFail,
    RunProgress,
    RunRetry,
    RunSnapshot,
    RunStart,
    RunWait,
    StepComplete,
    StepFail,
    StepStart,
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
    run: dict[str, Any] | None
    steps: list[dict[str, Any]]


def clear_run(view: RunFields, run_id: str | None = None) -> None:
    """Forget everything of the previous run and follow `run_id` (or nothing)."""
    view.current_run_id = run_id
    view.status = None
    view.output = None
    view.error = None
    view.progress = None
    view.logs = []
    view.run = None
    view.steps = []


def apply_run_event(view: RunFields, event: WireEvent, *, max_logs: int) -> bool:
    """Fold one event of the followed run into `view`; False if it was not for that run or changes
    nothing the view shows (a trigger)."""
    if event.run_id != view.current_run_id:
        return False
    match event:
        case RunSnapshot(run=run):
            show_run(view, run)
        case RunStart(timestamp=moment):
            view.status = "running"
            # A run resumed after a wait keeps its first start (so does the engine's startedAt).
            started = (view.run or {}).get("started_at") or _iso(moment)
            _stamp_run(view, started_at=started, completed_at=None, waiting_for=None)
        case RunWait(waiting_for=waiting):
            view.status = "pending"
            _stamp_run(view, waiting_for=None if waiting is None else waiting.model_dump(mode="json"))
        case RunComplete(output=output, timestamp=moment):
            view.status, view.output = "completed", output
            _stamp_run(view, completed_at=_iso(moment))
        case RunFail(error=error, timestamp=moment):
            view.status, view.error = "failed", error
            _stamp_run(view, completed_at=_iso(moment))
        case RunCancel(timestamp=moment):
            view.status = "cancelled"
            _stamp_run(view, completed_at=_iso(moment))
            _stop_running_steps(view, _iso(moment))
        case RunRetry():
            view.status, view.error = "pending", None
            _stamp_run(view, started_at=None, completed_at=None, waiting_for=None)  # a retry starts anew
        case RunProgress(progress=progress):
            view.progress = progress.model_dump(mode="json")
        case LogWrite():
            add_logs(view, [log_line_from_event(event)], max_logs=max_logs)
        case StepStart(step_index=index, step_name=name, timestamp=moment):
            put_step(view, {"index": index, "name": name, "status": "running", "started_at": _iso(moment)})
        case StepComplete(step_index=index, step_name=name, timestamp=moment, duration=duration, output=output):
            put_step(
                view,
                {
                    "index": index,
                    "name": name,
                    "status": "completed",
                    "completed_at": _iso(moment),
                    "duration_ms": duration,
                    "duration_text": format_duration(duration),
                    "output": output,
                },
            )
        case StepFail(step_index=index, step_name=name, timestamp=moment, error=error):
            put_step(
                view, {"index": index, "name": name, "status": "failed", "completed_at": _iso(moment), "error": error}
            )
        case _:
            return False
    return True


def show_run(view: RunFields, run: Run) -> None:
    """Take the run as it stands (a snapshot, or a fetched run); logs and steps are kept."""
    view.run = run.model_dump(mode="json", exclude={"error_stack"})
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


def percent(progress: dict[str, Any] | None) -> int | None:
    """0-100 for a progress with a total, else None (an indeterminate bar)."""
    progress = progress or {}
    total, current = progress.get("total"), progress.get("current")
    if not total or current is None:
        return None
    return max(0, min(100, round(100 * current / total)))


def format_duration(ms: float | None) -> str:
    """A duration for people: "85 ms", "4.2 s", "3 m 05 s", "2 h 01 m" ("" for None)."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def _stamp_run(view: RunFields, **times: Any) -> None:
    """Keep the run record's times (and `waiting_for`) current for a detail view (its status lives
    in `status`)."""
    if view.run is not None:
        view.run = {**view.run, **times}


def step_row(step: Step) -> dict[str, Any]:
    """A stored step as a timeline row, with its duration in milliseconds when it has ended."""
    row = step.model_dump(mode="json", exclude={"error_stack"})
    completed_at = step.completed_at
    row["duration_ms"] = None if completed_at is None else (completed_at - step.started_at).total_seconds() * 1000
    row["duration_text"] = format_duration(row["duration_ms"])
    return row


def put_step(view: RunFields, change: dict[str, Any]) -> None:
    """Merge a step's change into its row (by index: the row of its latest attempt), adding a row
    when the step is new or begins another attempt (it starts, or ends, after its last attempt
    failed: a retry). Rows are ordered by index and attempt; each has `attempt` (from 1), `key`
    (unique: "<index>.<attempt>"), and `started_ms` and `ended_ms` (epoch milliseconds, None while
    it runs), which a timeline places its bar with."""
    steps = list(view.steps)
    positions = [position for position, row in enumerate(steps) if row["index"] == change["index"]]
    latest = positions[-1] if positions else None
    if latest is not None and not _begins_attempt(steps[latest], change):
        steps[latest] = _with_epoch_times({**steps[latest], **change})
    else:
        attempt = 1 if latest is None else steps[latest].get("attempt", 1) + 1
        named = {"name": steps[latest]["name"]} if latest is not None else {}  # the attempt before named it
        steps.append(_new_row({**named, **change}, attempt))
        steps.sort(key=lambda row: (row["index"], row.get("attempt", 1)))
    view.steps = steps


def _begins_attempt(row: dict[str, Any], change: dict[str, Any]) -> bool:
    """Whether `change` is another attempt of the step whose latest attempt is `row`."""
    return row["status"] == "failed" and change.get("status") in ("running", "completed")


def _new_row(change: dict[str, Any], attempt: int) -> dict[str, Any]:
    row = {"output": None, "error": None, "completed_at": None, "duration_ms": None, "duration_text": "", **change}
    return _with_epoch_times({**row, "attempt": attempt, "key": f"{change['index']}.{attempt}"})


def merge_stored_steps(view: RunFields, stored: list[dict[str, Any]]) -> None:
    """Take the run's stored steps (`step_row`s in the API's order: by index, then start) as the
    truth for every attempt they hold, keeping the rows the view has beyond them (a step running
    now, or one that settled after the read), numbered on."""
    counts: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for row in stored:
        counts[row["index"]] = counts.get(row["index"], 0) + 1
        rows.append(_new_row(row, counts[row["index"]]))
    seen: dict[int, int] = {}
    for row in view.steps:
        seen[row["index"]] = seen.get(row["index"], 0) + 1
        if seen[row["index"]] > counts.get(row["index"], 0):
            counts[row["index"]] = counts.get(row["index"], 0) + 1
            rows.append(_new_row(row, counts[row["index"]]))
    rows.sort(key=lambda row: (row["index"], row["attempt"]))
    view.steps = rows


def latest_attempts(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each step's latest attempt (the last row of its index), by index."""
    latest: dict[int, dict[str, Any]] = {}
    for row in steps:
        latest[row["index"]] = row
    return [latest[index] for index in sorted(latest)]


def _with_epoch_times(row: dict[str, Any]) -> dict[str, Any]:
    row["started_ms"] = _epoch_ms(row.get("started_at"))
    row["ended_ms"] = _epoch_ms(row.get("completed_at"))
    return row


def _epoch_ms(iso: str | None) -> int | None:
    return None if not iso else round(datetime.fromisoformat(iso).timestamp() * 1000)


def ensure_running_step(view: RunFields) -> None:
    """A running run is at a step. When no row says which (its `step:start` came before this view
    attached, and the store keeps settled steps only), add one: the first step not completed (or
    the one after the last: a retried run runs again the step that failed), begun when the last
    completed one ended (or when the run started), its name unknown ("") if no row had it, until its
    own events or record name it."""
    if view.status != "running" or any(row["status"] == "running" for row in view.steps):
        return
    unfinished = [row["index"] for row in latest_attempts(view.steps) if row["status"] != "completed"]
    index = min(unfinished) if unfinished else max((row["index"] for row in view.steps), default=-1) + 1
    starts = [row["completed_at"] for row in view.steps if row["status"] == "completed" and row.get("completed_at")]
    if view.run is not None and view.run.get("started_at"):
        starts.append(view.run["started_at"])
    change: dict[str, Any] = {"index": index, "status": "running", "started_at": max(starts, default=None)}
    if not any(row["index"] == index for row in view.steps):
        change["name"] = ""
    put_step(view, {**change, "completed_at": None, "duration_ms": None, "duration_text": "", "error": None})


def step_label(row: dict[str, Any]) -> str:
    """A step's name, or "step <n>" for one whose name is not known yet."""
    return str(row["name"]) or f"step {row['index'] + 1}"


def _stop_running_steps(view: RunFields, moment: str | None) -> None:
    """A cancel ends the step that was running, as the worker records a step that sees it: where
    the run stopped. (A step that ignores the cancel and completes is marked so by its event.)"""
    for row in view.steps:
        if row["status"] == "running":
            put_step(view, {"index": row["index"], "status": "cancelled", "completed_at": moment})


# -- what a run view shows beside its fields --------------------------------------------------------
def timeline_bounds(steps: list[dict[str, Any]], now_ms: int) -> tuple[int, int]:
    """(origin, span) in epoch milliseconds of a timeline of `steps`: from the first step's start to
    the last end (now, while a step runs); the span is at least 1 ms."""
    placed = [row for row in steps if row.get("started_ms") is not None]
    if not placed:
        return now_ms, 1
    origin = min(row["started_ms"] for row in placed)
    ends = [now_ms if row.get("ended_ms") is None else row["ended_ms"] for row in placed]
    end = max(*ends, *(row["started_ms"] for row in placed))  # a clock a moment behind the last start
    return origin, max(1, end - origin)


def stopped_step(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The step where a failed or cancelled run stopped: the last one (by index) whose latest
    attempt failed, was cancelled or was still running; None when every step it began completed."""
    for row in reversed(latest_attempts(steps)):
        if row["status"] in ("failed", "cancelled", "running"):
            return row
    return None


def stop_summary(status: str | None, steps: list[dict[str, Any]], progress: dict[str, Any] | None) -> str:
    """Where a failed or cancelled run stopped, for people ("" for other statuses):
    'Cancelled at step "batch-8" (7 steps completed; 7 of 60 batches, 12%)'."""
    if status not in ("failed", "cancelled"):
        return ""
    done = sum(1 for row in steps if row["status"] == "completed")
    verb = "Failed" if status == "failed" else "Cancelled"
    at = stopped_step(steps)
    if at is not None:
        where = f'{verb} at step "{step_label(at)}"'
    elif done:
        where = f'{verb} after step "{step_label(steps[-1])}"'
    else:
        where = f"{verb} before its first step"
    details = [f"{done} step{'s' if done != 1 else ''} completed"] if at is not None or done else []
    message, share = (progress or {}).get("message"), percent(progress)
    if message or share is not None:
        details.append(", ".join(str(part) for part in (message, None if share is None else f"{share}%") if part))
    return where + (f" ({'; '.join(details)})" if details else "")


def first_line(text: str | None) -> str:
    """The first non-blank line of an error message ("" for none): a table's cell shows it."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def short_id(run_id: str) -> str:
    """A run id short enough for a table: its last 8 characters. A run id (a ULID) begins with its
    creation time, so runs created together share their first characters, never their last."""
    return run_id[-8:]


def _iso(moment: datetime | None) -> str | None:
    # The ISO form fetched records have, so live and fetched rows render alike.
    return None if moment is None else to_iso(round(moment.timestamp() * 1000))


def log_line(entry: LogEntry) -> dict[str, Any]:
    """A stored log entry as a UI row: the seed's LogEntry fields, snake_case, JSON values."""
    return entry.model_dump(mode="json", by_alias=False)


def log_line_from_event(event: LogWrite) -> dict[str, Any]:
    """A live `log:write` as the same row a fetched entry makes. A server that stores no logs
    (Durably's Node server) gives them no id: the event's sequence then orders them, zero-padded
    so that ids sort as the lines came."""
    return {
        "id": event.id or f"live-{event.sequence or 0:012d}",
        "run_id": event.run_id,
        "step_name": event.step_name,
        "level": event.level,
        "message": event.message,
        "data": event.data,
        "timestamp": _iso(event.timestamp),
    }
