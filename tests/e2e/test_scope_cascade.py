"""Cancellation cascades through nested scopes (DESIGN §4.3), end to end."""

from __future__ import annotations

from typing import Any

from _helpers import check_replay, of_type
from _scope_helpers import (
    ACTIVITIES,
    activity,
    cancelled_ids,
    finish,
    gated,
    has,
    history_until,
    open_work,
    release,
    runtime,
    saw_cancel,
    started,
)

import perdure
from perdure import Cancelled, OrchestrationContext, durable_async, events as h


# --------------------------------------- three levels, losing a select
async def leftover(ctx: OrchestrationContext) -> str:
    ctx.schedule_timer(60)  # never awaited: outlives this (finished) task
    return "done"


async def level3(ctx: OrchestrationContext) -> Any:
    await ctx.schedule_activity("Echo", "L3done")
    sub = ctx.schedule_sub_orchestration("WaitForever", "never")
    act = ctx.schedule_activity("Gated", "L3act")
    timer = ctx.schedule_timer(60)
    return await ctx.join(sub, act, timer)


async def level2(ctx: OrchestrationContext) -> Any:
    await ctx.schedule_activity("Echo", "L2done")
    finished = durable_async(ctx, leftover(ctx))
    timer = ctx.schedule_timer(60)
    wait = ctx.schedule_wait("never2")
    deeper = durable_async(ctx, level3(ctx))
    return await ctx.join(finished, timer, wait, deeper)


async def level1(ctx: OrchestrationContext) -> Any:
    await ctx.schedule_activity("Echo", "L1done")
    act = ctx.schedule_activity("Gated", "L1act")
    nested = durable_async(ctx, level2(ctx))
    return await ctx.join(act, nested)


@perdure.orchestration(name="Cascade")
async def cascade(ctx: OrchestrationContext) -> Any:
    outer = durable_async(ctx, level1(ctx))
    index, value = await ctx.select2(outer, ctx.schedule_wait("stop"))
    return [index, value, outer.cancelled()]


async def cascade_scenario(client: perdure.Client, iid: str) -> None:
    await client.start_orchestration(iid, "Cascade")
    events = await history_until(
        client, iid, lambda ev: has(ev, h.ActivityScheduled, input="L3act")
    )
    child_id = of_type(events, h.SubOrchestrationScheduled)[0].instance_id
    await history_until(client, child_id, lambda ev: has(ev, h.EventWaitStarted))
    await started("L1act")
    await started("L3act")
    before = await client.get_history(iid)
    await client.raise_event(iid, "stop", "now")
    state = await finish(client, iid)
    assert state.output == [1, "now", True]
    events = await client.get_history(iid)

    # Scopes: one level of the path per level of nesting.
    scopes = {e.input: e.scope for e in of_type(events, h.ActivityScheduled)}
    assert scopes == {
        "L1done": "0.1",
        "L1act": "0.1",
        "L2done": "0.1.1",
        "L3done": "0.1.1.2",
        "L3act": "0.1.1.2",
    }
    sub = of_type(events, h.SubOrchestrationScheduled)[0]
    timers = of_type(events, h.TimerCreated)
    # leftover (task 0.1.1.1) finished but left its timer running.
    assert [t.scope for t in timers] == ["0.1.1.1", "0.1.1", "0.1.1.2"]
    wait2 = next(e for e in of_type(events, h.EventWaitStarted) if e.name == "never2")
    assert (sub.scope, wait2.scope) == ("0.1.1.2", "0.1.1")

    # Exactly the unfinished work is cancelled, depth-first in creation
    # order; the completed Echo steps are left alone.
    leftover_timer, l2_timer, l3_timer = timers
    expected = [
        activity(events, "L1act").event_id,
        leftover_timer.event_id,
        l2_timer.event_id,
        wait2.event_id,
        sub.event_id,
        activity(events, "L3act").event_id,
        l3_timer.event_id,
    ]
    assert cancelled_ids(events) == expected
    stop = next(e for e in of_type(before, h.EventWaitStarted) if e.name == "stop")
    assert sorted(expected) == sorted(set(open_work(before)) - {stop.event_id})
    for done in ("L1done", "L2done", "L3done"):
        assert has(
            events, h.ActivityCompleted, source_event_id=activity(events, done).event_id
        )
        assert activity(events, done).event_id not in cancelled_ids(events)
    kinds = {e.source_event_id: e.type for e in events if e.role == "cancel"}
    assert kinds[sub.event_id] == "SubOrchestrationCancelRequested"
    assert kinds[wait2.event_id] == "EventWaitCancelled"
    assert kinds[l3_timer.event_id] == "TimerCancelled"
    # Cancel events come after the turn's EventRaised, before the end.
    raised = of_type(events, h.EventRaised)[0].event_id
    assert all(raised < e.event_id < len(events) for e in events if e.role == "cancel")

    # The cancellation reached the running activities and the child.
    await saw_cancel("L1act")
    await saw_cancel("L3act")
    await finish(client, child_id, "Cancelled")


async def test_losing_outer_task_cancels_unfinished_work_three_levels_deep(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [cascade]) as rt:
        await cascade_scenario(rt.client, "cascade")


async def test_cascade_replays_identically(storage_url: str) -> None:
    await check_replay(
        storage_url,
        [cascade],
        ACTIVITIES,
        cascade_scenario,
        "cascade",
        open_runtime=runtime,
    )


# ------------------------------------------ DurableFuture.cancel() on a task
async def gated_step(ctx: OrchestrationContext, key: str) -> str:
    return await ctx.schedule_activity(gated, key)


