"""Components for Reflex pages, each usable alone, styled with Radix Themes.

They render the hook states of `durably_reflex.states`: pass the state class a `use_*` call made.

    runs = client.use_runs(page_size=20)
    actions = client.use_run_actions()
    run_table(runs, actions=actions, job_names=["import-csv"])
"""

from .log_viewer import log_viewer
from .run_actions import run_actions
from .run_detail import run_detail
from .run_stats import runs_chart, status_counts
from .run_table import run_table
from .status import run_progress, status_badge
from .trigger_form import trigger_form

__all__ = [
    "log_viewer",
    "run_actions",
    "run_detail",
    "run_progress",
    "run_table",
    "runs_chart",
    "status_badge",
    "status_counts",
    "trigger_form",
]
