"""The engine across REAL processes on one REAL SQLite file, and (where marked) on one REAL
PostgreSQL database: `db` is then the database's URL instead of the file's path.

Worker processes run `tests/process_jobs.py` (its module docstring describes the side-effect file
they append to). This test process triggers runs with an engine whose worker it never starts, sends
signals (SIGKILL, SIGSTOP/SIGCONT, SIGTERM), and then checks the side-effect file (what actually ran,
where, when) against the `durably_runs` and `durably_steps` tables (what the engine committed).

Every wait is a bounded loop; every child is killed in the fixture's teardown whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from durably_reflex import BatchItem, create_durably
from tests.process_jobs import JOBS

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc") or sys.platform != "linux", reason="needs Linux signals and /proc"
)


# -- helpers ---------------------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    spawned_at: float  # time.time() just before Popen

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} (pid {self.pid}) did not exit within {timeout}s\n{self.stderr()}"
            ) from None

    def summary(self) -> dict[str, Any]:
        lines = self.out.read_text().strip().splitlines()
        assert lines, f"{self.name} printed no summary\n{self.stderr()}"
        return json.loads(lines[-1])

    def stderr(self) -> str:
        return f"--- stderr of {self.name} ---\n{self.err.read_text()[-4000:]}"


class Children:
    """Spawns worker processes; the fixture's teardown kills whichever are still alive."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.all: list[Child] = []

    def spawn(self, name: str, db: Database, side: Path, *options: str) -> Child:
        out, err = self.tmp_path / f"{name}.out", self.tmp_path / f"{name}.err"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with out.open("wb") as stdout, err.open("wb") as stderr:
            spawned_at = time.time()
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.process_jobs", "--db", str(db), "--side", str(side), *options],
                cwd=ROOT, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        child = Child(name, proc, out, err, spawned_at)
        self.all.append(child)
        return child

    def kill_all(self) -> None:
        for child in self.all:
            if child.proc.poll() is None:
                try:
                    os.kill(child.pid, signal.SIGCONT)  # a stopped process must run to die of SIGKILL cleanly
                    child.proc.kill()
                except ProcessLookupError:
                    pass
        for child in self.all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=10)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    spawner = Children(tmp_path)
    try:
        yield spawner
    finally:
        spawner.kill_all()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_side(side: Path, kind: str | None = "step") -> list[dict[str, Any]]:
    if not side.exists():
        return []
    lines = [json.loads(line) for line in side.read_text().splitlines() if line]
    return [line for line in lines if kind is None or line["kind"] == kind]


# A run's completed step count is derived from its step rows (the engine keeps no copy of it).
STEP_COUNT = "(SELECT COUNT(*) FROM durably_steps s WHERE s.run_id = durably_runs.id AND s.status = 'completed')"


Database = Path | str  # a SQLite file, or a PostgreSQL URL


def url_of(db: Database) -> str:
    return db if isinstance(db, str) else f"sqlite:///{db}"


