"""Hook states that follow one run: the shared base, `UseJobRunState` and `UseJobLogsState`.

The base keeps the seed's fields (`status`, `output`, `error`, `progress`, `logs`) of the run in
`current_run_id` and follows it over `/subscribe`: the stream's first frame is the run as it stands,
so a running run shows `running` at once, then the log history is fetched and merged with the live
log lines, then every event is applied as it comes. `connection` tells the UI how the stream is
doing ("idle", "connecting", "open", "reconnecting", "closed"); a stream that ends because the run
completed is "closed", not an error. A server that stores no logs (Durably's Node server has no
`/logs`) sets `log_history_offered` to False: the lines shown are then those logged while watching.

With `history` (a class attribute; `use_job_run(..., history=True)`), the view also reads what a run
page shows beside the run: its earlier `attempts` (how each ended before a retry, from
`GET /attempts`, read again after every retry) and its `replays` (the runs replaying it, newest
first); a server without them (Durably's Node server) leaves both empty.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import reflex as rx

from .._client import ClientConnectionError, DurablyClient, ServerError
from .._clock import now_ms
from .._errors import DurablyError, FeatureNotSupportedError, RunNotFoundError
from .._records import Attempt, Run
from .._wire_events import RunCancel, RunRetry, RunSnapshot
from .base import DurablyState
from .consumers import Consumer, Update, apply_updates, consuming
from .run_fields import (
    add_logs,
    apply_run_event,
    clear_run,
    ensure_running_step,
    first_line,
    format_duration,
    log_line,
    merge_stored_steps,
    percent,
    short_id,
    step_row,
    stop_summary,
    timeline_bounds,
)
from .run_search import label_query

logger = logging.getLogger(__name__)

RUN_SOURCE = "run"  # the consumer's source that follows the current run
CLOCK_SOURCE = "clock"  # the consumer's source that moves `clock_ms` while the run runs
CLOCK_INTERVAL = 1.0  # seconds: how often a running run's timeline grows
# After a cancel, how often and how many times the steps are read for the step it stopped.
STOPPED_STEP_PAUSE = 0.3
STOPPED_STEP_READS = 6
REPLAYS_SHOWN = 20  # newest replays a run's view lists


class RunViewState(DurablyState, mixin=True):
    """Base of the hook states over one run (a mixin: each hook instance is its own state).

    Extension point: `on_status_change(before, after)` returns the events to dispatch when the
    followed run's status changes (the default: none; `use_job_run` dispatches its callbacks).
    """

    # -- configuration (class attributes, set by the `use_*` factories or a subclass) -------------
    max_logs: ClassVar[int] = 100  # newest log lines kept (0: all); state stays small
    history: ClassVar[bool] = False  # also read the run's earlier attempts and its replays

    # -- what the UI shows ------------------------------------------------------------------------
    current_run_id: rx.Field[str | None] = rx.field(None)
    status: rx.Field[str | None] = rx.field(None)
    output: rx.Field[dict[str, Any] | list[Any] | str | int | float | bool | None] = rx.field(None)  # the JSON output
    error: rx.Field[str | None] = rx.field(None)
    progress: rx.Field[dict[str, Any] | None] = rx.field(None)
    logs: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)
    run: rx.Field[dict[str, Any] | None] = rx.field(
        None
    )  # the run's record (input, times) as first seen, times kept current
    steps: rx.Field[list[dict[str, Any]]] = rx.field(
        default_factory=list
    )  # timeline rows: index, name, status, started_at, duration_ms, ...
    connection: rx.Field[str] = rx.field("idle")
    # False when the server keeps no log history to fetch (no `/logs`: Durably's Node server).
    log_history_offered: rx.Field[bool] = rx.field(True)
    level_filter: rx.Field[str] = rx.field("")  # "" = every level; a log viewer's choice
    # A log viewer hides the lines up to this id ("": none), which a reload shows again.
    logs_hidden_through: rx.Field[str] = rx.field("")
    clock_ms: rx.Field[int] = rx.field(0)  # epoch ms, moved every second while the run runs
    # With `history`: the run's earlier attempts (`attempt_row`s) and the runs replaying it.
    attempts: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)
    replays: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)

    @rx.var
    def is_pending(self) -> bool:
        return self.status == "pending"

    @rx.var
    def is_running(self) -> bool:
        return self.status == "running"

    @rx.var
    def is_completed(self) -> bool:
        return self.status == "completed"

    @rx.var
    def is_failed(self) -> bool:
        return self.status == "failed"

    @rx.var
    def is_cancelled(self) -> bool:
        return self.status == "cancelled"

    @rx.var
    def is_reconnecting(self) -> bool:
        return self.connection == "reconnecting"

    @rx.var
    def progress_percent(self) -> int | None:
        """0–100 when the job reported a total, else None (an indeterminate bar)."""
        return percent(self.progress)

    @rx.var
    def progress_message(self) -> str:
        return (self.progress or {}).get("message") or ""

    @rx.var
    def input_json(self) -> str:
        return "" if self.run is None else json.dumps(self.run.get("input"), indent=2, ensure_ascii=False)

    @rx.var
    def output_json(self) -> str:
        """The output as indented JSON, for display ("" before there is one)."""
        return "" if self.output is None else json.dumps(self.output, indent=2, ensure_ascii=False)

    @rx.var
    def error_line(self) -> str:
        """The error's first line (a card or a row shows it; the whole error is on the run's page)."""
        return first_line(self.error)

    @rx.var
    def duration_text(self) -> str:
        """How long the run took, from its start to its end ("" until it has ended)."""
        run = self.run or {}
        started, ended = run.get("started_at"), run.get("completed_at")
        if not started or not ended or self.status in ("pending", "running"):
            return ""
        return format_duration(_ms_between(started, ended))

    @rx.var(deps=["steps", "clock_ms"], auto_deps=False)
    def timeline_origin_ms(self) -> int:
        """Where the steps' time axis begins (epoch ms): the first step's start."""
        return timeline_bounds(self.steps, self.clock_ms)[0]

    @rx.var(deps=["steps", "clock_ms"], auto_deps=False)
    def timeline_span_ms(self) -> int:
        """How long the steps' time axis is (ms): to the last step's end, or now while one runs."""
        return timeline_bounds(self.steps, self.clock_ms)[1]

    @rx.var(deps=["steps", "clock_ms"], auto_deps=False)
    def timeline_span_text(self) -> str:
        """The time axis's length for people (its end label)."""
        return format_duration(timeline_bounds(self.steps, self.clock_ms)[1])

    @rx.var(deps=["status", "steps", "progress"], auto_deps=False)
    def stop_summary(self) -> str:
        """Where a failed or cancelled run stopped ("" otherwise)."""
        return stop_summary(self.status, self.steps, self.progress)

    @rx.var(deps=["run"], auto_deps=False)
    def labels(self) -> list[dict[str, str]]:
        """The run's labels, each with `search`: the runs page's query that finds its runs
        (`q=customer%3Dacme`)."""
        labels = (self.run or {}).get("labels") or {}
        return [{"key": key, "value": value, "search": label_query(key, value)} for key, value in labels.items()]

    @rx.var(deps=["logs", "logs_hidden_through"], auto_deps=False)
    def hidden_log_count(self) -> int:
        marker = self.logs_hidden_through
        return sum(1 for line in self.logs if line["id"] <= marker) if marker else 0

    # -- events -----------------------------------------------------------------------------------
    @rx.event
    def clear_logs(self) -> None:
        """Forget the log lines this tab holds (the stored logs stay: a reload fetches them again);
        a viewer hides lines with `hide_earlier_logs` instead."""
        self.logs = []

    @rx.event
    def hide_earlier_logs(self) -> None:
        """Hide the lines shown so far (new ones still appear); `show_all_logs` brings them back."""
        if self.logs:
            self.logs_hidden_through = self.logs[-1]["id"]

    @rx.event
    def show_all_logs(self) -> None:
        self.logs_hidden_through = ""

    @rx.event
    def set_level_filter(self, level: str) -> None:
        """Show one level's log lines ("" or "all": every level)."""
        self.level_filter = "" if level == "all" else level

    # -- consuming ----------------------------------------------------------------------------------
    async def _consume(self, consumer: Consumer) -> AsyncIterator[Any]:
        """Apply the consumer's updates until it stops; yields the events updates ask for."""
        async for batch in consumer.batches():
            events: list[Any] = []
            async with self:
                for update in batch:
                    before = self.status
                    events.extend(await apply_updates(self, [update]))
                    if self.status != before:
                        events.extend(self.on_status_change(before, self.status))
            for event in events:
                yield event

    def on_status_change(self, before: str | None, after: str | None) -> list[Any]:
        """Events to dispatch when the followed run's status goes from `before` to `after` (None:
        no run yet). Called with the state locked, so it may also change fields. None here."""
        return []

    def _follow(self, consumer: Consumer, run_id: str | None) -> None:
        """Make `consumer` follow `run_id` (or nothing); a no-op when it follows it already."""
        if run_id is None:
            consumer.cancel_source(RUN_SOURCE)
        elif consumer.follows(RUN_SOURCE) != run_id:
            source = follow_run(consumer, self.api(), run_id, history=self.__class__.history)
            consumer.start_source(RUN_SOURCE, source, follows=run_id)

    def _switch(self, consumer: Consumer, run_id: str | None) -> None:
        """Inside the lock: show `run_id` from now on (cleared unless it is the run shown already)."""
        if self.current_run_id != run_id:
            clear_run(self, run_id)
            self.connection = "idle"
            self.logs_hidden_through = ""
            self.attempts, self.replays = [], []
        self.clock_ms = now_ms()
        self._follow(consumer, run_id)


