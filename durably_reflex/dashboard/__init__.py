"""The durably dashboard as a library: `create_dashboard(durably)` is a Reflex app with every job
and run of `durably`, live, and its API mounted (at /api/durably) with the worker running.

    # your_app/your_app.py (a Reflex app)
    from durably_reflex.dashboard import create_dashboard
    from jobs import durably

    app = create_dashboard(durably)

Or, with no Reflex project of your own: `durably-reflex dashboard jobs:durably` (see the README).
`create_dashboard(api="http://host:8000/api/durably")` is the same dashboard for an API served
elsewhere (`durably-reflex serve`, or Durably's own Node server): `durably-reflex dashboard --api URL`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import reflex as rx

from .._client import DurablyClient, create_durably_client
from .._dashboard_targets import load_auth, load_durably
from .._engine import Durably
from ..mount import mount_durably
from ..server import DurablyAuth
from .guard import AuthGuard, guard
from .pages import build_pages

__all__ = ["AuthGuard", "create_dashboard", "load_auth", "load_durably"]

# The tab's credentials the states pass on to the API mounted beside the pages, so that it sees the
# same user as the page.
CREDENTIAL_HEADERS = ("cookie", "authorization")


def create_dashboard(
    durably: Durably | None = None,
    *,
    api: str | None = None,
    api_headers: Mapping[str, str] | None = None,
    forward_headers: Sequence[str] | None = None,
    auth: DurablyAuth | None = None,
    app: rx.App | None = None,
) -> rx.App:
    """A Reflex app (`app`, or a new one) serving the dashboard of `durably`: `/` runs, `/runs/[run_id]`
    one run, `/jobs` the jobs and their trigger forms, `/schedules` the schedules; the API mounted on
    the same backend and the worker running with it.

    With `api` (the base URL of a durably API served elsewhere: `durably-reflex serve`, or Durably's
    own Node server), the dashboard shows that API instead: nothing is mounted and no worker runs;
    the pages' states read it from the Reflex backend, sending `api_headers` with every request
    (its credentials, say). `durably` is optional then: its jobs' models give the trigger forms;
    without it the jobs page lists what the server's `/jobs` tells, or says it tells nothing, and
    triggers by job name with JSON input. Where the server lacks a feature (Durably's Node server
    has no `/jobs`, `/stats`, `/logs` or schedules), the pages say so.

    With `auth`, everything is guarded: every page, asset and websocket connection of the backend
    must pass `auth.authenticate` first (see `AuthGuard`), and the mounted API checks each request
    (scoping what each user sees with `visible_jobs`, `can_access_run` and `can_trigger`).
    `forward_headers` names the headers of the browser's connection the states pass on to the API,
    so that it judges the same user: by default the `cookie` and `authorization` of a guarded
    dashboard's own API, and none for an `api` elsewhere (it would receive the credentials of the
    dashboard's users: name them only for an API that shares their login)."""
    if durably is None and api is None:
        raise ValueError("create_dashboard needs a Durably to serve, or the URL of an API to show (api=...)")
    if api is None and api_headers:
        raise ValueError("api_headers go with api: the API mounted here sees the pages' own requests")
    app = app if app is not None else rx.App()
    client: DurablyClient
    if durably is not None:
        client = create_durably_client(durably, api, headers=api_headers)
    else:
        client = DurablyClient(api, headers=api_headers)
    if forward_headers is None:
        forward_headers = CREDENTIAL_HEADERS if auth is not None and api is None else ()
    pages = build_pages(client, forward_headers=forward_headers, remote=api is not None)
    if durably is not None and api is None:
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
