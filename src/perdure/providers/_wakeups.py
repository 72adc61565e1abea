"""Wake-ups for waiters in this process (shared by the providers).

A provider object may be shared by a runtime and clients in one process;
writes through it wake that process's waiters directly instead of making them
poll (DESIGN §5).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Sequence
from typing import Any

from perdure.providers._base import Channel, TurnCommit

__all__ = ["LocalWakeups"]

_CHANNELS: dict[Channel, int] = {"orchestrations": 0, "activities": 1, "instances": 2}
# Past due times are kept this long so that a task whose previous provider
# call predates one still sees it; older ones are pruned (such a task then
# merely sleeps until its own timeout).
_DUE_MEMORY = 300.0
# Sleep this much past a due time so that the refetch finds the item visible.
_DUE_SLACK = 0.002


def _resolve(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class LocalWakeups:
    """Per-channel wake-ups for the waiters of this process.

    A caller polls: fetch, and if there was nothing, ``wait``. A notification
    that lands between the fetch and the wait must not be lost, and the
    `Provider` API has no token to carry "what I have seen" from one call to
    the next. So the provider remembers it per asyncio task: every provider
    call records (`mark`) the wall time and each channel's generation
    counter when it starts. ``wait`` returns at once if, since the calling
    task's previous provider call, its channel was notified or one of its
    due times (a delayed message or retry written through this object)
    passed; otherwise it sleeps until a notification, the next due time or
    the timeout. The price is an occasional spurious return, which the
    contract allows.

    Asyncio objects are created only inside ``wait``, on the running loop,
    so the provider can be constructed without a loop and used from one loop
    after another; a waiter on another thread's loop is woken with
    ``call_soon_threadsafe``.
    """

    def __init__(self) -> None:
        self._gens = [0, 0, 0]
        self._due: list[list[float]] = [[], [], []]
        self._waiters: list[set[asyncio.Future[bool]]] = [set(), set(), set()]
        # Per task; an entry is dropped when its task ends. (A plain dict:
        # a WeakKeyDictionary makes a new weak reference on every store,
        # and this runs on every provider call.)
        self._marks: dict[asyncio.Task[Any], tuple[float, tuple[int, ...]]] = {}

    def mark(self) -> None:
        """Record what the current task has seen (call at each method start)."""
        task = asyncio.current_task()
        if task is not None:
            marks = self._marks
            if task not in marks:
                task.add_done_callback(self._forget)
            marks[task] = (time.time(), tuple(self._gens))

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._marks.pop(task, None)

    def notify(self, *channels: Channel) -> None:
        """Wake every waiter of *channels* and bump their generations."""
        for channel in channels:
            i = _CHANNELS[channel]
            self._gens[i] += 1
            self._wake(i, True)

    def due(self, channel: Channel, at: float | None) -> None:
        """Remember that work on *channel* becomes visible at *at*."""
        now = time.time()
        if at is None or at <= now:
            return  # visible already: the write's notify covers it
        i = _CHANNELS[channel]
        due = self._due[i]
        del due[: bisect.bisect_left(due, now - _DUE_MEMORY)]
        bisect.insort(due, at)
        if due[bisect.bisect_right(due, now)] == at:
            self._wake(i, False)  # sleepers re-arm for the earlier due time

    def committed(
        self, turns: Sequence[TurnCommit], prewoken: Sequence[Channel] = ()
    ) -> None:
        """Wake local waiters for what committed *turns* made available.

        *prewoken* channels were notified before the write and their
        fetches ordered after it (see the SQLite provider's grouped
        writes): notifying them again would only cost an empty fetch.
        """
        if not turns:
            return
        finished = False
        for turn in turns:
            for out in turn.outbound:
                self.due("orchestrations", out.message.visible_at)
            for child in turn.new_instances:
                self.due("orchestrations", child.start.visible_at)
            for work in turn.activities:
                self.due("activities", work.visible_at)
            finished = finished or turn.status != "Running"
        # Always "orchestrations": releasing a lock can make messages that
        # arrived during the turn fetchable again. "instances" only when a
        # status changed: waiting clients need not wake for every turn.
        self.notify("orchestrations")
        if finished:
            self.notify("instances")
        if "activities" not in prewoken and any(turn.activities for turn in turns):
            self.notify("activities")

    async def wait(self, channel: Channel, timeout: float) -> None:
        """Sleep until *channel* may have work; see the class docstring."""
        i = _CHANNELS[channel]
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        mark = self._marks.get(task) if task is not None else None
        try:
            if mark is not None and self._pending(i, mark):
                return
            deadline = loop.time() + max(timeout, 0.0)
            while (remaining := deadline - loop.time()) > 0:
                now = time.time()
                due = self._due[i]
                j = bisect.bisect_right(due, now)
                if j < len(due):
                    remaining = min(remaining, due[j] - now + _DUE_SLACK)
                fut: asyncio.Future[bool] = loop.create_future()
                self._waiters[i].add(fut)
                # The timer ends the wait (deadline or due time reached); a
                # False result only means "re-arm for an earlier due time".
                handle = loop.call_later(remaining, _resolve, fut, True)
                try:
                    if await fut:
                        return
                finally:
                    handle.cancel()
                    self._waiters[i].discard(fut)
        finally:
            self.mark()

    def _pending(self, i: int, mark: tuple[float, tuple[int, ...]]) -> bool:
        since, gens = mark
        if self._gens[i] != gens[i]:
            return True
        due = self._due[i]
        j = bisect.bisect_right(due, since)
        return j < len(due) and due[j] <= time.time()

    def _wake(self, i: int, value: bool) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for fut in list(self._waiters[i]):
            loop = fut.get_loop()
            if loop is running:
                _resolve(fut, value)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut, value)
