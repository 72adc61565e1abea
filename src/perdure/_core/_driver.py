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
"""

from __future__ import annotations

import contextlib
import hashlib
import random as _random
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .._codec import to_json
from .._errors import (
    ActivityFailed as ActivityFailedError,
    Cancelled,
    ErrorInfo,
    NondeterminismError,
    PayloadError,
    SubOrchestrationFailed as SubFailedError,
)
from . import _history as h
from ._futures import CANCELLED, DONE, FAILED, PENDING, DurableFuture, WorkFuture
from ._runaway import (
    MAX_BAD_AWAITS,
    MAX_UNWIND,
    TOO_DEEP,
    RunawayTask,
    close_refusal,
    deep_recursion,
    force_close,
    refusal,
    refused_future,
)
from ._scope import Task, Unobserved, cancel_task, cancel_tree, unawaited_failures
from ._traps import IN_ORCHESTRATION, foreign_await_error, self_await_error

__all__ = ["ContinueAsNewSignal", "Driver", "Outcome", "TurnResult"]

_GUID_NAMESPACE = uuid.UUID("6f1c3a52-6c8e-4c1e-9d0b-7e5f0e2a9b11")

_CANCEL_EVENT: dict[str, type[h.Event]] = {
    "activity": h.ActivityCancelRequested,
    "timer": h.TimerCancelled,
    "wait": h.EventWaitCancelled,
    "sub": h.SubOrchestrationCancelRequested,
}
_CANCEL_KIND: dict[type[h.Event], str] = {v: k for k, v in _CANCEL_EVENT.items()}
_COMPLETION_KIND: dict[type[h.Event], str] = {
    h.ActivityCompleted: "activity",
    h.ActivityFailed: "activity",
    h.TimerFired: "timer",
    h.SubOrchestrationCompleted: "sub",
    h.SubOrchestrationFailed: "sub",
}
# Fields a replayed scheduling event must match (DESIGN §2).
_MATCH_KEYS: dict[type[h.Event], tuple[str, ...]] = {
    h.ActivityScheduled: ("name", "input"),
    h.TimerCreated: (),
    h.EventWaitStarted: ("name",),
    h.SubOrchestrationScheduled: ("name", "input"),
    h.OrchestrationChained: ("name", "instance_id", "input"),
    h.CustomStatusUpdated: ("value",),
}
_TERMINAL: dict[type[h.Event], str] = {
    h.OrchestrationCompleted: "Completed",
    h.OrchestrationFailed: "Failed",
    h.OrchestrationCancelled: "Cancelled",
    h.OrchestrationContinuedAsNew: "ContinuedAsNew",
}


class ContinueAsNewSignal(BaseException):
    """Raised by ``ctx.continue_as_new``; ends the execution at once.

    A `BaseException` so that ``except Exception`` cannot swallow it.
    """

    def __init__(self, input: Any, version: str | None = None) -> None:
        super().__init__("continue_as_new")
        self.input = input
        self.version = version


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an execution ended.

    ``status`` is Completed, Failed, Cancelled or ContinuedAsNew.
    """

    status: str
    output: Any = None
    error: ErrorInfo | None = None
    reason: str = ""
    version: str | None = None


