"""The smoke app: a counter button and a background event that updates state after a short sleep.

It proves the browser-test harness (a real `reflex run`, a real Chromium): the page renders, a
click reaches the backend over the websocket, and a background task's delta reaches the page.
An environment variable shows that the harness passes the test's settings to the app.
"""

import asyncio
import os

import reflex as rx


class SmokeState(rx.State):
    count: int = 0
    background: str = "idle"

    @rx.event
    def increment(self) -> None:
        self.count += 1

    @rx.event(background=True)
    async def start_background(self) -> None:
        async with self:
            self.background = "running"
        await asyncio.sleep(0.5)
        async with self:
            self.background = "done"

    @rx.var
    def greeting(self) -> str:
        return os.environ.get("SMOKE_GREETING", "no greeting")


def index() -> rx.Component:
    return rx.vstack(
        rx.heading("smoke", id="title"),
        rx.text(SmokeState.count, id="count"),
        rx.button("increment", id="increment", on_click=SmokeState.increment),
        rx.text(SmokeState.background, id="background"),
        rx.button("background", id="start-background", on_click=SmokeState.start_background),
        rx.text(SmokeState.greeting, id="greeting"),
    )


app = rx.App()
app.add_page(index, title="smoke")
