"""What PostgreSQL needs beyond the engine suite (which runs on it too): event ids that follow commit
order, migrations from many processes at once, and events that cross engines through LISTEN/NOTIFY,
with polling when the listening connection is lost.

Two engines on one database in this process stand for two processes: each has its own connections,
which is all PostgreSQL sees.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg

from durably_reflex import create_durably, define_job
from durably_reflex._clock import now_ms
from durably_reflex._storage.base import NewEvent, NewRun, StepRecord, StepWrite
from durably_reflex._storage.postgres import PendingStep, PostgresSession
from durably_reflex._storage.tables import SCHEMA_VERSION
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent


def _event(run_id: str) -> NewEvent:
    return NewEvent(run_id=run_id, job_name="j", type="run:progress", body_json="{}", created_at=now_ms())


async def _events_until(storage, count: int, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while len(events := await storage.read_events(0)) < count:
        assert time.monotonic() < deadline, f"only {len(events)} of {count} events were logged"
        await asyncio.sleep(0.01)
    return events


async def test_an_event_written_while_an_earlier_one_is_uncommitted_waits_for_it(pg_url):
    """Sequence ids are handed out before commit; were a later id to commit first, a tailer reading
    `id > last` would move past the earlier one for good. The later writer must wait."""
    durably = create_durably(pg_url, **FAST)
    await durably.migrate()
    storage = durably.storage
    earlier = psycopg.connect(pg_url)  # another process, mid-transaction
    try:
        earlier.execute(storage._events_lock.sql)
        (earlier_id,) = earlier.execute(
            "INSERT INTO durably_events (run_id, type, body, created_at) VALUES ('earlier', 'x', '{}', 0) RETURNING id"
        ).fetchone()

        storage.append_event(_event("later"))  # flushed by the storage's own writer
        await _until_a_session_waits_for_an_advisory_lock(pg_url)  # the later writer is queued behind
        assert await storage.read_events(0) == []  # the later one did not overtake

        earlier.commit()
        events = await _events_until(storage, 2)
        assert [(event.run_id, event.id > earlier_id) for event in events] == [("earlier", False), ("later", True)]
    finally:
        earlier.close()
        await durably.close()


async def _until_a_session_waits_for_an_advisory_lock(pg_url: str, timeout: float = 10.0) -> None:
    """Until PostgreSQL shows a session blocked on an advisory lock: the state that proves a writer
    is held back (rather than merely slow)."""
    with psycopg.connect(pg_url, autocommit=True) as observer:
        async with asyncio.timeout(timeout):
            while not observer.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()[0]:
                await asyncio.sleep(0.01)


async def test_a_tailer_sees_every_event_of_concurrent_writers_once_in_id_order(pg_url):
    writers = [create_durably(pg_url, **FAST) for _ in range(4)]
    for writer in writers:
        await writer.migrate()
    seen: list[int] = []
    stop = asyncio.Event()

    async def tail() -> None:
        last = 0
        while True:
            stopping = stop.is_set()
            page = await writers[0].storage.read_events(last)
            seen.extend(event.id for event in page)
            if page:
                last = page[-1].id
            elif stopping:
                return
            await asyncio.sleep(0.001)

    def write(index: int) -> None:
        for n in range(150):
            writers[index].storage.append_event(_event(f"w{index}-{n}"))
            if n % 7 == 0:
                time.sleep(0.001)

    tailer = asyncio.create_task(tail())
    try:
        await asyncio.gather(*(asyncio.to_thread(write, i) for i in range(4)))
        await _events_until(writers[0].storage, 600, timeout=10)
        stop.set()
        await tailer
    finally:
        for writer in writers:
            await writer.close()
    stored = [event.id for event in await create_durably(pg_url).storage.read_events(0, limit=10_000)]
    assert len(stored) == 600
    assert seen == stored  # none skipped, none twice, in order


def test_processes_migrating_one_fresh_database_at_once_all_succeed(pg_url):
    script = (
        "import asyncio, sys; from durably_reflex import create_durably\n"
        "async def main():\n    d = create_durably(sys.argv[1]); await d.migrate(); await d.close()\n"
        "asyncio.run(main())"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, pg_url], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*), max(version) FROM durably_schema_versions").fetchone() == (
            1,
            SCHEMA_VERSION,
        )


async def _progress_job(step, input):
    for i in range(input["n"]):
        step.progress(i + 1, input["n"])
        await step.run(f"s{i}", lambda: None)
        await asyncio.sleep(input["pause"])


progress_job = define_job(name="progress", run=_progress_job)


async def _follow(api, worker, count: int, pause: float) -> list[float]:
    """Trigger a run on `worker`; return the delays (ms) with which `api`'s feed saw its progress."""
    subscription = await api.feed.subscribe()
    try:
        run = await worker.jobs.progress.trigger({"n": count, "pause": pause})
        delays: list[float] = []
        deadline = time.monotonic() + 30
        while len(delays) < count and time.monotonic() < deadline:
            for item in await subscription.next_batch(timeout=1.0):
                if item.run_id == run.id and item.type == "run:progress":
                    made = datetime.fromisoformat(item.event["timestamp"]).timestamp()
                    delays.append((time.time() - made) * 1000)
        assert len(delays) == count, f"the API engine saw {len(delays)} of {count} progress events"
        return delays
    finally:
        subscription.close()


