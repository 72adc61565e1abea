"""One orchestration turn: messages in, a `TurnCommit` out.

Converts queued messages into driver deliveries, runs the driver, and
turns the resulting events into what the provider must write atomically
(history delta, activity work, timers, messages to other instances, status).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from . import _messages as m
from ._codec import dumps, from_json, loads
from ._context import OrchestrationContext, log_unobserved
from ._core import _history as h
from ._core._driver import Driver, TurnResult
from ._errors import ErrorInfo, HandlerNotFound, NondeterminismError
from ._registry import Registry
from .providers._base import (
    ActivityWork,
    InstanceRecord,
    InstanceStatus,
    NewInstance,
    Outbound,
    QueuedMessage,
    TurnCommit,
    WorkRef,
)

__all__ = ["TurnOutput", "build_driver", "failure_commit", "run_turn"]

_log = logging.getLogger("perdure.dispatcher")

# A delivered event records when its message occurred (``occurred_at``) if
# the turn came at least this much later: downtime or a backlog, not the
# ordinary milliseconds between a write and the turn that reads it.
_RECORD_LAG = 0.01

_STATUS: dict[str, InstanceStatus] = {
    "Completed": "Completed",
    "Failed": "Failed",
    "Cancelled": "Cancelled",
    "ContinuedAsNew": "Running",
}


@dataclass(slots=True)
class TurnOutput:
    """A turn ready to commit, plus what the runtime does after it commits."""

    commit: TurnCommit
    driver: Driver | None
    cancelled_activities: list[WorkRef] = field(default_factory=list)
    timers: list[float] = field(default_factory=list)


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
    record: InstanceRecord,
    lock_token: str,
    messages: list[QueuedMessage],
    history_len: int,
    driver: Driver | None,
    now: float,
) -> TurnOutput:
    """Run one turn on *driver* (cached or freshly replayed; None if no history).

    Raises:
        NondeterminismError, StorageError: from replay; the caller fails or
            abandons the instance.
    """
    # Messages come in occurrence order (DESIGN §7): the provider sorts them.
    parsed = [(msg.kind, loads(msg.body), msg.occurred_at) for msg in messages]
    consumed = [msg.id for msg in messages]
    execution_id = record.execution_id
    history_start: int
    # A continue-as-new (or the very first start) begins a fresh execution.
    fresh = next(
        (body for kind, body, _ in parsed if kind in (m.START, m.CONTINUE_AS_NEW)),
        None,
    )
    fresh_id = fresh.get("execution_id", 1) if fresh is not None else 0
    if fresh is not None and (
        fresh_id > execution_id or (fresh_id == execution_id and history_len == 0)
    ):
        execution_id = fresh_id
        version = fresh.get("version") or registry.latest_version(fresh["name"]) or ""
        start = h.OrchestrationStarted(
            event_id=1,
            timestamp=now,
            name=fresh["name"],
            version=version,
            input=fresh.get("input"),
            parent=fresh.get("parent"),
            engine=h.ENGINE_VERSION,
        )
        driver = build_driver(registry, record.instance_id, execution_id, start)
        history_start = 0
        driver.begin_turn(now)
        driver.deliver(
            h.OrchestrationStarted,
            name=start.name,
            version=version,
            input=start.input,
            parent=start.parent,
            engine=h.ENGINE_VERSION,
        )
        for name, data in fresh.get("carried", []):
            driver.deliver(h.EventRaised, name=name, data=data)
    else:
        if driver is None:
            # No history and no start message: nothing to run (stray messages).
            return TurnOutput(_empty_commit(record, lock_token, consumed), None)
        history_start = driver.history_len
        driver.begin_turn(now)
    carry_cancel: dict[str, Any] | None = None
    for kind, body, occurred_at in parsed:
        if kind in (m.START, m.CONTINUE_AS_NEW):
            continue
        if kind in m.COMPLETIONS and body.get("execution_id") != execution_id:
            continue  # answer for an earlier execution
        extra: dict[str, Any] = {}
        if occurred_at is not None and occurred_at <= now - _RECORD_LAG:
            extra["occurred_at"] = occurred_at
        if not _deliver(driver, kind, body, extra) and kind == m.CANCEL:
            carry_cancel = body
    result = driver.end_turn()
    # Exceptions no orchestration code will see are logged (DESIGN §8).
    log_unobserved(driver)
    output = _to_commit(record, lock_token, consumed, driver, result, history_start)
    outcome = result.outcome
    if carry_cancel is not None and outcome and outcome.status == "ContinuedAsNew":
        # The cancel arrived after this execution ended by continuing as
        # new: it is meant for the instance, so the next execution gets it.
        resend = Outbound(
            instance_id=record.instance_id,
            message=m.message(m.CANCEL, carry_cancel),
        )
        commit = output.commit
        output.commit = dataclasses.replace(commit, outbound=[*commit.outbound, resend])
    return output


def _deliver(
    driver: Driver, kind: str, body: dict[str, Any], extra: dict[str, Any]
) -> bool:
    if kind == m.ACTIVITY_COMPLETED:
        return driver.deliver(
            h.ActivityCompleted, body["event_id"], result=body.get("result"), **extra
        )
    if kind == m.ACTIVITY_FAILED:
        return driver.deliver(
            h.ActivityFailed, body["event_id"], error=body["error"], **extra
        )
    if kind == m.TIMER_FIRED:
        return driver.deliver(h.TimerFired, body["event_id"], **extra)
    if kind == m.SUB_COMPLETED:
        return driver.deliver(
            h.SubOrchestrationCompleted,
            body["event_id"],
            result=body.get("result"),
            **extra,
        )
    if kind == m.SUB_FAILED:
        return driver.deliver(
            h.SubOrchestrationFailed, body["event_id"], error=body["error"], **extra
        )
    if kind == m.EVENT_RAISED:
        return driver.deliver(
            h.EventRaised, name=body["name"], data=body.get("data"), **extra
        )
    if kind == m.CANCEL:
        return driver.deliver(
            h.OrchestrationCancelRequested, reason=body.get("reason", ""), **extra
        )
    _log.warning("dropping message of unknown kind %r", kind)
    return False


def _to_commit(
    record: InstanceRecord,
    lock_token: str,
    consumed: list[int],
    driver: Driver,
    result: TurnResult,
    history_start: int,
) -> TurnOutput:
    iid = driver.instance_id
    exe = driver.execution_id
    commit = TurnCommit(
        instance_id=iid,
        lock_token=lock_token,
        execution_id=exe,
        history_start=history_start,
        events=[(e.event_id, h.event_to_json(e)) for e in result.events],
        consumed=consumed,
    )
    # Lists of the frozen commit are filled in place; scalar columns are
    # collected here and set once at the end.
    scalars: dict[str, Any] = {}
    cancelled_refs: list[WorkRef] = []
    timers: list[float] = []
    cancelled = {
        e.source_event_id for e in result.events if type(e) is h.ActivityCancelRequested
    }
    for event in result.events:
        cls = type(event)
        if cls is h.OrchestrationStarted:
            scalars["name"] = event.name  # type: ignore[attr-defined]
            scalars["version"] = event.version  # type: ignore[attr-defined]
        elif cls is h.ActivityScheduled:
            if event.event_id in cancelled:
                continue
            body = {
                "input": event.input,  # type: ignore[attr-defined]
                "options": result.activity_options.get(event.event_id),
                "scheduled_at": event.timestamp,
            }
            commit.activities.append(
                ActivityWork(
                    instance_id=iid,
                    execution_id=exe,
                    event_id=event.event_id,
                    name=event.name,  # type: ignore[attr-defined]
                    body=dumps(body),
                )
            )
        elif cls is h.ActivityCancelRequested:
            assert event.source_event_id is not None
            ref = WorkRef(
                instance_id=iid, execution_id=exe, event_id=event.source_event_id
            )
            commit.cancel_activities.append(ref)
            cancelled_refs.append(ref)
        elif cls is h.TimerCreated:
            fire_at = event.fire_at  # type: ignore[attr-defined]
            commit.outbound.append(
                Outbound(
                    instance_id=iid,
                    message=m.message(
                        m.TIMER_FIRED,
                        {"execution_id": exe, "event_id": event.event_id},
                        visible_at=fire_at,
                        key=m.timer_key(exe, event.event_id),
                    ),
                )
            )
            timers.append(fire_at)
        elif cls is h.TimerCancelled:
            assert event.source_event_id is not None
            commit.drop_messages.append((iid, m.timer_key(exe, event.source_event_id)))
        elif cls is h.SubOrchestrationScheduled:
            commit.new_instances.append(_child(iid, exe, event))  # type: ignore[arg-type]
        elif cls is h.SubOrchestrationCancelRequested:
            target = _sub_target(driver, event.source_event_id)
            if target:
                # The child says who cancelled it and why ("lost select",
                # "join failed", the client's reason): the parent itself may
                # well go on running.
                reason = f"cancelled by parent {iid}: {getattr(event, 'reason', '')}"
                commit.outbound.append(
                    Outbound(
                        instance_id=target,
                        message=m.message(m.CANCEL, {"reason": reason}),
                    )
                )
        elif cls is h.OrchestrationChained:
            commit.new_instances.append(
                NewInstance(
                    instance_id=event.instance_id,  # type: ignore[attr-defined]
                    name=event.name,  # type: ignore[attr-defined]
                    version=event.version or "",  # type: ignore[attr-defined]
                    start=m.message(
                        m.START,
                        {
                            "name": event.name,  # type: ignore[attr-defined]
                            "version": event.version,  # type: ignore[attr-defined]
                            "input": event.input,  # type: ignore[attr-defined]
                            "execution_id": 1,
                        },
                    ),
                )
            )
        elif cls is h.CustomStatusUpdated:
            scalars["custom_status"] = dumps(event.value)  # type: ignore[attr-defined]
    outcome = result.outcome
    if outcome is not None:
        scalars["status"] = _STATUS[outcome.status]
        if outcome.status == "Completed":
            scalars["output"] = dumps(outcome.output)
        elif outcome.status == "Failed":
            assert outcome.error is not None
            scalars["error"] = dumps(outcome.error.to_json())
        elif outcome.status == "Cancelled":
            scalars["error"] = dumps(
                ErrorInfo("Cancelled", outcome.reason or "cancelled").to_json()
            )
        else:
            commit.outbound.append(
                Outbound(
                    instance_id=iid,
                    message=m.message(
                        m.CONTINUE_AS_NEW,
                        {
                            "name": driver.started.name
                            if driver.started
                            else record.name,
                            "version": outcome.version,
                            "input": outcome.output,
                            "execution_id": exe + 1,
                            "carried": result.carried_events,
                            "parent": driver.started.parent if driver.started else None,
                        },
                    ),
                )
            )
        if outcome.status != "ContinuedAsNew":
            _notify_parent(
                commit, driver, outcome.status, outcome.output, scalars.get("error")
            )
    if scalars:
        commit = dataclasses.replace(commit, **scalars)
    return TurnOutput(commit, driver, cancelled_refs, timers)


def _sub_target(driver: Driver, source_event_id: int | None) -> str | None:
    return driver.sub_target(source_event_id) if source_event_id is not None else None


def _child(
    parent: str, execution_id: int, event: h.SubOrchestrationScheduled
) -> NewInstance:
    link = {
        "instance_id": parent,
        "execution_id": execution_id,
        "event_id": event.event_id,
    }
    start = m.message(
        m.START,
        {
            "name": event.name,
            "version": event.version,
            "input": event.input,
            "execution_id": 1,
            "parent": link,
        },
    )
    conflict = m.message(
        m.SUB_FAILED,
        {
            "execution_id": execution_id,
            "event_id": event.event_id,
            "error": ErrorInfo(
                "InstanceExists",
                f"sub-orchestration instance {event.instance_id!r} already exists",
            ).to_json(),
        },
    )
    return NewInstance(
        instance_id=event.instance_id,
        name=event.name,
        version=event.version or "",
        start=start,
        parent_instance_id=parent,
        on_conflict=conflict,
        on_conflict_target=parent,
    )


def _notify_parent(
    commit: TurnCommit, driver: Driver, status: str, output: Any, error: str | None
) -> None:
    parent = driver.started.parent if driver.started is not None else None
    if not parent:
        return
    body: dict[str, Any] = {
        "execution_id": parent["execution_id"],
        "event_id": parent["event_id"],
    }
    if status == "Completed":
        kind = m.SUB_COMPLETED
        body["result"] = output
    else:
        kind = m.SUB_FAILED
        body["error"] = loads(error) if error else ErrorInfo("Error", status).to_json()
    commit.outbound.append(
        Outbound(instance_id=parent["instance_id"], message=m.message(kind, body))
    )


def _empty_commit(
    record: InstanceRecord, lock_token: str, consumed: list[int]
) -> TurnCommit:
    return TurnCommit(
        instance_id=record.instance_id,
        lock_token=lock_token,
        execution_id=record.execution_id,
        history_start=0,
        events=[],
        consumed=consumed,
        status=record.status,
        output=record.output,
        error=record.error,
    )


def failure_commit(
    record: InstanceRecord,
    lock_token: str,
    consumed: list[int],
    history_len: int,
    error: ErrorInfo,
    now: float,
    parent: dict[str, Any] | None,
) -> TurnCommit:
    """A turn that only ends the instance Failed (replay error, poison)."""
    event = h.OrchestrationFailed(
        event_id=history_len + 1, timestamp=now, error=error.to_json()
    )
    commit = TurnCommit(
        instance_id=record.instance_id,
        lock_token=lock_token,
        execution_id=record.execution_id,
        history_start=history_len,
        events=[(event.event_id, h.event_to_json(event))],
        consumed=consumed,
        status="Failed",
        error=dumps(error.to_json()),
    )
    if not parent:
        return commit
    notify = Outbound(
        instance_id=parent["instance_id"],
        message=m.message(
            m.SUB_FAILED,
            {
                "execution_id": parent["execution_id"],
                "event_id": parent["event_id"],
                "error": error.to_json(),
            },
        ),
    )
    return dataclasses.replace(commit, outbound=[notify])
