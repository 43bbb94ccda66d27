"""`schedules_table`: every schedule, when it fires next (and how long until then), its last runs,
and buttons to pause, resume or delete it; live.

Driven by a `use_schedules` state, which it attaches when it mounts. A row shows the schedule's name
and job, its cron expression and timezone, its next fire time with a countdown (or "paused"), when
it last fired, its newest runs as status badges (links to `run_href` + the run's id, when given),
and the actions. Rows have the class `durably-schedule-row` and `data-schedule` (the name); the
buttons `durably-pause-schedule`, `durably-resume-schedule` and `durably-delete-schedule` (which
asks to confirm first).
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ObjectVar

from ..states.schedules_state import UseSchedulesState
from .status import STATUS_COLORS
from .waiting import countdown


def schedules_table(state: type[UseSchedulesState], *, run_href: str | None = None, **props: Any) -> rx.Component:
    """The schedules of `state` as a table; `run_href` (say "/runs/") links each run badge to its page."""
    columns = ["Schedule", "When", "Next", "Last fired", "Last runs", "Actions"]
    props.setdefault("on_mount", state.attach)
    return rx.vstack(
        rx.cond(
            state.error,
            rx.callout(state.error.to(str), icon="triangle-alert", color_scheme="red", size="1", width="100%"),
            rx.fragment(),
        ),
        rx.cond(
            state.schedules_offered,
            rx.table.root(
                rx.table.header(rx.table.row(*(rx.table.column_header_cell(name) for name in columns))),
                rx.table.body(rx.foreach(state.schedules, lambda row: _row(state, row, run_href))),
                width="100%",
                variant="surface",
            ),
            rx.text(
                "This server keeps no schedules (it has no /schedules routes: Durably's own Node server has none).",
                color_scheme="gray",
                size="2",
                class_name="durably-schedules-not-offered",
            ),
        ),
        rx.cond(
            state.is_empty & state.schedules_offered,
            rx.text(
                "No schedules yet: a job schedules runs with job.schedule(cron, input).",
                color_scheme="gray",
                size="2",
                class_name="durably-schedules-empty",
            ),
            rx.fragment(),
        ),
        rx.cond(state.message, rx.text(state.message, size="1", color_scheme="gray"), rx.fragment()),
        spacing="3",
        width="100%",
        class_name="durably-schedules",
        **props,
    )


def _row(state: type[UseSchedulesState], row: ObjectVar[dict[str, Any]], run_href: str | None) -> rx.Component:
    name = row["name"].to(str)
    paused = row["paused"].to(bool)
    next_fire = row["next_fire_at"]
    last_fired = row["last_fired_at"]
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(name, weight="medium", size="2"),
                rx.code(row["job_name"].to(str), variant="ghost", size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.code(row["cron"].to(str), size="1"),
                rx.text(row["timezone"].to(str), size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.cond(
                paused,
                rx.badge("paused", color_scheme="orange", variant="soft"),
                rx.cond(
                    next_fire,
                    rx.vstack(
                        rx.moment(next_fire.to(str), format="YYYY-MM-DD HH:mm:ss", size="1"),
                        rx.text("in ", countdown(next_fire.to(str)), size="1", color_scheme="gray"),
                        spacing="0",
                    ),
                    rx.text("—"),
                ),
            ),
            class_name="durably-schedule-next",
        ),
        rx.table.cell(
            rx.cond(
                last_fired,
                rx.moment(last_fired.to(str), from_now=True, interval=10_000, with_title=True),
                rx.text("never", color_scheme="gray", size="1"),
            ),
            class_name="durably-schedule-last",
        ),
        rx.table.cell(
            rx.hstack(
                rx.foreach(row["recent_runs"].to(list[dict[str, Any]]), lambda run: _run_badge(run, run_href)),
                wrap="wrap",
                spacing="1",
            ),
            class_name="durably-schedule-runs",
        ),
        rx.table.cell(_actions(state, name, paused)),
        class_name="durably-schedule-row",
        data_schedule=name,
        data_paused=rx.cond(paused, "true", "false"),
        align="center",
    )


def _run_badge(run: ObjectVar[dict[str, Any]], run_href: str | None) -> rx.Component:
    status = run["status"].to(str)
    badge = rx.badge(
        run["short_id"].to(str),
        color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"),
        variant="soft",
        title=status,
        class_name="durably-schedule-run",
        data_status=status,
    )
    return rx.link(badge, href=run_href + run["id"].to(str)) if run_href else badge


def _actions(state: type[UseSchedulesState], name: Any, paused: Any) -> rx.Component:
    busy = state.busy == name
    # The `type: ignore[operator]`s: mypy reads an @rx.event handler as EventNamespace (see run_actions).
    toggle = rx.cond(
        paused,
        rx.button(
            rx.icon("play", size=14),
            "Resume",
            size="1",
            variant="soft",
            loading=busy,
            on_click=state.resume(name),  # type: ignore[operator]
            class_name="durably-resume-schedule",
        ),
        rx.button(
            rx.icon("pause", size=14),
            "Pause",
            size="1",
            variant="soft",
            color_scheme="orange",
            loading=busy,
            on_click=state.pause(name),  # type: ignore[operator]
            class_name="durably-pause-schedule",
        ),
    )
    delete = rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.icon_button(
                rx.icon("trash-2", size=14),
                size="1",
                variant="ghost",
                color_scheme="red",
                title="Delete this schedule",
                class_name="durably-delete-schedule",
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Delete the schedule?"),
            rx.alert_dialog.description("It fires no more runs; the runs it created stay."),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button(
                        "Delete",
                        color_scheme="red",
                        on_click=state.delete_schedule(name),  # type: ignore[operator]
                        class_name="durably-confirm-delete-schedule",
                    )
                ),
                justify="end",
                spacing="3",
                margin_top="1rem",
            ),
        ),
    )
    return rx.hstack(toggle, delete, align="center", spacing="2")
