"""Components for Reflex pages (public API), each usable alone, styled with Radix Themes.

They render the hook states of `durably_reflex.states`: pass the state class a `use_*` call made.
A component that needs its state's streams attaches it when it mounts; none assumes any route of
yours (links to a run appear only where you give `run_href`).

    runs = use_runs(client, page_size=20)
    actions = use_run_actions(client)
    run_table(runs, actions=actions, job_names=["import-csv"], run_href="/runs/", searchable=True, selectable=True)
"""

from .approval import signal_form
from .bulk_actions import bulk_actions
from .labels import label_chips, label_links
from .log_viewer import log_viewer
from .run_actions import run_actions
from .run_detail import run_detail
from .run_stats import runs_chart, status_counts
from .run_table import run_table
from .schedules import schedules_table
from .search_box import search_box
from .status import run_progress, status_badge
from .trigger_form import trigger_form
from .waiting import countdown, waiting_note

__all__ = [
    "bulk_actions",
    "countdown",
    "label_chips",
    "label_links",
    "log_viewer",
    "run_actions",
    "run_detail",
    "run_progress",
    "run_table",
    "runs_chart",
    "schedules_table",
    "search_box",
    "signal_form",
    "status_badge",
    "status_counts",
    "trigger_form",
    "waiting_note",
]
