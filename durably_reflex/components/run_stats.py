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
from reflex.utils.imports import ImportVar
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
            RunsBarChart.create(
                data=stats.series,
                bars=[{"key": status, "color": rx.color(color, 9)} for status, color in STATUS_COLORS.items()],
                chart_height=height,
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


class RunsBarChart(rx.Component):
    """The chart's bars, axes and tooltip (recharts), from a module imported once the chart has
    mounted: no part of recharts (360 kB of script) is in the page's first load, and the chart
    renders after the page's first render, not in it (measured: bench/dashboard_browser.py).
    Reflex's own recharts components import their parts statically, so they cannot be deferred.

    `data`: one row per bucket (`label` and a count per status); `bars`: `{key, color}` per
    status, stacked in that order; `chart_height` in pixels."""

    tag = "DurablyRunsBarChart"
    lib_dependencies: list[str] = [rx.recharts.Bar.library or "recharts"]  # noqa: RUF012  (Reflex's field; its pin)

    data: Var[list[dict[str, Any]]]
    bars: Var[list[dict[str, Any]]]
    chart_height: Var[int]

    def add_imports(self) -> dict[str, Any]:
        return {"$/utils/context": ImportVar(tag="ClientSide"), "react": ImportVar(tag="createElement")}

    def add_custom_code(self) -> list[str]:
        return [_RUNS_BAR_CHART_JS]


# ClientSide (Reflex's) renders nothing until the import has resolved, then the chart. The colours,
# margins and tooltip style are those rx.recharts gives by default; ticks in 10px type, so that a
# count of hundreds fits the y axis.
_RUNS_BAR_CHART_JS = """
const DurablyRunsBarChart = ClientSide(() => import("recharts").then(
  ({ Bar, BarChart, ResponsiveContainer, Tooltip, XAxis, YAxis }) => function RunsBarChart({ data, bars, chartHeight }) {
    return createElement(ResponsiveContainer, { width: "100%", height: chartHeight, minWidth: 10, minHeight: 10 },
      createElement(BarChart, { data, height: "100%", width: "100%", barCategoryGap: "15%",
                                margin: { top: 4, right: 4, bottom: 0, left: 0 } },
        ...bars.map(({ key, color }) => createElement(Bar, { key, dataKey: key, name: key, fill: color,
                                                             stackId: "runs", isAnimationActive: false, maxBarSize: 18 })),
        createElement(XAxis, { dataKey: "label", fontSize: 10, minTickGap: 24, tickLine: false, stroke: "var(--gray-9)" }),
        createElement(YAxis, { allowDecimals: false, fontSize: 10, width: 28, tickLine: false, stroke: "var(--gray-9)" }),
        createElement(Tooltip, {
          contentStyle: { background: "var(--gray-1)", borderColor: "var(--gray-4)", borderRadius: "8px" },
          cursor: { strokeWidth: 1, fill: "var(--gray-3)" },
          itemStyle: { color: "var(--gray-12)" },
          labelStyle: { color: "var(--gray-11)" },
        })));
  }), "DurablyRunsBarChart");
"""
