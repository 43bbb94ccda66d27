"""Database outages fail no run: a REAL `durably-reflex serve` process (tests/outage_jobs.py) on a
REAL database that becomes unavailable while runs are in flight, and comes back.

- PostgreSQL: the suite's server is stopped (`pg_ctl stop -m fast`: every connection is ended, new
  ones are refused) and started again.
- SQLite: the process may no longer write files (`RLIMIT_FSIZE` set to one byte from outside with
  prlimit): every write to the database fails with "disk I/O error", as on a full or failing disk,
  while reads keep working. The step lines come through a pipe, which the limit does not touch.

The outages last three times the URL's `reconnect_timeout` (how long a call waits for the database
before `StorageUnavailableError`) and outlast the stale threshold: a worker that gave up, failed a
step write, or took runs whose heartbeats the outage kept from being written would show it.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import BaseModel

from durably_reflex import create_durably, define_job

ROOT = Path(__file__).resolve().parent.parent
PATIENCE = 0.5  # reconnect_timeout of the tests' URLs
OUTAGE = 3 * PATIENCE
STALE = 1.0  # shorter than OUTAGE
RUNS, STEPS = 4, 40

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux prlimit and signals")


class Server:
    """`durably-reflex serve tests.outage_jobs:durably --in-process-worker` (the API and a worker in
    one process, which the outage reaches) on a free port (or, `command="worker"`, a worker alone); stdout and stderr are read by threads (pipes, never files: the SQLite outage
    takes the process's files away)."""

    def __init__(self, url: str, command: str = "serve") -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "DURABLY_OUTAGE_DB": url,
            "DURABLY_OUTAGE_STALE": str(STALE),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "durably_reflex", command, "tests.outage_jobs:durably", "--stop-timeout", "1",
             *(["--port", "0", "--in-process-worker"] if command == "serve" else [])],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=_collect, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=_collect, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        marker = "durably-reflex API on" if command == "serve" else "durably-reflex worker running"
        banner = wait_until(lambda: next((line for line in self.out if marker in line), None),
                            30, f"{command}'s banner", alive=self)  # fmt: skip
        base = banner.split(" on ", 1)[1].split(" ", 1)[0] if command == "serve" else "http://unused.invalid"
        self.http = httpx.Client(base_url=base, timeout=10 * PATIENCE, trust_env=False)

    def steps(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.out) if line.startswith("{")]

    def stderr(self) -> str:
        return "".join(self.err)[-6000:]

    def stop(self) -> int:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not stop within 30s\n{self.stderr()}") from None
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _collect(stream: Any, lines: list[str]) -> None:
    for raw in stream:
        lines.append(raw.decode(errors="replace"))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, alive: Server | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and alive.proc.poll() is not None:
            raise AssertionError(f"the server exited ({alive.proc.returncode}) waiting for {what}\n{alive.stderr()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# -- the two kinds of outage -----------------------------------------------------------------------
class Outage:
    """`begin(processes)` makes the database unavailable to them, `end(processes)` gives it back."""

    def __init__(self, url: str, begin: Callable[[list[Server]], None], end: Callable[[list[Server]], None]) -> None:
        self.url, self.begin, self.end = url, begin, end


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "sqlite":

        def limit(processes: list[Server], size: int) -> None:
            for server in processes:
                if server.proc.poll() is None:  # (a server that has exited needs no disk back)
                    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

        yield Outage(
            f"sqlite:///{tmp_path / 'outage.db'}?reconnect_timeout={PATIENCE}",
            lambda processes: limit(processes, 1),
            lambda processes: limit(processes, resource.RLIM_INFINITY),
        )
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = request.getfixturevalue("pg_url")
    stopped = threading.Event()

    def stop(_: list[Server]) -> None:
        stopped.set()
        cluster.stop("fast")  # every connection is ended, new ones are refused (and no commit is lost)

    def start(_: list[Server]) -> None:
        if stopped.is_set():
            cluster.start()
            stopped.clear()

    try:
        yield Outage(f"{url}?reconnect_timeout={PATIENCE}", stop, start)
    finally:
        start([])  # the rest of the session needs the server, whatever happened


def stored(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the database directly (not through the server under test)."""
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.split(":///", 1)[1].split("?", 1)[0]) as db:
            return db.execute(sql).fetchall()
    with psycopg.connect(url.split("?", 1)[0]) as db:
        return db.execute(sql).fetchall()


def trigger_runs(server: Server, count: int = RUNS) -> list[str]:
    run_ids = []
    for _ in range(count):
        response = server.http.post("/trigger", json={"jobName": "paced", "input": {"steps": STEPS}})
        assert response.status_code == 200, response.text
        run_ids.append(response.json()["runId"])
    return run_ids


def each_under_way(processes: list[Server], run_ids: list[str]) -> bool:
    started = Counter(line["run"] for server in processes for line in server.steps())
    return all(started[run_id] >= 3 for run_id in run_ids)


def check_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "STORAGE_UNAVAILABLE"
    assert int(response.headers["retry-after"]) >= 1


# -- tests -----------------------------------------------------------------------------------------
def test_an_outage_longer_than_the_reconnect_timeout_fails_no_run_and_the_api_answers_503_meanwhile(
    outage: Outage,
) -> None:
    server = Server(outage.url)
    worker = Server(outage.url, "worker")  # another process: it must not take the server's runs, nor they its
    processes = [server, worker]
    try:
        run_ids = trigger_runs(server, RUNS * 2)
        wait_until(lambda: each_under_way(processes, run_ids), 30, "every run to be under way", alive=server)
        assert all(process.steps() for process in processes)

        outage.begin(processes)
        began = time.monotonic()
        answers = []
        try:
            while time.monotonic() - began < OUTAGE:
                answers.append(server.http.post("/trigger", json={"jobName": "paced", "input": {"steps": 1}}))
        finally:
            outage.end(processes)
        assert answers
        for response in answers:
            check_unavailable(response)

        def settled() -> list[tuple[Any, ...]] | None:
            rows = stored(outage.url, "SELECT id, status, attempt, error FROM durably_runs")
            return rows if all(status in ("completed", "failed") for _, status, _, _ in rows) else None

        rows = wait_until(settled, 30, "every run to settle", alive=server)
        assert server.http.get("/runs").status_code == 200
        assert {(run_id, status, attempt, error) for run_id, status, attempt, error in rows} == {
            (run_id, "completed", 1, None) for run_id in run_ids
        }, server.stderr() + worker.stderr()  # nothing failed, nothing was taken from its live worker
        executions = Counter((line["run"], line["step"]) for process in processes for line in process.steps())
        assert executions == Counter({(run_id, i): 1 for run_id in run_ids for i in range(STEPS)})
        for process in processes:
            log = process.stderr()
            assert log.count("database unavailable") <= 2, log  # once per connection (writer, reader), not per retry
            assert "database available again" in log
    finally:
        server.kill()
        worker.kill()


def test_stopping_the_server_while_its_database_is_unavailable_exits_0_and_another_resumes_its_runs(
    outage: Outage,
) -> None:
    first = Server(outage.url)
    second = None
    try:
        run_ids = trigger_runs(first)
        wait_until(lambda: each_under_way([first], run_ids), 30, "every run to be under way", alive=first)
        outage.begin([first])
        try:
            assert first.stop() == 0, first.stderr()  # runs interrupted after --stop-timeout 1
        finally:
            outage.end([first])
        assert "stopped without handing back run(s)" in first.stderr()

        second = Server(outage.url)  # the first's runs: their owner is dead, so they resume at once

        def settled() -> list[tuple[Any, ...]] | None:
            rows = stored(outage.url, "SELECT id, status FROM durably_runs")
            return rows if all(status == "completed" for _, status in rows) else None

        assert {run_id for run_id, _ in wait_until(settled, 30, "every run to complete", alive=second)} == set(run_ids)
        executions = Counter((line["run"], line["step"]) for line in first.steps() + second.steps())
        assert set(executions) == {(run_id, i) for run_id in run_ids for i in range(STEPS)}
        for run_id in run_ids:  # only the step in flight when the first stopped, whose result it could not write
            assert sum(count - 1 for (run, _), count in executions.items() if run == run_id) <= 1, executions
    finally:
        first.kill()
        if second is not None:
            second.kill()


class Gated(BaseModel):
    gate: str


_GATES: dict[str, threading.Event] = {}


async def gated_run(step: Any, input: Gated) -> dict[str, str]:
    await step.run("first", lambda: "one")
    return {"second": await step.run("second", lambda: "two" if _GATES[input.gate].wait(30) else "timed out")}


gated = define_job(name="gated", input=Gated, run=gated_run)


async def test_trigger_and_wait_waits_through_an_outage_longer_than_the_reconnect_timeout(
    pg_cluster: Any, pg_url: str
) -> None:
    durably = create_durably(f"{pg_url}?reconnect_timeout={PATIENCE}", polling_interval=0.05,
                             heartbeat_interval=0.1, stale_threshold=STALE).register(gated=gated)  # fmt: skip
    _GATES["outage"] = gate = threading.Event()
    await durably.init()
    try:
        waiting = asyncio.create_task(durably.jobs.gated.trigger_and_wait({"gate": "outage"}, timeout=30))
        async with asyncio.timeout(10):
            while not await durably.get_runs(status="running"):
                await asyncio.sleep(0.01)
        await asyncio.to_thread(pg_cluster.stop, "fast")
        try:
            await asyncio.sleep(OUTAGE)  # the outage: the waiter's reads fail meanwhile
            gate.set()
        finally:
            await asyncio.to_thread(pg_cluster.start)
        result = await waiting
        assert result.output == {"second": "two"}
    finally:
        await durably.close(timeout=5)
