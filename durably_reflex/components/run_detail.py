"""`run_detail`: everything about one run: status, progress, input, output, error, a timeline of
its steps with durations, its logs, and the actions it allows, all live.

Driven by a `use_job_run` state, which it attaches when it mounts (to `run_id` when given, a page's
route parameter say, else to the state's own `run_id`), and a `use_run_actions` state for the
buttons.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ObjectVar, Var

from ..states import UseJobRunState, UseRunActionsState
from .log_viewer import log_viewer
from .run_actions import run_actions
from .status import STATUS_COLORS, run_progress, status_badge


def run_detail(
    run: type[UseJobRunState],
    actions: type[UseRunActionsState],
    *,
    run_id: Var[str] | str | None = None,
    on_deleted: Any = None,
    **props: Any,
) -> rx.Component:
    """The run that `run` follows; with `run_id`, attaching to it on mount."""
    record = run.run.to(dict)
    header = rx.hstack(
        rx.vstack(
            rx.heading(rx.cond(run.run, record["job_name"].to(str), "Run"), size="6"),
            rx.code(
                rx.cond(run.current_run_id, run.current_run_id, ""),
                variant="ghost",
                size="1",
                class_name="durably-run-id",
            ),
            spacing="1",
        ),
        status_badge(run.status, size="3"),
        rx.cond(run.is_reconnecting, rx.badge("reconnecting…", color_scheme="amber"), rx.fragment()),
        rx.spacer(),
        run_actions(actions, run.current_run_id.to(str), run.status.to(str), on_deleted=on_deleted),
        width="100%",
        align="start",
    )
    body = rx.cond(
        run.run,
        rx.vstack(
            rx.cond(run.is_running, run_progress(run.progress_percent, run.progress_message), rx.fragment()),
            _times(record),
            rx.cond(
                run.error,
                rx.callout(
                    run.error.to(str), icon="circle-x", color_scheme="red", width="100%", class_name="durably-run-error"
                ),
                rx.fragment(),
            ),
            rx.grid(
                _json_card("Input", run.input_json, "durably-run-input"),
                _json_card("Output", rx.cond(run.output_json != "", run.output_json, "—"), "durably-run-output"),
                columns=rx.breakpoints(initial="1", md="2"),
                spacing="3",
                width="100%",
            ),
            _timeline(run),
            log_viewer(run, attach=False),
            spacing="4",
            width="100%",
        ),
        rx.cond(
            run.error,
            rx.callout(
                run.error.to(str), icon="circle-x", color_scheme="red", width="100%", class_name="durably-run-error"
            ),
            rx.center(rx.spinner(size="3"), padding="3rem", width="100%"),
        ),
    )
    if run_id is None:
        props.setdefault("on_mount", run.attach)
        return rx.vstack(header, body, spacing="4", width="100%", class_name="durably-run-detail", **props)
    # mypy cannot call a background @rx.event handler (Reflex's typing is written for pyright).
    props.setdefault("on_mount", run.attach(run_id))  # type: ignore[misc]
    # Keyed by the run: mounted again (so attached again) when the id changes. After a client-side
    # navigation the route's `run_id` is still "" when the page first mounts, and moving from one run
    # to another reuses the mounted page. The key sits on a wrapper: on_mount is the vstack's own.
    return rx.fragment(
        rx.vstack(header, body, spacing="4", width="100%", class_name="durably-run-detail", **props),
        key=run_id,
    )


def _times(record: ObjectVar[dict[str, Any]]) -> rx.Component:
    def item(label: str, value: Var) -> rx.Component:
        return rx.data_list.item(
            rx.data_list.label(label),
            rx.data_list.value(
                rx.cond(value, rx.moment(value.to(str), format="YYYY-MM-DD HH:mm:ss", with_title=True), "—")
            ),
        )

    return rx.data_list.root(
        item("Created", record["created_at"]),
        item("Started", record["started_at"]),
        item("Ended", record["completed_at"]),
        orientation=rx.breakpoints(initial="vertical", sm="horizontal"),
        size="1",
    )


def _json_card(title: str, text: Var, class_name: str) -> rx.Component:
    return rx.card(
        rx.text(title, weight="bold", size="2"),
        rx.code_block(text, language="json", font_size="12px", wrap_long_lines=True),
        class_name=class_name,
    )


def _timeline(run: type[UseJobRunState]) -> rx.Component:
    def step(row: ObjectVar[dict[str, Any]]) -> rx.Component:
        status = row["status"].to(str)
        return rx.hstack(
            rx.box(
                width="10px",
                height="10px",
                border_radius="50%",
                flex_shrink="0",
                margin_top="6px",
                background=rx.match(
                    status, *((name, rx.color(color, 9)) for name, color in STATUS_COLORS.items()), rx.color("gray", 9)
                ),
            ),
            rx.vstack(
                rx.hstack(
                    rx.text(row["name"].to(str), weight="medium", size="2"),
                    rx.badge(
                        status, color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"), size="1", variant="soft"
                    ),
                    rx.spacer(),
                    rx.text(row["duration_text"].to(str), size="1", color_scheme="gray"),
                    width="100%",
                    align="center",
                ),
                rx.cond(row["error"], rx.text(row["error"].to(str), size="1", color_scheme="red"), rx.fragment()),
                spacing="0",
                width="100%",
            ),
            width="100%",
            class_name="durably-step",
            data_status=status,
        )

    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text("Steps", weight="bold", size="2"),
                rx.badge(run.steps.length().to_string(), variant="surface", radius="full"),
            ),
            rx.cond(
                run.steps.length() > 0,
                rx.foreach(run.steps, step),
                rx.text("No steps yet.", size="1", color_scheme="gray"),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        class_name="durably-steps",
    )
