"""Build the `TurnCommit` a turn writes, from what the turn produced.

Pure functions: each collects the commit's lists locally and constructs the
frozen `TurnCommit` once. `to_commit` reads the driver's `TurnResult` plus the
few facts the turn knew before it ran (`TurnFacts`); it never reads the
driver's state back after the turn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from . import _messages as m
from ._codec import dumps, loads
from ._core import _history as h
from ._core._driver import Outcome, TurnResult
from ._errors import ErrorInfo, format_stack
from ._routing import split_routing
from .providers._base import (
    ActivityWork,
    InstanceRecord,
    InstanceStatus,
    NewInstance,
    OrchestrationItem,
    Outbound,
    TurnCommit,
    WorkRef,
)

__all__ = [
    "TurnFacts",
    "child_answer",
    "failure_commit",
    "finished_commit",
    "suspend_commit",
    "to_commit",
]


@dataclass(frozen=True, slots=True)
class TurnFacts:
    """What a turn knew besides its `TurnResult`.

    Attributes:
        item: The fetched item (instance, lock token, consumed messages).
        execution_id: The execution the turn ran (new on a fresh start).
        history_start: History length the turn was computed against.
        start: The execution's start event (name and parent link).
        carry_cancel: A cancel that arrived after the execution ended.
        trace: Trace context of the turn's span, carried to the work it
            sends (activities, children); None without telemetry.
    """

    item: OrchestrationItem
    execution_id: int
    history_start: int
    start: h.OrchestrationStarted | None
    carry_cancel: m.Cancel | None
    trace: dict[str, str] | None = None


def to_commit(facts: TurnFacts, result: TurnResult) -> TurnCommit:
    """The commit of a turn that ran."""
    item = facts.item
    iid = item.instance.instance_id
    exe = facts.execution_id
    trace = facts.trace
    events = result.events
    activities: list[ActivityWork] = []
    cancel_activities: list[WorkRef] = []
    outbound: list[Outbound] = []
    drop_messages: list[tuple[str, str]] = []
    new_instances: list[NewInstance] = []
    name: str | None = None
    version: str | None = None
    custom_status: str | None = None
    cancelled = {
        e.source_event_id for e in events if type(e) is h.ActivityCancelRequested
    }
    for event in events:
        if type(event) not in _WRITTEN:
            continue  # most events of a turn (results, waits) only go to history
        match event:
            case h.OrchestrationStarted():
                name = event.name
                version = event.version
            case h.ActivityScheduled():
                if event.event_id in cancelled:
                    continue  # scheduled and cancelled in one turn: never runs
                options = result.activity_options.get(event.event_id)
                activities.append(_work(iid, exe, event, options, trace))
            case h.ActivityCancelRequested():
                assert event.source_event_id is not None
                cancel_activities.append(
                    WorkRef(
                        instance_id=iid,
                        execution_id=exe,
                        event_id=event.source_event_id,
                    )
                )
            case h.TimerCreated():
                outbound.append(_timer(iid, exe, event))
            case h.TimerCancelled():
                assert event.source_event_id is not None
                drop_messages.append((iid, m.timer_key(exe, event.source_event_id)))
            case h.SubOrchestrationScheduled():
                new_instances.append(_child(iid, exe, event, trace))
            case h.SubOrchestrationCancelRequested():
                source = event.source_event_id
                target = result.cancel_targets.get(source) if source else None
                if target:
                    # The child says who cancelled it and why ("lost select",
                    # "join failed", the client's reason): the parent itself
                    # may well go on running.
                    reason = f"cancelled by parent {iid}: {event.reason}"
                    cancel = m.Cancel(reason).message()
                    outbound.append(Outbound(instance_id=target, message=cancel))
            case h.OrchestrationChained():
                chained = m.Start(event.name, event.version, event.input, trace=trace)
                new_instances.append(
                    NewInstance(
                        instance_id=event.instance_id,
                        name=event.name,
                        version=event.version or "",
                        start=chained.message(),
                    )
                )
            case h.CustomStatusUpdated():
                custom_status = dumps(event.value)
            case _:
                pass
    # A rewind turn sends again what was open before it (the rewind deleted
    # the activity work; a second fire message of a timer is ignored).
    for event, options in result.reissue:
        if isinstance(event, h.ActivityScheduled):
            activities.append(_work(iid, exe, event, options, trace))
        elif isinstance(event, h.TimerCreated):
            outbound.append(_timer(iid, exe, event))
    status: InstanceStatus = "Running"
    output: str | None = None
    error: str | None = None
    outcome = result.outcome
    if outcome is not None:
        # A continue-as-new starts the next execution: still Running.
        ended = outcome.status
        status = "Running" if ended == "ContinuedAsNew" else ended
        error_json = _error_json(outcome)
        if outcome.status == "Completed":
            output = dumps(outcome.output)
        elif error_json is not None:
            error = dumps(error_json)
        start = facts.start
        parent = start.parent if start is not None else None
        if outcome.status == "ContinuedAsNew":
            following = m.ContinueAsNew(
                start.name if start is not None else item.instance.name,
                outcome.version,
                outcome.output,
                exe + 1,
                tuple(result.carried_events),
                parent,
                start.trace if start is not None else None,
                result.values,
            )
            outbound.append(Outbound(instance_id=iid, message=following.message()))
            if facts.carry_cancel is not None:
                # The cancel arrived after this execution ended by continuing
                # as new: it is meant for the instance, so the next execution
                # gets it.
                resend = facts.carry_cancel.message()
                outbound.append(Outbound(instance_id=iid, message=resend))
        elif parent:
            outbound.append(_answer_parent(parent, outcome.output, error_json))
    return TurnCommit(
        instance_id=iid,
        lock_token=item.lock_token,
        execution_id=exe,
        history_start=facts.history_start,
        events=[(e.event_id, h.event_to_json(e)) for e in events],
        consumed=[msg.id for msg in item.messages],
        activities=activities,
        cancel_activities=cancel_activities,
        outbound=outbound,
        drop_messages=drop_messages,
        new_instances=new_instances,
        name=name,
        version=version,
        status=status,
        output=output,
        error=error,
        custom_status=custom_status,
        state_values=None if result.values is None else dumps(result.values),
    )


#: The events that make a turn write more than its history (every class is
#: final: `match` below would test each case against the others in turn).
_WRITTEN = frozenset(
    {
        h.OrchestrationStarted,
        h.ActivityScheduled,
        h.ActivityCancelRequested,
        h.TimerCreated,
        h.TimerCancelled,
        h.SubOrchestrationScheduled,
        h.SubOrchestrationCancelRequested,
        h.OrchestrationChained,
        h.CustomStatusUpdated,
    }
)


def _work(
    iid: str,
    exe: int,
    event: h.ActivityScheduled,
    options: Any,
    trace: dict[str, str] | None,
) -> ActivityWork:
    """The work item of a scheduled activity (with its original schedule time).

    ``scheduled_at`` keeps the activity's idempotency key and its retry
    timeout the same when a rewind sends it again. With a *trace* (the
    scheduling turn's span), the body carries it and the task scope path
    for the activity's span.
    """
    # Tag, session and priority route the item (columns), not run it.
    options, routing = split_routing(options)
    body = {"input": event.input, "options": options, "scheduled_at": event.timestamp}
    if trace is not None:
        body["trace"] = trace
        body["scope"] = event.scope
    return ActivityWork(
        instance_id=iid,
        execution_id=exe,
        event_id=event.event_id,
        name=event.name,
        body=dumps(body),
        **routing,
    )


def _timer(iid: str, exe: int, event: h.TimerCreated) -> Outbound:
    """The timer's fire message, due at its ``fire_at``."""
    fired = m.TimerFired(exe, event.event_id)
    return Outbound(instance_id=iid, message=fired.message(event.fire_at))


def _error_json(outcome: Outcome) -> dict[str, Any] | None:
    """The stored error of a Failed or Cancelled outcome (None otherwise)."""
    if outcome.status == "Failed":
        error = outcome.error
        assert error is not None
        if error.stack is None and outcome.exception is not None:
            # For the instance record and the parent's message only: the
            # history event keeps the form replay compares.
            error = replace(error, stack=format_stack(outcome.exception))
        return error.to_json()
    if outcome.status == "Cancelled":
        return ErrorInfo("Cancelled", outcome.reason or "cancelled").to_json()
    return None


def _answer_parent(
    parent: m.ParentLink, output: Any, error_json: dict[str, Any] | None
) -> Outbound:
    """The message telling the parent its child ended (failed if *error_json*)."""
    exe, event_id = parent["execution_id"], parent["event_id"]
    answer: m.SubCompleted | m.SubFailed = (
        m.SubCompleted(exe, event_id, output)
        if error_json is None
        else m.SubFailed(exe, event_id, error_json)
    )
    return Outbound(instance_id=parent["instance_id"], message=answer.message())


def child_answer(
    parent: str,
    execution_id: int,
    event_id: int,
    child_id: str,
    child: InstanceRecord | None,
) -> m.SubCompleted | m.SubFailed | None:
    """The answer a child's stored end gives its parent, for a rewind turn.

    What the child's own last turn sent (`_answer_parent`): its output, or
    its error (a cancelled child's is ``Cancelled``). A child that is gone
    (deleted, or its id re-used by another instance) fails; a child still
    running (or suspended) answers later itself: None.
    """
    if child is None or child.parent_instance_id != parent:
        missing = ErrorInfo(
            "InstanceNotFound",
            f"sub-orchestration instance {child_id!r} no longer exists",
        )
        return m.SubFailed(execution_id, event_id, missing.to_json())
    if child.status == "Completed":
        output = loads(child.output) if child.output is not None else None
        return m.SubCompleted(execution_id, event_id, output)
    if child.status in ("Failed", "Cancelled"):
        fallback = ErrorInfo(child.status, child.status.lower()).to_json()
        error = loads(child.error) if child.error else fallback
        return m.SubFailed(execution_id, event_id, error)
    return None


def _child(
    parent: str,
    execution_id: int,
    event: h.SubOrchestrationScheduled,
    trace: dict[str, str] | None,
) -> NewInstance:
    link = {
        "instance_id": parent,
        "execution_id": execution_id,
        "event_id": event.event_id,
    }
    start = m.Start(event.name, event.version, event.input, 1, link, trace)
    conflict = m.SubFailed(
        execution_id,
        event.event_id,
        ErrorInfo(
            "InstanceExists",
            f"sub-orchestration instance {event.instance_id!r} already exists",
        ).to_json(),
    )
    return NewInstance(
        instance_id=event.instance_id,
        name=event.name,
        version=event.version or "",
        start=start.message(),
        parent_instance_id=parent,
        on_conflict=conflict.message(),
        on_conflict_target=parent,
    )


def finished_commit(item: OrchestrationItem) -> TurnCommit:
    """Consume messages of an instance that has ended (or has no history).

    The stored outcome is written back unchanged: the commit writes those
    columns.
    """
    record = item.instance
    return TurnCommit(
        instance_id=record.instance_id,
        lock_token=item.lock_token,
        execution_id=record.execution_id,
        history_start=item.history_len,
        events=[],
        consumed=[msg.id for msg in item.messages],
        status=record.status,
        output=record.output,
        error=record.error,
    )


def suspend_commit(item: OrchestrationItem, error: ErrorInfo) -> TurnCommit:
    """Suspend the instance (DESIGN §9): nothing of the turn is written.

    No event is appended and no message consumed, so `Client.resume` finds
    everything as it was and the next turn redoes this one with the code
    deployed then; only the status and the error shown to the user change.
    """
    record = item.instance
    return TurnCommit(
        instance_id=record.instance_id,
        lock_token=item.lock_token,
        execution_id=record.execution_id,
        history_start=item.history_len,
        events=[],
        consumed=[],
        status="Suspended",
        output=None,
        error=dumps(error.to_json()),
    )


def failure_commit(
    item: OrchestrationItem,
    error: ErrorInfo,
    now: float,
    parent: m.ParentLink | None,
) -> TurnCommit:
    """A turn that only ends the instance Failed (replay error, poison)."""
    record = item.instance
    event = h.OrchestrationFailed(
        event_id=item.history_len + 1, timestamp=now, error=error.to_json()
    )
    outbound: list[Outbound] = []
    if parent:
        failed = m.SubFailed(
            parent["execution_id"], parent["event_id"], error.to_json()
        )
        outbound.append(
            Outbound(instance_id=parent["instance_id"], message=failed.message())
        )
    return TurnCommit(
        instance_id=record.instance_id,
        lock_token=item.lock_token,
        execution_id=record.execution_id,
        history_start=item.history_len,
        events=[(event.event_id, h.event_to_json(event))],
        consumed=[msg.id for msg in item.messages],
        outbound=outbound,
        status="Failed",
        error=dumps(error.to_json()),
    )
