"""Schedules on both backends: cron expressions in a timezone, stored, listed, paused, resumed and
deleted; each tick fires exactly once however many worker processes run (one of them killed on the
way); ticks missed while no worker ran follow the schedule's `catch_up`."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from durably_reflex import Durably, InvalidArgumentError, InvalidInputError, ScheduleNotFoundError, define_job
from tests.engine_helpers import query_db, wait_for_status

ROOT = Path(__file__).resolve().parent.parent


class Report(BaseModel):
    to: str = "ops"


async def _report(step, payload: Report) -> str:
    return payload.to


REPORT = define_job(name="report", input=Report, run=_report)


async def test_a_schedule_is_stored_with_its_next_tick_in_its_timezone(durably: Durably) -> None:
    durably.register(report=REPORT)
    schedule = await durably.jobs.report.schedule("0 9 * * *", {"to": "board"}, timezone="Europe/Paris")
    assert (schedule.name, schedule.job_name, schedule.input, schedule.paused) == (
        "report",
        "report",
        {"to": "board"},
        False,
    )
    assert schedule.next_fire_at is not None and schedule.next_fire_at > datetime.now(UTC)
    local = schedule.next_fire_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute, local.second) == (9, 0, 0)
    assert [stored.name for stored in await durably.get_schedules()] == ["report"]


async def test_bad_schedules_are_refused_with_clear_errors(durably: Durably) -> None:
    durably.register(report=REPORT)
    with pytest.raises(InvalidArgumentError, match="Invalid cron expression"):
        await durably.jobs.report.schedule("every day")
    with pytest.raises(InvalidArgumentError, match="Unknown timezone"):
        await durably.jobs.report.schedule("0 9 * * *", timezone="Mars/Olympus")
    with pytest.raises(InvalidArgumentError, match="catch_up"):
        await durably.jobs.report.schedule("0 9 * * *", catch_up="twice")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="to"):
        await durably.jobs.report.schedule("0 9 * * *", {"to": 42})
    with pytest.raises(ScheduleNotFoundError):
        await durably.pause_schedule("nope")
    assert await durably.get_schedules() == []


async def test_scheduling_again_updates_the_schedule_and_keeps_it_paused(durably: Durably) -> None:
    durably.register(report=REPORT)
    await durably.jobs.report.schedule("0 9 * * *")
    paused = await durably.pause_schedule("report")
    assert paused.paused and paused.next_fire_at is None
    updated = await durably.jobs.report.schedule("30 9 * * *", {"to": "all"})
    assert updated.paused and updated.cron == "30 9 * * *" and updated.input == {"to": "all"}
    resumed = await durably.resume_schedule("report")
    assert not resumed.paused and resumed.next_fire_at is not None
    deleted = await durably.delete_schedule("report")
    assert deleted.name == "report" and await durably.get_schedules() == []


async def test_a_seconds_schedule_fires_runs_of_its_job(durably: Durably) -> None:
    durably.register(report=REPORT)
    await durably.start()
    await durably.jobs.report.schedule("* * * * * *", {"to": "tick"}, name="every-second")
    async with asyncio.timeout(10):
        while len(runs := await durably.get_runs(job_name="report")) < 2:
            await asyncio.sleep(0.05)
    await durably.pause_schedule("every-second")
    done = await wait_for_status(durably, runs[-1].id, "completed", timeout=10)
    assert done.output == "tick" and done.idempotency_key is not None
    assert done.idempotency_key.startswith("schedule:every-second:")


@pytest.mark.parametrize("catch_up, runs", [("once", 1), ("skip", 0)])
async def test_ticks_missed_while_no_worker_ran_follow_catch_up(
    durably: Durably, db_url: str, catch_up: str, runs: int
) -> None:
    durably.register(report=REPORT)
    await durably.jobs.report.schedule("0 * * * *", catch_up=catch_up)  # hourly
    long_ago = int(time.time() * 1000) - 3 * 3600 * 1000  # three ticks missed
    query_db(db_url, "UPDATE durably_schedules SET next_fire_at = ?", long_ago)
    await durably.start()
    async with asyncio.timeout(10):
        while (await durably.get_schedules())[0].next_fire_at.timestamp() * 1000 <= time.time() * 1000:  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
    assert len(await durably.get_runs(job_name="report")) == runs


# -- three worker processes, one killed: every tick once --------------------------------------------
CHILD = """
import asyncio, signal, sys
from tests.test_schedules import REPORT
from durably_reflex import create_durably

async def main():
    durably = create_durably(sys.argv[1], polling_interval=0.2, heartbeat_interval=0.2, stale_threshold=2)
    durably.register(report=REPORT)
    await durably.init()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await asyncio.wait_for(stop.wait(), 180)
    await durably.close(5)

asyncio.run(main())
"""


async def test_each_tick_fires_once_across_three_worker_processes_one_killed(durably: Durably, db_url: str) -> None:
    durably.register(report=REPORT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, db_url], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    try:
        for child in children:
            assert child.stdout is not None and await asyncio.to_thread(child.stdout.readline) == "ready\n"
        await durably.jobs.report.schedule("* * * * * *", name="every-second")

        async def ticks() -> list[int]:
            rows = query_db(db_url, "SELECT idempotency_key FROM durably_runs WHERE job_name = 'report'")
            return sorted(int(key.rsplit(":", 1)[1]) for (key,) in rows)

        async with asyncio.timeout(90):
            while len(await ticks()) < 8:
                await asyncio.sleep(0.1)
            children[0].kill()  # perhaps the leader: another takes over within a few ticks
            while len(await ticks()) < 22:
                await asyncio.sleep(0.1)
        await durably.pause_schedule("every-second")
        fired = await ticks()
        assert len(fired) == len(set(fired)), "a tick fired twice"
        assert [later - earlier for earlier, later in itertools.pairwise(fired)] == [1000] * (len(fired) - 1), fired
    finally:
        for child in children[1:]:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
