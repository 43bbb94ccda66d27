"""The command line (`python -m durably_reflex serve|worker MODULE:ATTR`) in REAL subprocesses (see
tests/cli_helpers.py). The supervisor of worker processes has tests of its own (test_supervisor.py).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from durably_reflex._switch import SHORT_SWITCH_INTERVAL
from tests.cli_helpers import (
    JOB_MODULE,
    READY_SERVE,
    READY_WORKER,
    Workspace,
    assert_clean_exit,
    free_port,
    until,
    workspace,  # noqa: F401 - the fixture
)
from tests.engine_helpers import query_db

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")


# -- serve -----------------------------------------------------------------------------------------
async def test_serve_answers_the_api_and_runs_jobs_then_stops_on_sigint(workspace: Workspace) -> None:
    port = free_port()
    server = workspace.cli("serve", "serve", "cli_jobs:durably", "--port", str(port))
    line = server.ready(READY_SERVE)
    base = f"http://127.0.0.1:{port}/api/durably"
    assert line == f"durably-reflex API on {base} (worker: 1 process, 1 slot)"

    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:
        jobs = await http.get("/jobs")
        assert jobs.status_code == 200
        assert sorted(job["name"] for job in jobs.json()) == ["long", "quick", "switch-interval"]
        runs = await http.get("/runs")
        assert runs.status_code == 200 and runs.json() == []

        triggered = await http.post("/trigger", json={"jobName": "quick", "input": {"n": 21}})
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["runId"]

        async def completed() -> Any:
            run = (await http.get("/run", params={"runId": run_id})).json()
            return run if run["status"] == "completed" else None

        run = await until(completed, 15, "the run to complete")
        # Job code runs in the worker process that serve started, never in the API's own process.
        workers = [child.pid for child in psutil.Process(server.proc.pid).children()]
        assert run["output"] == {"doubled": 42, "pid": workers[0]} and len(workers) == 1
        assert [r["id"] for r in (await http.get("/runs")).json()] == [run_id]

    assert_clean_exit(server, server.stop(signal.SIGINT))
    assert not any(psutil.pid_exists(pid) for pid in workers)


async def test_serve_in_process_worker_runs_jobs_in_the_api_process(workspace: Workspace) -> None:
    port = free_port()
    server = workspace.cli("serve", "serve", "cli_jobs:durably", "--port", str(port), "--in-process-worker")
    base = f"http://127.0.0.1:{port}/api/durably"
    assert server.ready(READY_SERVE) == f"durably-reflex API on {base} (worker: this process, 1 slot)"
    assert psutil.Process(server.proc.pid).children() == []
    async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:
        run_id = (await http.post("/trigger", json={"jobName": "quick", "input": {"n": 2}})).json()["runId"]
    result = await workspace.jobs.durably.wait_for_run(run_id, timeout=15)
    assert result.output == {"doubled": 4, "pid": server.proc.pid}
    assert_clean_exit(server, server.stop(signal.SIGTERM))


async def test_base_path_no_worker_factory_and_sigterm_ends_event_streams(workspace: Workspace) -> None:
    port = free_port()
    server = workspace.cli(
        "serve", "serve", "cli_jobs:make_durably", "--port", str(port), "--base-path", "/x", "--no-worker"
    )
    assert server.ready(READY_SERVE).endswith(f"http://127.0.0.1:{port}/x (worker: off)")

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as http:
        assert (await http.get("/x/jobs")).status_code == 200
        assert (await http.get("/x/runs")).json() == []
        assert (await http.get("/api/durably/jobs")).status_code == 404
        run_id = (await http.post("/x/trigger", json={"jobName": "quick", "input": {"n": 1}})).json()["runId"]

        # An open event stream must neither hold the shutdown up nor end in an error.
        async with http.stream("GET", "/x/subscribe", params={"runId": run_id}) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            first = await asyncio.wait_for(anext(lines), 5)
            assert first.startswith("data: ") and '"run:snapshot"' in first
            stopped_at = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)

            async def drain() -> None:
                async for _ in lines:
                    pass

            await asyncio.wait_for(drain(), 5)  # the server ends the stream properly

        code = server.wait(15)
    assert time.monotonic() - stopped_at < 5
    assert_clean_exit(server, code)
    run = await workspace.jobs.durably.get_run(run_id)
    assert run is not None and run.status == "pending"  # --no-worker: nothing executed it


async def test_serve_retain_runs_has_its_worker_processes_delete_runs_finished_longer_ago(
    workspace: Workspace,
) -> None:
    durably = workspace.jobs.durably
    await durably.migrate()
    old, recent, waiting = [run.id for run in await durably.batch_trigger("quick", [{"n": n} for n in range(3)])]
    await durably.bulk_cancel([old, recent])
    two_days, db_url = 2 * 86_400_000, f"sqlite:///{workspace.path / 'jobs.db'}"
    query_db(db_url, "UPDATE durably_runs SET completed_at = completed_at - ? WHERE id = ?", two_days, old)
    # Created long ago, finished only once the server runs it: its age counts from then.
    query_db(db_url, "UPDATE durably_runs SET created_at = created_at - ? WHERE id = ?", two_days, waiting)
    refused = workspace.cli("bad-duration", "serve", "cli_jobs:durably", "--retain-runs", "a while")

    server = workspace.cli("serve", "serve", "cli_jobs:durably", "--port", str(free_port()), "--retain-runs", "1d")
    server.ready(READY_SERVE)

    async def purged() -> bool:
        return await durably.get_run(old) is None

    await until(purged, 15, "the run finished two days ago to be deleted")
    assert_clean_exit(server, server.stop(signal.SIGTERM))
    assert {run.id for run in await durably.get_runs()} == {recent, waiting}
    assert refused.wait(30) == 2 and "--retain-runs" in refused.stderr() and 'like "30d"' in refused.stderr()


# -- worker ----------------------------------------------------------------------------------------
async def test_worker_executes_runs_triggered_elsewhere(workspace: Workspace) -> None:
    durably = workspace.jobs.durably
    await durably.migrate()
    worker = workspace.cli("worker", "worker", "cli_jobs:durably")
    assert worker.ready(READY_WORKER) == "durably-reflex worker running (1 slot); press Ctrl-C to stop"

    runs = await durably.batch_trigger("quick", [{"n": n} for n in range(3)])
    for n, run in enumerate(runs):
        result = await durably.wait_for_run(run.id, timeout=15)
        assert result.output == {"doubled": 2 * n, "pid": worker.proc.pid}
    assert not durably.is_running  # this process never executed anything

    assert_clean_exit(worker, worker.stop(signal.SIGTERM))


async def test_a_worker_process_holds_a_short_switch_interval_while_it_runs(workspace: Workspace) -> None:
    """Its runner commits steps and writes the events streams send; with synchronous steps computing on
    their threads, it must not wait Python's default 5 ms for the interpreter lock after each system call."""
    durably = workspace.jobs.durably
    await durably.migrate()
    worker = workspace.cli("worker", "worker", "cli_jobs:durably")
    worker.ready(READY_WORKER)

    run = await durably.trigger("switch-interval", {"n": 0})
    result = await durably.wait_for_run(run.id, timeout=15)

    assert result.output == {"switch_interval": SHORT_SWITCH_INTERVAL}
    assert_clean_exit(worker, worker.stop(signal.SIGTERM))


