"""`use_runs`: one page of runs, newest first, live on the first page.

Rows are the runs as the API lists them, as dicts with snake_case keys (`id`, `job_name`,
`status`, `progress`, `current_step_index`, `step_count`, `output`, `error`, `created_at`, ...),
plus what a table shows: `progress_percent`, `duration_ms`, `duration_text`, `short_id`,
`error_line` (the error's first line) and `step_name`: the step a running run is at (from the live
stream's `step:start`; None until one arrives), or where a failed or cancelled run stopped (read from
its steps once the page is shown; "" when it stopped before any step).
The page is fetched with one extra row to learn `has_more`.

While the first page is shown, `attach` (in `on_mount`) follows `/runs/subscribe` (only the runs
of the job, and of the labels, searched for): lifecycle events and step starts/failures refresh the
page (a burst of them becomes one fetch, at most one every `REFRESH_INTERVAL`), progress and step
completions change the matching row in place with no fetch. Other pages stay as fetched until
`refresh`. The status and job filters can be changed at run time (`set_status_filter`,
`set_job_filter`, `clear_filters`) unless the state is bound to one job, and so can the search
(`apply_search` with a search box's text, see `run_search`: labels, an id prefix, creation times,
fields of the input, replays; its job and status terms are the two filters; `filter_by_label` adds
a label to it). A search that does not read leaves the runs as they were and says why in
`search_error`. `search_text` is what a search box shows: the applied search, job and status
included, in its canonical form. With `url_query`, the filters are read from the page's URL
(`?job=...&status=...&q=<the other terms>`) when the state attaches and written back to it as they
change, so a filtered view can be shared and reloaded. `on_job_filter` (an event handler, say a
`use_run_stats` state's `set_job_filter`) is given the job filter whenever the user changes it.
The selection and the bulk actions are `RunSelectionState`'s (bulk_state.py).

Extension points, for a subclass: `fetch_runs(limit, offset)` (where a page's runs come from) and
`to_row(run)` (what a row holds: add the fields your table shows).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import reflex as rx

from .._client import DurablyClient, JobClient
from .._errors import DurablyError
from .._records import Run, RunStatus, Step
from .._wire_events import RunProgress, StepComplete, StepStart
from .bulk_state import RunSelectionState
from .consumers import Consumer, Refresher, apply_updates, consumer_of, consuming
from .run_fields import first_line, format_duration, percent, short_id, stopped_step
from .run_search import IGNORED_BY_SERVER, RunSearch, parse_search
from .url_query import query_value, replace_query

REFRESH_INTERVAL = 0.1  # seconds between two live refreshes of the first page, at most
# Events after which the first page is fetched again; progress and step completion patch rows.
_REFRESH_ON = frozenset(
    {
        "run:trigger",
        "run:start",
        "run:complete",
        "run:fail",
        "run:cancel",
        "run:retry",
        "run:delete",
        "run:wait",  # back to pending, waiting for a time or a signal
        "step:start",
        "step:fail",
        "stream:gap",  # the stream is back after a reconnect that could not resume: events were missed
    }
)
LIVE_SOURCE = "runs"
STATUSES = frozenset(status.value for status in RunStatus)
STOPPED = ("failed", "cancelled")  # rows whose `step_name` says where the run stopped


class UseRunsState(RunSelectionState, mixin=True):
    """`use_runs`: `runs`, `page`, `has_more`, `is_loading`, `error`, the page moves, the filters and
    the search, and (from `RunSelectionState`) the selection and the bulk actions."""

    # -- configuration ----------------------------------------------------------------------------
    job: ClassVar[JobClient | None] = None  # bound to one job: typed rows, no job filter
    job_name: ClassVar[str | None] = None  # initial job filter (fixed when `job` is set)
    status: ClassVar[str | None] = None  # initial status filter
    page_size: ClassVar[int] = 10
    url_query: ClassVar[bool] = False  # filters live in the page's URL query (`job`, `status`, `q`)
    on_job_filter: ClassVar[Any] = None  # an event handler given the job filter when the user changes it

    # -- what the UI shows ------------------------------------------------------------------------
    runs: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)
    page: rx.Field[int] = rx.field(0)
    has_more: rx.Field[bool] = rx.field(False)
    is_loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str | None] = rx.field(None)
    job_filter: rx.Field[str] = rx.field("")  # "" = every job
    status_filter: rx.Field[str] = rx.field("")  # "" = every status
    search_terms: rx.Field[str] = rx.field("")  # the applied search beyond job and status, canonical
    search_text: rx.Field[str] = rx.field("")  # what the search box shows (the whole search)
    search_error: rx.Field[str] = rx.field("")  # why the search box's text was not applied
    connection: rx.Field[str] = rx.field("idle")
    _configured: rx.Field[bool] = rx.field(False)

    @rx.var
    def is_empty(self) -> bool:
        return not self.runs and not self.is_loading and self.error is None

    @rx.var(deps=["status_filter", "job_filter", "search_terms"], auto_deps=False)
    def is_filtered(self) -> bool:
        """Whether the user's filters narrow the runs (a job the state is bound to is not one)."""
        return bool(self.status_filter or self.search_terms or (self.job_filter and self.__class__.job is None))

    @rx.var(deps=["page", "runs"], auto_deps=False)
    def first_row_number(self) -> int:
        return self.page * self.__class__.page_size + 1 if self.runs else 0

    @rx.var(deps=["page", "runs"], auto_deps=False)
    def last_row_number(self) -> int:
        return self.page * self.__class__.page_size + len(self.runs)

    # -- events -----------------------------------------------------------------------------------
    @rx.event(background=True)
    async def attach(self) -> None:
        """Load the page and keep the first page live for this tab; put it in `on_mount`."""
        async with self:
            self._configure()
            token, name = self.router.session.client_token, self.get_full_name()
            await self._load()
            follow = self._live_source()
        async with consuming(token, name) as consumer:
            consumer.start_source(LIVE_SOURCE, follow(consumer))
            consumer.post(_name_stopped_steps)
            async for batch in consumer.batches():
                async with self:
                    await apply_updates(self, batch)

    @rx.event
    async def refresh(self) -> None:
        await self._load()

    @rx.event
    async def next_page(self) -> None:
        if self.has_more:
            self.page += 1
            await self._load()

    @rx.event
    async def prev_page(self) -> None:
        if self.page > 0:
            self.page -= 1
            await self._load()

    @rx.event
    async def go_to_page(self, page: int) -> None:
        self.page = max(0, int(page))
        await self._load()

    @rx.event
    async def set_status_filter(self, status: str) -> Any:
        """Show runs of one status ("" or "all": every status), from the first page."""
        return await self._filter(self.job_filter, "" if status == "all" else status, self.search_terms)

    @rx.event
    async def set_job_filter(self, job_name: str) -> Any:
        """Show runs of one job ("" or "all": every job), from the first page; the live stream
        follows the filter. Ignored when the state is bound to one job."""
        if self.__class__.job is not None:
            return None
        return await self._filter("" if job_name == "all" else job_name, self.status_filter, self.search_terms)

    @rx.event
    async def clear_filters(self) -> Any:
        """Every run again (every status, no search, and every job unless the state is bound to one)."""
        job = self.__class__.job
        return await self._filter(job.name if job is not None else "", "", "")

    @rx.event
    def set_search_text(self, text: str) -> None:
        """What the search box holds while it is edited (applied by `apply_search`)."""
        self.search_text = text

    @rx.event
    async def apply_search(self, form_data: dict[str, Any]) -> Any:
        """Apply a search box's text (`form_data["q"]`, a form's submission; see `run_search`): its
        job and status terms become the filters, the rest the search. A text that does not read
        changes nothing but `search_error`."""
        text = str(form_data.get("q", ""))
        self.search_text = text
        parsed = parse_search(text)
        bound = self.__class__.job
        if parsed.ok and bound is not None and parsed.search.job_name not in (None, bound.name):
            parsed.errors.append(f"This table shows the runs of {bound.name} only.")
        if not parsed.ok:
            self.search_error = " ".join(parsed.errors)
            return None
        search = parsed.search
        job = search.job_name or (bound.name if bound is not None else "")
        return await self._filter(job, search.status or "", _terms_beyond(search).text())

    @rx.event
    async def filter_by_label(self, key: str, value: str) -> Any:
        """Narrow the search to the runs labelled `key`=`value` (a label chip's click)."""
        search = self._search().with_label(key, value)
        return await self._filter(self.job_filter, self.status_filter, _terms_beyond(search).text())

    # -- extension points and helpers for subclasses ---------------------------------------------
    async def fetch_runs(self, limit: int, offset: int) -> list[Run]:
        """The runs of the page being loaded, newest first, under the current filters and search
        (called with the state locked). Override it to read runs another way; a `DurablyError` it
        raises is shown in `error`, and the rows already shown stay."""
        return await self.api().get_runs(**self._search().filters(), limit=limit, offset=offset)

    def to_row(self, run: Run) -> dict[str, Any]:
        """A run as a row of `runs` (see `run_row`). Override it to add fields; keep the row's
        `id`, `status`, `progress` and `current_step_index`, which live updates patch."""
        return run_row(run)

    def typed_runs(self) -> list[Run]:
        """The rows as `Run` records, outputs loaded into the job's output model when the state is
        bound to a job (for event handlers of subclasses; the page reads `runs`)."""
        job = self.__class__.job
        records = [Run.model_validate(row) for row in self.runs]
        if job is None:
            return records
        return [run.model_copy(update={"output": job.definition.load_output(run.output)}) for run in records]

    # -- internals --------------------------------------------------------------------------------
    def _configure(self) -> None:
        """Take the class's initial filters once per tab (later changes are the user's); with
        `url_query`, the page's URL says them at every attach (a shared or reloaded link)."""
        cls = self.__class__
        if not self._configured:
            self._configured = True
            self.job_filter = cls.job.name if cls.job is not None else (cls.job_name or "")
            self.status_filter = cls.status or ""
        if cls.url_query:
            status = query_value(self, "status")
            self.status_filter = status if status in STATUSES else ""
            if cls.job is None:
                self.job_filter = query_value(self, "job")
            self.search_terms, self.search_error = "", ""
            parsed = parse_search(query_value(self, "q"))
            if parsed.ok:
                self.search_terms = _terms_beyond(parsed.search).text()
            else:
                self.search_error = " ".join(parsed.errors)
            self.page, self.selected_ids = 0, []  # the URL says the view: no selection of another one
        self.search_text = self._search().text() if not self.search_error else query_value(self, "q")

    def _search(self) -> RunSearch:
        """The applied search: the job and status filters with the other terms."""
        terms = parse_search(self.search_terms).search
        return replace(terms, job_name=self.job_filter or None, status=self.status_filter or None)

    async def _filter(self, job: str, status: str, terms: str) -> Any:
        """Show the runs of these filters from the first page (inside the lock); the events that
        follow the change (the URL, the job filter's listener)."""
        job_changed = job != self.job_filter
        labels_changed = _labels(terms) != _labels(self.search_terms)
        self.job_filter, self.status_filter, self.search_terms = job, status, terms
        self.search_error, self.page, self.selected_ids = "", 0, []
        self.search_text = self._search().text()
        await self._load()
        if job_changed or labels_changed:
            consumer = consumer_of(self)
            if consumer is not None:
                consumer.start_source(LIVE_SOURCE, self._live_source()(consumer))
        events = []
        listener = self.__class__.on_job_filter
        if job_changed and listener is not None and self.__class__.job is None:
            events.append(listener(job))
        if self.__class__.url_query:
            events.append(
                replace_query({"job": "" if self.__class__.job is not None else job, "status": status, "q": terms})
            )
        return events or None

    def _live_source(self) -> Any:
        """The runs stream this table follows (its job's and labels' runs), as a source to start."""
        api, job, labels = self.api(), self.job_filter or None, dict(self._search().labels)
        return lambda consumer: _follow_runs(consumer, api, job, labels)

    async def _load(self) -> None:
        """Fetch the current page (inside the lock: a normal event, or an update)."""
        page_size = self.__class__.page_size
        self.is_loading = True
        try:
            rows = await self.fetch_runs(limit=page_size + 1, offset=self.page * page_size)
        except DurablyError as error:
            self.error = f"Failed to fetch runs: {error}"  # the rows shown so far are kept
        else:
            search = self._search()
            if search.beyond_job_and_status and not all(search.matches(run, datetime.now(UTC)) for run in rows):
                self.error = _IGNORED
                self.runs, self.has_more = [], False
                return
            self.error = None
            self.has_more = len(rows) > page_size
            self.runs = _keep_step_names([self.to_row(run) for run in rows[:page_size]], self.runs)
            if any(row["status"] in STOPPED and row["step_name"] is None for row in self.runs):
                consumer = consumer_of(self)
                if consumer is not None:  # after this page is shown: a second, small change
                    consumer.post(_name_stopped_steps)
        finally:
            self.is_loading = False


