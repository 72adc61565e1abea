"""The reliability probe's F1, F2 and F3 reproducers, on a real runtime.

A value the database driver refuses reaches storage only if the codec lets
it through; whichever layer stops it, only the instance that made it may
fail, and quickly. The others complete as if it were not there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import perdure
from perdure import ActivityContext, OrchestrationContext

#: Bound for anything these tests wait on.
WAIT = 15.0

QUICK: dict[str, Any] = {
    "lock_timeout": 1.0,
    "max_attempts": 3,
    "poll_interval": 0.05,
    "cancellation_grace_period": 0.1,
}


@perdure.activity(name="ListDir")
async def list_dir(ctx: ActivityContext) -> list[str]:
    return [b"caf\xe9.txt".decode("utf-8", "surrogateescape")]  # os.listdir()


@perdure.activity(name="Step")
async def step(ctx: ActivityContext, i: int) -> int:
    return i


@perdure.orchestration(name="BadResult")
async def bad_result(ctx: OrchestrationContext) -> list[str]:
    return await ctx.schedule_activity(list_dir)


@perdure.orchestration(name="Good")
async def good(ctx: OrchestrationContext, n: int) -> int:
    return await ctx.schedule_activity(step, n)


@perdure.orchestration(name="BadTurn")
async def bad_turn(ctx: OrchestrationContext) -> str:
    # NUL in a name: refused by PostgreSQL text; a lone surrogate in the
    # output: refused by both drivers.
    await ctx.schedule_activity("Step\x00", 1)
    return "caf\udce9"


@perdure.orchestration(name="Plain")
async def plain(ctx: OrchestrationContext, n: int) -> int:
    return n


async def _finish(client: perdure.Client, iid: str) -> perdure.OrchestrationState:
    return await client.wait_for_orchestration(iid, timeout=WAIT)


async def test_unstorable_activity_result_fails_only_its_instance(
    storage_url: str,
) -> None:
    rt = perdure.Runtime(
        storage_url,
        orchestrations=[bad_result, good],
        activities=[list_dir, step],
        **QUICK,
    )
    async with rt:
        client = rt.client
        await client.start_orchestration("bad", "BadResult")
        for n in range(5):
            await client.start_orchestration(f"good-{n}", "Good", n)
        for n in range(5):
            state = await _finish(client, f"good-{n}")
            assert (state.status, state.output) == ("Completed", n), state
        bad = await _finish(client, "bad")
        assert bad.status == "Failed"
        assert bad.error is not None and bad.error.type != "PoisonMessage", bad.error
        history = await client.get_history("bad")
        assert [e.type for e in history].count("ActivityFailed") == 1


async def test_unstorable_turn_fails_only_its_instance(storage_url: str) -> None:
    async with perdure.Client(storage_url) as client:
        # Queued before the runtime starts: one fetch, one commit batch.
        await client.start_orchestration("bad", "BadTurn")
        for n in range(5):
            await client.start_orchestration(f"plain-{n}", "Plain", n)
    rt = perdure.Runtime(
        storage_url, orchestrations=[bad_turn, plain], activities=[step], **QUICK
    )
    async with rt:
        for n in range(5):
            state = await _finish(rt.client, f"plain-{n}")
            assert (state.status, state.output) == ("Completed", n), state
        bad = await _finish(rt.client, "bad")
        assert bad.status == "Failed"


@perdure.orchestration(name="Child")
async def child(ctx: OrchestrationContext, tag: str) -> str:
    await ctx.schedule_timer(1.0)
    return f"child-of-{tag}"


@perdure.orchestration(name="Parent")
async def parent(ctx: OrchestrationContext, tag: str) -> str:
    output: str = await ctx.schedule_sub_orchestration(
        "Child", tag, instance_id=f"child-{tag}"
    )
    return output


@perdure.orchestration(name="DefaultIds")
async def default_ids(ctx: OrchestrationContext, tag: str) -> str:
    output: str = await ctx.schedule_sub_orchestration("Child", tag)
    return output


async def test_force_delete_takes_children_and_id_reuse_is_clean(
    storage_url: str,
) -> None:
    rt = perdure.Runtime(storage_url, orchestrations=[parent, child], **QUICK)
    async with rt:
        client = rt.client
        await client.start_orchestration("order-1", "Parent", "OLD")
        while await client.get_status("child-OLD") is None:
            await asyncio.sleep(0.02)
        await client.delete_instance("order-1", force=True)
        assert await client.get_status("child-OLD") is None
        await client.start_orchestration("order-1", "Parent", "NEW")
        state = await _finish(client, "order-1")
        assert (state.status, state.output) == ("Completed", "child-of-NEW")
        await asyncio.sleep(1.2)  # the old child's timer would have fired
        assert await client.get_status("child-OLD") is None
        again = await _finish(client, "order-1")
        assert again.output == "child-of-NEW"


async def test_force_delete_frees_default_child_ids(storage_url: str) -> None:
    rt = perdure.Runtime(storage_url, orchestrations=[default_ids, child], **QUICK)
    async with rt:
        client = rt.client
        await client.start_orchestration("q", "DefaultIds", "OLD")
        while len(await client.list_instances()) < 2:
            await asyncio.sleep(0.02)
        await client.delete_instance("q", force=True)
        assert (await client.list_instances()).items == []
        await client.start_orchestration("q", "DefaultIds", "NEW")
        state = await _finish(client, "q")
        assert (state.status, state.output) == ("Completed", "child-of-NEW"), state
