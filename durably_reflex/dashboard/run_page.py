"""The dashboard's run page (`/runs/[run_id]`): one run live (`run_detail`: its steps on a
timeline, its logs, its attempts and replays, the actions its status allows, the form to send the
signal it waits for), and, where the server retried it as a new run, the way to that run."""

from __future__ import annotations

import reflex as rx

from ..components import run_detail
from ..states import UseJobRunState, UseRunActionsState, UseSignalState
from .layout import Layout, Page


def run_page(
    layout: Layout,
    run_view: type[UseJobRunState],
    detail_actions: type[UseRunActionsState],
    signals: type[UseSignalState],
) -> Page:
    """The page of the run its route names, followed by `run_view`, acted on by `detail_actions`."""

    def page() -> rx.Component:
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

    return page
