"""`waiting_note` and `countdown`: what a waiting run waits for, until when, and how long is left.

A run that waits (a delayed start, `step.sleep`, `step.wait_for_signal`, the next attempt of a
failed step) is `pending` with `waiting_for` (`kind`, `name`, `until`, `attempt`) on its record and
its table row; these render it, in a run page's callout or a table's cell. The countdown ticks in
the browser (no state update per second).
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars import Var

COUNTDOWN_FORMAT = "d[d] h[h] m[m] s[s]"  # leading zero units are trimmed: "4m 5s", "12s"
# react-moment's duration from now is negative for a time to come, and its format then signs every
# unit and trims no leading zero one ("-0d -23h 59m 51s"): show it without signs or leading zeros.
_UNSIGNED: Var[str] = Var("(text) => String(text).replace(/-/g, '').replace(/^(0[dhm] )+/, '')")


def countdown(until: Var[str] | str, **props: Any) -> rx.Component:
    """The time left until `until` (an ISO time), ticking every second, the time itself as its title."""
    return rx.moment(
        until,
        duration_from_now=True,
        interval=1000,
        format=COUNTDOWN_FORMAT,
        filters=[_UNSIGNED],
        with_title=True,
        title_format="YYYY-MM-DD HH:mm:ss",
        class_name="durably-countdown",
        **props,
    )


def waiting_what(waiting_for: Var) -> rx.Component:
    """What the run waits for, in words: 'the signal "approval"', 'step "nap" to wake', ..."""
    waiting = waiting_for.to(dict)
    name = waiting["name"].to(str)
    return rx.match(
        waiting["kind"].to(str),
        ("signal", rx.fragment('Waiting for the signal "', name, '"')),
        ("sleep", rx.fragment('Sleeping at step "', name, '"')),
        (
            "retry",
            rx.fragment('Step "', name, '" failed (attempt ', waiting["attempt"].to_string(), "): next attempt"),
        ),
        ("delay", rx.fragment("Delayed: starts")),
        rx.fragment("Waiting"),
    )


def waiting_note(waiting_for: Var, **props: Any) -> rx.Component:
    """One line: what the run waits for and, when the wait has an end, when it ends and the time
    left ("Waiting for the signal "approval" · no deadline"). Renders nothing for `None`."""
    waiting = waiting_for.to(dict)
    until = waiting["until"]
    when = rx.cond(
        until,
        rx.fragment(
            " in ",
            countdown(until.to(str)),
            " (",
            rx.moment(until.to(str), format="YYYY-MM-DD HH:mm:ss"),
            ")",
        ),
        rx.cond(waiting["kind"].to(str) == "signal", " · no deadline", ""),
    )
    props.setdefault("size", "1")
    return rx.cond(
        waiting_for,
        rx.text(
            waiting_what(waiting_for),
            when,
            class_name="durably-waiting",
            data_kind=waiting["kind"].to(str),
            **props,
        ),
        rx.fragment(),
    )
