"""`run_table`: one page of runs, live, with filters, pagination and row links.

Driven by a `use_runs` state: the first page follows every run's events (new runs appear, statuses
change, progress bars move), other pages stay as fetched. Filters change the state's job and status
filters and go back to the first page. With `run_href`, a row's job name links to the run's page
(`run_href` + the run's id); without it, rows link nowhere. The table attaches its state on mount.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import ObjectVar, Var

from ..states import UseRunActionsState, UseRunsState
from .run_actions import run_actions
from .status import run_progress, status_badge

STATUSES = ["all", "pending", "running", "completed", "failed", "cancelled"]


def run_table(
    runs: type[UseRunsState],
    *,
    job_names: list[str] | None = None,
    actions: type[UseRunActionsState] | None = None,
    run_href: str | None = None,
    **props: Any,
) -> rx.Component:
    """The runs of `runs` as a table. `job_names` fills the job filter (no job filter without it);
    `actions` adds retry/cancel/delete buttons to each row; `run_href` (say "/runs/") makes each
    job name a link to `run_href` + the run's id."""
    columns = ["Job", "Status", "Progress", "Step", "Created", "Duration"] + (["Actions"] if actions else [])
    return rx.vstack(
        _toolbar(runs, job_names),
        rx.cond(
            runs.error,
            rx.callout(runs.error.to(str), icon="triangle-alert", color_scheme="red", size="1", width="100%"),
            rx.fragment(),
        ),
        rx.table.root(
            rx.table.header(rx.table.row(*(rx.table.column_header_cell(name) for name in columns))),
            rx.table.body(
                rx.foreach(runs.runs, lambda row: _row(row, actions, run_href)),
            ),
            variant="surface",
            size="1",
            width="100%",
            class_name="durably-run-table",
        ),
        rx.cond(runs.is_empty, _empty(), rx.fragment()),
        _pager(runs),
        width="100%",
        spacing="3",
        on_mount=runs.attach,
        **props,
    )


def _toolbar(runs: type[UseRunsState], job_names: list[str] | None) -> rx.Component:
    filters = []
    if job_names:
        filters.append(
            _labelled(
                "Job",
                _select(
                    ["all", *job_names],
                    rx.cond(runs.job_filter, runs.job_filter, "all"),
                    runs.set_job_filter,
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
                rx.badge("live", color_scheme="green", variant="soft"),
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


def _row(
    row: ObjectVar[dict[str, Any]], actions: type[UseRunActionsState] | None, run_href: str | None
) -> rx.Component:
    run_id = row["id"].to(str)
    job_name = row["job_name"].to(str)
    cells = [
        rx.table.cell(
            rx.text(job_name, weight="medium")
            if run_href is None
            else rx.link(job_name, href=run_href + run_id, weight="medium")
        ),
        rx.table.cell(status_badge(row["status"].to(str))),
        rx.table.cell(
            rx.cond(
                row["status"].to(str) == "running",
                run_progress(row["progress_percent"].to(int)),
                rx.cond(
                    row["progress_percent"].is_not_none(),
                    rx.text(row["progress_percent"].to_string() + "%", size="1"),
                    rx.fragment(),
                ),
            ),
            min_width="8rem",
        ),
        rx.table.cell(rx.text(row["current_step_index"].to_string(), size="1")),
        rx.table.cell(
            rx.moment(
                row["created_at"].to(str),
                from_now=True,
                interval=15000,
                with_title=True,
                title_format="YYYY-MM-DD HH:mm:ss",
            )
        ),
        rx.table.cell(
            rx.cond(
                row["duration_ms"].is_not_none(),
                rx.text(row["duration_text"].to(str), size="1"),
                rx.cond(
                    row["status"].to(str) == "running",
                    rx.text(
                        rx.moment(
                            row["started_at"].to(str), duration_from_now=True, interval=1000, format="m[m] ss[s]"
                        ),
                        size="1",
                    ),
                    rx.text("—", size="1", color_scheme="gray"),
                ),
            )
        ),
    ]
    if actions is not None:
        cells.append(rx.table.cell(run_actions(actions, run_id, row["status"].to(str), size="1", show_error=False)))
    return rx.table.row(
        *cells, class_name="durably-run-row", data_run_id=run_id, data_status=row["status"].to(str), align="center"
    )


def _empty() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon("inbox", size=28, color=rx.color("gray", 9)),
            rx.text("No runs here yet.", color_scheme="gray"),
            align="center",
        ),
        padding="2rem",
        width="100%",
        class_name="durably-runs-empty",
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
