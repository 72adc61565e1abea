"""The `perdure.testing` harness itself: Simulator and replay."""

from __future__ import annotations

from typing import Any

import pytest
from _core_util import check_replay, types

import perdure
from perdure import OrchestrationContext
from perdure._core import _history as h
from perdure.testing import PendingWork, ReplayResult, Simulator, replay


async def ticker(ctx: OrchestrationContext, n: int) -> list[float]:
    fired = []
    for _ in range(n):
        await ctx.schedule_timer(10)
        fired.append(ctx.utc_now().timestamp())
    return fired


def test_advance_fires_due_timers_in_order_including_new_ones() -> None:
    sim = Simulator(ticker, 3, start_time=1000.0)
    assert sim.pending() == [PendingWork(2, "timer", "", fire_at=1010.0)]
    assert sim.advance(5) == 0
    assert sim.now == 1005.0
    assert sim.advance(20) == 2  # 1010, then the timer it created at 1020
    assert sim.now == 1025.0
    assert sim.advance(100) == 1
    assert sim.result.output == [1010.0, 1020.0, 1030.0]
    check_replay(ticker, sim)


async def pipeline(ctx: OrchestrationContext, x: int) -> Any:
    doubled = await ctx.schedule_activity("Double", x)
    await ctx.schedule_timer(60)
    flaky = None
    try:
        await ctx.schedule_activity("Flaky", doubled)
    except perdure.ActivityFailed as exc:
        flaky = exc.message
    const = await ctx.schedule_activity("Const")
    return [doubled, flaky, const, await ctx.schedule_wait("approve")]


def test_run_uses_fakes_and_skips_time_until_blocked() -> None:
    def flaky(value: Any) -> Any:
        raise RuntimeError(f"flaky got {value}")

    fakes = {"Double": lambda x: x * 2, "Flaky": flaky, "Const": {"k": 1}}
    sim = Simulator(pipeline, 21, activities=fakes, start_time=0.0)
    result = sim.run()
    assert result.status == "Running"  # blocked on the event
    assert [p.kind for p in sim.pending()] == ["wait"]
    assert sim.now == 60.0
    sim.raise_event("approve", True)
    assert sim.result.output == [42, "flaky got 42", {"k": 1}, True]
    check_replay(pipeline, sim)


def test_run_leaves_activities_without_a_fake_pending() -> None:
    sim = Simulator(pipeline, 1, activities={"Double": 5})
    sim.run()
    assert [(p.kind, p.name) for p in sim.pending()] == [("activity", "Flaky")]
    with pytest.raises(KeyError, match="Flaky"):
        sim.run_activity(sim.pending()[0].event_id)
    sim.fail(sim.pending()[0].event_id)  # a plain "failed" message
    assert sim.pending()[0].name == "Const"


async def race(ctx: OrchestrationContext) -> Any:
    result = await ctx.select2(ctx.schedule_activity("A"), ctx.schedule_timer(1))
    await ctx.schedule_activity("B")
    return result


def test_deliveries_are_validated() -> None:
    sim = Simulator(race)
    with pytest.raises(ValueError, match="not a scheduled activity/sub"):
        sim.complete(3)  # the timer
    with pytest.raises(ValueError, match="not a scheduled timer"):
        sim.fire(2)
    with pytest.raises(ValueError, match="not a scheduled"):
        sim.complete(99)
    sim.advance(1)
    assert types(sim.last_turn) == [
        "TimerFired",
        "ActivityScheduled",
        "ActivityCancelRequested",
    ]
    sim.complete(2, "late")  # answering cancelled work is allowed: ignored
    assert sim.last_turn[0].type == "ActivityCompleted"
    with pytest.raises(ValueError, match="already completed"):
        sim.complete(2, "again")
    with pytest.raises(RuntimeError, match="cannot be nested"), sim.turn(), sim.turn():
        pass
    sim.complete(5, "b")
    assert sim.result.output == [1, None]
    assert sim.result.is_finished
    check_replay(race, sim)


def test_restart_rebuilds_the_driver_from_history() -> None:
    sim = Simulator(pipeline, 2, activities={"Double": 1, "Flaky": 2, "Const": 3})
    sim.restart()
    sim.run_activity(2)
    sim.restart()
    sim.run()
    sim.restart()
    sim.raise_event("approve", "ok")
    assert sim.result.output == [1, None, 3, "ok"]
    reference = Simulator(pipeline, 2, activities={"Double": 1, "Flaky": 2, "Const": 3})
    reference.run()
    reference.raise_event("approve", "ok")
    assert reference.history == sim.history


async def pipeline_ok(ctx: OrchestrationContext) -> Any:
    return await ctx.schedule_activity("A")


def test_a_turn_block_delivers_once_and_empty_blocks_do_nothing() -> None:
    sim = Simulator(pipeline_ok)
    with sim.turn():
        pass
    assert len(sim.history) == 2
    with sim.turn():
        sim.raise_event("x", 1)
        sim.complete(2, "a")
        assert len(sim.history) == 2  # nothing delivered before the block ends
    assert types(sim.last_turn) == [
        "EventRaised",
        "ActivityCompleted",
        "OrchestrationCompleted",
    ]


def test_replay_result_and_history_round_trip() -> None:
    sim = Simulator(pipeline_ok, instance_id="rt")
    sim.complete(2, {"deep": [1, 2]})
    result = sim.result
    assert isinstance(result, ReplayResult)
    assert (result.status, result.output, result.error) == (
        "Completed",
        {"deep": [1, 2]},
        None,
    )
    assert "history" not in repr(result)
    stored = [h.event_to_json(e) for e in sim.history]
    again = replay(pipeline_ok, [h.event_from_json(s) for s in stored])
    assert again == result


async def broken(ctx: OrchestrationContext) -> None:
    raise ValueError("bad input")


def test_failures_are_reported_with_their_message() -> None:
    result = Simulator(broken).result
    assert result.status == "Failed"
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("ValueError", "bad input")
    assert replay(broken, Simulator(broken).history) == result


def test_inputs_must_be_serialisable() -> None:
    with pytest.raises(perdure.PayloadError):
        Simulator(pipeline_ok, object())
    sim = Simulator(pipeline_ok)
    with pytest.raises(perdure.PayloadError):
        sim.complete(2, object())
    assert len(sim.history) == 2  # nothing was delivered
