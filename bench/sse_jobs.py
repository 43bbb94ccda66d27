"""The jobs of bench/sse.py, in a module of their own: the benchmark's own server imports them, and
`durably-reflex serve sse_jobs:make_durably` serves them as a user would (bench/cli_server.py copies
this file beside the database, so it runs against any code tree, an earlier commit's included).
Only the standard library and durably_reflex: nothing of the benchmark itself.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

MAX_CONCURRENT_RUNS = 4
W4A_STEPS = 5
W4B_STEPS = 3
YIELD_SLEEP_S = 0.01
CPU_SPIN_S = 0.05

JOB_YIELD = "w4a-yield"
JOB_CPU = "w4a-cpu"
JOB_W4B = "w4b"
JOB_W2 = "w2"


async def _sleep_step(i: int) -> int:
    await asyncio.sleep(YIELD_SLEEP_S)
    return i


def _spin_step(i: int) -> int:
    t = time.perf_counter()
    while time.perf_counter() < t + CPU_SPIN_S:
        pass
    return i


def _trivial_step() -> int:
    return 1


def make_jobs() -> dict[str, Any]:
    from durably_reflex import define_job

    async def yielding(step: Any, _input: Any) -> dict[str, int]:
        for i in range(W4A_STEPS):
            await step.run(f"s{i}", _sleep_step, i)
            step.progress(i + 1, W4A_STEPS, message=f"{time.time():.6f}")
        return {"steps": W4A_STEPS}

    async def spinning(step: Any, _input: Any) -> dict[str, int]:
        for i in range(W4A_STEPS):
            await step.run(f"s{i}", _spin_step, i)
            step.progress(i + 1, W4A_STEPS, message=f"{time.time():.6f}")
        return {"steps": W4A_STEPS}

    async def per_run(step: Any, _input: Any) -> dict[str, int]:
        for i in range(W4B_STEPS):
            await step.run(f"s{i}", _sleep_step, i)
            step.progress(i + 1, W4B_STEPS, message=f"{time.time():.6f}")
        return {"steps": W4B_STEPS}

    async def one_step(step: Any, _input: Any) -> int:
        return await step.run("only", _trivial_step)

    return {
        "w4a_yield": define_job(name=JOB_YIELD, run=yielding),
        "w4a_cpu": define_job(name=JOB_CPU, run=spinning),
        "w4b": define_job(name=JOB_W4B, run=per_run),
        "w2": define_job(name=JOB_W2, run=one_step),
    }


def make_durably() -> Any:
    """The engine `durably-reflex serve sse_jobs:make_durably` serves: the database at
    $DURABLY_BENCH_DB, MAX_CONCURRENT_RUNS slots per worker."""
    from durably_reflex import create_durably

    return create_durably(os.environ["DURABLY_BENCH_DB"], max_concurrent_runs=MAX_CONCURRENT_RUNS).register(
        **make_jobs()
    )
