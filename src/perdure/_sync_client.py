"""`SyncClient`: the `Client` methods, blocking, for code without an event loop.

Each `SyncClient` runs a private event loop on a daemon thread and hands it
`Client` coroutines with `asyncio.run_coroutine_threadsafe`. Any thread may
call it (a threaded WSGI server), and so may code that already runs an event
loop (a notebook cell): the client's loop is never that one.

Each public `Client` method has a blocking twin here that only delegates
(tests/test_sync_client.py fails when one is missing).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from ._client import Client
from ._client_retry import DEFAULT_RETRY_TIMEOUT
from ._client_types import IfExists, InstancePage, StartSpec
from ._schedules import Overlap, ScheduleInfo
from ._state import OrchestrationState
from .events import AnyEvent
from .providers._base import InstanceStatus, Provider

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """A `Client` whose methods block: for WSGI apps, scripts and notebooks.

    Args:
        storage: A storage URL (``sqlite:///perdure.db``,
            ``postgresql://...``) or a provider object (which this client
            then uses only from its own event loop).
        retry_timeout: Seconds each call keeps retrying connection-level
            storage errors before it raises `StorageError`.

    The methods are those of `Client`, with the same arguments, results and
    errors. One client serves any number of threads at once; it runs its
    calls on a private event loop in a daemon thread, so it also works where
    an event loop is already running (Jupyter). Close it with `close` or use
    it as a context manager; one left open is closed at interpreter exit.
    """

    def __init__(
        self, storage: str | Provider, *, retry_timeout: float = DEFAULT_RETRY_TIMEOUT
    ) -> None:
        self._client = Client(storage, retry_timeout=retry_timeout)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._stop = _Stop()
        self._thread = threading.Thread(
            target=_serve,
            args=(self._loop, self._stop, ready),
            name="perdure-sync-client",
            daemon=True,
        )
        self._thread.start()
        ready.wait()
        self._closed = False
        # Held while a call is handed to the loop, so none gets there after
        # close() has begun stopping it (it would wait forever).
        self._handing = threading.Lock()
        self._finalizer = weakref.finalize(
            self, _shutdown, self._client, self._loop, self._stop, self._thread
        )

    def close(self) -> None:
        """Close the storage this client opened and stop its thread.

        Calls still running are cancelled; calling `close` again does nothing.
        """
        with self._handing:
            self._closed = True
        self._finalizer()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        with self._handing:
            if self._closed:
                raise RuntimeError("this SyncClient is closed")
            future = asyncio.run_coroutine_threadsafe(
                _tracked(call(), self._stop), self._loop
            )
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self._closed:
                raise RuntimeError(
                    "this SyncClient was closed during the call"
                ) from None
            raise
        except BaseException:
            future.cancel()  # KeyboardInterrupt in a notebook: stop the call too
            raise

    # ------------------------------------------------------------- commands
    def start_orchestration(
        self,
        instance_id: str,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        version: str | None = None,
        start_at: datetime | float | None = None,
        if_exists: IfExists = "error",
    ) -> None:
        """Create instance *instance_id* running orchestration *name*.

        See `Client.start_orchestration`.
        """
        self._run(
            lambda: self._client.start_orchestration(
                instance_id,
                name,
                input,
                version=version,
                start_at=start_at,
                if_exists=if_exists,
            )
        )

    def raise_event(
        self,
        instance_id: str,
        name: str,
        data: Any = None,
        *,
        start: StartSpec | None = None,
    ) -> None:
        """Deliver external event *name* to an instance (buffered until waited for).

        See `Client.raise_event`.
        """
        self._run(
            lambda: self._client.raise_event(instance_id, name, data, start=start)
        )

    def cancel_instance(self, instance_id: str, reason: str = "") -> None:
        """Cancel a running instance and everything it has in flight.

        See `Client.cancel_instance`.
        """
        self._run(lambda: self._client.cancel_instance(instance_id, reason))

    def resume(self, instance_id: str) -> None:
        """Resume a ``Suspended`` instance with the code deployed now.

        See `Client.resume`.
        """
        self._run(lambda: self._client.resume(instance_id))

    def rewind(self, instance_id: str) -> None:
        """Take a ``Failed`` instance back to before its failure and resume it.

        See `Client.rewind`.
        """
        self._run(lambda: self._client.rewind(instance_id))

    def delete_instance(self, instance_id: str, *, force: bool = False) -> None:
        """Delete an instance with its history, and its sub-orchestrations.

        See `Client.delete_instance`.
        """
        self._run(lambda: self._client.delete_instance(instance_id, force=force))

    # -------------------------------------------------------------- queries
    # ------------------------------------------------------------ schedules
    def create_schedule(
        self,
        schedule_id: str,
        orchestration: str | Callable[..., Any],
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        input: Any = None,
        overlap: Overlap = "skip",
        start_at: datetime | float | None = None,
        version: str | None = None,
    ) -> None:
        """Start *orchestration* on a timetable, durably (docs/schedules.md).

        See `Client.create_schedule`.
        """
        self._run(
            lambda: self._client.create_schedule(
                schedule_id,
                orchestration,
                cron=cron,
                every=every,
                input=input,
                overlap=overlap,
                start_at=start_at,
                version=version,
            )
        )

    def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule with its state (next fire, paused, last run).

        See `Client.list_schedules`.
        """
        return self._run(self._client.list_schedules)

    def pause_schedule(self, schedule_id: str) -> None:
        """Stop a schedule firing until `resume_schedule`.

        See `Client.pause_schedule`.
        """
        self._run(lambda: self._client.pause_schedule(schedule_id))

    def resume_schedule(self, schedule_id: str) -> None:
        """Resume a paused schedule; slots that passed meanwhile are skipped.

        See `Client.resume_schedule`.
        """
        self._run(lambda: self._client.resume_schedule(schedule_id))

    def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; the runs it started are left alone.

        See `Client.delete_schedule`.
        """
        self._run(lambda: self._client.delete_schedule(schedule_id))

    def get_status(self, instance_id: str) -> OrchestrationState | None:
        """Return the instance's state, or ``None`` if it does not exist.

        See `Client.get_status`.
        """
        return self._run(lambda: self._client.get_status(instance_id))

    def get_values(self, instance_id: str) -> dict[str, Any]:
        """Return the instance's values (``ctx.set_value``), as JSON values.

        See `Client.get_values`.
        """
        return self._run(lambda: self._client.get_values(instance_id))

    @overload
    def wait_for_orchestration(
        self,
        instance_id: str,
        timeout: float | timedelta = ...,
        *,
        result_type: type[T],
    ) -> OrchestrationState[T]: ...
    @overload
    def wait_for_orchestration(
        self,
        instance_id: str,
        timeout: float | timedelta = ...,
        *,
        result_type: Any = ...,
    ) -> OrchestrationState[Any]: ...
    def wait_for_orchestration(
        self,
        instance_id: str,
        timeout: float | timedelta = 60.0,
        *,
        result_type: Any = None,
    ) -> OrchestrationState[Any]:
        """Wait until the instance is Completed, Failed or Cancelled.

        See `Client.wait_for_orchestration`.
        """
        return self._run(
            lambda: self._client.wait_for_orchestration(
                instance_id, timeout, result_type=result_type
            )
        )

    def list_instances(
        self,
        *,
        status: InstanceStatus | None = None,
        name: str | Callable[..., Any] | None = None,
        version: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InstancePage:
        """One page of instances, newest first, filtered.

        See `Client.list_instances`.
        """
        return self._run(
            lambda: self._client.list_instances(
                status=status,
                name=name,
                version=version,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_instances(
        self,
        *,
        status: InstanceStatus | None = None,
        name: str | Callable[..., Any] | None = None,
        version: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
        page_size: int = 500,
    ) -> Iterator[OrchestrationState[Any]]:
        """Every instance matching the filters, newest first (`list_instances`).

        See `Client.iter_instances`: a page of *page_size* is read at a time.
        """
        cursor: str | None = None
        while True:
            page = self.list_instances(
                status=status,
                name=name,
                version=version,
                created_after=created_after,
                created_before=created_before,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    def purge_instances(
        self,
        *,
        status: InstanceStatus | Sequence[InstanceStatus] | None = None,
        finished_before: datetime | float,
    ) -> int:
        """Delete finished instances that ended before a time (retention).

        See `Client.purge_instances`.
        """
        return self._run(
            lambda: self._client.purge_instances(
                status=status, finished_before=finished_before
            )
        )

    def get_history(
        self, instance_id: str, execution_id: int | None = None
    ) -> list[AnyEvent]:
        """Return the history of an execution (the latest by default).

        See `Client.get_history`.
        """
        return self._run(lambda: self._client.get_history(instance_id, execution_id))


class _Stop:
    """The loop thread's state, used on that loop only.

    Attributes:
        event: Set to end the loop thread (made on that loop).
        calls: The tasks of the calls running now.
    """

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None
        self.calls: set[asyncio.Task[Any]] = set()


async def _tracked(coro: Coroutine[Any, Any, T], stop: _Stop) -> T:
    task = asyncio.current_task()
    assert task is not None
    stop.calls.add(task)
    try:
        return await coro
    finally:
        stop.calls.discard(task)


def _serve(
    loop: asyncio.AbstractEventLoop, stop: _Stop, ready: threading.Event
) -> None:
    # Not a SyncClient method: the thread must not keep the client alive,
    # or a forgotten client would never be finalized.
    async def main() -> None:
        stop.event = asyncio.Event()
        ready.set()
        await stop.event.wait()

    asyncio.set_event_loop(loop)
    try:
        # As asyncio.run does: cancel leftovers, finish async generators and
        # the default executor's threads, then close the loop.
        loop.run_until_complete(main())
        _cancel_all(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _shutdown(
    client: Client,
    loop: asyncio.AbstractEventLoop,
    stop: _Stop,
    thread: threading.Thread,
) -> None:
    if not thread.is_alive():
        return
    closing = _close_then_stop(client, stop)
    if threading.current_thread() is thread:
        loop.create_task(closing)  # finalized on the loop thread: cannot wait
        return
    try:
        asyncio.run_coroutine_threadsafe(closing, loop).result()
    finally:
        thread.join()


async def _close_then_stop(client: Client, stop: _Stop) -> None:
    # Calls still running end first (cancelled), then the storage closes
    # under no one: a call must not meet a closed provider.
    # (Only those: the provider may run tasks of its own, a pool's.)
    calls = list(stop.calls)
    for task in calls:
        task.cancel()
    try:
        await asyncio.gather(*calls, return_exceptions=True)
        await client.close()
    finally:
        assert stop.event is not None
        stop.event.set()
