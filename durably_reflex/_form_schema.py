"""A job's input JSON Schema as form fields, and a submitted form back into the job's input.

Pure Python (no Reflex), so the mapping is specified by tests without a browser: `trigger_form`
renders `form_fields(schema)`, the browser submits flat data named by the fields' dotted paths, and
`form_to_input` nests it again. Conversion errors are keyed by the dotted paths pydantic uses
("rows.0.name", "n"), so they show under the same inputs as the model's own validation errors.

How values are entered:
- strings, numbers, integers: a text input; enums: a select; booleans: a checkbox;
- a list of scalars: a textarea, one item per line (blank lines skipped);
- a nested object: a group of the fields above, its members named "parent.member";
- a list of objects whose members are all scalars (`rows`): repeatable sub-forms, one row per item,
  rows added and removed in the page (a form without rows, `repeatable_rows=False`, takes it as JSON). A row has a key that stays with it (the page keeps the keys in
  order), and its inputs are named "list.<key>.member"; errors are keyed by item index as pydantic
  keys them ("list.2.member"), and `input_name_errors` moves them onto the row's inputs;
- anything else (other lists of objects, dicts, unions, tuples, recursive models): JSON in a textarea.

A blank field is left out, so the model's default applies (or pydantic reports it as required); a
blank field with no default is null when the model allows null. An optional nested object is sent
only when one of its fields differs from its default, so leaving it alone keeps it unset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

FieldKind = Literal["string", "integer", "number", "boolean", "enum", "list", "json", "group", "rows"]
SCALAR_KINDS: frozenset[str] = frozenset({"string", "integer", "number", "boolean", "enum"})
ROOT_PATH = "input"  # an untyped (or non-object) input is one JSON field, named as pydantic's root error

_OMIT = object()  # a blank field: left out of the input

# pydantic's wording, so a conversion error reads like the model's own error for the same field
NOT_A_BOOLEAN = "Input should be a valid boolean, unable to interpret input"
NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"
NOT_A_NUMBER = "Input should be a valid number, unable to parse string as a number"
NOT_FINITE = "Input should be a finite number"


@dataclass(frozen=True)
class FormField:
    """One input of the form, or a `group` (a nested object) whose members follow it in the list."""

    keys: tuple[str, ...]  # where the value goes in the input; () is the whole input
    label: str
    kind: FieldKind
    required: bool = False  # required by its parent object (a blank one gets "Field required")
    nullable: bool = False
    description: str | None = None
    has_default: bool = False
    default: Any = None  # JSON, as in the schema (a group's default prefills its members)
    options: tuple[Any, ...] = ()  # allowed values of an enum, or of a list's items
    item_kind: FieldKind | None = None  # a list's items, entered one per line
    format: str | None = None  # the JSON Schema string format ("date", "email", ...)
    members: tuple[FormField, ...] = ()  # `rows`: one item's fields, keyed within the item

    @property
    def path(self) -> str:
        """The form field's name and error key: dotted keys, as pydantic's error locations."""
        return ".".join(self.keys) or ROOT_PATH

    @property
    def parent(self) -> tuple[str, ...]:
        return self.keys[:-1]

    @property
    def owns_nested_errors(self) -> bool:
        """Errors below this path ("rows.0.name") belong to this input, as it holds the whole value."""
        return self.kind in ("list", "json", "rows")

    @property
    def default_rows(self) -> list[dict[str, Any]]:
        """`rows`: the items its default holds (the rows a form starts with, keyed 0, 1, ...)."""
        if self.kind != "rows" or not isinstance(self.default, list):
            return []
        return [item if isinstance(item, dict) else {} for item in self.default]

    def row_input(self, key: int | str, member: FormField) -> str:
        """`rows`: the name of one row's input for `member` ("list.<key>.member")."""
        return f"{self.path}.{key}.{member.path}"


