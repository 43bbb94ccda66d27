"""Start-up: what a fresh process pays before its worker runs its first step.

    .venv/bin/python bench/startup.py [--processes 15] [--before REV] [--backends sqlite,postgres]

Each measurement is a fresh Python process (this script with `--child`) that times, in itself:
  import       `import durably_reflex`
  first claim  `create_durably(url)` + `register` + `start()` until the worker has claimed the run
               waiting in the database and its first step runs (the engine opens the database,
               checks the schema is current, claims)
and, from outside, the time from spawning it to that first step (the interpreter's own start-up
included) and its CPU time.
The database (a SQLite file; with `--backends postgres`, also a throwaway PostgreSQL server) is
made and migrated beforehand with one pending run, as a worker process that starts on a backlog
finds it. `--before REV` (a commit, as `git archive`, or a folder holding durably_reflex/) measures
that code too, interleaved with this checkout process by process; each configuration's figures are
medians over `--processes` processes, with the cores the machine kept busy meanwhile.
Each code's modules are compiled to bytecode first (`compileall`), as pip does when it installs a
package and Python does on a first import: where PYTHONDONTWRITEBYTECODE is set (the machine the
README's figures come from sets it), every process would otherwise compile durably_reflex from
source, about 70 ms there.

Only local files and 127.0.0.1 are used; every child is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_TAG = "@@RESULT "
TARGET_IMPORT_MS = 150.0
TARGET_FIRST_CLAIM_MS = 250.0


def child(url: str) -> None:
    """A fresh process: time the import, then the engine up to its first step (durably_reflex is
    imported from the folder on PYTHONPATH, which the parent sets)."""
    started = time.perf_counter()
    import durably_reflex

    imported = time.perf_counter()
    import asyncio
    import threading

    first_step = threading.Event()
    reached: list[float] = []

    def mark() -> int:
        reached.append(time.time())
        first_step.set()
        return 1

    async def body(step: Any, _input: Any) -> int:
        return int(await step.run("first", mark))

    async def main() -> float:
        begun = time.perf_counter()
        durably = durably_reflex.create_durably(url, polling_interval=1.0)
        durably.register(first=durably_reflex.define_job(name="first", run=body))
        await durably.start()
        await asyncio.to_thread(first_step.wait, 60)
        claimed = time.perf_counter()
        await durably.close(timeout=5)
        return claimed - begun

    first_claim = asyncio.run(main())
    print(RESULT_TAG + json.dumps({
        "import_ms": (imported - started) * 1000, "first_claim_ms": first_claim * 1000, "first_step_at": reached[0],
        "modules": len(sys.modules), "sqlalchemy_loaded": "sqlalchemy" in sys.modules,
        "sqlalchemy_orm_loaded": "sqlalchemy.orm" in sys.modules, "sqlmodel_loaded": "sqlmodel" in sys.modules,
    }), flush=True)  # fmt: skip


PREPARE = """
import asyncio, sys
from durably_reflex import create_durably, define_job

async def noop(step, _input):
    return None

async def main():
    durably = create_durably(sys.argv[1]).register(first=define_job(name="first", run=noop))
    await durably.trigger("first", None)
    await durably.close()

asyncio.run(main())
"""


def compile_bytecode(code: str) -> None:
    """durably_reflex's bytecode in its __pycache__, as an installed package has it."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(code) / "durably_reflex")], check=True, timeout=120
    )


def prepare(url: str, code: str) -> None:
    """One pending run of the job `first` in the (migrated) database, through `code`'s engine."""
    subprocess.run(
        [sys.executable, "-c", PREPARE, url], env={**os.environ, "PYTHONPATH": code}, check=True, timeout=120
    )


