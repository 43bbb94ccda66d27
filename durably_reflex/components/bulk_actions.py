"""`bulk_actions`: retry, cancel or delete many runs at once from a runs table, with a confirmation
that names how many and a progress bar while the server works through them.

Two ways in: the runs selected with the rows' checkboxes (a bar appears with the actions for them),
or "All matching", every run the table's search matches (counted when asked; only the runs the
action can change are counted and acted on). Each is one request to the API, which works in
batches and reports after each one: nothing holds the database for long, and the bar moves as the
batches complete. What the action did (and skipped) is said once it is done. Driven by the
selection and bulk fields of a `use_runs` state (`RunSelectionState`).
"""

from __future__ import annotations

import reflex as rx

from ..states import UseRunsState
from .status import run_progress

ACTIONS = (  # (action, label, icon, color)
    ("retry", "Retry", "rotate-ccw", "accent"),
    ("cancel", "Cancel", "circle-stop", "orange"),
    ("delete", "Delete", "trash-2", "red"),
)


def bulk_actions(runs: type[UseRunsState]) -> rx.Component:
    """The selection's bar, the "All matching" menu, the confirmation, the progress and the outcome."""
    return rx.vstack(
        rx.hstack(
            rx.cond(runs.selected_count > 0, _selection_bar(runs), rx.fragment()),
            rx.spacer(),
            _all_matching_menu(runs),
            width="100%",
            align="center",
            min_height="2rem",
        ),
        rx.cond(
            runs.bulk_running,
            rx.vstack(
                rx.text(runs.bulk_progress_text, size="1", class_name="durably-bulk-progress-text"),
                run_progress(runs.bulk_percent),
                spacing="1",
                width="100%",
                class_name="durably-bulk-progress",
                data_percent=rx.cond(runs.bulk_percent.is_not_none(), runs.bulk_percent.to_string(), ""),
            ),
            rx.fragment(),
        ),
        _note(runs.bulk_message, "circle-check", "green", "durably-bulk-done", runs),
        _note(runs.bulk_error, "triangle-alert", "red", "durably-bulk-error", runs),
        rx.cond(runs.bulk_open, _confirmation(runs), rx.fragment()),  # mounted when asked: a lighter page
        spacing="2",
        width="100%",
    )


def _selection_bar(runs: type[UseRunsState]) -> rx.Component:
    return rx.hstack(
        rx.text(
            runs.selected_count.to_string() + " selected", size="2", weight="medium", class_name="durably-selected"
        ),
        *(
            rx.button(
                rx.icon(icon, size=14),
                label,
                size="1",
                variant="soft",
                color_scheme=None if color == "accent" else color,
                disabled=runs.bulk_running,
                on_click=runs.ask_bulk(action, "selection"),  # type: ignore[misc]  # a background handler, see run_detail
                class_name=f"durably-bulk-{action}",
            )
            for action, label, icon, color in ACTIONS
        ),
        rx.button(
            "Clear selection",
            size="1",
            variant="ghost",
            color_scheme="gray",
            on_click=runs.clear_selection,
            class_name="durably-clear-selection",
        ),
        spacing="2",
        align="center",
        class_name="durably-selection-bar",
    )


def _all_matching_menu(runs: type[UseRunsState]) -> rx.Component:
    return rx.dropdown_menu.root(
        rx.dropdown_menu.trigger(
            rx.button(
                "All matching",
                rx.icon("chevron-down", size=14),
                size="1",
                variant="soft",
                color_scheme="gray",
                disabled=runs.bulk_running,
                class_name="durably-bulk-matching",
            )
        ),
        rx.dropdown_menu.content(
            *(
                rx.dropdown_menu.item(
                    rx.icon(icon, size=14),
                    f"{label} all matching…",
                    color_scheme=None if color == "accent" else color,
                    on_click=runs.ask_bulk(action, "matching"),  # type: ignore[misc]
                    class_name=f"durably-bulk-matching-{action}",
                )
                for action, label, icon, color in ACTIONS
            ),
        ),
    )


def _confirmation(runs: type[UseRunsState]) -> rx.Component:
    nothing = (runs.bulk_count == 0) & runs.bulk_count_exact
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(
                rx.match(runs.bulk_action, ("retry", "Retry runs"), ("cancel", "Cancel runs"), "Delete runs")
            ),
            rx.alert_dialog.description(
                rx.cond(
                    runs.bulk_counting,
                    rx.hstack(rx.spinner(size="1"), rx.text("Counting the runs…"), align="center", spacing="2"),
                    rx.text(runs.bulk_question, class_name="durably-bulk-question"),
                ),
                size="2",
            ),
            rx.cond(
                (runs.bulk_action == "delete") & ~nothing & ~runs.bulk_counting,
                rx.text(
                    "They are removed for good, with their steps and logs. This cannot be undone.",
                    size="2",
                    color_scheme="red",
                    margin_top="0.5rem",
                ),
                rx.fragment(),
            ),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button(
                        "Keep them",
                        variant="soft",
                        color_scheme="gray",
                        on_click=runs.close_bulk,
                        class_name="durably-bulk-keep",
                    )
                ),
                rx.button(
                    runs.bulk_confirm_label,
                    color_scheme=rx.match(runs.bulk_action, ("delete", "red"), ("cancel", "orange"), "accent"),
                    disabled=runs.bulk_counting | nothing,
                    on_click=runs.confirm_bulk,
                    class_name="durably-bulk-confirm",
                ),
                spacing="3",
                justify="end",
                margin_top="1rem",
            ),
            class_name="durably-bulk-dialog",
            data_counting=runs.bulk_counting,
        ),
        open=runs.bulk_open,
        on_open_change=runs.set_bulk_open,
    )


def _note(text: rx.Var, icon: str, color: str, class_name: str, runs: type[UseRunsState]) -> rx.Component:
    return rx.cond(
        text,
        rx.callout.root(
            rx.callout.icon(rx.icon(icon, size=16)),
            rx.hstack(
                rx.callout.text(text, flex="1"),
                rx.icon_button(
                    rx.icon("x", size=12),
                    size="1",
                    variant="ghost",
                    color_scheme="gray",
                    on_click=runs.dismiss_bulk_message,
                ),
                align="center",
                width="100%",
            ),
            color_scheme=color,
            size="1",
            width="100%",
            class_name=class_name,
        ),
        rx.fragment(),
    )
