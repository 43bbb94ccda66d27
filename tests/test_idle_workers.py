"""Idle workers cost the database nothing, however many there are (see `_storage/coordination.py`).

One worker of a database leads: it alone surveys for pending and abandoned runs every
`polling_interval`. The others make no statement while idle and start runs when rung: by a process
that triggered runs it could not start itself, or by the leader when it has more pending runs than
idle slots. The in-process tests run on both backends (several engines on one database, as several
processes would be); the statement count is SQLite's, per process, in child processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import BaseModel

from durably_reflex import Durably, create_durably, define_job
from tests.engine_helpers import Gate, wait_for_status

ROOT = Path(__file__).resolve().parent.parent


class Empty(BaseModel):
    pass


async def _nothing(step: object, payload: Empty) -> dict[str, int]:
    return {"pid": os.getpid()}


QUICK = define_job(name="quick", input=Empty, run=_nothing)


@asynccontextmanager
async def workers(db_url: str, count: int, **options: float) -> AsyncIterator[list[Durably]]:
    """`count` started engines on one database (each with its own worker), closed afterwards."""
    engines = [
        create_durably(db_url, **{"heartbeat_interval": 0.1, "stale_threshold": 2.0, **options}) for _ in range(count)
    ]
    try:
        for engine in engines:
            engine.register(quick=QUICK)
            await engine.init()
        yield engines
    finally:
        for engine in engines:
            await engine.close(timeout=5)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def leaders(engines: list[Durably]) -> list[Durably]:
    return [engine for engine in engines if engine.is_leading]


async def test_one_of_several_idle_workers_leads(db_url: str) -> None:
    async with workers(db_url, 3, polling_interval=0.1) as engines:
        await until(lambda: len(leaders(engines)) == 1, "one leader")


async def test_when_the_leader_stops_another_worker_takes_the_lead(db_url: str) -> None:
    async with workers(db_url, 3, polling_interval=0.1) as engines:
        await until(lambda: len(leaders(engines)) == 1, "one leader")
        first = leaders(engines)[0]
        await first.stop()
        rest = [engine for engine in engines if engine is not first]
        await until(lambda: len(leaders(rest)) == 1, "another worker to lead")


async def test_a_run_triggered_where_no_worker_runs_is_started_at_once_by_an_idle_worker(db_url: str) -> None:
    # Surveys every 60 s: only a ring can start the run within the test's timeout.
    async with workers(db_url, 2, polling_interval=60.0) as engines:
        await until(lambda: len(leaders(engines)) == 1, "one leader")
        caller = create_durably(db_url).register(quick=QUICK)  # triggers, never runs a worker
        try:
            run = await caller.jobs.quick.trigger({})
            done = await wait_for_status(caller, run.id, "completed", timeout=10)
            assert done.output == {"pid": os.getpid()}
        finally:
            await caller.close()


async def test_a_busy_leader_rings_the_idle_workers_for_what_it_cannot_start(db_url: str) -> None:
    entered, release = Gate(), threading.Event()

    async def hold(step: object, payload: Empty) -> str:
        entered.set()
        await asyncio.to_thread(release.wait, 15)
        return "held"

    holder = define_job(name="hold", input=Empty, run=hold)
    async with workers(db_url, 2, polling_interval=60.0) as engines:
        await until(lambda: len(leaders(engines)) == 1, "one leader")
        leader = leaders(engines)[0]
        follower = next(engine for engine in engines if engine is not leader)
        leader.register(hold=holder)
        try:
            held = await leader.jobs.hold.trigger({})  # the leader's only slot is taken
            await entered.wait(10)
            # Triggered in the leader's process, which cannot start it: the follower is rung.
            run = await leader.jobs.quick.trigger({})
            done = await wait_for_status(follower, run.id, "completed", timeout=10)
            assert done.status == "completed"
        finally:
            release.set()
        await wait_for_status(leader, held.id, "completed", timeout=10)


# -- statements per process (SQLite's trace callback, in child processes) ----------------------------
CHILD = """
import asyncio, signal, sqlite3, sys
from tests.test_idle_workers import QUICK
from durably_reflex import create_durably

executed = [0]
connect = sqlite3.connect

def traced(*args, **kwargs):
    connection = connect(*args, **kwargs)
    connection.set_trace_callback(lambda _sql: executed.__setitem__(0, executed[0] + 1))
    return connection

sqlite3.connect = traced

async def main():
    durably = create_durably(sys.argv[1], polling_interval=0.5).register(quick=QUICK)
    await durably.init()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(executed[0], durably.is_leading, flush=True))
    print("ready", flush=True)
    await asyncio.wait_for(stop.wait(), 120)
    await durably.close(0)

asyncio.run(main())
"""


def test_idle_followers_make_no_statements_while_the_leader_surveys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(3)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"

        def sample() -> list[tuple[int, bool]]:
            counts = []
            for child in children:
                child.send_signal(signal.SIGUSR1)
                assert child.stdout is not None
                executed, leading = child.stdout.readline().split()
                counts.append((int(executed), leading == "True"))
            return counts

        deadline = time.monotonic() + 30
        while sum(leading for _, leading in sample()) != 1:  # the lead settles
            assert time.monotonic() < deadline, "no single leader"
            time.sleep(0.1)
        before = sample()
        leader = next(index for index, (_, leading) in enumerate(before) if leading)
        while (now := sample())[leader][0] - before[leader][0] < 16:  # four surveys
            assert time.monotonic() < deadline + 30, "the leader made no statements"
            time.sleep(0.1)
        assert [leading for _, leading in now] == [index == leader for index in range(3)]
        grown = [after - earlier for (after, _), (earlier, _) in zip(now, before, strict=True)]
        assert [count for index, count in enumerate(grown) if index != leader] == [0, 0], grown
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
