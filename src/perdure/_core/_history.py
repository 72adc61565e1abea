"""History events: frozen dataclasses with a stable JSON form.

Every event has ``event_id`` (1, 2, 3... per execution), ``timestamp`` (Unix
seconds) and, where it answers another event, ``source_event_id``. The JSON
form is a flat object with a ``type`` tag; fields equal to their default are
omitted to keep histories lean.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from .._errors import StorageError

__all__ = [
    "COMPLETION_TYPES",
    "DELIVERED_TYPES",
    "ENGINE_VERSION",
    "SCHEDULING_TYPES",
    "ActivityCancelRequested",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityScheduled",
    "CustomStatusUpdated",
    "Event",
    "EventRaised",
    "EventWaitCancelled",
    "EventWaitStarted",
    "OrchestrationCancelRequested",
    "OrchestrationCancelled",
    "OrchestrationChained",
    "OrchestrationCompleted",
    "OrchestrationContinuedAsNew",
    "OrchestrationFailed",
    "OrchestrationStarted",
    "SubOrchestrationCancelRequested",
    "SubOrchestrationCompleted",
    "SubOrchestrationFailed",
    "SubOrchestrationScheduled",
    "TimerCancelled",
    "TimerCreated",
    "TimerFired",
    "event_from_json",
    "event_to_json",
]

#: Version of the history format and of the replay rules this code writes
#: (``OrchestrationStarted.engine``). 2: occurrence order (DESIGN §7) and
#: the task-scope rules of §8; histories without the field are version 1.
#: Every version ever written must keep replaying (tests/histories).
ENGINE_VERSION = 2

_REGISTRY: dict[str, type[Event]] = {}
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every history event has."""

    event_id: int
    timestamp: float
    source_event_id: int | None = None

    kind: ClassVar[str] = "Event"

    @property
    def type(self) -> str:
        """The event kind name (``"ActivityScheduled"``, ...)."""
        return self.kind


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationStarted(Event):
    """First event of every execution."""

    name: str
    version: str
    input: Any = None
    parent: dict[str, Any] | None = None
    # History format version (ENGINE_VERSION when written); None: written
    # by the first milestone's engine, before the field existed.
    engine: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityScheduled(Event):
    """An activity was scheduled by the task scope ``scope``."""

    name: str
    input: Any = None
    scope: str = "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCompleted(Event):
    """An activity returned ``result``."""

    result: Any = None
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityFailed(Event):
    """An activity failed (after its retries); ``error`` is an ErrorInfo dict."""

    error: dict[str, Any]
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCancelRequested(Event):
    """Orchestration code cancelled an unfinished activity."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCreated(Event):
    """A durable timer, due at Unix time ``fire_at``."""

    fire_at: float
    scope: str = "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired(Event):
    """A timer became due."""

    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCancelled(Event):
    """Orchestration code cancelled an unfired timer."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventWaitStarted(Event):
    """Orchestration code waits for the next external event ``name``."""

    name: str
    scope: str = "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRaised(Event):
    """An external event arrived (buffered per name until a wait takes it)."""

    name: str
    data: Any = None
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventWaitCancelled(Event):
    """A wait was cancelled; it consumed nothing."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationScheduled(Event):
    """A child orchestration was started."""

    name: str
    instance_id: str
    input: Any = None
    version: str | None = None
    scope: str = "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationCompleted(Event):
    """A child orchestration completed with ``result``."""

    result: Any = None
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationFailed(Event):
    """A child orchestration failed or was cancelled."""

    error: dict[str, Any]
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationCancelRequested(Event):
    """Orchestration code cancelled a running child (the child is cancelled)."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationChained(Event):
    """A detached orchestration was started (never cancelled by this one)."""

    name: str
    instance_id: str
    input: Any = None
    version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomStatusUpdated(Event):
    """`set_custom_status` was called."""

    value: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationCancelRequested(Event):
    """A client asked to cancel the instance."""

    reason: str = ""
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationContinuedAsNew(Event):
    """This execution ended; a new one starts with ``input``."""

    input: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationCompleted(Event):
    """The orchestration returned ``output``."""

    output: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationFailed(Event):
    """The orchestration failed with ``error`` (an ErrorInfo dict)."""

    error: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationCancelled(Event):
    """The orchestration ended because it was cancelled."""

    reason: str = ""


for _cls in Event.__subclasses__():
    _cls.kind = _cls.__name__
    _REGISTRY[_cls.__name__] = _cls

#: Events produced by orchestration code; replay matches them in order.
SCHEDULING_TYPES: frozenset[type[Event]] = frozenset(
    {
        ActivityScheduled,
        TimerCreated,
        EventWaitStarted,
        SubOrchestrationScheduled,
        OrchestrationChained,
        CustomStatusUpdated,
    }
)

#: Events made from queued messages: they carry ``occurred_at`` when their
#: turn came later than the thing they report (DESIGN §7).
DELIVERED_TYPES: frozenset[type[Event]] = frozenset(
    {
        ActivityCompleted,
        ActivityFailed,
        TimerFired,
        EventRaised,
        SubOrchestrationCompleted,
        SubOrchestrationFailed,
        OrchestrationCancelRequested,
    }
)

#: Events that resolve scheduled work (they carry ``source_event_id``).
COMPLETION_TYPES: frozenset[type[Event]] = frozenset(
    {
        ActivityCompleted,
        ActivityFailed,
        TimerFired,
        SubOrchestrationCompleted,
        SubOrchestrationFailed,
    }
)

_FIELDS: dict[type[Event], tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type[Event]) -> tuple[tuple[str, Any], ...]:
    cached = _FIELDS.get(cls)
    if cached is None:
        cached = tuple(
            (f.name, f.default)
            for f in dataclasses.fields(cls)
            if f.name not in ("event_id", "timestamp", "source_event_id")
        )
        _FIELDS[cls] = cached
    return cached


def event_to_json(event: Event) -> str:
    """Encode *event* as compact JSON text."""
    data: dict[str, Any] = {
        "type": event.kind,
        "event_id": event.event_id,
        "timestamp": event.timestamp,
    }
    if event.source_event_id is not None:
        data["source_event_id"] = event.source_event_id
    for name, default in _fields(type(event)):
        value = getattr(event, name)
        if value is not default and value != default:
            data[name] = value
    return _ENCODE(data)


def event_from_json(text: str) -> Event:
    """Decode one event.

    Raises:
        StorageError: The text is not a well-formed event (corrupted history).
    """
    try:
        data = json.loads(text)
        cls = _REGISTRY[data.pop("type")]
        return cls(**data)
    except Exception as exc:
        snippet = text if len(text) < 200 else text[:200] + "..."
        raise StorageError(f"corrupted history event {snippet!r}: {exc}") from exc
