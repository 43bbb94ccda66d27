"""The dashboard's Schedules page (`/schedules`): every schedule with its next fire time and a
countdown, when it last fired, its newest runs (links to their pages) and buttons to pause, resume
or delete it, live.
"""

from __future__ import annotations

import reflex as rx

from ..components import schedules_table
from ..states import UseSchedulesState
from .layout import Layout, Page


def schedules_page(layout: Layout, schedules: type[UseSchedulesState]) -> Page:
    """The page of `schedules`, in `layout`."""

    def page() -> rx.Component:
        return layout(*schedules_content(schedules, run_href="/runs/"))

    return page


def schedules_content(schedules: type[UseSchedulesState], *, run_href: str = "/runs/") -> list[rx.Component]:
    """The page's content under the dashboard's navigation bar."""
    return [
        rx.hstack(
            rx.heading("Schedules", size="7"),
            rx.spacer(),
            rx.button(
                rx.icon("refresh-cw", size=14),
                "Refresh",
                size="1",
                variant="soft",
                color_scheme="gray",
                on_click=schedules.refresh,
                loading=schedules.is_loading,
                class_name="durably-refresh-schedules",
            ),
            width="100%",
            align="center",
        ),
        rx.text(
            "Jobs triggered on a cron expression (job.schedule(cron, input)). Each tick fires once, "
            "however many workers run; a paused schedule skips its ticks until it is resumed.",
            color_scheme="gray",
            size="2",
        ),
        schedules_table(schedules, run_href=run_href),
    ]
