"""Typed events as the HTTP client receives them from `/subscribe` and `/runs/subscribe`.

The engine's own events are plain dicts (see `events.py`) because the server forwards them unchanged;
a client instead wants models it can match on: `isinstance(event, RunComplete)` or `match event.type`.
Every class has a `type` literal (the discriminator), snake_case attributes with the wire's camelCase
aliases, and ignores fields it does not know, so a newer server never breaks an older client.
Fields that the reduced `/runs/subscribe` payloads omit (`timestamp`, `sequence`, outputs, ...) are
optional. `parse_event` returns None for an event type this client does not know, for the same reason,
and reads Durably's Node server's events too (see `_node_wire`: `run:leased` is a `RunStart`).

`StreamGap` is not a wire event: an `EventStream` yields it when it reconnected and the server could
not resume where the previous connection left off, so a consumer knows to read again what it shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from ._node_wire import event_from_wire
from ._records import Progress, Run, WaitingFor


class BaseWireEvent(BaseModel):
    """Fields every event carries; `timestamp` and `sequence` only on full (per-run) events.
    `job_name` is None only from a server that leaves it out (Durably 0.7's `log:write`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    run_id: str
    job_name: str | None = None
    timestamp: datetime | None = None
    sequence: int | None = None


class RunSnapshot(BaseWireEvent):
    """First frame of every `/subscribe` connection: the run as it stands; consumers reset from it."""

    type: Literal["run:snapshot"] = "run:snapshot"
    run: Run


class RunTrigger(BaseWireEvent):
    type: Literal["run:trigger"] = "run:trigger"
    payload: Any = None
    schedule: str | None = None  # the schedule that fired it (None: triggered by a caller)


class RunStart(BaseWireEvent):
    type: Literal["run:start"] = "run:start"
    payload: Any = None


class RunComplete(BaseWireEvent):
    type: Literal["run:complete"] = "run:complete"
    output: Any = None
    duration: float | None = None  # milliseconds


class RunFail(BaseWireEvent):
    type: Literal["run:fail"] = "run:fail"
    error: str | None = None
    failed_step_name: str | None = None
    error_stack: str | None = None


class RunCancel(BaseWireEvent):
    type: Literal["run:cancel"] = "run:cancel"


class RunRetry(BaseWireEvent):
    type: Literal["run:retry"] = "run:retry"


class RunWait(BaseWireEvent):
    """The run stopped to wait (a sleep, a signal, the next attempt of a failed step) and is pending
    again, holding no worker; the wait ends with its next `run:start`."""

    type: Literal["run:wait"] = "run:wait"
    waiting_for: WaitingFor | None = None


class RunSignal(BaseWireEvent):
    """A signal was sent to the run (the payload stays on the server: read it from the run's steps)."""

    type: Literal["run:signal"] = "run:signal"
    name: str


class RunDelete(BaseWireEvent):
    type: Literal["run:delete"] = "run:delete"


class RunProgress(BaseWireEvent):
    type: Literal["run:progress"] = "run:progress"
    progress: Progress


class StepStart(BaseWireEvent):
    type: Literal["step:start"] = "step:start"
    step_name: str
    step_index: int


class StepComplete(BaseWireEvent):
    type: Literal["step:complete"] = "step:complete"
    step_name: str
    step_index: int
    output: Any = None
    duration: float | None = None  # milliseconds


class StepFail(BaseWireEvent):
    type: Literal["step:fail"] = "step:fail"
    step_name: str
    step_index: int
    error: str | None = None


class LogWrite(BaseWireEvent):
    type: Literal["log:write"] = "log:write"
    step_name: str | None = None
    level: str  # "info" | "warn" | "error"
    message: str
    data: Any = None
    id: str | None = None  # the stored log entry's id (absent on /runs/subscribe)


WireEvent = Annotated[
    RunSnapshot
    | RunTrigger
    | RunStart
    | RunComplete
    | RunFail
    | RunCancel
    | RunRetry
    | RunWait
    | RunSignal
    | RunDelete
    | RunProgress
    | StepStart
    | StepComplete
    | StepFail
    | LogWrite,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[WireEvent] = TypeAdapter(WireEvent)
# Wire type -> class, read off the union so the two can never disagree.
EVENT_CLASSES: dict[str, type[BaseWireEvent]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(WireEvent)[0])
}


def parse_event(data: dict[str, Any]) -> WireEvent | None:
    """The typed event for a wire dict, or None if its type is unknown to this client.

    A known type with malformed fields raises pydantic's `ValidationError` (a `ValueError`).
    """
    data = event_from_wire(data)
    if not isinstance(data, dict) or data.get("type") not in EVENT_CLASSES:
        return None
    return _ADAPTER.validate_python(data)


class StreamGap(BaseModel):
    """Yielded by an `EventStream` of all runs (`/runs/subscribe`) after a reconnect that could not
    resume (the server replays nothing, or no event had an id yet): events of the time it was away
    are lost, so re-read what is shown (a page of runs, counts). A run's own stream needs none: each
    connection starts with the run's state (`RunSnapshot`)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["stream:gap"] = "stream:gap"


StreamEvent = WireEvent | StreamGap  # what an `EventStream` yields
