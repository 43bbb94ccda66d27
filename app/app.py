"""The durably-reflex dashboard: every job and run, live.

Pages: `/` the runs (counts per status, runs over time, the run table), `/runs/[run_id]` one run
(steps, logs, actions), `/jobs` each job with its input schema and a form to trigger it.

The jobs are those of the engine named by `$DURABLY_APP` ("module:attribute"; default the examples
in `app/jobs.py`). The API is mounted on this app's backend at /api/durably and the engine's worker
runs with it; the pages' states read the API over HTTP like any client would.
"""

from __future__ import annotations

import importlib
import json
import os

import reflex as rx

from durably_reflex import Durably, create_durably_client, mount_durably
from durably_reflex.states import use_job, use_job_run, use_run_actions, use_run_stats, use_runs
from durably_reflex.components import (
    run_detail,
    run_progress,
    run_table,
    runs_chart,
    status_badge,
    status_counts,
    trigger_form,
)


def load_engine(target: str) -> Durably:
    """The `Durably` engine at "module:attribute"."""
    module_name, _, attribute = target.partition(":")
    engine = getattr(importlib.import_module(module_name), attribute or "durably")
    if not isinstance(engine, Durably):
        raise TypeError(f"DURABLY_APP={target!r} is a {type(engine).__name__}, not a Durably engine")
    return engine


durably = load_engine(os.environ.get("DURABLY_APP", "app.jobs:durably"))
client = create_durably_client(durably)
JOBS = {key: handle.definition for key, handle in durably.jobs.items()}
JOB_NAMES = sorted(definition.name for definition in JOBS.values())

runs = use_runs(client, page_size=20)
stats = use_run_stats(client)
row_actions = use_run_actions(client)
run_view = use_job_run(client, max_logs=500)
detail_actions = use_run_actions(client)
job_states = {key: use_job(client.jobs[key], auto_resume=False, follow_latest=False) for key in JOBS}


# -- layout ---------------------------------------------------------------------------------------------
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


def layout(*children: rx.Component, **props: object) -> rx.Component:
    return rx.box(
        navbar(),
        rx.container(rx.vstack(*children, spacing="5", width="100%"), size="4", padding_y="1.5rem", **props),
        min_height="100vh",
    )


# -- pages ---------------------------------------------------------------------------------------------
def runs_page() -> rx.Component:
    return layout(
        rx.heading("Runs", size="7"),
        status_counts(stats, on_select=runs.set_status_filter),
        runs_chart(stats),
        run_table(runs, job_names=JOB_NAMES, actions=row_actions, run_href="/runs/"),
    )


def run_page() -> rx.Component:
    return layout(
        rx.link(rx.hstack(rx.icon("arrow-left", size=14), rx.text("All runs"), align="center"), href="/", size="2"),
        run_detail(run_view, detail_actions, run_id=rx.State.run_id, on_deleted=rx.redirect("/")),
    )


def jobs_page() -> rx.Component:
    return layout(
        rx.heading("Jobs", size="7"),
        rx.text(f"{len(JOBS)} jobs registered. Trigger one and follow it live.", color_scheme="gray"),
        *(job_card(key) for key in sorted(JOBS, key=lambda key: JOBS[key].name)),
    )


def job_card(key: str) -> rx.Component:
    definition, job = JOBS[key], job_states[key]
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
                    rx.link("Open run →", href="/runs/" + job.current_run_id.to(str), size="2", class_name="open-run"),
                    width="100%",
                    align="center",
                ),
                rx.fragment(),
            ),
            rx.grid(
                trigger_form(job),
                rx.box(
                    rx.text("Input schema", size="2", weight="bold"),
                    rx.code_block(json.dumps(schema, indent=2) if schema else "any JSON", language="json", font_size="11px"),
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


app = rx.App()
mount_durably(app, durably)
app.add_page(runs_page, route="/", title="Runs · durably")
app.add_page(run_page, route="/runs/[run_id]", title="Run · durably")
app.add_page(jobs_page, route="/jobs", title="Jobs · durably")
