"""Which scope owns which work (DESIGN §4.1-4.2), through the public API."""

from __future__ import annotations

from typing import Any

from _helpers import check_replay, of_type
from _scope_helpers import (
    ACTIVITIES,
    activity,
    finish,
    gated,
    has,
    history_until,
    release,
    runtime,
)

import perdure
from perdure import OrchestrationContext, durable_async, events as h


# ------------------------------------------------------ interleaving tasks
async def two_steps(ctx: OrchestrationContext, tag: str) -> str:
    first = await ctx.schedule_activity(gated, f"{tag}1")
    second = await ctx.schedule_activity(gated, f"{tag}2")
    return first + second


@perdure.orchestration(name="Interleave")
async def interleave(ctx: OrchestrationContext) -> list[str]:
    a = durable_async(ctx, two_steps(ctx, "a"))
    b = durable_async(ctx, two_steps(ctx, "b"))
    return await ctx.join(a, b)


async def interleave_scenario(client: perdure.Client, iid: str) -> None:
    await client.start_orchestration(iid, "Interleave")
    # b advances first, then a: their steps interleave in the history.
    await history_until(
        client, iid, lambda ev: has(ev, h.ActivityScheduled, input="b1")
    )
    release("b1")
    await history_until(
        client, iid, lambda ev: has(ev, h.ActivityScheduled, input="b2")
    )
    release("a1")
    await history_until(
        client, iid, lambda ev: has(ev, h.ActivityScheduled, input="a2")
    )
    release("b2")
    await history_until(
        client, iid, lambda ev: has(ev, h.ActivityCompleted, result="b2")
    )
    release("a2")
    state = await finish(client, iid)
    assert state.output == ["a1a2", "b1b2"]
    events = await client.get_history(iid)
    order = [e.input for e in of_type(events, h.ActivityScheduled)]
    assert order == ["a1", "b1", "b2", "a2"]
    scopes = {e.input: e.scope for e in of_type(events, h.ActivityScheduled)}
    assert scopes == {"a1": "0.1", "a2": "0.1", "b1": "0.2", "b2": "0.2"}


async def test_interleaved_tasks_attribute_work_to_their_own_scope(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [interleave]) as rt:
        await interleave_scenario(rt.client, "interleave")


async def test_interleaved_tasks_replay_identically(storage_url: str) -> None:
    await check_replay(
        storage_url,
        [interleave],
        ACTIVITIES,
        interleave_scenario,
        "interleave",
        open_runtime=runtime,
    )


# --------------------------------------------- the proposal's Example 5
async def inner_a(ctx: OrchestrationContext, setup: str) -> str:
    x = await ctx.schedule_activity(gated, "InnerA1")
    return await ctx.schedule_activity(gated, f"InnerA2:{x}")


async def outer_block(ctx: OrchestrationContext) -> str:
    setup = await ctx.schedule_activity("Echo", "setup")
    task_a = durable_async(ctx, inner_a(ctx, setup))
    # Created *after* task_a, by the outer task: it belongs to the outer task,
    # not to task_a (a global scope stack would get this wrong).
    act_b = ctx.schedule_activity("Gated", "InnerB")
    index, value = await ctx.select2(task_a, act_b)
    final: str = await ctx.schedule_activity("Echo", f"Finalize:{index}:{value}")
    return final


@perdure.orchestration(name="Example5")
async def example5(ctx: OrchestrationContext) -> Any:
    outer = durable_async(ctx, outer_block(ctx))
    timeout = ctx.schedule_timer(60)
    index, value = await ctx.select2(timeout, outer)
    return [index, value]