def _ms_between(start_iso: str, end_iso: str) -> float:
    return (datetime.fromisoformat(end_iso) - datetime.fromisoformat(start_iso)).total_seconds() * 1000


async def tick_clock(consumer: Consumer) -> None:
    """Source: every `CLOCK_INTERVAL`, move the state's `clock_ms` if its run is running (its
    timeline's running bar grows; a finished run's timeline does not change)."""
    while True:
        await asyncio.sleep(CLOCK_INTERVAL)
        consumer.post(_tick)


def _tick(state: Any) -> None:
    if state.status == "running":
        state.clock_ms = now_ms()


async def follow_run(consumer: Consumer, client: DurablyClient, run_id: str, *, history: bool = False) -> None:
    """Source: the events of one run, with its log history merged in after the first snapshot and
    its steps read again after every snapshot (a reconnect may have missed step events); with
    `history`, its attempts and replays read after every snapshot, and its attempts after a retry."""

    def on_connection(state_name: str) -> None:
        consumer.post(_run_update(run_id, lambda state: setattr(state, "connection", state_name)))

    history_loaded = False
    try:
        async with client.subscribe(run_id, on_state=on_connection) as events:
            async for event in events:
                consumer.post(
                    _run_update(run_id, lambda state, e=event: apply_run_event(state, e, max_logs=state.max_logs))
                )
                if isinstance(event, RunCancel):
                    await _read_stopped_step(consumer, client, run_id, event)
                if history and isinstance(event, (RunSnapshot, RunRetry)):
                    await _read_history(consumer, client, run_id, replays=isinstance(event, RunSnapshot))
                if not isinstance(event, RunSnapshot):
                    continue
                try:
                    rows = [step_row(step) for step in await client.get_steps(run_id)]
                    consumer.post(_run_update(run_id, lambda state, rows=rows: _merge_steps(state, rows)))
                    if not history_loaded:
                        consumer.post(_run_update(run_id, _history_update(await _log_history(client, run_id))))
                        history_loaded = True
                except (ClientConnectionError, ServerError) as error:
                    # The server went away just after the snapshot (a restart): the stream
                    # reconnects and its next snapshot fetches the history again.
                    logger.info("history of run %s not fetched (%r); again after the next snapshot", run_id, error)
    except RunNotFoundError:
        consumer.post(_run_update(run_id, lambda state: _show_error(state, f"Run not found: {run_id}")))
    except DurablyError as error:  # refused (auth), or a server answer the stream cannot use
        consumer.post(_run_update(run_id, lambda state, message=str(error): _show_error(state, message)))


