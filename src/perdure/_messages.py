"""Orchestrator-queue messages: one frozen type per kind.

The provider stores ``kind`` and ``body`` opaquely; this module is the one
place that spells a body. `decode` parses a fetched `QueuedMessage` once into
its type; each type's ``message()`` builds the `Message` to enqueue. Body keys
keep the order they have always been written in, so queued bodies stay
byte-identical across versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from ._codec import dumps, loads
from .providers._base import Message, QueuedMessage

__all__ = [
    "ACTIVITY_COMPLETED",
    "ACTIVITY_FAILED",
    "ANSWERS",
    "CANCEL",
    "CONTINUE_AS_NEW",
    "EVENT_RAISED",
    "REWIND",
    "START",
    "SUB_COMPLETED",
    "SUB_FAILED",
    "TIMER_FIRED",
    "ActivityCompleted",
    "ActivityFailed",
    "Cancel",
    "ContinueAsNew",
    "EventRaised",
    "Inbound",
    "Rewind",
    "Start",
    "SubCompleted",
    "SubFailed",
    "TimerFired",
    "decode",
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
REWIND = "rewind"

#: Kinds that answer scheduled work of one execution (``execution_id``,
#: ``event_id`` in the body); stale executions' answers are dropped.
COMPLETIONS = frozenset(
    {ACTIVITY_COMPLETED, ACTIVITY_FAILED, TIMER_FIRED, SUB_COMPLETED, SUB_FAILED}
)

#: ``{"instance_id", "execution_id", "event_id"}``: the parent's
#: sub-orchestration event a child answers.
ParentLink: TypeAlias = dict[str, Any]


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


@dataclass(frozen=True, slots=True)
class Start:
    """Begin execution 1 of an instance (client, parent, or a detached start).

    Attributes:
        name: Orchestration name.
        version: Requested version; empty or None means the latest.
        input: JSON input.
        execution_id: The execution it begins (always 1 when written today).
        parent: The parent's link, for a sub-orchestration.
        trace: W3C trace context of the span that started it (`_telemetry`).
    """

    name: str
    version: str | None = None
    input: Any = None
    execution_id: int = 1
    parent: ParentLink | None = None
    trace: dict[str, str] | None = None

    def message(self) -> Message:
        """The queue message."""
        body: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "input": self.input,
            "execution_id": self.execution_id,
        }
        # Top-level starts never wrote the key; keep their bodies as they were.
        if self.parent is not None:
            body["parent"] = self.parent
        if self.trace is not None:
            body["trace"] = self.trace
        return message(START, body)


@dataclass(frozen=True, slots=True)
class ContinueAsNew:
    """Begin the next execution of an instance that continued as new.

    Attributes:
        name: Orchestration name.
        version: Version for the new execution (None: the latest).
        input: JSON input of the new execution.
        execution_id: The execution it begins.
        carried: External events not consumed, as ``(name, data)``.
        parent: The parent's link, inherited from the first execution.
        trace: The trace context, inherited from the first execution.
        values: The instance's values the old execution ended with
            (``ctx.set_value``); None when there are none.
    """

    name: str
    version: str | None
    input: Any
    execution_id: int
    carried: tuple[tuple[str, Any], ...] = ()
    parent: ParentLink | None = None
    trace: dict[str, str] | None = None
    values: dict[str, Any] | None = None

    def message(self) -> Message:
        """The queue message."""
        body = {
            "name": self.name,
            "version": self.version,
            "input": self.input,
            "execution_id": self.execution_id,
            "carried": self.carried,
            "parent": self.parent,
        }
        if self.trace is not None:
            body["trace"] = self.trace
        if self.values:
            body["values"] = self.values
        return message(CONTINUE_AS_NEW, body)


@dataclass(frozen=True, slots=True)
class ActivityCompleted:
    """Activity work *event_id* of *execution_id* returned *result*."""

    execution_id: int
    event_id: int
    result: Any = None

    def message(self) -> Message:
        """The queue message."""
        body = {
            "execution_id": self.execution_id,
            "event_id": self.event_id,
            "result": self.result,
        }
        return message(ACTIVITY_COMPLETED, body)


@dataclass(frozen=True, slots=True)
class ActivityFailed:
    """Activity work *event_id* of *execution_id* failed with *error*."""

    execution_id: int
    event_id: int
    error: Any

    def message(self) -> Message:
        """The queue message."""
        body = {
            "execution_id": self.execution_id,
            "event_id": self.event_id,
            "error": self.error,
        }
        return message(ACTIVITY_FAILED, body)


@dataclass(frozen=True, slots=True)
class TimerFired:
    """Timer *event_id* of *execution_id* is due."""

    execution_id: int
    event_id: int

    def message(self, fire_at: float) -> Message:
        """The queue message, invisible until *fire_at* and droppable by key."""
        body = {"execution_id": self.execution_id, "event_id": self.event_id}
        key = timer_key(self.execution_id, self.event_id)
        return message(TIMER_FIRED, body, visible_at=fire_at, key=key)


@dataclass(frozen=True, slots=True)
class SubCompleted:
    """The child started by *event_id* of *execution_id* completed."""

    execution_id: int
    event_id: int
    result: Any = None

    def message(self) -> Message:
        """The queue message."""
        body = {
            "execution_id": self.execution_id,
            "event_id": self.event_id,
            "result": self.result,
        }
        return message(SUB_COMPLETED, body)


@dataclass(frozen=True, slots=True)
class SubFailed:
    """The child started by *event_id* of *execution_id* failed."""

    execution_id: int
    event_id: int
    error: Any

    def message(self) -> Message:
        """The queue message."""
        body = {
            "execution_id": self.execution_id,
            "event_id": self.event_id,
            "error": self.error,
        }
        return message(SUB_FAILED, body)


@dataclass(frozen=True, slots=True)
class EventRaised:
    """External event *name* with *data* (``Client.raise_event``)."""

    name: str
    data: Any = None

    def message(self) -> Message:
        """The queue message."""
        return message(EVENT_RAISED, {"name": self.name, "data": self.data})


@dataclass(frozen=True, slots=True)
class Cancel:
    """A request to cancel the instance, and why."""

    reason: str = ""

    def message(self) -> Message:
        """The queue message."""
        return message(CANCEL, {"reason": self.reason})


@dataclass(frozen=True, slots=True)
class Rewind:
    """``Client.rewind``: the failed execution *execution_id* goes on (DESIGN §9).

    The provider verb that makes the instance Running again enqueues it; its
    turn voids the execution's failure and runs the code from before it.
    """

    execution_id: int

    def message(self) -> Message:
        """The queue message."""
        return message(REWIND, {"execution_id": self.execution_id})


Inbound: TypeAlias = (
    Start
    | ContinueAsNew
    | ActivityCompleted
    | ActivityFailed
    | TimerFired
    | SubCompleted
    | SubFailed
    | EventRaised
    | Cancel
    | Rewind
)

#: The types that answer work one execution scheduled (see `COMPLETIONS`); a
#: body without ``execution_id`` decodes as execution 0, which never runs.
ANSWERS = (ActivityCompleted, ActivityFailed, TimerFired, SubCompleted, SubFailed)


def _start(body: dict[str, Any]) -> Start:
    return Start(
        body["name"],
        body.get("version"),
        body.get("input"),
        body.get("execution_id", 1),
        body.get("parent"),
        body.get("trace"),
    )


def _continue_as_new(body: dict[str, Any]) -> ContinueAsNew:
    return ContinueAsNew(
        body["name"],
        body.get("version"),
        body.get("input"),
        body.get("execution_id", 1),
        tuple((name, data) for name, data in body.get("carried", [])),
        body.get("parent"),
        body.get("trace"),
        body.get("values"),
    )


_DECODERS: dict[str, Callable[[dict[str, Any]], Inbound]] = {
    START: _start,
    CONTINUE_AS_NEW: _continue_as_new,
    ACTIVITY_COMPLETED: lambda b: ActivityCompleted(
        b.get("execution_id", 0), b["event_id"], b.get("result")
    ),
    ACTIVITY_FAILED: lambda b: ActivityFailed(
        b.get("execution_id", 0), b["event_id"], b["error"]
    ),
    TIMER_FIRED: lambda b: TimerFired(b.get("execution_id", 0), b["event_id"]),
    SUB_COMPLETED: lambda b: SubCompleted(
        b.get("execution_id", 0), b["event_id"], b.get("result")
    ),
    SUB_FAILED: lambda b: SubFailed(
        b.get("execution_id", 0), b["event_id"], b["error"]
    ),
    EVENT_RAISED: lambda b: EventRaised(b["name"], b.get("data")),
    CANCEL: lambda b: Cancel(b.get("reason", "")),
    REWIND: lambda b: Rewind(b["execution_id"]),
}


def decode(queued: QueuedMessage) -> Inbound | None:
    """Parse a fetched message into its type (None for an unknown kind).

    Raises:
        KeyError, ValueError: A corrupted body; the turn is abandoned and
            retried, and after ``max_attempts`` the instance is poisoned.
    """
    parse = _DECODERS.get(queued.kind)
    return parse(loads(queued.body)) if parse is not None else None
