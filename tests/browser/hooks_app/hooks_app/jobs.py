"""The test app's jobs and engine: a paced counter (progress and logs), a job that fails, and `tick`
(bench/ui_latency.py: timestamped progress on a fixed schedule)."""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import BaseModel

from durably_reflex import StepContext, create_durably, define_job


class CountInput(BaseModel):
    n: int = 5
    delay: float = 0.2  # seconds per step: slow enough to watch, reload, cancel


class CountOutput(BaseModel):
    count: int


@define_job(name="count-up", input=CountInput, output=CountOutput)
async def count_up(step: StepContext, input: CountInput) -> CountOutput:
    for i in range(input.n):
        await step.run(f"count-{i}", lambda i=i: asyncio.sleep(input.delay, result=i))
        step.progress(i + 1, input.n, f"counted {i + 1}")
        step.log.info(f"counted {i + 1} of {input.n}", {"i": i})
    return CountOutput(count=input.n)


class FailInput(BaseModel):
    message: str = "boom"


@define_job(name="always-fails", input=FailInput)
async def always_fails(step: StepContext, input: FailInput) -> None:
    await step.run("explode", lambda: _raise(input.message))


def _raise(message: str) -> None:
    raise RuntimeError(message)


class TickInput(BaseModel):
    n: int = 200
    interval: float = 0.2  # seconds between two progress reports, on a fixed schedule


@define_job(name="tick", input=TickInput)
async def tick(step: StepContext, input: TickInput) -> None:
    """For bench/ui_latency.py: progress `i` of `n` every `interval` seconds (a fixed schedule, no
    drift); the message is "<i> <time.time() just before step.progress()>" so a page can measure
    how long the value took to reach it."""
    start = time.time()
    for i in range(1, input.n + 1):
        await asyncio.sleep(max(0.0, start + i * input.interval - time.time()))
        step.progress(i, input.n, f"{i} {time.time():.6f}")


durably = create_durably(
    os.environ.get("DURABLY_DB_URL", "sqlite:///hooks_app.db"),
    polling_interval=0.05,
    max_concurrent_runs=4,
).register(count_up=count_up, always_fails=always_fails, tick=tick)
