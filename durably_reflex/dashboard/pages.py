"""The dashboard's pages, built for one engine: `/` the runs, `/runs/[run_id]` one run, `/jobs`.

`build_pages(durably, ...)` creates the hook states the pages read (one set per dashboard) and
returns the page functions; `create_dashboard` adds them to an app. The element ids and classes
here (`nav-runs`, `job-<name>`, `open-run`, ...) are what the browser tests and users' own
scripts select by: keep them stable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import reflex as rx

from .._client import create_durably_client
from .._engine import Durably
from ..components import (
    run_detail,
    run_progress,
    run_table,
    runs_chart,
    status_badge,
    status_counts,
    trigger_form,
)
from ..states import use_job, use_job_run, use_run_actions, use_run_stats, use_runs

PAGE_SIZE = 20
Page = Callable[[], rx.Component]


@dataclass(frozen=True)
class DashboardPages:
    """The page functions of one dashboard (see `create_dashboard` for their routes)."""

    runs: Page
    run: Page
    jobs: Page


def build_pages(durably: Durably, *, forward_headers: Sequence[str] = ()) -> DashboardPages:
    """The pages for `durably`'s jobs. `forward_headers`: the request headers of each tab's
    connection its states send on to the API (the user's credentials, when the API checks them)."""
    client = create_durably_client(durably)
    jobs = {key: handle.definition for key, handle in durably.jobs.items()}
    job_names = sorted(definition.name for definition in jobs.values())
    headers = tuple(forward_headers)

    runs = use_runs(client, page_size=PAGE_SIZE, forward_headers=headers)
    stats = use_run_stats(client, forward_headers=headers)
    row_actions = use_run_actions(client, forward_headers=headers)
    run_view = use_job_run(client, max_logs=500, forward_headers=headers)
    detail_actions = use_run_actions(client, forward_headers=headers)
    job_states = {
        key: use_job(client.jobs[key], auto_resume=False, follow_latest=False, forward_headers=headers) for key in jobs
    }

    def navbar() -> rx.Component:
        return rx.hstack(
            rx.hstack(
                rx.icon("layers", size=22, color=rx.color("accent", 10)),
                rx.heading("durably", size="5"),
                rx.badge("reflex", variant="soft"),
                align="center",
                spacing="2",
            ),
            rx.hstack(
                rx.link("Runs", href="/", weight="medium", id="nav-runs"),
                rx.link("Jobs", href="/jobs", weight="medium", id="nav-jobs"),
                spacing="5",
            ),
            rx.spacer(),
            rx.link(rx.text("API", size="2"), href=f"{client.api}/openapi.json", is_external=True, color_scheme="gray"),
            rx.color_mode.button(size="2", variant="ghost", id="color-mode"),
            width="100%",
            align="center",
            padding_y="0.75rem",
            padding_x="1.5rem",
            border_bottom=f"1px solid {rx.color('gray', 5)}",
            spacing="6",
        )

    def layout(*children: rx.Component) -> rx.Component:
        return rx.box(
            navbar(),
            rx.container(rx.vstack(*children, spacing="5", width="100%"), size="4", padding_y="1.5rem"),
            min_height="100vh",
        )

    def runs_page() -> rx.Component:
        return layout(
            rx.heading("Runs", size="7"),
            status_counts(stats, on_select=runs.set_status_filter),
            runs_chart(stats),
            run_table(runs, job_names=job_names, actions=row_actions, run_href="/runs/"),
        )

    def run_page() -> rx.Component:
        # The route's [run_id]: Reflex adds it to rx.State once the page is added, so read it here.
        route_run_id = rx.State.run_id  # type: ignore[attr-defined]
        return layout(
            rx.link(rx.hstack(rx.icon("arrow-left", size=14), rx.text("All runs"), align="center"), href="/", size="2"),
            run_detail(run_view, detail_actions, run_id=route_run_id, on_deleted=rx.redirect("/")),
        )

    def jobs_page() -> rx.Component:
        return layout(
            rx.heading("Jobs", size="7"),
            rx.text(f"{len(jobs)} jobs registered. Trigger one and follow it live.", color_scheme="gray"),
            *(job_card(key) for key in sorted(jobs, key=lambda key: jobs[key].name)),
        )

    def job_card(key: str) -> rx.Component:
        definition, job = jobs[key], job_states[key]
        schema = definition.input_schema()
        return rx.card(
            rx.vstack(
                rx.hstack(
                    rx.heading(definition.name, size="4"),
                    rx.code(key, variant="ghost", color_scheme="gray"),
                    rx.spacer(),
                    rx.cond(job.current_run_id, status_badge(job.status), rx.fragment()),
                    align="center",
                    width="100%",
                ),
                rx.cond(
                    job.current_run_id,
                    rx.hstack(
                        rx.box(run_progress(job.progress_percent, job.progress_message), flex="1"),
                        rx.link(
                            "Open run →", href="/runs/" + job.current_run_id.to(str), size="2", class_name="open-run"
                        ),
                        width="100%",
                        align="center",
                    ),
                    rx.fragment(),
                ),
                rx.grid(
                    trigger_form(job, attach=False),  # the card attaches it
                    rx.box(
                        rx.text("Input schema", size="2", weight="bold"),
                        rx.code_block(
                            json.dumps(schema, indent=2) if schema else "any JSON", language="json", font_size="11px"
                        ),
                        max_height="28rem",
                        overflow="auto",
                    ),
                    columns=rx.breakpoints(initial="1", md="2"),
                    spacing="4",
                    width="100%",
                ),
                spacing="3",
                width="100%",
            ),
            width="100%",
            id=f"job-{definition.name}",
            on_mount=job.attach,
        )

    return DashboardPages(runs=runs_page, run=run_page, jobs=jobs_page)
