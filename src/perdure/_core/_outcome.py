"""What a turn hands the runtime: its new events and how the execution ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._codec import to_json
from .._errors import ErrorInfo, PayloadError
from . import _history as h
from ._tasks import DONE, FAILED

__all__ = [
    "Outcome",
    "TurnResult",
    "continued_outcome",
    "root_outcome",
    "terminal_event",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an execution ended."""

    status: h.ExecutionStatus
    output: Any = None
    error: ErrorInfo | None = None
    reason: str = ""
    version: str | None = None
    # The exception orchestration code raised, when it failed that way: the
    # runtime may suspend the instance instead (``suspend_on_error``).
    exception: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class TurnResult:
    """What a turn produced: events to append and what the runtime must do."""

    events: list[h.Event]
    outcome: Outcome | None
    # event_id of an ActivityScheduled -> options (retry, timeout)
    activity_options: dict[int, Any] = field(default_factory=dict)
    # ContinueAsNew: buffered events not consumed, as (name, data)
    carried_events: list[tuple[str, Any]] = field(default_factory=list)
    # event_id of a SubOrchestrationScheduled cancelled this turn -> the
    # child's instance id (the commit sends the child its cancel message)
    cancel_targets: dict[int, str] = field(default_factory=dict)
    # A rewind turn: the activities and timers scheduled before the rewind
    # and still open, to send again, as (scheduling event, activity options)
    reissue: list[tuple[h.Event, Any]] = field(default_factory=list)
    # The instance's values after the turn (ctx.set_value) when the commit
    # must write them (changed, carried on, rewound); None: unchanged
    values: dict[str, Any] | None = None


def terminal_event(outcome: Outcome, event_id: int, timestamp: float) -> h.Event:
    """The history event that records *outcome*."""
    common: dict[str, Any] = {"event_id": event_id, "timestamp": timestamp}
    if outcome.status == "Completed":
        return h.OrchestrationCompleted(output=outcome.output, **common)
    if outcome.status == "Failed":
        assert outcome.error is not None
        return h.OrchestrationFailed(error=outcome.error.to_json(), **common)
    if outcome.status == "Cancelled":
        return h.OrchestrationCancelled(reason=outcome.reason, **common)
    return h.OrchestrationContinuedAsNew(input=outcome.output, **common)


def root_outcome(state: int, value: Any, instance_cancelled: bool) -> Outcome | None:
    """How the execution ends when its root task ends in *state* with *value*.

    Returns:
        None if the root was cancelled with the instance: the cancel request
        already decided the outcome.
    """
    if state == DONE:
        try:
            return Outcome("Completed", output=to_json(value, "output"))
        except PayloadError as exc:
            return Outcome("Failed", error=ErrorInfo.from_exception(exc))
    if state == FAILED or not instance_cancelled:
        # A Cancelled that escaped the body without the instance being
        # cancelled (it awaited a cancelled future) is a failure too.
        return Outcome("Failed", error=ErrorInfo.from_exception(value), exception=value)
    return None


def continued_outcome(input: Any, version: str | None) -> Outcome:
    """The outcome of ``continue_as_new(input, version=version)``."""
    try:
        payload = to_json(input, "continue_as_new input")
    except PayloadError as exc:
        return Outcome("Failed", error=ErrorInfo.from_exception(exc))
    return Outcome("ContinuedAsNew", output=payload, version=version)
