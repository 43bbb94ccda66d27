"""Every exception durably-reflex raises, in one hierarchy.

Callers catch `DurablyError` for anything of ours; the HTTP layer maps the subclasses to status codes
(`NotFoundError` → 404, `ConflictError` → 409, `InvalidInputError` → 400) without string matching.
"""

from __future__ import annotations

from typing import Any


class DurablyError(Exception):
    """Base class of every error raised by durably-reflex."""


class NotFoundError(DurablyError, LookupError):
    """Something named by the caller does not exist."""


class JobNotFoundError(NotFoundError):
    def __init__(self, job_name: str) -> None:
        super().__init__(f"Job not found: {job_name}")
        self.job_name = job_name


class RunNotFoundError(NotFoundError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run not found: {run_id}")
        self.run_id = run_id


class ConflictError(DurablyError):
    """The request is well formed but the run's current state does not allow it."""


class RunStateError(ConflictError):
    """Retry, cancel or delete asked of a run whose status forbids it."""

    def __init__(self, action: str, status: str, run_id: str) -> None:
        wording = "already cancelled" if (action, status) == ("cancel", "cancelled") else status
        super().__init__(f"Cannot {action} {wording} run: {run_id}")
        self.action = action
        self.status = status
        self.run_id = run_id


class JobDefinitionError(DurablyError, ValueError):
    """A job definition or registration is malformed (duplicate name, bad schema, ...)."""


class InvalidInputError(DurablyError, ValueError):
    """Input (or a job's output) failed its pydantic model.

    `errors` keeps pydantic's structured list so callers can show each message by its field path.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class InvalidArgumentError(DurablyError, ValueError):
    """A query argument is out of range or of the wrong kind (a negative limit, an unknown status)."""


class DuplicateStepError(DurablyError):
    """`step.run` was called twice with one name in one execution; replay by name would be ambiguous."""

    def __init__(self, step_name: str) -> None:
        super().__init__(f'Step "{step_name}" was already run in this execution: step names must be unique per run')
        self.step_name = step_name


class StepOutputError(DurablyError, TypeError):
    """A step returned a value that cannot be stored as JSON, so it could never be replayed."""


class RunCancelledError(DurablyError):
    """The run was cancelled: raised at the job's next `step.run`, and by `trigger_and_wait`."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run was cancelled: {run_id}")
        self.run_id = run_id


class ClaimLostError(DurablyError):
    """This worker no longer owns the run (it was recovered and claimed elsewhere); stop quietly."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run {run_id} is no longer owned by this worker")
        self.run_id = run_id


class RunFailedError(DurablyError):
    """`trigger_and_wait` saw the run fail; carries the run's error message and traceback."""

    def __init__(self, run_id: str, error: str | None, error_stack: str | None = None) -> None:
        super().__init__(error or "Run failed")
        self.run_id = run_id
        self.error = error
        self.error_stack = error_stack


class WaitTimeoutError(DurablyError, TimeoutError):
    """`trigger_and_wait` gave up waiting; the run itself keeps going."""

    def __init__(self, run_id: str, timeout: float) -> None:
        super().__init__(f"trigger_and_wait timeout after {timeout:g}s (run {run_id} keeps going)")
        self.run_id = run_id
        self.timeout = timeout
