"""Emitted actions: what orchestration code scheduled, and how replay checks it.

A scheduling call (and ``set_custom_status``, a detached start, the first
live ``patched``) emits an `Action` into the driver's FIFO: the event it will
become, built with ``event_id`` 0. Replay compares every scheduling event of
the history with the oldest action (`check_match`, DESIGN §2); a new turn
stamps the actions left with the next event ids (``Driver.end_turn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import NondeterminismError
from . import _history as h
from ._tasks import WorkFuture

__all__ = [
    "Action",
    "cancel_mismatch",
    "check_match",
    "describe",
    "leftover",
    "not_in_history",
    "terminal_mismatch",
]


def describe(event: h.Event) -> str:
    """``Type(key=value, ...)`` of the fields replay matches, for errors."""
    detail = ", ".join(f"{k}={getattr(event, k)!r}" for k in event.match_keys)
    return f"{event.type}({detail})"


@dataclass(slots=True)
class Action:
    """A scheduling event code emitted, not yet bound to an event id.

    ``event`` is that event built with ``event_id`` 0: replay compares it
    with the next scheduling event of the history (its class's
    ``match_keys``), a new turn stamps it with the next id.
    """

    event: h.Event
    # The work it creates (None for custom status, detached starts, markers).
    work: WorkFuture[Any] | None
    # Activities: options for the runtime (retry, timeout), not in history.
    options: Any = None


def check_match(event: h.Event, action: Action | None) -> None:
    """Check that stored scheduling *event* records the emitted *action*.

    Raises:
        NondeterminismError: Nothing was emitted at this point, or something
            else (another kind, or different ``match_keys`` values).
    """
    if action is None:
        raise NondeterminismError(
            f"history has {describe(event)} (event {event.event_id}), "
            "but the orchestration did not schedule anything at this point "
            "(code changed?)"
        )
    emitted = action.event
    same = type(emitted) is type(event) and all(
        getattr(emitted, k) == getattr(event, k) for k in event.match_keys
    )
    if (
        same
        and isinstance(emitted, h.SubOrchestrationScheduled)
        and emitted.instance_id  # explicit: must match, else derived
    ):
        same = emitted.instance_id == getattr(event, "instance_id", None)
    if not same:
        raise NondeterminismError(
            f"history has {describe(event)} (event {event.event_id}), "
            f"but the orchestration scheduled {describe(emitted)}"
        )


def not_in_history(action: Action) -> NondeterminismError:
    """The error for an action still unmatched when replay ends."""
    return NondeterminismError(
        f"the orchestration scheduled {describe(action.event)}, which "
        "the history does not contain at this point (code changed?)"
    )


def leftover(
    emitted: Action | None,
    cancel: WorkFuture[Any] | None,
    ended: str | None,
    terminal_seen: bool,
) -> NondeterminismError | None:
    """What replay left undone that the history does not record, if anything.

    Args:
        emitted: The oldest action still unmatched.
        cancel: The oldest cancellation still unrecorded.
        ended: The status the code ended with, if it ended.
        terminal_seen: Whether the history's terminal event was replayed.
    """
    if emitted is not None:
        return not_in_history(emitted)
    if cancel is not None:
        return NondeterminismError(
            f"the orchestration cancelled {cancel!r}, which the "
            "history does not record (code changed?)"
        )
    if ended is not None and not terminal_seen:
        return NondeterminismError(
            f"the orchestration ended ({ended}) during replay, "
            "but the history shows it still running (code changed?)"
        )
    return None


def cancel_mismatch(
    event: h.Event, expected: WorkFuture[Any] | None
) -> NondeterminismError:
    """The error for a stored cancel event that code did not do."""
    did = f"cancelled {expected!r}" if expected is not None else "cancelled nothing"
    return NondeterminismError(
        f"history cancels event {event.source_event_id} "
        f"({event.type}, event {event.event_id}), but the orchestration "
        + (did if expected is not None else did + " at this point")
    )


def terminal_mismatch(event: h.Event, got: str) -> NondeterminismError:
    """The error for a stored end the replayed code did not reach."""
    return NondeterminismError(
        f"history says the orchestration ended {event.status} "
        f"(event {event.event_id}), but on replay it is {got}"
    )
