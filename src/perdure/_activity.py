"""The activity worker.

The worker fetches activity work items, runs them (``async def`` on the
event loop, ``def`` in `ActivityThreads`), retries failures per the item's
`RetryPolicy` by putting the item back with a delay, and acknowledges
results in batches. Cancellation reaches a running activity at once when
the cancelling turn was committed in this process, and within one lease
renewal otherwise. `Leases` keeps each item leased until its outcome is
written; on shutdown the leases of unfinished items are given back, so
another runtime runs them at once.

Every failed attempt is logged (logger ``perdure.worker``) with its
traceback: at WARNING when it will be retried, at ERROR when the failure
is final (it then reaches the orchestration, stack included, as
``ActivityFailed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _messages as m
from ._activity_context import ActivityContext
from ._codec import from_json, loads, to_json
from ._errors import ErrorInfo, HandlerNotFound, format_stack
from ._leases import Absorb, Leases, label
from ._outage import log_failure
from ._registry import Registry
from ._retry import RetryPolicy
from ._telemetry import get as telemetry
from ._threads import ActivityThreads, Job
from ._worker_routing import WorkerRouting
from .providers._base import ActivityItem, ActivityRouting, Provider

__all__ = ["ActivityContext", "ActivityWorker", "WorkerOptions"]

_log = logging.getLogger("perdure.worker")
# Stands in for an attempt's timeouts when it has none (reusable: no state).
_NO_LIMIT: contextlib.nullcontext[None] = contextlib.nullcontext()


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Tuning of the activity worker (set through `Runtime` options)."""

    concurrency: int
    lock_timeout: float
    max_attempts: int
    grace_period: float
    poll_interval: float
    #: What to fetch (`._worker_routing`); None: everything.
    routing: ActivityRouting | None = None


