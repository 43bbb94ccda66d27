"""Job definitions: a name, pydantic models for input and output, and an async function of steps.

A definition only packages the job; validation against its models happens here too, so the engine
and the HTTP layer report a bad field the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from pydantic import BaseModel, ValidationError

from ._errors import InvalidInputError, JobDefinitionError
from ._retry import Retry

if TYPE_CHECKING:
    from ._step import StepContext

JobFunction = Callable[["StepContext", Any], Awaitable[Any]]


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
) -> JobDefinition | Callable[[JobFunction], JobDefinition]:
    """Define a job; without `run` it is a decorator for the job function. `retry` applies to each
    of its steps; `timeout` bounds a run (from its first start, waits included) and `step_timeout`
    each step, in seconds."""
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
        )

    return build if run is None else build(run)
