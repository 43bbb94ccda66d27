"""Bulk actions over HTTP (`POST {base}/bulk/retry`, `/bulk/cancel`, `/bulk/delete`): which runs a
request means, how they are worked through, and how its caller follows the progress.

A request names its runs by `runIds` or by a `filter` (the fields of `GET /runs`: `_run_filter`), and
the action goes through them in batches of `batchSize` runs (500 by default), one transaction each,
so that 100,000 runs neither hold the database nor make one long request of it. The action is a
task of its own, not the request's: a caller that leaves (a proxy's timeout, a closed tab) stops
following it, never the action, which runs to its end (and says how it ended in the log). Asked
with `Accept: text/event-stream`, the answer streams a `bulk:progress` frame after each batch (keep-
alive comments while a batch takes long, so proxies see a live connection) and ends with
`bulk:done` or `bulk:error`; otherwise it is the final `{"matched", "changed", "skipped"}` as JSON.

Access: a filter is kept to the caller's scope and visible jobs in the query itself. Where the
server judges runs one by one (`can_access_run`), the runs the filter matches are listed first and
only those the caller may see are acted on; runs named by id are read and judged one by one
whenever any access rule applies. A run the caller may not see counts, when named by id, exactly as
an id that does not exist (matched and skipped); a filter never counts it at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import _params
from ._engine import BULK_BATCH, Durably
from ._errors import InvalidArgumentError
from ._records import BulkResult, Run
from ._run_filter import RunFilter
from ._sse import KEEP_ALIVE, frame

logger = logging.getLogger("durably_reflex")

BulkAction = Literal["retry", "cancel", "delete"]
ACTIONS: tuple[BulkAction, ...] = ("retry", "cancel", "delete")
MAX_RUN_IDS = 10_000  # per request (DurablyClient sends longer lists in several)
MAX_BATCH = 10_000
LISTING_PAGE = 1_000  # runs read per query while listing what a filter matches
NOTHING = BulkResult(matched=0, changed=0, skipped=0)

Judge = Callable[[Run], Awaitable[bool]]
Progress = Callable[[BulkResult], None]


@dataclass(frozen=True)
class BulkRequest:
    """A bulk action's body: `{"runIds": [...]}` or `{"filter": {...}}`, and `batchSize`."""

    run_ids: tuple[str, ...] | None
    filter: RunFilter | None
    batch_size: int = BULK_BATCH

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> BulkRequest:
        if unknown := sorted(set(body) - {"runIds", "filter", "batchSize"}):
            raise InvalidArgumentError(f"a bulk action takes runIds or filter, and batchSize; not {unknown[0]!r}")
        ids, run_filter = body.get("runIds"), body.get("filter")
        if (ids is None) == (run_filter is None):
            raise InvalidArgumentError('give runIds or filter, not both ({"filter": {}} means every run)')
        batch = body.get("batchSize", BULK_BATCH)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
            raise InvalidArgumentError(f"batchSize must be a whole number from 1 to {MAX_BATCH}")
        if run_filter is not None:
            return cls(None, RunFilter.from_json(run_filter), batch)
        if not isinstance(ids, list) or not all(isinstance(run_id, str) and run_id for run_id in ids):
            raise InvalidArgumentError("runIds must be a list of run ids")
        if len(ids) > MAX_RUN_IDS:
            raise InvalidArgumentError(f"runIds holds {len(ids)} ids: at most {MAX_RUN_IDS} per request")
        return cls(tuple(_params.text("runIds", run_id) for run_id in dict.fromkeys(ids)), None, batch)


async def run_bulk(
    durably: Durably,
    action: BulkAction,
    request: BulkRequest,
    *,
    scope: str | None,
    judge: Judge | None,
    on_progress: Progress,
) -> BulkResult:
    """Do `action` to the runs `request` names, within `scope`, only to runs `judge` admits (None:
    every run of the scope); `request.filter` must already be kept to the caller's jobs."""
    if request.filter is None:
        assert request.run_ids is not None
        return await _by_ids(durably, action, request.run_ids, request.batch_size, on_progress, scope, judge)
    if judge is None:
        act = getattr(durably, f"bulk_{action}")
        return await act(
            **request.filter.arguments(), scope=scope, batch_size=request.batch_size, on_progress=on_progress
        )
    admitted = await _admitted_matches(durably, request.filter, scope, judge)
    return await _by_ids(durably, action, admitted, request.batch_size, on_progress, None, None)


