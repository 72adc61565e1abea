"""Durable futures: work (activity, timer, wait, sub-orchestration) and combinators.

A future is settled exactly once, synchronously, by the driver while it
applies an event, so everything that reacts to it (combinator callbacks,
waking tasks) happens at a deterministic point of the history.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._errors import Cancelled

if TYPE_CHECKING:
    from ._driver import Driver
    from ._scope import Task

__all__ = ["DurableFuture", "JoinFuture", "SelectFuture", "WorkFuture"]

T = TypeVar("T")

PENDING, DONE, FAILED, CANCELLED = 0, 1, 2, 3

Callback = Callable[["DurableFuture[Any]"], None]


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

    def __init__(self, driver: Driver) -> None:
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
        self._driver.cancel_future(self, reason)
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

    __slots__ = ("decode", "event_id", "kind", "label", "owner", "target", "token")

    def __init__(
        self,
        driver: Driver,
        kind: str,
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

    def _cancel(self, reason: str) -> None:
        self._driver.cancel_work(self, reason)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.label} event={self.event_id}>"


class SelectFuture(DurableFuture[tuple[int, Any]]):
    """Resolves with ``(index, value)`` of the first child to settle.

    The first argument to settle wins (DESIGN §4.4), which also decides
    ties on one history event: work settles when its event is applied, a
    task when its coroutine returns, which is after the work it awaited.
    So in ``select(t, x)`` where task ``t`` awaits ``x``, ``x`` wins; and of
    two tasks finishing on one event, the one that resumes first (parked
    first) wins, whatever the indexes. Arguments already done when the
    select is created: the lowest index wins. (Kept as defined: stored
    histories depend on it, and deciding otherwise would make a select wait
    for unrelated code to run.)
    """

    __slots__ = ("_futures", "_owner")

    def __init__(self, driver: Driver, futures: list[DurableFuture[Any]]) -> None:
        super().__init__(driver)
        if not futures:
            raise ValueError("select() needs at least one future")
        self._owner = driver.current
        _claim_all(futures)
        self._futures = futures
        for index, future in enumerate(futures):
            if future.done():
                # Built by a cancelled task: no reaction (see _quiet_cancel).
                if not _quiet_cancel(self):
                    self._win(index)
                return
        for index, future in enumerate(futures):
            future._on_done(self._make_callback(index))

    def _make_callback(self, index: int) -> Callback:
        def child_done(_: DurableFuture[Any]) -> None:
            if self._state == PENDING and not _quiet_cancel(self):
                self._win(index)

        return child_done

    def _win(self, index: int) -> None:
        winner = self._futures[index]
        winner._mark_observed()
        # Settle first (so a loser's cancellation cannot re-enter this
        # select), then cancel the losers at this same point of the history.
        if winner._state == DONE:
            self._settle(DONE, (index, winner._value))
        else:
            self._settle(FAILED, winner._value)
        for other in self._futures:
            if other is not winner and other._state == PENDING:
                self._driver.cancel_future(other, "lost select")

    def _cancel(self, reason: str) -> None:
        self._settle(CANCELLED, Cancelled(reason))
        for future in self._futures:
            if future._state == PENDING:
                self._driver.cancel_future(future, reason)


class JoinFuture(DurableFuture[list[Any]]):
    """Resolves with every child's value, in argument order."""

    __slots__ = ("_futures", "_owner", "_remaining", "_results", "_return_exceptions")

    def __init__(
        self,
        driver: Driver,
        futures: list[DurableFuture[Any]],
        return_exceptions: bool,
    ) -> None:
        super().__init__(driver)
        self._owner = driver.current
        _claim_all(futures)
        self._futures = futures
        self._return_exceptions = return_exceptions
        self._results: list[Any] = [None] * len(futures)
        self._remaining = len(futures)
        if not futures:
            self._settle(DONE, [])
            return
        if not return_exceptions:
            failed = [f for f in futures if f._state in (FAILED, CANCELLED)]
            if failed:
                # Several failed before the join existed: the first in
                # history order is raised, not the lowest index.
                if not _quiet_cancel(self):
                    self._fail(min(failed, key=_failed_at))
                return
        for index, future in enumerate(futures):
            if self._state != PENDING:
                break
            future._on_done(self._make_callback(index))

    def _make_callback(self, index: int) -> Callback:
        def child_done(child: DurableFuture[Any]) -> None:
            if self._state != PENDING or _quiet_cancel(self):
                return
            if child._state != DONE and not self._return_exceptions:
                self._fail(child)
                return
            child._mark_observed()
            self._results[index] = child._value
            self._remaining -= 1
            if self._remaining == 0:
                self._settle(DONE, self._results)

        return child_done

    def _fail(self, child: DurableFuture[Any]) -> None:
        """Fail fast with *child*'s failure; cancel the unfinished rest."""
        child._mark_observed()
        self._settle(FAILED, child._value)
        for other in self._futures:
            if other._state == PENDING:
                self._driver.cancel_future(other, "join failed")

    def _cancel(self, reason: str) -> None:
        self._settle(CANCELLED, Cancelled(reason))
        for future in self._futures:
            if future._state == PENDING:
                self._driver.cancel_future(future, reason)


def _failed_at(future: DurableFuture[Any]) -> int:
    return future._failed_at


def _claim_all(futures: list[DurableFuture[Any]]) -> None:
    """Hand *futures* to a combinator: all of them, or (ValueError) none."""
    for index, future in enumerate(futures):
        if future._claimed:
            earlier = futures[:index]
            for taken in earlier:
                taken._claimed = False
            if any(future is other for other in earlier):
                raise ValueError(
                    "the same durable future was passed twice to one select/join"
                )
            raise ValueError(
                "this durable future was already passed to select/join; "
                "a future may be handed to one combinator at most"
            )
        future._claimed = True


def _quiet_cancel(combinator: SelectFuture | JoinFuture) -> bool:
    """End a combinator whose task was cancelled, without it reacting.

    Its children are being cancelled by the scope cascade (in creation
    order); reacting would cancel its other futures too, and those may
    belong to another scope (DESIGN §4.2-4.3).
    """
    owner: Task | None = combinator._owner
    if owner is not None and owner.cancel_reason is None:
        return False
    # No owner: built while no task was running, i.e. by a coroutine being
    # closed; it must not act either.
    reason = owner.cancel_reason if owner is not None else None
    combinator._settle(CANCELLED, Cancelled(reason or "closed"))
    return True
