"""Example jobs the dashboard ships with, each showing one thing a newcomer wants to see.

- `import-csv`: rows imported one step each, with progress and logs (a warning for a bad row).
- `publish-report`: fails at its "render" step the first time; retry it and it completes, reusing
  the steps that had already succeeded.
- `slow-cleanup`: a minute of slow steps, to cancel midway (the running step stops at once).
- `send-newsletter`: a typed, nested input (enum, lists, a nested object, a list of objects), so
  the trigger form has something to generate; its progress counts recipients sent.
- `approve-expense`: waits (holding no worker) for the "approval" signal, whose model the job
  declares: its run page shows the form to approve or reject it.

The dashboard serves the engine named by `$DURABLY_APP` ("module:attribute"), this module's
`durably` by default: point it at your own to watch your jobs.
"""

from __future__ import annotations

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from durably_reflex import SignalTimeoutError, StepContext, create_durably, define_job


# -- import-csv ---------------------------------------------------------------------------------------
class Contact(BaseModel):
    name: str
    email: str = ""


class ImportCsvInput(BaseModel):
    rows: list[Contact] = Field(
        default=[
            Contact(name="Ada Lovelace", email="ada@example.com"),
            Contact(name="Grace Hopper", email="grace@example.com"),
            Contact(name="Alan Turing", email=""),
            Contact(name="Katherine Johnson", email="katherine@example.com"),
            Contact(name="Edsger Dijkstra", email="edsger@example.com"),
        ],  # a default (not a factory) appears in the schema, so the form shows it
        description="The contacts to import, one step each.",
    )
    seconds_per_row: float = Field(0.6, ge=0, le=10, description="How slowly to go, to watch it happen.")


class ImportCsvOutput(BaseModel):
    imported: int
    skipped: list[str]


@define_job(name="import-csv", input=ImportCsvInput, output=ImportCsvOutput)
async def import_csv(step: StepContext, input: ImportCsvInput) -> ImportCsvOutput:
    skipped: list[str] = []
    for index, row in enumerate(input.rows):

        def import_row(row: Contact = row) -> bool:
            time.sleep(input.seconds_per_row)
            return bool(row.email)

        if await step.run(f"row-{index + 1}", import_row):
            step.log.info(f"imported {row.name}", {"email": row.email})
        else:
            skipped.append(row.name)
            step.log.warn(f"skipped {row.name}: no email address", {"row": index + 1})
        step.progress(index + 1, len(input.rows), f"{index + 1} of {len(input.rows)} rows")
    return ImportCsvOutput(imported=len(input.rows) - len(skipped), skipped=skipped)


# -- publish-report -----------------------------------------------------------------------------------
class ReportInput(BaseModel):
    title: str = "Quarterly numbers"
    fail_first_attempt: bool = Field(True, description="Fail at the render step once, to show retry.")


_failed_once: set[str] = set()  # runs whose render step has failed once in this process


@define_job(name="publish-report", input=ReportInput)
async def publish_report(step: StepContext, input: ReportInput) -> dict[str, str]:
    figures = await step.run("fetch-figures", lambda: {"revenue": 1200, "costs": 800})
    step.log.info("figures fetched", figures)

    def render() -> str:
        time.sleep(0.5)
        if input.fail_first_attempt and step.run_id not in _failed_once:
            _failed_once.add(step.run_id)
            raise RuntimeError("the renderer ran out of ink (press Retry: fetch-figures is not run again)")
        return f"{input.title}: profit {figures['revenue'] - figures['costs']}"

    page = await step.run("render", render)
    url = await step.run("publish", lambda: f"https://reports.example.com/{step.run_id.lower()}")
    step.log.info("published", {"url": url, "page": page})
    return {"url": url}


# -- slow-cleanup -------------------------------------------------------------------------------------
class CleanupInput(BaseModel):
    batches: int = Field(60, ge=1, le=3600)
    seconds_per_batch: float = Field(1.0, ge=0, le=60)


