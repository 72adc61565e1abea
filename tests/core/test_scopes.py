"""Task scopes (DESIGN §4.1-4.3): ownership by dynamic extent, cascades."""

from __future__ import annotations

from typing import Any

from _core_util import (
    by_name,
    cancelled_ids,
    cancels,
    check_replay,
    of_type,
    reset,
    rows,
    scheduled,
)

from perdure import Cancelled, OrchestrationContext, durable_async, events as h
from perdure.testing import Simulator

log: list[Any] = []


async def stepper(ctx: OrchestrationContext, tag: str) -> str:
    first = await ctx.schedule_activity(f"{tag}-1")
    second = await ctx.schedule_activity(f"{tag}-2", first)
    return str(await ctx.schedule_activity(f"{tag}-3", second))


async def interleaved(ctx: OrchestrationContext) -> Any:
    one = durable_async(ctx, stepper(ctx, "T1"))
    two = durable_async(ctx, stepper(ctx, "T2"))
    mine = ctx.schedule_activity("root")
    return await ctx.select(one, two, mine)


def test_interleaved_tasks_keep_their_own_work() -> None:
    sim = Simulator(interleaved)
    # Alternate: each completion resumes a different task, whose next
    # activity must land in that task's scope, not the last one that ran.
    sim.complete(by_name(sim, "T2-1"), "a")
    sim.complete(by_name(sim, "T1-1"), "b")
    sim.complete(by_name(sim, "T2-2"), "c")
    sim.complete(by_name(sim, "T1-2"), "d")
    assert [(name, scope) for name, _, scope in scheduled(sim.history)] == [
        ("T1-1", "0.1"),
        ("T2-1", "0.2"),
        ("root", "0"),
        ("T2-2", "0.2"),
        ("T1-2", "0.1"),
        ("T2-3", "0.2"),
        ("T1-3", "0.1"),
    ]
    t1_3 = by_name(sim, "T1-3")
    sim.complete(by_name(sim, "T2-3"), "T2 done")
    assert sim.result.output == [1, "T2 done"]
    # The losers: task 0.1's open step and the root's own activity.
    assert cancelled_ids(sim.history) == [t1_3, 4]
    check_replay(interleaved, sim)


async def outer_block(ctx: OrchestrationContext) -> str:
    setup = await ctx.schedule_activity("Setup")

    async def inner_a() -> str:
        x = await ctx.schedule_activity("InnerA1", setup)
        return str(await ctx.schedule_activity("InnerA2", x))

    a = durable_async(ctx, inner_a())
    b = ctx.schedule_activity("InnerB", setup)  # the outer block's work
    _, inner = await ctx.select2(a, b)
    return str(await ctx.schedule_activity("Finalize", inner))


async def example5(ctx: OrchestrationContext) -> str:
    timeout = ctx.schedule_timer(60)
    outer = durable_async(ctx, outer_block(ctx))
    winner, output = await ctx.select2(timeout, outer)
    return "timed out" if winner == 0 else str(output)


def test_proposal_example_5_inner_b_belongs_to_the_outer_block() -> None:
    sim = Simulator(example5)
    sim.complete(by_name(sim, "Setup"), "s")
    inner_a1, inner_b = by_name(sim, "InnerA1"), by_name(sim, "InnerB")
    sim.complete(inner_b, "b-won")
    # Losing InnerA cancels only its own activity; InnerB (scope 0.1) won.
    assert cancelled_ids(sim.last_turn) == [inner_a1]
    assert [(n, s) for n, _, s in scheduled(sim.history)] == [
        ("Setup", "0.1"),
        ("InnerA1", "0.1.1"),
        ("InnerB", "0.1"),
        ("Finalize", "0.1"),
    ]
    sim.complete(by_name(sim, "Finalize"), "final")
    assert sim.result.output == "final"
    assert cancelled_ids(sim.history) == [inner_a1, 2]  # then the timeout timer
    check_replay(example5, sim)


async def level3(ctx: OrchestrationContext) -> None:
    try:
        ctx.schedule_activity("L3-act")
        ctx.schedule_timer(30)
        ctx.schedule_wait("L3-wait")
        await ctx.schedule_sub_orchestration("L3-sub")
    finally:
        log.append("L3 finally")