async def _log_history(client: DurablyClient, run_id: str) -> list[dict[str, Any]] | None:
    """The run's stored log lines, or None from a server that stores none (no `/logs`)."""
    try:
        return [log_line(entry) for entry in await client.get_logs(run_id)]
    except FeatureNotSupportedError:
        return None


def _history_update(lines: list[dict[str, Any]] | None) -> Any:
    """The change that merges the log history in, or says there is none to merge."""
    if lines is None:
        return lambda state: setattr(state, "log_history_offered", False)
    return lambda state: add_logs(state, lines, max_logs=state.max_logs)


def _run_update(run_id: str, change: Any) -> Update:
    """An update applied only while the state still shows `run_id` (a switch drops the rest)."""

    def update(state: Any) -> None:
        if state.current_run_id == run_id:
            change(state)

    return update


def _merge_steps(state: Any, rows: list[dict[str, Any]]) -> None:
    merge_stored_steps(state, rows)
    ensure_running_step(state)


async def _read_stopped_step(consumer: Consumer, client: DurablyClient, run_id: str, cancel: RunCancel) -> None:
    """The worker records the step a cancel stopped a moment after the cancel, and no event says
    so: read the steps until that record is there (bounded; a step that ignores the cancel
    completes with an event of its own), so the view names where the run stopped."""
    cancelled_at = cancel.timestamp or datetime.now(UTC)
    for _ in range(STOPPED_STEP_READS):
        await asyncio.sleep(STOPPED_STEP_PAUSE)
        try:
            steps = await client.get_steps(run_id)
        except DurablyError:
            return
        rows = [step_row(step) for step in steps]
        consumer.post(_run_update(run_id, lambda state, rows=rows: _merge_steps(state, rows)))
        if any(
            step.status == "cancelled" and step.completed_at is not None and step.completed_at >= cancelled_at
            for step in steps
        ):
            return


