"""`status_counts` and `runs_chart`: a dashboard's header, from a `use_run_stats` state.

Each attaches the state when it mounts (two on one page share it: the second attach takes over the
first's streams, for the same tab and state).
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from ..states import UseRunStatsState
from .status import STATUS_COLORS


def status_counts(stats: type[UseRunStatsState], *, on_select: Any = None) -> rx.Component:
    """One card per status with its number of runs, plus the total; `on_select(status)` (an event
    handler taking the status, "all" for the total) makes the cards filters."""

    def card(label: str, status: str, count: Any, color: str) -> rx.Component:
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
            flex="1",
            min_width="7rem",
        )

    counts = stats.counts.to(dict)  # an object var already; mypy, reading Reflex's overloads, takes it for a list
    return rx.hstack(
        card("All runs", "all", stats.total, "gray"),
        *(card(status.capitalize(), status, counts.get(status, 0), color) for status, color in STATUS_COLORS.items()),
        spacing="3",
        width="100%",
        wrap="wrap",
        on_mount=stats.attach,
    )


def runs_chart(stats: type[UseRunStatsState], *, height: int = 220) -> rx.Component:
    """Runs created per time bucket (UTC), stacked by the status they have now."""
    bars = [
        rx.recharts.bar(
            data_key=status, stack_id="runs", fill=rx.color(color, 9), name=status, is_animation_active=False
        )
        for status, color in STATUS_COLORS.items()
    ]
    return rx.card(
        rx.vstack(
            rx.text("Runs created (UTC)", size="2", weight="bold"),
            rx.recharts.bar_chart(
                *bars,
                rx.recharts.x_axis(data_key="label", font_size=11),
                rx.recharts.y_axis(allow_decimals=False, font_size=11, width=36),
                rx.recharts.graphing_tooltip(),
                rx.recharts.legend(icon_size=10),
                data=stats.series,
                height=height,
                width="100%",
            ),
            width="100%",
        ),
        width="100%",
        class_name="durably-runs-chart",
        on_mount=stats.attach,
    )
