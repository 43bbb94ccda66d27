"""Engine benchmark: durably-reflex against DBOS Transact (SQLite), huey's plain queue and a raw SQLite ceiling.

    .venv/bin/python bench/engine.py [--runs 1000] [--steps 10] [--only W1,W2,W3] [--dbos-runs 200] [--no-dbos]
        [--before REV] [--repeat N] [--slots 1,4] [--windows queue,backlog]

W1  throughput: N runs x S trivial steps on a file-backed SQLite database in a fresh temp dir; in the
    same rounds, huey 3.5 (one worker thread) running N x S trivial tasks, on SqliteHuey (a durable
    queue: two commits per task) and on MemoryHuey (a queue in memory, which persists nothing):
    plain queues that checkpoint no step, the bar issue 15 sets for a step's cost; and the SQL floor:
    the statements one slot's writer ran to drain the backlog, recorded, then replayed in a tight loop
    on a copy of the database as it was (the time the database alone needs, with no engine around it).
W2  trigger-to-complete latency of a 1-step job on an idle, started worker.
W3  crash recovery: a 100-step run SIGKILLed half-way, resumed by a new process.

Every measured configuration runs in its own child process (this script with a hidden `--child`
flag): configurations cannot influence each other, DBOS (a per-process singleton) gets a clean
process, and each child reports its own peak RSS. Children print one `@@RESULT {json}` line.
Only local files are used; every wait is bounded and every child is killed on timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The durably_reflex measured: this checkout, or the `git archive` of --rev (the parent passes it on).
CODE = os.environ.get("DURABLY_BENCH_CODE", str(ROOT))
if CODE not in sys.path:
    sys.path.insert(0, CODE)

import contextlib

from cli_server import CliServer, code_for, describe_code

RESULT_TAG = "@@RESULT "
TARGET_STEPS_C1 = 15000.0
TARGET_SLOTS_RATIO = 1.3  # W1 with 4 slots against 1, same code, same rounds
TARGET_W2_P50_MS = 5.0
TARGET_W3_S = 1.0
DBOS_QUEUE_POLL_S = 0.01  # DBOS queues dequeue only when polled; 10 ms keeps the poll wait small
W3_STEPS = 100
W3_HANG_AT = 50  # the step that hangs in the process to be killed: steps 0-49 are committed at the kill
W3_STEP_SLEEP_S = 0.005
W3_DBOS_WORKFLOW_ID = "w3-recovery"


# ==================================================================================================
# helpers shared by parent and children
# ==================================================================================================
def emit_result(data: dict[str, Any]) -> None:
    data.setdefault("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    sys.stdout.write(RESULT_TAG + json.dumps(data) + "\n")
    sys.stdout.flush()


def rss_now_kb() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def trivial_step(i: int) -> int:
    return i + 1


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank style percentile with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def dbos_sqlite_engine(url: str) -> Any:
    """A SQLAlchemy engine for DBOS's system database that does exactly what DBOS's own SQLite engine
    does on connect (IMMEDIATE transactions, busy_timeout, foreign keys) plus WAL + synchronous=NORMAL,
    the settings durably-reflex runs with."""
    import sqlalchemy as sa
    from sqlalchemy import event

    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


def launch_dbos(db_dir: str, journal: str) -> Any:
    from dbos import DBOS

    url = f"sqlite:///{db_dir}/dbos_sys.sqlite"
    config: dict[str, Any] = {"name": "durably-bench", "system_database_url": url, "log_level": "WARNING"}
    if journal == "wal":
        config["system_database_engine"] = dbos_sqlite_engine(url)
    DBOS(config=config)  # type: ignore[arg-type]
    return DBOS


# ==================================================================================================
# children
# ==================================================================================================
class Completions:
    """Counts `run:complete` events; `all_done` is set once `expected` have come."""

    def __init__(self, expected: int) -> None:
        import asyncio

        self.expected = expected
        self.count = 0
        self.all_done = asyncio.Event()

    def __call__(self, _event: dict[str, Any]) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all_done.set()


async def w1_engine(path: str, runs: int, steps: int, slots: int) -> tuple[Any, Completions]:
    """W1's engine on a SQLite file, migrated, its job registered (`steps` trivial steps a run), and
    its `run:complete` events counted until `runs` have completed."""
    from durably_reflex import create_durably, define_job

    async def body(step: Any, _input: Any) -> int:
        total = 0
        for i in range(steps):
            total += await step.run(f"s{i}", trivial_step, i)
        return total

    durably = create_durably(f"sqlite:///{path}", polling_interval=1.0, max_concurrent_runs=slots)
    durably.register(w1=define_job(name="w1", run=body))
    await durably.migrate()
    completions = Completions(runs)
    durably.on("run:complete", completions)
    return durably, completions


def completed_in(db: sqlite3.Connection) -> tuple[int, int]:
    """The runs and the steps a W1 database holds completed."""
    runs = db.execute("SELECT count(*) FROM durably_runs WHERE status='completed'").fetchone()[0]
    steps = db.execute("SELECT count(*) FROM durably_steps WHERE status='completed'").fetchone()[0]
    return runs, steps


async def w1_trigger(durably: Any, runs: int) -> None:
    """W1's runs, triggered 100 at a time."""
    for start in range(0, runs, 100):
        await durably.jobs.w1.batch_trigger([None] * min(100, runs - start))


def child_w1_durably(args: argparse.Namespace) -> None:
    import asyncio

    async def main() -> dict[str, Any]:
        path = os.path.join(args.dir, "durably.db")
        durably, completions = await w1_engine(path, args.runs, args.steps, args.conc)
        rss_before = rss_now_kb()
        if args.mode == "queue":  # DBOS's window: the worker runs while the runs are triggered
            await durably.start()
        t0, cpu0 = time.perf_counter(), time.process_time()
        await w1_trigger(durably, args.runs)
        t1, cpu1 = time.perf_counter(), time.process_time()
        if args.mode == "backlog":  # a backlog drained: the worker starts once every run is pending
            await durably.start()
        timed_out = False
        try:
            await asyncio.wait_for(completions.all_done.wait(), args.timeout)
        except TimeoutError:
            timed_out = True
        t2, cpu2 = time.perf_counter(), time.process_time()
        await durably.close(timeout=5)
        with contextlib.closing(sqlite3.connect(path)) as db:
            runs_ok, steps_ok = completed_in(db)
        return {
            "trigger_s": t1 - t0, "exec_s": t2 - t1, "total_s": t2 - t0, "completed_events": completions.count,
            "total_cpu_s": cpu2 - cpu0, "exec_cpu_s": cpu2 - cpu1, "timed_out": timed_out,
            "runs_completed_db": runs_ok, "steps_completed_db": steps_ok, "rss_before_start_kb": rss_before,
        }  # fmt: skip

    emit_result(asyncio.run(main()))


