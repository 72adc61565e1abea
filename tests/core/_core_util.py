"""Helpers shared by the pure kernel tests (no storage, no event loop)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, get_args

from perdure._core import _history as h
from perdure._core._driver import Driver
from perdure._registry import Registry, name_of
from perdure._turn import build_driver
from perdure.testing import ReplayResult, Simulator, replay

E = TypeVar("E", bound=h.Event)

#: The cancel events as one type (they share ``reason``), for field access.
Cancel = (
    h.ActivityCancelRequested
    | h.TimerCancelled
    | h.EventWaitCancelled
    | h.SubOrchestrationCancelRequested
)
assert set(get_args(Cancel)) == h.CANCEL_TYPES  # the classes with role "cancel"


def reset(items: list[Any]) -> None:
    """Clear a test log after collecting garbage.

    Drivers of unfinished simulations left by earlier tests close their
    coroutines when collected, running their ``finally`` blocks.
    """
    gc.collect()
    items.clear()


def row(event: h.Event) -> tuple[Any, ...]:
    """(id, type, name or None, source id, scope or None) of one event."""
    return (
        event.event_id,
        event.type,
        getattr(event, "name", None),
        event.source_event_id,
        getattr(event, "scope", None),
    )


def rows(history: Iterable[h.Event]) -> list[tuple[Any, ...]]:
    return [row(e) for e in history]


def types(history: Iterable[h.Event]) -> list[str]:
    return [e.type for e in history]


def of_type(history: Iterable[h.Event], kind: type[E]) -> list[E]:
    """Events of one class, in history order."""
    return [e for e in history if isinstance(e, kind)]


def scheduled(history: Iterable[h.Event]) -> list[tuple[str, Any, str]]:
    """(name, input, scope) of every ActivityScheduled, in order."""
    return [
        (e.name, e.input, e.scope)
        for e in history
        if isinstance(e, h.ActivityScheduled)
    ]


def cancelled_ids(history: Iterable[h.Event]) -> list[int]:
    """Source ids of the cancel events, in history order."""
    return [e.source_event_id or 0 for e in cancels(history)]


def cancels(history: Iterable[h.Event]) -> list[Cancel]:
    """The cancel events, in history order."""
    return [e for e in history if isinstance(e, Cancel)]


def by_name(sim: Simulator, name: str) -> int:
    """Event id of the one open work item called *name*."""
    found = [p.event_id for p in sim.pending() if p.name == name]
    assert len(found) == 1, (name, sim.pending())
    return found[0]


def fresh_driver(
    orchestration: Callable[..., Any], history: list[h.Event], instance_id: str
) -> Driver:
    """A driver built the way the runtime builds one on a cache miss."""
    registry = Registry([orchestration])
    start = history[0]
    assert isinstance(start, h.OrchestrationStarted)
    odef = registry.orchestration(name_of(orchestration))
    assert odef.name == start.name
    return build_driver(registry, instance_id, 1, start)


def check_replay(orchestration: Callable[..., Any], sim: Simulator) -> ReplayResult:
    """Replay *sim*'s history from scratch once: it must reach the same outcome.

    `replay` raises if the code schedules or cancels anything the history
    does not record, so a pass also means "no new events".
    """
    result = replay(orchestration, sim.history, instance_id=sim.instance_id)
    expected = sim.result
    assert (result.status, result.output, result.error) == (
        expected.status,
        expected.output,
        expected.error,
    )
    return result


def new_events_after_replay(
    orchestration: Callable[..., Any], history: list[h.Event], instance_id: str
) -> list[h.Event]:
    """Replay in a fresh driver, then run an empty turn: what would it add?"""
    driver = fresh_driver(orchestration, history, instance_id)
    driver.replay(history)
    driver.begin_turn(history[-1].timestamp)
    return driver.end_turn().events
