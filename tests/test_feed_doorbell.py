"""SQLite's doorbell (durably_reflex/_storage/doorbell.py): a process that commits events rings the
processes tailing the log of the same file, so their feed reads at once instead of at its next poll.

The feeds here poll once an hour: an event that arrives at all arrived because of a ring.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from durably_reflex import create_durably
from durably_reflex._clock import now_ms
from durably_reflex._storage.base import NewEvent, NewRun
from durably_reflex._storage.coordination import rendezvous
from durably_reflex._storage.doorbell import FEED_PREFIX, RUNG_POLL
from durably_reflex._storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600.0
WAIT = 60.0  # bounds a test that fails; far below the feeds' poll

# Run in a child process: one run of a one-step job on the file, to completion.
CHILD = """
import asyncio, sys
from durably_reflex import create_durably, define_job

async def one_step(step, _input):
    return await step.run("only", lambda: 1)

async def main():
    durably = create_durably(sys.argv[1], polling_interval=0.05).register(job=define_job(name="job", run=one_step))
    await durably.start()
    await durably.jobs.job.trigger_and_wait(timeout=30)
    await durably.close()

asyncio.run(main())
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def fake_feed(tmp_path: Path) -> Iterator[socket.socket]:
    """A socket where a tailing process's doorbell would be, to count the rings sent to it."""
    folder = rendezvous(str(tmp_path / "jobs.db"))
    folder.mkdir(mode=0o700, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(folder / f"{FEED_PREFIX}test.sock"))
    listener.setblocking(False)
    yield listener
    listener.close()
    (folder / f"{FEED_PREFIX}test.sock").unlink(missing_ok=True)


def rings(listener: socket.socket) -> int:
    count = 0
    try:
        while listener.recv(64):
            count += 1
    except BlockingIOError:
        return count


def new_run(run_id: str) -> NewRun:
    return NewRun(id=run_id, job_name="job", input_json="null", idempotency_key=None, concurrency_key=None,
                  created_at=now_ms())  # fmt: skip


async def test_a_feed_sees_events_another_process_commits_without_waiting_for_its_poll(db: str) -> None:
    api = create_durably(db)
    await api.migrate()
    api.feed.interval = HOUR
    subscription = await api.feed.subscribe()
    try:
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, db, cwd=ROOT)
        assert await asyncio.wait_for(child.wait(), WAIT) == 0
        seen: list[str] = []
        async with asyncio.timeout(WAIT):
            while "run:complete" not in seen:
                seen += [item.type for item in await subscription.next_batch()]
        assert seen[0] == "run:trigger" and seen[-1] == "run:complete"
    finally:
        subscription.close()
        await api.close()


async def test_a_commit_rings_each_tailing_process_once_however_many_events_it_logs(
    db: str, fake_feed: socket.socket
) -> None:
    storage = SqliteStorage(db)
    await storage.migrate()
    try:

        def log_three(run: object) -> None:  # inside the insertion's transaction
            for kind in ("a", "b", "c"):
                storage.append_event(NewEvent("run-1", "job", kind, "{}", now_ms()))

        await storage.insert_runs([new_run("run-1")], announce=log_three)
        assert len(await storage.read_events(0)) == 3
        assert rings(fake_feed) == 1
    finally:
        await storage.close()


async def test_a_commit_that_logs_no_events_rings_nobody(db: str, fake_feed: socket.socket) -> None:
    storage = SqliteStorage(db)
    await storage.migrate()
    try:
        await storage.insert_runs([new_run("run-1")])
        storage.set_progress("run-1", 0, '{"current": 1}', now_ms())
        await storage.insert_runs([new_run("run-2")])  # carries the progress, if the flusher did not
        assert await storage.read_events(0) == []
        assert rings(fake_feed) == 0
    finally:
        await storage.close()


async def test_the_socket_of_a_process_that_died_breaks_no_writer_and_is_removed(db: str, tmp_path: Path) -> None:
    folder = rendezvous(str(tmp_path / "jobs.db"))
    folder.mkdir(mode=0o700, exist_ok=True)
    dead = folder / f"{FEED_PREFIX}dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
        gone.bind(str(dead))  # bound, then closed: its file stays, nobody reads it
    storage = SqliteStorage(db)
    await storage.migrate()
    try:
        storage.append_event(NewEvent("run-1", "job", "a", "{}", now_ms()))
        await storage.insert_runs([new_run("run-1")])  # carries the event, if the flusher did not
        assert len(await storage.read_events(0)) == 1
        assert not dead.exists()
    finally:
        await storage.close()


async def test_a_feed_whose_socket_was_removed_binds_a_new_one_and_is_rung_again(db: str, tmp_path: Path) -> None:
    api = create_durably(db)
    await api.migrate()
    writer = SqliteStorage(db)
    await writer.migrate()
    api.feed.interval = 0.05  # the safety-net poll (`RUNG_POLL`) notices the loss
    subscription = await api.feed.subscribe()
    folder = rendezvous(str(tmp_path / "jobs.db"))
    try:
        async with asyncio.timeout(WAIT):
            while not (bound := feed_sockets(folder)):
                await asyncio.sleep(0.01)
            bound[0].unlink()  # a temporary-files cleaner, say
            while not feed_sockets(folder):
                await asyncio.sleep(0.01)
        api.feed.interval = HOUR  # from its next wait on, only a ring brings events
        await asyncio.sleep(2 * RUNG_POLL)  # the wait in progress (at most `RUNG_POLL`) ends
        writer.append_event(NewEvent("run-1", "job", "after-rebinding", "{}", now_ms()))
        async with asyncio.timeout(WAIT):
            seen: list[str] = []
            while "after-rebinding" not in seen:
                seen += [item.type for item in await subscription.next_batch()]
    finally:
        subscription.close()
        await writer.close()
        await api.close()


def feed_sockets(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.startswith(FEED_PREFIX)] if folder.exists() else []
