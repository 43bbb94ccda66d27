"""Writes a worker cannot do without, made again until the database takes them.

Storage gives up on an unavailable database after `reconnect_timeout` seconds with
`StorageUnavailableError`, so that an HTTP request answers 503 instead of hanging. A worker is in no
hurry: a step result it has computed, or a run's outcome, is written when the database is back,
however long the outage lasts, and the run goes on. An outage is never a run's failure.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._errors import StorageUnavailableError

T = TypeVar("T")

# Between two tries: storage has already waited out its patience, this only keeps a closed
# connection (which fails at once) from spinning.
_PAUSE = 0.05


async def persist(write: Callable[[], Awaitable[T]], *, until: threading.Event) -> T:
    """`await write()`, made again after each `StorageUnavailableError` until it succeeds. Once
    `until` is set (the execution was interrupted or cancelled: nobody needs the write any more),
    the `StorageUnavailableError` is raised instead."""
    while True:
        try:
            return await write()
        except StorageUnavailableError:
            if until.is_set():
                raise
            await asyncio.sleep(_PAUSE)
            if until.is_set():
                raise
