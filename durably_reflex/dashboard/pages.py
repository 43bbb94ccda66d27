"""The dashboard's pages, built for one API: `/` the runs, `/runs/[run_id]` one run (with the
form to send the signal it waits for, if it does), `/jobs`, `/schedules`.

`build_pages(client, ...)` creates the hook states the pages read (one set per dashboard) and
returns the page functions; `create_dashboard` adds them to an app. A typed client (of an engine's
jobs) gives the Jobs page a form per job; an untyped one, for an API elsewhere whose jobs the
dashboard does not know, gives it the server's job list and a trigger by name (remote_jobs.py).
Where the server lacks a feature (Durably's Node server: no counts, no stored logs, no schedules),
the pages say so instead of showing an empty panel. The element ids and classes here (`nav-runs`,
`job-<name>`, `open-run`, ...) are what the browser tests and users' own scripts select by: keep
them stable.

The runs page keeps its filters and its search in the URL
(`/?job=import-csv&status=failed&q=customer%3Dacme&range=7d`), so a filtered view can be shared and
reloaded; the counts and the chart follow the job filter (the rest of a search narrows the table
only, and the page says so). Its rows can be selected and acted on in bulk, as can every run the
search matches. A run's page offers a replay from each settled step and lists its earlier
attempts, its replays and the run it replays.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import reflex as rx

from .._client import DurablyClient, TypedDurablyClient
from .._dashboard_targets import shown_url
from ..components import (
    run_detail,
    run_progress,
    run_table,
    runs_chart,
    status_badge,
    status_counts,
    trigger_form,
    waiting_note,
)
from ..states import (
    UseJobState,
    use_job,
    use_job_run,
    use_run_actions,
    use_run_stats,
    use_runs,
    use_schedules,
    use_signal,
)
from .remote_jobs import remote_jobs_content, use_remote_jobs
from .schedules_page import schedules_content

PAGE_SIZE = 20
Page = Callable[[], rx.Component]


@dataclass(frozen=True)
class DashboardPages:
    """The page functions of one dashboard (see `create_dashboard` for their routes)."""

    runs: Page
    run: Page
    jobs: Page
    schedules: Page


def build_pages(client: DurablyClient, *, forward_headers: Sequence[str] = (), remote: bool = False) -> DashboardPages:
    """The pages for the API of `client` (typed: a form per job of its engine). `forward_headers`:
    the request headers of each tab's connection its states send on to the API (the user's
    credentials, when the API checks them). `remote`: the API is served elsewhere, so the top bar
    names it rather than linking to its OpenAPI document, which the browser may not reach."""
    job_clients = dict(client.jobs) if isinstance(client, TypedDurablyClient) else None
    jobs = {key: job.definition for key, job in (job_clients or {}).items()}
    job_names = sorted(definition.name for definition in jobs.values())
    headers = tuple(forward_headers)

    stats = use_run_stats(client, url_query=True, forward_headers=headers)
    runs = use_runs(
        client, page_size=PAGE_SIZE, url_query=True, on_job_filter=stats.set_job_filter, forward_headers=headers
    )
    row_actions = use_run_actions(client, forward_headers=headers)
    run_view = use_job_run(client, max_logs=500, history=True, forward_headers=headers)
    detail_actions = use_run_actions(client, forward_headers=headers)
    signals = use_signal(client, forward_headers=headers)
    schedules = use_schedules(client, forward_headers=headers)
    job_states = {
        key: use_job(job, auto_resume=False, follow_latest=False, forward_headers=headers)
        for key, job in (job_clients or {}).items()
    }
    # Jobs the dashboard has no models of: the server's list, and a trigger by name.
    remote_jobs = use_remote_jobs(client, forward_headers=headers) if job_clients is None else None

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
                rx.link("Schedules", href="/schedules", weight="medium", id="nav-schedules"),
                spacing="5",
            ),
            rx.spacer(),
            rx.text(f"API {shown_url(client.api)}", size="1", color_scheme="gray", id="remote-api")
            if remote
            else rx.link(
                rx.text("API", size="2"), href=f"{client.api}/openapi.json", is_external=True, color_scheme="gray"
            ),
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
            # Once the server has said it counts nothing, the panels (which ask it when they mount) go.
            rx.cond(
                stats.stats_offered,
                rx.fragment(
                    status_counts(stats, on_select=runs.set_status_filter, selected=runs.status_filter),
                    runs_chart(stats),
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
            ),
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

    def run_page() -> rx.Component:
        # The route's [run_id]: Reflex adds it to rx.State once the page is added, so read it here.
        route_run_id = rx.State.run_id  # type: ignore[attr-defined]
        return layout(
            rx.link(rx.hstack(rx.icon("arrow-left", size=14), rx.text("All runs"), align="center"), href="/", size="2"),
            retried_as_new_run(route_run_id),
            run_detail(
                run_view,
                detail_actions,
                run_id=route_run_id,
                on_deleted=rx.redirect("/"),
                signals=signals,
                run_href="/runs/",
                runs_href="/",
            ),
        )

    def retried_as_new_run(route_run_id: rx.Var) -> rx.Component:
        """Where the server retries by creating a new run (Durably's Node server), the way to it:
        this page's run stays as it ended."""
        new_run = detail_actions.retried_run_id.to(str)
        return rx.cond(
            (detail_actions.retried_from == route_run_id) & (detail_actions.retried_run_id != route_run_id),
            rx.callout(
                rx.hstack(
                    rx.text("This server retried the run as a new run."),
                    rx.link("Open it →", href="/runs/" + new_run, class_name="durably-retried-run"),
                    spacing="2",
                    wrap="wrap",
                ),
                icon="rotate-ccw",
                size="1",
                width="100%",
            ),
            rx.fragment(),
        )

    def schedules_page() -> rx.Component:
        return layout(*schedules_content(schedules, run_href="/runs/"))

    def jobs_page() -> rx.Component:
        if remote_jobs is not None:
            return layout(*remote_jobs_content(remote_jobs, run_href="/runs/"))
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
                rx.cond(job.current_run_id, current_run(job), rx.fragment()),
                trigger_form(job, attach=False),  # the card attaches it
                rx.el.details(
                    rx.el.summary(
                        rx.text("Input schema (JSON)", size="1", color_scheme="gray", as_="span"),
                        style={"cursor": "pointer"},
                    ),
                    rx.code_block(
                        json.dumps(schema, indent=2) if schema else "any JSON", language="json", font_size="11px"
                    ),
                    class_name="durably-input-schema",
                    width="100%",
                ),
                spacing="3",
                width="100%",
            ),
            width="100%",
            id=f"job-{definition.name}",
            on_mount=job.attach,
        )

    def current_run(job: type[UseJobState]) -> rx.Component:
        """The card's last run: its progress while it runs; once it has ended, how it ended."""
        outcome = rx.match(
            job.status,
            (
                "pending",
                rx.cond(
                    job.run.to(dict)["waiting_for"],
                    waiting_note(job.run.to(dict)["waiting_for"], color_scheme="gray"),
                    rx.text("Waiting for a worker…", size="1", color_scheme="gray"),
                ),
            ),
            ("failed", rx.text(job.error_line, size="1", color_scheme="red", class_name="durably-job-error")),
            ("completed", rx.text("Completed in " + job.duration_text, size="1", color_scheme="gray")),
            ("cancelled", rx.text(job.stop_summary, size="1", color_scheme="gray")),
            rx.fragment(),
        )
        return rx.hstack(
            rx.box(
                rx.cond(job.is_running, run_progress(job.progress_percent, job.progress_message), outcome),
                flex="1",
                min_width="0",
            ),
            rx.link("Open run →", href="/runs/" + job.current_run_id.to(str), size="2", class_name="open-run"),
            width="100%",
            align="center",
            class_name="durably-job-run",
            data_status=job.status.to(str),
        )

    return DashboardPages(runs=runs_page, run=run_page, jobs=jobs_page, schedules=schedules_page)
