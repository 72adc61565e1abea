"""Driver basics: event ids, the §4.5 history, delivery order, timers, waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _core_util import by_name, check_replay, of_type, row, rows, types

import perdure
from perdure import ActivityFailed, OrchestrationContext, durable_async, events as h
from perdure.testing import DEFAULT_START_TIME, Simulator, replay

T0 = DEFAULT_START_TIME


async def everything(ctx: OrchestrationContext) -> None:
    ctx.schedule_activity("A", 1)
    ctx.schedule_timer(10)
    ctx.schedule_wait("go")
    ctx.set_custom_status("busy")
    ctx.schedule_sub_orchestration("Child", {"x": 1})
    ctx.start_orchestration("Detached", "other-id", 7)
    await ctx.schedule_activity("B")


def test_scheduling_calls_get_event_ids_in_call_order() -> None:
    sim = Simulator(everything)
    assert types(sim.history) == [
        "OrchestrationStarted",
        "ActivityScheduled",
        "TimerCreated",
        "EventWaitStarted",
        "CustomStatusUpdated",
        "SubOrchestrationScheduled",
        "OrchestrationChained",
        "ActivityScheduled",
    ]
    assert [e.event_id for e in sim.history] == list(range(1, 9))
    assert [(p.event_id, p.kind) for p in sim.pending()] == [
        (2, "activity"),
        (3, "timer"),
        (4, "wait"),
        (6, "sub"),
        (8, "activity"),
    ]
    chained = sim.history[6]
    assert isinstance(chained, h.OrchestrationChained)
    assert (chained.name, chained.instance_id, chained.input) == (
        "Detached",
        "other-id",
        7,
    )
    assert sim.result.custom_status == "busy"
    check_replay(everything, sim)


async def validate(ctx: OrchestrationContext, order: str) -> str:
    step1 = await ctx.schedule_activity("Step1", order)
    return str(await ctx.schedule_activity("Step2", step1))


@perdure.orchestration(name="Order")
async def order_flow(ctx: OrchestrationContext, order: str) -> str:
    fast = ctx.schedule_activity("Fast", order)
    full = durable_async(ctx, validate(ctx, order))
    winner, output = await ctx.select2(fast, full)
    return f"{winner}:{output}"


def test_design_4_5_worked_history_exactly() -> None:
    sim = Simulator(order_flow, "o1")
    sim.complete(3, "s1")
    sim.complete(2, "fast")
    assert rows(sim.history) == [
        (1, "OrchestrationStarted", "Order", None, None),
        (2, "ActivityScheduled", "Fast", None, "0"),
        (3, "ActivityScheduled", "Step1", None, "0.1"),
        (4, "ActivityCompleted", None, 3, None),
        (5, "ActivityScheduled", "Step2", None, "0.1"),
        (6, "ActivityCompleted", None, 2, None),
        (7, "ActivityCancelRequested", None, 5, None),
        (8, "OrchestrationCompleted", None, None, None),
    ]
    assert sim.result.output == "0:fast"
    check_replay(order_flow, sim)


seen: list[Any] = []


async def observer(ctx: OrchestrationContext) -> list[Any]:
    a = ctx.schedule_activity("A")
    b = ctx.schedule_activity("B")
    x = await a
    seen.append(("after A", b.done(), ctx.is_replaying))
    c = ctx.schedule_activity("C", x)
    y = await b
    seen.append(("after B", c.done(), ctx.is_replaying))
    return [x, y, await c]


def test_completions_are_applied_one_at_a_time_in_history_order() -> None:
    seen.clear()
    sim = Simulator(observer)
    with sim.turn():  # both answers arrive in one turn: A first, then B
        sim.complete(2, "a")
        sim.complete(3, "b")
    # When A's completion was applied, B's was not yet: code sees history order.
    assert seen == [("after A", False, False), ("after B", False, False)]
    assert rows(sim.last_turn) == [
        (4, "ActivityCompleted", None, 2, None),
        (5, "ActivityCompleted", None, 3, None),
        (6, "ActivityScheduled", "C", None, "0"),
    ]
    sim.complete(6, "c")
    assert sim.result.output == ["a", "b", "c"]
    seen.clear()
    check_replay(observer, sim)
    assert seen == [("after A", False, True), ("after B", False, True)]


def test_completion_order_reversed_in_one_turn() -> None:
    seen.clear()
    sim = Simulator(observer)
    with sim.turn():
        sim.complete(3, "b")
        sim.complete(2, "a")
    assert seen == [("after A", True, False), ("after B", False, False)]
    check_replay(observer, sim)


times: list[float] = []


async def timed(ctx: OrchestrationContext) -> float:
    times.append(ctx.utc_now().timestamp())
    first = ctx.schedule_timer(10)
    await ctx.schedule_activity("A")
    times.append(ctx.utc_now().timestamp())
    second = ctx.schedule_timer(5)
    await ctx.join(first, second)
    times.append(ctx.utc_now().timestamp())
    return ctx.utc_now().timestamp()


def test_timer_fire_at_comes_from_event_timestamps() -> None:
    times.clear()
    sim = Simulator(timed)
    sim.now = T0 + 100  # the activity answers 100 s later
    sim.complete(by_name(sim, "A"))
    created = of_type(sim.history, h.TimerCreated)
    assert [e.fire_at for e in created] == [T0 + 10, T0 + 105]
    assert sim.advance(4) == 1  # the first timer is overdue, the second not yet
    assert sim.result.status == "Running"
    assert sim.advance(1) == 1
    assert sim.result.status == "Completed"
    assert sim.result.output == T0 + 105
    assert times == [T0, T0 + 100, T0 + 105]
    times.clear()
    check_replay(timed, sim)
    assert times == [T0, T0 + 100, T0 + 105]


async def two_waits(ctx: OrchestrationContext) -> list[Any]:
    await ctx.schedule_activity("A")
    return [await ctx.schedule_wait("e"), await ctx.wait_for_event("e")]


def test_events_raised_before_the_wait_are_buffered_fifo() -> None:
    sim = Simulator(two_waits)
    sim.raise_event("e", 1)
    sim.raise_event("other", "x")
    sim.raise_event("e", 2)
    sim.complete(2)
    assert sim.result.output == [1, 2]
    check_replay(two_waits, sim)


async def wait_or_timeout(ctx: OrchestrationContext) -> list[Any]:
    index, _ = await ctx.select2(ctx.schedule_wait("e"), ctx.schedule_timer(5))
    await ctx.schedule_activity("A")
    return [index, await ctx.schedule_wait("e")]


def test_cancelled_wait_consumes_nothing() -> None:
    sim = Simulator(wait_or_timeout)
    with sim.turn():
        sim.fire(3)  # the timer wins...
        sim.raise_event("e", "late")  # ...so the cancelled wait must not eat this
    assert row(sim.history[-1])[1:4] == ("EventWaitCancelled", None, 2)
    sim.complete(by_name(sim, "A"))
    assert sim.result.output == [1, "late"]
    check_replay(wait_or_timeout, sim)


async def subs(ctx: OrchestrationContext) -> list[Any]:
    a = ctx.schedule_sub_orchestration("Child", 1)
    b = ctx.schedule_sub_orchestration("Child", 2, instance_id="explicit")
    out = [await a]
    try:
        await b
    except perdure.SubOrchestrationFailed as exc:
        out.append(str(exc))
    return out


def test_sub_orchestration_child_ids() -> None:
    sim = Simulator(subs, instance_id="parent")
    first, second = sim.history[1], sim.history[2]
    assert isinstance(first, h.SubOrchestrationScheduled)
    assert isinstance(second, h.SubOrchestrationScheduled)
    assert first.instance_id == "parent::sub::2"
    assert second.instance_id == "explicit"
    sim.complete(2, "one")
    sim.fail(3, ValueError("child broke"))
    assert sim.result.status == "Completed"
    assert sim.result.output[0] == "one"
    assert "child broke" in sim.result.output[1]
    check_replay(subs, sim)


async def counter(ctx: OrchestrationContext, n: int) -> str:
    await ctx.schedule_wait("tick")
    try:
        ctx.continue_as_new(n + 1)
    except Exception:
        return "swallowed"


def test_continue_as_new_is_not_swallowed_and_carries_events() -> None:
    sim = Simulator(counter, 1)
    sim.raise_event("tick", "t1")
    assert sim.result.status == "ContinuedAsNew"
    assert sim.result.output == 2
    assert types(sim.last_turn)[-1] == "OrchestrationContinuedAsNew"
    check_replay(counter, sim)
    sim2 = Simulator(counter, 1)
    with sim2.turn():
        sim2.raise_event("other", "o")
        sim2.raise_event("tick", "t1")
        sim2.raise_event("tick", "t2")
    assert sim2.result.carried_events == (("other", "o"), ("tick", "t2"))
    with pytest.raises(RuntimeError, match="has ended"):
        sim2.raise_event("tick")


async def statuses(ctx: OrchestrationContext) -> None:
    ctx.set_custom_status({"step": 1})
    await ctx.schedule_activity("A")
    ctx.set_custom_status({"step": 2})


def test_custom_status_is_recorded_and_replayed() -> None:
    sim = Simulator(statuses)
    assert sim.result.custom_status == {"step": 1}
    sim.complete(3)
    assert types(sim.history).count("CustomStatusUpdated") == 2
    assert sim.result.custom_status == {"step": 2}
    assert check_replay(statuses, sim).custom_status == {"step": 2}


values: list[Any] = []


async def deterministic(ctx: OrchestrationContext) -> None:
    values.append((ctx.utc_now(), ctx.new_guid(), ctx.random().random()))
    await ctx.schedule_activity("A")
    values.append((ctx.utc_now(), ctx.new_guid(), ctx.random().randint(0, 10**9)))


def test_utc_now_new_guid_random_are_deterministic_across_replays() -> None:
    values.clear()
    sim = Simulator(deterministic, instance_id="det")
    sim.now += 30
    sim.complete(2)
    recorded = list(values)
    assert recorded[0][1] != recorded[1][1]  # each call gives a new guid
    for _ in range(2):
        values.clear()
        check_replay(deterministic, sim)
        assert values == recorded
    values.clear()
    replay(deterministic, sim.history, instance_id="another")
    assert values[0][0] == recorded[0][0]
    assert values[0][1] != recorded[0][1]  # seeded by the instance id


async def failing(ctx: OrchestrationContext) -> str:
    try:
        await ctx.schedule_activity("Charge")
    except ActivityFailed as exc:
        return f"{exc.name}|{exc.type}|{exc.message}"
    return "no"


def test_activity_failure_keeps_the_original_message() -> None:
    sim = Simulator(failing, activities={"Charge": ValueError("card declined")})
    assert sim.run().output == "Charge|ValueError|card declined"


async def sleeps_zero(ctx: OrchestrationContext) -> None:
    await asyncio.sleep(0)


async def sleeps_one(ctx: OrchestrationContext) -> None:
    await asyncio.sleep(1)


def test_awaiting_asyncio_sleep_fails_with_a_clear_type_error() -> None:
    result = Simulator(sleeps_zero).result
    assert result.status == "Failed"
    assert result.error is not None and result.error.type == "TypeError"
    assert "not a perdure durable future" in result.error.message
    assert "ctx.schedule_timer(...) instead of asyncio.sleep" in result.error.message


async def test_asyncio_sleep_inside_a_running_loop_fails_the_same_way() -> None:
    # The runtime drives orchestrations inside its event loop: sleep() then
    # yields an asyncio future, which the driver must reject too.
    result = Simulator(sleeps_one).result
    assert result.error is not None and result.error.type == "TypeError"
    assert "instead of asyncio.sleep" in result.error.message
