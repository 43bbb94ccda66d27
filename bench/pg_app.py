"""The app that bench/postgres.py serves and works on, in separate processes, for its cross-process
stream latency figure: `python -m durably_reflex serve bench.pg_app:durably --no-worker` (process A)
and `python -m durably_reflex worker bench.pg_app:durably` (process B), both on the PostgreSQL
database named by DURABLY_BENCH_URL."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from durably_reflex import create_durably, define_job

TICKS = 50  # as bench/postgres.py expects
TICK_S = 0.02


async def ticker(step: Any, _input: Any) -> int:
    await asyncio.sleep(0.5)  # the stream is attached by then: every tick is measured live
    for i in range(TICKS):
        await step.run(f"tick-{i}", lambda i=i: i)
        step.progress(i + 1, TICKS)
        await asyncio.sleep(TICK_S)
    return TICKS


durably = create_durably(os.environ["DURABLY_BENCH_URL"], polling_interval=0.05).register(
    ticker=define_job(name="ticker", run=ticker)
)
