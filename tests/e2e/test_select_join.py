"""select / join over activities and timers: winners, losers, failures."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from _helpers import (
    Scenario,
    check_replay,
    eventually,
    of_type,
    outcome,
    run_to_end,
    runtime,
)

import perdure
from perdure import events as h

#: What `slow` saw, per instance: ["started", "cancelled"].
SEEN: dict[str, list[str]] = {}


@perdure.activity
async def slow(ctx: perdure.ActivityContext, tag: str) -> str:
    # Never completes on its own: it only returns once told it was cancelled,
    # so every race against it has one possible winner.
    SEEN.setdefault(ctx.instance_id, []).append("started")
    await ctx.cancelled
    assert ctx.is_cancelled()
    SEEN[ctx.instance_id].append("cancelled")
    return f"too late {tag}"


@perdure.activity
async def quick(ctx: perdure.ActivityContext, tag: str) -> str:
    return f"quick {tag}"


@perdure.activity
def failing(ctx: perdure.ActivityContext, message: str) -> None:
    raise RuntimeError(message)


@perdure.orchestration
async def race(ctx: perdure.OrchestrationContext, kind: str) -> object:
    if kind == "activity":
        return list(await ctx.select2(ctx.schedule_activity(slow, "a"), quick_f(ctx)))
    if kind == "timer":
        return list(
            await ctx.select(ctx.schedule_timer(0.05), ctx.schedule_activity(slow, "t"))
        )
    if kind == "done":
        # Both already complete when select is called: the lowest index wins.
        a, b = quick_f(ctx, "a"), quick_f(ctx, "b")
        await a
        await b
        return list(await ctx.select(b, a))
    try:
        await ctx.select(
            ctx.schedule_activity(failing, "boom"), ctx.schedule_activity(slow, "f")
        )
    except perdure.ActivityFailed as exc:
        return ["raised", exc.name, exc.message, exc.type]
    raise AssertionError("select did not raise")


def quick_f(
    ctx: perdure.OrchestrationContext, tag: str = "q"
) -> perdure.DurableFuture[str]:
    return ctx.schedule_activity(quick, tag)


@perdure.orchestration
async def fail_fast(ctx: perdure.OrchestrationContext) -> object:
    doomed = ctx.join(
        ctx.schedule_activity(failing, "card declined"),
        ctx.schedule_activity(slow, "j"),
        ctx.schedule_timer(30),
    )
    try:
        await doomed
    except perdure.ActivityFailed as exc:
        return str(exc)
    raise AssertionError("join did not raise")


@perdure.orchestration
async def gather(ctx: perdure.OrchestrationContext) -> object:
    values = await ctx.join(
        [
            quick_f(ctx, "1"),
            ctx.schedule_activity(failing, "nope"),
            ctx.schedule_timer(0),
        ],
        return_exceptions=True,
    )
    ok, error, fired = values
    assert isinstance(error, perdure.ActivityFailed)
    return [ok, type(error).__name__, error.message, fired]


ORCHS: list[Callable[..., Any]] = [race, fail_fast, gather]
ACTS: list[Callable[..., Any]] = [slow, quick, failing]


def race_scenario(kind: str) -> Scenario:
    async def scenario(client: perdure.Client, iid: str) -> object:
        SEEN.pop(iid, None)
        state = await run_to_end(client, iid, race, kind)
        if kind in ("activity", "timer", "fail"):
            # The losing activity is told about its cancellation.
            await eventually(
                lambda: SEEN.get(iid) == ["started", "cancelled"], "cancel"
            )
        return outcome(state)

    return scenario


def cancelled_ids(history: Iterable[perdure.Event]) -> list[int | None]:
    return [e.source_event_id for e in of_type(history, h.ActivityCancelRequested)]


def scheduled_ids(history: Iterable[perdure.Event], name: str) -> list[int]:
    return [e.event_id for e in of_type(history, h.ActivityScheduled) if e.name == name]


async def test_select_first_completion_wins_loser_cancelled(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, race_scenario("activity"), "sel"
    )
    assert summary["output"] == [1, "quick q"]
    assert cancelled_ids(history) == scheduled_ids(history, "slow")
    cancel = of_type(history, h.ActivityCancelRequested)[0]
    assert cancel.event_id > of_type(history, h.ActivityCompleted)[0].event_id


async def test_select_timer_beats_activity(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, race_scenario("timer"), "selt"
    )
    assert summary["output"] == [0, None]
    assert cancelled_ids(history) == scheduled_ids(history, "slow")
    assert len(of_type(history, h.TimerFired)) == 1


async def test_select_lowest_index_wins_when_all_done(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, race_scenario("done"), "seld"
    )
    assert summary["output"] == [0, "quick b"]
    assert not of_type(history, h.ActivityCancelRequested)  # nothing left to cancel


async def test_select_raises_winning_failure(storage_url: str) -> None:
    summary, history = await check_replay(
        storage_url, ORCHS, ACTS, race_scenario("fail"), "self"
    )
    assert summary["output"] == ["raised", "failing", "boom", "RuntimeError"]
    assert cancelled_ids(history) == scheduled_ids(history, "slow")


async def test_join_fail_fast_cancels_the_rest(storage_url: str) -> None:
    async def scenario(client: perdure.Client, iid: str) -> object:
        SEEN.pop(iid, None)
        state = await run_to_end(client, iid, fail_fast)
        await eventually(lambda: SEEN.get(iid) == ["started", "cancelled"], "cancel")
        return outcome(state)

    summary, history = await check_replay(storage_url, ORCHS, ACTS, scenario, "ff")
    assert "card declined" in summary["output"]
    assert cancelled_ids(history) == scheduled_ids(history, "slow")
    (timer,) = of_type(history, h.TimerCreated)
    (timer_cancel,) = of_type(history, h.TimerCancelled)
    assert timer_cancel.source_event_id == timer.event_id
    failed = of_type(history, h.ActivityFailed)[0]
    assert failed.error["message"] == "card declined"
    assert all(e.event_id > failed.event_id for e in of_type(history, h.TimerCancelled))


@pytest.mark.parametrize("cache_size", [10_000, 0])
async def test_join_return_exceptions(storage_url: str, cache_size: int) -> None:
    # Completion order of the three is a race, so histories of two runs may
    # differ; compare outcomes per cache mode instead.

    async with runtime(storage_url, ORCHS, ACTS, instance_cache_size=cache_size) as rt:
        state = await run_to_end(rt.client, "g", gather)
        history = await rt.client.get_history("g")
    assert state.status == "Completed", state.error
    assert state.output == ["quick 1", "ActivityFailed", "nope", None]
    assert not [e for e in history if "Cancel" in e.type]
