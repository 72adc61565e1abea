"""Operating instances (DESIGN §10): find, page, purge, start safely, signal-with-start.

Every test runs on SQLite and PostgreSQL (``storage_url``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _helpers import WAIT, run_to_end, runtime

import perdure


@perdure.orchestration
async def echo(ctx: perdure.OrchestrationContext, value: object) -> object:
    return value


@perdure.orchestration(name="Echo2", version="2")
async def echo_v2(ctx: perdure.OrchestrationContext, value: object) -> object:
    return value


@perdure.orchestration
async def collector(ctx: perdure.OrchestrationContext, wanted: int) -> list[Any]:
    return [await ctx.schedule_wait("item") for _ in range(wanted)]


@perdure.orchestration
async def with_child(ctx: perdure.OrchestrationContext) -> object:
    return await ctx.schedule_sub_orchestration(echo, "from child")


ORCHS: list[Any] = [echo, echo_v2, collector, with_child]


async def _ids(page: perdure.InstancePage) -> list[str]:
    return [s.instance_id for s in page]


async def test_list_filters_and_cursor_pages(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        for n in range(7):
            await client.start_orchestration(f"e{n}", echo, n)
        middle = time.time()
        await asyncio.sleep(0.02)
        for n in range(3):
            await client.start_orchestration(f"v{n}", "Echo2", n, version="2")
        for iid in [f"e{n}" for n in range(7)] + [f"v{n}" for n in range(3)]:
            await client.wait_for_orchestration(iid, WAIT)
        await client.start_orchestration("waiting", collector, 1)

        first = await client.list_instances(limit=4)
        assert await _ids(first) == ["waiting", "v2", "v1", "v0"]
        assert first.next_cursor is not None
        second = await client.list_instances(limit=4, cursor=first.next_cursor)
        assert await _ids(second) == ["e6", "e5", "e4", "e3"]
        streamed = [s.instance_id async for s in client.iter_instances(page_size=3)]
        assert streamed == ["waiting", *(f"v{n}" for n in (2, 1, 0))] + [
            f"e{n}" for n in range(6, -1, -1)
        ]

        by_name = await client.list_instances(name="Echo2")
        assert await _ids(by_name) == ["v2", "v1", "v0"]
        assert by_name.next_cursor is None
        assert await _ids(await client.list_instances(name=echo, limit=2)) == [
            "e6",
            "e5",
        ]
        assert await _ids(await client.list_instances(version="2", limit=1)) == ["v2"]
        running = await client.list_instances(status="Running")
        assert await _ids(running) == ["waiting"]
        after = await client.list_instances(
            created_after=datetime.fromtimestamp(middle, UTC), name="Echo2"
        )
        assert await _ids(after) == ["v2", "v1", "v0"]
        before = await client.list_instances(created_before=middle)
        assert await _ids(before) == [f"e{n}" for n in range(6, -1, -1)]

        with pytest.raises(ValueError, match="cursor"):
            await client.list_instances(cursor="garbage")
        with pytest.raises(ValueError, match="timezone-aware"):
            await client.list_instances(created_after=datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="limit"):
            await client.list_instances(limit=0)


async def test_purge_finished_instances_keeps_the_rest(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        await run_to_end(client, "old", echo, 1)
        await run_to_end(client, "parent", with_child)
        await client.start_orchestration("running", collector, 1)
        await client.start_orchestration("cancelled", collector, 1)
        await client.cancel_instance("cancelled")
        await client.wait_for_orchestration("cancelled", WAIT)
        child = [s.instance_id for s in await client.list_instances(name=echo)]
        assert len(child) == 2  # "old" and the parent's child
        cutoff = datetime.now(UTC) + timedelta(seconds=1)

        with pytest.raises(ValueError, match="finished"):
            await client.purge_instances(status="Running", finished_before=cutoff)
        assert (
            await client.purge_instances(status="Cancelled", finished_before=cutoff)
            == 1
        )
        assert await client.purge_instances(finished_before=cutoff) == 2
        left = [s.instance_id for s in await client.list_instances()]
        assert left == ["running"]  # the child went with its parent
        assert await client.purge_instances(finished_before=cutoff) == 0


async def test_start_at_delays_the_first_turn(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        due = datetime.now(UTC) + timedelta(seconds=1.0)
        await client.start_orchestration("later", echo, "hi", start_at=due)
        state = await client.get_status("later")
        assert state is not None and state.status == "Running"
        assert await client.get_history("later") == []  # nothing ran yet
        done = await client.wait_for_orchestration("later", WAIT)
        assert done.output == "hi"
        history = await client.get_history("later")
        assert history[0].timestamp >= due.timestamp() - 0.05
        with pytest.raises(ValueError, match="timezone-aware"):
            await client.start_orchestration(
                "naive", echo, start_at=datetime(2030, 1, 1)
            )


async def test_if_exists_ignore_makes_a_repeated_start_a_no_op(
    storage_url: str,
) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        await run_to_end(client, "once", echo, "first")
        await client.start_orchestration("once", echo, "second", if_exists="ignore")
        with pytest.raises(perdure.InstanceExists):
            await client.start_orchestration("once", echo, "third")
        with pytest.raises(ValueError, match="if_exists"):
            await client.start_orchestration(
                "x",
                echo,
                if_exists="replace",  # type: ignore[arg-type]
            )
        state = await client.wait_for_orchestration("once", WAIT)
        assert state.output == "first"
        assert len(await client.list_instances(name=echo)) == 1


async def test_signal_with_start_races_create_one_instance_and_lose_no_event(
    storage_url: str,
) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        spec = perdure.StartSpec(collector, 6)
        await asyncio.gather(
            *(client.raise_event("order-1", "item", n, start=spec) for n in range(6))
        )
        state = await client.wait_for_orchestration("order-1", WAIT)
        assert sorted(state.output) == list(range(6))
        assert len(await client.list_instances()) == 1
        with pytest.raises(perdure.InstanceNotFound):
            await client.raise_event("ghost", "item", 1)


async def test_signal_with_start_to_an_existing_instance_only_signals(
    storage_url: str,
) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        await client.start_orchestration("order-2", collector, 1)
        await client.raise_event(
            "order-2", "item", "x", start=perdure.StartSpec(collector, 99)
        )
        state = await client.wait_for_orchestration("order-2", WAIT)
        assert state.output == ["x"]
        history = await client.get_history("order-2")
        assert isinstance(history[0], perdure.events.OrchestrationStarted)
        assert history[0].input == 1  # the spec's input was not used


async def test_runtime_retention_purges_finished_instances(storage_url: str) -> None:
    # retention=1 s: checked every second; a finished instance goes within
    # about two seconds, a running one stays.
    async with runtime(storage_url, ORCHS, retention=1.0) as rt:
        client = rt.client
        await run_to_end(client, "short-lived", echo, 1)
        await client.start_orchestration("long-lived", collector, 1)
        deadline = time.monotonic() + WAIT
        while await client.get_status("short-lived") is not None:
            assert time.monotonic() < deadline, "never purged"
            await asyncio.sleep(0.1)
        assert [s.instance_id for s in await client.list_instances()] == ["long-lived"]
    with pytest.raises(ValueError, match="retention"):
        perdure.Runtime("sqlite://:memory:", retention=0)


async def test_events_and_cancels_before_a_delayed_start_wait_for_it(
    storage_url: str,
) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        due = datetime.now(UTC) + timedelta(seconds=1.0)
        await client.start_orchestration("early-event", collector, 1, start_at=due)
        await client.start_orchestration("early-cancel", collector, 1, start_at=due)
        await client.raise_event("early-event", "item", "sent before the start")
        await client.cancel_instance("early-cancel", "changed my mind")
        await asyncio.sleep(0.3)  # the runtime polls meanwhile; nothing may run
        for iid in ("early-event", "early-cancel"):
            assert await client.get_history(iid) == []
        state = await client.wait_for_orchestration("early-event", WAIT)
        assert state.output == ["sent before the start"]
        cancelled = await client.wait_for_orchestration("early-cancel", WAIT)
        assert cancelled.status == "Cancelled"
