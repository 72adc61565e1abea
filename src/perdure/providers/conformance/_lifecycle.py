"""Conformance: open/close, migrations, wake-ups."""

from __future__ import annotations

import asyncio
import time

import pytest

from perdure._errors import PerdureError
from perdure.providers import ActivityWork, Provider
from perdure.providers.conformance._fixtures import Backend, Kit, Run

__all__ = [
    "test_calls_before_open_raise_a_clear_error",
    "test_open_is_idempotent_and_close_too",
    "test_reopening_a_store_keeps_data_and_migrations_idempotent",
    "test_wait_does_not_lose_a_write_between_fetch_and_wait",
    "test_wait_times_out_without_writes",
    "test_wait_wakes_activity_worker_on_scheduling",
    "test_wait_wakes_on_enqueue",
    "test_wait_wakes_status_watchers_on_completion",
]

# --- open / close / migrations ---------------------------------------------------


def test_open_is_idempotent_and_close_too(provider: Provider, kit: type[Kit]) -> None:
    async def main() -> None:
        await provider.open()
        await provider.open()
        await provider.create_instance(kit.new("a"))
        assert await provider.get_instance("a") is not None
        await provider.close()
        await provider.close()

    asyncio.run(main())


def test_calls_before_open_raise_a_clear_error(provider: Provider) -> None:
    async def main() -> None:
        with pytest.raises(PerdureError, match="open"):
            await provider.get_instance("a")

    asyncio.run(main())


def test_reopening_a_store_keeps_data_and_migrations_idempotent(
    backend: Backend, kit: type[Kit]
) -> None:
    if not backend.shared:
        pytest.skip("a private in-memory database does not outlive its object")

    async def main() -> None:
        first = backend.make()
        await first.open()
        await first.create_instance(kit.new("a"))
        await first.close()
        for _ in range(2):
            again = backend.make()
            await again.open()
            record = await again.get_instance("a")
            assert record is not None and record.name == "wf"
            await again.close()

    asyncio.run(main())


# --- wait ----------------------------------------------------------------------


def test_wait_times_out_without_writes(run: Run) -> None:
    async def body(p: Provider) -> None:
        # A first wait on a kind may return at once (a provider that starts
        # hearing other processes then has the caller look again).
        await p.wait("orchestrations", 0.0)
        await p.fetch_orchestrations(10, 1)
        started = time.monotonic()
        await p.wait("orchestrations", 0.2)
        assert 0.15 <= time.monotonic() - started < 2

    run(body)


def test_wait_wakes_on_enqueue(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await kit.fetch_one(p, "a")  # drain, so the next wait really sleeps
        await p.fetch_orchestrations(10, 30)

        async def later() -> None:
            await asyncio.sleep(0.1)
            await p.enqueue("a", kit.message())

        sender = asyncio.create_task(later())
        started = time.monotonic()
        await p.wait("orchestrations", 5)
        assert time.monotonic() - started < 2
        await sender

    run(body)


def test_wait_does_not_lose_a_write_between_fetch_and_wait(
    run: Run, kit: type[Kit]
) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        await kit.started(p, "b")
        await kit.fetch_one(p, "a")
        assert await p.fetch_orchestrations(10, 30) == []
        # Another task writes after our fetch and before our wait.
        await asyncio.create_task(p.enqueue("b", kit.message()))
        started = time.monotonic()
        await p.wait("orchestrations", 5)
        assert time.monotonic() - started < 2

    run(body)


def test_wait_wakes_activity_worker_on_scheduling(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")

        async def worker() -> float:
            assert await p.fetch_activities(10, 1) == []
            started = time.monotonic()
            await p.wait("activities", 5)
            return time.monotonic() - started

        waiting = asyncio.create_task(worker())
        await asyncio.sleep(0.1)
        work = ActivityWork(
            instance_id="a", execution_id=1, event_id=1, name="act", body="{}"
        )
        assert await p.commit_turns([kit.turn(item, "e1", activities=[work])]) == [True]
        assert await waiting < 2

    run(body)


def test_wait_wakes_status_watchers_on_completion(run: Run, kit: type[Kit]) -> None:
    async def body(p: Provider) -> None:
        await p.create_instance(kit.new("a"))
        item = await kit.fetch_one(p, "a")

        async def watcher() -> float:
            record = await p.get_instance("a")
            assert record is not None and record.status == "Running"
            started = time.monotonic()
            await p.wait("instances", 5)
            return time.monotonic() - started

        waiting = asyncio.create_task(watcher())
        await asyncio.sleep(0.1)
        turn = kit.turn(item, "done", status="Completed", output="1")
        assert await p.commit_turns([turn]) == [True]
        assert await waiting < 2

    run(body)
