"""`ActivityContext`: what a running activity knows about itself."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from ._codec import dumps, loads, to_json

__all__ = ["ActivityContext"]


class ActivityContext:
    """What a running activity knows about itself.

    A sync (``def``) activity runs in a thread, and Python cannot kill a
    thread: when its attempt is given up (its ``timeout=`` passed, it sent
    no heartbeat for ``heartbeat_timeout``, the orchestration cancelled it,
    or the runtime shut down) it keeps running until it returns, its side
    effects still happen, and its outcome is ignored. Long-running sync
    activities should poll `is_cancelled`.

    Attributes:
        instance_id: The orchestration instance that scheduled it.
        execution_id: That instance's execution.
        activity_name: The registered activity name.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        heartbeat_details: The details of the last `heartbeat` an earlier
            attempt of this activity sent (decoded JSON), also when that
            attempt ran in another runtime that crashed; ``None`` if there
            was none. Resume long work from here.
    """

    def __init__(
        self,
        instance_id: str,
        execution_id: int,
        activity_name: str,
        attempt: int,
        *,
        event_id: int = 0,
        heartbeat_details: Any = None,
    ) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.activity_name = activity_name
        self.attempt = attempt
        self.heartbeat_details = heartbeat_details
        self._event_id = event_id
        # When the scheduling turn ran (storage clock); tells apart two
        # instances that had the same id, one deleted before the other.
        self._scheduled_at: float | None = None
        self._is_cancelled = False
        # True once the outcome no longer matters: the orchestration cancelled
        # the activity, or the lease was lost.
        self._discard = False
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[Any] | None = None
        self._grace = 0.0
        # (monotonic time, details JSON text or None, sequence number) of
        # the last heartbeat, replaced whole so a thread can write it while
        # the event loop reads it. The number grows with new details only.
        self._beat: tuple[float, str | None, int] = (time.monotonic(), None, 0)
        self._saved = 0  # sequence number of the details last stored

    @property
    def idempotency_key(self) -> str:
        """A key naming this scheduled activity, for deduplicating its effects.

        It is the same in every attempt of the activity (retries, runs after
        a crash, in any runtime) and different for every other scheduled
        activity, including those of an instance that reuses a deleted
        instance's id. Pass it to services that deduplicate requests (a
        payment provider's idempotency key header). It is opaque: do not
        parse it.
        """
        key = f"{self.instance_id}:{self.execution_id}:{self._event_id}"
        if self._scheduled_at is None:
            return key
        return f"{key}:{round(self._scheduled_at * 1_000_000):x}"

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger tagged with the instance and activity."""
        return logging.LoggerAdapter(
            logging.getLogger("perdure.activity"),
            {"instance_id": self.instance_id, "activity": self.activity_name},
        )

    def heartbeat(self, details: Any = None) -> None:
        """Report that the activity is alive, and optionally its progress.

        Cheap enough to call in a loop: it only records the time and the
        details in memory (from any thread). The runtime stores the latest
        details at most once per lease renewal (a third of the runtime's
        ``lock_timeout``) and before a retry or a shutdown gives the
        attempt up; the next attempt reads them as `heartbeat_details`.
        With ``schedule_activity(..., heartbeat_timeout=s)``, an attempt
        that sends no heartbeat for *s* seconds fails with a timeout and is
        retried per its `RetryPolicy`.

        Args:
            details: Progress to hand to the next attempt (JSON-able, like
                a result); ``None`` keeps the last details given.

        Raises:
            PayloadError: *details* cannot be encoded (nothing is recorded).
        """
        _, text, seq = self._beat
        if details is not None:
            what = f"heartbeat details of activity {self.activity_name!r}"
            text, seq = dumps(to_json(details, what)), seq + 1
        self._beat = (time.monotonic(), text, seq)

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

    def _unsaved_details(self) -> tuple[int, str] | None:
        # The latest details if they are newer than the stored ones.
        _, text, seq = self._beat
        if seq == self._saved or text is None:
            return None
        return seq, text

    def _decode_details(self, text: str | None) -> None:
        # The details an earlier attempt stored (JSON text), as the user
        # sees them; they also start this attempt's own.
        if text is None:
            return
        self.heartbeat_details = loads(text)
        self._beat = (self._beat[0], text, 0)