class _StatementLog:
    """Stands in for the writer's sqlite3 connection while W1's backlog drains: every statement, with
    its parameters, is kept in order, and goes on to the real connection (`child_w1_sql_floor`)."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self.statements: list[tuple[str, Any, bool]] = []  # (sql, parameters, executemany)

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        self.statements.append((sql, dict(parameters) if isinstance(parameters, dict) else parameters, False))
        return self.raw.execute(sql, parameters)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        rows = [dict(row) if isinstance(row, dict) else row for row in rows]
        self.statements.append((sql, rows, True))
        return self.raw.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def child_w1_sql_floor(args: argparse.Namespace) -> None:
    """W1's SQL floor: the statements the engine's writer ran to drain W1's backlog with one slot (every
    BEGIN, step INSERT, COMMIT, claim and finish), recorded, then run again in one tight loop on a copy
    of the database as it was before the worker started, with the engine's connection settings. That
    is the time the database alone needs for the workload, with no engine around it: what is left of a
    step's time for everything else is the engine's own (Python) cost."""
    import asyncio

    async def record() -> tuple[str, list[tuple[str, Any, bool]], float, float]:
        path = os.path.join(args.dir, "durably.db")
        durably, completions = await w1_engine(path, args.runs, args.steps, 1)
        await w1_trigger(durably, args.runs)
        copy = os.path.join(args.dir, "before-start.db")
        with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        writer = durably.storage._writer._connected()  # the bench reaches in: no public way to see its SQL
        log = writer.raw = _StatementLog(writer.raw)
        t0, cpu0 = time.perf_counter(), time.process_time()
        await durably.start()
        await asyncio.wait_for(completions.all_done.wait(), args.timeout)
        t1, cpu1 = time.perf_counter(), time.process_time()
        writer.raw = log.raw
        await durably.close(timeout=5)
        return copy, log.statements, t1 - t0, cpu1 - cpu0

    copy, statements, engine_s, engine_cpu_s = asyncio.run(record())
    db = sqlite3.connect(copy, timeout=30, isolation_level=None)
    for pragma in ("busy_timeout=30000", "journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY"):
        db.execute(f"PRAGMA {pragma}")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "the copy must replay in WAL mode, as recorded"
    t0, cpu0 = time.perf_counter(), time.process_time()
    for sql, parameters, many in statements:
        if many:
            db.executemany(sql, parameters)
        else:
            db.execute(sql, parameters).fetchall()
    t1, cpu1 = time.perf_counter(), time.process_time()
    runs_ok, steps_ok = completed_in(db)
    db.close()
    emit_result({
        "exec_s": t1 - t0, "exec_cpu_s": cpu1 - cpu0, "timed_out": False, "runs_completed_db": runs_ok, "steps_completed_db": steps_ok,
        "statements": len(statements), "engine_exec_s": engine_s, "engine_exec_cpu_s": engine_cpu_s,
    })  # fmt: skip


def child_w1_dbos(args: argparse.Namespace) -> None:
    import threading

    DBOS = launch_dbos(args.dir, args.journal)
    steps = args.steps

    @DBOS.step()
    def w1_step(i: int) -> int:
        return i + 1

    @DBOS.workflow()
    def w1_workflow(n: int) -> int:
        total = 0
        for i in range(n):
            total += w1_step(i)
        return total

    DBOS.launch()
    expected = sum(i + 1 for i in range(steps))
    rss_before = rss_now_kb()
    results: list[int] = []
    t0 = time.perf_counter()
    if args.mode == "queue":
        queue = DBOS.register_queue("w1q", worker_concurrency=args.conc, polling_interval_sec=DBOS_QUEUE_POLL_S)
        handles = [queue.enqueue(w1_workflow, steps) for _ in range(args.runs)]
        t1 = time.perf_counter()
        deadline = time.monotonic() + args.timeout
        for handle in handles:
            if time.monotonic() > deadline:
                break
            results.append(handle.get_result())
    else:  # "start": `conc` client threads, each start_workflow(...).get_result() in turn
        t1 = t0
        lock = threading.Lock()
        counter = iter(range(args.runs))
        deadline = time.monotonic() + args.timeout

        def client() -> None:
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                value = DBOS.start_workflow(w1_workflow, steps).get_result()
                with lock:
                    results.append(value)

        threads = [threading.Thread(target=client) for _ in range(args.conc)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(args.timeout + 5)
    t2 = time.perf_counter()
    ok = sum(1 for value in results if value == expected)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    DBOS.destroy()
    emit_result({
        "enqueue_s": t1 - t0, "total_s": t2 - t0, "exec_after_enqueue_s": t2 - t1, "completed": ok,
        "timed_out": ok < args.runs, "rss_before_start_kb": rss_before, "peak_rss_kb": peak,
    })  # fmt: skip


def child_w1_huey(args: argparse.Namespace) -> None:
    """huey 3.5 drained by its consumer (one worker thread): `runs x steps` trivial tasks returning
    None (so no result is stored: a plain queue). `--storage sqlite`: SqliteHuey, one enqueue and
    one dequeue commit per task, in WAL with synchronous=NORMAL as durably-reflex runs; `memory`:
    MemoryHuey. Done = the last task's SIGNAL_COMPLETE. Windows as durably-reflex's: the consumer
    running while enqueueing, or a backlog enqueued first."""
    import threading

    from huey import MemoryHuey, SqliteHuey, signals

    class NormalSyncHuey(SqliteHuey):
        def _create_connection(self) -> Any:  # SqliteHuey's own settings (WAL), synchronous as ours
            connection = super()._create_connection()  # type: ignore[misc]
            connection.execute("PRAGMA synchronous=NORMAL")
            return connection

    total = args.runs * args.steps
    huey = (
        MemoryHuey("w1")
        if args.storage == "memory"
        else NormalSyncHuey("w1", filename=os.path.join(args.dir, "huey.db"))
    )
    finished = threading.Event()
    completed = 0

    @huey.task()
    def trivial(i: int) -> None:
        return None

    @huey.signal(signals.SIGNAL_COMPLETE)
    def on_complete(signal: str, task: Any) -> None:
        nonlocal completed
        completed += 1  # one worker thread: no race
        if completed >= total:
            finished.set()

    consumer = huey.create_consumer(workers=1, worker_type="thread", periodic=False)
    if args.mode == "queue":
        consumer.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(total):
        trivial(i)
    t1, cpu1 = time.perf_counter(), time.process_time()
    if args.mode == "backlog":
        consumer.start()
    timed_out = not finished.wait(args.timeout)
    t2, cpu2 = time.perf_counter(), time.process_time()
    consumer.stop(graceful=True)
    emit_result({
        "trigger_s": t1 - t0, "exec_s": t2 - t1, "total_s": t2 - t0, "total_cpu_s": cpu2 - cpu0,
        "exec_cpu_s": cpu2 - cpu1, "timed_out": timed_out, "steps_completed_db": completed,
        "runs_completed_db": completed // args.steps,
    })  # fmt: skip


def child_ceiling(args: argparse.Namespace) -> None:
    path = os.path.join(args.dir, "ceiling.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, run_id TEXT, name TEXT, output TEXT, created_at INTEGER)")
    n = args.commits
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN")
        db.execute("INSERT INTO t (run_id, name, output, created_at) VALUES (?, ?, ?, ?)", ("run", f"s{i}", str(i), i))
        db.execute("COMMIT")
    t1 = time.perf_counter()
    count = db.execute("SELECT count(*) FROM t").fetchone()[0]
    db.close()
    emit_result({"commits": n, "seconds": t1 - t0, "rows": count})


def child_w2_durably(args: argparse.Namespace) -> None:
    import asyncio

    from durably_reflex import create_durably, define_job

    async def body(step: Any, _input: Any) -> int:
        return await step.run("only", trivial_step, 1)

    job = define_job(name="w2", run=body)

    async def main() -> dict[str, Any]:
        path = os.path.join(args.dir, "durably.db")
        durably = create_durably(f"sqlite:///{path}", polling_interval=1.0)
        durably.register(w2=job)
        await durably.migrate()
        loop = asyncio.get_running_loop()
        completed_at: dict[str, float] = {}
        waiters: dict[str, asyncio.Future[None]] = {}

        def on_complete(event: dict[str, Any]) -> None:
            completed_at[event["runId"]] = time.perf_counter()
            waiter = waiters.pop(event["runId"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        durably.on("run:complete", on_complete)
        await durably.start()
        await asyncio.sleep(0.3)  # let the worker go idle
        latencies: list[float] = []
        timeouts = 0
        for i in range(args.warmup + args.samples):
            t0 = time.perf_counter()
            run = await durably.trigger("w2", None)
            if run.id not in completed_at:
                waiters[run.id] = loop.create_future()
                try:
                    await asyncio.wait_for(waiters[run.id], 5.0)
                except TimeoutError:
                    timeouts += 1
                    waiters.pop(run.id, None)
            if run.id in completed_at and i >= args.warmup:
                latencies.append((completed_at[run.id] - t0) * 1000.0)
            await asyncio.sleep(args.pause)
        await durably.close(timeout=5)
        return {"latencies_ms": latencies, "timeouts": timeouts}

    emit_result(asyncio.run(main()))


def child_w2_dbos(args: argparse.Namespace) -> None:
    DBOS = launch_dbos(args.dir, args.journal)

    @DBOS.step()
    def w2_step() -> int:
        return 2

    @DBOS.workflow()
    def w2_workflow() -> int:
        return w2_step()

    DBOS.launch()
    time.sleep(0.3)
    latencies: list[float] = []
    for i in range(args.warmup + args.samples):
        t0 = time.perf_counter()
        DBOS.start_workflow(w2_workflow).get_result()
        t1 = time.perf_counter()
        if i >= args.warmup:
            latencies.append((t1 - t0) * 1000.0)
        time.sleep(args.pause)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    DBOS.destroy()
    emit_result({"latencies_ms": latencies, "timeouts": 0, "peak_rss_kb": peak})


def w3_work(index: int, counter_path: str, hang: bool) -> int:
    """One W3 step, the same for every system: note the start (the side effect a re-execution would
    repeat), hang at W3_HANG_AT in the process to be killed, else sleep W3_STEP_SLEEP_S."""
    with open(counter_path, "a") as f:
        f.write(f"s{index:03d}\n")
    if hang and index == W3_HANG_AT:
        time.sleep(600)  # bounded: the parent SIGKILLs this process long before
    time.sleep(W3_STEP_SLEEP_S)
    return index


def _w3_job(counter_path: str, hang: bool) -> Any:
    from durably_reflex import define_job

    async def body(step: Any, _input: Any) -> int:
        total = 0
        for i in range(W3_STEPS):
            total += await step.run(f"s{i:03d}", w3_work, i, counter_path, hang)
        return total

    return define_job(name="w3", run=body)


def child_w3_victim(args: argparse.Namespace) -> None:
    """Start the 100-step run; its step 50 hangs until the parent SIGKILLs this process."""
    import asyncio

    from durably_reflex import create_durably

    async def main() -> None:
        durably = create_durably(f"sqlite:///{args.db}", polling_interval=1.0)
        durably.register(w3=_w3_job(args.counter, hang=True))
        await durably.migrate()
        await durably.trigger("w3", None)
        await durably.start()
        await asyncio.sleep(600)  # bounded: the parent kills us long before this
        await durably.close(timeout=1)

    asyncio.run(main())


def child_w3_resume(args: argparse.Namespace) -> None:
    """A fresh process on the same database: time until the abandoned run completes."""
    t_entry = time.monotonic()
    import asyncio

    from durably_reflex import create_durably

    t_imported = time.monotonic()

    async def main() -> dict[str, Any]:
        durably = create_durably(f"sqlite:///{args.db}", polling_interval=1.0)  # stale_threshold default 30 s
        durably.register(w3=_w3_job(args.counter, hang=False))
        done = asyncio.Event()
        seen: dict[str, Any] = {}

        def on_complete(event: dict[str, Any]) -> None:
            seen.update(t=time.monotonic(), output=event.get("output"))
            done.set()

        durably.on("run:complete", on_complete)
        t_start_called = time.monotonic()
        await durably.start()
        t_started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.timeout)
        await durably.close(timeout=2)
        return {
            "t_entry": t_entry, "t_imported": t_imported, "t_start_called": t_start_called, "t_started": t_started,
            "t_complete": seen.get("t"), "output": seen.get("output"),
        }  # fmt: skip

    emit_result(asyncio.run(main()))


def _w3_dbos_workflow(DBOS: Any, counter_path: str, hang: bool) -> Any:
    @DBOS.step()
    def w3_step(i: int) -> int:
        return w3_work(i, counter_path, hang)

    @DBOS.workflow()
    def w3_workflow() -> int:
        total = 0
        for i in range(W3_STEPS):
            total += w3_step(i)
        return total

    return w3_workflow


def child_w3_dbos_victim(args: argparse.Namespace) -> None:
    """DBOS: start the same 100-step workflow; its step 50 hangs until the parent SIGKILLs this process."""
    from dbos import SetWorkflowID

    DBOS = launch_dbos(args.dir, args.journal)
    workflow = _w3_dbos_workflow(DBOS, args.counter, hang=True)
    DBOS.launch()
    with SetWorkflowID(W3_DBOS_WORKFLOW_ID):
        DBOS.start_workflow(workflow)
    time.sleep(600)  # bounded: the parent kills us long before this


def child_w3_dbos_resume(args: argparse.Namespace) -> None:
    """DBOS: a fresh process on the same system database; launch() recovers the pending workflow."""
    t_entry = time.monotonic()
    import dbos  # noqa: F401 - its import time is part of the figure, as durably_reflex's is

    t_imported = time.monotonic()
    DBOS = launch_dbos(args.dir, args.journal)
    _w3_dbos_workflow(DBOS, args.counter, hang=False)
    t_start_called = time.monotonic()
    DBOS.launch()
    t_started = time.monotonic()
    output = DBOS.retrieve_workflow(W3_DBOS_WORKFLOW_ID).get_result()
    t_complete = time.monotonic()
    DBOS.destroy()
    emit_result({
        "t_entry": t_entry, "t_imported": t_imported, "t_start_called": t_start_called, "t_started": t_started,
        "t_complete": t_complete, "output": output,
    })  # fmt: skip


CHILDREN = {
    "w1-durably": child_w1_durably,
    "w1-sql-floor": child_w1_sql_floor,
    "w1-dbos": child_w1_dbos,
    "w1-huey": child_w1_huey,
    "ceiling": child_ceiling,
    "w2-durably": child_w2_durably,
    "w2-dbos": child_w2_dbos,
    "w3-victim": child_w3_victim,
    "w3-resume": child_w3_resume,
    "w3-dbos-victim": child_w3_dbos_victim,
    "w3-dbos-resume": child_w3_dbos_resume,
}


# ==================================================================================================
# parent
# ==================================================================================================
_live_children: list[subprocess.Popen[str]] = []


def run_child(kind: str, extra: list[str], timeout: float, code: str = CODE) -> dict[str, Any]:
    """Run `this script --child kind ...` on the durably_reflex in `code` and return its result dict
    (or {"error": ...})."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *extra]
    env = {**os.environ, "DURABLY_BENCH_CODE": code}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _live_children.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"child {kind} timed out after {timeout:.0f}s", "stderr": err[-2000:]}
    finally:
        _live_children.remove(proc)
    for line in out.splitlines():
        if line.startswith(RESULT_TAG):
            result: dict[str, Any] = json.loads(line[len(RESULT_TAG) :])
            if proc.returncode:
                result["warning"] = f"exit code {proc.returncode}"
            return result
    return {"error": f"child {kind} exited {proc.returncode} without a result", "stderr": err[-3000:]}


