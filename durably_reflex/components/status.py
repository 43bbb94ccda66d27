"""`status_badge` and `run_progress`: the two small pieces every run view shows."""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars.base import Var

# Radix colours per run status: calm for waiting, blue while working, green/red/orange once settled.
STATUS_COLORS: dict[str, str] = {
    "pending": "gray",
    "running": "blue",
    "completed": "green",
    "failed": "red",
    "cancelled": "orange",
}


def status_badge(status: Var[str] | Var[str | None] | str | None, **props: Any) -> rx.Component:
    """A coloured badge for a run status ("—" when there is none yet)."""
    status_var = Var.create(status)
    color = rx.match(status_var, *STATUS_COLORS.items(), "gray")
    props.setdefault("variant", "soft")
    props.setdefault("radius", "full")
    return rx.badge(
        rx.cond(status_var == "running", rx.spinner(size="1"), rx.fragment()),
        rx.cond(status_var, status_var, "—"),
        color_scheme=color,
        class_name="durably-status",
        data_status=rx.cond(status_var, status_var, ""),
        **props,
    )


def run_progress(
    percent: Var[int | None] | Var[int] | int | None,
    message: Var[str] | str | None = None,
    **props: Any,
) -> rx.Component:
    """A progress bar: filled to `percent` (0-100), or indeterminate when the job gave no total;
    with the job's progress message beside it when there is one."""
    percent_var = Var.create(percent)
    props.setdefault("size", "1")
    bar = rx.cond(
        percent_var.is_not_none(),
        rx.progress(value=percent_var.to(int), max=100, **props),
        rx.progress(**props),
    )
    if message is None:
        return rx.box(bar, width="100%", class_name="durably-progress")
    message_var = Var.create(message)
    return rx.vstack(
        bar,
        rx.hstack(
            rx.text(message_var, size="1", color_scheme="gray", trim="both"),
            rx.spacer(),
            rx.text(
                rx.cond(percent_var.is_not_none(), percent_var.to_string() + "%", ""), size="1", color_scheme="gray"
            ),
            width="100%",
        ),
        spacing="1",
        width="100%",
        class_name="durably-progress",
    )
