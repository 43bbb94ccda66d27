"""Reflex state classes for the seed's hooks (public API): `use_job`, `use_job_run`,
`use_job_logs`, `use_runs`, `use_run_actions`; `use_run_stats` for dashboards, `use_signal` to send
waiting runs their signals (approvals), `use_schedules` for schedules.

Each `use_*` call returns a new state class (one per hook instance); put its `attach` event in a
component's `on_mount` so it follows its streams for the tab (the bundled components do it
themselves), and read its fields as vars:

    client = create_durably_client(durably)
    job = use_job(client.import_csv)
    rx.vstack(
        rx.button("Import", on_click=job.trigger({"rows": [...]}), disabled=job.is_running),
        rx.text(job.status),
        rx.progress(value=job.progress_percent),
        on_mount=job.attach,
    )

The streams are read on the server by the state's background event, through the HTTP client, so
the API may be mounted on the same Reflex backend (`mount_durably`) or be another server. To extend
a state, subclass the mixin a `*_state` function returns; what a subclass may override is listed in
`base.EXTENSION_POINTS` and documented on each class. The names in `__all__` are the public API;
the modules behind them are not.
"""

from .actions_state import UseRunActionsState
from .base import EXTENSION_POINTS, DurablyState
from .consumers import consumer_count
from .hooks import (
    StateNameError,
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
from .schedules_state import UseSchedulesState, use_schedules, use_schedules_state
from .signal_state import UseSignalState, use_signal, use_signal_state
from .stats_state import UseRunStatsState

__all__ = [
    "EXTENSION_POINTS",
    "DurablyState",
    "RunViewState",
    "StateNameError",
    "UseJobLogsState",
    "UseJobRunState",
    "UseJobState",
    "UseRunActionsState",
    "UseRunStatsState",
    "UseRunsState",
    "UseSchedulesState",
    "UseSignalState",
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
    "use_schedules",
    "use_schedules_state",
    "use_signal",
    "use_signal_state",
]
