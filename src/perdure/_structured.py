"""Structured concurrency for orchestration code (DESIGN §8).

``ctx.shield``, ``ctx.timeout``, ``ctx.as_completed`` and
``ctx.task_group`` are built from the driver's primitives (tasks, futures,
``select``) and react only when a future settles, so like everything else
they decide at a fixed point of the history and replay identically.

Shields: a task's ``shield_depth`` counts the shields its coroutine is
inside. While it is above zero the task may schedule and await although it
was cancelled, and work (or tasks) started then is *shielded*: scope
cascades pass it by, and the execution does not end before it has settled
(`perdure._core._runner.Runner.hold`).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._core._combinators import JoinFuture, SelectFuture
from ._core._driver import Driver
from ._core._tasks import DONE, FAILED, PENDING, DurableFuture, Task, WorkFuture
from ._errors import Cancelled, DurableTimeout

if TYPE_CHECKING:
    from ._context import OrchestrationContext

__all__ = ["AsCompleted", "ShieldScope", "TaskGroup", "as_future", "timeout"]

T = TypeVar("T")


class ShieldScope(Generic[T]):
    """What ``ctx.shield()`` returns: ``async with`` it, or ``await`` it.

    ``async with ctx.shield():`` shields a block; ``await ctx.shield(x)``
    shields the work behind *x* and the wait for it.
    """

    __slots__ = ("_driver", "_target", "_tasks")

    def __init__(self, driver: Driver, target: DurableFuture[T] | None) -> None:
        self._driver = driver
        self._target = target
        self._tasks: list[Task | None] = []

    async def __aenter__(self) -> None:
        task = self._driver.current
        if task is not None:  # None: a coroutine being closed; its calls refuse
            task.shield_depth += 1
        self._tasks.append(task)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._tasks.pop()
        if task is not None:
            task.shield_depth -= 1

    def __await__(self) -> Generator[Any, None, T]:
        target = self._target
        if target is None:
            raise TypeError(
                "ctx.shield() without an argument is a block: "
                "write `async with ctx.shield():`"
            )
        task = self._driver.current
        if task is not None:
            task.shield_depth += 1
        try:
            return (yield from target.__await__())
        finally:
            if task is not None:
                task.shield_depth -= 1


def shield(
    driver: Driver, awaitable: Awaitable[T] | None
) -> ShieldScope[T] | ShieldScope[None]:
    """Implement ``ctx.shield``; see `OrchestrationContext.shield`."""
    if awaitable is None:
        return ShieldScope(driver, None)
    if isinstance(awaitable, DurableFuture):
        if awaitable._driver is not driver:
            raise ValueError("this durable future belongs to another orchestration")
        _shield_future(driver, awaitable)
        return ShieldScope(driver, awaitable)
    task = driver.current
    if task is not None:
        task.shield_depth += 1
    try:
        future: DurableFuture[T] = as_future(driver, awaitable)
    finally:
        if task is not None:
            task.shield_depth -= 1
    return ShieldScope(driver, future)


def _shield_future(driver: Driver, future: DurableFuture[Any]) -> None:
    """Shield work that already exists (a combinator: everything it waits for)."""
    stack = [future]
    while stack:
        item = stack.pop()
        if item._state != PENDING:
            continue
        if isinstance(item, WorkFuture | Task):
            item.shielded = True
            driver.hold(item)
            if isinstance(item, Task):
                item.under_shield = True
                _hold_subtree(driver, item)
        elif isinstance(item, SelectFuture | JoinFuture):
            item._shielded = True
            stack.extend(item._futures)


def _hold_subtree(driver: Driver, task: Task) -> None:
    """Hold the unfinished work a task shielded after its start already has."""
    stack: list[WorkFuture[Any] | Task] = list(task.children)
    while stack:
        child = stack.pop()
        if isinstance(child, Task):
            child.under_shield = True
            stack.extend(child.children)
        driver.hold(child)


def as_future(driver: Driver, awaitable: Awaitable[T]) -> DurableFuture[T]:
    """*awaitable* as a durable future: a coroutine becomes a task."""
    if isinstance(awaitable, DurableFuture):
        return awaitable
    coro: Coroutine[Any, Any, T] = (
        awaitable if inspect.iscoroutine(awaitable) else _await(awaitable)
    )
    return driver.create_task(coro)


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def timeout(
    ctx: OrchestrationContext, delay: float | timedelta, awaitable: Awaitable[T]
) -> T:
    """Implement ``ctx.timeout``; see `OrchestrationContext.timeout`."""
    driver = ctx._driver
    work = as_future(driver, awaitable)
    if work.done():
        return await work
    timer = ctx.schedule_timer(delay)
    race = SelectFuture(driver, [work, timer], loser_reasons=("timed out",))
    index, value = await race
    if index == 0:
        return value  # type: ignore[no-any-return]
    # The timer won and the select cancelled the work; a task compensating
    # inside a shield is still running: the error waits for it.
    if not work.done():
        try:
            await work
        except Cancelled:
            if driver.current_cancelled():
                raise  # this task was cancelled meanwhile, not the work
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    raise DurableTimeout(f"timed out after {seconds:g} s; the work was cancelled")


class AsCompleted(AsyncIterator[DurableFuture[Any]]):
    """``ctx.as_completed(*futures)``: each future as it settles.

    In history order: the order their completions were applied (futures
    already done when it is created come first, in argument order). Each
    is yielded done; ``await`` it (or call ``result()``) for its value or
    failure. Nothing is cancelled, and the futures stay free for
    ``select``/``join``.
    """

    __slots__ = ("_driver", "_left", "_queue", "_wake")

    def __init__(self, driver: Driver, futures: list[DurableFuture[Any]]) -> None:
        if len({id(f) for f in futures}) != len(futures):
            raise ValueError("the same durable future was passed twice")
        for future in futures:
            if future._driver is not driver:
                raise ValueError("a durable future of another orchestration")
        self._driver = driver
        self._left = len(futures)
        self._queue: deque[DurableFuture[Any]] = deque()
        self._wake: DurableFuture[None] | None = None
        for future in futures:
            future._on_done(self._settled)

    def _settled(self, future: DurableFuture[Any]) -> None:
        self._queue.append(future)
        wake, self._wake = self._wake, None
        if wake is not None:
            wake._settle(DONE, None)

    def __aiter__(self) -> AsCompleted:
        return self

    async def __anext__(self) -> DurableFuture[Any]:
        if not self._queue:
            if self._left == 0:
                raise StopAsyncIteration
            wake = self._wake = DurableFuture(self._driver)
            await wake
        self._left -= 1
        return self._queue.popleft()


class TaskGroup:
    """``async with ctx.task_group() as tg:`` — tasks that end together.

    ``tg.start(coro)`` starts a task (a durable task scope, like
    ``durable_async``) and returns its future. The block leaves when every
    task has finished. The first failure cancels the other tasks (and, if
    the block's body is waiting, throws `perdure.Cancelled` into it once)
    and is raised when they have finished; failures at the same point of
    the history (the same completion applied) are raised together as an
    `ExceptionGroup`, in the order they happened.
    """

    __slots__ = (
        "_aborting",
        "_driver",
        "_exiting",
        "_failures",
        "_idle",
        "_owner",
        "_pending",
        "_tasks",
    )

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._owner: Task | None = None
        self._tasks: list[DurableFuture[Any]] = []
        self._pending = 0
        self._failures: list[Exception] = []
        self._aborting = False
        self._exiting = False
        self._idle: DurableFuture[None] | None = None

    async def __aenter__(self) -> TaskGroup:
        if self._owner is not None:
            raise RuntimeError("a task group can be entered once")
        owner = self._driver.current
        if owner is None:
            raise RuntimeError("a task group needs running orchestration code")
        self._owner = owner
        return self

    def start(self, coro: Awaitable[T]) -> DurableFuture[T]:
        """Start *coro* as a task of this group; return its future.

        Raises:
            RuntimeError: The group is not open (before ``async with`` or
                after it), or is shutting down after a failure.
        """
        refused = None
        if self._owner is None or (self._exiting and not self._pending):
            refused = "this task group is not open"
        elif self._aborting:
            refused = "this task group is shutting down: a task failed"
        if refused is not None:
            if inspect.iscoroutine(coro):
                coro.close()  # as durable_async does: never left unawaited
            raise RuntimeError(refused)
        if isinstance(coro, DurableFuture) and coro in self._tasks:
            raise ValueError("this future is already in the task group")
        future = as_future(self._driver, coro)
        self._tasks.append(future)
        if future._state == PENDING:
            self._pending += 1
            future._on_done(self._task_done)
        else:
            self._record(future)  # ended before its first await
        return future

    def _task_done(self, future: DurableFuture[Any]) -> None:
        self._pending -= 1
        self._record(future)
        idle = self._idle
        if self._pending == 0 and idle is not None:
            self._idle = None
            idle._settle(DONE, None)

    def _record(self, future: DurableFuture[Any]) -> None:
        if future._state != FAILED:
            return
        future._mark_observed()
        self._failures.append(future._value)
        if not self._aborting:
            self._aborting = True
            # After every task ready now has run: failures at this same
            # point of the history are raised together.
            self._driver.call_later(self._abort)

    def _abort(self) -> None:
        for future in self._tasks:
            if future._state == PENDING:
                future._cancel("task group failed")
        owner = self._owner
        if owner is not None and not self._exiting:
            # The body is parked in the block: throw Cancelled in once and
            # cancel what it awaited, as cancelling an asyncio task does
            # (a wait left open would swallow its next event).
            waiting = owner.waiting
            shielded = getattr(waiting, "shielded", False)
            interrupted = self._driver.interrupt(owner, Cancelled("task group failed"))
            if interrupted and waiting is not None and not shielded:
                waiting._cancel("task group failed")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._exiting = True
        owner = self._owner
        body_error: Exception | None = None
        if exc is not None:
            # Cancelled from the group's abort (thrown in, or from a task it
            # cancelled), unless the owner itself is cancelled (and not in
            # a shield, where its own cancellation cannot reach it).
            ours = (
                isinstance(exc, Cancelled)
                and self._aborting
                and owner is not None
                and not self._driver.current_cancelled()
            )
            if not ours:
                if not isinstance(exc, Exception):
                    return False  # cancelled, or continue_as_new: propagate
                body_error = exc
                self._aborting = True
                self._abort()
        while self._pending:
            idle = self._idle = DurableFuture(self._driver)
            await idle
        errors: list[Exception] = list(self._failures)
        if body_error is not None:
            if not errors:
                return False  # the body's own error, traceback intact
            errors.append(body_error)
        if not errors:
            return exc is not None  # our interruption, nothing failed after all
        if len(errors) == 1:
            raise errors[0]
        raise ExceptionGroup(f"{len(errors)} tasks of a task group failed", errors)
