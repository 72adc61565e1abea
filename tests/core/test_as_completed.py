"""Issue 12: ``ctx.as_completed(*futures)`` in the Simulator.

Every scenario runs in a `Twin` (its driver is also rebuilt from the
history before every turn) and is replayed from scratch at the end.
"""

from __future__ import annotations

from typing import Any

from _core_util import check_replay, types
from _structured_util import Twin, last_types

import perdure
from perdure import Cancelled, DurableFuture, OrchestrationContext, durable_async


def outcome(future: DurableFuture[Any]) -> Any:
    """A done future's value, or its failure as text."""
    try:
        return future.result()
    except perdure.ActivityFailed as exc:
        return f"failed: {exc.message}"
    except Cancelled:
        return "cancelled"


@perdure.orchestration
async def in_order(ctx: OrchestrationContext) -> list[Any]:
    futures = [ctx.schedule_activity(name) for name in ("A", "B", "C")]
    return [outcome(f) async for f in ctx.as_completed(*futures)]


def test_history_order_not_argument_order() -> None:
    sim = Twin(in_order)
    sim.complete(4, "c")  # C, then A, then B
    sim.complete(2, "a")
    assert sim.result.status == "Running"
    sim.complete(3, "b")
    assert last_types(sim) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert sim.result.output == ["c", "a", "b"]
    check_replay(in_order, sim)


def test_completions_of_one_turn_in_history_order() -> None:
    sim = Twin(in_order)
    with sim.turn():
        sim.complete(3, "b")
        sim.complete(4, "c")
        sim.complete(2, "a")
    assert sim.result.output == ["b", "c", "a"]
    check_replay(in_order, sim)


def test_failures_are_yielded_too() -> None:
    sim = Twin(in_order)
    sim.fail(3, "B broke")
    sim.complete(2, "a")
    sim.fail(4, "C broke")
    assert sim.result.output == ["failed: B broke", "a", "failed: C broke"]
    assert "ActivityCancelRequested" not in types(sim.history)
    check_replay(in_order, sim)


@perdure.orchestration
async def some_done(ctx: OrchestrationContext) -> list[Any]:
    a, b, c, d = (ctx.schedule_activity(name) for name in "ABCD")
    await ctx.join(d, b)  # D and B are done before as_completed
    return [outcome(f) async for f in ctx.as_completed(a, b, c, d)]


def test_already_done_first_in_argument_order() -> None:
    sim = Twin(some_done)
    sim.complete(5, "d")  # D completes before B ...
    sim.complete(3, "b")
    sim.complete(4, "c")
    sim.complete(2, "a")
    # ... but both were done at creation: argument order, then history order.
    assert sim.result.output == ["b", "d", "c", "a"]
    check_replay(some_done, sim)


@perdure.orchestration
async def first_then_join(ctx: OrchestrationContext) -> list[Any]:
    futures = [ctx.schedule_activity(name) for name in ("A", "B", "C")]
    out: list[Any] = []
    async for future in ctx.as_completed(*futures):
        out.append(await future)
        break  # the others are left running
    out.append(await ctx.select(futures[2], ctx.schedule_timer(5)))
    out.append(await ctx.join(futures[0], futures[1]))
    return out


def test_nothing_is_cancelled_and_futures_stay_usable() -> None:
    sim = Twin(first_then_join)
    sim.complete(3, "b")
    assert last_types(sim) == ["ActivityCompleted", "TimerCreated"]  # no cancel
    assert [p.name for p in sim.pending()] == ["A", "C", ""]  # "": the timer
    sim.complete(4, "c")
    assert last_types(sim) == ["ActivityCompleted", "TimerCancelled"]
    sim.complete(2, "a")
    assert sim.result.output == ["b", [0, "c"], ["a", "b"]]
    check_replay(first_then_join, sim)


@perdure.orchestration
async def misuse(ctx: OrchestrationContext) -> list[str]:
    a = ctx.schedule_activity("A")
    out = []
    for args in ((a, a), (a, 42)):
        try:
            ctx.as_completed(*args)
            out.append("ok")
        except (TypeError, ValueError) as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    out.append(str(await a))
    return out


def test_duplicates_and_non_futures_are_refused() -> None:
    sim = Twin(misuse)
    sim.complete(2, "a")
    assert sim.result.output == [
        "ValueError: the same durable future was passed twice",
        "TypeError: select, join and as_completed take durable futures, got int; "
        "wrap coroutines with durable_async(ctx, coro)",
        "a",
    ]
    check_replay(misuse, sim)


@perdure.orchestration
async def iterating_task(ctx: OrchestrationContext) -> list[Any]:
    seen: list[Any] = []
    futures = [ctx.schedule_activity(name) for name in ("A", "B", "C")]

    async def consume() -> None:
        try:
            async for future in ctx.as_completed(*futures):
                seen.append(await future)
        except Cancelled:
            seen.append("iteration Cancelled")
            raise

    task = durable_async(ctx, consume())
    await ctx.select2(ctx.schedule_wait("stop"), task)
    seen.append(await ctx.join(*futures))  # the futures still belong to the root
    return seen


def test_iterating_task_cancelled_mid_iteration() -> None:
    sim = Twin(iterating_task)
    sim.complete(2, "a")
    sim.raise_event("stop")
    assert last_types(sim) == ["EventRaised"]  # the root's work is left alone
    sim.complete(4, "c")
    sim.complete(3, "b")
    assert sim.result.output == ["a", "iteration Cancelled", ["a", "b", "c"]]
    check_replay(iterating_task, sim)


@perdure.orchestration
async def empty(ctx: OrchestrationContext) -> list[Any]:
    return [f async for f in ctx.as_completed()]


def test_no_futures_iterates_nothing() -> None:
    sim = Twin(empty)
    assert sim.result.output == []
    check_replay(empty, sim)