async def test_sigterm_mid_run_leaves_it_resumable_and_a_new_worker_finishes_it(workspace: Workspace) -> None:
    durably = workspace.jobs.durably
    await durably.migrate()
    first = workspace.cli("first", "worker", "cli_jobs:durably", "--stop-timeout", "0.2")
    first.ready(READY_WORKER)
    run = await durably.trigger("long", {"steps": 3, "sleep": 1.0})

    async def second_step_started() -> bool:
        return (first.proc.pid, "s1") in workspace.side_lines()

    await until(second_step_started, 15, "step s1 to start")
    # Early in s1's one-second sleep. s1 is synchronous: it cannot be interrupted, and finishes (and is
    # recorded) within the engine's grace period; the run is handed back while s2 runs, and s2, never
    # recorded, dies with the process.
    assert_clean_exit(first, first.stop(signal.SIGTERM))

    stopped = await durably.get_run(run.id)
    assert stopped is not None and stopped.status in ("pending", "completed"), stopped.status
    done_before = {step.name for step in await durably.get_steps(run.id)}
    assert "s0" in done_before

    second = workspace.cli("second", "worker", "cli_jobs:durably")
    second.ready(READY_WORKER)
    result = await durably.wait_for_run(run.id, timeout=20)
    assert result.output["total"] == 0 + 1 + 2
    assert_clean_exit(second, second.stop(signal.SIGINT))

    steps = await durably.get_steps(run.id)
    assert [(step.name, step.status) for step in steps] == [(f"s{i}", "completed") for i in range(3)]
    lines = workspace.side_lines()
    by_second = {step for pid, step in lines if pid == second.proc.pid}
    assert by_second, "the second worker ran nothing"
    assert not by_second & done_before, f"completed steps ran again: {sorted(by_second & done_before)}"
    executions = Counter(step for _, step in lines)
    assert all(executions[name] == 1 for name in done_before), executions
    assert {pid for pid, _ in lines} <= {first.proc.pid, second.proc.pid}


