"""One orchestration turn: plan it, run it on a driver, build its commit.

Three steps, each pure apart from the driver it runs:

* `plan` is the one place that decides what a fetched item needs: a fresh
  execution, the cached driver, a replay of the stored history, or nothing
  but consuming its messages.
* `run_turn` delivers the typed messages to the driver and ends the turn.
* `_commit.to_commit` turns the driver's `TurnResult` into the `TurnCommit`
  the provider writes atomically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeAlias

from . import _messages as m
from ._codec import from_json
from ._commit import TurnFacts, to_commit
from ._context import OrchestrationContext
from ._core import _history as h
from ._core._driver import Driver
from ._errors import Cancelled, HandlerNotFound, NondeterminismError, PerdureError
from ._registry import Registry
from ._scope_log import log_unobserved
from .providers._base import OrchestrationItem, TurnCommit

__all__ = [
    "Cached",
    "Finished",
    "Fresh",
    "Inbox",
    "Plan",
    "Poison",
    "Replay",
    "Stray",
    "TurnOutput",
    "build_driver",
    "code_error",
    "parent_of",
    "plan",
    "read_inbox",
    "run_turn",
    "start_parent",
]

_log = logging.getLogger("perdure.dispatcher")

# A delivered event records when its message occurred (``occurred_at``) if
# the turn came at least this much later: downtime or a backlog, not the
# ordinary milliseconds between a write and the turn that reads it.
_RECORD_LAG = 0.01

#: The item's messages, decoded once, with their occurrence times, in the
#: order the provider fetched them (occurrence order, DESIGN §7).
Inbox: TypeAlias = list[tuple[m.Inbound, float | None]]


@dataclass(frozen=True, slots=True)
class TurnOutput:
    """A turn ready to commit, and the driver to cache if it commits."""

    commit: TurnCommit
    driver: Driver | None
    # The events the turn appended (read by telemetry only).
    events: list[h.Event] | None = None


# ------------------------------------------------------------------ planning
@dataclass(frozen=True, slots=True)
class Finished:
    """The instance has ended: consume late messages, change nothing."""


@dataclass(frozen=True, slots=True)
class Poison:
    """Dispatched too often without a committed turn: fail the instance."""


@dataclass(frozen=True, slots=True)
class Fresh:
    """A start or continue-as-new message begins a new execution."""

    start: m.Start | m.ContinueAsNew


@dataclass(frozen=True, slots=True)
class Cached:
    """The cached driver is at the stored history: run the turn on it."""

    driver: Driver


@dataclass(frozen=True, slots=True)
class Replay:
    """No usable driver: read the history and replay it first.

    Attributes:
        rewind: A rewind message for the execution came (``Client.rewind``):
            if the history ends Failed, the turn rewinds it (`._core._rewind`).
    """

    rewind: bool = False


@dataclass(frozen=True, slots=True)
class Stray:
    """No history and no start: nothing to run, only consume the messages."""


Plan: TypeAlias = Finished | Poison | Fresh | Cached | Replay | Stray


def read_inbox(item: OrchestrationItem) -> Inbox:
    """Decode the item's messages once; unknown kinds are logged and dropped.

    Raises:
        KeyError, ValueError: A corrupted body (see `perdure._messages.decode`).
    """
    inbox: Inbox = []
    for queued in item.messages:
        decoded = m.decode(queued)
        if decoded is None:
            # Still consumed with the rest: a newer engine's kind, say.
            _log.warning("dropping message of unknown kind %r", queued.kind)
        else:
            inbox.append((decoded, queued.occurred_at))
    return inbox


def plan(
    item: OrchestrationItem, inbox: Inbox, cached: Driver | None, max_attempts: int
) -> Plan:
    """Decide what the turn of *item* needs.

    Args:
        item: The fetched instance and its messages.
        inbox: Its messages, decoded (`read_inbox`).
        cached: The driver cached for the instance, if any.
        max_attempts: Dispatches without a committed turn before poison.
    """
    record = item.instance
    if record.status != "Running":
        return Finished()
    if item.attempt > max_attempts:
        return Poison()
    exe = record.execution_id
    for msg, _ in inbox:
        if isinstance(msg, (m.Start, m.ContinueAsNew)):
            # The first start decides; a stale one (an execution already
            # begun) is ignored like any other late message.
            fresh_id = msg.execution_id
            if fresh_id > exe or (fresh_id == exe and item.history_len == 0):
                return Fresh(msg)
            break
    if item.history_len > 0 and any(
        isinstance(msg, m.Rewind) and msg.execution_id == exe for msg, _ in inbox
    ):
        return Replay(rewind=True)  # never a cached driver: it has not failed
    if (
        cached is not None
        and cached.execution_id == exe
        and cached.history_len == item.history_len
    ):
        return Cached(cached)
    if item.history_len > 0:
        return Replay()
    return Stray()


# ------------------------------------------------------------------- running
def build_driver(
    registry: Registry,
    instance_id: str,
    execution_id: int,
    start: h.OrchestrationStarted,
) -> Driver:
    """Create a driver whose body runs the registered orchestration.

    Raises:
        NondeterminismError: The history was written by a newer engine than
            this code (its replay rules are unknown here).
    """
    if start.engine is not None and start.engine > h.ENGINE_VERSION:
        raise NondeterminismError(
            f"the history of {instance_id!r} was written by engine version "
            f"{start.engine}; this perdure replays versions up to "
            f"{h.ENGINE_VERSION}: run a newer perdure for this instance"
        )
    driver = Driver(instance_id, execution_id, _missing_body)
    try:
        odef = registry.orchestration(start.name, start.version or None)
    except HandlerNotFound as exc:
        error = exc

        def fail(_: Any) -> Any:
            raise error

        driver.body = fail
        return driver
    ctx = OrchestrationContext(driver, registry, name=odef.name, version=odef.version)

    def body(value: Any) -> Any:
        decoded = from_json(value, odef.input_hint)
        return odef.fn(ctx, decoded) if odef.has_input else odef.fn(ctx)

    driver.body = body
    return driver


def _missing_body(_: Any) -> Any:
    raise RuntimeError("driver body not set")


def run_turn(
    registry: Registry,
    item: OrchestrationItem,
    inbox: Inbox,
    step: Fresh | Driver,
    now: float,
    trace: dict[str, str] | None = None,
) -> TurnOutput:
    """Run one turn: begin a fresh execution, or continue a live *driver*.

    *trace* is the trace context of the turn's span (`_telemetry`): the work
    the turn sends carries it, and a fresh execution started without one
    records it.

    Raises:
        NondeterminismError: From the orchestration code; the caller fails
            the instance.
    """
    iid = item.instance.instance_id
    start: h.OrchestrationStarted | None
    if isinstance(step, Fresh):
        driver, start = _begin_fresh(registry, iid, step.start, now, trace)
        history_start = 0
    else:
        driver = step
        # Read before the turn: what this execution was started with.
        start = driver.started
        history_start = driver.history_len
        driver.begin_turn(now)
    exe = driver.execution_id
    carry_cancel = _deliver_all(driver, inbox, exe, now - _RECORD_LAG)
    result = driver.end_turn()
    # Exceptions no orchestration code will see are logged (DESIGN §8).
    log_unobserved(driver)
    facts = TurnFacts(
        item=item,
        execution_id=exe,
        history_start=history_start,
        start=start,
        carry_cancel=carry_cancel,
        trace=trace,
    )
    return TurnOutput(to_commit(facts, result), driver, result.events)


def _begin_fresh(
    registry: Registry,
    instance_id: str,
    fresh: m.Start | m.ContinueAsNew,
    now: float,
    trace: dict[str, str] | None,
) -> tuple[Driver, h.OrchestrationStarted]:
    """A new driver whose turn has begun with the execution's first events."""
    version = fresh.version or registry.latest_version(fresh.name) or ""
    trace = fresh.trace or trace
    # A continue-as-new carries the instance's values on (None: none).
    values = (fresh.values or None) if isinstance(fresh, m.ContinueAsNew) else None
    start = h.OrchestrationStarted(
        event_id=1,
        timestamp=now,
        name=fresh.name,
        version=version,
        input=fresh.input,
        parent=fresh.parent,
        engine=h.ENGINE_VERSION,
        trace=trace,
        values=values,
    )
    driver = build_driver(registry, instance_id, fresh.execution_id, start)
    driver.begin_turn(now)
    driver.deliver(
        h.OrchestrationStarted,
        name=start.name,
        version=version,
        input=start.input,
        parent=start.parent,
        engine=h.ENGINE_VERSION,
        trace=trace,
        values=values,
    )
    if isinstance(fresh, m.ContinueAsNew):
        for name, data in fresh.carried:
            driver.deliver(h.EventRaised, name=name, data=data)
    return driver, start


