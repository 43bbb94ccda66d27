"""Job definitions: a name, pydantic models for input and output, and an async function of steps.

A definition only packages the job; validation against its models happens here too, so the engine
and the HTTP layer report a bad field the same way. A job may also declare the payload models of
the signals it waits for (`signals={"approval": Approval}`): `durably.signal` checks a payload
against it, `GET /jobs` lists their JSON Schemas (a page builds the form to send one from it), and
`step.wait_for_signal(name)` parses the payload into it when the job passes no `model`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, overload

from pydantic import BaseModel, ValidationError

from ._errors import InvalidInputError, JobDefinitionError
from ._retry import Retry

if TYPE_CHECKING:
    from ._step import StepContext

JobFunction = Callable[["StepContext", Any], Awaitable[Any]]
SignalModels = Mapping[str, type[BaseModel]]  # signal name -> its payload's model
MAX_SIGNAL_NAME_LENGTH = 255


@dataclass(frozen=True, eq=False)
class JobDefinition:
    """A job: `run(step, input)` is called with the input parsed into the `input` model."""

    name: str
    run: JobFunction
    input: type[BaseModel] | None = None
    output: type[BaseModel] | None = None
    retry: Retry | None = None  # for each step (see `Retry`); None: a failing step fails the run
    timeout: float | None = None  # seconds from a run's first start to its end, waits included
    step_timeout: float | None = None  # seconds each step may run (`step.run(..., timeout=)` overrides)
    signals: SignalModels = field(default_factory=dict)  # the payload models of the signals it waits for

    def validate_input(self, raw: Any) -> Any:
        """The input as it will be stored: validated, defaults applied, JSON-ready.

        Raises `InvalidInputError` naming each bad field; nothing is stored in that case.
        """
        if self.input is None:
            return {} if raw is None else raw
        try:
            model = raw if isinstance(raw, self.input) else self.input.model_validate({} if raw is None else raw)
        except ValidationError as error:
            raise invalid("Invalid input", error) from None
        return model.model_dump(mode="json", by_alias=True)

    def parse_stored_input(self, stored: Any) -> Any:
        """What the job function receives: the stored input as an instance of the input model."""
        if self.input is None:
            return stored
        try:
            return self.input.model_validate(stored)
        except ValidationError as error:
            raise invalid("Invalid input", error) from None

    def dump_output(self, value: Any) -> Any:
        """The job's return value checked against the output model, as JSON to store."""
        if self.output is None:
            return value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
        try:
            model = value if isinstance(value, self.output) else self.output.model_validate(value)
        except ValidationError as error:
            raise invalid("Invalid output", error) from None
        return model.model_dump(mode="json", by_alias=True)

    def load_output(self, stored: Any) -> Any:
        """A stored output as the job's output model (or as stored JSON when the job has none)."""
        return stored if self.output is None or stored is None else self.output.model_validate(stored)

    def input_schema(self) -> dict[str, Any] | None:
        return None if self.input is None else self.input.model_json_schema()

    def output_schema(self) -> dict[str, Any] | None:
        return None if self.output is None else self.output.model_json_schema()

    def validate_signal(self, name: str, payload: Any) -> Any:
        """A signal's payload as it will be stored: checked against the model the job declares for
        `name` (any JSON for a signal it does not declare: a job may wait for names it computes).
        Raises `InvalidInputError` naming each bad field; nothing is stored in that case."""
        model = self.signals.get(name)
        if model is None:
            return payload
        try:
            parsed = payload if isinstance(payload, model) else model.model_validate(payload)
        except ValidationError as error:
            raise invalid(f'Invalid payload of signal "{name}"', error) from None
        return parsed.model_dump(mode="json", by_alias=True)

    def signal_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of each declared signal's payload, by signal name."""
        return {name: model.model_json_schema() for name, model in self.signals.items()}


def invalid(prefix: str, error: ValidationError) -> InvalidInputError:
    """`Invalid input: rows.0.name: Field required; count: ...`, keeping the structured list too."""
    details = error.errors(include_url=False, include_context=False, include_input=False)
    parts = [f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}" for item in details]
    return InvalidInputError(f"{prefix}: {'; '.join(parts)}", [dict(item) for item in details])


@overload
def define_job(
    *,
    name: str,
    input: type[BaseModel] | None = None,
    output: type[BaseModel] | None = None,
    run: JobFunction,
    retry: Retry | None = None,
    timeout: float | None = None,
    step_timeout: float | None = None,
    signals: SignalModels | None = None,
) -> JobDefinition: ...
@overload
def define_job(
    *,
    name: str,
    input: type[BaseModel] | None = None,
    output: type[BaseModel] | None = None,
    run: None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    step_timeout: float | None = None,
    signals: SignalModels | None = None,
) -> Callable[[JobFunction], JobDefinition]: ...
def define_job(
    *,
    name: str,
    input: type[BaseModel] | None = None,
    output: type[BaseModel] | None = None,
    run: JobFunction | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    step_timeout: float | None = None,
    signals: SignalModels | None = None,
) -> JobDefinition | Callable[[JobFunction], JobDefinition]:
    """Define a job; without `run` it is a decorator for the job function. `retry` applies to each
    of its steps; `timeout` bounds a run (from its first start, waits included) and `step_timeout`
    each step, in seconds. `signals` declares the payload model of each signal it waits for (by
    name): payloads are checked when sent, and `step.wait_for_signal(name)` returns the model."""
    if not isinstance(name, str) or not name.strip():
        raise JobDefinitionError("A job needs a non-empty string name")
    for role, model in (("input", input), ("output", output)):
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise JobDefinitionError(f'Job "{name}": {role} must be a pydantic BaseModel subclass, got {model!r}')
    if retry is not None and not isinstance(retry, Retry):
        raise JobDefinitionError(f'Job "{name}": retry must be a Retry(...), got {retry!r}')
    for label, seconds in (("timeout", timeout), ("step_timeout", step_timeout)):
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0):
            raise JobDefinitionError(f'Job "{name}": {label} must be a positive number of seconds, got {seconds!r}')
    signal_models = _check_signals(name, signals)

    def build(function: JobFunction) -> JobDefinition:
        if not inspect.iscoroutinefunction(function):
            raise JobDefinitionError(f'Job "{name}": run must be an async function taking (step, input)')
        return JobDefinition(
            name=name,
            run=function,
            input=input,
            output=output,
            retry=retry,
            timeout=timeout,
            step_timeout=step_timeout,
            signals=signal_models,
        )

    return build if run is None else build(run)


def _check_signals(job_name: str, signals: SignalModels | None) -> SignalModels:
    """The declared signals, read-only, or `JobDefinitionError` for a bad name or model."""
    if signals is None:
        return MappingProxyType({})
    if not isinstance(signals, Mapping):
        raise JobDefinitionError(f'Job "{job_name}": signals must map signal names to models, got {signals!r}')
    for signal, model in signals.items():
        if not isinstance(signal, str) or not signal or len(signal) > MAX_SIGNAL_NAME_LENGTH:
            raise JobDefinitionError(
                f'Job "{job_name}": a signal name must be a non-empty string of at most '
                f"{MAX_SIGNAL_NAME_LENGTH} characters, got {signal!r}"
            )
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise JobDefinitionError(
                f'Job "{job_name}": signal "{signal}" must be a pydantic BaseModel subclass, got {model!r}'
            )
    return MappingProxyType(dict(signals))
