"""`Runtime`: hosts the orchestration dispatcher and the activity worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Literal

from ._activity import ActivityWorker, WorkerOptions
from ._client import Client
from ._dispatcher import Dispatcher, DispatcherOptions
from ._registry import Registry
from ._retry import seconds
from .providers import open_provider
from .providers._base import Provider, WorkRef

__all__ = ["Runtime"]

_log = logging.getLogger("perdure.runtime")

Role = Literal["all", "orchestrator", "worker"]


class Runtime:
    """Runs orchestrations and activities against one storage.

    Args:
        storage: Storage URL (``sqlite:///perdure.db``, ``sqlite://:memory:``,
            ``postgresql://...``) or a provider object.
        orchestrations: Functions decorated with `perdure.orchestration`.
        activities: Functions decorated with `perdure.activity`.
        orchestration_concurrency: Instances fetched and run per batch.
        activity_concurrency: Activities run at the same time.
        lock_timeout: Lease of instance locks and activity work, in seconds;
            work held by a crashed process is taken over after it expires.
        max_attempts: Deliveries after which a message is poison.
        cancellation_grace_period: Seconds a cancelled async activity may
            take to stop on its own before its asyncio task is cancelled.
        instance_cache_size: Live orchestration drivers kept in memory.
        role: ``"all"``, ``"orchestrator"`` (no activities) or ``"worker"``
            (activities only).
        poll_interval: Longest idle wait before storage is checked again
            (work enqueued through this process wakes it at once).

    Use ``async with Runtime(...) as rt`` or ``await rt.start()`` /
    ``await rt.shutdown()``.

    Raises:
        ValueError: Two handlers share a name (and version), or an option
            is out of range.
    """

    def __init__(
        self,
        storage: str | Provider,
        *,
        orchestrations: Iterable[Callable[..., Any]] = (),
        activities: Iterable[Callable[..., Any]] = (),
        orchestration_concurrency: int = 100,
        activity_concurrency: int = 100,
        lock_timeout: float | timedelta = 30.0,
        max_attempts: int = 10,
        cancellation_grace_period: float | timedelta = 10.0,
        instance_cache_size: int = 10_000,
        role: Role = "all",
        poll_interval: float | timedelta = 1.0,
    ) -> None:
        if role not in ("all", "orchestrator", "worker"):
            raise ValueError(
                f"role must be 'all', 'orchestrator' or 'worker', not {role!r}"
            )
        for name, value in (
            ("orchestration_concurrency", orchestration_concurrency),
            ("activity_concurrency", activity_concurrency),
            ("max_attempts", max_attempts),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1")
        self.registry = Registry(orchestrations, activities)
        self._storage = storage
        self._provider: Provider = open_provider(storage)
        self._owns_provider = self._provider is not storage
        self._role = role
        lock = seconds(lock_timeout, "lock_timeout")
        poll = seconds(poll_interval, "poll_interval")
        self._dispatcher = Dispatcher(
            self._provider,
            self.registry,
            DispatcherOptions(
                batch_size=orchestration_concurrency,
                lock_timeout=lock,
                max_attempts=max_attempts,
                cache_size=max(instance_cache_size, 0),
                poll_interval=poll,
            ),
            self._cancel_activity,
        )
        self._worker = ActivityWorker(
            self._provider,
            self.registry,
            WorkerOptions(
                concurrency=activity_concurrency,
                lock_timeout=lock,
                max_attempts=max_attempts,
                grace_period=seconds(cancellation_grace_period, "grace period"),
                poll_interval=poll,
            ),
        )
        self._client = Client._shared(self._provider)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @property
    def client(self) -> Client:
        """A `Client` on the same storage."""
        return self._client

    @property
    def provider(self) -> Provider:
        """The storage provider in use."""
        return self._provider

    async def start(self) -> None:
        """Open storage and start the dispatcher and worker (per ``role``)."""
        if self._started:
            return
        await self._provider.open()
        self._started = True
        if self._role in ("all", "orchestrator"):
            self._tasks.append(asyncio.create_task(self._dispatcher.run()))
        if self._role in ("all", "worker"):
            self._tasks.append(asyncio.create_task(self._worker.run()))

    async def shutdown(self, timeout: float | timedelta = 10.0) -> None:
        """Stop gracefully: no new work; running activities get *timeout* seconds.

        Activities still running then are given back (another runtime runs
        them at once, not after ``lock_timeout``); a sync one keeps running
        in its thread, which cannot be stopped, and its outcome is ignored.
        """
        if not self._started:
            return
        self._started = False
        grace = seconds(timeout, "timeout")
        deadline = asyncio.get_running_loop().time() + grace
        self._dispatcher.stop()
        await self._worker.stop(grace)
        # The loops return by themselves once stopped (the dispatcher within
        # one idle wait): a turn in flight is committed, which releases its
        # instance lock, instead of being cut off with the lock held until
        # lock_timeout. Cut off only after the grace period (at least 1 s).
        remaining = max(deadline - asyncio.get_running_loop().time(), 1.0)
        if self._tasks:
            _, cut = await asyncio.wait(self._tasks, timeout=remaining)
            for task in cut:
                _log.warning("shutdown: a runtime loop did not stop in time")
                task.cancel()
        for task in self._tasks:
            try:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception:
                _log.exception("shutdown: a runtime loop failed while stopping")
        self._tasks.clear()
        if self._owns_provider:
            await self._provider.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def _cancel_activity(self, ref: WorkRef) -> None:
        self._worker.cancel_local(ref.instance_id, ref.execution_id, ref.event_id)
