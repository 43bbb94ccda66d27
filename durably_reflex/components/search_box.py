"""`search_box`: one box that searches a runs table by job, status, labels, run id, creation time,
fields of the input and replays (the language of `states/run_search.py`), applied on Enter.

A text that does not read says why under the box and changes nothing; the box then keeps what was
typed. Applied, the box shows the search in its canonical form (the job and status filters
included, so choosing them elsewhere rewrites it). A "?" beside it lists the terms.
"""

from __future__ import annotations

import reflex as rx

from ..states import UseRunsState

PLACEHOLDER = "Search: job:import-csv status:failed customer=acme input.email=ada@example.com since:1h 01JB2X"
# The terms, as the help lists them: (example, what it finds).
TERMS = (
    ("job:import-csv", "the runs of one job"),
    ("status:failed", "one status: pending, running, completed, failed, cancelled"),
    ("customer=acme", "a label (all labels given must match)"),
    ("input.email=ada@example.com", "a field of the input (input.user.email for a nested one)"),
    ("since:1h  until:2025-01-31", "created in the last 15m, 1h, 7d, 2w…, or from / before a date or time (UTC)"),
    ("replay-of:01JB2X…", "the replays of a run"),
    ("01JB2X", "a word alone: the beginning of a run's id"),
    ('subject="Autumn news"', "quotes around a value with spaces"),
)


def search_box(runs: type[UseRunsState]) -> rx.Component:
    """The search of `runs`, with its error under it."""
    return rx.vstack(
        rx.form(
            rx.hstack(
                rx.input(
                    rx.input.slot(rx.icon("search", size=14)),
                    name="q",
                    value=runs.search_text,
                    on_change=runs.set_search_text,
                    placeholder=PLACEHOLDER,
                    size="2",
                    width="100%",
                    class_name="durably-search",
                    auto_complete="off",
                    spell_check=False,
                ),
                rx.button("Search", type="submit", size="2", variant="soft", class_name="durably-search-submit"),
                _help(),
                width="100%",
                align="center",
                spacing="2",
            ),
            on_submit=runs.apply_search,
            reset_on_submit=False,
            width="100%",
        ),
        rx.cond(
            runs.search_error,
            rx.text(runs.search_error, size="1", color_scheme="red", class_name="durably-search-error"),
            rx.fragment(),
        ),
        spacing="1",
        width="100%",
    )


def _help() -> rx.Component:
    return rx.popover.root(
        rx.popover.trigger(
            rx.icon_button(
                rx.icon("circle-help", size=14),
                variant="ghost",
                size="2",
                type="button",
                title="What the search understands",
                class_name="durably-search-help",
            )
        ),
        rx.popover.content(
            rx.vstack(
                rx.text("Search terms, separated by spaces (all must match):", size="1", weight="medium"),
                *(
                    rx.hstack(
                        rx.code(example, size="1", white_space="nowrap"),
                        rx.text(meaning, size="1", color_scheme="gray"),
                        spacing="2",
                        align="baseline",
                    )
                    for example, meaning in TERMS
                ),
                spacing="2",
            ),
            max_width="36rem",
        ),
    )
