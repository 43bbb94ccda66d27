"""The hook states' event handling, without a browser: how events change the fields a page shows,
and the stream sources behind the states against a REAL server (uvicorn on 127.0.0.1, SQLite file).

A Reflex state applies the consumer's updates inside `async with self:`; here the same updates are
applied to plain objects with the same fields, so what is checked is exactly what the states do.
The states inside a real Reflex app, in Chromium, are tested in tests/browser/test_hooks.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from durably_reflex import (
    DurablyClient,
    InvalidInputError,
    LogEntry,
    Progress,
    Run,
    RunStatus,
    Step,
)
from durably_reflex._wire_events import (
    LogWrite,
    RunComplete,
    RunFail,
    RunProgress,
    RunRetry,
    RunSnapshot,
    RunStart,
    RunTrigger,
    StepComplete,
    StepStart,
)
from durably_reflex.states import consumers
from durably_reflex.states.consumers import Consumer, consuming
from durably_reflex.states.job_state import field_errors
from durably_reflex.states.run_fields import (
    add_logs,
    apply_run_event,
    clear_run,
    log_line,
    put_step,
    step_row,
)
from durably_reflex.states.run_state import follow_run
from durably_reflex.states.runs_state import _follow_runs
from tests.test_client import ServerThread, free_port, wait_status

WAIT = 10.0
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass
class RunView:
    """The fields of `use_job` / `use_job_run` / `use_job_logs`, as a plain object."""

    current_run_id: str | None = None
    status: str | None = None
    output: Any = None
    error: str | None = None
    progress: dict[str, Any] | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    connection: str = "idle"
    max_logs: int = 100
    seen_connections: list[str] = field(default_factory=list)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "connection" and hasattr(self, "seen_connections"):
            self.seen_connections.append(value)
        super().__setattr__(name, value)


def run(status: RunStatus, **fields: Any) -> Run:
    return Run(id="run-1", job_name="job", input={}, status=status, created_at=NOW, updated_at=NOW, **fields)


def log(id: str, message: str = "m") -> dict[str, Any]:
    return log_line(LogEntry(id=id, run_id="run-1", level="info", message=message, timestamp=NOW))


# -- folding events into a run's fields -------------------------------------------------------------------
def test_a_snapshot_shows_a_running_run_as_running_at_once_with_its_progress() -> None:
    view = RunView(current_run_id="run-1")
    snapshot = RunSnapshot(
        run_id="run-1", job_name="job", run=run(RunStatus.RUNNING, progress=Progress(current=3, total=10))
    )
    assert apply_run_event(view, snapshot, max_logs=100)
    assert view.status == "running" and view.progress == {"current": 3, "total": 10, "message": None}


def test_lifecycle_events_set_status_output_and_error_as_the_seed_does() -> None:
    view = RunView(current_run_id="run-1")
    apply_run_event(view, RunStart(run_id="run-1", job_name="job"), max_logs=100)
    assert view.status == "running"
    apply_run_event(view, RunFail(run_id="run-1", job_name="job", error="boom"), max_logs=100)
    assert (view.status, view.error) == ("failed", "boom")
    apply_run_event(view, RunRetry(run_id="run-1", job_name="job"), max_logs=100)
    assert (view.status, view.error) == ("pending", None)
    apply_run_event(view, RunProgress(run_id="run-1", job_name="job", progress=Progress(current=1)), max_logs=100)
    assert view.progress == {"current": 1, "total": None, "message": None}
    apply_run_event(view, RunComplete(run_id="run-1", job_name="job", output={"count": 2}), max_logs=100)
    assert (view.status, view.output) == ("completed", {"count": 2})


def test_events_of_another_run_and_triggers_change_nothing() -> None:
    view = RunView(current_run_id="run-1", status="running")
    assert not apply_run_event(view, RunComplete(run_id="run-2", job_name="job", output=1), max_logs=100)
    assert not apply_run_event(view, RunTrigger(run_id="run-1", job_name="job"), max_logs=100)
    assert view.status == "running" and view.output is None


def test_step_events_build_a_timeline_that_fetched_steps_merge_into() -> None:
    view = RunView(current_run_id="run-1")
    apply_run_event(
        view, StepStart(run_id="run-1", job_name="job", step_name="load", step_index=1, timestamp=NOW), max_logs=100
    )
    assert view.steps == [{
        "index": 1, "name": "load", "status": "running", "started_at": "2026-11-29T12:00:00.000Z",
        "output": None, "error": None, "completed_at": None, "duration_ms": None, "duration_text": "",
        "started_ms": round(NOW.timestamp() * 1000), "ended_ms": None, "attempt": 1, "key": "1.1",
    }]  # fmt: skip
    done = StepComplete(
        run_id="run-1", job_name="job", step_name="load", step_index=1, duration=12.5, output=[1], timestamp=NOW
    )
    apply_run_event(view, done, max_logs=100)
    fetched = Step(id="s0", run_id="run-1", name="open", index=0, status="completed", started_at=NOW, completed_at=NOW)
    put_step(view, step_row(fetched))
    assert [(row["index"], row["name"], row["status"]) for row in view.steps] == [
        (0, "open", "completed"),
        (1, "load", "completed"),
    ]
    assert view.steps[1]["duration_ms"] == 12.5 and view.steps[1]["output"] == [1] and view.steps[0]["duration_ms"] == 0


def test_live_log_lines_keep_the_servers_id_step_and_time() -> None:
    view = RunView(current_run_id="run-1")
    event = LogWrite(
        run_id="run-1", job_name="job", id="log-9", step_name="load", level="warn", message="slow", data={"ms": 5},
        timestamp=NOW,
    )  # fmt: skip
    apply_run_event(view, event, max_logs=100)
    assert view.logs == [{
        "id": "log-9", "run_id": "run-1", "step_name": "load", "level": "warn", "message": "slow",
        "data": {"ms": 5}, "timestamp": "2026-11-29T12:00:00.000Z",
    }]  # fmt: skip
    assert view.logs[0]["timestamp"] == log("x")["timestamp"]  # history and live rows render alike


def test_history_and_live_logs_merge_by_id_in_order_and_stay_bounded() -> None:
    view = RunView(current_run_id="run-1")
    add_logs(view, [log("03"), log("04")], max_logs=3)  # live lines arrived first
    add_logs(view, [log("01"), log("02"), log("03")], max_logs=3)  # then the history, overlapping
    assert [line["id"] for line in view.logs] == ["02", "03", "04"]
    add_logs(view, [log("05")], max_logs=0)  # 0 keeps all
    assert [line["id"] for line in view.logs] == ["02", "03", "04", "05"]


def test_switching_runs_forgets_the_previous_run() -> None:
    view = RunView(
        current_run_id="run-1", status="failed", error="boom", output=1, progress={"current": 1}, logs=[log("1")]
    )
    clear_run(view, "run-2")
    assert view == RunView(current_run_id="run-2", seen_connections=view.seen_connections)


def test_field_errors_are_keyed_by_dotted_path_for_forms() -> None:
    error = InvalidInputError("bad", [
        {"loc": ("rows", 0, "name"), "msg": "Field required"},
        {"loc": ("rows", 0, "name"), "msg": "second message for the same field"},
        {"loc": (), "msg": "Input should be an object"},
    ])  # fmt: skip
    assert field_errors(error) == {"rows.0.name": "Field required", "input": "Input should be an object"}


# -- the consumer: batches, replacement, liveness -------------------------------------------------------
async def test_updates_posted_together_apply_as_one_batch_and_stop_ends_the_batches() -> None:
    consumer = Consumer(("tab", "state"))
    for value in range(3):
        consumer.post(lambda view, value=value: view.append(value))
    consumer.stop()
    consumer.post(lambda view: view.append("after stop"))  # dropped
    applied: list[Any] = []
    batches = [batch async for batch in consumer.batches()]
    for batch in batches:
        for update in batch:
            update(applied)
    assert len(batches) == 1 and applied == [0, 1, 2]


async def test_attaching_again_for_the_same_tab_and_state_replaces_the_consumer() -> None:
    async with (
        consuming("tab", "state", probe=always_there) as first,
        consuming("tab", "state", probe=always_there) as second,
    ):
        assert first.stopped and not second.stopped
        assert consumers.running_consumer("tab", "state") is second
    assert consumers.running_consumer("tab", "state") is None


async def always_there(token: str) -> bool:
    return True


async def test_a_consumer_stops_when_its_tab_has_gone_for_several_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumers, "LIVENESS_INTERVAL", 0.02)
    answers = iter([True, False, True, False, False, False, False])  # a reload's short absence is forgiven

    async def probe(token: str) -> bool:
        return next(answers)

    async with consuming("tab", "state", probe=probe) as consumer:
        async with asyncio.timeout(WAIT):
            async for _ in consumer.batches():
                pass
        assert consumer.stopped
    assert consumers.consumer_count() == 0


async def test_updates_wait_while_the_tab_is_away_and_apply_when_it_is_back() -> None:
    consumer = Consumer(("tab", "state"))
    applied: list[int] = []

    async def apply_all() -> None:
        async for batch in consumer.batches():
            for update in batch:
                update(applied)

    applying = asyncio.create_task(apply_all())
    consumer.hold(tab_present=False)
    consumer.post(lambda view: view.append(1))
    await asyncio.sleep(0.05)
    assert applied == []  # nobody would receive it
    consumer.hold(tab_present=True)
    await asyncio.sleep(0.05)
    assert applied == [1]
    consumer.hold(tab_present=False)
    consumer.stop()  # a stop is not held up by an absent tab
    await asyncio.wait_for(applying, WAIT)


# -- sources against a real server ----------------------------------------------------------------------
@pytest.fixture
def server(db_url: str) -> AsyncIterator[ServerThread]:
    running = ServerThread(db_url, free_port()).start()
    yield running
    running.stop()


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[DurablyClient]:
    async with DurablyClient(server.api) as plain:
        yield plain


async def apply_until(consumer: Consumer, view: Any, done: Callable[[Any], bool]) -> None:
    """Apply the consumer's updates to `view` (as a state's background event does) until `done`."""
    async with asyncio.timeout(WAIT):
        async for batch in consumer.batches():
            for update in batch:
                result = update(view)
                if asyncio.iscoroutine(result):
                    await result
            if done(view):
                return


async def test_following_a_running_run_shows_it_running_then_follows_it_to_the_end(client: DurablyClient) -> None:
    run_id = await client.trigger("slow-job", {"steps": 6, "delay": 0.1})
    await wait_status(client, run_id, "running")
    view = RunView(current_run_id=run_id)
    statuses: list[str | None] = []
    async with consuming("tab", "run", probe=always_there) as consumer:
        consumer.start_source("run", follow_run(consumer, client, run_id), follows=run_id)
        await apply_until(consumer, view, lambda v: statuses.append(v.status) or v.connection == "closed")
    shown = [status for index, status in enumerate(statuses) if index == 0 or status != statuses[index - 1]]
    assert shown == [None, "running", "completed"]  # nothing before the snapshot, then never None or pending
    assert view.status == "completed" and view.output == 6 and view.error is None
    assert view.progress == {"current": 6, "total": 6, "message": None}
    assert [row["name"] for row in view.steps] == [f"tick-{index}" for index in range(6)]
    assert all(row["status"] == "completed" for row in view.steps)
    assert view.run is not None and view.run["input"] == {"steps": 6, "delay": 0.1} and view.run["completed_at"]
    assert view.seen_connections[-1] == "closed" and "reconnecting" not in view.seen_connections


async def test_log_history_then_live_lines_without_gaps_or_duplicates(client: DurablyClient) -> None:
    rows = [{"name": f"n{index}"} for index in range(8)]
    run_id = await client.trigger("import-csv", {"rows": rows, "delay": 0.05})
    async with asyncio.timeout(WAIT):
        while len(await client.get_logs(run_id)) < 3:  # attach with history behind it
            await asyncio.sleep(0.02)
    view = RunView(current_run_id=run_id)
    async with consuming("tab", "logs", probe=always_there) as consumer:
        consumer.start_source("run", follow_run(consumer, client, run_id), follows=run_id)
        await apply_until(consumer, view, lambda v: v.status == "completed" and len(v.logs) == 8)
    assert [line["message"] for line in view.logs] == [f"imported n{index}" for index in range(8)]
    assert len({line["id"] for line in view.logs}) == 8


async def test_an_unknown_run_is_an_error_not_a_stuck_connection(client: DurablyClient) -> None:
    view = RunView(current_run_id="no-such-run")
    async with consuming("tab", "run", probe=always_there) as consumer:
        consumer.start_source("run", follow_run(consumer, client, "no-such-run"), follows="no-such-run")
        await apply_until(consumer, view, lambda v: v.error is not None)
    assert view.error == "Run not found: no-such-run" and view.connection == "closed"


async def test_a_dropped_connection_shows_reconnecting_and_resumes(tmp_path: Any) -> None:
    db_url, port = f"sqlite:///{tmp_path / 'restart.db'}", free_port()
    first = ServerThread(db_url, port).start()
    second: ServerThread | None = None
    try:
        async with DurablyClient(first.api) as client:
            run_id = await client.trigger("slow-job", {"steps": 8, "delay": 0.15})
            view = RunView(current_run_id=run_id)
            async with consuming("tab", "run", probe=always_there) as consumer:
                consumer.start_source("run", follow_run(consumer, client, run_id), follows=run_id)
                await apply_until(consumer, view, lambda v: (v.progress or {}).get("current", 0) >= 2)
                await asyncio.to_thread(first.stop)
                await apply_until(consumer, view, lambda v: v.connection == "reconnecting")
                second = ServerThread(db_url, port).start()
                await apply_until(consumer, view, lambda v: v.status == "completed")
        assert view.output == 8 and view.error is None
        assert view.seen_connections.index("reconnecting") < len(view.seen_connections) - 1
        assert "open" in view.seen_connections[view.seen_connections.index("reconnecting") :]
    finally:
        first.stop()
        if second is not None:
            second.stop()


@dataclass
class RunsView:
    """The fields of `use_runs` the live source touches, with a page load that counts its fetches."""

    client: DurablyClient
    page: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    connection: str = "idle"
    loads: int = 0

    async def _load(self) -> None:
        self.loads += 1
        self.runs = [run.model_dump(mode="json") for run in await self.client.get_runs(limit=50)]


async def test_a_burst_of_new_runs_refreshes_the_first_page_a_few_times_not_once_per_event(
    client: DurablyClient,
) -> None:
    view = RunsView(client)
    async with consuming("tab", "runs", probe=always_there) as consumer:
        consumer.start_source("runs", _follow_runs(consumer, client, None))
        await apply_until(consumer, view, lambda v: v.connection == "open")
        await asyncio.gather(*(client.trigger("import-csv", {"rows": [{"name": "x"}]}) for _ in range(20)))
        await apply_until(
            consumer, view, lambda v: len(v.runs) == 20 and all(r["status"] == "completed" for r in v.runs)
        )
    # 20 runs make at least 60 lifecycle events (trigger, start, complete) and 20 step starts.
    assert view.loads < 30


async def test_a_run_that_ended_between_the_page_load_and_the_stream_opening_appears(
    client: DurablyClient,
) -> None:
    view = RunsView(client)
    await view._load()  # the page as the tab first shows it: no runs
    run_id = (await client.trigger_and_wait("slow-job", {"steps": 1, "delay": 0.01}, timeout=WAIT)).id
    async with consuming("tab", "runs", probe=always_there) as consumer:
        consumer.start_source("runs", _follow_runs(consumer, client, None))  # opens after every event of the run
        await apply_until(consumer, view, lambda v: [r["id"] for r in v.runs] == [run_id])
    assert view.runs[0]["status"] == "completed"


async def test_progress_updates_the_row_in_place_without_a_fetch(client: DurablyClient) -> None:
    view = RunsView(client)
    run_id = await client.trigger("slow-job", {"steps": 4, "delay": 0.25})
    await wait_status(client, run_id, "running")
    await view._load()
    async with consuming("tab", "runs", probe=always_there) as consumer:
        consumer.start_source("runs", _follow_runs(consumer, client, "slow-job"))
        await apply_until(consumer, view, lambda v: v.loads == 2)  # the page fetched again as the stream opened
        loads_before = view.loads
        await apply_until(consumer, view, lambda v: (v.runs[0].get("progress") or {}).get("current") == 2)
        # a progress event may arrive with a step:start that refreshes; the row moved without waiting for one
        assert view.loads - loads_before <= 2


async def test_pages_other_than_the_first_are_not_patched_or_refreshed(client: DurablyClient) -> None:
    view = RunsView(client, page=1, runs=[{"id": "x", "progress": None}])
    async with consuming("tab", "runs", probe=always_there) as consumer:
        consumer.start_source("runs", _follow_runs(consumer, client, None))
        await apply_until(consumer, view, lambda v: v.connection == "open")
        await client.trigger_and_wait("slow-job", {"steps": 1, "delay": 0.01}, timeout=WAIT)
        consumer.post(lambda v: None)  # one more batch after the run's events
        await apply_until(consumer, view, lambda v: True)
        await asyncio.sleep(0.3)
    assert view.loads == 0 and view.runs == [{"id": "x", "progress": None}]