def measure(url: str, code: str) -> dict[str, Any]:
    """One fresh process: its own timings, its CPU time, and process spawn -> first step."""
    before = os.times()
    spawned = time.time()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", url],
                          env={**os.environ, "PYTHONPATH": code}, capture_output=True, text=True, timeout=120)  # fmt: skip
    after = os.times()
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result: dict[str, Any] = json.loads(line[len(RESULT_TAG) :])
            result["total_ms"] = (result["first_step_at"] - spawned) * 1000
            result["child_cpu_ms"] = (after.children_user + after.children_system
                                      - before.children_user - before.children_system) * 1000  # fmt: skip
            return result
    return {"error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}


class BusyCores:
    """Cores' worth of CPU the whole machine used between two calls (from /proc/stat)."""

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[float, float]:
        with open("/proc/stat") as stat:
            fields = [float(value) for value in stat.readline().split()[1:]]
        return sum(fields) - fields[3] - fields[4], time.monotonic()

    def since_last(self) -> float:
        (busy, now), (before, then) = self._read(), self._last
        self._last = (busy, now)
        return (busy - before) / os.sysconf("SC_CLK_TCK") / max(1e-9, now - then)


def run(backends: list[str], processes: int, codes: list[tuple[str, str]], pg_url: str | None) -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    for backend in backends:
        results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
        folders = {name: tempfile.mkdtemp(prefix="durably-startup-") for name, _ in codes}
        busy: list[float] = []
        try:
            urls = {name: _database(backend, index, folders[name], pg_url) for index, (name, _) in enumerate(codes)}
            for name, code in codes:
                compile_bytecode(code)
                prepare(urls[name], code)  # migrates: the measured processes find the schema current
            cores = BusyCores()
            for index in range(processes):
                for name, code in codes:
                    result = measure(urls[name], code)
                    prepare(urls[name], code)  # the next process's pending run
                    if "error" in result:
                        print(f"  {backend} {name}: {result['error']}")
                        continue
                    results[name].append(result)
                busy.append(cores.since_last())
                print(f"  {backend}: round {index + 1} of {processes}", end="\r", flush=True)
            print()
        finally:
            for folder in folders.values():
                shutil.rmtree(folder, ignore_errors=True)
        print(f"\n=== start-up on {backend}: medians of {processes} fresh processes per code, interleaved "
              f"(the machine's busy cores meanwhile, this bench included: median {statistics.median(busy or [0]):.1f} "
              f"of {os.cpu_count()}) ===")  # fmt: skip
        header = ["code", "import ms", "create + first claim ms", "spawn -> first step ms", "process CPU ms",
                  "modules", "SQLAlchemy", "ORM", "SQLModel"]  # fmt: skip
        rows = []
        for name, _code in codes:
            done = results[name]
            if not done:
                rows.append([name, "ERROR", *[""] * (len(header) - 2)])
                continue

            def median(key: str, done: list[dict[str, Any]] = done) -> float:
                return statistics.median(result[key] for result in done)

            def loaded(key: str, done: list[dict[str, Any]] = done) -> str:
                return f"{sum(result[key] for result in done)}/{len(done)}"

            rows.append([
                name, f"{median('import_ms'):.0f}", f"{median('first_claim_ms'):.0f}", f"{median('total_ms'):.0f}",
                f"{median('child_cpu_ms'):.0f}", f"{median('modules'):.0f}", loaded("sqlalchemy_loaded"),
                loaded("sqlalchemy_orm_loaded"), loaded("sqlmodel_loaded"),
            ])  # fmt: skip
        widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                            enumerate(zip(row, widths, strict=True))))  # fmt: skip
        print(f"targets (issue 15): import <= {TARGET_IMPORT_MS:.0f} ms, create + first claim <= "
              f"{TARGET_FIRST_CLAIM_MS:.0f} ms; 'modules': sys.modules at the end; the last columns: processes in "
              "which SQLAlchemy, its ORM, SQLModel were imported")  # fmt: skip


def _database(backend: str, index: int, folder: str, pg_url: str | None) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder}/startup.db"
    assert pg_url is not None
    import psycopg

    database = f"startup_{index}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    return f"{pg_url.rsplit('/', 1)[0]}/{database}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=15, help="fresh processes per configuration (default 15)")
    parser.add_argument("--before", metavar="REV", help="also measure this commit (git archive) or folder")
    parser.add_argument("--backends", default="sqlite", help="sqlite, postgres, or both (default sqlite)")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cli_server import code_for

    codes = ([(f"before ({args.before})", code_for(args.before))] if args.before else []) + [
        ("this checkout", str(ROOT))
    ]
    backends = [value.strip() for value in args.backends.split(",") if value.strip()]
    if "postgres" not in backends:
        run(backends, args.processes, codes, None)
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.pg_cluster import PgCluster

    cluster = PgCluster().start()
    try:
        run([("postgresql" if b == "postgres" else b) for b in backends], args.processes, codes, cluster.url())
    finally:
        cluster.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
