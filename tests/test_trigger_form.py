"""`trigger_form`: a job's input model as a form, the submitted form as the job's input.

The mapping is specified on `form_schema` (pure Python: schema -> fields, form data -> input and
errors keyed by the dotted paths pydantic uses), the state's `submit_form` on a plain object with
the state's fields, and the component by building and rendering it for a real `use_job` state.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from durably_reflex import InvalidInputError, create_durably, define_job
from durably_reflex._client import JobClient, create_durably_client
from durably_reflex._form_schema import (
    FormField,
    blank_row,
    form_fields,
    form_to_input,
    initial_rows,
    initial_value,
    input_name_errors,
    merge_errors,
)
from durably_reflex.components.trigger_form import trigger_form
from durably_reflex.states import UseJobState
from durably_reflex.states.hooks import use_job
from durably_reflex.states.job_state import field_errors


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    """Where the goods go."""

    city: str
    zip_code: int | None = None


class Row(BaseModel):
    name: str
    qty: int = 1


class ImportInput(BaseModel):
    title: str = Field(description="Shown in the run list")
    batch_size: int = 100
    ratio: float = 0.5
    dry_run: bool = False
    mode: Literal["append", "replace"] = "append"
    priority: Priority = Priority.LOW
    note: str | None = None
    tags: list[str] = []
    counts: list[int]
    address: Address
    billing: Address | None = None
    rows: list[Row] = []


SCHEMA = ImportInput.model_json_schema()
REQUIRED_ONLY = {"title": "March", "counts": "1", "address.city": "Oslo"}


def fields_by_path(schema: dict[str, Any] | None = SCHEMA) -> dict[str, FormField]:
    return {field.path: field for field in form_fields(schema)}


async def run_nothing(step: Any, input: Any) -> None:
    return None


import_rows = define_job(name="import-rows", input=ImportInput, run=run_nothing)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    engine = create_durably(f"sqlite:///{tmp_path / 'durably.db'}").register(import_rows=import_rows)
    return create_durably_client(engine, "http://127.0.0.1:9/api")


# -- schema -> fields -------------------------------------------------------------------------------------
def test_every_model_field_becomes_a_form_field_in_order_a_nested_model_a_group_followed_by_its_members() -> None:
    assert [(field.path, field.kind) for field in form_fields(SCHEMA)] == [
        ("title", "string"),
        ("batch_size", "integer"),
        ("ratio", "number"),
        ("dry_run", "boolean"),
        ("mode", "enum"),
        ("priority", "enum"),
        ("note", "string"),
        ("tags", "list"),
        ("counts", "list"),
        ("address", "group"),
        ("address.city", "string"),
        ("address.zip_code", "integer"),
        ("billing", "group"),
        ("billing.city", "string"),
        ("billing.zip_code", "integer"),
        ("rows", "rows"),  # a list of objects of scalars: repeatable rows of its members
    ]


def test_fields_without_a_default_are_required_by_their_parent_and_optional_ones_may_be_null() -> None:
    fields = fields_by_path()
    assert {path for path, field in fields.items() if field.required} == {
        "title", "counts", "address", "address.city", "billing.city",
    }  # fmt: skip
    assert fields["note"].nullable and fields["billing"].nullable and not fields["title"].nullable


def test_labels_and_descriptions_come_from_the_schema_else_from_the_field_name() -> None:
    fields = fields_by_path()
    assert (fields["title"].label, fields["title"].description) == ("Title", "Shown in the run list")
    assert fields["batch_size"].label == "Batch Size"  # pydantic's title
    assert fields["address"].label == "Address" and fields["address"].description == "Where the goods go."
    assert fields["billing"].label == "Billing"  # a $ref carries no title of its own


def test_enums_offer_their_values_and_lists_of_scalars_know_their_item_kind() -> None:
    fields = fields_by_path()
    assert fields["mode"].options == ("append", "replace")
    assert fields["priority"].options == ("low", "high")  # an Enum, through $ref
    assert (fields["tags"].item_kind, fields["counts"].item_kind) == ("string", "integer")


def test_defaults_prefill_the_inputs_as_text_lists_one_item_a_line_and_json_indented() -> None:
    class Defaults(BaseModel):
        size: int = 100
        ratio: float = 0.5
        on: bool = True
        mode: Literal["a", "b"] = "b"
        tags: list[str] = ["x", "y"]
        rows: list[Row] = [Row(name="r")]
        note: str | None = None
        address: Address = Address(city="Oslo")

    fields = fields_by_path(Defaults.model_json_schema())
    assert {path: initial_value(field) for path, field in fields.items() if field.kind != "group"} == {
        "size": "100",
        "ratio": "0.5",
        "on": True,
        "mode": "b",
        "tags": "x\ny",
        "rows": "",  # its rows are sub-forms
        "note": "",
        "address.city": "Oslo",  # a nested model's default fills in its members
        "address.zip_code": "",
    }


def test_refs_single_allof_wrappers_nullable_unions_and_type_lists_are_unwrapped() -> None:
    schema = {
        "type": "object",
        "definitions": {"Size": {"type": "integer", "title": "Size"}, "Mode": {"enum": ["a", "b"]}},
        "properties": {
            "size": {"allOf": [{"$ref": "#/definitions/Size"}], "default": 3, "description": "How many"},
            "mode": {"oneOf": [{"$ref": "#/definitions/Mode"}, {"type": "null"}]},
            "label": {"type": ["string", "null"]},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
        "required": ["mode"],
    }
    fields = fields_by_path(schema)
    assert (fields["size"].kind, fields["size"].default, fields["size"].description) == ("integer", 3, "How many")
    assert (fields["mode"].kind, fields["mode"].options, fields["mode"].nullable) == ("enum", ("a", "b"), True)
    assert (fields["label"].kind, fields["label"].nullable) == ("string", True)
    assert fields["either"].kind == "json"  # a real union: JSON says which


def test_a_recursive_model_is_a_group_once_then_json() -> None:
    class Node(BaseModel):
        value: int = 0
        next: Node | None = None

    class Tree(BaseModel):
        root: Node

    assert [(field.path, field.kind) for field in form_fields(Tree.model_json_schema())] == [
        ("root", "group"), ("root.value", "integer"), ("root.next", "json"),
    ]  # fmt: skip


def test_fields_are_named_by_alias_as_the_model_reads_and_reports_them() -> None:
    class Aliased(BaseModel):
        batch_size: int = Field(alias="batchSize")

    assert [field.path for field in form_fields(Aliased.model_json_schema())] == ["batchSize"]
    assert form_to_input(Aliased.model_json_schema(), {"batchSize": "5"}) == ({"batchSize": 5}, {})


# -- form data -> input ------------------------------------------------------------------------------------
def test_a_filled_form_becomes_nested_json_input_that_the_model_accepts() -> None:
    form = {
        "title": "March", "batch_size": "50", "ratio": "0.25", "dry_run": "on", "mode": "replace",
        "priority": "high", "note": "urgent", "tags": "a\nb", "counts": "1\n2\n3", "address.city": "Oslo",
        "address.zip_code": "150", "billing.city": "Bergen", "rows.0.name": "r1", "rows.0.qty": "2",
    }  # fmt: skip
    data, errors = form_to_input(SCHEMA, form, {"rows": [0]})
    assert errors == {}
    assert data == {
        "title": "March", "batch_size": 50, "ratio": 0.25, "dry_run": True, "mode": "replace", "priority": "high",
        "note": "urgent", "tags": ["a", "b"], "counts": [1, 2, 3], "address": {"city": "Oslo", "zip_code": 150},
        "billing": {"city": "Bergen"}, "rows": [{"name": "r1", "qty": 2}],
    }  # fmt: skip
    assert ImportInput.model_validate(data).billing == Address(city="Bergen")


def test_blank_fields_are_left_out_so_the_model_defaults_apply() -> None:
    form = {**REQUIRED_ONLY, "batch_size": "", "note": "  ", "tags": "", "rows": "", "address.zip_code": ""}
    data, errors = form_to_input(SCHEMA, form)
    # (no rows in a list of objects is its default, [], as the form shows it)
    assert (data, errors) == (
        {"title": "March", "dry_run": False, "counts": [1], "address": {"city": "Oslo"}, "rows": []}, {},
    )  # fmt: skip
    model = ImportInput.model_validate(data)
    assert (model.batch_size, model.note, model.tags, model.billing) == (100, None, [], None)


def test_a_blank_field_without_a_default_is_null_when_the_model_allows_null() -> None:
    class Deadline(BaseModel):
        days: int | None

    assert form_to_input(Deadline.model_json_schema(), {"days": ""}) == ({"days": None}, {})


def test_fields_left_at_their_defaults_are_sent_as_they_are_shown() -> None:
    form = {**REQUIRED_ONLY, "batch_size": "100", "mode": "append"}
    data, _ = form_to_input(SCHEMA, form)
    assert (data["batch_size"], data["mode"]) == (100, "append")


def test_a_checkbox_is_true_when_submitted_checked_and_false_when_absent() -> None:
    assert form_to_input(SCHEMA, {**REQUIRED_ONLY, "dry_run": "on"})[0]["dry_run"] is True
    assert form_to_input(SCHEMA, {**REQUIRED_ONLY, "dry_run": True})[0]["dry_run"] is True  # a ref's value
    assert form_to_input(SCHEMA, REQUIRED_ONLY)[0]["dry_run"] is False


def test_a_list_of_scalars_is_one_item_a_line_blank_lines_skipped() -> None:
    data, _ = form_to_input(SCHEMA, {**REQUIRED_ONLY, "tags": "red\n\n  blue \r\n", "counts": "10\n20"})
    assert (data["tags"], data["counts"]) == (["red", "blue"], [10, 20])


def test_an_optional_nested_object_is_sent_only_when_one_of_its_fields_is_filled() -> None:
    assert "billing" not in form_to_input(SCHEMA, {**REQUIRED_ONLY, "billing.city": ""})[0]
    data, _ = form_to_input(SCHEMA, {**REQUIRED_ONLY, "billing.zip_code": "5003"})
    assert data["billing"] == {"zip_code": 5003}
    with pytest.raises(ValidationError) as raised:  # then the model names what the object lacks
        ImportInput.model_validate(data)
    assert [error["loc"] for error in raised.value.errors()] == [("billing", "city")]


def test_a_required_nested_object_is_always_sent_so_the_model_names_its_missing_members() -> None:
    data, errors = form_to_input(SCHEMA, {"title": "March", "counts": "1"})
    assert (data["address"], errors) == ({}, {})
    with pytest.raises(InvalidInputError) as raised:
        import_rows.validate_input(data)
    assert field_errors(raised.value) == {"address.city": "Field required"}


def test_an_optional_nested_object_with_its_members_at_their_defaults_is_left_to_its_own_default() -> None:
    class Settings(BaseModel):
        retries: int = 3
        verbose: bool = False

    class Job(BaseModel):
        settings: Settings | None = None

    schema = Job.model_json_schema()
    assert form_to_input(schema, {"settings.retries": "3"}) == ({}, {})
    assert form_to_input(schema, {"settings.retries": "3", "settings.verbose": "on"}) == (
        {"settings": {"retries": 3, "verbose": True}}, {},
    )  # fmt: skip


# -- conversion errors --------------------------------------------------------------------------------------
def test_a_value_that_does_not_convert_is_an_error_keyed_by_its_field_path() -> None:
    form = {**REQUIRED_ONLY, "batch_size": "ten", "ratio": "half", "address.zip_code": "1.5", "dry_run": "maybe"}
    _, errors = form_to_input(SCHEMA, form)
    assert errors == {
        "batch_size": "Input should be a valid integer, unable to parse string as an integer",
        "ratio": "Input should be a valid number, unable to parse string as a number",
        "address.zip_code": "Input should be a valid integer, unable to parse string as an integer",
        "dry_run": "Input should be a valid boolean, unable to interpret input",
    }


def test_a_bad_list_item_is_keyed_by_its_index_among_the_items_as_the_model_keys_it() -> None:
    _, errors = form_to_input(SCHEMA, {**REQUIRED_ONLY, "counts": "1\n\nfive\n7\nnan"})
    assert errors == {
        "counts.1": "Input should be a valid integer, unable to parse string as an integer",
        "counts.3": "Input should be a valid integer, unable to parse string as an integer",
    }
    with pytest.raises(InvalidInputError) as raised:  # the model's own error for that item: the same key
        import_rows.validate_input({**form_to_input(SCHEMA, REQUIRED_ONLY)[0], "counts": [1, "five"]})
    assert list(field_errors(raised.value)) == ["counts.1"]


def test_bad_json_unknown_enum_values_and_infinite_numbers_are_errors_too() -> None:
    class Mixed(BaseModel):
        mode: Literal["append", "replace"] = "append"
        ratio: float = 0.5
        rows: list[dict[str, int]] = []  # no members to make rows of: JSON

    form = {"rows": "[{name: 1}]", "mode": "merge", "ratio": "inf"}
    data, errors = form_to_input(Mixed.model_json_schema(), form)
    assert errors["rows"].startswith("Invalid JSON: ")
    assert errors["mode"] == "Input should be 'append' or 'replace'"
    assert errors["ratio"] == "Input should be a finite number"
    assert not {"rows", "mode", "ratio"} & set(data)


def test_an_error_in_an_optional_nested_object_keeps_the_object_so_the_error_stays_visible() -> None:
    data, errors = form_to_input(SCHEMA, {**REQUIRED_ONLY, "billing.zip_code": "N/A"})
    assert data["billing"] == {} and list(errors) == ["billing.zip_code"]


def test_a_model_without_fields_has_no_fields_and_an_empty_input() -> None:
    class Nothing(BaseModel):
        pass

    assert form_fields(Nothing.model_json_schema()) == []
    assert form_to_input(Nothing.model_json_schema(), {}) == ({}, {})


# -- lists of objects: repeatable rows ------------------------------------------------------------------------
class Contact(BaseModel):
    name: str
    email: str = ""
    vip: bool = False


class Mailing(BaseModel):
    contacts: list[Contact] = [Contact(name="Ada", email="ada@example.com"), Contact(name="Alan")]


MAILING = Mailing.model_json_schema()


def test_a_list_of_objects_of_scalars_is_rows_of_its_members_else_json() -> None:
    class Nested(BaseModel):
        rows: list[ImportInput] = []  # members that are lists and objects: JSON

    [contacts] = form_fields(MAILING)
    assert (contacts.kind, [(m.path, m.kind, m.required) for m in contacts.members]) == (
        "rows", [("name", "string", True), ("email", "string", False), ("vip", "boolean", False)],
    )  # fmt: skip
    assert [field.kind for field in form_fields(Nested.model_json_schema())] == ["json"]


def test_the_default_items_are_the_first_rows_and_an_added_row_starts_from_the_members_defaults() -> None:
    [contacts] = form_fields(MAILING)
    assert initial_rows(contacts) == [
        {"name": "Ada", "email": "ada@example.com", "vip": False},
        {"name": "Alan", "email": "", "vip": False},
    ]
    assert blank_row(contacts) == {"name": "", "email": "", "vip": False}


def test_rows_become_the_items_in_the_order_of_their_keys_named_by_key() -> None:
    form = {"contacts.1.name": "Alan", "contacts.4.name": "Grace", "contacts.4.vip": "on", "contacts.0.name": "Ada"}
    data, errors = form_to_input(MAILING, form, {"contacts": [1, 4]})  # row 0 removed, row 4 added
    assert errors == {}
    assert data == {"contacts": [{"name": "Alan", "vip": False}, {"name": "Grace", "vip": True}]}
    assert form_to_input(MAILING, {"contacts.0.name": "Ada"}, {"contacts": []}) == ({"contacts": []}, {})


def test_without_row_keys_from_the_page_the_default_rows_are_read() -> None:
    data, _ = form_to_input(MAILING, {"contacts.0.name": "Ada", "contacts.1.name": "Alan", "contacts.2.name": "x"})
    assert [item["name"] for item in data["contacts"]] == ["Ada", "Alan"]


def test_a_rows_error_is_keyed_by_item_index_then_moved_onto_its_rows_inputs() -> None:
    rows = {"contacts": [3, 7]}
    _data, errors = form_to_input(MAILING, {"contacts.3.name": "Ada", "contacts.7.vip": "perhaps"}, rows)
    assert errors == {"contacts.1.vip": "Input should be a valid boolean, unable to interpret input"}
    with pytest.raises(ValidationError) as raised:  # the second row has no name: the model's error, same keying
        Mailing.model_validate({"contacts": [{"name": "Ada"}, {}]})
    assert [error["loc"] for error in raised.value.errors()] == [("contacts", 1, "name")]
    fields = form_fields(MAILING)
    named = input_name_errors({**errors, "contacts.1.name": "Field required", "contacts": "bad"}, fields, rows)
    assert named == {
        "contacts.7.vip": "Input should be a valid boolean, unable to interpret input",
        "contacts.7.name": "Field required",
        "contacts": "bad",
    }


def test_every_invalid_field_is_reported_at_once_conversion_and_model_errors_together() -> None:
    conversion = {"batch_size": "not an integer", "counts.1": "not an integer"}
    model = {
        "title": "too short",
        "counts": "Field required",
        "batch_size": "Field required",
        "address.city": "missing",
    }
    assert merge_errors(conversion, model) == {
        "batch_size": "not an integer",
        "counts.1": "not an integer",
        "title": "too short",
        "address.city": "missing",
    }


# -- an untyped job ------------------------------------------------------------------------------------------
def test_an_untyped_job_is_one_json_field_named_as_the_root_of_its_errors() -> None:
    [field] = form_fields(None)
    assert (field.path, field.kind) == ("input", "json")
    assert form_to_input(None, {"input": '{"rows": [1, 2]}'}) == ({"rows": [1, 2]}, {})
    assert form_to_input(None, {"input": ""}) == (None, {})
    assert list(form_to_input(None, {"input": "{"})[1]) == ["input"]


# -- the state's submit_form ---------------------------------------------------------------------------------
class FormView:
    """The fields `submit_form` writes, on a plain object; `_trigger` records what would be sent."""

    job: ClassVar[JobClient | None] = None
    submit_form = UseJobState.submit_form

    def __init__(self) -> None:
        self.current_run_id, self.status, self.output, self.error, self.progress = "run-0", "completed", 1, None, None
        self.logs: list[Any] = []
        self.run, self.steps, self.connection, self.field_errors = None, [], "open", {}
        self.form_rows: dict[str, list[int]] = {}
        self.triggered: list[Any] = []

    async def __aenter__(self) -> FormView:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _trigger(self, input: Any) -> str | None:
        self.triggered.append(input)
        return "run-1"


def form_view(job: JobClient | None) -> FormView:
    return type("ImportView", (FormView,), {"job": job})()


async def test_submit_form_with_a_field_that_does_not_convert_shows_it_and_creates_no_run(client: Any) -> None:
    view = form_view(client.import_rows)
    await view.submit_form({**REQUIRED_ONLY, "batch_size": "ten"})
    assert view.triggered == []
    assert view.field_errors == {"batch_size": "Input should be a valid integer, unable to parse string as an integer"}
    assert (view.error, view.status, view.current_run_id) == ("Invalid input", None, None)


async def test_submit_form_shows_every_invalid_field_at_once_and_creates_no_run(client: Any) -> None:
    view = form_view(client.import_rows)
    await view.submit_form({"title": "March", "batch_size": "ten", "address.city": ""})
    assert view.triggered == []
    assert set(view.field_errors) == {"batch_size", "counts", "address.city"}


async def test_submit_form_shows_a_rows_error_on_the_input_of_its_row(client: Any) -> None:
    view = form_view(client.import_rows)
    view.form_rows = {"rows": [5, 9]}
    await view.submit_form({**REQUIRED_ONLY, "rows.5.name": "a", "rows.9.qty": "two"})
    assert view.triggered == []
    assert view.field_errors == {
        "rows.9.qty": "Input should be a valid integer, unable to parse string as an integer",
        "rows.9.name": "Field required",
    }


async def test_submit_form_triggers_with_the_converted_input(client: Any) -> None:
    view = form_view(client.import_rows)
    await view.submit_form({**REQUIRED_ONLY, "tags": "a\nb"})
    assert view.triggered == [
        {"title": "March", "dry_run": False, "tags": ["a", "b"], "counts": [1], "address": {"city": "Oslo"}, "rows": []}
    ]


async def test_submit_form_of_an_untyped_job_sends_the_parsed_json() -> None:
    view = form_view(None)
    await view.submit_form({"input": '{"n": 1}'})
    assert view.triggered == [{"n": 1}]


# -- the component -------------------------------------------------------------------------------------------
def test_trigger_form_renders_a_named_input_per_field_with_errors_from_the_state(client: Any) -> None:
    state = use_job(client.import_rows)
    form = trigger_form(state, submit_label="Import")
    form.render()
    page = str(form)
    for field in form_fields(SCHEMA):
        assert f'id:"trigger-import-rows-{field.path}"' in page
        if field.kind == "rows":  # a row's inputs: named by the list, the row's key and the member
            assert '(("rows."+(JSON.stringify(item_rx_state_)))+".qty")' in page
        elif field.kind != "group":
            assert f'name:"{field.path}"' in page
            assert f'field_errors_rx_state_?.["{field.path}"]' in page
    assert '"Import"' in page and 'defaultValue:"100"' in page


def test_trigger_form_takes_its_id_for_the_inputs_and_an_untyped_job_gets_one_json_textarea(client: Any) -> None:
    form = trigger_form(use_job(client, "import-rows"), id="quick")
    form.render()
    page = str(form)
    assert 'id:"quick-input"' in page and 'name:"input"' in page and "RadixThemesTextArea" in page