async def test_a_second_sigint_stops_at_once_and_hands_the_run_back(workspace: Workspace) -> None:
    durably = workspace.jobs.durably
    await durably.migrate()
    worker = workspace.cli("worker", "worker", "cli_jobs:durably")  # --stop-timeout 30 by default
    worker.ready(READY_WORKER)
    run = await durably.trigger("long", {"steps": 2, "sleep": 5.0})

    async def started() -> bool:
        return bool(workspace.side_lines())

    await until(started, 15, "the first step to start")
    worker.proc.send_signal(signal.SIGINT)
    await asyncio.sleep(0.3)
    stopped_at = time.monotonic()
    code = worker.stop(signal.SIGINT)
    assert time.monotonic() - stopped_at < 4  # not the step's 5 s, nor the 30 s stop timeout
    assert code == 0, worker.stderr()
    assert "received again" in worker.stderr()
    stopped = await durably.get_run(run.id)
    assert stopped is not None and stopped.status == "pending"


# -- bad input -------------------------------------------------------------------------------------
async def test_bad_input_is_one_line_and_exit_code_2(workspace: Workspace) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    cases = {
        "no-module": (("worker", "no_such_module:durably"), 'cannot import module "no_such_module"'),
        "no-attr": (("worker", "cli_jobs:missing"), 'has no attribute "missing"'),
        "not-durably": (("serve", "cli_jobs:not_durably", "--port", "0"), "not a Durably"),
        "malformed": (("worker", "cli_jobs"), "expected MODULE:ATTR"),
        "port-busy": (("serve", "cli_jobs:durably", "--port", str(busy_port)), "already in use"),
    }
    try:
        started = {name: workspace.cli(name, *args) for name, (args, _) in cases.items()}  # all at once
        codes = {name: process.wait(60) for name, process in started.items()}
    finally:
        busy.close()
    for name, (_, expected) in cases.items():
        err = started[name].stderr()
        assert codes[name] == 2, f"{name}: exit code {codes[name]}\n{err}"
        assert "Traceback" not in err, f"{name}:\n{err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], f"{name}:\n{err}"
        assert not started[name].stdout(), f"{name} claims to be running"


