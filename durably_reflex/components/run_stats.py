"""`status_counts` and `runs_chart`: a dashboard's header, from a `use_run_stats` state.

Each attaches the state when it mounts (two on one page share it: the second attach takes over the
first's streams, for the same tab and state, having fetched the counts again); pass `attach=False`
to both and put `stats.attach` in `on_mount` of a component around them to fetch the counts once.
The chart is a compact strip of runs created per time bucket, with the time range to cover (the
state's `RANGES`) chosen beside it. Against a server that counts nothing (no `/stats`: the state's
`stats_offered` is False), both show nothing.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import Var

from ..states import UseRunStatsState
from ..states.stats_state import RANGES
from .status import STATUS_COLORS

RANGE_LABELS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}


def status_counts(
    stats: type[UseRunStatsState], *, on_select: Any = None, selected: Any = None, attach: bool = True
) -> rx.Component:
    """One card per status with its number of runs, plus the total; `on_select(status)` (an event
    handler taking the status, "all" for the total) makes the cards filters, and `selected` (a var:
    the status filtered on, "" for all) marks the card of the current filter. `attach`: attach the
    state on mount."""
    selected_var = None if selected is None else Var.create(selected)

    def card(label: str, status: str, count: Any, color: str) -> rx.Component:
        is_selected = None if selected_var is None else (selected_var == ("" if status == "all" else status))
        return rx.card(
            rx.vstack(
                rx.text(label, size="1", color_scheme="gray", weight="medium"),
                rx.heading(count.to_string(), size="6", color=rx.color(color, 11), class_name="durably-count"),
                spacing="1",
            ),
            on_click=on_select(status) if on_select is not None else None,
            cursor="pointer" if on_select is not None else "default",
            class_name="durably-status-count",
            data_status=status,
            data_selected=is_selected if is_selected is not None else False,
            variant=rx.cond(is_selected, "classic", "surface") if is_selected is not None else "surface",
            size="1",
            flex="1",
            min_width="6rem",
        )

    counts = stats.counts.to(dict)  # an object var already; mypy, reading Reflex's overloads, takes it for a list
    return rx.box(
        rx.cond(
            stats.stats_offered,
            rx.hstack(
                card("All runs", "all", stats.total, "gray"),
                *(
                    card(status.capitalize(), status, counts.get(status, 0), color)
                    for status, color in STATUS_COLORS.items()
                ),
                spacing="3",
                width="100%",
                wrap="wrap",
            ),
            rx.fragment(),
        ),
        width="100%",
        on_mount=stats.attach if attach else None,
    )


def runs_chart(
    stats: type[UseRunStatsState], *, height: int = 110, ranges: bool = True, attach: bool = True
) -> rx.Component:
    """Runs created per time bucket (UTC), stacked by the status they have now (the counts' colours
    say which); `ranges` adds the choice of time range; `attach`: attach the state on mount."""
    bars = [
        rx.recharts.bar(
            data_key=status,
            stack_id="runs",
            fill=rx.color(color, 9),
            name=status,
            is_animation_active=False,
            max_bar_size=18,
        )
        for status, color in STATUS_COLORS.items()
    ]
    picker = rx.select.root(  # not rx.select(...): its class_name would go to the root, which renders no element
        rx.select.trigger(variant="ghost", class_name="durably-chart-range"),
        rx.select.content(*(rx.select.item(RANGE_LABELS.get(name, name), value=name) for name in RANGES)),
        value=stats.current_range,
        on_change=stats.set_range,
        size="1",
    )
    chart = rx.card(
        rx.vstack(
            rx.hstack(
                rx.text("Runs created (UTC)", size="1", weight="bold", color_scheme="gray"),
                rx.spacer(),
                picker if ranges else rx.fragment(),
                width="100%",
                align="center",
            ),
            rx.recharts.bar_chart(
                *bars,
                rx.recharts.x_axis(data_key="label", font_size=10, min_tick_gap=24, tick_line=False),
                rx.recharts.y_axis(allow_decimals=False, font_size=10, width=28, tick_line=False),
                rx.recharts.graphing_tooltip(),
                data=stats.series,
                height=height,
                width="100%",
                margin={"top": 4, "right": 4, "bottom": 0, "left": 0},
                bar_category_gap="15%",
            ),
            width="100%",
            spacing="1",
        ),
        width="100%",
        size="1",
        class_name="durably-runs-chart",
    )
    return rx.box(
        rx.cond(stats.stats_offered, chart, rx.fragment()), width="100%", on_mount=stats.attach if attach else None
    )
