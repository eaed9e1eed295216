"""The one place that reads SimPy's private state: the event queue, the clock, an event's value.

The exact steady state (:mod:`sim.steady`) must compare everything the future depends on and
move it whole periods ahead. SimPy has no public API for that, so every private-field access
lives here, against SimPy 4.1 (``Environment._queue``: a heap of ``(time, priority, event id,
event)``; ``Environment._now``; ``Event._value``). A change in SimPy shows up in this module's
tests, not as a silently wrong skip.
"""

from __future__ import annotations

from typing import Any

import simpy


def pending_events(env: simpy.Environment) -> list[tuple[float, simpy.Event]]:
    """Every scheduled event with its time, in the order SimPy will process them."""
    return [(when, event) for when, _priority, _eid, event in sorted(env._queue)]


def event_value(event: simpy.Event) -> Any:
    """What a triggered event carries (None if it carries nothing yet)."""
    return getattr(event, "_value", None)


def shift_time(env: simpy.Environment, delta_s: float) -> None:
    """Move the clock and every scheduled event ``delta_s`` later (order and ids unchanged)."""
    env._now += delta_s
    env._queue[:] = [(when + delta_s, priority, eid, event) for when, priority, eid, event in env._queue]
