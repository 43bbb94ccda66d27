"""The page's URL query as the place a view's filters live, so a filtered view can be shared,
bookmarked and reloaded.

A state reads its filters from `self.router.url.query_parameters` when it attaches, and writes them
back with `replace_query`: the browser's `history.replaceState`, no navigation (the page stays
mounted, nothing is fetched again) and no new history entry per click. Reflex reads the live query
for every later event (see `withRouterData` in its state.js), so the backend and the address bar agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import reflex as rx
from reflex.event import EventSpec


def replace_query(changes: Mapping[str, str]) -> EventSpec:
    """An event that sets each query parameter of the page's URL to its value ("" removes it),
    keeping the others, the path and the fragment."""
    return rx.call_script(
        "(() => {"
        " const url = new URL(window.location.href);"
        f" for (const [name, value] of Object.entries({json.dumps(dict(changes))})) {{"
        " if (value) { url.searchParams.set(name, value); } else { url.searchParams.delete(name); } }"
        " window.history.replaceState(window.history.state, '', url);"
        " })()"
    )


def query_value(state: rx.State, name: str) -> str:
    """The page URL's query parameter `name` as the state's current event saw it ("" if absent)."""
    return state.router.url.query_parameters.get(name, "")
