"""`signal_form`: for a run that waits for a signal (an approval, say), a form to send it.

Shown while the run a run view follows is `pending` and waits for a signal (`waiting_for.kind ==
"signal"`), and hidden once this tab has sent it (the run then resumes, and its view says so). The
form's fields come from the payload model the run's job declares for that signal
(`define_job(signals={"approval": Approval})`, through `_form_schema`, as the trigger form's from a
job's input; a list of objects is entered as JSON here); a signal without a declared model is one
JSON field. Every invalid field shows its error under its input at once; a refused send (already
sent, the run has ended, not allowed) shows the server's reason.

The forms are made when the page is compiled, one per job and declared signal the state's client
knows, and the one matching the run's job and signal is shown. Each form's id is
`signal-<job>-<signal>` (`signal-json` for the JSON one), its inputs' ids that followed by `-<field
path>`; the submit button has the class `durably-send-signal`.
"""

from __future__ import annotations

import re
from typing import Any

import reflex as rx
from reflex.vars import Var

from .._form_schema import FormField, form_fields, initial_value
from ..states.run_state import RunViewState
from ..states.signal_state import JOB_INPUT, RUN_INPUT, SIGNAL_INPUT, UseSignalState
from .trigger_form import _control, _description, _label_text


def signal_form(
    signals: type[UseSignalState], run: type[RunViewState], *, submit_label: str = "Send", **props: Any
) -> rx.Component:
    """The form to send the signal that `run`'s run waits for, through `signals` (a `use_signal`
    state); nothing while it waits for none. `props` go to the card around it. It attaches no state:
    the run view (`run_detail`, say) follows the run."""
    record = run.run.to(dict)
    waiting = record["waiting_for"].to(dict)
    run_id, job_name, name = run.current_run_id.to(str), record["job_name"].to(str), waiting["name"].to(str)
    key = run_id + "/" + name
    forms = [
        (job, signal, _form(signals, form_fields(schema, repeatable_rows=False), _form_id(job, signal), key))
        for job, by_signal in sorted(signals.signal_schemas.items())
        for signal, schema in sorted(by_signal.items())
    ]
    json_form = _form(signals, form_fields(None), "signal-json", key)
    chosen = json_form
    for job, signal, form in reversed(forms):
        chosen = rx.cond((job_name == job) & (name == signal), form, chosen)
    hidden = rx.fragment(
        rx.el.input(type="hidden", name=RUN_INPUT, value=run_id),
        rx.el.input(type="hidden", name=JOB_INPUT, value=job_name),
        rx.el.input(type="hidden", name=SIGNAL_INPUT, value=name),
    )
    waits_for_signal = (run.status == "pending") & (waiting["kind"].to(str) == "signal")
    props.setdefault("width", "100%")
    return rx.cond(
        waits_for_signal & ~signals.sent.contains(key),
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.icon("hand", size=16),
                    rx.text('Send the signal "', name, '" to let the run go on', weight="medium", size="2"),
                    align="center",
                ),
                rx.form(hidden, chosen, on_submit=signals.submit_form, reset_on_submit=False, width="100%"),
                spacing="3",
                width="100%",
            ),
            class_name="durably-signal-form",
            data_signal=name,
            **props,
        ),
        rx.cond(
            signals.sent.contains(key) & (run.status == "pending"),
            rx.callout(signals.message, icon="check", color_scheme="green", size="1", class_name="durably-signal-sent"),
            rx.fragment(),
        ),
    )


def _form_id(job: str, signal: str) -> str:
    return "signal-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{job}-{signal}")


def _form(signals: type[UseSignalState], fields: list[FormField], form_id: str, key: Var[str]) -> rx.Component:
    """The inputs of one payload model (its groups as fieldsets), its errors, and the submit button."""
    mine = signals.form_key == key
    return rx.vstack(
        *(_field(field, fields, signals, form_id, mine) for field in fields if len(field.keys) <= 1),
        rx.cond(
            mine & signals.error.to(bool),
            rx.callout(
                signals.error.to(str),
                icon="triangle-alert",
                color_scheme="red",
                size="1",
                class_name="durably-form-error",
            ),
            rx.fragment(),
        ),
        rx.button(
            "Send",
            type="submit",
            disabled=signals.is_sending,
            loading=signals.is_sending,
            class_name="durably-send-signal",
        ),
        spacing="3",
        width="100%",
        id=form_id,
    )


def _field(
    field: FormField, fields: list[FormField], signals: type[UseSignalState], form_id: str, mine: Var[bool]
) -> rx.Component:
    input_id = f"{form_id}-{field.path}"
    errors = signals.field_errors.to(dict)
    error = rx.cond(
        mine & errors[field.path].to(bool),
        rx.text(errors[field.path].to(str), size="1", color_scheme="red", class_name="durably-field-error"),
        rx.fragment(),
    )
    if field.kind == "group":
        members = [member for member in fields if member.parent == field.keys]
        return rx.card(
            rx.vstack(
                rx.text(_label_text(field), size="2", weight="bold"),
                _description(field),
                error,
                *(_field(member, fields, signals, form_id, mine) for member in members),
                spacing="2",
                width="100%",
            ),
            width="100%",
            id=input_id,
        )
    if field.kind == "boolean":
        control = rx.checkbox(field.label, name=field.path, id=input_id, default_checked=bool(initial_value(field)))
        label: rx.Component = rx.fragment()
    else:
        control = _control(field, input_id)
        label = rx.el.label(rx.text(_label_text(field), size="2", weight="medium"), html_for=input_id)
    return rx.vstack(
        label, control, _description(field), error, spacing="1", width="100%", class_name="durably-form-field"
    )