def query(db: Database, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if isinstance(db, str):
        with psycopg.connect(db, autocommit=True) as pg:
            return pg.execute(sql.replace("?", "%s"), params).fetchall()
    connection = sqlite3.connect(db, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """The database worker processes share: a file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "jobs.db"
    return str(request.getfixturevalue("pg_url"))


def run_row(db: Database, run_id: str) -> dict[str, Any]:
    columns = ("status", "attempt", "owner", "output", "step_count", "heartbeat_at", "started_at")
    selected = [STEP_COUNT if column == "step_count" else column for column in columns]
    (row,) = query(db, f"SELECT {', '.join(selected)} FROM durably_runs WHERE id = ?", run_id)
    result = dict(zip(columns, row, strict=False))
    result["output"] = None if result["output"] is None else json.loads(result["output"])
    return result


def step_rows(db: Database, run_id: str) -> list[dict[str, Any]]:
    columns = ("name", "step_index", "status", "output")
    rows = query(
        db, f"SELECT {', '.join(columns)} FROM durably_steps WHERE run_id = ? ORDER BY step_index, started_at", run_id
    )
    return [dict(zip(columns, row, strict=False), output=json.loads(row[3]) if row[3] else None) for row in rows]


def trigger(db: Database, job: str, items: list[Any]) -> list[str]:
    """Create runs from this process (its worker is never started, so it never executes them)."""

    async def create() -> list[str]:
        durably = create_durably(url_of(db))
        durably.register(**JOBS)
        try:
            await durably.migrate()
            return [run.id for run in await durably.batch_trigger(job, items)]
        finally:
            await durably.close()

    return asyncio.run(create())


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]


def write_lock_free(db: Path) -> bool:
    """True if this process can take SQLite's write lock (waiting a little for live writers)."""
    connection = sqlite3.connect(db, timeout=0.5, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def sigstop_outside_transaction(pid: int, db: Path) -> float:
    """SIGSTOP the process at a moment when it does not hold the database's write lock; returns the
    time.time() of the SIGSTOP that stuck.

    A process frozen inside a write transaction would block every other process (that is SQLite,
    not the engine); its step thread sleeps, but its heartbeat thread commits every 0.1 s.
    """
    for _ in range(50):
        stopped_at = time.time()
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: process_state(pid) == "T", 5, f"pid {pid} to stop")
        if write_lock_free(db):
            return stopped_at
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.013)
    raise AssertionError("could not stop the worker outside a write transaction")


def check_resumed_side_effects(
    lines: list[dict[str, Any]], steps: int, in_flight: int, first: int, second: int
) -> None:
    """Steps before `in_flight` ran once, in `first`; steps after it once, in `second`; step
    `in_flight` (running when the first process went away, never committed by it) ran in `second`
    and at most once before in `first`."""
    by_step: dict[str, list[int]] = defaultdict(list)
    for line in lines:
        by_step[line["step"]].append(line["pid"])
    assert set(by_step) == {f"step-{i}" for i in range(steps)}
    for i in range(steps):
        pids = by_step[f"step-{i}"]
        if i < in_flight:
            assert pids == [first], f"step-{i} (committed before the stop) ran {pids}"
        elif i == in_flight:
            assert pids in ([second], [first, second]), f"step-{i} (in flight) ran {pids}"
        else:
            assert pids == [second], f"step-{i} ran {pids}"


def check_committed_steps(db: Database, run_id: str, steps: int, in_flight: int, first: int, second: int) -> None:
    rows = step_rows(db, run_id)
    assert [row["name"] for row in rows] == [f"step-{i}" for i in range(steps)]  # each name once, in order
    assert [row["step_index"] for row in rows] == list(range(steps))
    assert {row["status"] for row in rows} == {"completed"}
    for i, row in enumerate(rows):
        assert row["output"] == {"i": i, "pid": first if i < in_flight else second}, row


# -- 1. crash recovery -----------------------------------------------------------------------------
def test_sigkill_mid_run_resumes_in_a_new_process_without_rerunning_completed_steps(
    tmp_path: Path, db: Database, children: Children
) -> None:
    side = tmp_path / "side.jsonl"
    steps = 100
    (run_id,) = trigger(db, "long", [{"steps": steps, "sleep": 0.02}])
    timings = ("--stale", "30", "--heartbeat", "1", "--polling", "0.1")

    first = children.spawn("first", db, side, *timings)
    wait_until(lambda: len(read_side(side)) >= 30, 60, "30 steps in the first process")
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL

    # What the crash left: a run still marked running by a dead owner, a prefix of committed steps.
    crashed = run_row(db, run_id)
    assert crashed["status"] == "running" and crashed["attempt"] == 1
    assert crashed["owner"].split(":")[1] == str(first.pid)
    committed = [row["name"] for row in step_rows(db, run_id)]
    in_flight = len(committed)
    assert committed == [f"step-{i}" for i in range(in_flight)]
    assert 25 <= in_flight < steps
    before = Counter(line["step"] for line in read_side(side))
    assert all(before[f"step-{i}"] == 1 for i in range(in_flight))
    assert before[f"step-{in_flight}"] <= 1  # the step in flight may have started (its result was lost)
    assert set(before) <= {f"step-{i}" for i in range(in_flight + 1)}

    second = children.spawn("second", db, side, *timings, "--exit-when-idle")
    assert second.wait(30) == 0, second.stderr()
    summary = second.summary()
    assert summary["outcome"] == "idle"

    done = run_row(db, run_id)
    assert done["status"] == "completed"
    assert done["attempt"] == 2  # claimed once by each process, never more
    assert done["step_count"] == steps
    assert done["output"] == {"count": steps, "total": sum(range(steps)), "finisher": second.pid}
    check_committed_steps(db, run_id, steps, in_flight, first.pid, second.pid)
    check_resumed_side_effects(read_side(side), steps, in_flight, first.pid, second.pid)

    # The dead owner on this host is noticed at once, not after the 30 s stale threshold.
    resumed_at = min(line["t0"] for line in read_side(side) if line["pid"] == second.pid)
    to_first_step = resumed_at - summary["t_started"]
    to_done = summary["t_idle"] - second.spawned_at
    print(
        f"\n[crash] killed after {in_flight} committed steps; new process: worker start -> first resumed step "
        f"{to_first_step * 1000:.0f} ms, spawn -> run completed {to_done:.2f} s (stale_threshold 30 s)"
    )
    assert to_first_step < 5
    assert to_done < 10


# -- 2. several worker processes on one file -------------------------------------------------------
KEYS = ("alpha", "beta", "gamma")
QUICK_STEPS, KEYED_PER_KEY, KEYED_STEPS = 4, 12, 3
QUICK_RUNS = {"sqlite": 200, "postgresql": 1000}


@dataclass
class PoolSession:
    db: Database
    side: Path
    run_ids: list[str]
    key_of: dict[str, str | None]
    steps_of: dict[str, int]
    pids: set[int]
    elapsed: float
    backend: str


def start_pool(
    children: Children, tmp_path: Path, db: Database, side: Path, count: int, max_concurrent: int, *options: str
) -> list[Child]:
    """Start worker processes that wait at a barrier, release them together, wait until all are idle."""
    go = tmp_path / "go"
    pool = [
        children.spawn(f"worker{i}", db, side, "--max-concurrent", str(max_concurrent), "--polling", "0.05",
                       "--heartbeat", "0.5", "--stale", "30", "--exit-when-idle", "--ready-file",
                       str(tmp_path / f"ready{i}"), "--go-file", str(go), *options)
        for i in range(count)
    ]  # fmt: skip
    wait_until(
        lambda: all((tmp_path / f"ready{i}").exists() for i in range(count)), 60, "every worker to open the database"
    )
    go.touch()
    for child in pool:
        assert child.wait(60) == 0, child.stderr()
        assert child.summary()["outcome"] == "idle"
    return pool


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pool_session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolSession]:
    """Four worker processes (two runs at a time each) on one database, released together on quick
    runs without a key (200 on SQLite, 1,000 on PostgreSQL) and 36 slower ones spread over three
    concurrency keys."""
    tmp_path = tmp_path_factory.mktemp("pool")
    side = tmp_path / "side.jsonl"
    db: Database = tmp_path / "jobs.db"
    if request.param == "postgresql":
        db = request.getfixturevalue("pg_cluster").create_database(f"pool{os.getpid()}")
    items: list[BatchItem] = []
    for n in range(QUICK_RUNS[request.param]):
        items.append(BatchItem({"n": n, "steps": QUICK_STEPS, "sleep": 0.001}))
        if n % 5 == 0 and n // 5 < KEYED_PER_KEY * len(KEYS):  # keyed runs interleaved with the rest
            k = n // 5
            items.append(
                BatchItem({"n": 1000 + k, "steps": KEYED_STEPS, "sleep": 0.01}, concurrency_key=KEYS[k % len(KEYS)])
            )
    run_ids = trigger(db, "quick", items)
    spawner = Children(tmp_path)
    try:
        started = time.monotonic()
        pool = start_pool(spawner, tmp_path, db, side, count=4, max_concurrent=2)
        elapsed = time.monotonic() - started
    finally:
        spawner.kill_all()
    yield PoolSession(
        db, side, run_ids, dict(zip(run_ids, [item.concurrency_key for item in items], strict=False)),
        dict(zip(run_ids, [item.input["steps"] for item in items], strict=False)), {child.pid for child in pool}, elapsed,
        request.param,
    )  # fmt: skip


