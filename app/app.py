"""Placeholder dashboard page; the real dashboard is built in a later issue."""

import reflex as rx


def index() -> rx.Component:
    """The dashboard's home page."""
    return rx.container(
        rx.color_mode.button(position="top-right"),
        rx.vstack(
            rx.heading("durably-reflex", size="8"),
            rx.text(
                "Durable, step-oriented background jobs for Python web apps.",
                size="4",
            ),
            rx.text(
                "The dashboard (runs, steps, progress and logs) arrives in a later issue.",
                color_scheme="gray",
            ),
            spacing="4",
            padding_top="15vh",
        ),
    )


app = rx.App()
app.add_page(index, title="durably-reflex")
