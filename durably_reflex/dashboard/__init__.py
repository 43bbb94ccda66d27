"""The durably dashboard as a library: `create_dashboard(durably)` is a Reflex app with every job
and run of `durably`, live, and its API mounted (at /api/durably) with the worker running.

    # your_app/your_app.py (a Reflex app)
    from durably_reflex.dashboard import create_dashboard
    from jobs import durably

    app = create_dashboard(durably)

Or, with no Reflex project of your own: `durably-reflex dashboard jobs:durably` (see the README).
"""

from __future__ import annotations

import reflex as rx

from .._dashboard_targets import load_auth, load_durably
from .._engine import Durably
from ..mount import mount_durably
from ..server import DurablyAuth
from .guard import AuthGuard, guard
from .pages import build_pages

__all__ = ["AuthGuard", "create_dashboard", "load_auth", "load_durably"]

# The tab's credentials the states pass on to the API, so that it sees the same user as the page.
CREDENTIAL_HEADERS = ("cookie", "authorization")


def create_dashboard(durably: Durably, *, auth: DurablyAuth | None = None, app: rx.App | None = None) -> rx.App:
    """A Reflex app (`app`, or a new one) serving the dashboard of `durably`: `/` runs, `/runs/[run_id]`
    one run, `/jobs` the jobs and their trigger forms, `/schedules` the schedules; the API mounted on
    the same backend and the worker running with it.

    With `auth`, everything is guarded: the API checks each request (scoping what each user sees with
    `visible_jobs`, `can_access_run` and `can_trigger`), and every page, asset and websocket
    connection of the backend must pass `auth.authenticate` first (see `AuthGuard`). The pages'
    states forward the browser's `cookie` and `authorization` headers to the API, so the API
    judges the same user."""
    app = app if app is not None else rx.App()
    pages = build_pages(durably, forward_headers=CREDENTIAL_HEADERS if auth is not None else ())
    mount_durably(app, durably, auth=auth)
    if auth is not None:
        _add_outermost(app, guard(auth))
    app.add_page(pages.runs, route="/", title="Runs · durably")
    app.add_page(pages.run, route="/runs/[run_id]", title="Run · durably")
    app.add_page(pages.jobs, route="/jobs", title="Jobs · durably")
    app.add_page(pages.schedules, route="/schedules", title="Schedules · durably")
    return app


def _add_outermost(app: rx.App, transform: object) -> None:
    """Append `transform` to the app's `api_transformer`s: Reflex applies them in order, so the last
    wraps all the others (the API mounted before it included)."""
    current = app.api_transformer
    if current is None:
        app.api_transformer = transform  # type: ignore[assignment]
    elif isinstance(current, (list, tuple)):
        app.api_transformer = [*current, transform]  # type: ignore[list-item]
    else:
        app.api_transformer = [current, transform]  # type: ignore[list-item]