def test_worker_processes_on_one_database_run_every_run_and_step_exactly_once(pool_session: PoolSession) -> None:
    db, run_ids, steps_of = pool_session.db, pool_session.run_ids, pool_session.steps_of
    total_steps = sum(steps_of.values())
    assert len(run_ids) == QUICK_RUNS[pool_session.backend] + KEYED_PER_KEY * len(KEYS)

    rows = query(db, f"SELECT id, status, attempt, output, {STEP_COUNT} FROM durably_runs WHERE job_name = 'quick'")
    assert len(rows) == len(run_ids)
    for run_id, status, attempt, _, step_count in rows:
        assert (status, attempt, step_count) == ("completed", 1, steps_of[run_id]), run_id  # claimed exactly once
    outputs = {run_id: json.loads(output) for run_id, _, _, output, _ in rows}

    committed = query(db, "SELECT run_id, name, status FROM durably_steps")
    assert len(committed) == total_steps
    assert len({(run_id, name) for run_id, name, _ in committed}) == total_steps
    assert {status for _, _, status in committed} == {"completed"}

    lines = read_side(pool_session.side)
    executions = Counter((line["run"], line["step"]) for line in lines)
    assert len(lines) == total_steps and set(executions.values()) == {1}, "a step ran twice"
    assert set(executions) == {(run_id, f"s{j}") for run_id in run_ids for j in range(steps_of[run_id])}
    pid_of_run: dict[str, set[int]] = defaultdict(set)
    for line in lines:
        pid_of_run[line["run"]].add(line["pid"])
    for run_id in run_ids:
        assert len(pid_of_run[run_id]) == 1, f"run {run_id} executed in several processes: {pid_of_run[run_id]}"
        assert outputs[run_id]["seen"] == [*pid_of_run[run_id]] * steps_of[run_id]
    per_process = Counter(next(iter(pid_of_run[run_id])) for run_id in run_ids)
    assert set(per_process) <= pool_session.pids
    print(
        f"\n[pool] {len(run_ids)} runs, {total_steps} steps, 4 processes: {pool_session.elapsed:.2f} s "
        f"(with process start-up); runs per process: {sorted(per_process.values())}"
    )
    assert len(per_process) >= 2, f"only one process did any work: {per_process}"


