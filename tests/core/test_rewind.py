"""Rewinding a failed execution in the pure kernel (DESIGN §9, `_core._rewind`).

A program fails in the turn an event arrives; a fixed program rewinds it.
Voided events stay in the history; the rewind turn opens with its marker,
re-runs the failed step live and lists the work to send again; replays of
the rewound history, whole or turn by turn, reach the same place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _core_util import (
    check_replay,
    fresh_driver,
    new_events_after_replay,
    of_type,
    types,
)

import perdure
from perdure import NondeterminismError, OrchestrationContext
from perdure._core import _history as h
from perdure._core._rewind import pending_children, plan_rewind, voided_ids
from perdure.testing import Simulator, replay

Program = Callable[..., Any]
CASCADE_REASON = "orchestration failed"


def order(bug: str | None = None, *, patch: bool = False) -> Program:
    """One version of "Order": *bug* names how it fails once "go" arrives.

    It completes A, starts B (with options), a long timer, a wait and a
    child, cancels the loser of a select itself, then waits for "go".
    """

    @perdure.orchestration(name="Order")
    async def flow(ctx: OrchestrationContext, n: int) -> Any:
        a = await ctx.schedule_activity("A", n)
        b = ctx.schedule_activity("B", n, timeout=5.0)
        timer = ctx.schedule_timer(60)
        wait = ctx.schedule_wait("go")
        child = ctx.schedule_sub_orchestration("Kid", n)
        loser = ctx.schedule_activity("Loser", n)
        await ctx.select2(ctx.schedule_timer(1), loser)
        go = await wait
        if bug == "key" and not (patch and ctx.patched("fix")):
            raise KeyError(go)
        if bug == "type":
            raise TypeError(go)
        b_result = await b
        await timer
        return [a, go, b_result, "fired", await child]

    return flow


def failed(bug: str = "key") -> Simulator:
    """A simulator whose Order failed when "go" arrived."""
    sim = Simulator(order(bug), 7, instance_id="o-1")
    sim.complete(2, "a")
    sim.advance(1)
    sim.raise_event("go", "went")
    assert sim.result.status == "Failed"
    return sim


def ids(sim: Simulator, cls: type[h.Event]) -> list[int]:
    return [e.event_id for e in sim.history if isinstance(e, cls)]


def test_the_failure_and_its_cascade_are_voided_not_deleted() -> None:
    sim = failed()
    before = sim.history
    cascade = [
        e
        for e in before
        if e.role == "cancel" and getattr(e, "reason", "") == CASCADE_REASON
    ]
    assert [e.type for e in cascade] == [
        "ActivityCancelRequested",
        "TimerCancelled",
        "SubOrchestrationCancelRequested",
    ]
    sim.rewind(order())
    assert sim.history[: len(before)] == before  # nothing rewritten
    [marker] = of_type(sim.history, h.ExecutionRewound)
    failure = before[-1]
    assert isinstance(failure, h.OrchestrationFailed)
    assert marker.event_id == failure.event_id + 1
    assert (marker.source_event_id, marker.voided_from) == (
        failure.event_id,
        cascade[0].event_id,
    )
    assert voided_ids(sim.history) == {e.event_id for e in [*cascade, failure]}
    # The work the cascade cancelled is open again; what the code itself
    # cancelled (the select's loser) and what completed are not.
    assert sorted((p.kind, p.name) for p in sim.pending()) == [
        ("activity", "B"),
        ("sub", "Kid"),
        ("timer", ""),
    ]


def test_the_marker_is_the_first_event_of_the_rewind_turn() -> None:
    sim = failed()
    sim.rewind(order())
    assert types(sim.last_turn) == ["ExecutionRewound"]
    assert sim.result.status == "Running"
    assert h.ExecutionRewound.role == "rewind"
    marker = sim.last_turn[0]
    assert h.event_from_json(h.event_to_json(marker)) == marker


def test_the_rewind_turn_lists_the_open_work_to_send_again() -> None:
    sim = failed()
    driver = fresh_driver(order(), sim.history, "o-1")
    driver.replay(sim.history, rewind=True)
    driver.begin_turn(sim.now)
    result = driver.end_turn()
    assert types(result.events) == ["ExecutionRewound"]
    sent = [
        (e.type, getattr(e, "name", None), options) for e, options in result.reissue
    ]
    assert sent == [
        ("ActivityScheduled", "B", {"retry": None, "timeout": 5.0}),
        ("TimerCreated", None, None),
    ]
    timer = result.reissue[1][0]
    assert isinstance(timer, h.TimerCreated)
    assert timer.fire_at == sim.history[0].timestamp + 60  # the original time
    # A later turn of the same driver sends nothing again.
    driver.begin_turn(sim.now + 1)
    assert driver.end_turn().reissue == []


def test_an_open_sub_orchestration_is_for_the_runtime_to_ask() -> None:
    sim = failed()
    plan = plan_rewind(sim.history)
    assert plan is not None
    [(event_id, child)] = pending_children(sim.history, plan.voided)
    assert child == f"o-1::sub::{event_id}"
    # Without voiding, the cascade's cancellation closes it.
    assert pending_children(sim.history, ()) == []


def test_the_fixed_code_goes_on_from_the_failed_step() -> None:
    sim = failed()
    sim.rewind(order())
    b, kid = (p.event_id for p in sim.pending() if p.kind in ("activity", "sub"))
    sim.complete(b, "b")
    sim.complete(kid, "k")
    sim.advance(60)
    result = sim.result
    assert (result.status, result.output) == (
        "Completed",
        ["a", "went", "b", "fired", "k"],
    )
    check_replay(order(), sim)
    assert new_events_after_replay(order(), sim.history, "o-1") == []


def test_a_fix_behind_patched_takes_the_new_branch() -> None:
    # The failed step re-runs as live code: patched() is True there and
    # records its marker in the rewind turn.
    sim = failed()
    sim.rewind(order("key", patch=True))
    assert types(sim.last_turn) == ["ExecutionRewound", "PatchApplied"]
    [patch] = of_type(sim.last_turn, h.PatchApplied)
    assert patch.patch_id == "fix"
    sim.activities = {"B": "b"}
    sim.run()
    sim.complete(next(p.event_id for p in sim.pending("sub")), "k")
    assert sim.result.status == "Completed"
    check_replay(order("key", patch=True), sim)


def test_the_failed_step_is_live_code_the_rest_is_replay() -> None:
    seen: list[tuple[str, bool]] = []

    @perdure.orchestration(name="Order")
    async def watched(ctx: OrchestrationContext, n: int) -> Any:
        seen.append(("start", ctx.is_replaying))
        a = await ctx.schedule_activity("A", n)
        ctx.schedule_activity("B", n, timeout=5.0)
        ctx.schedule_timer(60)
        wait = ctx.schedule_wait("go")
        ctx.schedule_sub_orchestration("Kid", n)
        loser = ctx.schedule_activity("Loser", n)
        await ctx.select2(ctx.schedule_timer(1), loser)
        seen.append(("select", ctx.is_replaying))
        go = await wait
        seen.append(("go", ctx.is_replaying))
        return [a, go]

    sim = failed()
    sim.rewind(watched)
    assert seen == [("start", True), ("select", True), ("go", False)]
    assert sim.result.output == ["a", "went"]
    # Completing ends the execution: what was sent again is cancelled.
    assert types(sim.last_turn) == [
        "ExecutionRewound",
        "ActivityCancelRequested",
        "TimerCancelled",
        "SubOrchestrationCancelRequested",
        "OrchestrationCompleted",
    ]


def test_a_second_failure_and_a_second_rewind() -> None:
    sim = failed("key")
    sim.rewind(order("type"))  # the "fix" fails another way, at once
    assert sim.result.status == "Failed"
    assert sim.result.error is not None and sim.result.error.type == "TypeError"
    assert types(sim.last_turn) == [
        "ExecutionRewound",
        "ActivityCancelRequested",
        "TimerCancelled",
        "SubOrchestrationCancelRequested",
        "OrchestrationFailed",
    ]
    first, second = ids(sim, h.OrchestrationFailed)
    sim.rewind(order())
    markers = of_type(sim.history, h.ExecutionRewound)
    assert [m.source_event_id for m in markers] == [first, second]
    assert first in voided_ids(sim.history) and second in voided_ids(sim.history)
    sim.activities = {"B": "b"}
    sim.run()
    sim.complete(next(p.event_id for p in sim.pending("sub")), "k")
    assert sim.result.status == "Completed"
    check_replay(order(), sim)
    assert new_events_after_replay(order(), sim.history, "o-1") == []


def test_replaying_a_rewound_history_matches_the_live_run() -> None:
    # One simulator rebuilds its driver from the history after every turn
    # (a cache miss each time); the other never does: same histories.
    def drive(restart: bool) -> list[str]:
        sim = failed()
        sim.rewind(order())
        steps: list[Callable[[], object]] = [
            lambda: sim.complete(next(p.event_id for p in sim.pending("sub")), "k"),
            lambda: sim.complete(next(p.event_id for p in sim.pending("activity")), 1),
            lambda: sim.advance(60),
        ]
        for step in steps:
            if restart:
                sim.restart()
            step()
        assert sim.result.status == "Completed"
        return [h.event_to_json(e) for e in sim.history]

    assert drive(restart=True) == drive(restart=False)


def test_turn_by_turn_the_rewind_turn_is_reproduced() -> None:
    sim = failed()
    before = len(sim.history)
    sim.rewind(order("key", patch=True))
    driver = fresh_driver(order("key", patch=True), sim.history, "o-1")
    driver.replay(sim.history[:before], rewind=True)
    driver.begin_turn(sim.last_turn[0].timestamp)
    assert driver.end_turn().events == sim.last_turn


def test_code_that_changed_before_the_failure_cannot_rewind() -> None:
    @perdure.orchestration(name="Order")
    async def other(ctx: OrchestrationContext, n: int) -> Any:
        return await ctx.schedule_activity("Z", n)

    sim = failed()
    with pytest.raises(NondeterminismError, match="'Z'"):
        sim.rewind(other)
    assert sim.result.status == "Failed"  # nothing changed


def test_code_that_ends_before_the_history_does_cannot_rewind() -> None:
    @perdure.orchestration(name="Order")
    async def early(ctx: OrchestrationContext, n: int) -> Any:
        await ctx.schedule_activity("A", n)
        ctx.schedule_activity("B", n, timeout=5.0)
        ctx.schedule_timer(60)
        ctx.schedule_wait("go")
        ctx.schedule_sub_orchestration("Kid", n)
        ctx.schedule_activity("Loser", n)
        return "early"  # the history goes on: a select, a timer, "go"

    sim = failed()
    with pytest.raises(NondeterminismError, match="while replaying for a rewind"):
        sim.rewind(early)


def test_a_failure_the_runtime_wrote_interrupted_no_step() -> None:
    # A poison or turn-timeout failure: written at a later time, with no
    # cascade, after a turn that ran fine. Nothing re-runs live, and a
    # patch the code asks is False (that step ran the old code).
    sim = Simulator(order("key", patch=True), 7, instance_id="o-1")
    sim.complete(2, "a")
    history = sim.history
    failure = h.OrchestrationFailed(
        event_id=len(history) + 1,
        timestamp=sim.now + 5,
        error={"type": "PoisonMessage", "message": "x", "category": "poison"},
    )
    plan = plan_rewind([*history, failure])
    assert plan is not None
    assert (plan.first, plan.failed, plan.live) == (failure.event_id,) * 2 + (None,)
    driver = fresh_driver(order("key", patch=True), history, "o-1")
    driver.replay([*history, failure], rewind=True)
    driver.begin_turn(sim.now + 10)
    result = driver.end_turn()
    assert types(result.events) == ["ExecutionRewound"]
    names = sorted(getattr(e, "name", "timer") for e, _ in result.reissue)
    assert names == ["B", "Loser", "timer", "timer"]


def test_trailing_failures_are_voided_together() -> None:
    # A rewind turn that went poison ends the history with a second
    # failure right after the first: one rewind voids both.
    sim = failed()
    history = sim.history
    poison = h.OrchestrationFailed(
        event_id=len(history) + 1,
        timestamp=sim.now + 5,
        error={"type": "PoisonMessage", "message": "x", "category": "poison"},
    )
    plan = plan_rewind([*history, poison])
    assert plan is not None
    first_cancel = min(
        e.event_id
        for e in history
        if e.role == "cancel" and getattr(e, "reason", "") == CASCADE_REASON
    )
    assert (plan.first, plan.failed) == (first_cancel, poison.event_id)
    assert plan.live is not None  # the first failure's step
    sim_result = replay(order("key"), [*history, poison], instance_id="o-1")
    assert sim_result.status == "Failed"  # a plain replay still sees it failed


def test_nothing_to_rewind() -> None:
    sim = Simulator(order(), 7)
    assert plan_rewind(sim.history) is None
    assert plan_rewind([]) is None
    driver = fresh_driver(order(), sim.history, "simulated")
    with pytest.raises(ValueError, match="nothing to rewind"):
        driver.replay(sim.history, rewind=True)
    with pytest.raises(RuntimeError, match="only a failed execution"):
        sim.rewind()


def test_a_marker_already_in_the_history_is_not_written_twice() -> None:
    # The failed step itself asked patched("fix") live (the marker is in
    # the history); its live re-run decides True again, writing nothing.
    @perdure.orchestration(name="Order")
    async def asks_then_fails(ctx: OrchestrationContext, n: int) -> Any:
        await ctx.schedule_wait("go")
        if ctx.patched("fix"):
            ctx.set_custom_status("fixed")
        raise KeyError(n)

    @perdure.orchestration(name="Order")
    async def asks_then_works(ctx: OrchestrationContext, n: int) -> Any:
        await ctx.schedule_wait("go")
        if ctx.patched("fix"):
            ctx.set_custom_status("fixed")
        return n

    sim = Simulator(asks_then_fails, 3)
    sim.raise_event("go")
    assert len(of_type(sim.history, h.PatchApplied)) == 1
    sim.rewind(asks_then_works)
    assert len(of_type(sim.history, h.PatchApplied)) == 1
    assert (sim.result.status, sim.result.output) == ("Completed", 3)
    check_replay(asks_then_works, sim)


def racing(bug: bool) -> Program:
    """A select of a timer and a task still open when the code fails."""

    async def work(ctx: OrchestrationContext) -> Any:
        return await ctx.schedule_activity("W")

    @perdure.orchestration(name="Race")
    async def race(ctx: OrchestrationContext) -> Any:
        pending = ctx.select2(ctx.schedule_timer(60), ctx.durable_async(work(ctx)))
        lost = ctx.schedule_activity("Lost")
        await ctx.schedule_wait("go")
        lost.cancel("not needed")  # the failing step cancels before it raises
        if bug:
            raise KeyError("x")
        return (await pending)[1]

    return race


def test_everything_the_failing_turn_cancelled_is_voided() -> None:
    # The cascade cancelled the timer, which settled the select, which
    # cancelled the task's activity ("lost select"); the step itself had
    # cancelled "Lost". All are voided; the fix's own cancellation of
    # "Lost" is written again by the rewind turn.
    sim = Simulator(racing(bug=True))
    sim.raise_event("go")
    reasons = [getattr(e, "reason", "") for e in sim.history if e.role == "cancel"]
    assert reasons == ["not needed", "orchestration failed", "lost select"]
    sim.rewind(racing(bug=False))
    assert types(sim.last_turn) == ["ExecutionRewound", "ActivityCancelRequested"]
    assert sorted(p.name for p in sim.pending()) == ["", "W"]
    sim.complete(next(p.event_id for p in sim.pending("activity")), "w")
    assert (sim.result.status, sim.result.output) == ("Completed", "w")
    check_replay(racing(bug=False), sim)
    assert new_events_after_replay(racing(bug=False), sim.history, "simulated") == []
