"""Issue 12: ``ctx.timeout(delay, awaitable)`` in the Simulator.

Every scenario runs in a `Twin` (its driver is also rebuilt from the
history before every turn) and is replayed from scratch at the end.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from _core_util import by_name, check_replay, of_type
from _structured_util import Twin, flags, last_types

import perdure
from perdure import Cancelled, DurableTimeout, OrchestrationContext, events as h


async def guarded(ctx: OrchestrationContext, awaitable: Any, delay: Any = 60) -> Any:
    """The awaitable's value, or what the timeout raised, as a JSON value."""
    try:
        return await ctx.timeout(delay, awaitable)
    except DurableTimeout as exc:
        assert isinstance(exc, TimeoutError)
        assert isinstance(exc, perdure.PerdureError)
        return f"DurableTimeout: {exc}"
    except perdure.ActivityFailed as exc:
        return f"ActivityFailed: {exc.message}"


@perdure.orchestration
async def times_activity(ctx: OrchestrationContext) -> Any:
    return await guarded(ctx, ctx.schedule_activity("Work"))


def test_value_before_the_deadline_cancels_the_timer() -> None:
    sim = Twin(times_activity)
    assert flags(sim.history) == [
        ("ActivityScheduled", "Work", False),
        ("TimerCreated", "", False),
    ]
    sim.complete(2, "value")
    assert [(e.type, e.source_event_id) for e in sim.last_turn] == [
        ("ActivityCompleted", 2),
        ("TimerCancelled", 3),
        ("OrchestrationCompleted", None),
    ]
    assert sim.result.output == "value"
    check_replay(times_activity, sim)


def test_failure_before_the_deadline_is_raised() -> None:
    sim = Twin(times_activity)
    sim.fail(2, "boom")
    assert last_types(sim) == [
        "ActivityFailed",
        "TimerCancelled",
        "OrchestrationCompleted",
    ]
    assert sim.result.output == "ActivityFailed: boom"
    check_replay(times_activity, sim)


def test_deadline_cancels_the_work_and_raises_durable_timeout() -> None:
    sim = Twin(times_activity)
    sim.advance(60)
    assert [(e.type, e.source_event_id) for e in sim.last_turn] == [
        ("TimerFired", 3),
        ("ActivityCancelRequested", 2),
        ("OrchestrationCompleted", None),
    ]
    assert sim.result.output == (
        "DurableTimeout: timed out after 60 s; the work was cancelled"
    )
    check_replay(times_activity, sim)


@perdure.orchestration
async def times_with_timedelta(ctx: OrchestrationContext) -> Any:
    return await guarded(
        ctx, ctx.schedule_activity("Work"), timedelta(minutes=1, seconds=30)
    )


def test_timedelta_delay() -> None:
    sim = Twin(times_with_timedelta)
    [timer] = of_type(sim.history, h.TimerCreated)
    assert timer.fire_at == sim.history[0].timestamp + 90
    sim.advance(89)
    assert sim.result.status == "Running"
    sim.advance(1)
    assert sim.result.output == (
        "DurableTimeout: timed out after 90 s; the work was cancelled"
    )
    check_replay(times_with_timedelta, sim)


async def booking(ctx: OrchestrationContext, log: list[str]) -> str:
    try:
        return str(await ctx.schedule_activity("Book"))
    except Cancelled:
        async with ctx.shield():
            log.append(await ctx.schedule_activity("Unbook"))
        raise


@perdure.orchestration
async def times_compensating(ctx: OrchestrationContext) -> list[str]:
    log: list[str] = []
    log.append(await guarded(ctx, booking(ctx, log)))
    return log


def test_timeout_raises_only_after_the_compensation_finished() -> None:
    sim = Twin(times_compensating)
    assert flags(sim.history) == [
        ("ActivityScheduled", "Book", False),
        ("TimerCreated", "", False),
    ]
    sim.advance(60)  # the task is cancelled and compensates
    assert last_types(sim) == [
        "TimerFired",
        "ActivityScheduled",
        "ActivityCancelRequested",
    ]
    assert sim.result.status == "Running"
    sim.complete(by_name(sim, "Unbook"), "unbooked")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == [
        "unbooked",
        "DurableTimeout: timed out after 60 s; the work was cancelled",
    ]
    check_replay(times_compensating, sim)


def test_task_value_before_the_deadline() -> None:
    sim = Twin(times_compensating)
    sim.complete(2, "booked")
    assert last_types(sim) == [
        "ActivityCompleted",
        "TimerCancelled",
        "OrchestrationCompleted",
    ]
    assert sim.result.output == ["booked"]
    check_replay(times_compensating, sim)


@perdure.orchestration
async def times_done_future(ctx: OrchestrationContext) -> Any:
    work = ctx.schedule_activity("Work")
    await ctx.schedule_wait("go")
    return await guarded(ctx, work)


