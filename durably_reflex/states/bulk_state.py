"""Selecting runs in a table and acting on many at once: the part of `use_runs` behind a table's
checkboxes and its bulk bar (a mixin of `UseRunsState`, which gives it `runs`, the search and
`_load`).

A bulk action is asked for first (`ask_bulk(action, target)`: the selection, or everything the
search matches), which opens a confirmation naming how many runs it changes (counted in the
background for a search, see `bulk.count_changed`); `confirm_bulk` then runs it as one API call in
a background event, the server working in batches and telling its totals after each, which
`bulk_done` / `bulk_percent` show as they come (at most every `PROGRESS_INTERVAL`). The selection
is cleared once an action has run, and when the search changes (a selection the table no longer
shows is not acted on unseen).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import ClassVar

import reflex as rx

from .._errors import DurablyError, FeatureNotSupportedError
from .._records import BulkResult
from .base import DurablyState
from .bulk import (
    CHANGES,
    VERBS,
    BulkPlan,
    Count,
    count_changed,
    outcome,
    plan_for_ids,
    plan_for_search,
    question,
    run_plan,
)
from .run_search import RunSearch

PROGRESS_INTERVAL = 0.25  # seconds between two progress updates sent to the page, at least


class RunSelectionState(DurablyState, mixin=True):
    """`selected_ids`, the bulk confirmation (`bulk_open`, `bulk_question`, `bulk_counting`) and
    the running action (`bulk_running`, `bulk_done` of `bulk_expected`, `bulk_message`, `bulk_error`)."""

    # Runs per transaction of a bulk action (None: the server's default, 500); smaller batches show
    # finer progress and hold the database for less time each, at the cost of more transactions.
    bulk_batch_size: ClassVar[int | None] = None

    selected_ids: rx.Field[list[str]] = rx.field(default_factory=list)
    bulk_open: rx.Field[bool] = rx.field(False)  # the confirmation dialog
    bulk_action: rx.Field[str] = rx.field("")  # retry | cancel | delete
    bulk_target: rx.Field[str] = rx.field("")  # selection | matching
    bulk_counting: rx.Field[bool] = rx.field(False)
    bulk_question: rx.Field[str] = rx.field("")
    bulk_count: rx.Field[int] = rx.field(0)  # runs the confirmed action is expected to change
    bulk_count_exact: rx.Field[bool] = rx.field(True)  # False: at least `bulk_count` (see bulk.COUNT_CAP)
    bulk_running: rx.Field[bool] = rx.field(False)
    bulk_done: rx.Field[int] = rx.field(0)  # runs the running action has gone through so far
    bulk_expected: rx.Field[int] = rx.field(0)  # 0: not known (more than were counted)
    bulk_message: rx.Field[str] = rx.field("")  # what the last action did
    bulk_error: rx.Field[str] = rx.field("")
    _bulk_asked: int = 0  # which confirmation a count belongs to (a later one replaces it)
    _bulk_asked_at: float = 0.0  # when it was asked (epoch seconds): "since:1h" counted from then

    @rx.var(deps=["selected_ids"], auto_deps=False)
    def selected_count(self) -> int:
        return len(self.selected_ids)

    @rx.var(deps=["selected_ids", "runs"], auto_deps=False)
    def page_selected(self) -> bool:
        """Whether every run on the page is selected (the header's checkbox)."""
        chosen = set(self.selected_ids)
        return bool(self.runs) and all(row["id"] in chosen for row in self.runs)  # type: ignore[attr-defined]

    @rx.var(deps=["bulk_done", "bulk_expected"], auto_deps=False)
    def bulk_percent(self) -> int | None:
        """0-100 while an action runs, None when its size is not known (an indeterminate bar)."""
        return min(100, round(100 * self.bulk_done / self.bulk_expected)) if self.bulk_expected else None

    @rx.var(deps=["bulk_action", "bulk_counting", "bulk_count", "bulk_count_exact"], auto_deps=False)
    def bulk_confirm_label(self) -> str:
        """The confirming button's words: "Retry 1,204 runs", "Retry them all"."""
        if not self.bulk_action or self.bulk_counting:
            return ""
        verb, runs = VERBS[self.bulk_action][0], self.bulk_count
        return f"{verb} {runs:,} run{'' if runs == 1 else 's'}" if self.bulk_count_exact else f"{verb} them all"

    @rx.var(deps=["bulk_action", "bulk_done", "bulk_expected"], auto_deps=False)
    def bulk_progress_text(self) -> str:
        """ "Retrying… 500 of 1,204 runs" while an action runs."""
        if not self.bulk_action:
            return ""
        of = f" of {self.bulk_expected:,}" if self.bulk_expected else ""
        return f"{VERBS[self.bulk_action][1]}… {self.bulk_done:,}{of} runs"

    # -- selection --------------------------------------------------------------------------------
    @rx.event
    def toggle_run(self, run_id: str, checked: bool) -> None:
        """Select (or unselect) one run."""
        chosen = [selected for selected in self.selected_ids if selected != run_id]
        self.selected_ids = [*chosen, run_id] if checked else chosen

    @rx.event
    def select_page(self, checked: bool) -> None:
        """Select every run on the page, or unselect them."""
        on_page = [row["id"] for row in self.runs]  # type: ignore[attr-defined]
        kept = [selected for selected in self.selected_ids if selected not in on_page]
        self.selected_ids = kept + on_page if checked else kept

    @rx.event
    def clear_selection(self) -> None:
        self.selected_ids = []

    # -- bulk actions -----------------------------------------------------------------------------
    @rx.event(background=True)
    async def ask_bulk(self, action: str, target: str) -> None:
        """Open the confirmation of `action` ("retry", "cancel", "delete") on the selection
        (`target` "selection") or on every run the search matches ("matching"), counting those."""
        if action not in CHANGES or target not in ("selection", "matching"):
            return
        async with self:
            if self.bulk_running:
                return
            search: RunSearch = self._search()  # type: ignore[attr-defined]
            text, api = search.text(), self.api()
            self.bulk_action, self.bulk_target, self.bulk_error = action, target, ""
            self._bulk_asked, self._bulk_asked_at = self._bulk_asked + 1, time.time()
            asked, plan = self._bulk_asked, self._bulk_plan()
            count = Count(len(plan.run_ids)) if plan.run_ids is not None else None
            self.bulk_counting = count is None
            self._set_question(count, text)
            self.bulk_open = True
        if count is not None:
            return
        try:
            count = await count_changed(api, action, search, plan)
        except DurablyError as error:
            async with self:
                if self._bulk_asked == asked and self.bulk_counting:
                    self.bulk_counting, self.bulk_open = False, False
                    self.bulk_error = f"Could not count the runs: {error}"
            return
        async with self:
            if self._bulk_asked == asked and self.bulk_counting:  # still this question (not closed, nor another)
                self.bulk_counting = False
                self._set_question(count, text)

    @rx.event
    def close_bulk(self) -> None:
        self._close_bulk()

    @rx.event
    def set_bulk_open(self, is_open: bool) -> None:
        """The dialog's own open state (Escape, a click outside): closing it asks nothing."""
        if not is_open:
            self._close_bulk()

    @rx.event(background=True)
    async def confirm_bulk(self) -> None:
        """Run the action the confirmation asked about, following its progress."""
        async with self:
            if not self.bulk_open or self.bulk_running or self.bulk_counting:
                return
            plan, api = self._bulk_plan(), self.api()
            self.bulk_open, self.bulk_running = False, True
            self.bulk_done = 0
            self.bulk_expected = self.bulk_count if self.bulk_count_exact else 0
            self.bulk_message = self.bulk_error = ""
        latest: list[BulkResult] = []
        task = asyncio.create_task(run_plan(api, plan, latest.append))
        while not task.done():
            await asyncio.wait({task}, timeout=PROGRESS_INTERVAL)
            if latest:
                async with self:
                    self.bulk_done = latest[-1].matched
                    if self.bulk_expected:  # runs made since the count: the bar does not go past its end
                        self.bulk_expected = max(self.bulk_expected, self.bulk_done)
        async with self:
            self.bulk_running = False
            try:
                result = task.result()
            except FeatureNotSupportedError:
                self.bulk_error = "This server has no bulk actions: act on runs one at a time."
            except DurablyError as error:
                done = f" ({outcome(plan.action, latest[-1])})" if latest else ""
                self.bulk_error = f"{VERBS[plan.action][0]} stopped: {error}{done}"
            else:
                self.bulk_done = result.matched
                self.bulk_message = outcome(plan.action, result)
            self.selected_ids = []
            await self._load()  # type: ignore[attr-defined]

    @rx.event
    def dismiss_bulk_message(self) -> None:
        self.bulk_message = self.bulk_error = ""

    # -- helpers ----------------------------------------------------------------------------------
    def _close_bulk(self) -> None:
        self.bulk_open, self.bulk_counting = False, False

    def _bulk_plan(self) -> BulkPlan:
        """The action asked about, made from what the state holds (plain values: what a
        background event reads of the state are proxies, which the client cannot send)."""
        batch_size = self.__class__.bulk_batch_size
        if self.bulk_target == "selection":
            return plan_for_ids(self.bulk_action, [str(run_id) for run_id in self.selected_ids], batch_size=batch_size)
        search: RunSearch = self._search()  # type: ignore[attr-defined]
        moment = datetime.fromtimestamp(self._bulk_asked_at, UTC)
        return plan_for_search(self.bulk_action, search, now=moment, batch_size=batch_size)

    def _set_question(self, count: Count | None, search_text: str) -> None:
        self.bulk_count = 0 if count is None else count.runs
        self.bulk_count_exact = True if count is None else count.exact
        self.bulk_question = question(self.bulk_action, self.bulk_target, count, search_text)