class ActivityWorker:
    """Runs activity work items from one provider."""

    def __init__(
        self,
        provider: Provider,
        registry: Registry,
        options: WorkerOptions,
        absorb: Absorb | None = None,
    ) -> None:
        self._provider = provider
        self._registry = registry
        self._options = options
        # absorb: results are committed with the turns they wake (`_fused`).
        self._leases = Leases(provider, options.lock_timeout, absorb)
        self._routing = WorkerRouting(provider, options.routing, options.lock_timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reserved = 0  # slots promised to claimed items in flight
        # Tasks whose activity has returned: writing its result, or ending.
        self._settled: set[asyncio.Task[Any]] = set()
        self._running = False  # run() has begun: claimed items may come
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._finished = asyncio.Event()
        size = max(4, min(options.concurrency, 32))
        self._threads = ActivityThreads(size, spare=2 * size)
        self._tel = telemetry()

    def cancel_local(self, instance_id: str, execution_id: int, event_id: int) -> None:
        """Signal a running activity whose cancellation this process committed."""
        ctx = self._leases.context((instance_id, execution_id, event_id))
        if ctx is not None:
            ctx._cancel()

    async def run(self) -> None:
        """Fetch and run work until `stop` is called."""
        self._running = True
        loops = [
            asyncio.create_task(self._leases.renew_loop()),
            asyncio.create_task(self._routing.renew_loop()),
        ]
        try:
            await self._fetch_loop()
            # Leases are renewed until stop() has written or given back
            # every one of them, however long its grace period.
            await self._finished.wait()
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop

    async def stop(self, timeout: float) -> None:
        """Stop fetching and let running activities finish for *timeout*.

        Then acknowledge what finished and give back the leases of the rest
        (another runtime runs them at once). Sync activities still running
        in their threads are left behind: a thread cannot be stopped.
        """
        self._stopping = True
        self._slot_free.set()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self._leases.close()
        await self._routing.close()
        self._finished.set()
        self._threads.shutdown()
        hung = self._threads.running()
        if hung:
            _log.warning(
                "shutdown: sync activities still running in their threads, "
                "abandoned (a thread cannot be stopped; outcomes ignored): %s",
                ", ".join(hung),
            )

    async def _fetch_loop(self) -> None:
        options = self._options
        while not self._stopping:
            free = options.concurrency - len(self._tasks) - self._reserved
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                items = await self._routing.fetch(free)
            except Exception as exc:
                log_failure(_log, exc, "fetching activities failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if not items:
                await self._routing.check_waiting()
                await self._routing.wait_for_work(options.poll_interval)
                continue
            if self._stopped():  # stop() began during the fetch
                await self._leases.give_back(items)
                return
            for item in items:
                self._start(item)
            if len(items) < free:
                # The queue is drained: wait for new work (the provider
                # reports work enqueued since this fetch at once) instead
                # of paying for an empty fetch.
                await self._routing.wait_for_work(options.poll_interval)

    def reserve(self, name: str) -> bool:
        """Reserve a slot for an item a turn here will insert held (claimed).

        ``False`` when the worker is full or stopping, or does not have the
        activity, or the activity has limits (only a fetch checks them):
        the item is then enqueued for any worker to fetch.
        """
        options = self._options
        # Running activities, not tasks: one whose result is being written
        # ran already. Counting those (as the fetch loop does, to bound the
        # tasks) left a fused batch of more than half the limit unable to
        # claim the work it schedules, since the items it acknowledges hold
        # their slots until it commits: most of a PostgreSQL chain's steps
        # were enqueued and fetched instead.
        busy = len(self._tasks) - len(self._settled) + self._reserved
        if not self._running or self._stopping or busy >= options.concurrency:
            return False
        found = self._registry.activities.get(name)
        if found is None or found.limit is not None:
            return False
        self._reserved += 1
        return True

    def claimed(self, items: list[ActivityItem], unused: int) -> None:
        """Run *items* (inserted held by a committed turn); free *unused* slots."""
        self._reserved -= len(items) + unused
        if self._stopping:
            # stop() began meanwhile: their leases expire and another
            # worker runs them (rare; shutdown gives back what it can).
            return
        for item in items:
            self._start(item)
        if unused:
            self._slot_free.set()

    def _start(self, item: ActivityItem) -> None:
        # Registered before its task first runs, so a cancellation this
        # process commits in between still reaches it.
        ctx = ActivityContext(
            item.instance_id,
            item.execution_id,
            item.name,
            item.attempt,
            event_id=item.event_id,
        )
        ctx._grace = self._options.grace_period
        self._leases.hold(item, ctx)
        task = asyncio.create_task(self._execute(item, ctx))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _stopped(self) -> bool:
        # (A method: mypy would keep `self._stopping` narrowed across awaits.)
        return self._stopping

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._settled.discard(task)
        self._slot_free.set()

    async def _execute(self, item: ActivityItem, ctx: ActivityContext) -> None:
        try:
            await self._run(item, ctx)
        finally:
            self._routing.finished(item)

    async def _run(self, item: ActivityItem, ctx: ActivityContext) -> None:
        body = loads(item.body)
        if (tel := self._tel) is None:
            await self._attempt(item, ctx, body)
            return
        with tel.activity(item, body) as span:
            span.outcome = await self._attempt(item, ctx, body)

    async def _attempt(
        self, item: ActivityItem, ctx: ActivityContext, body: dict[str, Any]
    ) -> str:
        """Run one attempt of *item*; return its outcome (`._otel.ActivitySpan`)."""
        options = body.get("options") or {}
        retry = (
            RetryPolicy.from_json(options["retry"]) if options.get("retry") else None
        )
        if item.attempt > max(
            self._options.max_attempts, retry.max_attempts if retry else 0
        ):
            error = ErrorInfo(
                "PoisonMessage",
                f"activity {item.name!r} was delivered {item.attempt} times "
                "without completing (the worker kept crashing or losing its lease)",
                "poison",
            )
            _log.error("activity %s failed for good: %s", label(item), error)
            await self._finish(item, error=error)
            return "failed"
        ctx._task = asyncio.current_task()
        if ctx._discarded():
            self._leases.release(item)
            return "cancelled"  # before it started: never run it
        _prepare(ctx, item, body)
        try:
            value = await self._invoke(item, body, ctx, options)
        except BaseException as exc:
            if ctx._discarded():
                self._leases.release(item)
                return "cancelled"  # by the orchestration: outcome discarded
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and (
                task is None or task.cancelling() > 0
            ):
                if self._stopping:
                    return "released"  # stop() gives the lease back
                raise
            return await self._failed(item, body, retry, exc)
        if ctx._discarded():
            self._leases.release(item)
            return "cancelled"
        await self._finish(item, result=value)
        return "completed"

    async def _failed(
        self,
        item: ActivityItem,
        body: dict[str, Any],
        retry: RetryPolicy | None,
        exc: BaseException,
    ) -> str:
        """Retry the attempt that raised *exc*, or write its failure."""
        if self._tel is not None:
            self._tel.error(exc)
        info = _error_info(item, exc)
        final = _final(retry, item, body, exc)
        if final is not None or retry is None:
            _log.error(
                "activity %s failed for good (%s): %s",
                label(item),
                final,
                info,
                exc_info=exc,
            )
            await self._finish(item, error=info)
            return "failed"
        delay = retry.delay(item.attempt)
        _log.warning(
            "activity %s failed; retrying in %.3f s: %s",
            label(item),
            delay,
            info,
            exc_info=exc,
        )
        await self._leases.save_details([item])  # the next attempt reads them
        try:
            await self._provider.abandon_activity(item.id, item.lock_token, delay)
        finally:
            self._leases.release(item)  # on failure the lease expires instead
        return "retrying"

    async def _invoke(
        self,
        item: ActivityItem,
        body: dict[str, Any],
        ctx: ActivityContext,
        options: dict[str, Any],
    ) -> Any:
        adef = self._registry.activity(item.name)
        value = from_json(body.get("input"), adef.input_hint)
        args = (ctx, value) if adef.has_input else (ctx,)
        job: Job | None = None
        timeout: float | None = options.get("timeout")
        quiet: float | None = options.get("heartbeat_timeout")
        watcher: asyncio.Task[None] | None = None
        # The activity runs in this task (no inner task, unlike wait_for): a
        # SystemExit it raises reaches _execute, never the event loop (F7).
        # No timeout: no context either (a tenth of a short activity's cost).
        deadline = asyncio.timeout(timeout) if timeout is not None else None
        # Fired by the watcher when the attempt stops heartbeating.
        beats = asyncio.timeout(None) if quiet is not None else None
        try:
            async with deadline or _NO_LIMIT, beats or _NO_LIMIT:
                if quiet is not None and beats is not None:
                    begun = time.monotonic()
                    watcher = asyncio.create_task(
                        _watch(
                            ctx,
                            quiet,
                            lambda: begun if job is None else job.started_at,
                            beats,
                        )
                    )
                if adef.is_async:
                    result = await adef.fn(*args)
                else:
                    # In a copy of this task's context: its current span too.
                    run = contextvars.copy_context().run
                    job = self._threads.submit(lambda: run(adef.fn, *args), label(item))
                    result = await job.future
        except BaseException as exc:
            if job is not None:
                self._give_up_thread(job, item, ctx)
            if isinstance(exc, TimeoutError) and deadline and deadline.expired():
                ctx._give_up()
                raise TimeoutError(
                    f"activity {item.name!r} timed out after {timeout} s"
                ) from None
            if isinstance(exc, TimeoutError) and beats and beats.expired():
                ctx._give_up()
                raise TimeoutError(
                    f"activity {item.name!r} sent no heartbeat for {quiet} s "
                    "(its heartbeat_timeout)"
                ) from None
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        return to_json(result, f"result of activity {item.name!r}")

    def _give_up_thread(
        self, job: Job, item: ActivityItem, ctx: ActivityContext
    ) -> None:
        replaced = self._threads.give_up(job)
        if replaced is None:
            return  # it was not running
        ctx._give_up()
        if replaced:
            _log.warning(
                "sync activity %s was given up, but its thread cannot be "
                "stopped: it keeps running (its outcome is ignored; it should "
                "check ctx.is_cancelled()); a replacement thread was started",
                label(item),
            )
        else:
            _log.error(
                "sync activity %s was given up, but its thread cannot be "
                "stopped, and too many given-up threads are still running to "
                "start a replacement: sync activities may have to wait",
                label(item),
            )

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
        task = asyncio.current_task()
        if task is not None:
            self._settled.add(task)  # until it ends (_task_done)
        await self._leases.acknowledge(item, m.message(kind, body))


def _prepare(ctx: ActivityContext, item: ActivityItem, body: dict[str, Any]) -> None:
    """Give *ctx* what the stored item says: idempotency key, earlier details."""
    scheduled_at = body.get("scheduled_at")
    if isinstance(scheduled_at, int | float) and not isinstance(scheduled_at, bool):
        ctx._scheduled_at = float(scheduled_at)
    try:
        ctx._decode_details(item.heartbeat_details)
    except Exception:
        _log.exception("heartbeat details of %s are unreadable", label(item))


def _final(
    retry: RetryPolicy | None,
    item: ActivityItem,
    body: dict[str, Any],
    exc: BaseException,
) -> str | None:
    """Why the failure *exc* of this attempt is final, or None to retry."""
    if retry is None:
        return "no retry policy"
    if not retry.retries(exc):
        return f"{type(exc).__name__} is not retryable"
    if item.attempt >= retry.max_attempts:
        return f"attempt {item.attempt} of {retry.max_attempts}"
    if retry.timeout is not None:
        elapsed = time.time() - float(body.get("scheduled_at") or time.time())
        if elapsed + retry.delay(item.attempt) >= retry.timeout:
            return f"the retry timeout of {retry.timeout} s is spent"
    return None


async def _watch(
    ctx: ActivityContext,
    limit: float,
    started: Callable[[], float | None],
    beats: asyncio.Timeout,
) -> None:
    """Fire *beats* once *limit* seconds pass without a heartbeat.

    The clock starts when the attempt starts running (*started*: a sync
    activity waiting for a free thread is not timed) and every heartbeat
    restarts it. The watcher only sleeps until the next possible expiry, so
    heartbeats themselves cost it nothing.
    """
    while True:
        begun = started()
        wait = limit
        if begun is not None:
            wait = max(begun, ctx._beat[0]) + limit - time.monotonic()
            if wait <= 0:
                with contextlib.suppress(RuntimeError):  # the attempt just ended
                    beats.reschedule(asyncio.get_running_loop().time())
                return
        await asyncio.sleep(wait)


def _error_info(item: ActivityItem, exc: BaseException) -> ErrorInfo:
    if isinstance(exc, HandlerNotFound):
        return ErrorInfo.from_exception(exc, "configuration")
    if isinstance(exc, Exception):
        return ErrorInfo.from_exception(exc, with_stack=True)
    # SystemExit, KeyboardInterrupt, GeneratorExit, a CancelledError the
    # activity raised itself, ...: this attempt fails; the process lives on.
    return ErrorInfo(
        type(exc).__name__,
        f"activity {item.name!r} raised {exc!r}, which fails this attempt "
        "(it does not stop the worker)",
        "application",
        format_stack(exc),
    )
