"""Every exception durably-reflex raises, in one hierarchy.

Callers catch `DurablyError` for anything of ours; the HTTP layer maps the subclasses to status codes
(`NotFoundError` → 404, `ConflictError` → 409, `InvalidInputError` → 400) without string matching.
Every class carries a stable `code` (`RUN_NOT_FOUND`, `INVALID_INPUT`, ...): it goes on the wire
with the message, so a client maps errors by code, never by their wording.

    DurablyError                      DURABLY_ERROR
    ├── NotFoundError                 NOT_FOUND
    │   ├── JobNotFoundError          JOB_NOT_FOUND
    │   ├── RunNotFoundError          RUN_NOT_FOUND
    │   ├── ScheduleNotFoundError     SCHEDULE_NOT_FOUND
    │   └── FeatureNotSupportedError  FEATURE_NOT_SUPPORTED (client side: a route the server lacks)
    ├── ConflictError                 CONFLICT
    │   ├── RunStateError             RUN_STATE_CONFLICT
    │   └── SignalConflictError       SIGNAL_ALREADY_SENT
    ├── JobDefinitionError            INVALID_JOB_DEFINITION
    ├── InvalidInputError             INVALID_INPUT
    ├── InvalidArgumentError          INVALID_ARGUMENT
    ├── DuplicateStepError            DUPLICATE_STEP
    ├── StepOutputError               INVALID_STEP_OUTPUT
    ├── RunCancelledError             RUN_CANCELLED
    ├── ClaimLostError                CLAIM_LOST
    ├── RunFailedError                RUN_FAILED
    ├── WaitTimeoutError              WAIT_TIMEOUT
    ├── SignalTimeoutError            SIGNAL_TIMEOUT (in job code: a signal's deadline passed)
    ├── StepTimeoutError              STEP_TIMEOUT (a step ran longer than its timeout)
    ├── RunTimeoutError               RUN_TIMEOUT (a run ran longer than its job's timeout)
    ├── NonRetryableError             NON_RETRYABLE (raised by job code: fail without retrying)
    ├── StorageUnavailableError       STORAGE_UNAVAILABLE
    └── SchemaVersionError            SCHEMA_TOO_NEW
"""

from __future__ import annotations

from typing import Any, ClassVar


class DurablyError(Exception):
    """Base class of every error raised by durably-reflex."""

    code: ClassVar[str] = "DURABLY_ERROR"


class NotFoundError(DurablyError, LookupError):
    """Something named by the caller does not exist."""

    code = "NOT_FOUND"


class JobNotFoundError(NotFoundError):
    code = "JOB_NOT_FOUND"

    def __init__(self, job_name: str) -> None:
        super().__init__(f"Job not found: {job_name}")
        self.job_name = job_name


class RunNotFoundError(NotFoundError):
    code = "RUN_NOT_FOUND"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run not found: {run_id}")
        self.run_id = run_id


class ScheduleNotFoundError(NotFoundError):
    code = "SCHEDULE_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"Schedule not found: {name}")
        self.name = name


class FeatureNotSupportedError(NotFoundError):
    """The server does not offer this route at all: it answered 404 without a Durably error body,
    as Durably's own Node server does for `/jobs`, `/logs` and `/stats` (durably-reflex additions).

    Raised by the client only (a durably-reflex server offers every route). A `NotFoundError`, so
    code that already handles "not found" keeps working; catch this class to degrade instead: show
    no counts panel, take logs from the live stream only.
    """

    code = "FEATURE_NOT_SUPPORTED"

    def __init__(self, feature: str) -> None:
        super().__init__(
            f"The server does not offer {feature}: it answered 404 without a Durably error "
            "(a Durably server without this route, such as Durably's Node server, or a wrong base path)"
        )
        self.feature = feature


class ConflictError(DurablyError):
    """The request is well formed but the run's current state does not allow it."""

    code = "CONFLICT"


class RunStateError(ConflictError):
    """Retry, cancel or delete asked of a run whose status forbids it."""

    code = "RUN_STATE_CONFLICT"

    def __init__(self, action: str, status: str, run_id: str) -> None:
        wording = "already cancelled" if (action, status) == ("cancel", "cancelled") else status
        super().__init__(f"Cannot {action} {wording} run: {run_id}")
        self.action = action
        self.status = status
        self.run_id = run_id


class SignalConflictError(ConflictError):
    """A signal was sent twice to one wait of a run (the first one stands)."""

    code = "SIGNAL_ALREADY_SENT"

    def __init__(self, run_id: str, name: str) -> None:
        super().__init__(f'Signal "{name}" was already sent to run {run_id}')
        self.run_id = run_id
        self.name = name


