"""What the command-line tests share: a job module written into a tmp dir, the CLI run there as a REAL
subprocess (`python -m durably_reflex ...`, the module found through the current directory as with
uvicorn; PYTHONPATH holds the repository), and the module's own engine in the test process, which
triggers and reads on the same SQLite file and never starts its worker. Job steps append `pid step`
lines to a side file, which tells what ran where.

Every wait is bounded; the `workspace` fixture kills whatever subprocess is still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent

JOB_MODULE = """
import asyncio, os, sys, time
from pydantic import BaseModel
from durably_reflex import create_durably, define_job

HERE = os.path.dirname(os.path.abspath(__file__))
SIDE = os.path.join(HERE, "side.txt")


def mark(step_name):
    with open(SIDE, "a") as side:  # one short append per line
        side.write(f"{os.getpid()} {step_name}\\n")


class LongInput(BaseModel):
    steps: int = 4
    sleep: float = 1.0


def slow_step(name, sleep):
    mark(name)
    time.sleep(sleep)
    return int(name[1:])


async def long_run(step, input: LongInput):
    total = 0
    for i in range(input.steps):
        total += await step.run(f"s{i}", slow_step, f"s{i}", input.sleep)
    return {"total": total, "pid": os.getpid()}


class QuickInput(BaseModel):
    n: int


async def quick_run(step, input: QuickInput):
    doubled = await step.run("double", lambda: input.n * 2)
    return {"doubled": doubled, "pid": os.getpid()}


async def switch_interval_run(step, input: QuickInput):
    return {"switch_interval": sys.getswitchinterval()}


long_job = define_job(name="long", input=LongInput, run=long_run)
quick_job = define_job(name="quick", input=QuickInput, run=quick_run)
switch_interval_job = define_job(name="switch-interval", input=QuickInput, run=switch_interval_run)

durably = create_durably(
    f"sqlite:///{os.path.join(HERE, 'jobs.db')}", polling_interval=0.05, heartbeat_interval=0.05, stale_threshold=0.5
).register(long=long_job, quick=quick_job, switch_interval=switch_interval_job)


in_memory = create_durably("sqlite:///:memory:").register(long=long_job, quick=quick_job)


def make_durably():
    return durably


def needs_args(url):
    return durably


not_durably = 42
"""

READY_SERVE = "durably-reflex API on "
READY_WORKER = "durably-reflex worker running"


class Cli:
    """`python -m durably_reflex ...` in a directory; output goes to files (never a full pipe)."""

    def __init__(self, cwd: Path, name: str, args: tuple[str, ...]) -> None:
        self.name = name
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with self.out.open("wb") as stdout, self.err.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "durably_reflex", *args],
                cwd=cwd, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def ready(self, marker: str, timeout: float = 20) -> str:
        """The first line of stdout, once it contains `marker`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first = self.stdout().partition("\n")
            if first[1] and marker in first[0]:
                return first[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}\n{self.stderr()}")
            time.sleep(0.02)
        raise AssertionError(f"{self.name} printed no {marker!r} within {timeout}s\n{self.stderr()}")

    def stop(self, signum: int, timeout: float = 15) -> int:
        self.proc.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.stderr()}") from None


class Workspace:
    """A tmp dir with the job module, the CLI processes started in it, and the module's own engine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "cli_jobs.py").write_text(JOB_MODULE)
        self.side = path / "side.txt"
        self.processes: list[Cli] = []
        self._module: ModuleType | None = None

    def cli(self, name: str, *args: str) -> Cli:
        process = Cli(self.path, name, args)
        self.processes.append(process)
        return process

    @property
    def jobs(self) -> ModuleType:
        """The job module as loaded in this process: its `durably` triggers and reads, never started."""
        if self._module is None:
            spec = importlib.util.spec_from_file_location(f"cli_jobs_{id(self)}", self.path / "cli_jobs.py")
            assert spec is not None and spec.loader is not None
            self._module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(self._module)
        return self._module

    def side_lines(self) -> list[tuple[int, str]]:
        if not self.side.exists():
            return []
        return [(int(pid), step) for pid, step in (line.split() for line in self.side.read_text().splitlines() if line)]

    def kill_all(self) -> None:
        """SIGKILL every CLI process still alive, and the worker processes it supervises."""
        for process in self.processes:
            if process.proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process(process.proc.pid).children(recursive=True):
                        child.kill()
                process.proc.kill()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.proc.wait(timeout=10)


@pytest.fixture
async def workspace(tmp_path: Path) -> AsyncIterator[Workspace]:
    space = Workspace(tmp_path)
    try:
        yield space
    finally:
        space.kill_all()
        if space._module is not None:
            await space._module.durably.close(timeout=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def assert_clean_exit(process: Cli, code: int) -> None:
    err = process.stderr()
    assert code == 0, f"{process.name} exited with {code}\n{err}"
    assert "Traceback" not in err and "ERROR" not in err, err
    assert "stopped" in err, err
