"""`OrchestrationContext`: what orchestration code calls, and `durable_async`."""

from __future__ import annotations

import inspect
import logging
import random as _random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, overload

from ._codec import to_json
from ._context_args import await_it, decoder, flatten
from ._context_values import InstanceValues
from ._core import _history as h
from ._core._combinators import JoinFuture, SelectFuture
from ._core._driver import ContinueAsNewSignal, Driver
from ._core._tasks import DurableFuture
from ._names import check_name
from ._registry import Registry, name_of
from ._retry import RetryPolicy, seconds
from ._routing import activity_options, routing_options
from ._scope_log import ReplaySafeLogger
from ._structured import (
    AsCompleted,
    ShieldScope,
    TaskGroup,
    shield as _shield,
    timeout as _timeout,
)

if TYPE_CHECKING:
    from ._activity_context import ActivityContext

__all__ = ["OrchestrationContext", "durable_async"]

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

_log = logging.getLogger("perdure.orchestration")


class OrchestrationContext(InstanceValues):
    """The orchestration's handle on the engine; every call is deterministic.

    Scheduling calls return a `DurableFuture` at once and start the work at
    call time: awaiting is not needed for the work to run. Inside a task
    that was cancelled, every scheduling call raises `perdure.Cancelled`.
    """

    def __init__(
        self,
        driver: Driver,
        registry: Registry,
        *,
        name: str,
        version: str,
    ) -> None:
        self._driver = driver
        self._registry = registry
        self._name = name
        self._version = version
        self._logger: ReplaySafeLogger | None = None

    # ----------------------------------------------------------------- info
    @property
    def instance_id(self) -> str:
        """This instance's id."""
        return self._driver.instance_id

    @property
    def execution_id(self) -> int:
        """This execution's number (grows with every continue-as-new)."""
        return self._driver.execution_id

    @property
    def name(self) -> str:
        """The orchestration's registered name."""
        return self._name

    @property
    def version(self) -> str:
        """The orchestration's version."""
        return self._version

    @property
    def is_replaying(self) -> bool:
        """True while stored history is being re-applied."""
        # No running task: this is a suspended coroutine of a discarded
        # driver (evicted or replaced) being closed by the garbage collector;
        # its finally blocks are not live orchestration code.
        return self._driver.is_replaying or self._driver.current is None

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that is silent while replaying."""
        if self._logger is None:
            self._logger = ReplaySafeLogger(_log, self)
        return self._logger

    def trace_info(self, message: str) -> None:
        """Log at INFO level, unless replaying."""
        self.logger.info(message)

    def trace_warn(self, message: str) -> None:
        """Log at WARNING level, unless replaying."""
        self.logger.warning(message)

    def trace_error(self, message: str) -> None:
        """Log at ERROR level, unless replaying."""
        self.logger.error(message)

    # ---------------------------------------------------- deterministic values
    def utc_now(self) -> datetime:
        """Deterministic current time: the timestamp of the event being processed."""
        return datetime.fromtimestamp(self._driver.now, UTC)

    def new_guid(self) -> str:
        """A deterministic UUID string (same value on every replay)."""
        return self._driver.new_guid()

    def random(self) -> _random.Random:
        """A deterministically seeded `random.Random` (same on every replay)."""
        return self._driver.new_random()

    def patched(self, patch_id: str) -> bool:
        """Whether this execution runs the new code of patch *patch_id*.

        Changes the code of running instances in place, without a new
        orchestration version::

            if ctx.patched("tax-v2"):
                tax = await ctx.schedule_activity("TaxV2", order)
            else:
                tax = await ctx.schedule_activity("Tax", order)

        True when the execution first reaches the call in a live turn (a
        new instance, or an old one that had not got this far yet), and a
        `perdure.events.PatchApplied` marker records that in the history.
        False when replaying a history written before the patch existed:
        an instance that passed this point under the old code goes on down
        the old branch. The first call for an id decides for the whole
        execution: later calls, from any task, give the same answer and
        record nothing. A continue-as-new starts a new execution, which
        decides afresh. Once no instance started before the patch is still
        running, delete the call and the old branch: replay skips markers
        the code no longer asks for.

        Args:
            patch_id: Names one code change; never reuse it for another.

        Raises:
            ValueError: *patch_id* is not a non-empty str of at most 512
                characters without NUL.
        """
        return self._driver.patched(check_name(patch_id, "patch id"))

    # ------------------------------------------------------------- scheduling
    # The overloads give the decorated function's result type and check its
    # input type; by registered name the result is Any.
    @overload
    def schedule_activity(
        self,
        name: Callable[[ActivityContext, I], Awaitable[R]],
        input: I,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        tag: str | None = None,
        session: str | None = None,
        priority: int = 0,
    ) -> DurableFuture[R]: ...
    @overload
    def schedule_activity(
        self,
        name: Callable[[ActivityContext, I], R],
        input: I,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        tag: str | None = None,
        session: str | None = None,
        priority: int = 0,
    ) -> DurableFuture[R]: ...
    @overload
    def schedule_activity(
        self,
        name: Callable[[ActivityContext], Awaitable[R]],
        *,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        tag: str | None = None,
        session: str | None = None,
        priority: int = 0,
    ) -> DurableFuture[R]: ...
    @overload
    def schedule_activity(
        self,
        name: Callable[[ActivityContext], R],
        *,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        tag: str | None = None,
        session: str | None = None,
        priority: int = 0,
    ) -> DurableFuture[R]: ...
    @overload
    def schedule_activity(
        self,
        name: str,
        input: Any = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        tag: str | None = None,
        session: str | None = None,
        priority: int = 0,
    ) -> DurableFuture[Any]: ...
    def schedule_activity(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        heartbeat_timeout: float | timedelta | None = None,
        tag: str | None = None,
        session: str | None = None,
        priority: int = 0,
    ) -> DurableFuture[Any]:
        """Schedule an activity; awaiting gives its result.

        Args:
            name: Registered name, or the decorated activity function.
            input: JSON-serialisable input (dataclasses and pydantic allowed).
            retry: Retry policy; by default an activity runs once.
            timeout: Per-attempt timeout in seconds (or `timedelta`).
            heartbeat_timeout: An attempt that calls no
                `ActivityContext.heartbeat` for this long (seconds or
                `timedelta`) fails with a `TimeoutError` and is retried per
                *retry*.
            tag: Run it only on runtimes started with this tag in
                ``activity_tags`` (docs/routing.md).
            session: Run the activities of one session on one runtime
                process while it lives (then on another).
            priority: Higher runs first among activities waiting to run.

        Raises:
            PayloadError: *input* cannot be serialised (nothing is scheduled).
            ValueError: An option is out of range (nothing is scheduled).
            Cancelled: Called inside a cancelled task.
        """
        activity_name = check_name(name_of(name), "activity name")
        payload = to_json(input, f"input of activity {activity_name!r}")
        hint = (
            getattr(getattr(name, "__perdure_activity__", None), "return_hint", None)
            if not isinstance(name, str)
            else self._registry.activity_return_hint(name)
        )
        options = activity_options(
            retry, timeout, heartbeat_timeout, routing_options(tag, session, priority)
        )
        return self._driver.schedule(
            h.ActivityScheduled,
            {"name": activity_name, "input": payload},
            activity_name,
            decode=decoder(hint),
            options=options,
        )

    def schedule_timer(self, delay: float | timedelta) -> DurableFuture[None]:
        """Schedule a durable timer that fires after *delay* (seconds or timedelta)."""
        fire_at = self._driver.now + max(seconds(delay, "delay"), 0.0)
        return self._driver.schedule(h.TimerCreated, {"fire_at": fire_at}, "timer")

    def schedule_wait(self, name: str) -> DurableFuture[Any]:
        """Wait for the next external event *name* (events are buffered, FIFO)."""
        if not isinstance(name, str):
            raise TypeError("event name must be a str")
        check_name(name, "event name")
        return self._driver.schedule(h.EventWaitStarted, {"name": name}, name)

    wait_for_event = schedule_wait

    def schedule_sub_orchestration(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        instance_id: str | None = None,
        version: str | None = None,
    ) -> DurableFuture[Any]:
        """Start a child orchestration; awaiting gives its output.

        The child id defaults to ``f"{parent}::sub::{event_id}"``. Cancelling
        the future (or its scope) cancels the child instance.
        """
        orch_name = check_name(name_of(name), "orchestration name")
        if instance_id is not None:
            check_name(instance_id, "sub-orchestration instance_id")
        payload = to_json(input, f"input of sub-orchestration {orch_name!r}")
        fields: dict[str, Any] = {
            "name": orch_name,
            "instance_id": instance_id or "",
            "input": payload,
            "version": version,
        }
        return self._driver.schedule(h.SubOrchestrationScheduled, fields, orch_name)

    def start_orchestration(
        self,
        name: str | Callable[..., Any],
        instance_id: str,
        input: Any = None,
        *,
        version: str | None = None,
    ) -> None:
        """Start a detached orchestration (fire-and-forget, never cancelled by us)."""
        orch_name = check_name(name_of(name), "orchestration name")
        check_name(instance_id, "instance_id")
        payload = to_json(input, f"input of orchestration {orch_name!r}")
        self._driver.emit(
            h.OrchestrationChained,
            {
                "name": orch_name,
                "instance_id": instance_id,
                "input": payload,
                "version": version,
            },
        )

    def set_custom_status(self, value: Any) -> None:
        """Publish a JSON value readable through `Client.get_status`."""
        self._driver.emit(
            h.CustomStatusUpdated, {"value": to_json(value, "custom status")}
        )

    def continue_as_new(
        self, input: Any = None, *, version: str | None = None
    ) -> NoReturn:
        """End this execution now and start a fresh one with *input*.

        Unconsumed external events are carried over to the new execution.

        Raises:
            Cancelled: Called inside a cancelled task (a select loser, or the
                body after ``Client.cancel_instance``): a cancelled task
                cannot start new durable work, a new execution included.
        """
        self._driver.require_live_task()
        raise ContinueAsNewSignal(input, version)

    # ---------------------------------------------------------- task scopes
    def durable_async(self, coro: Awaitable[T]) -> DurableFuture[T]:
        """Run *coro* as a durable task scope; see `perdure.durable_async`."""
        return durable_async(self, coro)

    def select2(
        self, first: DurableFuture[A], second: DurableFuture[B]
    ) -> DurableFuture[tuple[Literal[0], A] | tuple[Literal[1], B]]:
        """Race two futures; ``await`` gives ``(index, value)``, loser cancelled.

        Same rules as `select`. The index narrows the value's type: after
        ``if won[0] == 0``, ``won[1]`` has the first future's type.
        """
        future: DurableFuture[Any] = SelectFuture(self._driver, [first, second])
        return future

    def select(self, *futures: DurableFuture[Any]) -> DurableFuture[tuple[int, Any]]:
        """Race futures: the first to complete in history order wins.

        Lowest index wins when several are already complete. Every other
        future is cancelled at that moment. Raises the winner's failure.

        Ties on one history event go to the argument that settles first:
        work settles when its event is applied, a task when its coroutine
        returns, which is after the work it awaited. So in
        ``select(task, x)`` where the task awaits ``x``, ``x`` wins, and of
        two tasks awaiting one future, the one that started waiting first
        wins, whatever their indexes.

        Raises:
            ValueError: No future given, or one was already handed to a
                select/join (then none of them is taken).
        """
        return SelectFuture(self._driver, flatten(futures))

    def join(
        self, *futures: Any, return_exceptions: bool = False
    ) -> DurableFuture[list[Any]]:
        """Wait for all futures; ``await`` gives their values in argument order.

        On the first failure (history order) the unfinished rest is cancelled
        and the failure raised, unless *return_exceptions* is true, in which
        case nothing is cancelled and failures appear in the list.
        """
        return JoinFuture(self._driver, flatten(futures), return_exceptions)

    # ------------------------------------------------ structured concurrency
    @overload
    def shield(self) -> ShieldScope[None]: ...
    @overload
    def shield(self, awaitable: Awaitable[T]) -> ShieldScope[T]: ...
    def shield(self, awaitable: Awaitable[Any] | None = None) -> ShieldScope[Any]:
        """Let work run and be awaited although its task is cancelled.

        ``async with ctx.shield():`` shields a block: inside it a cancelled
        task may still schedule and await (this is how compensation is
        written). ``await ctx.shield(x)`` shields *x*: a coroutine is
        started as a shielded task, an existing future's work is shielded;
        the wait for it is shielded too.

        Shielded work is not cancelled when its scope is (a lost select,
        a timeout, `Client.cancel_instance`), only by its own ``cancel()``;
        the execution does not end (complete, fail, continue as new) until
        all of it has finished. A task cancelled inside a shield keeps
        running until its coroutine ends; its future then ends cancelled.
        """
        return _shield(self._driver, awaitable)

    async def timeout(self, delay: float | timedelta, awaitable: Awaitable[T]) -> T:
        """Return *awaitable*'s value, or cancel it after *delay* and raise.

        *awaitable* is a durable future or a coroutine (run as a task). A
        durable timer races it, like ``select``.

        Raises:
            perdure.DurableTimeout: (a `TimeoutError`) the timer fired
                first; raised once the cancelled work has finished,
                shielded cleanup included.
        """
        return await _timeout(self, delay, awaitable)

    def as_completed(self, *futures: DurableFuture[Any]) -> AsCompleted:
        """Iterate (``async for``) over *futures* as they complete.

        Yields each future once it is done, in history order (those already
        done first, in argument order); ``await`` it for its value or
        failure. Cancels nothing.
        """
        return AsCompleted(self._driver, flatten(futures))

    def task_group(self) -> TaskGroup:
        """A group of tasks that ends together: ``async with ctx.task_group() as tg``.

        ``tg.start(coro)`` starts a task and returns its `DurableFuture`. The
        block leaves when every task has finished; the first failure cancels
        the others and is raised (an `ExceptionGroup` when several failed at
        the same point of the history).
        """
        return TaskGroup(self._driver)


def durable_async(ctx: OrchestrationContext, coro: Awaitable[T]) -> DurableFuture[T]:
    """Turn an inline async block into a durable task scope.

    The task starts at once and runs up to its first blocking await, so the
    work it schedules first gets event ids before work scheduled after this
    call. Its future can be awaited, raced (`OrchestrationContext.select`)
    or joined with any other durable future. Cancelling it (losing a select,
    a failing join, `DurableFuture.cancel`, its parent being cancelled)
    cancels every unfinished activity, timer, wait, sub-orchestration and
    nested task it started, then throws `perdure.Cancelled` into the block so
    ``finally`` clauses run.

    Args:
        ctx: The orchestration context.
        coro: A coroutine (e.g. ``validate(ctx, order)``) or other awaitable.

    Returns:
        The task's `DurableFuture`; its value is the block's return value.
    """
    if not isinstance(ctx, OrchestrationContext):
        raise TypeError("durable_async(ctx, coro): ctx must be an OrchestrationContext")
    if not inspect.iscoroutine(coro):
        coro = await_it(coro)
    return ctx._driver.create_task(coro)
