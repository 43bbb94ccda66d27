"""`Durably`: the one object applications hold. Registers jobs, triggers and queries runs, acts on
them (retry, cancel, delete), streams their events, and owns the worker that executes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ._clock import now_ms, parse_duration
from ._errors import (
    InvalidArgumentError,
    JobDefinitionError,
    JobNotFoundError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    ScheduleNotFoundError,
    StorageUnavailableError,
    WaitTimeoutError,
)
from ._events import (
    ALL_EVENTS,
    RUN_CANCEL,
    RUN_DELETE,
    RUN_RETRY,
    RUN_SIGNAL,
    RUN_TRIGGER,
    SETTLED_TYPES,
    ErrorHandler,
    Event,
    EventBus,
    Listener,
    RunSubscription,
)
from ._feed import EventFeed
from ._ids import new_id
from ._jobs import JobDefinition
from ._records import (
    Attempt,
    BulkResult,
    LogEntry,
    Run,
    RunResult,
    RunStats,
    RunStatus,
    Schedule,
    StatsBucket,
    StatusCounts,
    Step,
    TriggeredRun,
    from_ms,
)
from ._registry import ByKey
from ._schedules import CatchUp, check_schedule, next_fire
from ._search import as_tuple, check_labels, run_query
from ._step import encode_json
from ._storage import Storage, open_storage
from ._storage.base import NewEvent, NewRun, RunCounts, StatsQuery, once_per_run
from ._worker import Worker, WorkerOptions

MAX_KEY_LENGTH = 255
BULK_BATCH = 500  # runs per transaction of a bulk action or a purge
MAX_PRIORITY = 1_000_000
MAX_DELAY_SECONDS = 10 * 366 * 24 * 3600  # ten years: later is a mistake, not a plan
MAX_STATS_BUCKETS = 500  # a series longer than any chart can draw is only a heavier query
MAX_BUCKET_SECONDS = 366 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One run of a `batch_trigger`, when it needs keys, timing or labels; plain inputs are fine
    otherwise. The fields mean what `trigger`'s arguments of those names mean."""

    input: Any = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    priority: int = 0
    delay: float | None = None
    run_at: datetime | None = None
    labels: Mapping[str, str] | None = None
    coalesce: Literal["skip"] | None = None


class JobHandle:
    """A registered job, bound to its engine: `durably.jobs.import_csv.trigger({...})`."""

    def __init__(self, durably: Durably, definition: JobDefinition) -> None:
        self._durably = durably
        self.definition = definition

    @property
    def name(self) -> str:
        return self.definition.name

    async def trigger(
        self,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        priority: int = 0,
        delay: float | None = None,
        run_at: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        coalesce: Literal["skip"] | None = None,
    ) -> TriggeredRun:
        return await self._durably.trigger(
            self.name,
            input,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            priority=priority,
            delay=delay,
            run_at=run_at,
            labels=labels,
            coalesce=coalesce,
        )

    async def trigger_and_wait(
        self,
        input: Any = None,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
    ) -> RunResult:
        return await self._durably.trigger_and_wait(
            self.name, input, timeout=timeout, idempotency_key=idempotency_key, concurrency_key=concurrency_key
        )

    async def batch_trigger(self, items: Iterable[Any]) -> list[TriggeredRun]:
        return await self._durably.batch_trigger(self.name, items)

    async def schedule(
        self,
        cron: str,
        input: Any = None,
        *,
        name: str | None = None,
        timezone: str = "UTC",
        catch_up: CatchUp = "once",
    ) -> Schedule:
        """Trigger this job on `cron` (see `_schedules.py`) with `input`. The schedule is named after
        the job unless `name` is given; scheduling again under a name updates that schedule."""
        return await self._durably.schedule(self.name, cron, input, name=name, timezone=timezone, catch_up=catch_up)

    async def get_run(self, run_id: str) -> Run | None:
        """The run, or None if it does not exist or belongs to another job."""
        run = await self._durably.get_run(run_id)
        return run if run is not None and run.job_name == self.name else None

    async def get_runs(
        self, *, status: str | Sequence[str] | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Run]:
        return await self._durably.get_runs(job_name=self.name, status=status, limit=limit, offset=offset)

    def __repr__(self) -> str:
        return f"<JobHandle {self.name!r}>"


