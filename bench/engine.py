"""Engine benchmark: durably-reflex against DBOS Transact (SQLite) and a raw SQLite ceiling.

    .venv/bin/python bench/engine.py [--runs 1000] [--steps 10] [--only W1,W2,W3] [--dbos-runs 200] [--no-dbos]

W1  throughput: N runs x S trivial steps on a file-backed SQLite database in a fresh temp dir.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT_TAG = "@@RESULT "
TARGET_STEPS_C1 = 3000.0
TARGET_STEPS_C4 = 5000.0
TARGET_W2_P50_MS = 5.0
TARGET_W3_S = 1.0
DBOS_QUEUE_POLL_S = 0.01  # DBOS queues dequeue only when polled; 10 ms keeps the poll wait small
W3_STEPS = 100
W3_KILL_AFTER = 50
W3_STEP_SLEEP_S = 0.005


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
def child_w1_durably(args: argparse.Namespace) -> None:
    import asyncio

    from durably_reflex import create_durably, define_job

    steps = args.steps

    async def body(step: Any, _input: Any) -> int:
        total = 0
        for i in range(steps):
            total += await step.run(f"s{i}", trivial_step, i)
        return total

    job = define_job(name="w1", run=body)

    async def main() -> dict[str, Any]:
        path = os.path.join(args.dir, "durably.db")
        durably = create_durably(f"sqlite:///{path}", polling_interval=1.0, max_concurrent_runs=args.conc)
        durably.register(w1=job)
        await durably.migrate()
        done = asyncio.Event()
        completed = 0

        def on_complete(_event: dict[str, Any]) -> None:
            nonlocal completed
            completed += 1
            if completed >= args.runs:
                done.set()

        durably.on("run:complete", on_complete)
        t0 = time.perf_counter()
        for start in range(0, args.runs, 100):
            await durably.jobs.w1.batch_trigger([None] * min(100, args.runs - start))
        t1 = time.perf_counter()
        rss_before = rss_now_kb()
        await durably.start()
        timed_out = False
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except TimeoutError:
            timed_out = True
        t2 = time.perf_counter()
        await durably.close(timeout=5)
        db = sqlite3.connect(path)
        runs_ok = db.execute("SELECT count(*) FROM durably_runs WHERE status='completed'").fetchone()[0]
        steps_ok = db.execute("SELECT count(*) FROM durably_steps WHERE status='completed'").fetchone()[0]
        db.close()
        return {
            "trigger_s": t1 - t0, "exec_s": t2 - t1, "completed_events": completed, "timed_out": timed_out,
            "runs_completed_db": runs_ok, "steps_completed_db": steps_ok, "rss_before_start_kb": rss_before,
        }  # fmt: skip

    emit_result(asyncio.run(main()))


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


def _w3_job(counter_path: str) -> Any:
    from durably_reflex import define_job

    def work(index: int, name: str) -> int:
        time.sleep(W3_STEP_SLEEP_S)
        with open(counter_path, "a") as f:  # the side effect: one line per execution of a step function
            f.write(name + "\n")
        return index

    async def body(step: Any, _input: Any) -> int:
        total = 0
        for i in range(W3_STEPS):
            total += await step.run(f"s{i:03d}", work, i, f"s{i:03d}")
        return total

    return define_job(name="w3", run=body)


def child_w3_victim(args: argparse.Namespace) -> None:
    """Start the 100-step run and keep executing it until the parent SIGKILLs this process."""
    import asyncio

    from durably_reflex import create_durably

    async def main() -> None:
        durably = create_durably(f"sqlite:///{args.db}", polling_interval=1.0)
        durably.register(w3=_w3_job(args.counter))
        await durably.migrate()
        run = await durably.trigger("w3", None)
        print(f"run {run.id}", flush=True)
        await durably.start()
        await asyncio.sleep(60)  # bounded: the parent kills us long before this
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
        durably.register(w3=_w3_job(args.counter))
        done = asyncio.Event()
        seen: dict[str, Any] = {}

        def on_complete(event: dict[str, Any]) -> None:
            seen.update(t=time.monotonic(), run_id=event["runId"], output=event.get("output"))
            done.set()

        durably.on("run:complete", on_complete)
        t_start_called = time.monotonic()
        await durably.start()
        t_started = time.monotonic()
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except TimeoutError:
            pass
        await durably.close(timeout=2)
        return {
            "t_entry": t_entry, "t_imported": t_imported, "t_start_called": t_start_called, "t_started": t_started,
            "t_complete": seen.get("t"), "run_id": seen.get("run_id"), "output": seen.get("output"),
        }  # fmt: skip

    emit_result(asyncio.run(main()))


CHILDREN = {
    "w1-durably": child_w1_durably,
    "w1-dbos": child_w1_dbos,
    "ceiling": child_ceiling,
    "w2-durably": child_w2_durably,
    "w2-dbos": child_w2_dbos,
    "w3-victim": child_w3_victim,
    "w3-resume": child_w3_resume,
}


# ==================================================================================================
# parent
# ==================================================================================================
_live_children: list[subprocess.Popen[str]] = []


def run_child(kind: str, extra: list[str], timeout: float) -> dict[str, Any]:
    """Run `this script --child kind ...` and return its result dict (or {"error": ...})."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
            result: dict[str, Any] = json.loads(line[len(RESULT_TAG):])
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
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), line]
    for row in rows:
        last = len(row) - 1
        out.append("  ".join(c.ljust(w) if i in (0, last) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
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
def bench_w1(opts: argparse.Namespace, summary: Summary) -> None:
    runs, steps = opts.runs, opts.steps
    total_steps = runs * steps
    print(f"\n=== W1: throughput, {runs:,} runs x {steps} trivial steps, file-backed SQLite, fresh temp dir per config ===")
    rows: list[list[str]] = []
    timeout = max(180.0, total_steps / 100.0)

    for conc, target in ((1, TARGET_STEPS_C1), (4, TARGET_STEPS_C4)):
        d = fresh_dir(f"w1-c{conc}")
        try:
            r = run_child("w1-durably", ["--dir", d, "--runs", str(runs), "--steps", str(steps), "--conc", str(conc),
                                         "--timeout", str(timeout)], timeout + 60)  # fmt: skip
        finally:
            shutil.rmtree(d, ignore_errors=True)
        label = f"durably-reflex  max_concurrent_runs={conc}"
        if "error" in r:
            rows.append([label, "ERROR", "", "", "", "", "", "", "", ""])
            print(f"  {label}: {r['error']}\n{r.get('stderr', '')}")
            summary.add(f"W1 durably c={conc} steps/s", "ERROR", f">= {target:,.0f}", "FAIL")
            continue
        done_runs = r["runs_completed_db"]
        done_steps = r["steps_completed_db"]
        steps_s = done_steps / r["exec_s"]
        runs_s = done_runs / r["exec_s"]
        e2e = done_steps / (r["trigger_s"] + r["exec_s"])
        note = "" if done_runs == runs and not r["timed_out"] else f"INCOMPLETE {done_runs}/{runs}"
        rows.append([label, f"{done_runs:,}", fmt(r["trigger_s"], ".2f"), fmt(r["exec_s"], ".2f"), fmt(steps_s),
                     fmt(runs_s, ",.1f"), fmt(e2e), fmt(r["peak_rss_kb"] / 1024, ".1f"),
                     f">= {target:,.0f} {verdict(steps_s, target, True)}", note])  # fmt: skip
        summary.add(f"W1 durably c={conc} steps/s (exec)", fmt(steps_s), f">= {target:,.0f}", verdict(steps_s, target, True))
        summary.add(f"W1 durably c={conc} runs/s (exec)", fmt(runs_s, ",.1f"))
        summary.add(f"W1 durably c={conc} trigger time ({runs:,} runs)", f"{r['trigger_s']:.3f} s")
        summary.add(f"W1 durably c={conc} peak RSS", f"{r['peak_rss_kb'] / 1024:.1f} MB "
                    f"(before start {r['rss_before_start_kb'] / 1024:.1f})")  # fmt: skip

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
                rows.append([label, "ERROR", "", "", "", "", "", "", "", ""])
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
            rows.append([label, f"{done:,}", trig, fmt(total, ".2f"), fmt(steps_s), fmt(done / total, ",.1f"),
                         fmt(steps_s), fmt(r["peak_rss_kb"] / 1024, ".1f"), "(reference)", note])  # fmt: skip
            summary.add(f"W1 {label} steps/s", fmt(steps_s), "reference")

    d = fresh_dir("w1-ceiling")
    try:
        r = run_child("ceiling", ["--dir", d, "--commits", "10000"], 120)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if "error" in r:
        rows.append(["ceiling", "ERROR", "", "", "", "", "", "", "", ""])
        print(f"  ceiling: {r['error']}\n{r.get('stderr', '')}")
    else:
        commits_s = r["commits"] / r["seconds"]
        rows.append(["ceiling: plain sqlite3 INSERT+COMMIT (WAL, sync=NORMAL)", f"{r['commits']:,} commits", "-",
                     fmt(r["seconds"], ".2f"), f"{commits_s:,.0f} commits/s", "-", "-",
                     fmt(r["peak_rss_kb"] / 1024, ".1f"), "(reference)", "1 commit = 1 row"])  # fmt: skip
        summary.add("W1 ceiling: single-row INSERT+COMMIT/s (WAL, NORMAL)", fmt(commits_s), "reference")

    print(table(["configuration", "runs", "trigger s", "exec s", "steps/s", "runs/s", "steps/s e2e",
                 "peak RSS MB", "target", "notes"], rows))  # fmt: skip
    paragraph(
        "steps/s and runs/s: over the execution window (worker start -> last run:complete) for durably-reflex; "
        f"'e2e' includes the trigger time. DBOS rows: a workflow of {steps} @DBOS.step calls. Queue rows enqueue all "
        f"runs on a DBOS Queue (polling_interval_sec={DBOS_QUEUE_POLL_S}) whose worker already runs while enqueueing, "
        "so their rate is over enqueue start -> last result. The Queue (a durable backlog drained under a concurrency "
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
        target = f"p50 < {TARGET_W2_P50_MS:g} {verdict(p50, TARGET_W2_P50_MS, False)}" if kind == "w2-durably" else "(reference)"
        rows.append([label, str(len(lat)), f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{min(lat):.2f}",
                     f"{max(lat):.2f}", target])  # fmt: skip
        if kind == "w2-durably":
            summary.add("W2 durably latency p50", f"{p50:.2f} ms", f"< {TARGET_W2_P50_MS:g} ms", verdict(p50, TARGET_W2_P50_MS, False))
            summary.add("W2 durably latency p95 / p99", f"{p95:.2f} / {p99:.2f} ms")
            if r.get("timeouts"):
                summary.add("W2 durably runs not completed within 5 s", str(r["timeouts"]), "0", "FAIL")
        else:
            summary.add("W2 DBOS start_workflow->get_result p50 / p95 / p99", f"{p50:.2f} / {p95:.2f} / {p99:.2f} ms", "reference")
    print(table(["configuration", "n", "p50 ms", "p95 ms", "p99 ms", "min ms", "max ms", "target"], rows))


# -- W3 --------------------------------------------------------------------------------------------
def _count_steps(db_path: str) -> int:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1.0)
        try:
            return db.execute("SELECT count(*) FROM durably_steps WHERE status='completed'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def bench_w3(opts: argparse.Namespace, summary: Summary) -> None:
    print(f"\n=== W3: crash recovery, {W3_STEPS}-step job ({W3_STEP_SLEEP_S * 1000:.0f} ms sleep + file append per step), "
          f"SIGKILL after ~{W3_KILL_AFTER} steps, new process resumes (stale_threshold default 30 s) ===")  # fmt: skip
    d = fresh_dir("w3")
    db_path = os.path.join(d, "durably.db")
    counter = os.path.join(d, "side_effects.txt")
    victim: subprocess.Popen[str] | None = None
    try:
        err_path = os.path.join(d, "victim.stderr")
        with open(err_path, "w") as err_file:
            victim = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child", "w3-victim", "--db", db_path, "--counter", counter],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err_file, text=True,
            )  # fmt: skip
            _live_children.append(victim)
            deadline = time.monotonic() + 30
            seen = 0
            while time.monotonic() < deadline and victim.poll() is None:
                seen = _count_steps(db_path)
                if seen >= W3_KILL_AFTER:
                    break
                time.sleep(0.002)
            if victim.poll() is not None or seen < W3_KILL_AFTER:
                print(f"  victim did not reach {W3_KILL_AFTER} steps (saw {seen}); stderr:\n{open(err_path).read()[-2000:]}")
                summary.add("W3 recovery", "ERROR", f"< {TARGET_W3_S:g} s", "FAIL")
                return
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            _live_children.remove(victim)
        steps_at_kill = _count_steps(db_path)
        counter_at_kill = len(open(counter).read().splitlines()) if os.path.exists(counter) else 0

        t_spawn = time.monotonic()
        r = run_child("w3-resume", ["--db", db_path, "--counter", counter, "--timeout", "60"], 90)
        if "error" in r or r.get("t_complete") is None:
            print(f"  resume failed: {r.get('error', 'run:complete not seen within 60 s')}\n{r.get('stderr', '')}")
            summary.add("W3 recovery", "ERROR", f"< {TARGET_W3_S:g} s", "FAIL")
            return

        db = sqlite3.connect(db_path)
        status, output = db.execute("SELECT status, output FROM durably_runs").fetchone()
        step_rows = db.execute("SELECT count(*) FROM durably_steps WHERE status='completed'").fetchone()[0]
        dup_rows = db.execute(
            "SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) c FROM durably_steps WHERE status='completed' GROUP BY name)"
        ).fetchone()[0]
        db.close()
        lines = open(counter).read().splitlines()
        executions: dict[str, int] = {}
        for name in lines:
            executions[name] = executions.get(name, 0) + 1
        rerun = sum(c - 1 for c in executions.values())
        # A step whose function had finished but whose row was not yet committed when the kill landed
        # (index >= steps committed at kill) runs again by design; an earlier one would be a bug.
        rerun_committed = sum(c - 1 for n, c in executions.items() if int(n[1:]) < steps_at_kill)
        missing = W3_STEPS - len(executions)

        proc_to_done = r["t_complete"] - t_spawn
        start_to_done = r["t_complete"] - r["t_started"]
        rows = [
            ["steps committed at SIGKILL (durably_steps rows)", str(steps_at_kill), ""],
            ["step functions executed before SIGKILL (counter file)", str(counter_at_kill), ""],
            ["spawn -> interpreter up (child's first statement)", f"{(r['t_entry'] - t_spawn) * 1000:.0f} ms", ""],
            ["  -> durably_reflex imported", f"{(r['t_imported'] - r['t_entry']) * 1000:.0f} ms", ""],
            ["  -> create_durably/register, start() called", f"{(r['t_start_called'] - r['t_imported']) * 1000:.0f} ms", ""],
            ["  -> start() returned", f"{(r['t_started'] - r['t_start_called']) * 1000:.0f} ms", ""],
            ["process start -> run completed", f"{proc_to_done * 1000:.0f} ms",
             f"< {TARGET_W3_S * 1000:.0f} ms {verdict(proc_to_done, TARGET_W3_S, False)}"],
            ["worker start() returned -> run completed", f"{start_to_done * 1000:.0f} ms",
             f"< {TARGET_W3_S * 1000:.0f} ms {verdict(start_to_done, TARGET_W3_S, False)}"],
            [f"  of which executing the remaining {W3_STEPS - steps_at_kill} steps (>= {W3_STEP_SLEEP_S * 1000:.0f} ms each)",
             f">= {(W3_STEPS - steps_at_kill) * W3_STEP_SLEEP_S * 1000:.0f} ms", ""],
            ["final run status / output", f"{status} / {output}", f"completed / {sum(range(W3_STEPS))}"],
            ["completed step rows (unique names)", f"{step_rows} ({step_rows - dup_rows})", f"{W3_STEPS} ({W3_STEPS})"],
            ["duplicate completed step rows", str(dup_rows), "0 " + ("PASS" if dup_rows == 0 else "FAIL")],
            ["step functions re-executed (counter file)", str(rerun), "0 " + ("PASS" if rerun == 0 else "FAIL")],
            ["  of those, steps already committed at the kill", str(rerun_committed), "0 " + ("PASS" if rerun_committed == 0 else "FAIL")],
            ["steps never executed", str(missing), "0"],
        ]  # fmt: skip
        print(table(["measure", "value", "target"], rows))
        print("  Times are CLOCK_MONOTONIC (system-wide on Linux), taken by the parent before spawning and by the child.")
        print(f"  The run cannot finish faster than its remaining steps' sleeps, so 'start -> completed' includes them.")
        summary.add("W3 process start -> run completed", f"{proc_to_done * 1000:.0f} ms", f"< {TARGET_W3_S * 1000:.0f} ms",
                    verdict(proc_to_done, TARGET_W3_S, False))  # fmt: skip
        summary.add("W3 worker start() -> run completed", f"{start_to_done * 1000:.0f} ms", f"< {TARGET_W3_S * 1000:.0f} ms",
                    verdict(start_to_done, TARGET_W3_S, False))  # fmt: skip
        summary.add("W3 steps re-run (dup rows / re-executed fns)", f"{dup_rows} / {rerun}", "0 / 0",
                    "PASS" if dup_rows == 0 and rerun == 0 else "FAIL")
        summary.add("W3 final run status", status, "completed", "PASS" if status == "completed" else "FAIL")
    finally:
        if victim is not None and victim.poll() is None:
            victim.kill()
            victim.wait(10)
        shutil.rmtree(d, ignore_errors=True)


# ==================================================================================================
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1000, help="W1 runs for durably-reflex (default 1000)")
    p.add_argument("--steps", type=int, default=10, help="W1 steps per run (default 10)")
    p.add_argument("--only", default="W1,W2,W3", help="comma-separated workloads (default W1,W2,W3)")
    p.add_argument("--dbos-runs", type=int, default=200, help="W1 runs for DBOS (default 200; it is slow here)")
    p.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    # hidden: child processes
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--counter", help=argparse.SUPPRESS)
    p.add_argument("--conc", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="queue", help=argparse.SUPPRESS)
    p.add_argument("--journal", default="wal", help=argparse.SUPPRESS)
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
    unknown = only - {"W1", "W2", "W3"}
    if unknown:
        print(f"unknown workload(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if not opts.no_dbos:
        try:
            import dbos  # noqa: F401
        except Exception as error:  # pragma: no cover - environment dependent
            print(f"DBOS comparison skipped: cannot import dbos ({error})")
            opts.no_dbos = True
    print("durably-reflex engine benchmark")
    print(f"  {machine_line()}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "durably_reflex"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"  load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes share these CPUs)")
    print(f"  repo HEAD {head or '?'}{' + uncommitted changes in durably_reflex/' if dirty.strip() else ''}")
    started = time.monotonic()
    summary = Summary()
    try:
        if "W1" in only:
            bench_w1(opts, summary)
        if "W2" in only:
            bench_w2(opts, summary)
        if "W3" in only:
            bench_w3(opts, summary)
    finally:
        for proc in list(_live_children):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    print("\n=== Summary ===")
    print(table(["metric", "value", "target", "status"], summary.rows))
    print(f"\n(total bench time {time.monotonic() - started:.0f} s; load average at end: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
