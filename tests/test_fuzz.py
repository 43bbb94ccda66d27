"""Schema-driven fuzzing: schemathesis reads the server's own `/openapi.json` and throws generated
requests (valid ones and deliberately invalid ones) at a REAL server, uvicorn on 127.0.0.1 in a thread
of its own in front of a real engine with its worker, on SQLite and on PostgreSQL. Every answer must
be a non-5xx that the document declares: its status code, content type, headers and body.

A bounded run in the suite (`DURABLY_FUZZ_REQUESTS` per backend, default 400); locally, raise it:

    DURABLY_FUZZ_REQUESTS=20000 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_fuzz.py -s

The streams' 200 answers never end, so for those operations only the status and content type of
the answer are checked (an error answer's body is checked like any other).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import uvicorn
from pydantic import BaseModel, Field

from durably_reflex import create_durably, define_job
from durably_reflex.server import create_durably_handler
from tests.server_fixtures import BASE_PATH, FAST, WAIT

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

REQUESTS = int(os.environ.get("DURABLY_FUZZ_REQUESTS", "400"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
STREAMS = {"subscribeRun", "subscribeRuns"}
# Last, in this order: each can take away the runs the operations after it act on.
DESTRUCTIVE = ("bulkRetry", "bulkCancel", "bulkDelete", "deleteRun")
MAX_ROUNDS = 10


# -- jobs the fuzzer may trigger with any input their schemas allow: each ends quickly ----------------
class Order(BaseModel):
    sku: str = Field(max_length=40)
    quantity: int = Field(ge=0, le=1000)


class Basket(BaseModel):
    customer: str
    orders: list[Order] = Field(max_length=5)
    note: str | None = None


async def checkout(step: Any, input: Basket) -> dict[str, int]:
    for i, order in enumerate(input.orders):
        await step.run(f"order-{i}", lambda order=order: order.quantity)
        step.progress(i + 1, len(input.orders))
        step.log.info("ordered", {"sku": order.sku})
    return {"orders": len(input.orders)}


class Flaky(BaseModel):
    fail: bool = True


async def flaky(step: Any, input: Flaky) -> None:
    await step.run("only", lambda: None)
    if input.fail:
        raise RuntimeError("failed on purpose")


async def anything(step: Any, input: Any) -> Any:
    return {"got": input}


class Decision(BaseModel):
    approved: bool
    note: str = Field(default="", max_length=200)


async def approval(step: Any, input: Any) -> bool:
    return (await step.wait_for_signal("decision")).approved


FUZZ_JOBS = {
    "checkout": define_job(name="checkout", input=Basket, run=checkout),
    "flaky": define_job(name="flaky", input=Flaky, run=flaky),
    "anything": define_job(name="anything.v2", run=anything),
    "approval": define_job(name="approval", run=approval, signals={"decision": Decision}),
}


# -- a real server in a thread of its own (schemathesis sends blocking requests) ---------------------
class ThreadServer:
    def __init__(self, db_url: str) -> None:
        self._db_url = db_url
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}{BASE_PATH}"
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="fuzz-server")

    async def _serve(self) -> None:
        durably = create_durably(self._db_url, max_concurrent_runs=2, **FAST)
        durably.register(**FUZZ_JOBS)
        await durably.init()
        try:
            app = create_durably_handler(durably, keepalive_interval=1.0)
            config = uvicorn.Config(app, http="h11", lifespan="on", log_level="warning", timeout_graceful_shutdown=2)
            self._server = uvicorn.Server(config)
            await self._server.serve(sockets=[self._sock])
        finally:
            await durably.close(timeout=5)

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        deadline = time.monotonic() + WAIT
        while not (self._server is not None and self._server.started):
            assert self._thread.is_alive() and time.monotonic() < deadline, "the fuzz server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.should_exit = True
        self._thread.join(WAIT)


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def fuzz_operation(
    case_strategy: Any, run_ids: list[str], examples: int, base_url: str, session: requests.Session, tally: Tally
) -> None:
    """`examples` generated requests; where the operation takes a `runId`, most carry one that exists."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=case_strategy, run_id=st.sampled_from([None, *run_ids]))
    def run(case: Any, run_id: str | None) -> None:
        if run_id is not None and isinstance(case.query, dict) and "runId" in case.query:
            case.query["runId"] = run_id
        if run_id is not None and isinstance(case.body, dict) and "runId" in case.body:  # POST /signal, /replay
            case.body["runId"] = run_id
        if run_id is not None and isinstance(case.body, dict) and isinstance(case.body.get("runIds"), list):
            case.body["runIds"] = [run_id, *case.body["runIds"]]  # bulk actions: one that exists among the rest
        if case.operation.definition.raw.get("operationId") in STREAMS:  # read no further than the headers
            response = session.request(**case.as_transport_kwargs(base_url=base_url), stream=True, timeout=WAIT)
            streaming = response.status_code == 200
        else:
            response, streaming = case.call(base_url=base_url, session=session, timeout=WAIT), False
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        try:
            if streaming:
                assert response.headers["content-type"] == "text/event-stream", response.headers
                response.close()
            else:
                case.validate_response(response, checks=CHECKS)
        except Exception as error:  # every failure counted; none stops the run
            record(tally, case, response.status_code, error)

    with contextlib.suppress(Unsatisfiable):  # negative mode on an operation with nothing to get wrong (GET /jobs)
        run()