def test_runs_sharing_a_concurrency_key_never_overlap_across_processes(pool_session: PoolSession) -> None:
    lines = read_side(pool_session.side)
    intervals: dict[str, tuple[float, float, int]] = {}
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_run[line["run"]].append(line)
    for run_id in pool_session.run_ids:
        mine = by_run[run_id]
        assert len(mine) == pool_session.steps_of[run_id] and len({line["pid"] for line in mine}) == 1
        intervals[run_id] = (min(line["t0"] for line in mine), max(line["t1"] for line in mine), mine[0]["pid"])

    processes_per_key = []
    for key in KEYS:
        spans = sorted(intervals[run_id] for run_id in pool_session.run_ids if pool_session.key_of[run_id] == key)
        assert len(spans) == KEYED_PER_KEY
        for (start_a, end_a, pid_a), (start_b, end_b, pid_b) in itertools.pairwise(spans):
            assert end_a <= start_b, (
                f"two {key!r} runs overlapped: {start_a}-{end_a} (pid {pid_a}) and {start_b}-{end_b} (pid {pid_b})"
            )
        processes_per_key.append(len({span[2] for span in spans}))

    # Sanity: runs of different keys did overlap, and keyed runs ran in several processes, so the
    # serialisation above is the keys' doing, across processes. (One key's runs often stay in one
    # process: the process that settles a key's run claims the next in the same transaction, when it
    # is the oldest claimable; in about one pool in four every key stayed where it started.)
    keyed = sorted(span for run_id, span in intervals.items() if pool_session.key_of[run_id] is not None)
    overlapping = sum(1 for a, b in itertools.pairwise(keyed) if b[0] < a[1])
    print(
        f"\n[keys] per key, 12 runs one at a time, spread over {processes_per_key} processes; "
        f"{overlapping} consecutive keyed runs (of different keys) overlapped in time"
    )
    assert overlapping > 0
    assert len({pid for _, _, pid in keyed}) >= 2, "every keyed run ran in one process"


