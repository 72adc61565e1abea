"""Rewinding a failed execution: what ``Client.rewind`` voids (DESIGN §9).

A rewind takes a ``Failed`` instance back to before its failure and lets the
code deployed now go on from there. Nothing is deleted from the history:

* The rewind turn *voids* the execution's trailing failure: its
  `OrchestrationFailed` event with the cancel events written in the same
  turn right before it (the run of cancel events with its timestamp), and
  any failure written right before it the same way (a rewind turn that
  went poison or timed out ends the history with a second failure). Those
  cancellations are the failure's cascade (``Driver._end`` cancels the
  whole task tree: "orchestration failed"), with what the cascade set off
  ("lost select" for the other member of a select whose member it
  cancelled) and what the failing turn cancelled before the code raised.
  The work they cancelled is open again; what the code deployed now
  cancels while the failing turn is replayed is written again by the
  rewind turn, after its scheduling events, as any turn writes them.
* The turn begins with an `ExecutionRewound` marker naming the voided span
  (``voided_from`` to ``source_event_id``). Every later replay reads the
  markers up front, like patch markers, and skips the voided events and the
  markers themselves; no replay derives a span again.
* In the rewind turn, the code goes on live after the kept events are
  replayed: what it schedules past the last kept event becomes the turn's
  new events instead of a nondeterminism error, and an end it reaches is
  the turn's outcome. The failure interrupted the code run for the last
  kept *trigger* (an event that runs code: the start, a completion, a
  delivered event) when it was written in that same turn (same timestamp,
  or the same turn as a later rewind marker, when an earlier rewind failed
  again): that step is re-run as live code (``is_replaying`` false), so a
  fix behind ``ctx.patched`` takes its new branch there. A failure the
  runtime wrote by itself (a poison instance, a turn timeout) interrupted
  no recorded step: the whole replay is a replay.
* Activities and timers scheduled before the rewind and still open after
  its turn are sent again (`TurnResult.reissue`). Sub-orchestrations are the
  runtime's business (`pending_children`): the failure cancelled them, and
  an answer that came while the parent had failed was dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import NondeterminismError
from ._actions import Action
from ._history import (
    Event,
    ExecutionRewound,
    OrchestrationFailed,
    SubOrchestrationScheduled,
    WorkKind,
)
from ._tasks import PENDING, WorkFuture

__all__ = [
    "Rewind",
    "RewindPlan",
    "pending_children",
    "plan_rewind",
    "voided_ids",
]

# Roles of events whose application runs orchestration code.
_TRIGGERS = ("start", "completion", "delivered")
# Work a rewind turn sends again when it is still open.
_REISSUED = (WorkKind.ACTIVITY, WorkKind.TIMER)


@dataclass(frozen=True, slots=True)
class RewindPlan:
    """What a rewind turn voids and re-runs, derived from the stored history.

    Attributes:
        failed: Id of the last `OrchestrationFailed` (the marker's source).
        first: First voided event id (the span is ``first`` to ``failed``).
        voided: Every voided event id: this span and earlier rewinds' spans.
        live: The trigger whose step the failure interrupted, re-run as
            live code; None if the runtime wrote the failure by itself.
        last_trigger: The last kept trigger: the code may not end before it.
    """

    failed: int
    first: int
    voided: frozenset[int]
    live: int | None
    last_trigger: int | None

    def marker(self, event_id: int, timestamp: float) -> ExecutionRewound:
        """The `ExecutionRewound` event that opens the rewind turn."""
        return ExecutionRewound(
            event_id=event_id,
            timestamp=timestamp,
            source_event_id=self.failed,
            voided_from=self.first,
        )


def voided_ids(events: Iterable[Event]) -> set[int]:
    """Event ids voided by the `ExecutionRewound` markers among *events*."""
    voided: set[int] = set()
    for event in events:
        if type(event) is ExecutionRewound and event.source_event_id is not None:
            voided.update(range(event.voided_from, event.source_event_id + 1))
    return voided


def plan_rewind(events: Sequence[Event]) -> RewindPlan | None:
    """The rewind of an execution whose stored history is *events*.

    Returns:
        None if the history does not end with a failure (nothing to rewind:
        a rewind message that is stale).
    """
    if not events or type(events[-1]) is not OrchestrationFailed:
        return None
    failed = events[-1].event_id
    first = failed
    failure_time = events[-1].timestamp
    for event in reversed(events[:-1]):
        if type(event) is OrchestrationFailed:
            failure_time = event.timestamp
        elif event.role != "cancel" or event.timestamp != failure_time:
            break
        first = event.event_id
    voided = voided_ids(events)
    voided.update(range(first, failed + 1))
    # The step the failure interrupted: the last kept trigger, if the
    # failure was written in its turn (or in the turn of a rewind marker
    # after it: an earlier rewind whose re-run of that step failed again).
    live: int | None = None
    last_trigger: int | None = None
    same_turn: bool | None = None
    for event in reversed(events[: first - 1]):
        if event.event_id in voided:
            continue
        if event.role == "rewind" and same_turn is None:
            same_turn = event.timestamp == failure_time
        elif event.role in _TRIGGERS:
            last_trigger = event.event_id
            if same_turn is None:
                same_turn = event.timestamp == failure_time
            live = last_trigger if same_turn else None
            break
    return RewindPlan(failed, first, frozenset(voided), live, last_trigger)


def pending_children(
    events: Sequence[Event], voided: Iterable[int]
) -> list[tuple[int, str]]:
    """Sub-orchestrations still open once *voided* events are skipped.

    Returns:
        ``(event_id, child instance id)`` of every scheduled child with no
        answer and no (kept) cancellation, in event order.
    """
    skip = set(voided)
    children: dict[int, str] = {}
    closed: set[int] = set()
    for event in events:
        if event.event_id in skip:
            continue
        if type(event) is SubOrchestrationScheduled:
            children[event.event_id] = event.instance_id
        elif event.role in ("completion", "cancel") and event.source_event_id:
            closed.add(event.source_event_id)
    return [(eid, iid) for eid, iid in children.items() if eid not in closed]


class Rewind:
    """One rewind of a driver, from ``replay(..., rewind=True)`` to its turn's end.

    Attributes:
        plan: What is voided and re-run.
        held: Patch markers decided while the interrupted step was re-run
            live; the driver emits them once replay is over, so that the
            stored scheduling events still match the code's actions in order.
        begun: Whether the rewind turn has begun (its marker is written).
    """

    __slots__ = ("_scheduled", "begun", "held", "plan")

    def __init__(self, events: Sequence[Event]) -> None:
        plan = plan_rewind(events)
        if plan is None:
            raise ValueError("nothing to rewind: the history does not end Failed")
        self.plan = plan
        self.held: list[Action] = []
        self.begun = False
        # event id -> (scheduling event, activity options) of the activities
        # and timers replay bound: candidates for re-issue.
        self._scheduled: dict[int, tuple[Event, Any]] = {}

    def bound(self, event: Event, action: Action) -> None:
        """Note work replay bound to its stored scheduling *event*."""
        work = action.work
        if work is not None and work.kind in _REISSUED:
            self._scheduled[event.event_id] = (event, action.options)

    def check_end(self, status: str | None, event: Event) -> None:
        """Refuse code that ended (*status*) before the history's last step.

        Raises:
            NondeterminismError: It ended while an event that runs code
                was still ahead in the kept history.
        """
        last = self.plan.last_trigger
        if status is not None and last is not None and event.event_id < last:
            raise NondeterminismError(
                f"the orchestration ended ({status}) at event {event.event_id} "
                f"while replaying for a rewind, but the history goes on to "
                f"event {last} (code changed?)"
            )

    def still_open(
        self, work: Mapping[int, WorkFuture[Any]]
    ) -> list[tuple[Event, Any]]:
        """Activities and timers bound in replay and still open: to send again."""
        return [
            kept
            for event_id, kept in self._scheduled.items()
            if work[event_id]._state == PENDING
        ]
