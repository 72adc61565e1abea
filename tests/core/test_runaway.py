"""DESIGN §8: no orchestration code can make the driver loop or overflow.

Reproducers from the task-scope stress test (findings B1, Q9, B6). Every
simulation that could hang runs under `returns_within`, so a regression
fails the test instead of hanging the session.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _core_util import by_name, check_replay, types

import perdure
from perdure import Cancelled, OrchestrationContext, durable_async
from perdure._core import _runaway
from perdure.testing import Simulator

T = Any


def returns_within(seconds: float, fn: Callable[[], T]) -> T:
    """Run *fn* in a thread; fail if it has not returned after *seconds*.

    A thread rather than SIGALRM: an alarm's exception would be swallowed
    by the very ``except:`` loops under test. (On a regression the thread
    keeps spinning in the background; it is a daemon.)
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Collect what the garbage collector reports while closing coroutines.

    A coroutine the driver gave up on (it ignored GeneratorExit) is closed
    again when collected; Python reports that it ignored GeneratorExit.
    """
    seen: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda info: seen.append(str(info.exc_value))
    )
    yield seen
    gc.collect()


# ---------------------------------- B1: cancelled while running, swallows
counts: dict[str, int] = {}


@perdure.orchestration
async def self_cancelling(ctx: OrchestrationContext) -> str:
    me: dict[str, Any] = {}

    async def block() -> None:
        never = ctx.schedule_wait("never")
        await ctx.schedule_activity("step")
        me["task"].cancel()  # cancelled while it is running
        while True:
            try:
                await never
            except Cancelled:
                counts["swallowed"] = counts.get("swallowed", 0) + 1

    me["task"] = durable_async(ctx, block())
    await ctx.schedule_timer(60)
    return "done"


def test_task_cancelled_while_running_that_swallows_cancelled_is_stopped() -> None:
    counts.clear()
    sim = Simulator(self_cancelling)

    def complete_step() -> None:
        sim.complete(3, "ok")  # event 3: the block's "step" activity

    returns_within(10, complete_step)
    assert counts["swallowed"] == _runaway.MAX_UNWIND
    assert types(sim.last_turn) == ["ActivityCompleted", "EventWaitCancelled"]
    sim.advance(60)
    assert sim.result.status == "Completed"
    assert sim.result.output == "done"
    returns_within(10, lambda: check_replay(self_cancelling, sim))


# ------------------------------ Q9: bare except loops, parked or running
async def polling(ctx: OrchestrationContext) -> str:
    # DESIGN's Example 2 polling loop, with a catch-all.
    while True:
        try:
            if await ctx.schedule_activity("CheckStatus") == "ready":
                return "ready"
            await ctx.schedule_timer(10)
        except:  # noqa: E722
            counts["caught"] = counts.get("caught", 0) + 1


@perdure.orchestration
async def polling_loser(ctx: OrchestrationContext) -> Any:
    poll = durable_async(ctx, polling(ctx))
    return await ctx.select(poll, ctx.schedule_wait("stop"))


def test_bare_except_loop_in_a_parked_loser_is_stopped(unraisable: list[str]) -> None:
    counts.clear()
    sim = Simulator(polling_loser)
    returns_within(10, lambda: sim.raise_event("stop", "now"))
    assert sim.result.output == [1, "now"]
    assert types(sim.last_turn) == [
        "EventRaised",
        "ActivityCancelRequested",
        "OrchestrationCompleted",
    ]
    returns_within(10, lambda: check_replay(polling_loser, sim))


@perdure.orchestration
async def base_exception_loop(ctx: OrchestrationContext) -> str:
    me: dict[str, Any] = {}

    async def block() -> None:
        await ctx.schedule_activity("step")
        me["task"].cancel()
        while True:
            try:
                await ctx.schedule_timer(1)
            except BaseException:
                counts["caught"] = counts.get("caught", 0) + 1

    me["task"] = durable_async(ctx, block())
    return str(await ctx.schedule_activity("root"))


def test_except_base_exception_loop_in_a_running_task_is_stopped(
    unraisable: list[str],
) -> None:
    counts.clear()
    sim = Simulator(base_exception_loop)
    returns_within(10, lambda: sim.complete(by_name(sim, "step"), "ok"))
    assert counts["caught"] > _runaway.MAX_CANCELLED_CALLS
    # Nothing was scheduled after the cancellation.
    assert types(sim.last_turn) == ["ActivityCompleted"]
    sim.complete(by_name(sim, "root"), "root done")
    assert sim.result.output == "root done"
    returns_within(10, lambda: check_replay(base_exception_loop, sim))


@perdure.orchestration
async def polling_root(ctx: OrchestrationContext) -> str:
    return await polling(ctx)


def test_discarded_driver_with_a_bare_except_loop_is_collected(
    unraisable: list[str],
) -> None:
    # An evicted driver's suspended coroutines are closed by the garbage
    # collector; a bare except used to turn that close into an endless loop.
    counts.clear()
    sim = Simulator(polling_root)
    gc.collect()

    def drop() -> None:
        sim.restart()  # the old driver is discarded
        gc.collect()

    returns_within(10, drop)
    # (Reported for the root coroutine and the one it awaits.)
    assert unraisable
    assert set(unraisable) == {"coroutine ignored GeneratorExit"}
    # The new driver still works.
    sim.complete(2, "ready")
    assert sim.result.output == "ready"


# --------------------------------------------------- B6: deep nesting
@perdure.orchestration
async def select_chain(ctx: OrchestrationContext, depth: int) -> Any:
    future = ctx.schedule_activity("A")
    for level in range(depth):
        future = ctx.select(future, ctx.schedule_wait(f"w{level}"))
    value = await future
    indexes = []
    while isinstance(value, tuple):
        index, value = value
        indexes.append(index)
    return [sorted(set(indexes)), value]


async def nest(ctx: OrchestrationContext, depth: int) -> Any:
    if depth == 0:
        return await ctx.schedule_activity("leaf")
    return await durable_async(ctx, nest(ctx, depth - 1))


@perdure.orchestration
async def nested_tasks(ctx: OrchestrationContext, depth: int) -> Any:
    return await nest(ctx, depth)


@pytest.mark.parametrize("depth", [500, 1000])
def test_select_chain_nests_deeply(depth: int) -> None:
    sim = Simulator(select_chain, depth)
    sim.complete(2, "a")
    assert sim.result.output == [[0], "a"]
    # Each select settles before cancelling its loser, so the outermost
    # loser is cancelled first; the order is part of stored histories.
    cancels = [e.source_event_id for e in sim.history if e.type.endswith("Cancelled")]
    assert cancels == list(range(depth + 2, 2, -1))
    check_replay(select_chain, sim)


@pytest.mark.parametrize("depth", [500, 1000])
def test_durable_async_nests_deeply(depth: int) -> None:
    sim = Simulator(nested_tasks, depth)
    [leaf] = sim.pending()
    assert leaf.scope == ".".join(["0"] + ["1"] * depth)
    sim.complete(leaf.event_id, "deep")
    assert sim.result.status == "Completed"
    assert sim.result.output == "deep"
    check_replay(nested_tasks, sim)


def test_nesting_beyond_the_limit_fails_the_instance_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without the raised limit, a chain as long as the limit overflows: the
    # instance fails with a clear error instead of the delivery raising
    # (which the runtime would retry until the message is poison).
    monkeypatch.setattr(_runaway, "DEEP_RECURSION_LIMIT", 0)
    sim = Simulator(select_chain, sys.getrecursionlimit())
    sim.complete(2, "a")
    assert sim.result.status == "Failed"
    error = sim.result.error
    assert error is not None
    assert (error.type, error.category) == ("RecursionError", "application")
    assert "nesting is too deep" in error.message


# ------------------- Q10 + bad awaits: an error caught in a loop stops
@perdure.orchestration
async def catches_bad_awaits(ctx: OrchestrationContext) -> str:
    me: dict[str, Any] = {}

    async def block() -> str:
        await ctx.schedule_activity("step")
        while True:
            try:
                await me["task"]  # itself
            except RuntimeError:
                counts["self"] = counts.get("self", 0) + 1

    me["task"] = durable_async(ctx, block())
    await ctx.schedule_timer(1)
    me["task"].cancel()
    return "done"


def test_task_swallowing_its_self_await_error_is_left_suspended() -> None:
    counts.clear()
    sim = Simulator(catches_bad_awaits)
    returns_within(10, lambda: sim.complete(by_name(sim, "step"), "ok"))
    assert counts["self"] == _runaway.MAX_BAD_AWAITS
    sim.advance(1)  # the root cancels the stuck task and ends
    assert sim.result.output == "done"
    check_replay(catches_bad_awaits, sim)
