"""Jobs and a worker entry point for the multi-process tests in tests/test_processes.py.

A child process runs `python -m tests.process_jobs --db PATH-OR-URL --side FILE [options]` from the
repository root: it opens the engine on the SQLite file (or the PostgreSQL database), runs a worker, and records every step execution as one
JSON line in the side-effect file. Each line is a single unbuffered `O_APPEND` write, so lines from
several processes never interleave and a line is in the file (the page cache) the moment the write
returns: a SIGKILL right after it cannot lose it.

Side-effect lines (`kind`):
  step        a step function ran (run, step, pid, t0 = start, t1 = end; t1 is None for lines written
              at the start of a step, which the long job does so a kill mid-step leaves its trace)
  holding     the long job reached --hold-step in this process and waits for --release-file
  claim-lost  step.run raised ClaimLostError in this process (run, step, pid)

The process ends when SIGTERM arrives (the handler calls `durably.stop(timeout=--stop-timeout)`),
when --exit-when-idle is set and no run is pending or running, or after --deadline seconds. At the
end it prints one JSON summary line on stdout.
"""

from __future__ import annotations

import time

T_PROCESS = time.time()  # before the engine's (slow) imports: when this process began

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import contextlib

from pydantic import BaseModel

from durably_reflex import ClaimLostError, create_durably, define_job

# Set by main() in a worker process; the test process only triggers runs, it never executes them.
_side_fd: int | None = None
_hold_step: str | None = None
_release_file: str | None = None


def record(**line: Any) -> None:
    if _side_fd is None:
        raise RuntimeError("no side-effect file: jobs run only in a process started by main()")
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    written = os.write(_side_fd, data)  # one write(2) with O_APPEND: atomic, unbuffered
    assert written == len(data)


# -- the long job: many slow steps (crash recovery, stale takeover, graceful stop) ---------------
class LongInput(BaseModel):
    steps: int
    sleep: float = 0.02


class LongOutput(BaseModel):
    count: int
    total: int
    finisher: int  # pid of the process that ran the job function to its end


def long_step(run_id: str, name: str, i: int, sleep: float) -> dict[str, int]:
    record(kind="step", run=run_id, step=name, pid=os.getpid(), t0=time.time(), t1=None)
    if name == _hold_step and _release_file is not None:
        record(kind="holding", run=run_id, step=name, pid=os.getpid(), t0=time.time())
        deadline = time.monotonic() + 60
        while not os.path.exists(_release_file) and time.monotonic() < deadline:
            time.sleep(0.005)
    time.sleep(sleep)
    return {"i": i, "pid": os.getpid()}


async def long_run(step: Any, input: LongInput) -> LongOutput:
    total = 0
    for i in range(input.steps):
        name = f"step-{i}"
        try:
            result = await step.run(name, long_step, step.run_id, name, i, input.sleep)
        except ClaimLostError:
            record(kind="claim-lost", run=step.run_id, step=name, pid=os.getpid(), t0=time.time())
            raise
        total += result["i"]
    return LongOutput(count=input.steps, total=total, finisher=os.getpid())


long_job = define_job(name="long", input=LongInput, output=LongOutput, run=long_run)


# -- the quick job: a few short steps (many workers on one file, concurrency keys) --------------
class QuickInput(BaseModel):
    n: int
    steps: int = 4
    sleep: float = 0.001


class QuickOutput(BaseModel):
    n: int
    seen: list[int]


def quick_step(run_id: str, name: str, sleep: float) -> int:
    t0 = time.time()
    time.sleep(sleep)
    record(kind="step", run=run_id, step=name, pid=os.getpid(), t0=t0, t1=time.time())
    return os.getpid()


async def quick_run(step: Any, input: QuickInput) -> QuickOutput:
    seen = [await step.run(f"s{j}", quick_step, step.run_id, f"s{j}", input.sleep) for j in range(input.steps)]
    return QuickOutput(n=input.n, seen=seen)


quick_job = define_job(name="quick", input=QuickInput, output=QuickOutput, run=quick_run)

JOBS = {"long": long_job, "quick": quick_job}


# -- the worker process --------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite database file, or a postgresql:// URL")
    parser.add_argument("--side", required=True, help="side-effect file (JSON lines, appended)")
    parser.add_argument(
        "--jobs", default=",".join(JOBS), help="comma-separated jobs this worker registers (and so claims)"
    )
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--polling", type=float, default=0.05)
    parser.add_argument("--heartbeat", type=float, default=0.1)
    parser.add_argument("--stale", type=float, default=30.0)
    parser.add_argument("--hold-step", help="long job: in this process, block in this step until --release-file exists")
    parser.add_argument("--release-file")
    parser.add_argument("--ready-file", help="created once the engine is open (before waiting for --go-file)")
    parser.add_argument("--go-file", help="start the worker only once this file exists")
    parser.add_argument("--exit-when-idle", action="store_true", help="stop once no run is pending or running")
    parser.add_argument("--stop-timeout", type=float, default=None, help="timeout of durably.stop() on SIGTERM")
    parser.add_argument("--deadline", type=float, default=60.0, help="give up after this many seconds (exit 3)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    t_main = T_PROCESS
    durably = create_durably(
        args.db if "://" in args.db else f"sqlite:///{args.db}",
        polling_interval=args.polling,
        heartbeat_interval=args.heartbeat,
        stale_threshold=args.stale,
        max_concurrent_runs=args.max_concurrent,
    )
    durably.register(**{name: JOBS[name] for name in args.jobs.split(",")})
    await durably.migrate()
    terminated = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
    deadline = time.monotonic() + args.deadline
    if args.ready_file:
        Path(args.ready_file).write_text(str(os.getpid()))
    if args.go_file:
        while not os.path.exists(args.go_file):
            if time.monotonic() > deadline:
                await durably.close()
                return {"pid": os.getpid(), "outcome": "deadline waiting for go file"}
            await asyncio.sleep(0.01)

    await durably.start()
    t_started = time.time()

    outcome = "deadline"
    t_idle = None
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(terminated.wait(), 0.05)
        if terminated.is_set():
            outcome = "sigterm"
            break
        if args.exit_when_idle and not await durably.get_runs(status=["pending", "running"], limit=1):
            outcome = "idle"
            t_idle = time.time()
            break
    t_stop = time.time()
    await durably.close(timeout=args.stop_timeout)
    return {
        "pid": os.getpid(),
        "outcome": outcome,
        "t_main": t_main,
        "t_started": t_started,
        "t_idle": t_idle,
        "t_stop": t_stop,
        "t_closed": time.time(),
    }


def main(argv: list[str] | None = None) -> int:
    global _side_fd, _hold_step, _release_file
    args = parse_args(argv)
    _side_fd = os.open(args.side, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _hold_step, _release_file = args.hold_step, args.release_file
    summary = asyncio.run(serve(args))
    print(json.dumps(summary), flush=True)
    return 0 if summary["outcome"] in ("idle", "sigterm") else 3


if __name__ == "__main__":
    sys.exit(main())
