"""The ``select`` and ``join`` combinators (DESIGN §4.4 and §8).

A combinator is a durable future over other durable futures. It reacts
synchronously when one of them settles, at the same point of the history,
and cancels the others through the same driver operation as everything
else, so its decisions replay exactly.
"""

from __future__ import annotations

from typing import Any

from .._errors import Cancelled
from ._tasks import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    Callback,
    DurableFuture,
    Scheduler,
    Task,
)

__all__ = ["JoinFuture", "SelectFuture"]


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

    __slots__ = ("_futures", "_loser_reasons", "_owner", "_shielded")

    def __init__(
        self,
        driver: Scheduler,
        futures: list[DurableFuture[Any]],
        loser_reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(driver)
        # Per index, the reason recorded when that future loses (default
        # "lost select"; ctx.timeout's work: "timed out").
        self._loser_reasons = loser_reasons
        if not futures:
            raise ValueError("select() needs at least one future")
        self._owner = driver.current
        # Built inside a shield: it keeps reacting after its task is
        # cancelled, as the shield's work keeps running (DESIGN §8).
        self._shielded = self._owner is not None and self._owner.shield_depth > 0
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
        reasons = self._loser_reasons
        for at, other in enumerate(self._futures):
            if other is not winner and other._state == PENDING:
                other._cancel(reasons[at] if at < len(reasons) else "lost select")

    def _cancel(self, reason: str) -> None:
        self._settle(CANCELLED, Cancelled(reason))
        for future in self._futures:
            if future._state == PENDING:
                future._cancel(reason)


class JoinFuture(DurableFuture[list[Any]]):
    """Resolves with every child's value, in argument order."""

    __slots__ = (
        "_futures",
        "_owner",
        "_remaining",
        "_results",
        "_return_exceptions",
        "_shielded",
    )

    def __init__(
        self,
        driver: Scheduler,
        futures: list[DurableFuture[Any]],
        return_exceptions: bool,
    ) -> None:
        super().__init__(driver)
        self._owner = driver.current
        # Built inside a shield: it keeps reacting after its task is
        # cancelled, as the shield's work keeps running (DESIGN §8).
        self._shielded = self._owner is not None and self._owner.shield_depth > 0
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
                other._cancel("join failed")

    def _cancel(self, reason: str) -> None:
        self._settle(CANCELLED, Cancelled(reason))
        for future in self._futures:
            if future._state == PENDING:
                future._cancel(reason)


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
    if owner is not None and (owner.cancel_reason is None or combinator._shielded):
        return False
    # No owner: built while no task was running, i.e. by a coroutine being
    # closed; it must not act either.
    reason = owner.cancel_reason if owner is not None else None
    combinator._settle(CANCELLED, Cancelled(reason or "closed"))
    return True