async def cancellable(ctx: OrchestrationContext) -> str:
    await ctx.schedule_activity("Echo", "c-done")
    inner = durable_async(ctx, gated_step(ctx, "c-inner"))
    await ctx.join(inner, ctx.schedule_timer(60))
    return "unreachable"


@perdure.orchestration(name="ExplicitCancel")
async def explicit_cancel(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, cancellable(ctx))
    await ctx.schedule_wait("cancel-now")
    first = task.cancel("user said so")
    second = task.cancel()
    try:
        await task
        outcome = "completed"
    except Cancelled:
        outcome = "cancelled"
    after = await ctx.schedule_activity("Echo", "root-continues")
    return [first, second, task.done(), task.cancelled(), outcome, after]


async def test_cancel_on_a_task_future_cancels_its_scope(storage_url: str) -> None:
    async with runtime(storage_url, [explicit_cancel]) as rt:
        await rt.client.start_orchestration("explicit", "ExplicitCancel")
        await history_until(
            rt.client,
            "explicit",
            lambda ev: has(ev, h.ActivityScheduled, input="c-inner"),
        )
        await started("c-inner")
        await rt.client.raise_event("explicit", "cancel-now")
        state = await finish(rt.client, "explicit")
        assert state.output == [True, False, True, True, "cancelled", "root-continues"]
        events = await rt.client.get_history("explicit")
        inner = activity(events, "c-inner")
        timer = of_type(events, h.TimerCreated)[0]
        assert inner.scope == "0.1.1"
        assert cancelled_ids(events) == [inner.event_id, timer.event_id]
        reasons = {e.reason for e in events if e.role == "cancel"}
        assert reasons == {"user said so"}
        await saw_cancel("c-inner")


# ----------------------------------------- cancel_instance reaches every scope
async def branch(ctx: OrchestrationContext, tag: str) -> Any:
    await ctx.schedule_activity("Echo", f"{tag}-done")
    act = ctx.schedule_activity("Gated", f"{tag}-act")
    timer = ctx.schedule_timer(60)
    wait = ctx.schedule_wait(f"{tag}-never")
    sub = ctx.schedule_sub_orchestration("Nest", f"{tag}-leaf")
    return await ctx.join(act, timer, wait, sub)


@perdure.orchestration(name="CancelInstance")
async def cancel_instance(ctx: OrchestrationContext) -> Any:
    left = durable_async(ctx, branch(ctx, "left"))
    right = durable_async(ctx, branch(ctx, "right"))
    root = ctx.schedule_activity("Gated", "root-act")
    return await ctx.join(left, right, root)


async def test_cancel_instance_cancels_every_scopes_work(storage_url: str) -> None:
    async with runtime(storage_url, [cancel_instance]) as rt:
        client = rt.client
        await client.start_orchestration("doomed", "CancelInstance")
        events = await history_until(
            client,
            "doomed",
            lambda ev: len(of_type(ev, h.SubOrchestrationScheduled)) == 2,
        )
        children = [e.instance_id for e in of_type(events, h.SubOrchestrationScheduled)]
        grandchildren = []
        for child in children:
            child_events = await history_until(
                client, child, lambda ev: has(ev, h.SubOrchestrationScheduled)
            )
            grandchildren.append(
                of_type(child_events, h.SubOrchestrationScheduled)[0].instance_id
            )
        for leaf in grandchildren:
            await history_until(client, leaf, lambda ev: has(ev, h.EventWaitStarted))
        for key in ("left-act", "right-act", "root-act"):
            await started(key)
        before = await client.get_history("doomed")
        await client.cancel_instance("doomed", "operator")
        state = await finish(rt.client, "doomed", "Cancelled")
        assert state.error is not None and "operator" in state.error.message
        events = await client.get_history("doomed")
        assert sorted(cancelled_ids(events)) == sorted(open_work(before))
        assert len(cancelled_ids(events)) == 9  # 2 x (act, timer, wait, sub) + root
        scopes = {
            e.scope
            for e in events
            if isinstance(e, h.ActivityScheduled | h.TimerCreated | h.EventWaitStarted)
            and e.event_id in cancelled_ids(events)
        }
        assert scopes == {"0", "0.1", "0.2"}
        for done in ("left-done", "right-done"):
            assert activity(events, done).event_id not in cancelled_ids(events)
        assert events[-1].type == "OrchestrationCancelled"
        for key in ("left-act", "right-act", "root-act"):
            await saw_cancel(key)
        for instance in children + grandchildren:
            await finish(rt.client, instance, "Cancelled")


# ---------------------------- only the cancelled scope's own work is cancelled
async def joins_parent_work(ctx: OrchestrationContext, parents: Any) -> Any:
    return await ctx.join(parents, ctx.schedule_wait("never"))


@perdure.orchestration(name="ForeignFuture")
async def foreign_future(ctx: OrchestrationContext) -> Any:
    parents = ctx.schedule_activity("Gated", "parents")
    task = durable_async(ctx, joins_parent_work(ctx, parents))
    index, _ = await ctx.select2(task, ctx.schedule_wait("go"))
    return [index, await parents]


async def test_cancelled_task_leaves_parent_work_it_awaited_alone(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [foreign_future]) as rt:
        await rt.client.start_orchestration("foreign", "ForeignFuture")
        await started("parents")
        await rt.client.raise_event("foreign", "go")
        events = await history_until(
            rt.client, "foreign", lambda ev: has(ev, h.EventWaitCancelled)
        )
        release("parents")
        state = await finish(rt.client, "foreign")
        assert state.output == [1, "parents"]
        events = await rt.client.get_history("foreign")
        never = next(
            e for e in of_type(events, h.EventWaitStarted) if e.name == "never"
        )
        assert cancelled_ids(events) == [never.event_id]