# -- 2b. several processes recover a crashed worker's runs at once -----------------------------------
def test_runs_of_a_killed_worker_are_resumed_once_each_by_competing_processes(
    tmp_path: Path, db: Database, children: Children
) -> None:
    side = tmp_path / "side.jsonl"
    steps = 60
    run_ids = trigger(db, "long", [{"steps": steps, "sleep": 0.02}] * 4)
    first = children.spawn(
        "crashing", db, side, "--max-concurrent", "4", "--stale", "30", "--heartbeat", "1", "--polling", "0.05"
    )

    def every_run_has_done_10_steps() -> bool:
        counts = Counter(line["run"] for line in read_side(side))
        return all(counts[run_id] >= 10 for run_id in run_ids)

    wait_until(every_run_has_done_10_steps, 60, "10 steps of each run")
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    in_flight = {run_id: len(step_rows(db, run_id)) for run_id in run_ids}
    assert all(run_row(db, run_id)["status"] == "running" for run_id in run_ids)

    started = time.time()
    pool = start_pool(children, tmp_path, db, side, count=3, max_concurrent=2)
    finished = max(child.summary()["t_idle"] for child in pool)
    pids = {child.pid for child in pool}
    resumed_by = {}
    lines = read_side(side)
    for run_id in run_ids:
        done = run_row(db, run_id)
        assert done["status"] == "completed" and done["attempt"] == 2, (run_id, done)
        finisher = done["output"]["finisher"]
        assert finisher in pids and done["output"]["total"] == sum(range(steps))
        check_committed_steps(db, run_id, steps, in_flight[run_id], first.pid, finisher)
        check_resumed_side_effects(
            [line for line in lines if line["run"] == run_id], steps, in_flight[run_id], first.pid, finisher
        )
        resumed_by[run_id] = finisher
    print(
        f"\n[crash x4] killed with {sorted(in_flight.values())} steps committed; 3 processes resumed the 4 runs "
        f"(resumers used: {len(set(resumed_by.values()))}) in {finished - started:.2f} s from spawn (stale_threshold 30 s)"
    )
    assert finished - started < 20


# -- 3. a stale owner that is alive but frozen -----------------------------------------------------
def test_frozen_owner_is_superseded_after_stale_threshold_and_cannot_write_when_it_wakes(
    tmp_path: Path, children: Children
) -> None:
    db, side = tmp_path / "jobs.db", tmp_path / "side.jsonl"
    steps, hold = 30, 5
    release = tmp_path / "release"
    (run_id,) = trigger(db, "long", [{"steps": steps, "sleep": 0.02}])
    timings = ("--heartbeat", "0.1", "--stale", "1", "--polling", "0.1", "--exit-when-idle")

    frozen = children.spawn("frozen", db, side, *timings, "--hold-step", f"step-{hold}", "--release-file", str(release))
    wait_until(lambda: read_side(side, "holding"), 60, "the first worker to reach the held step")
    taker = children.spawn("taker", db, side, *timings, "--ready-file", str(tmp_path / "taker-ready"))
    wait_until(lambda: (tmp_path / "taker-ready").exists(), 60, "the second worker to start")
    time.sleep(0.3)  # the second worker is polling and recovering now; the first still heartbeats
    assert run_row(db, run_id)["attempt"] == 1

    stopped_at = sigstop_outside_transaction(frozen.pid, db)
    last_heartbeat = run_row(db, run_id)["heartbeat_at"]  # final: the owner's heartbeat thread is frozen too
    wait_until(lambda: run_row(db, run_id)["attempt"] == 2, 20, "the run to be taken over")
    takeover = time.time() - stopped_at
    taken = run_row(db, run_id)
    assert taken["status"] == "running" and taken["owner"].split(":")[1] == str(taker.pid)
    assert process_state(frozen.pid) == "T"  # still alive: only staleness can explain the takeover
    print(
        f"\n[stale] frozen owner superseded {takeover * 1000:.0f} ms after SIGSTOP, "
        f"{taken['heartbeat_at'] - last_heartbeat} ms after its last heartbeat (stale_threshold 1 s, heartbeat 0.1 s)"
    )
    # An alive owner keeps its run until its heartbeat is stale_threshold old (the claim stamps
    # heartbeat_at, and the new owner's beats only raise it).
    assert taken["heartbeat_at"] - last_heartbeat >= 1000
    assert takeover < 10

    # Let the new owner get ahead, then wake the old one in the middle of its held step.
    wait_until(lambda: sum(line["pid"] == taker.pid for line in read_side(side)) >= 3, 20, "the new owner to run steps")
    release.touch()
    os.kill(frozen.pid, signal.SIGCONT)
    lost = wait_until(lambda: read_side(side, "claim-lost"), 20, "the woken worker's step write to be rejected")
    assert [(line["pid"], line["step"]) for line in lost] == [(frozen.pid, f"step-{hold}")]

    assert taker.wait(30) == 0, taker.stderr()
    assert frozen.wait(30) == 0, frozen.stderr()
    done = run_row(db, run_id)
    assert done["status"] == "completed" and done["attempt"] == 2
    assert done["output"] == {"count": steps, "total": sum(range(steps)), "finisher": taker.pid}
    check_committed_steps(db, run_id, steps, hold, frozen.pid, taker.pid)
    lines = read_side(side)
    check_resumed_side_effects(lines, steps, hold, frozen.pid, taker.pid)
    # The held step really ran in both (the frozen one finished it after waking; its result was refused).
    assert [line["pid"] for line in lines if line["step"] == f"step-{hold}"] == [frozen.pid, taker.pid]
    assert read_side(side, "claim-lost") == lost