def fresh_dir(tag: str) -> str:
    return tempfile.mkdtemp(prefix=f"durably-bench-{tag}-")


def fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "-"
    return format(value, spec) if isinstance(value, int | float) else str(value)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip(), line]
    for row in rows:
        last = len(row) - 1
        out.append(
            "  ".join(
                c.ljust(w) if i in (0, last) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))
            ).rstrip()
        )
    return "\n".join(out)


def paragraph(text: str) -> None:
    print(textwrap.fill(text, width=110, initial_indent="  ", subsequent_indent="  "))


def verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value < target
    return "PASS" if ok else "FAIL"


class Summary:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []

    def add(self, metric: str, value: str, target: str = "-", status: str = "") -> None:
        self.rows.append([metric, value, target, status])


# -- W1 --------------------------------------------------------------------------------------------
def w1_durably_rounds(opts: argparse.Namespace, summary: Summary, rows: list[list[str]], timeout: float) -> None:
    """W1 of durably-reflex: every configuration (slots x window x code: this one, and --before's if
    given) once per round, rounds one after another, so that the machine's load falls on all alike;
    each configuration's figure is its median over the rounds, with its CPU time per step (the
    process's, over the window: steadier than wall time on a shared machine)."""
    runs, steps = opts.runs, opts.steps
    codes = ([("before", opts.before_code)] if opts.before_code else []) + [("after" if opts.before_code else "", CODE)]
    configs = [(conc, mode, name, code) for conc in opts.w1_slots for mode in opts.w1_modes for name, code in codes]
    if opts.huey:  # the peer, in the same rounds: one worker thread, as one slot
        configs += [(1, mode, f"huey-{storage}", CODE) for storage in ("sqlite", "memory") for mode in opts.w1_modes]
    if opts.sql_floor and 1 in opts.w1_slots and "backlog" in opts.w1_modes:  # what the database alone needs
        configs.append((1, "backlog", "sql-floor", CODE))
    results: dict[tuple[int, str, str], list[dict[str, Any]]] = {key[:3]: [] for key in configs}
    for round_index in range(opts.repeat):
        if opts.repeat > 1:
            print(f"  W1 round {round_index + 1} of {opts.repeat} ...", flush=True)
        for conc, mode, name, code in configs:
            d = fresh_dir(f"w1-c{conc}-{mode}")
            kind, storage = w1_child(name)
            try:
                r = run_child(kind, ["--dir", d, "--runs", str(runs), "--steps", str(steps), "--conc", str(conc),
                                     "--mode", mode, "--storage", storage, "--timeout", str(timeout)], timeout + 60, code=code)  # fmt: skip
            finally:
                shutil.rmtree(d, ignore_errors=True)
            if "error" in r:
                print(f"  W1 c={conc} {mode} {name}: {r['error']}\n{r.get('stderr', '')}")
                continue
            # The window: first trigger -> last run:complete with the worker running throughout (the Queue
            # rows' window), or, for a backlog, worker start -> last run:complete.
            window, cpu = (r["total_s"], r["total_cpu_s"]) if mode == "queue" else (r["exec_s"], r["exec_cpu_s"])
            r["steps_s"] = r["steps_completed_db"] / window
            r["cpu_us_per_step"] = cpu / max(1, r["steps_completed_db"]) * 1e6
            r["window_s"] = window
            r["complete"] = r["runs_completed_db"] == runs and not r["timed_out"]
            results[(conc, mode, name)].append(r)

    def median(conc: int, mode: str, name: str, key: str) -> float | None:
        values = [r[key] for r in results[(conc, mode, name)]]
        return statistics.median(values) if values else None

    for conc, mode, name, _code in configs:
        done = results[(conc, mode, name)]
        window = "worker running while triggering (DBOS's window)" if mode == "queue" else "backlog drained"
        if name.startswith("huey-"):
            ours = median(1, mode, "after" if opts.before_code else "", "steps_s") if 1 in opts.w1_slots else None
            huey_row(rows, summary, name[len("huey-") :], mode, window, done, ours)
            continue
        if name == "sql-floor":
            floor_row(rows, summary, done, median(1, mode, "after" if opts.before_code else "", "cpu_us_per_step"))
            continue
        who = f"{name} ({opts.before}): " if name == "before" else ("after: " if name else "")
        label = f"durably-reflex {who}max_concurrent_runs={conc}, {window}"
        if not done:
            rows.append([label, "ERROR", "", "", "", "", "", "", "", ""])
            summary.add(f"W1 {who}c={conc} {mode} steps/s", "ERROR", status="FAIL")
            continue
        steps_s = median(conc, mode, name, "steps_s")
        assert steps_s is not None
        one_slot = median(1, mode, name, "steps_s") if conc != 1 and 1 in opts.w1_slots else None
        if conc == 1:
            target, status = f">= {TARGET_STEPS_C1:,.0f}", verdict(steps_s, TARGET_STEPS_C1, True)
        elif one_slot:
            target = f">= {TARGET_SLOTS_RATIO:g} x c=1"
            status = f"{steps_s / one_slot:.2f}x {verdict(steps_s / one_slot, TARGET_SLOTS_RATIO, True)}"
        else:
            target, status = "-", ""
        incomplete = sum(not r["complete"] for r in done)
        note = "; ".join(filter(None, [
            rounds_note(done),
            f"INCOMPLETE in {incomplete} round(s)" if incomplete else "",
        ]))  # fmt: skip
        rows.append([label, f"{runs:,}", fmt(median(conc, mode, name, "trigger_s"), ".2f"),
                     fmt(median(conc, mode, name, "window_s"), ".2f"), fmt(steps_s),
                     fmt(median(conc, mode, name, "cpu_us_per_step"), ".1f"),
                     fmt(median(conc, mode, name, "peak_rss_kb") / 1024, ".1f"), f"{target} {status}".strip(), note])  # fmt: skip
        what = "trigger->done, worker running" if mode == "queue" else "backlog drain"
        summary.add(f"W1 durably {who}c={conc} steps/s ({what})", fmt(steps_s), target, status)
        if name == "after" and (before := median(conc, mode, "before", "steps_s")):
            summary.add(f"W1 after / before, c={conc} ({what})", f"{steps_s / before:.2f}x")


