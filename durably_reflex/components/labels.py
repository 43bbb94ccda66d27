"""`label_chips`: a run's labels as small chips ("customer=acme"), each a filter or a link.

In a runs table a chip's click narrows the table's search to that label (`on_select(key, value)`);
on a run's page each chip links to the runs page searching for it (`href` + the chip's query).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx
from reflex.vars import ObjectVar, Var


def label_chips(labels: Var, *, on_select: Callable[[Var, Var], Any] | None = None) -> rx.Component:
    """The labels of a run (`labels`: an object var of key -> value), each chip calling
    `on_select(key, value)` when clicked."""

    def chip(pair: Var) -> rx.Component:
        entry = pair.to(list[str])  # a [key, value] entry of the labels
        key, value = entry[0], entry[1]
        return rx.badge(
            key + "=" + value,
            variant="outline",
            color_scheme="gray",
            radius="full",
            size="1",
            class_name="durably-label",
            data_key=key,
            data_value=value,
            title=("Show the runs labelled " + key + "=" + value) if on_select is not None else key + "=" + value,
            cursor="pointer" if on_select is not None else "default",
            on_click=on_select(key, value) if on_select is not None else None,
        )

    return rx.hstack(
        rx.foreach(labels.to(dict[str, str]), chip),
        spacing="1",
        wrap="wrap",
        class_name="durably-labels",
    )


def label_links(labels: Var, href: str) -> rx.Component:
    """A run's labels (`labels`: a list var of `{key, value, search}`, as a run view's `labels`),
    each linking to `href` + "?" + its search."""

    def link(label: ObjectVar) -> rx.Component:
        key, value = label["key"].to(str), label["value"].to(str)
        return rx.link(
            rx.badge(key + "=" + value, variant="outline", color_scheme="gray", radius="full", size="1"),
            href=href + "?" + label["search"].to(str),
            class_name="durably-label",
            data_key=key,
            data_value=value,
            title="Show the runs labelled " + key + "=" + value,
        )

    return rx.hstack(
        rx.foreach(labels.to(list[dict[str, str]]), link), spacing="1", wrap="wrap", class_name="durably-labels"
    )