def _deliver_all(
    driver: Driver, inbox: Inbox, exe: int, late: float
) -> m.Cancel | None:
    """Deliver *inbox*; return a cancel that arrived after the execution ended.

    Messages that occurred at or before *late* record their occurrence time.
    """
    carry_cancel: m.Cancel | None = None
    for msg, occurred_at in inbox:
        extra: dict[str, Any] = {}
        if occurred_at is not None and occurred_at <= late:
            extra["occurred_at"] = occurred_at
        match msg:
            case m.Start() | m.ContinueAsNew() | m.Rewind():
                continue  # handled by `plan`, `_begin_fresh` and the replay
            case _ if isinstance(msg, m.ANSWERS) and msg.execution_id != exe:
                continue  # answer for an earlier execution
            case m.ActivityCompleted():
                driver.deliver(
                    h.ActivityCompleted, msg.event_id, result=msg.result, **extra
                )
            case m.ActivityFailed():
                driver.deliver(h.ActivityFailed, msg.event_id, error=msg.error, **extra)
            case m.TimerFired():
                driver.deliver(h.TimerFired, msg.event_id, **extra)
            case m.SubCompleted():
                driver.deliver(
                    h.SubOrchestrationCompleted,
                    msg.event_id,
                    result=msg.result,
                    **extra,
                )
            case m.SubFailed():
                driver.deliver(
                    h.SubOrchestrationFailed, msg.event_id, error=msg.error, **extra
                )
            case m.EventRaised():
                driver.deliver(h.EventRaised, name=msg.name, data=msg.data, **extra)
            case m.Cancel():
                if not driver.deliver(
                    h.OrchestrationCancelRequested, reason=msg.reason, **extra
                ):
                    carry_cancel = msg
    return carry_cancel


def code_error(driver: Driver | None) -> BaseException | None:
    """The exception a turn's code failed its execution with, if unexpected.

    Unexpected: anything but a perdure error (a failed activity or child
    awaited and not caught, a payload error) — a bug such as a ``KeyError``.
    """
    outcome = driver.outcome if driver is not None else None
    if outcome is None or outcome.status != "Failed":
        return None
    exc = outcome.exception
    if isinstance(exc, BaseExceptionGroup):  # a task group's failures
        _, exc = exc.split((PerdureError, Cancelled))
    if exc is None or isinstance(exc, (PerdureError, Cancelled)):
        return None
    return exc


def parent_of(events: list[h.Event]) -> m.ParentLink | None:
    """The parent link recorded by a history's start event, if any."""
    if events and isinstance(events[0], h.OrchestrationStarted):
        return events[0].parent
    return None


def start_parent(inbox: Inbox) -> m.ParentLink | None:
    """The parent named by the start message of a first turn, if any."""
    for msg, _ in inbox:
        if isinstance(msg, (m.Start, m.ContinueAsNew)):
            return msg.parent if isinstance(msg.parent, dict) else None
    return None
