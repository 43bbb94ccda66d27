"""What a run costs the storage apart from its steps: triggering it (`batch_trigger`, 100 at a time)
and settling it together with claiming the next (`finish_run(..., claim_next=...)`, the worker's
path), in CPU microseconds of the process per run: the figures the schema's indexes move.

    .venv/bin/python bench/run_cost.py [--runs 3000] [--rounds 5] [--before REV] [--after REV] [--postgres]

Each round measures each code in a fresh process on a fresh database (SQLite file; with
--postgres, a database on a throwaway server), codes interleaved; the figures are medians of the
rounds. CPU time, not elapsed: steadier on a shared machine (compare within one run all the same).
On PostgreSQL the process's CPU leaves out the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_TAG = "@@RESULT "


async def finished(value: Any) -> Any:
    """The value of a worker's storage verb: awaited, or as returned by code from before they were
    awaited (a --before commit)."""
    return (await value) if inspect.isawaitable(value) else value


def child(url: str, runs: int) -> dict[str, float]:
    """In a fresh process importing the code measured (DURABLY_BENCH_CODE first on sys.path)."""
    sys.path.insert(0, os.environ["DURABLY_BENCH_CODE"])
    from durably_reflex import create_durably, define_job
    from durably_reflex._storage.base import ClaimRequest

    async def main() -> dict[str, float]:
        durably = create_durably(url)

        async def body(step: Any, _input: Any) -> int:
            return 1

        durably.register(w=define_job(name="w", run=body))
        await durably.migrate()
        storage = durably.storage
        started = time.process_time()
        for _ in range(0, runs, 100):
            await durably.jobs.w.batch_trigger([None] * 100)
        triggered = time.process_time()
        now = int(time.time() * 1000) + 1000
        request = ClaimRequest("bench", ("w",))
        claims = await finished(storage.claim("bench", ("w",), 1, now))
        settling = time.process_time()
        settled = 0
        while claims:
            claim = claims[0]
            outcome = await finished(
                storage.finish_run(claim.run.id, claim.attempt, "completed", now, output_json="1", claim_next=request)
            )
            settled += 1
            claims = [outcome.next] if outcome.next is not None else []
        done = time.process_time()
        await durably.close()
        assert settled == runs, f"settled {settled} of {runs}"
        return {"trigger_us": (triggered - started) / runs * 1e6, "settle_us": (done - settling) / runs * 1e6}

    return asyncio.run(main())


def measure(code: str, url: str, runs: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", url, "--runs", str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "DURABLY_BENCH_CODE": code},
                          cwd=ROOT, timeout=600, check=False)  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])  # type: ignore[no-any-return]
    return {"error": done.stderr[-2000:]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also measure this commit (git archive) or folder")
    parser.add_argument("--after", metavar="REV", help="measure this commit or folder instead of the checkout")
    parser.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL server, not SQLite")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_TAG + json.dumps(child(args.child, args.runs)), flush=True)
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    from cli_server import code_for

    after = (f"after {args.after}", code_for(args.after)) if args.after else ("this checkout", str(ROOT))
    codes = ([(f"before {args.before}", code_for(args.before))] if args.before else []) + [after]
    cluster = None
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.pg_cluster import PgCluster

        cluster = PgCluster().start()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
    try:
        with tempfile.TemporaryDirectory(prefix="durably-run-cost-") as folder:
            for round_number in range(args.rounds):
                for position, (name, code) in enumerate(codes):
                    if cluster is not None:
                        database = f"run_cost_{round_number}_{position}"
                        url = cluster.create_database(database)
                    else:
                        url = f"sqlite:///{folder}/{round_number}_{position}.db"
                    outcome = measure(code, url, args.runs)
                    if "error" in outcome:
                        print(f"{name}: ERROR\n{outcome['error']}")
                        return 1
                    results[name].append(outcome)
    finally:
        if cluster is not None:
            cluster.destroy()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\n=== A run's storage cost on {backend}: {args.runs:,} runs, medians of {args.rounds} rounds, process CPU ==="
    )
    medians = {}
    for name, rounds in results.items():
        trigger = statistics.median(r["trigger_us"] for r in rounds)
        settle = statistics.median(r["settle_us"] for r in rounds)
        medians[name] = (trigger, settle)
        listed = ", ".join(f"{r['settle_us']:.0f}" for r in rounds)
        print(f"  {name}: trigger {trigger:.0f} us/run; settle + claim the next {settle:.0f} us/run (rounds: {listed})")
    if args.before:
        (trigger_0, settle_0), (trigger_1, settle_1) = medians.values()
        print(f"  after / before: trigger {trigger_1 / trigger_0:.2f}x, settle + claim {settle_1 / settle_0:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
