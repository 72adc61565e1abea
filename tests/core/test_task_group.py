"""Issue 12: ``ctx.task_group()`` in the Simulator.

Every scenario runs in a `Twin` (its driver is also rebuilt from the
history before every turn) and is replayed from scratch at the end.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from _core_util import by_name, check_replay
from _structured_util import Twin, flags, last_types

import perdure
from perdure import Cancelled, OrchestrationContext, durable_async


async def step(ctx: OrchestrationContext, name: str) -> str:
    """Run activity *name*; its failure becomes a ValueError naming it."""
    try:
        return f"{name}={await ctx.schedule_activity(name)}"
    except perdure.ActivityFailed as exc:
        raise ValueError(f"{name}: {exc.message}") from None


async def compensating(ctx: OrchestrationContext, name: str, log: list[str]) -> str:
    try:
        return await step(ctx, name)
    except Cancelled:
        async with ctx.shield():
            log.append(await ctx.schedule_activity(f"Undo {name}"))
        raise


def describe(exc: BaseException) -> Any:
    if isinstance(exc, ExceptionGroup):
        return [exc.message, [describe(e) for e in exc.exceptions]]
    return f"{type(exc).__name__}: {exc}"


@perdure.orchestration
async def group_of_three(ctx: OrchestrationContext) -> list[Any]:
    log: list[Any] = []
    try:
        async with ctx.task_group() as tg:
            futures = [tg.start(step(ctx, name)) for name in ("A", "B")]
            futures.append(tg.start(compensating(ctx, "C", log)))
        log.append([f.result() for f in futures])
    except Exception as exc:
        log.append(describe(exc))
    return log


def test_all_succeed() -> None:
    sim = Twin(group_of_three)
    assert flags(sim.history) == [
        ("ActivityScheduled", "A", False),
        ("ActivityScheduled", "B", False),
        ("ActivityScheduled", "C", False),
    ]
    sim.complete(3, "b")
    sim.complete(4, "c")
    assert sim.result.status == "Running"
    sim.complete(2, "a")
    assert sim.result.output == [["A=a", "B=b", "C=c"]]
    check_replay(group_of_three, sim)


def test_first_failure_cancels_the_others_and_is_raised_as_is() -> None:
    sim = Twin(group_of_three)
    sim.complete(2, "a")
    sim.fail(3, "B broke")  # B fails: C is cancelled and compensates
    assert last_types(sim) == [
        "ActivityFailed",
        "ActivityScheduled",
        "ActivityCancelRequested",
    ]
    assert flags(sim.last_turn) == [("ActivityScheduled", "Undo C", True)]
    assert sim.result.status == "Running"  # the block waits for C
    sim.complete(by_name(sim, "Undo C"), "C undone")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == ["C undone", "ValueError: B: B broke"]
    check_replay(group_of_three, sim)


@perdure.orchestration
async def two_on_one(ctx: OrchestrationContext) -> Any:
    shared = ctx.schedule_activity("Shared")

    async def waiter(tag: str) -> None:
        try:
            await shared
        except perdure.ActivityFailed as exc:
            raise ValueError(f"{tag}: {exc.message}") from None

    try:
        async with ctx.task_group() as tg:
            tg.start(waiter("first"))
            tg.start(waiter("second"))
            other = tg.start(step(ctx, "Other"))
    except ExceptionGroup as group:
        return [describe(group), other.cancelled()]
    return "no error"


def test_two_failures_from_one_completion_are_raised_together() -> None:
    sim = Twin(two_on_one)
    sim.fail(2, "shared broke")
    assert last_types(sim) == [
        "ActivityFailed",
        "ActivityCancelRequested",
        "OrchestrationCompleted",
    ]
    assert sim.result.output == [
        [
            "2 tasks of a task group failed",
            ["ValueError: first: shared broke", "ValueError: second: shared broke"],
        ],
        True,
    ]
    check_replay(two_on_one, sim)


@perdure.orchestration
async def body_parked(ctx: OrchestrationContext) -> list[Any]:
    log: list[Any] = []
    try:
        async with ctx.task_group() as tg:
            tg.start(step(ctx, "A"))
            try:
                await ctx.schedule_wait("body")
            except Cancelled:
                log.append("body Cancelled")
                raise
            finally:
                log.append(await ctx.schedule_activity("Body cleanup"))
    except ValueError as exc:
        log.append(describe(exc))
    return log


def test_failure_while_the_body_is_parked_in_the_block() -> None:
    sim = Twin(body_parked)
    sim.fail(2, "A broke")
    # The body's cleanup may schedule. The wait it was parked on is
    # cancelled with the interruption (as cancelling an asyncio task cancels
    # what it awaits), so it cannot swallow a later event.
    assert flags(sim.last_turn) == [("ActivityScheduled", "Body cleanup", False)]
    assert last_types(sim) == [
        "ActivityFailed",
        "ActivityScheduled",
        "EventWaitCancelled",
    ]
    cleanup = by_name(sim, "Body cleanup")
    sim.complete(cleanup, "cleaned")
    assert [(e.type, e.source_event_id) for e in sim.last_turn] == [
        ("ActivityCompleted", cleanup),
        ("OrchestrationCompleted", None),
    ]
    assert sim.result.output == ["body Cancelled", "cleaned", "ValueError: A: A broke"]
    check_replay(body_parked, sim)


@perdure.orchestration
async def body_catches(ctx: OrchestrationContext) -> list[Any]:
    log: list[Any] = []
    try:
        async with ctx.task_group() as tg:
            tg.start(step(ctx, "A"))
            tg.start(step(ctx, "B"))
            for name in ("first", "second"):
                try:
                    log.append(await ctx.schedule_wait(name))
                except Cancelled:
                    log.append("body Cancelled")
            late = step(ctx, "Late")
            try:
                tg.start(late)
            except RuntimeError as exc:
                log.append(str(exc))
            late.close()  # see test_start_before_or_after_the_block_...
    except ValueError as exc:
        log.append(describe(exc))
    return log


def test_body_gets_cancelled_once_and_may_not_start_more() -> None:
    sim = Twin(body_catches)
    sim.fail(2, "A broke")  # B is cancelled, the body interrupted once
    assert sim.result.status == "Running"
    sim.raise_event("second")  # its second wait is not interrupted
    assert sim.result.output == [
        "body Cancelled",
        None,
        "this task group is shutting down: a task failed",
        "ValueError: A: A broke",
    ]
    assert "Late" not in [n for _, n, _ in flags(sim.history)]
    check_replay(body_catches, sim)


@perdure.orchestration
async def body_raises(ctx: OrchestrationContext) -> list[Any]:
    log: list[Any] = []
    try:
        async with ctx.task_group() as tg:
            tg.start(step(ctx, "A"))
            tg.start(compensating(ctx, "B", log))
            await ctx.schedule_timer(5)
            raise KeyError("body broke")
    except KeyError as exc:
        log.append(describe(exc))
    return log


def test_body_error_cancels_the_tasks_and_is_raised() -> None:
    sim = Twin(body_raises)
    sim.advance(5)
    assert last_types(sim) == [
        "TimerFired",
        "ActivityScheduled",  # Undo B
        "ActivityCancelRequested",
        "ActivityCancelRequested",
    ]
    sim.complete(by_name(sim, "Undo B"), "B undone")
    assert sim.result.output == ["B undone", "KeyError: 'body broke'"]
    check_replay(body_raises, sim)


@perdure.orchestration
async def body_and_task_fail(ctx: OrchestrationContext) -> Any:
    try:
        async with ctx.task_group() as tg:
            tg.start(step(ctx, "A"))
            try:
                await ctx.schedule_wait("body")
            except Cancelled:
                raise KeyError("body broke in cleanup") from None
    except ExceptionGroup as group:
        return describe(group)
    return "no error"


def test_body_error_after_a_task_failure_joins_the_group() -> None:
    sim = Twin(body_and_task_fail)
    sim.fail(2, "A broke")
    assert sim.result.output == [
        "2 tasks of a task group failed",
        ["ValueError: A: A broke", "KeyError: 'body broke in cleanup'"],
    ]
    check_replay(body_and_task_fail, sim)


async def child(ctx: OrchestrationContext) -> None:
    await ctx.schedule_timer(1)


@perdure.orchestration
async def start_outside(ctx: OrchestrationContext) -> list[Any]:
    out: list[Any] = []
    tg = ctx.task_group()

    def try_start() -> None:
        coro = child(ctx)
        try:
            tg.start(coro)
            out.append("started")
        except RuntimeError as exc:
            out.append(str(exc))
        # Closed, as durable_async closes a coroutine it refuses.
        out.append(inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED)
        coro.close()

    try_start()
    async with tg:
        tg.start(child(ctx))
    try_start()
    return out


def test_start_before_or_after_the_block_is_a_runtime_error() -> None:
    sim = Twin(start_outside)
    sim.advance(1)
    assert sim.result.output == [
        "this task group is not open",
        True,
        "this task group is not open",
        True,
    ]
    check_replay(start_outside, sim)


def test_start_before_or_after_the_block_raises() -> None:
    sim = Twin(start_outside)
    sim.advance(1)
    output = sim.result.output
    assert output[0::2] == ["this task group is not open"] * 2
    check_replay(start_outside, sim)


@perdure.orchestration
async def owner_cancelled(ctx: OrchestrationContext) -> None:
    try:
        async with ctx.task_group() as tg:
            log: list[str] = []
            tg.start(compensating(ctx, "A", log))
            tg.start(step(ctx, "B"))
            await ctx.schedule_wait("body")
    except Cancelled:
        async with ctx.shield():
            await ctx.schedule_activity("Owner saw Cancelled")
        raise


def test_owner_cancelled_propagates_cancelled() -> None:
    sim = Twin(owner_cancelled)
    sim.cancel("operator")
    assert sorted(p.name for p in sim.pending()) == ["Owner saw Cancelled", "Undo A"]
    sim.complete(by_name(sim, "Owner saw Cancelled"), None)
    assert sim.result.status == "Running"  # A still compensates
    sim.complete(by_name(sim, "Undo A"), None)
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCancelled"]
    check_replay(owner_cancelled, sim)


# ------------------------------------------------ a group as compensation
@perdure.orchestration
async def compensates_with_group(ctx: OrchestrationContext, fail: bool) -> None:
    try:
        await ctx.schedule_wait("approval")
    except Cancelled:
        async with ctx.shield():
            outcome: Any
            try:
                async with ctx.task_group() as tg:
                    a = tg.start(step(ctx, "Undo A"))
                    b = tg.start(step(ctx, "Undo B"))
                outcome = [a.result(), b.result()]
            except ValueError as exc:
                outcome = describe(exc)
            await ctx.schedule_activity("Report", outcome)
        raise


@pytest.mark.parametrize("fail", [False, True])
def test_group_inside_a_shield_during_compensation(fail: bool) -> None:
    sim = Twin(compensates_with_group, fail)
    sim.cancel("operator")
    assert flags(sim.last_turn) == [
        ("ActivityScheduled", "Undo A", True),
        ("ActivityScheduled", "Undo B", True),
    ]
    if fail:
        sim.fail(by_name(sim, "Undo B"), "B stuck")  # A is cancelled
        expected: Any = "ValueError: Undo B: B stuck"
    else:
        sim.complete(by_name(sim, "Undo B"), "b")
        sim.complete(by_name(sim, "Undo A"), "a")
        expected = ["Undo A=a", "Undo B=b"]
    [report] = [p for p in sim.pending() if p.name == "Report"]
    assert report.input == expected
    sim.complete(report.event_id, None)
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCancelled"]
    check_replay(compensates_with_group, sim)


@perdure.orchestration
async def shielded_body_parked(ctx: OrchestrationContext) -> None:
    try:
        await ctx.schedule_wait("approval")
    except Cancelled:
        async with ctx.shield():
            outcome: Any = "no error"
            try:
                async with ctx.task_group() as tg:
                    tg.start(step(ctx, "Undo A"))
                    tg.start(step(ctx, "Undo B"))
                    await ctx.schedule_activity("Body step")
            except ValueError as exc:
                outcome = describe(exc)
            except Cancelled:
                outcome = "Cancelled"
            await ctx.schedule_activity("Report", outcome)
        raise


def test_group_in_a_shield_fails_while_its_body_is_parked() -> None:
    sim = Twin(shielded_body_parked)
    sim.cancel("operator")
    sim.fail(by_name(sim, "Undo B"), "B stuck")
    # As outside a shield: the body is interrupted, Undo A cancelled, and
    # the block raises B's failure once every task has finished.
    [report] = [p for p in sim.pending() if p.name == "Report"]
    assert report.input == "ValueError: Undo B: B stuck"
    check_replay(shielded_body_parked, sim)


@perdure.orchestration
async def waits_for_compensation(ctx: OrchestrationContext) -> list[Any]:
    log: list[Any] = []
    try:
        async with ctx.task_group() as tg:
            tg.start(compensating(ctx, "A", log))
            tg.start(compensating(ctx, "B", log))
            tg.start(step(ctx, "C"))
    except ValueError as exc:
        log.append(describe(exc))
    return log


def test_leaving_waits_for_every_task_including_compensating_ones() -> None:
    sim = Twin(waits_for_compensation)
    sim.fail(4, "C broke")  # A and B are cancelled and both compensate
    assert flags(sim.last_turn) == [
        ("ActivityScheduled", "Undo A", True),
        ("ActivityScheduled", "Undo B", True),
    ]
    sim.complete(by_name(sim, "Undo B"), "B undone")
    assert last_types(sim) == ["ActivityCompleted"]  # still waiting for A
    sim.complete(by_name(sim, "Undo A"), "A undone")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == ["B undone", "A undone", "ValueError: C: C broke"]
    check_replay(waits_for_compensation, sim)


@perdure.orchestration
async def group_in_task(ctx: OrchestrationContext) -> list[Any]:
    log: list[Any] = []

    async def owner() -> None:
        try:
            async with ctx.task_group() as tg:
                tg.start(compensating(ctx, "A", log))
                await ctx.schedule_wait("body")
        except Cancelled:
            log.append("owner Cancelled")
            raise

    task = durable_async(ctx, owner())
    await ctx.select2(ctx.schedule_timer(5), task)
    try:
        await task
    except Cancelled:
        log.append("owner settled")
    return log


def test_owner_task_losing_a_select_propagates_cancelled() -> None:
    sim = Twin(group_in_task)
    sim.advance(5)
    assert sim.result.status == "Running"
    # The owner's Cancelled leaves the block at once (its task, not being in
    # a shield, can wait for nothing); the execution's end still waits for
    # A's compensation.
    sim.complete(by_name(sim, "Undo A"), "A undone")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == ["owner Cancelled", "owner settled"]
    check_replay(group_in_task, sim)