def rounds_note(done: list[dict[str, Any]]) -> str:
    """Each round's steps/s, when there was more than one round."""
    return "rounds: " + ", ".join(fmt(r["steps_s"]) for r in done) if len(done) > 1 else ""


def huey_row(
    rows: list[list[str]],
    summary: Summary,
    storage: str,
    mode: str,
    window: str,
    done: list[dict[str, Any]],
    ours: float | None,
) -> None:
    """huey's row of W1, and durably-reflex's one slot (this code) against it, from the same rounds."""
    queue = "SqliteHuey (WAL, synchronous=NORMAL)" if storage == "sqlite" else "MemoryHuey (persists nothing)"
    label = f"huey 3.5 {queue}, 1 worker thread, plain tasks, {window}"
    if not done:
        rows.append([label, "ERROR", "", "", "", "", "", "", ""])
        summary.add(f"W1 huey {storage} {mode} tasks/s", "ERROR (see above)")
        return
    tasks_s = statistics.median(r["steps_s"] for r in done)
    incomplete = sum(not r["complete"] for r in done)
    note = "; ".join(filter(None, [
        rounds_note(done),
        f"INCOMPLETE in {incomplete} round(s)" if incomplete else "",
    ]))  # fmt: skip
    rows.append([label, f"{done[0]['steps_completed_db']:,} tasks", fmt(statistics.median(r["trigger_s"] for r in done), ".2f"),
                 fmt(statistics.median(r["window_s"] for r in done), ".2f"), fmt(tasks_s),
                 fmt(statistics.median(r["cpu_us_per_step"] for r in done), ".1f"),
                 fmt(statistics.median(r["peak_rss_kb"] for r in done) / 1024, ".1f"), "(reference)", note])  # fmt: skip
    what = "trigger->done, worker running" if mode == "queue" else "backlog drain"
    summary.add(f"W1 huey {storage} tasks/s ({what})", fmt(tasks_s), "reference")
    if ours:
        target = "> 1x" if storage == "sqlite" else "reference"  # a durable queue is the like-for-like one
        summary.add(f"W1 durably c=1 / huey {storage}, same rounds ({what})", f"{ours / tasks_s:.2f}x", target)