@dataclass(slots=True)
class TurnResult:
    """What a turn produced: events to append and what the runtime must do."""

    events: list[h.Event]
    outcome: Outcome | None
    # event_id of an ActivityScheduled -> options (retry, timeout)
    activity_options: dict[int, Any] = field(default_factory=dict)
    # ContinueAsNew: buffered events not consumed, as (name, data)
    carried_events: list[tuple[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Action:
    cls: type[h.Event]
    fields: dict[str, Any]
    work: WorkFuture[Any] | None
    options: Any = None


class Driver:
    """Replays and advances one execution of one orchestration instance."""

    def __init__(
        self,
        instance_id: str,
        execution_id: int,
        body: Callable[[Any], Coroutine[Any, Any, Any]],
    ) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.body = body
        self.history_len = 0
        self.now = 0.0
        self.is_replaying = False
        self.outcome: Outcome | None = None
        self.root: Task | None = None
        self.current: Task | None = None
        self.started: h.OrchestrationStarted | None = None
        self._stack: list[Task] = []
        self._ready: deque[tuple[Task, BaseException | None]] = deque()
        self._emitted: deque[_Action] = deque()
        self._cancels: deque[WorkFuture[Any]] = deque()
        self._work: dict[int, WorkFuture[Any]] = {}
        self._completed: set[int] = set()
        self._buffers: dict[str, deque[tuple[int, Any]]] = {}
        self._waits: dict[str, deque[WorkFuture[Any]]] = {}
        self._event_seq = 0
        self._token = 0
        self._seed_counter = 0
        self._terminal_seen = False
        self._new: list[h.Event] = []
        self._options: dict[int, Any] = {}
        # Futures failed or cancelled so far (each one's stamp, for join).
        self.failure_count = 0
        # The task being force-closed (see _runaway.force_close), if any.
        self.closing: Task | None = None
        # Exceptions no code will see, from new turns only (never replayed,
        # so a rebuilt driver does not report them twice).
        self._unobserved: list[Unobserved] = []

    # ------------------------------------------------------------------ turns
    def replay(self, events: list[h.Event]) -> None:
        """Re-apply stored events (cache miss). Raises `NondeterminismError`."""
        self.is_replaying = True
        try:
            with deep_recursion:
                for event in events:
                    if event.event_id != self.history_len + 1:
                        raise NondeterminismError(
                            f"corrupted history: event id {event.event_id} at "
                            f"position {self.history_len + 1}"
                        )
                    self.history_len = event.event_id
                    try:
                        self._apply(event)
                    except RecursionError:
                        self._too_deep()
        finally:
            self.is_replaying = False
        if self._emitted:
            action = self._emitted[0]
            raise NondeterminismError(
                f"the orchestration scheduled {_describe_action(action)}, which "
                "the history does not contain at this point (code changed?)"
            )
        if self._cancels:
            raise NondeterminismError(
                f"the orchestration cancelled {self._cancels[0]!r}, which the "
                "history does not record (code changed?)"
            )
        if self.outcome is not None and not self._terminal_seen:
            raise NondeterminismError(
                f"the orchestration ended ({self.outcome.status}) during replay, "
                "but the history shows it still running (code changed?)"
            )

    def begin_turn(self, now: float) -> None:
        """Start a turn at wall-clock time *now* (timestamp of new events)."""
        self.now = now
        self._new = []
        self._options = {}

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
                self._event_seq += 1
                self._buffers.setdefault(fields["name"], deque()).append(
                    (self._event_seq, fields.get("data"))
                )
                return True
            return False
        if source_event_id is not None:
            work = self._work.get(source_event_id)
            if (
                work is None
                or source_event_id in self._completed
                or _COMPLETION_KIND.get(cls) != work.kind
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
            fields = action.fields
            if action.cls is h.SubOrchestrationScheduled and not fields.get(
                "instance_id"
            ):
                fields = {**fields, "instance_id": self.child_id(event_id)}
            event = action.cls(event_id=event_id, timestamp=self.now, **fields)
            self._bind(action, event)
            if action.options is not None:
                self._options[event_id] = action.options
            self._push(event)
        while self._cancels:
            work = self._cancels.popleft()
            assert work.event_id is not None
            cancel_cls: Any = _CANCEL_EVENT[work.kind]
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
        if self.outcome is not None and not self._terminal_seen:
            self._terminal_seen = True
            if self.root is not None:
                self._unobserved.extend(unawaited_failures(self.root))
            self._push(self._terminal_event(self.outcome))
            if self.outcome.status == "ContinuedAsNew":
                carried = self.unconsumed_events()
        return TurnResult(self._new, self.outcome, self._options, carried)

    def take_unobserved(self) -> list[Unobserved]:
        """Exceptions no orchestration code will see, collected in new turns.

        A task's exception raised after it was cancelled (its future ends
        cancelled instead), and failures of tasks nothing retrieved by the
        time the execution ended. The runtime logs them (DESIGN §8); this
        clears the list.
        """
        taken, self._unobserved = self._unobserved, []
        return taken

    def child_id(self, event_id: int) -> str:
        """Default instance id of a sub-orchestration scheduled as *event_id*.

        Event ids restart at 1 with every continue-as-new, so executions
        after the first include their number to keep child ids unique.
        """
        if self.execution_id == 1:
            return f"{self.instance_id}::sub::{event_id}"
        return f"{self.instance_id}::sub::{self.execution_id}.{event_id}"

    def sub_target(self, event_id: int) -> str | None:
        """Instance id of the sub-orchestration scheduled as *event_id*."""
        work = self._work.get(event_id)
        return work.target if work is not None else None

    def unconsumed_events(self) -> list[tuple[str, Any]]:
        """Buffered external events no wait has taken, in arrival order."""
        items = [
            (seq, name, data)
            for name, buffer in self._buffers.items()
            for seq, data in buffer
        ]
        items.sort(key=lambda item: item[0])
        return [(name, data) for _, name, data in items]

    def _push(self, event: h.Event) -> None:
        self.history_len = event.event_id
        self._new.append(event)

    def _terminal_event(self, outcome: Outcome) -> h.Event:
        common: dict[str, Any] = {
            "event_id": self.history_len + 1,
            "timestamp": self.now,
        }
        if outcome.status == "Completed":
            return h.OrchestrationCompleted(output=outcome.output, **common)
        if outcome.status == "Failed":
            assert outcome.error is not None
            return h.OrchestrationFailed(error=outcome.error.to_json(), **common)
        if outcome.status == "Cancelled":
            return h.OrchestrationCancelled(reason=outcome.reason, **common)
        return h.OrchestrationContinuedAsNew(input=outcome.output, **common)

    # --------------------------------------------------------------- applying
    def _too_deep(self) -> None:
        # Even the raised limit (_runaway.deep_recursion) was not enough:
        # fail the instance with a clear error rather than letting the turn
        # fail until its message is poison. (_end sets the outcome first,
        # so a cascade cut short keeps it.)
        with contextlib.suppress(RecursionError):
            self._end(Outcome("Failed", error=TOO_DEEP))

    def _apply(self, event: h.Event) -> None:
        self.now = event.timestamp
        cls = type(event)
        if cls in _MATCH_KEYS:
            self._match_scheduling(event)
            return
        if cls in _COMPLETION_KIND:
            self._complete(event)
        elif cls is h.EventRaised:
            self._event_raised(event)  # type: ignore[arg-type]
        elif cls is h.OrchestrationStarted:
            self._start(event)  # type: ignore[arg-type]
        elif cls is h.OrchestrationCancelRequested:
            self._cancel_instance(event.reason)  # type: ignore[attr-defined]
        elif cls in _CANCEL_KIND:
            self._match_cancel(event)
            return
        elif cls in _TERMINAL:
            self._match_terminal(event)
            return
        self._run_ready()

    def _start(self, event: h.OrchestrationStarted) -> None:
        if self.root is not None:
            raise NondeterminismError(
                "corrupted history: a second OrchestrationStarted"
            )
        self.started = event
        try:
            coro = self.body(event.input)
        except Exception as exc:
            self._end(Outcome("Failed", error=ErrorInfo.from_exception(exc)))
            return
        self.root = Task(self, coro, None)
        self._step(self.root, None)

    def _match_scheduling(self, event: h.Event) -> None:
        if not self._emitted:
            raise NondeterminismError(
                f"history has {_describe_event(event)} (event {event.event_id}), "
                "but the orchestration did not schedule anything at this point "
                "(code changed?)"
            )
        action = self._emitted.popleft()
        keys = _MATCH_KEYS[type(event)]
        same = action.cls is type(event) and all(
            action.fields.get(k) == getattr(event, k) for k in keys
        )
        explicit_id = action.fields.get("instance_id")
        if same and action.cls is h.SubOrchestrationScheduled and explicit_id:
            same = explicit_id == getattr(event, "instance_id", None)
        if not same:
            raise NondeterminismError(
                f"history has {_describe_event(event)} (event {event.event_id}), "
                f"but the orchestration scheduled {_describe_action(action)}"
            )
        self._bind(action, event)

    def _bind(self, action: _Action, event: h.Event) -> None:
        work = action.work
        if work is not None:
            work.event_id = event.event_id
            self._work[event.event_id] = work
            if work.kind == "sub":
                work.target = getattr(event, "instance_id", None)

    def _complete(self, event: h.Event) -> None:
        source = event.source_event_id
        work = self._work.get(source) if source is not None else None
        if work is None or _COMPLETION_KIND[type(event)] != work.kind:
            raise NondeterminismError(
                f"corrupted history: {event.type} (event {event.event_id}) "
                f"answers event {source}, which is not an open "
                f"{_COMPLETION_KIND[type(event)]}"
            )
        assert source is not None
        if source in self._completed:
            return
        self._completed.add(source)
        if work._state != PENDING:
            return  # cancelled earlier: recorded, ignored
        cls = type(event)
        if cls is h.ActivityCompleted or cls is h.SubOrchestrationCompleted:
            value = event.result  # type: ignore[attr-defined]
            if work.decode is not None:
                try:
                    value = work.decode(value)
                except PayloadError as exc:
                    work._settle(FAILED, exc)
                    return
            work._settle(DONE, value)
        elif cls is h.TimerFired:
            work._settle(DONE, None)
        elif cls is h.ActivityFailed:
            info = ErrorInfo.from_json(event.error)  # type: ignore[attr-defined]
            work._settle(
                FAILED,
                ActivityFailedError(work.label, info.message, info.type, info.category),
            )
        else:
            info = ErrorInfo.from_json(event.error)  # type: ignore[attr-defined]
            work._settle(FAILED, SubFailedError(work.label, work.target or "", info))

    def _event_raised(self, event: h.EventRaised) -> None:
        waits = self._waits.get(event.name)
        while waits:
            wait = waits.popleft()
            if wait._state == PENDING:
                wait._settle(DONE, event.data)
                return
        self._event_seq += 1
        self._buffers.setdefault(event.name, deque()).append(
            (self._event_seq, event.data)
        )

    def _cancel_instance(self, reason: str) -> None:
        if self.outcome is not None or self.root is None:
            return
        cancel_task(self, self.root, reason or "instance cancelled")
        self._end(Outcome("Cancelled", reason=reason))

    def _match_cancel(self, event: h.Event) -> None:
        expected = self._cancels.popleft() if self._cancels else None
        if expected is None or expected.event_id != event.source_event_id:
            raise NondeterminismError(
                f"history cancels event {event.source_event_id} "
                f"({event.type}, event {event.event_id}), but the orchestration "
                + (
                    f"cancelled {expected!r}"
                    if expected is not None
                    else "cancelled nothing at this point"
                )
            )

    def _match_terminal(self, event: h.Event) -> None:
        status = _TERMINAL[type(event)]
        if self.outcome is None or self.outcome.status != status:
            got = self.outcome.status if self.outcome else "still running"
            raise NondeterminismError(
                f"history says the orchestration ended {status} "
                f"(event {event.event_id}), but on replay it is {got}"
            )
        self._terminal_seen = True

    # ------------------------------------------------------------- scheduling
    def _require_task(self) -> Task | None:
        """The running task, for a durable call; raise if it may not make one.

        Returns:
            None when the call must quietly do nothing (see
            `_runaway.refusal`); the caller then returns a future that is
            already cancelled.
        """
        task = self.current
        if task is not None and task.cancel_reason is None:
            return task
        error = refusal(self)
        if error is None:
            return None
        raise error

    def outside_task_error(self) -> BaseException | None:
        """The error for an await made while no task is being stepped.

        See `_runaway.close_refusal`; None means: suspend.
        """
        return close_refusal(self)

    def require_live_task(self) -> None:
        """Raise unless the running task may act (for ``continue_as_new``).

        Raises:
            Cancelled: The running task was cancelled (DESIGN §8).
        """
        if self._require_task() is None:
            raise GeneratorExit  # a coroutine being closed: end it

    def current_cancelled(self) -> bool:
        """Return True if the running task has been cancelled."""
        task = self.current
        return task is not None and task.cancel_reason is not None

    def schedule(
        self,
        kind: str,
        cls: type[h.Event],
        fields: dict[str, Any],
        label: str,
        *,
        decode: Callable[[Any], Any] | None = None,
        options: Any = None,
    ) -> DurableFuture[Any]:
        """Create work owned by the running task and emit its action."""
        task = self._require_task()
        if task is None:
            return refused_future(self)
        self._token += 1
        work: WorkFuture[Any] = WorkFuture(self, kind, self._token, task, label, decode)
        task.children.append(work)
        fields["scope"] = task.path
        self._emitted.append(_Action(cls, fields, work, options))
        if kind == "wait":
            name = fields["name"]
            buffer = self._buffers.get(name)
            if buffer:
                work._settle(DONE, buffer.popleft()[1])
            else:
                self._waits.setdefault(name, deque()).append(work)
        return work

    def emit(self, cls: type[h.Event], fields: dict[str, Any]) -> None:
        """Emit an action that creates no work (custom status, detached start)."""
        if self._require_task() is not None:
            self._emitted.append(_Action(cls, fields, None))

    def create_task(self, coro: Coroutine[Any, Any, Any]) -> DurableFuture[Any]:
        """Start a child task of the running task; it runs to its first block."""
        try:
            parent = self._require_task()
        except BaseException:
            coro.close()
            raise
        if parent is None:
            coro.close()
            return refused_future(self)
        task = Task(self, coro, parent)
        self._step(task, None)
        return task

    def cancel_future(self, future: DurableFuture[Any], reason: str) -> None:
        """Cancel any durable future (work, task or combinator)."""
        if future._state == PENDING:
            future._cancel(reason)

    def cancel_work(self, work: WorkFuture[Any], reason: str) -> None:
        """Cancel unfinished work and record its cancel event for this turn."""
        if work._state != PENDING:
            return
        if work.kind == "wait":
            waits = self._waits.get(str(work.label))
            if waits and work in waits:
                waits.remove(work)
        # Recorded before settling, so cancellations its waiters trigger
        # come after it in history.
        self._cancels.append(work)
        work._settle(CANCELLED, Cancelled(reason))

    def new_seed(self) -> int:
        """Return the next deterministic seed (for guids and random)."""
        self._seed_counter += 1
        digest = hashlib.sha256(
            f"{self.instance_id}\0{self.execution_id}\0{self._seed_counter}".encode()
        ).digest()
        return int.from_bytes(digest[:8], "big")

    def new_guid(self) -> str:
        """Return a deterministic UUID string."""
        return str(uuid.UUID(int=self.new_seed() << 64 | self.new_seed(), version=4))

    def new_random(self) -> _random.Random:
        """Return a deterministically seeded `random.Random`."""
        return _random.Random(self.new_seed())

    # ---------------------------------------------------------------- running
    def _run_ready(self) -> None:
        ready = self._ready
        while ready:
            task, exc = ready.popleft()
            if task._state == PENDING or task.cancel_reason is not None:
                self._step(task, exc)

    def _park(self, task: Task, future: DurableFuture[Any]) -> None:
        def wake(_: DurableFuture[Any]) -> None:
            if task.waiting is future:
                task.waiting = None
                task.wait_callback = None
                self._ready.append((task, None))

        task.waiting = future
        task.wait_callback = wake
        future._on_done(wake)

    def _step(self, task: Task, exc: BaseException | None) -> bool:
        """Advance *task* once; return True if it is still suspended."""
        coro = task.coro
        if task.abandoned or getattr(coro, "cr_frame", None) is None:
            return False  # already finished (closed or returned), or dropped
        previous = self.current
        self.current = task
        self._stack.append(task)
        running = IN_ORCHESTRATION.set(True)
        try:
            yielded = coro.send(None) if exc is None else coro.throw(exc)
        except StopIteration as stop:
            self._finished(task, DONE, stop.value)
            return False
        except ContinueAsNewSignal as signal:
            if task.cancel_reason is None:  # a cancelled task cannot (§8)
                self._continue_as_new(signal)
            self._finished(task, CANCELLED, Cancelled("continued as new"))
            return False
        except (Cancelled, RunawayTask) as cancelled:
            self._finished(task, CANCELLED, cancelled)
            return False
        except Exception as error:
            self._finished(task, FAILED, error)
            return False
        finally:
            IN_ORCHESTRATION.reset(running)
            self._stack.pop()
            self.current = previous
        if task.cancel_reason is not None:
            if task._state != PENDING and task not in self._stack:
                # Cancelled while it was running (deferred unwinding), with
                # the same bound as a parked task's unwinding.
                if task.unwinds < MAX_UNWIND:
                    task.unwinds += 1
                    self._ready.append((task, Cancelled(task.cancel_reason)))
                else:
                    self._force_close(task)
                    return False
            return True
        if isinstance(yielded, DurableFuture) and yielded._driver is self:
            if yielded is not task:
                if task.bad_awaits:
                    task.bad_awaits = 0
                if yielded._state != PENDING:
                    self._ready.append((task, None))
                else:
                    self._park(task, yielded)
                return True
            bad_await: BaseException = self_await_error()
        else:
            bad_await = foreign_await_error(yielded)
        task.bad_awaits += 1
        if task.bad_awaits <= MAX_BAD_AWAITS:
            self._ready.append((task, bad_await))
        # else: it keeps swallowing the error; rather than spin, it stays
        # suspended (until cancelled, like any parked task).
        return True

    def unwind_cancelled(self, task: Task) -> None:
        """Throw `Cancelled` into a cancelled task until its coroutine ends."""
        if task.waiting is not None and task.wait_callback is not None:
            task.waiting._remove_callback(task.wait_callback)
        task.waiting = task.wait_callback = None
        if task in self._stack:
            return  # running right now: it unwinds at its next await
        reason = task.cancel_reason or "cancelled"
        while task.unwinds < MAX_UNWIND:
            task.unwinds += 1
            if not self._step(task, Cancelled(reason)):
                return
        self._force_close(task)

    def _force_close(self, task: Task) -> None:
        error = force_close(self, task)
        if error is not None:
            self._note_unobserved(task, error)

    def _note_unobserved(self, task: Task, error: BaseException) -> None:
        if not self.is_replaying:
            self._unobserved.append(Unobserved(task.path, error, after_cancel=True))

    def _finished(self, task: Task, state: int, value: Any) -> None:
        if task.cancel_reason is not None:
            if state == FAILED:
                # Raised from its except/finally after losing: nobody can
                # see it (its future ends cancelled), so it is reported.
                self._note_unobserved(task, value)
            state, value = CANCELLED, Cancelled(task.cancel_reason)
        task._settle(state, value)
        if task is self.root:
            self._root_finished(state, value)

    def _root_finished(self, state: int, value: Any) -> None:
        if self.outcome is not None:
            return
        if state == DONE:
            try:
                self._end(Outcome("Completed", output=to_json(value, "output")))
            except PayloadError as exc:
                self._end(Outcome("Failed", error=ErrorInfo.from_exception(exc)))
        elif state == FAILED:
            self._end(Outcome("Failed", error=ErrorInfo.from_exception(value)))
        elif self.root is not None and self.root.cancel_reason is None:
            # Cancelled escaped the body without the instance being cancelled
            # (it awaited a cancelled future): that is a failure.
            self._end(Outcome("Failed", error=ErrorInfo.from_exception(value)))

    def _continue_as_new(self, signal: ContinueAsNewSignal) -> None:
        try:
            payload = to_json(signal.input, "continue_as_new input")
        except PayloadError as exc:
            self._end(Outcome("Failed", error=ErrorInfo.from_exception(exc)))
            return
        self._end(Outcome("ContinuedAsNew", output=payload, version=signal.version))

    def _end(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        root = self.root
        if root is not None:
            status = outcome.status
            reason = "orchestration " + (
                "continued as new" if status == "ContinuedAsNew" else status.lower()
            )
            if root._state == PENDING:
                cancel_task(self, root, reason)
            else:
                cancel_tree(self, root, reason)


def _describe_event(event: h.Event) -> str:
    keys = _MATCH_KEYS.get(type(event), ())
    detail = ", ".join(f"{k}={getattr(event, k)!r}" for k in keys)
    return f"{event.type}({detail})"


def _describe_action(action: _Action) -> str:
    keys = _MATCH_KEYS.get(action.cls, ())
    detail = ", ".join(f"{k}={action.fields.get(k)!r}" for k in keys)
    return f"{action.cls.kind}({detail})"
