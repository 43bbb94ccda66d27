"""When events made on another thread reach the listeners' loop: a run's settling event at once,
unless its worker went straight on to its slot's next run; then with the burst, in order.

No timing assertions: the burst delay is set far longer than the test, so an event that waits for it
is seen not to arrive while the loop turns, and arrives with the next event that goes at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from durably_reflex._events import ALL_EVENTS, RUN_COMPLETE, Event, EventBus

WAIT = 10.0
TURNS = 20  # iterations of the loop given to a wake-up that would come at once


async def _bus_with_listener() -> tuple[EventBus, list[Event]]:
    bus = EventBus()
    bus.BURST_DELAY = 3600.0  # a burst never comes during the test
    bus.bind(asyncio.get_running_loop())
    received: list[Event] = []
    bus.on(ALL_EVENTS, received.append)
    return bus, received


def _post_from_a_thread(bus: EventBus, run_id: str, *, busy: bool) -> None:
    thread = threading.Thread(target=lambda: bus.post(RUN_COMPLETE, busy=busy, runId=run_id))
    thread.start()
    thread.join()


async def _turn(times: int) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def _until(condition: Callable[[], object]) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), WAIT)


async def test_a_settling_event_from_another_thread_reaches_the_loop_at_once() -> None:
    bus, received = await _bus_with_listener()
    _post_from_a_thread(bus, "run-1", busy=False)
    await _until(lambda: received)
    assert [event["runId"] for event in received] == ["run-1"]


async def test_a_settling_event_of_a_worker_gone_on_to_its_next_run_waits_for_the_burst_then_comes_in_order() -> None:
    bus, received = await _bus_with_listener()
    _post_from_a_thread(bus, "run-1", busy=True)
    _post_from_a_thread(bus, "run-2", busy=True)
    await _turn(TURNS)
    assert received == []  # queued for the burst: the loop was woken once, to time it
    _post_from_a_thread(bus, "run-3", busy=False)  # the worker's last run: its slot goes idle
    await _until(lambda: len(received) == 3)
    assert [event["runId"] for event in received] == ["run-1", "run-2", "run-3"]
    assert [event["sequence"] for event in received] == sorted(event["sequence"] for event in received)
