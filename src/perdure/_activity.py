"""`ActivityContext` and the activity worker.

The worker fetches activity work items, runs them (``async def`` on the
event loop, ``def`` in a thread pool), retries failures per the item's
`RetryPolicy` by putting the item back with a delay, and acknowledges
results in batches. Cancellation reaches a running activity at once when
the cancelling turn was committed in this process, and within one lease
renewal otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import _messages as m
from ._codec import from_json, loads, to_json
from ._errors import ErrorInfo, HandlerNotFound
from ._registry import Registry
from ._retry import RetryPolicy
from .providers._base import ActivityItem, ActivityResult, Provider

__all__ = ["ActivityContext", "ActivityWorker", "WorkerOptions"]

_log = logging.getLogger("perdure.worker")


class ActivityContext:
    """What a running activity knows about itself.

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
        """True once the orchestration has cancelled this activity."""
        return self._is_cancelled

    @property
    def cancelled(self) -> Awaitable[bool]:
        """An awaitable that resolves when the activity is cancelled."""
        if self._event is None:
            self._event = asyncio.Event()
            if self._is_cancelled:
                self._event.set()
        return self._event.wait()

    def _cancel(self) -> None:
        # Cooperative first: the activity can see is_cancelled()/cancelled;
        # after the grace period its asyncio task is cancelled. Its outcome
        # is discarded either way.
        if self._is_cancelled:
            return
        self._is_cancelled = True
        if self._event is not None:
            self._event.set()
        task = self._task
        if task is not None and not task.done():
            asyncio.get_running_loop().call_later(self._grace, task.cancel)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Tuning of the activity worker (set through `Runtime` options)."""

    concurrency: int
    lock_timeout: float
    max_attempts: int
    grace_period: float
    poll_interval: float


class ActivityWorker:
    """Runs activity work items from one provider."""

    def __init__(
        self, provider: Provider, registry: Registry, options: WorkerOptions
    ) -> None:
        self._provider = provider
        self._registry = registry
        self._options = options
        self._running: dict[
            tuple[str, int, int], tuple[ActivityItem, ActivityContext]
        ] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Results not yet acknowledged; the activity task that finds no
        # acknowledgement in flight writes them (and any that arrive while it
        # writes): batches grow with load, and no extra task is woken.
        self._acks: list[ActivityResult] = []
        self._acking = False
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._threads = ThreadPoolExecutor(
            max_workers=max(4, min(options.concurrency, 32)),
            thread_name_prefix="perdure-activity",
        )

    def cancel_local(self, instance_id: str, execution_id: int, event_id: int) -> None:
        """Signal a running activity whose cancellation this process committed."""
        entry = self._running.get((instance_id, execution_id, event_id))
        if entry is not None:
            entry[1]._cancel()

    async def run(self) -> None:
        """Fetch and run work until `stop` is called."""
        loops = [
            asyncio.create_task(self._renew_loop()),
        ]
        try:
            await self._fetch_loop()
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop

    async def stop(self, timeout: float) -> None:
        """Stop fetching, let running activities finish for *timeout*, flush acks."""
        self._stopping = True
        self._slot_free.set()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self._flush_acks()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _fetch_loop(self) -> None:
        options = self._options
        while not self._stopping:
            free = options.concurrency - len(self._tasks)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                items = await self._provider.fetch_activities(
                    free, options.lock_timeout
                )
            except Exception:
                _log.exception("fetching activities failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if not items:
                await self._provider.wait("activities", options.poll_interval)
                continue
            for item in items:
                # Registered before its task first runs, so a cancellation
                # this process commits in between still reaches it.
                ctx = ActivityContext(
                    item.instance_id, item.execution_id, item.name, item.attempt
                )
                ctx._grace = self._options.grace_period
                key = (item.instance_id, item.execution_id, item.event_id)
                self._running[key] = (item, ctx)
                task = asyncio.create_task(self._execute(item, ctx))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            if len(items) < free:
                # The queue is drained: wait for new work (the provider
                # reports work enqueued since this fetch at once) instead
                # of paying for an empty fetch.
                await self._provider.wait("activities", options.poll_interval)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_free.set()

    async def _execute(self, item: ActivityItem, ctx: ActivityContext) -> None:
        key = (item.instance_id, item.execution_id, item.event_id)
        body = loads(item.body)
        options = body.get("options") or {}
        retry = (
            RetryPolicy.from_json(options["retry"]) if options.get("retry") else None
        )
        if item.attempt > max(
            self._options.max_attempts, retry.max_attempts if retry else 0
        ):
            self._running.pop(key, None)
            await self._finish(
                item,
                error=ErrorInfo(
                    "PoisonMessage",
                    f"activity {item.name!r} was delivered {item.attempt} times "
                    "without completing (the worker kept crashing or losing its lease)",
                    "poison",
                ),
            )
            return
        ctx._task = asyncio.current_task()
        if ctx.is_cancelled():
            self._running.pop(key, None)
            return  # cancelled before it started: never run it
        try:
            value = await self._invoke(item, body, ctx, options.get("timeout"))
        except BaseException as exc:
            if ctx.is_cancelled():
                return  # cancelled by the orchestration: outcome discarded
            if isinstance(exc, asyncio.CancelledError):
                if self._stopping:
                    return  # shutting down: the lease expires, another run retries
                raise
            info = ErrorInfo.from_exception(
                exc, "configuration" if isinstance(exc, HandlerNotFound) else None
            )
            if retry is not None and self._may_retry(retry, item, body):
                delay = retry.delay(item.attempt)
                _log.info(
                    "activity %s attempt %d failed (%s); retrying in %.3fs",
                    item.name,
                    item.attempt,
                    info,
                    delay,
                )
                await self._provider.abandon_activity(item.id, item.lock_token, delay)
                return
            await self._finish(item, error=info)
            return
        finally:
            self._running.pop(key, None)
        if not ctx.is_cancelled():
            await self._finish(item, result=value)

    def _may_retry(
        self, retry: RetryPolicy, item: ActivityItem, body: dict[str, Any]
    ) -> bool:
        if item.attempt >= retry.max_attempts:
            return False
        if retry.timeout is None:
            return True
        elapsed = time.time() - float(body.get("scheduled_at") or time.time())
        return elapsed + retry.delay(item.attempt) < retry.timeout

    async def _invoke(
        self,
        item: ActivityItem,
        body: dict[str, Any],
        ctx: ActivityContext,
        timeout: float | None,
    ) -> Any:
        adef = self._registry.activity(item.name)
        value = from_json(body.get("input"), adef.input_hint)
        args = (ctx, value) if adef.has_input else (ctx,)
        work: Awaitable[Any]
        if adef.is_async:
            work = adef.fn(*args)
        else:
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(self._threads, lambda: adef.fn(*args))
        try:
            if timeout is None:
                result = await work
            else:
                result = await asyncio.wait_for(work, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"activity {item.name!r} timed out after {timeout} s"
            ) from None
        return to_json(result, f"result of activity {item.name!r}")

    async def _finish(
        self, item: ActivityItem, *, result: Any = None, error: ErrorInfo | None = None
    ) -> None:
        body: dict[str, Any] = {
            "execution_id": item.execution_id,
            "event_id": item.event_id,
        }
        if error is None:
            kind = m.ACTIVITY_COMPLETED
            body["result"] = result
        else:
            kind = m.ACTIVITY_FAILED
            body["error"] = error.to_json()
        self._acks.append(
            ActivityResult(
                id=item.id,
                lock_token=item.lock_token,
                instance_id=item.instance_id,
                message=m.message(kind, body),
            )
        )
        if self._acking:
            return  # the task acknowledging now takes this one too
        self._acking = True
        try:
            await self._flush_acks()
        finally:
            self._acking = False

    async def _flush_acks(self) -> None:
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                await self._provider.complete_activities(batch)
            except asyncio.CancelledError:
                self._acks[:0] = batch  # shutdown flushes them
                raise
            except Exception:
                _log.exception(
                    "acknowledging %d activities failed; retrying", len(batch)
                )
                self._acks[:0] = batch
                await asyncio.sleep(0.5)

    async def _renew_loop(self) -> None:
        interval = max(self._options.lock_timeout / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            leases = [(item.id, item.lock_token) for item, _ in self._running.values()]
            if not leases:
                continue
            try:
                lost = set(
                    await self._provider.renew_activity_locks(
                        leases, self._options.lock_timeout
                    )
                )
            except Exception:
                _log.exception("renewing activity leases failed")
                continue
            for item, ctx in list(self._running.values()):
                if item.id in lost:
                    ctx._cancel()


class _Discard(Exception):
    """The activity was cancelled; its outcome is not reported."""
