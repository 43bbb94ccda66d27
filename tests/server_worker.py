"""A worker in another process, for the cross-process server tests (tests/test_server_streams.py).

`python -m tests.server_worker --db FILE --ready FILE` (from the repository root) opens the engine on
the SQLite file, registers `XP_JOBS`, migrates, starts the worker, creates the ready file and runs
until SIGTERM (or `--deadline` seconds).

The API server in the test process registers the same job (so it can validate triggers) but never
starts a worker: every run is executed here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import contextlib

from pydantic import BaseModel

from durably_reflex import create_durably, define_job


class CrossInput(BaseModel):
    steps: int = 3
    sleep: float = 0.01


async def cross_process(step: Any, input: CrossInput) -> dict[str, int]:
    for i in range(input.steps):

        def work(i: int = i) -> int:
            time.sleep(input.sleep)
            step.log.info(f"step {i} in {os.getpid()}", {"i": i})
            return i

        await step.run(f"step-{i}", work)
        step.progress(i + 1, input.steps)
    return {"steps": input.steps, "pid": os.getpid()}


cross_job = define_job(name="cross-process", input=CrossInput, run=cross_process)
XP_JOBS = {"cross_process": cross_job}


async def main(args: argparse.Namespace) -> None:
    durably = create_durably(
        f"sqlite:///{args.db}", polling_interval=0.05, heartbeat_interval=0.05, stale_threshold=0.5
    )
    durably.register(**XP_JOBS)
    await durably.migrate()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await durably.start()
    Path(args.ready).write_text(str(os.getpid()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.deadline)
    await durably.close(timeout=2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--deadline", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
