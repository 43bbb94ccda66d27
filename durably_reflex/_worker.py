"""The worker: claims pending runs, executes them, heartbeats them, recovers the abandoned.

The worker's `max_concurrent_runs` slots are tasks of one runner thread's event loop: a slot claims
a run, executes the job function (as a task of its own, so that a timeout or a shutdown cancels the
job and not the settling), settles the run, and claims the next (the next claim rides in the
settling transaction: one commit between two runs). Job code therefore never runs on the server's
event loop (a step that computes for seconds without yielding delays neither the API nor the UI).
The slots' database writes (step checkpoints, settling, claims) are awaited, and those queued in one
iteration of the loop share one commit, made on the runner's thread (`GroupCommit.run_grouped`): a
step costs no thread hand-off, and a run's events travel to the server's loop without waiting.

Slots on one thread take turns, as threads would under the interpreter lock, but without a thread
switch per step. What would hold up every slot is a synchronous step function that blocks (a sleep,
a network call): one not known to be quick runs on a thread of its own, where such steps of several
runs overlap (see `_step.py`). Job code outside steps shares the loop too: it
should not block (`await asyncio.sleep`, not `time.sleep`).

Idle slots sleep until they are woken: by a trigger or retry in this process, or by a ring from
another (see `_storage/coordination.py`). One worker among those sharing the database leads: every
`polling_interval` it alone surveys the database, hands back runs abandoned by dead or silent
workers, wakes its own slots for pending runs and rings the other workers for what it cannot take.
Idle followers make no statement at all: idle cost does not grow with the number of workers. One
more thread per worker heartbeats its runs in progress (and surveys, when the worker leads).

An unavailable database (`StorageUnavailableError`: down, restarting, its disk full) fails no run:
step writes and a run's outcome wait for it (`_persist.py`), claims and heartbeats pause, and a run
this worker could not hand back is handed back once the database is back. Nobody's heartbeat could be
written during the outage, so for `stale_threshold` after one this worker judges no run stale: the
runs of workers that are alive would be taken from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from . import _switch
from ._clock import now_ms, to_iso
from ._errors import ClaimLostError, RunCancelledError, RunTimeoutError, StorageUnavailableError
from ._events import RUN_COMPLETE, RUN_DELETE, RUN_FAIL, RUN_START, RUN_TRIGGER, RUN_WAIT, EventBus
from ._ids import new_id
from ._jobs import JobDefinition
from ._json import decode_json
from ._owners import current_owner, owner_is_dead
from ._persist import persist
from ._records import Run
from ._schedules import MISSED_AFTER_SECONDS, next_fire
from ._step import StepContext, Suspended, describe_error, encode_json, format_stack
from ._storage.base import NEVER, Claim, ClaimRequest, DueSchedule, NewRun, Storage, once_per_run
from ._storage.coordination import Coordination, Ring, Solo

logger = logging.getLogger("durably_reflex")
T = TypeVar("T")

# Finished runs past `retain_runs` deleted per transaction, and transactions per pruning round.
PURGE_BATCH = 500
PURGE_ROUNDS = 20

# After stop()'s timeout, how long an interrupted run may take to notice before it is handed back
# regardless (a synchronous step cannot be interrupted; its late write will be refused).
_INTERRUPT_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    polling_interval: float = 1.0
    heartbeat_interval: float = 5.0
    stale_threshold: float = 30.0
    max_concurrent_runs: int = 1
    log_retention: int | None = 10_000
    event_retention: float = 600.0
    retain_runs: float | None = None  # seconds a finished run is kept (None: forever)

    def __post_init__(self) -> None:
        for name in ("polling_interval", "heartbeat_interval", "stale_threshold", "event_retention"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.stale_threshold <= self.heartbeat_interval:
            raise ValueError("stale_threshold must be longer than heartbeat_interval")
        if not isinstance(self.max_concurrent_runs, int) or self.max_concurrent_runs < 1:
            raise ValueError("max_concurrent_runs must be a whole number of at least 1")
        if self.retain_runs is not None and not self.retain_runs > 0:
            raise ValueError("retain_runs must be a positive number of seconds (or None to keep every run)")
        if self.log_retention is not None and self.log_retention < 1:
            raise ValueError("log_retention must be at least 1 (or None to keep every log line)")


@dataclass(slots=True)
class _Execution:
    context: StepContext
    finished: asyncio.Event  # set on the runner loop, where a newer execution of the run waits for it
    task: asyncio.Future[object] | None = None  # the job function's task, once it started
    timed_out: bool = False

    def cancel(self) -> None:
        """Stop the job function (on the runner loop); the slot then settles the run."""
        if self.task is not None:
            self.task.cancel()


def _time_out(execution: _Execution) -> None:
    """The run's job timeout passed (on the runner loop): stop the execution; it fails with RunTimeoutError."""
    execution.timed_out = True
    execution.context.signal.set()  # a step that watches the signal may stop early
    execution.cancel()