_IGNORED = f"{IGNORED_BY_SERVER}: no runs are shown rather than runs the search does not match."


def _terms_beyond(search: RunSearch) -> RunSearch:
    """The search without its job and status (the part `search_terms` keeps)."""
    return replace(search, job_name=None, status=None)


def _labels(terms: str) -> tuple[tuple[str, str], ...]:
    return parse_search(terms).search.labels


async def _follow_runs(
    consumer: Consumer, client: DurablyClient, job_name: str | None, labels: dict[str, str] | None = None
) -> None:
    """Source: `/runs/subscribe`; patches rows in place and asks for coalesced refreshes. Each time
    the stream opens the first page is fetched again: the page was loaded before the stream was
    open, and runs triggered in between would otherwise stay missing until the next event."""
    refresh = Refresher(consumer, _refresh_first_page, REFRESH_INTERVAL)

    def on_connection(state_name: str) -> None:
        consumer.post(lambda state: setattr(state, "connection", state_name))
        if state_name == "open":
            refresh.request()

    async with client.subscribe_runs(job_name, labels=labels or None, on_state=on_connection) as events:
        async for event in events:
            if isinstance(event, (RunProgress, StepComplete, StepStart)):
                consumer.post(functools.partial(_patch_row, event=event))
            if event.type in _REFRESH_ON:
                refresh.request()