def w1_child(name: str) -> tuple[str, str]:
    """The child that measures a W1 configuration, and its --storage."""
    if name.startswith("huey-"):
        return "w1-huey", name[len("huey-") :]
    return ("w1-sql-floor" if name == "sql-floor" else "w1-durably"), ""


def floor_row(rows: list[list[str]], summary: Summary, done: list[dict[str, Any]], engine_cpu_us: float | None) -> None:
    """The SQL floor's row (`child_w1_sql_floor`), and what one slot of the engine spends per step on
    top of it, from the same rounds."""
    label = "SQL floor: the statements of one slot's backlog drain, replayed without the engine"
    if not done:
        rows.append([label, "ERROR", "", "", "", "", "", "", ""])
        summary.add("W1 SQL floor steps/s", "ERROR (see above)")
        return
    steps_s = statistics.median(r["steps_s"] for r in done)
    floor_cpu_us = statistics.median(r["cpu_us_per_step"] for r in done)
    statements = statistics.median(r["statements"] / r["steps_completed_db"] for r in done)
    note = "; ".join(filter(None, [
        rounds_note(done),
        f"{statements:.2f} statements per step",
    ]))  # fmt: skip
    rows.append([label, f"{done[0]['runs_completed_db']:,}", "-", fmt(statistics.median(r["window_s"] for r in done), ".2f"),
                 fmt(steps_s), fmt(floor_cpu_us, ".1f"), fmt(statistics.median(r["peak_rss_kb"] for r in done) / 1024, ".1f"),
                 f"(the ceiling of >= {TARGET_STEPS_C1:,.0f})", note])  # fmt: skip
    summary.add("W1 SQL floor steps/s (the engine's statements alone, one slot)", fmt(steps_s), "reference")
    if engine_cpu_us is not None:
        left_us = 1e6 / TARGET_STEPS_C1 - floor_cpu_us  # what a step may cost beyond its SQL at the target
        budget = f"<= {left_us:.1f} us" if left_us > 0 else "none: the SQL alone is slower"
        summary.add("W1 c=1 CPU per step: the engine's own, on top of the SQL floor", f"{engine_cpu_us - floor_cpu_us:.1f} us",
                    f"{budget} for {TARGET_STEPS_C1:,.0f} steps/s")  # fmt: skip


