"""The Jobs page of a dashboard that shows an API it knows no jobs of (`create_dashboard(api=...)`
without an engine: `durably-reflex dashboard --api URL`).

Without the jobs' Python models the page cannot build a form per job at compile time, so it lists
what the server's `GET /jobs` tells (each job's input JSON Schema, collapsed) and triggers by job
name with the input written as JSON. Durably's Node server has no `/jobs`: the page then says that
the server lists no jobs and keeps the trigger box, where a job name the server does not know is
its own clear error. The runs triggered from the box are listed with links to their pages.

Element ids and classes (stable, for tests and scripts): `#trigger-by-name` (the form, with inputs
`#trigger-by-name-job` and `#trigger-by-name-input`), `.durably-jobs-not-listed`,
`.durably-remote-job` (`data-job`), `.durably-trigger-error`, `.durably-triggered-run` (`data-run-id`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import reflex as rx

from .._client import DurablyClient
from .._errors import DurablyError, FeatureNotSupportedError, JobNotFoundError
from ..states import DurablyState
from ..states.hooks import configured_mixin, new_state

TRIGGERED_KEPT = 10  # runs triggered from the box that the page lists, newest first
NOT_LISTED = (
    "This server does not list its jobs (it has no GET /jobs route: Durably's own Node server has none), so "
    "the dashboard cannot build forms from their input schemas. Trigger a run by its job name, with its input "
    "as JSON."
)


class RemoteJobsState(DurablyState, mixin=True):
    """The server's jobs as `GET /jobs` lists them (`jobs_offered` False where it lists none), and a
    trigger by job name: `job_name` (the box's), `trigger_error`, `is_triggering`, `triggered`."""

    jobs: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)  # name, schema (JSON text)
    jobs_offered: rx.Field[bool] = rx.field(True)
    is_loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str | None] = rx.field(None)  # the list could not be read
    job_name: rx.Field[str] = rx.field("")
    trigger_error: rx.Field[str | None] = rx.field(None)
    is_triggering: rx.Field[bool] = rx.field(False)
    triggered: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)  # id, job_name; newest first

    @rx.event(background=True)
    async def load(self) -> None:
        """Read the server's jobs; put it in `on_mount`."""
        async with self:
            self.is_loading, api = True, self.api()
        listed = await listed_jobs(api)
        async with self:
            self.jobs, self.jobs_offered, self.error = listed.rows, listed.offered, listed.error
            self.is_loading = False

    @rx.event
    def set_job_name(self, name: str) -> None:
        self.job_name = name

    @rx.event(background=True)
    async def submit(self, form_data: dict[str, Any]) -> None:
        """Trigger the job the form names with its JSON input (blank: no input)."""
        job_name, input_text = (str(form_data.get(key, "")) for key in ("job_name", "input"))
        async with self:
            self.is_triggering, self.trigger_error, api = True, None, self.api()
        run_id, problem = await trigger_by_name(api, job_name, input_text)
        async with self:
            self.is_triggering, self.trigger_error = False, problem
            if run_id is not None:
                triggered = {"id": run_id, "job_name": job_name.strip()}
                self.triggered = [triggered, *self.triggered][:TRIGGERED_KEPT]


@dataclass(frozen=True)
class ListedJobs:
    """What `GET /jobs` told: a row per job (`name`; `schema`, its input JSON Schema as text), whether
    the server lists jobs at all, and why the list could not be read, if it could not."""

    rows: list[dict[str, str]]
    offered: bool = True
    error: str | None = None


async def listed_jobs(client: DurablyClient) -> ListedJobs:
    """The server's jobs by name (none, not offered, where the server has no `/jobs`)."""
    try:
        jobs = await client.list_jobs()
    except FeatureNotSupportedError:
        return ListedJobs([], offered=False)
    except DurablyError as error:
        return ListedJobs([], error=f"Failed to read the jobs: {error}")
    return ListedJobs(
        [
            {"name": job.name, "schema": json.dumps(job.input_schema, indent=2) if job.input_schema else "any JSON"}
            for job in sorted(jobs, key=lambda job: job.name)
        ]
    )


async def trigger_by_name(client: DurablyClient, job_name: str, input_text: str) -> tuple[str | None, str | None]:
    """Trigger `job_name` with `input_text` read as JSON (blank: no input): (the run's id, None), or
    (None, what to tell the user) when nothing was triggered."""
    job_name = job_name.strip()
    if not job_name:
        return None, "Name the job to trigger."
    input, problem = _parsed_input(input_text)
    if problem is not None:
        return None, problem
    try:
        return str(await client.trigger(job_name, input)), None
    except JobNotFoundError:
        return None, f'The server has no job named "{job_name}".'
    except DurablyError as error:
        return None, str(error)


