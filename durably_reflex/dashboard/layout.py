"""The dashboard's frame around every page: the top bar (the name, the pages, the API, the theme)
and the column the page's content goes in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx

from .._dashboard_targets import shown_url

Layout = Callable[..., rx.Component]  # layout(*children, **props of the page's outer box)
Page = Callable[[], rx.Component]


def page_layout(api: str, *, remote: bool) -> Layout:
    """The frame of a dashboard of the API at `api`. `remote`: the API is served elsewhere, so the
    top bar names it rather than linking to its OpenAPI document, which the browser may not reach."""

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
            rx.text(f"API {shown_url(api)}", size="1", color_scheme="gray", id="remote-api")
            if remote
            else rx.link(rx.text("API", size="2"), href=f"{api}/openapi.json", is_external=True, color_scheme="gray"),
            rx.color_mode.button(size="2", variant="ghost", id="color-mode"),
            width="100%",
            align="center",
            padding_y="0.75rem",
            padding_x="1.5rem",
            border_bottom=f"1px solid {rx.color('gray', 5)}",
            spacing="6",
        )

    def layout(*children: rx.Component, **props: Any) -> rx.Component:
        return rx.box(
            navbar(),
            rx.container(rx.vstack(*children, spacing="5", width="100%"), size="4", padding_y="1.5rem"),
            min_height="100vh",
            **props,
        )

    return layout
