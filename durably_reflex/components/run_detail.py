"""`run_detail`: everything about one run: status, progress, how long it took, where it stopped, a
timeline of its steps on a time axis, its logs, its input and output, and the actions it allows,
all live.

Laid out so that the steps and the logs are what a page shows first: the input and the output are
collapsed (a one-line preview says what they hold), and on a wide screen the timeline and the logs
sit side by side. A running step's bar grows with time and shows how long it has been running.

Driven by a `use_job_run` state, which it attaches when it mounts (to `run_id` when given, a page's
route parameter say, else to the state's own `run_id`), and a `use_run_actions` state for the
buttons. A run that waits says for what and until when (a countdown); with a `use_signal` state
(`signals`), one waiting for a signal shows the form to send it. A retried step's attempts are rows
of their own.

Each settled step offers "Replay from here": after a confirmation, a new run of the same job and
input whose completed steps before that one are copied, the rest run anew; with `run_href`, its
page opens. The run's labels are shown (links to the runs page searching for each, with
`runs_href`), and a replay names the run it replays. With a state made with `history=True`, the
run's earlier attempts (each attempt's status, times and error, kept across retries) and its replays
are listed too.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ObjectVar, Var

from ..states import UseJobRunState, UseRunActionsState, UseSignalState
from .approval import signal_form
from .labels import label_links
from .log_viewer import log_viewer
from .run_actions import run_actions
from .status import STATUS_COLORS, run_progress, status_badge
from .waiting import waiting_note

ELAPSED_FORMAT = "m[m] ss[s]"  # a running run's or step's time so far (moment.js duration format)


def run_detail(
    run: type[UseJobRunState],
    actions: type[UseRunActionsState],
    *,
    run_id: Var[str] | str | None = None,
    on_deleted: Any = None,
    signals: type[UseSignalState] | None = None,
    run_href: str | None = None,
    runs_href: str | None = None,
    **props: Any,
) -> rx.Component:
    """The run that `run` follows; with `run_id`, attaching to it on mount; with `signals`, the form
    to send the signal the run waits for; `run_href` (say "/runs/"): where a run's page is (the
    replay it makes opens there, and the runs it replays or that replay it link there);
    `runs_href` (say "/"): the runs page, which its labels link to."""
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
            _replay_of(record, run_href),
            label_links(run.labels, runs_href) if runs_href is not None else rx.fragment(),
            spacing="1",
        ),
        status_badge(run.status, size="3"),
        _duration_badge(run, record),
        rx.cond(run.is_reconnecting, rx.badge("reconnecting…", color_scheme="amber"), rx.fragment()),
        rx.spacer(),
        run_actions(actions, run.current_run_id.to(str), run.status.to(str), on_deleted=on_deleted, hide_disabled=True),
        width="100%",
        align="start",
        wrap="wrap",
    )
    error = rx.callout(
        run.error.to(str), icon="circle-x", color_scheme="red", width="100%", class_name="durably-run-error"
    )
    body = rx.cond(
        run.run,
        rx.vstack(
            rx.cond(run.is_running, run_progress(run.progress_percent, run.progress_message), rx.fragment()),
            rx.cond(
                run.stop_summary,
                rx.callout(
                    run.stop_summary,
                    icon=rx.cond(run.is_failed, "circle-x", "circle-stop"),
                    color_scheme=rx.cond(run.is_failed, "red", "orange"),
                    size="1",
                    width="100%",
                    class_name="durably-run-stopped",
                ),
                rx.fragment(),
            ),
            rx.cond(run.error, error, rx.fragment()),
            rx.cond(
                run.is_pending & record["waiting_for"].to(bool),
                rx.callout(
                    waiting_note(record["waiting_for"], size="2"),
                    icon="hourglass",
                    color_scheme="gray",
                    size="1",
                    width="100%",
                    class_name="durably-run-waiting",
                ),
                rx.fragment(),
            ),
            signal_form(signals, run) if signals is not None else rx.fragment(),
            _times(record, run),
            rx.grid(
                _timeline(run, actions, run_href),
                log_viewer(run, attach=False, height="22rem"),
                columns=rx.breakpoints(initial="1", lg="2"),
                spacing="3",
                width="100%",
                align="start",
            ),
            rx.cond(run.attempts.length() > 0, _attempts(run, record), rx.fragment()),
            rx.cond(run.replays.length() > 0, _replays(run, run_href), rx.fragment()),
            _json_section("Input", run.input_json, record["input"].to_string(), "durably-run-input"),
            _json_section(
                "Output",
                rx.cond(run.output_json != "", run.output_json, "—"),
                rx.cond(run.output_json != "", run.output.to_string(), "—"),
                "durably-run-output",
            ),
            spacing="4",
            width="100%",
        ),
        rx.cond(run.error, error, rx.center(rx.spinner(size="3"), padding="3rem", width="100%")),
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


def _duration_badge(run: type[UseJobRunState], record: ObjectVar[dict[str, Any]]) -> rx.Component:
    """How long the run took once it ended; how long it has been running while it runs."""
    return rx.cond(
        run.duration_text,
        rx.badge(rx.icon("timer", size=12), run.duration_text, variant="surface", class_name="durably-run-duration"),
        rx.cond(
            run.is_running & record["started_at"].to(bool),
            rx.badge(
                rx.icon("timer", size=12),
                rx.moment(record["started_at"].to(str), duration_from_now=True, interval=1000, format=ELAPSED_FORMAT),
                variant="surface",
                class_name="durably-run-duration",
            ),
            rx.fragment(),
        ),
    )


def _times(record: ObjectVar[dict[str, Any]], run: type[UseJobRunState]) -> rx.Component:
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
        rx.data_list.item(
            rx.data_list.label("Duration"),
            rx.data_list.value(rx.cond(run.duration_text, run.duration_text, "—")),
        ),
        orientation=rx.breakpoints(initial="vertical", sm="horizontal"),
        size="1",
    )


def _json_section(title: str, text: Var, preview: Var, class_name: str) -> rx.Component:
    """Collapsed JSON, its first characters beside the title."""
    return rx.el.details(
        rx.el.summary(
            rx.hstack(
                rx.icon(
                    "chevron-right", size=14, class_name="durably-chevron", style={"transition": "transform 120ms"}
                ),
                rx.text(title, weight="bold", size="2"),
                rx.code(
                    preview,
                    variant="ghost",
                    size="1",
                    color_scheme="gray",
                    style={"overflow": "hidden", "text_overflow": "ellipsis", "white_space": "nowrap"},
                    min_width="0",
                    flex="1",
                ),
                align="center",
                spacing="2",
                width="100%",
            ),
            style={"cursor": "pointer", "list_style": "none"},
        ),
        rx.code_block(text, language="json", font_size="12px", wrap_long_lines=True),
        class_name=class_name,
        width="100%",
        style={
            "&[open] .durably-chevron": {"transform": "rotate(90deg)"},
            "summary::-webkit-details-marker": {"display": "none"},
            "border": f"1px solid {rx.color('gray', 5)}",
            "border_radius": "var(--radius-3)",
            "padding": "0.5rem 0.75rem",
        },
    )


def _timeline(run: type[UseJobRunState], actions: type[UseRunActionsState], run_href: str | None) -> rx.Component:
    """One row per step: its name and status, a bar placed on the run's time axis, its duration
    (a running step's grows: its bar reaches now, and its time so far ticks), and a settled step's
    "Replay from here"."""
    origin, span = run.timeline_origin_ms, run.timeline_span_ms

    def step(row: ObjectVar[dict[str, Any]]) -> rx.Component:
        # A step the run waits in (a sleep, a signal) says so while the run is pending.
        status = rx.cond((row["status"].to(str) == "running") & run.is_pending, "waiting", row["status"].to(str))
        name = rx.cond(row["name"], row["name"].to(str), "step " + (row["index"].to(int) + 1).to_string())
        started = row["started_ms"].to(int)
        ended = rx.cond(row["ended_ms"].is_not_none(), row["ended_ms"].to(int), origin + span)
        left = (started - origin) / span * 100
        width = (ended - started) / span * 100
        color = rx.match(
            status, *((name, rx.color(color, 9)) for name, color in STATUS_COLORS.items()), rx.color("gray", 9)
        )
        bar = rx.box(
            position="absolute",
            top="3px",
            bottom="3px",
            left=left.to_string() + "%",
            width="max(3px, " + width.to_string() + "%)",
            background=color,
            border_radius="2px",
            class_name=rx.cond(status == "running", "durably-step-bar durably-step-bar-running", "durably-step-bar"),
        )
        took = rx.cond(
            status == "running",
            rx.moment(row["started_at"].to(str), duration_from_now=True, interval=1000, format=ELAPSED_FORMAT),
            row["duration_text"].to(str),
        )
        return rx.vstack(
            rx.hstack(
                rx.hstack(
                    rx.text(
                        name,
                        weight="medium",
                        size="1",
                        title=name,
                        style={"overflow": "hidden", "text_overflow": "ellipsis", "white_space": "nowrap"},
                    ),
                    rx.cond(
                        row["attempt"].to(int) > 1,
                        rx.text("attempt " + row["attempt"].to_string(), size="1", color_scheme="gray"),
                        rx.fragment(),
                    ),
                    rx.cond(
                        status != "completed",
                        rx.badge(status, color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"), size="1"),
                        rx.fragment(),
                    ),
                    width="12rem",
                    flex_shrink="0",
                    align="center",
                    spacing="1",
                    overflow="hidden",
                ),
                rx.box(
                    bar,
                    position="relative",
                    flex="1",
                    height="16px",
                    background=rx.color("gray", 3),
                    border_radius="2px",
                ),
                rx.text(took, size="1", color_scheme="gray", width="4.5rem", text_align="right", flex_shrink="0"),
                rx.box(
                    rx.cond(
                        row["name"] & row["ended_ms"].is_not_none(),
                        _replay_from(run, actions, row["name"].to(str), run_href),
                        rx.fragment(),
                    ),
                    width="1.5rem",
                    flex_shrink="0",
                ),
                width="100%",
                align="center",
                spacing="2",
            ),
            rx.cond(row["error"], rx.text(row["error"].to(str), size="1", color_scheme="red"), rx.fragment()),
            spacing="0",
            width="100%",
            class_name="durably-step",
            data_status=status,
            data_attempt=row["attempt"].to_string(),
        )

    axis = rx.hstack(
        rx.box(width="12rem", flex_shrink="0"),
        rx.text("0", size="1", color_scheme="gray"),
        rx.spacer(),
        rx.text(run.timeline_span_text, size="1", color_scheme="gray", class_name="durably-timeline-span"),
        rx.box(width="6rem", flex_shrink="0"),
        width="100%",
        spacing="2",
    )
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text("Steps", weight="bold", size="2"),
                rx.badge(run.steps.length().to_string(), variant="surface", radius="full"),
                align="center",
            ),
            rx.cond(
                run.steps.length() > 0,
                rx.vstack(
                    rx.box(
                        rx.vstack(rx.foreach(run.steps, step), spacing="1", width="100%"),
                        max_height="22rem",
                        overflow_y="auto",
                        width="100%",
                    ),
                    axis,
                    spacing="1",
                    width="100%",
                ),
                rx.text("No steps yet.", size="1", color_scheme="gray"),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        class_name="durably-steps",
    )


def _replay_from(
    run: type[UseJobRunState], actions: type[UseRunActionsState], step_name: Var[str], run_href: str | None
) -> rx.Component:
    """A step's "Replay from here", confirmed first."""
    # mypy reads an @rx.event handler as EventNamespace (see run_actions.py).
    replay = actions.replay(run.current_run_id.to(str), step_name, run_href or "")  # type: ignore[operator]
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.icon_button(
                rx.icon("history", size=12),
                size="1",
                variant="ghost",
                color_scheme="gray",
                disabled=actions.is_loading,
                title="Replay from here",
                aria_label="Replay from here",
                class_name="durably-replay-from",
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Replay from step “", step_name, "”?"),
            rx.alert_dialog.description(
                "A new run of this job with the same input and labels: the steps before “",
                step_name,
                "” that completed are copied from this run, not run again; “",
                step_name,
                "” and the steps after it run anew. This run stays as it is.",
                size="2",
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Not now", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button("Replay", on_click=replay, class_name="durably-confirm-replay")),
                spacing="3",
                justify="end",
                margin_top="1rem",
            ),
        ),
    )


