"""`run_table`: one page of runs, live, with filters, pagination and row links.

Driven by a `use_runs` state: the first page follows every run's events (new runs appear, statuses
change, progress bars move), other pages stay as fetched. Filters change the state's job and status
filters and go back to the first page; when they match nothing the table says so and offers to
clear them. With `run_href`, a row's job name and short id link to the run's page (`run_href` + the
run's id); without it, rows link nowhere. The table attaches its state on mount (unless
`attach=False`: a page that attaches its states itself, to choose their order).

A row shows the run's job and short id (the last characters of its id; the whole id is its title)
with its labels (a label's click narrows the search to it), its status, its step (the one it is at
while it runs, where it stopped when it failed or was cancelled, with the error's first line, or
how many steps it completed), its progress, when it was created and how long it took, and the
actions its status allows. `row_extras(row)` adds content of yours under the job's name.

With `searchable`, a search box above the table (see `search_box`); with `selectable`, a checkbox
per row (and one for the page) and the bulk actions for the selection or for every run the search
matches (see `bulk_actions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx
from reflex.vars import ObjectVar, Var

from ..states import UseRunActionsState, UseRunsState
from .bulk_actions import bulk_actions
from .labels import label_chips
from .run_actions import run_actions
from .search_box import search_box
from .status import run_progress, status_badge
from .waiting import waiting_note

STATUSES = ["all", "pending", "running", "completed", "failed", "cancelled"]


RowExtras = Callable[[ObjectVar[dict[str, Any]]], rx.Component]


def run_table(
    runs: type[UseRunsState],
    *,
    job_names: list[str] | None = None,
    actions: type[UseRunActionsState] | None = None,
    run_href: str | None = None,
    on_job_filter: Any = None,
    row_extras: RowExtras | None = None,
    searchable: bool = False,
    selectable: bool = False,
    attach: bool = True,
    **props: Any,
) -> rx.Component:
    """The runs of `runs` as a table. `job_names` fills the job filter (no job filter without it);
    `on_job_filter`: an event handler also given the job chosen there ("" for every job), so that
    counts or a chart can follow it (or give it to the state: `use_runs(..., on_job_filter=...)`,
    which the search follows too); `actions` adds the retry/cancel/delete buttons each row's
    status allows; `run_href` (say "/runs/") makes each job name a link to `run_href` + the run's
    id; `row_extras(row)` renders more under each row's job name; `searchable` adds the search
    box, `selectable` the checkboxes and the bulk actions; `attach`: attach the state on mount."""
    columns = ["Run", "Status", "Step", "Progress", "Created", "Duration"] + (["Actions"] if actions else [])
    header = [rx.table.column_header_cell(name) for name in columns]
    if selectable:
        header.insert(0, rx.table.column_header_cell(_page_checkbox(runs), width="2rem"))
    return rx.vstack(
        search_box(runs) if searchable else rx.fragment(),
        _toolbar(runs, job_names, on_job_filter),
        bulk_actions(runs) if selectable else rx.fragment(),
        rx.cond(
            runs.error,
            rx.callout(runs.error.to(str), icon="triangle-alert", color_scheme="red", size="1", width="100%"),
            rx.fragment(),
        ),
        rx.table.root(
            rx.table.header(rx.table.row(*header)),
            rx.table.body(
                rx.foreach(runs.runs, lambda row: _row(runs, row, actions, run_href, row_extras, selectable)),
            ),
            variant="surface",
            size="1",
            width="100%",
            class_name="durably-run-table",
        ),
        rx.cond(runs.is_empty, _empty(runs, on_job_filter), rx.fragment()),
        _pager(runs),
        width="100%",
        spacing="3",
        on_mount=runs.attach if attach else None,
        **props,
    )


def _toolbar(runs: type[UseRunsState], job_names: list[str] | None, on_job_filter: Any) -> rx.Component:
    filters = []
    if job_names:
        filters.append(
            _labelled(
                "Job",
                _select(
                    ["all", *job_names],
                    rx.cond(runs.job_filter, runs.job_filter, "all"),
                    [runs.set_job_filter, *([] if on_job_filter is None else [on_job_filter])],
                    "durably-job-filter",
                ),
            )
        )
    filters.append(
        _labelled(
            "Status",
            _select(
                STATUSES,
                rx.cond(runs.status_filter, runs.status_filter, "all"),
                runs.set_status_filter,
                "durably-status-filter",
            ),
        )
    )
    return rx.hstack(
        *filters,
        rx.spacer(),
        rx.cond(runs.is_loading, rx.spinner(size="2"), rx.fragment()),
        rx.cond(
            runs.connection == "reconnecting",
            rx.badge("reconnecting…", color_scheme="amber"),
            rx.cond(
                runs.page == 0,
                rx.cond(
                    runs.connection == "open",
                    rx.badge("live", color_scheme="green", variant="soft"),
                    rx.badge("connecting…", variant="soft"),
                ),
                rx.badge("paused", variant="soft"),
            ),
        ),
        rx.icon_button(
            rx.icon("refresh-cw", size=14), variant="soft", size="2", on_click=runs.refresh, title="Refresh"
        ),
        width="100%",
        align="center",
    )


def _select(items: list[str], value: Var, on_change: Any, class_name: str) -> rx.Component:
    """A select whose trigger (the element on the page) has `class_name`: `rx.select(...)` would
    put it on the root, which renders no element."""
    return rx.select.root(
        rx.select.trigger(class_name=class_name),
        rx.select.content(*(rx.select.item(item, value=item) for item in items)),
        value=value,
        on_change=on_change,
        size="2",
    )


def _labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.hstack(rx.text(label, size="2", color_scheme="gray"), control, align="center", spacing="2")


def _page_checkbox(runs: type[UseRunsState]) -> rx.Component:
    return _checkbox(
        runs.page_selected,
        runs.select_page(~runs.page_selected),  # type: ignore[operator]  # see _pager
        disabled=runs.runs.length() == 0,
        title="Select every run on this page",
        class_name="durably-select-page",
    )


def _checkbox(checked: Var[bool], on_change: Any, **props: Any) -> rx.Component:
    """A plain checkbox: a page of runs renders one per row, and the browser's own is the cheapest
    (Radix's is a button, an indicator and a hidden input; with the browser's the first page's rows
    rendered in 98 ms instead of 116, median of 12 cold loads, bench/dashboard_browser.py)."""
    return rx.el.input(
        type="checkbox",
        checked=checked,
        on_change=on_change,
        style={"accent_color": rx.color("accent", 9), "width": "15px", "height": "15px", "cursor": "pointer"},
        **props,
    )


def _row(
    runs: type[UseRunsState],
    row: ObjectVar[dict[str, Any]],
    actions: type[UseRunActionsState] | None,
    run_href: str | None,
    row_extras: RowExtras | None,
    selectable: bool,
) -> rx.Component:
    run_id = row["id"].to(str)
    job_name = row["job_name"].to(str)
    status = row["status"].to(str)
    short = rx.code(row["short_id"].to(str), variant="ghost", size="1", color_scheme="gray", title=run_id)
    cells = [
        rx.table.cell(
            rx.vstack(
                rx.text(job_name, weight="medium")
                if run_href is None
                else rx.link(job_name, href=run_href + run_id, weight="medium"),
                rx.hstack(
                    short if run_href is None else rx.link(short, href=run_href + run_id),
                    row_extras(row) if row_extras is not None else rx.fragment(),
                    spacing="2",
                    align="center",
                    class_name="durably-run-id",
                ),
                rx.cond(
                    row["labels"].to(dict[str, str]).length() > 0,
                    label_chips(row["labels"], on_select=runs.filter_by_label),  # type: ignore[arg-type]  # see _pager
                    rx.fragment(),
                ),
                spacing="1",
            )
        ),
        rx.table.cell(status_badge(status)),
        rx.table.cell(_step_cell(row), max_width="18rem"),
        rx.table.cell(
            rx.cond(
                status == "running",
                run_progress(row["progress_percent"].to(int)),
                rx.cond(
                    row["progress_percent"].is_not_none(),
                    rx.text(row["progress_percent"].to_string() + "%", size="1"),
                    _muted("—"),
                ),
            ),
            min_width="7rem",
        ),
        rx.table.cell(
            rx.moment(
                row["created_at"].to(str),
                from_now=True,
                interval=15000,
                with_title=True,
                title_format="YYYY-MM-DD HH:mm:ss",
            ),
            white_space="nowrap",
        ),
        rx.table.cell(
            rx.cond(
                row["duration_ms"].is_not_none(),
                rx.text(row["duration_text"].to(str), size="1"),
                rx.cond(
                    status == "running",
                    rx.text(
                        rx.moment(
                            row["started_at"].to(str), duration_from_now=True, interval=1000, format="m[m] ss[s]"
                        ),
                        size="1",
                    ),
                    _muted("—"),
                ),
            ),
            white_space="nowrap",
        ),
    ]
    if selectable:
        cells.insert(
            0,
            rx.table.cell(
                _checkbox(
                    runs.selected_ids.contains(run_id),
                    runs.toggle_run(run_id, ~runs.selected_ids.contains(run_id)),  # type: ignore[operator]
                    class_name="durably-select-run",
                    title="Select this run",
                )
            ),
        )
    if actions is not None:
        cells.append(
            rx.table.cell(
                run_actions(actions, run_id, status, size="1", show_error=False, hide_disabled=True),
            )
        )
    return rx.table.row(*cells, class_name="durably-run-row", data_run_id=run_id, data_status=status, align="center")


def _step_cell(row: ObjectVar[dict[str, Any]]) -> rx.Component:
    """The step a running run is at, where a stopped one stopped (with a failure's first line), what
    a waiting one waits for (and until when), or how many steps a completed one ran."""
    status = row["status"].to(str)
    step_name = row["step_name"]
    at = rx.cond(step_name, rx.code(step_name.to(str), size="1", variant="ghost"), _muted("—"))
    running = rx.cond(
        step_name, at, _muted("step " + (row["current_step_index"].to(int) + 1).to_string())
    )  # no step:start seen yet
    error = rx.text(
        row["error_line"].to(str),
        size="1",
        color_scheme="red",
        title=row["error_line"].to(str),
        class_name="durably-run-error-line",
        style={"overflow": "hidden", "text_overflow": "ellipsis", "white_space": "nowrap"},
        max_width="100%",
    )
    return rx.box(
        rx.match(
            status,
            ("running", running),
            ("failed", rx.vstack(at, error, spacing="0", max_width="100%")),
            ("cancelled", at),
            ("completed", _muted(row["step_count"].to_string() + " steps")),
            (
                "pending",
                rx.cond(row["waiting_for"], waiting_note(row["waiting_for"], color_scheme="gray"), _muted("—")),
            ),
            _muted("—"),
        ),
        class_name="durably-run-step",
    )


def _muted(text: Any) -> rx.Component:
    return rx.text(text, size="1", color_scheme="gray")


def _empty(runs: type[UseRunsState], on_job_filter: Any) -> rx.Component:
    """No rows: filters that match nothing say so (and clear in one click); else, no runs yet."""
    clear = [runs.clear_filters, *([] if on_job_filter is None else [on_job_filter("")])]
    return rx.center(
        rx.cond(
            runs.is_filtered,
            rx.vstack(
                rx.icon("filter-x", size=28, color=rx.color("gray", 9)),
                rx.text("No runs match these filters.", color_scheme="gray"),
                rx.button(
                    "Clear filters", size="1", variant="soft", on_click=clear, class_name="durably-clear-filters"
                ),
                align="center",
            ),
            rx.vstack(
                rx.icon("inbox", size=28, color=rx.color("gray", 9)),
                rx.text("No runs here yet.", color_scheme="gray"),
                align="center",
            ),
        ),
        padding="2rem",
        width="100%",
        class_name="durably-runs-empty",
        data_filtered=runs.is_filtered,
    )


def _pager(runs: type[UseRunsState]) -> rx.Component:
    return rx.hstack(
        rx.text(
            rx.cond(
                runs.runs.length() > 0,
                "Runs " + runs.first_row_number.to_string() + "–" + runs.last_row_number.to_string(),
                "",
            ),
            size="1",
            color_scheme="gray",
        ),
        rx.spacer(),
        rx.button(
            "Newest",
            size="1",
            variant="soft",
            on_click=runs.go_to_page(0),  # type: ignore[operator]  # mypy reads an @rx.event handler as EventNamespace (its __new__ returns the callback)
            disabled=runs.page == 0,
        ),
        rx.button(
            "Previous",
            size="1",
            variant="soft",
            on_click=runs.prev_page,
            disabled=runs.page == 0,
            class_name="durably-prev",
        ),
        rx.text("Page " + (runs.page + 1).to_string(), size="1"),
        rx.button(
            "Next",
            size="1",
            variant="soft",
            on_click=runs.next_page,
            disabled=~runs.has_more,
            class_name="durably-next",
        ),
        width="100%",
        align="center",
    )
