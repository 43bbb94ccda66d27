"""The `use_*` functions: a new state class per call, configured for one hook instance.

A React hook called twice gives two independent states; here each call makes a new concrete Reflex
state class from the hook's mixin, with the options as class attributes (the way
`rx.ComponentState.create` makes one state per component). Names are numbered in call order, which
is the same in every process that imports the app, so the backend and the compiled frontend agree.

For a state to extend, use the `*_state` variants: they return a configured *mixin*, and a class
statement that subclasses it makes the concrete state:

    class MyRuns(client.use_runs_state(page_size=20)):
        selected: str = ""
"""

from __future__ import annotations

import itertools
import re
from typing import Any, ClassVar

import reflex as rx
import reflex.istate.dynamic

from ..client import DurablyClient, JobClient
from .actions_state import UseRunActionsState
from .job_state import UseJobState
from .run_state import UseJobLogsState, UseJobRunState
from .runs_state import UseRunsState
from .stats_state import UseRunStatsState

_numbers = itertools.count(1)


def configured_mixin(base: type[rx.State], label: str, **options: Any) -> type[rx.State]:
    """A mixin of `base` with `options` as class attributes (None options keep the default)."""
    attributes = {key: value for key, value in options.items() if value is not None}
    namespace = {
        "__module__": base.__module__,
        "__annotations__": dict.fromkeys(attributes, ClassVar[Any]),  # configuration, not state vars
        **attributes,
    }
    return type(f"{base.__name__}_{_slug(label)}", (base,), namespace, mixin=True)


def new_state(mixin: type[rx.State], label: str) -> type[rx.State]:
    """A concrete state class of `mixin`, with a process-stable unique name."""
    name = f"durably_{_slug(label)}_{next(_numbers)}"
    state = type(name, (mixin, rx.State), {"__module__": reflex.istate.dynamic.__name__})
    setattr(reflex.istate.dynamic, name, state)  # pickling finds dynamic states there
    return state


def _slug(text: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_").lower() or "state"


# -- the hooks ----------------------------------------------------------------------------------------
def use_job_state(
    client: DurablyClient,
    job: JobClient | str,
    *,
    initial_run_id: str | None = None,
    auto_resume: bool = True,
    follow_latest: bool = True,
    max_logs: int | None = None,
) -> type[UseJobState]:
    """A mixin of `UseJobState` for one job (a typed `JobClient`, or a job name)."""
    typed = job if isinstance(job, JobClient) else None
    job_name = job.name if isinstance(job, JobClient) else job
    return configured_mixin(
        UseJobState, f"job_{job_name}", client=client, job=typed, job_name=job_name, initial_run_id=initial_run_id,
        auto_resume=auto_resume, follow_latest=follow_latest, max_logs=max_logs,
    )  # fmt: skip


def use_job(client: DurablyClient, job: JobClient | str, **options: Any) -> type[UseJobState]:
    """`use_job`: a new state to trigger `job` and watch its current run (see `UseJobState`)."""
    return new_state(use_job_state(client, job, **options), "job")


def use_job_run_state(
    client: DurablyClient,
    run_id: str | None = None,
    *,
    max_logs: int | None = None,
    on_start: Any = None,
    on_complete: Any = None,
    on_fail: Any = None,
) -> type[UseJobRunState]:
    """A mixin of `UseJobRunState` (the run may also be given at `attach(run_id)`)."""
    return configured_mixin(
        UseJobRunState, "job_run", client=client, default_run_id=run_id, max_logs=max_logs,
        on_start=on_start, on_complete=on_complete, on_fail=on_fail,
    )  # fmt: skip


def use_job_run(client: DurablyClient, run_id: str | None = None, **options: Any) -> type[UseJobRunState]:
    """`use_job_run`: a new state that follows one run (see `UseJobRunState`)."""
    return new_state(use_job_run_state(client, run_id, **options), "job_run")


def use_job_logs_state(client: DurablyClient, run_id: str | None = None, *, max_logs: int | None = None) -> type[UseJobLogsState]:
    """A mixin of `UseJobLogsState`."""
    return configured_mixin(UseJobLogsState, "job_logs", client=client, default_run_id=run_id, max_logs=max_logs)


def use_job_logs(client: DurablyClient, run_id: str | None = None, **options: Any) -> type[UseJobLogsState]:
    """`use_job_logs`: a new state with one run's logs, history then live (see `UseJobLogsState`)."""
    return new_state(use_job_logs_state(client, run_id, **options), "job_logs")


def use_runs_state(
    client: DurablyClient,
    job: JobClient | str | None = None,
    *,
    status: str | None = None,
    page_size: int | None = None,
) -> type[UseRunsState]:
    """A mixin of `UseRunsState`: every job's runs, or one job's (typed with a `JobClient`)."""
    typed = job if isinstance(job, JobClient) else None
    job_name = job.name if isinstance(job, JobClient) else job
    return configured_mixin(
        UseRunsState, f"runs_{job_name or 'all'}", client=client, job=typed, job_name=job_name, status=status,
        page_size=page_size,
    )  # fmt: skip


def use_runs(client: DurablyClient, job: JobClient | str | None = None, **options: Any) -> type[UseRunsState]:
    """`use_runs`: a new state with one page of runs, live on the first page (see `UseRunsState`)."""
    return new_state(use_runs_state(client, job, **options), "runs")


def use_run_actions_state(client: DurablyClient) -> type[UseRunActionsState]:
    """A mixin of `UseRunActionsState`."""
    return configured_mixin(UseRunActionsState, "run_actions", client=client)


def use_run_actions(client: DurablyClient) -> type[UseRunActionsState]:
    """`use_run_actions`: a new state to retry, cancel, delete and read runs."""
    return new_state(use_run_actions_state(client), "run_actions")


def use_run_stats_state(
    client: DurablyClient, job: JobClient | str | None = None, *, bucket_seconds: int | None = None, buckets: int | None = None
) -> type[UseRunStatsState]:
    """A mixin of `UseRunStatsState` (every job's runs, or one job's)."""
    job_name = job.name if isinstance(job, JobClient) else job
    return configured_mixin(
        UseRunStatsState, f"run_stats_{job_name or 'all'}", client=client, job_name=job_name,
        bucket_seconds=bucket_seconds, buckets=buckets,
    )  # fmt: skip


def use_run_stats(client: DurablyClient, job: JobClient | str | None = None, **options: Any) -> type[UseRunStatsState]:
    """`use_run_stats`: a new state with run counts per status and over time, kept current."""
    return new_state(use_run_stats_state(client, job, **options), "run_stats")
