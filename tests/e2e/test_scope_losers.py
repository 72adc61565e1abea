"""Each kind of work inside a losing task is cancelled properly (DESIGN §4.3)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _helpers import of_type
from _scope_helpers import (
    RAN,
    activity,
    cancelled_ids,
    finish,
    has,
    history_until,
    release,
    runtime,
    saw_cancel,
    started,
)

import perdure
from perdure import OrchestrationContext, durable_async, events as h


async def step(ctx: OrchestrationContext, key: str) -> Any:
    return await ctx.schedule_activity("Gated", key)


# ------------------------------------------------- activity still queued
@perdure.orchestration(name="QueuedLoser")
async def queued_loser(ctx: OrchestrationContext) -> Any:
    blocker = ctx.schedule_activity("Gated", "blocker")
    task = durable_async(ctx, step(ctx, "queued"))
    index, _ = await ctx.select2(task, ctx.schedule_wait("go"))
    await blocker
    # With one activity slot, work is taken oldest first: had "queued" still
    # been in the queue, it would have run before this one.
    after = await ctx.schedule_activity("Echo", "after")
    return [index, after]


async def test_queued_activity_of_a_loser_never_runs(storage_url: str) -> None:
    async with runtime(storage_url, [queued_loser], activity_concurrency=1) as rt:
        await rt.client.start_orchestration("queued", "QueuedLoser")
        await started("blocker")
        await rt.client.raise_event("queued", "go")
        await history_until(
            rt.client, "queued", lambda ev: has(ev, h.ActivityCancelRequested)
        )
        release("blocker")
        state = await finish(rt.client, "queued")
        assert state.output == [1, "after"]
        assert RAN == ["blocker", "after"]
        events = await rt.client.get_history("queued")
        queued = activity(events, "queued")
        assert queued.scope == "0.1"
        assert cancelled_ids(events) == [queued.event_id]
        assert not [e for e in events if e.source_event_id == queued.event_id][1:]


# ----------------------------------------------------- activity running
@perdure.orchestration(name="RunningLoser")
async def running_loser(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, step(ctx, "running"))
    index, value = await ctx.select2(task, ctx.schedule_wait("go"))
    finish_data = await ctx.schedule_wait("finish")
    return [index, value, task.cancelled(), finish_data]


async def test_running_activity_of_a_loser_is_told_and_its_result_ignored(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [running_loser]) as rt:
        await rt.client.start_orchestration("running", "RunningLoser")
        await started("running")
        await rt.client.raise_event("running", "go", "won")
        # The activity observes the cancellation (it then returns "late:...").
        await saw_cancel("running")
        cancelled = await history_until(
            rt.client, "running", lambda ev: has(ev, h.ActivityCancelRequested)
        )
        await rt.client.raise_event("running", "finish", "done")
        state = await finish(rt.client, "running")
        assert state.output == [1, "won", True, "done"]
        events = await rt.client.get_history("running")
        running = activity(events, "running")
        cancel = next(e for e in cancelled if e.type == "ActivityCancelRequested")
        assert cancel.source_event_id == running.event_id
        # A late completion may be recorded after the cancel, never before it.
        answers = [e for e in events if e.source_event_id == running.event_id]
        assert answers[0] == cancel
        assert all(e.event_id > cancel.event_id for e in answers[1:])
        assert not has(events, h.ActivityCompleted, result="running")


# ---------------------------------------------------------------- timer
async def sleepy(ctx: OrchestrationContext) -> Any:
    # Long enough that "go" wins even on a loaded machine (the test then
    # waits until the cancelled timer's due time has passed).
    await ctx.schedule_timer(2.0)
    return await ctx.schedule_activity("Echo", "after-timer")


@perdure.orchestration(name="TimerLoser")
async def timer_loser(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, sleepy(ctx))
    index, _ = await ctx.select2(task, ctx.schedule_wait("go"))
    return [index, await ctx.schedule_wait("finish")]


async def test_cancelled_timer_of_a_loser_causes_no_later_turn(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [timer_loser]) as rt:
        client = rt.client
        await client.start_orchestration("timer", "TimerLoser")
        await history_until(
            client, "timer", lambda ev: has(ev, h.EventWaitStarted, name="go")
        )
        await client.raise_event("timer", "go")
        # The next wait is open once the select's turn is committed.
        events = await history_until(
            client, "timer", lambda ev: has(ev, h.EventWaitStarted, name="finish")
        )
        timer = of_type(events, h.TimerCreated)[0]
        assert timer.scope == "0.1"
        assert cancelled_ids(events) == [timer.event_id]
        # Let the timer's due time pass (plus a margin for a poll cycle).
        await asyncio.sleep(max(timer.fire_at - time.time(), 0.0) + 0.3)
        assert len(await client.get_history("timer")) == len(events)
        await client.raise_event("timer", "finish", "ok")
        state = await finish(rt.client, "timer")
        assert state.output == [1, "ok"]
        events = await client.get_history("timer")
        assert not has(events, h.TimerFired)
        assert "after-timer" not in RAN


# ----------------------------------------------------------------- wait
async def waiter(ctx: OrchestrationContext) -> Any:
    return await ctx.schedule_wait("signal")


@perdure.orchestration(name="WaitLoser")
async def wait_loser(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, waiter(ctx))
    index, _ = await ctx.select2(task, ctx.schedule_wait("go"))
    # The cancelled wait consumed nothing: this one gets the next "signal".
    return [index, await ctx.schedule_wait("signal")]


async def test_cancelled_wait_of_a_loser_consumes_no_event(storage_url: str) -> None:
    async with runtime(storage_url, [wait_loser]) as rt:
        client = rt.client
        await client.start_orchestration("wait", "WaitLoser")
        await history_until(
            client, "wait", lambda ev: has(ev, h.EventWaitStarted, name="go")
        )
        await client.raise_event("wait", "go")
        events = await history_until(
            client, "wait", lambda ev: has(ev, h.EventWaitCancelled)
        )
        await client.raise_event("wait", "signal", "payload")
        state = await finish(rt.client, "wait")
        assert state.output == [1, "payload"]
        events = await client.get_history("wait")
        first, second = [
            e for e in of_type(events, h.EventWaitStarted) if e.name == "signal"
        ]
        assert (first.scope, second.scope) == ("0.1", "0")
        assert cancelled_ids(events) == [first.event_id]


# ----------------------------------------------------- sub-orchestration
async def delegate(ctx: OrchestrationContext) -> Any:
    return await ctx.schedule_sub_orchestration("Nest", "leaf-never")


@perdure.orchestration(name="SubLoser")
async def sub_loser(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, delegate(ctx))
    index, value = await ctx.select2(task, ctx.schedule_wait("go"))
    return [index, value]


async def test_sub_orchestration_of_a_loser_is_cancelled_recursively(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [sub_loser]) as rt:
        client = rt.client
        await client.start_orchestration("sub", "SubLoser")
        events = await history_until(
            client, "sub", lambda ev: has(ev, h.SubOrchestrationScheduled)
        )
        child = of_type(events, h.SubOrchestrationScheduled)[0]
        assert child.scope == "0.1"
        child_events = await history_until(
            client, child.instance_id, lambda ev: has(ev, h.SubOrchestrationScheduled)
        )
        leaf = of_type(child_events, h.SubOrchestrationScheduled)[0].instance_id
        await history_until(client, leaf, lambda ev: has(ev, h.EventWaitStarted))
        await client.raise_event("sub", "go", "won")
        state = await finish(rt.client, "sub")
        assert state.output == [1, "won"]
        events = await client.get_history("sub")
        assert cancelled_ids(events) == [child.event_id]
        assert has(
            events, h.SubOrchestrationCancelRequested, source_event_id=child.event_id
        )
        await finish(rt.client, child.instance_id, "Cancelled")
        await finish(rt.client, leaf, "Cancelled")
        child_events = await client.get_history(child.instance_id)
        assert has(child_events, h.OrchestrationCancelRequested)
        assert has(child_events, h.SubOrchestrationCancelRequested)
        leaf_events = await client.get_history(leaf)
        assert has(leaf_events, h.EventWaitCancelled)
        assert leaf_events[-1].type == "OrchestrationCancelled"
