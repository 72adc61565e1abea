"""select/join over tasks and every other kind of durable future (DESIGN §4.4)."""

from __future__ import annotations

from typing import Any

import pytest
from _helpers import check_replay, of_type
from _scope_helpers import (
    ACTIVITIES,
    RAN,
    activity,
    cancelled_ids,
    finish,
    gated,
    has,
    history_until,
    release,
    runtime,
    saw_cancel,
    started,
)

import perdure
from perdure import ActivityFailed, OrchestrationContext, durable_async, events as h


async def two_gated(ctx: OrchestrationContext, key: str) -> str:
    first = await ctx.schedule_activity(gated, key)
    return await ctx.schedule_activity(gated, first + "-next")


async def fails_after_a_step(ctx: OrchestrationContext) -> None:
    await ctx.schedule_activity("Echo", "b-step")
    await ctx.schedule_activity("Boom", "card declined")


# ------------------------------------------------------ join fail-fast
@perdure.orchestration(name="JoinFailFast")
async def join_fail_fast(ctx: OrchestrationContext) -> Any:
    slow = durable_async(ctx, two_gated(ctx, "slowA"))
    failing = durable_async(ctx, fails_after_a_step(ctx))
    act = ctx.schedule_activity("Gated", "slowC")
    timer = ctx.schedule_timer(60)
    try:
        await ctx.join(slow, failing, act, timer)
    except ActivityFailed as exc:
        return [str(exc), slow.cancelled(), act.cancelled(), timer.cancelled()]
    return "unreachable"


async def join_fail_fast_scenario(client: perdure.Client, iid: str) -> None:
    await client.start_orchestration(iid, "JoinFailFast")
    state = await finish(client, iid)
    message, *flags = state.output
    assert "card declined" in message
    assert flags == [True, True, True]
    events = await client.get_history(iid)
    boom = activity(events, "card declined")
    assert boom.scope == "0.2"
    failed = next(e for e in events if e.type == "ActivityFailed")
    assert failed.source_event_id == boom.event_id
    timer = of_type(events, h.TimerCreated)[0]
    expected = [activity(events, "slowA").event_id, activity(events, "slowC").event_id]
    assert cancelled_ids(events) == [*expected, timer.event_id]
    # Every cancel event comes after the failure that caused it.
    assert all(e.event_id > failed.event_id for e in events if "Cancel" in e.type)
    assert activity(events, "b-step").event_id not in cancelled_ids(events)


async def test_join_fail_fast_cancels_unfinished_siblings(storage_url: str) -> None:
    async with runtime(storage_url, [join_fail_fast]) as rt:
        await join_fail_fast_scenario(rt.client, "failfast")


async def test_join_fail_fast_replays_identically(storage_url: str) -> None:
    await check_replay(
        storage_url,
        [join_fail_fast],
        ACTIVITIES,
        join_fail_fast_scenario,
        "failfast",
        open_runtime=runtime,
    )


# --------------------------------------- return_exceptions cancels nothing
@perdure.orchestration(name="JoinCollect")
async def join_collect(ctx: OrchestrationContext) -> Any:
    failing = durable_async(ctx, fails_after_a_step(ctx))
    slow = durable_async(ctx, two_gated(ctx, "collectA"))
    timer = ctx.schedule_timer(0.05)
    results = await ctx.join(failing, slow, timer, return_exceptions=True)
    return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]


async def test_join_return_exceptions_cancels_nothing(storage_url: str) -> None:
    async with runtime(storage_url, [join_collect]) as rt:
        await rt.client.start_orchestration("collect", "JoinCollect")
        await history_until(rt.client, "collect", lambda ev: has(ev, h.ActivityFailed))
        release("collectA")
        await history_until(
            rt.client,
            "collect",
            lambda ev: has(ev, h.ActivityScheduled, input="collectA-next"),
        )
        release("collectA-next")
        state = await finish(rt.client, "collect")
        assert state.output == ["ActivityFailed", "collectA-next", None]
        events = await rt.client.get_history("collect")
        assert cancelled_ids(events) == []
        assert has(events, h.TimerFired)


