"""`trigger_form`: a form generated from a job's input model, with errors shown under each field.

The fields come from the job's input JSON Schema (`_form_schema.form_fields`), are rendered with
their defaults as the inputs' initial (uncontrolled) values, and submit to the state's
`submit_form`, which converts the flat form data and triggers (see `_form_schema` for how each kind
of value is entered); every invalid field shows its error at once. Every input is named by its
field's dotted path ("rows", "address.city") and has the id `f"{form_id}-{path}"`, so browser tests
can fill it; the form's id defaults to `trigger-<job name>`. A list of objects is a sub-form per
item with "Add" and remove buttons; a row's inputs are named "<list>.<row key>.<member>" (the key
stays with its row; the default rows are keyed 0, 1, ...). The submit button is busy only while
the trigger request is on its way: another run can be started while one runs.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import Any

import reflex as rx
from reflex.vars import StringVar, Var

from .._form_schema import FormField, blank_row, form_fields, initial_rows, initial_value, option_text
from ..states import UseJobState

INPUT_TYPES = {"date": "date", "date-time": "datetime-local", "time": "time", "email": "email", "uri": "url"}
INPUT_MODES = {"integer": "numeric", "number": "decimal"}  # a text input, so a bad number reaches the state


def trigger_form(
    job_state: type[UseJobState], *, submit_label: str = "Trigger", attach: bool = True, **props: Any
) -> rx.Component:
    """A form that triggers the job of `job_state` (a `use_job` state) with the input it collects;
    for an untyped job, a single JSON textarea. `props` go to the `rx.form` (`id` names the inputs).
    The form attaches the state when it mounts, so the run it starts is followed; inside a
    component that attaches the state itself, pass `attach=False`."""
    if attach:
        props.setdefault("on_mount", job_state.attach)
    job = job_state.job
    fields = form_fields(job.definition.input_schema() if job is not None else None)
    form_id = props.pop("id", None) or f"trigger-{re.sub(r'[^A-Za-z0-9_-]+', '-', job_state.job_name)}"
    return rx.form(
        rx.vstack(
            *(_field(field, fields, job_state, form_id) for field in fields if len(field.keys) <= 1),
            _general_error(job_state, fields),
            rx.button(
                submit_label,
                type="submit",
                disabled=job_state.is_triggering,
                loading=job_state.is_triggering,
                class_name="durably-trigger",
            ),
            spacing="3",
            width="100%",
        ),
        id=form_id,
        on_submit=job_state.submit_form,
        **props,
    )


def _field(field: FormField, fields: list[FormField], state: type[UseJobState], form_id: str) -> rx.Component:
    if field.kind == "group":
        return _group(field, fields, state, form_id)
    if field.kind == "rows":
        return _rows(field, state, form_id)
    input_id = f"{form_id}-{field.path}"
    if field.kind == "boolean":
        control = rx.checkbox(field.label, name=field.path, id=input_id, default_checked=bool(initial_value(field)))
        label: rx.Component = rx.fragment()
    else:
        control = _control(field, input_id)
        label = rx.el.label(rx.text(_label_text(field), size="2", weight="medium"), html_for=input_id)
    return rx.vstack(
        label,
        control,
        _description(field),
        _errors(field, state),
        spacing="1",
        width="100%",
        class_name="durably-form-field",
    )


def _control(field: FormField, input_id: str) -> rx.Component:
    """The input for one value, named by its path and prefilled with its default."""
    common: dict[str, Any] = {"name": field.path, "id": input_id, "width": "100%"}
    initial = initial_value(field)
    if field.kind == "enum":
        return rx.select(
            [option_text(option) for option in field.options],
            placeholder="Choose…",
            **({"default_value": initial} if initial else {}),
            **common,
        )
    if field.kind == "list":
        placeholder = "One per line" + (f": {', '.join(map(option_text, field.options))}" if field.options else "")
        return rx.text_area(default_value=initial, placeholder=placeholder, rows="4", **common)
    if field.kind == "json":
        return rx.text_area(
            default_value=initial,
            placeholder="JSON",
            rows="5",
            style={"font_family": "var(--code-font-family)"},
            **common,
        )
    return rx.input(
        default_value=initial,
        type=INPUT_TYPES.get(field.format or "", "text"),
        input_mode=INPUT_MODES.get(field.kind),
        **common,
    )


def _rows(field: FormField, state: type[UseJobState], form_id: str) -> rx.Component:
    """A list of objects: one row of inputs per item, in the order of the state's row keys (the
    default rows until the user adds or removes one), each removable, and a button to add one."""
    defaults, blank = initial_rows(field), blank_row(field)
    form_rows = state.form_rows.to(dict)  # an object var (see `_errors`)
    keys = rx.cond(
        form_rows.contains(field.path), form_rows[field.path].to(list[int]), Var.create(list(range(len(defaults))))
    )
    errors = state.field_errors.to(dict)
    header = rx.hstack(
        *(rx.text(_label_text(member), size="1", weight="medium", flex="1") for member in field.members),
        rx.box(width="24px", flex_shrink="0"),
        width="100%",
        spacing="2",
    )

    def row(item: Var) -> rx.Component:
        key = item.to(int)
        prefix = f"{field.path}." + key.to_string()
        cells = []
        for member in field.members:
            name = prefix + f".{member.path}"
            initial = rx.cond(key < len(defaults), Var.create(defaults)[key].to(dict)[member.path], blank[member.path])
            cells.append(
                rx.vstack(
                    _member_control(member, name, form_id + "-" + name, initial),
                    rx.cond(errors[name], _error_text(errors[name]), rx.fragment()),
                    spacing="1",
                    flex="1",
                    min_width="0",
                )
            )
        remove = rx.icon_button(
            rx.icon("x", size=14),
            type="button",
            size="1",
            variant="ghost",
            color_scheme="gray",
            title="Remove this row",
            on_click=state.remove_form_row(field.path, key),  # type: ignore[operator]  # mypy reads an @rx.event handler as EventNamespace
            class_name="durably-remove-row",
            margin_top="6px",
        )
        return rx.vstack(
            rx.hstack(*cells, remove, width="100%", spacing="2", align="start"),
            rx.cond(errors[prefix], _error_text(errors[prefix]), rx.fragment()),
            spacing="1",
            width="100%",
            class_name="durably-form-row",
            data_row_key=key,
            key=key,  # the row keeps its inputs (uncontrolled) when a row above it goes
        )

    return rx.vstack(
        rx.text(_label_text(field), size="2", weight="medium"),
        _description(field),
        rx.cond(keys.length() > 0, header, rx.fragment()),
        rx.foreach(keys, row),
        rx.button(
            rx.icon("plus", size=14),
            "Add",
            type="button",
            size="1",
            variant="soft",
            on_click=state.add_form_row(field.path),  # type: ignore[operator]  # mypy reads an @rx.event handler as EventNamespace
            class_name="durably-add-row",
        ),
        _errors(field, state, nested=False),
        spacing="2",
        width="100%",
        class_name="durably-form-field durably-form-rows",
        id=f"{form_id}-{field.path}",
    )


def _member_control(member: FormField, name: Var, input_id: Var, initial: Var) -> rx.Component:
    """One row's input for `member`, named and prefilled through vars (the row's key is one)."""
    common: dict[str, Any] = {"name": name, "id": input_id, "width": "100%", "aria_label": member.label}
    if member.kind == "boolean":
        return rx.checkbox(name=name, id=input_id, default_checked=initial.bool(), margin_top="6px")
    if member.kind == "enum":
        return rx.select([option_text(option) for option in member.options], default_value=initial.to(str), **common)
    return rx.input(
        default_value=initial.to(str),
        type=INPUT_TYPES.get(member.format or "", "text"),
        input_mode=INPUT_MODES.get(member.kind),
        size="2",
        **common,
    )


def _group(group: FormField, fields: list[FormField], state: type[UseJobState], form_id: str) -> rx.Component:
    """A nested object: its members in a fieldset, its own errors (missing, not an object) under
    the legend."""
    members = [field for field in fields if field.parent == group.keys]
    return rx.card(
        rx.el.fieldset(
            rx.vstack(
                rx.el.legend(rx.text(_label_text(group), size="2", weight="bold")),
                _description(group),
                _errors(group, state),
                *(_field(member, fields, state, form_id) for member in members),
                spacing="2",
                width="100%",
            ),
            style={"border": "none", "margin": 0, "padding": 0, "min_width": 0},
        ),
        width="100%",
        id=f"{form_id}-{group.path}",
    )


def _label_text(field: FormField) -> str:
    return f"{field.label} *" if field.required else field.label


def _description(field: FormField) -> rx.Component:
    return rx.text(field.description, size="1", color_scheme="gray") if field.description else rx.fragment()


def _errors(field: FormField, state: type[UseJobState], *, nested: bool = True) -> rx.Component:
    """The field's error, and for a list or JSON input also its items' ("2: not an integer")
    (`nested=False`: the items show their own)."""
    # `.to(dict)`: the var is an object already; mypy, reading Reflex's overloads, would take it for a list.
    errors = state.field_errors.to(dict)
    message = errors[field.path]
    exact = rx.cond(message, _error_text(message), rx.fragment())
    if not field.owns_nested_errors or not nested:
        return exact
    prefix = f"{field.path}."
    nested = errors.entries().filter(lambda entry: entry[0].to(str).startswith(prefix))
    return rx.fragment(
        exact,
        rx.foreach(nested, lambda entry: _error_text(entry[0].to(str)[len(prefix) :] + ": " + entry[1].to(str))),
    )


def _general_error(state: type[UseJobState], fields: list[FormField]) -> rx.Component:
    """`error` when it is about the trigger itself (a refused or failed request), not about fields
    nor about how the run it started ended (a run view shows that); with field errors, only those no
    input shows (a model validator's, an unknown field's)."""

    def placed(key: StringVar) -> Var:
        exact = Var.create([field.path for field in fields]).contains(key)
        nested = [key.startswith(f"{field.path}.") for field in fields if field.owns_nested_errors]
        return functools.reduce(operator.or_, nested, exact)

    errors = state.field_errors.to(dict)  # an object var (see `_errors`)
    unplaced = errors.entries().filter(lambda entry: ~placed(entry[0].to(str)))
    return rx.cond(
        errors.keys().length() > 0,
        rx.foreach(unplaced, lambda entry: _callout(entry[0].to(str) + ": " + entry[1].to(str))),
        rx.cond(state.error & ~state.current_run_id, _callout(state.error.to(str)), rx.fragment()),
    )


def _error_text(message: Var) -> rx.Component:
    return rx.text(message, size="1", color_scheme="red", class_name="durably-field-error")


def _callout(message: Var) -> rx.Component:
    return rx.callout(message, icon="triangle-alert", color_scheme="red", size="1", class_name="durably-form-error")