@pytest.fixture
async def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    """The current directory is a tmp dir holding the job module (imported here, in this process)."""
    from durably_reflex import Durably

    (tmp_path / "cli_jobs.py").write_text(JOB_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in ("cli_jobs", "broken_dep", "factories"):
        module = sys.modules.pop(name, None)
        engine = getattr(module, "durably", None)
        if isinstance(engine, Durably) and name == "cli_jobs":  # creating it started a thread on the file
            await engine.close()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cli_jobs:", "expected MODULE:ATTR"),
        (":durably", "expected MODULE:ATTR"),
        ("cli_jobs:durably:x", "expected MODULE:ATTR"),
        ("cli-jobs:durably", "expected MODULE:ATTR"),
        ("broken_dep:durably", """importing module "broken_dep" failed: No module named 'surely_not_installed'"""),
        ("cli_jobs:durably.nope", '"cli_jobs:durably" has no attribute "nope"'),
    ],
)
async def test_import_errors_in_process(importable: Path, spec: str, expected: str) -> None:
    from durably_reflex._cli import UsageError, import_target

    (importable / "broken_dep.py").write_text("import surely_not_installed\n")
    with pytest.raises(UsageError) as caught:
        import_target(spec)
    assert expected in str(caught.value)


async def test_factories_in_process(importable: Path) -> None:
    from durably_reflex import Durably
    from durably_reflex._cli import UsageError, import_target, resolve_durably

    (importable / "factories.py").write_text(
        "from cli_jobs import durably\nasync def make_async():\n    return durably\ndef make_none():\n    return None\n"
    )
    engine = import_target("cli_jobs:durably")
    assert isinstance(engine, Durably)
    assert await resolve_durably(import_target("cli_jobs:make_durably"), "f") is engine
    assert await resolve_durably(import_target("factories:make_async"), "f") is engine
    for spec, expected in [
        ("cli_jobs:needs_args", "needs arguments"),
        ("factories:make_none", "returned a NoneType, not a Durably"),
        ("cli_jobs:not_durably", "is an int, not a Durably"),
    ]:
        with pytest.raises(UsageError, match=expected):
            await resolve_durably(import_target(spec), spec)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    """The parser `python -m durably_reflex` uses (every other test runs it as a subprocess)."""
    from durably_reflex._cli import build_parser

    serve_options = ["--host", "--port", "--base-path", "--processes", "--in-process-worker", "--no-worker"]
    for args, options in (
        ((), ["serve", "worker", "MODULE:ATTR"]),
        (("serve",), [*serve_options, "--stop-timeout", "--log-level"]),
        (("worker",), ["--processes", "--stop-timeout", "--log-level"]),
    ):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args([*args, "--help"])
        assert exited.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(" ".join(["usage: durably-reflex", *args])), text
        assert all(option in text for option in options), text
    for argv, expected in (
        (["serve", "app:durably", "--port", "70000"], "a port is between 0 and 65535"),
        (["worker", "app:durably", "--processes", "0"], "expected at least 1 process"),
        (["serve", "app:durably", "--processes", "2", "--no-worker"], "not allowed with argument"),
    ):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(argv)
        assert exited.value.code == 2
        assert expected in capsys.readouterr().err
    assert build_parser().parse_args(["worker", "app:durably", "--processes", "auto"]).processes >= 1

    from durably_reflex._cli import main

    assert main([]) == 2  # no command: the help, on stderr
    assert "usage: durably-reflex" in capsys.readouterr().err


def test_serve_without_an_asgi_server_says_which_extra_to_install(tmp_path: Path) -> None:
    """The core package has no uvicorn (`pip install durably-reflex`): `serve` says so in one line.
    A `None` in `sys.modules` makes its import fail exactly as a missing package does."""
    code = "import sys; sys.modules['uvicorn'] = None; from durably_reflex._cli import main; sys.exit(main(['serve', 'jobs:durably']))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: serve needs an ASGI server: pip install 'durably-reflex[server]' (uvicorn), "
        "or mount create_durably_handler(durably) on a server of your own"
    ]
