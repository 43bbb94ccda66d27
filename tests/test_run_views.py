"""What the dashboard's run views derive from a run's fields, without a browser: where a failed or
cancelled run stopped, the steps' time axis, the short forms a table shows (pure functions of
`states/run_fields.py`, applied to plain objects as the states apply them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from durably_reflex._wire_events import RunCancel, StepComplete, StepStart
from durably_reflex.states.run_fields import (
    apply_run_event,
    ensure_running_step,
    first_line,
    put_step,
    short_id,
    step_label,
    stop_summary,
    stopped_step,
    timeline_bounds,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NOW_MS = round(NOW.timestamp() * 1000)


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


def step(view: RunView, index: int, name: str, status: str, start_s: float, end_s: float | None = None) -> None:
    def iso(seconds: float) -> str:
        return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    put_step(view, {
        "index": index, "name": name, "status": status, "started_at": iso(start_s),
        "completed_at": None if end_s is None else iso(end_s),
    })  # fmt: skip


def test_a_cancel_ends_the_running_step_as_cancelled_where_the_run_stopped() -> None:
    view = RunView()
    apply_run_event(
        view, StepStart(run_id="run-1", job_name="job", step_name="one", step_index=0, timestamp=NOW), max_logs=10
    )
    apply_run_event(
        view, StepComplete(run_id="run-1", job_name="job", step_name="one", step_index=0, timestamp=NOW), max_logs=10
    )
    apply_run_event(
        view, StepStart(run_id="run-1", job_name="job", step_name="two", step_index=1, timestamp=NOW), max_logs=10
    )
    apply_run_event(view, RunCancel(run_id="run-1", job_name="job", timestamp=NOW + timedelta(seconds=2)), max_logs=10)

    assert [(row["name"], row["status"]) for row in view.steps] == [("one", "completed"), ("two", "cancelled")]
    assert view.steps[1]["ended_ms"] == NOW_MS + 2000
    assert stopped_step(view.steps)["name"] == "two"


def test_where_a_run_stopped_is_said_with_its_progress() -> None:
    view = RunView()
    step(view, 0, "batch-1", "completed", 0, 1)
    step(view, 1, "batch-2", "completed", 1, 2)
    step(view, 2, "batch-3", "cancelled", 2, 2.5)
    progress = {"current": 2, "total": 10, "message": "batch 2 of 10"}
    assert stop_summary("cancelled", view.steps, progress) == (
        'Cancelled at step "batch-3" (2 steps completed; batch 2 of 10, 20%)'
    )
    assert stop_summary("failed", [*view.steps[:1], {**view.steps[1], "status": "failed"}], None) == (
        'Failed at step "batch-2" (1 step completed)'
    )
    assert stop_summary("cancelled", view.steps[:2], None) == 'Cancelled after step "batch-2" (2 steps completed)'
    assert stop_summary("cancelled", [], None) == "Cancelled before its first step"
    assert stop_summary("completed", view.steps, progress) == ""


def test_the_time_axis_runs_from_the_first_start_to_the_last_end_or_now_while_a_step_runs() -> None:
    view = RunView()
    assert timeline_bounds([], NOW_MS) == (NOW_MS, 1)
    step(view, 0, "one", "completed", 0, 1.5)
    step(view, 1, "two", "completed", 1.5, 4)
    assert timeline_bounds(view.steps, NOW_MS + 60_000) == (NOW_MS, 4000)  # ended: the clock is not read
    step(view, 2, "three", "running", 4)
    assert timeline_bounds(view.steps, NOW_MS + 6000) == (NOW_MS, 6000)
    assert timeline_bounds(view.steps, NOW_MS + 3000) == (NOW_MS, 4000)  # a clock behind the last start


def test_a_table_shows_an_errors_first_line_and_a_run_ids_last_characters() -> None:
    assert first_line("\n  boom: the renderer ran out of ink\nTraceback ...") == "boom: the renderer ran out of ink"
    assert first_line(None) == ""
    assert short_id("01JD8X5QZK3M7R2T9V4W6Y8A1C") == "4W6Y8A1C"


def test_a_run_attached_mid_step_shows_the_running_step_its_stored_steps_do_not_name() -> None:
    view = RunView(run={"started_at": "2026-11-29T12:00:00.000Z"})
    step(view, 0, "one", "completed", 0, 2)
    ensure_running_step(view)  # the store keeps settled steps only; step:start came before we attached
    assert [(row["index"], row["status"], step_label(row)) for row in view.steps] == [
        (0, "completed", "one"), (1, "running", "step 2"),
    ]  # fmt: skip
    assert view.steps[1]["started_ms"] == NOW_MS + 2000  # when the last one ended
    apply_run_event(
        view, StepComplete(run_id="run-1", job_name="job", step_name="two", step_index=1, timestamp=NOW), max_logs=10
    )
    assert (view.steps[1]["name"], view.steps[1]["status"]) == ("two", "completed")  # its own event names it

    ensure_running_step(view)
    ensure_running_step(view)  # once
    assert [row["status"] for row in view.steps] == ["completed", "completed", "running"]
    view.status = "completed"
    stopped = RunView(status="completed", steps=[])
    ensure_running_step(stopped)
    assert stopped.steps == []


def test_a_retried_run_runs_again_the_first_step_that_did_not_complete() -> None:
    view = RunView()
    step(view, 0, "one", "completed", 0, 1)
    step(view, 1, "two", "failed", 1, 2)
    ensure_running_step(view)
    assert [(row["index"], row["status"], row["name"], row["attempt"]) for row in view.steps] == [
        (0, "completed", "one", 1), (1, "failed", "two", 1), (1, "running", "two", 2),  # the failed attempt stays
    ]  # fmt: skip