async def level2(ctx: OrchestrationContext) -> None:
    try:
        done = ctx.schedule_activity("L2-done")
        ctx.schedule_activity("L2-act")
        ctx.schedule_wait("L2-wait")
        ctx.schedule_sub_orchestration("L2-sub")
        await done
        await durable_async(ctx, level3(ctx))
    finally:
        log.append("L2 finally")


async def level1(ctx: OrchestrationContext) -> None:
    try:
        ctx.schedule_activity("L1-act")
        ctx.schedule_timer(20)
        nested = durable_async(ctx, level2(ctx))
        ctx.schedule_activity("L1-late")
        await nested
    finally:
        log.append("L1 finally")


async def cascade(ctx: OrchestrationContext) -> str:
    winner, _ = await ctx.select2(
        ctx.schedule_wait("stop"), durable_async(ctx, level1(ctx))
    )
    return f"winner {winner}"


def test_cascade_three_levels_depth_first_in_creation_order() -> None:
    reset(log)
    sim = Simulator(cascade)
    sim.complete(by_name(sim, "L2-done"))  # completed work is never cancelled
    ids = {p.name or f"timer@{p.scope}": p.event_id for p in sim.pending()}
    sim.raise_event("stop")
    assert [(e.type, e.source_event_id) for e in cancels(sim.last_turn)] == [
        ("ActivityCancelRequested", ids["L1-act"]),
        ("TimerCancelled", ids["timer@0.1"]),
        ("ActivityCancelRequested", ids["L2-act"]),
        ("EventWaitCancelled", ids["L2-wait"]),
        ("SubOrchestrationCancelRequested", ids["L2-sub"]),
        ("ActivityCancelRequested", ids["L3-act"]),
        ("TimerCancelled", ids["timer@0.1.1.1"]),
        ("EventWaitCancelled", ids["L3-wait"]),
        ("SubOrchestrationCancelRequested", ids["L3-sub"]),
        ("ActivityCancelRequested", ids["L1-late"]),
    ]
    assert log == ["L3 finally", "L2 finally", "L1 finally"]
    assert sim.result.output == "winner 0"
    assert sim.pending() == []
    check_replay(cascade, sim)


async def loser_with_cleanup(ctx: OrchestrationContext) -> str | None:
    done = ctx.schedule_activity("done-early")
    pending = ctx.schedule_activity("never")
    try:
        await done
        await pending
    except Cancelled as exc:
        log.append(("caught", exc.reason))
        for attempt in (
            lambda: ctx.schedule_activity("cleanup"),
            lambda: ctx.schedule_timer(1),
            lambda: ctx.durable_async(stepper(ctx, "T")),
        ):
            try:
                attempt()
            except Cancelled:
                log.append("schedule raised")
        try:
            await done  # even an already-completed future
        except Cancelled:
            log.append("await raised")
        return "value after cancellation"
    finally:
        log.append("finally")
    return None


async def race_cleanup(ctx: OrchestrationContext) -> Any:
    loser = durable_async(ctx, loser_with_cleanup(ctx))
    index, _ = await ctx.select2(loser, ctx.schedule_timer(5))
    try:
        await loser
    except Cancelled:
        return [index, loser.cancelled()]
    return "not cancelled"


def test_finally_runs_and_a_cancelled_task_cannot_schedule_or_await() -> None:
    reset(log)
    sim = Simulator(race_cleanup)
    sim.complete(2)
    sim.advance(5)
    assert log == [
        ("caught", "lost select"),
        "schedule raised",
        "schedule raised",
        "schedule raised",
        "await raised",
        "finally",
    ]
    assert [n for n, _, _ in scheduled(sim.history)] == ["done-early", "never"]
    assert cancelled_ids(sim.history) == [3]  # only the unfinished one
    assert sim.result.output == [1, True]  # the returned value was discarded
    reset(log)
    check_replay(race_cleanup, sim)


async def swallower(ctx: OrchestrationContext) -> str:
    for _ in range(3):
        try:
            await ctx.schedule_activity("again")
        except BaseException:
            log.append("swallowed")
    return "kept going"


async def swallow_race(ctx: OrchestrationContext) -> Any:
    task = durable_async(ctx, swallower(ctx))
    return await ctx.select2(ctx.schedule_timer(1), task)


