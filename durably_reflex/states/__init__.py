"""Reflex state classes for the seed's hooks: `use_job`, `use_job_run`, `use_job_logs`, `use_runs`,
`use_run_actions`.

Each `use_*` call returns a new state class (one per hook instance); put its `attach` event in a
component's `on_mount` so it follows its streams for the tab, and read its fields as vars:

    job = client.import_csv.use_job()
    rx.vstack(
        rx.button("Import", on_click=job.trigger({"rows": [...]}), disabled=job.is_running),
        rx.text(job.status),
        rx.progress(value=job.progress_percent),
        on_mount=job.attach,
    )

The streams are read on the server by the state's background event, through the HTTP client, so
the API may be mounted on the same Reflex backend (`mount_durably`) or be another server.
"""

from .actions_state import UseRunActionsState
from .consumers import consumer_count
from .hooks import (
    use_job,
    use_job_logs,
    use_job_logs_state,
    use_job_run,
    use_job_run_state,
    use_job_state,
    use_run_actions,
    use_run_actions_state,
    use_run_stats,
    use_run_stats_state,
    use_runs,
    use_runs_state,
)
from .job_state import UseJobState
from .run_state import RunViewState, UseJobLogsState, UseJobRunState
from .runs_state import UseRunsState
from .stats_state import UseRunStatsState

__all__ = [
    "RunViewState",
    "UseJobLogsState",
    "UseJobRunState",
    "UseJobState",
    "UseRunActionsState",
    "UseRunStatsState",
    "UseRunsState",
    "consumer_count",
    "use_job",
    "use_job_logs",
    "use_job_logs_state",
    "use_job_run",
    "use_job_run_state",
    "use_job_state",
    "use_run_actions",
    "use_run_actions_state",
    "use_run_stats",
    "use_run_stats_state",
    "use_runs",
    "use_runs_state",
]
