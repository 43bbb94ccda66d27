"""`use_signal`: send signals to runs that wait for them (approvals, say), from a page.

A run waiting in `step.wait_for_signal(name)` is `pending` with `waitingFor: {"kind": "signal",
"name": ...}`. The `signal_form` component shows, for the run a run view follows, a form for the
signal it waits for, built from the payload model its job declares (`define_job(signals=...)`): this
state turns the submitted form into the payload (`_form_schema`, as the trigger form does for a
job's input), checks it against that model where the client knows the job (a client from
`create_durably_client(durably)`), and sends it (`POST /signal`). A signal the job declares no
model for is entered as JSON. Every invalid field shows its error at once (`field_errors`, by field
path, for the form `form_key` names); a refused send (already sent, the run has finished, not
allowed) leaves its reason in `error`.

    approvals = use_signal(client)
    run_view = use_job_run(client)
    rx.vstack(run_detail(run_view, actions), signal_form(approvals, run_view))
"""

from __future__ import annotations

from typing import Any, ClassVar

import reflex as rx

from .._client import DurablyClient, TypedDurablyClient
from .._errors import DurablyError, InvalidInputError
from .._form_schema import form_to_input, merge_errors
from .._jobs import JobDefinition
from .base import DurablyState, HeadersFunction
from .hooks import configured_mixin, new_state
from .job_state import field_errors

# The form's hidden inputs: which run, job and signal a submission is for (no model field is named so).
RUN_INPUT = "__durably_run_id"
JOB_INPUT = "__durably_job_name"
SIGNAL_INPUT = "__durably_signal"

SignalSchemas = dict[str, dict[str, dict[str, Any]]]  # job name -> signal name -> payload JSON Schema


def form_key(run_id: str, name: str) -> str:
    """What names one run's form for one signal (in `form_key` and `sent`)."""
    return f"{run_id}/{name}"


class UseSignalState(DurablyState, mixin=True):
    """`use_signal`: `send(run_id, name, payload)`, `submit_form(form_data)` for a `signal_form`."""

    # -- configuration (set by `use_signal`) ------------------------------------------------------
    signal_schemas: ClassVar[SignalSchemas] = {}
    jobs: ClassVar[dict[str, JobDefinition]] = {}  # by job name: payloads are checked here first

    # -- what the UI shows ------------------------------------------------------------------------
    field_errors: rx.Field[dict[str, str]] = rx.field(default_factory=dict)  # field path -> message
    form_key: rx.Field[str] = rx.field("")  # the form (run id / signal) `field_errors` and `error` are about
    error: rx.Field[str | None] = rx.field(None)
    is_sending: rx.Field[bool] = rx.field(False)
    sent: rx.Field[list[str]] = rx.field(default_factory=list)  # form keys of the signals this tab sent
    message: rx.Field[str] = rx.field("")  # what the last signal sent was

    @rx.event(background=True)
    async def send(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send the signal `name` with `payload` to the run `run_id`."""
        await self._send(run_id, name, payload, None)

    @rx.event(background=True)
    async def submit_form(self, form_data: dict[str, Any]) -> None:
        """Send the signal of a `signal_form` submission: its hidden inputs name the run, its job
        and the signal; its other inputs (named by field path) become the payload."""
        data = dict(form_data)
        run_id, job_name, name = (str(data.pop(key, "") or "") for key in (RUN_INPUT, JOB_INPUT, SIGNAL_INPUT))
        schema = self.__class__.signal_schemas.get(job_name, {}).get(name)
        payload, errors = form_to_input(schema, data, repeatable_rows=False)
        definition = self.__class__.jobs.get(job_name)
        if definition is not None and not errors:
            try:
                definition.validate_signal(name, payload)
            except InvalidInputError as error:
                errors = merge_errors(errors, field_errors(error))
        if errors:
            async with self:
                self.form_key, self.error, self.message = form_key(run_id, name), "Invalid payload", ""
                self.field_errors = dict(errors)
            return
        await self._send(run_id, name, payload, job_name)

    # -- internals --------------------------------------------------------------------------------
    async def _send(self, run_id: str, name: str, payload: Any, job_name: str | None) -> None:
        key = form_key(run_id, name)
        async with self:
            self.form_key, self.field_errors, self.error, self.message = key, {}, None, ""
            self.is_sending = True
            api = self.api()
        try:
            await api.signal(run_id, name, payload)
        except InvalidInputError as error:
            async with self:
                self.is_sending, self.error, self.field_errors = False, str(error), field_errors(error)
            return
        except DurablyError as error:
            async with self:
                self.is_sending, self.error = False, str(error)
            return
        async with self:
            self.is_sending = False
            self.sent = [*self.sent[-99:], key]
            self.message = f'Sent "{name}" to run {run_id}'


def signal_schemas_of(client: DurablyClient) -> tuple[SignalSchemas, dict[str, JobDefinition]]:
    """The declared signal payload schemas (and the definitions) of a typed client's jobs; none for
    an untyped one (its forms take JSON)."""
    if not isinstance(client, TypedDurablyClient):
        return {}, {}
    definitions = {job.definition.name: job.definition for job in client.jobs.values()}
    return {name: definition.signal_schemas() for name, definition in definitions.items()}, definitions


def use_signal_state(
    client: DurablyClient,
    *,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseSignalState]:
    """A mixin of `UseSignalState` for the jobs `client` knows (a typed client: their declared
    signals' payload models give the forms their fields)."""
    schemas, definitions = signal_schemas_of(client)
    return configured_mixin(
        UseSignalState,
        "signal",
        client=client,
        signal_schemas=schemas,
        jobs=definitions,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


def use_signal(client: DurablyClient, *, name: str | None = None, **options: Any) -> type[UseSignalState]:
    """`use_signal`: a new state to send signals to waiting runs (see `UseSignalState`)."""
    return new_state(use_signal_state(client, **options), "signal", name)
