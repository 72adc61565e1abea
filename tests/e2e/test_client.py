"""Client queries: list_instances, delete_instance, wait timeouts, stand-alone use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _helpers import WAIT, eventually, run_to_end, runtime

import perdure


@perdure.orchestration
async def echo(ctx: perdure.OrchestrationContext, value: object) -> object:
    return value


@perdure.orchestration
async def waiter(ctx: perdure.OrchestrationContext) -> object:
    return await ctx.schedule_wait("go")


@perdure.orchestration
async def parent(ctx: perdure.OrchestrationContext) -> object:
    return await ctx.schedule_sub_orchestration(waiter)


ORCHS: list[Callable[..., Any]] = [echo, waiter, parent]


async def test_list_instances_filters_and_limits(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        for i in range(3):
            await run_to_end(client, f"done-{i}", echo, i)
        await client.start_orchestration("running", waiter)
        await client.start_orchestration("cancelled", waiter)
        await client.cancel_instance("cancelled")
        await client.wait_for_orchestration("cancelled", WAIT)
        everything = await client.list_instances()
        assert sorted(s.instance_id for s in everything) == [
            "cancelled",
            "done-0",
            "done-1",
            "done-2",
            "running",
        ]
        # Newest first.
        created = [s.created_at for s in everything]
        assert created == sorted(created, reverse=True)
        completed = await client.list_instances(status="Completed")
        assert sorted(s.instance_id for s in completed) == [
            "done-0",
            "done-1",
            "done-2",
        ]
        assert {s.output for s in completed} == {0, 1, 2}
        assert [
            s.instance_id for s in await client.list_instances(status="Running")
        ] == ["running"]
        cancelled = await client.list_instances(status="Cancelled")
        assert [s.instance_id for s in cancelled] == ["cancelled"]
        assert (await client.list_instances(status="Failed")).items == []
        two = await client.list_instances(limit=2)
        assert [s.instance_id for s in two] == [
            s.instance_id for s in everything.items[:2]
        ]
        assert len(await client.list_instances(status="Completed", limit=1)) == 1


async def test_delete_instance(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        client = rt.client
        await run_to_end(client, "finished", echo, "x")
        await client.delete_instance("finished")
        assert await client.get_status("finished") is None
        with pytest.raises(perdure.InstanceNotFound):
            await client.get_history("finished")
        # The id can be used again.
        assert (await run_to_end(client, "finished", echo, "y")).output == "y"

        await client.start_orchestration("live", waiter)
        with pytest.raises(perdure.PerdureError, match="still running"):
            await client.delete_instance("live")
        live = await client.get_status("live")
        assert live is not None and live.status == "Running"
        await client.delete_instance("live", force=True)
        assert await client.get_status("live") is None
        with pytest.raises(perdure.InstanceNotFound):
            await client.raise_event("live", "go")
        with pytest.raises(perdure.InstanceNotFound):
            await client.delete_instance("live")
        # The runtime carries on with other instances.
        assert (await run_to_end(client, "after", echo, 1)).output == 1


async def test_wait_for_orchestration_times_out(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        await rt.client.start_orchestration("slow", waiter)
        with pytest.raises(TimeoutError, match="slow"):
            await rt.client.wait_for_orchestration("slow", timeout=0.1)
        await rt.client.raise_event("slow", "go", "now")
        state = await rt.client.wait_for_orchestration("slow", WAIT)
        assert state.output == "now" and state.is_finished


async def test_standalone_client(storage_url: str) -> None:
    async with perdure.Client(storage_url) as client:
        # Nothing runs orchestrations yet: the start is only stored.
        await client.start_orchestration("p", parent)
        state = await client.get_status("p")
        assert state is not None and state.status == "Running"
        async with runtime(storage_url, ORCHS) as rt:
            child = "p::sub::2"
            await eventually(lambda: rt.client.get_status(child), "the child")
            await client.raise_event(child, "go", {"from": "outside"})
            final = await client.wait_for_orchestration("p", WAIT)
    assert final.status == "Completed"
    assert final.output == {"from": "outside"}
