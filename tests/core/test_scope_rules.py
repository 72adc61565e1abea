"""DESIGN §8: the task-scope rules the first milestone left open.

Each test is a reproducer from the task-scope stress test (findings B2-B5,
Q1, Q3, Q10, Q11), run in the Simulator and replayed from scratch.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _core_util import cancelled_ids, check_replay, of_type, reset, types

import perdure
from perdure import Cancelled, OrchestrationContext, durable_async, events as h
from perdure.testing import Simulator, replay

log: list[Any] = []


# ------------------------------ B2: continue_as_new in a cancelled task
@perdure.orchestration
async def loser_continues(ctx: OrchestrationContext, inp: str) -> str:
    async def block() -> None:
        try:
            await ctx.schedule_activity("Slow")
        except Cancelled:
            try:
                ctx.continue_as_new("from the loser")
            except Cancelled:
                log.append("continue_as_new refused")
                raise

    i, v = await ctx.select2(ctx.schedule_activity("Fast"), durable_async(ctx, block()))
    return f"winner {i}: {v}"


def test_select_loser_cannot_continue_as_new() -> None:
    reset(log)
    sim = Simulator(loser_continues, "first")
    sim.complete(2, "fast")  # Fast wins; the block (Slow, event 3) loses
    assert sim.result.status == "Completed"
    assert sim.result.output == "winner 0: fast"
    assert log == ["continue_as_new refused"]
    assert types(sim.last_turn) == [
        "ActivityCompleted",
        "ActivityCancelRequested",
        "OrchestrationCompleted",
    ]
    check_replay(loser_continues, sim)


@perdure.orchestration
async def continues_on_cancel(ctx: OrchestrationContext, inp: str) -> str:
    try:
        await ctx.schedule_wait("never")
    finally:
        ctx.continue_as_new("again")


def test_cancel_instance_cannot_be_defeated_by_continue_as_new() -> None:
    sim = Simulator(continues_on_cancel, "first")
    sim.cancel("operator")  # as Client.cancel_instance
    assert sim.result.status == "Cancelled"
    assert types(sim.history) == [
        "OrchestrationStarted",
        "EventWaitStarted",
        "OrchestrationCancelRequested",
        "EventWaitCancelled",
        "OrchestrationCancelled",
    ]
    check_replay(continues_on_cancel, sim)


# ------------------- B3: a select built in a cancelled task stays quiet
async def cleanup_select(
    ctx: OrchestrationContext, root_work: perdure.DurableFuture[Any]
) -> None:
    done = ctx.schedule_activity("a")
    try:
        await done
        await ctx.schedule_timer(60)
    except Cancelled:
        ctx.select(done, root_work)  # cleanup code: nothing awaited
        raise


@perdure.orchestration
async def select_in_cancelled_task(ctx: OrchestrationContext) -> Any:
    root_work = ctx.schedule_activity("root-work")  # owned by the root
    task = durable_async(ctx, cleanup_select(ctx, root_work))
    await ctx.select2(ctx.schedule_wait("stop"), task)
    return await root_work


def test_select_built_in_a_cancelled_task_cancels_nothing() -> None:
    sim = Simulator(select_in_cancelled_task)
    sim.complete(3, "a")  # the block's first activity
    sim.raise_event("stop")  # the block loses
    assert types(sim.last_turn) == ["EventRaised", "TimerCancelled"]
    assert sim.result.status == "Running"
    sim.complete(2, "root result")  # root-work was left alone
    assert sim.result.output == "root result"
    check_replay(select_in_cancelled_task, sim)


# --------------------------- B4: join raises the first failure in history
@perdure.orchestration
async def join_after_failures(ctx: OrchestrationContext) -> str:
    a = ctx.schedule_activity("A")
    b = ctx.schedule_activity("B")
    await ctx.schedule_timer(1)
    try:
        await ctx.join(a, b)
    except perdure.ActivityFailed as exc:
        return f"{exc.name}: {exc.message}"
    return "no failure"


def test_join_raises_the_earliest_failure_even_if_already_failed() -> None:
    sim = Simulator(join_after_failures)
    sim.fail(3, "B failed first")
    sim.fail(2, "A failed second")
    sim.advance(1)
    assert sim.result.output == "B: B failed first"
    check_replay(join_after_failures, sim)


async def fail_after(ctx: OrchestrationContext, name: str) -> None:
    await ctx.schedule_activity(name)
    raise ValueError(f"{name} task failed")


@perdure.orchestration
async def join_failed_tasks(ctx: OrchestrationContext) -> str:
    a = durable_async(ctx, fail_after(ctx, "A"))
    b = durable_async(ctx, fail_after(ctx, "B"))
    pending = ctx.schedule_activity("pending")
    await ctx.schedule_timer(1)
    try:
        await ctx.join(a, b, pending)
    except ValueError as exc:
        return str(exc)
    return "no failure"


def test_join_of_failed_tasks_raises_the_first_and_cancels_the_rest() -> None:
    sim = Simulator(join_failed_tasks)
    sim.complete(3, "b")  # B's task fails first
    sim.complete(2, "a")
    sim.advance(1)
    assert sim.result.output == "B task failed"
    assert cancelled_ids(sim.history) == [4]  # the pending activity
    check_replay(join_failed_tasks, sim)


# -------------------- B5: a combinator that raises takes none of its args
@perdure.orchestration
async def claim_then_retry(ctx: OrchestrationContext) -> list[str]:
    a = ctx.schedule_activity("A")
    b = ctx.schedule_activity("B")
    ctx.join(b)  # b is taken
    out = []
    attempts = (
        lambda: ctx.select(a, b),
        lambda: ctx.join(a, a),
        lambda: ctx.select(a, ctx.schedule_timer(5)),
    )
    for attempt in attempts:
        try:
            attempt()
            out.append("ok")
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def test_failed_select_or_join_consumes_none_of_its_arguments() -> None:
    sim = Simulator(claim_then_retry)
    assert sim.result.output == [
        "ValueError: this durable future was already passed to select/join; "
        "a future may be handed to one combinator at most",
        "ValueError: the same durable future was passed twice to one select/join",
        "ok",
    ]


# --------------------------------- Q1: ties on one event are defined
async def waiter(future: perdure.DurableFuture[Any], tag: str) -> str:
    return f"{tag}:{await future}"


@perdure.orchestration
async def tie(ctx: OrchestrationContext) -> Any:
    x = ctx.schedule_activity("X")
    b = durable_async(ctx, waiter(x, "B"))  # parks on X first
    a = durable_async(ctx, waiter(x, "A"))
    return await ctx.select(a, b)  # A has index 0


@perdure.orchestration
async def task_against_its_work(ctx: OrchestrationContext) -> Any:
    x = ctx.schedule_activity("X")
    t = durable_async(ctx, waiter(x, "T"))
    return await ctx.select(t, x)


def test_same_event_tie_goes_to_the_first_to_settle() -> None:
    # Kept as it was (stored histories depend on it): of two tasks ending
    # on one event, the one that parked first wins, whatever the index ...
    sim = Simulator(tie)
    sim.complete(2, "x")
    assert sim.result.output == [1, "B:x"]
    assert types(sim.history) == [
        "OrchestrationStarted",
        "ActivityScheduled",
        "ActivityCompleted",
        "OrchestrationCompleted",
    ]
    check_replay(tie, sim)
    # ... and work settles before the task that awaited it.
    sim = Simulator(task_against_its_work)
    sim.complete(2, "x")
    assert sim.result.output == [1, "x"]
    check_replay(task_against_its_work, sim)


# ------------------------------------ Q3: lost exceptions are logged
async def failing_compensation(ctx: OrchestrationContext) -> None:
    try:
        await ctx.schedule_activity("Slow")
    except Cancelled:
        raise ValueError("compensation failed") from None


async def failing_side_task(ctx: OrchestrationContext) -> None:
    await ctx.schedule_activity("Side")
    raise KeyError("side task failed")


@perdure.orchestration
async def loses_errors(ctx: OrchestrationContext) -> Any:
    durable_async(ctx, failing_side_task(ctx))  # never awaited
    loser = durable_async(ctx, failing_compensation(ctx))
    index, _ = await ctx.select2(ctx.schedule_activity("Fast"), loser)
    await ctx.schedule_timer(1)
    return index


def unobserved(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.getMessage(), type(r.exc_info[1]).__name__)
        for r in caplog.records
        if r.name == "perdure.orchestration" and r.exc_info
    ]


def test_exceptions_nobody_sees_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "perdure.orchestration")
    sim = Simulator(loses_errors, instance_id="lost-errors")
    sim.complete(2, "side")  # the side task fails; it might still be awaited
    assert unobserved(caplog) == []
    sim.complete(4, "fast")  # the loser raises from its except Cancelled
    assert unobserved(caplog) == [
        (
            "[lost-errors] task scope 0.2 raised ValueError after the task "
            "was cancelled (its result is Cancelled)",
            "ValueError",
        )
    ]
    record = caplog.records[-1]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[2] is not None
    caplog.clear()
    sim.advance(1)  # the execution ends: nothing awaited the side task
    assert sim.result.output == 0
    assert unobserved(caplog) == [
        (
            "[lost-errors] task scope 0.1 raised KeyError and nothing awaited the task",
            "KeyError",
        )
    ]
    # Replays log nothing again.
    caplog.clear()
    replay(loses_errors, sim.history, instance_id="lost-errors")
    assert unobserved(caplog) == []


@perdure.orchestration
async def awaits_later(ctx: OrchestrationContext) -> str:
    side = durable_async(ctx, failing_side_task(ctx))
    await ctx.schedule_timer(1)
    try:
        await side
    except KeyError:
        return "caught"
    return "no error"


def test_failure_awaited_later_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "perdure.orchestration")
    sim = Simulator(awaits_later)
    sim.complete(2, "side")
    sim.restart()  # a rebuilt driver must not report it either
    sim.advance(1)
    assert sim.result.output == "caught"
    assert unobserved(caplog) == []


# ------------------------------------------------ Q10: awaiting itself
@perdure.orchestration
async def awaits_itself(ctx: OrchestrationContext) -> str:
    me: dict[str, Any] = {}

    async def block() -> str:
        await ctx.schedule_activity("step")
        return str(await me["task"])

    me["task"] = durable_async(ctx, block())
    try:
        return str(await me["task"])
    except RuntimeError as exc:
        return str(exc)


def test_task_awaiting_its_own_future_fails() -> None:
    sim = Simulator(awaits_itself)
    sim.complete(2, "ok")
    assert sim.result.output == "a durable task cannot await its own future"
    check_replay(awaits_itself, sim)


# ----------------------------------- Q11: continue-as-new cancel reason
@perdure.orchestration
async def continues_with_open_work(ctx: OrchestrationContext, n: int) -> None:
    ctx.schedule_timer(60)
    ctx.continue_as_new(n + 1)


def test_work_left_by_continue_as_new_has_a_readable_reason() -> None:
    sim = Simulator(continues_with_open_work, 0)
    assert sim.result.status == "ContinuedAsNew"
    [cancel] = of_type(sim.history, h.TimerCancelled)
    assert cancel.reason == "orchestration continued as new"
