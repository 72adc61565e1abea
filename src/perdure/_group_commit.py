"""Group commit: one commit in flight per dispatcher, the rest wait and join.

A runtime commits turns from two places: the dispatcher's fetched batches
and the activity results its worker hands over (fused acknowledgements,
`perdure._fused`). Each used to commit on its own, so two statements were in
flight where one would do, and on PostgreSQL a runtime with a third of the
load (three runtimes) committed about two turns per statement. Here the
turns of every caller that arrives while a commit is in flight go together
in the next one: one transaction per round trip, however many sources.

Each turn is still guarded and committed or rejected on its own inside the
statement (`Provider.commit_turns`), so merging callers changes no outcome;
a storage error fails every caller of that round, as it failed each alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
Result = tuple[list[T], list[bool]]


class GroupCommit(Generic[T]):
    """Serialises commits; callers queued meanwhile share the next one.

    Args:
        commit: Commits a list of turns and returns them (possibly updated)
            with one success flag each, in order.
    """

    def __init__(self, commit: Callable[[list[T]], Awaitable[Result[T]]]) -> None:
        self._commit = commit
        self._queue: list[tuple[list[T], asyncio.Future[Result[T]]]] = []
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a round is in flight

    async def commit(self, turns: list[T]) -> Result[T]:
        """Commit *turns* with whatever else is waiting; their outcomes."""
        if self._busy:
            future: asyncio.Future[Result[T]] = (
                asyncio.get_running_loop().create_future()
            )
            self._queue.append((turns, future))
            return await future
        # Nothing in flight: commit in the caller's own task (a sequential
        # workflow's step pays no task switch); arrivals meanwhile queue.
        self._busy = True
        try:
            return await self._commit(turns)
        finally:
            self._busy = False
            self._next_round()

    def _next_round(self) -> None:
        if self._queue and not self._busy:
            self._busy = True
            self._task = asyncio.create_task(self._run())

    async def wait_idle(self) -> None:
        """Return once no commit is in flight (at shutdown)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task})

    async def _run(self) -> None:
        try:
            await self._rounds()
        finally:
            self._busy = False
            self._next_round()  # callers that came while the last ended

    async def _rounds(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            # A caller cancelled before its round began is left out: it
            # will not look at the outcome (its turn is not written).
            batch = [(turns, f) for turns, f in batch if not f.done()]
            if not batch:
                continue
            try:
                done, oks = await self._commit([t for turns, _ in batch for t in turns])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                for _, future in self._queue:
                    future.cancel()
                self._queue = []
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            at = 0
            for turns, future in batch:
                end = at + len(turns)
                if not future.done():
                    future.set_result((done[at:end], oks[at:end]))
                at = end
