"""The dashboard's pages, built for one API: `/` the runs, `/runs/[run_id]` one run (with the
form to send the signal it waits for, if it does), `/jobs`, `/schedules`.

`build_pages(client, ...)` creates the hook states the pages read (one set per dashboard) and
returns the page functions; `create_dashboard` adds them to an app. A typed client (of an engine's
jobs) gives the Jobs page a form per job; an untyped one, for an API elsewhere whose jobs the
dashboard does not know, gives it the server's job list and a trigger by name (remote_jobs.py).
Where the server lacks a feature (Durably's Node server: no counts, no stored logs, no schedules),
the pages say so instead of showing an empty panel. The element ids and classes of the pages
(`nav-runs`, `job-<name>`, `open-run`, ...) are what the browser tests and users' own scripts
select by: keep them stable.

Each page is defined in a module of its own (runs_page.py, run_page.py, jobs_page.py,
schedules_page.py): Reflex bundles a page's JavaScript by the module that defines the page
function, so the runs page, the one opened first, does not load the others' (the run page's and
the jobs page's code highlighter: about 440 kB of script less to load and run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._client import DurablyClient, TypedDurablyClient
from ..states import use_job, use_job_run, use_run_actions, use_run_stats, use_runs, use_schedules, use_signal
from .jobs_page import jobs_page
from .layout import Page, page_layout
from .remote_jobs import use_remote_jobs
from .run_page import run_page
from .runs_page import runs_page
from .schedules_page import schedules_page

PAGE_SIZE = 20


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

    layout = page_layout(client.api, remote=remote)
    job_names = sorted(definition.name for definition in jobs.values())
    return DashboardPages(
        runs=runs_page(layout, runs, stats, row_actions, job_names),
        run=run_page(layout, run_view, detail_actions, signals),
        jobs=jobs_page(layout, jobs, job_states, remote_jobs),
        schedules=schedules_page(layout, schedules),
    )
