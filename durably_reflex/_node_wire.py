"""What Durably's own Node server sends, read into this client's records and events.

`DurablyClient` speaks to any Durably server: a durably-reflex one, and the TypeScript original in
the shape the seed documents (0.7) or in its current release on npm (0.15). Their answers name a
few things differently; this module renames them before pydantic reads them, so that `Run` and the
wire events stay the contract's, and a durably-reflex answer passes through untouched:

- a run's input is `payload` in 0.7, `input` here;
- a run being executed is `leased` in 0.15 (`running` here), and its start is `run:leased`
  (`run:start` here), whose input is `input` (an event's input is `payload` here);
- 0.15 leaves `updatedAt` out of a run (the newest of its other times stands in) and counts its
  steps as `completedStepCount`;
- 0.7's `log:write` has no `jobName` (the events' `job_name` is then None).

What the client does about routes and behaviours Node lacks (no `/logs`, `/retrigger` for `/retry`,
no snapshot first on `/subscribe`) lives in `_client.py`.
"""

from __future__ import annotations

from typing import Any

LEASED = "leased"  # Durably 0.15's name for a run a worker is executing
RUNNING = "running"
_EVENT_TYPES = {"run:leased": "run:start"}
_EVENTS_WITH_INPUT = frozenset({"run:trigger", "run:start"})
_TIMES_NEWEST_FIRST = ("completedAt", "startedAt", "createdAt")


def run_status(status: str) -> str:
    """A run status in this package's words."""
    return RUNNING if status == LEASED else status


def run_from_wire(data: Any) -> Any:
    """A run object of any Durably server, with this package's field names (for `Run`)."""
    if not isinstance(data, dict):
        return data
    if "input" in data and "updatedAt" in data and data.get("status") != LEASED:
        return data  # a durably-reflex run (or 0.7's, but for its payload)
    run = dict(data)
    if "input" not in run and "payload" in run:
        run["input"] = run.pop("payload")
    if isinstance(run.get("status"), str):
        run["status"] = run_status(run["status"])
    if "stepCount" not in run and "completedStepCount" in run:
        run["stepCount"] = run["completedStepCount"]
    if "updatedAt" not in run:
        run["updatedAt"] = next((run[key] for key in _TIMES_NEWEST_FIRST if run.get(key)), None)
    return run


def event_from_wire(data: Any) -> Any:
    """An event object of any Durably server, with this package's type names and fields."""
    if not isinstance(data, dict):
        return data
    kind = data.get("type")
    if kind in _EVENT_TYPES:
        kind = _EVENT_TYPES[kind]
    elif not (kind in _EVENTS_WITH_INPUT and "input" in data):
        return data
    event = {**data, "type": kind}
    if kind in _EVENTS_WITH_INPUT and "payload" not in event and "input" in event:
        event["payload"] = event.pop("input")
    return event
