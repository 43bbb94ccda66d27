"""Schedules: a job triggered on a cron expression, persisted with the runs.

`durably.jobs.report.schedule("0 9 * * *", {"to": "ops"}, timezone="Europe/Paris")` stores a
schedule named after the job (or `name=`); calling it again with the same name updates it, so an
app can declare its schedules at every start. Cron expressions have five fields (minute hour day
month weekday), or six with seconds first (`*/10 * * * * *`: every ten seconds); they are read by
croniter, in the schedule's timezone (daylight saving time included).

Each tick fires exactly once however many workers run: the leading worker fires what is due (see
`_storage/coordination.py`), moving the schedule's `next_fire_at` on with a compare-and-set in the
same transaction that creates the run, whose idempotency key names the schedule and the tick. Ticks
missed while no worker ran follow the schedule's `catch_up`: "once" (the default) fires one run for
the latest missed tick, "skip" fires none; either way the schedule continues from now. A tick more
than `MISSED_AFTER_SECONDS` late counts as missed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._clock import now_ms
from ._errors import InvalidArgumentError

CatchUp = Literal["once", "skip"]
CATCH_UP_POLICIES: tuple[str, ...] = get_args(CatchUp)
MISSED_AFTER_SECONDS = 60


def check_schedule(cron: str, timezone: str, catch_up: str) -> None:
    """Raise InvalidArgumentError for a malformed cron expression, an unknown timezone or policy."""
    if not isinstance(cron, str) or len(cron.split()) not in (5, 6) or not _valid(cron):
        raise InvalidArgumentError(
            f"Invalid cron expression {cron!r}: five fields (minute hour day month weekday), or six with seconds first"
        )
    zone(timezone)
    if catch_up not in CATCH_UP_POLICIES:
        raise InvalidArgumentError(f"catch_up must be one of {', '.join(CATCH_UP_POLICIES)}, got {catch_up!r}")
    try:
        next_fire(cron, timezone, now_ms())
    except Exception:  # croniter: CroniterBadDateError for a date no year has ("0 0 31 2 *")
        raise InvalidArgumentError(f"Cron expression {cron!r} never fires") from None


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidArgumentError(f"Unknown timezone {timezone!r} (an IANA name such as 'Europe/Paris')") from None


def next_fire(cron: str, timezone: str, after_ms: int) -> int:
    """The first tick strictly after `after_ms` (epoch ms), in epoch ms."""
    from croniter import croniter  # type: ignore[import-untyped]  # here: most processes never schedule

    start = datetime.fromtimestamp(after_ms / 1000, tz=UTC).astimezone(zone(timezone))
    ticks = croniter(cron, start, second_at_beginning=_has_seconds(cron))
    return round(ticks.get_next(datetime).timestamp() * 1000)


def _valid(cron: str) -> bool:
    from croniter import croniter

    try:
        return bool(croniter.is_valid(cron, second_at_beginning=_has_seconds(cron)))
    except Exception:  # croniter raises more than its documented errors on odd input
        return False


def _has_seconds(cron: str) -> bool:
    return len(cron.split()) == 6
