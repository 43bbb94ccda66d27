"""`use_run_actions`: retry, cancel and delete runs, and read one run with its steps.

Reflex event handlers return nothing to the page, so `get_run` and `get_steps` put what they read in
`run` and `steps`. Every action sets `is_loading` while it runs and leaves a refused action's reason
in `error` (a 409 "cannot retry a completed run" says so, it does not raise); `message` says what
the last successful action did, and `retried_run_id` is the run a retry runs (of the run
`retried_from`): the same one on a durably-reflex server, a new one where the server retriggers
(Durably's Node server 0.15). `replay` makes a new run of a run's job and input from one of its
steps (the steps before it copied, not run again), `replayed_run_id`, and can open its page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from .._errors import DurablyError, FeatureNotSupportedError
from .base import DurablyState


class UseRunActionsState(DurablyState, mixin=True):
    """`use_run_actions`: `retry`, `cancel`, `delete_run`, `get_run`, `get_steps`."""

    is_loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str | None] = rx.field(None)
    message: rx.Field[str] = rx.field("")
    run: rx.Field[dict[str, Any] | None] = rx.field(None)
    steps: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)
    retried_run_id: rx.Field[str | None] = rx.field(None)
    retried_from: rx.Field[str | None] = rx.field(None)  # the run the last retry was asked for
    replayed_run_id: rx.Field[str | None] = rx.field(None)  # the run the last replay made

    @rx.event
    async def retry(self, run_id: str) -> AsyncIterator[None]:
        async def retry() -> None:
            self.retried_run_id = retried = await self.api().retry(run_id)
            self.retried_from = run_id
            self.message = f"Retrying run {run_id}" if retried == run_id else f"Retried run {run_id} as run {retried}"

        async for _ in self._act(retry, ""):
            yield

    @rx.event
    async def cancel(self, run_id: str) -> AsyncIterator[None]:
        async for _ in self._act(lambda: self.api().cancel(run_id), f"Cancelled run {run_id}"):
            yield

    @rx.event
    async def delete_run(self, run_id: str) -> AsyncIterator[None]:
        async for _ in self._act(lambda: self.api().delete_run(run_id), f"Deleted run {run_id}"):
            yield

    @rx.event
    async def replay(self, run_id: str, from_step: str = "", run_href: str = "") -> AsyncIterator[EventSpec | None]:
        """Replay `run_id` from its step `from_step` ("": from the start); with `run_href`, then
        open the new run's page (`run_href` + its id)."""
        made: list[str] = []

        async def replay() -> None:
            try:
                run = await self.api().replay(run_id, from_step=from_step or None)
            except FeatureNotSupportedError:
                self.error = "This server cannot replay runs (it has no POST /replay)."
                return
            self.replayed_run_id = run.id
            made.append(run.id)
            where = f' from step "{from_step}"' if from_step else ""
            self.message = f"Replaying run {run_id}{where} as run {run.id}"

        async for _ in self._act(replay, ""):
            yield None
        if made and run_href:
            yield rx.redirect(run_href + made[0])

    @rx.event
    async def get_run(self, run_id: str) -> AsyncIterator[None]:
        async def read() -> None:
            run = await self.api().get_run(run_id)
            self.run = None if run is None else run.model_dump(mode="json")
            if run is None:
                self.error = f"Run not found: {run_id}"

        async for _ in self._act(read, ""):
            yield

    @rx.event
    async def get_steps(self, run_id: str) -> AsyncIterator[None]:
        async def read() -> None:
            self.steps = [step.model_dump(mode="json") for step in await self.api().get_steps(run_id)]

        async for _ in self._act(read, ""):
            yield

    async def _act(self, action: Callable[[], Awaitable[Any]], done: str) -> AsyncIterator[None]:
        """Run `action` with `is_loading` shown first (the yield sends it to the page)."""
        self.is_loading, self.error = True, None
        yield
        try:
            await action()
            if done:
                self.message = done
        except DurablyError as error:
            self.error = str(error)
        finally:
            self.is_loading = False