def record(tally: Tally, case: Any, status: int, error: Exception) -> None:
    where = f"{case.method} {case.formatted_path} {case.query!r} {case.headers!r} {str(case.body)[:200]!r}"
    report = f"{where} -> {status}: {str(error)[:600]}"
    (tally.server_errors if status >= 500 else tally.violations).append(report)


def seed_runs(base_url: str, session: requests.Session) -> list[str]:
    """Runs in every kind of state, so the run routes are fuzzed with ids that exist (stateful
    chains along the document's links would be better, but hypothesis rejects a server whose
    answers change between replays as flaky)."""
    bodies = [
        {"jobName": "checkout", "input": {"customer": "ann", "orders": [{"sku": "a", "quantity": 1}]}},
        {"jobName": "flaky", "input": {"fail": True}},
        {"jobName": "anything.v2", "input": [1, 2]},
        {"jobName": "flaky", "input": {"fail": False}},
        {"jobName": "approval", "labels": {"team": "ops"}},  # waits for its signal (the fuzzer may send it)
    ]
    run_ids = [session.post(f"{base_url}/trigger", json=body, timeout=WAIT).json()["runId"] for body in bodies]
    deadline = time.monotonic() + WAIT
    while any(
        (run := session.get(f"{base_url}/run", params={"runId": run_id}, timeout=WAIT).json())["status"]
        in ("pending", "running")
        and run["waitingFor"] is None
        for run_id in run_ids
    ):
        assert time.monotonic() < deadline, "the seeded runs did not settle"
        time.sleep(0.05)
    session.post(f"{base_url}/retry", params={"runId": run_ids[1]}, timeout=WAIT)  # a retried run too
    return run_ids


def test_a_schema_driven_fuzz_finds_no_server_error_and_no_answer_outside_the_schema(db_url: str, backend: str) -> None:
    with ThreadServer(db_url) as server, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        operations.sort(
            key=lambda operation: (
                DESTRUCTIVE.index(operation_id)
                if (operation_id := operation.definition.raw["operationId"]) in DESTRUCTIVE
                else -1
            )
        )
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        examples = max(1, REQUESTS // (len(operations) * len(modes)))
        tally = Tally()
        started = time.monotonic()
        for _ in range(MAX_ROUNDS):  # hypothesis stops early where an operation has few inputs: go again
            if tally.requests >= REQUESTS:
                break
            run_ids = seed_runs(server.base_url, session)
            for operation in operations:
                for mode in modes:
                    strategy = operation.as_strategy(generation_mode=mode)
                    fuzz_operation(strategy, run_ids, examples, server.base_url, session, tally)
    seconds = time.monotonic() - started
    print(
        f"\nfuzz {backend}: {tally.requests} requests in {seconds:.0f} s, statuses {dict(sorted(tally.statuses.items()))}, "
        f"{len(tally.server_errors)} server errors, {len(tally.violations)} schema violations"
    )
    assert tally.requests >= REQUESTS
    assert tally.server_errors == [], "\n".join(tally.server_errors[:20])
    assert tally.violations == [], "\n".join(tally.violations[:20])