def test_a_swallowed_cancelled_schedules_nothing() -> None:
    reset(log)
    sim = Simulator(swallow_race)
    sim.fire(3)
    assert log == ["swallowed", "swallowed", "swallowed"]
    assert rows(sim.history)[-2:] == [
        (5, "ActivityCancelRequested", None, 2, None),
        (6, "OrchestrationCompleted", None, None, None),
    ]
    assert len(scheduled(sim.history)) == 1
    check_replay(swallow_race, sim)


async def canceller(ctx: OrchestrationContext) -> list[Any]:
    act = ctx.schedule_activity("A")
    timer = ctx.schedule_timer(9)
    wait = ctx.schedule_wait("w")
    sub = ctx.schedule_sub_orchestration("S")
    done = ctx.schedule_activity("B")
    task = durable_async(ctx, stepper(ctx, "T"))
    await done
    flags: list[Any] = [
        f.cancel("by hand") for f in (act, timer, wait, sub, task, done)
    ]
    flags.append(act.cancel())  # already cancelled
    try:
        await act
    except Cancelled as exc:
        flags.append(exc.reason)
    return [*flags, task.cancelled(), done.cancelled()]


def test_durable_future_cancel() -> None:
    sim = Simulator(canceller)
    sim.complete(by_name(sim, "B"), "b")
    assert sim.result.output == [True] * 5 + [False, False, "by hand", True, False]
    middle = sim.last_turn[1:-1]
    found = cancels(middle)
    assert found == middle  # nothing but cancel events
    assert [(e.type, e.source_event_id, e.reason) for e in found] == [
        ("ActivityCancelRequested", 2, "by hand"),
        ("TimerCancelled", 3, "by hand"),
        ("EventWaitCancelled", 4, "by hand"),
        ("SubOrchestrationCancelRequested", 5, "by hand"),
        ("ActivityCancelRequested", 7, "by hand"),
    ]
    check_replay(canceller, sim)


async def cancellable(ctx: OrchestrationContext) -> str:
    nested = durable_async(ctx, level1(ctx))
    try:
        await ctx.join(ctx.schedule_activity("root-act"), nested)
    finally:
        log.append("root finally")
    return "finished"


def test_instance_cancellation_cancels_everything() -> None:
    reset(log)
    sim = Simulator(cancellable)
    sim.cancel("operator said stop")
    assert sim.result.status == "Cancelled"
    assert isinstance(sim.history[-1], h.OrchestrationCancelled)
    assert sim.history[-1].reason == "operator said stop"
    assert log == ["L2 finally", "L1 finally", "root finally"]
    assert sim.pending() == []
    opened = [p.event_id for p in Simulator(cancellable).pending()]
    assert sorted(cancelled_ids(sim.history)) == opened
    reset(log)
    check_replay(cancellable, sim)


async def leaves_work_behind(ctx: OrchestrationContext) -> str:
    async def spawner() -> str:
        ctx.schedule_activity("left-by-finished-task")
        return "spawned"

    ctx.schedule_activity("never-awaited")
    finished = durable_async(ctx, spawner())
    blocked = durable_async(ctx, level3(ctx))
    await ctx.schedule_timer(1)
    assert not blocked.done()
    return str(await finished)


def test_orchestration_end_cancels_leftover_work() -> None:
    reset(log)
    sim = Simulator(leaves_work_behind)
    left = [p.event_id for p in sim.pending() if (p.kind, p.scope) != ("timer", "0")]
    sim.advance(1)
    assert sim.result.output == "spawned"
    assert cancelled_ids(sim.history) == left
    assert {e.reason for e in of_type(sim.history, h.ActivityCancelRequested)} == {
        "orchestration completed"
    }
    assert log == ["L3 finally"]
    reset(log)
    check_replay(leaves_work_behind, sim)


async def inline(ctx: OrchestrationContext) -> str:
    return await stepper(ctx, "S")


async def awaited_task(ctx: OrchestrationContext) -> str:
    return await durable_async(ctx, stepper(ctx, "S"))


def test_a_task_awaited_directly_behaves_like_inline_code() -> None:
    histories = []
    for body in (inline, awaited_task):
        sim = Simulator(body, activities={"S-1": 1, "S-2": ValueError("boom")})
        result = sim.run()
        assert result.status == "Failed"
        assert result.error is not None and "boom" in result.error.message
        histories.append([(e.type, getattr(e, "name", None)) for e in sim.history[1:]])
        check_replay(body, sim)
    assert histories[0] == histories[1]