def test_timeout_of_a_done_future_returns_without_a_timer() -> None:
    sim = Twin(times_done_future)
    sim.complete(2, "early")
    sim.raise_event("go")
    assert last_types(sim) == ["EventRaised", "OrchestrationCompleted"]
    assert of_type(sim.history, h.TimerCreated) == []
    assert sim.result.output == "early"
    check_replay(times_done_future, sim)


@perdure.orchestration
async def times_done_failure(ctx: OrchestrationContext) -> Any:
    work = ctx.schedule_activity("Work")
    await ctx.schedule_wait("go")
    return await guarded(ctx, work)


def test_timeout_of_a_failed_future_raises_without_a_timer() -> None:
    sim = Twin(times_done_failure)
    sim.fail(2, "early failure")
    sim.raise_event("go")
    assert of_type(sim.history, h.TimerCreated) == []
    assert sim.result.output == "ActivityFailed: early failure"
    check_replay(times_done_failure, sim)


@perdure.orchestration
async def timeout_in_compensation(ctx: OrchestrationContext) -> list[str]:
    try:
        await ctx.schedule_wait("approval")
    except Cancelled:
        async with ctx.shield():
            await ctx.schedule_activity("Undo", "first")
            out = await guarded(ctx, ctx.schedule_activity("Refund"), 30)
            await ctx.schedule_activity("Undo", out)
        raise
    return ["approved"]


def test_timeout_inside_a_shield_during_compensation() -> None:
    sim = Twin(timeout_in_compensation)
    sim.cancel("operator")
    sim.complete(by_name(sim, "Undo"), "undone")
    assert flags(sim.last_turn) == [
        ("ActivityScheduled", "Refund", True),
        ("TimerCreated", "", True),
    ]
    sim.advance(30)  # the timer of the cancelled task still fires
    assert last_types(sim) == [
        "TimerFired",
        "ActivityScheduled",
        "ActivityCancelRequested",
    ]
    [undo] = [p for p in sim.pending() if p.name == "Undo"]
    assert undo.input == "DurableTimeout: timed out after 30 s; the work was cancelled"
    sim.complete(undo.event_id, "undone")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCancelled"]
    check_replay(timeout_in_compensation, sim)


@pytest.mark.parametrize("first", ["refund", "deadline"])
def test_timeout_inside_a_shield_value_or_deadline(first: str) -> None:
    sim = Twin(timeout_in_compensation)
    sim.cancel("operator")
    sim.complete(by_name(sim, "Undo"), "undone")
    if first == "refund":
        sim.complete(by_name(sim, "Refund"), "refunded")
        expected = "refunded"
    else:
        sim.advance(30)
        expected = "DurableTimeout: timed out after 30 s; the work was cancelled"
    [undo] = [p for p in sim.pending() if p.name == "Undo"]
    assert undo.input == expected
    check_replay(timeout_in_compensation, sim)


@perdure.orchestration
async def caller_cancelled(ctx: OrchestrationContext) -> list[str]:
    log: list[str] = []
    try:
        log.append(await guarded(ctx, booking(ctx, log)))
    except Cancelled:
        log.append("caller Cancelled")
        raise
    return log


def test_caller_cancelled_while_the_timeout_waits_for_compensation() -> None:
    sim = Twin(caller_cancelled)
    sim.advance(60)  # the deadline: the task compensates, the timeout waits
    assert last_types(sim) == [
        "TimerFired",
        "ActivityScheduled",
        "ActivityCancelRequested",
    ]
    sim.cancel("operator")  # the caller (the root) is cancelled meanwhile
    assert last_types(sim) == ["OrchestrationCancelRequested"]
    assert sim.result.status == "Running"  # the compensation goes on
    sim.complete(by_name(sim, "Unbook"), "unbooked")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCancelled"]
    assert sim.result.status == "Cancelled"
    check_replay(caller_cancelled, sim)


@perdure.orchestration
async def caller_task_cancelled(ctx: OrchestrationContext) -> list[str]:
    log: list[str] = []

    async def caller() -> None:
        try:
            log.append(await guarded(ctx, booking(ctx, log)))
        except Cancelled:
            log.append("caller Cancelled")
            raise

    task = perdure.durable_async(ctx, caller())
    await ctx.select2(ctx.schedule_wait("stop"), task)
    return log


def test_cancelled_caller_task_gets_cancelled_not_the_timeout() -> None:
    sim = Twin(caller_task_cancelled)
    sim.advance(60)
    sim.raise_event("stop")  # the caller loses while the timeout waits
    assert last_types(sim) == ["EventRaised"]
    assert sim.result.status == "Running"  # its compensating task holds the end
    sim.complete(by_name(sim, "Unbook"), "unbooked")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == ["caller Cancelled"]
    check_replay(caller_task_cancelled, sim)
