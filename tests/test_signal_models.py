"""A job declares the payload model of each signal it waits for (`define_job(signals=...)`):
`durably.signal` checks payloads against it before storing anything, and `step.wait_for_signal(name)`
parses into it when the job passes no model of its own. On both backends."""

from __future__ import annotations

import pytest
from engine_helpers import wait_for_status
from pydantic import BaseModel

from durably_reflex import Durably, InvalidInputError, JobDefinitionError, define_job


class Empty(BaseModel):
    pass


class Approval(BaseModel):
    approved: bool
    by: str


class Verdict(BaseModel):
    guilty: bool


async def _decide(step, payload: Empty) -> dict:
    approval = await step.wait_for_signal("approval")  # the declared model
    verdict = await step.wait_for_signal("verdict", model=Verdict)  # the job's own, even if undeclared
    note = await step.wait_for_signal("note")  # undeclared: JSON as sent
    assert isinstance(approval, Approval) and isinstance(verdict, Verdict)
    return {"by": approval.by, "guilty": verdict.guilty, "note": note}


DECIDE = define_job(name="decide", input=Empty, run=_decide, signals={"approval": Approval})


async def test_wait_for_signal_parses_into_the_declared_model_and_undeclared_signals_carry_json(
    durably: Durably,
) -> None:
    durably.register(decide=DECIDE)
    run = await durably.jobs.decide.trigger({})
    await durably.signal(run.id, "approval", {"approved": True, "by": "ada"})
    await durably.signal(run.id, "verdict", {"guilty": False})
    await durably.signal(run.id, "note", ["any", {"json": 1}])
    await durably.start()
    done = await wait_for_status(durably, run.id, "completed", timeout=10)
    assert done.output == {"by": "ada", "guilty": False, "note": ["any", {"json": 1}]}


async def test_a_payload_the_declared_model_refuses_is_not_stored(durably: Durably) -> None:
    durably.register(decide=DECIDE)
    run = await durably.jobs.decide.trigger({})
    with pytest.raises(InvalidInputError, match='Invalid payload of signal "approval": approved') as refused:
        await durably.signal(run.id, "approval", {"approved": "perhaps", "by": "ada"})
    assert [detail["loc"] for detail in refused.value.errors] == [("approved",)]
    await durably.signal(run.id, "approval", Approval(approved=False, by="bob"))  # a model instance too
    await durably.signal(run.id, "verdict", {"guilty": True})
    await durably.signal(run.id, "note", None)
    await durably.start()
    done = await wait_for_status(durably, run.id, "completed", timeout=10)
    assert done.output == {"by": "bob", "guilty": True, "note": None}


def test_declared_signals_are_checked_when_the_job_is_defined() -> None:
    for signals, fragment in (
        ({"": Approval}, "signal name"),
        ({"a" * 300: Approval}, "signal name"),
        ({"approval": dict}, "BaseModel subclass"),
        (["approval"], "must map signal names"),
    ):
        with pytest.raises(JobDefinitionError, match=fragment):
            define_job(name="x", run=_decide, signals=signals)  # type: ignore[arg-type]
    assert DECIDE.signal_schemas()["approval"]["required"] == ["approved", "by"]
    assert define_job(name="plain", run=_decide).signals == {}