def test_frozen_owner_that_reclaims_its_own_recovered_run_executes_it_once(tmp_path: Path, children: Children) -> None:
    """As above, but the worker that recovers the run does not run its job (it registers another), so
    the run waits as pending until the frozen owner wakes, still inside its held step, and claims the
    run again itself (it has a free slot: max_concurrent_runs=2)."""
    db, side = tmp_path / "jobs.db", tmp_path / "side.jsonl"
    steps, hold = 40, 5
    release = tmp_path / "release"
    (run_id,) = trigger(db, "long", [{"steps": steps, "sleep": 0.05}])
    timings = ("--heartbeat", "0.1", "--stale", "1", "--polling", "0.1", "--exit-when-idle")

    owner = children.spawn("owner", db, side, *timings, "--max-concurrent", "2", "--hold-step", f"step-{hold}",
                           "--release-file", str(release))  # fmt: skip
    wait_until(lambda: read_side(side, "holding"), 60, "the owner to reach the held step")
    recoverer = children.spawn(
        "recoverer", db, side, *timings, "--jobs", "quick", "--ready-file", str(tmp_path / "ready")
    )
    wait_until(lambda: (tmp_path / "ready").exists(), 60, "the recovering worker to start")
    time.sleep(0.3)
    sigstop_outside_transaction(owner.pid, db)
    wait_until(lambda: run_row(db, run_id)["status"] == "pending", 20, "the frozen owner's run to be recovered")
    assert process_state(owner.pid) == "T"

    os.kill(owner.pid, signal.SIGCONT)
    # The woken owner may claim its run again while its old execution still holds step-5; an engine
    # that waits for the old execution to end first is fine too.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: run_row(db, run_id)["attempt"] == 2, 1.5, "the owner to claim the run again")
    release.touch()
    assert owner.wait(40) == 0, owner.stderr()
    assert recoverer.wait(40) == 0, recoverer.stderr()

    done = run_row(db, run_id)
    assert done["status"] == "completed"
    assert done["output"] == {"count": steps, "total": sum(range(steps)), "finisher": owner.pid}
    repeated = {name: count for name, count in Counter(line["step"] for line in read_side(side)).items() if count > 1}
    print(f"\n[reclaim] attempts: {done['attempt']}; steps that ran more than once: {repeated}")
    assert repeated == {f"step-{hold}": 2}, "only the step in flight at the freeze may run twice"
    assert done["attempt"] == 2, "claimed once after the recovery; never recovered again"
    check_committed_steps(db, run_id, steps, hold, owner.pid, owner.pid)
    assert [(line["pid"], line["step"]) for line in read_side(side, "claim-lost")] == [(owner.pid, f"step-{hold}")]