def run_row(run: Run) -> dict[str, Any]:
    """A run as a table row: its fields (snake_case, JSON values) plus what a table shows derived
    from them: `progress_percent` (0-100, None without a total), `duration_ms` once it ended,
    `short_id` and `error_line` (see the module's docstring)."""
    row = run.model_dump(mode="json", exclude={"error_stack"})
    row["short_id"] = short_id(run.id)
    row["error_line"] = first_line(run.error)
    row["progress_percent"] = percent(row["progress"])
    started_at, completed_at = run.started_at, run.completed_at
    if started_at is not None and completed_at is not None:
        row["duration_ms"] = (completed_at - started_at).total_seconds() * 1000
    else:
        row["duration_ms"] = None
    row["duration_text"] = format_duration(row["duration_ms"])
    return row


async def _refresh_first_page(state: Any) -> None:
    if state.page == 0:
        await state._load()


def _patch_row(state: Any, event: RunProgress | StepComplete | StepStart) -> None:
    if state.page != 0:
        return
    for index, row in enumerate(state.runs):
        if row["id"] == event.run_id:
            changed: dict[str, Any]
            if isinstance(event, RunProgress):
                progress = event.progress.model_dump(mode="json")
                changed = {"progress": progress, "progress_percent": percent(progress)}
            elif isinstance(event, StepStart):
                changed = {"step_name": event.step_name}
            else:
                changed = {"current_step_index": event.step_index + 1}
            state.runs[index] = {**row, **changed}
            return