class _InvalidField(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


# -- schema -> fields ---------------------------------------------------------------------------------
def form_fields(schema: Mapping[str, Any] | None, *, repeatable_rows: bool = True) -> list[FormField]:
    """The form's fields in order, each group followed by its members (None: an untyped job).
    `repeatable_rows=False`: a list of objects is one JSON field, for a form that keeps no rows."""
    if schema is None:
        return [FormField((), "Input (JSON)", "json")]
    node, _, refs = _resolve(schema, schema)
    if _kind(node, schema)[0] != "group":
        return [FormField((), node.get("title") or "Input", "json", required=True, description=node.get("description"))]
    return list(_members(node, (), schema, None, refs, repeatable_rows))


def _members(
    node: Mapping[str, Any],
    keys: tuple[str, ...],
    root: Mapping[str, Any],
    default: Any,
    seen: frozenset[str],
    repeatable_rows: bool = True,
) -> Iterator[FormField]:
    required = set(node.get("required", ()))
    for name, prop in node.get("properties", {}).items():
        resolved, nullable, refs = _resolve(prop, root)
        has_default, value = "default" in resolved, resolved.get("default")
        if isinstance(default, dict) and name in default:  # the parent's default fills in its members
            has_default, value = True, default[name]
        kind, options, item_kind = _kind(resolved, root)
        if kind == "group" and refs & seen:  # a recursive model: no end to its fields
            kind = "json"
        members = _row_members(resolved, root) if kind == "json" and repeatable_rows else ()
        if members:
            kind = "rows"
        field = FormField(
            keys=(*keys, name),
            label=prop.get("title") or _humanize(name),
            kind=kind,
            required=name in required,
            nullable=nullable,
            description=resolved.get("description"),
            has_default=has_default,
            default=value,
            options=options,
            item_kind=item_kind,
            format=resolved.get("format"),
            members=members,
        )
        yield field
        if kind == "group":
            yield from _members(resolved, field.keys, root, value, seen | refs, repeatable_rows)


def _row_members(node: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[FormField, ...]:
    """An array of objects whose members are all scalars: those members (else none: JSON it is)."""
    if node.get("type") != "array" or not isinstance(node.get("items"), dict) or "prefixItems" in node:
        return ()
    item, _, refs = _resolve(node["items"], root)
    if item.get("type") != "object" or not item.get("properties"):
        return ()
    members = tuple(_members(item, (), root, None, refs))
    return members if all(member.kind in SCALAR_KINDS for member in members) else ()


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[dict[str, Any], bool, frozenset[str]]:
    """The schema a property stands for: `$ref`s followed, single `allOf` wrappers and nullable
    `anyOf`/`oneOf`/type lists unwrapped (the outer keys, such as `default`, win). Returns it with
    whether null is allowed and the refs followed (to stop at recursive models)."""
    current, nullable, refs = dict(node), False, set[str]()
    while True:
        if "$ref" in current:
            ref = current.pop("$ref")
            if ref in refs:
                raise ValueError(f"circular $ref {ref}")
            refs.add(ref)
            current = {**_pointer(root, ref), **current}
            continue
        all_of = current.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            current = {**all_of[0], **{k: v for k, v in current.items() if k != "allOf"}}
            continue
        key = "anyOf" if "anyOf" in current else "oneOf"
        variants = current.get(key)
        if isinstance(variants, list):
            others = [variant for variant in variants if variant.get("type") != "null"]
            nullable = nullable or len(others) < len(variants)
            if len(others) == 1:
                current = {**others[0], **{k: v for k, v in current.items() if k != key}}
                continue
        types = current.get("type")
        if isinstance(types, list):
            others = [kind for kind in types if kind != "null"]
            nullable = nullable or len(others) < len(types)
            current["type"] = others[0] if len(others) == 1 else others
        return current, nullable, frozenset(refs)


def _pointer(root: Mapping[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $refs are supported, got {ref}")
    target: Any = root
    for part in filter(None, ref[1:].split("/")):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def _kind(node: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[FieldKind, tuple[Any, ...], FieldKind | None]:
    """(kind, enum options, list item kind) of a resolved schema."""
    if "enum" in node or "const" in node:
        values = node["enum"] if "enum" in node else [node["const"]]
        return "enum", tuple(value for value in values if value is not None), None
    kind = node.get("type")
    if kind in ("string", "integer", "number", "boolean"):
        return kind, (), None
    if kind == "object" and "properties" in node:
        return "group", (), None
    if kind == "array" and isinstance(node.get("items"), dict) and "prefixItems" not in node:
        item, _, _ = _resolve(node["items"], root)
        item_kind, options, _ = _kind(item, root)
        if item_kind in SCALAR_KINDS:
            return "list", options, item_kind
    return "json", (), None


def _humanize(name: str) -> str:
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


# -- what the inputs show first ------------------------------------------------------------------------
def option_text(value: Any) -> str:
    """How an enum value is shown and submitted (strings as they are, other values as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def initial_value(field: FormField) -> str | bool:
    """The input's initial content: the default as text (a checkbox: whether it starts checked)."""
    if field.kind == "boolean":
        return field.default is True
    if field.kind == "rows":
        return ""  # its rows are sub-forms (`initial_rows`)
    if not field.has_default or field.default is None:
        return ""
    if field.kind == "list" and isinstance(field.default, list):
        return "\n".join(option_text(item) for item in field.default)
    if field.kind == "json":
        return json.dumps(field.default, indent=2)
    return option_text(field.default)


def initial_rows(field: FormField) -> list[dict[str, str | bool]]:
    """`rows`: each default row's inputs' initial content, by member path."""
    return [
        {
            member.path: initial_value(
                FormField(member.keys, member.label, member.kind, has_default=True, default=row[member.path])
                if member.path in row
                else member
            )
            for member in field.members
        }
        for row in field.default_rows
    ]


def blank_row(field: FormField) -> dict[str, str | bool]:
    """`rows`: the inputs' initial content in a row added in the page (each member's default)."""
    return {member.path: initial_value(member) for member in field.members}


def row_keys(field: FormField, rows: Mapping[str, list[int]] | None) -> list[int]:
    """`rows`: the keys of its rows in order: as the page keeps them, else its default rows'."""
    if rows is not None and field.path in rows:
        return list(rows[field.path])
    return list(range(len(field.default_rows)))


# -- form data -> input --------------------------------------------------------------------------------
def form_to_input(
    schema: Mapping[str, Any] | None,
    form_data: Mapping[str, Any],
    rows: Mapping[str, list[int]] | None = None,
    *,
    repeatable_rows: bool = True,
) -> tuple[Any, dict[str, str]]:
    """The job input (or any value the schema describes: a signal's payload) from the browser's
    form data (keyed by field path), and the conversion errors by field path ("n", "tags.2"). With
    errors the value is incomplete and must not be sent. `rows`: the row keys of each `rows` field,
    in order (see `row_keys`); `repeatable_rows` as for `form_fields`."""
    fields = form_fields(schema, repeatable_rows=repeatable_rows)
    values: dict[tuple[str, ...], Any] = {}
    touched: list[tuple[str, ...]] = []  # fields whose value is not just their default
    errors: dict[str, str] = {}
    for field in fields:
        if field.kind == "group":
            continue
        try:
            if field.kind == "rows":
                value = _rows(field, row_keys(field, rows), form_data, errors)
            else:
                value = _convert(field, form_data.get(field.path))
        except _InvalidField as problem:
            errors.update(problem.errors)
            touched.append(field.keys)
            continue
        if value is _OMIT:
            continue
        values[field.keys] = value
        if not (field.has_default and value == field.default):
            touched.append(field.keys)
    if fields and fields[0].keys == ():  # the whole input is one JSON field
        return values.get(()), errors
    present: set[tuple[str, ...]] = {()}
    for field in fields:  # a group is there when its parent is, and it is required or a member was filled in
        if (
            field.kind == "group"
            and field.parent in present
            and (field.required or any(keys[: len(field.keys)] == field.keys for keys in touched))
        ):
            present.add(field.keys)
    result: dict[str, Any] = {}
    for field in fields:  # in order, so a group's dict is there before its members
        if field.parent not in present:
            continue
        if field.keys in present:
            _place(result, field.keys, {})
        elif field.keys in values:
            _place(result, field.keys, values[field.keys])
    return result, errors


def _rows(field: FormField, keys: list[int], form_data: Mapping[str, Any], errors: dict[str, str]) -> Any:
    """One item per row, in the rows' order. A member that does not convert is left out of its
    item and its error added to `errors`, keyed by the item's index as pydantic keys them: the
    model still sees the other rows and members, so their errors show at the same time.
    No rows for an optional list whose default is not a list (None, say): left out, so it applies."""
    if not keys and not field.required and not isinstance(field.default, list):
        return _OMIT
    items = []
    for index, key in enumerate(keys):
        item: dict[str, Any] = {}
        for member in field.members:
            try:
                value = _convert(member, form_data.get(field.row_input(key, member)))
            except _InvalidField as problem:
                errors.update({f"{field.path}.{index}.{path}": message for path, message in problem.errors.items()})
                continue
            if value is not _OMIT:
                item[member.path] = value
        items.append(item)
    return items


def merge_errors(conversion: Mapping[str, str], model: Mapping[str, str]) -> dict[str, str]:
    """Every error of a form at once: the conversion errors, and the model's errors about the other
    fields (the model saw a converted value missing, so what it says there is about the gap)."""

    def overlaps(path: str) -> bool:
        return any(path == key or path.startswith(f"{key}.") or key.startswith(f"{path}.") for key in conversion)

    return {**{path: message for path, message in model.items() if not overlaps(path)}, **conversion}


def input_name_errors(
    errors: Mapping[str, str], fields: list[FormField], rows: Mapping[str, list[int]] | None = None
) -> dict[str, str]:
    """Errors keyed by the input that shows them: a `rows` item's index ("list.2.name") becomes its
    row's key ("list.<key>.name"); other paths are the inputs' names already."""
    by_path = {field.path: field for field in fields if field.kind == "rows"}
    named: dict[str, str] = {}
    for path, message in errors.items():
        for prefix, field in by_path.items():
            head, _, rest = path.removeprefix(f"{prefix}.").partition(".")
            keys = row_keys(field, rows)
            if path.startswith(f"{prefix}.") and head.isdigit() and int(head) < len(keys):
                path = f"{prefix}.{keys[int(head)]}" + (f".{rest}" if rest else "")
                break
        named[path] = message
    return named


def _place(target: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def _convert(field: FormField, raw: Any) -> Any:
    if field.kind == "boolean":  # an unchecked box submits nothing
        checked = False if raw is None or raw == "" else _scalar("boolean", raw, (), field.path)
        return _OMIT if not checked and field.has_default and field.default is None else checked
    text = "" if raw is None else str(raw)
    if not text.strip():
        return None if field.nullable and not field.has_default else _OMIT
    if field.kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise _InvalidField({field.path: f"Invalid JSON: {error}"}) from None
    if field.kind == "list":
        return _list(field, text)
    return _scalar(field.kind, text, field.options, field.path)


def _list(field: FormField, text: str) -> list[Any]:
    """One item a line; errors keyed by the item's index, as pydantic keys them."""
    items, errors = [], {}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        try:
            items.append(_scalar(field.item_kind or "string", line, field.options, f"{field.path}.{index}"))
        except _InvalidField as problem:
            errors.update(problem.errors)
    if errors:
        raise _InvalidField(errors)
    return items


def _scalar(kind: FieldKind, raw: Any, options: tuple[Any, ...], path: str) -> Any:
    """One value from its text, or `_InvalidField` with pydantic's wording of the problem."""
    if kind == "boolean":
        text = str(raw).strip().lower()
        if text in ("on", "true", "1", "yes"):
            return True
        if text in ("off", "false", "0", "no"):
            return False
        raise _InvalidField({path: NOT_A_BOOLEAN})
    if kind == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            raise _InvalidField({path: NOT_AN_INTEGER}) from None
    if kind == "number":
        try:
            number = float(raw.strip())
        except ValueError:
            raise _InvalidField({path: NOT_A_NUMBER}) from None
        if not math.isfinite(number):
            raise _InvalidField({path: NOT_FINITE})
        return number
    if kind == "enum":
        for option in options:
            if option_text(option) == raw.strip():
                return option
        raise _InvalidField({path: f"Input should be {_alternatives(options)}"})
    return raw


def _alternatives(options: tuple[Any, ...]) -> str:
    texts = [repr(option) if isinstance(option, str) else option_text(option) for option in options]
    return texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} or {texts[-1]}"
