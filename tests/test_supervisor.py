"""Worker processes under a supervisor (`durably-reflex worker --processes N`, and the workers of
`durably-reflex serve`), with REAL processes: they share the runs, a crashed one is started again and
its run resumed elsewhere, signals stop them all cleanly, and none outlives its supervisor.

The helpers (a job module in a tmp dir, the CLI as a subprocess) are tests/cli_helpers.py. Every
supervised worker logs `worker N: running (pid P, ...)` once started; the tests read those lines
from the supervisor's stderr, which its children share.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections import Counter

import httpx
import psutil
import pytest

from tests.cli_helpers import (
    READY_SERVE,
    READY_WORKER,
    Cli,
    Workspace,
    assert_clean_exit,
    free_port,
    until,
    workspace,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

_RUNNING = re.compile(r"worker (\d+): running \(pid (\d+),")


def running_workers(process: Cli) -> dict[int, int]:
    """Worker index -> pid of the latest process that said it is running."""
    return {int(index): int(pid) for index, pid in _RUNNING.findall(process.stderr())}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_worker_processes_share_the_runs_and_a_killed_one_is_started_again(workspace: Workspace) -> None:
    durably = workspace.jobs.durably
    await durably.migrate()
    supervisor = workspace.cli("workers", "worker", "cli_jobs:durably", "--processes", "2")
    assert supervisor.ready(READY_WORKER) == (
        "durably-reflex worker running (2 processes, 1 slot each); press Ctrl-C to stop"
    )
    first = running_workers(supervisor)
    assert sorted(first) == [1, 2]
    assert sorted(child.pid for child in psutil.Process(supervisor.proc.pid).children()) == sorted(first.values())

    # One slot each: two runs at once means one in each worker process.
    runs = await durably.batch_trigger("long", [{"steps": 4, "sleep": 0.4}] * 2)

    async def both_working() -> bool:
        return {pid for pid, _ in workspace.side_lines()} == set(first.values())

    await until(both_working, 15, "both worker processes to run steps")
    victim_index, victim = 1, first[1]
    psutil.Process(victim).kill()

    async def restarted() -> int | None:
        pid = running_workers(supervisor).get(victim_index)
        return pid if pid not in (None, victim) else None

    replacement = await until(restarted, 15, "worker 1 to be started again")
    assert f"worker 1 (pid {victim}) was killed by SIGKILL; starting it again" in supervisor.stderr()
    for run in runs:  # the killed worker's run resumes in another worker, from its last completed step
        result = await durably.wait_for_run(run.id, timeout=30)
        assert result.output["total"] == 0 + 1 + 2 + 3
    executions = Counter(step for _, step in workspace.side_lines())
    assert sum(executions.values()) <= 2 * 4 + 1  # at most the killed worker's step in flight runs again
    assert gone(victim) and not gone(replacement)

    children = [child.pid for child in psutil.Process(supervisor.proc.pid).children()]
    assert sorted(children) == sorted([replacement, first[2]])
    assert_clean_exit(supervisor, supervisor.stop(signal.SIGTERM))
    assert all(gone(pid) for pid in children)
    assert supervisor.stderr().count("stopped") == 3  # both workers, then the supervisor


async def test_a_second_sigint_stops_every_worker_at_once_and_their_runs_are_handed_back(
    workspace: Workspace,
) -> None:
    durably = workspace.jobs.durably
    await durably.migrate()
    supervisor = workspace.cli("workers", "worker", "cli_jobs:durably", "--processes", "2")  # --stop-timeout 30
    supervisor.ready(READY_WORKER)
    runs = await durably.batch_trigger("long", [{"steps": 2, "sleep": 5.0}] * 2)

    async def both_started() -> bool:
        return len({pid for pid, _ in workspace.side_lines()}) == 2

    await until(both_started, 15, "a step to start in each worker process")
    children = [child.pid for child in psutil.Process(supervisor.proc.pid).children()]
    supervisor.proc.send_signal(signal.SIGINT)  # a terminal's Ctrl-C reaches the supervisor alone
    await asyncio.sleep(0.3)
    stopped_at = time.monotonic()
    code = supervisor.stop(signal.SIGINT)
    assert time.monotonic() - stopped_at < 4  # not the steps' 5 s, nor the 30 s stop timeout
    assert code == 0, supervisor.stderr()
    for index in (1, 2):
        assert f"worker {index}: SIGTERM received again" in supervisor.stderr()
    assert all(gone(pid) for pid in children)
    for run in runs:
        stopped = await durably.get_run(run.id)
        assert stopped is not None and stopped.status == "pending"


async def test_workers_stop_by_themselves_when_their_supervisor_is_killed(workspace: Workspace) -> None:
    durably = workspace.jobs.durably
    await durably.migrate()
    supervisor = workspace.cli("workers", "worker", "cli_jobs:durably", "--processes", "2", "--stop-timeout", "0.2")
    supervisor.ready(READY_WORKER)
    run = await durably.trigger("long", {"steps": 50, "sleep": 0.1})

    async def started() -> bool:
        return bool(workspace.side_lines())

    await until(started, 15, "the run's first step")
    children = [child.pid for child in psutil.Process(supervisor.proc.pid).children()]
    supervisor.proc.kill()
    supervisor.wait(10)

    async def all_gone() -> bool:
        return all(gone(pid) for pid in children)

    await until(all_gone, 15, "the orphaned workers to stop")
    assert supervisor.stderr().count("the supervisor is gone: stopping") == 2
    stopped = await durably.get_run(run.id)
    assert stopped is not None and stopped.status == "pending"  # handed back, not left running


async def test_serve_runs_several_worker_processes_at_the_niceness_asked(workspace: Workspace) -> None:
    port = free_port()
    server = workspace.cli(
        "serve", "serve", "cli_jobs:durably", "--port", str(port), "--processes", "2", "--worker-nice", "3"
    )
    base = f"http://127.0.0.1:{port}/api/durably"
    assert server.ready(READY_SERVE) == f"durably-reflex API on {base} (worker: 2 processes, 1 slot each)"

    async def both_running() -> dict[int, int] | None:
        workers = running_workers(server)
        return workers if len(workers) == 2 else None

    workers = await until(both_running, 20, "both worker processes to start")
    api_nice = psutil.Process(server.proc.pid).nice()
    for pid in workers.values():  # every thread of a worker: its job code runs on threads it starts later
        assert {psutil.Process(thread.id).nice() for thread in psutil.Process(pid).threads()} == {api_nice + 3}
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:
        trigger = {"jobName": "long", "input": {"steps": 2, "sleep": 0.5}}
        run_ids = [(await http.post("/trigger", json=trigger)).json()["runId"] for _ in range(2)]
    outputs = [(await workspace.jobs.durably.wait_for_run(run_id, timeout=30)).output for run_id in run_ids]
    assert sorted(output["pid"] for output in outputs) == sorted(workers.values())
    assert_clean_exit(server, server.stop(signal.SIGTERM))
    assert all(gone(pid) for pid in workers.values())


async def test_an_in_memory_database_keeps_the_worker_in_the_api_process(workspace: Workspace) -> None:
    refused = workspace.cli("refused", "worker", "cli_jobs:in_memory", "--processes", "2")
    assert refused.wait(60) == 2
    assert refused.stderr().strip().splitlines() == [
        "error: --processes needs a database that other processes can open: "
        "an in-memory SQLite database lives inside one process"
    ]

    port = free_port()
    server = workspace.cli("serve", "serve", "cli_jobs:in_memory", "--port", str(port))
    base = f"http://127.0.0.1:{port}/api/durably"
    assert server.ready(READY_SERVE) == f"durably-reflex API on {base} (worker: this process, 1 slot)"
    assert "the worker runs in the API's process" in server.stderr()
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:
        run_id = (await http.post("/trigger", json={"jobName": "quick", "input": {"n": 3}})).json()["runId"]

        async def completed() -> dict[str, object] | None:
            run = (await http.get("/run", params={"runId": run_id})).json()
            return run if run["status"] == "completed" else None

        run = await until(completed, 15, "the run to complete")
    assert run["output"] == {"doubled": 6, "pid": server.proc.pid}
    code = server.stop(signal.SIGTERM)
    assert code == 0 and "stopped" in server.stderr(), server.stderr()
