"""The base of every history event: `Event`, its roles and work kinds.

Kept apart from `._history` (the event vocabulary) so that event classes
declared in other modules (`._history_values`) can subclass `Event` while
`._history` imports them before it registers every subclass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = ["Event", "ExecutionStatus", "Role", "WorkKind"]


class WorkKind(enum.StrEnum):
    """The kinds of durable work a task can own (and cancel)."""

    ACTIVITY = "activity"
    TIMER = "timer"
    WAIT = "wait"
    SUB = "sub"


#: How an execution ended (``Outcome.status``, a terminal event's ``status``).
ExecutionStatus = Literal["Completed", "Failed", "Cancelled", "ContinuedAsNew"]

#: What an event does in replay. ``scheduling``: produced by orchestration
#: code, matched in order against what it emits; ``completion``: resolves
#: the work its ``source_event_id`` names; ``cancel``: records that code
#: cancelled that work; ``delivered``: any other message from outside;
#: ``terminal``: the execution's end; ``start``: the first event;
#: ``marker``: produced by orchestration code with its scheduling events
#: (in emission order) but never matched: replay reads the markers of the
#: whole execution before running the code, then passes over them;
#: ``rewind``: `ExecutionRewound`, read up front too (`._rewind`).
Role = Literal[
    "scheduling",
    "completion",
    "cancel",
    "delivered",
    "terminal",
    "start",
    "marker",
    "rewind",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every history event has."""

    event_id: int
    timestamp: float
    source_event_id: int | None = None

    kind: ClassVar[str] = "Event"
    role: ClassVar[Role]
    # The work it schedules, completes or cancels; None for the others.
    work: ClassVar[WorkKind | None] = None
    # Scheduling events: the fields a replayed one must match (DESIGN §2).
    match_keys: ClassVar[tuple[str, ...]] = ()
    # Terminal events: the status the execution ended with.
    status: ClassVar[ExecutionStatus | None] = None

    @property
    def type(self) -> str:
        """The event kind name (``"ActivityScheduled"``, ...)."""
        return self.kind
