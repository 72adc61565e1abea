"""Task scopes: the ownership tree of durable work and its cancellation cascade.

Every task (the orchestration body is the root task, ``durable_async``
creates the others) owns the work created while *it* was running: its
activities, timers, waits, sub-orchestrations and child tasks, kept in
creation order. Ownership follows the dynamic extent of a task's step, never
a global "last opened scope" stack, so interleaved tasks cannot steal each
other's work.

Cancelling a task (DESIGN §4.3) is one synchronous operation:

1. every unfinished piece of work of its scope and of all descendant
   scopes is cancelled, depth-first in creation order (work that already
   completed is left alone);
2. `Cancelled` is thrown into the task's coroutine so ``finally`` blocks
   run; any later await or scheduling call raises `Cancelled` again;
3. the task's future ends cancelled, whatever the coroutine returned.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import Cancelled
from ._futures import CANCELLED, FAILED, PENDING, Callback, DurableFuture, WorkFuture

if TYPE_CHECKING:
    from ._driver import Driver

__all__ = ["Task", "Unobserved", "cancel_task", "cancel_tree", "unawaited_failures"]


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
        "n_tasks",
        "observed",
        "parent",
        "path",
        "unwinds",
        "wait_callback",
        "waiting",
    )

    def __init__(
        self,
        driver: Driver,
        coro: Coroutine[Any, Any, Any],
        parent: Task | None,
    ) -> None:
        super().__init__(driver)
        self.coro = coro
        self.parent = parent
        # Work and child tasks owned by this scope, in creation order.
        self.children: list[WorkFuture[Any] | Task] = []
        self.n_tasks: int = 0
        if parent is None:
            self.path = "0"
        else:
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


def cancel_task(driver: Driver, task: Task, reason: str) -> None:
    """Cancel *task*: its unfinished work, its descendants, then its coroutine."""
    if task._state != PENDING or task.cancel_reason is not None:
        return
    task.cancel_reason = reason
    _cancel_children(driver, task, reason)
    driver.unwind_cancelled(task)
    # A cancelled task's future ends cancelled whatever its coroutine did.
    if task._state == PENDING:
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


def cancel_tree(driver: Driver, task: Task, reason: str) -> None:
    """Cancel all unfinished work under *task*, finished child tasks included.

    Used when the orchestration ends: work left behind by tasks that
    already returned must not outlive the execution.
    """
    _cancel_children(driver, task, reason)


def _cancel_children(driver: Driver, task: Task, reason: str) -> None:
    for child in list(task.children):
        if isinstance(child, Task):
            if child._state == PENDING:
                cancel_task(driver, child, reason)
            else:
                _cancel_children(driver, child, reason)
        elif child._state == PENDING:
            driver.cancel_work(child, reason)
