"""The dashboard's jobs page (`/jobs`): a card per job the dashboard has the models of, with its
form to trigger a run, its last run followed live, and its input schema (collapsed); for an API
whose jobs it has no models of, the server's list and a trigger by name (remote_jobs.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import reflex as rx

from .._jobs import JobDefinition
from ..components import run_progress, status_badge, trigger_form, waiting_note
from ..states import UseJobState
from .layout import Layout, Page
from .remote_jobs import RemoteJobsState, remote_jobs_content


def jobs_page(
    layout: Layout,
    jobs: Mapping[str, JobDefinition],
    job_states: Mapping[str, type[UseJobState]],
    remote_jobs: type[RemoteJobsState] | None,
) -> Page:
    """The page of `jobs` (registration key -> definition) with their states, or, with
    `remote_jobs`, of the server's own list."""

    def page() -> rx.Component:
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

    return page


def current_run(job: type[UseJobState]) -> rx.Component:
    """A card's last run: its progress while it runs; once it has ended, how it ended."""
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
