"""durably-reflex as a library people install: the wheel built from this checkout, installed with
its `reflex` and `server` extras into a fresh virtualenv outside the checkout (tests/installed_venv.py),
imports, runs the README's Quick start as written, serves a user's jobs module with its command, and
runs the README's jobs module in a worker process beside another process that triggers.

Every command runs in a temporary folder with an environment that cannot reach the checkout, so
what passes here is what a user gets from `pip install`. The README's Reflex app, started from the
same venv and driven in Chromium, is tests/browser/test_installed_app.py.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.reflex_server import HOST, free_port
from tests.installed_venv import (
    REPO_ROOT,
    InstalledVenv,
    installed_venv,
    quick_start_script,
    readme_app_files,
    write_files,
)

pytestmark = pytest.mark.install

JOBS_MODULE = """
from pydantic import BaseModel

from durably_reflex import create_durably, define_job


class DoubleInput(BaseModel):
    n: int


class DoubleOutput(BaseModel):
    doubled: int


@define_job(name="double", input=DoubleInput, output=DoubleOutput)
async def double(step, input: DoubleInput) -> DoubleOutput:
    doubled = await step.run("double", lambda: input.n * 2)
    return DoubleOutput(doubled=doubled)


durably = create_durably("sqlite:///jobs.db").register(double=double)
"""
# Triggers a run of the README's job from this process (no worker here) and waits for a worker
# elsewhere to complete it, on the same database.
TRIGGER_AND_WATCH = """
import asyncio

from myapp.jobs import durably


async def main() -> None:
    await durably.migrate()
    run = await durably.jobs.import_csv.trigger({"rows": [{"n": 1}, {"n": 2}]})
    for _ in range(600):
        run = await durably.get_run(run.id)
        if run.status not in ("pending", "running"):
            break
        await asyncio.sleep(0.1)
    print(run.status, run.output)
    await durably.close()


asyncio.run(main())
"""
SERVE_TIMEOUT = 60.0  # from start to a completed run; ~2 s here


@pytest.fixture(scope="module")
def venv(request: pytest.FixtureRequest) -> InstalledVenv:
    return installed_venv(request.config)


def test_the_installed_package_is_imported_from_the_venv_not_the_checkout(venv: InstalledVenv) -> None:
    result = venv.run(["python", "-c", "import durably_reflex; print(durably_reflex.__file__)"], venv.workdir("import"))
    assert result.returncode == 0, result.stderr
    location = Path(result.stdout.strip())
    assert venv.venv in location.parents and REPO_ROOT not in location.parents


def test_the_core_imports_without_loading_reflex(venv: InstalledVenv) -> None:
    code = (
        "import durably_reflex, sys; durably_reflex.create_durably; assert 'reflex' not in sys.modules, 'reflex loaded'"
    )
    result = venv.run(["python", "-c", code], venv.workdir("core"))
    assert result.returncode == 0, result.stderr


def test_the_console_script_prints_its_help(venv: InstalledVenv) -> None:
    result = venv.run([venv.bin("durably-reflex"), "--help"], venv.workdir("help"))
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "worker" in result.stdout


def test_the_readme_quick_start_runs_as_written(venv: InstalledVenv) -> None:
    folder = venv.workdir("quick-start")
    (folder / "quick_start.py").write_text(quick_start_script())
    result = venv.run(["python", "quick_start.py"], folder, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"  # the output's count of imported rows
    assert (folder / "durably.db").exists()


def test_serve_runs_a_job_of_the_users_module_and_exits_0_on_sigterm(venv: InstalledVenv) -> None:
    folder = venv.workdir("serve")
    (folder / "jobs.py").write_text(JOBS_MODULE)
    port = free_port()
    api = f"http://{HOST}:{port}/api/durably"
    with command([venv.bin("durably-reflex"), "serve", "jobs:durably", "--port", str(port)], folder, venv) as server:
        deadline = time.monotonic() + SERVE_TIMEOUT
        jobs = _poll(lambda: _get(f"{api}/jobs"), deadline, server)
        assert [job["name"] for job in jobs] == ["double"]
        run_id = _post(f"{api}/trigger", {"jobName": "double", "input": {"n": 21}})["runId"]
        run = _poll(lambda: _completed(_get(f"{api}/run?runId={run_id}")), deadline, server)
        assert run["output"] == {"doubled": 42}
        code, output = stop(server)
        assert code == 0, output


def test_a_worker_process_runs_what_another_process_triggers_with_the_readme_jobs_module(venv: InstalledVenv) -> None:
    folder = venv.workdir("worker")
    write_files(folder, {"myapp/jobs.py": readme_app_files()["myapp/jobs.py"]})
    (folder / "trigger_and_watch.py").write_text(TRIGGER_AND_WATCH)
    with command([venv.bin("durably-reflex"), "worker", "myapp.jobs:durably"], folder, venv) as worker:
        result = venv.run(["python", "trigger_and_watch.py"], folder, timeout=90)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "completed {'count': 2}"
        code, output = stop(worker)
        assert code == 0, output


# -- helpers ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def command(args: list[str | Path], folder: Path, venv: InstalledVenv) -> Iterator[subprocess.Popen[str]]:
    """The venv's command running in `folder`, its output collected; killed if still alive after."""
    process = subprocess.Popen(
        args,
        cwd=folder,
        env=venv.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, as a service manager stops it: its exit code and its whole output."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return process.returncode, output


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _completed(run: dict[str, Any]) -> dict[str, Any] | None:
    assert run["status"] in ("pending", "running", "completed"), run
    return run if run["status"] == "completed" else None


def _poll(check: Any, deadline: float, server: subprocess.Popen[str]) -> Any:
    """`check()`'s first truthy value (a refused connection counts as not yet), until `deadline`;
    fails with the server's output if it exits or the deadline passes."""
    while True:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{server.communicate()[0]}")
        try:
            value = check()
        except urllib.error.URLError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"no answer within {SERVE_TIMEOUT:.0f}s:\n{server.communicate()[0]}")
        time.sleep(0.2)
