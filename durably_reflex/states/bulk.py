"""Bulk actions of a runs table, without Reflex: what each action may change, how many runs a search
would have it change, and the one API call that does it.

An action changes only runs in some statuses (retry: failed and cancelled; cancel: pending and
running; delete: completed, failed and cancelled); the server skips the others. So an action on
"everything matching the search" sends the search with its statuses narrowed to those
(`BulkPlan.filters`): the count shown before it is the count it changes, and its progress moves
against that count.

Counting: `GET /runs` answers no total. A search of a job and a status only is counted exactly and
at once by `GET /stats`; any other is counted by paging through `/runs` (`COUNT_PAGE` runs a
request), up to `COUNT_CAP` runs, beyond which the count says "more than" (the action itself still
takes every matching run, in the server's batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .._client import BulkProgress, DurablyClient
from .._errors import DurablyError, FeatureNotSupportedError
from .._records import BulkResult
from .run_search import IGNORED_BY_SERVER, RunSearch

Action = Literal["retry", "cancel", "delete"]
# The statuses each action changes (in the order a sentence names them).
CHANGES: dict[str, tuple[str, ...]] = {
    "retry": ("failed", "cancelled"),
    "cancel": ("pending", "running"),
    "delete": ("completed", "failed", "cancelled"),
}
VERBS = {"retry": ("Retry", "Retrying", "Retried"), "cancel": ("Cancel", "Cancelling", "Cancelled"),
         "delete": ("Delete", "Deleting", "Deleted")}  # fmt: skip
COUNT_PAGE = 1000  # runs per `/runs` request while counting (the API's largest page)
COUNT_CAP = 10_000  # runs counted by paging, at most


class SearchIgnoredError(DurablyError):
    """The server answered runs the search does not match: it ignores the search (so its count
    would be of other runs)."""

    code = "SEARCH_IGNORED"


@dataclass(frozen=True)
class Count:
    """How many runs an action would change: `runs`, exactly, or at least that many (`exact` False)."""

    runs: int
    exact: bool = True

    def text(self) -> str:
        return f"{self.runs:,}" if self.exact else f"more than {self.runs:,}"


@dataclass(frozen=True)
class BulkPlan:
    """One bulk action: on `run_ids`, or on the runs `filters` match (the keyword arguments of the
    client's bulk methods, times resolved when the plan was made), in the server's transactions of
    `batch_size` runs (None: its default, 500)."""

    action: str
    run_ids: tuple[str, ...] | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None


def statuses_changed(action: str, status: str | None) -> tuple[str, ...]:
    """The statuses `action` changes among those a search keeps (`status`, or every one)."""
    return tuple(value for value in CHANGES[action] if status is None or value == status)


def plan_for_search(
    action: str, search: RunSearch, *, now: datetime | None = None, batch_size: int | None = None
) -> BulkPlan:
    """The action on every run `search` matches that it can change."""
    filters = {**search.filters(now or datetime.now(UTC)), "status": list(statuses_changed(action, search.status))}
    return BulkPlan(action, filters=filters, batch_size=batch_size)


def plan_for_ids(action: str, run_ids: Sequence[str], *, batch_size: int | None = None) -> BulkPlan:
    return BulkPlan(action, run_ids=tuple(run_ids), batch_size=batch_size)


async def count_changed(client: DurablyClient, action: str, search: RunSearch, plan: BulkPlan) -> Count:
    """How many runs `plan` (made from `search`) would change."""
    statuses = plan.filters["status"]
    if not statuses:
        return Count(0)
    if not search.beyond_job_and_status:
        try:
            stats = await client.get_stats(search.job_name, bucket_seconds=60, buckets=1)
        except FeatureNotSupportedError:
            pass  # no counts on this server: page through its runs
        else:
            counts = stats.counts.model_dump()
            return Count(sum(counts.get(status, 0) for status in statuses))
    counted, now = 0, datetime.now(UTC)
    while counted < COUNT_CAP:
        page = await client.get_runs(**plan.filters, limit=COUNT_PAGE, offset=counted)
        if search.beyond_job_and_status and not all(search.matches(run, now) for run in page):
            raise SearchIgnoredError(IGNORED_BY_SERVER)
        counted += len(page)
        if len(page) < COUNT_PAGE:
            return Count(counted)
    return Count(counted, exact=False)


async def run_plan(client: DurablyClient, plan: BulkPlan, on_progress: BulkProgress) -> BulkResult:
    """Do the action: one bulk call (ids go in requests of the client's size), following its
    progress after each of the server's batches."""
    act = {"retry": client.bulk_retry, "cancel": client.bulk_cancel, "delete": client.bulk_delete}[plan.action]
    if plan.run_ids is not None:
        return await act(list(plan.run_ids), batch_size=plan.batch_size, on_progress=on_progress)
    return await act(batch_size=plan.batch_size, on_progress=on_progress, **plan.filters)


def question(action: str, target: str, count: Count | None, search_text: str) -> str:
    """What the confirmation asks: "Retry 3 selected runs?", "Cancel all 1,204 pending or running
    runs matching job:import-csv?" ("" while counting)."""
    verb = VERBS[action][0]
    if target == "selection":
        assert count is not None
        kinds, done = _or(CHANGES[action]), VERBS[action][2].lower()
        return f"{verb} the {_runs(count.runs, count.text(), 'selected')}? Only {kinds} runs are {done}: the others are skipped."
    if count is None:
        return ""
    scope = f"matching {search_text}" if search_text else "in this database"
    kinds = _or(statuses_changed(action, None))
    if count.runs == 0 and count.exact:
        return f"No {kinds} run {scope}: nothing to {verb.lower()}."
    if not count.exact:
        return f"{verb} every {kinds} run {scope} (more than {count.runs:,})?"
    return f"{verb} all {_runs(count.runs, count.text(), kinds)} {scope}?"


def outcome(action: str, result: BulkResult) -> str:
    """What an action did: "Retried 1,200 runs; 34 skipped (their status does not allow it)."."""
    done = f"{VERBS[action][2]} {_runs(result.changed, f'{result.changed:,}')}"
    if result.skipped:
        done += f"; {result.skipped:,} skipped (their status does not allow it, or they are gone)"
    return done + "."


def _runs(number: int, text: str, kind: str = "") -> str:
    return f"{text} {kind + ' ' if kind else ''}run{'' if number == 1 else 's'}"


def _or(statuses: Sequence[str]) -> str:
    return " or ".join(statuses) if len(statuses) < 3 else ", ".join(statuses[:-1]) + " or " + statuses[-1]