class JobDefinitionError(DurablyError, ValueError):
    """A job definition or registration is malformed (duplicate name, bad schema, ...)."""

    code = "INVALID_JOB_DEFINITION"


class InvalidInputError(DurablyError, ValueError):
    """Input (or a job's output) failed its pydantic model.

    `errors` keeps pydantic's structured list so callers can show each message by its field path.
    """

    code = "INVALID_INPUT"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class InvalidArgumentError(DurablyError, ValueError):
    """A query argument is out of range or of the wrong kind (a negative limit, an unknown status)."""

    code = "INVALID_ARGUMENT"


class DuplicateStepError(DurablyError):
    """`step.run` was called twice with one name in one execution; replay by name would be ambiguous."""

    code = "DUPLICATE_STEP"

    def __init__(self, step_name: str) -> None:
        super().__init__(f'Step "{step_name}" was already run in this execution: step names must be unique per run')
        self.step_name = step_name


class StepOutputError(DurablyError, TypeError):
    """A step returned a value that cannot be stored as JSON, so it could never be replayed."""

    code = "INVALID_STEP_OUTPUT"


class RunCancelledError(DurablyError):
    """The run was cancelled: raised at the job's next `step.run`, and by `trigger_and_wait`."""

    code = "RUN_CANCELLED"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run was cancelled: {run_id}")
        self.run_id = run_id


class ClaimLostError(DurablyError):
    """This worker no longer owns the run (it was recovered and claimed elsewhere); stop quietly."""

    code = "CLAIM_LOST"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run {run_id} is no longer owned by this worker")
        self.run_id = run_id


class RunFailedError(DurablyError):
    """`trigger_and_wait` saw the run fail; carries the run's error message and traceback."""

    code = "RUN_FAILED"

    def __init__(self, run_id: str, error: str | None, error_stack: str | None = None) -> None:
        super().__init__(error or "Run failed")
        self.run_id = run_id
        self.error = error
        self.error_stack = error_stack


class WaitTimeoutError(DurablyError, TimeoutError):
    """`trigger_and_wait` gave up waiting; the run itself keeps going."""

    code = "WAIT_TIMEOUT"

    def __init__(self, run_id: str, timeout: float) -> None:
        super().__init__(f"trigger_and_wait timeout after {timeout:g}s (run {run_id} keeps going)")
        self.run_id = run_id
        self.timeout = timeout


class SignalTimeoutError(DurablyError, TimeoutError):
    """Raised by `step.wait_for_signal` in job code when no signal came before its deadline; the job
    may catch it (and does so again, the same way, when the run is replayed)."""

    code = "SIGNAL_TIMEOUT"

    def __init__(self, run_id: str, name: str) -> None:
        super().__init__(f'No signal "{name}" came for run {run_id} before the deadline')
        self.run_id = run_id
        self.name = name


class NonRetryableError(DurablyError):
    """Raised by job code (or raised from) when trying the step again cannot help: the run fails at
    once, whatever its retry policy."""

    code = "NON_RETRYABLE"


class StepTimeoutError(DurablyError, TimeoutError):
    """A step ran longer than its timeout (`step.run(..., timeout=)` or the job's `step_timeout`).
    A failure of the step like any other: retried under the job's retry policy."""

    code = "STEP_TIMEOUT"

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f'Step "{name}" timed out after {timeout:g}s')
        self.name = name
        self.timeout = timeout


class RunTimeoutError(DurablyError, TimeoutError):
    """The run's error when it ran longer than its job's `timeout` (from its first start, waits
    included); its execution is stopped and its worker freed."""

    code = "RUN_TIMEOUT"

    def __init__(self, timeout: float) -> None:
        super().__init__(f"Run timed out after {timeout:g}s")
        self.timeout = timeout


class StorageUnavailableError(DurablyError):
    """The database cannot be reached (down, restarting, its disk full) for longer than the caller can
    wait. Never a run's failure: the engine waits for the database and the run resumes; the HTTP API
    answers 503 with `Retry-After`."""

    code = "STORAGE_UNAVAILABLE"

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SchemaVersionError(DurablyError):
    """The database was migrated by a newer durably-reflex than this one. Migrations only go forward,
    so this code refuses it rather than misread it: upgrade durably-reflex."""

    code = "SCHEMA_TOO_NEW"

    def __init__(self, database_version: int, code_version: int) -> None:
        super().__init__(
            f"The database schema is at version {database_version}, newer than this durably-reflex knows "
            f"(version {code_version}): upgrade durably-reflex; migrations only go forward"
        )
        self.database_version = database_version
        self.code_version = code_version
