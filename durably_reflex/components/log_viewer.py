"""`log_viewer`: a run's log lines, live, as a terminal-like tail.

The newest lines stay in view while the user is at the bottom; scrolling up pauses that (to read)
and scrolling back down resumes it (`rx.auto_scroll`). Levels are coloured and can be filtered;
each line shows its time and step, and a line with data says so (a "data" toggle with a chevron)
and opens it below. "Hide earlier" hides the lines shown so far, for this tab (new lines keep
coming; the stored logs are untouched and "show" brings them back). The state keeps at most
`max_logs` lines, so the viewer stays small however much a job logs. Against a server that keeps no
log history (Durably's Node server), a "live only" badge says the lines are those logged while the
page watched.

Standalone, the viewer attaches its state on mount (to `run_id` when given, for a `use_job_run` or
`use_job_logs` state); inside a component that attaches the state itself, pass `attach=False`.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ObjectVar, Var

from ..states import UseJobRunState, UseJobState

LEVEL_COLORS = {"info": "gray", "warn": "amber", "error": "red"}
LEVELS = ["all", "info", "warn", "error"]


def log_viewer(
    state: type[UseJobState] | type[UseJobRunState],
    *,
    run_id: Var[str] | str | None = None,
    attach: bool = True,
    height: str = "20rem",
    show_filter: bool = True,
    **props: Any,
) -> rx.Component:
    """The logs of the run `state` follows (any of the run hook states)."""
    if attach:
        # mypy cannot call a background @rx.event handler (Reflex's typing is written for pyright).
        props.setdefault("on_mount", state.attach if run_id is None else state.attach(run_id))  # type: ignore[misc]
    header = rx.hstack(
        rx.text("Logs", weight="bold", size="2"),
        rx.badge(state.logs.length().to_string(), variant="surface", radius="full"),
        rx.spacer(),
        rx.cond(state.is_reconnecting, rx.badge("reconnecting…", color_scheme="amber"), rx.fragment()),
        rx.cond(
            state.log_history_offered,
            rx.fragment(),
            rx.tooltip(
                rx.badge("live only", color_scheme="gray", variant="surface"),
                content="This server keeps no log history: the lines shown were logged while this page watched.",
            ),
        ),
        rx.cond(
            show_filter,
            rx.select.root(  # not rx.select(...): its class_name would go to the root, which renders no element
                rx.select.trigger(class_name="durably-log-filter"),
                rx.select.content(*(rx.select.item(level, value=level) for level in LEVELS)),
                value=rx.cond(state.level_filter, state.level_filter, "all"),
                on_change=state.set_level_filter,
                size="1",
            ),
            rx.fragment(),
        ),
        rx.cond(
            state.logs_hidden_through,
            rx.button(
                "Show " + state.hidden_log_count.to_string() + " hidden",
                size="1",
                variant="soft",
                color_scheme="gray",
                on_click=state.show_all_logs,
                title="Show the lines hidden here",
                class_name="durably-log-show-all",
            ),
            rx.button(
                "Hide earlier",
                size="1",
                variant="soft",
                color_scheme="gray",
                on_click=state.hide_earlier_logs,
                disabled=state.logs.length() == 0,
                title="Hide the lines shown so far (only here: the run's logs are kept)",
                class_name="durably-log-hide",
            ),
        ),
        width="100%",
        align="center",
    )
    lines = rx.auto_scroll(
        rx.cond(
            state.logs.length() > 0,
            # Filtered in the browser: a filtered copy in the state would double every delta.
            rx.foreach(
                state.logs,
                lambda line: rx.cond(
                    ((state.level_filter == "") | (line["level"].to(str) == state.level_filter))
                    & (line["id"].to(str) > state.logs_hidden_through),
                    _log_line(line),
                    rx.fragment(),
                ),
            ),
            rx.text("No log lines yet.", size="1", color_scheme="gray", padding="0.5rem"),
        ),
        height=height,
        width="100%",
        class_name="durably-log-lines",
        style={"font_family": "var(--code-font-family)", "font_size": "12px"},
    )
    return rx.card(
        rx.vstack(header, lines, spacing="2", width="100%"), width="100%", class_name="durably-log-viewer", **props
    )


def _log_line(line: ObjectVar[dict[str, Any]]) -> rx.Component:
    level = line["level"].to(str)
    has_data = line["data"].is_not_none()
    summary = rx.hstack(
        rx.text(rx.moment(line["timestamp"].to(str), format="HH:mm:ss.SSS"), color_scheme="gray", size="1"),
        rx.badge(level, color_scheme=rx.match(level, *LEVEL_COLORS.items(), "gray"), size="1", variant="soft"),
        rx.cond(line["step_name"], rx.code(line["step_name"].to(str), size="1", variant="ghost"), rx.fragment()),
        rx.text(line["message"].to(str), size="1", class_name="durably-log-message", style={"white_space": "pre-wrap"}),
        spacing="2",
        align="center",
    )
    toggle = rx.badge(
        rx.icon("chevron-right", size=12, class_name="durably-chevron", style={"transition": "transform 120ms"}),
        "data",
        size="1",
        variant="outline",
        color_scheme="gray",
        class_name="durably-log-data-toggle",
    )
    return rx.cond(
        has_data,
        rx.el.details(
            rx.el.summary(
                rx.hstack(summary, toggle, spacing="2", align="center"),
                style={"cursor": "pointer", "list_style": "none"},
                title="Show the data logged with this line",
            ),
            rx.code_block(line["data"].to_string(), language="json", font_size="11px"),
            class_name="durably-log-line",
            data_level=level,
            style={
                "&[open] .durably-chevron": {"transform": "rotate(90deg)"},
                "summary::-webkit-details-marker": {"display": "none"},
            },
        ),
        rx.box(summary, class_name="durably-log-line", data_level=level),
    )