class Durably:
    """The engine. Build it with `create_durably(url, ...)`; intervals are in seconds."""

    def __init__(self, storage: Storage, options: WorkerOptions | None = None) -> None:
        self.storage = storage
        self.options = options or WorkerOptions()
        self.jobs: ByKey[JobHandle] = ByKey()
        self._handles_by_name: dict[str, JobHandle] = {}
        self._definitions_by_name: dict[str, JobDefinition] = {}
        self._bus = EventBus(record=self._log_event, recording=self._logging_events)
        self._worker = Worker(storage, self._bus, self._definitions, self.options)
        self.feed = EventFeed(storage)
        self._migrated = False
        self._migrate_lock = asyncio.Lock()

    # -- jobs -------------------------------------------------------------------------------------
    def register(self, **jobs: JobDefinition) -> Durably:
        """Register job definitions under attribute names; returns the engine, for chaining.

        Registering the same definition again is harmless; another definition under a name already
        taken is an error (two meanings for one job name would corrupt replay).
        """
        for key, definition in jobs.items():
            if not isinstance(definition, JobDefinition):
                raise JobDefinitionError(f"register({key}=...) needs a job from define_job, got {definition!r}")
            handle = self._handles_by_name.get(definition.name)
            if handle is None:
                handle = self._handles_by_name[definition.name] = JobHandle(self, definition)
                self._definitions_by_name = {name: each.definition for name, each in self._handles_by_name.items()}
            elif handle.definition is not definition:
                raise JobDefinitionError(f'Job "{definition.name}" is already registered with a different definition')
            self.jobs[key] = handle
        self._worker.wake()
        return self

    def get_job(self, name: str) -> JobHandle | None:
        """The job registered under this job name (not the registration key), or None."""
        return self._handles_by_name.get(name)

    def _definitions(self) -> dict[str, JobDefinition]:
        """The registered jobs by name (the worker asks for each run; not to be changed)."""
        return self._definitions_by_name

    def _job(self, name: str) -> JobDefinition:
        handle = self._handles_by_name.get(name) if isinstance(name, str) else None
        if handle is None:
            raise JobNotFoundError(str(name))
        return handle.definition

    # -- lifecycle --------------------------------------------------------------------------------
    async def migrate(self) -> None:
        """Create or upgrade the tables; later calls return at once."""
        self._bus.bind_if_unbound(asyncio.get_running_loop())
        if self._migrated:
            return
        async with self._migrate_lock:
            if not self._migrated:
                await self.storage.migrate()
                self._migrated = True

    async def start(self, *, switch_interval: float | None = None) -> None:
        """Start the worker in the running event loop (a no-op if it runs already). With
        `switch_interval` (seconds), the interpreter's switch interval is held at most that long
        while the worker runs, and given back when it stops: for a worker whose runner or
        server's event loop must not wait long for the interpreter lock while job threads compute
        (`mount_durably` and the command line's workers ask for `SHORT_SWITCH_INTERVAL`; see `_switch`)."""
        await self.migrate()
        await self._worker.start(switch_interval)

    async def init(self) -> None:
        """`migrate()` then `start()`."""
        await self.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the worker. Runs in progress finish; after `timeout` seconds they are interrupted and
        handed back as pending, to resume from their last completed step."""
        await self._worker.stop(timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Stop the worker and close the database."""
        await self.stop(timeout)
        await self.storage.close()

    async def __aenter__(self) -> Durably:
        await self.init()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def is_running(self) -> bool:
        return self._worker.is_running

    @property
    def is_leading(self) -> bool:
        """Whether this worker leads the workers sharing the database: it alone looks for pending
        and abandoned runs every `polling_interval` and rings the others (idle followers make no
        statement at all). Leadership moves to another worker when this one stops or falls silent."""
        return self._worker.leading

    # -- triggering -------------------------------------------------------------------------------
    async def trigger(
        self,
        job_name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        scope: str | None = None,
        priority: int = 0,
        delay: float | None = None,
        run_at: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        coalesce: Literal["skip"] | None = None,
    ) -> TriggeredRun:
        """Create a pending run. The input is validated first; if invalid, no run is created.

        With an idempotency key, a run of this job with the same key is returned as it is instead.
        `scope` names the tenant the run belongs to (see `get_runs`): its idempotency and concurrency
        keys are then that tenant's own, never shared with other tenants' runs or unscoped ones.
        Workers take higher `priority` runs first (then the first ready). A run with `delay`
        (seconds) or `run_at` (a timezone-aware datetime) waits, pending, until then
        (`waiting_for.kind == "delay"`). `labels` (`{"customer": "acme"}`) are kept with the run and
        searchable (`get_runs(labels=...)`). With `coalesce="skip"` and a `concurrency_key`, a
        pending run of this job and key is returned instead of a new one. The returned run's
        `disposition` says which happened: `created`, `idempotent` or `coalesced`.
        """
        item = BatchItem(input, idempotency_key, concurrency_key, priority, delay, run_at, labels, coalesce)
        (run,) = await self._create_runs(job_name, [item], batch=False, scope=scope)
        return run

    async def batch_trigger(
        self, job_name: str, items: Iterable[Any], *, scope: str | None = None
    ) -> list[TriggeredRun]:
        """Create many runs in one transaction: all inputs are validated first, so either every run
        is created or none is. Items are inputs, or `BatchItem`s when they carry keys."""
        batch = [item if isinstance(item, BatchItem) else BatchItem(item) for item in items]
        return await self._create_runs(job_name, batch, batch=True, scope=scope)

    async def _create_runs(
        self, job_name: str, items: list[BatchItem], *, batch: bool, scope: str | None = None
    ) -> list[TriggeredRun]:
        definition = self._job(job_name)
        _check_key("scope", scope)
        await self.migrate()
        now = now_ms()
        new_runs = []
        for position, item in enumerate(items):
            try:
                input_json = encode_json(definition.validate_input(item.input), "The input")
                _check_key("idempotency_key", item.idempotency_key)
                _check_key("concurrency_key", item.concurrency_key)
                _check_priority(item.priority)
                ready_at = _start_time(item.delay, item.run_at, now)
                labels = check_labels(item.labels)
                if item.coalesce not in (None, "skip"):
                    raise InvalidArgumentError(f'coalesce must be "skip" or None, got {item.coalesce!r}')
                if item.coalesce and item.concurrency_key is None:
                    raise InvalidArgumentError('coalesce="skip" needs a concurrency_key')
            except ValueError as error:
                if batch:
                    error.args = (f"at index {position}: {error}", *error.args[1:])
                raise
            new_runs.append(
                NewRun(
                    new_id(),
                    definition.name,
                    input_json,
                    item.idempotency_key,
                    item.concurrency_key,
                    now,
                    scope or "",
                    priority=item.priority,
                    ready_at=ready_at,
                    waiting_for_json=None if ready_at is None else json.dumps({"kind": "delay", "until": ready_at}),
                    labels=labels,
                    coalesce=item.coalesce == "skip",
                )
            )
        if not new_runs:
            return []
        created = await self.storage.insert_runs(
            new_runs,
            once_per_run(
                lambda run: self._bus.post(RUN_TRIGGER, runId=run.id, jobName=run.job_name, payload=run.input)
            ),
        )
        self._bus.flush()
        ready_now = sum(how == "created" and run.waiting_for is None for run, how in created)
        if ready_now:
            self._worker.work_added(ready_now)
        for new_run in new_runs:
            if new_run.ready_at is not None:
                self._worker.wake_at(new_run.ready_at)
        return [TriggeredRun(**dict(run), disposition=how) for run, how in created]

    async def trigger_and_wait(
        self,
        job_name: str,
        input: Any = None,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        scope: str | None = None,
    ) -> RunResult:
        """Trigger, then wait for the run to settle (see `wait_for_run`)."""
        run = await self.trigger(
            job_name, input, idempotency_key=idempotency_key, concurrency_key=concurrency_key, scope=scope
        )
        return await self.wait_for_run(run.id, timeout=timeout)

    async def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """Wait until the run completes and return its output (as the job's output model).

        Raises RunFailedError or RunCancelledError if it fails or is cancelled, and WaitTimeoutError
        after `timeout` seconds (the run keeps going). Runs executed by other processes are noticed
        by re-reading the run every `polling_interval`. An outage of the database only delays the
        answer: the run itself waits for the database too.
        """
        settled = asyncio.Event()

        def notice(event: Event) -> None:
            if event.get("runId") == run_id and event["type"] in SETTLED_TYPES:
                settled.set()

        unsubscribe = self._bus.on(ALL_EVENTS, notice)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                settled.clear()
                with contextlib.suppress(StorageUnavailableError):
                    result = self._result_if_settled(run_id, await self.get_run(run_id))
                    if result is not None:
                        return result
                wait = self.options.polling_interval
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise WaitTimeoutError(run_id, timeout or 0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(settled.wait(), wait)
        finally:
            unsubscribe()

    def _result_if_settled(self, run_id: str, run: Run | None) -> RunResult | None:
        """The output of a completed run; None while it is pending or running; else raises why not."""
        if run is None:
            raise RunNotFoundError(run_id)
        if run.status is RunStatus.COMPLETED:
            handle = self._handles_by_name.get(run.job_name)
            output = run.output if handle is None else handle.definition.load_output(run.output)
            return RunResult(id=run.id, output=output)
        if run.status is RunStatus.FAILED:
            raise RunFailedError(run.id, run.error, run.error_stack)
        if run.status is RunStatus.CANCELLED:
            raise RunCancelledError(run.id)
        return None

    # -- queries ----------------------------------------------------------------------------------
    async def get_run(self, run_id: str, *, scope: str | None = None) -> Run | None:
        """The run, or None; with a `scope`, a run of another tenant is None too (as if missing)."""
        _check_key("scope", scope)
        return await self.storage.get_run(run_id, scope)

    async def get_run_snapshot(self, run_id: str, *, scope: str | None = None) -> tuple[Run | None, int]:
        """The run (as `get_run`) and the id of the newest logged event, read together: a stream that
        shows this run and then follows `feed` skips the events up to that id (the run reflects them)."""
        _check_key("scope", scope)
        return await self.storage.get_run_and_last_event_id(run_id, scope)

    async def get_runs(
        self,
        *,
        job_name: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        scope: str | None = None,
        labels: Mapping[str, str] | None = None,
        id_prefix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        input_fields: Mapping[str, Any] | None = None,
        replay_of: str | None = None,
    ) -> list[Run]:
        """Runs newest first, filtered by job name(s) and status(es); with a `scope`, only the runs
        triggered with that scope (a tenant's). Without one, every run, whatever its scope. Also by
        `labels` (all must match), `id_prefix`, creation time (`created_after` inclusive,
        `created_before` exclusive), fields of the input (`input_fields={"user.email": "..."}`,
        compared as text) and `replay_of` (the replays of a run); see `_search.py` for their cost."""
        _check_key("scope", scope)
        query = run_query(
            job_names=as_tuple("job_name", job_name),
            statuses=as_tuple("status", status),
            limit=limit,
            offset=offset,
            scope=scope,
            labels=labels,
            id_prefix=id_prefix,
            created_after=created_after,
            created_before=created_before,
            input_fields=input_fields,
            replay_of=replay_of,
        )
        return await self.storage.get_runs(query)

    async def get_run_stats(
        self,
        job_name: str | Sequence[str] | None = None,
        *,
        since: datetime | None = None,
        bucket_seconds: int = 3600,
        buckets: int = 24,
        scope: str | None = None,
    ) -> RunStats:
        """Runs per status, per job and status, and runs created per time bucket and status: what a
        dashboard's counters and chart show, counted by the database however many runs there are.

        `job_name`: None counts every job; a name or a list counts only those (an empty list: none).
        Buckets are `bucket_seconds` long and aligned to multiples of it since the epoch (UTC), so
        successive calls chart the same intervals. The series has `buckets` of them, oldest first:
        from the one holding `since` (a naive datetime is UTC) or else ending with the current one.
        A run counts in the bucket it was created in, under the status it has now. With a `scope`,
        only that tenant's runs count (see `get_runs`).
        """
        job_names = None if job_name is None else as_tuple("job_name", job_name)
        for name, value, most in (
            ("bucket_seconds", bucket_seconds, MAX_BUCKET_SECONDS),
            ("buckets", buckets, MAX_STATS_BUCKETS),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise InvalidArgumentError(f"{name} must be a whole number from 1 to {most}, got {value!r}")
        _check_key("scope", scope)
        if since is not None and not isinstance(since, datetime):
            raise InvalidArgumentError(f"since must be a datetime, got {since!r}")
        bucket_ms = bucket_seconds * 1000
        if since is None:
            start = (now_ms() // bucket_ms - buckets + 1) * bucket_ms
        else:
            aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
            start = round(aware.timestamp() * 1000) // bucket_ms * bucket_ms
        query = StatsQuery(job_names=job_names, start=start, bucket_ms=bucket_ms, buckets=buckets, scope=scope)
        return _run_stats(await self.storage.count_runs(query), query)

    async def get_steps(self, run_id: str) -> list[Step]:
        return await self.storage.get_steps(run_id)

    async def get_logs(self, run_id: str, *, after_id: str | None = None, limit: int | None = None) -> list[LogEntry]:
        """Stored log lines of a run, oldest first (the newest `log_retention` are kept)."""
        return await self.storage.get_logs(run_id, after_id=after_id, limit=limit)

    # -- actions ----------------------------------------------------------------------------------
    async def retry(self, run_id: str) -> Run:
        """Put a failed or cancelled run back to pending; it resumes at its first unfinished step."""
        run = await self.storage.retry(
            run_id, now_ms(), once_per_run(lambda run: self._bus.post(RUN_RETRY, runId=run.id, jobName=run.job_name))
        )
        self._bus.flush()
        self._worker.work_added(1)
        return run

    async def signal(self, run_id: str, name: str, payload: Any = None, *, scope: str | None = None) -> Run:
        """Send the signal `name` (with a JSON payload) to a run: the run's `step.wait_for_signal(name)`
        returns it, at once if the run waits for it now, or when it gets there. A payload is checked
        against the model the run's job declares for `name` (`define_job(signals=...)`): an
        InvalidInputError names each bad field, and nothing is stored. Raises RunNotFoundError,
        RunStateError for a finished run, SignalConflictError if sent already."""
        _check_key("signal name", name)
        _check_key("scope", scope)
        target = await self.storage.get_run(run_id, scope)
        if target is None:
            raise RunNotFoundError(run_id)
        handle = self._handles_by_name.get(target.job_name)
        if handle is not None:  # a job this process does not have is not checked here
            payload = handle.definition.validate_signal(name, payload)
        payload_json = encode_json(payload, "The signal's payload")
        run = await self.storage.signal(run_id, name, payload_json, now_ms())
        self._bus.emit(RUN_SIGNAL, runId=run.id, jobName=run.job_name, name=name)
        waiting = run.waiting_for
        if (
            run.status is RunStatus.PENDING
            and waiting is not None
            and waiting.kind == "signal"
            and waiting.name == name
        ):
            self._worker.work_added(1)
        return await self.storage.get_run(run_id) or run

    # -- schedules --------------------------------------------------------------------------------
    async def schedule(
        self,
        job_name: str,
        cron: str,
        input: Any = None,
        *,
        name: str | None = None,
        timezone: str = "UTC",
        catch_up: CatchUp = "once",
    ) -> Schedule:
        """Trigger `job_name` on `cron` with `input` (validated now); see `JobHandle.schedule`."""
        definition = self._job(job_name)
        name = definition.name if name is None else name
        _check_key("schedule name", name)
        check_schedule(cron, timezone, catch_up)
        input_json = encode_json(definition.validate_input(input), "The input")
        await self.migrate()
        now = now_ms()
        schedule = Schedule(
            name=name,
            job_name=definition.name,
            cron=cron,
            timezone=timezone,
            catch_up=catch_up,
            paused=False,
            created_at=from_ms(now),
            updated_at=from_ms(now),
        )
        stored = await self.storage.put_schedule(schedule, input_json, next_fire(cron, timezone, now))
        self._worker.schedules_changed()
        return stored

    async def get_schedules(self) -> list[Schedule]:
        await self.migrate()
        return await self.storage.get_schedules()

    async def pause_schedule(self, name: str) -> Schedule:
        """No more ticks fire until `resume_schedule`. Raises ScheduleNotFoundError."""
        return await self.storage.set_schedule_next(name, None, now_ms())

    async def resume_schedule(self, name: str) -> Schedule:
        """Fire again from the next tick after now (ticks while paused are skipped)."""
        schedules = {schedule.name: schedule for schedule in await self.storage.get_schedules()}
        if name not in schedules:
            raise ScheduleNotFoundError(name)
        now = now_ms()
        schedule = schedules[name]
        resumed = await self.storage.set_schedule_next(name, next_fire(schedule.cron, schedule.timezone, now), now)
        self._worker.schedules_changed()
        return resumed

    async def delete_schedule(self, name: str) -> Schedule:
        """Raises ScheduleNotFoundError; the runs it created stay."""
        return await self.storage.delete_schedule(name)

    # -- many runs at once --------------------------------------------------------------------------
    async def bulk_retry(self, run_ids: Sequence[str] | None = None, **filters: Any) -> BulkResult:
        """Retry the failed and cancelled runs among `run_ids`, or among every run that matches the
        filters of `get_runs` (`job_name=`, `status=`, `labels=`, ...). See `bulk_cancel`."""
        return await self._bulk("retry", run_ids, filters)

    async def bulk_cancel(self, run_ids: Sequence[str] | None = None, **filters: Any) -> BulkResult:
        """Cancel the pending and running runs among `run_ids` or the runs matching `filters`, in
        transactions of `BULK_BATCH` runs (so 100,000 runs neither hold the database nor time out a
        request); `on_progress(result so far)` after each. Runs whose status does not allow the
        action are skipped and counted."""
        return await self._bulk("cancel", run_ids, filters)

    async def bulk_delete(self, run_ids: Sequence[str] | None = None, **filters: Any) -> BulkResult:
        """Delete the finished runs among `run_ids` or the runs matching `filters`. See `bulk_cancel`."""
        return await self._bulk("delete", run_ids, filters)

    async def _bulk(self, action: str, run_ids: Sequence[str] | None, filters: dict[str, Any]) -> BulkResult:
        """One transaction per batch: slices of `run_ids`, or pages of the runs matching `filters`
        taken by (created_at, id), so that runs changed meanwhile are neither skipped nor seen twice."""
        on_progress = filters.pop("on_progress", None)
        batch_size = filters.pop("batch_size", BULK_BATCH)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise InvalidArgumentError("batch_size must be a whole number from 1 to 10,000")
        if run_ids is not None and filters:
            raise InvalidArgumentError("give run_ids or filters, not both")
        ids = None if run_ids is None else list(dict.fromkeys(as_tuple("run_ids", list(run_ids))))
        query = None
        if ids is None:
            query = run_query(
                job_names=as_tuple("job_name", filters.pop("job_name", None)),
                statuses=as_tuple("status", filters.pop("status", None)),
                limit=batch_size,
                offset=0,
                scope=filters.pop("scope", None),
                **filters,
            )
        await self.migrate()
        event = {"retry": RUN_RETRY, "cancel": RUN_CANCEL, "delete": RUN_DELETE}[action]
        post = once_per_run(lambda run: self._bus.post(event, runId=run.id, jobName=run.job_name))
        result = BulkResult(matched=0, changed=0, skipped=0)
        before: tuple[int, str] | None = None
        start = 0
        while True:
            if ids is not None:
                batch, start = ids[start : start + batch_size], start + batch_size
            else:
                assert query is not None
                page = await self.storage.get_runs(replace(query, before=before))
                batch = [run.id for run in page]
                before = (round(page[-1].created_at.timestamp() * 1000), page[-1].id) if page else None
            if not batch:
                return result
            done = await self.storage.bulk_change(action, batch, now_ms(), post)
            self._bus.flush()
            if action == "retry" and done:
                self._worker.work_added(len(done))
            elif action == "cancel":
                for run in done:
                    self._worker.cancel_local(run.id)
            matched, changed = result.matched + len(batch), result.changed + len(done)
            result = BulkResult(matched=matched, changed=changed, skipped=matched - changed)
            if on_progress is not None:
                on_progress(result)

    # -- replays, attempts, retention -------------------------------------------------------------
    async def replay(self, run_id: str, *, from_step: str | None = None, scope: str | None = None) -> Run:
        """A new run of the same job and input whose steps before `from_step` are copied from this
        run (not executed again) and the rest run anew: for "the code is fixed, redo from here".
        Without `from_step`, everything runs again. The new run's `replay_of` names this one;
        `get_runs(replay_of=run_id)` lists a run's replays. It belongs to the source's tenant (its
        scope), whoever asks; with a `scope`, a run of another tenant is not found (as `get_run`).
        Raises RunNotFoundError, and InvalidArgumentError for a step this run does not have."""
        source = await self.get_run(run_id, scope=scope)
        if source is None:
            raise RunNotFoundError(run_id)
        steps = await self.get_steps(run_id)
        completed = [step for step in steps if step.status == "completed"]
        if from_step is None:
            copied: list[str] = []
        else:
            indexes = [step.index for step in steps if step.name == from_step]
            if not indexes:
                raise InvalidArgumentError(f'Run {run_id} has no step "{from_step}"')
            copied = [step.name for step in completed if step.index < min(indexes)]
        new_run = NewRun(
            new_id(),
            source.job_name,
            encode_json(source.input, "The input"),
            None,
            source.concurrency_key,
            now_ms(),
            priority=source.priority,
            labels=dict(source.labels),
            replay_of=source.id,
        )
        trigger = once_per_run(
            lambda run: self._bus.post(RUN_TRIGGER, runId=run.id, jobName=run.job_name, payload=run.input)
        )
        replayed = await self.storage.replay(new_run, source.id, copied, trigger)
        self._bus.flush()
        self._worker.work_added(1)
        return replayed

    async def get_attempts(self, run_id: str) -> list[Attempt]:
        """The run's earlier attempts (how each ended before a retry), first first."""
        return await self.storage.get_attempts(run_id)

    async def purge_runs(self, older_than: float | timedelta | datetime, *, limit: int | None = None) -> int:
        """Delete finished runs (completed, failed, cancelled) that finished before `older_than`
        (seconds or a timedelta ago, or a datetime), with their steps, logs and events' rows, in
        transactions of `BULK_BATCH`; at most `limit` runs. Each makes its `run:delete` event.
        Returns how many were deleted."""
        before = _moment_before(older_than)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidArgumentError("limit must be a whole number of at least 0")
        await self.migrate()
        announce = once_per_run(self._worker.announce_deleted)
        deleted = 0
        while limit is None or deleted < limit:
            batch = BULK_BATCH if limit is None else min(BULK_BATCH, limit - deleted)
            ids = await asyncio.to_thread(self.storage.purge_runs, before, batch, announce)
            self._bus.flush()
            deleted += len(ids)
            if len(ids) < batch:
                break
        return deleted

    def set_retain_runs(self, retain_runs: float | timedelta | str | None) -> None:
        """Set `retain_runs` (as `create_durably` takes it) on an engine made elsewhere: the command
        line's `--retain-runs` sets it on the application's Durably. The worker reads it at each
        pruning, so it may change while the engine runs."""
        self.options = replace(self.options, retain_runs=None if retain_runs is None else parse_duration(retain_runs))
        self._worker.retain_runs_for(self.options.retain_runs)

    async def cancel(self, run_id: str) -> Run:
        """Cancel a pending or running run. Running code sees `step.signal` set at once (in this
        process; at its next step write or heartbeat elsewhere) and its next `step.run` stops it."""
        run = await self.storage.cancel(run_id, now_ms())
        self._worker.cancel_local(run_id)
        self._bus.emit(RUN_CANCEL, runId=run.id, jobName=run.job_name)
        return run

    async def delete_run(self, run_id: str) -> None:
        """Delete a completed, failed or cancelled run with its steps and logs."""
        run = await self.storage.delete_run(run_id)
        self._bus.emit(RUN_DELETE, runId=run.id, jobName=run.job_name)

    # -- events -----------------------------------------------------------------------------------
    def on(self, event_type: str, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for each event of that type (`"*"` for all); returns the unsubscriber."""
        return self._bus.on(event_type, listener)

    def on_error(self, handler: ErrorHandler) -> None:
        self._bus.on_error(handler)

    def subscribe(self, run_id: str) -> RunSubscription:
        """The run's events as an async iterator, listening from this call on; ends after completion."""
        return RunSubscription(self._bus, run_id)

    def _logging_events(self) -> bool:
        """Whether events go to the event log: while some process streams them (see `EventFeed`);
        otherwise nobody would read them."""
        return bool(self.feed.subscriber_count or self.storage.events_watched())

    def _log_event(self, event: Event) -> None:
        """Every event made here goes to the event log too (written with the next commit), where other
        processes, and streams that resume after a disconnect, read it back through `feed`."""
        self.storage.append_event(
            NewEvent(
                run_id=event["runId"],
                job_name=event.get("jobName"),
                type=event["type"],
                body_json=encode_json(event, "The event"),
                created_at=now_ms(),
            )
        )


def _moment_before(older_than: float | timedelta | datetime) -> int:
    """Epoch ms of "older than": seconds or a timedelta ago, or a timezone-aware datetime."""
    if isinstance(older_than, datetime):
        if older_than.tzinfo is None:
            raise InvalidArgumentError("older_than must be a timezone-aware datetime")
        return round(older_than.timestamp() * 1000)
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise InvalidArgumentError("older_than must be a number of seconds, a timedelta or a datetime")
    return now_ms() - round(seconds * 1000)


def _check_priority(priority: int) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_PRIORITY:
        raise InvalidArgumentError(f"priority must be a whole number between -{MAX_PRIORITY} and {MAX_PRIORITY}")


def _start_time(delay: float | None, run_at: datetime | None, now: int) -> int | None:
    """When a delayed run becomes ready (epoch ms), or None for at once."""
    if delay is not None and run_at is not None:
        raise InvalidArgumentError("give delay or run_at, not both")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_SECONDS:
            raise InvalidArgumentError(f"delay must be a number of seconds from 0 to {MAX_DELAY_SECONDS}")
        return now + round(delay * 1000) if delay > 0 else None
    if run_at is not None:
        if not isinstance(run_at, datetime) or run_at.tzinfo is None:
            raise InvalidArgumentError("run_at must be a timezone-aware datetime")
        at = round(run_at.timestamp() * 1000)
        if at - now > MAX_DELAY_SECONDS * 1000:
            raise InvalidArgumentError(f"run_at must be within {MAX_DELAY_SECONDS} seconds from now")
        return at if at > now else None
    return None


def _check_key(name: str, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        raise InvalidArgumentError(f"{name} must be a non-empty string of at most {MAX_KEY_LENGTH} characters")


def _run_stats(counts: RunCounts, query: StatsQuery) -> RunStats:
    """Counts as the dashboard reads them: every status of every listed job and bucket, zeros included."""
    totals: dict[str, int] = defaultdict(int)
    by_job: dict[str, dict[str, int]] = {name: {} for name in query.job_names or ()}
    for job_name, status, count in counts.by_job:
        by_job.setdefault(job_name, {})[status] = count
        totals[status] += count
    series: list[dict[str, int]] = [{} for _ in range(query.buckets)]
    for bucket, status, count in counts.by_bucket:
        series[bucket][status] = count
    return RunStats(
        counts=StatusCounts(**totals),
        by_job={name: StatusCounts(**by_job[name]) for name in sorted(by_job)},
        bucket_seconds=query.bucket_ms // 1000,
        series=[
            StatsBucket(start=from_ms(query.start + index * query.bucket_ms), **bucket)
            for index, bucket in enumerate(series)
        ],
    )


def create_durably(
    url: str = "sqlite:///durably.db",
    *,
    polling_interval: float = 1.0,
    heartbeat_interval: float = 5.0,
    stale_threshold: float = 30.0,
    max_concurrent_runs: int = 1,
    log_retention: int | None = 10_000,
    event_retention: float = 600.0,
    retain_runs: float | timedelta | str | None = None,
) -> Durably:
    """An engine on the database at `url` (SQLite by default). Nothing is opened until first use.

    Intervals are seconds. `log_retention` keeps that many newest log lines per run (None: all);
    `event_retention` is how long the event log keeps events for other processes and resuming streams.
    `retain_runs` (seconds, a timedelta, or "30d", "12h", "90m") deletes finished runs older than
    that, a batch at a time, while the worker leads (see `purge_runs`); None keeps every run.
    """
    options = WorkerOptions(
        polling_interval=polling_interval,
        heartbeat_interval=heartbeat_interval,
        stale_threshold=stale_threshold,
        max_concurrent_runs=max_concurrent_runs,
        log_retention=log_retention,
        event_retention=event_retention,
        retain_runs=None if retain_runs is None else parse_duration(retain_runs),
    )
    return Durably(open_storage(url), options)