async def _read_history(consumer: Consumer, client: DurablyClient, run_id: str, *, replays: bool) -> None:
    """Read the run's earlier attempts (and its replays) into the view; a server without them
    (Durably's Node server) or a failed read leaves what the view shows."""
    try:
        attempts = [attempt_row(attempt) for attempt in await client.get_attempts(run_id)]
    except DurablyError as error:
        logger.debug("attempts of run %s not read: %r", run_id, error)
    else:
        consumer.post(_run_update(run_id, lambda state: setattr(state, "attempts", attempts)))
    if not replays:
        return
    try:
        runs = await client.get_runs(replay_of=run_id, limit=REPLAYS_SHOWN)
    except DurablyError as error:
        logger.debug("replays of run %s not read: %r", run_id, error)
        return
    # A server that ignores the search (Durably's Node server answers every run) replays nothing.
    rows = [replay_row(run) for run in runs if run.replay_of == run_id]
    consumer.post(_run_update(run_id, lambda state: setattr(state, "replays", rows)))


def attempt_row(attempt: Attempt) -> dict[str, Any]:
    """An earlier attempt as a row: `number`, `status`, `error`, `error_line`, `started_at`,
    `completed_at` and `duration_text`."""
    row = attempt.model_dump(mode="json", exclude={"error_stack"})
    started, ended = attempt.started_at, attempt.completed_at
    took = None if started is None or ended is None else (ended - started).total_seconds() * 1000
    row["duration_text"] = format_duration(took)
    row["error_line"] = first_line(attempt.error)
    return row


def replay_row(run: Run) -> dict[str, Any]:
    """A run replaying another, as a row: `id`, `short_id`, `status` and `created_at`."""
    row = run.model_dump(mode="json", include={"id", "status", "created_at"})
    return {**row, "short_id": short_id(run.id)}


def _show_error(state: Any, message: str) -> None:
    state.error = message
    state.connection = "closed"


class UseJobRunState(RunViewState, mixin=True):
    """`use_job_run`: one run's status, output, error, progress and logs, live.

    The run comes from `attach(run_id)` (a page's route parameter, say) or the `default_run_id`
    class attribute. `on_start`, `on_complete` and `on_fail` (event handlers or specs, optional) are
    dispatched when the run starts (its first pending/running status), completes and fails.
    """

    default_run_id: ClassVar[str | None] = None  # when `attach` is given none
    on_start: ClassVar[Any] = None
    on_complete: ClassVar[Any] = None
    on_fail: ClassVar[Any] = None

    @rx.event(background=True)
    async def attach(self, run_id: str | None = None) -> AsyncIterator[Any]:
        """Follow `run_id` (default: the class's `default_run_id`) for this tab; put it in `on_mount`."""
        async with self:
            token, name = self.router.session.client_token, self.get_full_name()
        async with consuming(token, name) as consumer:
            target = run_id or self.__class__.default_run_id
            consumer.post(lambda state: state._switch(consumer, target))
            consumer.start_source(CLOCK_SOURCE, tick_clock(consumer))
            async for event in self._consume(consumer):
                yield event

    def on_status_change(self, before: str | None, after: str | None) -> list[Any]:
        cls = self.__class__
        if before is None and after in ("pending", "running"):
            return [cls.on_start] if cls.on_start is not None else []
        if after == "completed":
            return [cls.on_complete] if cls.on_complete is not None else []
        if after == "failed":
            return [cls.on_fail] if cls.on_fail is not None else []
        return []


class UseJobLogsState(UseJobRunState, mixin=True):
    """`use_job_logs`: one run's log lines, history first then live, the newest `max_logs` kept.

    Each line is a dict: `id`, `run_id`, `step_name`, `level`, `message`, `data`, `timestamp`.
    It is `use_job_run`'s consumer (one stream per run carries logs and status alike); a page
    reads `logs` and `clear_logs` from it.
    """
