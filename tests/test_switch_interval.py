"""The interpreter's switch interval is the process's: a worker changes it only when asked
(`start(switch_interval=...)`, as mount_durably and serve --in-process-worker ask), and gives it
back when it stops."""

from __future__ import annotations

import sys

import pytest

from durably_reflex import create_durably
from durably_reflex._switch import SHORT_SWITCH_INTERVAL
from tests.conftest import FAST


@pytest.fixture
def default_interval():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(before)


async def test_a_worker_leaves_the_switch_interval_alone(tmp_path, default_interval):
    durably = create_durably(f"sqlite:///{tmp_path}/jobs.db", **FAST)
    await durably.start()
    try:
        assert sys.getswitchinterval() == default_interval
    finally:
        await durably.close()


async def test_a_worker_asked_to_holds_the_switch_interval_while_it_runs(tmp_path, default_interval):
    durably = create_durably(f"sqlite:///{tmp_path}/jobs.db", **FAST)
    await durably.start(switch_interval=SHORT_SWITCH_INTERVAL)
    assert sys.getswitchinterval() == SHORT_SWITCH_INTERVAL

    await durably.close()

    assert sys.getswitchinterval() == default_interval


async def test_the_interval_comes_back_when_the_last_of_several_workers_stops(tmp_path, default_interval):
    first = create_durably(f"sqlite:///{tmp_path}/first.db", **FAST)
    second = create_durably(f"sqlite:///{tmp_path}/second.db", **FAST)
    await first.start(switch_interval=SHORT_SWITCH_INTERVAL)
    await second.start(switch_interval=SHORT_SWITCH_INTERVAL)

    await first.close()
    assert sys.getswitchinterval() == SHORT_SWITCH_INTERVAL  # the second still runs
    await second.close()

    assert sys.getswitchinterval() == default_interval
