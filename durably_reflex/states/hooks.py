"""The `use_*` functions: a new state class per call, configured for one hook instance.

A React hook called twice gives two independent states; here each call makes a new concrete Reflex
state class from the hook's mixin, with the options as class attributes (the way
`rx.ComponentState.create` makes one state per component):

    client = create_durably_client(durably)
    importer = use_job(client.import_csv)          # typed: input validated against the job's model
    runs = use_runs(client, page_size=20)          # every job's runs (or `use_runs(client.import_csv)`)

For a state to extend, the `*_state` variants return a configured *mixin*, and a class statement
that subclasses it together with `rx.State` makes the concrete state (Reflex takes a class whose
state bases are all mixins for a mixin too):

    class MyRuns(use_runs_state(client, page_size=20), rx.State):
        selected: str = ""

Where the states are named. The backend and the compiled frontend must agree on every state's name,
and they are separate processes. A state is named after the place that called `use_*` (module and
line, and a count for a place called more than once, say in a loop), not after the order of all
calls: a hook called inside a page function, or in modules imported in another order, keeps its
name. `name=` pins it explicitly. Either way, make the calls while the app is being built (at module
level, or in a page function): a state created once the app serves has no counterpart in the page.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypedDict, TypeVar, Unpack, overload

import reflex as rx
import reflex.istate.dynamic

from .._client import DurablyClient, JobClient
from .actions_state import UseRunActionsState
from .base import DurablyState
from .job_state import UseJobState
from .run_state import UseJobLogsState, UseJobRunState
from .runs_state import UseRunsState
from .stats_state import UseRunStatsState

StateT = TypeVar("StateT", bound=DurablyState)
HeadersFunction = Callable[[Any], Mapping[str, str]]

_calls_per_site: Counter[tuple[str, int, str]] = Counter()
_PACKAGE = __name__.rpartition(".")[0]  # durably_reflex.states: frames inside it are not call sites


class StateNameError(ValueError):
    """A `use_*` call asked for a state name that another state already has."""


def configured_mixin(base: type[StateT], label: str, **options: Any) -> type[StateT]:
    """A mixin of `base` with `options` as class attributes (None options keep the default)."""
    attributes = {key: value for key, value in options.items() if value is not None}
    if "request_headers" in attributes:  # a plain function would become an event handler
        attributes["request_headers"] = staticmethod(attributes["request_headers"])
    if "forward_headers" in attributes:
        attributes["forward_headers"] = tuple(name.lower() for name in attributes["forward_headers"])
    namespace = {
        "__module__": base.__module__,
        "__annotations__": dict.fromkeys(attributes, ClassVar[Any]),  # configuration, not state vars
        **attributes,
    }
    return type(f"{base.__name__}_{_slug(label)}", (base,), namespace, mixin=True)


def new_state(mixin: type[StateT], label: str, name: str | None = None) -> type[StateT]:
    """A concrete state class of `mixin`, named `durably_<name>` or after its call site."""
    state_name = f"durably_{_slug(name)}" if name else _site_name(label)
    if hasattr(reflex.istate.dynamic, state_name):
        raise StateNameError(f"a durably state named {state_name!r} exists already: give each use_* call its own name=")
    state = type(state_name, (mixin, rx.State), {"__module__": reflex.istate.dynamic.__name__})
    setattr(reflex.istate.dynamic, state_name, state)  # pickling finds dynamic states there
    return state


def _site_name(label: str) -> str:
    """`durably_<label>_<hash of the calling module and line>`, `_2`, `_3`... for later calls there."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(_PACKAGE):
        frame = frame.f_back
    site = (frame.f_globals.get("__name__", "?"), frame.f_lineno, label)
    _calls_per_site[site] += 1
    digest = hashlib.sha1(f"{site[0]}:{site[1]}:{label}".encode()).hexdigest()[:10]
    count = _calls_per_site[site]
    return f"durably_{_slug(label)}_{digest}" + (f"_{count}" if count > 1 else "")


