"""`use_job`: trigger one job and watch its current run, as the seed's `useJob` does.

On `attach` (put it in a component's `on_mount`) the state
- resumes: with `auto_resume`, the job's newest running (else pending) run becomes the current run,
  so a page reload mid-run picks the run up again;
- follows the latest: with `follow_latest`, a run of this job triggered anywhere (another tab,
  another user, server code) becomes the current run as soon as it is triggered;
- follows the current run live (status, output, error, progress, logs).

`trigger(input)` validates the input against the job's model before sending it (field errors land
in `field_errors`, nothing is sent), shows `pending` at once and follows the new run. `submit_form`
does the same for the flat data of a `trigger_form` submission, reporting every invalid field at
once. Triggering again while a run is going starts another run (and follows it); `is_triggering`
is true only while the request is on its way.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import reflex as rx

from .._client import DurablyClient, JobClient
from .._errors import DurablyError, InvalidInputError, RunCancelledError, RunFailedError
from .._events import RUN_START, RUN_TRIGGER
from .._form_schema import FormField, form_fields, form_to_input, input_name_errors, merge_errors, row_keys
from .._records import RunStatus
from .._wire_events import RunStart, RunTrigger, StreamGap
from .consumers import Consumer, consumer_of, consuming
from .run_fields import clear_run
from .run_state import RunViewState

LATEST_SOURCE = "latest"  # the consumer's source that watches the job's new runs


class UseJobState(RunViewState, mixin=True):
    """`use_job`: `trigger`, `trigger_and_wait`, `reset_run` (the seed's `reset`: a name Reflex keeps for itself) and the current run's fields, live."""

    # -- configuration ----------------------------------------------------------------------------
    job_name: ClassVar[str]
    job: ClassVar[JobClient | None] = None  # typed access (input validated here) when known
    initial_run_id: ClassVar[str | None] = None
    auto_resume: ClassVar[bool] = True
    follow_latest: ClassVar[bool] = True

    # -- state beyond the run's fields ------------------------------------------------------------
    field_errors: rx.Field[dict[str, str]] = rx.field(
        default_factory=dict
    )  # input field ("rows.0.name"; a form's row input "rows.<key>.name") -> message, from the last trigger
    is_triggering: rx.Field[bool] = rx.field(False)  # a trigger request is on its way
    # A trigger form's repeatable rows: list field path -> its rows' keys in order (absent: the
    # default rows, keyed 0, 1, ...). Keys stay with their rows, so a removed row takes its inputs.
    form_rows: rx.Field[dict[str, list[int]]] = rx.field(default_factory=dict)

    @rx.event(background=True)
    async def attach(self) -> AsyncIterator[Any]:
        """Resume, follow the job's latest runs and the current run, for this tab."""
        cls = self.__class__
        async with self:
            token, name, api = self.router.session.client_token, self.get_full_name(), self.api()
            if self.current_run_id is None and cls.initial_run_id is not None:
                clear_run(self, cls.initial_run_id)
        async with consuming(token, name) as consumer:
            if cls.follow_latest:
                consumer.start_source(LATEST_SOURCE, self._follow_latest(consumer, api))
            resumed = await self._run_to_resume(api) if cls.auto_resume and cls.initial_run_id is None else None
            consumer.post(lambda state: state._switch(consumer, resumed or state.current_run_id))
            async for event in self._consume(consumer):
                yield event

    @rx.event(background=True)
    async def trigger(self, input: Any = None) -> Any:
        """Start a run of the job with `input` and follow it."""
        await self._trigger(input)

    @rx.event(background=True)
    async def submit_form(self, form_data: dict[str, Any]) -> Any:
        """Trigger from a `trigger_form` submission, whose flat fields (named by dotted path) become
        the job's input. A field that does not convert (a number that is not one, bad JSON) is
        reported under its input like a model error, together with the model's errors about the
        other fields, and no run is created."""
        cls = self.__class__
        schema = cls.job.definition.input_schema() if cls.job is not None else None
        async with self:
            rows = dict(self.form_rows)
        input, errors = form_to_input(schema, form_data, rows)
        if cls.job is not None:
            try:
                cls.job.definition.validate_input(input)
            except InvalidInputError as error:
                errors = merge_errors(errors, field_errors(error))
        if errors:
            async with self:
                clear_run(self)
                self.connection, self.error = "idle", "Invalid input"
                self.field_errors = input_name_errors(errors, form_fields(schema), rows)
            return
        await self._trigger(input)

    @rx.event
    def add_form_row(self, path: str) -> None:
        """Add an empty row to the form's list `path` (a `rows` field), after the others."""
        field = self._rows_field(path)
        if field is not None:
            keys = row_keys(field, self.form_rows)
            # A key no row had: a default row's key would bring back that row's values.
            self.form_rows = {**self.form_rows, path: [*keys, max([len(field.default_rows) - 1, *keys]) + 1]}

    @rx.event
    def remove_form_row(self, path: str, key: int) -> None:
        """Remove the row `key` from the form's list `path`, its inputs and errors with it."""
        field = self._rows_field(path)
        if field is not None:
            self.form_rows = {**self.form_rows, path: [k for k in row_keys(field, self.form_rows) if k != int(key)]}
            prefix = f"{path}.{int(key)}"
            self.field_errors = {
                name: message
                for name, message in self.field_errors.items()
                if name != prefix and not name.startswith(f"{prefix}.")
            }

    @rx.event(background=True)
    async def trigger_and_wait(self, input: Any = None) -> Any:
        """Start a run and wait until it settles; its output (or error) is then in the state even
        when no consumer is attached."""
        async with self:
            api = self.api()
        run_id = await self._trigger(input)
        if run_id is None:
            return
        try:
            result = await api.wait_for_run(run_id)
            outcome = {"status": RunStatus.COMPLETED.value, "output": result.output}
        except RunFailedError as error:
            outcome = {"status": RunStatus.FAILED.value, "error": error.error}
        except RunCancelledError:
            outcome = {"status": RunStatus.CANCELLED.value}
        except DurablyError as error:
            outcome = {"error": str(error)}
        async with self:
            if self.current_run_id == run_id:
                for field, value in outcome.items():
                    setattr(self, field, value)

    @rx.event
    def reset_run(self) -> None:
        """Forget the current run (and stop following it)."""
        clear_run(self)
        self.connection = "idle"
        self.field_errors = {}
        if (consumer := consumer_of(self)) is not None:
            self._follow(consumer, None)

    # -- internals --------------------------------------------------------------------------------
    def _rows_field(self, path: str) -> FormField | None:
        job = self.__class__.job
        fields = form_fields(job.definition.input_schema()) if job is not None else []
        return next((field for field in fields if field.kind == "rows" and field.path == path), None)

    async def _trigger(self, input: Any) -> str | None:
        cls = self.__class__
        async with self:
            clear_run(self)
            self.status, self.field_errors, self.connection = "pending", {}, "idle"
            self.is_triggering = True
            api = self.api()
        try:
            if cls.job is not None:  # typed: a bad input is reported here, with nothing sent
                cls.job.definition.validate_input(input)
            run_id = await api.trigger(cls.job_name, input)
        except InvalidInputError as error:
            async with self:
                self.status, self.error, self.is_triggering = None, str(error), False
                self.field_errors = field_errors(error)
            return None
        except DurablyError as error:
            async with self:
                self.status, self.error, self.is_triggering = None, str(error), False
            return None
        async with self:
            self.is_triggering = False
            if self.current_run_id is None:  # the latest-runs stream may have switched to it already
                self.current_run_id = run_id
            consumer = consumer_of(self)
            if consumer is not None and self.current_run_id == run_id:
                self._follow(consumer, run_id)
        return run_id

    async def _run_to_resume(self, api: DurablyClient) -> str | None:
        """The job's newest running run, else its newest pending one (None on any error: resuming
        is a convenience, the page works without it)."""
        cls = self.__class__
        try:
            for status in (RunStatus.RUNNING, RunStatus.PENDING):
                runs = await api.get_runs(job_name=cls.job_name, status=status.value, limit=1)
                if runs:
                    return runs[0].id
        except DurablyError:
            return None
        return None

    async def _follow_latest(self, consumer: Consumer, api: DurablyClient) -> None:
        """Source: switch to every run of the job that is triggered or started, from anywhere;
        after a reconnect that could not resume (events were missed), to the job's newest running
        or pending run, if it has one."""
        async with api.subscribe_runs(self.__class__.job_name, types=[RUN_TRIGGER, RUN_START]) as events:
            async for event in events:
                if isinstance(event, StreamGap):
                    run_id = await self._run_to_resume(api)
                elif isinstance(event, (RunTrigger, RunStart)):
                    run_id = event.run_id
                else:
                    continue
                if run_id is not None:
                    consumer.post(functools.partial(_switch, consumer=consumer, run_id=run_id))


def _switch(state: Any, *, consumer: Consumer, run_id: str) -> None:
    """An update (with its run bound by `functools.partial`): show `run_id` from now on."""
    state._switch(consumer, run_id)


def field_errors(error: InvalidInputError) -> dict[str, str]:
    """Pydantic's errors by dotted field path ("rows.0.name"), the first message per field."""
    by_field: dict[str, str] = {}
    for detail in error.errors:
        path = ".".join(str(part) for part in detail.get("loc", ())) or "input"
        by_field.setdefault(path, str(detail.get("msg", "invalid")))
    return by_field
