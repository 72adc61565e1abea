"""External events: buffering, FIFO per name, approval races, cancelled waits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _helpers import (
    WAIT,
    check_replay,
    custom_status,
    of_type,
    outcome,
    reached,
    runtime,
)

import perdure
from perdure import events as h


@perdure.orchestration
async def buffered(ctx: perdure.OrchestrationContext) -> list[object]:
    # Events "a" and "b" are raised before any wait for them exists.
    await ctx.schedule_wait("go")
    first = await ctx.schedule_wait("a")
    other = await ctx.wait_for_event("b")
    second = await ctx.schedule_wait("a")
    return [first, other, second]


@perdure.orchestration
async def approval(ctx: perdure.OrchestrationContext, timeout: float) -> str:
    ctx.set_custom_status("waiting")
    approved = ctx.schedule_wait("approve")
    expiry = ctx.schedule_timer(timeout)
    winner, value = await ctx.select2(approved, expiry)
    return f"approved by {value}" if winner == 0 else "expired"


@perdure.orchestration
async def cancelled_wait(ctx: perdure.OrchestrationContext) -> object:
    # The wait loses to the timer; it must not consume the later event.
    winner, _ = await ctx.select2(ctx.schedule_wait("x"), ctx.schedule_timer(0.01))
    ctx.set_custom_status(f"winner {winner}")
    return await ctx.schedule_wait("x")


ORCHS: list[Callable[..., Any]] = [buffered, approval, cancelled_wait]


async def buffered_scenario(client: perdure.Client, iid: str) -> object:
    await client.start_orchestration(iid, buffered)
    await reached(client, iid, h.EventWaitStarted)  # the wait for "go"
    for name, data in (("a", 1), ("b", {"k": "v"}), ("a", 2), ("go", None)):
        await client.raise_event(iid, name, data)
    return outcome(await client.wait_for_orchestration(iid, WAIT))


async def test_events_raised_early_are_buffered_fifo(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, [], buffered_scenario, "buf"
    )
    assert summary["status"] == "Completed", summary
    assert summary["output"] == [1, {"k": "v"}, 2]
    raised = of_type(history, h.EventRaised)
    assert [(e.name, e.data) for e in raised] == [
        ("a", 1),
        ("b", {"k": "v"}),
        ("a", 2),
        ("go", None),
    ]
    waits = of_type(history, h.EventWaitStarted)
    assert [w.name for w in waits] == ["go", "a", "b", "a"]


async def approve_scenario(client: perdure.Client, iid: str) -> object:
    await client.start_orchestration(iid, approval, 30.0)
    await custom_status(client, iid, "waiting")
    await client.raise_event(iid, "approve", "alice")
    return outcome(await client.wait_for_orchestration(iid, WAIT))


async def expire_scenario(client: perdure.Client, iid: str) -> object:
    await client.start_orchestration(iid, approval, 0.05)
    return outcome(await client.wait_for_orchestration(iid, WAIT))


async def test_approval_event_wins(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, [], approve_scenario, "approve"
    )
    assert summary["output"] == "approved by alice"
    timer = of_type(history, h.TimerCreated)[0]
    (cancel,) = of_type(history, h.TimerCancelled)
    assert cancel.source_event_id == timer.event_id
    assert not of_type(history, h.TimerFired)
    assert not of_type(history, h.EventWaitCancelled)


async def test_approval_timer_wins(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, [], expire_scenario, "expire"
    )
    assert summary["output"] == "expired"
    wait = of_type(history, h.EventWaitStarted)[0]
    (cancel,) = of_type(history, h.EventWaitCancelled)
    assert cancel.source_event_id == wait.event_id


async def test_late_event_after_expiry_is_ignored(storage_url: str) -> None:
    async with runtime(storage_url, ORCHS) as rt:
        state = await _expire(rt.client, "late")
        assert state.output == "expired"
        before = await rt.client.get_history("late")
        # The instance is finished; a late event is accepted and changes nothing.
        await rt.client.raise_event("late", "approve", "bob")
        await rt.client.start_orchestration("probe", approval, 0.0)
        await rt.client.wait_for_orchestration("probe", WAIT)
        assert await rt.client.get_history("late") == before
        late = await rt.client.get_status("late")
        assert late is not None and late.output == "expired"


async def _expire(client: perdure.Client, iid: str) -> perdure.OrchestrationState:
    await client.start_orchestration(iid, approval, 0.05)
    return await client.wait_for_orchestration(iid, WAIT)


async def cancelled_wait_scenario(client: perdure.Client, iid: str) -> object:
    await client.start_orchestration(iid, cancelled_wait)
    await custom_status(client, iid, "winner 1")
    await client.raise_event(iid, "x", "for the second wait")
    return outcome(await client.wait_for_orchestration(iid, WAIT))


async def test_cancelled_wait_consumes_nothing(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, [], cancelled_wait_scenario, "cw"
    )
    assert summary["output"] == "for the second wait"
    first, second = of_type(history, h.EventWaitStarted)
    (cancel,) = of_type(history, h.EventWaitCancelled)
    assert cancel.source_event_id == first.event_id
    (raised,) = of_type(history, h.EventRaised)
    assert raised.event_id > second.event_id
