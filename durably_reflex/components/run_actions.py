"""`run_actions`: retry, cancel and delete buttons for one run.

Each button is enabled only where the run's status allows the action (the server would refuse the
others with a 409): retry a failed or cancelled run, cancel a pending or running one, delete a run
that has ended; with `hide_disabled`, the others are not shown at all (a table row stays short).
Delete asks for confirmation first. A refusal or a network error is shown under the buttons, from
the actions state.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars.base import Var

from ..states import UseRunActionsState

RETRYABLE = ("failed", "cancelled")
CANCELLABLE = ("pending", "running")
DELETABLE = ("completed", "failed", "cancelled")


def run_actions(
    actions: type[UseRunActionsState],
    run_id: Var[str] | str,
    status: Var[str] | Var[str | None] | str,
    *,
    size: str = "2",
    show_error: bool = True,
    hide_disabled: bool = False,
    on_deleted: Any = None,
) -> rx.Component:
    """Buttons for the run `run_id` in `status`; `on_deleted` (events) runs after a confirmed delete
    (a detail page navigates away, say); `hide_disabled` shows only the actions the status allows."""
    run_id_var, status_var = Var.create(run_id), Var.create(status)

    def allowed(button: rx.Component, statuses: tuple[str, ...]) -> rx.Component:
        return rx.cond(_status_in(status_var, statuses), button, rx.fragment()) if hide_disabled else button

    # The `type: ignore[operator]`s below: mypy reads an @rx.event handler as EventNamespace (its __new__ returns the callback);
    # pyright, which Reflex's typing is written for, sees a callable EventCallback.
    retry = rx.button(
        rx.icon("rotate-ccw", size=14),
        "Retry",
        size=size,
        variant="soft",
        disabled=~_status_in(status_var, RETRYABLE) | actions.is_loading,
        on_click=actions.retry(run_id_var),  # type: ignore[operator]
        class_name="durably-retry",
    )
    cancel = rx.button(
        rx.icon("circle-stop", size=14),
        "Cancel",
        size=size,
        variant="soft",
        color_scheme="orange",
        disabled=~_status_in(status_var, CANCELLABLE) | actions.is_loading,
        on_click=actions.cancel(run_id_var),  # type: ignore[operator]
        class_name="durably-cancel",
    )
    deleted = actions.delete_run(run_id_var)  # type: ignore[operator]
    after_delete = [deleted] + ([] if on_deleted is None else _as_list(on_deleted))
    delete = rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(
                rx.icon("trash-2", size=14),
                "Delete",
                size=size,
                variant="soft",
                color_scheme="red",
                disabled=~_status_in(status_var, DELETABLE) | actions.is_loading,
                class_name="durably-delete",
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Delete this run?"),
            rx.alert_dialog.description(
                "The run, its steps and its logs are removed for good. This cannot be undone.", size="2"
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button("Delete", color_scheme="red", on_click=after_delete, class_name="durably-confirm-delete")
                ),
                spacing="3",
                justify="end",
                margin_top="1rem",
            ),
        ),
    )
    buttons = rx.hstack(
        allowed(retry, RETRYABLE),
        allowed(cancel, CANCELLABLE),
        allowed(delete, DELETABLE),
        spacing="2",
        class_name="durably-run-actions",
    )
    if not show_error:
        return buttons
    return rx.vstack(
        buttons,
        rx.cond(
            actions.error,
            rx.callout(
                actions.error.to(str),
                icon="triangle-alert",
                color_scheme="red",
                size="1",
                class_name="durably-action-error",
            ),
            rx.fragment(),
        ),
        spacing="2",
    )


def _status_in(status: Var, allowed: tuple[str, ...]) -> Var[bool]:
    return Var.create(list(allowed)).contains(status)


def _as_list(events: Any) -> list[Any]:
    return list(events) if isinstance(events, (list, tuple)) else [events]
