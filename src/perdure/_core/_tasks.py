"""Durable futures and tasks: the plumbing orchestration code awaits.

Futures: work (activity, timer, wait, sub-orchestration) and tasks (the
``select`` and ``join`` combinators are in `._combinators`). A future is
settled exactly once, synchronously, by the driver while it applies an
event, so everything that reacts to it (combinator callbacks, waking tasks)
happens at a deterministic point of the history.

Task scopes: every task (the orchestration body is the root task,
``durable_async`` creates the others) owns the work created while *it* was
running: its activities, timers, waits, sub-orchestrations and child tasks,
kept in creation order. Ownership follows the dynamic extent of a task's
step, never a global "last opened scope" stack, so interleaved tasks cannot
steal each other's work.

Cancelling a task (DESIGN §4.3) is one synchronous operation:

1. every unfinished piece of work of its scope and of all descendant
   scopes is cancelled, depth-first in creation order (work that already
   completed is left alone), except *shielded* work: work and tasks
   created inside ``ctx.shield`` (DESIGN §8), which only an explicit
   ``cancel()`` stops;
2. `Cancelled` is thrown into the task's coroutine so ``finally`` blocks
   run; any later await or scheduling call raises `Cancelled` again,
   except inside a shield;
3. the task's future ends cancelled, whatever the coroutine returned: at
   once, or, if the coroutine is inside a shield (compensating), when it
   ends. Such a *draining* task holds the execution open (`Scheduler.hold`).

This module knows the driver only through the `Scheduler` protocol, so the
imports run one way: ``_history`` <- ``_tasks`` <- ``_combinators``,
``_runner`` <- ``_driver``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from .._errors import (
    ActivityFailed as ActivityFailedError,
    Cancelled,
    ErrorInfo,
    PayloadError,
    SubOrchestrationFailed as SubFailedError,
)
from ._history import (
    ActivityCompleted,
    ActivityFailed,
    Event,
    SubOrchestrationCompleted,
    SubOrchestrationFailed,
    TimerFired,
    WorkKind,
)

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "PENDING",
    "DurableFuture",
    "Scheduler",
    "Task",
    "Unobserved",
    "WorkFuture",
    "cancel_task",
    "cancel_tree",
    "unawaited_failures",
]

T = TypeVar("T")

PENDING, DONE, FAILED, CANCELLED = 0, 1, 2, 3

Callback = Callable[["DurableFuture[Any]"], None]


class Scheduler(Protocol):
    """What futures and tasks need from the driver that runs them."""

    # The task being stepped, if any: it owns the work created now.
    current: Task | None
    # Futures failed or cancelled so far; stamps each one (join's "first
    # failure" follows history order, DESIGN §4.4).
    failure_count: int

    def outside_task_error(self) -> BaseException | None:
        """The error for an await made while no task runs (None: suspend)."""
        ...

    def current_cancelled(self) -> bool:
        """Return True if the running task has been cancelled."""
        ...

    def cancel_work(self, work: WorkFuture[Any], reason: str) -> None:
        """Cancel unfinished work and record its cancel event."""
        ...

    def unwind_cancelled(self, task: Task) -> None:
        """Throw `Cancelled` into a cancelled task until its coroutine ends.

        Stops early if the coroutine is inside a shield: it then drains.
        """
        ...

    def hold(self, future: DurableFuture[Any]) -> None:
        """Keep the execution from ending until *future* has settled."""
        ...


class DurableFuture(Generic[T]):
    """A durable operation's eventual result; await it in orchestration code.

    Returned by every scheduling call of `OrchestrationContext`, by
    `durable_async`, and by `select`/`join`. The work starts when the future
    is created; awaiting is not needed for it to run.
    """

    __slots__ = (
        "_callbacks",
        "_claimed",
        "_driver",
        "_failed_at",
        "_state",
        "_value",
    )

    def __init__(self, driver: Scheduler) -> None:
        self._driver = driver
        self._state = PENDING
        self._value: Any = None
        self._callbacks: list[Callback] | None = None
        self._claimed = False
        # When it failed or was cancelled: the driver's count of those, which
        # follows history order (join's "first failure", DESIGN §4.4).
        self._failed_at = 0

    def done(self) -> bool:
        """Return True once the future has a result, an error, or was cancelled."""
        return self._state != PENDING

    def cancelled(self) -> bool:
        """Return True if the future was cancelled."""
        return self._state == CANCELLED

    def result(self) -> T:
        """Return the result, or raise the failure.

        Raises:
            RuntimeError: The future is not done yet.
            Cancelled: The future was cancelled.
        """
        if self._state == DONE:
            return self._value  # type: ignore[no-any-return]
        if self._state == PENDING:
            raise RuntimeError("durable future is not done yet; await it first")
        self._mark_observed()
        raise self._value

    def exception(self) -> BaseException | None:
        """Return the failure of a done future (None if it succeeded)."""
        if self._state == PENDING:
            raise RuntimeError("durable future is not done yet; await it first")
        self._mark_observed()
        return self._value if self._state != DONE else None

    def cancel(self, reason: str = "cancelled") -> bool:
        """Cancel the work behind this future (for a task: its whole scope).

        Returns:
            True if the future was pending and is now cancelled.
        """
        if self._state != PENDING:
            return False
        self._cancel(reason)
        return True

    def __await__(self) -> Generator[Any, None, T]:
        driver = self._driver
        if driver.current is None:
            error = driver.outside_task_error()
            if error is not None:
                raise error
            # A coroutine being closed that keeps swallowing GeneratorExit:
            # suspending makes close() give up on it instead of looping here.
            yield self
        elif self._state == PENDING or driver.current_cancelled():
            yield self
        return self.result()

    # --- driver side -------------------------------------------------------
    def _mark_observed(self) -> None:
        """Code (or a combinator) took this future's outcome.

        Only tasks track it: a task failure nothing took is reported when
        the execution ends (DESIGN §8).
        """

    def _cancel(self, reason: str) -> None:
        """Cancel this future's work; overridden by each kind."""
        self._settle(CANCELLED, Cancelled(reason))

    def _settle(self, state: int, value: Any) -> None:
        if self._state != PENDING:
            return
        self._state = state
        self._value = value
        if state != DONE:
            driver = self._driver
            driver.failure_count += 1
            self._failed_at = driver.failure_count
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                callback(self)

    def _on_done(self, callback: Callback) -> None:
        if self._state != PENDING:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def _remove_callback(self, callback: Callback) -> None:
        if self._callbacks and callback in self._callbacks:
            self._callbacks.remove(callback)