async def _by_ids(
    durably: Durably,
    action: BulkAction,
    run_ids: Sequence[str],
    batch_size: int,
    on_progress: Progress,
    scope: str | None,
    judge: Judge | None,
) -> BulkResult:
    """The engine's action by ids, in batches; with access rules, each batch's runs read and judged
    first (the others count as ids that do not exist)."""
    act = getattr(durably, f"bulk_{action}")
    if scope is None and judge is None:
        result: BulkResult = await act(list(run_ids), batch_size=batch_size, on_progress=on_progress)
        return result
    result = NOTHING
    for start in range(0, len(run_ids), batch_size):
        batch = run_ids[start : start + batch_size]
        allowed = [run_id for run_id in batch if await _may_act(durably, run_id, scope, judge)]
        done = await act(allowed, batch_size=len(allowed)) if allowed else NOTHING
        matched, changed = result.matched + len(batch), result.changed + done.changed
        result = BulkResult(matched=matched, changed=changed, skipped=matched - changed)
        on_progress(result)
    return result


async def _may_act(durably: Durably, run_id: str, scope: str | None, judge: Judge | None) -> bool:
    run = await durably.get_run(run_id, scope=scope)
    return run is not None and (judge is None or await judge(run))


async def _admitted_matches(durably: Durably, run_filter: RunFilter, scope: str | None, judge: Judge) -> list[str]:
    """The ids of the runs `run_filter` matches now that `judge` admits, newest first. Listed
    before anything is done, so the action cannot move runs between the pages it reads; a run
    another caller adds meanwhile may shift a page, and is then read twice (counted once)."""
    admitted: dict[str, None] = {}
    seen: set[str] = set()
    offset = 0
    while True:
        page = await durably.get_runs(**run_filter.arguments(), scope=scope, limit=LISTING_PAGE, offset=offset)
        for run in page:
            if run.id not in seen:
                seen.add(run.id)
                if await judge(run):
                    admitted[run.id] = None
        if len(page) < LISTING_PAGE:
            return list(admitted)
        offset += len(page)


class BulkRun:
    """One action as a task of its own, its progress queued for the request that follows it.

    `running` holds the task while it runs (asyncio keeps only weak references to tasks). When no
    one follows it any more, how it ended is logged instead of answered."""

    def __init__(
        self, action: BulkAction, work: Callable[[Progress], Awaitable[BulkResult]], running: set[Any]
    ) -> None:
        self.action = action
        self.latest = NOTHING
        self.followed = True
        self._updates: asyncio.Queue[BulkResult | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(work(self._progress))
        running.add(self.task)
        self.task.add_done_callback(running.discard)
        self.task.add_done_callback(self._ended)

    def _progress(self, result: BulkResult) -> None:
        self.latest = result
        self._updates.put_nowait(result)

    def _ended(self, task: asyncio.Future[BulkResult]) -> None:
        self._updates.put_nowait(None)
        if self.followed:
            return
        if task.cancelled():
            logger.warning("durably API: bulk %s stopped by the server's shutdown at %s", self.action, self.latest)
        elif (error := task.exception()) is not None:
            logger.error(
                "durably API: bulk %s failed after its caller left, at %s: %r", self.action, self.latest, error
            )
        else:
            logger.info("durably API: bulk %s ended after its caller left: %s", self.action, task.result())

    async def result(self) -> BulkResult:
        """The final result (the action's error, raised); the action goes on if the caller leaves."""
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            self.followed = self.task.done()
            raise

    async def frames(
        self, keepalive: float, describe: Callable[[BaseException], dict[str, Any]]
    ) -> AsyncIterator[bytes]:
        """`bulk:progress` after each batch, then `bulk:done` (or `bulk:error`: `describe` makes
        its `{"status", "error", "code"}`); keep-alive comments while nothing happens."""
        try:
            while True:
                try:
                    async with asyncio.timeout(keepalive):
                        update = await self._updates.get()
                except TimeoutError:
                    yield KEEP_ALIVE
                    continue
                if update is None:
                    break
                yield frame({"type": "bulk:progress", "action": self.action, **update.to_wire()})
            error = asyncio.CancelledError() if self.task.cancelled() else self.task.exception()
            if error is None:
                yield frame({"type": "bulk:done", "action": self.action, **self.task.result().to_wire()})
            else:
                yield frame({"type": "bulk:error", "action": self.action, **self.latest.to_wire(), **describe(error)})
        finally:
            self.followed = self.task.done()
