"""External events: per-name buffers and the waits that take them.

An `EventRaised` feeds the oldest open wait for its name, else waits in its
name's buffer (FIFO) for the next ``schedule_wait``. Arrival order across
names is kept too (a sequence number), so the events nobody took can be
carried, in order, into the next execution of a continue-as-new.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ._tasks import DONE, PENDING, WorkFuture

__all__ = ["Inbox"]


class Inbox:
    """Buffered external events and open waits of one execution."""

    __slots__ = ("_buffers", "_seq", "_waits")

    def __init__(self) -> None:
        # Per name: (arrival number, data) not taken yet, oldest first.
        self._buffers: dict[str, deque[tuple[int, Any]]] = {}
        # Per name: waits not fed yet, oldest first (may hold settled ones).
        self._waits: dict[str, deque[WorkFuture[Any]]] = {}
        self._seq = 0

    def raised(self, name: str, data: Any) -> None:
        """Feed the oldest open wait for *name*, else buffer *data*."""
        waits = self._waits.get(name)
        while waits:
            wait = waits.popleft()
            if wait._state == PENDING:
                wait._settle(DONE, data)
                return
        self.buffer(name, data)

    def buffer(self, name: str, data: Any) -> None:
        """Keep *data* for the next wait on *name*."""
        self._seq += 1
        self._buffers.setdefault(name, deque()).append((self._seq, data))

    def open_wait(self, wait: WorkFuture[Any], name: str) -> None:
        """Settle *wait* with the oldest buffered *name* event, or queue it."""
        buffer = self._buffers.get(name)
        if buffer:
            wait._settle(DONE, buffer.popleft()[1])
        else:
            self._waits.setdefault(name, deque()).append(wait)

    def close_wait(self, wait: WorkFuture[Any], name: str) -> None:
        """Forget a cancelled *wait*: it consumes nothing."""
        waits = self._waits.get(name)
        if waits and wait in waits:
            waits.remove(wait)

    def unconsumed(self) -> list[tuple[str, Any]]:
        """Buffered events no wait has taken, as (name, data), in arrival order."""
        items = [
            (seq, name, data)
            for name, buffer in self._buffers.items()
            for seq, data in buffer
        ]
        items.sort(key=lambda item: item[0])
        return [(name, data) for _, name, data in items]