def _keep_step_names(rows: list[dict[str, Any]], shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with the `step_name` the rows shown so far knew: a running run's from the live
    stream (kept while it runs), a stopped run's while it has not changed since it was read."""
    known = {row["id"]: row for row in shown}
    for row in rows:
        before = known.get(row["id"])
        same = (
            before is not None
            and before.get("status") == row["status"]
            and (row["status"] == "running" or before.get("updated_at") == row.get("updated_at"))
        )
        row["step_name"] = before.get("step_name") if same and before is not None else None
    return rows


async def _name_stopped_steps(state: Any) -> None:
    """An update: read the steps of the failed and cancelled runs on the page whose `step_name`
    is not known yet, and say where each stopped (a run whose steps cannot be read keeps None)."""
    wanted = [row["id"] for row in state.runs if row["status"] in STOPPED and row["step_name"] is None]
    if not wanted:
        return
    api = state.api()
    found = await asyncio.gather(*(api.get_steps(run_id) for run_id in wanted), return_exceptions=True)
    names = {
        run_id: _where_stopped(steps) for run_id, steps in zip(wanted, found, strict=True) if isinstance(steps, list)
    }
    state.runs = [{**row, "step_name": names[row["id"]]} if row["id"] in names else row for row in state.runs]


def _where_stopped(steps: list[Step]) -> str:
    """The step a stopped run stopped at, "after <the last step>" when all it began completed, ""
    when it began none."""
    rows = [{"index": step.index, "name": step.name, "status": step.status} for step in steps]
    at = stopped_step(rows)
    if at is not None:
        return str(at["name"])
    return f"after {rows[-1]['name']}" if rows else ""
