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
from ._retention import Retention
from ._retry import seconds
from ._routing import check_tags, owner_id, routing_for
from ._schedules import (
    is_running_activity,
    schedule_orchestration,
    schedule_orchestration_v1,
)
from ._supervise import RuntimeFailed, supervise
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
        turn_timeout: Seconds one orchestration turn (replay included) may
            run without yielding; a longer one is stopped and its instance
            ends Failed with ``TurnTimeout`` (None: no limit). At most half
            of ``lock_timeout``, so the instance's lease outlives the turn.
            A blocking C call (``time.sleep``) is interrupted only when it
            returns; see docs/runaway-turns.md.
        suspend_on_error: Suspend an instance instead of failing it when
            its orchestration code raises an unexpected exception (anything
            but a perdure error, e.g. a ``KeyError``); a nondeterminism
            always suspends. See `Client.resume` and docs/deploying.md.
        retention: Delete finished instances (and their sub-orchestrations)
            this long after they ended, checking every tenth of it (1 s to
            5 min); None (default) keeps them until `Client.purge_instances`.
        activity_tags: Tags this runtime serves: an activity scheduled with
            ``tag=`` runs only on a runtime with that tag (untagged ones run
            on any runtime that registered them). See docs/routing.md.

    A runtime takes only instances of the orchestration names and versions
    it registered (an instance started without a version goes to any
    runtime with its name, which picks its newest version); others wait as
    ``Running`` for a runtime that has them (DESIGN §9). Likewise it runs
    only activities it registered: others wait for a runtime that has them.

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
        turn_timeout: float | timedelta | None = 10.0,
        suspend_on_error: bool = False,
        retention: float | timedelta | None = None,
        activity_tags: Iterable[str] | None = None,
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
        self._storage = storage
        self._provider: Provider = open_provider(storage)
        # Every runtime runs schedules (docs/schedules.md).
        self.registry = Registry(
            [*orchestrations, schedule_orchestration_v1, schedule_orchestration],
            [*activities, is_running_activity(self._provider)],
        )
        self._owns_provider = self._provider is not storage
        self._role = role
        lock = seconds(lock_timeout, "lock_timeout")
        poll = seconds(poll_interval, "poll_interval")
        limit = None if turn_timeout is None else seconds(turn_timeout, "turn_timeout")
        if limit is not None:
            if limit <= 0:
                raise ValueError("turn_timeout must be > 0 (or None)")
            # A turn must end well within its instance's lease, or another
            # runtime takes the instance over and runs the same turn.
            limit = min(limit, lock / 2)
        self._dispatcher = Dispatcher(
            self._provider,
            self.registry,
            DispatcherOptions(
                batch_size=orchestration_concurrency,
                lock_timeout=lock,
                max_attempts=max_attempts,
                cache_size=max(instance_cache_size, 0),
                poll_interval=poll,
                turn_timeout=limit,
                suspend_on_error=suspend_on_error,
                handlers=tuple(self.registry.handlers()),
            ),
            self._cancel_activity,
            self._turn_stuck,
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
                routing=routing_for(
                    self.registry.activities,
                    self.registry.activity_limits(),
                    check_tags(activity_tags),
                    owner_id(),
                ),
            ),
            absorb=self._dispatcher.absorb,
        )
        if role == "all":
            # Turns hand the work they schedule to this worker (_fused);
            # an orchestrator-only runtime runs no activities.
            self._dispatcher.worker = self._worker
        self._client = Client._shared(self._provider)
        self._retention: Retention | None = None
        if retention is not None:
            keep = seconds(retention, "retention")
            if keep <= 0:
                raise ValueError("retention must be > 0 seconds (or None)")
            self._retention = Retention(self._provider, keep)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        # Supervision (probe F4/F5): set when the runtime stopped working.
        self._failure: RuntimeFailed | None = None
        self._failed_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Called from the watchdog thread when a turn cannot be stopped (the
        # event loop is lost); ``perdure worker`` exits the process there.
        self._on_stuck: Callable[[RuntimeFailed], None] | None = None

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
        self._loop = asyncio.get_running_loop()
        if self._failed_event is None:
            self._failed_event = asyncio.Event()
        if self._failure is not None:
            self._failed_event.set()
        if self._role in ("all", "orchestrator"):
            self._supervised("dispatcher", self._dispatcher.run)
        if self._role in ("all", "worker"):
            self._supervised("activity worker", self._worker.run)
        if self._retention is not None and self._role in ("all", "orchestrator"):
            self._supervised("retention", self._retention.run)

    async def shutdown(self, timeout: float | timedelta = 10.0) -> None:
        """Stop gracefully: no new work; running activities get *timeout* seconds.

        Activities still running then are given back (another runtime runs
        them at once, not after ``lock_timeout``); a sync one keeps running
        in its thread, which cannot be stopped, and its outcome is ignored.

        Raises:
            RuntimeFailed: The runtime had failed (see `failed`).
        """
        if not self._started:
            return
        self._started = False
        grace = seconds(timeout, "timeout")
        deadline = asyncio.get_running_loop().time() + grace
        self._dispatcher.stop()
        if self._retention is not None:
            self._retention.stop()
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
        if self._failure is not None:
            raise self._failure

    @property
    def failed(self) -> RuntimeFailed | None:
        """Why the runtime stopped working, or None while it works.

        Set when its dispatcher or worker loop kept dying after restarts,
        or when an orchestration turn could not be stopped; `wait` and
        `shutdown` then raise it.
        """
        return self._failure

    async def wait(self) -> None:
        """Wait until the runtime fails, then raise why.

        Raises:
            RuntimeFailed: See `failed`.
        """
        if self._failed_event is None:
            self._failed_event = asyncio.Event()
        if self._failure is None:
            await self._failed_event.wait()
        assert self._failure is not None
        raise self._failure

    def _supervised(self, name: str, run: Callable[[], Any]) -> None:
        def stopping() -> bool:
            return not self._started

        task = asyncio.create_task(supervise(name, run, stopping, self._fail))
        self._tasks.append(task)

    def _fail(self, error: RuntimeFailed) -> None:
        if self._failure is None:
            self._failure = error
        if self._failed_event is not None:
            self._failed_event.set()

    def _turn_stuck(self, instance_id: str, stack: str) -> None:
        # From the watchdog thread: the event loop is blocked.
        error = RuntimeFailed(
            f"the turn of instance {instance_id!r} ignored every attempt to stop "
            "it (its code catches BaseException in a loop); the event loop is lost"
        )
        _log.critical("%s; its stack:\n%s", error, stack or "(not captured)")
        if self._failure is None:
            self._failure = error
        loop, event = self._loop, self._failed_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        if self._on_stuck is not None:
            self._on_stuck(error)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def _cancel_activity(self, ref: WorkRef) -> None:
        self._worker.cancel_local(ref.instance_id, ref.execution_id, ref.event_id)
