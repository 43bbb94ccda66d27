"""What the Reflex layer makes of durable waits, without a browser: a run view follows a run into
and out of its waits, a step's attempts stay rows of their own on its timeline (live and fetched
alike), a schedule's row finds its own runs, and an approval form's data becomes the payload the
job's signal model takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from durably_reflex import create_durably_client, define_job
from durably_reflex._client import DurablyClient
from durably_reflex._form_schema import form_fields, form_to_input
from durably_reflex._records import Run, RunStatus, Schedule, Step, WaitingFor
from durably_reflex._wire_events import RunRetry, RunStart, RunWait, StepComplete, StepFail, StepStart
from durably_reflex.states.run_fields import apply_run_event, merge_stored_steps, step_row, stopped_step
from durably_reflex.states.runs_state import _where_stopped
from durably_reflex.states.schedules_state import schedule_row
from durably_reflex.states.signal_state import signal_schemas_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass
class RunView:
    current_run_id: str | None = "run-1"
    status: str | None = "running"
    output: Any = None
    error: str | None = None
    progress: dict[str, Any] | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def apply(view: RunView, *events: Any) -> None:
    for event in events:
        apply_run_event(view, event, max_logs=10)


EVENT = {"run_id": "run-1", "job_name": "job"}


# -- a run view through a wait ---------------------------------------------------------------------
def test_a_view_shows_the_run_pending_with_what_it_waits_for_until_it_resumes() -> None:
    view = RunView(run={"started_at": "2026-11-29T12:00:00.000Z", "waiting_for": None})
    until = at(60)
    apply(view, RunWait(**EVENT, waiting_for=WaitingFor(kind="sleep", name="nap", until=until), timestamp=at(1)))
    assert view.status == "pending"
    assert view.run is not None and view.run["waiting_for"] == {
        "kind": "sleep", "name": "nap", "until": "2026-11-29T12:01:00.000Z", "attempt": None,
    }  # fmt: skip
    apply(view, RunStart(**EVENT, timestamp=at(61)))
    assert view.status == "running" and view.run["waiting_for"] is None
    assert view.run["started_at"] == "2026-11-29T12:00:00.000Z"  # its first start, as the engine keeps it


def test_a_retry_by_hand_starts_the_run_anew() -> None:
    view = RunView(status="failed", run={"started_at": "2026-11-29T12:00:00.000Z", "completed_at": "x"})
    apply(view, RunRetry(**EVENT), RunStart(**EVENT, timestamp=at(30)))
    assert view.run is not None and view.run["started_at"] == "2026-11-29T12:00:30.000Z"


# -- attempts on the timeline ----------------------------------------------------------------------
def test_each_attempt_of_a_retried_step_is_a_row_of_its_own() -> None:
    view = RunView()
    apply(
        view,
        StepStart(**EVENT, step_name="call", step_index=0, timestamp=at(0)),
        StepFail(**EVENT, step_name="call", step_index=0, error="attempt 1 failed", timestamp=at(1)),
        RunWait(**EVENT, waiting_for=WaitingFor(kind="retry", name="call", until=at(2), attempt=1), timestamp=at(1)),
        RunStart(**EVENT, timestamp=at(2)),
        StepStart(**EVENT, step_name="call", step_index=0, timestamp=at(2)),
        StepComplete(**EVENT, step_name="call", step_index=0, output="ok", duration=500, timestamp=at(2.5)),
    )
    assert [(row["key"], row["status"], row["error"]) for row in view.steps] == [
        ("0.1", "failed", "attempt 1 failed"), ("0.2", "completed", None),
    ]  # fmt: skip
    assert stopped_step(view.steps) is None  # the step completed in the end


def test_a_step_that_completes_after_a_failure_unseen_as_started_is_a_new_attempt() -> None:
    view = RunView()
    apply(
        view,
        StepFail(**EVENT, step_name="call", step_index=0, error="boom", timestamp=at(1)),
        StepComplete(**EVENT, step_name="call", step_index=0, timestamp=at(3)),
    )
    assert [(row["attempt"], row["name"], row["status"]) for row in view.steps] == [
        (1, "call", "failed"),
        (2, "call", "completed"),
    ]


def stored(index: int, name: str, status: str, start: float, end: float, error: str | None = None) -> dict[str, Any]:
    return step_row(
        Step(id=f"s{index}-{start}", run_id="run-1", name=name, index=index, status=status, error=error,
             started_at=at(start), completed_at=at(end))
    )  # fmt: skip


def test_fetched_steps_hold_every_attempt_and_the_view_keeps_what_came_after_the_read() -> None:
    view = RunView()
    apply(
        view,
        StepStart(**EVENT, step_name="call", step_index=0, timestamp=at(0)),
        StepFail(**EVENT, step_name="call", step_index=0, error="one", timestamp=at(1)),
        StepStart(**EVENT, step_name="call", step_index=0, timestamp=at(2)),
        StepFail(**EVENT, step_name="call", step_index=0, error="two", timestamp=at(3)),
        StepStart(**EVENT, step_name="call", step_index=0, timestamp=at(4)),  # the third attempt runs
    )
    rows = [stored(0, "call", "failed", 0, 1, "one"), stored(0, "call", "failed", 2, 3, "two")]
    merge_stored_steps(view, rows)
    merge_stored_steps(view, rows)  # read again after a reconnect: nothing doubles
    assert [(row["attempt"], row["status"], row["error"]) for row in view.steps] == [
        (1, "failed", "one"), (2, "failed", "two"), (3, "running", None),
    ]  # fmt: skip
    assert view.steps[0]["id"] == "s0-0"  # the stored row stands for its attempt


def test_where_a_run_stopped_is_the_latest_attempt_of_its_last_step() -> None:
    rows = [stored(0, "call", "failed", 0, 1), stored(0, "call", "completed", 2, 3), stored(1, "send", "failed", 3, 4)]
    view = RunView()
    merge_stored_steps(view, rows)
    at_step = stopped_step(view.steps)
    assert at_step is not None and (at_step["name"], at_step["attempt"]) == ("send", 1)


# -- schedules -------------------------------------------------------------------------------------
def run(run_id: str, job_name: str, key: str | None, status: str = "completed") -> Run:
    return Run(
        id=run_id, job_name=job_name, input={}, status=RunStatus(status), idempotency_key=key,
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def test_a_schedule_row_holds_its_own_newest_runs() -> None:
    schedule = Schedule(
        name="nightly", job_name="report", cron="0 2 * * *", timezone="UTC", input={"to": "ops"}, catch_up="once",
        paused=False, next_fire_at=at(3600), created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    runs = [
        run("r1-000000000001", "report", "schedule:nightly:2", "failed"),
        run("r2-000000000002", "report", "schedule:nightly-2:1"),  # another schedule's
        run("r3-000000000003", "report", None),  # triggered by hand
        run("r4-000000000004", "other", "schedule:nightly:1"),  # another job's (a schedule of that name before)
        run("r5-000000000005", "report", "schedule:nightly:1"),
    ]
    row = schedule_row(schedule, runs)
    assert [(item["id"], item["status"], item["short_id"]) for item in row["recent_runs"]] == [
        ("r1-000000000001", "failed", "00000001"), ("r5-000000000005", "completed", "00000005"),
    ]  # fmt: skip
    assert row["next_fire_at"] == "2026-11-29T13:00:00.000Z" and row["input_json"] == '{\n  "to": "ops"\n}'


# -- the approval form -----------------------------------------------------------------------------
class Approval(BaseModel):
    approved: bool
    by: str
    reasons: list[dict[str, str]] = []  # a list of objects: JSON in a signal's form


async def _job(step: Any, payload: Any) -> None:
    await step.wait_for_signal("approval")


def test_a_signal_form_takes_the_declared_model_and_a_list_of_objects_as_json() -> None:
    job = define_job(name="expense", run=_job, signals={"approval": Approval})
    schemas, definitions = signal_schemas_of(create_durably_client({"expense": job}, api="http://127.0.0.1:9/api"))
    assert definitions == {"expense": job}
    schema = schemas["expense"]["approval"]
    assert [(field.path, field.kind) for field in form_fields(schema, repeatable_rows=False)] == [
        ("approved", "boolean"), ("by", "string"), ("reasons", "json"),
    ]  # fmt: skip
    payload, errors = form_to_input(
        schema, {"approved": "on", "by": "ada", "reasons": '[{"why": "fine"}]'}, repeatable_rows=False
    )
    assert errors == {} and payload == {"approved": True, "by": "ada", "reasons": [{"why": "fine"}]}
    assert job.validate_signal("approval", payload)["by"] == "ada"
    untyped, _ = signal_schemas_of(DurablyClient(api="http://127.0.0.1:9/api"))
    assert untyped == {}
    payload, errors = form_to_input(None, {"input": '{"any": "json"}'})  # a signal without a model
    assert (payload, errors) == ({"any": "json"}, {})


def test_a_runs_table_names_where_a_run_stopped_by_its_latest_attempts() -> None:
    steps = [
        Step(id="a", run_id="run-1", name="call", index=0, status="failed", started_at=at(0), completed_at=at(1)),
        Step(id="b", run_id="run-1", name="call", index=0, status="completed", started_at=at(2), completed_at=at(3)),
    ]
    assert _where_stopped(steps) == "after call"  # cancelled after its retried step completed
    failed = Step(id="c", run_id="run-1", name="send", index=1, status="failed", started_at=at(3), completed_at=at(4))
    assert _where_stopped([*steps, failed]) == "send"
