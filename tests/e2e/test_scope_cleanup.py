"""Code inside a cancelled task: cleanup runs, new durable work cannot start.

Orchestration code cannot record anything durable from a cancelled task
(every scheduling call and ``set_custom_status`` raise `Cancelled` there),
so it reports to the test through the module-level `NOTES` list.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any

from _helpers import check_replay, of_type
from _scope_helpers import (
    ACTIVITIES,
    NOTES,
    cancelled_ids,
    finish,
    has,
    history_until,
    runtime,
    schedules_work,
)

import perdure
from perdure import Cancelled, OrchestrationContext, durable_async, events as h


def note(ctx: OrchestrationContext, text: str) -> None:
    if not ctx.is_replaying:
        NOTES.append(text)


async def nothing(ctx: OrchestrationContext) -> None:
    return None


# -------------------------------------------- finally runs; no new work
async def with_cleanup(ctx: OrchestrationContext) -> str:
    done = ctx.schedule_activity("Echo", "pre")
    await done
    try:
        await ctx.schedule_wait("never")
        return "unreachable"
    finally:
        note(ctx, "finally")
        attempts: list[tuple[str, Any]] = [
            ("activity", lambda: ctx.schedule_activity("Echo", "in-finally")),
            ("timer", lambda: ctx.schedule_timer(1)),
            ("wait", lambda: ctx.schedule_wait("x")),
            ("sub", lambda: ctx.schedule_sub_orchestration("WaitForever", "x")),
            ("status", lambda: ctx.set_custom_status("from finally")),
            ("detached", lambda: ctx.start_orchestration("WaitForever", "det", "x")),
        ]
        for what, attempt in attempts:
            try:
                attempt()
                note(ctx, f"{what} allowed")
            except Cancelled:
                note(ctx, f"{what} raised")
        coro = nothing(ctx)
        try:
            durable_async(ctx, coro)
            note(ctx, "task allowed")
        except Cancelled:
            note(ctx, "task raised")
        try:
            await done  # already completed, but this task is cancelled
            note(ctx, "await allowed")
        except Cancelled:
            note(ctx, "await raised")


@perdure.orchestration(name="Cleanup")
async def cleanup(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, with_cleanup(ctx))
    index, value = await ctx.select2(task, ctx.schedule_wait("go"))
    ctx.set_custom_status("root can still write")
    return [index, value, task.cancelled()]


async def cleanup_scenario(client: perdure.Client, iid: str) -> None:
    await client.start_orchestration(iid, "Cleanup")
    await history_until(
        client, iid, lambda ev: has(ev, h.EventWaitStarted, name="never")
    )
    await client.raise_event(iid, "go", "won")
    state = await finish(client, iid)
    assert state.output == [1, "won", True]
    assert state.custom_status == "root can still write"
    assert NOTES == [
        "finally",
        "activity raised",
        "timer raised",
        "wait raised",
        "sub raised",
        "status raised",
        "detached raised",
        "task raised",
        "await raised",
    ]
    events = await client.get_history(iid)
    raised = of_type(events, h.EventRaised)[0]
    after = [e.type for e in events if e.event_id > raised.event_id]
    # A turn writes its new actions, then its cancellations (DESIGN §2.1).
    assert after == [
        "CustomStatusUpdated",
        "EventWaitCancelled",
        "OrchestrationCompleted",
    ]
    assert not has(events, h.OrchestrationChained)


async def test_finally_runs_and_cancelled_task_cannot_start_work(
    storage_url: str,
) -> None:
    async with runtime(storage_url, [cleanup]) as rt:
        await cleanup_scenario(rt.client, "cleanup")


async def test_cleanup_replays_identically(storage_url: str) -> None:
    await check_replay(
        storage_url,
        [cleanup],
        ACTIVITIES,
        cleanup_scenario,
        "cleanup",
        open_runtime=runtime,
    )


# ------------------------------- swallowing Cancelled changes nothing
async def swallower(ctx: OrchestrationContext) -> str:
    try:
        await ctx.schedule_wait("never")
    except Cancelled:
        note(ctx, "swallowed")
    try:
        await ctx.schedule_activity("Echo", "after-swallow")
    except Cancelled:
        note(ctx, "schedule after swallow raised")
    return "value after swallowing"  # discarded: the task ends cancelled


async def stubborn(ctx: OrchestrationContext) -> str:
    never = ctx.schedule_wait("never-either")
    # Keeps swallowing: the engine must still stop it. (It awaits the same
    # future again; calling schedule_wait in the loop would spin forever
    # without yielding, since every scheduling call raises Cancelled.)
    while True:
        try:
            await never
        except Cancelled:
            note(ctx, "stubborn")
        except BaseException:
            # A forced close runs like replayed code (is_replaying is true),
            # so record it directly.
            NOTES.append("stubborn closed")
            raise


@perdure.orchestration(name="Swallow")
async def swallow(ctx: OrchestrationContext) -> Any:
    polite = durable_async(ctx, swallower(ctx))
    rude = durable_async(ctx, stubborn(ctx))
    both = ctx.join(polite, rude)
    index, value = await ctx.select2(both, ctx.schedule_wait("go"))
    outcome = []
    for task in (polite, rude):
        try:
            outcome.append(task.result())
        except Cancelled:
            outcome.append("cancelled")
    return [index, value, outcome]


async def test_swallowed_cancelled_schedules_nothing(storage_url: str) -> None:
    async with runtime(storage_url, [swallow]) as rt:
        await rt.client.start_orchestration("swallow", "Swallow")
        await history_until(
            rt.client, "swallow", lambda ev: has(ev, h.EventWaitStarted, name="go")
        )
        before = await rt.client.get_history("swallow")
        await rt.client.raise_event("swallow", "go", "won")
        state = await finish(rt.client, "swallow")
        assert state.output == [1, "won", ["cancelled", "cancelled"]]
        assert NOTES[:2] == ["swallowed", "schedule after swallow raised"]
        assert NOTES[2:].count("stubborn") >= 1
        assert NOTES[-1] == "stubborn closed"
        events = await rt.client.get_history("swallow")
        scheduled = [e.event_id for e in events if schedules_work(e)]
        assert scheduled == [e.event_id for e in before if schedules_work(e)]
        waits = {e.name: e.event_id for e in of_type(events, h.EventWaitStarted)}
        assert cancelled_ids(events) == [waits["never"], waits["never-either"]]
        assert not has(events, h.ActivityScheduled)


# ------------------------- discarded drivers do not run finally as live code
async def guarded(ctx: OrchestrationContext) -> str:
    try:
        value: str = await ctx.schedule_wait("end")
        return value
    finally:
        note(ctx, "guarded finally")


@perdure.orchestration(name="Discarded")
async def discarded(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, guarded(ctx))
    for step in range(3):
        await ctx.schedule_activity("Echo", f"step{step}")
    return await task


async def test_discarded_driver_does_not_run_finally_as_live_code(
    storage_url: str,
) -> None:
    # With no instance cache every turn builds a new driver and drops the
    # old one, whose suspended task is closed by the garbage collector. That
    # must not look like live orchestration code (is_replaying stays true).
    async with runtime(storage_url, [discarded], instance_cache_size=0) as rt:
        await rt.client.start_orchestration("discarded", "Discarded")
        await history_until(
            rt.client,
            "discarded",
            lambda ev: has(ev, h.ActivityCompleted, result="step2"),
        )
        gc.collect()
        assert NOTES == []
        await rt.client.raise_event("discarded", "end", "bye")
        state = await finish(rt.client, "discarded")
        assert state.output == "bye"
        gc.collect()
        assert NOTES == ["guarded finally"]


# ------------------ a task that will not stop is closed, even by user code
async def clinging(ctx: OrchestrationContext) -> None:
    never = ctx.schedule_wait("cling")
    try:
        while True:
            with contextlib.suppress(Cancelled):
                await never
    finally:
        await never  # while being force-closed: must not wedge the driver


@perdure.orchestration(name="Clinging")
async def clinging_root(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, clinging(ctx))
    await ctx.schedule_activity("Echo", "before-cancel")
    cancelled = task.cancel("enough")  # explicit cancel, from the root's step
    return [cancelled, task.cancelled()]


async def test_task_swallowing_cancellation_is_force_closed(storage_url: str) -> None:
    async with runtime(storage_url, [clinging_root]) as rt:
        await rt.client.start_orchestration("clinging", "Clinging")
        state = await finish(rt.client, "clinging")
        assert state.output == [True, True]
        events = await rt.client.get_history("clinging")
        assert [e.type for e in events if "Cancel" in e.type] == ["EventWaitCancelled"]