class WorkFuture(DurableFuture[T]):
    """A piece of durable work: activity, timer, event wait or sub-orchestration."""

    __slots__ = (
        "decode",
        "event_id",
        "kind",
        "label",
        "owner",
        "shielded",
        "target",
        "token",
    )

    def __init__(
        self,
        driver: Scheduler,
        kind: WorkKind,
        token: int,
        owner: Task,
        label: str,
        decode: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(driver)
        self.kind = kind
        self.token = token
        self.owner = owner
        self.label = label
        self.decode = decode
        self.event_id: int | None = None
        # Sub-orchestrations: the child instance id, known once bound.
        self.target: str | None = None
        # Created inside a shield: scope cascades pass it by (DESIGN §8).
        self.shielded = owner.shield_depth > 0

    def _cancel(self, reason: str) -> None:
        self._driver.cancel_work(self, reason)

    def complete(self, event: Event) -> None:
        """Settle this pending work with its completion *event*."""
        if isinstance(event, (ActivityCompleted, SubOrchestrationCompleted)):
            value = event.result
            if self.decode is not None:
                try:
                    value = self.decode(value)
                except PayloadError as exc:
                    self._settle(FAILED, exc)
                    return
            self._settle(DONE, value)
        elif isinstance(event, TimerFired):
            self._settle(DONE, None)
        elif isinstance(event, ActivityFailed):
            info = ErrorInfo.from_json(event.error)
            self._settle(
                FAILED,
                ActivityFailedError(
                    self.label, info.message, info.type, info.category, info.stack
                ),
            )
        else:
            assert isinstance(event, SubOrchestrationFailed), event
            info = ErrorInfo.from_json(event.error)
            self._settle(FAILED, SubFailedError(self.label, self.target or "", info))

    def __repr__(self) -> str:
        return f"<{self.kind} {self.label} event={self.event_id}>"


class Task(DurableFuture[Any]):
    """A coroutine run by the driver, and the scope that owns its work."""

    __slots__ = (
        "abandoned",
        "bad_awaits",
        "cancel_reason",
        "cancelled_calls",
        "children",
        "close_refusals",
        "coro",
        "draining",
        "n_tasks",
        "observed",
        "parent",
        "path",
        "shield_depth",
        "shielded",
        "under_shield",
        "unwinds",
        "wait_callback",
        "waiting",
    )

    def __init__(
        self,
        driver: Scheduler,
        coro: Coroutine[Any, Any, Any],
        parent: Task | None,
    ) -> None:
        super().__init__(driver)
        self.coro = coro
        self.parent = parent
        # Work and child tasks owned by this scope, in creation order.
        self.children: list[WorkFuture[Any] | Task] = []
        self.n_tasks: int = 0
        # ``ctx.shield`` blocks the coroutine is inside right now; while
        # above 0 it may schedule and await although cancelled.
        self.shield_depth = 0
        # Cancelled while inside a shield: its coroutine still runs (its
        # future settles when it ends).
        self.draining = False
        # Created inside a shield: cascades pass it by. ``under_shield``:
        # it or an ancestor was, so its work is compensation too (marked
        # ``shielded`` in history, never matched).
        self.shielded = False
        self.under_shield = False
        if parent is None:
            self.path = "0"
        else:
            self.shielded = parent.shield_depth > 0
            self.under_shield = self.shielded or parent.under_shield
            parent.n_tasks += 1
            self.path = f"{parent.path}.{parent.n_tasks}"
            parent.children.append(self)
        # Set once the task is cancelled; the coroutine may still be unwinding.
        self.cancel_reason: str | None = None
        # Runaway guards (see _runaway.py): durable calls refused since
        # cancellation, Cancelled re-thrown into the coroutine, durable calls
        # refused while it was being closed, bad awaits in a row; and
        # whether the driver gave up on a coroutine that ignored
        # GeneratorExit (never resumed again).
        self.cancelled_calls = 0
        self.unwinds = 0
        self.close_refusals = 0
        self.bad_awaits = 0
        self.abandoned = False
        # Whether code took its outcome (result/exception, await, select,
        # join); a failure nothing took is reported at the end (DESIGN §8).
        self.observed = False
        # The future this task is parked on, and the callback that wakes it.
        self.waiting: DurableFuture[Any] | None = None
        self.wait_callback: Callback | None = None

    def _mark_observed(self) -> None:
        self.observed = True

    def _cancel(self, reason: str) -> None:
        cancel_task(self._driver, self, reason)

    def __repr__(self) -> str:
        return f"<task {self.path}>"


def cancel_task(driver: Scheduler, task: Task, reason: str) -> None:
    """Cancel *task*: its unfinished work, its descendants, then its coroutine."""
    if task._state != PENDING or task.cancel_reason is not None:
        return
    task.cancel_reason = reason
    _cancel_children(driver, task, reason)
    driver.unwind_cancelled(task)
    # A cancelled task's future ends cancelled whatever its coroutine did;
    # a draining one's when its coroutine ends (`Runner._finished`).
    if task._state == PENDING and not task.draining:
        task._settle(CANCELLED, Cancelled(reason))


class Unobserved(NamedTuple):
    """An exception no orchestration code will ever see (DESIGN §8).

    Attributes:
        scope: Path of the task that raised it.
        error: The exception (with its traceback).
        after_cancel: True if the task raised it after being cancelled (its
            future ends cancelled instead); False if the task failed and
            nothing retrieved the failure before the execution ended.
    """

    scope: str
    error: BaseException
    after_cancel: bool


def unawaited_failures(root: Task) -> Iterator[Unobserved]:
    """Failed tasks under *root* whose failure nothing retrieved.

    Depth-first in creation order; iterative, so deep trees are fine. The
    root is left out: its failure is the execution's outcome.
    """
    stack = [c for c in reversed(root.children) if isinstance(c, Task)]
    while stack:
        task = stack.pop()
        if task._state == FAILED and not task.observed:
            yield Unobserved(task.path, task._value, after_cancel=False)
        stack.extend(c for c in reversed(task.children) if isinstance(c, Task))


def cancel_tree(driver: Scheduler, task: Task, reason: str) -> None:
    """Cancel all unfinished work under *task*, finished child tasks included.

    Used when the orchestration ends: work left behind by tasks that
    already returned must not outlive the execution. Shielded work is
    passed by here too: the execution waits for it instead.
    """
    _cancel_children(driver, task, reason)


def _cancel_children(driver: Scheduler, task: Task, reason: str) -> None:
    for child in list(task.children):
        if child.shielded:
            # DESIGN §8: only an explicit cancel() stops it, and cascades
            # from outside never enter a shielded task's subtree, even
            # once it has finished (the execution waits for its work).
            continue
        if isinstance(child, Task):
            if child._state == PENDING:
                cancel_task(driver, child, reason)
            else:
                _cancel_children(driver, child, reason)
        elif child._state == PENDING:
            driver.cancel_work(child, reason)
