"""The job of the outage tests (tests/test_outages.py), for `durably-reflex serve tests.outage_jobs:durably`.

The database URL comes from `DURABLY_OUTAGE_DB`, the stale threshold (seconds) from
`DURABLY_OUTAGE_STALE`: the tests make it shorter than their outages, so a worker that judged runs
stale by heartbeats the outage kept from being written would take them, and show it. Every execution of a step function prints one JSON
line on stdout (`{"run", "step", "pid"}`): stdout is a pipe, which stays writable when the test takes
the process's files away (RLIMIT_FSIZE), so the test sees each step that ran, where, and how often.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from pydantic import BaseModel

from durably_reflex import create_durably, define_job


class PacedInput(BaseModel):
    steps: int
    sleep: float = 0.02


def work(run_id: str, i: int, sleep: float) -> int:
    line = json.dumps({"run": run_id, "step": i, "pid": os.getpid()}) + "\n"
    os.write(1, line.encode())  # one write(2): lines of concurrent runs never interleave
    time.sleep(sleep)
    return i


async def paced_run(step: Any, input: PacedInput) -> dict[str, int]:
    total = 0
    for i in range(input.steps):
        total += await step.run(f"step-{i}", work, step.run_id, i, input.sleep)
    return {"total": total}


paced = define_job(name="paced", input=PacedInput, run=paced_run)

durably = create_durably(
    os.environ.get("DURABLY_OUTAGE_DB", "sqlite:///outage.db"),
    polling_interval=0.05,
    heartbeat_interval=0.1,
    stale_threshold=float(os.environ.get("DURABLY_OUTAGE_STALE", "30")),
    max_concurrent_runs=4,
).register(paced=paced)
