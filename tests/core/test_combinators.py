"""select and join (DESIGN §4.4): winners, ordering, fail-fast, misuse."""

from __future__ import annotations

from typing import Any

import pytest
from _core_util import by_name, cancelled_ids, check_replay, rows

from perdure import ActivityFailed, OrchestrationContext, durable_async
from perdure.testing import Simulator


async def race_two(ctx: OrchestrationContext) -> Any:
    a = ctx.schedule_activity("A")
    b = ctx.schedule_activity("B")
    index, value = await ctx.select(a, b)
    await ctx.schedule_timer(1)
    return [index, value, a.cancelled(), b.cancelled()]


def test_select_winner_is_the_first_completion_in_history_order() -> None:
    sim = Simulator(race_two)
    with sim.turn():  # both arrive in one turn; B's is applied first
        sim.complete(3, "b")
        sim.complete(2, "a")
    # A lost while unfinished; its completion later in the turn is recorded
    # and ignored, and the cancel event follows the turn's deliveries.
    assert rows(sim.history)[3:] == [
        (4, "ActivityCompleted", None, 3, None),
        (5, "ActivityCompleted", None, 2, None),
        (6, "TimerCreated", None, None, "0"),
        (7, "ActivityCancelRequested", None, 2, None),
    ]
    sim.advance(1)
    assert sim.result.output == [1, "b", True, False]
    check_replay(race_two, sim)


async def late_select(ctx: OrchestrationContext) -> Any:
    a = ctx.schedule_activity("A")
    b = ctx.schedule_activity("B")
    c = ctx.schedule_activity("C")
    await ctx.schedule_timer(1)
    return await ctx.select(c, b, a)


def test_select_on_already_completed_futures_takes_the_lowest_index() -> None:
    sim = Simulator(late_select)
    sim.complete(2, "a")  # completes first in history, but has index 2
    sim.complete(3, "b")
    sim.complete(4, "c")
    sim.advance(1)
    assert sim.result.output == [0, "c"]
    assert cancelled_ids(sim.history) == []  # every other one was done already
    check_replay(late_select, sim)


async def failing_race(ctx: OrchestrationContext) -> Any:
    slow = durable_async(ctx, two_steps(ctx))
    try:
        await ctx.select2(ctx.schedule_activity("Bad"), slow)
    except ActivityFailed as exc:
        return ["raised", exc.message, slow.cancelled()]
    return "no"


async def two_steps(ctx: OrchestrationContext) -> Any:
    await ctx.schedule_activity("S1")
    return await ctx.schedule_activity("S2")


def by_name_in(sim: Simulator, name: str) -> int:
    (found,) = [e.event_id for e in sim.history if getattr(e, "name", "") == name]
    return found


def test_select_a_failure_wins_and_is_raised() -> None:
    sim = Simulator(failing_race)
    sim.fail(by_name(sim, "Bad"), ValueError("nope"))
    assert sim.result.output == ["raised", "nope", True]
    assert cancelled_ids(sim.history) == [by_name_in(sim, "S1")]
    check_replay(failing_race, sim)


async def select_tasks(ctx: OrchestrationContext) -> Any:
    first = durable_async(ctx, two_steps(ctx))
    timer = ctx.schedule_timer(100)
    second = durable_async(ctx, two_steps(ctx))
    return await ctx.select(first, timer, second)


def test_select_mixes_tasks_and_work() -> None:
    sim = Simulator(select_tasks)
    sim.complete(4, "x")  # second task's S1
    sim.complete(2, "y")  # first task's S1
    (first_s2,) = [p.event_id for p in sim.pending() if p.scope == "0.1"]
    (second_s2,) = [p.event_id for p in sim.pending() if p.scope == "0.2"]
    assert second_s2 < first_s2
    sim.complete(second_s2, "z")
    assert sim.result.output == [2, "z"]
    assert cancelled_ids(sim.history) == [first_s2, 3]  # creation order
    check_replay(select_tasks, sim)


async def join_three(ctx: OrchestrationContext, return_exceptions: bool) -> Any:
    futures = [ctx.schedule_activity(n) for n in ("A", "B", "C")]
    try:
        values = await ctx.join(futures, return_exceptions=return_exceptions)
    except ActivityFailed as exc:
        return ["raised", exc.name, [f.cancelled() for f in futures]]
    return [repr(v) if isinstance(v, Exception) else v for v in values]


