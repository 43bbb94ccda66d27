"""How long a feed subscription's `next_batch(timeout)` waits: until items come, or until its own
timeout, whatever timeouts earlier waits asked for (a subscription keeps one timer across waits,
so that hundreds of streams do not each set and cancel a timer for every batch they send).

The waits that must not end are checked after the event loop has run past the deadline that
could end them; bounds (`WAIT`) only keep a failing test from hanging.
"""

from __future__ import annotations

import asyncio
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
