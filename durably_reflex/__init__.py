"""durably-reflex: durable, step-oriented background jobs for Python, watched live from Reflex.

    from durably_reflex import create_durably, define_job

The names below are the public API; modules not listed here are implementation details.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._engine import BatchItem, Durably, JobHandle, create_durably
from ._errors import (
    ClaimLostError,
    ConflictError,
    DuplicateStepError,
    DurablyError,
    FeatureNotSupportedError,
    InvalidArgumentError,
    InvalidInputError,
    JobDefinitionError,
    JobNotFoundError,
    NonRetryableError,
    NotFoundError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    RunStateError,
    RunTimeoutError,
    ScheduleNotFoundError,
    SchemaVersionError,
    SignalConflictError,
    SignalTimeoutError,
    StepOutputError,
    StepTimeoutError,
    StorageUnavailableError,
    WaitTimeoutError,
)
from ._events import Event, RunSubscription
from ._jobs import JobDefinition, define_job
from ._records import (
    Attempt,
    BulkResult,
    LogEntry,
    Progress,
    Run,
    RunResult,
    RunStats,
    RunStatus,
    Schedule,
    StatsBucket,
    StatusCounts,
    Step,
    TriggeredRun,
    WaitingFor,
)
from ._retry import Retry
from ._step import StepContext

# The HTTP side (client, server, wire events) loads on first use: a worker process that only runs
# jobs does not pay for importing httpx and Starlette.
_LAZY_MODULES = {
    "AuthError": "._client",
    "ClientConnectionError": "._client",
    "ConnectionState": "._client",
    "DurablyClient": "._client",
    "EventStream": "._client",
    "JobClient": "._client",
    "JobInfo": "._client",
    "PayloadTooLargeError": "._client",
    "ServerError": "._client",
    "ServerTraits": "._client",
    "TypedDurablyClient": "._client",
    "UnexpectedResponseError": "._client",
    "create_durably_client": "._client",
    "BaseWireEvent": "._wire_events",
    "LogWrite": "._wire_events",
    "RunCancel": "._wire_events",
    "RunComplete": "._wire_events",
    "RunDelete": "._wire_events",
    "RunFail": "._wire_events",
    "RunProgress": "._wire_events",
    "RunRetry": "._wire_events",
    "RunSnapshot": "._wire_events",
    "RunStart": "._wire_events",
    "RunTrigger": "._wire_events",
    "StepComplete": "._wire_events",
    "StepFail": "._wire_events",
    "StepStart": "._wire_events",
    "StreamGap": "._wire_events",
    "WireEvent": "._wire_events",
    "parse_event": "._wire_events",
    "DurablyAuth": ".server",
    "create_durably_handler": ".server",
    "mount_durably": ".mount",
}

if TYPE_CHECKING:
    from ._client import (
        AuthError,
        ClientConnectionError,
        ConnectionState,
        DurablyClient,
        EventStream,
        JobClient,
        JobInfo,
        PayloadTooLargeError,
        ServerError,
        ServerTraits,
        TypedDurablyClient,
        UnexpectedResponseError,
        create_durably_client,
    )
    from ._wire_events import (
        BaseWireEvent,
        LogWrite,
        RunCancel,
        RunComplete,
        RunDelete,
        RunFail,
        RunProgress,
        RunRetry,
        RunSnapshot,
        RunStart,
        RunTrigger,
        StepComplete,
        StepFail,
        StepStart,
        StreamGap,
        WireEvent,
        parse_event,
    )
    from .mount import mount_durably
    from .server import DurablyAuth, create_durably_handler


def __getattr__(name: str) -> Any:
    module = _LAZY_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'durably_reflex' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Attempt",
    "AuthError",
    "BaseWireEvent",
    "BatchItem",
    "BulkResult",
    "ClaimLostError",
    "ClientConnectionError",
    "ConflictError",
    "ConnectionState",
    "DuplicateStepError",
    "Durably",
    "DurablyAuth",
    "DurablyClient",
    "DurablyError",
    "Event",
    "EventStream",
    "FeatureNotSupportedError",
    "InvalidArgumentError",
    "InvalidInputError",
    "JobClient",
    "JobDefinition",
    "JobDefinitionError",
    "JobHandle",
    "JobInfo",
    "JobNotFoundError",
    "LogEntry",
    "LogWrite",
    "NonRetryableError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Progress",
    "Retry",
    "Run",
    "RunCancel",
    "RunCancelledError",
    "RunComplete",
    "RunDelete",
    "RunFail",
    "RunFailedError",
    "RunNotFoundError",
    "RunProgress",
    "RunResult",
    "RunRetry",
    "RunSnapshot",
    "RunStart",
    "RunStateError",
    "RunStats",
    "RunStatus",
    "RunSubscription",
    "RunTimeoutError",
    "RunTrigger",
    "Schedule",
    "ScheduleNotFoundError",
    "SchemaVersionError",
    "ServerError",
    "ServerTraits",
    "SignalConflictError",
    "SignalTimeoutError",
    "StatsBucket",
    "StatusCounts",
    "Step",
    "StepComplete",
    "StepContext",
    "StepFail",
    "StepOutputError",
    "StepStart",
    "StepTimeoutError",
    "StorageUnavailableError",
    "StreamGap",
    "TriggeredRun",
    "TypedDurablyClient",
    "UnexpectedResponseError",
    "WaitTimeoutError",
    "WaitingFor",
    "WireEvent",
    "create_durably",
    "create_durably_client",
    "create_durably_handler",
    "define_job",
    "mount_durably",
    "parse_event",
]
