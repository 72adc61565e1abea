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

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from .._errors import Cancelled
from ._futures import CANCELLED, PENDING, Callback, DurableFuture, WorkFuture

if TYPE_CHECKING:
    from ._driver import Driver

__all__ = ["Task", "cancel_task", "cancel_tree"]


class Task(DurableFuture[Any]):
    """A coroutine run by the driver, and the scope that owns its work."""

    __slots__ = (
        "cancel_reason",
        "cancelled_calls",
        "children",
        "coro",
        "n_tasks",
        "parent",
        "path",
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
        # Durable calls refused since cancellation (a runaway-loop guard).
        self.cancelled_calls = 0
        # The future this task is parked on, and the callback that wakes it.
        self.waiting: DurableFuture[Any] | None = None
        self.wait_callback: Callback | None = None

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
