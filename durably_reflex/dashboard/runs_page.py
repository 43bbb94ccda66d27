"""The dashboard's runs page (`/`): the counts per status, the chart of runs created, and the runs
table with its search, filters, selection and bulk actions.

Its filters and its search live in the URL (`/?job=import-csv&status=failed&q=customer%3Dacme&range=7d`),
so a filtered view can be shared and reloaded; the counts and the chart follow the job filter (the
rest of a search narrows the table only, and the page says so).
"""

from __future__ import annotations

import reflex as rx

from ..components import run_table, runs_chart, status_counts
from ..states import UseRunActionsState, UseRunsState, UseRunStatsState
from .layout import Layout, Page


def runs_page(
    layout: Layout,
    runs: type[UseRunsState],
    stats: type[UseRunStatsState],
    row_actions: type[UseRunActionsState],
    job_names: list[str],
) -> Page:
    """The page of `runs` (its rows) and `stats` (its counts), `row_actions` acting on a row;
    `job_names` fill the job filter."""

    def page() -> rx.Component:
        # The page attaches its states, the rows' first: the counts' query, slower, would hold up
        # the rows' on the database's reading connection, and it renders the heavier panel.
        return layout(
            rx.heading("Runs", size="7"),
            # Once the server has said it counts nothing, the panels go.
            rx.cond(
                stats.stats_offered,
                rx.fragment(
                    status_counts(stats, on_select=runs.set_status_filter, selected=runs.status_filter, attach=False),
                    runs_chart(stats, attach=False),
                    counts_note(),
                ),
                rx.text(
                    "This server keeps no run counts (it has no GET /stats route), so the counts and the chart "
                    "are not shown.",
                    size="1",
                    color_scheme="gray",
                    class_name="durably-no-stats",
                ),
            ),
            run_table(
                runs,
                job_names=job_names,
                actions=row_actions,
                run_href="/runs/",
                searchable=True,
                selectable=True,
                attach=False,
            ),
            on_mount=[runs.attach, stats.attach],
        )

    def counts_note() -> rx.Component:
        """The counts are kept per job and status: a search beyond them narrows the table only."""
        return rx.cond(
            runs.search_terms,
            rx.text(
                "The counts and the chart follow the job filter only; the rest of the search (",
                rx.code(runs.search_terms, size="1", variant="ghost"),
                ") narrows the table below, not them.",
                size="1",
                color_scheme="gray",
                class_name="durably-counts-note",
            ),
            rx.fragment(),
        )

    return page
