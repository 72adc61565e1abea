"""`perdure.SyncClient`: the `Client` methods, blocking, from any thread."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import threading
import typing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _helpers import WAIT, runtime

import perdure
from perdure import events as h


@dataclasses.dataclass
class Total:
    amount: int


@perdure.orchestration
async def add(ctx: perdure.OrchestrationContext, numbers: list[int]) -> Total:
    extra = await ctx.schedule_wait("extra")
    return Total(sum(numbers) + extra)


@perdure.orchestration
async def echo(ctx: perdure.OrchestrationContext, value: object) -> object:
    return value


ORCHS: list[Callable[..., Any]] = [add, echo]


@contextmanager
def runtime_thread(url: str) -> Iterator[None]:
    """A runtime on *url* in a thread of its own, as a worker process would."""
    started = threading.Event()
    handle: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        async with runtime(url, ORCHS):
            stop = asyncio.Event()
            handle.append((asyncio.get_running_loop(), stop))
            started.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    try:
        assert started.wait(WAIT), "the runtime did not start"
        yield
    finally:
        if handle:
            loop, stop = handle[0]
            loop.call_soon_threadsafe(stop.set)
        thread.join(WAIT)
        assert not thread.is_alive()


def test_blocking_calls_drive_an_instance(storage_url: str) -> None:
    with runtime_thread(storage_url), perdure.SyncClient(storage_url) as client:
        client.start_orchestration("sum", add, [1, 2])
        with pytest.raises(perdure.InstanceExists):
            client.start_orchestration("sum", add, [1, 2])
        running = client.get_status("sum")
        assert running is not None and running.status == "Running"
        client.raise_event("sum", "extra", 10)
        state = client.wait_for_orchestration("sum", WAIT, result_type=Total)
        assert state.status == "Completed" and state.output == Total(13)
        assert client.wait_for_orchestration("sum", WAIT).output == {"amount": 13}
        assert [s.instance_id for s in client.list_instances()] == ["sum"]
        assert client.list_instances(status="Running").items == []
        client.start_orchestration("sum", add, [1, 2], if_exists="ignore")
        client.start_orchestration("other", echo, 1)
        client.wait_for_orchestration("other", WAIT)
        page = client.list_instances(limit=1)
        assert len(page.items) == 1 and page.next_cursor is not None
        rest = client.list_instances(limit=1, cursor=page.next_cursor)
        both = {s.instance_id for s in [*page.items, *rest.items]}
        assert both == {"sum", "other"}
        assert sorted(s.instance_id for s in client.iter_instances(page_size=1)) == [
            "other",
            "sum",
        ]
        assert [s.instance_id for s in client.iter_instances(name=echo)] == ["other"]
        history = client.get_history("sum")
        assert isinstance(history[0], h.OrchestrationStarted)
        assert isinstance(history[-1], h.OrchestrationCompleted)

        client.raise_event("late", "extra", 5, start=perdure.StartSpec(add, [1]))
        late = client.wait_for_orchestration("late", WAIT, result_type=Total)
        assert late.output == Total(6)

        client.start_orchestration("stuck", add, [])
        client.cancel_instance("stuck", "no longer needed")
        cancelled = client.wait_for_orchestration("stuck", WAIT)
        assert cancelled.status == "Cancelled"
        with pytest.raises(perdure.PerdureError, match="not Suspended"):
            client.resume("stuck")
        with pytest.raises(perdure.PerdureError, match="not Failed"):
            client.rewind("stuck")
        client.delete_instance("stuck")
        assert client.get_status("stuck") is None
        with pytest.raises(perdure.InstanceNotFound):
            client.raise_event("stuck", "extra", 1)
        purged = client.purge_instances(
            finished_before=datetime.now(UTC) + timedelta(hours=1)
        )
        assert purged == 3 and client.list_instances().items == []


def test_many_threads_share_one_client(sqlite_url: str) -> None:
    def one(i: int) -> object:
        client.start_orchestration(f"echo-{i}", echo, i)
        return client.wait_for_orchestration(f"echo-{i}", WAIT).output

    with (
        runtime_thread(sqlite_url),
        perdure.SyncClient(sqlite_url) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        outputs = list(pool.map(one, range(16)))
    assert outputs == list(range(16))


async def test_usable_inside_a_running_event_loop(sqlite_url: str) -> None:
    # As in a notebook cell: the caller's loop is running, the client's own
    # loop (on its thread) does the work.
    with perdure.SyncClient(sqlite_url) as client:
        client.start_orchestration("later", echo, "x")
        state = client.get_status("later")
    assert state is not None and state.status == "Running"


def test_close_stops_the_thread_and_refuses_calls(sqlite_url: str) -> None:
    client = perdure.SyncClient(sqlite_url)
    thread = client._thread
    client.start_orchestration("pending", echo)
    waiting: list[BaseException] = []

    def wait() -> None:
        try:
            client.wait_for_orchestration("pending", WAIT)
        except BaseException as exc:
            waiting.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    while not _calls_in_flight(client):
        waiter.join(0.01)
    client.close()
    waiter.join(WAIT)
    # A call still running when the client closes ends, and says why.
    assert len(waiting) == 1 and "closed during the call" in str(waiting[0])
    assert not thread.is_alive()
    client.close()  # again: nothing to do
    with pytest.raises(RuntimeError, match="closed"):
        client.get_status("pending")


def _calls_in_flight(client: perdure.SyncClient) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks()) - 2  # the loop's own task, this one

    return asyncio.run_coroutine_threadsafe(count(), client._loop).result()


def test_a_forgotten_client_is_closed_when_collected(sqlite_url: str) -> None:
    client = perdure.SyncClient(sqlite_url)
    client.start_orchestration("x", echo)
    thread = client._thread
    del client
    gc.collect()
    thread.join(WAIT)
    assert not thread.is_alive()


def _public_methods(cls: type) -> dict[str, Any]:
    # dir(), not vars(): Client gets some of its methods from mixins.
    return {
        name: getattr(cls, name)
        for name in dir(cls)
        if not name.startswith("_") and inspect.isfunction(getattr(cls, name))
    }


def test_every_client_method_has_a_blocking_twin() -> None:
    # Adding a method to Client? Add its delegating twin to SyncClient.
    sync_methods = _public_methods(perdure.SyncClient)
    for name, method in _public_methods(perdure.Client).items():
        assert name in sync_methods, f"SyncClient lacks Client.{name}"
        twin = sync_methods[name]
        if inspect.isasyncgenfunction(method):  # async for -> for
            assert inspect.isgeneratorfunction(twin), name
            returns = inspect.signature(method).return_annotation
            assert isinstance(returns, str) and returns.startswith("Async")
            returns = returns.removeprefix("Async")
        else:
            assert inspect.iscoroutinefunction(method), name
            assert not inspect.iscoroutinefunction(twin), name
            returns = inspect.signature(method).return_annotation
        expected = inspect.signature(method).replace(return_annotation=returns)
        assert inspect.signature(twin) == expected, name
        if name != "close":  # which also stops the thread
            summary = (inspect.getdoc(method) or "").split("\n\n")[0]
            assert (inspect.getdoc(twin) or "").startswith(summary), name
        assert len(typing.get_overloads(twin)) == len(typing.get_overloads(method))