class Worker:
    def __init__(
        self, storage: Storage, bus: EventBus, jobs: Callable[[], dict[str, JobDefinition]], options: WorkerOptions
    ) -> None:
        self._storage = storage
        self._bus = bus
        self._jobs = jobs
        self._options = options
        self._owner = current_owner()
        self._lock = threading.Lock()
        self._wakes = 0  # bumped by wake(): a slot that saw it change looks for work again at once
        # Keyed by (run id, attempt): a run recovered from this very worker (say after a long freeze)
        # may be claimed again while its old execution winds down, and both must be tracked.
        self._executions: dict[tuple[str, int], _Execution] = {}
        self._runner: threading.Thread | None = None  # runs the slots' loop
        self._loop: asyncio.AbstractEventLoop | None = None  # the runner's
        self._roused: asyncio.Event | None = None  # set (and replaced) on the runner loop by wake()
        self._busy = 0  # slots with a claimed run
        self._coordination: Coordination = Solo()
        self._maintenance: threading.Thread | None = None
        self._stopping = threading.Event()
        self._runs_done = threading.Event()
        self._nudged = threading.Event()  # the maintenance thread looks again (a timer, stop)
        self._survey_soon = False  # a leader surveys at once (a schedule changed)
        self._timers: list[int] = []  # epoch ms when waiting runs become ready (a heap)
        self._timer_set: set[int] = set()
        self._hand_backs: set[tuple[str, int]] = set()  # runs to hand back once the database takes it
        self._outage_seen = -float("inf")  # time.monotonic() when a call last met an unavailable database
        self._switch_held = False  # the interpreter's switch interval, held while running (`_switch`)

    @property
    def is_running(self) -> bool:
        return self._runner is not None and not self._stopping.is_set()

    @property
    def leading(self) -> bool:
        """Whether this worker leads the workers of its database now (see coordination.py)."""
        return self.is_running and self._coordination.leading

    def wake(self) -> None:
        """Idle slots look for work now (from any thread)."""
        with self._lock:
            self._wakes += 1
            loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the runner's loop closed meanwhile
                loop.call_soon_threadsafe(self._rouse)

    def _rouse(self) -> None:
        """On the runner loop: the idle slots waiting on the current event go."""
        if self._roused is not None:
            self._roused.set()
            self._roused = asyncio.Event()

    def work_added(self, count: int) -> None:
        """`count` runs became pending in this process (triggered, retried): idle slots here look for
        them at once, and the leading worker hears of those they cannot take."""
        idle = self._idle_slots() if self.is_running else 0
        if count > idle:
            self._storage.ring_leader(count - idle)
        if idle:
            self.wake()

    def _idle_slots(self) -> int:
        with self._lock:
            return self._options.max_concurrent_runs - self._busy

    def _on_ring(self, ring: Ring, count: int) -> None:
        """A ring from another process (on the coordination's thread). The leader passes on what it
        cannot take itself."""
        if ring is Ring.LEADER:
            if count > self._idle_slots():
                self._coordination.ring_workers()
            if not count:  # not runs: something the leader surveys changed (a schedule)
                self._survey_soon = True
                self._nudged.set()
        self.wake()

    def cancel_local(self, run_id: str) -> None:
        """Tell an execution in this process that its run was cancelled (its signal fires at once)."""
        with self._lock:
            executions = [e for (running_id, _), e in self._executions.items() if running_id == run_id]
        for execution in executions:
            execution.context.end(RunCancelledError)

    async def start(self, switch_interval: float | None = None) -> None:
        """Start the slots. `switch_interval`: hold the interpreter's switch interval at most this
        long while the worker runs (see `_switch.py`: for a worker sharing a server's process)."""
        if self._runner is not None:
            return
        self._bus.bind(asyncio.get_running_loop())
        self._stopping.clear()
        self._runs_done.clear()
        if switch_interval is not None:
            _switch.hold(switch_interval)
            self._switch_held = True
        recovered = await asyncio.to_thread(self._recover)  # runs of dead workers first: they resume at once
        self._coordination = await asyncio.to_thread(
            self._storage.coordinate, self._on_ring, self._options.polling_interval
        )
        self._maintenance = _thread(self._maintain, "durably-maintenance")
        loop = asyncio.new_event_loop()
        with self._lock:
            self._loop = loop
        self._runner = _thread(lambda: self._run_slots(loop), "durably-runner")
        if recovered:
            self.work_added(len(recovered))

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming and let running runs finish. After `timeout` seconds, interrupt them and
        hand them back as pending, so that any worker resumes them from their last completed step."""
        runner = self._runner
        if runner is None:
            return
        self._stopping.set()
        self.wake()
        if not await asyncio.to_thread(_join, runner, timeout):
            await asyncio.to_thread(self._interrupt, runner)
        self._runner = None
        self._runs_done.set()
        self._nudged.set()
        if self._maintenance is not None:
            await asyncio.to_thread(self._maintenance.join)
            self._maintenance = None
        await asyncio.to_thread(self._coordination.close)
        self._coordination = Solo()
        if self._switch_held:
            self._switch_held = False
            _switch.release()
        if self._hand_backs and not await asyncio.to_thread(self._hand_back):
            logger.warning(
                "durably worker: stopped without handing back run(s) %s: the database is unavailable; "
                "they are resumed once found stale or their owner dead",
                ", ".join(run_id for run_id, _ in sorted(self._hand_backs)),
            )

    def _interrupt(self, runner: threading.Thread) -> None:
        with self._lock:
            executions = dict(self._executions)
            loop = self._loop
        # Hand the runs back first: whatever their code still writes (a step that stops early on the
        # signal, say) is then refused, and the step runs again, whole, wherever the run resumes.
        for run_id, attempt in executions:
            self._release(run_id, attempt)
        for execution in executions.values():
            execution.context.end(ClaimLostError)  # one not started yet does not start
            execution.context.signal.set()

        def cancel_all() -> None:
            for execution in executions.values():
                execution.cancel()

        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the slots ended meanwhile
                loop.call_soon_threadsafe(cancel_all)
        if _join(runner, _INTERRUPT_GRACE):
            return
        with self._lock:
            self._executions.clear()  # stuck in a synchronous step; its later writes will be refused

    # -- slots (on the runner's loop) ---------------------------------------------------------------
    def _run_slots(self, loop: asyncio.AbstractEventLoop) -> None:
        """The runner thread: the slots' loop, until every slot has seen `stop()`."""
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve_all())
        finally:
            with self._lock:
                if self._loop is loop:  # not yet a new runner's (this one was stuck past stop())
                    self._loop = None
            loop.close()

    async def _serve_all(self) -> None:
        self._roused = asyncio.Event()
        await asyncio.gather(*(self._serve() for _ in range(self._options.max_concurrent_runs)))

    async def _serve(self) -> None:
        """One slot: claim a run, execute and settle it, and so on; idle, wait for a wake."""
        claim: Claim | None = None  # a run claimed as the previous one was settled, in its transaction
        while claim is not None or not self._stopping.is_set():
            wakes = self._wakes
            if claim is None:
                claim = await self._claim()
            if claim is not None:
                following = None
                try:
                    following = await self._execute(claim, self._jobs()[claim.run.job_name])
                finally:
                    if following is None:
                        with self._lock:
                            self._busy -= 1
                claim = following
                continue
            if self._wakes == wakes and not self._stopping.is_set():
                assert self._roused is not None
                await self._roused.wait()  # for a wake: here, a ring, or the leader's survey

    def _next_claim(self) -> ClaimRequest | None:
        """What a settling run claims for its slot in the same transaction (nothing once stopping)."""
        if self._stopping.is_set():
            return None
        return ClaimRequest(self._owner, tuple(self._jobs()))

    async def _claim(self) -> Claim | None:
        jobs = self._jobs()
        if not jobs:
            return None
        try:
            claims = await self._storage.claim(self._owner, tuple(jobs), 1, now_ms())
        except StorageUnavailableError:
            self._outage_seen = time.monotonic()  # storage waited for it (and logs the outage once)
            return None
        except Exception:
            logger.exception("durably worker: claiming failed; trying again in %ss", self._options.polling_interval)
            await asyncio.to_thread(self._stopping.wait, self._options.polling_interval)
            return None
        if not claims:
            return None
        with self._lock:
            self._busy += 1
        return claims[0]

    # -- executing (on the runner loop) ------------------------------------------------------------
    async def _execute(self, claim: Claim, job: JobDefinition) -> Claim | None:
        """Execute the claimed run and settle it; returns the run claimed for this slot as it was
        settled, if any (this slot then already holds it)."""
        run, attempt, events = claim.run, claim.attempt, self._bus
        context = StepContext(
            run_id=run.id,
            job_name=job.name,
            attempt=attempt,
            completed_steps=claim.completed_steps,
            storage=self._storage,
            events=events,
            keep_logs=self._options.log_retention,
            retry=job.retry,
            step_timeout=job.step_timeout,
            signals=job.signals,
        )
        execution = _Execution(context, asyncio.Event())
        with self._lock:
            older = [e for (other_id, _), e in self._executions.items() if other_id == run.id]
            self._executions[(run.id, attempt)] = execution
        for previous in older:  # an older claim of this run still winds down here (cancelled, retried)
            previous.context.end(ClaimLostError)
            await previous.finished.wait()  # one execution of a run at a time
        events.post(RUN_START, runId=run.id, jobName=job.name, payload=run.input)
        started_at = now_ms() if run.started_at is None else run.started_at
        deadline = None if job.timeout is None else started_at + round(job.timeout * 1000)
        loop = asyncio.get_running_loop()
        timer = (
            None if deadline is None else loop.call_later(max(0.0, (deadline - now_ms()) / 1000), _time_out, execution)
        )
        try:
            try:
                try:
                    if deadline is not None and now_ms() >= deadline:
                        raise RunTimeoutError(job.timeout or 0)
                    context.raise_if_ended()  # interrupted (or cancelled) before it began
                    execution.task = asyncio.ensure_future(job.run(context, job.parse_stored_input(run.input)))
                    result = await execution.task
                finally:
                    if timer is not None:
                        timer.cancel()  # the job is over: settling it is not timed
                output_json = encode_json(job.dump_output(result), "The job's output")
            except Suspended as suspended:
                await self._suspend(claim, context, suspended, deadline)
                return None
            except (RunCancelledError, ClaimLostError):
                return None  # the run's state was settled by whoever cancelled or took it
            except asyncio.CancelledError:
                if execution.timed_out:
                    return await self._fail(claim, context, RunTimeoutError(job.timeout or 0))
                await asyncio.to_thread(self._release, run.id, attempt)  # stop() ran out of patience
                return None
            except Exception as error:
                return await self._fail(claim, context, error)
            finished = now_ms()
            settled = await self._settle(
                context,
                lambda: self._storage.finish_run(
                    run.id,
                    attempt,
                    "completed",
                    finished,
                    output_json=output_json,
                    keep_logs=self._logs_to_keep(claim, context),
                    claim_next=self._next_claim(),
                ),
            )
            if settled.conflict is None:
                events.post(
                    RUN_COMPLETE,
                    busy=settled.next is not None,
                    runId=run.id,
                    jobName=job.name,
                    output=decode_json(output_json),
                    duration=finished - started_at,
                )
            return settled.next
        except StorageUnavailableError:
            return None  # the execution ended (interrupted, cancelled) while the database was away
        except Exception:
            logger.exception("durably worker: run %s could not be settled; it will be resumed", run.id)
            await asyncio.to_thread(self._release, run.id, attempt)
            return None
        finally:
            with self._lock:
                self._executions.pop((run.id, attempt), None)
            execution.finished.set()

    async def _fail(self, claim: Claim, context: StepContext, error: Exception) -> Claim | None:
        """Settle the run failed; returns the run claimed for the slot in the same transaction."""
        message, stack = describe_error(error), format_stack(error)
        failed_at = now_ms()
        settled = await self._settle(
            context,
            lambda: self._storage.finish_run(
                claim.run.id,
                claim.attempt,
                "failed",
                failed_at,
                error=message,
                error_stack=stack,
                keep_logs=self._logs_to_keep(claim, context),
                claim_next=self._next_claim(),
            ),
        )
        if settled.conflict is None:
            self._bus.post(
                RUN_FAIL,
                busy=settled.next is not None,
                runId=claim.run.id,
                jobName=claim.run.job_name,
                error=message,
                failedStepName=context.failed_step_name,
                errorStack=stack,
            )
        return settled.next

    async def _suspend(self, claim: Claim, context: StepContext, suspended: Suspended, deadline: int | None) -> None:
        """The run waits: stored, back to pending, and this worker's slots woken when it is ready (at
        the run's deadline at the latest, when its job has a timeout: it then fails)."""
        run_id, until = claim.run.id, suspended.wait.until
        ready_at = min(NEVER if until is None else until, NEVER if deadline is None else deadline)
        outcome = await self._settle(
            context,
            lambda: self._storage.suspend(
                run_id,
                claim.attempt,
                now_ms(),
                suspended.name,
                suspended.wait,
                json.dumps(suspended.waiting_for),
                ready_at,
            ),
        )
        if outcome is not None:
            return  # cancelled, deleted or taken meanwhile: settled by whoever did it
        waiting_for = {**suspended.waiting_for, "until": None if until is None else to_iso(until)}
        self._bus.post(RUN_WAIT, runId=run_id, jobName=claim.run.job_name, waitingFor=waiting_for)
        if ready_at < NEVER:
            self.wake_at(ready_at)

    def _logs_to_keep(self, claim: Claim, context: StepContext) -> int | None:
        """How many log lines settling the run keeps (the rest is pruned); None when it can have
        none to prune: this is its first execution and it wrote no log."""
        if claim.attempt == 1 and not context.logs_written:
            return None
        return self._options.log_retention

    async def _settle(self, context: StepContext, finish: Callable[[], Awaitable[T]]) -> T:
        """A run's outcome is written however long the database is away, unless the execution ends
        meanwhile (then `StorageUnavailableError`)."""
        try:
            return await persist(finish, until=context.signal)
        except StorageUnavailableError:
            self._outage_seen = time.monotonic()
            raise

    def _release(self, run_id: str, attempt: int) -> None:
        """Hand the run back as pending, now, or once the database takes it (see `_hand_back`)."""
        with self._lock:
            self._hand_backs.add((run_id, attempt))
        self._hand_back()

    def _hand_back(self) -> bool:
        """Hand back the runs waiting for it; stop at the first the database cannot take (the
        maintenance thread tries again every `polling_interval`). True when none is left."""
        with self._lock:
            waiting = sorted(self._hand_backs)
        handed_back = 0
        try:
            for run_id, attempt in waiting:
                try:
                    handed_back += self._storage.release(run_id, attempt, now_ms())
                except StorageUnavailableError:
                    self._outage_seen = time.monotonic()
                    return False
                except Exception:
                    logger.exception(
                        "durably worker: could not hand back run %s; it will be recovered when stale", run_id
                    )
                with self._lock:
                    self._hand_backs.discard((run_id, attempt))
            return True
        finally:
            if handed_back:
                self._storage.ring_leader(handed_back)

    # -- heartbeats and recovery ------------------------------------------------------------------
    def _maintain(self) -> None:
        """Heartbeat until every run has finished; until stop() begins, hand back what could not be,
        wake the slots when a waiting run's time comes (`wake_at`), and, while this worker leads,
        survey (see `_survey`) and forget old events."""
        next_beat = time.monotonic() + self._options.heartbeat_interval
        next_survey = time.monotonic() + self._options.polling_interval
        next_pruning = time.monotonic()
        while not self._runs_done.is_set():
            now = time.monotonic()
            self._nudged.wait(max(0.0, min(next_beat - now, next_survey - now, self._until_next_timer())))
            self._nudged.clear()
            if self._runs_done.is_set():
                return
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self._options.heartbeat_interval
                self._heartbeat()
            if self._stopping.is_set():
                continue
            if self._timers_due() or self._survey_soon:
                self._survey_soon = False
                self.wake()
                next_survey = time.monotonic()  # a leader also rings the others for what is ready
            if time.monotonic() < next_survey:
                continue
            next_survey = time.monotonic() + self._options.polling_interval
            if self._hand_backs and self._hand_back():
                self.wake()
            if not self._coordination.leading:
                continue
            self._survey()
            if time.monotonic() >= next_pruning:
                next_pruning = time.monotonic() + min(60.0, self._options.event_retention / 2)
                self._prune()

    def wake_at(self, when: int) -> None:
        """Wake the slots at `when` (epoch ms), when a waiting run becomes ready."""
        with self._lock:
            if when in self._timer_set:
                return
            self._timer_set.add(when)
            heapq.heappush(self._timers, when)
        self._nudged.set()

    def _until_next_timer(self) -> float:
        with self._lock:
            return (self._timers[0] - now_ms()) / 1000 if self._timers else float("inf")

    def _timers_due(self) -> bool:
        now, due = now_ms(), False
        with self._lock:
            while self._timers and self._timers[0] <= now:
                self._timer_set.discard(heapq.heappop(self._timers))
                due = True
        return due

    def _survey(self) -> None:
        """The leader's look around: abandoned runs go back to pending; pending runs wake this
        worker's idle slots, and ring the other workers when there are more than those slots, or
        runs of jobs this worker does not have."""
        idle = self._idle_slots()
        try:
            survey = self._storage.survey(self._stale_before(), owner_is_dead, now_ms(), limit=idle + 1)
        except StorageUnavailableError:
            self._outage_seen = time.monotonic()
            return
        except Exception:
            logger.exception("durably worker: surveying the database failed")
            return
        if survey.next_ready_at is not None:
            self.wake_at(survey.next_ready_at)
        fired = [job for due in survey.due_schedules if (job := self._fire(due)) is not None]
        if survey.recovered:
            logger.warning(
                "durably worker: resuming %d abandoned run(s): %s", len(survey.recovered), ", ".join(survey.recovered)
            )
        pending = survey.pending_jobs + fired
        if not pending:
            return
        if idle:
            self.wake()
        jobs = self._jobs()
        if len(pending) > idle or any(job not in jobs for job in pending):
            self._coordination.ring_workers()

    def _fire(self, due: DueSchedule) -> str | None:
        """Fire a due schedule's tick (the leader's job): its run's job name, or None if none was
        created (another leader fired it, or a missed tick of a "skip" schedule)."""
        now = now_ms()
        missed = now - due.due > MISSED_AFTER_SECONDS * 1000  # nobody fired it in time: catch_up decides
        run = (
            None
            if missed and due.catch_up == "skip"
            else NewRun(new_id(), due.job_name, due.input_json, f"schedule:{due.name}:{due.due}", None, now)
        )
        try:
            # A late tick (the lead changing hands) is followed by the next one, however late too:
            # every tick fires once. Missed ones are collapsed into this one, or skipped.
            following = next_fire(due.cron, due.timezone, now if missed else due.due)
            created = self._storage.fire_schedule(
                due,
                following,
                run,
                lambda created: self._bus.post(
                    RUN_TRIGGER, runId=created.id, jobName=created.job_name, payload=created.input, schedule=due.name
                ),
            )
        except StorageUnavailableError:
            self._outage_seen = time.monotonic()
            return None
        except Exception:
            logger.exception("durably worker: firing schedule %r failed; its next survey tries again", due.name)
            return None
        self.wake_at(following)
        return None if created is None else created.job_name

    def schedules_changed(self) -> None:
        """A schedule was made, changed or resumed in this process: the leader looks at once."""
        if self.leading:
            self._survey_soon = True
            self._nudged.set()
        else:
            self._storage.ring_leader(0)

    def _heartbeat(self) -> None:
        with self._lock:
            claims = list(self._executions)
        if not claims:
            return
        try:
            outcome = self._storage.heartbeat_blocking(claims, now_ms())
        except StorageUnavailableError:
            self._outage_seen = time.monotonic()
            return
        except Exception:
            logger.exception("durably worker: heartbeat failed")
            return
        ended: dict[tuple[str, int], type[RunCancelledError] | type[ClaimLostError]]
        ended = {
            **{key: ClaimLostError for key in outcome.lost},
            **{key: RunCancelledError for key in outcome.cancelled},
        }
        with self._lock:
            for key, reason in ended.items():
                execution = self._executions.get(key)
                if execution is not None:
                    execution.context.end(reason)

    def retain_runs_for(self, seconds: float | None) -> None:
        """Keep finished runs `seconds` (None: forever) from the next pruning on."""
        self._options = replace(self._options, retain_runs=seconds)

    def _prune(self) -> None:
        """Forget old events, and finished runs older than `retain_runs`: a batch at a time, more
        only while every slot is idle, so a backlog never holds the database for long."""
        try:
            self._storage.prune_events(now_ms() - int(self._options.event_retention * 1000))
            if self._options.retain_runs is None:
                return
            finished_before = now_ms() - int(self._options.retain_runs * 1000)
            announce = once_per_run(self.announce_deleted)
            for _ in range(PURGE_ROUNDS):
                purged = self._storage.purge_runs(finished_before, PURGE_BATCH, announce)
                if len(purged) < PURGE_BATCH or self._idle_slots() < self._options.max_concurrent_runs:
                    break
        except StorageUnavailableError:
            self._outage_seen = time.monotonic()
        except Exception:
            logger.exception("durably worker: pruning old events or runs failed")

    def announce_deleted(self, run: Run) -> None:
        """A purged run's `run:delete` (by retention here, or `Durably.purge_runs`), made in the
        purging transaction: open lists drop the run."""
        self._bus.post(RUN_DELETE, runId=run.id, jobName=run.job_name)

    def _stale_before(self) -> int:
        """Runs whose heartbeat is older than this (epoch ms) are abandoned."""
        outage = max(self._outage_seen, self._storage.last_outage())  # met here, or by anyone in this process
        if time.monotonic() - outage < self._options.stale_threshold:
            return 0  # heartbeats could not be written lately: only dead owners' runs are abandoned
        return now_ms() - int(self._options.stale_threshold * 1000)

    def _recover(self) -> list[str]:
        try:
            recovered = self._storage.recover(self._stale_before(), owner_is_dead, now_ms())
        except StorageUnavailableError:
            self._outage_seen = time.monotonic()
            return []
        except Exception:
            logger.exception("durably worker: recovering abandoned runs failed")
            return []
        if recovered:
            logger.warning("durably worker: resuming %d abandoned run(s): %s", len(recovered), ", ".join(recovered))
        return recovered


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _join(thread: threading.Thread, timeout: float | None) -> bool:
    """Join the thread within `timeout` seconds; True if it ended."""
    thread.join(timeout)
    return not thread.is_alive()
