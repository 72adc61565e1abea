"""Orchestrator-queue message kinds and their JSON bodies.

The provider stores ``kind`` and ``body`` opaquely; this module is the one
place that knows what each kind carries.
"""

from __future__ import annotations

from typing import Any

from ._codec import dumps
from .providers._base import Message

__all__ = [
    "ACTIVITY_COMPLETED",
    "ACTIVITY_FAILED",
    "CANCEL",
    "CONTINUE_AS_NEW",
    "EVENT_RAISED",
    "START",
    "SUB_COMPLETED",
    "SUB_FAILED",
    "TIMER_FIRED",
    "message",
    "timer_key",
]

START = "start"
CONTINUE_AS_NEW = "continue_as_new"
ACTIVITY_COMPLETED = "activity_completed"
ACTIVITY_FAILED = "activity_failed"
TIMER_FIRED = "timer_fired"
EVENT_RAISED = "event_raised"
SUB_COMPLETED = "sub_completed"
SUB_FAILED = "sub_failed"
CANCEL = "cancel"

#: Kinds that answer scheduled work of one execution (``execution_id``,
#: ``event_id`` in the body); stale executions' answers are dropped.
COMPLETIONS = frozenset(
    {ACTIVITY_COMPLETED, ACTIVITY_FAILED, TIMER_FIRED, SUB_COMPLETED, SUB_FAILED}
)


def message(
    kind: str,
    body: dict[str, Any],
    *,
    visible_at: float | None = None,
    key: str | None = None,
) -> Message:
    """Build a `Message` with a JSON body."""
    return Message(kind=kind, body=dumps(body), visible_at=visible_at, key=key)


def timer_key(execution_id: int, event_id: int) -> str:
    """Queue key of a timer's fire message (to drop it when cancelled)."""
    return f"timer:{execution_id}:{event_id}"
