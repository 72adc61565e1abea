"""Activity routing end to end: tags, priorities, limits, sessions (docs/routing.md).

Two runtimes in one process share one storage; each registers its own
function under the activity's name, so the result says where it ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from _helpers import WAIT, check_replay, of_type, outcome, run_to_end, runtime

import perdure
from perdure import events as h


def where(label: str) -> Callable[..., Any]:
    """An activity named ``where`` that returns *label* (its runtime)."""

    @perdure.activity(name="where")
    async def run(ctx: perdure.ActivityContext, n: int) -> str:
        return label

    return run


@perdure.orchestration
async def tagged(ctx: perdure.OrchestrationContext, n: int) -> list[Any]:
    gpu = [ctx.schedule_activity("where", i, tag="gpu") for i in range(n)]
    plain = [ctx.schedule_activity("where", i) for i in range(n)]
    return [await ctx.join(gpu), await ctx.join(plain)]


async def test_tagged_activities_run_only_on_runtimes_with_the_tag(
    storage_url: str,
) -> None:
    async with (
        runtime(storage_url, [tagged], [where("cpu")]) as cpu,
        runtime(storage_url, [], [where("gpu")], activity_tags={"gpu"}),
    ):
        state = await run_to_end(cpu.client, "t", tagged, 6)
    assert state.status == "Completed", state.error
    gpu, plain = state.output
    assert gpu == ["gpu"] * 6
    assert set(plain) <= {"cpu", "gpu"}


ORDER: list[int] = []


@perdure.activity
async def ordered(ctx: perdure.ActivityContext, priority: int) -> None:
    ORDER.append(priority)


@perdure.orchestration
async def prioritised(ctx: perdure.OrchestrationContext, priorities: list[int]) -> None:
    await ctx.join([ctx.schedule_activity(ordered, p, priority=p) for p in priorities])


async def test_waiting_activities_run_highest_priority_first(
    storage_url: str,
) -> None:
    ORDER.clear()
    priorities = [0, 3, -2, 7, 3, 1]
    async with runtime(
        storage_url, [prioritised], [ordered], activity_concurrency=1
    ) as rt:
        state = await run_to_end(rt.client, "p", prioritised, priorities)
    assert state.status == "Completed", state.error
    assert sorted(priorities, reverse=True) == ORDER


RUNNING = {"now": 0, "max": 0}


@perdure.activity(concurrency=2)
async def narrow(ctx: perdure.ActivityContext, n: int) -> int:
    RUNNING["now"] += 1
    RUNNING["max"] = max(RUNNING["max"], RUNNING["now"])
    await asyncio.sleep(0.05)
    RUNNING["now"] -= 1
    return n


@perdure.orchestration
async def fan_out(ctx: perdure.OrchestrationContext, n: int) -> list[int]:
    return await ctx.join([ctx.schedule_activity(narrow, i) for i in range(n)])


async def test_a_concurrency_limit_holds_in_a_wide_runtime(storage_url: str) -> None:
    RUNNING.update(now=0, max=0)
    async with runtime(storage_url, [fan_out], [narrow], activity_concurrency=50) as rt:
        state = await run_to_end(rt.client, "f", fan_out, 8)
    assert state.output == list(range(8))
    assert RUNNING["max"] == 2


@perdure.orchestration
async def in_session(ctx: perdure.OrchestrationContext, n: int) -> list[str]:
    found = []
    for i in range(n):
        found.append(await ctx.schedule_activity("where", i, session="s-1"))
    return found


async def test_a_sessions_activities_stay_on_one_runtime(storage_url: str) -> None:
    async with (
        runtime(storage_url, [in_session], [where("a")]) as a,
        runtime(storage_url, [], [where("b")]),
    ):
        state = await run_to_end(a.client, "s", in_session, 6)
    assert state.status == "Completed", state.error
    assert len(set(state.output)) == 1


@perdure.orchestration
async def routed(ctx: perdure.OrchestrationContext, n: int) -> list[str]:
    first = ctx.schedule_activity("where", n, tag="gpu", session="s", priority=5)
    second = ctx.schedule_activity("where", n, priority=-1)
    return [await first, await second]


async def test_routing_options_replay_and_stay_out_of_history(
    storage_url: str,
) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        return outcome(await run_to_end(client, iid, routed, 1))

    summary, history = await check_replay(
        storage_url,
        [routed],
        [where("gpu")],
        scenario,
        "routed",
        activity_tags={"gpu"},
    )
    assert summary["output"] == ["gpu", "gpu"]
    # Routing is not history: the events are those of plain scheduling.
    assert [e.name for e in of_type(history, h.ActivityScheduled)] == ["where"] * 2


async def test_no_runtime_with_the_tag_means_the_activity_waits(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [routed], [where("cpu")]) as rt:
        await rt.client.start_orchestration("w", routed, 1)
        await asyncio.sleep(0.5)
        state = await rt.client.get_status("w")
        assert state is not None and state.status == "Running"
    async with runtime(
        storage_url, [routed], [where("gpu")], activity_tags={"gpu"}
    ) as rt:
        state = await rt.client.wait_for_orchestration("w", timeout=WAIT)
    # The untagged one may run on either.
    assert state.output[0] == "gpu"
