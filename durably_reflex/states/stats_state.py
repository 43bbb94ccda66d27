"""`use_run_stats`: runs per status, per job, and created over time, kept current.

Not one of the seed's hooks: a dashboard's header needs it. The counts come from `GET /stats`
(counted in SQL, so they are right however many runs there are); after `attach` the state follows
`/runs/subscribe` and fetches them again when runs are created or change status, a burst of changes
making one fetch, at most one every `REFRESH_INTERVAL`.

The counts and the series can follow a job filter (`set_job_filter`, the runs table's, say) and
cover a time range (`set_range`: one of `RANGES`, each a number of buckets of a length); with
`url_query`, both are read from the page's URL (`?job=...&range=...`) when the state attaches and
written back as they change.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import reflex as rx

from .._client import DurablyClient
from .._errors import DurablyError, FeatureNotSupportedError
from .._records import RunStats
from .._wire_events import StreamGap
from .base import DurablyState
from .consumers import Refresher, apply_updates, consumer_of, consuming
from .url_query import query_value, replace_query

REFRESH_INTERVAL = 0.5  # seconds between two fetches of the counts, at most
# Events that change a count (progress and steps do not).
_COUNTS_CHANGE_ON = frozenset(
    {"run:trigger", "run:start", "run:complete", "run:fail", "run:cancel", "run:retry", "run:delete"}
)
LIVE_SOURCE = "stats"
# An axis label's format by bucket length (up to so many seconds).
_LABEL_FORMATS: tuple[tuple[float, str], ...] = ((3600, "%H:%M"), (86399, "%m-%d %Hh"), (math.inf, "%m-%d"))
# The time ranges a chart offers: name -> (bucket length in seconds, buckets).
RANGES: dict[str, tuple[int, int]] = {
    "1h": (60, 60),
    "24h": (3600, 24),
    "7d": (6 * 3600, 28),
    "30d": (24 * 3600, 30),
}


class UseRunStatsState(DurablyState, mixin=True):
    """`counts` (status -> runs), `by_job` (job -> status -> runs), `series` (one row per time
    bucket: `start`, `label`, and a count per status), `total`, `is_loading`, `error`, and
    `stats_offered`: False when the server counts nothing (no `/stats`: Durably's Node server),
    so a page shows no counts panel; `error` stays None then, as nothing failed."""

    job_name: ClassVar[str | None] = None  # count one job's runs only (no job filter then)
    bucket_seconds: ClassVar[int] = 3600
    buckets: ClassVar[int] = 24
    url_query: ClassVar[bool] = False  # job filter and range live in the page's URL query

    job_filter: rx.Field[str] = rx.field("")  # "" = every job (or the bound `job_name`)
    range_name: rx.Field[str] = rx.field("")  # one of RANGES; "" = the class's buckets
    counts: rx.Field[dict[str, int]] = rx.field(default_factory=dict)
    by_job: rx.Field[dict[str, dict[str, int]]] = rx.field(default_factory=dict)
    series: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)
    is_loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str | None] = rx.field(None)
    stats_offered: rx.Field[bool] = rx.field(True)

    @rx.var
    def total(self) -> int:
        return sum(self.counts.values())

    @rx.var(deps=["range_name"], auto_deps=False)
    def current_range(self) -> str:
        """The name of the range the series covers ("" when the class's buckets match none)."""
        cls = self.__class__
        default = next((name for name, spec in RANGES.items() if spec == (cls.bucket_seconds, cls.buckets)), "")
        return self.range_name or default

    @rx.event(background=True)
    async def attach(self) -> None:
        """Fetch the counts and keep them current for this tab; put it in `on_mount`."""
        async with self:
            token, name, api = self.router.session.client_token, self.get_full_name(), self.api()
            if self.__class__.url_query:
                self.job_filter = "" if self.__class__.job_name else query_value(self, "job")
                self.range_name = query_value(self, "range") if query_value(self, "range") in RANGES else ""
            job, asked = self._job(), self._request()
            self.is_loading = True
        # Counted outside the lock: it holds every state of the tab, and the runs table beside the
        # counts would wait for them (a /stats of 100,000 runs takes tens of milliseconds).
        answer = await _fetch(api, asked)
        async with self:
            if self._request() == asked:  # else a filter changed meanwhile and its own load is shown
                self._show(answer)
            self.is_loading = False
            offered = self.stats_offered
        if not offered:
            return  # nothing to keep current
        async with consuming(token, name) as consumer:
            consumer.start_source(LIVE_SOURCE, _follow_changes(consumer, api, job))
            async for batch in consumer.batches():
                async with self:
                    await apply_updates(self, batch)

    @rx.event
    async def refresh(self) -> None:
        await self._load()

    @rx.event
    async def set_job_filter(self, job_name: str) -> Any:
        """Count one job's runs ("" or "all": every job's); ignored when the state is bound to one."""
        if self.__class__.job_name:
            return None
        self.job_filter = "" if job_name == "all" else job_name
        await self._load()
        consumer = consumer_of(self)
        if consumer is not None:
            consumer.start_source(LIVE_SOURCE, _follow_changes(consumer, self.api(), self._job()))
        return replace_query({"job": self.job_filter}) if self.__class__.url_query else None

    @rx.event
    async def set_range(self, range_name: str) -> Any:
        """Chart one of `RANGES` ("1h", "24h", "7d", "30d")."""
        if range_name not in RANGES:
            return None
        self.range_name = range_name
        await self._load()
        return replace_query({"range": range_name}) if self.__class__.url_query else None

    def _job(self) -> str | None:
        return self.__class__.job_name or self.job_filter or None

    def _request(self) -> _Request:
        """What a load asks the API for: the job counted, the bucket length and the buckets."""
        cls = self.__class__
        return (self._job(), *RANGES.get(self.range_name, (cls.bucket_seconds, cls.buckets)))

    async def _load(self) -> None:
        """Fetch the counts (inside the lock: a normal event, or an update)."""
        self.is_loading = True
        try:
            self._show(await _fetch(self.api(), self._request()))
        finally:
            self.is_loading = False

    def _show(self, answer: RunStats | DurablyError) -> None:
        if isinstance(answer, FeatureNotSupportedError):
            self.stats_offered, self.error = False, None
        elif isinstance(answer, DurablyError):
            self.error = f"Failed to fetch run counts: {answer}"
        else:
            self.error = None
            self.counts, self.by_job, self.series = stats_fields(answer)


_Request = tuple[str | None, int, int]  # (job, bucket_seconds, buckets)


async def _fetch(api: DurablyClient, request: _Request) -> RunStats | DurablyError:
    """The API's counts for `request`, or the error it answered."""
    job, bucket_seconds, buckets = request
    try:
        return await api.get_stats(job, bucket_seconds=bucket_seconds, buckets=buckets)
    except DurablyError as error:
        return error


def stats_fields(stats: RunStats) -> tuple[dict[str, int], dict[str, dict[str, int]], list[dict[str, Any]]]:
    """The state's fields from the API's answer; each bucket gets a short UTC `label` for an axis
    ("14:00" for buckets of an hour or less, "11-29 18h" up to a day, "11-29" for longer ones)."""
    label_format = next(text for longest, text in _LABEL_FORMATS if stats.bucket_seconds <= longest)
    series = [
        {
            **bucket.model_dump(mode="json", exclude={"start"}),
            "start": bucket.model_dump(mode="json")["start"],
            "label": bucket.start.strftime(label_format),
        }
        for bucket in stats.series
    ]
    by_job = {job: counts.model_dump() for job, counts in stats.by_job.items()}
    return stats.counts.model_dump(), by_job, series


async def _follow_changes(consumer: Any, client: DurablyClient, job_name: str | None) -> None:
    """Source: ask for a fresh count whenever a run is created or changes status, or after the
    stream was away (a reconnect that could not resume)."""
    refresher = Refresher(consumer, lambda state: state._load(), REFRESH_INTERVAL)
    async with client.subscribe_runs(job_name, types=sorted(_COUNTS_CHANGE_ON)) as events:
        async for event in events:
            if event.type in _COUNTS_CHANGE_ON or isinstance(event, StreamGap):
                refresher.request()
