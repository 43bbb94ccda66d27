"""The worker: claims pending runs, executes them, heartbeats them, recovers the abandoned.

One asyncio task claims runs while there are free slots (`max_concurrent_runs`) and sleeps until a
trigger, a retry or a finished run wakes it, or `polling_interval` passes (runs triggered by other
processes). Each claimed run executes in its own task. Heartbeats come from a plain thread, so a job
that hogs the event loop cannot make its own run look dead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .clock import now_ms
from .errors import ClaimLostError, RunCancelledError
from .events import RUN_COMPLETE, RUN_FAIL, RUN_START, EventBus
from .jobs import JobDefinition
from .owners import current_owner, owner_is_dead
from .step import StepContext, describe_error, encode_json, format_stack
from .storage.base import Claim, Storage

logger = logging.getLogger("durably_reflex")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    polling_interval: float = 1.0
    heartbeat_interval: float = 5.0
    stale_threshold: float = 30.0
    max_concurrent_runs: int = 1
    log_retention: int | None = 10_000

    def __post_init__(self) -> None:
        for name in ("polling_interval", "heartbeat_interval", "stale_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.stale_threshold <= self.heartbeat_interval:
            raise ValueError("stale_threshold must be longer than heartbeat_interval")
        if not isinstance(self.max_concurrent_runs, int) or self.max_concurrent_runs < 1:
            raise ValueError("max_concurrent_runs must be a whole number of at least 1")
        if self.log_retention is not None and self.log_retention < 1:
            raise ValueError("log_retention must be at least 1 (or None to keep every log line)")


@dataclass(slots=True)
class _Execution:
    context: StepContext
    task: asyncio.Task[None]


class Worker:
    def __init__(
        self, storage: Storage, bus: EventBus, jobs: Callable[[], dict[str, JobDefinition]], options: WorkerOptions
    ) -> None:
        self._storage = storage
        self._bus = bus
        self._jobs = jobs
        self._options = options
        self._owner = current_owner()
        # Keyed by (run id, attempt): a run recovered from this very worker (say after a long freeze)
        # may be claimed again while its old execution winds down, and both must be tracked.
        self._executions: dict[tuple[str, int], _Execution] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=max(4, 2 * options.max_concurrent_runs), thread_name_prefix="durably-step"
        )

    @property
    def is_running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def wake(self) -> None:
        """Look for work now (a run was triggered or retried in this process, or a slot freed)."""
        self._wake.set()

    def cancel_local(self, run_id: str) -> None:
        """Tell an execution in this process that its run was cancelled (its signal fires at once)."""
        for (running_id, _), execution in list(self._executions.items()):
            if running_id == run_id:
                execution.context.end(RunCancelledError)

    async def start(self) -> None:
        if self.is_running:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        self._heartbeat_stop.clear()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="durably-heartbeat", daemon=True)
        self._heartbeat_thread.start()
        self._loop_task = asyncio.get_running_loop().create_task(self._claim_loop(), name="durably-worker")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, let running runs finish; after `timeout` seconds, interrupt them and hand
        them back as pending so that any worker resumes them from their last completed step."""
        if self._loop_task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._loop_task
        self._loop_task = None
        tasks = [execution.task for execution in self._executions.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self._heartbeat_stop.set()
        if self._heartbeat_thread is not None:
            await asyncio.to_thread(self._heartbeat_thread.join)
            self._heartbeat_thread = None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- claiming ---------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        last_recovery = float("-inf")
        while not self._stopping:
            self._wake.clear()
            try:
                if time.monotonic() - last_recovery >= self._options.polling_interval:
                    last_recovery = time.monotonic()
                    await self._recover()
                await self._claim()
            except Exception:
                logger.exception("durably worker: claiming failed; trying again in %ss", self._options.polling_interval)
            try:
                await asyncio.wait_for(self._wake.wait(), self._options.polling_interval)
            except TimeoutError:
                pass

    async def _recover(self) -> None:
        stale_before = now_ms() - int(self._options.stale_threshold * 1000)
        recovered = await self._storage.recover(stale_before, owner_is_dead, now_ms())
        if recovered:
            logger.warning("durably worker: resuming %d abandoned run(s): %s", len(recovered), ", ".join(recovered))

    async def _claim(self) -> None:
        free = self._options.max_concurrent_runs - len(self._executions)
        jobs = self._jobs()
        if free <= 0 or not jobs:
            return
        claims = await self._storage.claim(self._owner, tuple(jobs), free, now_ms())
        for claim in claims:
            self._begin(claim, jobs[claim.run.job_name])
        if len(claims) == free:
            self._wake.set()  # there may be more; look again once a slot frees (or at once, if one has)

    def _begin(self, claim: Claim, job: JobDefinition) -> None:
        for (run_id, attempt), older in list(self._executions.items()):
            if run_id == claim.run.id and attempt != claim.attempt:
                older.context.end(ClaimLostError)  # that claim is gone: stop it at its next step
        context = StepContext(
            run_id=claim.run.id, job_name=job.name, attempt=claim.attempt, completed_steps=claim.completed_steps,
            storage=self._storage, bus=self._bus, executor=self._executor, keep_logs=self._options.log_retention,
        )  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._execute(claim, job, context), name=f"durably-run-{claim.run.id}")
        self._executions[(claim.run.id, claim.attempt)] = _Execution(context, task)

    # -- executing --------------------------------------------------------------------------------
    async def _execute(self, claim: Claim, job: JobDefinition, context: StepContext) -> None:
        run, attempt = claim.run, claim.attempt
        started_at = now_ms()
        try:
            self._bus.emit(RUN_START, runId=run.id, jobName=job.name, payload=run.input)
            try:
                result = await job.run(context, job.parse_stored_input(run.input))
                output_json = encode_json(job.dump_output(result), "The job's output")
            except (RunCancelledError, ClaimLostError):
                return  # the run's state was settled by whoever cancelled or took it
            except asyncio.CancelledError:
                await asyncio.shield(self._release(run.id, attempt))
                raise
            except Exception as error:
                await self._fail(claim, context, error)
                return
            finished = now_ms()
            outcome = await self._storage.finish_run(
                run.id, attempt, "completed", finished, output_json=output_json, keep_logs=self._options.log_retention
            )
            if outcome is None:
                self._bus.emit(RUN_COMPLETE, runId=run.id, jobName=job.name, output=json.loads(output_json), duration=finished - started_at)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("durably worker: run %s could not be settled; it will be resumed", run.id)
            await self._release(run.id, attempt)
        finally:
            self._executions.pop((run.id, attempt), None)
            self._wake.set()

    async def _fail(self, claim: Claim, context: StepContext, error: Exception) -> None:
        message, stack = describe_error(error), format_stack(error)
        outcome = await self._storage.finish_run(
            claim.run.id, claim.attempt, "failed", now_ms(), error=message, error_stack=stack,
            keep_logs=self._options.log_retention,
        )  # fmt: skip
        if outcome is None:
            self._bus.emit(
                RUN_FAIL, runId=claim.run.id, jobName=claim.run.job_name, error=message,
                failedStepName=context.failed_step_name, errorStack=stack,
            )  # fmt: skip

    async def _release(self, run_id: str, attempt: int) -> None:
        try:
            await self._storage.release(run_id, attempt, now_ms())
        except Exception:
            logger.exception("durably worker: could not hand back run %s; it will be recovered when stale", run_id)

    # -- heartbeats -------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        while not self._heartbeat_stop.wait(self._options.heartbeat_interval):
            claims = list(self._executions)
            if not claims:
                continue
            try:
                outcome = self._storage.heartbeat_blocking(claims, now_ms())
            except Exception:
                logger.exception("durably worker: heartbeat failed")
                continue
            ended = {**{key: ClaimLostError for key in outcome.lost}, **{key: RunCancelledError for key in outcome.cancelled}}
            for key, reason in ended.items():
                execution = self._executions.get(key)
                if execution is not None:
                    execution.context.end(reason)
