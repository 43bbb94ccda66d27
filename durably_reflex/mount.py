"""Mount the durably API on a Reflex app and run the worker for the app's lifetime: one line.

    app = rx.App()
    mount_durably(app, durably)          # API at /api/durably on the Reflex backend, worker started

The handler becomes one of the app's `api_transformer`s (Reflex mounts itself inside it), and a
lifespan task migrates the database, starts the worker, and on shutdown ends the open event streams
(which would otherwise hold the server's shutdown up) and stops the worker, whose interrupted runs
go back to pending to resume from their last completed step.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from ._engine import Durably
from ._switch import SHORT_SWITCH_INTERVAL
from .server import create_durably_handler

if TYPE_CHECKING:
    import reflex as rx
    from starlette.applications import Starlette

DEFAULT_BASE_PATH = "/api/durably"
_CORS_OPTIONS = ("cors_origins", "cors_credentials", "cors_headers")


def mount_durably(
    app: rx.App,
    durably: Durably,
    *,
    base_path: str = DEFAULT_BASE_PATH,
    run_worker: bool = True,
    stop_timeout: float | None = 5.0,
    **handler_options: Any,
) -> Starlette:
    """Serve `durably`'s API under `base_path` on `app`'s backend, and (with `run_worker`) run its
    worker while the backend runs. `handler_options` go to `create_durably_handler` (auth,
    progress_interval, expose_error_stack, ...), except the `cors_*` ones: Reflex wraps the API in
    its own CORS middleware, which answers first, so `cors_allowed_origins` in rxconfig.py decides
    which origins may call it. Returns the handler."""
    if given := sorted(name for name in _CORS_OPTIONS if handler_options.get(name)):
        raise ValueError(
            f"mount_durably does not take {', '.join(given)}: Reflex's own CORS middleware wraps the API "
            "and answers first; set cors_allowed_origins in rxconfig.py instead"
        )
    handler = create_durably_handler(durably, base_path, **handler_options)
    transformers = app.api_transformer
    if transformers is None:
        app.api_transformer = handler
    elif isinstance(transformers, Sequence):  # Reflex's own test for "several"
        app.api_transformer = [*transformers, handler]
    else:
        app.api_transformer = [transformers, handler]

    @contextlib.asynccontextmanager
    async def durably_lifespan() -> AsyncIterator[None]:
        await durably.migrate()
        if run_worker:  # job threads share this process's interpreter lock with the app's event loop
            await durably.start(switch_interval=SHORT_SWITCH_INTERVAL)
        try:
            yield
        finally:
            durably.feed.end_all()
            if run_worker:
                await durably.stop(stop_timeout)

    app.register_lifespan_task(durably_lifespan)
    return handler