async def example5_scenario(client: perdure.Client, iid: str) -> None:
    await client.start_orchestration(iid, "Example5")
    await history_until(
        client, iid, lambda ev: has(ev, h.ActivityScheduled, input="InnerB")
    )
    release("InnerB")
    state = await finish(client, iid)
    assert state.output == [1, "Finalize:1:InnerB"]
    events = await client.get_history(iid)
    a1 = activity(events, "InnerA1")
    b = activity(events, "InnerB")
    assert (activity(events, "setup").scope, a1.scope, b.scope) == (
        "0.1",
        "0.1.1",
        "0.1",
    )
    assert activity(events, "Finalize:1:InnerB").scope == "0.1"
    timer = of_type(events, h.TimerCreated)[0]
    assert timer.scope == "0"
    # The winner completed and was never cancelled; the losing task's
    # activity and the outer select's timer were.
    assert has(events, h.ActivityCompleted, source_event_id=b.event_id)
    cancels = [(e.type, e.source_event_id) for e in events if "Cancel" in e.type]
    assert cancels == [
        ("ActivityCancelRequested", a1.event_id),
        ("TimerCancelled", timer.event_id),
    ]
    assert not any(
        e.input.startswith("InnerA2") for e in of_type(events, h.ActivityScheduled)
    )


async def test_example5_work_scheduled_after_a_task_belongs_to_the_parent(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [example5]) as rt:
        await example5_scenario(rt.client, "example5")


async def test_example5_replays_identically(storage_url: str) -> None:
    await check_replay(
        storage_url,
        [example5],
        ACTIVITIES,
        example5_scenario,
        "example5",
        open_runtime=runtime,
    )


# ----------------------------------------------- a task starts at creation
async def first_step(ctx: OrchestrationContext) -> str:
    value: str = await ctx.schedule_activity("Echo", "in-task")
    return value


@perdure.orchestration(name="StartsAtCreation")
async def starts_at_creation(ctx: OrchestrationContext) -> list[Any]:
    task = durable_async(ctx, first_step(ctx))
    after = ctx.schedule_activity("Echo", "after-task")
    return await ctx.join(task, after)


async def test_task_runs_to_its_first_await_when_created(storage_url: str) -> None:
    async with runtime(storage_url, [starts_at_creation]) as rt:
        await rt.client.start_orchestration("start", "StartsAtCreation")
        state = await finish(rt.client, "start")
        assert state.output == ["in-task", "after-task"]
        events = await rt.client.get_history("start")
        in_task, after = activity(events, "in-task"), activity(events, "after-task")
        assert in_task.event_id < after.event_id
        assert (in_task.scope, after.scope) == ("0.1", "0")


# ------------------------------------ direct await is the same as inline
async def pipeline(ctx: OrchestrationContext, value: str) -> str:
    first = await ctx.schedule_activity("Echo", value + ":1")
    timer = ctx.schedule_timer(0.01)
    await timer
    second: str = await ctx.schedule_activity("Echo", first + ":2")
    return second


@perdure.orchestration(name="Inline")
async def inline(ctx: OrchestrationContext, value: str) -> str:
    result = await pipeline(ctx, value)
    third: str = await ctx.schedule_activity("Echo", result + ":3")
    return third


@perdure.orchestration(name="Wrapped")
async def wrapped(ctx: OrchestrationContext, value: str) -> str:
    result = await durable_async(ctx, pipeline(ctx, value))
    third: str = await ctx.schedule_activity("Echo", result + ":3")
    return third


async def test_direct_await_of_a_task_equals_inline_code(storage_url: str) -> None:
    async with runtime(storage_url, [inline, wrapped]) as rt:
        await rt.client.start_orchestration("inline", "Inline", "v")
        await rt.client.start_orchestration("wrapped", "Wrapped", "v")
        a = await finish(rt.client, "inline")
        b = await finish(rt.client, "wrapped")
        assert a.output == b.output == "v:1:2:3"

        def shape(events: list[Any]) -> list[tuple[Any, ...]]:
            return [
                (e.type, e.event_id, e.source_event_id, getattr(e, "input", None))
                for e in events
                if e.type != "OrchestrationStarted"
            ]

        inline_events = await rt.client.get_history("inline")
        wrapped_events = await rt.client.get_history("wrapped")
        assert shape(inline_events) == shape(wrapped_events)
        # Only the scope tag differs: the task's own work is tagged "0.1".
        scopes = [
            getattr(e, "scope", None)
            for e in wrapped_events
            if e.type in ("ActivityScheduled", "TimerCreated")
        ]
        assert scopes == ["0.1", "0.1", "0.1", "0"]
        assert not [e for e in wrapped_events if "Cancel" in e.type]
