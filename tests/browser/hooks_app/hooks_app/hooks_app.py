"""A page per hook, with element ids for the browser tests; the API mounted on this backend."""

from __future__ import annotations

import reflex as rx
from starlette.requests import Request
from starlette.responses import JSONResponse

from durably_reflex import create_durably_client, mount_durably
from durably_reflex.states import consumer_count, use_job, use_job_logs, use_job_run, use_run_actions, use_runs

from .jobs import durably

client = create_durably_client(durably)  # the API URL comes from the Reflex config

job = use_job(client.count_up)
other_job = use_job(client.count_up, auto_resume=False, follow_latest=False)
failing = use_job(client.always_fails, auto_resume=False, follow_latest=False)
runs = use_runs(client, page_size=5)
actions = use_run_actions(client)


class Callbacks(rx.State):
    """Records the run page's `use_job_run` callbacks, in order."""

    seen: list[str] = []  # noqa: RUF012  (a Reflex state var: each tab gets its own copy)

    @rx.event
    def started(self) -> None:
        self.seen.append("start")

    @rx.event
    def completed(self) -> None:
        self.seen.append("complete")

    @rx.event
    def failed(self) -> None:
        self.seen.append("fail")


run_view = use_job_run(client, on_start=Callbacks.started, on_complete=Callbacks.completed, on_fail=Callbacks.failed)
run_logs = use_job_logs(client, max_logs=3)
ticker = use_job(client.tick)  # bench/ui_latency.py's page


def job_panel(state: type, prefix: str, input: dict) -> rx.Component:
    return rx.vstack(
        rx.button("Trigger", id=f"{prefix}-trigger", on_click=state.trigger(input), disabled=state.is_running),
        rx.button("Reset", id=f"{prefix}-reset", on_click=state.reset_run),
        rx.text(rx.cond(state.status, state.status, "none"), id=f"{prefix}-status"),
        rx.text(rx.cond(state.current_run_id, state.current_run_id, ""), id=f"{prefix}-run-id"),
        rx.text(rx.cond(state.progress_percent, state.progress_percent.to_string(), ""), id=f"{prefix}-percent"),
        rx.text(state.progress_message, id=f"{prefix}-progress-message"),
        rx.text(state.output_json, id=f"{prefix}-output"),
        rx.text(rx.cond(state.error, state.error, ""), id=f"{prefix}-error"),
        rx.text(state.connection, id=f"{prefix}-connection"),
        rx.text(state.logs.length().to_string(), id=f"{prefix}-log-count"),
        rx.foreach(state.logs, lambda log: rx.text(log["message"], class_name=f"{prefix}-log")),
        on_mount=state.attach,
    )


def index() -> rx.Component:
    return rx.hstack(
        job_panel(job, "job", {"n": 5, "delay": 0.2}),
        job_panel(other_job, "other", {"n": 2, "delay": 0.05}),
        job_panel(failing, "failing", {"message": "boom"}),
        rx.button("Bad input", id="bad-input", on_click=job.trigger({"n": "many"})),
        rx.text(job.field_errors.to_string(), id="job-field-errors"),
    )


def runs_page() -> rx.Component:
    return rx.vstack(
        rx.text(runs.page.to_string(), id="runs-page"),
        rx.text(rx.cond(runs.has_more, "more", "last"), id="runs-has-more"),
        rx.text(runs.connection, id="runs-connection"),
        rx.foreach(
            runs.runs,
            lambda row: rx.hstack(
                rx.text(row["job_name"]),
                rx.text(row["status"], class_name="run-status"),
                rx.text(row["id"], class_name="run-id"),
                rx.button("Retry", class_name="run-retry", on_click=actions.retry(row["id"])),
                rx.button("Cancel", class_name="run-cancel", on_click=actions.cancel(row["id"])),
                rx.button("Delete", class_name="run-delete", on_click=actions.delete_run(row["id"])),
                class_name="run-row",
            ),
        ),
        rx.button("Next", id="runs-next", on_click=runs.next_page),
        rx.button("Prev", id="runs-prev", on_click=runs.prev_page),
        rx.text(rx.cond(actions.error, actions.error, ""), id="actions-error"),
        rx.text(actions.message, id="actions-message"),
        on_mount=runs.attach,
    )


def run_page() -> rx.Component:
    return rx.vstack(
        rx.text(rx.cond(run_view.status, run_view.status, "none"), id="run-status"),
        rx.text(rx.cond(run_view.progress_percent, run_view.progress_percent.to_string(), ""), id="run-percent"),
        rx.text(run_view.output_json, id="run-output"),
        rx.text(rx.cond(run_view.error, run_view.error, ""), id="run-error"),
        rx.text(Callbacks.seen.join(","), id="run-callbacks"),
        rx.foreach(run_logs.logs, lambda log: rx.text(log["message"], class_name="run-log")),
        on_mount=[run_view.attach(rx.State.run_id), run_logs.attach(rx.State.run_id)],
    )


def bench_page() -> rx.Component:
    """For bench/ui_latency.py: the `tick` job's latest run (resumed, followed live), small DOM."""
    return rx.vstack(
        rx.text(rx.cond(ticker.status, ticker.status, "none"), id="bench-status"),
        rx.text(rx.cond(ticker.current_run_id, ticker.current_run_id, ""), id="bench-run-id"),
        rx.text(rx.cond(ticker.progress_percent, ticker.progress_percent.to_string(), ""), id="bench-percent"),
        rx.text(ticker.progress_message, id="bench-message"),
        rx.text(ticker.connection, id="bench-connection"),
        on_mount=ticker.attach,
    )


async def stats(request: Request) -> JSONResponse:
    """What the tests count on the server: open event streams and running hook consumers."""
    return JSONResponse({"streams": durably.feed.subscriber_count, "consumers": consumer_count()})


app = rx.App()
handler = mount_durably(app, durably)
handler.add_route("/test/stats", stats)
app.add_page(index, route="/")
app.add_page(runs_page, route="/runs")
app.add_page(run_page, route="/run/[run_id]")
app.add_page(bench_page, route="/bench")