def test_join_returns_values_in_argument_order() -> None:
    sim = Simulator(join_three, False)
    for event_id, value in ((4, "c"), (2, "a"), (3, "b")):
        sim.complete(event_id, value)
    assert sim.result.output == ["a", "b", "c"]
    check_replay(join_three, sim)


def test_join_fails_fast_and_cancels_the_unfinished_rest() -> None:
    sim = Simulator(join_three, False)
    sim.complete(2, "a")
    sim.fail(3, "b broke")
    assert sim.result.output == ["raised", "B", [False, False, True]]
    assert cancelled_ids(sim.history) == [4]
    check_replay(join_three, sim)


def test_join_with_return_exceptions_cancels_nothing() -> None:
    sim = Simulator(join_three, True)
    sim.fail(3, "b broke")
    assert sim.result.status == "Running"
    sim.complete(4, "c")
    sim.complete(2, "a")
    assert sim.result.output[0] == "a"
    assert "b broke" in sim.result.output[1]
    assert sim.result.output[2] == "c"
    assert cancelled_ids(sim.history) == []
    check_replay(join_three, sim)


async def join_tasks(ctx: OrchestrationContext) -> Any:
    async def failing() -> None:
        await ctx.schedule_timer(1)
        raise ValueError("task failed")

    ok = durable_async(ctx, two_steps(ctx))
    bad = durable_async(ctx, failing())
    try:
        await ctx.join(ok, bad, ctx.schedule_wait("w"))
    except ValueError as exc:
        return str(exc)
    return "no"


def test_join_fail_fast_cancels_sibling_task_scopes() -> None:
    sim = Simulator(join_tasks)
    sim.advance(1)
    assert sim.result.output == "task failed"
    assert [e.type for e in sim.last_turn[1:-1]] == [
        "ActivityCancelRequested",
        "EventWaitCancelled",
    ]
    check_replay(join_tasks, sim)


async def empty_join(ctx: OrchestrationContext) -> Any:
    return await ctx.join()


def test_join_of_nothing_is_an_empty_list() -> None:
    assert Simulator(empty_join).result.output == []


errors: list[str] = []


async def misuse(ctx: OrchestrationContext) -> Any:
    a = ctx.schedule_activity("A")
    b = ctx.schedule_activity("B")
    ctx.select2(a, b)
    for attempt in (
        lambda: ctx.join(a),
        lambda: ctx.select(b, ctx.schedule_timer(1)),
        lambda: ctx.select(),
        lambda: ctx.join(ctx.schedule_timer(2), "not a future"),
    ):
        try:
            attempt()
        except (ValueError, TypeError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return len(errors)


def test_a_future_handed_to_two_combinators_raises_value_error() -> None:
    errors.clear()
    sim = Simulator(misuse)
    assert sim.result.output == 4
    assert errors[0].startswith("ValueError: this durable future was already passed")
    assert errors[1].startswith("ValueError: this durable future was already passed")
    assert errors[2] == "ValueError: select() needs at least one future"
    assert errors[3].startswith(
        "TypeError: select, join and as_completed take durable futures"
    )
    errors.clear()
    check_replay(misuse, sim)


@pytest.mark.parametrize("winner", ["A", "timer"])
def test_nested_select_inside_a_task(winner: str) -> None:
    async def inner(ctx: OrchestrationContext) -> Any:
        return await ctx.select2(ctx.schedule_activity("A"), ctx.schedule_timer(5))

    async def outer(ctx: OrchestrationContext) -> Any:
        task = durable_async(ctx, inner(ctx))
        return await ctx.join(task, ctx.schedule_activity("B"))

    sim = Simulator(outer, activities={"A": "a", "B": "b"})
    if winner == "A":
        sim.run()
        assert sim.result.output == [[0, "a"], "b"]
        assert cancelled_ids(sim.history) == [3]
    else:
        sim.advance(5)
        sim.run_activity(4)
        assert sim.result.output == [[1, None], "b"]
        assert cancelled_ids(sim.history) == [2]
    check_replay(outer, sim)
