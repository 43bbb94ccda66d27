"""The step context: what a job function gets as `step`.

`await step.run(name, fn)` runs `fn` once per run, ever: its result is committed before `step.run`
returns, and any later execution of the run (after a crash, a retry, a recovery) returns the stored
result instead of calling `fn` again.

A run executes as a task of its worker's runner loop (see `_worker.py`), never on the loop the API
and the UI share: however slow or CPU-bound a step is, the server's loop stays free. A synchronous
step function that proved quick is simply called on the runner's thread, so a trivial step costs no
hand-off between threads; one not known yet, or that took longer than `SLOW_CALL` (it blocks: a
sleep, a network call), runs on a thread, so that it does not hold up the other runs of the loop
(see `_SyncCalls`). Its checkpoint is awaited: the checkpoints the loop's runs make in one iteration
of the loop share a commit.

A step running when its run is cancelled either finishes its work regardless (it never looks at
`step.signal` or `step.is_cancelled`): it is recorded `completed`, as in Durably 0.7, and replays on
retry; or it sees the cancel and stops early: whatever it then returns or raises is unfinished
work, so it is recorded `cancelled` (where the run stopped), never replayed (a retry runs it again),
and `step.run` raises `RunCancelledError` at once.

A run can wait, durably, holding no worker slot: `step.sleep` (for a time), `step.wait_for_signal`
(for `durably.signal(run_id, name, payload)`, with an optional deadline). A wait is a step: the
first execution that reaches it stores the wait (its deadline, so a restart does not restart the
clock) and stops the execution (`Suspended`, a BaseException that job code does not catch by
accident); the run goes back to pending, not ready until the wait ends. The execution that finds the
wait over records the step completed, and replays of the run return at once from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import threading
import time
import traceback
import types
from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any

import pydantic_core
from pydantic import BaseModel

from ._clock import now_ms, to_iso
from ._errors import (
    ClaimLostError,
    DuplicateStepError,
    RunCancelledError,
    SignalTimeoutError,
    StepOutputError,
    StepTimeoutError,
    StorageUnavailableError,
)
from ._events import (
    LOG_WRITE,
    RUN_PROGRESS,
    STEP_COMPLETE,
    STEP_FAIL,
    STEP_START,
    EventBus,
)
from ._ids import new_id
from ._jobs import SignalModels
from ._json import decode_json
from ._persist import persist
from ._retry import Retry
from ._storage.base import NewLog, StepRecord, StepWrite, Storage, Wait

LOG_LEVELS = ("info", "warn", "error")
MAX_WAIT_SECONDS = 10 * 366 * 24 * 3600  # ten years: a longer wait is a mistake, not a plan

_current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("durably_current_step", default=None)


def encode_json(value: Any, what: str) -> str:
    """Compact JSON for storage; pydantic models, dates and the like are converted the pydantic way."""
    try:
        return pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError as error:
        raise StepOutputError(f"{what} is not JSON-serializable, so it could not be stored: {error}") from None


class Suspended(BaseException):
    """Raised by a wait step that must wait: the worker stores the wait and hands the run back to
    pending. A BaseException, like `asyncio.CancelledError`: `except Exception` in job code lets it by."""

    def __init__(self, name: str, wait: Wait) -> None:
        super().__init__(name)
        self.name = name
        self.wait = wait

    @property
    def waiting_for(self) -> dict[str, Any]:
        """The run's `waitingFor` while it waits (`until` in epoch ms, as stored; a retry also
        says which attempt failed)."""
        waiting: dict[str, Any] = {"kind": self.wait.kind, "name": self.name, "until": self.wait.until}
        if self.wait.kind == "retry" and self.wait.payload_json:
            waiting["attempt"] = json.loads(self.wait.payload_json)["attempt"]
        return waiting


class CancelSignal(threading.Event):
    """`step.signal`: a `threading.Event` that counts the times code saw it set (`wait` or `is_set`
    answering True), so that a step which saw its run's cancel can be told from one that finished
    its work regardless (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0  # increments may race between threads; only "more than before" matters

    def is_set(self) -> bool:
        answer = super().is_set()
        if answer:
            self.seen += 1
        return answer

    def wait(self, timeout: float | None = None) -> bool:
        answer = super().wait(timeout)
        if answer:
            self.seen += 1
        return answer


class StepLogger:
    """`step.log.info("saved", {"row": 3})`: stored with the run and streamed as `log:write`."""

    def __init__(self, context: StepContext) -> None:
        self._context = context

    def info(self, message: str, data: Any = None) -> None:
        self._context.write_log("info", message, data)

    def warn(self, message: str, data: Any = None) -> None:
        self._context.write_log("warn", message, data)

    warning = warn

    def error(self, message: str, data: Any = None) -> None:
        self._context.write_log("error", message, data)


class StepContext:
    """One execution of one run. Created by the worker; job code only calls its public methods."""

    def __init__(
        self,
        *,
        run_id: str,
        job_name: str,
        attempt: int,
        completed_steps: dict[str, Any],
        storage: Storage,
        events: EventBus,
        keep_logs: int | None,
        retry: Retry | None = None,
        step_timeout: float | None = None,
        signals: SignalModels = MappingProxyType({}),
    ) -> None:
        self.run_id = run_id
        self.job_name = job_name
        self.log = StepLogger(self)
        # Set when this execution should stop (the run was cancelled, taken over, or the worker is
        # shutting down): long step functions may poll or wait on it.
        self.signal = CancelSignal()
        self.failed_step_name: str | None = None
        self._attempt = attempt
        self._completed = completed_steps
        self._storage = storage
        self._events = events
        self._keep_logs = keep_logs
        self._retry = retry
        self._step_timeout = step_timeout
        self._signals = signals
        self._names_used: set[str] = set()
        self._next_index = 0
        self._logs_written = 0
        self._ended: type[RunCancelledError] | type[ClaimLostError] | None = None

    @property
    def logs_written(self) -> int:
        """Log lines this execution wrote."""
        return self._logs_written

    @property
    def is_cancelled(self) -> bool:
        """Whether the run was cancelled (not merely interrupted by a worker shutting down)."""
        cancelled = self._ended is RunCancelledError
        if cancelled:
            self.signal.seen += 1  # the code asking has seen the cancel, as through the signal
        return cancelled

    # -- steps ------------------------------------------------------------------------------------
    async def run(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retry: Retry | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run `fn(*args, **kwargs)` as the step `name`, or return its stored result if it completed.

        A synchronous function runs on a thread of its own until it proved quick, then on the
        worker's runner thread (see the module's docstring); for parallel work
        inside one run, use async step functions. `retry` and `timeout` (seconds) override the
        job's retry policy and step timeout for this step; they are not passed to `fn` (wrap it in
        `functools.partial` if it takes arguments of those names). A synchronous function with a
        timeout runs on a thread of its own: when it times out, it is left to finish in the
        background and its result is dropped.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError("step.run: timeout must be a positive number of seconds")
        if retry is not None and not isinstance(retry, Retry):
            raise ValueError("step.run: retry must be a Retry(...)")
        index = self._enter(name)
        if name in self._completed:
            return self._completed[name]

        token = _current_step.set(name)
        started_at = now_ms()
        seen_before = self.signal.seen
        self._post(STEP_START, stepName=name, stepIndex=index)
        try:
            within = timeout if timeout is not None else self._step_timeout
            if within is None:
                value = _SYNC_CALLS.call(fn, args, kwargs)
                if type(value) not in _PLAIN and inspect.isawaitable(value):
                    value = await value
            else:
                value = await _call_within(name, fn, args, kwargs, within)
            output_json = _encode_output(name, value)
        except ClaimLostError:
            raise
        except Exception as error:
            if self._saw_cancel(seen_before) or (isinstance(error, RunCancelledError) and self.is_cancelled):
                await self._record_cancelled(name, index, started_at, None, describe_error(error))
                raise RunCancelledError(self.run_id) from error
            if isinstance(error, RunCancelledError):
                raise
            await self._record_failure(name, index, started_at, error)
            await self._retry_later(name, retry or self._retry, error)
            raise
        finally:
            _current_step.reset(token)

        if self._saw_cancel(seen_before):
            await self._record_cancelled(name, index, started_at, output_json, None)
            raise RunCancelledError(self.run_id)
        return await self._complete(name, index, started_at, output_json)

    def _enter(self, name: str) -> int:
        """Check a step's name (non-empty, once per execution) and give it its index."""
        if not isinstance(name, str) or not name:
            raise ValueError("A step needs a non-empty string name")
        if name in self._names_used:
            raise DuplicateStepError(name)
        self._names_used.add(name)
        self.raise_if_ended()
        index = self._next_index
        self._next_index += 1
        return index

    async def _complete(self, name: str, index: int, started_at: int, output_json: str) -> Any:
        """Record the step completed; returns its output as a replay would."""
        completed_at = now_ms()
        written = await self._record(name, index, "completed", started_at, completed_at, output_json=output_json)
        if written is StepWrite.RECORDED_RUN_CANCELLED:
            self.end(RunCancelledError)
        output = decode_json(output_json)  # what a replay returns, so both paths give the same value
        self._post(STEP_COMPLETE, stepName=name, stepIndex=index, output=output, duration=completed_at - started_at)
        return output

    # -- waits ------------------------------------------------------------------------------------
    async def sleep(self, name: str, seconds: float) -> None:
        """Wait `seconds` as the step `name`, durably: the run holds no worker slot meanwhile, and a
        restart or crash does not restart the clock."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"step.sleep: seconds must be a number from 0 to {MAX_WAIT_SECONDS}")
        await self._sleep(name, lambda now: now + round(seconds * 1000))

    async def sleep_until(self, name: str, when: datetime) -> None:
        """`sleep` until `when` (a timezone-aware datetime); at once if it has passed."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise ValueError("step.sleep_until: when must be a timezone-aware datetime")
        await self._sleep(name, lambda now: round(when.timestamp() * 1000))

    async def _sleep(self, name: str, deadline: Callable[[int], int]) -> None:
        index = self._enter(name)
        if name in self._completed:
            return
        wait = await self._stored_wait(name)
        now = now_ms()
        until = wait.until if wait is not None and wait.until is not None else deadline(now)
        if until <= now:
            started_at = now if wait is None else wait.created_at
            await self._complete(name, index, started_at, encode_json({"until": to_iso(until)}, "A sleep"))
            return
        if wait is None:
            self._post(STEP_START, stepName=name, stepIndex=index)
        raise Suspended(name, Wait("sleep", until, None, None, now))

    async def wait_for_signal(
        self, name: str, *, timeout: float | None = None, model: type[BaseModel] | None = None
    ) -> Any:
        """Wait, as the step `name`, for `durably.signal(run_id, name, payload)`; returns the
        payload (parsed into `model`, by default the one the job declares for `name` in
        `define_job(signals=...)`, if any). The run holds no worker slot meanwhile. A signal
        sent before the run gets here is kept. After `timeout` seconds without one, raises
        `SignalTimeoutError`, which the job may catch (a replay raises it again)."""
        model = model if model is not None else self._signals.get(name)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= MAX_WAIT_SECONDS
        ):
            raise ValueError(f"step.wait_for_signal: timeout must be a number of seconds from 0 to {MAX_WAIT_SECONDS}")
        index = self._enter(name)
        if name in self._completed:
            return _signal_outcome(self.run_id, name, self._completed[name], model)
        wait = await self._stored_wait(name)
        now = now_ms()
        started_at = now if wait is None else wait.created_at
        if wait is not None and wait.received_at is not None:
            output = {"payload": None if wait.payload_json is None else json.loads(wait.payload_json)}
            stored = await self._complete(name, index, started_at, encode_json(output, "A signal"))
            return _signal_outcome(self.run_id, name, stored, model)
        if wait is not None and wait.until is not None:
            until: int | None = wait.until
        else:
            until = None if timeout is None else now + round(timeout * 1000)
        if until is not None and until <= now:
            stored = await self._complete(name, index, started_at, encode_json({"timedOut": True}, "A signal"))
            return _signal_outcome(self.run_id, name, stored, model)
        if wait is None:
            self._post(STEP_START, stepName=name, stepIndex=index)
        raise Suspended(name, Wait("signal", until, None, None, now))

    async def _retry_later(self, name: str, policy: Retry | None, error: Exception) -> None:
        """After a failed attempt: wait durably for the next one (`Suspended`) if the policy says so."""
        if policy is None:
            return
        wait = await self._stored_wait(name)
        attempt = 1 + (
            json.loads(wait.payload_json)["attempt"] if wait and wait.kind == "retry" and wait.payload_json else 0
        )
        if not policy.retries(error, attempt):
            return
        now = now_ms()
        until = now + round(policy.delay(attempt) * 1000)
        self.failed_step_name = None  # not the run's failure (yet)
        raise Suspended(name, Wait("retry", until, json.dumps({"attempt": attempt}), None, now)) from error

    async def _stored_wait(self, name: str) -> Wait | None:
        try:
            return await persist(lambda: self._storage.get_wait(self.run_id, name), until=self.signal)
        except StorageUnavailableError:
            self.raise_if_ended()
            raise

    def _saw_cancel(self, seen_before: int) -> bool:
        """Whether the run was cancelled and the step's code saw it while it ran."""
        return self._ended is RunCancelledError and self.signal.seen > seen_before

    async def _record_cancelled(
        self, name: str, index: int, started_at: int, output_json: str | None, error: str | None
    ) -> None:
        """Record a step that stopped early on its run's cancel: never replayed, so a retry runs it
        again; what it returned (or why it raised) is kept for whoever looks."""
        await self._record(name, index, "cancelled", started_at, now_ms(), output_json=output_json, error=error)

    async def _record_failure(self, name: str, index: int, started_at: int, error: Exception) -> None:
        self.failed_step_name = name
        message = describe_error(error)
        await self._record(
            name, index, "failed", started_at, now_ms(), error=message, error_stack=format_stack(error), cause=error
        )
        self._post(STEP_FAIL, stepName=name, stepIndex=index, error=message)

    async def _record(
        self,
        name: str,
        index: int,
        status: str,
        started_at: int,
        completed_at: int,
        *,
        output_json: str | None = None,
        error: str | None = None,
        error_stack: str | None = None,
        cause: BaseException | None = None,
    ) -> StepWrite:
        """Write the step, waiting for the database however long it is away: a step that ran is
        written, not run again. Only the end of this execution stops the waiting. A write refused
        because another worker now holds the run ends this execution (ClaimLostError, from `cause`)."""
        step = StepRecord(
            id=new_id(),
            run_id=self.run_id,
            attempt=self._attempt,
            name=name,
            step_index=index,
            status=status,
            output_json=output_json,
            error=error,
            error_stack=error_stack,
            started_at=started_at,
            completed_at=completed_at,
        )
        try:
            written = await persist(lambda: self._storage.record_step(step), until=self.signal)
        except StorageUnavailableError:
            self.raise_if_ended()  # interrupted or cancelled meanwhile: the usual way out
            raise
        if written is StepWrite.CLAIM_LOST:
            self.end(ClaimLostError)
            raise ClaimLostError(self.run_id) from cause
        return written

    # -- cancellation -----------------------------------------------------------------------------
    def end(self, reason: type[RunCancelledError] | type[ClaimLostError]) -> None:
        """Mark this execution over (cancelled, or claim lost): the next `step.run` raises `reason`."""
        if self._ended is None:
            self._ended = reason
        self.signal.set()

    def raise_if_ended(self) -> None:
        if self._ended is not None:
            raise self._ended(self.run_id)

    # -- progress and logs ------------------------------------------------------------------------
    def progress(self, current: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress (`{current, total?, message?}`); stored and streamed, never awaited."""
        value: dict[str, Any] = {"current": current}
        if total is not None:
            value["total"] = total
        if message is not None:
            value["message"] = str(message)
        for key in ("current", "total"):
            if key in value and (isinstance(value[key], bool) or not isinstance(value[key], int | float)):
                raise TypeError(f"step.progress: {key} must be a number, got {value[key]!r}")
        self._storage.set_progress(self.run_id, self._attempt, json.dumps(value, separators=(",", ":")), now_ms())
        self._post(RUN_PROGRESS, progress=value)

    def write_log(self, level: str, message: str, data: Any = None) -> None:
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
        log_id = new_id()
        step_name = _current_step.get()
        data_json = None if data is None else pydantic_core.to_json(data, fallback=repr).decode()
        self._storage.append_log(NewLog(log_id, self.run_id, step_name, level, str(message), data_json, now_ms()))
        self._post(
            LOG_WRITE,
            stepName=step_name,
            level=level,
            message=str(message),
            data=None if data_json is None else json.loads(data_json),
            id=log_id,
        )
        self._logs_written += 1
        if self._keep_logs and self._logs_written % self._keep_logs == 0:
            self._storage.prune_logs(self.run_id, self._keep_logs)

    def _post(self, event_type: str, **fields: Any) -> None:
        if self._events.wants(event_type):
            self._events.post(event_type, runId=self.run_id, jobName=self.job_name, **fields)


def _encode_output(name: str, value: Any) -> str:
    """A step's result as stored (see `encode_json`)."""
    try:
        return pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError:
        return encode_json(value, f'The result of step "{name}"')  # raises, saying which step


SLOW_CALL = 0.002  # seconds: a synchronous step function that took longer runs on a thread
_QUICK_CALLS = 3  # quick calls in a row on a thread, and a function is called inline from then on


class _SyncCalls:
    """Where synchronous step functions run: on a thread of their own (`_on_thread`) until they
    proved quick (`_QUICK_CALLS` calls in a row within `SLOW_CALL`), then inline on the runner's
    thread, until a call takes longer. A function is
    known by its code (a new closure or `functools.partial` per call shares it). A function never
    seen before may block (a gate, a network call): it must not hold up the loop while it is found
    out; and a quick one pays its hand-offs only for its first calls in the process. Shared by every
    runner of the process: dict operations are atomic, and a lost update only delays a move."""

    def __init__(self) -> None:
        self._quick: dict[object, int] = {}  # code → its quick calls in a row (inline from `_QUICK_CALLS`)

    def call(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` called inline (an awaitable it returns is the caller's to await), or
        an awaitable of its value."""
        key = _code_of(fn)
        if self._quick.get(key, 0) < _QUICK_CALLS:
            return self._off_loop(key, fn, args, kwargs)
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if time.perf_counter() - began > SLOW_CALL:
                self._quick[key] = 0

    async def _off_loop(self, key: object, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        value = await _on_thread(self._timed, key, fn, args, kwargs)
        return (await value) if inspect.isawaitable(value) else value  # an async function's coroutine

    def _timed(self, key: object, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            quick = time.perf_counter() - began <= SLOW_CALL
            self._quick[key] = self._quick.get(key, 0) + 1 if quick else 0


_SYNC_CALLS = _SyncCalls()


async def _on_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` on a daemon thread of its own, with the caller's context variables (the
    current step's name), awaited. A call that never returns holds up neither the loop nor the
    process's exit (an executor's threads would be joined at exit); one per call: slow calls only."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def call() -> None:
        try:
            outcome = (done.set_result, context.run(fn, *args, **kwargs))
        except BaseException as error:  # handed to the awaiting step
            outcome = (done.set_exception, error)
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker stopped without this call
            loop.call_soon_threadsafe(_resolve, done, *outcome)

    threading.Thread(target=call, name="durably-step", daemon=True).start()
    return await done


def _resolve(future: asyncio.Future[Any], settle: Callable[[Any], None], value: Any) -> None:
    if not future.done():  # else the step stopped waiting (its run timed out, or was interrupted)
        settle(value)


def _code_of(fn: Callable[..., Any]) -> object:
    """What names a step function across calls: its code; a built-in function itself; else its type."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is not None:
        return code
    return fn if isinstance(fn, types.BuiltinFunctionType) else type(fn)


async def _call_within(name: str, fn: Callable[..., Any], args: Any, kwargs: Any, timeout: float) -> Any:
    """`fn(*args, **kwargs)`, awaited if it gives an awaitable, within `timeout` seconds."""

    async def call() -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kwargs)
        value = await _on_thread(fn, *args, **kwargs)  # so the wait can end without it
        return (await value) if inspect.isawaitable(value) else value

    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await call()
    except TimeoutError:
        if scope.expired():
            raise StepTimeoutError(name, timeout) from None
        raise  # the step's own TimeoutError


# Values no step function returns to be awaited: the usual results skip the awaitable check.
_PLAIN = frozenset({int, str, bool, float, type(None), dict, list})


def _signal_outcome(run_id: str, name: str, stored: Any, model: type[BaseModel] | None) -> Any:
    """What `wait_for_signal` gives for its stored step output: the payload, or the timeout again."""
    if isinstance(stored, dict) and stored.get("timedOut"):
        raise SignalTimeoutError(run_id, name)
    payload = stored.get("payload") if isinstance(stored, dict) else None
    return payload if model is None else model.model_validate(payload)


def describe_error(error: BaseException) -> str:
    return str(error) or type(error).__name__


def format_stack(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).rstrip()
