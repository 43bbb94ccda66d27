"""durably-reflex: durable, step-oriented background jobs for Python, watched live from Reflex.

    from durably_reflex import create_durably, define_job

The names below are the public API; modules not listed here are implementation details.
"""

from .engine import BatchItem, Durably, JobHandle, create_durably
from .errors import (
    ClaimLostError,
    ConflictError,
    DuplicateStepError,
    DurablyError,
    InvalidArgumentError,
    InvalidInputError,
    JobDefinitionError,
    JobNotFoundError,
    NotFoundError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    RunStateError,
    StepOutputError,
    WaitTimeoutError,
)
from .events import Event, RunSubscription
from .jobs import JobDefinition, define_job
from .records import LogEntry, Progress, Run, RunResult, RunStatus, Step
from .step import StepContext

__all__ = [
    "BatchItem",
    "ClaimLostError",
    "ConflictError",
    "DuplicateStepError",
    "Durably",
    "DurablyError",
    "Event",
    "InvalidArgumentError",
    "InvalidInputError",
    "JobDefinition",
    "JobDefinitionError",
    "JobHandle",
    "JobNotFoundError",
    "LogEntry",
    "NotFoundError",
    "Progress",
    "Run",
    "RunCancelledError",
    "RunFailedError",
    "RunNotFoundError",
    "RunResult",
    "RunStateError",
    "RunStatus",
    "RunSubscription",
    "Step",
    "StepContext",
    "StepOutputError",
    "WaitTimeoutError",
    "create_durably",
    "define_job",
]