async def test_events_of_a_run_on_another_engine_arrive_through_notify_within_milliseconds(pg_url):
    api = create_durably(pg_url, **FAST)  # serves streams; its worker never starts
    worker = create_durably(pg_url, **FAST).register(progress=progress_job)
    await api.migrate()
    await worker.start()
    try:
        api.feed.interval = 5.0  # polling alone would take seconds: only NOTIFY can be this quick
        delays = await _follow(api, worker, count=30, pause=0.02)
        assert statistics.quantiles(delays, n=20)[-1] < 250, sorted(delays)
    finally:
        await worker.close()
        await api.close()


async def test_events_keep_arriving_when_the_listening_connection_is_killed_and_it_reconnects(pg_url):
    api = create_durably(pg_url, **FAST)
    worker = create_durably(pg_url, **FAST).register(progress=progress_job)
    await api.migrate()
    await worker.start()
    try:
        await _follow(api, worker, count=3, pause=0.01)  # the listener is up
        listeners = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
        with psycopg.connect(pg_url, autocommit=True) as admin:
            (old,) = admin.execute(listeners).fetchall()
            admin.execute("SELECT pg_terminate_backend(%s)", old)
            delays = await _follow(api, worker, count=10, pause=0.02)  # polled meanwhile, then notified
            assert len(delays) == 10
            deadline = time.monotonic() + 10
            while [row for row in admin.execute(listeners).fetchall() if row != old] == []:
                assert time.monotonic() < deadline, "the listener did not reconnect"
                await asyncio.sleep(0.05)
    finally:
        await worker.close()
        await api.close()


def _step(run_id: str, attempt: int, step_id: str, index: int) -> StepRecord:
    now = now_ms()
    return StepRecord(step_id, run_id, attempt, f"s{index}", index, "completed", str(index), None, None, now, now)


async def test_step_writes_committed_together_are_each_checked_against_their_own_run(pg_url):
    """The step writes of one commit group go as one statement: each is written only while its own
    run's claim holds, says whether its run was cancelled meanwhile, and a write retried after a
    lost connection (its row already there) is not written twice."""
    durably = create_durably(pg_url, **FAST)
    await durably.migrate()
    storage = durably.storage
    try:
        now = now_ms()
        await storage.insert_runs([NewRun(f"run-{n}", "j", "null", None, None, now + n) for n in range(3)])
        claims = {claim.run.id: claim.attempt for claim in await storage.claim("me", ("j",), 3, now + 10)}
        await storage.cancel("run-1", now + 11)
        await storage.record_step(_step("run-0", claims["run-0"], "earlier", 0))
        pending = [
            PendingStep(_step("run-0", claims["run-0"], "earlier", 0)),  # retried: already written
            PendingStep(_step("run-0", claims["run-0"], "next", 1)),
            PendingStep(_step("run-1", claims["run-1"], "cancelled", 0)),
            PendingStep(_step("run-2", claims["run-2"] - 1, "stale", 0)),  # an earlier claim's
            PendingStep(_step("run-2", claims["run-2"], "current", 0)),
        ]

        def write_together(session: PostgresSession) -> None:
            for step in pending:
                session.add_step(step)

        storage._writer.run_blocking(write_together)

        assert [step.outcome for step in pending] == [
            StepWrite.RECORDED,
            StepWrite.RECORDED,
            StepWrite.RECORDED_RUN_CANCELLED,
            StepWrite.CLAIM_LOST,
            StepWrite.RECORDED,
        ]
        with psycopg.connect(pg_url) as db:
            rows = db.execute("SELECT run_id, id FROM durably_steps ORDER BY run_id, step_index").fetchall()
        assert rows == [("run-0", "earlier"), ("run-0", "next"), ("run-1", "cancelled"), ("run-2", "current")]
    finally:
        await durably.close()
