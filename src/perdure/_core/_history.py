"""History events: frozen dataclasses with a stable JSON form.

Every event has ``event_id`` (1, 2, 3... per execution), ``timestamp`` (Unix
seconds) and, where it answers another event, ``source_event_id``. The JSON
form is a flat object with a ``type`` tag; fields equal to their default are
omitted to keep histories lean.

The event vocabulary is declared here once, on the classes, and every table
elsewhere derives from it: each class says its `Role` in replay, the
`WorkKind` it schedules, completes or cancels, the fields replay matches
(``match_keys``, DESIGN §2) and, for a terminal event, the execution
``status`` it records. Work scheduled inside ``ctx.shield`` says so
(``shielded``, DESIGN §8; informational, never matched).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .._errors import StorageError
from ._event_base import Event, ExecutionStatus, Role, WorkKind
from ._history_values import StateValueCleared, StateValueSet

__all__ = [
    "CANCEL_EVENT",
    "CANCEL_TYPES",
    "COMPLETION_TYPES",
    "DELIVERED_TYPES",
    "ENGINE_VERSION",
    "ExecutionStatus",
    "MARKER_TYPES",
    "SCHEDULING_TYPES",
    "TERMINAL_TYPES",
    "VALUE_TYPES",
    "ActivityCancelRequested",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityScheduled",
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
    "Role",
    "StateValueCleared",
    "StateValueSet",
    "SubOrchestrationCancelRequested",
    "SubOrchestrationCompleted",
    "SubOrchestrationFailed",
    "SubOrchestrationScheduled",
    "TimerCancelled",
    "TimerCreated",
    "TimerFired",
    "WorkKind",
    "event_from_json",
    "event_to_json",
]

#: Version of the history format and of the replay rules this code writes
#: (``OrchestrationStarted.engine``). 2: occurrence order (DESIGN §7) and
#: the task-scope rules of §8; histories without the field are version 1.
#: Every version ever written must keep replaying (tests/histories).
#: `PatchApplied` did not bump it: it changes no rule for a history
#: without one, and only code calling ``ctx.patched`` (which an older
#: perdure does not have) writes one; bumping would make every execution
#: an upgraded runtime starts unreplayable by the runtimes not upgraded yet.
#: Nor did `ExecutionRewound`, which only a rewind writes, nor the value
#: events (`._history_values`), which only code calling ``ctx.set_value``
#: writes, nor ``OrchestrationStarted.values``, which only those carry on.
ENGINE_VERSION = 2


_REGISTRY: dict[str, type[Event]] = {}
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationStarted(Event):
    """First event of every execution."""

    role = "start"

    name: str
    version: str
    input: Any = None
    parent: dict[str, Any] | None = None
    # History format version (ENGINE_VERSION when written); None: written
    # by the first milestone's engine, before the field existed.
    engine: int | None = None
    # W3C trace context (``traceparent``...) its turns' spans link to.
    trace: dict[str, str] | None = None
    # The instance's values (``ctx.set_value``) the execution starts with:
    # carried over by a continue-as-new; None when there are none.
    values: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityScheduled(Event):
    """An activity was scheduled by the task scope ``scope``."""

    role = "scheduling"
    work = WorkKind.ACTIVITY
    match_keys = ("name", "input")

    name: str
    input: Any = None
    scope: str = "0"
    shielded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCompleted(Event):
    """An activity returned ``result``."""

    role = "completion"
    work = WorkKind.ACTIVITY

    result: Any = None
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityFailed(Event):
    """An activity failed (after its retries); ``error`` is an ErrorInfo dict."""

    role = "completion"
    work = WorkKind.ACTIVITY

    error: dict[str, Any]
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCancelRequested(Event):
    """Orchestration code cancelled an unfinished activity."""

    role = "cancel"
    work = WorkKind.ACTIVITY

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCreated(Event):
    """A durable timer, due at Unix time ``fire_at``."""

    role = "scheduling"
    work = WorkKind.TIMER

    fire_at: float
    scope: str = "0"
    shielded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired(Event):
    """A timer became due."""

    role = "completion"
    work = WorkKind.TIMER

    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCancelled(Event):
    """Orchestration code cancelled an unfired timer."""

    role = "cancel"
    work = WorkKind.TIMER

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventWaitStarted(Event):
    """Orchestration code waits for the next external event ``name``."""

    role = "scheduling"
    work = WorkKind.WAIT
    match_keys = (("name"),)

    name: str
    scope: str = "0"
    shielded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRaised(Event):
    """An external event arrived (buffered per name until a wait takes it)."""

    role = "delivered"

    name: str
    data: Any = None
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventWaitCancelled(Event):
    """A wait was cancelled; it consumed nothing."""

    role = "cancel"
    work = WorkKind.WAIT

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationScheduled(Event):
    """A child orchestration was started."""

    role = "scheduling"
    work = WorkKind.SUB
    match_keys = ("name", "input")

    name: str
    instance_id: str
    input: Any = None
    version: str | None = None
    scope: str = "0"
    shielded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationCompleted(Event):
    """A child orchestration completed with ``result``."""

    role = "completion"
    work = WorkKind.SUB

    result: Any = None
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationFailed(Event):
    """A child orchestration failed or was cancelled."""

    role = "completion"
    work = WorkKind.SUB

    error: dict[str, Any]
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationCancelRequested(Event):
    """Orchestration code cancelled a running child (the child is cancelled)."""

    role = "cancel"
    work = WorkKind.SUB

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationChained(Event):
    """A detached orchestration was started (never cancelled by this one)."""

    role = "scheduling"
    match_keys = ("name", "instance_id", "input")

    name: str
    instance_id: str
    input: Any = None
    version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomStatusUpdated(Event):
    """`set_custom_status` was called."""

    role = "scheduling"
    match_keys = (("value"),)

    value: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchApplied(Event):
    """``ctx.patched(patch_id)`` was first asked in a live turn: True.

    One per patch id and execution, in the scope of the task that asked
    first. Replaying code gets True for the ids the execution has a marker
    for, False for the others (a history written before the patch); a
    marker the code no longer asks for is skipped (DESIGN §9).
    """

    role = "marker"

    patch_id: str
    scope: str = "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationCancelRequested(Event):
    """A client asked to cancel the instance."""

    role = "delivered"

    reason: str = ""
    # When what it reports happened, if it was delivered later (DESIGN §7).
    occurred_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationContinuedAsNew(Event):
    """This execution ended; a new one starts with ``input``."""

    role = "terminal"
    status = "ContinuedAsNew"

    input: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationCompleted(Event):
    """The orchestration returned ``output``."""

    role = "terminal"
    status = "Completed"

    output: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationFailed(Event):
    """The orchestration failed with ``error`` (an ErrorInfo dict)."""

    role = "terminal"
    status = "Failed"

    error: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationCancelled(Event):
    """The orchestration ended because it was cancelled."""

    role = "terminal"
    status = "Cancelled"

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRewound(Event):
    """``Client.rewind`` took the failed execution back to before its failure.

    The first event of the rewind turn. It voids events ``voided_from`` to
    ``source_event_id`` (the `OrchestrationFailed` and the cancellations
    written with it, DESIGN §9): they stay, and every replay skips them.
    """

    role = "rewind"

    voided_from: int


for _cls in Event.__subclasses__():
    _cls.kind = _cls.__name__
    _REGISTRY[_cls.__name__] = _cls


def _with_role(*roles: Role) -> frozenset[type[Event]]:
    return frozenset(c for c in _REGISTRY.values() if c.role in roles)


#: Events produced by orchestration code; replay matches them in order.
SCHEDULING_TYPES = _with_role("scheduling")
#: Events produced by orchestration code that replay does not match
#: (`PatchApplied`).
MARKER_TYPES = _with_role("marker")
#: Events that resolve scheduled work (they carry ``source_event_id``).
COMPLETION_TYPES = _with_role("completion")
#: Events made from queued messages: they carry ``occurred_at`` when their
#: turn came later than the thing they report (DESIGN §7).
DELIVERED_TYPES = _with_role("completion", "delivered")
#: Events recording that orchestration code cancelled unfinished work.
CANCEL_TYPES = _with_role("cancel")
#: Events that end an execution.
TERMINAL_TYPES = _with_role("terminal")
#: The cancel event of each kind of work.
CANCEL_EVENT: dict[WorkKind, type[Event]] = {
    c.work: c for c in CANCEL_TYPES if c.work is not None
}
#: Events that change the instance's values (``ctx.set_value``).
VALUE_TYPES = frozenset((StateValueSet, StateValueCleared))


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
