"""W1 on PostgreSQL: durably-reflex with 1, 2 and 4 worker processes, beside DBOS Transact on the
same server.

    .venv/bin/python bench/postgres.py [--url postgresql://...] [--runs 1000] [--steps 10] [--conc 4]
        [--before REV] [--repeat N] [--no-dbos] [--processes 1,2,4] [--commits durable,off] [--no-sse]

Without --url a throwaway server is started (tests/pg_cluster.py) with PostgreSQL's default, durable
settings (fsync on, synchronous_commit on); durably-reflex is measured with those and again with
synchronous_commit=off for its connections (the counterpart of SQLite's synchronous=NORMAL, its
SQLite default). Each configuration gets a fresh database. Both systems are timed over the same
window: the processes are started, then released together (process start-up excluded); when
released, each process starts its worker and then triggers (durably-reflex, `batch_trigger` 100 at
a time) or enqueues (DBOS: a Queue, worker_concurrency = --conc per process) its share of the runs,
so the rate is over release -> last run completed (durably-reflex: the last `completed_at` in the
database; DBOS: the last result), triggering included, in 1, 2 and 4 processes.

DBOS comes with the `bench` extra (`pip install -e '.[bench]'`); without it the comparison is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# The durably_reflex measured: this checkout, or the `git archive` of --rev (passed on to the children).
CODE = os.environ.get("DURABLY_BENCH_CODE", str(ROOT))
for folder in dict.fromkeys((str(ROOT), CODE)):  # CODE first
    if folder not in sys.path:
        sys.path.insert(0, folder)

RESULT_TAG = "@@RESULT "
TICKS = 50  # steps per run of bench/pg_app.py
# PostgreSQL's counterpart of SQLite's synchronous=NORMAL (durably-reflex's SQLite default): a commit
# does not wait for its WAL flush; a server crash may lose the last moments, never corrupts.
SYNC_OFF = "?options=-csynchronous_commit%3Doff"
DBOS_QUEUE_POLL_S = 0.01


def trivial_step(i: int) -> int:
    return i + 1


# -- children ----------------------------------------------------------------------------------------
def child_durably(args: argparse.Namespace) -> None:
    """A worker process: opens the engine, waits for the go file, works until nothing is left."""
    from durably_reflex import create_durably, define_job

    steps = args.steps

    async def body(step: Any, _input: Any) -> int:
        total = 0
        for i in range(steps):
            total += await step.run(f"s{i}", trivial_step, i)
        return total

    async def main() -> dict[str, Any]:
        durably = create_durably(args.url, polling_interval=0.05, max_concurrent_runs=args.conc)
        durably.register(w1=define_job(name="w1", run=body))
        await durably.migrate()
        Path(args.ready).touch()
        while not os.path.exists(args.go):
            await asyncio.sleep(0.005)
        cpu_at_go = time.process_time()
        await durably.start()
        for start in range(0, args.runs, 100):  # this process's share, as DBOS's processes enqueue theirs
            await durably.jobs.w1.batch_trigger([None] * min(100, args.runs - start))
        deadline = time.monotonic() + args.timeout
        with psycopg.connect(args.url, autocommit=True) as db:  # until every process's runs are done
            while time.monotonic() < deadline:
                if (
                    db.execute("SELECT count(*) FROM durably_runs WHERE status = 'completed'").fetchone()[0]
                    >= args.total
                ):
                    break
                await asyncio.sleep(0.1)  # the rate comes from completed_at in the database, not from this
        cpu = time.process_time() - cpu_at_go
        await durably.close(timeout=5)
        return {"pid": os.getpid(), "cpu_s": cpu}

    print(RESULT_TAG + json.dumps(asyncio.run(main())), flush=True)


def child_dbos(args: argparse.Namespace) -> None:
    """One DBOS process: launches on the shared system database, waits for the go file, enqueues
    its share of the runs on the shared queue (which every process's queue worker drains), and
    waits for their results."""
    from dbos import DBOS

    DBOS(config={"name": "durably-bench-pg", "system_database_url": args.url, "log_level": "WARNING"})  # type: ignore[arg-type]
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
    queue = DBOS.register_queue("w1q", worker_concurrency=args.conc, polling_interval_sec=DBOS_QUEUE_POLL_S)
    Path(args.ready).touch()
    while not os.path.exists(args.go):
        time.sleep(0.005)
    t0 = time.time()
    handles = [queue.enqueue(w1_workflow, steps) for _ in range(args.runs)]
    expected = sum(i + 1 for i in range(steps))
    done = sum(1 for handle in handles if handle.get_result() == expected)
    t1 = time.time()
    # This process's queue worker may be running other processes' workflows: leaving now would
    # strand them, so stay until the whole queue is drained.
    with psycopg.connect(args.url) as db:
        while db.execute(
            "SELECT count(*) FROM dbos.workflow_status WHERE status IN ('PENDING', 'ENQUEUED')"
        ).fetchone()[0]:
            time.sleep(0.05)
    print(RESULT_TAG + json.dumps({"completed": done, "t0": t0, "t1": t1}), flush=True)
    os._exit(0)  # DBOS.destroy() can hang when other processes share the queue; nothing is left to do


# -- parent ------------------------------------------------------------------------------------------
def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": "timed out", "stderr": err[-2000:]}
    for line in out.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])  # type: ignore[no-any-return]
    return {"error": f"exit {proc.returncode}", "stderr": err[-2000:]}


def _spawn(kind: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip


def _fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def measure_durably(admin_url: str, processes: int, runs: int, steps: int, conc: int, options: str = "",
                    code: str = CODE) -> dict[str, Any]:  # fmt: skip
    url = _fresh_database(admin_url, f"bench_durably_{processes}") + options
    share = [runs // processes + (1 if i < runs % processes else 0) for i in range(processes)]
    with tempfile.TemporaryDirectory(prefix="durably-bench-pg-") as tmp:
        workers = [
            _spawn("durably", "--url", url, "--runs", str(share[i]), "--total", str(runs), "--steps", str(steps), "--conc", str(conc),
                   "--go", os.path.join(tmp, "go"), "--ready", os.path.join(tmp, f"ready{i}"), "--timeout", "300",
                   env={"DURABLY_BENCH_CODE": code})
            for i in range(processes)
        ]  # fmt: skip
        server = ServerCpu(admin_url)
        outcome = _release(workers, tmp, 360, at_release=server.start)
    if isinstance(outcome, dict):
        return outcome
    released, results = outcome
    errors = [r for r in results if "error" in r]
    if errors:
        return errors[0]
    server_s = server.seconds()  # the workers have closed their connections: their backends are done
    with psycopg.connect(url) as db:
        done_runs, last = db.execute(
            "SELECT count(*), max(completed_at) FROM durably_runs WHERE status = 'completed'"
        ).fetchone()
        done_steps = db.execute("SELECT count(*) FROM durably_steps WHERE status = 'completed'").fetchone()[0]
    seconds = last / 1000 - released
    return {"runs": done_runs, "steps": done_steps, "seconds": seconds, "steps_s": done_steps / seconds,
            "worker_us": sum(r["cpu_s"] for r in results) / done_steps * 1e6,
            "server_us": None if server_s is None else server_s / done_steps * 1e6}  # fmt: skip


class ServerCpu:
    """The CPU time a local server spent (every process of it: backends, WAL writer, checkpointer,
    autovacuum) from `start()` to `seconds()`, read from /proc: the postmaster's children that
    exited count through its own children's times. None where the server's files are not readable
    (another machine, another user)."""

    def __init__(self, admin_url: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as db:
            data = db.execute("SHOW data_directory").fetchone()[0]
        try:
            self._postmaster: int | None = int(Path(data, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError):
            self._postmaster = None
        self._start = 0.0

    def start(self) -> None:
        self._start = self._total() or 0.0

    def seconds(self) -> float | None:
        time.sleep(0.2)  # for the backends of the workers that just left to exit
        total = self._total()
        return None if total is None else total - self._start

    def _total(self) -> float | None:
        if self._postmaster is None:
            return None
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            if int(entry) == self._postmaster:
                ticks += sum(int(field) for field in fields[11:15])  # its own and its exited children's
            elif int(fields[1]) == self._postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


def _release(workers: list[subprocess.Popen[str]], tmp: str, timeout: float,
             at_release: Callable[[], None] = lambda: None) -> tuple[float, list[dict[str, Any]]] | dict[str, Any]:  # fmt: skip
    """Wait until every child is ready, release them together (`at_release` just before), collect
    their results: (release time, results), or an error."""
    deadline = time.monotonic() + 120
    while not all(os.path.exists(os.path.join(tmp, f"ready{i}")) for i in range(len(workers))):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            return {"error": "workers did not start", **_result(workers[0], 5)}
        time.sleep(0.01)
    at_release()
    released = time.time()
    Path(tmp, "go").touch()
    return released, [_result(worker, timeout) for worker in workers]


def measure_dbos(admin_url: str, processes: int, runs: int, steps: int, conc: int) -> dict[str, Any]:
    url = _fresh_database(admin_url, f"bench_dbos_{processes}")
    with tempfile.TemporaryDirectory(prefix="durably-bench-dbos-") as tmp:
        share = [runs // processes + (1 if i < runs % processes else 0) for i in range(processes)]
        workers = [
            _spawn("dbos", "--url", url, "--runs", str(share[i]), "--steps", str(steps), "--conc", str(conc),
                   "--go", os.path.join(tmp, "go"), "--ready", os.path.join(tmp, f"ready{i}"), env={"DBOS__VMID": f"bench-{i}"})
            for i in range(processes)
        ]  # fmt: skip
        outcome = _release(workers, tmp, 600)
    if isinstance(outcome, dict):
        return outcome
    _, results = outcome
    errors = [r for r in results if "error" in r]
    if errors:
        return errors[0]
    completed = sum(r["completed"] for r in results)
    seconds = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    return {"completed": completed, "seconds": seconds, "steps_s": completed * steps / seconds}


def measure_stream_latency(admin_url: str, runs: int = 6) -> dict[str, Any]:
    """API process A (no worker) streams `/subscribe` of runs that worker process B executes: how
    long after B makes a `step:complete` event does a client of A receive it (ms, same machine clock)."""
    import socket

    import httpx
    from httpx_sse import connect_sse

    url = _fresh_database(admin_url, "bench_sse")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DURABLY_BENCH_URL": url, "PYTHONPATH": os.pathsep.join(dict.fromkeys((CODE, str(ROOT))))}
    cli = [sys.executable, "-m", "durably_reflex"]
    api = subprocess.Popen([*cli, "serve", "bench.pg_app:durably", "--no-worker", "--port", str(port), "--log-level", "warning"],
                           cwd=ROOT, env=env, stderr=subprocess.DEVNULL)  # fmt: skip
    worker = subprocess.Popen([*cli, "worker", "bench.pg_app:durably", "--log-level", "warning"], cwd=ROOT, env=env,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/durably"
    delays: list[float] = []
    try:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get(f"{base}/runs")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        return {"error": "the API process did not start"}
                    time.sleep(0.1)
            for _ in range(runs):
                run_id = client.post(f"{base}/trigger", json={"jobName": "ticker", "input": {}}).json()["runId"]
                with connect_sse(client, "GET", f"{base}/subscribe", params={"runId": run_id}) as source:
                    for sse in source.iter_sse():
                        event = json.loads(sse.data)
                        if event.get("type") == "step:complete":  # run:progress is throttled by the server
                            made = datetime.fromisoformat(event["timestamp"]).timestamp()
                            delays.append((time.time() - made) * 1000)
                        if event.get("type") == "run:complete":
                            break
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(30)
    ordered = sorted(delays)
    return {"samples": len(delays), "expected": runs * TICKS, "p50": ordered[len(ordered) // 2],
            "p95": ordered[int(len(ordered) * 0.95)], "max": ordered[-1]}  # fmt: skip


def bench(admin_url: str, runs: int, steps: int, conc: int, dbos_runs: int, no_dbos: bool = False,
          before: tuple[str, str] | None = None, repeat: int = 1, process_counts: tuple[int, ...] = (1, 2, 4),
          commits: tuple[str, ...] = ("durable", "off"), sse: bool = True) -> dict[str, Any]:  # fmt: skip
    """Print the table; return the figures. With `before` (label, code folder), that code is measured
    too, each configuration's processes of both codes one after the other, round after round
    (`repeat`), and each figure is the median of its rounds. `process_counts` and `commits` choose
    the configurations (to measure one of them more often in the same time)."""
    print(f"\n=== W1 on PostgreSQL: {runs:,} runs x {steps} trivial steps; durably-reflex worker processes with "
          f"max_concurrent_runs={conc} each ===")  # fmt: skip
    figures: dict[str, Any] = {}
    codes = ([before] if before else []) + [("this code" if before else "", CODE)]
    modes = {"durable": ("", ""), "off": (", synchronous_commit=off", SYNC_OFF)}
    for label, options in (modes[mode] for mode in commits):
        for processes in process_counts:
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
            for _ in range(repeat):
                for name, code in codes:
                    rounds[name].append(measure_durably(admin_url, processes, runs, steps, conc, options, code))
            for name, _ in codes:
                done = [r for r in rounds[name] if "error" not in r]
                who = f" [{name}]" if name else ""
                if not done:
                    r = rounds[name][0]
                    print(
                        f"  durably-reflex{who}, {processes} process(es){label}: ERROR {r['error']}\n{r.get('stderr', '')}"
                    )
                    figures[f"durably{who} x{processes}{label}"] = r
                    continue
                steps_s = statistics.median(r["steps_s"] for r in done)
                worker_us = statistics.median(r["worker_us"] for r in done)
                server = [r["server_us"] for r in done if r["server_us"] is not None]
                server_us = statistics.median(server) if server else None
                figures[f"durably{who} x{processes}{label}"] = {
                    **done[0],
                    "steps_s": steps_s,
                    "worker_us": worker_us,
                    "server_us": server_us,
                }
                listed = ", ".join(format(r["steps_s"], ",.0f") for r in done)
                each = f" (rounds: {listed})" if len(done) > 1 else ""
                cpu = f"; CPU per step: workers {worker_us:.0f} us" + (
                    "" if server_us is None else f", server {server_us:.0f} us"
                )
                print(f"  durably-reflex{who}, {processes} process(es){label}: {done[0]['steps']:,} steps, "
                      f"{steps_s:,.0f} steps/s{each}{cpu}")  # fmt: skip
            if before:
                after = figures.get(f"durably [this code] x{processes}{label}", {}).get("steps_s")
                earlier = figures.get(f"durably [{before[0]}] x{processes}{label}", {}).get("steps_s")
                if after and earlier:
                    print(f"    this code / {before[0]}: {after / earlier:.2f}x")
    if not no_dbos:
        for processes in process_counts:
            r = figures[f"dbos x{processes}"] = measure_dbos(admin_url, processes, dbos_runs, steps, conc)
            if "error" in r:
                print(f"  DBOS Queue, {processes} process(es): ERROR {r['error']}\n{r.get('stderr', '')}")
                continue
            print(
                f"  DBOS Queue worker_concurrency={conc}, {processes} process(es): {r['completed'] * steps:,} steps in "
                f"{r['seconds']:.2f} s = {r['steps_s']:,.0f} steps/s ({dbos_runs} runs)"
            )
            base = figures.get(f"durably{' [this code]' if before else ''} x{processes}", {}).get("steps_s")
            if base:
                print(f"    durably-reflex / DBOS at {processes} process(es), both durable: {base / r['steps_s']:.1f}x")
    if not sse:
        return figures
    r = figures["sse"] = measure_stream_latency(admin_url)
    if "error" in r:
        print(f"  cross-process stream latency: ERROR {r['error']}")
    else:
        print(
            f"  cross-process stream latency (API process A streams, worker process B executes): {r['samples']} "
            f"step:complete events of {r['expected']}: p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, max {r['max']:.1f} ms"
        )
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--url", help="a PostgreSQL server URL whose user may create databases (default: a throwaway server)"
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--conc", type=int, default=4, help="runs at a time per worker process (DBOS: worker_concurrency)"
    )
    parser.add_argument("--dbos-runs", type=int, default=200)
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument(
        "--rev", metavar="REV", help="measure this commit (git archive) or folder instead of this checkout"
    )
    parser.add_argument("--before", metavar="REV", help="also measure this commit (git archive) or folder, interleaved")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every durably-reflex configuration (medians)")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts to measure (default 1,2,4)")
    parser.add_argument("--commits", default="durable,off", help="durable (PostgreSQL's defaults) and/or off "
                        "(synchronous_commit=off); default both")  # fmt: skip
    parser.add_argument("--no-sse", action="store_true", help="skip the cross-process stream latency")
    parser.add_argument("--child", choices=("durably", "dbos"), help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    parser.add_argument("--ready", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rev:  # run again, this process and its children importing durably_reflex from there
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from cli_server import code_for

        env = {**os.environ, "DURABLY_BENCH_CODE": code_for(args.rev)}
        at = argv.index("--rev") if "--rev" in argv else None
        rest = argv[:at] + argv[at + 2 :] if at is not None else [a for a in argv if not a.startswith("--rev=")]
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *rest], env)
    if args.child == "durably":
        child_durably(args)
        return 0
    if args.child == "dbos":
        child_dbos(args)
        return 0
    if not args.no_dbos:
        try:
            import dbos  # noqa: F401
        except ImportError as error:
            print(f"DBOS comparison skipped: cannot import dbos ({error}); pip install -e '.[bench]' installs it")
            args.no_dbos = True
    print(f"code: {'this checkout' if str(ROOT) == CODE else CODE}")
    before = None
    if args.before:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from cli_server import code_for

        before = (f"before {args.before}", code_for(args.before))
    choice = {
        "process_counts": tuple(int(count) for count in args.processes.split(",")),
        "commits": tuple(args.commits.split(",")),
        "sse": not args.no_sse,
    }
    if args.url:
        bench(args.url, args.runs, args.steps, args.conc, args.dbos_runs, args.no_dbos, before, args.repeat, **choice)
        return 0
    from tests.pg_cluster import PgCluster

    cluster = PgCluster(durable=True).start()
    try:
        bench(cluster.url(), args.runs, args.steps, args.conc, args.dbos_runs, args.no_dbos, before, args.repeat,
              **choice)  # fmt: skip
    finally:
        cluster.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
