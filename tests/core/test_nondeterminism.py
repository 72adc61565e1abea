"""Replay against changed code and corrupted histories (DESIGN §2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from _core_util import fresh_driver

import perdure
from perdure import NondeterminismError, OrchestrationContext, durable_async
from perdure._core import _history as h
from perdure.testing import Simulator, replay


async def v1(ctx: OrchestrationContext, order: str) -> str:
    first = await ctx.schedule_activity("Reserve", order)
    return str(await ctx.schedule_activity("Charge", first))


def recorded() -> list[h.Event]:
    sim = Simulator(v1, "o1")
    sim.complete(2, "r")
    sim.complete(4, "c")
    assert sim.result.status == "Completed"
    return sim.history


async def renamed(ctx: OrchestrationContext, order: str) -> str:
    first = await ctx.schedule_activity("Reserve", order)
    return str(await ctx.schedule_activity("Pay", first))


async def new_input(ctx: OrchestrationContext, order: str) -> str:
    first = await ctx.schedule_activity("Reserve", order.upper())
    return str(await ctx.schedule_activity("Charge", first))


async def timer_instead(ctx: OrchestrationContext, order: str) -> str:
    first = await ctx.schedule_activity("Reserve", order)
    await ctx.schedule_timer(1)
    return str(first)


async def extra_step(ctx: OrchestrationContext, order: str) -> str:
    first = await ctx.schedule_activity("Reserve", order)
    ctx.schedule_activity("Audit", first)
    return str(await ctx.schedule_activity("Charge", first))


async def missing_step(ctx: OrchestrationContext, order: str) -> str:
    return str(await ctx.schedule_activity("Reserve", order))


async def waits_longer(ctx: OrchestrationContext, order: str) -> str:
    first = await ctx.schedule_activity("Reserve", order)
    second = await ctx.schedule_activity("Charge", first)
    return str(await ctx.schedule_activity("Ship", second))


CASES: list[tuple[Callable[..., Any], list[str]]] = [
    (renamed, ["ActivityScheduled(name='Charge', input='r')", "name='Pay'"]),
    (new_input, ["input='o1'", "input='O1'"]),
    (timer_instead, ["ActivityScheduled(name='Charge'", "TimerCreated()"]),
    (extra_step, ["Audit", "ActivityScheduled(name='Charge'"]),
    (missing_step, ["ActivityScheduled(name='Charge'", "did not schedule anything"]),
    (waits_longer, ["ended Completed (event 6)", "still running"]),
]


@pytest.mark.parametrize(
    ("changed", "phrases"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_changed_code_raises_naming_expected_and_actual(
    changed: Callable[..., Any], phrases: list[str]
) -> None:
    history = recorded()
    assert replay(v1, history).status == "Completed"
    with pytest.raises(NondeterminismError) as info:
        replay(changed, history)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, message
    assert info.value.info is not None
    assert info.value.info.category == "configuration"


async def ends_early(ctx: OrchestrationContext, order: str) -> str:
    await ctx.schedule_activity("Reserve", order)
    ctx.schedule_activity("Charge", "r")
    return "early"


def test_code_that_ends_differently_is_detected() -> None:
    history = recorded()
    with pytest.raises(NondeterminismError, match="cancelled"):
        replay(ends_early, history)
    assert replay(v1, history[:4]).status == "Running"  # a turn boundary
    with pytest.raises(NondeterminismError, match="shows it still running"):
        replay(v1, history[:-1])  # not a turn boundary: the end is missing


async def race(ctx: OrchestrationContext) -> Any:
    return await ctx.select2(ctx.schedule_activity("A"), ctx.schedule_timer(5))


async def race_joined(ctx: OrchestrationContext) -> Any:
    return await ctx.join(ctx.schedule_activity("A"), ctx.schedule_timer(5))


async def race_other_loser(ctx: OrchestrationContext) -> Any:
    a = ctx.schedule_activity("A")
    timer = ctx.schedule_timer(5)
    winner = await ctx.select2(a, timer)
    return winner


async def race_swapped(ctx: OrchestrationContext) -> Any:
    a = ctx.schedule_activity("A")
    timer = ctx.schedule_timer(5)
    a.cancel()
    return await ctx.select2(a, timer)


def test_changed_cancellation_is_detected() -> None:
    sim = Simulator(race)
    sim.advance(5)
    history = sim.history
    assert history[-2].type == "ActivityCancelRequested"
    assert replay(race_other_loser, history).status == "Completed"
    with pytest.raises(NondeterminismError, match="cancels event 2") as info:
        replay(race_joined, history)
    assert "cancelled nothing" in str(info.value)
    with pytest.raises(NondeterminismError, match="does not record"):
        replay(race_swapped, history[:4])  # cancelled before the timer fired


async def with_extras(ctx: OrchestrationContext, variant: dict[str, int]) -> None:
    ctx.set_custom_status({"v": variant["status"]})
    child = ctx.schedule_sub_orchestration(
        "Child", 1, instance_id=f"kid-{variant['kid']}"
    )
    ctx.start_orchestration("Other", f"other-{variant['other']}")
    await durable_async(ctx, awaits(ctx, child))


async def awaits(ctx: OrchestrationContext, child: Any) -> None:
    await child


@pytest.mark.parametrize(
    ("key", "phrase"),
    [
        ("status", "CustomStatusUpdated"),
        ("kid", "SubOrchestrationScheduled"),
        ("other", "OrchestrationChained"),
    ],
)
def test_custom_status_sub_ids_and_detached_starts_are_matched(
    key: str, phrase: str
) -> None:
    base = {"status": 1, "kid": 1, "other": 1}
    history = Simulator(with_extras, base).history
    replay(with_extras, history)
    start = history[0]
    assert isinstance(start, h.OrchestrationStarted)
    changed = dataclasses.replace(start, input={**base, key: 2})
    with pytest.raises(NondeterminismError, match=phrase):
        replay(with_extras, [changed, *history[1:]])


@perdure.orchestration(name="Renamed", version="2.0.0")
async def v1_renamed(ctx: OrchestrationContext, order: str) -> str:
    return await v1(ctx, order)


def test_replay_ignores_name_and_version_and_accepts_json() -> None:
    history = recorded()
    as_json = [h.event_to_json(e) for e in history]
    result = replay(v1_renamed, as_json)
    assert (result.status, result.output) == ("Completed", "c")
    assert result.history == tuple(history)


def test_corrupted_histories_raise() -> None:
    history = recorded()
    with pytest.raises(NondeterminismError, match="OrchestrationStarted"):
        replay(v1, history[1:])
    with pytest.raises(NondeterminismError, match="OrchestrationStarted"):
        replay(v1, [])
    with pytest.raises(NondeterminismError, match="corrupted history: event id 3"):
        replay(v1, [history[0], history[2]])  # a gap
    with pytest.raises(NondeterminismError, match="corrupted history: event id 2"):
        replay(v1, [history[0], history[1], history[1]])  # a duplicate
    second_start = h.OrchestrationStarted(
        event_id=2, timestamp=0.0, name="v1", version="1.0.0", input="x"
    )
    with pytest.raises(NondeterminismError, match="second OrchestrationStarted"):
        replay(v1, [history[0], second_start])
    stray = h.TimerFired(event_id=3, timestamp=0.0, source_event_id=2)
    with pytest.raises(NondeterminismError, match="not an open timer"):
        replay(v1, [history[0], history[1], stray])  # 2 is an activity
    unknown = h.ActivityCompleted(event_id=3, timestamp=0.0, source_event_id=99)
    with pytest.raises(NondeterminismError, match="answers event 99"):
        replay(v1, [history[0], history[1], unknown])


def test_driver_replay_rejects_bad_ids_directly() -> None:
    history = recorded()
    driver = fresh_driver(v1, history, "x")
    renumbered = [history[0], *(_shift(e) for e in history[1:])]
    with pytest.raises(NondeterminismError, match="position 2"):
        driver.replay(renumbered)


def _shift(event: h.Event) -> h.Event:
    return dataclasses.replace(event, event_id=event.event_id + 1)


def test_simulator_restart_detects_nondeterministic_code() -> None:
    flips = iter(range(100))

    async def unstable(ctx: OrchestrationContext) -> None:
        await ctx.schedule_activity("A", next(flips))  # not deterministic!

    sim = Simulator(unstable)
    with pytest.raises(NondeterminismError, match="input=0"):
        sim.restart()
