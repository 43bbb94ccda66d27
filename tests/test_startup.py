"""What a fresh process loads: `import durably_reflex` no SQLAlchemy, no cron parser; a worker that
claims, runs and settles on a database already current, no SQLAlchemy either (it comes on the
first listing, count or action). Each test runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import asyncio, json, sys
from durably_reflex import create_durably, define_job

async def job(step, _input):
    return await step.run("one", lambda: 1)

async def main():
    durably = create_durably(sys.argv[1]).register(job=define_job(name="job", run=job))
    await durably.start()
    result = await durably.trigger_and_wait("job", None, timeout=30)
    loaded = {name: name in sys.modules for name in ("sqlalchemy", "sqlalchemy.orm", "sqlmodel")}
    await durably.get_runs()  # a cold path
    loaded["sqlalchemy after a listing"] = "sqlalchemy" in sys.modules
    await durably.close()
    print(json.dumps({"output": result.output, **loaded}))

asyncio.run(main())
"""


def run_fresh(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_package_loads_neither_sqlalchemy_nor_the_cron_parser():
    loaded = json.loads(
        run_fresh(
            "import json, sys, durably_reflex; "
            "print(json.dumps({name: name in sys.modules for name in ('sqlalchemy', 'sqlmodel', 'croniter', 'httpx')}))"
        )
    )

    assert loaded == {"sqlalchemy": False, "sqlmodel": False, "croniter": False, "httpx": False}


@pytest.mark.parametrize("migrated", [False, True], ids=["new database", "current database"])
def test_a_worker_runs_jobs_without_sqlalchemy_once_the_schema_is_current(tmp_path, migrated):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    if migrated:
        run_fresh("import asyncio, sys; from durably_reflex import create_durably; "
                  "asyncio.run(create_durably(sys.argv[1]).migrate())", url)  # fmt: skip

    loaded = json.loads(run_fresh(WORKER, url))

    assert loaded["output"] == 1
    assert loaded["sqlalchemy"] is not migrated  # a new database is made with SQLAlchemy's DDL
    assert not loaded["sqlalchemy.orm"] and not loaded["sqlmodel"]
    assert loaded["sqlalchemy after a listing"]
