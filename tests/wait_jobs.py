"""Jobs that wait, shared by the tests of durable time and waiting over HTTP: `approval` waits for
the signal it declares (`Approval`), `nap` sleeps, `flaky` fails its step (and is retried) until a
gate opens; with the server fixtures' own jobs beside them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from durably_reflex import Retry, define_job
from tests.server_fixtures import GATES, JOBS, LiveServer


class Empty(BaseModel):
    pass


class Approval(BaseModel):
    approved: bool
    by: str = Field(min_length=1)


async def approve(step: Any, input: Empty) -> dict[str, Any]:
    await step.run("ask", lambda: "asked")
    decision = await step.wait_for_signal("approval")  # parsed into the model the job declares
    assert isinstance(decision, Approval)
    return {"approved": decision.approved, "by": decision.by}


async def nap(step: Any, input: Empty) -> str:
    await step.sleep("nap", 0.3)
    return "rested"


class FlakyInput(BaseModel):
    gate: str  # the step fails until it opens


async def flaky(step: Any, input: FlakyInput) -> str:
    def call() -> str:
        if not GATES.is_open(input.gate):
            raise ConnectionError("not yet")
        return "ok"

    return await step.run("call", call)


WAIT_JOBS = {
    **JOBS,
    "approval": define_job(name="approval", input=Empty, run=approve, signals={"approval": Approval}),
    "nap": define_job(name="nap", input=Empty, run=nap),
    "flaky": define_job(
        name="flaky", input=FlakyInput, run=flaky, retry=Retry(max_attempts=50, initial_delay=0.2, backoff=1, jitter=0)
    ),
}
APPROVED = {"approved": True, "by": "ada"}


async def waiting_run(server: LiveServer, job_name: str = "approval", kind: str = "signal") -> dict[str, Any]:
    """A new run of `job_name`, once it waits (pending) for `kind`."""
    run_id = await server.trigger(job_name, {})
    return await server.wait_run(
        run_id, lambda run: run["status"] == "pending" and (run.get("waitingFor") or {}).get("kind") == kind
    )