# -- 4. graceful stop on SIGTERM -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stop_timeout", "expected"),
    [(0.2, "pending"), (30.0, "completed")],
    ids=["timeout-hands-back", "drains"],
)
def test_sigterm_stops_gracefully_and_a_new_process_finishes_the_run(
    tmp_path: Path, children: Children, stop_timeout: float, expected: str
) -> None:
    db, side = tmp_path / "jobs.db", tmp_path / "side.jsonl"
    steps = 60
    (run_id,) = trigger(db, "long", [{"steps": steps, "sleep": 0.03}])
    timings = ("--stale", "30", "--heartbeat", "1", "--polling", "0.1")

    first = children.spawn("first", db, side, *timings, "--stop-timeout", str(stop_timeout))
    wait_until(lambda: len(read_side(side)) >= 20, 60, "20 steps in the first process")
    signalled = time.monotonic()
    os.kill(first.pid, signal.SIGTERM)
    assert first.wait(stop_timeout + 15) == 0, first.stderr()
    stop_took = time.monotonic() - signalled
    assert first.summary()["outcome"] == "sigterm"

    stopped = run_row(db, run_id)
    assert stopped["status"] == expected
    assert stopped["owner"] is None and stopped["attempt"] == 1
    committed = [row["name"] for row in step_rows(db, run_id)]
    in_flight = len(committed)
    assert committed == [f"step-{i}" for i in range(in_flight)]
    if expected == "pending":
        assert 15 <= in_flight < steps
        assert stop_took < stop_timeout + 10
    else:
        assert in_flight == steps
        assert stopped["output"] == {"count": steps, "total": sum(range(steps)), "finisher": first.pid}

    second = children.spawn("second", db, side, *timings, "--exit-when-idle")
    assert second.wait(30) == 0, second.stderr()
    summary = second.summary()
    done = run_row(db, run_id)
    assert done["status"] == "completed"
    print(
        f"\n[sigterm/{expected}] first process stopped {stop_took:.2f} s after SIGTERM with {in_flight} steps committed; "
        f"second process spawn -> idle {summary['t_idle'] - second.spawned_at:.2f} s"
    )
    if expected == "pending":
        assert done["attempt"] == 2
        assert done["output"] == {"count": steps, "total": sum(range(steps)), "finisher": second.pid}
        check_committed_steps(db, run_id, steps, in_flight, first.pid, second.pid)
        check_resumed_side_effects(read_side(side), steps, in_flight, first.pid, second.pid)
        assert summary["t_idle"] - second.spawned_at < 10  # a handed-back run is pending: no stale wait
    else:
        assert done["attempt"] == 1 and done == stopped  # nothing left to do, nothing re-run
        assert Counter(line["step"] for line in read_side(side)) == Counter(f"step-{i}" for i in range(steps))
        assert {line["pid"] for line in read_side(side)} == {first.pid}


# -- 5. PostgreSQL restarted while runs are in flight -----------------------------------------------
def test_a_postgresql_restart_mid_flight_loses_and_repeats_nothing(
    tmp_path: Path, pg_cluster: Any, pg_url: str, children: Children
) -> None:
    side = tmp_path / "side.jsonl"
    runs, steps = 8, 40
    run_ids = trigger(pg_url, "long", [{"steps": steps, "sleep": 0.01}] * runs)
    pool = [
        children.spawn(f"worker{i}", pg_url, side, "--max-concurrent", "4", "--polling", "0.05", "--heartbeat", "0.2",
                       "--stale", "30", "--exit-when-idle", "--deadline", "120")
        for i in range(2)
    ]  # fmt: skip
    wait_until(lambda: len(read_side(side)) >= runs * 5, 60, "every run to be under way")

    pg_cluster.restart()  # every connection is terminated; the server is back about a second later
    restarted_at = time.time()

    for child in pool:
        assert child.wait(90) == 0, child.stderr()
    lines = read_side(side)
    after = sum(1 for line in lines if line["t0"] > restarted_at)
    for run_id in run_ids:
        done = run_row(pg_url, run_id)
        assert done["status"] == "completed" and done["step_count"] == steps, (run_id, done)
        assert done["output"]["total"] == sum(range(steps))
        rows = step_rows(pg_url, run_id)
        assert [row["name"] for row in rows] == [f"step-{i}" for i in range(steps)]  # each step committed once
        executions = Counter(line["step"] for line in lines if line["run"] == run_id)
        # Workers wait through the restart: no claim is lost, so no step runs twice.
        assert set(executions.values()) == {1}, (run_id, executions)
        assert done["attempt"] == 1
    print(f"\n[pg restart] {runs} runs x {steps} steps on 2 processes; {after} steps ran after the restart")
    assert after > 0