def bench_w1(opts: argparse.Namespace, summary: Summary) -> None:
    runs, steps = opts.runs, opts.steps
    total_steps = runs * steps
    print(
        f"\n=== W1: throughput, {runs:,} runs x {steps} trivial steps, file-backed SQLite, fresh temp dir per config ==="
    )
    rows: list[list[str]] = []
    timeout = max(180.0, total_steps / 100.0)

    w1_durably_rounds(opts, summary, rows, timeout)

    if not opts.no_dbos:
        dbos_runs = opts.dbos_runs
        configs = [
            ("queue", 1, "wal", dbos_runs, "DBOS Queue worker_concurrency=1 (WAL)"),
            ("queue", 4, "wal", dbos_runs, "DBOS Queue worker_concurrency=4 (WAL)"),
            ("start", 1, "wal", dbos_runs, "DBOS start_workflow, 1 client thread (WAL)"),
            ("start", 4, "wal", dbos_runs, "DBOS start_workflow, 4 client threads (WAL)"),
            ("queue", 1, "default", max(1, dbos_runs // 2), "DBOS Queue worker_concurrency=1 (DBOS default journal)"),
        ]
        for mode, conc, journal, n, label in configs:
            d = fresh_dir(f"w1-dbos-{mode}{conc}-{journal}")
            try:
                r = run_child("w1-dbos", ["--dir", d, "--runs", str(n), "--steps", str(steps), "--conc", str(conc),
                                          "--mode", mode, "--journal", journal, "--timeout", "120"], 200)  # fmt: skip
            finally:
                shutil.rmtree(d, ignore_errors=True)
            if "error" in r:
                rows.append([label, "ERROR", "", "", "", "", "", "", ""])
                print(f"  {label}: {r['error']}\n{r.get('stderr', '')}")
                summary.add(f"W1 {label} steps/s", "ERROR (see above)")
                continue
            done = r["completed"]
            total = r["total_s"]
            steps_s = done * steps / total
            trig = fmt(r["enqueue_s"], ".2f") if mode == "queue" else "-"
            note = "rate over enqueue+exec (overlapped)" if mode == "queue" else "no separate trigger"
            if done < n:
                note = f"INCOMPLETE {done}/{n}; " + note
            rows.append([label, f"{done:,}", trig, fmt(total, ".2f"), fmt(steps_s), "-",
                         fmt(r["peak_rss_kb"] / 1024, ".1f"), "(reference)", note])  # fmt: skip
            summary.add(f"W1 {label} steps/s", fmt(steps_s), "reference")

    d = fresh_dir("w1-ceiling")
    try:
        r = run_child("ceiling", ["--dir", d, "--commits", "10000"], 120)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if "error" in r:
        rows.append(["ceiling", "ERROR", "", "", "", "", "", "", ""])
        print(f"  ceiling: {r['error']}\n{r.get('stderr', '')}")
    else:
        commits_s = r["commits"] / r["seconds"]
        rows.append(["ceiling: plain sqlite3 INSERT+COMMIT (WAL, sync=NORMAL)", f"{r['commits']:,} commits", "-",
                     fmt(r["seconds"], ".2f"), f"{commits_s:,.0f} commits/s", fmt(r["seconds"] / r["commits"] * 1e6, ".1f"),
                     fmt(r["peak_rss_kb"] / 1024, ".1f"), "(reference)", "1 commit = 1 row"])  # fmt: skip
        summary.add("W1 ceiling: single-row INSERT+COMMIT/s (WAL, NORMAL)", fmt(commits_s), "reference")

    print(table(["configuration", "runs", "trigger s", "window s", "steps/s", "CPU us/step", "peak RSS MB", "target",
                 "notes"], rows))  # fmt: skip
    paragraph(
        "steps/s are over each row's window; durably-reflex rows are medians of --repeat rounds (configurations "
        "interleaved within each round; with --before REV, that commit's rows beside this code's), and 'CPU us/step' "
        "is the process's CPU time over the window per step (the ceiling's: wall time per commit). 'worker running while triggering' rows and the DBOS Queue "
        "rows share one window: the worker runs before the first run is triggered (batch_trigger, 100 at a time) or "
        "enqueued, and the window runs from the first trigger or enqueue to the last run:complete or result: these "
        "rows compare like with like. 'backlog drained' rows trigger every run first, then start the worker, and "
        "time worker start -> last run:complete (no trigger in the window). DBOS rows: a workflow of {steps} @DBOS.step calls. Queue rows enqueue all "
        f"runs on a DBOS Queue (polling_interval_sec={DBOS_QUEUE_POLL_S}) whose worker already runs while enqueueing. "
        "The Queue (a durable backlog drained under a concurrency "
        "limit) is the structural equivalent of batch_trigger + worker, so it is the fair comparison; start_workflow "
        "rows (N threads, each start_workflow().get_result() in turn) show DBOS without queue polling. '(WAL)' = "
        "DBOS's own SQLite connect settings plus journal_mode=WAL, synchronous=NORMAL (what durably-reflex uses), "
        "given as system_database_engine; 'default journal' = DBOS out of the box (rollback journal, "
        f"synchronous=FULL). DBOS rows use --dbos-runs={opts.dbos_runs} runs (DBOS is slow here; rates are per step "
        "and per run, so they compare). Peak RSS = ru_maxrss of the child process running that configuration "
        "(imports included)."
    )


# -- W2 --------------------------------------------------------------------------------------------
def bench_w2(opts: argparse.Namespace, summary: Summary) -> None:
    samples, warmup, pause = 200, 10, 0.02
    print(f"\n=== W2: trigger -> run:complete latency, 1-step job, idle started worker, {samples} sequential runs "
          f"({warmup} warm-up runs not counted), {pause * 1000:.0f} ms pause ===")  # fmt: skip
    rows = []
    configs = [("w2-durably", "wal", "durably-reflex (trigger() -> run:complete event, in-process)")]
    if not opts.no_dbos:
        configs.append(("w2-dbos", "wal", "DBOS start_workflow() -> get_result() (WAL)"))
    for kind, journal, label in configs:
        d = fresh_dir(kind)
        try:
            r = run_child(kind, ["--dir", d, "--samples", str(samples), "--warmup", str(warmup), "--pause", str(pause),
                                 "--journal", journal], 120)  # fmt: skip
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if "error" in r:
            rows.append([label, "ERROR", "", "", "", "", "", ""])
            print(f"  {label}: {r['error']}\n{r.get('stderr', '')}")
            if kind == "w2-durably":
                summary.add("W2 durably p50 latency", "ERROR", f"< {TARGET_W2_P50_MS:g} ms", "FAIL")
            continue
        lat = r["latencies_ms"]
        p50, p95, p99 = (percentile(lat, p) for p in (50, 95, 99))
        target = (
            f"p50 < {TARGET_W2_P50_MS:g} {verdict(p50, TARGET_W2_P50_MS, False)}"
            if kind == "w2-durably"
            else "(reference)"
        )
        rows.append([label, str(len(lat)), f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{min(lat):.2f}",
                     f"{max(lat):.2f}", target])  # fmt: skip
        if kind == "w2-durably":
            summary.add(
                "W2 durably latency p50",
                f"{p50:.2f} ms",
                f"< {TARGET_W2_P50_MS:g} ms",
                verdict(p50, TARGET_W2_P50_MS, False),
            )
            summary.add("W2 durably latency p95 / p99", f"{p95:.2f} / {p99:.2f} ms")
            if r.get("timeouts"):
                summary.add("W2 durably runs not completed within 5 s", str(r["timeouts"]), "0", "FAIL")
        else:
            summary.add(
                "W2 DBOS start_workflow->get_result p50 / p95 / p99",
                f"{p50:.2f} / {p95:.2f} / {p99:.2f} ms",
                "reference",
            )
    print(table(["configuration", "n", "p50 ms", "p95 ms", "p99 ms", "min ms", "max ms", "target"], rows))


# -- W2 over HTTP ----------------------------------------------------------------------------------
async def _w2_over_http(port: int, samples: int, warmup: int, pause: float) -> dict[str, list[float]]:
    """Sequential POST /trigger of the one-step job, each awaited on an open /runs/subscribe stream;
    ms from sending the trigger to: its answer, the run's stored startedAt, run:start and run:complete
    received on the stream."""
    import asyncio

    import httpx
    from httpx_sse import aconnect_sse

    loop = asyncio.get_running_loop()
    received: dict[str, dict[str, float]] = {}
    waiters: dict[str, asyncio.Future[None]] = {}
    sent: list[tuple[str, float, float]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/durably", timeout=30) as client:
        listening = asyncio.Event()

        async def listen() -> None:
            async with aconnect_sse(client, "GET", "/runs/subscribe") as source:
                listening.set()
                async for sse in source.aiter_sse():
                    t = time.time()
                    event = json.loads(sse.data)
                    run_id = event.get("runId")
                    received.setdefault(run_id, {}).setdefault(event.get("type"), t)
                    waiter = waiters.get(run_id)
                    if event.get("type") == "run:complete" and waiter is not None and not waiter.done():
                        waiter.set_result(None)

        listener = asyncio.create_task(listen())
        await asyncio.wait_for(listening.wait(), 30)
        for i in range(warmup + samples):
            t0 = time.time()
            response = await client.post("/trigger", json={"jobName": "w2", "input": {}})
            t_answer = time.time()
            run_id = response.raise_for_status().json()["runId"]
            waiter = waiters[run_id] = loop.create_future()
            if "run:complete" in received.get(run_id, {}):
                waiter.set_result(None)
            await asyncio.wait_for(waiter, 10)
            if i >= warmup:
                sent.append((run_id, t0, t_answer))
            await asyncio.sleep(pause)
        listener.cancel()
        out: dict[str, list[float]] = {"answer": [], "started": [], "run:start": [], "run:complete": []}
        for run_id, t0, t_answer in sent:
            run = (await client.get("/run", params={"runId": run_id})).json()
            out["answer"].append((t_answer - t0) * 1000)
            out["started"].append((datetime.fromisoformat(run["startedAt"]).timestamp() - t0) * 1000)
            out["run:start"].append((received[run_id]["run:start"] - t0) * 1000)
            out["run:complete"].append((received[run_id]["run:complete"] - t0) * 1000)
    return out


def bench_w2_http(opts: argparse.Namespace, summary: Summary) -> None:
    import asyncio

    samples, warmup, pause = 200, 10, 0.02
    print(f"\n=== W2 over HTTP: `durably-reflex serve`, POST /trigger of a 1-step job -> events on an open "
          f"/runs/subscribe stream, {samples} sequential runs ({warmup} warm-up), {pause * 1000:.0f} ms pause ===")  # fmt: skip
    configs = []
    if opts.before_code:
        configs.append((f"before ({opts.before}): serve", opts.before_code, []))
    configs += [
        (f"serve (worker process) of {opts.rev_label}", CODE, []),
        (f"serve --in-process-worker of {opts.rev_label}", CODE, ["--in-process-worker"]),
    ]
    rows = []
    for label, code, extra in configs:
        d = fresh_dir("w2http")
        server = None
        try:
            server = CliServer(code, d, f"sqlite:///{d}/durably.db", extra)
            r = asyncio.run(_w2_over_http(server.port, samples, warmup, pause))
        except Exception as error:
            rows.append([label, "ERROR", "", "", "", ""])
            print(f"  {label}: {type(error).__name__}: {error}{server.tail() if server else ''}")
            continue
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(d, ignore_errors=True)
        cells = [
            f"{percentile(r[key], 50):.1f} / {percentile(r[key], 95):.1f}"
            for key in ("answer", "started", "run:start", "run:complete")
        ]
        rows.append([label, str(len(r["answer"])), *cells])
        summary.add(f"W2 HTTP {label}: trigger -> run:complete received p50 / p95",
                    f"{percentile(r['run:complete'], 50):.1f} / {percentile(r['run:complete'], 95):.1f} ms")  # fmt: skip
    print(
        table(
            ["server", "n", "POST answered", "startedAt (stored)", "run:start received", "run:complete received"], rows
        )
    )
    paragraph(
        "p50 / p95 in ms from sending POST /trigger. 'startedAt' is the run's stored claim time (whole ms, read "
        "afterwards); the stream columns are when the client read the event from /runs/subscribe, which the API "
        "process reads from the event log (it polls the log every 10 ms on SQLite), in both modes. With the worker "
        "in its own process, the API process rings the leading worker (a Unix datagram) for a run it cannot start."
    )


# -- W3 --------------------------------------------------------------------------------------------
def _count_steps(system: str, d: str) -> int:
    """Steps committed so far: durably's completed step rows, DBOS's recorded step outputs."""
    path, query = (
        (os.path.join(d, "durably.db"), "SELECT count(*) FROM durably_steps WHERE status='completed'")
        if system == "durably"
        else (os.path.join(d, "dbos_sys.sqlite"), "SELECT count(*) FROM operation_outputs WHERE error IS NULL")
    )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            return db.execute(query).fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _hang_reached(counter: str) -> bool:
    try:
        return f"s{W3_HANG_AT:03d}" in open(counter).read().split()
    except OSError:
        return False


def w3_kill_and_resume(system: str) -> dict[str, Any]:
    """Start the run in a victim process, SIGKILL it once step W3_HANG_AT hangs, resume in a new process."""
    d = fresh_dir(f"w3-{system}")
    counter = os.path.join(d, "side_effects.txt")
    where = ["--db", os.path.join(d, "durably.db")] if system == "durably" else ["--dir", d, "--journal", "wal"]
    kind = "w3" if system == "durably" else "w3-dbos"
    victim: subprocess.Popen[str] | None = None
    try:
        err_path = os.path.join(d, "victim.stderr")
        with open(err_path, "w") as err_file:
            victim = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child", f"{kind}-victim", *where, "--counter", counter],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err_file, text=True,
            )  # fmt: skip
            _live_children.append(victim)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and victim.poll() is None and not _hang_reached(counter):
                time.sleep(0.002)
            if not _hang_reached(counter):
                return {"error": f"step {W3_HANG_AT} never started; victim stderr:\n{open(err_path).read()[-2000:]}"}
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            _live_children.remove(victim)
        committed_at_kill = _count_steps(system, d)
        t_spawn = time.monotonic()
        r = run_child(f"{kind}-resume", [*where, "--counter", counter, "--timeout", "60"], 90)
        if "error" in r or r.get("t_complete") is None:
            return {"error": r.get("error", "the run did not complete within 60 s"), "stderr": r.get("stderr", "")}
        executions: dict[str, int] = {}
        for name in Path(counter).read_text().split():
            executions[name] = executions.get(name, 0) + 1
        hung = f"s{W3_HANG_AT:03d}"  # started, never finished: it runs again by design
        return {
            "committed_at_kill": committed_at_kill,
            "spawn_to_done": r["t_complete"] - t_spawn,
            "start_to_done": r["t_complete"] - r["t_started"],
            "imports": r["t_imported"] - r["t_entry"],
            "start_call": r["t_started"] - r["t_start_called"],
            "output": r["output"],
            "rerun": sum(count - 1 for name, count in executions.items() if name != hung),
            "missing": W3_STEPS - len(executions),
            "committed_total": _count_steps(system, d),
        }
    finally:
        if victim is not None and victim.poll() is None:
            victim.kill()
            victim.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def bench_w3(opts: argparse.Namespace, summary: Summary) -> None:
    print(f"\n=== W3: crash recovery, {W3_STEPS}-step job (each step: a line appended to a file, then "
          f"{W3_STEP_SLEEP_S * 1000:.0f} ms sleep); step {W3_HANG_AT} hangs, the process is SIGKILLed, "
          "a new process resumes ===")  # fmt: skip
    systems = [("durably", "durably-reflex")] + ([] if opts.no_dbos else [("dbos", "DBOS (WAL)")])
    results = {system: w3_kill_and_resume(system) for system, _ in systems}
    for system, label in systems:
        if "error" in results[system]:
            print(f"  {label}: ERROR {results[system]['error']}\n{results[system].get('stderr', '')}")
    ok = [(system, label) for system, label in systems if "error" not in results[system]]
    if ("durably", "durably-reflex") not in ok:
        summary.add("W3 recovery", "ERROR", f"< {TARGET_W3_S:g} s", "FAIL")
        return
    expected = sum(range(W3_STEPS))

    def row(measure: str, value: Any, target: str = "") -> list[str]:
        return [measure, *(value(results[system]) for system, _ in ok), target]

    ms = lambda key: lambda r: f"{r[key] * 1000:.0f} ms"  # noqa: E731
    rows = [
        row("steps committed at SIGKILL", lambda r: str(r["committed_at_kill"]), str(W3_HANG_AT)),
        row("new process start -> run completed", ms("spawn_to_done"), f"< {TARGET_W3_S * 1000:.0f} ms"),
        row("  of which imports (durably_reflex / dbos)", ms("imports")),
        row("  start() / launch() call", ms("start_call")),
        row("start() / launch() returned -> run completed", ms("start_to_done"), f"< {TARGET_W3_S * 1000:.0f} ms"),
        row(f"  of which the remaining {W3_STEPS - W3_HANG_AT} steps' sleeps",
            lambda r: f">= {(W3_STEPS - W3_HANG_AT) * W3_STEP_SLEEP_S * 1000:.0f} ms"),
        row("output", lambda r: str(r["output"]), str(expected)),
        row("steps committed in the end", lambda r: str(r["committed_total"]), str(W3_STEPS)),
        row(f"committed steps run again (not counting the hung step {W3_HANG_AT})", lambda r: str(r["rerun"]), "0"),
        row("steps never run", lambda r: str(r["missing"]), "0"),
    ]  # fmt: skip
    print(table(["measure", *(label for _, label in ok), "target"], rows))
    print("  The same step function, kill point and clock for each system: CLOCK_MONOTONIC (system-wide on Linux),")
    print("  taken by the parent before spawning the new process and by that process. durably-reflex: default")
    print("  stale_threshold (30 s); the dead owner is detected at once. DBOS: launch() recovers this executor's")
    print("  pending workflows; the figure is until retrieve_workflow(...).get_result() returns.")
    d = results["durably"]
    summary.add("W3 process start -> run completed", f"{d['spawn_to_done'] * 1000:.0f} ms", f"< {TARGET_W3_S * 1000:.0f} ms",
                verdict(d["spawn_to_done"], TARGET_W3_S, False))  # fmt: skip
    summary.add("W3 worker start() -> run completed", f"{d['start_to_done'] * 1000:.0f} ms", f"< {TARGET_W3_S * 1000:.0f} ms",
                verdict(d["start_to_done"], TARGET_W3_S, False))  # fmt: skip
    summary.add("W3 committed steps re-run", str(d["rerun"]), "0", "PASS" if d["rerun"] == 0 else "FAIL")
    summary.add("W3 output", str(d["output"]), str(expected), "PASS" if d["output"] == expected else "FAIL")
    if "dbos" in results and "error" not in results["dbos"]:
        b = results["dbos"]
        summary.add("W3 DBOS process start -> completed / launch() -> completed",
                    f"{b['spawn_to_done'] * 1000:.0f} / {b['start_to_done'] * 1000:.0f} ms", "reference")  # fmt: skip


# ==================================================================================================
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1000, help="W1 runs for durably-reflex (default 1000)")
    p.add_argument("--steps", type=int, default=10, help="W1 steps per run (default 10)")
    p.add_argument("--only", default="W1,W2,W2http,W3", help="comma-separated workloads (default W1,W2,W2http,W3)")
    p.add_argument("--dbos-runs", type=int, default=200, help="W1 runs for DBOS (default 200; it is slow here)")
    p.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    p.add_argument("--no-huey", dest="huey", action="store_false", help="W1: skip the huey comparison")
    p.add_argument("--no-sql-floor", dest="sql_floor", action="store_false",
                   help="W1: skip the SQL floor (the engine's statements for one slot, replayed without it)")  # fmt: skip
    p.add_argument("--rev", metavar="REV", help="measure this commit (git archive) instead of this checkout")
    p.add_argument("--before", metavar="REV", help="W1 and W2http: also measure this commit (or folder), interleaved")
    p.add_argument("--repeat", type=int, default=1, help="W1: rounds of every configuration, interleaved (medians)")
    p.add_argument("--slots", default="1,4", help="W1: max_concurrent_runs values (default 1,4)")
    p.add_argument("--windows", default="queue,backlog", help="W1: queue (DBOS's window), backlog (default both)")
    # hidden: child processes
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--counter", help=argparse.SUPPRESS)
    p.add_argument("--conc", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="queue", help=argparse.SUPPRESS)
    p.add_argument("--journal", default="wal", help=argparse.SUPPRESS)
    p.add_argument("--storage", default="sqlite", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    p.add_argument("--commits", type=int, default=10000, help=argparse.SUPPRESS)
    p.add_argument("--samples", type=int, default=200, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--pause", type=float, default=0.02, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def machine_line() -> str:
    import platform

    try:
        from importlib.metadata import version

        dbos_version = version("dbos")
    except Exception:
        dbos_version = "not installed"
    return (f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, dbos {dbos_version}, "
            f"{os.cpu_count()} CPUs, {platform.platform()}")  # fmt: skip


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    if opts.child:
        CHILDREN[opts.child](opts)
        return 0
    only = {w.strip().upper() for w in opts.only.split(",") if w.strip()}
    if opts.rev:  # run again, this process and its children importing durably_reflex from the archive
        env = {**os.environ, "DURABLY_BENCH_CODE": code_for(opts.rev), "DURABLY_BENCH_REV": opts.rev}
        at = argv.index("--rev") if "--rev" in argv else None
        rest = argv[:at] + argv[at + 2 :] if at is not None else [a for a in argv if not a.startswith("--rev=")]
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *rest], env)
    opts.rev_label = describe_code(CODE) if str(ROOT) == CODE else os.environ.get("DURABLY_BENCH_REV", CODE)
    opts.before_code = code_for(opts.before) if opts.before else ""
    opts.w1_slots = [int(value) for value in opts.slots.split(",")]
    opts.w1_modes = [value.strip() for value in opts.windows.split(",")]
    unknown = only - {"W1", "W2", "W2HTTP", "W3"}
    if unknown:
        print(f"unknown workload(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if opts.huey:
        try:
            import huey  # noqa: F401
        except Exception as error:  # pragma: no cover - environment dependent
            print(f"huey comparison skipped: cannot import huey ({error}); pip install -e '.[bench]' installs it")
            opts.huey = False
    if not opts.no_dbos:
        try:
            import dbos  # noqa: F401
        except Exception as error:  # pragma: no cover - environment dependent
            print(f"DBOS comparison skipped: cannot import dbos ({error}); pip install -e '.[bench]' installs it")
            opts.no_dbos = True
    print("durably-reflex engine benchmark")
    print(f"  {machine_line()}")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "durably_reflex"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    print(
        f"  load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes share these CPUs)"
    )
    if str(ROOT) == CODE:
        print(
            f"  code: this checkout, HEAD {head or '?'}{' + uncommitted changes in durably_reflex/' if dirty.strip() else ''}"
        )
    else:
        print(f"  code: {opts.rev_label} (git archive in {CODE})")
    started = time.monotonic()
    summary = Summary()
    try:
        if "W1" in only:
            bench_w1(opts, summary)
        if "W2" in only:
            bench_w2(opts, summary)
        if "W2HTTP" in only:
            bench_w2_http(opts, summary)
        if "W3" in only:
            bench_w3(opts, summary)
    finally:
        for proc in list(_live_children):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    print("\n=== Summary ===")
    print(table(["metric", "value", "target", "status"], summary.rows))
    print(
        f"\n(total bench time {time.monotonic() - started:.0f} s; load average at end: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
