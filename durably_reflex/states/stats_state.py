"""`use_run_stats`: runs per status, per job, and created over time, kept current.

Not one of the seed's hooks: a dashboard's header needs it. The counts come from `GET /stats`
(counted in SQL, so they are right however many runs there are); after `attach` the state follows
`/runs/subscribe` and fetches them again when runs are created or change status, a burst of changes
making one fetch, at most one every `REFRESH_INTERVAL`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import reflex as rx

from .._client import DurablyClient
from .._errors import DurablyError, FeatureNotSupportedError
from .._records import RunStats
from .._wire_events import StreamGap
from .base import DurablyState
from .consumers import Refresher, apply_updates, consuming

REFRESH_INTERVAL = 0.5  # seconds between two fetches of the counts, at most
# Events that change a count (progress and steps do not).
_COUNTS_CHANGE_ON = frozenset(
    {"run:trigger", "run:start", "run:complete", "run:fail", "run:cancel", "run:retry", "run:delete"}
)
LIVE_SOURCE = "stats"


class UseRunStatsState(DurablyState, mixin=True):
    """`counts` (status -> runs), `by_job` (job -> status -> runs), `series` (one row per time
    bucket: `start`, `label`, and a count per status), `total`, `is_loading`, `error`, and
    `stats_offered`: False when the server counts nothing (no `/stats`: Durably's Node server),
    so a page shows no counts panel; `error` stays None then, as nothing failed."""

    job_name: ClassVar[str | None] = None  # count one job's runs only
    bucket_seconds: ClassVar[int] = 3600
    buckets: ClassVar[int] = 24

    counts: rx.Field[dict[str, int]] = rx.field(default_factory=dict)
    by_job: rx.Field[dict[str, dict[str, int]]] = rx.field(default_factory=dict)
    series: rx.Field[list[dict[str, Any]]] = rx.field(default_factory=list)
    is_loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str | None] = rx.field(None)
    stats_offered: rx.Field[bool] = rx.field(True)

    @rx.var
    def total(self) -> int:
        return sum(self.counts.values())

    @rx.event(background=True)
    async def attach(self) -> None:
        """Fetch the counts and keep them current for this tab; put it in `on_mount`."""
        async with self:
            token, name, api = self.router.session.client_token, self.get_full_name(), self.api()
            await self._load()
            offered = self.stats_offered
        if not offered:
            return  # nothing to keep current
        async with consuming(token, name) as consumer:
            consumer.start_source(LIVE_SOURCE, _follow_changes(consumer, api, self.__class__.job_name))
            async for batch in consumer.batches():
                async with self:
                    await apply_updates(self, batch)

    @rx.event
    async def refresh(self) -> None:
        await self._load()

    async def _load(self) -> None:
        cls = self.__class__
        self.is_loading = True
        try:
            stats = await self.api().get_stats(cls.job_name, bucket_seconds=cls.bucket_seconds, buckets=cls.buckets)
        except FeatureNotSupportedError:
            self.stats_offered, self.error = False, None
        except DurablyError as error:
            self.error = f"Failed to fetch run counts: {error}"
        else:
            self.error = None
            self.counts, self.by_job, self.series = stats_fields(stats)
        finally:
            self.is_loading = False


def stats_fields(stats: RunStats) -> tuple[dict[str, int], dict[str, dict[str, int]], list[dict[str, Any]]]:
    """The state's fields from the API's answer; each bucket gets a short UTC `label` for an axis
    ("14:00" for buckets under a day, "11-29" for longer ones)."""
    label_format = "%H:%M" if stats.bucket_seconds < 86400 else "%m-%d"
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
