"""How long a feed subscription's `next_batch(timeout)` waits: until items come, or until its own
timeout, whatever timeouts earlier waits asked for (a subscription keeps one timer across waits,
so that hundreds of streams do not each set and cancel a timer for every batch they send).

The waits that must not end are checked after the event loop has run past the deadline that
could end them; bounds (`WAIT`) only keep a failing test from hanging.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably_reflex import create_durably
from durably_reflex._feed import FeedItem, FeedSubscription
from durably_reflex._storage.base import StoredEvent

WAIT = 60.0
HOUR = 3600.0


@pytest.fixture
async def subscription(tmp_path: Path) -> AsyncIterator[FeedSubscription]:
    durably = create_durably(f"sqlite:///{tmp_path / 'jobs.db'}")
    await durably.migrate()
    subscription = await durably.feed.subscribe()
    yield subscription
    subscription.close()
    await durably.close()


def item(event_id: int) -> FeedItem:
    return FeedItem(StoredEvent(event_id, "run-1", "job", "run:progress", '{"type":"run:progress"}'))


async def test_a_wait_ends_at_its_own_timeout_after_a_wait_with_a_longer_one(subscription: FeedSubscription) -> None:
    first = asyncio.create_task(subscription.next_batch(timeout=HOUR))
    await asyncio.sleep(0)
    subscription.offer([item(10**9)], 1)
    assert [it.id for it in await asyncio.wait_for(first, WAIT)] == [10**9]

    assert await asyncio.wait_for(subscription.next_batch(timeout=0.01), WAIT) == []


async def test_a_wait_is_not_ended_by_the_shorter_timeout_of_an_earlier_wait(subscription: FeedSubscription) -> None:
    first = asyncio.create_task(subscription.next_batch(timeout=0.01))
    await asyncio.sleep(0)
    subscription.offer([item(10**9)], 1)
    assert [it.id for it in await asyncio.wait_for(first, WAIT)] == [10**9]

    second = asyncio.create_task(subscription.next_batch(timeout=HOUR))
    await asyncio.sleep(0.05)  # the loop runs the first wait's deadline before this sleep's end
    assert not second.done()
    subscription.offer([item(10**9 + 1)], 1)
    assert [it.id for it in await asyncio.wait_for(second, WAIT)] == [10**9 + 1]


async def test_a_wait_with_no_timeout_ends_only_with_items_or_the_end(subscription: FeedSubscription) -> None:
    first = asyncio.create_task(subscription.next_batch(timeout=0.01))
    await asyncio.sleep(0)
    subscription.offer([item(10**9)], 1)
    await asyncio.wait_for(first, WAIT)

    waiting = asyncio.create_task(subscription.next_batch())
    await asyncio.sleep(0.05)  # past the first wait's deadline
    assert not waiting.done()
    subscription.end()
    assert await asyncio.wait_for(waiting, WAIT) == []


def test_on_uvloop_waits_whose_deadlines_are_under_a_millisecond_away_never_fail(tmp_path: Path) -> None:
    """`durably-reflex serve` runs on uvloop, whose `call_at` for a deadline under a millisecond away
    gives a plain Handle (it calls soon): a stream whose held progress is due about now waits like
    that, and a timer kept from an earlier wait may ring a moment before the deadline of the wait
    in progress, with items arriving between waits. (A stream's task failed this way in W4a.)"""
    uvloop = pytest.importorskip("uvloop")
    choices = random.Random(1)

    async def scenario() -> None:
        durably = create_durably(f"sqlite:///{tmp_path / 'jobs.db'}")
        await durably.migrate()
        subscription = await durably.feed.subscribe()
        received: list[int] = []

        async def stream() -> None:
            while len(received) < 20000:
                batch = await subscription.next_batch(timeout=choices.choice([0.0, 0.0002, 0.001, 0.01]))
                received.extend(entry.id for entry in batch)
                if choices.random() < 0.3:  # the stream's write, now and then, lets the loop run
                    await asyncio.sleep(0)

        async def log() -> None:
            for event_id in range(1, 20001):
                subscription.offer([item(event_id)], 10)
                for _ in range(choices.randint(0, 2)):
                    await asyncio.sleep(0)

        try:
            async with asyncio.timeout(WAIT):
                await asyncio.gather(stream(), log())
        finally:
            subscription.close()
            await durably.close()
        assert received == list(range(1, 20001))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
