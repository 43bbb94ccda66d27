"""`use_schedules`: the schedules of the jobs a page may see, their next fire times and last runs,
kept current; pause, resume and delete them.

Rows (`schedules`) are the API's schedules as dicts with snake_case keys (`name`, `job_name`,
`cron`, `timezone`, `paused`, `next_fire_at`, `last_fired_at`, `last_run_id`, ...) plus
`input_json` and `recent_runs`: the schedule's newest runs (`id`, `short_id`, `status`,
`created_at`), newest first, found among its jobs' latest runs by the idempotency key each tick's
run carries (`schedule:<name>:<tick>`). After `attach` (in `on_mount`) the state follows
`/runs/subscribe` and reads again when a run of a scheduled job is triggered (a tick fired) or
changes status, a burst making one read, at most one every `REFRESH_INTERVAL`. Against a server
without schedules (Durably's own) `schedules_offered` is False and `error` stays None.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import reflex as rx

from .._client import DurablyClient
from .._clock import to_iso
from .._errors import DurablyError, FeatureNotSupportedError
from .._records import Run, Schedule
from .._wire_events import StreamGap
from .base import DurablyState, HeadersFunction
from .consumers import Refresher, apply_updates, consuming
from .hooks import configured_mixin, new_state
from .run_fields import short_id

RECENT_RUNS = 5  # runs shown per schedule
RUNS_SEARCHED = 200  # the scheduled jobs' newest runs, among which each schedule's are found
REFRESH_INTERVAL = 0.5  # seconds between two live reads, at most
LIVE_SOURCE = "schedules"
# Events after which a schedule's next fire time or its runs' statuses may have changed.
_CHANGES = frozenset({"run:trigger", "run:start", "run:complete", "run:fail", "run:cancel", "run:retry", "run:delete"})


def schedule_key_prefix(name: str) -> str:
    """The idempotency key prefix of the runs a schedule fires (the engine's `schedule:<name>:<tick>`)."""
    return f"schedule:{name}:"


def schedule_row(schedule: Schedule, runs: list[Run]) -> dict[str, Any]:
    """A schedule as a row: its fields (snake_case, JSON values), its input as indented JSON, and
    its newest `RECENT_RUNS` runs among `runs` (newest first, as the API lists them)."""
    row = schedule.model_dump(mode="json")
    row["input_json"] = json.dumps(schedule.input, indent=2, ensure_ascii=False)
    prefix = schedule_key_prefix(schedule.name)
    mine = [run for run in runs if run.job_name == schedule.job_name and (run.idempotency_key or "").startswith(prefix)]
    row["recent_runs"] = [
        {"id": run.id, "short_id": short_id(run.id), "status": run.status.value, "created_at": iso(run.created_at)}
        for run in mine[:RECENT_RUNS]
    ]
    return row


def iso(moment: datetime) -> str:
    return to_iso(round(moment.timestamp() * 1000))


class UseSchedulesState(DurablyState, mixin=True):
    """`use_schedules`: `schedules`, `is_loading`, `error`, `message`, `busy`, `schedules_offered`;
    `refresh`, `pause`, `resume`, `delete_schedule`."""

    schedules: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)
    is_loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str | None] = rx.field(None)
    message: rx.Field[str] = rx.field("")  # what the last action did
    busy: rx.Field[str] = rx.field("")  # the schedule an action is on its way for ("": none)
    schedules_offered: rx.Field[bool] = rx.field(True)

    @rx.var
    def is_empty(self) -> bool:
        return not self.schedules and not self.is_loading and self.error is None

    @rx.event(background=True)
    async def attach(self) -> None:
        """Read the schedules and keep them current for this tab; put it in `on_mount`."""
        async with self:
            token, name, api = self.router.session.client_token, self.get_full_name(), self.api()
            await self._load()
            offered = self.schedules_offered
        if not offered:
            return
        async with consuming(token, name) as consumer:
            consumer.start_source(LIVE_SOURCE, _follow_changes(consumer, api))
            async for batch in consumer.batches():
                async with self:
                    await apply_updates(self, batch)

    @rx.event
    async def refresh(self) -> None:
        await self._load()

    @rx.event
    async def pause(self, name: str) -> AsyncIterator[None]:
        """No more ticks of `name` until it is resumed."""
        async for _ in self._act(name, lambda: self.api().pause_schedule(name), f'Paused "{name}"'):
            yield

    @rx.event
    async def resume(self, name: str) -> AsyncIterator[None]:
        """Fire `name` again from its next tick after now."""
        async for _ in self._act(name, lambda: self.api().resume_schedule(name), f'Resumed "{name}"'):
            yield

    @rx.event
    async def delete_schedule(self, name: str) -> AsyncIterator[None]:
        """Delete `name` (the runs it created stay)."""
        async for _ in self._act(name, lambda: self.api().delete_schedule(name), f'Deleted "{name}"'):
            yield

    # -- internals --------------------------------------------------------------------------------
    async def _act(self, name: str, action: Callable[[], Awaitable[Any]], done: str) -> AsyncIterator[None]:
        """Run `action` on the schedule `name` with `busy` shown first, then read the schedules again."""
        self.busy, self.error, self.message = name, None, ""
        yield
        try:
            await action()
            self.message = done
        except DurablyError as error:
            self.error = str(error)
        finally:
            self.busy = ""
        await self._load(keep_error=True)

    async def _load(self, *, keep_error: bool = False) -> None:
        """Read the schedules and their jobs' newest runs (inside the lock)."""
        self.is_loading = True
        try:
            api = self.api()
            schedules = await api.get_schedules()
            jobs = sorted({schedule.job_name for schedule in schedules})
            runs = await api.get_runs(job_name=jobs, limit=RUNS_SEARCHED) if jobs else []
        except FeatureNotSupportedError:
            self.schedules_offered, self.error = False, None
        except DurablyError as error:
            self.error = f"Failed to read the schedules: {error}"  # the rows shown so far stay
        else:
            if not keep_error:
                self.error = None
            self.schedules = [schedule_row(schedule, runs) for schedule in schedules]
        finally:
            self.is_loading = False


async def _follow_changes(consumer: Any, client: DurablyClient) -> None:
    """Source: read again when a run is triggered or changes status, or after the stream was away."""
    refresher = Refresher(consumer, lambda state: state._load(), REFRESH_INTERVAL)
    async with client.subscribe_runs(types=sorted(_CHANGES)) as events:
        async for event in events:
            # Any job's: a schedule made since the last read may fire it (reads are cheap and coalesced).
            if isinstance(event, StreamGap) or event.type in _CHANGES:
                refresher.request()


def use_schedules_state(
    client: DurablyClient,
    *,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseSchedulesState]:
    """A mixin of `UseSchedulesState`."""
    return configured_mixin(
        UseSchedulesState,
        "schedules",
        client=client,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


def use_schedules(client: DurablyClient, *, name: str | None = None, **options: Any) -> type[UseSchedulesState]:
    """`use_schedules`: a new state with the schedules, kept current (see `UseSchedulesState`)."""
    return new_state(use_schedules_state(client, **options), "schedules", name)