def _parsed_input(text: str) -> tuple[Any, str | None]:
    """The box's input as JSON (None for a blank box), or why it is not JSON."""
    if not text.strip():
        return None, None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, f"The input is not JSON: {error.msg} (line {error.lineno}, column {error.colno})."


def use_remote_jobs(client: DurablyClient, *, forward_headers: tuple[str, ...] = ()) -> type[RemoteJobsState]:
    """A new `RemoteJobsState` for `client`'s server."""
    return new_state(
        configured_mixin(RemoteJobsState, "remote_jobs", client=client, forward_headers=forward_headers), "remote_jobs"
    )


def remote_jobs_content(state: type[RemoteJobsState], *, run_href: str = "/runs/") -> list[rx.Component]:
    """The page's content under the dashboard's navigation bar."""
    return [
        rx.heading("Jobs", size="7"),
        rx.cond(
            state.jobs_offered,
            rx.text("The jobs this server runs. Trigger one by name and follow it live.", color_scheme="gray"),
            rx.callout(NOT_LISTED, icon="info", color_scheme="gray", size="1", class_name="durably-jobs-not-listed"),
        ),
        rx.cond(
            state.error,
            rx.callout(state.error.to(str), icon="triangle-alert", color_scheme="red", size="1", width="100%"),
            rx.fragment(),
        ),
        _trigger_box(state, run_href),
        rx.foreach(state.jobs, lambda job: _job_card(state, job)),
    ]


def _trigger_box(state: type[RemoteJobsState], run_href: str) -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.el.label(rx.text("Job name", size="2", weight="medium"), html_for="trigger-by-name-job"),
                rx.input(
                    name="job_name",
                    id="trigger-by-name-job",
                    value=state.job_name,
                    on_change=state.set_job_name,
                    placeholder="import-csv",
                    width="100%",
                ),
                rx.el.label(rx.text("Input (JSON)", size="2", weight="medium"), html_for="trigger-by-name-input"),
                rx.text_area(
                    name="input",
                    id="trigger-by-name-input",
                    default_value="{}",
                    rows="6",
                    font_family="monospace",
                    width="100%",
                ),
                rx.cond(
                    state.trigger_error,
                    rx.text(
                        state.trigger_error.to(str), size="1", color_scheme="red", class_name="durably-trigger-error"
                    ),
                    rx.fragment(),
                ),
                rx.button(
                    "Trigger",
                    type="submit",
                    disabled=state.is_triggering,
                    loading=state.is_triggering,
                    class_name="durably-trigger",
                ),
                spacing="2",
                width="100%",
            ),
            id="trigger-by-name",
            on_submit=state.submit,
            reset_on_submit=False,
        ),
        rx.cond(
            state.triggered,
            rx.vstack(
                rx.text("Triggered from here", size="1", weight="bold", color_scheme="gray"),
                rx.foreach(state.triggered, lambda run: _triggered_run(run, run_href)),
                spacing="1",
                margin_top="1rem",
            ),
            rx.fragment(),
        ),
        width="100%",
        on_mount=state.load,
    )


def _triggered_run(run: Any, run_href: str) -> rx.Component:
    return rx.hstack(
        rx.code(run["job_name"].to(str), variant="ghost"),
        rx.code(run["id"].to(str), variant="ghost", color_scheme="gray", size="1"),
        rx.link("Open run →", href=run_href + run["id"].to(str), size="2", class_name="open-run"),
        align="center",
        spacing="3",
        class_name="durably-triggered-run",
        data_run_id=run["id"].to(str),
    )


def _job_card(state: type[RemoteJobsState], job: Any) -> rx.Component:
    name = job["name"].to(str)
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(name, size="4"),
                rx.spacer(),
                rx.button(
                    "Trigger by name",
                    size="1",
                    variant="soft",
                    on_click=state.set_job_name(name),  # type: ignore[operator]  # mypy reads an event as EventNamespace
                    class_name="durably-use-job",
                ),
                align="center",
                width="100%",
            ),
            rx.el.details(
                rx.el.summary(
                    rx.text("Input schema (JSON)", size="1", color_scheme="gray", as_="span"),
                    style={"cursor": "pointer"},
                ),
                rx.code_block(job["schema"].to(str), language="json", font_size="11px"),
                class_name="durably-input-schema",
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        class_name="durably-remote-job",
        data_job=name,
    )
