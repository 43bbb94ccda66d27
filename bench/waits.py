"""Durable waits: what waiting runs cost, and how late they wake, on a SQLite file (or `--url`).

    .venv/bin/python bench/waits.py [--waiting 10000] [--samples 50] [--url postgresql://...]

1. Idle cost of waiting runs: `--waiting` runs each parked in `step.wait_for_signal` (no deadline)
   or `step.sleep` (an hour), on a worker with 4 slots. Reported: pending runs, busy slots, and the
   worker process's CPU time over 10 s of waiting (user + system, from `resource`).
2. Wake-up lateness: a run sleeping 200 ms on an idle worker; when its next step starts, minus the
   sleep's deadline (p50/p95 over `--samples`).
3. Signal to resumed step, one process: `durably.signal(...)` to the job's next step starting.
4. Signal to resumed step across processes: the signal sent by this process, the run executed by a
   worker in a child process (which reports when the step started).
5. Schedule fire time: a schedule firing every second; when each tick's run was created, minus
   its tick (p50/p95 over `--samples` ticks, at most 30).

Targets (issue 13): 1 no slots and no measurable CPU; 2 p95 < 50 ms; 3 p95 < 20 ms; 4 p95 < 250 ms;
5 within 100 ms. Every wait is bounded; children are stopped at the end; only 127.0.0.1/files.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel

from durably_reflex import Durably, create_durably, define_job

STARTS: dict[str, float] = {}  # run id -> time.time() when the step after the wait started


class Empty(BaseModel):
    pass


class Nap(BaseModel):
    seconds: float = 0.2


async def _parked(step: Any, payload: Empty) -> None:
    await step.wait_for_signal("go")


async def _sleeper(step: Any, payload: Nap) -> None:
    await step.sleep("nap", payload.seconds)
    await step.run("after", lambda: STARTS.setdefault(step.run_id, time.time()))


async def _signalled(step: Any, payload: Empty) -> None:
    await step.wait_for_signal("go")
    await step.run("after", lambda: STARTS.setdefault(step.run_id, time.time()))


async def _ticked(step: Any, payload: Empty) -> None:
    return None


PARKED = define_job(name="parked", input=Empty, run=_parked)
SLEEPER = define_job(name="sleeper", input=Nap, run=_sleeper)
SIGNALLED = define_job(name="signalled", input=Empty, run=_signalled)
TICKED = define_job(name="ticked", input=Empty, run=_ticked)
JOBS = {"parked": PARKED, "sleeper": SLEEPER, "signalled": SIGNALLED, "ticked": TICKED}


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f} ms  p95 {p95:7.1f} ms  (n={len(ordered)})"


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def idle_cost(url: str, waiting: int) -> None:
    durably = create_durably(url, max_concurrent_runs=4).register(**JOBS)
    await durably.init()
    try:
        parked = [0]
        durably.on("run:wait", lambda event: parked.__setitem__(0, parked[0] + 1))
        half = waiting // 2
        await durably.batch_trigger("parked", [{}] * half)
        await durably.batch_trigger("sleeper", [{"seconds": 3600}] * (waiting - half))

        async def all_parked() -> bool:
            return parked[0] >= waiting

        started = time.monotonic()
        await until(all_parked, 600, "every run to be waiting")
        print(f"1. {waiting:,} runs parked in {time.monotonic() - started:.1f} s")
        await asyncio.sleep(1)
        before = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(10)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        stats = await durably.get_run_stats()
        print(
            f"   waiting: {stats.counts.pending:,} pending, {stats.counts.running} running (slots busy); "
            f"worker process CPU over 10 s: {cpu * 1000:.0f} ms ({cpu / 10 * 100:.2f}% of a core)"
        )
    finally:
        await durably.close(0)


async def lateness(url: str, samples: int) -> None:
    durably = create_durably(url).register(**JOBS)
    await durably.init()
    try:
        late = []
        for _ in range(samples):
            run = await durably.jobs.sleeper.trigger({"seconds": 0.2})

            async def waiting(run_id: str = run.id) -> bool:
                current = await durably.get_run(run_id)
                return current is not None and current.waiting_for is not None

            await until(waiting, 10, "the run to sleep")
            current = await durably.get_run(run.id)
            assert current is not None and current.waiting_for is not None and current.waiting_for.until is not None
            deadline = current.waiting_for.until.timestamp()
            await until(lambda run_id=run.id: _started(run_id), 10, "the run to wake")
            late.append((STARTS[run.id] - deadline) * 1000)
        print(f"2. wake-up lateness, idle worker:          {percentiles(late)}")
    finally:
        await durably.close(0)


async def _started(run_id: str) -> bool:
    return run_id in STARTS


async def signal_one_process(url: str, samples: int) -> None:
    durably = create_durably(url).register(**JOBS)
    await durably.init()
    try:
        delays = []
        for _ in range(samples):
            run = await durably.jobs.signalled.trigger({})
            await until(lambda run_id=run.id: _waiting(durably, run_id), 10, "the run to wait")
            sent = time.time()
            await durably.signal(run.id, "go", None)
            await until(lambda run_id=run.id: _started(run_id), 10, "the step after the signal")
            delays.append((STARTS[run.id] - sent) * 1000)
        print(f"3. signal -> resumed step, one process:    {percentiles(delays)}")
    finally:
        await durably.close(0)


async def _waiting(durably: Durably, run_id: str) -> bool:
    current = await durably.get_run(run_id)
    return current is not None and current.status == "pending" and current.waiting_for is not None


CHILD = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[2])
import bench.waits as waits
from durably_reflex import create_durably

async def main():
    class Reporting(dict):  # the jobs record when a step starts here; this process says so
        def setdefault(self, run_id, at):
            print(run_id, at, flush=True)
            return super().setdefault(run_id, at)

    waits.STARTS = Reporting()
    durably = create_durably(sys.argv[1]).register(**waits.JOBS)
    await durably.init()
    print("ready", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def signal_across_processes(url: str, samples: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(ROOT)], stdout=subprocess.PIPE, text=True)
    caller = create_durably(url).register(**JOBS)  # never starts a worker: the child runs the jobs
    try:
        assert child.stdout is not None
        assert (await asyncio.to_thread(child.stdout.readline)).strip() == "ready"
        delays = []
        for _ in range(samples):
            run = await caller.jobs.signalled.trigger({})
            await until(lambda run_id=run.id: _waiting(caller, run_id), 10, "the run to wait")
            sent = time.time()
            await caller.signal(run.id, "go", None)
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 10)
            run_id, at = line.split()
            assert run_id == run.id
            delays.append((float(at) - sent) * 1000)
        print(f"4. signal -> resumed step, two processes:  {percentiles(delays)}")
    finally:
        child.kill()
        child.wait(10)
        await caller.close()


async def schedule_fire_times(url: str, samples: int) -> None:
    durably = create_durably(url).register(**JOBS)
    await durably.init()
    try:
        await durably.jobs.ticked.schedule("* * * * * *")
        ticks = min(samples, 30)

        async def enough() -> bool:
            return len(await durably.get_runs(job_name="ticked")) >= ticks + 1

        await until(enough, ticks + 20, "the schedule's ticks")
        await durably.pause_schedule("ticked")
        runs = await durably.get_runs(job_name="ticked")
        offsets = [
            run.created_at.timestamp() * 1000 - int(str(run.idempotency_key).rsplit(":", 1)[1])
            for run in runs[:-1]  # the oldest may be the tick right after scheduling
        ]
        print(f"5. schedule: run created after its tick:   {percentiles(offsets)}")
    finally:
        await durably.close(0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--url", help="a database URL (default: a fresh SQLite file per part)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="durably-waits-"))

    def url(part: str) -> str:
        return args.url or f"sqlite:///{folder / part}.db"

    await idle_cost(url("idle"), args.waiting)
    await lateness(url("late"), args.samples)
    await signal_one_process(url("signal1"), args.samples)
    await signal_across_processes(url("signal2"), args.samples)
    await schedule_fire_times(url("schedule"), args.samples)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