@define_job(name="slow-cleanup", input=CleanupInput)
async def slow_cleanup(step: StepContext, input: CleanupInput) -> dict[str, int]:
    for batch in range(input.batches):

        def clean(batch: int = batch) -> int:
            # Wait on the signal rather than sleeping: a cancel stops the step at once.
            step.signal.wait(input.seconds_per_batch)
            return batch

        await step.run(f"batch-{batch + 1}", clean)
        step.progress(batch + 1, input.batches, f"batch {batch + 1} of {input.batches}")
        if batch % 10 == 9:
            step.log.info(f"{batch + 1} batches cleaned")
    return {"batches": input.batches}


# -- send-newsletter ----------------------------------------------------------------------------------
class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Audience(BaseModel):
    segment: Literal["everyone", "customers", "trials"] = "customers"
    countries: list[str] = Field(default=["NL", "JP"], description="ISO country codes")


class Recipient(BaseModel):
    email: str
    name: str | None = None


class NewsletterInput(BaseModel):
    subject: str = Field(min_length=3, description="The subject line")
    priority: Priority = Priority.NORMAL
    audience: Audience = Audience()
    extra_recipients: list[Recipient] = []
    dry_run: bool = True


class NewsletterOutput(BaseModel):
    sent: int
    dry_run: bool


NEWSLETTER_BATCHES = 4


def batch_sizes(total: int, batches: int) -> list[int]:
    """`total` split into `batches` sizes that differ by one at most and add up to `total` (every
    recipient is sent to, however the audience divides)."""
    size, extra = divmod(total, batches)
    return [size + (1 if batch < extra else 0) for batch in range(batches)]


@define_job(name="send-newsletter", input=NewsletterInput, output=NewsletterOutput)
async def send_newsletter(step: StepContext, input: NewsletterInput) -> NewsletterOutput:
    audience = await step.run(
        "select-audience", lambda: 40 * len(input.audience.countries) + len(input.extra_recipients)
    )
    step.log.info(f"{audience} recipients in {input.audience.segment}", input.audience.model_dump())
    sent = 0
    for batch, size in enumerate(batch_sizes(audience, NEWSLETTER_BATCHES)):

        def send(size: int = size) -> int:
            time.sleep(0.4)
            return size

        sent += await step.run(f"send-batch-{batch + 1}", send)
        step.progress(sent, audience, f"{sent} of {audience} {'simulated' if input.dry_run else 'sent'}")
    return NewsletterOutput(sent=sent, dry_run=input.dry_run)


def default_database() -> str:
    """`.durably/durably.db` under the working directory: a hidden directory, because Reflex's dev
    server restarts the backend when a watched file changes, and SQLite's -wal and -shm files
    change at every write."""
    Path(".durably").mkdir(exist_ok=True)
    return "sqlite:///.durably/durably.db"


# -- approve-expense ----------------------------------------------------------------------------------
class Expense(BaseModel):
    description: str = "Team dinner"
    amount: float = Field(84.5, gt=0, description="In euros")


class Approval(BaseModel):
    approved: bool = Field(description="Approve the expense")
    approver: str = Field(min_length=1, description="Who decides")
    comment: str = ""


APPROVAL_DEADLINE = 7 * 24 * 3600  # seconds: unanswered for a week, the expense is rejected


@define_job(name="approve-expense", input=Expense, signals={"approval": Approval})
async def approve_expense(step: StepContext, input: Expense) -> dict[str, str | bool]:
    await step.run("submit", lambda: f"{input.description}: {input.amount:.2f} EUR")
    step.log.info("waiting for an approval", {"amount": input.amount})
    try:
        decision = await step.wait_for_signal("approval", timeout=APPROVAL_DEADLINE)  # an Approval
    except SignalTimeoutError:
        decision = Approval(approved=False, approver="nobody", comment="no answer within a week")
    if decision.approved:
        await step.run("book", lambda: f"booked {input.amount:.2f} EUR")
    step.log.info("approved" if decision.approved else "rejected", decision.model_dump())
    return {"approved": decision.approved, "approver": decision.approver}


durably = create_durably(os.environ.get("DURABLY_DB_URL") or default_database(), max_concurrent_runs=4).register(
    import_csv=import_csv,
    publish_report=publish_report,
    slow_cleanup=slow_cleanup,
    send_newsletter=send_newsletter,
    approve_expense=approve_expense,
)
