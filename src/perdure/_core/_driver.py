"""The replay driver: runs orchestration coroutines against a history.

The driver is pure: it never does I/O, reads no clock and starts no thread.
Time comes from event timestamps, identity from the instance id. A turn is
``begin_turn`` → ``deliver`` (one call per new message, in arrival order) →
``end_turn``; a cache miss first calls ``replay`` with the stored events.

Invariants:

* Scheduling calls emit *actions* into a FIFO; each scheduling event (from
  history during replay, or created by ``end_turn``) binds the oldest one.
* Completions are applied one at a time; after each, every ready task runs
  until all are blocked again (``_run_ready``), so the order in which code
  observes results is the history order, on every replay.
* Cancellations are recorded in a FIFO too and become cancel events after
  the turn's scheduling events; replay checks they match history.
* Patch markers are written with the scheduling events but never matched:
  replay reads them up front (`._patches`); so are rewind markers, and
  replay skips the events they void (`._rewind`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from .._errors import (
    ErrorInfo,
    NondeterminismError,
)
from . import _history as h
from ._actions import (
    Action,
    cancel_mismatch,
    check_match,
    leftover,
    terminal_mismatch,
)
from ._calls import Calls
from ._outcome import (
    Outcome,
    TurnResult,
    continued_outcome,
    root_outcome,
    terminal_event,
)
from ._rewind import Rewind, voided_ids
from ._runaway import TOO_DEEP, deep_recursion
from ._runner import ContinueAsNewSignal
from ._tasks import (
    PENDING,
    Task,
    WorkFuture,
    cancel_task,
    cancel_tree,
    unawaited_failures,
)

__all__ = ["ContinueAsNewSignal", "Driver", "Outcome", "TurnResult"]

_set = object.__setattr__
# Enum members as plain globals: on Python 3.11 ``WorkKind.WAIT`` is a
# descriptor call, ten times a global lookup, on the driver's hot path.
_WAIT = h.WorkKind.WAIT
_SUB = h.WorkKind.SUB


class Driver(Calls):
    """Replays and advances one execution of one orchestration instance.

    It is the `Scheduler` of its futures and tasks: `Runner` steps the
    coroutines, the driver applies events and turns what code emitted into
    new ones.
    """

    def __init__(
        self,
        instance_id: str,
        execution_id: int,
        body: Callable[[Any], Coroutine[Any, Any, Any]],
    ) -> None:
        super().__init__(instance_id, execution_id)
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.body = body
        self.history_len = 0
        self.now = 0.0
        self.outcome: Outcome | None = None
        # The outcome decided while shielded work was still running: it
        # becomes ``outcome`` once nothing is held (DESIGN §8).
        self.ending: Outcome | None = None
        self.started: h.OrchestrationStarted | None = None
        self._work: dict[int, WorkFuture[Any]] = {}
        self._completed: set[int] = set()
        self._terminal_seen = False
        self._new: list[h.Event] = []
        self._options: dict[int, Any] = {}

    # ------------------------------------------------------------------ turns
    def replay(self, events: list[h.Event], *, rewind: bool = False) -> None:
        """Re-apply stored events (cache miss). Raises `NondeterminismError`.

        Events voided by rewinds are skipped. With *rewind* (`ValueError` if
        the history does not end Failed), the next turn is a rewind turn:
        the trailing failure is voided too, and what the code does past the
        kept events becomes that turn's events (see `._rewind`).
        """
        rewinding = self._rewind = Rewind(events) if rewind else None
        voided = rewinding.plan.voided if rewinding else voided_ids(events)
        live = rewinding.plan.live if rewinding else None
        self.is_replaying = True
        self._patches.read(events)
        try:
            with deep_recursion:
                for event in events:
                    if event.event_id != self.history_len + 1:
                        raise NondeterminismError(
                            f"corrupted history: event id {event.event_id} at "
                            f"position {self.history_len + 1}"
                        )
                    self.history_len = event.event_id
                    if voided and event.event_id in voided:
                        continue
                    # The step a rewound failure interrupted runs as live code.
                    self.is_replaying = event.event_id != live
                    try:
                        self._apply(event)
                    except RecursionError:
                        self._too_deep()
                    if rewinding is not None:
                        status = self.outcome.status if self.outcome else None
                        rewinding.check_end(status, event)
        finally:
            self.is_replaying = False
        if rewinding is not None:
            self._emitted.extendleft(reversed(rewinding.held))
            return
        error = leftover(
            self._emitted[0] if self._emitted else None,
            self._cancels[0] if self._cancels else None,
            self.outcome.status if self.outcome else None,
            self._terminal_seen,
        )
        if error is not None:
            raise error

    def begin_turn(self, now: float) -> None:
        """Start a turn at wall-clock time *now* (timestamp of new events).

        A rewind turn begins with its `ExecutionRewound` marker.
        """
        self.now = now
        self._new = []
        self._options = {}
        self.values_changed = False
        rewinding = self._rewind
        if rewinding is not None and not rewinding.begun:
            rewinding.begun = True
            self._push(rewinding.plan.marker(self.history_len + 1, now))

    def deliver(
        self, cls: type[h.Event], source_event_id: int | None = None, **fields: Any
    ) -> bool:
        """Append a new event for an incoming message and apply it.

        Returns:
            False if the message was dropped: the execution already ended, or
            it is a completion for unknown or already completed work.
        """
        if self.outcome is not None:
            if (
                cls is h.EventRaised
                and self.outcome.status == "ContinuedAsNew"
                and not self._terminal_seen
            ):
                # Arrived in the continue-as-new turn after the code ended:
                # not recorded here, carried to the next execution.
                self._inbox.buffer(fields["name"], fields.get("data"))
                return True
            return False
        if source_event_id is not None:
            work = self._work.get(source_event_id)
            if (
                work is None
                or source_event_id in self._completed
                or cls.role != "completion"
                or cls.work != work.kind
            ):
                return False
        event = cls(
            event_id=self.history_len + 1,
            timestamp=self.now,
            source_event_id=source_event_id,
            **fields,
        )
        self.history_len += 1
        self._new.append(event)
        with deep_recursion:
            try:
                self._apply(event)
            except RecursionError:
                self._too_deep()
        return True

    def end_turn(self) -> TurnResult:
        """Turn emitted actions, cancellations and the outcome into events."""
        while self._emitted:
            action = self._emitted.popleft()
            event_id = self.history_len + 1
            event = action.event
            # Stamped in place, not copied: nothing outside the driver has
            # seen it yet, and a copy per scheduled event costs ~3 % of a
            # turn. (A frozen dataclass's own __init__ sets fields this way.)
            _set(event, "event_id", event_id)
            _set(event, "timestamp", self.now)
            if isinstance(event, h.SubOrchestrationScheduled) and not event.instance_id:
                _set(event, "instance_id", self.child_id(event_id))
            self._bind(action, event)
            if action.options is not None:
                self._options[event_id] = action.options
            self._push(event)
        targets: dict[int, str] = {}
        while self._cancels:
            work = self._cancels.popleft()
            assert work.event_id is not None
            if work.target:
                targets[work.event_id] = work.target
            cancel_cls: Any = h.CANCEL_EVENT[work.kind]
            reason = str(work._value.reason) if work._value is not None else ""
            self._push(
                cancel_cls(
                    event_id=self.history_len + 1,
                    timestamp=self.now,
                    source_event_id=work.event_id,
                    reason=reason,
                )
            )
        carried: list[tuple[str, Any]] = []
        continued = False
        if self.outcome is not None and not self._terminal_seen:
            self._terminal_seen = True
            if self.root is not None:
                self._unobserved.extend(unawaited_failures(self.root))
            self._push(terminal_event(self.outcome, self.history_len + 1, self.now))
            if self.outcome.status == "ContinuedAsNew":
                carried = self._inbox.unconsumed()
                continued = True
        rewinding, self._rewind = self._rewind, None
        reissue = rewinding.still_open(self._work) if rewinding else []
        # The values, when the commit needs them: changed by the turn,
        # carried on by a continue-as-new, or a rewind turn (written again
        # so that they match the history the rewind leaves).
        values = (
            self.values.snapshot()
            if self.values_changed or continued or rewinding is not None
            else None
        )
        return TurnResult(
            self._new, self.outcome, self._options, carried, targets, reissue, values
        )

    def child_id(self, event_id: int) -> str:
        """Default instance id of a sub-orchestration scheduled as *event_id*.

        Event ids restart at 1 with every continue-as-new, so executions
        after the first include their number to keep child ids unique.
        """
        if self.execution_id == 1:
            return f"{self.instance_id}::sub::{event_id}"
        return f"{self.instance_id}::sub::{self.execution_id}.{event_id}"

    def _push(self, event: h.Event) -> None:
        self.history_len = event.event_id
        self._new.append(event)

    # --------------------------------------------------------------- applying
    def _too_deep(self) -> None:
        # Even the raised limit (_runaway.deep_recursion) was not enough:
        # fail the instance with a clear error rather than letting the turn
        # fail until its message is poison.
        with contextlib.suppress(RecursionError):
            self._end(Outcome("Failed", error=TOO_DEEP))
            return
        # The cascade was cut short: end with what was decided, now.
        if self.outcome is None:
            self.outcome = self.ending

    def _apply(self, event: h.Event) -> None:
        self.now = event.timestamp
        cls = type(event)
        role = cls.role
        if role == "scheduling":
            self._match_scheduling(event)
            return
        if role == "marker" or role == "rewind":
            return  # read before replay began (`Patches.read`), never matched
        if role == "completion":
            self._complete(event)
        elif cls is h.EventRaised:
            self._inbox.raised(event.name, event.data)  # type: ignore[attr-defined]
        elif cls is h.OrchestrationStarted:
            self._start(event)  # type: ignore[arg-type]
        elif cls is h.OrchestrationCancelRequested:
            self._cancel_instance(event.reason)  # type: ignore[attr-defined]
        elif role == "cancel":
            self._match_cancel(event)
            return
        elif role == "terminal":
            self._match_terminal(event)
            return
        self._run_ready()
        if self.ending is not None and self.outcome is None and not self.holds:
            self._finish()

    def _start(self, event: h.OrchestrationStarted) -> None:
        if self.root is not None:
            raise NondeterminismError(
                "corrupted history: a second OrchestrationStarted"
            )
        self.started = event
        self.values.load(event.values)
        try:
            coro = self.body(event.input)
        except Exception as exc:
            error = ErrorInfo.from_exception(exc)
            self._end(Outcome("Failed", error=error, exception=exc))
            return
        self.root = Task(self, coro, None)
        self._step(self.root, None)

    def _match_scheduling(self, event: h.Event) -> None:
        action = self._emitted.popleft() if self._emitted else None
        check_match(event, action)
        assert action is not None
        self._bind(action, event)
        if self._rewind is not None:
            self._rewind.bound(event, action)

    def _bind(self, action: Action, event: h.Event) -> None:
        work = action.work
        if work is not None:
            work.event_id = event.event_id
            self._work[event.event_id] = work
            if work.kind is _SUB:
                work.target = getattr(event, "instance_id", None)

    def _complete(self, event: h.Event) -> None:
        source = event.source_event_id
        work = self._work.get(source) if source is not None else None
        if work is None or event.work != work.kind:
            raise NondeterminismError(
                f"corrupted history: {event.type} (event {event.event_id}) "
                f"answers event {source}, which is not an open {event.work}"
            )
        assert source is not None
        if source in self._completed:
            return
        self._completed.add(source)
        if work._state != PENDING:
            return  # cancelled earlier: recorded, ignored
        work.complete(event)

    def _cancel_instance(self, reason: str) -> None:
        if self.ending is not None or self.root is None:
            return
        cancel_task(self, self.root, reason or "instance cancelled")
        self._end(Outcome("Cancelled", reason=reason))

    def _match_cancel(self, event: h.Event) -> None:
        expected = self._cancels.popleft() if self._cancels else None
        if expected is None or expected.event_id != event.source_event_id:
            raise cancel_mismatch(event, expected)

    def _match_terminal(self, event: h.Event) -> None:
        status = event.status
        if self.outcome is None or self.outcome.status != status:
            got = self.outcome.status if self.outcome else "still running"
            raise terminal_mismatch(event, got)
        self._terminal_seen = True

    # ------------------------------------------------------------- outcome
    def _root_finished(self, state: int, value: Any) -> None:
        if self.ending is None:
            root = self.root
            cancelled = root is not None and root.cancel_reason is not None
            outcome = root_outcome(state, value, cancelled)
            if outcome is not None:
                self._end(outcome)

    def _continue_as_new(self, signal: ContinueAsNewSignal) -> None:
        self._end(continued_outcome(signal.input, signal.version))

    def _end(self, outcome: Outcome) -> None:
        """Decide the outcome; it is final once no shielded work is left."""
        if self.ending is not None:
            return
        self.ending = outcome
        root = self.root
        if root is not None:
            if root._state == PENDING:
                cancel_task(self, root, _end_reason(outcome))
            else:
                cancel_tree(self, root, _end_reason(outcome))
        if not self.holds:
            self.outcome = outcome

    def _finish(self) -> None:
        """The last shielded work has settled: the decided outcome is final.

        Work that shielded tasks left unfinished is cancelled now, as the
        end of the execution cancels everything unfinished.
        """
        outcome = self.outcome = self.ending
        if self.root is not None and outcome is not None:
            cancel_tree(self, self.root, _end_reason(outcome))


def _end_reason(outcome: Outcome) -> str:
    status = outcome.status
    return "orchestration " + (
        "continued as new" if status == "ContinuedAsNew" else status.lower()
    )