def _slug(text: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_").lower() or "state"


def _job_of(
    source: DurablyClient | JobClient, job_name: str | None
) -> tuple[DurablyClient, JobClient | None, str | None]:
    """(client, typed job or None, job name or None) from a hook's first arguments."""
    if isinstance(source, JobClient):
        if job_name is not None and job_name != source.name:
            raise ValueError(f"job_name={job_name!r} given with the job client of {source.name!r}")
        return source.client, source, source.name
    return source, None, job_name


# -- the hooks ----------------------------------------------------------------------------------------
class JobOptions(TypedDict, total=False):
    """The options of `use_job_state` and `use_job` (see `UseJobState`), for their overloads."""

    initial_run_id: str | None
    auto_resume: bool
    follow_latest: bool
    max_logs: int | None
    forward_headers: tuple[str, ...] | None
    request_headers: HeadersFunction | None


@overload
def use_job_state(source: JobClient, job_name: None = None, **options: Unpack[JobOptions]) -> type[UseJobState]: ...
@overload
def use_job_state(source: DurablyClient, job_name: str, **options: Unpack[JobOptions]) -> type[UseJobState]: ...
def use_job_state(
    source: DurablyClient | JobClient, job_name: str | None = None, **options: Unpack[JobOptions]
) -> type[UseJobState]:
    """A mixin of `UseJobState` for one job: `use_job_state(client.import_csv)` (typed), or
    `use_job_state(client, "import-csv")`."""
    return _job_state(source, job_name, **options)


def _job_state(
    source: DurablyClient | JobClient,
    job_name: str | None = None,
    *,
    initial_run_id: str | None = None,
    auto_resume: bool = True,
    follow_latest: bool = True,
    max_logs: int | None = None,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseJobState]:
    """`use_job_state` for either form of its arguments (which its overloads tell apart for callers)."""
    client, job, name = _job_of(source, job_name)
    if name is None:
        raise TypeError("use_job needs a job: use_job(client.<job>) or use_job(client, job_name)")
    return configured_mixin(
        UseJobState,
        f"job_{name}",
        client=client,
        job=job,
        job_name=name,
        initial_run_id=initial_run_id,
        auto_resume=auto_resume,
        follow_latest=follow_latest,
        max_logs=max_logs,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


@overload
def use_job(
    source: JobClient, job_name: None = None, *, name: str | None = None, **options: Unpack[JobOptions]
) -> type[UseJobState]: ...
@overload
def use_job(
    source: DurablyClient, job_name: str, *, name: str | None = None, **options: Unpack[JobOptions]
) -> type[UseJobState]: ...
def use_job(
    source: DurablyClient | JobClient,
    job_name: str | None = None,
    *,
    name: str | None = None,
    **options: Unpack[JobOptions],
) -> type[UseJobState]:
    """`use_job`: a new state to trigger a job and watch its current run (see `UseJobState`)."""
    return new_state(_job_state(source, job_name, **options), "job", name)


def use_job_run_state(
    client: DurablyClient,
    run_id: str | None = None,
    *,
    max_logs: int | None = None,
    history: bool | None = None,
    on_start: Any = None,
    on_complete: Any = None,
    on_fail: Any = None,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseJobRunState]:
    """A mixin of `UseJobRunState` (the run may also be given at `attach(run_id)`); `history`: also
    read the run's earlier attempts and its replays (`attempts`, `replays`)."""
    return configured_mixin(
        UseJobRunState,
        "job_run",
        client=client,
        default_run_id=run_id,
        max_logs=max_logs,
        history=history,
        on_start=on_start,
        on_complete=on_complete,
        on_fail=on_fail,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


def use_job_run(
    client: DurablyClient, run_id: str | None = None, *, name: str | None = None, **options: Any
) -> type[UseJobRunState]:
    """`use_job_run`: a new state that follows one run (see `UseJobRunState`)."""
    return new_state(use_job_run_state(client, run_id, **options), "job_run", name)


def use_job_logs_state(
    client: DurablyClient,
    run_id: str | None = None,
    *,
    max_logs: int | None = None,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseJobLogsState]:
    """A mixin of `UseJobLogsState`."""
    return configured_mixin(
        UseJobLogsState,
        "job_logs",
        client=client,
        default_run_id=run_id,
        max_logs=max_logs,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


def use_job_logs(
    client: DurablyClient, run_id: str | None = None, *, name: str | None = None, **options: Any
) -> type[UseJobLogsState]:
    """`use_job_logs`: a new state with one run's logs, history then live (see `UseJobLogsState`)."""
    return new_state(use_job_logs_state(client, run_id, **options), "job_logs", name)


def use_runs_state(
    source: DurablyClient | JobClient,
    job_name: str | None = None,
    *,
    status: str | None = None,
    page_size: int | None = None,
    url_query: bool | None = None,
    on_job_filter: Any = None,
    bulk_batch_size: int | None = None,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseRunsState]:
    """A mixin of `UseRunsState`: every job's runs (`use_runs_state(client)`, `job_name` the
    initial filter), or one job's, typed (`use_runs_state(client.import_csv)`); `url_query`: the
    filters and the search live in the page's URL; `on_job_filter`: an event handler given the job
    filter whenever the user changes it (a `use_run_stats` state's `set_job_filter`, so that its
    counts follow the table); `bulk_batch_size`: runs per transaction of its bulk actions (None:
    the server's default)."""
    client, job, name = _job_of(source, job_name)
    return configured_mixin(
        UseRunsState,
        f"runs_{name or 'all'}",
        client=client,
        job=job,
        job_name=name,
        status=status,
        page_size=page_size,
        url_query=url_query,
        on_job_filter=on_job_filter,
        bulk_batch_size=bulk_batch_size,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


def use_runs(
    source: DurablyClient | JobClient, job_name: str | None = None, *, name: str | None = None, **options: Any
) -> type[UseRunsState]:
    """`use_runs`: a new state with one page of runs, live on the first page (see `UseRunsState`)."""
    return new_state(use_runs_state(source, job_name, **options), "runs", name)


def use_run_actions_state(
    client: DurablyClient,
    *,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseRunActionsState]:
    """A mixin of `UseRunActionsState`."""
    return configured_mixin(
        UseRunActionsState,
        "run_actions",
        client=client,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


def use_run_actions(client: DurablyClient, *, name: str | None = None, **options: Any) -> type[UseRunActionsState]:
    """`use_run_actions`: a new state to retry, cancel, delete and read runs."""
    return new_state(use_run_actions_state(client, **options), "run_actions", name)


def use_run_stats_state(
    source: DurablyClient | JobClient,
    job_name: str | None = None,
    *,
    bucket_seconds: int | None = None,
    buckets: int | None = None,
    url_query: bool | None = None,
    forward_headers: tuple[str, ...] | None = None,
    request_headers: HeadersFunction | None = None,
) -> type[UseRunStatsState]:
    """A mixin of `UseRunStatsState` (every job's runs, or one job's); `url_query`: its job filter
    and range live in the page's URL."""
    client, _, name = _job_of(source, job_name)
    return configured_mixin(
        UseRunStatsState,
        f"run_stats_{name or 'all'}",
        client=client,
        job_name=name,
        bucket_seconds=bucket_seconds,
        buckets=buckets,
        url_query=url_query,
        forward_headers=forward_headers,
        request_headers=request_headers,
    )


def use_run_stats(
    source: DurablyClient | JobClient, job_name: str | None = None, *, name: str | None = None, **options: Any
) -> type[UseRunStatsState]:
    """`use_run_stats`: a new state with run counts per status and over time, kept current."""
    return new_state(use_run_stats_state(source, job_name, **options), "run_stats", name)