def _replay_of(record: ObjectVar[dict[str, Any]], run_href: str | None) -> rx.Component:
    """ "replay of <the run it replays>" for a replay."""
    source = record["replay_of"].to(str)
    shown = rx.code(source[-8:], variant="ghost", size="1", title=source)
    return rx.cond(
        record["replay_of"],
        rx.hstack(
            rx.icon("history", size=12, color=rx.color("gray", 10)),
            rx.text("replay of", size="1", color_scheme="gray"),
            shown if run_href is None else rx.link(shown, href=run_href + source),
            spacing="1",
            align="center",
            class_name="durably-replay-of",
            data_run_id=source,
        ),
        rx.fragment(),
    )


def _attempts(run: type[UseJobRunState], record: ObjectVar[dict[str, Any]]) -> rx.Component:
    """The run's attempts, first first: each earlier one as it ended (its error in full on hover),
    then the current one."""

    def when(value: Var) -> rx.Component:
        return rx.cond(value, rx.moment(value.to(str), format="YYYY-MM-DD HH:mm:ss", with_title=True), "—")

    def earlier(attempt: ObjectVar[dict[str, Any]]) -> rx.Component:
        return rx.table.row(
            rx.table.cell(attempt["number"].to_string()),
            rx.table.cell(status_badge(attempt["status"].to(str))),
            rx.table.cell(when(attempt["started_at"]), white_space="nowrap"),
            rx.table.cell(when(attempt["completed_at"]), white_space="nowrap"),
            rx.table.cell(attempt["duration_text"].to(str), white_space="nowrap"),
            rx.table.cell(
                rx.text(
                    attempt["error_line"].to(str),
                    size="1",
                    color_scheme="red",
                    title=attempt["error"].to(str),
                    class_name="durably-attempt-error",
                ),
                max_width="24rem",
            ),
            class_name="durably-attempt",
            data_number=attempt["number"].to_string(),
            data_status=attempt["status"].to(str),
        )

    current = rx.table.row(
        rx.table.cell((run.attempts.length() + 1).to_string()),
        rx.table.cell(rx.hstack(status_badge(run.status), rx.text("current", size="1", color_scheme="gray"))),
        rx.table.cell(when(record["started_at"]), white_space="nowrap"),
        rx.table.cell(when(record["completed_at"]), white_space="nowrap"),
        rx.table.cell(run.duration_text, white_space="nowrap"),
        rx.table.cell(rx.text(run.error_line, size="1", color_scheme="red", title=run.error.to(str))),
        class_name="durably-attempt durably-attempt-current",
        data_number=(run.attempts.length() + 1).to_string(),
    )
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text("Attempts", weight="bold", size="2"),
                rx.badge((run.attempts.length() + 1).to_string(), variant="surface", radius="full"),
                rx.text(
                    "each retry is a new attempt; the earlier ones are kept as they ended",
                    size="1",
                    color_scheme="gray",
                ),
                align="center",
            ),
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *(
                            rx.table.column_header_cell(name)
                            for name in ("#", "Status", "Started", "Ended", "Took", "Error")
                        )
                    )
                ),
                rx.table.body(rx.foreach(run.attempts, earlier), current),
                size="1",
                width="100%",
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        class_name="durably-attempts",
    )


def _replays(run: type[UseJobRunState], run_href: str | None) -> rx.Component:
    """The runs that replay this one, newest first."""

    def replay(row: ObjectVar[dict[str, Any]]) -> rx.Component:
        run_id = row["id"].to(str)
        short = rx.code(row["short_id"].to(str), variant="ghost", size="1", title=run_id)
        return rx.hstack(
            short if run_href is None else rx.link(short, href=run_href + run_id),
            status_badge(row["status"].to(str)),
            rx.text(rx.moment(row["created_at"].to(str), from_now=True, interval=15000, with_title=True), size="1"),
            align="center",
            spacing="3",
            class_name="durably-replay",
            data_run_id=run_id,
        )

    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text("Replays", weight="bold", size="2"),
                rx.badge(run.replays.length().to_string(), variant="surface", radius="full"),
                align="center",
            ),
            rx.foreach(run.replays, replay),
            spacing="2",
            width="100%",
        ),
        width="100%",
        class_name="durably-replays",
    )
