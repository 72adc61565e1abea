"""`ActivityContext`: what a running activity knows about itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

__all__ = ["ActivityContext"]


class ActivityContext:
    """What a running activity knows about itself.

    A sync (``def``) activity runs in a thread, and Python cannot kill a
    thread: when its attempt is given up (its ``timeout=`` passed, the
    orchestration cancelled it, or the runtime shut down) it keeps running
    until it returns, its side effects still happen, and its outcome is
    ignored. Long-running sync activities should poll `is_cancelled`.

    Attributes:
        instance_id: The orchestration instance that scheduled it.
        execution_id: That instance's execution.
        activity_name: The registered activity name.
        attempt: 1 for the first attempt, 2 for the first retry, ...
    """

    def __init__(
        self, instance_id: str, execution_id: int, activity_name: str, attempt: int
    ) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.activity_name = activity_name
        self.attempt = attempt
        self._is_cancelled = False
        # True once the outcome no longer matters: the orchestration cancelled
        # the activity, or the lease was lost.
        self._discard = False
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[Any] | None = None
        self._grace = 0.0

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger tagged with the instance and activity."""
        return logging.LoggerAdapter(
            logging.getLogger("perdure.activity"),
            {"instance_id": self.instance_id, "activity": self.activity_name},
        )

    def is_cancelled(self) -> bool:
        """True once the activity should stop.

        That is when the orchestration cancelled it, or when this attempt
        was given up (it timed out, or the runtime shut down).
        """
        return self._is_cancelled

    @property
    def cancelled(self) -> Awaitable[bool]:
        """An awaitable that resolves when `is_cancelled` becomes true."""
        if self._event is None:
            self._event = asyncio.Event()
            if self._is_cancelled:
                self._event.set()
        return self._event.wait()

    def _discarded(self) -> bool:
        return self._discard

    def _give_up(self) -> None:
        # The attempt is over (timeout, shutdown): tell the code still running.
        self._is_cancelled = True
        if self._event is not None:
            self._event.set()

    def _cancel(self) -> None:
        # Cooperative first: the activity can see is_cancelled()/cancelled;
        # after the grace period its asyncio task is cancelled. Its outcome
        # is discarded either way.
        if self._discard:
            return
        self._discard = True
        self._give_up()
        task = self._task
        if task is not None and not task.done():
            asyncio.get_running_loop().call_later(self._grace, task.cancel)
