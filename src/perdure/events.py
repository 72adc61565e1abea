"""History events: what `Client.get_history` and `ReplayResult.history` hold.

Every event is a frozen dataclass with ``event_id`` (1, 2, 3... per
execution), ``timestamp`` (Unix seconds) and, where it answers another event,
``source_event_id``. `AnyEvent` is the union of the concrete classes, so a
``match`` statement or an ``isinstance`` check narrows an event to its
fields::

    for event in await client.get_history("order-1"):
        match event:
            case events.ActivityCompleted(result=result):
                print(event.event_id, result)

The classes are re-exported from the engine's history module; this module
is their public home.
"""

import typing as _typing

from ._core._history import (
    ActivityCancelRequested,
    ActivityCompleted,
    ActivityFailed,
    ActivityScheduled,
    CustomStatusUpdated,
    Event,
    EventRaised,
    EventWaitCancelled,
    EventWaitStarted,
    ExecutionRewound,
    OrchestrationCancelled,
    OrchestrationCancelRequested,
    OrchestrationChained,
    OrchestrationCompleted,
    OrchestrationContinuedAsNew,
    OrchestrationFailed,
    OrchestrationStarted,
    PatchApplied,
    StateValueCleared,
    StateValueSet,
    SubOrchestrationCancelRequested,
    SubOrchestrationCompleted,
    SubOrchestrationFailed,
    SubOrchestrationScheduled,
    TimerCancelled,
    TimerCreated,
    TimerFired,
)

__all__ = [
    "ActivityCancelRequested",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityScheduled",
    "AnyEvent",
    "CustomStatusUpdated",
    "Event",
    "EventRaised",
    "EventWaitCancelled",
    "EventWaitStarted",
    "ExecutionRewound",
    "OrchestrationCancelRequested",
    "OrchestrationCancelled",
    "OrchestrationChained",
    "OrchestrationCompleted",
    "OrchestrationContinuedAsNew",
    "OrchestrationFailed",
    "OrchestrationStarted",
    "PatchApplied",
    "StateValueCleared",
    "StateValueSet",
    "SubOrchestrationCancelRequested",
    "SubOrchestrationCompleted",
    "SubOrchestrationFailed",
    "SubOrchestrationScheduled",
    "TimerCancelled",
    "TimerCreated",
    "TimerFired",
]

AnyEvent: _typing.TypeAlias = (
    OrchestrationStarted
    | ActivityScheduled
    | ActivityCompleted
    | ActivityFailed
    | ActivityCancelRequested
    | TimerCreated
    | TimerFired
    | TimerCancelled
    | EventWaitStarted
    | EventRaised
    | EventWaitCancelled
    | SubOrchestrationScheduled
    | SubOrchestrationCompleted
    | SubOrchestrationFailed
    | SubOrchestrationCancelRequested
    | OrchestrationChained
    | CustomStatusUpdated
    | PatchApplied
    | StateValueSet
    | StateValueCleared
    | OrchestrationCancelRequested
    | OrchestrationContinuedAsNew
    | OrchestrationCompleted
    | OrchestrationFailed
    | OrchestrationCancelled
    | ExecutionRewound
)
"""Any concrete history event (the union of the 26 classes)."""