# ------------------------- one select over task, activity, timer and wait
async def task_branch(ctx: OrchestrationContext) -> str:
    return "task:" + await ctx.schedule_activity(gated, "in-task")


@perdure.orchestration(name="MixedSelect")
async def mixed_select(ctx: OrchestrationContext, timer_delay: float) -> Any:
    task = durable_async(ctx, task_branch(ctx))
    act = ctx.schedule_activity("Gated", "plain")
    timer = ctx.schedule_timer(timer_delay)
    wait = ctx.schedule_wait("signal")
    index, value = await ctx.select(task, act, timer, wait)
    return [index, value]


@pytest.mark.parametrize("winner", ["task", "activity", "timer", "wait"])
async def test_select_mixes_every_kind_of_future(storage_url: str, winner: str) -> None:
    async with runtime(storage_url, [mixed_select]) as rt:
        client = rt.client
        delay = 0.05 if winner == "timer" else 60.0
        await client.start_orchestration("mixed", "MixedSelect", delay)
        if winner != "timer":  # a quick timer may win before they start
            await started("in-task")
            await started("plain")
        if winner == "task":
            release("in-task")
        elif winner == "activity":
            release("plain")
        elif winner == "wait":
            await client.raise_event("mixed", "signal", "sig")
        state = await finish(rt.client, "mixed")
        index = ["task", "activity", "timer", "wait"].index(winner)
        value = {"task": "task:in-task", "activity": "plain", "timer": None}
        assert state.output == [index, value.get(winner, "sig")]
        events = await client.get_history("mixed")
        ids = {
            "task": activity(events, "in-task").event_id,
            "activity": activity(events, "plain").event_id,
            "timer": of_type(events, h.TimerCreated)[0].event_id,
            "wait": of_type(events, h.EventWaitStarted)[0].event_id,
        }
        assert activity(events, "in-task").scope == "0.1"
        losers = [ids[k] for k in ids if k != winner]
        assert cancelled_ids(events) == losers
        won = {"task": "in-task", "activity": "plain"}.get(winner)
        for key in ("in-task", "plain"):
            if key in RAN and key != won:
                await saw_cancel(key)


# -------------------------------------------------- nested select in a task
async def racer(ctx: OrchestrationContext) -> Any:
    quick = durable_async(ctx, two_gated(ctx, "quick"))
    deadline = ctx.schedule_timer(60)
    index, value = await ctx.select2(quick, deadline)
    return f"inner:{index}:{value}"


@perdure.orchestration(name="NestedSelect")
async def nested_select(ctx: OrchestrationContext) -> Any:
    inner = durable_async(ctx, racer(ctx))
    other = durable_async(ctx, two_gated(ctx, "other"))
    index, value = await ctx.select2(inner, other)
    return [index, value]


async def nested_select_scenario(client: perdure.Client, iid: str) -> None:
    await client.start_orchestration(iid, "NestedSelect")
    await started("quick")
    await started("other")
    release("quick")
    await history_until(
        client, iid, lambda ev: has(ev, h.ActivityScheduled, input="quick-next")
    )
    release("quick-next")
    state = await finish(client, iid)
    assert state.output == [0, "inner:0:quick-next"]
    events = await client.get_history(iid)
    scopes = {e.input: e.scope for e in of_type(events, h.ActivityScheduled)}
    assert scopes == {"quick": "0.1.1", "quick-next": "0.1.1", "other": "0.2"}
    timer = of_type(events, h.TimerCreated)[0]
    assert timer.scope == "0.1"
    # The inner select cancelled its timer; the outer one cancelled "other".
    assert cancelled_ids(events) == [timer.event_id, activity(events, "other").event_id]


async def test_nested_select_inside_a_task(storage_url: str) -> None:
    async with runtime(storage_url, [nested_select]) as rt:
        await nested_select_scenario(rt.client, "nested")


async def test_nested_select_replays_identically(storage_url: str) -> None:
    await check_replay(
        storage_url,
        [nested_select],
        ACTIVITIES,
        nested_select_scenario,
        "nested",
        open_runtime=runtime,
    )
